"""The mesh GANs: the committed CycleGAN and SA-GAN move a face's canonical mesh (``generator_type="mesh"``), start as
the mesh-motion baseline, and train through the one loop on a mesh DatasetDict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from huggingface_hub.errors import StrictDataclassClassValidationError

from expr_models.faces.mesh import inner_lip_gap
from expr_models.faces.mesh_topology import LEFT_BROW, MOUTH_CORNERS, RIGHT_BROW
from expr_models.labels import EXPRESSIONS
from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel
from expr_models.models.mesh_gan import expression_amount, undo_by_amount
from expr_models.models.mesh_motion import MeshMotionModel
from expr_models.models.sagan import SAGANConfig, SAGANModel
from tests.test_training import train_in_process
from train.tools.fit_undo_amount import fit_reader
from train.tools.prepare_meshes import MESH_FEATURES, PAIR_FEATURES

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"


@pytest.fixture(scope="module")
def mean_mesh() -> torch.Tensor:
    return MeshMotionModel.from_pretrained(CHECKPOINTS / "mesh_motion").mean_mesh.detach().float()


def mouth_width(mesh: torch.Tensor) -> float:
    left, right = mesh[list(MOUTH_CORNERS)]
    return float(torch.linalg.norm(left[:2] - right[:2]))


def test_the_committed_cyclegan_widens_a_mouth_to_happy_and_narrows_it_back(mean_mesh):
    model = CycleGANModel.from_pretrained(CHECKPOINTS / "cyclegan").float().eval()
    assert model.config.generator_type == "mesh" and model.discriminator_x is None
    happy = model.move_mesh(mean_mesh[None], "happy")[0]
    back = model.move_mesh(happy[None], "neutral")[0]
    assert mouth_width(happy) > mouth_width(mean_mesh) + 0.03 and mouth_width(back) < mouth_width(happy) - 0.03
    corners = list(MOUTH_CORNERS)
    assert happy[corners, 1].mean() < mean_mesh[corners, 1].mean()  # the corners rise (y grows downwards)
    assert torch.equal(model.move_mesh(mean_mesh[None], "happy", intensity=0.0)[0], mean_mesh)


def test_the_committed_sagan_opens_the_mouth_and_lifts_the_brows_to_surprise(mean_mesh):
    model = SAGANModel.from_pretrained(CHECKPOINTS / "sagan").float().eval()
    assert model.config.generator_type == "mesh" and tuple(model.config.class_names) == EXPRESSIONS
    surprise = model.move_mesh(mean_mesh[None], "surprise", "neutral")[0]
    assert inner_lip_gap(surprise.numpy()) > inner_lip_gap(mean_mesh.numpy()) + 0.08
    brows = list(LEFT_BROW) + list(RIGHT_BROW)
    assert surprise[brows, 1].mean() < mean_mesh[brows, 1].mean() - 0.01


def test_an_untrained_mesh_generator_is_the_baseline(mean_mesh):
    model = CycleGANModel(CycleGANConfig(generator_type="mesh", in_channels=3, with_discriminators=False)).eval()
    prior = torch.randn(468, 3) * 0.02
    with torch.no_grad():
        model.generator_xy.mean_shape.copy_(mean_mesh)
        model.generator_xy.priors[0].copy_(prior)
    moved = model.move_mesh(mean_mesh[None], "happy", intensity=0.5)[0]
    assert torch.allclose(moved, mean_mesh + 0.5 * prior, atol=1e-6)


def tiny_mesh_dataset(path: Path, mean: np.ndarray) -> Path:
    """Real-shaped meshes in photo pixels (the mean, scaled and jittered), with pairs and every class."""
    rng = np.random.default_rng(0)

    def mesh() -> np.ndarray:
        return (mean * 120 + [200, 240, 0] + rng.normal(0, 0.5, mean.shape)).astype(np.float32)

    rows = {split: [{"id": f"{split}{i}", "dataset": "fei", "expression": i % 7, "points": mesh()} for i in range(14)]
            for split in ("train", "validation")}
    pairs = {split: [{"dataset": "fei", "subject": str(i), "source_id": "a", "target_id": "b",
                      "source_expression": EXPRESSIONS.index(s), "target_expression": EXPRESSIONS.index(t),
                      "source_points": mesh(), "target_points": mesh()}
                     for i, (s, t) in enumerate([("neutral", "happy"), ("happy", "neutral")] * 3 + [("neutral", "sad")])]
             for split in ("train", "validation")}
    dataset = DatasetDict({**{s: Dataset.from_list(r, features=MESH_FEATURES) for s, r in rows.items()},
                           **{f"pairs_{s}": Dataset.from_list(r, features=PAIR_FEATURES) for s, r in pairs.items()}})
    dataset.save_to_disk(str(path))
    return path


@pytest.mark.parametrize("script", ["cyclegan_mesh", "sagan_mesh"])
def test_a_mesh_gan_trains_through_the_loop(tmp_path, mean_mesh, script, one_torch_thread):
    import importlib

    step = {"cyclegan_mesh": "MeshCycleGANStep", "sagan_mesh": "MeshSAGANStep"}[script]
    step_class = getattr(importlib.import_module(f"train.{script}"), step)
    data = tiny_mesh_dataset(tmp_path / "meshes", mean_mesh.numpy())
    code = train_in_process(step_class, ["--data", data, "--output-dir", tmp_path / "run", "--cpu", "--max-steps", 3,
                                         "--generator-type", "mesh", "--in-channels", 3, "--batch-size", 2,
                                         "--report-to", "none", "--sample-every", 0, "--checkpointing-steps", 0,
                                         "--mesh-hidden", 16])
    assert code == 0
    final = tmp_path / "run" / "final"
    model = (CycleGANModel if script == "cyclegan_mesh" else SAGANModel).from_pretrained(final)
    assert model.config.generator_type == "mesh" and (final / "README.md").is_file()


def test_a_fitted_amplitude_scales_its_own_target_s_motion_only(mean_mesh):
    model = CycleGANModel.from_pretrained(CHECKPOINTS / "cyclegan").float().eval()
    model.config.mesh_amplitude = None
    plain_neutral = model.move_mesh(mean_mesh[None], "neutral", intensity=1.5)[0]
    plain_happy = model.move_mesh(mean_mesh[None], "happy")[0]
    model.config.mesh_amplitude = {"neutral": 1.5}
    assert torch.allclose(model.move_mesh(mean_mesh[None], "neutral")[0], plain_neutral, atol=1e-6)
    assert torch.equal(model.move_mesh(mean_mesh[None], "happy")[0], plain_happy)
    assert torch.equal(model.move_mesh(mean_mesh[None], "neutral", intensity=0.0)[0], mean_mesh)
    sagan = SAGANModel.from_pretrained(CHECKPOINTS / "sagan").float().eval()
    sagan.config.mesh_amplitude = None
    twice = sagan.move_mesh(mean_mesh[None], "sad", "neutral", intensity=2.0)[0]
    sagan.config.mesh_amplitude = {"sad": 2.0}
    assert torch.allclose(sagan.move_mesh(mean_mesh[None], "sad", "neutral")[0], twice, atol=1e-6)


def test_a_horizontal_vertical_amplitude_scales_each_coordinate_apart(mean_mesh):
    model = CycleGANModel.from_pretrained(CHECKPOINTS / "cyclegan").float().eval()
    model.config.mesh_amplitude = None
    plain = model.move_mesh(mean_mesh[None], "neutral")[0] - mean_mesh
    model.config.mesh_amplitude = {"neutral": [0.5, 1.5]}
    scaled = model.move_mesh(mean_mesh[None], "neutral", intensity=2.0)[0] - mean_mesh
    assert torch.allclose(scaled[:, 0], plain[:, 0], atol=1e-6)  # x: 0.5 x 2
    assert torch.allclose(scaled[:, 1:], 3.0 * plain[:, 1:], atol=1e-6)  # y and depth: 1.5 x 2
    sagan = SAGANModel.from_pretrained(CHECKPOINTS / "sagan").float().eval()
    sagan.config.mesh_amplitude = None
    plain = sagan.move_mesh(mean_mesh[None], "happy", "neutral")[0] - mean_mesh
    sagan.config.mesh_amplitude = {"happy": [2.0, 1.0]}
    scaled = sagan.move_mesh(mean_mesh[None], "happy", "neutral")[0] - mean_mesh
    assert torch.allclose(scaled[:, 0], 2.0 * plain[:, 0], atol=1e-6) and torch.allclose(scaled[:, 1:], plain[:, 1:])


def test_a_target_s_amplitude_scales_what_it_adds_and_the_neutral_one_the_undoing(mean_mesh):
    """From one expression to another the SA-GAN undoes the source and adds the target; the target's amplitude scales
    the part it adds (and the residual), the neutral amplitude the undoing: sad's 2 doubled the undoing of a broad
    smile too and pinched the mouth into a knot. To neutral the whole motion is undoing."""
    sagan = SAGANModel.from_pretrained(CHECKPOINTS / "sagan").float().eval()
    generator, names = sagan.generator, list(sagan.config.class_names)
    conditions = sagan.mesh_conditions("sad", "happy", 1)
    sagan.config.mesh_amplitude = sagan.config.mesh_undo_sideways_max_gain = None
    _, gain = generator.motion(mean_mesh[None], conditions)
    one = sagan.move_mesh(mean_mesh[None], "sad", "happy")[0]
    sagan.config.mesh_amplitude = {"sad": 2.0}
    two = sagan.move_mesh(mean_mesh[None], "sad", "happy")[0]
    undone = -gain[0] * generator.priors[names.index("happy")]
    # twice the whole motion less one undoing: the undoing is there once
    assert torch.allclose(two - mean_mesh, 2.0 * (one - mean_mesh) - undone, atol=1e-5)
    sagan.config.mesh_amplitude = {"sad": 2.0, "neutral": 1.5}  # the undoing at the amplitude fitted for undoing
    assert torch.allclose(sagan.move_mesh(mean_mesh[None], "sad", "happy")[0], two + 0.5 * undone, atol=1e-5)
    sagan.config.mesh_amplitude = {"neutral": 1.5}
    plain_neutral = sagan.move_mesh(mean_mesh[None], "neutral", "happy")[0] - mean_mesh
    sagan.config.mesh_amplitude = None
    assert torch.allclose(plain_neutral, 1.5 * (sagan.move_mesh(mean_mesh[None], "neutral", "happy")[0] - mean_mesh),
                          atol=1e-6)


def test_the_sagan_undoes_a_smile_sideways_no_further_than_its_prior(mean_mesh):
    """The gain head undoes FER2013's and CK+'s smiles about 1.4 times the median smile, and sideways that narrowed
    their mouths 11% below real neutral ones (pinched into a knot on the way to sad): the undoing's sideways gain is
    capped at 1; its vertical motion and the target's own part keep the whole gain."""
    sagan = SAGANModel.from_pretrained(CHECKPOINTS / "sagan").float().eval()
    assert sagan.config.mesh_undo_sideways_max_gain == 1.0
    generator, names = sagan.generator, list(sagan.config.class_names)
    happy = generator.priors[names.index("happy")].detach()
    smile = (mean_mesh + 1.5 * happy)[None]
    sagan.config.mesh_amplitude = None
    for target in ("neutral", "sad"):
        with torch.no_grad():
            gain = float(generator.motion(smile, sagan.mesh_conditions(target, "happy", 1))[1])
        assert gain > 1.2
        capped = sagan.move_mesh(smile, target, "happy")[0]
        sagan.config.mesh_undo_sideways_max_gain = None
        free = sagan.move_mesh(smile, target, "happy")[0]
        sagan.config.mesh_undo_sideways_max_gain = 1.0
        assert torch.allclose(capped[:, 0] - free[:, 0], (gain - 1.0) * happy[:, 0], atol=1e-5)
        assert torch.allclose(capped[:, 1:], free[:, 1:], atol=1e-6)
        assert mouth_width(capped) > mouth_width(free) + 0.03
    neutral_to_sad = sagan.move_mesh(mean_mesh[None], "sad", "neutral")  # nothing undone: the cap changes nothing
    sagan.config.mesh_undo_sideways_max_gain = None
    assert torch.equal(neutral_to_sad, sagan.move_mesh(mean_mesh[None], "sad", "neutral"))
    with pytest.raises(StrictDataclassClassValidationError, match="mesh_undo_sideways_max_gain"):
        SAGANConfig(generator_type="mesh", in_channels=3, mesh_undo_sideways_max_gain=0.0)


def test_an_amplitude_must_be_positive():
    for bad in (0.0, [1.0], [1.0, 0.0], [1.0, 1.0, 1.0], True, "1.5"):
        with pytest.raises(StrictDataclassClassValidationError, match="mesh_amplitude"):
            CycleGANConfig(generator_type="mesh", in_channels=3, mesh_amplitude={"neutral": bad})
    assert CycleGANConfig(generator_type="mesh", in_channels=3, mesh_amplitude={"neutral": 1.75}).mesh_amplitude
    assert SAGANConfig(generator_type="mesh", in_channels=3, mesh_amplitude={"happy": [0.8, 1.2]}).mesh_amplitude


def test_the_amplitude_calibration_keeps_1_unless_every_dataset_gains_without_overshooting():
    from train.tools.calibrate_mesh_amplitude import best_scale

    def rows(fei, london, gains=(0.6, 0.8, 0.95, 1.2)):
        return [{"scale": s, "fei": {"ratio": f, "gain": g}, "london": {"ratio": l, "gain": g}, "mean": (f + l) / 2}
                for s, f, l, g in zip((0.75, 1.0, 1.5, 2.0), fei, london, gains)]

    # One set's people smile broadly, the other's slightly: the lowest mean (0.75) costs the first; keep 1.
    assert best_scale(rows((0.86, 0.83, 0.80, 0.87), (1.07, 1.22, 1.42, 1.71)), ["fei", "london"]) == 1.0
    # Both closer to their real photos further on: the best of those that do not pass the real expression.
    assert best_scale(rows((0.86, 0.81, 0.72, 0.70), (0.90, 0.89, 0.86, 0.85)), ["fei", "london"]) == 1.5
    assert best_scale(rows((0.86, 0.81, 0.72, 0.70), (0.90, 0.89, 0.86, 0.85), (0.6, 0.8, 1.1, 1.2)),
                      ["fei", "london"]) == 1.0


def test_the_calibration_tries_horizontal_vertical_pairs_and_names_them():
    from train.tools.calibrate_mesh_amplitude import best_scale, candidate_scales, format_scale

    assert candidate_scales([1.25, 0.75], None) == [0.75, 1.0, 1.25]
    assert candidate_scales([1.0, 1.5], [0.8, 1.0]) == [[0.8, 1.0], [0.8, 1.5], 1.0, [1.0, 1.5]]
    rows = [{"scale": scale, "mean": mean, "fei": {"ratio": mean, "gain": 0.9}}
            for scale, mean in ((1.0, 0.80), ([1.0, 1.5], 0.75), ([0.8, 1.5], 0.75))]
    assert best_scale(rows, ["fei"]) == [1.0, 1.5]  # a tie goes to the pair nearest 1
    assert format_scale([1.0, 1.5]) == "1/1.5" and format_scale(1.25) == "1.25"


def test_the_fitted_amplitude_is_written_to_the_config_and_the_card_once(tmp_path):
    import json
    import shutil

    from train.tools.calibrate_mesh_amplitude import write_amplitude

    for name in ("config.json", "model_card.json"):
        shutil.copy(CHECKPOINTS / "cyclegan" / name, tmp_path / name)
    rows = [{"scale": s, "mean": m, "fei": {"ratio": m, "gain": g}, "london": {"ratio": m, "gain": g}}
            for s, m, g in ((1.0, 0.85, 0.8), (1.25, 0.82, 0.95))]
    for _ in range(2):  # a second fit replaces the first one's note
        write_amplitude(tmp_path, {"neutral": 1.25}, {"neutral": rows}, ["fei", "london"], "validation")
    assert CycleGANConfig.from_pretrained(tmp_path).mesh_amplitude == {"neutral": 1.25}
    notes = json.loads((tmp_path / "model_card.json").read_text())["notes"]
    assert notes.count("Amplitude per target") == 1 and "neutral 1.25" in notes and "1.25: 0.820 / 0.95" in notes


def test_undoing_by_amount_scales_the_vertical_motion_by_the_clamped_amount_only():
    source = torch.zeros(3, 4, 3)
    moved = source + torch.tensor([0.1, 0.2, 0.3])
    undone = undo_by_amount(source, moved, torch.tensor([0.2, 1.3, 5.0]), 1.0, 1.6)
    assert torch.allclose(undone[..., 0], moved[..., 0])  # the mouth's width: as the generator brings it back
    assert torch.allclose(undone[0, :, 1:], moved[0, :, 1:])  # a mild smile: as before (low = 1)
    assert torch.allclose(undone[1, :, 1:], 1.3 * moved[1, :, 1:])
    assert torch.allclose(undone[2, :, 1:], 1.6 * moved[2, :, 1:])  # clamped to high
    for bad in ([1.0], [0.0, 1.0], [1.6, 1.0], "1"):
        with pytest.raises(StrictDataclassClassValidationError, match="mesh_undo_range"):
            CycleGANConfig(generator_type="mesh", in_channels=3, mesh_undo_range=bad)


def test_the_amount_reader_reads_a_synthetic_expression_and_not_the_person_s_shape():
    """Neutral faces vary in shape along many directions, a few of them large; each smiling face adds a known amount
    of the smile's motion. The fitted reader gives the neutral faces about 0 and each smile its own amount, relative
    to the median smile's."""
    generator = torch.Generator().manual_seed(0)
    points, dims, faces = 30, 2, 400
    mean_shape = torch.randn(points, dims, generator=generator)
    shapes = torch.randn(2 * faces, 5, generator=generator) @ torch.randn(5, points * dims, generator=generator) * 0.05
    shapes = shapes + 0.005 * torch.randn(2 * faces, points * dims, generator=generator)
    smile = torch.randn(points, dims, generator=generator) * 0.05
    amounts = 0.5 + torch.rand(faces, generator=generator)
    neutral = mean_shape + shapes[:faces].view(-1, points, dims)
    smiling = mean_shape + shapes[faces:].view(-1, points, dims) + amounts[:, None, None] * smile
    weights, bias, _ = fit_reader(neutral, smiling, smile, mean_shape, shrinkage=0.5)
    read = expression_amount(smiling - mean_shape, weights, bias)
    assert torch.corrcoef(torch.stack([read, amounts]))[0, 1] > 0.95
    assert read.median() == pytest.approx(1.0, abs=1e-4)
    assert expression_amount(neutral - mean_shape, weights, bias).abs().median() < 0.1


def test_the_committed_cyclegan_undoes_a_broad_smile_further_and_keeps_its_reader(tmp_path, mean_mesh):
    model = CycleGANModel.from_pretrained(CHECKPOINTS / "cyclegan").float().eval()
    assert model.config.mesh_undo_range == [1.0, 1.6]
    smile = model.generator_xy.priors[0]
    broad = mean_mesh + 2.0 * smile  # twice its median training smile
    reading = expression_amount(broad[None] - model.generator_yx.mean_shape, model.undo_amount_weights,
                                model.undo_amount_bias)
    assert reading > 1.6
    undone = model.move_mesh(broad[None], "neutral")[0] - broad
    model.config.mesh_undo_range = None
    plain = model.move_mesh(broad[None], "neutral")[0] - broad
    assert torch.allclose(undone[:, 0], plain[:, 0]) and torch.allclose(undone[:, 1:], 1.6 * plain[:, 1:], atol=1e-6)
    model.config.mesh_undo_range = [1.0, 1.6]
    model.save_pretrained(tmp_path / "saved")
    loaded = CycleGANModel.from_pretrained(tmp_path / "saved").float()
    assert torch.equal(loaded.undo_amount_weights, model.undo_amount_weights)
