"""The warp-and-refine SA-GAN (SAGANConfig generator_type="warp_refine"): class-conditional priors and windows, the
full-resolution edit, save/load, and a tiny training run of train.sagan_warp through the loop. Every image is drawn
here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from expr_models.models.average_edit import AverageEditConfig, AverageEditModel
from expr_models.models.cyclegan import LOWER_FACE_WINDOW
from expr_models.models.sagan import SAGANConfig, SAGANModel

WARP = dict(generator_type="warp_refine", in_channels=3, resolution=32, flow_resolution=8, generator_channels=4,
            n_residual_blocks=1, with_discriminator=False)
CLASSES = ("angry", "happy", "neutral", "surprise")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def warp_sagan(**overrides) -> SAGANModel:
    torch.manual_seed(0)
    return SAGANModel(SAGANConfig(**{**WARP, "class_names": list(CLASSES), **overrides})).eval()


def textured_crop(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 6 * np.pi, size)
    base = 127 + 60 * np.sin(grid[None, :]) * np.cos(grid[:, None] / 2)
    return np.clip(base[..., None] + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)


def with_priors(model: SAGANModel) -> SAGANModel:
    """A different flow and residual per class, so picking the wrong one shows."""
    with torch.no_grad():
        for index in range(len(CLASSES)):
            model.generator.prior_flow[index, 1].fill_(0.01 * (index + 1))
            model.generator.prior_residual[index].fill_(0.05 * (index - 1))
    return model


def test_a_fresh_generator_is_its_class_prior():
    model = with_priors(warp_sagan())
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    labels = torch.eye(len(CLASSES))
    with torch.no_grad():
        fields = model.generator.fields(x, labels)
    assert float(fields["delta_flow"].abs().max()) == 0.0
    for index in range(len(CLASSES)):  # each sample gets its own target's prior flow
        assert torch.allclose(fields["flow"][index], model.generator.prior_flow[index])
    assert float(fields["mask"].max()) < 0.05  # a nearly closed mask: the appearance is the prior residual
    assert torch.allclose(fields["appearance"], model.generator.prior_residual, atol=0.1)
    edited = model.generate(x[:1], to="surprise")
    from expr_models.models.layers import warp_by_flow

    prior_edit = (warp_by_flow(x[:1], model.generator.prior_flow[3:4]) + model.generator.prior_residual[3:4]).clamp(-1, 1)
    assert (edited - prior_edit).abs().max() < 0.1
    with pytest.raises(ValueError, match="labels"):
        model.generator.fields(x)


def test_intensity_zero_is_the_identity_and_intensity_scales_the_edit():
    model = with_priors(warp_sagan())
    crop = textured_crop(120)
    assert np.array_equal(model.edit_aligned(crop, "angry", intensity=0), crop)
    half, full = (model.edit_aligned(crop, "angry", intensity=s).astype(int) for s in (0.5, 1.0))
    assert 0 < np.abs(half - crop).mean() < np.abs(full - crop).mean()
    assert model.edit_aligned(crop, "happy").shape == crop.shape
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.generator(x, intensity=0.0, labels=torch.eye(4)[:1]), x, atol=1e-6)


def test_the_window_keeps_the_upper_face_still_for_happy_but_not_for_surprise():
    model = warp_sagan()
    with torch.no_grad():  # a trained-looking flow head and an open mask everywhere
        model.generator.to_flow.weight.normal_(0, 0.5)
        model.generator.to_flow.bias.fill_(0.3)
        model.generator.to_mask.bias.fill_(4.0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        fields = model.generator.fields(x, torch.eye(len(CLASSES)))
    upper_flow = int(LOWER_FACE_WINDOW[0] * 8)  # rows of the 8-px flow above the window
    upper_mask = int(LOWER_FACE_WINDOW[0] * 32)
    for name in ("happy", "neutral"):
        index = CLASSES.index(name)
        assert float(fields["delta_flow"][index, :, :upper_flow].abs().max()) == 0.0
        assert float(fields["mask"][index, :, :upper_mask].max()) == 0.0
        assert float(fields["mask"][index, :, -4:].min()) > 0.5  # the lower face still edits
    for name in ("angry", "surprise"):  # brows may move
        index = CLASSES.index(name)
        assert float(fields["delta_flow"][index, :, :upper_flow].abs().max()) > 0.01
        assert float(fields["mask"][index, :, :upper_mask].min()) > 0.5


def test_save_and_load_round_trip_keeps_priors_and_edit(tmp_path):
    model = with_priors(warp_sagan())
    with torch.no_grad():
        model.generator.to_flow.weight.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "sagan_warp")
    loaded = SAGANModel.from_pretrained(tmp_path / "sagan_warp").eval()
    assert loaded.config.generator_type == "warp_refine" and loaded.discriminator is None
    assert loaded.generator.prior_flow.shape == (len(CLASSES), 2, 32, 32)
    assert torch.equal(loaded.generator.prior_flow, model.generator.prior_flow)
    photo_crop = textured_crop(64)
    for target in CLASSES:
        assert np.array_equal(loaded.edit_aligned(photo_crop, target), model.edit_aligned(photo_crop, target))


def test_bad_configs_and_targets_are_refused():
    with pytest.raises(Exception, match="in_channels=3"):
        SAGANConfig(generator_type="warp_refine", in_channels=1)
    with pytest.raises(Exception, match="generator_type"):
        SAGANConfig(generator_type="unet")
    with pytest.raises(ValueError, match="disgust"):
        warp_sagan().edit_aligned(textured_crop(32), "disgust")
    with pytest.raises(ValueError, match="warp_refine"):
        SAGANModel(SAGANConfig(resolution=32, discriminator_layers=2, with_discriminator=False)).edit_aligned(
            textured_crop(32), "happy")


# --- training through the loop --------------------------------------------------------------------------------------

def drawn_face(expression: str, seed: int, size: int = 32) -> np.ndarray:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(20, 80, 3)))
    draw = ImageDraw.Draw(image)
    draw.ellipse([4, 2, size - 4, size - 2], fill=tuple(int(v) for v in rng.integers(150, 220, 3)))
    curve = {"happy": 3, "angry": -2, "surprise": 0, "neutral": 0}[expression]
    draw.line([10, 24, 16, 24 + curve, 22, 24], fill=(120, 30, 30), width=4 if expression == "surprise" else 2)
    brow = 7 if expression in ("angry", "surprise") else 9
    draw.line([9, brow, 14, 9], fill=(40, 30, 30), width=1)
    return np.asarray(image)


def save_pairs(path: Path) -> Path:
    import datasets

    def rows(seeds):
        out = {"source": [], "target_in_source_frame": [], "source_expression": [], "target_expression": [],
               "dataset": [], "subject": []}
        for seed in seeds:
            for source, target in (("neutral", "angry"), ("neutral", "happy"), ("happy", "neutral"),
                                   ("neutral", "surprise")):
                values = (drawn_face(source, seed), drawn_face(target, seed), source, target, "drawn", str(seed))
                for key, value in zip(out, values):
                    out[key].append(value)
        return out

    from train.tools.prepare_aligned import EXPRESSION_PAIR_COLUMNS

    features = datasets.Features({"source": datasets.Image(), "target_in_source_frame": datasets.Image(),
                                  **{name: datasets.Value("string") for name in EXPRESSION_PAIR_COLUMNS[2:]}})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(range(3)), features=features),
                          "validation": datasets.Dataset.from_dict(rows(range(10, 12)), features=features),
                          }).save_to_disk(str(path))
    return path


def save_average_edit(path: Path) -> Path:
    pairs = ("neutral->angry", "neutral->happy", "neutral->surprise", "happy->neutral")
    model = AverageEditModel(AverageEditConfig(resolution=16, channels=3, pairs=pairs))
    with torch.no_grad():
        for index in range(len(pairs)):
            model.flows[index, 1].fill_(0.01 * (index + 1))
    model.save_pretrained(path)
    return path


def test_warp_sagan_trains_through_the_loop_saves_and_reloads(tmp_path):
    import json

    from test_training import train_in_process
    from train.sagan_warp import WarpSAGANStep

    data, average, run = save_pairs(tmp_path / "pairs"), save_average_edit(tmp_path / "avg"), tmp_path / "run"
    config_flags = {key: value for key, value in WARP.items() if key != "with_discriminator"}
    argv = ["--data", data, "--average-edit", average, "--output-dir", run, "--max-steps", "3", "--batch-size", "4",
            "--classes", *CLASSES, "--datasets", "drawn", "--report-to", "none", "--log-every", "1",
            "--sample-every", "3", "--checkpointing-steps", "0", "--min-free-disk-mb", "1", "--cpu", "--ema",
            *[item for key, value in config_flags.items() for item in (f"--{key.replace('_', '-')}", str(value))]]
    assert train_in_process(WarpSAGANStep, argv) == 0
    summary = json.loads((run / "training_summary.json").read_text())
    assert {"paired", "flow_tv", "mask"} <= set(summary["losses"])
    assert all(np.isfinite(value) for value in summary["losses"].values())
    assert {f"proxy_ratio_{name}" for name in CLASSES} <= set(summary["metrics"])
    model = SAGANModel.from_pretrained(run / "final")
    assert model.config.generator_type == "warp_refine" and model.discriminator is None
    # each class's prior is the average edit's pair for it (neutral: happy->neutral), upsampled from 16 to 32 px
    for index, value in enumerate((0.01, 0.02, 0.04, 0.03)):  # angry, happy, neutral, surprise
        assert torch.allclose(model.generator.prior_flow[index, 1], torch.full((32, 32), value), atol=1e-6)
    assert (run / "samples" / "step_0000003.png").is_file()


def test_the_editor_edits_with_a_warp_sagan_and_intensity_scales_the_edit():
    """Through ExpressionEditor: the face's region changes, pixels far outside the face stay byte-identical, and a
    half intensity changes the photo less than a full one (the slider is continuous)."""
    from skimage import data

    from expr_models.pipeline import ExpressionEditor

    model = with_priors(warp_sagan(resolution=64, flow_resolution=16))
    photo = data.astronaut()
    editor = ExpressionEditor(models_dir=None, models={"sagan": model}, detector="haar", precision="fp32")
    full = editor.edit(photo, method="sagan", target="surprise")
    half = editor.edit(photo, method="sagan", target="surprise", intensity=0.5)
    (face,) = full.faces
    x0, y0, x1, y1 = (int(v) for v in (face.box.x0, face.box.y0, face.box.x1, face.box.y1))
    change_full = np.abs(np.asarray(full.image, int) - photo.astype(int))
    change_half = np.abs(np.asarray(half.image, int) - photo.astype(int))
    assert change_full[y0:y1, x0:x1].mean() > 1.0
    assert 0 < change_half[y0:y1, x0:x1].mean() < change_full[y0:y1, x0:x1].mean()
    margin = y1 - y0
    outside = np.ones(photo.shape[:2], bool)
    outside[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = False
    assert change_full.max(axis=2)[outside].max() == 0
