"""Training with accelerate (train/loop.py and the four model scripts), on tiny models and tiny generated data.

No research images: every dataset here is drawn by the tests (grey ellipse "faces" whose mouth curve encodes the
expression, and small "photos" with a few of them for WIDER). Most runs are in-process (fast); the multi-process and
kill -9 tests start real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

datasets = pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from PIL import Image, ImageDraw

import expr_models  # noqa:F401  (registers the Auto classes)
from expr_models.labels import EXPRESSIONS, EXPRESSIONS_WITH_CONTEMPT
from train import checkpoints, data as training_data, loop
from train.args import DEBUG_WEIGHTS_ENV, ConfigError, parse_args
from train.classifier import ClassifierStep
from train.cyclegan import CycleGANStep, ImagePool
from train.sagan import SAGANStep
from train.segmenter import SegmenterStep, WiderFaces, ellipse_masks

TINY_GAN = ["--resolution", "32", "--generator-channels", "8", "--n-residual-blocks", "1",
            "--discriminator-channels", "8"]
QUIET = ["--report-to", "tensorboard", "--log-every", "2", "--min-free-disk-mb", "1"]
# Subprocesses: one thread each (2 cores here) and no Hub traffic.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                  "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


# ----------------------------------------------------------------------------------------------------------------
# Tiny generated datasets


def draw_face(expression: str, seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), int(rng.integers(20, 80)))
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.normal(0, 1, 2)
    draw.ellipse([cx - 14, cy - 17, cx + 14, cy + 17], fill=int(rng.integers(150, 220)))
    curve = EXPRESSIONS_WITH_CONTEMPT.index(expression) - 3
    draw.line([cx - 6, cy + 8, cx, cy + 8 + curve, cx + 6, cy + 8], fill=30, width=2)
    return image


def save_expression_dataset(path: Path, classes: list[str], per_class: int, validation: int = 2) -> Path:
    features = datasets.Features({
        "image": datasets.Image(), "expression": datasets.ClassLabel(names=list(EXPRESSIONS_WITH_CONTEMPT)),
        "subject": datasets.Value("string"), "source": datasets.Value("string")})
    splits = {}
    for split, count in (("train", per_class), ("validation", validation)):
        rows = {"image": [], "expression": [], "subject": [], "source": []}
        for class_index, name in enumerate(classes):
            for i in range(count):
                rows["image"].append(draw_face(name, 1000 * class_index + i + (500 if split != "train" else 0)))
                rows["expression"].append(EXPRESSIONS_WITH_CONTEMPT.index(name))
                rows["subject"].append(f"s{i}")
                rows["source"].append("drawn")
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return path


WIDER_ATTRIBUTES = {"blur": ("clear", "normal", "heavy"), "expression": ("typical", "exaggerate"),
                    "illumination": ("normal", "extreme"), "occlusion": ("none", "partial", "heavy"),
                    "pose": ("typical", "atypical")}


def wider_face(x, y, w, h, invalid=False) -> dict:
    return dict(x1=x, y1=y, w=w, h=h, blur=0, expression=0, illumination=0, occlusion=0, pose=0, invalid=invalid)


def save_wider_dataset(path: Path, photos: int = 6) -> Path:
    face = {"x1": datasets.Value("int32"), "y1": datasets.Value("int32"), "w": datasets.Value("int32"),
            "h": datasets.Value("int32"), **{k: datasets.ClassLabel(names=list(v)) for k, v in WIDER_ATTRIBUTES.items()},
            "invalid": datasets.Value("bool")}
    features = datasets.Features({"image": datasets.Image(), "file": datasets.Value("string"),
                                  "event": datasets.Value("string"), "faces": datasets.List(face)})
    splits = {}
    for split, count in (("train", photos), ("validation", 2)):
        rows = {"image": [], "file": [], "event": [], "faces": []}
        for i in range(count):
            rng = np.random.default_rng(i + (100 if split != "train" else 0))
            width, height = int(rng.integers(70, 100)), int(rng.integers(60, 90))
            image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 90, 3)))
            draw = ImageDraw.Draw(image)
            faces = []
            for _ in range(int(rng.integers(0, 3))):
                w = int(rng.integers(14, 30))
                h = int(w * 1.2)
                x, y = int(rng.integers(0, width - w)), int(rng.integers(0, max(1, height - h)))
                draw.ellipse([x, y, x + w, y + h], fill=(220, 180, 150))
                faces.append(wider_face(x, y, w, h))
            faces.append(wider_face(3, 3, 0, 5))  # a zero-size box, as real WIDER files have
            rows["image"].append(image)
            rows["file"].append(f"0--Parade/{split}_{i}.jpg")
            rows["event"].append("0--Parade")
            rows["faces"].append(faces)
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prepared")
    return {
        "paper": save_expression_dataset(root / "paper", ["neutral", "happy"], per_class=6),
        "expressions": save_expression_dataset(root / "expressions", list(EXPRESSIONS_WITH_CONTEMPT), per_class=3),
        "jaffe": save_expression_dataset(root / "jaffe", ["happy", "sad", "surprise"], per_class=2, validation=1),
        "wider": save_wider_dataset(root / "wider"),
    }


# ----------------------------------------------------------------------------------------------------------------
# Running the scripts


def train_in_process(step_class, argv: list[str]) -> int:
    """``train/<model>.py`` in this process; resets accelerate's process-wide state afterwards."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        return loop.main(step_class, [str(arg) for arg in argv])
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def run_script(command: list, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=REPO, env=env or SUBPROCESS_ENV, capture_output=True,
                          text=True, timeout=timeout)


def summary(run: Path) -> dict:
    return json.loads((run / "training_summary.json").read_text())


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "final" / "model.safetensors"))


def assert_same_weights(first: Path, second: Path, atol: float = 1e-6) -> None:
    a, b = final_weights(first), final_weights(second)
    assert a.keys() == b.keys()
    worst = max(float((a[key].float() - b[key].float()).abs().max()) for key in a)
    assert worst <= atol, f"final weights differ by up to {worst}"


def assert_finite_losses(run: Path) -> dict:
    losses = summary(run)["losses"]
    assert losses, "no losses were logged"
    assert all(np.isfinite(value) for value in losses.values()), losses
    return losses


# ----------------------------------------------------------------------------------------------------------------
# Pieces


def test_lr_schedules():
    # The study's: linear decay to zero over the run.
    study = loop.lr_lambda("linear", total_updates=100, updates_per_epoch=10)
    assert study(0) == 1.0 and study(50) == pytest.approx(0.5) and study(100) == 0.0
    # The reference: constant for half the epochs, then per-epoch steps down to ~0 (Zhu et al.'s lambda_rule).
    reference = loop.lr_lambda("reference", total_updates=200 * 10, updates_per_epoch=10)
    assert reference(0) == reference(99 * 10 + 9) == 1.0
    assert reference(100 * 10) == pytest.approx(1 - 1 / 101)
    assert reference(100 * 10) == reference(100 * 10 + 9)  # constant within an epoch
    assert reference(199 * 10) == pytest.approx(1 - 100 / 101)
    cosine = loop.lr_lambda("cosine", total_updates=100, updates_per_epoch=10, warmup=10)
    assert cosine(0) == pytest.approx(1 / 11) and cosine(10) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.1)))
    with pytest.raises(ConfigError, match="unknown LR schedule"):
        loop.lr_lambda("exotic", 10, 1)


def test_image_pool_keeps_fifty_and_round_trips():
    torch.manual_seed(0)
    pool = ImagePool(50)
    for _ in range(30):
        out = pool.query(torch.randn(4, 1, 8, 8))
        assert out.shape == (4, 1, 8, 8)
    assert len(pool.images) == 50
    copy = ImagePool(0)
    copy.load_state_dict(pool.state_dict())
    assert copy.size == 50 and all(torch.equal(a, b) for a, b in zip(pool.images, copy.images))
    torch.manual_seed(1)
    first = pool.query(torch.zeros(8, 1, 8, 8))
    torch.manual_seed(1)
    assert torch.equal(first, copy.query(torch.zeros(8, 1, 8, 8)))  # same RNG + same pool -> same answer


def test_wider_examples_drop_bad_boxes_and_get_ellipse_masks(data):
    from datasets import load_from_disk

    train = load_from_disk(str(data["wider"]))["train"]
    dataset = WiderFaces(train, max_size=48, with_masks=True, flip=False)
    for index in range(len(train)):
        item = dataset[index]
        image, target = item["image"], item["target"]
        assert max(image.shape[1:]) <= 48 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        usable = [f for f in train[index]["faces"] if f["w"] > 0 and f["h"] > 0]
        assert len(target["boxes"]) == len(usable)  # the zero-size box is gone
        assert target["masks"].shape == (len(usable), *image.shape[1:])
        boxes = target["boxes"]
        assert bool((boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all())
    invalid = WiderFaces(train, max_size=200, with_masks=False)
    assert len(invalid.boxes([wider_face(1, 1, 10, 10, invalid=True)], 1.0, 50, 50)) == 0
    assert len(WiderFaces(train, 200, False, keep_invalid=True).boxes([wider_face(1, 1, 10, 10, True)], 1.0, 50, 50)) == 1
    mask = ellipse_masks(torch.tensor([[0.0, 0.0, 20.0, 10.0]]), 12, 24)[0]
    assert mask[5, 10] == 1 and mask[0, 0] == 0 and mask[5, 22] == 0  # inside the box, corners excluded


def test_augmentation_is_a_function_of_seed_epoch_and_index(data):
    from train.classifier import Augment

    rows = training_data.expression_rows(data["expressions"], "train", ["happy", "sad"])
    crops = training_data.FaceCrops([rows], 32, seed=3, augment=Augment())
    crops.set_epoch(2)
    first = crops[1]["pixel_values"]
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(first, crops[1]["pixel_values"])
    crops.set_epoch(3)
    assert not torch.equal(first, crops[1]["pixel_values"])
    assert first.shape == (1, 32, 32) and float(first.min()) >= -1 and float(first.max()) <= 1


# ----------------------------------------------------------------------------------------------------------------
# Each model trains, saves and reloads


def test_cyclegan_trains_saves_and_reloads(data, tmp_path):
    from transformers import AutoModel

    run = tmp_path / "cyclegan"
    status = train_in_process(CycleGANStep, ["--data", data["paper"], "--output-dir", run, *TINY_GAN, *QUIET,
                                             "--max-steps", "4", "--batch-size", "2", "--checkpointing-steps", "1",
                                             "--checkpoints-total-limit", "2", "--sample-every", "2", "--ema"])
    assert status == 0
    losses = assert_finite_losses(run)
    assert {"generator", "cycle_x", "identity_y", "mask", "discriminator_x"} <= set(losses)
    model = AutoModel.from_pretrained(run / "final")
    assert type(model).__name__ == "CycleGANModel" and model.discriminator_x is None
    assert not any(key.startswith("discriminator") for key in final_weights(run))
    card = (run / "final" / "README.md").read_text()
    assert "4 steps" in card and "took" in card and "train.cyclegan" in card and "neutral" in card
    assert "final training generator" in card
    # rotation: checkpoints every step, only the newest two kept; samples and TensorBoard logs written
    assert [step for step, _ in checkpoints.list_checkpoints(run / "checkpoints")] == [3, 4]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert Image.open(run / "samples" / "step_0000004.png").size[0] > 3 * 32
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    # the loss plot
    from train.tools.plot_losses import main as plot_main

    assert plot_main([str(run), "--out", str(tmp_path / "losses.png")]) == 0
    assert (tmp_path / "losses.png").stat().st_size > 1000


def test_cyclegan_with_a_pretrained_feature_discriminator(data, tmp_path):
    """ImageNet MobileNetV2 trunk (the committed style features, or a random one saved here), lower-face judging and a
    discriminator warm-up: the warm-up steps train the discriminators alone, then the usual losses appear."""
    from expr_models.models.style_transfer import StyleFeatureConfig, StyleFeatureExtractor

    features = REPO / "checkpoints" / "style_features"
    if not (features / "config.json").is_file():
        features = tmp_path / "features"
        StyleFeatureExtractor(StyleFeatureConfig(architecture="mobilenet_v2")).save_pretrained(features)
    run = tmp_path / "cyclegan"
    status = train_in_process(CycleGANStep, ["--data", data["paper"], "--output-dir", run, *TINY_GAN, *QUIET,
                                             "--max-steps", "4", "--batch-size", "2", "--sample-every", "0",
                                             "--discriminator-type", "pretrained_features",
                                             "--discriminator-features", features,
                                             "--discriminator-region", "lower_face",
                                             "--discriminator-warmup-steps", "2"])
    assert status == 0
    losses = assert_finite_losses(run)
    assert {"generator", "cycle_x", "discriminator_x"} <= set(losses)
    assert not any(key.startswith("discriminator") for key in final_weights(run))
    assert train_in_process(CycleGANStep, ["--data", data["paper"], "--output-dir", tmp_path / "bad", *TINY_GAN,
                                           *QUIET, "--max-steps", "1", "--discriminator-type", "pretrained_features",
                                           "--discriminator-features", tmp_path / "nowhere"]) != 0


def test_cyclegan_with_an_expression_guide(data, tmp_path):
    """A guide converted from a package-style pickle (random weights here) adds the StarGAN classification losses;
    a guide that does not know the domains, a broken guide and a missing one fail at the start."""
    from train.expression_guide import FERNetV2, load_expression_guide
    from train.expression_guide import main as convert

    pickle = tmp_path / "model.pkl"
    torch.save({"network": FERNetV2().state_dict(), "accuracy": 0.0}, pickle)
    guide = tmp_path / "guide"
    assert convert(["--sdist", str(pickle), "--out", str(guide)]) == 0
    loaded = load_expression_guide(guide)
    faces = torch.rand(3, 1, 32, 32) * 2 - 1
    assert loaded.logits(faces).shape == (3, 7)
    assert torch.isfinite(loaded.loss(faces, torch.tensor([0, 1, 1]), ("happy", "neutral")))
    assert not any(parameter.requires_grad for parameter in loaded.parameters())
    # A saved ExpressionClassifier works as a guide too.
    from expr_models.models.classifier import ExpressionClassifier, ExpressionClassifierConfig

    ExpressionClassifier(ExpressionClassifierConfig(resolution=32, widths=(8, 8))).save_pretrained(tmp_path / "clf")
    classifier_guide = load_expression_guide(tmp_path / "clf")
    assert classifier_guide.logits(faces).shape == (3, 7) and classifier_guide.class_names[3] == "happy"

    run = tmp_path / "cyclegan"
    status = train_in_process(CycleGANStep, ["--data", data["paper"], "--output-dir", run, *TINY_GAN, *QUIET,
                                             "--max-steps", "2", "--batch-size", "2", "--sample-every", "0",
                                             "--expression-guide", guide, "--lambda-expression", "0.5"])
    assert status == 0
    assert {"expression_xy", "expression_yx", "cycle_x"} <= set(assert_finite_losses(run))
    # The guide trains nothing and is not saved with the model.
    assert torch.equal(load_expression_guide(guide).network.conv_1[1].weight, loaded.network.conv_1[1].weight)
    assert not any("guide" in key or "network" in key for key in final_weights(run))
    # The SA-GAN takes the same guide over all its classes.
    run = tmp_path / "sagan"
    status = train_in_process(SAGANStep, ["--data", data["expressions"], "--output-dir", run, *TINY_GAN, *QUIET,
                                          "--max-steps", "2", "--batch-size", "4", "--sample-every", "0",
                                          "--expression-guide", guide])
    assert status == 0 and "g_guide" in assert_finite_losses(run)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "guide.json").write_text((guide / "guide.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    two_classes = tmp_path / "two_classes"
    two_classes.mkdir()
    spec = json.loads((guide / "guide.json").read_text())
    (two_classes / "guide.json").write_text(json.dumps({**spec, "class_names": ["sad", "angry"]}))
    from safetensors.torch import save_file

    save_file(FERNetV2(num_classes=2).state_dict(), two_classes / "model.safetensors")
    for bad in (tmp_path / "nowhere", broken, two_classes):
        assert train_in_process(CycleGANStep, ["--data", data["paper"], "--output-dir", tmp_path / "bad", *TINY_GAN,
                                               *QUIET, "--max-steps", "1", "--expression-guide", bad]) == 2

    # --refit-head: the frozen features get a new, class-balanced last layer over the study's 7 classes.
    refitted = tmp_path / "refitted"
    assert convert(["--guide", str(guide), "--refit-head", str(data["expressions"]), "--out", str(refitted)]) == 0
    spec = json.loads((refitted / "guide.json").read_text())
    assert spec["class_names"] == list(EXPRESSIONS) and set(spec["head_training_recall"]) == set(EXPRESSIONS)
    assert np.mean(list(spec["head_training_recall"].values())) > 0.5  # chance is 1/7
    refit = load_expression_guide(refitted)
    assert torch.equal(refit.network.conv_4[1].weight, loaded.network.conv_4[1].weight)
    assert not torch.equal(refit.network.linear[2].weight, loaded.network.linear[2].weight)
    for not_a_guide in (tmp_path / "clf", broken):  # a saved classifier; a guide with unreadable weights
        with pytest.raises(SystemExit, match="not a guide folder"):
            convert(["--guide", str(not_a_guide), "--refit-head", str(data["expressions"]), "--out", str(refitted)])


@pytest.mark.parametrize("objective", ["softmax_ce", "wgan_gp"])
def test_sagan_trains_saves_and_reloads(data, tmp_path, objective):
    from transformers import AutoModel

    run = tmp_path / objective
    status = train_in_process(SAGANStep, ["--data", data["expressions"], "--output-dir", run, *TINY_GAN, *QUIET,
                                          "--objective", objective, "--n-critic", "2", "--max-steps", "4",
                                          "--batch-size", "4", "--checkpointing-steps", "0", "--sample-every", "4"])
    assert status == 0
    losses = assert_finite_losses(run)
    if objective == "softmax_ce":
        assert {"d_real_class", "d_fake_generated", "g_class", "reconstruction"} <= set(losses)
    else:
        assert {"d_wasserstein", "d_gradient_penalty", "d_class", "g_adversarial", "g_class"} <= set(losses)
    model = AutoModel.from_pretrained(run / "final")
    assert type(model).__name__ == "SAGANModel" and model.discriminator is None
    assert model.config.objective == objective and list(model.config.class_names)[:2] == ["angry", "disgust"]
    assert (run / "samples" / "step_0000004.png").is_file()


def test_classifier_trains_on_several_datasets_and_reports_accuracy(data, tmp_path):
    from transformers import AutoModel

    run = tmp_path / "classifier"
    status = train_in_process(ClassifierStep, ["--data", data["expressions"], data["jaffe"], "--output-dir", run,
                                               "--resolution", "32", "--widths", "8", "16", "--epochs", "2",
                                               "--batch-size", "8", *QUIET, "--checkpointing-steps", "0"])
    assert status == 0
    assert_finite_losses(run)
    result = summary(run)
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    # 7 classes x 3 from `expressions` (contempt left out) + 3 x 2 from `jaffe`, batch 8 -> 4 steps per epoch
    assert result["steps"] == 8
    model = AutoModel.from_pretrained(run / "final")
    assert type(model).__name__ == "ExpressionClassifier" and model.config.id2label[6] == "surprise"
    card = (run / "final" / "README.md").read_text()
    assert "validation accuracy" in card and "jaffe" in card


@pytest.mark.parametrize("box_only", [False, True], ids=["masks", "box-only"])
def test_segmenter_trains_saves_and_reloads(data, tmp_path, box_only):
    from transformers import AutoModel

    run = tmp_path / "segmenter"
    argv = ["--data", data["wider"], "--output-dir", run, "--backbone", "mobilenet_v3_small", "--min-size", "64",
            "--max-size", "96", "--fpn-channels", "16", "--box-head-size", "32", "--max-steps", "3",
            "--batch-size", "2", "--warmup-steps", "1", *QUIET, "--checkpointing-steps", "0"]
    assert train_in_process(SegmenterStep, argv + (["--box-only"] if box_only else [])) == 0
    losses = assert_finite_losses(run)
    assert ("loss_mask" in losses) != box_only
    assert {"recall@0.5", "precision@0.5"} <= set(summary(run)["metrics"])
    model = AutoModel.from_pretrained(run / "final")
    assert type(model).__name__ == "FaceSegmenter" and model.config.with_masks != box_only


# ----------------------------------------------------------------------------------------------------------------
# Resuming: a stopped-and-resumed run ends exactly where an uninterrupted one does


RESUME_CASES = {
    # CycleGAN with a 3-image pool (full after two steps, so later steps swap images) and the EMA; 3 steps per epoch,
    # checkpoints every 2 steps: the resume starts mid-epoch.
    "cyclegan": (CycleGANStep, "paper", [*TINY_GAN, "--batch-size", "2", "--pool-size", "3", "--ema"]),
    # SA-GAN WGAN-GP, G every second step, random target labels and interpolates; 5 steps per epoch.
    "sagan": (SAGANStep, "expressions", [*TINY_GAN, "--batch-size", "4", "--objective", "wgan_gp", "--n-critic", "2"]),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_stop_and_resume_matches_an_uninterrupted_run(data, tmp_path, case):
    step_class, dataset, extra = RESUME_CASES[case]
    common = ["--data", data[dataset], *extra, *QUIET, "--max-steps", "8", "--checkpointing-steps", "2",
              "--sample-every", "3", "--seed", "7"]
    assert train_in_process(step_class, [*common, "--output-dir", tmp_path / "full"]) == 0
    interrupted = tmp_path / "interrupted"
    assert train_in_process(step_class, [*common, "--output-dir", interrupted, "--stop-after-steps", "5"]) == 0
    assert not (interrupted / "final").exists()
    assert [step for step, _ in checkpoints.list_checkpoints(interrupted / "checkpoints")] == [2, 4]
    # A save killed half-way leaves a temporary folder: never picked, removed on the next start.
    broken = interrupted / "checkpoints" / ".tmp-checkpoint_6"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"truncated")
    # A checkpoint that does not fit the configured model is refused at the start.
    other_model = [*common, "--output-dir", interrupted, "--resume", "--generator-channels", "4"]
    assert train_in_process(step_class, other_model) == 2
    assert train_in_process(step_class, [*common, "--output-dir", interrupted, "--resume"]) == 0
    assert not broken.exists()
    assert summary(interrupted)["steps"] == 8
    assert_same_weights(tmp_path / "full", interrupted)


def test_resume_latest_without_checkpoints_starts_fresh(data, tmp_path):
    run = tmp_path / "fresh"
    argv = ["--data", data["paper"], "--output-dir", run, *TINY_GAN, *QUIET, "--max-steps", "2", "--batch-size", "2",
            "--resume", "latest", "--checkpointing-steps", "0", "--sample-every", "0"]
    assert train_in_process(CycleGANStep, argv) == 0
    assert summary(run)["steps"] == 2


# ----------------------------------------------------------------------------------------------------------------
# Bad configurations fail at the start, with one clear line


def bad_config_cases(data: dict, tmp_path: Path) -> tuple[list, Path]:
    (tmp_path / "used" / "checkpoints" / "checkpoint_10").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "not_a_dataset").mkdir()
    (tmp_path / "not_a_dataset" / "notes.txt").write_text("hello")
    (tmp_path / "a_file").write_text("")
    paper, expressions = data["paper"], data["expressions"]
    out = tmp_path / "run"
    return [
        (CycleGANStep, ["--data", paper, "--resolution", "30"], "resolution 30 is not divisible"),
        (CycleGANStep, ["--data", paper, "--gan-loss", "wasserstein"], "Unknown gan_loss 'wasserstein'"),
        (SAGANStep, ["--data", expressions, "--objective", "hinge"], "Unknown objective 'hinge'"),
        (SAGANStep, ["--data", expressions, "--resolution", "48"], "not divisible by 2**discriminator_layers"),
        (ClassifierStep, ["--data", expressions, "--resolution", "40"], "not divisible"),
        (CycleGANStep, ["--data", tmp_path / "missing"], "no such folder"),
        (CycleGANStep, ["--data", tmp_path / "empty"], "the folder is empty"),
        (CycleGANStep, ["--data", tmp_path / "not_a_dataset"], "not a dataset saved with save_to_disk"),
        (CycleGANStep, ["--data", paper, "--domain-y", "sad"], "has no sad images"),
        (CycleGANStep, ["--data", paper, "--split", "test"], "has no split 'test'"),
        (SegmenterStep, ["--data", paper], "lacks the column(s) faces"),
        (SAGANStep, ["--data", paper, "--classes", "happy", "neutral", "sad"], "no images of sad"),
        (CycleGANStep, ["--data", paper, "--output-dir", tmp_path / "a_file" / "run"], "cannot write there"),
        (CycleGANStep, ["--data", paper, "--min-free-disk-mb", "1e12"], "MB free"),
        (CycleGANStep, ["--data", paper, "--resume", tmp_path / "nowhere"], "no such checkpoint folder"),
        (CycleGANStep, ["--data", paper, "--output-dir", tmp_path / "used"], "already holds checkpoints"),
        (CycleGANStep, ["--data", paper, "--push-to-hub", "me/model"], "HF_HUB_OFFLINE"),
        (CycleGANStep, ["--data", paper, "--batch-size", "0"], "--batch-size must be at least 1"),
        (SAGANStep, ["--data", expressions, "--objective", "wgan_gp", "--compile"], "cannot differentiate twice"),
        (ClassifierStep, ["--data", expressions, "--map-contempt-to", "smug"], "not one of --classes"),
    ], out


def test_bad_configs_fail_at_start_with_a_clear_message(data, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cases, out = bad_config_cases(data, tmp_path)
    for step_class, argv, message in cases:
        if "--output-dir" not in argv:
            argv = [*argv, "--output-dir", out]
        started = time.perf_counter()
        status = train_in_process(step_class, argv)
        error = capsys.readouterr().err.strip()
        assert status == 2, (argv, error)
        lines = [line for line in error.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (message, error)
        assert time.perf_counter() - started < 30
        assert not (out / "checkpoints").exists() and not (out / "final").exists()


def test_unknown_arguments_are_refused(data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(CycleGANStep, ["--data", str(data["paper"]), "--lamda-cycle", "5"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --lamda-cycle" in capsys.readouterr().err


def test_push_to_hub_offline_prints_one_line_and_fails(capsys):
    from expr_models.errors import HubUnavailableError

    class Offline:
        def push_to_hub(self, repo, private=True):
            raise HubUnavailableError(f"Could not push to the Hub repo {repo!r}: the Hugging Face Hub is unreachable")

    assert checkpoints.push_to_hub(Offline(), "me/model") == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "unreachable" in error


# ----------------------------------------------------------------------------------------------------------------
# Real processes: the scripts' three entry points, two ranks, kill -9


def test_scripts_run_as_modules():
    """`python -m train.<model>` (the `python train/<model>.py` form runs in the torchrun and launch tests)."""
    result = run_script([sys.executable, "-m", "train.segmenter", "--help"], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--resume" in result.stdout and "--box-only" in result.stdout


def test_accelerate_launch_runs_a_script(data, tmp_path):
    run = tmp_path / "launched"
    result = run_script(["accelerate", "launch", "--config_file", "train/configs/cpu.yaml", "train/classifier.py",
                         "--data", data["expressions"], "--output-dir", run, "--resolution", "32", "--widths", "8",
                         "16", "--max-steps", "2", "--batch-size", "8", *QUIET], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accelerate launch" in (run / "final" / "README.md").read_text()


TWO_PROCESS_CASES = {
    "cyclegan": ("train/cyclegan.py", "paper", [*TINY_GAN, "--batch-size", "1", "--pool-size", "2"]),
    "sagan-wgan-gp": ("train/sagan.py", "expressions", [*TINY_GAN, "--batch-size", "2", "--objective", "wgan_gp",
                                                        "--n-critic", "2"]),
}


@pytest.mark.parametrize("case", sorted(TWO_PROCESS_CASES))
def test_two_processes_end_with_identical_weights(data, tmp_path, case):
    """DDP over gloo on CPU. (`accelerate launch` starts several CPU processes only through MPI; torchrun does it.)"""
    script, dataset, extra = TWO_PROCESS_CASES[case]
    run = tmp_path / "ddp"
    env = {**SUBPROCESS_ENV, "ACCELERATE_USE_CPU": "1", DEBUG_WEIGHTS_ENV: "1"}
    port = 29400 + os.getpid() % 500 + len(case)
    result = run_script([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
                         script, "--data", data[dataset], "--output-dir", run, *extra, *QUIET, "--max-steps", "4",
                         "--checkpointing-steps", "2"], timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 process(es)" in result.stdout
    hashes = [(run / "debug" / f"weights_rank{rank}.sha256").read_text().strip() for rank in (0, 1)]
    assert hashes[0] == hashes[1]
    # each process's RNG state is in the checkpoint
    assert {p.name for p in (run / "checkpoints" / "checkpoint_4").glob("random_states_*")} == \
        {"random_states_0.pkl", "random_states_1.pkl"}


def test_kill_9_mid_run_then_resume_matches_an_uninterrupted_run(data, tmp_path):
    """SIGKILL a real training process (possibly in the middle of a checkpoint save), resume from what is left."""
    common = ["--data", data["paper"], *TINY_GAN, *QUIET, "--batch-size", "2", "--pool-size", "3",
              "--max-steps", "24", "--checkpointing-steps", "2", "--checkpoints-total-limit", "2",
              "--sample-every", "0", "--seed", "3"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "train/cyclegan.py", *map(str, common), "--output-dir", str(killed)],
                               cwd=REPO, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and process.poll() is None:
            if any(step >= 6 for step, _ in checkpoints.list_checkpoints(killed / "checkpoints")):
                break
            time.sleep(0.05)
        assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read()[-2000:]}"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "final").exists()
    left = checkpoints.list_checkpoints(killed / "checkpoints")
    assert left and left[-1][0] < 24

    resumed = run_script([sys.executable, "train/cyclegan.py", *common, "--output-dir", killed, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stdout
    # The uninterrupted reference runs in this process (one thread, like the subprocesses): the same numbers.
    assert train_in_process(CycleGANStep, [*common, "--output-dir", tmp_path / "full"]) == 0
    assert_same_weights(tmp_path / "full", killed)


def test_segmenter_backbone_starts_from_the_committed_imagenet_features():
    from expr_models.models.segmenter import FaceSegmenter, FaceSegmenterConfig
    from expr_models.models.style_transfer import StyleFeatureExtractor
    from train.segmenter import load_imagenet_backbone

    model = FaceSegmenter(FaceSegmenterConfig(backbone="mobilenet_v2", fpn_channels=16, box_head_size=32))
    load_imagenet_backbone(model, Path("checkpoints/style_features"))
    features = StyleFeatureExtractor.from_pretrained("checkpoints/style_features")
    for key, value in features.features.state_dict().items():
        assert torch.equal(model.detector.backbone.body.state_dict()[key], value), key
    with pytest.raises(ConfigError, match="mobilenet_v2 features"):
        load_imagenet_backbone(FaceSegmenter(FaceSegmenterConfig(backbone="mobilenet_v3_small")),
                               Path("checkpoints/style_features"))
