import numpy as np
import pytest
from PIL import Image

from expr_models.faces.detection import FaceDetector, HaarFaceDetector, detect_faces
from expr_models.faces.geometry import CROP_SCALE, CropTransform, FaceBox, crop_face, face_mask, paste_back


# astronaut and grace_hopper come from tests/conftest.py


def _inside(box: FaceBox, x: float, y: float) -> bool:
    return box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def test_facebox_helpers():
    box = FaceBox(10, 20, 50, 100, 0.9)
    assert (box.width, box.height, box.area, box.center) == (40, 80, 3200, (30, 60))
    assert box.scaled(2).x1 == 100


def test_finds_the_astronaut(astronaut):
    boxes = detect_faces(astronaut)
    assert len(boxes) == 1
    assert _inside(boxes[0], 222, 112)  # between her eyes
    assert 70 < boxes[0].width < 130
    assert 0 < boxes[0].score <= 1


def test_finds_grace_hopper_from_pil(grace_hopper):
    boxes = detect_faces(Image.fromarray(grace_hopper))
    assert len(boxes) == 1
    assert _inside(boxes[0], 260, 220)


def test_finds_aligned_grayscale_face(astronaut):
    # A 256x256 grayscale, frontal, aligned portrait (JAFFE-like framing) made from the astronaut's face.
    box = detect_faces(astronaut)[0]
    crop, _ = crop_face(astronaut, box, 256, scale=2.0)
    gray = np.asarray(Image.fromarray(crop).convert("L"))
    boxes = detect_faces(gray)
    assert len(boxes) == 1
    assert _inside(boxes[0], 128, 120)


def test_no_face_in_coffee_or_gradient():
    from skimage import data

    assert detect_faces(data.coffee()) == []
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    assert detect_faces(gradient) == []


def test_several_faces_largest_first(astronaut):
    box = detect_faces(astronaut)[0]
    face, _ = crop_face(astronaut, box, scale=2.0)
    canvas = np.full((600, 900, 3), 200, np.uint8)
    sizes = [(40, 40, 260), (420, 60, 180), (650, 300, 140)]  # x, y, side
    for x, y, side in sizes:
        canvas[y:y + side, x:x + side] = np.asarray(Image.fromarray(face).resize((side, side)))
    boxes = detect_faces(canvas)
    assert len(boxes) == 3
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)
    for b, (x, y, side) in zip(boxes, sizes):
        assert _inside(b, x + side / 2, y + side / 2)


def test_min_size_filters_small_faces(astronaut):
    assert detect_faces(astronaut, min_size=150) == []
    assert detect_faces(astronaut, min_size=0.1) != []  # relative: 10% of the shorter side


def test_big_photo_is_searched_downscaled(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048)))
    boxes = detect_faces(big)
    assert len(boxes) == 1 and _inside(boxes[0], 222 * 4, 112 * 4)


def test_pluggable_detector():
    class Fixed:
        def detect(self, image):
            # torchvision-style output, with a box running off the photo
            return {"boxes": np.array([[10, 10, 40, 40], [-5, 0, 90, 80]]), "scores": np.array([0.5, 0.9]),
                    "masks": np.ones((2, 1, 64, 96), np.float32)}

    assert isinstance(Fixed(), FaceDetector) and isinstance(HaarFaceDetector(), FaceDetector)
    boxes = detect_faces(np.zeros((64, 96, 3), np.uint8), detector=Fixed())
    assert [b.score for b in boxes] == [0.9, 0.5]
    assert boxes[0].x0 == 0 and boxes[0].y1 == 64  # clipped to the photo
    assert boxes[0].mask.shape == (64, 96)


def test_crop_face_framing(astronaut):
    box = detect_faces(astronaut)[0]
    crop, transform = crop_face(astronaut, box, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert isinstance(transform, CropTransform)
    assert transform.side == round(box.width * CROP_SCALE)
    # The box centre maps to the crop centre, and back.
    cx, cy = transform.photo_to_crop(*box.center)
    assert abs(cx - 32) <= 1 and abs(cy - 32) <= 1
    assert np.allclose(transform.crop_to_photo(cx, cy), box.center)


def test_crop_face_native_size_is_exact(astronaut):
    box = detect_faces(astronaut)[0]
    crop, t = crop_face(astronaut, box)
    assert crop.shape == (t.side, t.side, 3)
    np.testing.assert_array_equal(crop, astronaut[t.y0:t.y0 + t.side, t.x0:t.x0 + t.side])


def test_crop_off_the_edge_is_padded():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    crop, t = crop_face(image, FaceBox(0, 0, 40, 40), 32)
    assert crop.shape == (32, 32, 3) and t.x0 < 0 and t.y0 < 0
    crop, _ = crop_face(image[..., 0], FaceBox(100, 80, 120, 100), 16)  # grayscale, bottom-right corner
    assert crop.shape == (16, 16)


def test_face_mask_is_feathered_and_zero_outside():
    mask = face_mask(128)
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask.max() == 1.0 and mask.min() == 0.0
    assert mask[0, 0] == 0 and mask[64, 2] == 0 and mask[2, 64] == 0  # border of the crop
    assert 0 < ((mask > 0) & (mask < 1)).mean() < 0.5  # a soft edge, not a hard cut
    seg = np.zeros((128, 128), np.float32)
    seg[:, :64] = 1
    half = face_mask(128, segmentation=seg)
    assert half[64, 100] < 0.01 and half[64, 30] > 0.9


def test_paste_back_changes_only_the_face(astronaut):
    box = detect_faces(astronaut)[0]
    crop, t = crop_face(astronaut, box, 64)
    edited = 255 - crop
    mask = face_mask(t.side)
    out = paste_back(astronaut, edited, t, mask)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    changed = (out != astronaut).any(-1)
    vx0, vy0, vx1, vy1 = t.visible_region()
    outside = np.ones_like(changed)
    outside[vy0:vy1, vx0:vx1] = mask[vy0 - t.y0:vy1 - t.y0, vx0 - t.x0:vx1 - t.x0] == 0
    assert changed.any()
    assert not changed[outside].any()  # byte-identical wherever the mask is 0
    cy, cx = (int(v) for v in reversed(box.center))
    assert changed[cy, cx]


def test_paste_back_identity_crop_is_lossless(grace_hopper):
    box = detect_faces(grace_hopper)[0]
    crop, t = crop_face(grace_hopper, box)
    out = paste_back(grace_hopper, crop, t, face_mask(t.side))
    np.testing.assert_array_equal(out, grace_hopper)


def test_paste_back_at_the_edge():
    image = np.full((100, 120, 3), 50, np.uint8)
    crop, t = crop_face(image, FaceBox(-10, 60, 40, 110), 32)
    out = paste_back(image, np.full_like(crop, 250), t, face_mask(32))
    assert out.shape == image.shape and (out > 50).any()
