"""The learned lower face: its frame, maps and hole, the model's own type and config, the redraw after a mesh warp
(the lower face changes, the eyes, nose and upper face do not), training through the one loop with ``--region
lower_face``, and the committed checkpoint as a warp part."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from transformers import AutoModel

import expr_models  # noqa: F401  (registers the Auto classes)
from expr_models.components import COMPONENT_BY_MODEL_TYPE
from expr_models.faces.lower_face_frame import (EYE_DISTANCE, EYE_Y, FRAME_HEIGHT, FRAME_WIDTH, LowerFaceFrame,
                                                lower_face_hole, lower_face_maps)
from expr_models.faces.mesh_topology import LEFT_EYE, LIPS_OUTER, NOSE_TIP, RIGHT_EYE
from expr_models.faces.mesh_warp import warp_face
from expr_models.faces.region_redraw import DARK_SPOT_MARGIN, learned_region, without_new_dark_spots
from expr_models.faces.tone import is_grey
from expr_models.models.brow_inpainter import LowerFaceInpainterConfig, LowerFaceInpainterModel
from tests.test_brow_inpainter import (CHECKPOINTS, SMALL_FACE, committed_region_part, reloaded_region_model,
                                      tiny_region_dataset)
from tests.test_brow_inpainter import tiny_model as tiny_region_model
from tests.test_mouth_fill import synthetic_face
from tests.test_training import train_in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0) -> LowerFaceInpainterModel:
    return tiny_region_model(seed, region="lower_face")


def test_the_frame_levels_the_eyes_and_the_hole_covers_the_lips_and_cheeks_not_the_eyes_or_nose(mesh_motion):
    _, points, _ = synthetic_face(mesh_motion)
    frame = LowerFaceFrame.from_points(points)
    framed = frame.to_frame(points)
    right, left = framed[list(RIGHT_EYE)].mean(0), framed[list(LEFT_EYE)].mean(0)
    assert left[0] - right[0] == pytest.approx(EYE_DISTANCE, abs=1e-6)
    assert right[1] == pytest.approx(EYE_Y, abs=1e-6) and left[1] == pytest.approx(EYE_Y, abs=1e-6)
    hole, maps = lower_face_hole(framed, 2.0), lower_face_maps(framed)
    assert hole.shape == maps.shape[1:] == (FRAME_HEIGHT, FRAME_WIDTH) and len(maps) == 3
    lips, nose = maps[0] > 0.5, maps[2] > 0.5
    assert lips.sum() > 20 and nose.sum() > 20
    assert (hole[lips] == 1).all()   # the lips are redrawn
    assert (hole[nose] == 0).all()   # the nose is the warp's
    eyes = np.zeros_like(hole, np.uint8)
    cv2.fillPoly(eyes, [np.round(framed[list(eye)]).astype(np.int32) for eye in (RIGHT_EYE, LEFT_EYE)], 1)
    assert (hole[eyes > 0] == 0).all()
    assert framed[list(LIPS_OUTER), 1].max() < FRAME_HEIGHT - 8  # the chin below the lips is in the frame


def test_the_lower_face_is_its_own_registered_model_type(tmp_path):
    assert COMPONENT_BY_MODEL_TYPE["expr-brow-inpainter"] == "brow_inpainter"
    loaded = reloaded_region_model(tiny_model(), tmp_path / "lower_face", "expr-lower-face-inpainter",
                                   "lower_face_inpainter")
    assert (loaded.config.frame_height, loaded.config.frame_width) == (48, 56)
    with pytest.raises(Exception, match="redraws the lower_face region"):
        LowerFaceInpainterConfig(region="upper_face", frame_height=40)
    with pytest.raises(Exception, match="region must be one of"):
        LowerFaceInpainterConfig(region="ears")


@pytest.mark.parametrize("grey", [False, True])
def test_the_warp_redraws_the_lower_face_only_and_reports_where(mesh_motion, grey):
    photo, points, smile = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=grey)
    model = tiny_model()
    plain = warp_face(photo, points[:, :2], smile)
    redrawn = warp_face(photo, points[:, :2], smile, lower_face=model, expression="neutral")
    differs = np.any(redrawn.image != plain.image, axis=2)
    assert differs.sum() > 100
    ys, _ = np.nonzero(differs)
    eyes_line = smile[list(RIGHT_EYE) + list(LEFT_EYE), 1].max()
    assert ys.min() > eyes_line  # below the eyes (the paste's feather apart)
    kept = np.zeros(photo.shape[:2], np.uint8)
    for part in (RIGHT_EYE, LEFT_EYE):
        cv2.fillPoly(kept, [np.round(smile[list(part)]).astype(np.int32)], 1)
    assert not (differs & (cv2.erode(kept, np.ones((5, 5), np.uint8)) > 0)).any()
    assert differs[int(smile[NOSE_TIP, 1]) - 1:int(smile[NOSE_TIP, 1]) + 2, int(smile[NOSE_TIP, 0])].sum() == 0
    x0, y0, x1, y1 = redrawn.box
    ys, xs = np.nonzero(np.any(redrawn.image != photo, axis=2))
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    if grey:
        assert (redrawn.image[..., 0] == redrawn.image[..., 2]).all()
    # Without a target expression it is not drawn.
    assert np.array_equal(warp_face(photo, points[:, :2], smile, lower_face=model).image, plain.image)


def test_an_angry_edit_first_redraws_neutral_where_no_region_draws_anger_and_adds_only_anger_s_furrows(mesh_motion):
    """Anger (``CLEARED_TARGETS``): a region model that does not draw it draws its region neutral before the shading,
    and the shading adds anger's furrows without taking the source's away; other targets and sharp faces keep the
    warp and the shading alone."""
    from expr_models.components import model_class
    from expr_models.faces.mesh_warp import CLEARED_TARGETS

    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=True)
    frown = mesh_motion.target_points(points, "neutral", "angry", 1.0)
    model = tiny_model()
    model.config.edit_expressions = ["neutral"]  # draws no anger
    shading = model_class("expression_shading").from_pretrained(CHECKPOINTS / "expression_shading")
    from_sad = {"angry": 1.0, "sad": -1.0}
    assert "angry" in CLEARED_TARGETS and "sad" not in CLEARED_TARGETS
    angry = warp_face(photo, points[:, :2], frown, shading=shading, expressions=from_sad, lower_face=model,
                      expression="angry").image
    # By hand: the warp, the lower face drawn neutral, then the shading of anger alone (the sad lines went with it).
    by_hand = warp_face(photo, points[:, :2], frown).image
    assert learned_region(model)(by_hand, frown, "neutral", 1.0) is not None
    by_hand, _ = shading.shade_with_box(by_hand, points[:, :2], frown, {"angry": 1.0})
    assert np.array_equal(angry, by_hand)
    # A target outside CLEARED_TARGETS that the region does not draw: the warp and the shading alone.
    sad = warp_face(photo, points[:, :2], frown, shading=shading, expressions={"sad": 1.0, "angry": -1.0},
                    lower_face=model, expression="sad").image
    plain = warp_face(photo, points[:, :2], frown, shading=shading, expressions={"sad": 1.0, "angry": -1.0}).image
    assert np.array_equal(sad, plain) and not np.array_equal(angry, plain)
    # On a face sharper than the frame (a model with no sharpness guard of its own): no clearing, the source's
    # furrows taken away by the shading as before.
    rng = np.random.default_rng(0)
    sharp = np.clip(photo.astype(np.float32) + rng.normal(0, 12, photo.shape[:2])[..., None], 0, 255).astype(np.uint8)
    assert model.config.max_lost_detail is None and learned_region(model)(sharp.copy(), frown, "neutral", 1.0)
    assert np.array_equal(
        warp_face(sharp, points[:, :2], frown, shading=shading, expressions=from_sad, lower_face=model,
                  expression="angry").image,
        warp_face(sharp, points[:, :2], frown, shading=shading, expressions=from_sad).image)


def test_the_lower_face_trains_through_the_loop_and_refuses_another_region_s_windows(tmp_path, mesh_motion, capsys):
    from train.brow_inpainter import BrowInpainterStep

    common = ["--cpu", "--max-steps", 2, "--batch-size", 2, "--base-channels", 8, "--residual-blocks", 1,
              "--report-to", "none", "--sample-every", 0, "--checkpointing-steps", 0, "--region", "lower_face"]
    data = tiny_region_dataset(tmp_path / "lower_face", mesh_motion, LowerFaceFrame)
    assert train_in_process(BrowInpainterStep, ["--data", data, "--output-dir", tmp_path / "run", *common]) == 0
    model = AutoModel.from_pretrained(tmp_path / "run" / "final")
    assert type(model) is LowerFaceInpainterModel and model.discriminator is None
    brows = tiny_region_dataset(tmp_path / "brows", mesh_motion)
    assert train_in_process(BrowInpainterStep, ["--data", brows, "--output-dir", tmp_path / "wrong", *common]) == 2
    assert "prepare it with --region lower_face" in capsys.readouterr().err


def test_a_face_turned_too_far_is_left_alone(mesh_motion):
    from expr_models.faces.lower_face_frame import MAX_TURN
    from expr_models.faces.mesh import head_turn as turn

    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE)
    frame = LowerFaceFrame.from_points(points)
    assert abs(turn(frame.to_frame(points))) < MAX_TURN
    turned = points.copy()
    turned[1, 0] = turned[454, 0] - 0.05 * (turned[454, 0] - turned[234, 0])  # the nose tip beside the far cheek
    assert turn(LowerFaceFrame.from_points(turned).to_frame(turned)) > MAX_TURN
    untouched = photo.copy()
    assert learned_region(tiny_model())(untouched, turned[:, :2], "neutral", 1.0) is None
    assert np.array_equal(untouched, photo)


def test_the_committed_lower_face_is_a_warp_part_for_the_targets_it_draws_well(mesh_motion):
    from expr_models.methods.mesh import LOWER_FACE_COMPONENT

    parts, model = committed_region_part(LOWER_FACE_COMPONENT, "lower_face", mesh_motion)
    assert isinstance(model, LowerFaceInpainterModel) and parts["brows"] is None
    # Not sad (read less on most sets), angry (the second reader read it less) nor disgust (teeth read as happy):
    # docs/how_it_works.md, item 8.
    assert set(model.config.edit_expressions) == {"fear", "happy", "neutral", "surprise"}
    photo, _, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=True)
    redraw = learned_region(model)
    # Grey photos only: on coloured skin its grey drawing smudged the lower face (docs/how_it_works.md, item 8).
    assert model.config.edit_colour_photos is False and model.config.max_lost_detail == 3.0
    colour, colour_points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE)
    assert not is_grey(colour) and is_grey(photo) and is_grey(photo[..., 0])
    untouched = colour.copy()
    assert redraw(untouched, colour_points[:, :2], "neutral", 1.0) is None
    assert np.array_equal(untouched, colour)


def test_a_face_sharper_than_the_frame_is_left_alone(mesh_motion):
    """The drawing is made at the frame's resolution: where the photo holds finer detail, it would be a smudge."""
    from expr_models.faces.aligned_frame import AlignedFrame

    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=True)
    frame = LowerFaceFrame.from_points(points)
    rng = np.random.default_rng(0)
    sharp = np.clip(photo.astype(np.float32) + rng.normal(0, 12, photo.shape[:2])[..., None], 0, 255).astype(np.uint8)
    assert frame.lost_detail(sharp[..., 0]) > 3.0 > frame.lost_detail(photo[..., 0])
    assert AlignedFrame.from_axis(np.array([0.0, 0]), np.array([10.0, 0]), 20.0, np.zeros(2), (0, 0)).lost_detail(
        sharp[..., 0]) == 0.0  # a frame finer than the photo loses nothing
    model = tiny_model()
    model.config.max_lost_detail = 3.0
    untouched = sharp.copy()
    assert learned_region(model)(untouched, points[:, :2], "neutral", 1.0) is None
    assert np.array_equal(untouched, sharp)
    assert learned_region(model)(photo.copy(), points[:, :2], "neutral", 1.0) is not None


def test_a_drawing_gets_no_dark_spot_where_the_face_had_none_but_keeps_its_dark_lips(mesh_motion):
    _, points, _ = synthetic_face(mesh_motion)
    framed = LowerFaceFrame.from_points(points).to_frame(points)
    maps = lower_face_maps(framed)
    window = np.full((FRAME_HEIGHT, FRAME_WIDTH), 150.0, np.float32)  # plain skin
    drawn = window.copy()
    lips = maps[0] > 0.5
    drawn[lips] = 20.0                                                # lips drawn dark: an expression does that
    cheek = np.round(framed[RIGHT_EYE[0], :2] + [0, 8]).astype(int)   # below the eye, far from the lips
    assert not lips[cheek[1], cheek[0]]
    drawn[cheek[1] - 1:cheek[1] + 2, cheek[0] - 1:cheek[0] + 2] = 10.0  # a black blob on the cheek
    kept = without_new_dark_spots(drawn, window, maps)
    assert kept[cheek[1], cheek[0]] == pytest.approx(150.0 - DARK_SPOT_MARGIN)
    assert np.array_equal(kept[lips], drawn[lips])
    assert np.array_equal(kept[drawn >= window], drawn[drawn >= window])  # lighter pixels are never touched
