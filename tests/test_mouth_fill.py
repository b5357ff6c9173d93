"""The mouth exemplars: the committed bank loads, and a newly opened mouth gets a real mouth's interior (teeth at the
top, brighter than the dark cavity, never blown out) only where the gap is."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from expr_models.components import COMPONENT_BY_MODEL_TYPE, model_class
from expr_models.faces.mesh_topology import LIPS_INNER, LIPS_OUTER
from expr_models.faces.mesh_warp import OWN_TEETH_MAX_STRETCH, warp_face
from expr_models.faces.mouth_fill import (FRAME_HEIGHT, FRAME_WIDTH, GASP_TEETH_SHOW, GASP_TEETH_TIPS,
                                          GAIN_RANGE, HIGHLIGHT_MAX, LAUGH_TEETH_SHOW, LAUGH_TEETH_TIPS, TEETH_CHROMA,
                                          TEMPLATE, Exemplar, edge_clarity, expected_teeth_level, incisal_edge, inset,
                                          laugh_teeth_show, lip_shape, log_chroma, luminance, opening_height, relight,
                                          teeth_level, to_mouth_frame)

BANK = Path("checkpoints/mouth_exemplars")
SIZE = 400


@pytest.fixture(scope="module")
def bank():
    return model_class("mouth_exemplars").from_pretrained(BANK)


def synthetic_face(mesh_motion, eye_distance: float = 130.0, grey: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed mouth on textured skin (the mean mesh, eye distance 130 px by default) in a 400-px photo, and where a
    broad smile moves it; ``grey``: the photo in grey (three equal channels)."""
    mean = mesh_motion.mean_mesh.detach().numpy().astype(np.float64)
    points = mean * eye_distance + [SIZE / 2, 190, 0]
    target = mesh_motion.target_points(points, "neutral", "happy", 1.5)
    rng = np.random.default_rng(0)
    skin = np.array([190, 140, 115], np.float32) + rng.normal(0, 12, (SIZE, SIZE, 1)).astype(np.float32)
    photo = np.clip(skin, 0, 255).astype(np.uint8)
    cv2.fillPoly(photo, [np.round(points[list(LIPS_OUTER), :2]).astype(np.int32)], (165, 70, 80))
    cv2.polylines(photo, [np.round(points[list(LIPS_INNER), :2]).astype(np.int32)], True, (50, 15, 20), 2)
    photo = cv2.GaussianBlur(photo, (0, 0), 1.0)
    if grey:
        photo = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return photo, points, target



def test_the_bank_loads_small_and_attributed(bank):
    assert COMPONENT_BY_MODEL_TYPE["expr-mouth-exemplars"] == "mouth_exemplars"
    n = bank.config.num_exemplars
    assert n >= 10 and len(bank.config.subjects) == n and min(bank.config.gaps) > 0.05
    interiors = bank.interiors.detach().float().numpy()
    assert interiors.shape == (n, 48, 128, 3) and interiors.min() >= 0 and interiors.max() <= 255
    assert np.array_equal(interiors, np.round(interiors))  # whole 0..255 values, exact in float16
    assert sum(f.stat().st_size for f in BANK.iterdir()) < 2 * 2 ** 20
    assert "doi:10.6084/m9.figshare.5047666.v5" in (BANK / "README.md").read_text()
    # The teeth are in the middle of each interior: brighter than its lips.
    middle = luminance(interiors[:, 16:32, 32:96]).mean((1, 2))
    assert (middle > luminance(bank.lip_colours.detach().numpy())).all()


def test_retrieval_picks_the_nearest_shape(bank):
    shapes = bank.shapes.detach().double().numpy()
    for index in (0, len(shapes) - 1):
        lips = shapes[index] * 120 + [300, 200]  # any scale and place: the shape is normalised
        assert np.array_equal(bank.closest(lips).interior, bank.exemplar(index).interior)


def test_the_mouth_frame_round_trips_a_polygon():
    lips = TEMPLATE * [1.5, 1.0] + [20, 30]
    photo = np.zeros((120, 250, 3), np.uint8)
    photo[:, :, 0] = np.arange(250)[None, :]
    frame = to_mouth_frame(photo, lips, amount=0.0)
    assert np.abs(frame[:, :, 0].astype(float) - (np.arange(128) * 1.5 + 20)).max() < 1.5
    assert np.allclose(lip_shape(lips), lip_shape(TEMPLATE * [1.5, 1.0]))
    assert np.allclose(inset(lips, 0.0), lips) and not np.allclose(inset(lips, 0.1), lips)


def stored_mouth(teeth: float, lips: float = 110.0) -> Exemplar:
    """A stored mouth whose upper half is teeth of luminance ``teeth`` over a dark cavity, under grey lips."""
    interior = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 40.0, np.float32)
    interior[:FRAME_HEIGHT // 2] = teeth
    return Exemplar(interior.astype(np.uint8), np.array([lips, lips, lips], np.float32))


def test_relight_gives_any_stored_mouth_the_teeth_the_persons_lips_predict():
    person = np.array([150.0, 110, 110])
    expected = expected_teeth_level(person)
    for teeth in (170.0, 215.0):  # a dull and a bright stored smile end alike
        exemplar = stored_mouth(teeth)
        lit = relight(exemplar.interior.astype(np.float32), exemplar, person)
        assert teeth_level(lit, person) == pytest.approx(expected, rel=0.02)
    # Darker lips, darker teeth; the law is a power below one: teeth do not darken as fast as lips.
    dark = np.array([70.0, 50, 50])
    assert expected_teeth_level(dark) < expected
    assert expected_teeth_level(dark) / expected > float(luminance(dark) / luminance(person))


def test_relight_clips_the_gain_and_never_burns_out():
    bright_lips = np.array([250.0, 250, 250])
    lit = relight(np.full((4, 4, 3), 250.0, np.float32), stored_mouth(150.0, lips=60.0), bright_lips)
    assert lit.max() < HIGHLIGHT_MAX
    dark = relight(np.full((4, 4, 3), 100.0, np.float32), stored_mouth(250.0), np.array([20.0, 10, 10]))
    # The gain stops however dark the person's lips (their red moves the colour, not the brightness).
    assert luminance(dark).min() >= GAIN_RANGE[0] * 100 - 1e-3


def test_relight_gives_stored_teeth_the_colour_the_persons_lips_predict():
    """Neutral stored teeth under warm lips (an orange-tinted print) come out warm, under cool lips cool: the teeth's
    log(R/G) and log(B/G) are the law's (``TEETH_CHROMA``), and their brightness is what it was."""
    exemplar = stored_mouth(150.0)
    (a_red, b_red), (a_blue, b_blue) = TEETH_CHROMA
    chromas = []
    for person in (np.array([120.0, 70, 55]), np.array([100.0, 90, 110])):  # teeth below the highlights' knee
        lit = relight(exemplar.interior.astype(np.float32), exemplar, person)
        teeth = lit[:FRAME_HEIGHT // 2]
        lips = log_chroma(person)
        assert log_chroma(teeth) == pytest.approx([a_red + b_red * lips[0], a_blue + b_blue * lips[1]], abs=0.01)
        assert teeth_level(teeth, person) == pytest.approx(expected_teeth_level(person), rel=0.02)
        chromas.append(log_chroma(teeth))
    assert chromas[0][0] > chromas[1][0] + 0.1 and chromas[0][1] < chromas[1][1] - 0.1


def test_a_warm_photo_gets_warm_teeth_and_gums(bank, mesh_motion):
    """The same face under a warm cast: the whole fill, teeth and the rest, is warmer by about the law's share of
    the cast (the lips' log(R/G) rises by 0.16 and log(B/G) falls by 0.32; the law takes about half)."""
    photo, points, target = synthetic_face(mesh_motion)
    warm = np.clip(photo * np.array([1.0, 0.85, 0.62]), 0, 255).astype(np.uint8)
    plain = warp_face(photo, points[:, :2], target, mouth=bank)
    tinted = warp_face(warm, points[:, :2], target, mouth=bank)
    core = plain.gap >= 1
    shift = log_chroma(tinted.image[core]) - log_chroma(plain.image[core])
    assert 0.05 < shift[0] < 0.16 and -0.32 < shift[1] < -0.1


def test_a_new_gap_gets_teeth_only_inside_it(bank, mesh_motion):
    photo, points, target = synthetic_face(mesh_motion)
    cavity = warp_face(photo, points[:, :2], target)
    filled = warp_face(photo, points[:, :2], target, mouth=bank)
    assert cavity.gap is not None and np.array_equal(cavity.gap, filled.gap)
    outside = cavity.gap <= 0
    assert np.array_equal(filled.image[outside], cavity.image[outside])
    core = cavity.gap >= 1
    rows = np.nonzero(core.any(1))[0]
    top = core & (np.arange(SIZE)[:, None] < rows.min() + (rows.max() - rows.min()) / 2)
    lum_filled, lum_cavity = luminance(filled.image), luminance(cavity.image)
    assert lum_filled[core].std() > 2 * lum_cavity[core].std() + 5  # not flat
    assert lum_filled[top].mean() > lum_cavity[top].mean() + 60  # teeth at the top, not a dark slot
    assert filled.image[core].max() < 250  # no pure-white teeth


def test_no_new_gap_means_identical_bytes(bank, mesh_motion):
    photo, points, target = synthetic_face(mesh_motion)
    smile = mesh_motion.target_points(points, "neutral", "happy", 0.3)
    for moved in (points[:, :2].copy(), smile):
        plain = warp_face(photo, points[:, :2], moved)
        if plain.gap is None:
            assert warp_face(photo, points[:, :2], moved, mouth=bank).image.tobytes() == plain.image.tobytes()
    assert warp_face(photo, points[:, :2], points[:, :2].copy(), mouth=bank).image.tobytes() == photo.tobytes()


def test_a_grey_photo_gets_a_grey_fill(bank, mesh_motion):
    photo, points, target = synthetic_face(mesh_motion)
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    filled = warp_face(grey, points[:, :2], target, mouth=bank).image
    assert not np.diff(filled.astype(int), axis=2).any()


def test_a_round_open_mouth_keeps_the_dark_cavity(bank, mesh_motion):
    """No smile's interior in a mouth no exemplar is shaped like (mouth_open=+1 parts the lips by 0.3 eye
    distances): the dark cavity, as a gasp's, with the upper teeth's edges under the upper lip and nothing else."""
    photo, points, _ = synthetic_face(mesh_motion)
    target = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    assert bank.closest(target[list(LIPS_INNER)]) is None
    cavity = warp_face(photo, points[:, :2], target)
    assert cavity.gap is not None
    filled = warp_face(photo, points[:, :2], target, mouth=bank).image
    gasp = warp_face(photo, points[:, :2], target, mouth=bank, dark_mouth=True).image
    assert filled.tobytes() == gasp.tobytes()
    lips = target[list(LIPS_INNER)]
    below_teeth = np.arange(SIZE)[:, None] > lips[:11, 1].max() + GASP_TEETH_SHOW * (1 + GASP_TEETH_TIPS) * np.ptp(
        lips[:, 0]) + 2
    same = np.all(filled == cavity.image, axis=2)
    assert same[np.broadcast_to(below_teeth, same.shape)].all() and not same.all()


def test_a_dark_mouth_hides_the_teeth_it_opens_over(bank, mesh_motion):
    """A smile showing teeth taken to a gasp: by default the map stretches the teeth over the taller opening; with
    ``dark_mouth`` the whole opening is the dark cavity (the exemplar bank is not asked to fill it), but for the
    edges of the upper teeth just under the upper lip."""
    photo, points, smile = synthetic_face(mesh_motion)
    smiling = warp_face(photo, points[:, :2], smile, mouth=bank).image  # a stored smile's teeth between the lips
    gasp = smile + mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 0.3}) - points[:, :2]
    inside = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(gasp[list(LIPS_INNER)]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((7, 7), np.uint8)) > 0
    stretched = warp_face(smiling, smile, gasp, mouth=bank).image
    dark = warp_face(smiling, smile, gasp, mouth=bank, dark_mouth=True)
    assert np.median(luminance(stretched)[inside]) > 100  # teeth
    lips = gasp[list(LIPS_INNER)]  # the band hangs from the upper lip between its corners (a gasp drops the corners)
    below_teeth = inside & (np.arange(SIZE)[:, None] > lips[1:10, 1].max()
                            + GASP_TEETH_SHOW * (1 + GASP_TEETH_TIPS) * np.ptp(lips[:, 0]) + 2)
    assert below_teeth.sum() > 0.4 * inside.sum()
    # Below the teeth the cavity, lighter towards the lower lip (the tongue's tint), nowhere near the teeth's 100+.
    assert np.percentile(luminance(dark.image)[below_teeth], 95) < 50 and dark.gap is not None
    # Outside the opening's feathered edge the two warps are the same bytes.
    edge = cv2.dilate(inside.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert np.array_equal(stretched[~edge], dark.image[~edge])


def stored_smile(edge_row: int = 36) -> Exemplar:
    """A stored mouth frame: pink lips above and below, upper teeth from row 6 down to ``edge_row``, dark below."""
    interior = np.empty((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    interior[:] = (170, 90, 95)
    interior[6:edge_row] = (225, 220, 205)
    interior[edge_row:FRAME_HEIGHT - 4] = (35, 15, 20)
    return Exemplar(interior, np.array([170.0, 90, 95], np.float32))


def test_the_incisal_edge_and_its_clarity():
    clean = stored_smile(36)
    assert np.abs(incisal_edge(clean.interior)[32:96] - 36).max() <= 1
    assert edge_clarity(clean) > 0.8
    lips_only = Exemplar(np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), (170, 90, 95), np.uint8), clean.lip_colour)
    assert edge_clarity(lips_only) < 0.1


def test_a_gasp_shows_the_upper_teeth_edges_under_the_upper_lip(bank, mesh_motion):
    """A mouth opened wide with ``dark_mouth`` on a colour photo: the stored teeth's edges show in a band under the
    upper lip's middle, brighter than the cavity, in the photo's colours when it is grey; below the band, at the
    corners and outside the opening the bytes are the plain cavity's."""
    photo, points, _ = synthetic_face(mesh_motion)
    target = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    plain = warp_face(photo, points[:, :2], target, dark_mouth=True)
    gasp = warp_face(photo, points[:, :2], target, mouth=bank, dark_mouth=True)
    assert plain.gap is not None and np.array_equal(plain.gap, gasp.gap)
    lips = target[list(LIPS_INNER)]
    width = float(np.ptp(lips[:, 0]))
    band = GASP_TEETH_SHOW * (1 + GASP_TEETH_TIPS) * width
    band_bottom = lips[:11, 1].max() + band + 2  # below it at every column
    rows, columns = np.arange(SIZE)[:, None], np.arange(SIZE)[None, :]
    middle = (np.abs(columns - lips[:, 0].mean()) < 0.15 * width) & (rows < lips[5, 1] + band) & (gasp.gap > 0)
    differs = np.any(gasp.image != plain.image, axis=2)
    assert differs[middle].mean() > 0.3
    assert np.percentile(luminance(gasp.image)[middle], 98) > np.percentile(luminance(plain.image)[middle], 98) + 60
    assert not differs[np.broadcast_to(rows > band_bottom, differs.shape)].any()
    assert not differs[plain.gap <= 0].any()
    assert not differs[np.broadcast_to(np.abs(columns - lips[:, 0].mean()) > 0.45 * width, differs.shape)].any()
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    grey_gasp = warp_face(grey, points[:, :2], target, mouth=bank, dark_mouth=True).image
    assert not np.diff(grey_gasp.astype(int), axis=2).any()


def test_a_laugh_shows_its_stored_smile_s_whole_upper_teeth():
    """A laugh's teeth keep the stored smile's proportions: as far below the lip as they showed there (the frame
    squeezes a stored opening 0.2 mouth widths tall into its 46 rows), at most ``LAUGH_TEETH_SHOW``."""
    smile = stored_smile(36)
    show, rows_per_width = laugh_teeth_show(smile, 0.2)
    assert rows_per_width == pytest.approx((FRAME_HEIGHT - 2) / 0.2)
    assert show == pytest.approx(35 / rows_per_width, abs=0.01) and GASP_TEETH_SHOW < show < LAUGH_TEETH_SHOW
    assert laugh_teeth_show(smile, 0.4)[0] == LAUGH_TEETH_SHOW  # a tall stored opening: capped


def test_a_smile_opened_wide_shows_a_laugh_s_upper_teeth(bank, mesh_motion):
    """Happy with the mouth opened past every stored smile: the dark opening shows the upper teeth reaching further
    below the upper lip than a gasp's edges (which read as a yawn), lit brighter, and only within the laugh's band,
    inside the gap."""
    photo, points, _ = synthetic_face(mesh_motion)
    target = mesh_motion.target_points(points, "neutral", "happy", 1.0, {"mouth_open": 1.0})
    assert bank.closest(target[list(LIPS_INNER)]) is None
    plain = warp_face(photo, points[:, :2], target)
    gasp = warp_face(photo, points[:, :2], target, mouth=bank, expression="surprise")
    laugh = warp_face(photo, points[:, :2], target, mouth=bank, expression="happy")
    assert np.array_equal(plain.gap, laugh.gap)
    lips = target[list(LIPS_INNER)]
    width = float(np.ptp(lips[:, 0]))
    middle = np.abs(np.arange(SIZE) - lips[:, 0].mean()) < 0.1 * width

    def lowest_tooth_row(image: np.ndarray) -> int:
        bright = (luminance(image) > luminance(plain.image) + 40)[:, middle].any(1)
        return int(np.flatnonzero(bright).max())

    assert lowest_tooth_row(laugh.image) > lowest_tooth_row(gasp.image) + 0.05 * width
    differs = np.any(laugh.image != plain.image, axis=2)
    band_bottom = lips[:11, 1].max() + LAUGH_TEETH_SHOW * (1 + LAUGH_TEETH_TIPS) * width + 2
    assert not differs[np.broadcast_to(np.arange(SIZE)[:, None] > band_bottom, differs.shape)].any()
    assert not differs[plain.gap <= 0].any()


def test_the_dark_cavity_is_deeper_in_the_middle_and_stays_in_its_gap(mesh_motion):
    """A mouth opened onto the cavity (no stored smile fits a round one): darker in the middle than at its rim (the
    light falls on the inside of the lips first), lighter towards the lower lip, only inside the gap, and the same
    bytes every time (its grain has a fixed seed)."""
    photo, points, _ = synthetic_face(mesh_motion)
    target = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"mouth_open": 1.0})
    first, second = warp_face(photo, points[:, :2], target), warp_face(photo, points[:, :2], target)
    assert first.gap is not None and np.array_equal(first.image, second.image)
    plain = warp_face(photo, points[:, :2], target, fill=lambda image, *_: image)  # the warp with nothing drawn
    outside = first.gap == 0
    assert not np.array_equal(first.image[~outside], plain.image[~outside])
    assert np.array_equal(first.image[outside], plain.image[outside])
    inside = (first.gap > 0.99).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    luma = cv2.GaussianBlur(luminance(first.image), (0, 0), 2.0)
    deep, rim = luma[depth >= 0.8 * depth.max()].mean(), luma[(depth > 0) & (depth <= 3)].mean()
    assert deep < rim


def test_stored_teeth_set_among_the_persons_own_take_their_colour(bank, mesh_motion):
    """A mouth already open onto teeth, opened further: the stored teeth filling the new gap take the colour of the
    person's own (each channel's mean over the gap near theirs), not the stored mouth's relit to the lips."""
    photo, points, _ = synthetic_face(mesh_motion)
    small = mesh_motion.target_points(points, "neutral", "happy", 0.5)
    big = mesh_motion.target_points(points, "neutral", "happy", 2.0)
    smiling = warp_face(photo, points[:, :2], small, mouth=bank).image
    own = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(own, [np.round(small[list(LIPS_INNER)]).astype(np.int32)], 1)
    smiling[own > 0] = (150, 200, 120)  # the person's own teeth, in a colour no stored mouth has
    wider = warp_face(smiling, small, big, mouth=bank)
    assert wider.gap is not None
    gap = wider.gap > 0.5
    assert gap.sum() >= 20
    own_colour = np.array([150, 200, 120], np.float32)
    assert np.abs(wider.image[gap].astype(np.float32).mean(0) - own_colour).max() < 20
    # A mouth that was closed has no teeth of its own to match: the stored ones keep their relit colour.
    fresh = warp_face(photo, points[:, :2], big, mouth=bank)
    assert np.abs(fresh.image[fresh.gap > 0.5].astype(np.float32).mean(0) - own_colour).max() > 20


def test_a_mouth_open_onto_its_own_teeth_opened_a_little_further_keeps_them(bank, mesh_motion):
    """A smile that shows teeth, opened 1.7 times taller: the whole opening is the person's own interior, stretched,
    not stored teeth in the new rows around the warped own ones (on the astronaut, a mosaic with a chipped tooth).
    Opened 2.2 times taller the stored mouth fills the new gap (the test above)."""
    photo, points, _ = synthetic_face(mesh_motion)
    smile = mesh_motion.target_points(points, "neutral", "happy", 0.75)
    broader = mesh_motion.target_points(points, "neutral", "happy", 1.5)
    assert 1.6 < opening_height(broader[list(LIPS_INNER)]) / opening_height(smile[list(LIPS_INNER)]) \
        < OWN_TEETH_MAX_STRETCH
    smiling = warp_face(photo, points[:, :2], smile, mouth=bank).image
    own = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(own, [np.round(smile[list(LIPS_INNER)]).astype(np.int32)], 1)
    # The person's own teeth: bright, darkening from right to left, a layout no stored mouth has.
    ys, xs = np.nonzero(own)
    shade = 0.55 + 0.45 * (xs - xs.min()) / max(np.ptp(xs), 1)
    smiling[ys, xs] = np.round(np.array([230, 225, 210])[None] * shade[:, None]).astype(np.uint8)
    wider = warp_face(smiling, smile, broader, mouth=bank)
    ys, xs = np.nonzero(wider.gap > 0.9)
    assert len(ys) >= 300
    # Where the opening is new, the interior follows the own teeth's layout (darker to the left); the stored teeth
    # there did not (correlation -0.2).
    assert np.corrcoef(xs, luminance(wider.image[ys, xs]))[0, 1] > 0.9
