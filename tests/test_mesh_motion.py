"""The canonical mesh frame and the mesh-motion model: head moves are no motion, controls move only their points,
intensity 0 moves nothing, and the model survives save/load."""

import numpy as np
import pytest
import torch

from expr_models.faces.mesh_motion import (STABLE_POINTS, canonical_displacement, denormalise, mean_mesh,
                                           normalise)
from expr_models.models.mesh_motion import CONTROLS, MeshMotionConfig, MeshMotionModel

N = 468


def _mesh(seed: int = 0) -> np.ndarray:
    """A 468-point 'mesh' in photo pixels: random points over a face-sized box (the frame only needs distinct eyes
    and stable points)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform([300, 200], [520, 480], (N, 2)), rng.normal(0, 10, (N, 1))], 1)


def _similarity(points: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    """Turned in the image plane, scaled and shifted; the depth column (when there is one) scaled alike."""
    c, s = np.cos(angle), np.sin(angle)
    return np.concatenate([scale * points[:, :2] @ np.array([[c, s], [-s, c]]) + np.asarray(shift),
                           scale * points[:, 2:]], 1)


def _turned_in_depth(points: np.ndarray, yaw: float) -> np.ndarray:
    """The head turned about the vertical axis (x and depth mix), around the points' centre."""
    c, s = np.cos(yaw), np.sin(yaw)
    centre = points.mean(0)
    return (points - centre) @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]) + centre


def _model(seed: int = 0) -> MeshMotionModel:
    rng = np.random.default_rng(seed)
    point_sets = [sorted(rng.choice(N, 30, replace=False).tolist()) for _ in CONTROLS]
    config = MeshMotionConfig(pairs=["neutral->happy", "happy->neutral", "neutral->surprise"],
                              subjects=[5, 5, 3], control_points=point_sets)
    model = MeshMotionModel(config)
    reference, _ = normalise(_mesh(seed))
    with torch.no_grad():
        model.mean_mesh.copy_(torch.from_numpy(reference))
        model.motions.copy_(torch.from_numpy(rng.normal(0, 0.02, (3, N, 3))))
        for k, points in enumerate(point_sets):
            model.directions[k, points] = torch.from_numpy(rng.normal(0, 0.03, (len(points), 3))).float()
    return model


def test_normalise_round_trip_and_eye_frame():
    points = _mesh()
    canonical, frame = normalise(points)
    assert np.allclose(denormalise(canonical, frame), points)
    from expr_models.faces.mesh_topology import LEFT_EYE, RIGHT_EYE

    right, left = canonical[list(RIGHT_EYE), :2].mean(0), canonical[list(LEFT_EYE), :2].mean(0)
    assert np.allclose(right, [-0.5, 0], atol=1e-9) and np.allclose(left, [0.5, 0], atol=1e-9)


def test_a_head_move_is_no_motion_and_an_expression_is():
    source = _mesh()
    moved = _similarity(source, 0.2, 1.3, [40, -25])
    assert np.abs(canonical_displacement(source, moved)).max() < 1e-9
    expression = source.copy()
    moving = np.arange(40, 60)
    expression[moving, :2] += 15.0  # 20 points that are not stable move in the photo
    assert not set(moving) & set(STABLE_POINTS)
    motion = canonical_displacement(source, _similarity(expression, 0.2, 1.3, [40, -25]))
    still = np.setdiff1d(np.arange(N), moving)
    assert np.abs(motion[still]).max() < 1e-9 and np.linalg.norm(motion[moving, :2], axis=1).min() > 0.01


def test_a_head_turned_in_depth_is_no_motion_in_3d_but_is_in_2d():
    source = _mesh()
    turned = _turned_in_depth(source, 0.25)
    assert np.abs(canonical_displacement(source, turned)).max() < 1e-9
    assert np.abs(canonical_displacement(source[:, :2], turned[:, :2])).max() > 0.01  # the plane frame cannot undo it


def test_mean_mesh_has_unit_eye_distance():
    mean = mean_mesh([_similarity(_mesh(0), a, s, [a * 100, 0]) for a, s in [(0.0, 1.0), (0.1, 1.5), (-0.2, 0.7)]])
    canonical, frame = normalise(mean)
    assert np.isclose(frame.scale, 1.0) and np.allclose(canonical, mean, atol=1e-9)


@pytest.mark.parametrize("control", CONTROLS)
def test_each_control_moves_only_its_points(control):
    model = _model()
    points = _mesh(1)
    names = model.config.control_points[list(CONTROLS).index(control)]
    others = np.setdiff1d(np.arange(N), names)
    for source, target in [("neutral", "neutral"), ("neutral", "happy")]:
        without = model.target_points(points, source, target, 1.0)
        with_control = model.target_points(points, source, target, 1.0, {control: 0.7})
        assert np.array_equal(with_control[others], without[others])  # bit-identical
        assert np.abs(with_control[names] - without[names]).max() > 0.1
    alone = model.target_points(points, "neutral", "neutral", 1.0, {control: -1.0})
    assert np.array_equal(alone[others], points[others, :2])


def test_intensity_zero_moves_nothing_and_intensity_scales():
    model = _model()
    points = _mesh(2)
    assert np.array_equal(model.target_points(points, "neutral", "happy", 0.0), points[:, :2])
    one = model.target_points(points, "neutral", "happy", 1.0) - points[:, :2]
    half = model.target_points(points, "neutral", "happy", 0.5) - points[:, :2]
    capped = model.target_points(points, "neutral", "happy", 9.0) - points[:, :2]
    assert np.allclose(half, one / 2) and np.allclose(capped, one * model.config.max_intensity)


def test_a_pair_without_data_goes_through_neutral():
    model = _model()
    through = model.pair_motion("happy", "surprise")
    assert np.allclose(through, model.pair_motion("happy", "neutral") + model.pair_motion("neutral", "surprise"))
    with pytest.raises(ValueError, match="holds"):
        model.pair_motion("neutral", "sad")
    with pytest.raises(ValueError, match="unknown control"):
        model.target_points(_mesh(), "neutral", "happy", 1.0, {"nose": 1.0})


def test_the_motion_follows_the_face_size_and_roll():
    model = _model()
    points = _mesh(3)
    turned = _similarity(points, 0.3, 2.0, [10, 20])
    motion = model.target_points(points, "neutral", "happy") - points[:, :2]
    motion_turned = model.target_points(turned, "neutral", "happy") - turned[:, :2]
    assert np.allclose(_similarity(motion, 0.3, 2.0, [0, 0]), motion_turned, atol=1e-6)
    yawed = _turned_in_depth(points, 0.3)  # a turned head: the motion turns with it, as a 3D face would move
    motion_yawed = model.target_points(yawed, "neutral", "happy") - yawed[:, :2]
    assert not np.allclose(motion, motion_yawed, atol=1e-3) and np.isfinite(motion_yawed).all()


def test_save_and_load_round_trip(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "mesh_motion")
    loaded = MeshMotionModel.from_pretrained(tmp_path / "mesh_motion")
    points = _mesh(4)
    controls = {"smile": 0.5, "brows": -0.3}
    assert np.array_equal(loaded.target_points(points, "neutral", "happy", 1.2, controls),
                          model.target_points(points, "neutral", "happy", 1.2, controls))
    assert loaded.config.control_points == model.config.control_points
    assert (tmp_path / "mesh_motion" / "README.md").is_file()


def _face_from_mean(model: MeshMotionModel, eye_distance: float = 130.0) -> np.ndarray:
    return model.mean_mesh.detach().numpy().astype(np.float64) * eye_distance + [200.0, 190.0, 0.0]


def test_mouth_open_opens_an_oval_that_keeps_the_lower_lip_whole(mesh_motion):
    """The committed ``mouth_open``: a real open mouth's shape. The corners drop a little with the jaw and the lower
    lip moves as a whole; held still while the lower lip beside them dropped (the old direction), the corners drew
    the lip between them into tall streaks."""
    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER, LIPS_OUTER_LOWER, MOUTH_CORNERS

    points = _face_from_mean(mesh_motion)
    opened = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    assert abs(inner_lip_gap(opened) - inner_lip_gap(points) - 0.3) < 0.02  # +1 parts the lips 0.3 eye distances
    drop = (opened - points[:, :2])[:, 1]
    middle = drop[LIPS_INNER_LOWER[5]]
    assert 0.1 * middle < drop[list(MOUTH_CORNERS)].min() and drop[list(MOUTH_CORNERS)].max() < 0.4 * middle
    thickness = lambda p: p[LIPS_OUTER_LOWER[5], 1] - p[LIPS_INNER_LOWER[5], 1]  # noqa: E731
    assert 0.7 < thickness(opened) / thickness(points) < 1.3
    beside_corner = drop[LIPS_INNER_LOWER[1]] - drop[LIPS_INNER_LOWER[0]]  # the inner lip's slope at its corner
    assert beside_corner < 0.5 * middle


def test_mouth_open_below_zero_closes_the_lips_by_that_share_of_their_opening(mesh_motion):
    from expr_models.faces.mesh import inner_lip_gap
    from expr_models.models.mesh_motion import CLOSED_LIP_GAP

    points = _face_from_mean(mesh_motion)
    opened = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    gap = inner_lip_gap(opened)
    assert abs(inner_lip_gap(mesh_motion.close_mouth(points, opened, 1.0)) - CLOSED_LIP_GAP) < 0.01
    half = inner_lip_gap(mesh_motion.close_mouth(points, opened, 0.5))
    assert abs(half - (gap + CLOSED_LIP_GAP) / 2) < 0.01
    # Only the control's own points move, and lips already closed stay as they are.
    names = mesh_motion.config.control_points[list(CONTROLS).index("mouth_open")]
    others = np.setdiff1d(np.arange(N), names)
    closed = mesh_motion.close_mouth(points, opened, 1.0)
    assert np.array_equal(closed[others], opened[others])
    pressed = mesh_motion.close_mouth(points, closed, 1.0)
    assert inner_lip_gap(pressed) > CLOSED_LIP_GAP - 0.01
    # A closed mouth asked to close: at most a pixel's motion, never the old fixed step up through the upper lip.
    shut = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": -1.0})
    assert np.abs(shut - points[:, :2]).max() < 1.0
