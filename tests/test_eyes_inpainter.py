"""The learned eyes: their hole (the eyes, lids and the skin up to the brows, in the brow frame), the model's own type
and config, the redraw after a mesh warp (the eyes change; the mouth, the nose and the forehead above the brows do
not), and training through the one loop with ``--region eyes``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoModel

import expr_models  # noqa: F401  (registers the Auto classes)
from expr_models.faces.brow_frame import FRAME_HEIGHT, FRAME_WIDTH, BrowFrame, eye_hole
from expr_models.faces.mesh_topology import (LEFT_BROW_UPPER, LEFT_EYE, LIPS_OUTER, NOSE_TIP, RIGHT_BROW_LOWER,
                                             RIGHT_BROW_UPPER, RIGHT_EYE)
from expr_models.faces.mesh_warp import warp_face
from expr_models.models.brow_inpainter import EyesInpainterConfig, EyesInpainterModel
from tests.test_brow_inpainter import SMALL_FACE, reloaded_region_model, tiny_region_dataset
from tests.test_brow_inpainter import tiny_model as tiny_region_model
from tests.test_mouth_fill import synthetic_face
from tests.test_training import train_in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0) -> EyesInpainterModel:
    return tiny_region_model(seed, region="eyes")


def test_the_hole_covers_the_eyes_and_lids_up_to_the_brows_not_the_forehead(mesh_motion):
    _, points, _ = synthetic_face(mesh_motion)
    framed = BrowFrame.from_points(points).to_frame(points)
    hole = eye_hole(framed, 2.0)
    assert hole.shape == (FRAME_HEIGHT, FRAME_WIDTH)
    eyes = np.zeros_like(hole, np.uint8)
    cv2.fillPoly(eyes, [np.round(framed[list(eye)]).astype(np.int32) for eye in (RIGHT_EYE, LEFT_EYE)], 1)
    assert eyes.sum() > 10 and (hole[eyes > 0] == 1).all()  # the openings are redrawn, lids and all
    between = np.round((framed[RIGHT_EYE[4], :2] + framed[RIGHT_BROW_LOWER[2], :2]) / 2).astype(int)
    assert hole[between[1], between[0]] == 1                # the lid's skin below the brow
    above = np.round(framed[list(RIGHT_BROW_UPPER) + list(LEFT_BROW_UPPER), :2].mean(0) - [0, 5]).astype(int)
    assert hole[above[1], above[0]] == 0                    # the forehead is the brows' model's
    middle = np.round(framed[list(RIGHT_EYE) + list(LEFT_EYE), :2].mean(0)).astype(int)
    assert hole[middle[1], middle[0]] == 0                  # the skin between the eyes is kept


def test_the_eyes_are_their_own_registered_model_type(tmp_path):
    loaded = reloaded_region_model(tiny_model(), tmp_path / "eyes", "expr-eyes-inpainter", "eyes_inpainter")
    assert (loaded.config.frame_height, loaded.config.frame_width) == (40, 56)
    with pytest.raises(Exception, match="redraws the eyes region"):
        EyesInpainterConfig(region="upper_face")


def test_the_warp_redraws_the_eyes_only(mesh_motion):
    photo, points, smile = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=True)
    plain = warp_face(photo, points[:, :2], smile)
    redrawn = warp_face(photo, points[:, :2], smile, eyes=tiny_model(), expression="neutral")
    differs = np.any(redrawn.image != plain.image, axis=2)
    assert differs.sum() > 30
    openings = np.zeros(photo.shape[:2], np.uint8)
    for part in (RIGHT_EYE, LEFT_EYE):
        cv2.fillPoly(openings, [np.round(smile[list(part)]).astype(np.int32)], 1)
    assert differs[openings > 0].mean() > 0.5               # the eyes are drawn anew
    ys, _ = np.nonzero(differs)
    assert ys.max() < smile[NOSE_TIP, 1] < smile[list(LIPS_OUTER), 1].min()  # the nose tip and the mouth are not
    assert (redrawn.image[..., 0] == redrawn.image[..., 2]).all()
    assert np.array_equal(warp_face(photo, points[:, :2], smile, eyes=tiny_model()).image, plain.image)


def test_the_eyes_train_through_the_loop(tmp_path, mesh_motion):
    from train.brow_inpainter import BrowInpainterStep

    data = tiny_region_dataset(tmp_path / "brows", mesh_motion)  # the brow frame's windows serve both regions
    arguments = ["--data", data, "--output-dir", tmp_path / "run", "--cpu", "--max-steps", 2, "--batch-size", 2,
                 "--base-channels", 8, "--residual-blocks", 1, "--report-to", "none", "--sample-every", 0,
                 "--checkpointing-steps", 0, "--region", "eyes"]
    assert train_in_process(BrowInpainterStep, arguments) == 0
    model = AutoModel.from_pretrained(tmp_path / "run" / "final")
    assert type(model) is EyesInpainterModel and model.discriminator is None


def test_the_committed_eyes_are_a_warp_part_for_the_targets_they_draw_well(mesh_motion):
    from expr_models.methods.mesh import EYES_COMPONENT
    from tests.test_brow_inpainter import committed_region_part

    parts, model = committed_region_part(EYES_COMPONENT, "eyes", mesh_motion)
    assert isinstance(model, EyesInpainterModel) and parts["brows"] is None and parts["lower_face"] is None
    # Not disgust (no more): docs/how_it_works.md, item 9.
    assert set(model.config.edit_expressions) == {"angry", "fear", "happy", "neutral", "sad", "surprise"}
    # Grey faces no sharper than its frame, as the learned lower face (docs/how_it_works.md, item 8).
    assert model.config.edit_colour_photos is False and model.config.max_lost_detail == 3.0
    # Drawn past the label's own drawing for the targets that read better so, not surprise
    # (docs/how_it_works.md, item 9).
    assert model.config.label_guidance == {"angry": 1.0, "fear": 1.0, "neutral": 1.0, "sad": 1.0}


def test_label_guidance_draws_past_the_label_away_from_the_mean_of_every_label_inside_the_hole_only():
    import torch

    plain = tiny_model(seed=3)
    guided = tiny_model(seed=3)
    guided.config.label_guidance = {"sad": 1.5}
    torch.manual_seed(0)
    windows, maps = torch.rand(2, 1, FRAME_HEIGHT, FRAME_WIDTH) * 2 - 1, torch.rand(2, 2, FRAME_HEIGHT, FRAME_WIDTH)
    holes = torch.zeros(2, 1, FRAME_HEIGHT, FRAME_WIDTH)
    holes[..., 10:30, 10:46] = 1.0
    with torch.no_grad():
        drawn = plain.inpaint(windows, holes, maps, "sad")
        every = torch.stack([plain.inpaint(windows, holes, maps, name) for name in plain.config.class_names])
        expected = (drawn + 1.5 * (drawn - every.mean(0))).clamp(-1, 1)
        assert torch.allclose(guided.inpaint(windows, holes, maps, "sad"), expected, atol=1e-5)
        assert torch.equal(guided.inpaint(windows, holes, maps, "angry"), plain.inpaint(windows, holes, maps, "angry"))
        assert torch.equal(guided.inpaint(windows, holes, maps, "sad")[holes == 0], windows[holes == 0])
    for wrong in ({"bored": 1.0}, {"sad": -1.0}):
        with pytest.raises(StrictDataclassClassValidationError, match="label_guidance"):
            EyesInpainterConfig(label_guidance=wrong)
