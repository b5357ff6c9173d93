"""The full-resolution mesh warp: exact where nothing moves, affine where everything moves affinely, sharp, and a dark
cavity (never stretched lip) in a newly opened mouth."""

import cv2
import numpy as np
import pytest

import expr_models.faces.mesh_warp as mesh_warp
from expr_models.faces.mesh_warp import SAMPLING, SKIN_SAMPLING, anchor_ring, backward_map, warp_crop

SIZE = 400
MOUTH_Y = 270.0
INNER_X = (170.0, 190.0, 210.0, 230.0)


def _face_points() -> np.ndarray:
    """Rings of points over an elliptical face, none inside the mouth, then the mouth's contours (see _mouth)."""
    points = []
    for radius in np.linspace(0.25, 1.0, 6):
        for angle in np.linspace(0, 2 * np.pi, 24, endpoint=False) + radius:
            x, y = 200 + 140 * radius * np.cos(angle), 210 + 175 * radius * np.sin(angle)
            if ((x - 200) / 75) ** 2 + ((y - MOUTH_Y) / 32) ** 2 > 1:  # outside the lips
                points.append((x, y))
    return np.array(points)


def _mouth(gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Outer lip contour (12 points) and inner contour (10, in order round the mouth) with the inner lips ``gap``
    apart; a closed mouth's inner lips sit 0.3 px apart and a little offset, as a real mesh's do."""
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([200 + 62 * np.cos(angles), MOUTH_Y + 24 * np.sin(angles) + gap / 2 * (np.sin(angles) > 0)], 1)
    half = max(gap / 2, 0.15)
    upper = [(x + 0.4, MOUTH_Y - half) for x in INNER_X]
    lower = [(x, MOUTH_Y + half) for x in reversed(INNER_X)]
    inner = np.array([(150.0, MOUTH_Y)] + upper + [(250.0, MOUTH_Y)] + lower)
    return outer, inner


def _points(gap: float) -> tuple[np.ndarray, np.ndarray]:
    face = _face_points()
    outer, inner = _mouth(gap)
    points = np.concatenate([face, outer, inner])
    inner_index = np.arange(len(face) + len(outer), len(points))
    return points, inner_index


def _photo(points: np.ndarray, inner_index: np.ndarray, teeth: bool) -> np.ndarray:
    """Textured skin, red textured lips inside the outer contour, a dark seam or white teeth inside the inner one."""
    rng = np.random.default_rng(0)
    skin = np.array([200, 150, 120], np.float32) + rng.normal(0, 30, (SIZE, SIZE, 1)).astype(np.float32)
    image = np.clip(skin, 0, 255).astype(np.uint8)
    outer = points[inner_index[0] - 12:inner_index[0]]
    lips = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(lips, [np.round(outer).astype(np.int32)], 1)
    stripes = (np.indices((SIZE, SIZE))[0] % 6 < 3) * 40.0 + rng.normal(0, 15, (SIZE, SIZE))
    lip_colour = np.clip(np.array([170, 60, 70])[None, None] + stripes[..., None], 0, 255).astype(np.uint8)
    image[lips > 0] = lip_colour[lips > 0]
    inner = np.round(points[inner_index]).astype(np.int32)
    if teeth:
        cv2.fillPoly(image, [inner], (245, 245, 240))
    else:
        cv2.polylines(image, [inner], True, (40, 10, 15), 2)
    # Band-limited, as a photo is after its lens, demosaicing and compression (pixel-level white noise is not).
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def _luminance(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def test_identity_points_give_identical_bytes():
    points, inner = _points(0)
    photo = _photo(points, inner, teeth=False)
    result = warp_crop(photo, points, points.copy(), inner_lips=inner)
    assert result.image.tobytes() == photo.tobytes() and result.box is None and result.gap is None


def test_affine_motion_reproduces_warp_affine_inside_the_hull():
    points, inner = _points(0)
    photo = _photo(points, inner, teeth=False)
    angle, scale, shift = np.deg2rad(3.0), 1.03, np.array([2.5, -1.5])
    matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle)], [scale * np.sin(angle), scale * np.cos(angle)]])
    centre = np.array([200.0, 210.0])
    target = (points - centre) @ matrix.T + centre + shift
    forward = np.concatenate([matrix, (centre + shift - matrix @ centre)[:, None]], 1)
    expected = cv2.warpAffine(photo, forward, (SIZE, SIZE), flags=SKIN_SAMPLING, borderMode=cv2.BORDER_REFLECT)
    result = warp_crop(photo, points, target)  # no features given: the skin's kernel throughout
    hull = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(target).astype(np.int32)), 1)
    hull = cv2.erode(hull, np.ones((5, 5), np.uint8)) > 0
    difference = np.abs(result.image.astype(int) - expected.astype(int))[hull]
    # The same kernel; the two round sub-pixel positions to OpenCV's 1/32 px tables a little differently.
    assert difference.mean() < 0.1 and (difference > 1).mean() < 0.005 and difference.max() <= 8


def test_pixels_outside_the_anchor_ring_are_unchanged():
    points, inner = _points(0)
    photo = _photo(points, inner, teeth=False)
    rng = np.random.default_rng(1)
    target = points + rng.normal(0, 2.0, points.shape)
    result = warp_crop(photo, points, target)
    ring = anchor_ring(np.concatenate([points, target]), photo.shape[:2])
    inside = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(np.round(ring).astype(np.int32)), 1)
    inside = cv2.dilate(inside, np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(result.image[~inside], photo[~inside])
    assert not np.array_equal(result.image[inside], photo[inside])  # it did move something


def test_a_small_motion_keeps_the_mouth_sharp():
    points, inner = _points(0)
    photo = _photo(points, inner, teeth=False)
    target = points.copy()
    mouth = np.abs(points[:, 1] - MOUTH_Y) < 40
    target[mouth, 0] += (points[mouth, 0] - 200) * 0.04  # a little wider
    target[mouth, 1] -= np.abs(points[mouth, 0] - 200) * 0.03  # corners up
    result = warp_crop(photo, points, target, inner_lips=inner)
    box = (slice(250, 292), slice(150, 250))
    before = cv2.Laplacian(_luminance(photo)[box], cv2.CV_32F).var()
    after = cv2.Laplacian(_luminance(result.image)[box], cv2.CV_32F).var()
    assert after / before >= 0.9, after / before
    # The same map sampled bilinearly (the old path did that three times) fails this test.
    map_x, map_y, moved, (x0, y0, x1, y1) = backward_map(photo.shape[:2], points, target)
    bilinear = photo.copy()
    bilinear[y0:y1, x0:x1] = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    assert cv2.Laplacian(_luminance(bilinear)[box], cv2.CV_32F).var() / before < 0.9


@pytest.fixture
def one_kernel(monkeypatch):
    """The skin's kernel around the features too, where a test is about the map, not the kernel."""
    monkeypatch.setattr(mesh_warp, "SAMPLING", SKIN_SAMPLING)


def test_a_newly_opened_mouth_is_dark_and_filled_only_inside_the_gap(one_kernel):
    source, inner = _points(0)
    photo = _photo(source, inner, teeth=False)
    target, _ = _points(18)
    plain = warp_crop(photo, source, target)
    result = warp_crop(photo, source, target, inner_lips=inner)
    assert result.gap is not None
    gap = result.gap > 0
    mouth = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mouth, [np.round(target[inner]).astype(np.int32)], 1)
    assert gap.sum() > 0.7 * mouth.sum() and not (gap & (mouth == 0)).any()  # most of the gap, nothing outside
    assert np.array_equal(result.image[~gap], plain.image[~gap])
    rows, cols = np.indices((SIZE, SIZE))
    lips = _luminance(photo)[(np.abs(rows - 255) < 5) & (np.abs(cols - 200) < 30)]  # the upper lip
    core = result.gap >= 1
    assert _luminance(result.image)[core].mean() < 0.5 * lips.mean()
    assert _luminance(result.image)[core].std() < 10  # a plain cavity: no stretched stripes or seam


def test_lips_closing_over_teeth_cover_them():
    source, inner = _points(18)
    photo = _photo(source, inner, teeth=True)
    target, _ = _points(0)
    result = warp_crop(photo, source, target, inner_lips=inner)
    assert result.gap is None
    region = _luminance(result.image)[MOUTH_Y.__int__() - 30:int(MOUTH_Y) + 30, 140:260]
    teeth = _luminance(photo)[source[inner][:, 1].min().astype(int) + 3, 200]
    assert teeth > 230 and (region > 200).mean() < 0.002, (region > 200).mean()
    rows = _luminance(result.image)[int(MOUTH_Y) - 8:int(MOUTH_Y) + 9, 175:225]
    assert rows[8].mean() < 0.9 * np.delete(rows, [7, 8, 9], axis=0).mean()  # a darker seam line where they meet


@pytest.mark.parametrize("channels", [1, 3])
def test_grayscale_and_colour_crops(channels):
    points, inner = _points(0)
    photo = _photo(points, inner, teeth=False)
    photo = photo[..., :1].copy() if channels == 1 else photo
    target, _ = _points(10)
    result = warp_crop(photo[..., 0] if channels == 1 else photo, points, target, inner_lips=inner)
    assert result.image.shape == (photo.shape[:2] if channels == 1 else photo.shape)


def test_mesh_topology_path_is_exact_where_nothing_moves_and_affine_where_all_does(one_kernel):
    """warp_face: MediaPipe's own triangles inside the face oval, Delaunay only out to the anchor ring."""
    from expr_models.faces.mesh_warp import warp_face
    from expr_models.models.mesh_motion import MeshMotionModel

    mean = MeshMotionModel.from_pretrained("checkpoints/mesh_motion").mean_mesh.detach().numpy().astype(np.float64)[:, :2]
    points = mean * 130 + [200, 190]  # eye distance 130 px, in a 400 px crop
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), (0, 0), 1.0)
    assert warp_face(photo, points, points.copy()).image.tobytes() == photo.tobytes()
    shifted = warp_face(photo, points, points + [2.5, -1.25]).image
    expected = cv2.warpAffine(photo, np.float32([[1, 0, 2.5], [0, 1, -1.25]]), (SIZE, SIZE), flags=SKIN_SAMPLING,
                              borderMode=cv2.BORDER_REFLECT)
    hull = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points + [2.5, -1.25]).astype(np.int32)), 1)
    hull = cv2.erode(hull, np.ones((5, 5), np.uint8)) > 0
    difference = np.abs(shifted.astype(int) - expected.astype(int))[hull]
    assert difference.mean() < 0.1 and (difference > 1).mean() < 0.005


def test_the_sharp_kernel_samples_around_the_features_and_ramps_into_the_skins():
    """A pure shift of a grainy crop: Lanczos around the mouth (as warpAffine with it gives), cubic far from it."""
    source, inner = _points(0)
    rng = np.random.default_rng(3)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), (0, 0), 0.7)
    shift = np.array([1.5, -0.5])
    result = warp_crop(photo, source, source + shift, inner_lips=inner).image
    expected = {name: cv2.warpAffine(photo, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (SIZE, SIZE),
                                     flags=kernel, borderMode=cv2.BORDER_REFLECT)
                for name, kernel in (("sharp", SAMPLING), ("skin", SKIN_SAMPLING))}
    mouth = (slice(int(MOUTH_Y) - 5, int(MOUTH_Y) + 5), slice(185, 215))
    skin = (slice(90, 110), slice(190, 210))  # the forehead, far from the mouth
    for region, name, other in ((mouth, "sharp", "skin"), (skin, "skin", "sharp")):
        here = np.abs(result[region].astype(int) - expected[name][region]).mean()
        there = np.abs(result[region].astype(int) - expected[other][region]).mean()
        assert here < 0.2 < there, (name, here, there)


def test_where_triangles_overlap_the_nearer_one_is_drawn():
    """A turned face's far side folds behind its cheek, so the mesh's triangles overlap in the photo: the nearer
    (smaller depth) wins there whatever their order, and the anchor ring's triangles never cover the mesh's."""
    square = np.array([(30.0, 30.0), (70.0, 30.0), (70.0, 70.0), (30.0, 70.0)])
    first, second = (0, 1, 2), (0, 1, 3)  # both hold the top edge: they overlap in the triangle (p0, p1, centre)
    target = square.copy()
    target[2] += (4.0, 0.0)
    target[3] -= (4.0, 0.0)
    boundary = np.array([0, 1, 2, 3])

    def source_x(triangles, depth=None):
        map_x, _, covered, (x0, y0, _, _) = backward_map((100, 100), square, target, triangles=np.array(triangles),
                                                          boundary=boundary, depth=depth)
        assert covered[35 - y0, 50 - x0]
        return map_x[35 - y0, 50 - x0]  # a pixel inside the overlap

    alone_first, alone_second = source_x([first]), source_x([second])
    assert abs(alone_first - alone_second) > 0.5  # the two maps differ there
    second_nearer = np.array([0.0, 0.0, 5.0, -5.0])
    for order in ([first, second], [second, first]):
        assert source_x(order, second_nearer) == pytest.approx(alone_second, abs=1e-4)
        assert source_x(order, -second_nearer) == pytest.approx(alone_first, abs=1e-4)

    # A mesh triangle sticking out past the boundary (a far cheek beyond the face oval) keeps its own map where the
    # ring's triangles reach too.
    points = np.concatenate([square, [(50.0, 18.0)]])
    moved = points + (1.0, 0.0)  # the boundary moves too, so the ring's triangles there are drawn
    moved[4] += (5.0, 0.0)
    map_x, _, _, (x0, y0, _, _) = backward_map((100, 100), points, moved, triangles=np.array([(0, 1, 4)]),
                                               boundary=boundary)
    x, y = 55, 25  # inside the moved triangle (0, 1, 4), outside the boundary square
    expected = cv2.invertAffineTransform(cv2.getAffineTransform(points[[0, 1, 4]].astype(np.float32),
                                                                moved[[0, 1, 4]].astype(np.float32)))
    assert map_x[y - y0, x - x0] == pytest.approx(expected[0] @ (x, y, 1.0), abs=1e-3)
