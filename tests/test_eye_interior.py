"""The eyes under the mesh warp (expr_models.faces.eye_interior): the iris keeps its round shape while the lids move
over it, and the white of the eye (not a stretched copy of the iris) fills what they uncover."""

import cv2
import numpy as np
import pytest

import expr_models.faces.mesh_warp as mesh_warp
from expr_models.faces.mesh_topology import EYE_CONTOURS, LEFT_EYE, LEFT_EYE_LOWER, LEFT_EYE_UPPER, RIGHT_EYE, \
    RIGHT_EYE_LOWER, RIGHT_EYE_UPPER
from expr_models.faces.eye_interior import SteadyIris, _in_the_shade_beside, _white_beside_the_iris, draw_irises, \
    keep_irises
from expr_models.faces.mesh_warp import warp_face
from expr_models.models.mesh_motion import MeshMotionModel

SIZE = 400
SCLERA, IRIS, SKIN = 235, 40, 150


def drawn_face() -> tuple[np.ndarray, np.ndarray]:
    """A crop with two drawn eyes (white, a dark iris the lids cover at top and bottom) at the mean mesh's eyes."""
    mean = MeshMotionModel.from_pretrained("checkpoints/mesh_motion").mean_mesh.detach().numpy().astype(np.float64)
    points = mean[:, :2] * 130 + [200, 190]  # eye distance 130 px
    rng = np.random.default_rng(0)
    image = np.clip(SKIN + rng.normal(0, 3, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    for contour, upper in ((RIGHT_EYE, RIGHT_EYE_UPPER), (LEFT_EYE, LEFT_EYE_UPPER)):
        opening = np.zeros_like(image)
        cv2.fillPoly(opening, [np.round(points[list(contour)] * 16).astype(np.int32)], 1, shift=4)
        corners = points[[upper[0], upper[-1]]]
        centre = corners.mean(0)
        radius = 0.2 * np.linalg.norm(corners[1] - corners[0])
        disc = np.zeros_like(image)
        cv2.circle(disc, tuple(np.round(centre * 16).astype(int)), int(round(radius * 16)), 1, -1, shift=4)
        image[opening > 0] = SCLERA
        image[(opening > 0) & (disc > 0)] = IRIS
    return np.repeat(image[..., None], 3, axis=2), points


@pytest.fixture(scope="module")
def face():
    return drawn_face()


def plain_map(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The warp ``warp_face`` makes, without holding the irises."""
    held = mesh_warp.steady_irises
    mesh_warp.steady_irises = lambda *args, **kwargs: []
    try:
        return warp_face(image, source, target).image
    finally:
        mesh_warp.steady_irises = held


def widened(points: np.ndarray, amount: float) -> np.ndarray:
    """The lids moved apart by ``amount`` of each eye's width at their middle (the upper lid up, the lower down)."""
    target = points.copy()
    for upper, lower in ((RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), (LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        width = np.linalg.norm(points[upper[-1]] - points[upper[0]])
        for group, sign in ((upper, -1.0), (lower, 0.5)):
            for k, index in enumerate(group[1:-1], start=1):
                target[index, 1] += sign * amount * width * np.sin(np.pi * k / (len(group) - 1))
    return target


def iris_box(image: np.ndarray, points: np.ndarray, contour) -> tuple[int, int]:
    """Height and width of the dark (iris) pixels inside one eye's opening, its lash line (2 px) left out."""
    opening = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(points[list(contour)] * 16).astype(np.int32)], 1, shift=4)
    opening = cv2.erode(opening, np.ones((5, 5), np.uint8)) > 0
    ys, xs = np.nonzero(opening & (image[..., 0] < 100))
    return int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1


def test_a_widened_eye_keeps_a_round_iris_and_shows_white_around_it(face):
    image, points = face
    target = widened(points, 0.15)
    before = iris_box(image, points, RIGHT_EYE)
    steady = warp_face(image, points, target).image
    stretched = plain_map(image, points, target)  # for contrast
    height, width = iris_box(steady, target, RIGHT_EYE)
    assert abs(width - before[1]) <= 2 and height <= width + 2  # round: as wide as before, no taller than wide
    assert iris_box(stretched, target, RIGHT_EYE)[0] > height + 4  # the plain map stretched it
    assert height > before[0]  # the lids uncovered more of it
    # Above the iris's top, inside the opened eye, the white (not skin, not iris).
    x = int(round(points[list(RIGHT_EYE_UPPER), 0].mean()))
    column = steady[:, x, 0]
    top = int(np.ceil(target[RIGHT_EYE_UPPER[4], 1])) + 3
    assert (column[top:top + 3] > 180).all() or (column[top:top + 3] < 100).all()  # white, or the iris continued


def test_pixels_an_unmoved_eye_does_not_reach_keep_their_bytes(face):
    image, points = face
    target = points.copy()
    target[13:15, 1] += np.array([-3.0, 3.0])  # the lips part; the eyes stay
    result = warp_face(image, points, target).image
    for contour in (RIGHT_EYE, LEFT_EYE):
        x0, y0 = np.floor(points[list(contour)].min(0)).astype(int) - 3
        x1, y1 = np.ceil(points[list(contour)].max(0)).astype(int) + 3
        assert np.array_equal(result[y0:y1, x0:x1], image[y0:y1, x0:x1])


def test_a_nearly_shut_eye_keeps_the_plain_map(face):
    image, points = face
    shut = points.copy()
    for upper, lower in ((RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), (LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        middle = (points[list(upper)] + points[list(lower)]) / 2
        shut[list(upper)] = middle + (points[list(upper)] - middle) * 0.1
        shut[list(lower)] = middle + (points[list(lower)] - middle) * 0.1
    target = widened(shut, 0.1)
    assert np.array_equal(warp_face(image, shut, target).image, plain_map(image, shut, target))


def test_a_grey_crop_gets_the_same_eyes(face):
    """A one-channel crop is held and drawn as its three-channel copy is."""
    image, points = face
    target = widened(points, 0.15)
    grey = warp_face(np.ascontiguousarray(image[..., 0]), points, target).image
    colour = warp_face(image, points, target).image
    assert grey.ndim == 2 and np.array_equal(grey, colour[..., 0])


def test_a_blurred_iris_is_held_whole_with_no_ring_of_white_around_it(face):
    """A small face's eye is blurred, its iris's dark edge spread wide: the held disc must take all of it. Held at
    its sharp radius, the edge stayed outside the disc with white drawn between (a dartboard)."""
    image, points = face
    blurred = cv2.GaussianBlur(image, (0, 0), 5.0)
    target = widened(points, 0.15)
    edited = warp_face(blurred, points, target).image
    # Along the row through the iris's centre, the eye corners do not move and neither does the iris: the edit shows
    # the input's row (the white the lids uncovered lies above and below it), but for the held disc's softened edge.
    # Held at its sharp radius, rings of white 56-69 grey levels brighter than the input were drawn there.
    corners = points[[RIGHT_EYE_UPPER[0], RIGHT_EYE_UPPER[-1]]]
    y = int(round(corners[:, 1].mean()))
    x0, x1 = np.sort(np.round(corners[:, 0]).astype(int)) + [4, -4]
    difference = np.abs(edited[y, x0:x1, 0].astype(int) - blurred[y, x0:x1, 0].astype(int))
    assert difference.max() <= 30, difference


def test_the_white_a_stretched_iris_would_cover_comes_from_beside_the_iris():
    """A pixel the stretched map filled from the iris takes the input's white just beside the iris on the same row,
    not the flat mean of the white that shows (which a lid's shade pulls to grey)."""
    size = 40
    crop = np.full((size, size, 3), 120, np.uint8)  # shaded white everywhere ...
    crop[:, 26:34] = 230  # ... but bright just right of the iris (centre x 20, radius 5: reach 6.75 px)
    crop[15:25, 15:25] = 30  # the iris
    ghost = np.zeros((size, size), bool)
    ghost[20, 27] = True
    ghost_from = np.zeros((size, size, 2), np.float32)
    ghost_from[20, 27] = (24.0, 20.0)  # the stretched map sampled the iris's edge
    eye = SteadyIris(window=(0, 0, size, size), uncovered_iris=np.zeros_like(ghost), ghost=ghost, ghost_from=ghost_from,
                     opening=np.ones_like(ghost), shown=np.ones_like(ghost), centre=np.array([20.0, 20.0]),
                     radius=5.0, shift=np.zeros(2), iris_colour=np.array([30.0] * 3), crop=crop)
    spread = np.full((size, size, 3), 150.0, np.float32)
    from_centre = np.hypot(*np.meshgrid(np.arange(size) - 20.0, np.arange(size) - 20.0))
    white = _white_beside_the_iris(eye, spread, from_centre)
    assert white[20, 27, 0] >= 220  # the bright white beside the iris
    assert np.array_equal(white[~ghost], spread[~ghost])  # nothing else changes


def test_the_held_discs_edge_draws_no_pale_ring_where_nothing_was_drawn_beside_it():
    """The iris held a pixel smaller than it is (a sharp eye's dark limbus): its edge is softened only where a drawn
    part meets it. Mixed with the white everywhere, it drew a thin pale ring through the input's own dark iris edge,
    round the whole iris (London 006 opened to surprise)."""
    size = 40
    from_centre = np.hypot(*np.meshgrid(np.arange(size) - 20.0, np.arange(size) - 20.0))
    crop = np.where(from_centre[..., None] < 6.5, 30, 230).astype(np.uint8).repeat(3, axis=2)  # iris radius 6.5
    ghost = (from_centre > 6.0) & (from_centre < 8.0) & (np.arange(size)[None, :] > 26)  # drawn: right of the iris
    eye = SteadyIris(window=(0, 0, size, size), uncovered_iris=np.zeros_like(ghost), ghost=ghost,
                     ghost_from=np.zeros((size, size, 2), np.float32), opening=np.ones_like(ghost),
                     shown=np.ones_like(ghost), centre=np.array([20.0, 20.0]), radius=5.0, shift=np.zeros(2),
                     iris_colour=np.array([30.0] * 3), crop=crop)
    edited = draw_irises(crop.copy(), [eye])
    far_from_drawn = cv2.dilate(ghost.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(edited[far_from_drawn], crop[far_from_drawn])  # the input's own dark edge kept
    ring = (np.abs(from_centre - 5.0) < 1.0) & ~far_from_drawn
    assert edited[ring][:, 0].max() <= 130  # where the white was drawn, the edge between is no brighter than half way


def test_the_uncovered_top_of_the_iris_takes_the_shade_of_the_iris_beside_it():
    """An iris is lit from below and shaded by the upper lid: its lit lower half, mirrored over the top the lids
    uncovered, is darkened to the shown iris next to it, not drawn as a pale band above it."""
    size = 30
    kept = np.full((size, size, 3), 25.0, np.float32)  # the shaded iris that shows
    mirrored = np.full((size, size, 3), 60.0, np.float32)  # its lit lower half, mirrored
    drawn = np.zeros((size, size), bool)
    drawn[5:8, 8:22] = True  # the uncovered top
    iris_pixels = np.zeros_like(drawn)
    iris_pixels[8:20, 8:22] = True
    shaded = _in_the_shade_beside(mirrored, drawn, kept, iris_pixels, radius=10.0)
    assert np.abs(shaded[drawn] - 25.0).max() < 1.0
    assert np.array_equal(shaded[~drawn], mirrored[~drawn])


def test_no_iris_is_drawn_above_lid_skin_inside_the_mesh_contour(face):
    """A narrow eye's mesh contour lies on the lid: the input's opening holds a band of lid skin above the iris that
    shows. Opened wide, the iris the lids uncover above that band must not be drawn there, floating over the eye as a
    dark bar (London 005 to surprise); those pixels keep the warped lid."""
    image, points = face
    image = image.copy()
    upper = RIGHT_EYE_UPPER
    corners = points[[upper[0], upper[-1]]]
    centre = corners.mean(0)
    opening = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(points[list(RIGHT_EYE)] * 16).astype(np.int32)], 1, shift=4)
    rows = np.arange(image.shape[0])[:, None] < centre[1] - 5
    image[(opening > 0) & rows] = SKIN  # lid skin inside the contour, above the iris that shows
    steady = warp_face(image, points, widened(points, 0.15)).image
    column = steady[:, int(round(centre[0])), 0].astype(int)
    dark = np.flatnonzero(column[: int(centre[1])] < 100)
    assert len(dark) and np.all(column[dark.min():int(centre[1])] < 100)  # one dark run down to the centre: no bar


def opening_mask(image: np.ndarray, points: np.ndarray, contour) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(contour)] * 16).astype(np.int32)], 1, shift=4)
    return mask > 0


def test_a_redrawing_that_whitens_the_iris_gets_the_iris_back_and_keeps_the_rest(face):
    image, points = face
    drawn = image.copy()
    for contour in (RIGHT_EYE, LEFT_EYE):
        drawn[opening_mask(image, points, contour)] = SCLERA  # the learned eyes' fear: white over the iris
    drawn[:40] = 90  # a change away from the irises (the brows, say)
    redrawn = drawn.copy()
    keep_irises(redrawn, image, points, points, EYE_CONTOURS)
    for contour in (RIGHT_EYE, LEFT_EYE):
        assert iris_box(redrawn, points, contour) == iris_box(image, points, contour)
    irises = image[..., 0] == IRIS
    inside = cv2.erode(irises.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the disc's edge is soft
    assert (redrawn[inside] == IRIS).all()
    # Only the irises came back: the white drawn around them and the change elsewhere stay as drawn.
    differs = np.abs(redrawn.astype(int) - drawn).max(2) > 0
    beside_irises = cv2.dilate(irises.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (differs & (image[..., 0] == SCLERA) & ~beside_irises).any()
    assert (redrawn[:40] == 90).all()


def test_an_eye_that_shows_no_white_keeps_its_redrawing(face):
    image, points = face
    dark = image.copy()
    for contour in (RIGHT_EYE, LEFT_EYE):
        dark[opening_mask(image, points, contour)] = IRIS + 10  # a downcast eye: lashes and shadow, no white
    drawn = image.copy()  # a drawing that lightens them into an eye
    redrawn = drawn.copy()
    keep_irises(redrawn, dark, points, points, EYE_CONTOURS)
    assert (redrawn == drawn).all()
