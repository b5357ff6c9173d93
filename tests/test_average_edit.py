"""The average-edit model: save/load, intensity 0 is the identity, deterministic, the flow moves what it says."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoModel

import expr_models  # noqa: F401 - registers the Auto classes
from expr_models.components import EDITING_METHODS, canonical_method, model_class
from expr_models.models.average_edit import AverageEditConfig, AverageEditModel

COMMITTED = Path(__file__).resolve().parents[1] / "checkpoints" / "average"


def _model(resolution=32, channels=3):
    model = AverageEditModel(AverageEditConfig(resolution=resolution, channels=channels))
    generator = torch.Generator().manual_seed(0)
    model.flows.data = 0.02 * torch.randn(model.flows.shape, generator=generator)
    model.residuals.data = 0.05 * torch.randn(model.residuals.shape, generator=generator)
    return model


def test_save_load_round_trip(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, AverageEditModel)
    assert torch.equal(loaded.flows, model.flows) and torch.equal(loaded.residuals, model.residuals)
    face = data.astronaut()[100:300, 150:350]
    np.testing.assert_array_equal(loaded.apply(face, "neutral", "happy"), model.apply(face, "neutral", "happy"))


def test_intensity_zero_is_identity_and_edit_is_deterministic():
    model, face = _model(), data.astronaut()[100:356, 150:406]
    np.testing.assert_array_equal(model.apply(face, "neutral", "happy", 0.0), face)
    first = model.apply(face, "neutral", "happy", 1.0)
    assert np.abs(first.astype(int) - face).mean() > 1  # it does edit
    np.testing.assert_array_equal(model.apply(face, "neutral", "happy", 1.0), first)
    pixels = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert torch.equal(model(pixels, intensity=0.0).edited, pixels.clamp(-1, 1))


def test_flow_moves_the_face_by_the_stored_amount():
    model = AverageEditModel(AverageEditConfig(resolution=16, channels=1))
    model.flows.data[0, 0] = 0.1  # neutral->happy: sample 0.1 of the side to the right
    face = np.tile(np.arange(200, dtype=np.uint8)[None, :], (200, 1))
    edited = model.apply(face, "neutral", "happy")
    np.testing.assert_array_equal(edited[:, :150].astype(int) - face[:, :150], 20)
    half = model.apply(face, "neutral", "happy", 0.5)
    np.testing.assert_array_equal(half[:, :150].astype(int) - face[:, :150], 10)
    # The torch forward agrees with the numpy apply.
    pixels = torch.from_numpy(face)[None, None].float() / 127.5 - 1
    out = model(pixels).edited[0, 0].numpy() * 127.5 + 127.5
    np.testing.assert_allclose(out[:, :150], edited[:, :150], atol=1.0)


def test_luminance_residual_goes_to_every_channel():
    model = AverageEditModel(AverageEditConfig(resolution=8, channels=1))
    model.residuals.data[0] = 20 / 127.5
    face = np.full((64, 64, 3), 100, np.uint8)
    np.testing.assert_array_equal(model.apply(face, "neutral", "happy"), 120)


def test_unknown_pair_and_bad_config_are_refused():
    with pytest.raises(ValueError, match="holds"):
        _model().apply(np.zeros((8, 8, 3), np.uint8), "neutral", "angry")
    with pytest.raises(StrictDataclassClassValidationError, match="two different expressions"):
        AverageEditConfig(pairs=["happy->happy"])


def test_registered_as_component_and_method():
    assert EDITING_METHODS["average"].component == "average" and model_class("average") is AverageEditModel
    assert canonical_method("Average") == "average"


@pytest.mark.skipif(not (COMMITTED / "config.json").is_file(), reason="no committed average checkpoint")
def test_committed_checkpoint_edits_a_photo_within_milliseconds():
    import time

    model = AverageEditModel.from_pretrained(COMMITTED)
    assert {"neutral->happy", "happy->neutral"} <= set(model.config.pairs)
    photo = data.astronaut()
    points = np.array([[228, 117], [294, 125], [264, 160], [236, 188], [282, 192]], np.float64)
    model.edit_photo(photo, "neutral", "happy", points=points)
    start = time.perf_counter()
    edited = model.edit_photo(photo, "neutral", "happy", points=points)
    assert time.perf_counter() - start < 0.5
    changed = np.any(edited != photo, axis=2)
    assert 0 < changed.mean() < 0.3  # the face's lower half moves, the rest is byte-identical


@pytest.mark.skipif(not (COMMITTED / "config.json").is_file(), reason="no committed average checkpoint")
@pytest.mark.parametrize("detector", ["retinaface", "haar"])
def test_editor_runs_the_average_method_in_the_aligned_frame(detector, astronaut):
    from expr_models.pipeline import ExpressionEditor
    from test_pipeline import unchanged_outside_masks

    editor = ExpressionEditor.from_pretrained(COMMITTED.parent, detector=detector)
    assert "average" in editor.available_methods()
    assert set(editor.supported_targets("average")) >= {"happy", "neutral", "surprise"}
    smile = editor.edit(astronaut, method="average", target="happy")
    changed = np.abs(np.asarray(smile.image, np.int16) - astronaut).max(axis=-1)
    assert (changed > 8).sum() > 500  # the mouth moved (Haar gives no landmarks: estimated ones are used)
    assert unchanged_outside_masks(smile)
    untouched = editor.edit(astronaut, method="average", target="happy", intensity=0.0)
    np.testing.assert_array_equal(np.asarray(untouched.image), astronaut)
    # Any source: a face read as neither the pair's source nor neutral is edited from neutral.
    model = editor.model("average")
    assert model.source_for("fear", "happy") == "neutral" and model.source_for("happy", "neutral") == "happy"


@pytest.mark.skipif(not (COMMITTED / "config.json").is_file(), reason="no committed average checkpoint")
def test_a_grey_photo_stays_grey(astronaut):
    from expr_models.pipeline import ExpressionEditor

    grey = np.repeat(np.asarray(Image.fromarray(astronaut).convert("L"))[..., None], 3, axis=2)
    edited = np.asarray(ExpressionEditor.from_pretrained(COMMITTED.parent).edit(grey, method="average").image)
    assert not np.array_equal(edited, grey)
    assert np.array_equal(edited[..., 0], edited[..., 1]) and np.array_equal(edited[..., 1], edited[..., 2])
