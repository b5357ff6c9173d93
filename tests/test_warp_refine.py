"""The warp-and-refine CycleGAN generator (expr_models.models.warp_refine), its flow helpers
(expr_models.models.layers), its full-resolution edit (CycleGANModel.edit_aligned) and a tiny training run of
train.cyclegan_warp through the loop. Every image is drawn here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from expr_models.models.average_edit import AverageEditConfig, AverageEditModel
from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel
from expr_models.models.layers import flow_smoothness, upsample_flow, warp_by_flow
from expr_models.models.warp_refine import apply_fields, to_model_resolution

REPO = Path(__file__).resolve().parents[1]
WARP = dict(generator_type="warp_refine", in_channels=3, resolution=32, flow_resolution=8, generator_channels=4,
            n_residual_blocks=1, discriminator_channels=8, discriminator_layers=2, mask_region="lower_face")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def warp_model(**overrides) -> CycleGANModel:
    torch.manual_seed(0)
    return CycleGANModel(CycleGANConfig(**{**WARP, **overrides})).eval()


def textured_crop(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 6 * np.pi, size)
    base = 127 + 60 * np.sin(grid[None, :]) * np.cos(grid[:, None] / 2)
    return np.clip(base[..., None] + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)


# --- flow helpers ---------------------------------------------------------------------------------------------------

def test_warp_by_flow_shifts_by_whole_pixels_and_zero_flow_is_identity():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(warp_by_flow(images, torch.zeros(2, 2, 4, 4)), images)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 2 / 16  # sample two pixels to the right
    shifted = warp_by_flow(images[:1], flow)
    assert torch.allclose(shifted[..., :-2], images[:1, ..., 2:], atol=1e-5)
    assert torch.allclose(shifted[..., -1], images[:1, ..., -1], atol=1e-5)  # border replicated


def test_upsampled_flow_keeps_fractions_and_smoothness_is_zero_for_a_constant_field():
    flow = torch.full((1, 2, 4, 4), 0.05)
    large = upsample_flow(flow, 32)
    assert large.shape == (1, 2, 32, 32) and torch.allclose(large, torch.full_like(large, 0.05))
    assert float(flow_smoothness(large)) < 1e-7
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 2, 8, 8)
    assert float(flow_smoothness(ramp)) > 0


def test_apply_fields_moves_the_full_resolution_crop_by_the_same_fraction_at_any_size():
    for size in (64, 192):
        crop = textured_crop(size)
        flow = np.zeros((8, 8, 2), np.float32)
        flow[..., 0] = 4 / 64  # a sixteenth of the side, whatever the crop's size
        edited = apply_fields(crop, flow, np.zeros((32, 32, 3), np.float32))
        step = size // 16
        assert np.abs(edited[:, :-step].astype(int) - crop[:, step:]).max() <= 1
        assert np.array_equal(apply_fields(crop, flow, np.zeros((32, 32, 3)), intensity=0), crop)


def test_to_model_resolution_makes_three_channels():
    assert to_model_resolution(textured_crop(100)[..., 0], 32).shape == (32, 32, 3)


# --- the generator --------------------------------------------------------------------------------------------------

def test_generator_shapes_and_a_fresh_generator_is_its_prior():
    model = warp_model()
    generator = model.generator_xy
    with torch.no_grad():
        generator.prior_flow.fill_(0.02)
        fields = generator.fields(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert fields["flow"].shape == (3, 2, 32, 32) and fields["delta_flow"].shape == (3, 2, 8, 8)
    assert fields["appearance"].shape == (3, 3, 32, 32) and fields["mask"].shape == (3, 1, 32, 32)
    assert float(fields["delta_flow"].abs().max()) == 0.0  # the flow head starts at zero: training starts at the prior
    assert torch.allclose(fields["flow"], torch.full_like(fields["flow"], 0.02))
    assert float(fields["mask"].max()) < 0.05  # a nearly closed mask
    assert float(fields["mask"][..., :10, :].max()) == 0.0  # lower face only: the window keeps the eyes still
    image, mask = generator(torch.rand(3, 3, 32, 32) * 2 - 1, return_mask=True)
    assert image.shape == (3, 3, 32, 32) and mask.shape == (3, 1, 32, 32)


@pytest.mark.parametrize("prior_gains", [1, 2])
def test_the_prior_gain_starts_at_one_and_scales_the_prior(prior_gains):
    """One gain scales the prior flow and residual together; with two, the residual keeps its own."""
    model = warp_model(max_prior_gain=3.0, prior_gains=prior_gains)
    generator = model.generator_xy
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        generator.prior_flow.fill_(0.02)
        generator.prior_residual.fill_(0.1)
        fresh = generator.fields(x)
        # a fresh generator is still the baseline
        assert torch.allclose(fresh["gain"], torch.ones(2, prior_gains, 1, 1))
        assert torch.allclose(fresh["flow"], torch.full_like(fresh["flow"], 0.02))
        generator.to_gain.bias[0] = 0.0  # the (flow's) gain: 3 * sigmoid(0) = 1.5
        scaled = generator.fields(x)
    assert torch.allclose(scaled["flow"], torch.full_like(scaled["flow"], 0.03))
    residual_step = 0.05 if prior_gains == 1 else 0.0  # 0.1 * (1.5 - 1), or the residual's own gain, still 1
    assert torch.allclose(scaled["appearance"] - fresh["appearance"],
                          torch.full_like(fresh["appearance"], residual_step), atol=1e-6)


def test_bad_gain_configs_are_refused():
    with pytest.raises(Exception, match="max_prior_gain"):  # huggingface_hub wraps the config's ValueError
        CycleGANConfig(**{**WARP, "max_prior_gain": 0.5})
    with pytest.raises(Exception, match="prior_gains"):
        CycleGANConfig(**{**WARP, "max_prior_gain": 3.0, "prior_gains": 3})


def test_intensity_zero_is_the_identity():
    model = warp_model()
    with torch.no_grad():
        model.generator_xy.prior_flow.fill_(0.03)
        model.generator_xy.prior_residual.fill_(0.2)
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        assert torch.allclose(model.generator_xy(x, intensity=0.0), x, atol=1e-6)
        assert not torch.allclose(model.generator_xy(x), x, atol=1e-2)
    crop = textured_crop(150)
    assert np.array_equal(model.edit_aligned(crop, "happy", intensity=0), crop)
    half, full = (model.edit_aligned(crop, "happy", intensity=s).astype(int) for s in (0.5, 1.0))
    assert 0 < np.abs(half - crop).mean() < np.abs(full - crop).mean()


def test_edit_aligned_keeps_the_crop_size_and_grey_stays_grey():
    model = warp_model()
    with torch.no_grad():
        model.generator_yx.prior_flow.fill_(0.01)
    crop = textured_crop(97)
    assert model.edit_aligned(crop, "neutral").shape == crop.shape
    assert model.edit_aligned(crop[..., 0], "neutral").shape == crop.shape[:2]
    with torch.no_grad():
        model.generator_yx.prior_residual[:, 0].fill_(0.3)  # a colour change
    grey3 = np.repeat(crop[..., :1], 3, axis=2)
    edited = model.edit_aligned(grey3, "neutral")
    assert (edited == edited[..., :1]).all()  # three equal channels in, three equal channels out
    with pytest.raises(ValueError, match="surprise"):
        model.edit_aligned(crop, "surprise")
    with pytest.raises(ValueError, match="warp_refine"):
        CycleGANModel(CycleGANConfig(resolution=32, n_downsampling=2)).edit_aligned(crop, "happy")


def test_bad_warp_configs_are_refused():
    with pytest.raises(Exception, match="in_channels=3"):
        CycleGANConfig(generator_type="warp_refine", in_channels=1)
    with pytest.raises(Exception, match="flow_resolution"):
        CycleGANConfig(generator_type="warp_refine", in_channels=3, resolution=32, flow_resolution=12)
    with pytest.raises(Exception, match="generator_type"):
        CycleGANConfig(generator_type="unet")


def test_save_and_load_round_trip_keeps_the_priors_and_the_edit(tmp_path):
    model = warp_model()
    with torch.no_grad():
        model.generator_xy.prior_flow.normal_(0, 0.01)
        model.generator_xy.to_flow.weight.normal_(0, 0.1)  # a trained-looking flow head
    model.without_discriminators().save_pretrained(tmp_path / "warp")
    loaded = CycleGANModel.from_pretrained(tmp_path / "warp").eval()
    assert loaded.config.generator_type == "warp_refine" and loaded.discriminator_x is None
    assert torch.equal(loaded.generator_xy.prior_flow, model.generator_xy.prior_flow)
    crop = textured_crop(64)
    assert np.array_equal(loaded.edit_aligned(crop, "happy"), model.edit_aligned(crop, "happy"))


def test_a_resnet_cyclegan_still_builds_and_generates():
    model = CycleGANModel(CycleGANConfig(resolution=32, generator_channels=8, n_residual_blocks=1,
                                         with_discriminators=False)).eval()
    assert model.config.generator_type == "resnet"
    out = model.generate(torch.zeros(1, 1, 32, 32), to="happy")
    assert out.shape == (1, 1, 32, 32)


# --- training through the loop --------------------------------------------------------------------------------------

def drawn_face(smile: bool, seed: int, size: int = 32) -> np.ndarray:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(20, 80, 3)))
    draw = ImageDraw.Draw(image)
    draw.ellipse([4, 2, size - 4, size - 2], fill=tuple(int(v) for v in rng.integers(150, 220, 3)))
    curve = 3 if smile else 0
    draw.line([10, 24, 16, 24 + curve, 22, 24], fill=(120, 30, 30), width=2)
    return np.asarray(image)


def save_aligned_dataset(path: Path) -> Path:
    import datasets

    from train.tools.prepare_aligned import IMAGE_COLUMNS

    def pairs(seeds):
        neutral, happy = [drawn_face(False, s) for s in seeds], [drawn_face(True, s) for s in seeds]
        return {"neutral": neutral, "happy_in_neutral_frame": happy, "happy": happy, "neutral_in_happy_frame": neutral,
                "dataset": ["drawn"] * len(seeds), "subject": [str(s) for s in seeds]}

    image = datasets.Image()
    pair_features = datasets.Features({**{name: image for name in IMAGE_COLUMNS}, "dataset": datasets.Value("string"),
                                       "subject": datasets.Value("string")})
    genki = {"image": [drawn_face(s % 2 == 1, 100 + s) for s in range(6)], "smile": [s % 2 for s in range(6)]}
    genki_features = datasets.Features({"image": image, "smile": datasets.ClassLabel(names=["no_smile", "smile"])})
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(pairs(range(4)), features=pair_features),
        "validation": datasets.Dataset.from_dict(pairs(range(10, 12)), features=pair_features),
        "genki": datasets.Dataset.from_dict(genki, features=genki_features),
    }).save_to_disk(str(path))
    return path


def save_average_edit(path: Path) -> Path:
    model = AverageEditModel(AverageEditConfig(resolution=16, channels=3))
    with torch.no_grad():
        model.flows[0, 1].fill_(-0.02)  # neutral -> happy: the mouth rises a little
        model.flows[1, 1].fill_(0.02)
    model.save_pretrained(path)
    return path


def test_warp_cyclegan_trains_through_the_loop_saves_and_reloads(tmp_path):
    from test_training import train_in_process
    from train.cyclegan_warp import WarpCycleGANStep

    data, average, run = save_aligned_dataset(tmp_path / "aligned"), save_average_edit(tmp_path / "avg"), tmp_path / "run"
    argv = ["--data", data, "--average-edit", average, "--output-dir", run, "--max-steps", "3", "--batch-size", "2",
            "--lambda-cycle", "1", "--report-to", "none", "--log-every", "1", "--sample-every", "3",
            "--checkpointing-steps", "0", "--min-free-disk-mb", "1", "--cpu",
            *[item for key, value in WARP.items() for item in (f"--{key.replace('_', '-')}", str(value))]]
    assert train_in_process(WarpCycleGANStep, argv) == 0
    import json

    summary = json.loads((run / "training_summary.json").read_text())
    assert {"paired_xy", "paired_yx", "gan_xy", "flow_tv", "mask", "cycle_x", "discriminator_y"} <= set(summary["losses"])
    assert all(np.isfinite(value) for value in summary["losses"].values())
    assert {"proxy_ratio_xy", "proxy_ratio_yx"} <= set(summary["metrics"])
    model = CycleGANModel.from_pretrained(run / "final")
    assert model.config.generator_type == "warp_refine" and model.discriminator_x is None
    # the average edit's fields became the priors (upsampled from 16 to 32 px)
    assert torch.allclose(model.generator_xy.prior_flow[:, 1], torch.full((1, 32, 32), -0.02), atol=1e-6)
    assert torch.allclose(model.generator_yx.prior_flow[:, 1], torch.full((1, 32, 32), 0.02), atol=1e-6)
    card = (run / "final" / "README.md").read_text()
    assert "3 steps" in card and "subject pairs" in card and "genki" in card
    assert (run / "samples" / "step_0000003.png").is_file()


# --- through the editor ---------------------------------------------------------------------------------------------

def test_the_editor_edits_with_a_warp_cyclegan_in_the_aligned_frame():
    """A warp_refine CycleGAN in the editor: its prior flow moves the face's own pixels (the astronaut's mouth region
    changes), the upper face stays still (lower-face window, zero prior there) and nothing outside the face moves."""
    from skimage import data

    from expr_models.pipeline import ExpressionEditor

    model = warp_model(resolution=64, flow_resolution=16, with_discriminators=False)
    with torch.no_grad():  # the prior: the lower half of the frame moves up by 2% of the side
        model.generator_xy.prior_flow[:, 1, 32:] = 0.02
    photo = data.astronaut()
    editor = ExpressionEditor(models_dir=None, models={"cyclegan": model}, detector="haar", precision="fp32")
    result = editor.edit(photo, method="cyclegan", target="happy")
    edited = np.asarray(result.image).astype(int)
    changed = np.abs(edited - photo.astype(int)).max(axis=2) > 0
    (face,) = result.faces
    x0, y0, x1, y1 = (int(v) for v in (face.box.x0, face.box.y0, face.box.x1, face.box.y1))
    height = y1 - y0
    assert changed[y0 + height // 2:y1, x0:x1].mean() > 0.2  # the lower face moved
    assert changed[y0:y0 + height // 4, x0:x1].mean() < 0.01  # the forehead did not
    outside = np.ones_like(changed)
    outside[max(0, y0 - height // 2):y1 + height // 2, max(0, x0 - height // 2):x1 + height // 2] = False
    assert not changed[outside].any()
    unchanged = editor.edit(photo, method="cyclegan", target="happy", intensity=0.0).image
    assert np.array_equal(np.asarray(unchanged), photo)
