"""The learned mouth: its frame and maps, the model's save/load and composite, the redraw after a mesh warp (only the
hole changes, a grey photo stays grey), and a training run through the one loop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from expr_models.components import COMPONENT_BY_MODEL_TYPE, model_class
from expr_models.faces.mesh_topology import LIPS_INNER, LIPS_INNER_LOWER, LIPS_OUTER, MOUTH_CORNERS
from expr_models.faces.mesh_warp import warp_face
from expr_models.faces.mouth_frame import (FRAME_HEIGHT, FRAME_WIDTH, MOUTH_WIDTH, MOUTH_Y, MouthFrame, hole_mask,
                                           lip_maps)
from expr_models.faces.mouth_redraw import learned_redraw
from expr_models.models.mouth_inpainter import MouthInpainterConfig, MouthInpainterModel
from tests.test_mouth_fill import synthetic_face
from tests.test_training import train_in_process
from train.tools.prepare_mouths import FEATURES

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0) -> MouthInpainterModel:
    torch.manual_seed(seed)
    return MouthInpainterModel(MouthInpainterConfig(base_channels=8, residual_blocks=1, with_discriminator=False)).eval()


def test_the_frame_levels_and_centres_the_mouth(mesh_motion):
    _, points, _ = synthetic_face(mesh_motion)
    turned = points.copy()
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned[:, :2] = (points[:, :2] - 200) @ rotation.T * 1.7 + 210
    for mesh in (points, turned):
        frame = MouthFrame.from_points(mesh)
        corners = frame.to_frame(mesh[list(MOUTH_CORNERS)])
        assert corners[1, 0] - corners[0, 0] == pytest.approx(MOUTH_WIDTH, abs=1e-6)
        assert corners[0, 1] == pytest.approx(corners[1, 1], abs=1e-6)  # level
        centre = frame.to_frame(mesh[list(LIPS_OUTER)]).mean(0)
        assert centre == pytest.approx([FRAME_WIDTH / 2, MOUTH_Y], abs=1e-6)
    with pytest.raises(ValueError, match="corners coincide"):
        MouthFrame.from_points(np.zeros((468, 3)))


@pytest.mark.parametrize("eye_distance", [40.0, 130.0, 380.0])  # the frame enlarges, keeps, shrinks (area path)
def test_crop_then_paste_gives_the_photo_back(mesh_motion, eye_distance):
    size = int(eye_distance * 3)
    mean = mesh_motion.mean_mesh.detach().numpy().astype(np.float64)
    points = mean * eye_distance + [size / 2, size * 0.47, 0]
    ys, xs = np.mgrid[:size, :size]
    photo = np.stack([128 + 60 * np.sin(xs / size * 6), 128 + 60 * np.cos(ys / size * 5),
                      np.full_like(xs, 90.0)], 2).astype(np.uint8)  # smooth: resampling loses little
    frame = MouthFrame.from_points(points)
    window = frame.crop(photo)
    assert window.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)
    alpha = np.zeros((FRAME_HEIGHT, FRAME_WIDTH), np.float32)
    alpha[30:60, 40:90] = 1.0
    pasted = photo.copy()
    assert frame.paste(pasted, window, alpha) is not None
    changed = np.any(pasted != photo, axis=2)
    assert changed.any() and np.abs(pasted.astype(int) - photo).max() <= 6
    # Nothing outside the alpha's footprint moves (give or take the linear sample's one frame pixel).
    footprint = cv2.invertAffineTransform(frame.matrix) @ np.array([[40, 30, 1], [90, 60, 1]], np.float64).T
    slack = 1.0 / frame.scale + 1
    ys, xs = np.nonzero(changed)
    assert xs.min() >= footprint[0].min() - slack and xs.max() <= footprint[0].max() + slack
    assert ys.min() >= footprint[1].min() - slack and ys.max() <= footprint[1].max() + slack


def test_the_maps_say_open_or_closed(mesh_motion):
    _, points, target = synthetic_face(mesh_motion)
    closed, opened = (lip_maps(MouthFrame.from_points(p).to_frame(p)) for p in (points, target))
    assert closed.shape == (3, FRAME_HEIGHT, FRAME_WIDTH) and closed.dtype == np.float32
    assert closed[0].sum() < 0.25 * opened[0].sum()  # the smile's lips part
    for maps in (closed, opened):
        assert maps[1].sum() > 100 and maps[2].sum() > 50  # lips and the inner-lip line are always there
        assert maps.min() >= 0 and maps.max() <= 1
    frame_points = MouthFrame.from_points(points).to_frame(points)
    small, large = hole_mask(frame_points, 2.0), hole_mask(frame_points, 8.0)
    assert (small <= large).all() and large.sum() > 2 * small.sum() > 0  # a closed mouth's hole: a band at the seam


def test_the_model_saves_loads_and_keeps_what_is_outside_the_hole(tmp_path):
    model = tiny_model()
    assert COMPONENT_BY_MODEL_TYPE["expr-mouth-inpainter"] == "mouth_inpainter"
    model.save_pretrained(tmp_path / "mouth")
    loaded = MouthInpainterModel.from_pretrained(tmp_path / "mouth").eval()
    frames = torch.rand(2, 3, FRAME_HEIGHT, FRAME_WIDTH) * 2 - 1
    holes = torch.zeros(2, 1, FRAME_HEIGHT, FRAME_WIDTH)
    holes[:, :, 30:60, 40:90] = 1
    maps = torch.rand(2, 3, FRAME_HEIGHT, FRAME_WIDTH)
    out = loaded.inpaint(frames, holes, maps)
    assert torch.equal(out * (1 - holes), frames * (1 - holes))
    assert torch.allclose(out, model.inpaint(frames, holes, maps), atol=1e-6)
    assert not torch.allclose(out[:, :, 30:60, 40:90], frames[:, :, 30:60, 40:90])
    with pytest.raises(Exception, match="the mouth frame is 96 x 128"):  # strict dataclasses wrap the ValueError
        MouthInpainterConfig(frame_width=64)


def open_smile(mesh_motion, grey: bool = False):
    """The synthetic face smiling with its lips parted onto a stored smile's teeth, its smile's points and the
    closed mouth's points: a smile to take back to neutral."""
    photo, points, smile = synthetic_face(mesh_motion)
    bank = model_class("mouth_exemplars").from_pretrained(CHECKPOINTS / "mouth_exemplars")
    image = warp_face(photo, points[:, :2], smile, mouth=bank).image
    if grey:
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return image, smile, points


@pytest.mark.parametrize("grey", [False, True])
def test_closing_lips_are_redrawn_inside_the_hole_and_grey_stays_grey(mesh_motion, grey):
    smiling, smile, closed = open_smile(mesh_motion, grey)
    model = tiny_model()
    plain = warp_face(smiling, smile[:, :2], closed).image  # the warp alone: a dark seam where the lips meet
    redrawn = warp_face(smiling, smile[:, :2], closed, mouth=model)
    differs = np.any(redrawn.image != plain, axis=2)
    assert differs.sum() > 50
    # Only within the hole: the target's inner lips grown by the margin and feather (frame pixels, here about 1.3
    # photo pixels each) and the paste's one pixel; the rest of the warp is the same bytes.
    lips = np.zeros(smiling.shape[:2], np.uint8)
    cv2.polylines(lips, [np.round(closed[list(LIPS_INNER), :2]).astype(np.int32)], True, 1)
    cv2.fillPoly(lips, [np.round(closed[list(LIPS_INNER), :2]).astype(np.int32)], 1)
    reach = int(np.ceil((model.config.hole_margin + 2.5) / MouthFrame.from_points(closed).scale)) + 1
    assert not (differs & (cv2.dilate(lips, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0)).any()
    x0, y0, x1, y1 = redrawn.box
    ys, xs = np.nonzero(differs)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    if grey:
        assert (redrawn.image[..., 0] == redrawn.image[..., 1]).all() and (redrawn.image[..., 1] ==
                                                                           redrawn.image[..., 2]).all()


def test_a_large_colour_face_closes_its_lips_with_its_own_and_a_small_one_with_the_model(mesh_motion):
    """At 1024 px the learned mouth's frame is a third of the mouth's size, and its lips came back as a blurred
    band: a colour face whose mouth the frame shrinks closes with its own lips, mirrored across the hole's edges,
    and a seam; a small face still gets the model's drawing."""
    from expr_models.faces.mouth_redraw import MIRROR_BELOW_SCALE

    class Spy:
        def __init__(self):
            self.model, self.calls = tiny_model(), 0
            self.config = self.model.config

        def inpaint(self, *args):
            self.calls += 1
            return self.model.inpaint(*args)

    smiling, smile, closed = open_smile(mesh_motion)
    assert MouthFrame.from_points(closed).scale < MIRROR_BELOW_SCALE
    spy = Spy()
    result = warp_face(smiling, smile[:, :2], closed, mouth=spy).image
    assert spy.calls == 0
    lips = np.zeros(smiling.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(closed[list(LIPS_OUTER), :2]).astype(np.int32)], 1)
    seam = np.zeros_like(lips)
    cv2.polylines(seam, [np.round(closed[list(LIPS_INNER), :2]).astype(np.int32)], True, 1, thickness=9)
    band = (seam > 0) & (lips > 0)
    lip_colour = np.array([165, 70, 80], np.float32)
    # No teeth left in the band where the lips meet, and its colour is the lips' (a darker seam in the middle).
    assert np.percentile(result[band].astype(np.float32) @ np.array([0.299, 0.587, 0.114]), 99) < 150
    assert np.abs(np.median(result[band].astype(np.float32), axis=0) - lip_colour).max() < 35
    # A mouth closed only part of the way keeps an opening (mirrored lip there was streaks): it shows the smile's own
    # teeth, slid under the lips, not the model's drawing (a pale smear at this size).
    half_closed = smile[:, :2] + 0.3 * (closed[:, :2] - smile[:, :2])
    half = warp_face(smiling, smile[:, :2], half_closed, mouth=spy).image
    assert spy.calls == 0
    luma = np.array([0.299, 0.587, 0.114])
    opening = np.zeros(smiling.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(half_closed[list(LIPS_INNER), :2]).astype(np.int32)], 1)
    teeth = np.zeros_like(opening)
    cv2.fillPoly(teeth, [np.round(smile[list(LIPS_INNER), :2]).astype(np.int32)], 1)
    shown = np.percentile(half[cv2.erode(opening, np.ones((3, 3))) > 0].astype(np.float32) @ luma, 90)
    assert shown > 0.9 * np.percentile(smiling[teeth > 0].astype(np.float32) @ luma, 90)

    small, small_points, small_smile = synthetic_face(mesh_motion, eye_distance=40.0)
    bank = model_class("mouth_exemplars").from_pretrained(CHECKPOINTS / "mouth_exemplars")
    small_smiling = warp_face(small, small_points[:, :2], small_smile, mouth=bank).image
    assert MouthFrame.from_points(small_points).scale > MIRROR_BELOW_SCALE
    warp_face(small_smiling, small_smile[:, :2], small_points, mouth=spy)
    assert spy.calls == 1


def test_only_a_closing_mouth_is_redrawn(mesh_motion):
    smiling, smile, closed = open_smile(mesh_motion)
    calls = []

    def redraw(image, crop, source, moved, leftover=None):
        calls.append(leftover)
        return None

    from expr_models.faces.mesh_warp import warp_crop
    from expr_models.faces.mesh_topology import EYE_TRIANGLES, FACE_OVAL, MOUTH_TRIANGLES, TRIANGLES

    def warp(crop, source, moved):
        return warp_crop(crop, source[:, :2], moved[:, :2], inner_lips=np.array(LIPS_INNER),
                         outer_lips=np.array(LIPS_OUTER), boundary=np.array(FACE_OVAL), redraw=redraw,
                         triangles=np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES))

    warp(smiling, smile, closed)  # the smile back to neutral: the lips close over the teeth
    assert calls == [None]  # the mesh's lips fit this mouth: nothing left past them to redraw
    still = smile.copy()
    still[10, :2] += 3.0  # a point far from the mouth moves: no mouth to redraw
    warp(smiling, smile, still)
    photo, points, _ = synthetic_face(mesh_motion)
    warp(photo, points, smile)  # lips that part are the exemplars' (or the cavity's), not the learned mouth's
    assert calls == [None]


def test_lips_held_apart_onto_more_lip_are_not_redrawn_as_they_close(mesh_motion):
    """Thick, glossy lips can hold the mesh's inner lips apart on a closed mouth (London 062): between them is more
    lip, and closing them hides nothing, so the learned mouth (whose drawing there was a pale band with coloured
    fringes) is not asked; the same lips parted onto teeth are redrawn."""
    from expr_models.faces.mesh_warp import warp_crop
    from expr_models.faces.mesh_topology import EYE_TRIANGLES, FACE_OVAL, MOUTH_TRIANGLES, TRIANGLES

    photo, points, smile = synthetic_face(mesh_motion)
    lip_colour = (165, 70, 80)
    onto_lip = photo.copy()
    cv2.fillPoly(onto_lip, [np.round(smile[list(LIPS_OUTER), :2]).astype(np.int32)], lip_colour)
    onto_teeth = onto_lip.copy()
    cv2.fillPoly(onto_teeth, [np.round(smile[list(LIPS_INNER), :2]).astype(np.int32)], (235, 230, 220))
    calls = []

    def redraw(image, crop, source, moved, leftover=None):
        calls.append(True)
        return None

    for image in (onto_lip, onto_teeth):
        warp_crop(image, smile[:, :2], points[:, :2], inner_lips=np.array(LIPS_INNER), outer_lips=np.array(LIPS_OUTER),
                  boundary=np.array(FACE_OVAL), redraw=redraw,
                  triangles=np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES))
    assert calls == [True]  # the teeth only


def test_what_shows_between_the_lips():
    from expr_models.faces.mouth_opening import shows_between_lips

    def mouth(width: float, inside: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = np.full((200, 300, 3), (200, 150, 130), np.uint8)
        angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        outer = np.stack([150 + width * 0.6 * np.cos(angles), 100 + width * 0.25 * np.sin(angles)], 1)
        inner = np.stack([150 + width * 0.5 * np.cos(angles), 100 + width * 0.08 * np.sin(angles)], 1)
        cv2.fillPoly(image, [np.round(outer).astype(np.int32)], (160, 70, 80))
        cv2.fillPoly(image, [np.round(inner).astype(np.int32)], inside)
        return image, inner, outer

    assert not shows_between_lips(*mouth(100, (160, 70, 80)))  # more lip
    assert not shows_between_lips(*mouth(100, (150, 66, 75)))  # a shade darker: lip in its own shadow
    assert shows_between_lips(*mouth(100, (235, 230, 220)))  # teeth
    assert shows_between_lips(*mouth(100, (30, 10, 15)))  # a dark mouth
    assert shows_between_lips(*mouth(40, (160, 70, 80)))  # too small to tell: as the geometry says


def gasp_the_mesh_missed(mesh_motion):
    """The synthetic face with its mouth open onto a dark cavity that reaches a fifth of a mouth width below the
    mesh's outer lower lip (a 48-px gasp: the mesh's lips sit inside the opening), and its mesh; a dark nostril
    above the upper lip."""
    photo, points, _ = synthetic_face(mesh_motion)
    lips = points[list(LIPS_OUTER), :2]
    width = np.ptp(lips[:, 0])
    parted = points.copy()
    parted[list(LIPS_INNER_LOWER[1:-1]), 1] += 0.12 * width  # the mesh sees the lips a little apart
    centre = lips.mean(0)
    gasp = photo.copy()
    cv2.ellipse(gasp, (int(centre[0]), int(centre[1] + 0.1 * width)), (int(0.35 * width), int(0.25 * width)), 0, 0,
                360, (25, 10, 12), -1)
    nose = points[list(MOUTH_CORNERS), :2].mean(0) - [0, 0.45 * width]
    cv2.circle(gasp, tuple(int(v) for v in nose), int(0.08 * width), (30, 12, 14), -1)
    return gasp, parted, width, nose


def test_the_real_opening_is_the_cavity_the_mesh_missed_and_not_the_nostrils(mesh_motion):
    from expr_models.faces.mouth_opening import real_opening

    gasp, mesh, width, nose = gasp_the_mesh_missed(mesh_motion)
    opening = real_opening(gasp, mesh[list(LIPS_INNER), :2], mesh[list(LIPS_OUTER), :2])
    polygon = np.zeros(gasp.shape[:2], np.uint8)
    cv2.fillPoly(polygon, [np.round(mesh[list(LIPS_INNER), :2]).astype(np.int32)], 1)
    ys, _ = np.nonzero(opening)
    assert ys.max() > mesh[list(LIPS_OUTER), 1].max() + 0.1 * width  # below the mesh's lower lip
    assert opening.sum() > 2 * polygon.sum()
    assert opening[int(nose[1]), int(nose[0])] == 0
    # A closed mouth (lips and skin, no cavity): the mesh's polygon alone.
    photo, points, _ = synthetic_face(mesh_motion)
    closed = real_opening(photo, points[list(LIPS_INNER), :2], points[list(LIPS_OUTER), :2])
    assert closed.sum() <= (cv2.dilate(polygon, np.ones((3, 3), np.uint8)) > 0).sum() + 2 * width


def test_the_real_opening_of_lips_off_the_crop_or_collapsed_is_found_without_error():
    from expr_models.faces.mouth_opening import real_opening

    crop = np.full((50, 50, 3), 128, np.uint8)
    square = np.array([[100.0, 100.0], [110.0, 100.0], [110.0, 110.0], [100.0, 110.0]])
    assert real_opening(crop, square, square * 1.01).sum() == 0  # off the crop: nothing
    point = np.full((20, 2), 25.0)
    assert real_opening(crop, point, point).sum() <= 1  # lips collapsed to a point: at most that pixel


def test_closing_a_gasp_redraws_the_cavity_the_warp_left_below_the_lips(mesh_motion):
    from expr_models.faces.mesh_warp import warp_crop
    from expr_models.faces.mesh_topology import EYE_TRIANGLES, FACE_OVAL, MOUTH_TRIANGLES, TRIANGLES

    gasp, mesh, width, _ = gasp_the_mesh_missed(mesh_motion)
    closed = synthetic_face(mesh_motion)[1]
    leftovers = []

    def redraw(image, crop, source, moved, leftover=None):
        leftovers.append(leftover)
        return None

    out = warp_crop(gasp, mesh[:, :2], closed[:, :2], inner_lips=np.array(LIPS_INNER),
                    outer_lips=np.array(LIPS_OUTER), triangles=np.array(TRIANGLES + MOUTH_TRIANGLES + EYE_TRIANGLES),
                    boundary=np.array(FACE_OVAL), redraw=redraw).image
    (leftover,) = leftovers
    # Every cavity pixel the warp left outside the closed lips' line is in the mask to redraw (or at its edge, which
    # the hole's margin takes in).
    dark = (out.mean(2) < 60) & (gasp.mean(2) < 60)  # the cavity's (not the lip seam drawn beside it) ...
    dark[:int(closed[list(MOUTH_CORNERS), 1].mean() - 0.2 * width)] = False  # ... nor the nostril's
    lips = np.zeros(gasp.shape[:2], np.uint8)
    cv2.polylines(lips, [np.round(closed[list(LIPS_INNER), :2]).astype(np.int32)], True, 1, thickness=3)
    missed = dark & (lips == 0)
    assert missed.sum() > 100  # the warp alone leaves a blot
    assert leftover is not None and (cv2.dilate(leftover, np.ones((5, 5), np.uint8))[missed] > 0).mean() > 0.98


def test_a_grin_closed_shut_redraws_the_dark_the_mesh_left_out_but_a_slight_closing_does_not(mesh_motion):
    """Dark mouth corners inside the outer lips but outside the mesh's opening (a 48-px grin): closed shut, the warp
    would carry them to the lips' ends as blots, so they are redrawn; a mouth that closes only a little (a parted
    neutral mouth, whose dark lips join the seam) keeps its own lips."""
    from expr_models.faces.mesh_warp import warp_crop
    from expr_models.faces.mesh_topology import EYE_TRIANGLES, FACE_OVAL, MOUTH_TRIANGLES, TRIANGLES

    photo, points, _ = synthetic_face(mesh_motion)
    lips = points[list(LIPS_OUTER), :2]
    width = np.ptp(lips[:, 0])
    parted = points.copy()
    parted[list(LIPS_INNER_LOWER[1:-1]), 1] += 0.03 * width
    grin = photo.copy()
    centre = lips.mean(0)
    cv2.ellipse(grin, (int(centre[0]), int(centre[1] + 0.03 * width)), (int(0.4 * width), int(0.06 * width)), 0, 0,
                360, (25, 10, 12), -1)
    leftovers = []

    def redraw(image, crop, source, moved, leftover=None):
        leftovers.append(leftover)
        return None

    def close(by):
        moved = parted.copy()
        lower = list(LIPS_INNER_LOWER[1:-1])
        moved[lower, 1] -= by * 0.03 * width
        warp_crop(grin, parted[:, :2], moved[:, :2], inner_lips=np.array(LIPS_INNER), outer_lips=np.array(LIPS_OUTER),
                  boundary=np.array(FACE_OVAL), redraw=redraw, triangles=np.array(TRIANGLES + MOUTH_TRIANGLES +
                                                                                EYE_TRIANGLES))
        return leftovers.pop()

    assert close(1.5) is not None
    assert close(0.2) is None


def test_the_learned_redraw_accepts_a_margin(mesh_motion):
    # Grey: the model draws (a large colour face's lips close with its own, mirrored).
    photo, points, target = synthetic_face(mesh_motion, grey=True)
    model = tiny_model()
    narrow, wide = photo.copy(), photo.copy()
    narrow_box = learned_redraw(model, margin=1.0)(narrow, photo, points, target)
    wide_box = learned_redraw(model, margin=8.0)(wide, photo, points, target)
    assert np.any(narrow != photo, axis=2).sum() < np.any(wide != photo, axis=2).sum()
    assert wide_box[0] < narrow_box[0] and wide_box[2] > narrow_box[2]


def tiny_mouth_dataset(path: Path, mesh_motion) -> Path:
    rows = []
    for index in range(6):
        photo, points, target = synthetic_face(mesh_motion)
        mesh = target if index % 2 else points
        frame = MouthFrame.from_points(mesh)
        rows.append({"id": f"synthetic/{index}", "dataset": "london" if index == 0 else "genki4k",
                     "frame": frame.crop(photo), "points": frame.to_frame(mesh).astype(np.float32),
                     "gap": 0.12 if index % 2 else 0.02})
    DatasetDict({split: Dataset.from_list(rows, features=FEATURES) for split in ("train", "validation")}).save_to_disk(
        str(path))
    return path


def test_the_mouth_trains_through_the_loop(tmp_path, mesh_motion):
    from train.mouth_inpainter import MouthInpainterStep, MouthWindows

    data = tiny_mouth_dataset(tmp_path / "mouths", mesh_motion)
    windows = MouthWindows(Dataset.load_from_disk(str(data / "train")), seed=0)
    assert len(windows) == 4 + 3 * 2 + 2 * 1  # row 0: London, x4; rows 1, 3, 5: open, x2; rows 2, 4: once
    first, again = windows[1], windows[1]
    assert all(torch.equal(first[key], again[key]) for key in first)  # augmentation: a function of (seed, index)
    code = train_in_process(MouthInpainterStep, ["--data", data, "--output-dir", tmp_path / "run", "--cpu",
                                                 "--max-steps", 2, "--batch-size", 2, "--base-channels", 8,
                                                 "--residual-blocks", 1, "--report-to", "none", "--sample-every", 0,
                                                 "--checkpointing-steps", 0])
    assert code == 0
    final = tmp_path / "run" / "final"
    model = MouthInpainterModel.from_pretrained(final)
    assert model.discriminator is None and (final / "README.md").is_file()


def test_with_both_mouths_a_smile_gets_an_exemplar_and_a_round_mouth_the_cavity(mesh_motion):
    """A parting smile takes a stored smile's teeth, a mouth no stored smile fits (round, surprised) the dark cavity
    with the upper teeth's edges, as with the bank alone: the learned mouth only closes lips."""
    photo, points, smile = synthetic_face(mesh_motion)
    bank = model_class("mouth_exemplars").from_pretrained(CHECKPOINTS / "mouth_exemplars")
    model = tiny_model()
    both = warp_face(photo, points[:, :2], smile, mouth=model, exemplars=bank).image
    assert np.array_equal(both, warp_face(photo, points[:, :2], smile, mouth=bank).image)
    assert not np.array_equal(both, warp_face(photo, points[:, :2], smile).image)
    surprise = mesh_motion.target_points(points, "neutral", "surprise", 1.5)
    assert bank.closest(surprise[list(LIPS_INNER), :2]) is None
    both = warp_face(photo, points[:, :2], surprise, mouth=model, exemplars=bank).image
    assert np.array_equal(both, warp_face(photo, points[:, :2], surprise, mouth=bank).image)
    assert not np.array_equal(both, warp_face(photo, points[:, :2], surprise).image)  # the teeth's edges


def test_the_drawn_mouth_keeps_the_colours_around_it_and_its_own_luminance():
    """A green or yellow cast the network draws is held to the lips' and skin's colours around the hole (or grey:
    teeth stay white); its brightness is kept, and colours already among the surroundings pass unchanged."""
    from expr_models.faces.mouth_redraw import _CHROMA, _LUMA, within_surrounding_colours

    window = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), np.float32)
    window[...] = (190, 110, 110)  # lip-pink all around
    hole = np.zeros((FRAME_HEIGHT, FRAME_WIDTH), np.float32)
    hole[40:50, 30:100] = 1.0
    drawn = window.copy()
    drawn[40:50, 30:60] = (90, 160, 60)    # a green smear
    drawn[40:50, 60:80] = (235, 235, 235)  # a tooth
    drawn[40:50, 80:100] = (170, 95, 95)   # darker lip: the same hue
    out = within_surrounding_colours(drawn, window, hole)
    assert np.allclose(out @ _LUMA, drawn @ _LUMA, atol=1e-3)  # brightness as drawn
    pink, green, was = window[0, 0] @ _CHROMA.T, out[45, 45] @ _CHROMA.T, drawn[45, 45] @ _CHROMA.T
    low, high = np.minimum(pink, 0) - 1e-3, np.maximum(pink, 0) + 1e-3
    assert not np.all((low <= was) & (was <= high)) and np.all((low <= green) & (green <= high))  # held to pink..grey
    assert np.allclose(out[45, 70], drawn[45, 70], atol=1e-3)  # grey is always allowed
    assert np.allclose(out[45, 90], drawn[45, 90], atol=1e-3)  # a darker lip of the lips' own hue: unchanged
    assert np.array_equal(within_surrounding_colours(drawn, window, np.ones_like(hole)), drawn)  # nothing around it


def test_the_drawn_lips_take_the_person_s_own_tone():
    """The network draws lips of a typical tone; where the person's own are darker (lipstick) or lighter, the lips it
    draws inside the hole are shifted to their luminance (at most 60 grey levels); the skin it draws and everything
    outside the hole keep theirs."""
    from expr_models.faces.mouth_redraw import _LUMA, in_the_lips_own_tone

    drawn = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 170.0, np.float32)  # skin
    lips = np.zeros((FRAME_HEIGHT, FRAME_WIDTH), bool)
    lips[36:54, 20:108] = True
    drawn[lips] = 140.0  # typical lips
    hole = np.zeros((FRAME_HEIGHT, FRAME_WIDTH), np.float32)
    hole[30:60, 10:118] = 1.0
    out = in_the_lips_own_tone(drawn, hole, lips, 80.0)  # the person's dark lips
    assert abs(float(np.median(out[lips] @ _LUMA)) - 80.0) < 1.0
    assert np.allclose(out[31, 64], drawn[31, 64], atol=1e-3)  # skin drawn in the hole, past the feather of the lips
    assert np.array_equal(out[hole == 0], drawn[hole == 0])
    pale = in_the_lips_own_tone(drawn, hole, lips, 250.0)
    assert abs(float(np.median(pale[lips] @ _LUMA)) - 200.0) < 1.0  # at most 60 lighter
    assert np.array_equal(in_the_lips_own_tone(drawn, hole, np.zeros_like(lips), 80.0), drawn)  # no lips drawn


def test_lips_closing_part_of_the_way_slide_over_the_teeth_rather_than_squeeze_them():
    """``teeth_behind_the_lips``: each column of the target opening shows the input's interior around its middle
    line, row for row, where the target opens less than the input; pressed only where it opens further."""
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_INNER_UPPER
    from expr_models.faces.mouth_redraw import teeth_behind_the_lips

    def mouth(top: float, bottom: float) -> np.ndarray:
        points = np.zeros((468, 2))
        xs = np.linspace(60.0, 140.0, len(LIPS_INNER_UPPER))
        bulge = np.sin(np.linspace(0.0, np.pi, len(xs)))
        points[list(LIPS_INNER_UPPER)] = np.stack([xs, 100.0 - (100.0 - top) * bulge], axis=1)
        points[list(LIPS_INNER_LOWER)] = np.stack([xs, 100.0 + (bottom - 100.0) * bulge], axis=1)
        return points

    rows = np.arange(200, dtype=np.float64)[:, None]
    crop = np.repeat(np.clip(100.0 + 6.0 * (rows - 100.0), 0, 255), 200, axis=1).astype(np.uint8)  # a ramp per row
    crop = np.repeat(crop[..., None], 3, axis=2)
    image = np.full_like(crop, 30)
    box = teeth_behind_the_lips(image, crop, mouth(84.0, 116.0), mouth(94.0, 106.0))
    assert box is not None
    middle = image[97:104, 100, 0].astype(np.float64)
    assert np.abs(middle - crop[97:104, 100, 0]).max() <= 2  # slid: the same rows (squeezed: twice the slope)
    assert (image[:80] == 30).all() and (image[120:] == 30).all()  # nothing outside the opening
    # Opened further than the input: pressed into what the input showed.
    image = np.full_like(crop, 30)
    teeth_behind_the_lips(image, crop, mouth(94.0, 106.0), mouth(84.0, 116.0))
    assert image[86:115, 100, 0].min() >= crop[94, 100, 0] - 6 and image[86:115, 100, 0].max() <= crop[106, 100, 0] + 6
