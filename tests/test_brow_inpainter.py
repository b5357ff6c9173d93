"""The learned brows: the brow frame, its maps and hole, the model's save/load, label conditioning and composite, the
redraw after a mesh warp (only the hole changes, by the same amount on every channel), and a training run through
the one loop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from expr_models.components import COMPONENT_BY_MODEL_TYPE, model_class
from expr_models.faces.brow_frame import (EYE_DISTANCE, EYE_Y, FRAME_HEIGHT, FRAME_WIDTH, BrowFrame, brow_hole,
                                          brow_maps)
from expr_models.faces.inpaint_regions import REGIONS
from expr_models.faces.region_redraw import MAX_ENLARGEMENT, learned_region
from expr_models.faces.mesh_topology import LEFT_BROW, LEFT_EYE, NOSE_TIP, RIGHT_BROW, RIGHT_EYE
from expr_models.faces.mesh_warp import warp_face
from expr_models.models.brow_inpainter import INPAINTER_CLASSES, BrowInpainterConfig, BrowInpainterModel
from tests.test_mouth_fill import synthetic_face
from tests.test_training import train_in_process
from train.tools.prepare_brows import FEATURES

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SMALL_FACE = 36.0  # eye distance (px) of a face the brows are drawn on: under MAX_ENLARGEMENT times the frame's 20

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0, region: str = "upper_face") -> BrowInpainterModel:
    """A small untrained inpainter of ``region`` (its own model class: the brows', the lower face's, the eyes')."""
    torch.manual_seed(seed)
    config_class, model_class_of_region = INPAINTER_CLASSES[region]
    config = config_class(base_channels=8, residual_blocks=1, with_discriminator=False)
    return model_class_of_region(config).eval()


def test_the_frame_levels_the_eyes_and_the_hole_covers_the_brows_not_the_eyes(mesh_motion):
    _, points, _ = synthetic_face(mesh_motion)
    turned = points.copy()
    angle = np.deg2rad(-15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned[:, :2] = (points[:, :2] - 200) @ rotation.T * 0.4 + 120
    for mesh in (points, turned):
        frame = BrowFrame.from_points(mesh)
        framed = frame.to_frame(mesh)
        right, left = framed[list(RIGHT_EYE)].mean(0), framed[list(LEFT_EYE)].mean(0)
        assert left[0] - right[0] == pytest.approx(EYE_DISTANCE, abs=1e-6)
        assert right[1] == pytest.approx(left[1], abs=1e-6) and right[1] == pytest.approx(EYE_Y, abs=1e-6)
        hole, maps = brow_hole(framed, 2.0), brow_maps(framed)
        assert hole.shape == maps.shape[1:] == (FRAME_HEIGHT, FRAME_WIDTH)
        brows, eyes = maps[0] > 0.5, maps[1] > 0.5
        assert brows.sum() > 20 and eyes.sum() > 10
        assert (hole[brows] == 1).all()  # the brows are redrawn
        assert (hole[eyes] == 0).all()   # the eyes are the warp's
        # the brows' points lie inside the frame, with forehead above them
        assert framed[list(RIGHT_BROW) + list(LEFT_BROW), 1].min() > 4
    with pytest.raises(ValueError, match="eye centres coincide"):
        BrowFrame.from_points(np.zeros((468, 3)))


def test_the_model_saves_loads_draws_per_label_and_keeps_what_is_outside_the_hole(tmp_path):
    model = tiny_model()
    assert COMPONENT_BY_MODEL_TYPE["expr-brow-inpainter"] == "brow_inpainter"
    model.save_pretrained(tmp_path / "brows")
    loaded = BrowInpainterModel.from_pretrained(tmp_path / "brows").eval()
    windows = torch.rand(2, 1, FRAME_HEIGHT, FRAME_WIDTH) * 2 - 1
    holes = torch.zeros(2, 1, FRAME_HEIGHT, FRAME_WIDTH)
    holes[:, :, 8:24, 10:46] = 1
    maps = torch.rand(2, 2, FRAME_HEIGHT, FRAME_WIDTH)
    neutral = loaded.inpaint(windows, holes, maps, "neutral")
    assert torch.equal(neutral * (1 - holes), windows * (1 - holes))
    assert torch.allclose(neutral, model.inpaint(windows, holes, maps, "neutral"), atol=1e-6)
    angry = loaded.inpaint(windows, holes, maps, "angry")
    assert not torch.allclose(neutral[:, :, 8:24, 10:46], angry[:, :, 8:24, 10:46])  # the label is heard
    assert torch.equal(loaded.inpaint(windows, holes, maps, 4), neutral)  # an index is a label too
    with pytest.raises(ValueError, match="unknown expression"):
        loaded.inpaint(windows, holes, maps, "contempt")
    with pytest.raises(Exception, match="the upper_face frame is 40 x 56"):  # strict dataclasses wrap the ValueError
        BrowInpainterConfig(frame_width=64)


@pytest.mark.parametrize("grey", [False, True])
def test_the_redraw_changes_only_the_hole_and_keeps_a_colour_photos_colour(mesh_motion, grey):
    """A grey photo moves by one shift on every channel. A colour photo's luminance moves with its colour kept
    (``faces.tone``): darker by a ratio, lighter by the same lift on every channel; one shift added to every channel
    turned a warm-lit forehead grey-blue."""
    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=grey)
    model = tiny_model()
    image = photo.copy()
    box = learned_region(model)(image, points[:, :2], "neutral", 1.0)
    differs = np.any(image != photo, axis=2)
    assert differs.sum() > 100
    # Only within the hole (frame pixels are 36 / 20 = 1.8 photo pixels: the cubic paste reaches one frame pixel).
    frame = BrowFrame.from_points(points)
    hole = cv2.warpAffine(brow_hole(frame.to_frame(points), model.config.hole_margin),
                          cv2.invertAffineTransform(frame.matrix), photo.shape[1::-1])
    reach = int(np.ceil(2.0 / frame.scale))
    assert not (differs & (cv2.dilate((hole > 0).astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)) == 0)).any()
    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(differs)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    change = image.astype(int) - photo.astype(int)
    unclipped = (image > 0).all(2) & (image < 255).all(2)
    if grey:
        assert (np.ptp(change[unclipped], axis=1) <= 1).all()  # one shift for R, G and B (rounding apart)
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    else:
        before, after = photo[differs & unclipped].astype(float), image[differs & unclipped].astype(float)
        darker = after.sum(1) < before.sum(1)
        assert darker.any() and (~darker).any()
        scale = after[darker].sum(1, keepdims=True) / before[darker].sum(1, keepdims=True)
        assert np.abs(after[darker] - before[darker] * scale).max() <= 1.5  # darkened by a ratio: the hue kept
        lift = after[~darker] - before[~darker]
        assert (np.ptp(lift, axis=1) <= 1).all()  # lightened by one lift on every channel: a sheen, not a tint
    # No strength, an expression the model does not know, or one it is not used for: nothing changes.
    model.config.edit_expressions = ["neutral", "angry"]
    for expression, strength in (("neutral", 0.0), ("contempt", 1.0), ("surprise", 1.0)):
        untouched = photo.copy()
        assert learned_region(model)(untouched, points[:, :2], expression, strength) is None
        assert np.array_equal(untouched, photo)
    with pytest.raises(Exception, match="not among class_names"):
        BrowInpainterConfig(edit_expressions=["contempt"])


def test_a_face_much_larger_than_the_frame_is_left_alone(mesh_motion):
    """Enlarged past MAX_ENLARGEMENT, the 40 x 56 frame's change would be a smudge on the photo."""
    model = tiny_model()
    small, small_points, _ = synthetic_face(mesh_motion, eye_distance=EYE_DISTANCE * MAX_ENLARGEMENT - 1)
    large, large_points, _ = synthetic_face(mesh_motion, eye_distance=EYE_DISTANCE * MAX_ENLARGEMENT + 1)
    assert learned_region(model)(small.copy(), small_points[:, :2], "neutral", 1.0) is not None
    untouched = large.copy()
    assert learned_region(model)(untouched, large_points[:, :2], "neutral", 1.0) is None
    assert np.array_equal(untouched, large)


def test_the_warp_redraws_the_brows_last_for_the_target_and_reports_where(mesh_motion):
    photo, points, smile = synthetic_face(mesh_motion, eye_distance=SMALL_FACE)
    model = tiny_model()
    plain = warp_face(photo, points[:, :2], smile)
    with_brows = warp_face(photo, points[:, :2], smile, brows=model, expression="happy")
    differs = np.any(with_brows.image != plain.image, axis=2)
    assert differs.any()
    ys, _ = np.nonzero(differs)
    assert ys.max() < points[NOSE_TIP, 1]  # the upper face only, and not the eyes (but for the paste's feather)
    eyes = np.zeros(photo.shape[:2], np.uint8)
    for eye in (RIGHT_EYE, LEFT_EYE):
        cv2.fillPoly(eyes, [np.round(smile[list(eye)]).astype(np.int32)], 1)
    assert not (differs & (cv2.erode(eyes, np.ones((7, 7), np.uint8)) > 0)).any()
    x0, y0, x1, y1 = with_brows.box  # holds every changed pixel
    ys, xs = np.nonzero(np.any(with_brows.image != photo, axis=2))
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    # Without a target expression the brows are not drawn; a warp that moves nothing still redraws them.
    assert np.array_equal(warp_face(photo, points[:, :2], smile, brows=model).image, plain.image)
    still = warp_face(photo, points[:, :2], points[:, :2], brows=model, expression="neutral")
    assert still.box is not None and np.any(still.image != photo)


def tiny_region_dataset(path: Path, mesh_motion, frame_class=BrowFrame) -> Path:
    """Six synthetic grey faces cut into ``frame_class``'s windows (the brows', or the lower face's), saved as
    ``prepare_brows`` saves them, the same rows for train and validation."""
    rows = []
    for index in range(6):
        photo, points, target = synthetic_face(mesh_motion, grey=True)
        mesh = target if index % 2 else points
        frame = frame_class.from_points(mesh)
        rows.append({"id": f"synthetic/{index}", "dataset": "ckplus" if index == 0 else "fer2013",
                     "expression": (1, 3, 4, 0, 6, 5)[index], "frame": frame.crop(photo[..., 0]),
                     "points": frame.to_frame(mesh).astype(np.float32)})
    DatasetDict({split: Dataset.from_list(rows, features=FEATURES) for split in ("train", "validation")}).save_to_disk(
        str(path))
    return path


def test_the_brows_train_through_the_loop(tmp_path, mesh_motion):
    from train.brow_inpainter import BrowInpainterStep, BrowWindows

    data = tiny_region_dataset(tmp_path / "brows", mesh_motion)
    windows = BrowWindows(Dataset.load_from_disk(str(data / "train")), num_classes=7, seed=0)
    assert len(windows) == 4 * 2 + 5  # row 0: disgust (x4) from CK+ (x2); the rest once
    first, again = windows[1], windows[1]
    assert all(torch.equal(torch.as_tensor(first[key]), torch.as_tensor(again[key])) for key in first)
    assert all(windows[i]["other_labels"] != windows[i]["labels"] for i in range(len(windows)))
    code = train_in_process(BrowInpainterStep, ["--data", data, "--output-dir", tmp_path / "run", "--cpu",
                                                "--max-steps", 2, "--batch-size", 2, "--base-channels", 8,
                                                "--residual-blocks", 1, "--report-to", "none", "--sample-every", 0,
                                                "--checkpointing-steps", 0])
    assert code == 0
    final = tmp_path / "run" / "final"
    model = BrowInpainterModel.from_pretrained(final)
    assert model.discriminator is None and (final / "README.md").is_file()
    assert list(model.config.class_names) == list(FEATURES["expression"].names)


def reloaded_region_model(model, folder: Path, model_type: str, component: str):
    """``model`` saved and loaded back through ``AutoModel``: registered as ``component``, the same class and config,
    and drawing the same as before while keeping what lies outside the hole."""
    from transformers import AutoModel

    assert COMPONENT_BY_MODEL_TYPE[model_type] == component
    model.save_pretrained(folder)
    loaded = AutoModel.from_pretrained(folder).eval()
    assert type(loaded) is type(model) and isinstance(loaded, BrowInpainterModel)
    assert loaded.config.region == model.config.region
    height, width = model.config.frame_height, model.config.frame_width
    windows = torch.rand(1, 1, height, width) * 2 - 1
    holes = torch.zeros(1, 1, height, width)
    holes[:, :, height // 2 - 6:height // 2 + 6, 8:width - 8] = 1
    maps = torch.rand(1, REGIONS[model.config.region].map_channels, height, width)
    drawn = loaded.inpaint(windows, holes, maps, "neutral")
    assert torch.equal(drawn * (1 - holes), windows * (1 - holes))
    assert torch.allclose(drawn, model.inpaint(windows, holes, maps, "neutral"), atol=1e-6)
    return loaded


def committed_region_part(component: str, part: str, mesh_motion) -> tuple[dict, object]:
    """The warp parts with the committed ``component`` alone, and its model under ``part``, after checking that it
    redraws a small grey face for exactly its ``edit_expressions``, leaving it grey."""
    from expr_models.methods.mesh import warp_parts

    folders = {component: CHECKPOINTS / component}
    parts = warp_parts(lambda name: name in folders, lambda name: model_class(name).from_pretrained(folders[name]))
    model = parts[part]
    assert model.discriminator is None
    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE, grey=True)
    redraw = learned_region(model)
    for expression in model.config.class_names:
        image = photo.copy()
        box = redraw(image, points[:, :2], expression, 1.0)
        assert (box is not None) == (expression in model.config.edit_expressions)
        assert (image[..., 0] == image[..., 2]).all()  # a grey photo stays grey
    return parts, model


def test_the_committed_brows_are_a_warp_part_for_the_targets_they_draw_well(mesh_motion):
    from expr_models.methods.mesh import BROWS_COMPONENT

    _, model = committed_region_part(BROWS_COMPONENT, "brows", mesh_motion)
    assert isinstance(model, BrowInpainterModel)
    assert set(model.config.edit_expressions) < set(model.config.class_names)
    # Grey faces only, as the learned eyes and lower face: on a small colour face its grey drawing darkened the skin
    # under a fringe into a grey-blue band and drew grey brows (docs/how_it_works.md, item 7).
    assert model.config.edit_colour_photos is False
    photo, points, _ = synthetic_face(mesh_motion, eye_distance=SMALL_FACE)
    image = photo.copy()
    assert learned_region(model)(image, points[:, :2], "neutral", 1.0) is None and np.array_equal(image, photo)
