"""The mesh-motion edits through the editor: the four controls move only their own part of the face, the intensity
goes to 1.5, and every pixel outside the moved region keeps its bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from expr_models.errors import ExpressionEditError
from expr_models.faces.mesh import face_mesh
from expr_models.faces.mesh_topology import (LEFT_BROW, LEFT_EYE, LEFT_EYE_UPPER, LEFT_NOSTRIL, LIPS_INNER, LIPS_OUTER,
                                             RIGHT_BROW, RIGHT_EYE, RIGHT_EYE_UPPER, RIGHT_NOSTRIL)
from expr_models.pipeline import ExpressionEditor

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def editor():
    return ExpressionEditor.from_pretrained(CHECKPOINTS, num_threads=1)


@pytest.fixture(scope="module")
def mesh(editor, astronaut):
    box = editor.detect_faces(astronaut)[0]
    return face_mesh(astronaut, box, editor.model("face_mesh"), refine=True)


def changed_rows_and_columns(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    changed = np.abs(before.astype(int) - np.asarray(after).astype(int)).max(2) > 2
    assert changed.any(), "the edit changed nothing"
    ys, xs = np.nonzero(changed)
    return ys, xs


@pytest.mark.parametrize("control", ["smile", "mouth_open", "brows", "eyes"])
def test_each_control_moves_its_own_part_of_the_face_and_nothing_else(editor, astronaut, mesh, control):
    result = editor.edit(astronaut, method="mesh", target="neutral", intensity=0.0, **{control: 1.0},
                         read_expressions=False)
    ys, xs = changed_rows_and_columns(astronaut, result.image)
    eye_line = mesh[list(RIGHT_EYE) + list(LEFT_EYE), 1].mean()
    brow_line = mesh[list(RIGHT_BROW) + list(LEFT_BROW), 1].mean()
    eye_distance = np.linalg.norm(mesh[list(RIGHT_EYE), :2].mean(0) - mesh[list(LEFT_EYE), :2].mean(0))
    mouth_top = mesh[list(LIPS_OUTER), 1].min()
    if control == "brows":  # the brows and forehead, nothing at the mouth
        assert ys.max() < eye_line + 0.2 * eye_distance
    elif control == "eyes":  # the lids: around the eyes only
        assert ys.min() > brow_line - 0.2 * eye_distance and ys.max() < mouth_top - 0.2 * eye_distance
    elif control == "smile":  # the lips and cheeks (which lift up to the lower lids); the eyes and brows stay put
        assert ys.min() > eye_line
    else:  # the lower lip, chin and jaw
        assert ys.min() > eye_line + 0.4 * eye_distance


def test_controls_combine_with_a_target_and_the_intensity_goes_to_one_and_a_half(editor, astronaut):
    plain = np.asarray(editor.edit(astronaut, method="mesh", target="surprise", read_expressions=False).image)
    more = np.asarray(editor.edit(astronaut, method="mesh", target="surprise", intensity=1.5,
                                  read_expressions=False).image)
    with_brows = np.asarray(editor.edit(astronaut, method="mesh", target="surprise", brows=-1.0,
                                        read_expressions=False).image)
    assert not np.array_equal(plain, more) and not np.array_equal(plain, with_brows)
    with pytest.raises(ValueError, match=r"intensity must be in \[0, 1.5\]"):
        editor.edit(astronaut, method="mesh", target="happy", intensity=1.6)
    with pytest.raises(ValueError, match=r"control smile must be in \[-1, 1\]"):
        editor.edit(astronaut, method="mesh", target="happy", smile=2)
    with pytest.raises(TypeError, match="does not take 'grin'"):
        editor.edit(astronaut, method="mesh", target="happy", grin=1)


def test_a_mesh_edit_keeps_every_pixel_outside_the_blend_mask(editor, astronaut):
    result = editor.edit(astronaut, method="mesh", target="surprise")
    alpha = np.asarray(result.mask_image())
    assert np.array_equal(astronaut[alpha == 0], np.asarray(result.image)[alpha == 0])
    assert not np.array_equal(astronaut, np.asarray(result.image))


@pytest.mark.parametrize("method", ["sagan", "mesh"])
def test_an_edit_to_anger_adds_the_shading_s_furrows_on_the_face_only(editor, astronaut, method):
    shading = editor.model("expression_shading")
    furrowed = np.asarray(editor.edit(astronaut, method=method, target="angry", read_expressions=False).image)
    weight, shading.config.class_weight = shading.config.class_weight, 0.0
    try:
        bare = np.asarray(editor.edit(astronaut, method=method, target="angry", read_expressions=False).image)
    finally:
        shading.config.class_weight = weight
    ys, _ = changed_rows_and_columns(bare, furrowed)
    box = editor.detect_faces(astronaut)[0]
    assert box.y0 - 0.3 * box.height < ys.min() and ys.max() < box.y1 + 0.3 * box.height


@pytest.mark.parametrize("method", ["sagan", "mesh"])
def test_a_dropped_jaw_comes_to_rest_inside_the_crop(editor, astronaut, method):
    """A surprise drops the jaw: the warp's motion must fall to zero before the crop's edge, or the chin is cut off
    by a straight line with the photo's own neck below it (as in the training framing's tighter crop)."""
    from expr_models.faces.geometry import crop_square
    from expr_models.methods.mesh import MESH_CROP_SCALE

    box = editor.detect_faces(astronaut)[0]
    x0, y0, side = crop_square(box, MESH_CROP_SCALE)
    edited = editor.edit(astronaut, method=method, target="surprise", intensity=1.5, read_expressions=False).image
    ys, xs = changed_rows_and_columns(astronaut, edited)
    margin = 0.05 * side
    bottom = min(y0 + side, astronaut.shape[0])
    assert ys.max() < bottom - margin and xs.min() > max(x0, 0) + margin and xs.max() < x0 + side - margin


def test_closing_the_mouth_closes_what_the_generator_opened(editor, mesh):
    """``mouth_open`` below 0 closes the lips by that share of the opening the edit would leave (a GAN's smile, say),
    where a fixed step up along the direction lifted a closed lower lip through the upper one."""
    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.methods.mesh import with_controls
    from expr_models.models.mesh_motion import CLOSED_LIP_GAP

    motion = editor.model("mesh_motion")
    opened = motion.target_points(mesh, "neutral", "neutral", 0.0, {"mouth_open": 1.0})  # a generator's open mouth
    assert inner_lip_gap(opened) > 0.25
    assert abs(inner_lip_gap(with_controls(editor, mesh, opened, {"mouth_open": -1.0})) - CLOSED_LIP_GAP) < 0.01
    half = inner_lip_gap(with_controls(editor, mesh, opened, {"mouth_open": -0.5}))
    assert abs(half - (inner_lip_gap(opened) + CLOSED_LIP_GAP) / 2) < 0.01
    smiling = with_controls(editor, mesh, opened, {"smile": 1.0, "mouth_open": -1.0})
    assert abs(inner_lip_gap(smiling) - CLOSED_LIP_GAP) < 0.01 and not np.allclose(smiling[61], opened[61], atol=1)
    assert with_controls(editor, mesh, opened, {"mouth_open": 0.0}) is opened


def test_generators_that_move_no_mesh_refuse_the_controls(astronaut):
    from expr_models.models.cyclegan import CycleGANConfig, CycleGANModel

    painter = CycleGANModel(CycleGANConfig(resolution=32, generator_channels=8, n_residual_blocks=1,
                                           with_discriminators=False)).eval()
    editor = ExpressionEditor(models_dir=None, models={"cyclegan": painter}, num_threads=1)
    assert editor.supported_controls("cyclegan") == () and editor.max_intensity("cyclegan") == 1.0
    with pytest.raises(ExpressionEditError, match="takes no smile / mouth / brows / eyes controls"):
        editor.edit(astronaut, method="cyclegan", target="happy", smile=0.5, read_expressions=False)


def test_the_committed_gans_move_meshes_and_take_the_controls(editor):
    for method in ("cyclegan", "sagan", "mesh"):
        assert editor.supported_controls(method) == ("smile", "mouth_open", "brows", "eyes")
        assert editor.max_intensity(method) == 1.5


def test_the_learned_mouth_runs_under_the_editors_thread_cap(astronaut, monkeypatch):
    """Closing a toothy smile runs the learned mouth; with torch's default threads on a busy 2-core machine it took
    0.8 s instead of 0.1 s, so it must run under the editor's cap like every other network."""
    import torch

    from expr_models.models.mouth_inpainter import MouthInpainterModel

    seen = []
    inpaint = MouthInpainterModel.inpaint

    def counting(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return inpaint(self, *args, **kwargs)

    monkeypatch.setattr(MouthInpainterModel, "inpaint", counting)
    torch.set_num_threads(2)  # the fixture's single thread would hide a missing cap
    editor = ExpressionEditor.from_pretrained(CHECKPOINTS)  # num_threads "auto": generators get one thread
    editor.edit(astronaut, method="cyclegan", target="neutral")
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2


def test_lips_never_pass_through_each_other(mesh):
    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.faces.mesh import uncross_lips
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_INNER_UPPER
    from expr_models.methods.mesh import target_rules

    points = np.asarray(mesh, np.float64)
    upper, lower = list(LIPS_INNER_UPPER[1:-1]), list(LIPS_INNER_LOWER[1:-1])
    # A motion that closes the astronaut's open smile twice as far as it is open: the lower lip ends above the upper.
    folded = points[:, :2].copy()
    middle = (folded[upper] + folded[lower]) / 2
    folded[upper], folded[lower] = 2 * middle - folded[upper], 2 * middle - folded[lower]
    assert inner_lip_gap(np.c_[folded, points[:, 2]]) < -0.05
    others = np.setdiff1d(np.arange(len(points)), upper + lower)
    for mouth_open in (0.0, 1.0):  # whatever the user asks: lips that meet, not crossed
        fixed = target_rules(points, folded, "neutral", {"mouth_open": mouth_open})
        assert inner_lip_gap(np.c_[fixed, points[:, 2]]) == pytest.approx(0.0, abs=1e-9)
        assert np.array_equal(fixed[others], folded[others])
    met = uncross_lips(points, folded)  # the last resort: crossed pairs meet half-way
    assert np.allclose((met[upper] + met[lower]) / 2, middle)
    opened = points[:, :2].copy()  # lips that part are left as they are
    assert np.array_equal(target_rules(points, opened, "surprise", {}), opened)


def test_the_jaw_stops_where_the_lips_meet(mesh):
    """A motion that lifts the jaw further than the mouth is open (a gasp's closing, on a face whose mouth is barely
    open) stops with the lips together and as thick as they were, not squashed into a sliver by meeting half-way;
    what it does across the face, and above the mouth, is kept."""
    from expr_models.faces.mesh import down_the_face, _lip_gaps, eye_distance, inner_lip_gap, uncross_lips
    from expr_models.faces.mesh_topology import LIPS_OUTER_LOWER
    from expr_models.methods.mesh import target_rules

    points = np.asarray(mesh, np.float64)
    down = down_the_face(points)
    mouth = points[list(LIPS_INNER), :2].mean(0)
    below = (points[:, :2] - mouth) @ down > 0  # the lower lip, the chin and the jaw
    lift = (inner_lip_gap(points) + 0.1) * eye_distance(points)  # 0.1 eye distances past shut
    lifted = points[:, :2].copy()
    lifted[below] -= lift * down
    lifted += np.array([0.3, 0.0])  # and a sideways drift, which is not the jaw's
    brows = list(RIGHT_BROW) + list(LEFT_BROW)
    lifted[brows] += 2.0 * down  # the brows lower: not the mouth's business
    stopped = target_rules(points, lifted, "neutral", {})
    gaps = _lip_gaps(stopped, down)
    assert gaps.min() == pytest.approx(0.0, abs=1e-9)  # the lips meet, and none crossed
    assert 0 <= inner_lip_gap(np.c_[stopped, points[:, 2]]) < 0.5 * inner_lip_gap(points)
    lower_inner, lower_outer = [i for i in LIPS_INNER if below[i]], [i for i in LIPS_OUTER_LOWER if below[i]]

    def thickness(p):  # the lower lip's, down the face
        return (p[lower_outer, :2].mean(0) - p[lower_inner, :2].mean(0)) @ down

    assert thickness(stopped) > 0.85 * thickness(points)  # nearly whole: the middle pairs still meet half-way
    assert np.allclose((stopped - points[:, :2]) @ np.array([-down[1], down[0]]),
                       (lifted - points[:, :2]) @ np.array([-down[1], down[0]]))  # across the face: all kept
    assert np.allclose(stopped[brows], lifted[brows])
    squashed = uncross_lips(points, lifted)  # the rule before: the inner lips meet half-way, the outer go on
    assert thickness(squashed) < 0.6 * thickness(points)


def test_no_expression_closes_an_eye_to_a_slit_unless_the_user_asks(mesh):
    """A motion closes every face's lids by about the same distance, which shuts narrow eyes: the rules keep each eye
    at least EYE_FLOOR as open as it was (fear and surprise: as open), leave an opening motion alone, and let the eyes
    control close them."""
    from expr_models.faces.mesh import eye_openings
    from expr_models.methods.mesh import EYE_FLOOR, WIDENING_TARGETS, target_rules

    points = np.asarray(mesh, np.float64)
    opened = eye_openings(points)
    assert (opened > 0).all()
    shut = points[:, :2].copy()
    down = np.array([0.0, 1.0])
    for upper in (RIGHT_EYE_UPPER[1:-1], LEFT_EYE_UPPER[1:-1]):
        shut[list(upper)] += 0.8 * opened.max() * down  # the upper lids drop most of the way
    kept = target_rules(points, shut, "sad", {})
    assert np.allclose(eye_openings(np.concatenate([kept, points[:, 2:]], 1)), EYE_FLOOR * opened, rtol=0.02)
    untouched = [i for i in range(len(points)) if i not in set(RIGHT_EYE) | set(LEFT_EYE)]
    assert np.array_equal(kept[untouched], shut[untouched])  # only the eyes' contours
    assert np.array_equal(target_rules(points, shut, "sad", {"eyes": -0.5}), shut)
    wide = points[:, :2].copy()
    wide[list(RIGHT_EYE_UPPER[1:-1])] -= 0.3 * opened[0] * down
    assert np.array_equal(target_rules(points, wide, "surprise", {}), wide)
    # Fear and surprise widen real eyes: an edit to them keeps each eye at least as open as it was.
    for expression in WIDENING_TARGETS:
        kept = target_rules(points, shut, expression, {})
        assert np.allclose(eye_openings(np.concatenate([kept, points[:, 2:]], 1)), opened, rtol=0.02)
        assert np.array_equal(target_rules(points, shut, expression, {"eyes": -0.5}), shut)


def test_the_nostrils_move_whole(mesh):
    """A motion that pulls a nostril's rim apart (the generators lowered its outer end, not the columella's foot) would
    stretch the dark opening into a streak: the rules move each nostril's points by their mean motion, and no other
    point."""
    from expr_models.methods.mesh import target_rules

    points = np.asarray(mesh, np.float64)
    stretched = points[:, :2].copy()
    for nostril in (RIGHT_NOSTRIL, LEFT_NOSTRIL):
        nostril = list(nostril)
        outer = np.argsort(np.abs(points[nostril, 0] - points[1, 0]))[len(nostril) // 2:]  # the half nearer the cheek
        stretched[np.array(nostril)[outer]] += [0.0, 3.0]
    kept = target_rules(points, stretched, "surprise", {})
    for nostril in (list(RIGHT_NOSTRIL), list(LEFT_NOSTRIL)):
        motion = kept[nostril] - points[nostril, :2]
        assert np.allclose(motion, motion[0]) and np.allclose(motion[0], [0.0, 1.5])  # whole, half as far
    others = [i for i in range(len(points)) if i not in set(RIGHT_NOSTRIL) | set(LEFT_NOSTRIL)]
    assert np.array_equal(kept[others], stretched[others])


def test_a_smile_no_stored_mouth_fits_keeps_its_lips_together(editor):
    """A smile whose lips would part into a shape no stored smile fits (a round one) would get the dark cavity, a
    gasp: the rules keep the lips as they were, unless the user asks for an open mouth. A smile a stored one fits
    opens onto its teeth."""
    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.methods.mesh import target_rules
    from tests.test_mouth_fill import synthetic_face

    motion, bank = editor.model("mesh_motion"), editor.model("mouth_exemplars")
    _, points, smile = synthetic_face(motion)
    assert bank.closest(smile[list(LIPS_INNER)]) is not None
    fits = target_rules(points, smile, "happy", {}, bank)
    assert np.array_equal(fits[list(LIPS_INNER)], smile[list(LIPS_INNER)])
    round_mouth = motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    assert bank.closest(round_mouth[list(LIPS_INNER)]) is None
    kept = target_rules(points, round_mouth, "happy", {}, bank)
    gap = inner_lip_gap(np.c_[kept, points[:, 2]])
    assert gap <= inner_lip_gap(points) + 1e-9 < inner_lip_gap(np.c_[round_mouth, points[:, 2]])
    asked = target_rules(points, round_mouth, "happy", {"mouth_open": 1.0}, bank)
    assert np.array_equal(asked[list(LIPS_INNER)], round_mouth[list(LIPS_INNER)])
    gasp = target_rules(points, round_mouth, "surprise", {}, bank)  # a gasp is a gasp (its lips kept as bands)
    assert np.array_equal(gasp[list(LIPS_INNER)], round_mouth[list(LIPS_INNER)])


def test_a_face_read_as_neutral_is_undone_as_a_smile_only_with_some_smile_in_its_reading():
    """Asked for neutral, a face read as another expression is edited from it; one read as neutral is edited as from
    happy (a faint smile the reader missed) only where its reading gives happy at least SMILE_EVIDENCE, and otherwise
    as from neutral: undoing a smile that is not there narrowed an unsmiling man's mouth and greyed his chin."""
    from expr_models.methods.mesh import SMILE_EVIDENCE, source_for

    names = ("angry", "happy", "neutral", "sad", "surprise")
    assert source_for("sad", "neutral", names, 0.5) == "sad"
    assert source_for("neutral", "neutral", names, SMILE_EVIDENCE) == "happy"
    assert source_for("neutral", "neutral", names, SMILE_EVIDENCE / 10) == "neutral"
    assert source_for("neutral", "neutral", names) == "happy"  # no reading of a smile: as before
    assert source_for(None, "neutral", names, 0.0) == "happy"  # no reading at all
    assert source_for("happy", "happy", names, 0.9) == "neutral"  # other targets: as from neutral, made stronger


def test_a_neutral_target_closes_bared_teeth_unless_the_mouth_is_asked_open(mesh):
    """A snarl's teeth parted wide stay parted under a motion to neutral that is about the same on every face: the
    rule closes the lips to a neutral face's gap (part of the way at a lower intensity) and moves nothing else."""
    from expr_models.faces.mesh import down_the_face, _lip_gaps, eye_distance, inner_lip_gap
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER
    from expr_models.methods.mesh import NEUTRAL_LIP_GAP, target_rules

    points = np.asarray(mesh, np.float64).copy()
    down = down_the_face(points)
    lower = list(LIPS_INNER_LOWER[1:-1])
    points[lower, :2] += 0.15 * eye_distance(points) * down  # bared teeth: the lower lip dropped
    snarl = inner_lip_gap(points)
    assert snarl > 0.15
    unmoved = points[:, :2].copy()  # a motion that leaves the mouth as it is
    closed = target_rules(points, unmoved, "neutral", {})
    assert _lip_gaps(closed, down).max() / eye_distance(points) <= NEUTRAL_LIP_GAP + 1e-9
    others = np.setdiff1d(np.arange(len(points)), list(LIPS_INNER))
    assert np.array_equal(closed[others], unmoved[others])
    half = inner_lip_gap(np.c_[target_rules(points, unmoved, "neutral", {}, intensity=0.5), points[:, 2]])
    assert NEUTRAL_LIP_GAP < half < snarl
    assert np.array_equal(target_rules(points, unmoved, "neutral", {"mouth_open": 0.5}), unmoved)
    assert np.array_equal(target_rules(points, unmoved, "angry", {}), unmoved)


def test_anger_parts_the_lips_no_further_unless_the_mouth_is_asked_open(mesh):
    """The SA-GAN's anger parted the lips into a slit that stored smiles filled with a pale band; an angry face
    presses them together, so the rule keeps them as closed as they were."""
    from expr_models.faces.mesh import down_the_face, _lip_gaps, eye_distance
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER
    from expr_models.methods.mesh import target_rules

    points = np.asarray(mesh, np.float64)
    down = down_the_face(points)
    parted = points[:, :2].copy()
    parted[list(LIPS_INNER_LOWER[1:-1])] += 0.08 * eye_distance(points) * down
    before = np.maximum(_lip_gaps(points, down), 0.0)
    pressed = target_rules(points, parted, "angry", {})
    assert (_lip_gaps(pressed, down) <= before + 1e-6).all()
    assert np.array_equal(target_rules(points, parted, "angry", {"mouth_open": 0.3}), parted)
    assert (_lip_gaps(target_rules(points, parted, "sad", {}), down) > before + 1.0).any()  # other targets: as moved


def test_a_face_turned_past_the_limit_is_left_unchanged_with_a_note(editor, astronaut, mesh, monkeypatch):
    import expr_models.methods.mesh as mesh_method
    from expr_models.faces.mesh import FACE_SIDES, NOSE_TIP, head_turn

    assert abs(head_turn(mesh)) < 0.3  # the astronaut faces the camera
    real_crop_mesh = mesh_method.crop_mesh

    def profile(editor, face):  # the nose tip beyond the far cheek: a face seen from the side
        points = real_crop_mesh(editor, face)
        right, left = points[FACE_SIDES[0], :2], points[FACE_SIDES[1], :2]
        points[NOSE_TIP, :2] = left + 0.2 * (left - right)
        return points

    monkeypatch.setattr(mesh_method, "crop_mesh", profile)
    result = editor.edit(astronaut, method="cyclegan", target="happy", read_expressions=False)
    assert np.array_equal(np.asarray(result.image), astronaut)
    assert any(note.startswith("The face was left unchanged: it is turned about") and "up to about 44;" in note
               for note in result.notes), result.notes


def opened_wide(mesh_motion) -> tuple[np.ndarray, np.ndarray]:
    """A neutral mean face (eye distance 100 px) and where a smile with ``mouth_open`` +1 moves it, no rules yet."""
    points = mesh_motion.mean_mesh.detach().numpy().astype(np.float64) * 100.0 + [200.0, 200.0, 0.0]
    return points, mesh_motion.target_points(points, "neutral", "happy", 1.0, {"mouth_open": 1.0})


def test_the_lips_inner_rings_spread_evenly_between_their_contours(mesh_motion):
    """Only the inner lower lip dropped: the two rings between the contours follow it in proportion (the ring
    nearer the inner contour further), so no sliver of lip beside the corners takes the whole stretch; nothing else
    moves, and a face whose lips do not move keeps its exact points."""
    from expr_models.faces.mesh import spread_lips_evenly
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_LOWER_RINGS

    points = mesh_motion.mean_mesh.detach().numpy().astype(np.float64) * 100.0
    dropped = points[:, :2].copy()
    middle = list(LIPS_INNER_LOWER[1:-1])
    dropped[middle] += [0.0, 10.0]
    spread = spread_lips_evenly(points, dropped)
    semi_outer, semi_inner = (np.array(ring[1:-1]) for ring in LIPS_LOWER_RINGS)
    drop_outer = spread[semi_outer, 1] - points[semi_outer, 1]
    drop_inner = spread[semi_inner, 1] - points[semi_inner, 1]
    assert (drop_outer > 1.0).all() and (drop_inner > drop_outer).all() and (drop_inner < 10.0).all()
    rings = {int(i) for ring in LIPS_LOWER_RINGS for i in ring[1:-1]}
    others = [i for i in range(len(points)) if i not in rings]
    assert np.array_equal(spread[others], dropped[others])
    assert np.array_equal(spread_lips_evenly(points, points[:, :2]), points[:, :2])


def test_a_wide_open_mouth_keeps_its_lips_as_bands(mesh_motion):
    """A smile opened wide (``mouth_open`` +1): with the rules, the lower lip's outer contour turns with the inner
    one beside the corners, each lip's thickness stays within ``LIP_THICKENING`` of its own, the corners stay where
    the motion put them, and the lower lip's triangles grow at most half as much in area as without the rules (23
    times there, beside the corners, where the warp fanned the lip out into streaks; 10 with them)."""
    from expr_models.faces.mesh import LIP_THICKENING
    from expr_models.faces.mesh_topology import (LIPS_INNER_LOWER, LIPS_LOWER_RINGS, LIPS_OUTER_LOWER, MOUTH_CORNERS,
                                                 TRIANGLES)
    from expr_models.methods.mesh import target_rules

    points, moved = opened_wide(mesh_motion)
    kept = target_rules(points, moved, "happy", {"mouth_open": 1.0})
    outer, inner = np.array(LIPS_OUTER_LOWER[1:-1]), np.array(LIPS_INNER_LOWER[1:-1])
    before = np.linalg.norm(points[outer, :2] - points[inner, :2], axis=1)
    after = np.linalg.norm(kept[outer] - kept[inner], axis=1)
    assert (after >= LIP_THICKENING[0] * before - 1e-6).all() and (after <= LIP_THICKENING[1] * before + 1e-6).all()
    assert np.allclose(kept[list(MOUTH_CORNERS)], moved[list(MOUTH_CORNERS)])

    lip = [list(LIPS_OUTER_LOWER), list(LIPS_INNER_LOWER)]
    in_lip = set(lip[0]) | set(lip[1]) | {int(i) for ring in LIPS_LOWER_RINGS for i in ring}
    triangles = np.array([t for t in TRIANGLES if set(t) <= in_lip])

    def growth(target: np.ndarray) -> np.ndarray:
        def area(p):
            a, b, c = (p[triangles[:, k], :2] for k in range(3))
            return 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
        return area(target) / np.maximum(area(points), 1e-9)

    assert growth(moved).max() > 15 and growth(kept).max() < 0.5 * growth(moved).max()


def test_a_lower_lip_read_inside_a_dark_open_mouth_drops_to_its_floor(mesh_motion):
    """The mesh read a gasp half open: its inner lower lip lies 8 px above the floor of the dark cavity. The lower
    lip moves down to the floor at the middle, less towards the corners and the chin; the upper lip, the corners and
    the chin stay; a lit tongue at the cavity's bottom is part of the opening. A cavity that ends at the mesh's own
    lower lip, a bright (toothy) one and a closed mouth keep their points."""
    import cv2

    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.faces.mesh_topology import CHIN, LIPS_INNER_LOWER, LIPS_INNER_UPPER, MOUTH_CORNERS
    from expr_models.faces.mouth_opening import drop_jaw_to_open_mouth

    mean = mesh_motion.mean_mesh.detach().numpy().astype(np.float64)
    closed = mean * 100.0 + [200.0, 190.0, 0.0]
    points = closed.copy()
    points[:, :2] = mesh_motion.target_points(closed, "neutral", "surprise", 1.0)
    assert inner_lip_gap(points) > 0.1

    def photo(drop: float, cavity: int) -> np.ndarray:
        image = np.full((400, 400), 170, np.uint8)
        mouth = points[list(LIPS_INNER), :2].copy()
        lower = np.isin(list(LIPS_INNER), LIPS_INNER_LOWER[1:-1])
        mouth[lower, 1] += drop
        cv2.fillPoly(image, [np.round(mouth).astype(np.int32)], cavity)
        return image

    fitted = drop_jaw_to_open_mouth(photo(8.0, 20), points)
    middle = LIPS_INNER_LOWER[5]
    assert fitted[middle, 1] - points[middle, 1] == pytest.approx(8.0, abs=1.5)
    side = LIPS_INNER_LOWER[2]
    assert 0.0 < fitted[side, 1] - points[side, 1] < fitted[middle, 1] - points[middle, 1]
    kept = list(LIPS_INNER_UPPER) + list(MOUTH_CORNERS) + [CHIN]
    assert np.allclose(fitted[kept], points[kept])
    assert np.abs(fitted[:, 0] - points[:, 0]).max() < 0.5  # straight down the level face
    assert np.array_equal(drop_jaw_to_open_mouth(photo(0.0, 20), points), points)
    assert np.array_equal(drop_jaw_to_open_mouth(photo(8.0, 150), points), points)
    assert np.array_equal(drop_jaw_to_open_mouth(photo(8.0, 20), closed), closed)
    assert np.array_equal(drop_jaw_to_open_mouth(np.repeat(photo(8.0, 20)[..., None], 3, 2), points), fitted)
    # A lit tongue at the bottom of the cavity (grey 75, skin 170) is part of the opening: the lip reaches the floor.
    tongue = photo(8.0, 20)
    tongue[(tongue == 20) & (np.arange(400)[:, None] > points[middle, 1] + 3)] = 75
    assert drop_jaw_to_open_mouth(tongue, points)[middle, 1] - points[middle, 1] == pytest.approx(8.0, abs=1.5)
