"""The expression shading: a smile's folds darken where the committed map says, its undoing lightens them, a motion
with no smile or an untouched face changes nothing, and harder light shades deeper; the other expressions' furrows
shade only where and as far as they are asked for."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError

from expr_models.components import COMPONENT_BY_MODEL_TYPE, model_class
from expr_models.faces.mesh_topology import FACE_OVAL, LEFT_EYE, LEFT_NOSTRIL, RIGHT_EYE, RIGHT_NOSTRIL
from expr_models.faces.mesh_warp import warp_face
from expr_models.faces.shading import SMILE_POINTS, polygon_mask, skin_contrast, texture_points
from expr_models.models.expression_shading import ExpressionShadingConfig, ExpressionShadingModel

CHECKPOINT = Path("checkpoints/expression_shading")
SIZE = 400


@pytest.fixture(scope="module")
def shading():
    return model_class("expression_shading").from_pretrained(CHECKPOINT)


def synthetic_face(mesh_motion, light: float = 40.0, eye_distance: float = 130.0):
    """Textured skin lit from the left (``light``: the brightness swing across the face) under the mean mesh, and
    where a broad smile moves the mesh."""
    mean = mesh_motion.mean_mesh.detach().numpy().astype(np.float64)
    points = mean * eye_distance + [SIZE / 2, 190, 0]
    target = mesh_motion.target_points(points, "neutral", "happy", 1.0)
    rng = np.random.default_rng(0)
    ramp = np.linspace(-light, light, SIZE, dtype=np.float32)[None, :, None]
    photo = np.clip(150 + ramp + rng.normal(0, 6, (SIZE, SIZE, 1)).astype(np.float32), 0, 255).astype(np.uint8)
    return np.repeat(photo, 3, axis=2), points, target


def test_committed_map_is_small_registered_and_shaped_like_a_smile(shading):
    assert COMPONENT_BY_MODEL_TYPE["expr-expression-shading"] == "expression_shading"
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 2 ** 20
    config = shading.config
    ratio = shading.log_ratio.detach().numpy()
    assert ratio.shape == (config.texture_size, config.texture_size) and np.isfinite(ratio).all()
    texture = shading.texture_points
    outside = polygon_mask(texture[list(FACE_OVAL)], ratio.shape) == 0
    assert np.abs(ratio[outside]).max() == 0  # nothing outside the face
    # A smile deepens the nasolabial folds: the skin just outside the mouth corners darkens.
    corners = texture[[61, 291]]
    fold = [ratio[int(y) - 12:int(y) + 4, int(x) + dx - 4:int(x) + dx + 4].mean()
            for (x, y), dx in zip(corners, (-10, 10))]
    assert max(fold) < -0.02
    assert shading.smile_direction.shape == (len(SMILE_POINTS), 2) and config.people >= 50
    # The nostrils are holes that a smile moves, not skin: no brightening there (it drew white rims under noses).
    nostrils = np.zeros(ratio.shape, np.uint8)
    for part in (RIGHT_NOSTRIL, LEFT_NOSTRIL):
        cv2.fillPoly(nostrils, [cv2.convexHull(np.round(texture[list(part)]).astype(np.int32))], 1)
    assert ratio[nostrils > 0].max() < 0.03 and ratio.max() < 0.12  # 0.2 there before


def test_a_smile_shades_and_its_undoing_darkens_its_highlights(shading, mesh_motion):
    photo, points, target = synthetic_face(mesh_motion)
    assert shading.smile(points, target) == pytest.approx(1.0, abs=0.35)
    assert shading.smile(target, points) == pytest.approx(-shading.smile(points, target), abs=0.1)
    smiled, box = shading.shade_with_box(photo, points, target)
    undone = shading.shade(photo, target, points)
    # Only inside the face: every pixel outside the box, and outside the target face oval, keeps its bytes.
    face = polygon_mask(target[list(FACE_OVAL)], photo.shape[:2]) > 0
    assert np.array_equal(smiled[~face], photo[~face]) and np.array_equal(undone[~face], photo[~face])
    x0, y0, x1, y1 = box
    assert np.array_equal(np.delete(smiled, np.s_[y0:y1], axis=0), np.delete(photo, np.s_[y0:y1], axis=0))
    changed = np.abs(smiled.astype(int) - photo.astype(int)).max(2) > 0
    assert changed.sum() > 0.05 * face.sum()
    # Opposite signs: where the smile lifts highlights (the cheeks), its undoing darkens. (Its folds: an undoing
    # lifts the face's own, and this face has none; see the crease test below.)
    delta_smile = smiled.astype(np.float32).mean(2) - photo.mean(2)
    delta_undo = undone.astype(np.float32).mean(2) - photo.mean(2)
    darker, brighter = delta_smile < -2, delta_smile > 2
    assert darker.sum() > 100 and brighter.sum() > 100 and (delta_undo[brighter] < 0).mean() > 0.95


def test_no_smile_no_change(shading, mesh_motion):
    photo, points, _ = synthetic_face(mesh_motion)
    assert shading.smile(points, points) == 0
    same, box = shading.shade_with_box(photo, points, points)
    assert box is None and np.array_equal(same, photo)
    # A motion of the brows alone holds no smile either.
    brows = mesh_motion.target_points(points, "neutral", "neutral", 0.0, {"brows": 1.0})
    assert abs(shading.smile(points, brows)) < 0.05


def test_harder_light_shades_deeper(shading, mesh_motion):
    soft, points, target = synthetic_face(mesh_motion, light=5.0)
    hard, _, _ = synthetic_face(mesh_motion, light=60.0)
    assert skin_contrast(hard, points) > skin_contrast(soft, points)
    assert shading.amount(hard, points) > shading.amount(soft, points)
    flat = np.full_like(soft, 150)
    assert shading.amount(flat, points) == shading.config.min_amount
    # The same smile changes the hard-lit face more (relative to its own brightness).
    change = [np.abs(np.log(shading.shade(p, points, target).astype(np.float32) + 8) - np.log(p + 8.0)).mean()
              for p in (soft, hard)]
    assert change[1] > change[0]


def test_a_beard_is_not_taken_for_hard_light(shading, mesh_motion):
    # Stubble over the jaw, chin and upper lip: a large dark patch on the skin, which is not the light modelling
    # the face. The plain standard deviation read a held-out London man's as the set's hardest light.
    soft, points, _ = synthetic_face(mesh_motion, light=5.0)
    hard, _, _ = synthetic_face(mesh_motion, light=60.0)
    face = polygon_mask(points[list(FACE_OVAL)], soft.shape[:2]) > 0
    lower = face & (np.arange(SIZE)[:, None] > points[61, 1])  # below the mouth corners
    bearded = soft.copy()
    bearded[lower] = (bearded[lower] * 0.45).astype(np.uint8)
    assert lower.sum() > 0.15 * face.sum()
    assert skin_contrast(bearded, points) < 1.5 * skin_contrast(soft, points)
    assert shading.amount(bearded, points) < shading.amount(hard, points)


def test_warp_face_applies_it_after_the_warp(shading, mesh_motion):
    photo, points, target = synthetic_face(mesh_motion)
    plain = warp_face(photo, points[:, :2], target)
    shaded = warp_face(photo, points[:, :2], target, shading=shading)
    assert not np.array_equal(plain.image, shaded.image)
    assert np.array_equal(shaded.image, shading.shade(plain.image, points[:, :2], target))
    x0, y0, x1, y1 = shaded.box
    assert x0 <= plain.box[0] and y0 <= plain.box[1] and x1 >= plain.box[2] and y1 >= plain.box[3]
    untouched = warp_face(photo, points[:, :2], points[:, :2], shading=shading)
    assert np.array_equal(untouched.image, photo) and untouched.box is None


def test_save_load_round_trip_and_config_checks(shading, mesh_motion, tmp_path):
    shading.save_pretrained(tmp_path / "copy")
    again = ExpressionShadingModel.from_pretrained(tmp_path / "copy")
    photo, points, target = synthetic_face(mesh_motion)
    assert np.array_equal(again.shade(photo, points, target), shading.shade(photo, points, target))
    for bad, message in (({"min_amount": 2.0, "max_amount": 1.0}, "min_amount"),
                         ({"contrast_reference": 0.0}, "contrast_reference"), ({"smile_points": [468]}, "smile_points"),
                         ({"texture_size": 8}, "texture_size")):
        with pytest.raises(StrictDataclassClassValidationError, match=message):
            ExpressionShadingConfig(**bad)


def test_small_faces_are_shaded_too(shading, mesh_motion):
    """A face far smaller than the texture (an aligned 128-px crop) still gets its folds: the map is shrunk to the
    face first, not squeezed by the warp (which would count every triangle as folded)."""
    photo, points, target = synthetic_face(mesh_motion, eye_distance=30.0)
    shaded, box = shading.shade_with_box(photo, points, target)
    assert box is not None and (np.abs(shaded.astype(int) - photo.astype(int)).max(2) > 0).sum() > 200
    assert cv2.absdiff(shaded, photo).max() < 80


def test_undoing_a_smile_fades_the_face_s_own_creases_and_draws_no_pale_line_beside_them(shading, mesh_motion):
    """Taking a smile away fades this face's own fold, wherever it runs, to the level of the skin around it; the
    median fold of other faces, which lies beside it here, adds no pale line of its own (it only rises gently)."""
    from expr_models.faces.shading import apply_log_shading

    _, smiling, _ = synthetic_face(mesh_motion)  # the mean mesh: the face after the warp to neutral
    points = mesh_motion.target_points(smiling, "neutral", "happy", 1.0)  # the smile it came from
    neutral = smiling[:, :2]
    flat = np.full((SIZE, SIZE, 3), 150, np.uint8)
    eyes = np.linalg.norm(neutral[33] - neutral[263])
    fold = np.zeros((SIZE, SIZE), np.float32)
    for nose_wing, corner, side in ((129, 61, -1), (358, 291, 1)):  # a soft shadow from each nose wing past the corner
        start = neutral[nose_wing] + [side * 0.05 * eyes, 0]
        end = neutral[corner] + [side * 0.08 * eyes, 0.05 * eyes]
        cv2.line(fold, tuple(np.round(start).astype(int)), tuple(np.round(end).astype(int)), 1.0, 5)
    fold = cv2.GaussianBlur(fold, (0, 0), 2.0)
    creased = np.clip(flat - 40 * fold[..., None], 0, 255).astype(np.uint8)
    crease = fold > 0.5
    lifted = shading.shade(creased, points, neutral)  # the public path: undoing a smile
    weight = shading.smile(points, neutral) * shading.amount(creased, neutral)
    assert weight < 0
    plain, _ = apply_log_shading(creased, neutral, shading.texture_points, weight * shading.log_ratio.detach().numpy())

    def line_contrast(image):  # the change, less its blur over a tenth of an eye distance: lines, not slopes
        change = image.astype(np.float32).mean(2) - creased.mean(2)
        return change - cv2.GaussianBlur(change, (0, 0), 0.12 * eyes)

    brightened = plain.astype(int).mean(2) - creased.mean(2) > 2  # where the median fold would lift the skin
    beside = brightened & ~cv2.dilate(crease.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert beside.sum() > 100 and crease.sum() > 100
    assert line_contrast(plain)[beside].max() > 3  # the median fold alone draws a pale line there
    assert line_contrast(lifted)[beside].max() <= 1.5  # not with the crease lift
    depth_before = flat[crease].mean() - creased[crease].mean()
    depth_after = flat[crease].mean() - lifted[crease].mean()
    assert depth_before > 25 and depth_after < 0.5 * depth_before  # the face's own fold fades


def shadow_depths_when_a_smile_is_undone(shading, mesh_motion, draw) -> tuple[float, float]:
    """How dark a soft shadow is against flat skin before and after undoing a smile over it (grey levels, the mean over
    its core); ``draw(shadow, neutral points, eye distance)`` draws the shadow (0-1) onto ``shadow`` in place."""
    _, smiling, _ = synthetic_face(mesh_motion)
    points = mesh_motion.target_points(smiling, "neutral", "happy", 1.0)
    neutral = smiling[:, :2]
    flat = np.full((SIZE, SIZE, 3), 150, np.uint8)
    shadow = np.zeros((SIZE, SIZE), np.float32)
    draw(shadow, neutral, np.linalg.norm(neutral[33] - neutral[263]))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 1.5)
    photo = np.clip(flat - 40 * shadow[..., None], 0, 255).astype(np.uint8)
    lifted = shading.shade(photo, points, neutral)
    core = shadow > 0.7
    assert core.sum() > 20
    return flat[core].mean() - photo[core].mean(), flat[core].mean() - lifted[core].mean()


def test_undoing_a_smile_keeps_the_shadow_under_the_nose(shading, mesh_motion):
    """The philtrum's shadow under the nose is no smile fold: the lift leaves it (a lifted one drew a flat box under
    the nose with a hard edge at the nose's base)."""

    def under_the_nose(shadow, neutral, eyes):
        centre = np.round(0.6 * neutral[2] + 0.4 * neutral[0]).astype(int)  # just under the nose's base
        cv2.ellipse(shadow, tuple(centre), (int(0.12 * eyes), int(0.03 * eyes)), 0, 0, 360, 1.0, -1)

    before, after = shadow_depths_when_a_smile_is_undone(shading, mesh_motion, under_the_nose)
    assert after > 0.8 * before


def test_undoing_a_smile_leaves_the_shadow_under_the_eyes(shading, mesh_motion):
    """The sockets' and lower lids' shadow is no smile fold: the lift leaves it (lifted, it drew pale rings around
    48-px faces' eyes)."""

    def under_the_eyes(shadow, neutral, eyes):  # a band just under each eye, within a tenth of an eye distance of it
        for eye in (RIGHT_EYE, LEFT_EYE):
            lower = np.round(neutral[list(eye)].mean(0) + [0, 0.12 * eyes]).astype(int)
            cv2.ellipse(shadow, tuple(lower), (int(0.15 * eyes), int(0.03 * eyes)), 0, 0, 360, 1.0, -1)

    before, after = shadow_depths_when_a_smile_is_undone(shading, mesh_motion, under_the_eyes)
    assert after > 0.9 * before


def test_a_wide_blur_taken_at_a_coarser_scale_matches_the_full_one():
    from expr_models.faces.shading import smooth_blur

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (300, 360, 3)).astype(np.float32)
    image[100:200, 120:240] += 120.0  # an edge as well as noise
    assert np.array_equal(smooth_blur(image, 3.0), cv2.GaussianBlur(image, (0, 0), 3.0))  # small: the exact blur
    for sigma in (12.0, 40.0):
        full, fast = cv2.GaussianBlur(image, (0, 0), sigma), smooth_blur(image, sigma)
        inner = (slice(2 * int(sigma), -2 * int(sigma)),) * 2  # borders differ in how they extend the image
        assert fast.shape == image.shape and fast.dtype == np.float32
        assert np.abs(fast - full)[inner].max() < 0.01 * float(np.ptp(full[inner])) + 0.5  # measured 0.6 and 0.5


def test_committed_furrow_maps_cover_five_expressions_and_leave_eyes_and_mouth_alone(shading):
    config = shading.config
    assert tuple(config.class_names) == ("angry", "disgust", "fear", "sad", "surprise") and config.class_faces > 5000
    maps = shading.class_log_ratio.detach().numpy()
    side = config.class_texture_size
    assert maps.shape == (5, side, side) and np.isfinite(maps).all()
    scale = config.texture_scale * side / config.texture_size
    texture = texture_points(shading.mean_mesh.detach().numpy(), side, scale)
    outside = polygon_mask(texture[list(FACE_OVAL)], (side, side)) == 0
    assert np.abs(maps[:, outside]).max() == 0
    for point in (159, 386, 13, 14, 152):  # the eyes' upper lids, the lips, the chin: the warp and the mouth own them
        x, y = np.round(texture[point]).astype(int)
        assert np.abs(maps[:, y - 1:y + 2, x - 1:x + 2]).max() == 0
    # Anger, sadness and surprise act mostly above the eyes (brows, forehead), disgust on the nose and cheeks.
    eye_line = int(texture[list(RIGHT_EYE) + list(LEFT_EYE), 1].mean())
    upper = {name: float((m[:eye_line] ** 2).sum() / (m ** 2).sum()) for name, m in zip(config.class_names, maps)}
    assert min(upper["angry"], upper["sad"], upper["surprise"]) > 0.5 and upper["disgust"] < 0.5


def test_furrows_shade_only_the_expressions_asked_for(shading, mesh_motion):
    photo, points, _ = synthetic_face(mesh_motion)
    # No smile in the motion, no furrows asked (or none the model holds): the photo itself.
    for expressions in (None, {}, {"angry": 0.0}, {"happy": 1.0, "neutral": -1.0}):
        same, box = shading.shade_with_box(photo, points, points, expressions)
        assert box is None and np.array_equal(same, photo)
    angry, box = shading.shade_with_box(photo, points, points, {"angry": 1.0})
    undone = shading.shade(photo, points, points, {"angry": -1.0})
    face = polygon_mask(points[list(FACE_OVAL)], photo.shape[:2]) > 0
    assert box is not None and np.array_equal(angry[~face], photo[~face])
    delta, delta_undone = (image.astype(np.float32).mean(2) - photo.mean(2) for image in (angry, undone))
    moved = np.abs(delta) > 2
    assert moved.sum() > 0.02 * face.sum() and (np.sign(delta_undone[moved]) == -np.sign(delta[moved])).mean() > 0.95
    # Each class its own map; weights past the cap are clipped to it.
    assert not np.array_equal(angry, shading.shade(photo, points, points, {"surprise": 1.0}))
    capped = shading.config.max_class_weight
    assert np.array_equal(shading.shade(photo, points, points, {"angry": 10.0}),
                          shading.shade(photo, points, points, {"angry": capped}))


def test_warp_face_passes_the_expressions_to_the_shading(shading, mesh_motion):
    photo, points, _ = synthetic_face(mesh_motion)
    target = mesh_motion.target_points(points, "neutral", "angry", 1.0)
    unshaded = warp_face(photo, points[:, :2], target)
    plain = warp_face(photo, points[:, :2], target, shading=shading)
    furrowed = warp_face(photo, points[:, :2], target, shading=shading, expressions={"angry": 1.0, "sad": -1.0})
    assert np.array_equal(furrowed.image, shading.shade(unshaded.image, points[:, :2], target,
                                                        {"angry": 1.0, "sad": -1.0}))
    assert not np.array_equal(furrowed.image, plain.image)


def test_an_edit_adds_the_target_s_furrows_and_takes_the_source_s_away():
    from expr_models.methods.mesh import expression_weights

    assert expression_weights("angry", "sad", 0.5) == {"angry": 0.5, "sad": -0.5}
    assert expression_weights("neutral", "surprise", 1.0) == {"neutral": 1.0, "surprise": -1.0}
    assert expression_weights("happy", "happy", 1.0) == {}


def test_a_smile_s_shading_comes_with_happy_only_where_the_expressions_are_known(shading, mesh_motion):
    """Closing a surprise's jaw lifts the mouth corners too; with the edit's expressions known, a smile's shading
    needs happy among them, with its sign."""
    photo, points, target = synthetic_face(mesh_motion)
    assert shading.smile(points, target) > 0.5
    smiled = shading.shade(photo, points, target)
    assert np.array_equal(shading.shade(photo, points, target, {"happy": 1.0, "neutral": -1.0}), smiled)
    for expressions in ({"neutral": 1.0, "surprise": -1.0}, {"happy": -1.0}, {"neutral": 1.0}):
        # The furrows alone, where the face now is (a motion with no smile in it).
        assert np.array_equal(shading.shade(photo, points, target, expressions),
                              shading.shade(photo, target, target, expressions))


def test_taking_an_expression_away_brightens_the_skin_only_a_little(shading, mesh_motion):
    photo, points, _ = synthetic_face(mesh_motion)
    for name in shading.config.class_names:
        undone = shading.shade(photo, points, points, {name: -2.0})
        ratio = (undone.astype(np.float32) + 0.5) / (photo.astype(np.float32) + 0.5)
        assert ratio.max() <= np.exp(shading.config.max_class_lift) + 0.02
        assert ratio.min() < 0.97 or name == "sad"  # where the expression brightened, it darkens back fully


def test_lightening_adds_a_sheen_and_darkening_multiplies():
    """faces.tone.shaded: a lit patch of light skin keeps its colour differences and never clips (multiplied, its red
    channel grew fastest and clipped, an orange cast); a shadow scales every channel alike."""
    from expr_models.faces.tone import shaded

    skin = np.array([[[225.0, 180.0, 150.0], [120.0, 80.0, 60.0]]], np.float32)  # light and dark skin
    lit = shaded(skin, np.full((1, 2, 1), 1.25, np.float32))
    assert (lit <= 255.0).all() and (lit > skin).all()
    assert np.allclose(lit[..., 0] - lit[..., 2], skin[..., 0] - skin[..., 2])  # the same colour, brighter
    shadow = shaded(skin, np.full((1, 2, 1), 0.8, np.float32))
    assert np.allclose(shadow, skin * 0.8)
    grey = shaded(np.array([[100.0, 250.0]], np.float32), np.array([[1.5, 1.5]], np.float32))
    assert 140.0 < grey[0, 0] < 150.0 and 250.0 < grey[0, 1] <= 255.0  # rolled off below white


def test_lightening_rolls_off_below_white_and_keeps_the_grain():
    """A bright face's lit cheeks: cut off at white, every pixel of a grainy bright patch became 255 (a flat white
    patch); rolled off, the patch stays below white and keeps its grain in order, and a small lift on darker skin is
    nearly all of it."""
    from expr_models.faces.tone import shaded

    bright = np.linspace(200.0, 240.0, 41, dtype=np.float32)[None, :]
    lit = shaded(bright, np.full_like(bright, 1.3))
    assert (lit < 255.0).all() and (lit > bright).all()
    assert (np.diff(lit[0]) > 0).all()  # brighter pixels stay brighter: the grain survives
    dark = shaded(np.array([[60.0]], np.float32), np.array([[1.05]], np.float32))
    assert 62.9 < dark[0, 0] < 63.0  # nearly all of its 3 grey levels


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_channel_by_channel_reductions_give_numpy_s_numbers(channels, dtype):
    """The shading's per-pixel max and mean over the colour channels, taken channel by channel for speed, are the
    numbers numpy's own reductions give, to the last bit (the edits stay byte-identical)."""
    from expr_models.faces.tone import channel_max, channel_mean

    image = (np.random.default_rng(channels).random((37, 29, channels)) * 255).astype(dtype)
    assert np.array_equal(channel_max(image), image.max(axis=2))
    assert np.array_equal(channel_mean(image), image.mean(axis=2))
    assert channel_mean(image).dtype == image.mean(axis=2).dtype


def test_undoing_a_smile_fades_a_thin_crease_beside_the_chin_s_shadow(shading, mesh_motion):
    """A smile's fold is also a sharp line, which the warp carries round the mouth corners as they come in. Beside the
    chin's broad shadow it is hardly a valley against the skin 0.35 eye distances round; against the skin near it, it
    is, and it fades (scikit-image's astronaut kept two dark brackets round her mouth)."""
    _, smiling, _ = synthetic_face(mesh_motion)
    points = mesh_motion.target_points(smiling, "neutral", "happy", 1.0)
    neutral = smiling[:, :2]
    eyes = np.linalg.norm(neutral[33] - neutral[263])
    chin = np.zeros((SIZE, SIZE), np.float32)
    centre = np.round(neutral[152] + [0, -0.25 * eyes]).astype(int)  # a broad shadow over the chin and mouth corners
    cv2.ellipse(chin, tuple(centre), (int(0.6 * eyes), int(0.3 * eyes)), 0, 0, 360, 1.0, -1)
    chin = cv2.GaussianBlur(chin, (0, 0), 0.15 * eyes)
    line = np.zeros((SIZE, SIZE), np.float32)
    for corner, side in ((61, -1), (291, 1)):  # a thin crease beside each mouth corner, down into the shadow
        start = np.round(neutral[corner] + [side * 0.1 * eyes, -0.15 * eyes]).astype(int)
        end = np.round(neutral[corner] + [side * 0.1 * eyes, 0.15 * eyes]).astype(int)
        cv2.line(line, tuple(start), tuple(end), 1.0, 2)
    line = cv2.GaussianBlur(line, (0, 0), 1.0)
    skin = np.clip(170 - 40 * chin, 0, 255)
    photo = np.repeat(np.clip(skin - 40 * line, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    lifted = shading.shade(photo, points, neutral)
    core = line > 0.6
    assert core.sum() > 50

    def depth(image):  # how much darker the crease's core is than the same skin without it
        return float((skin[core] - image[core].astype(np.float32).mean(1)).mean())

    assert depth(photo) > 20 and depth(lifted) < 0.5 * depth(photo)
