"""The Space end to end through its API: launch it on localhost with tiny random checkpoints and call it with
gradio_client, as a visitor's script would."""

import os
import socket
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


def make_tiny_checkpoints(root):
    """Random tiny CycleGAN (neutral <-> happy), SA-GAN and classifier; no style features, so NST is missing."""
    from expr_models import (CycleGANConfig, CycleGANModel, ExpressionClassifier, ExpressionClassifierConfig,
                             SAGANConfig, SAGANModel)

    torch.manual_seed(0)
    CycleGANModel(CycleGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                                 with_discriminators=False)).save_pretrained(root / "cyclegan")
    SAGANModel(SAGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                           with_discriminator=False)).save_pretrained(root / "sagan")
    ExpressionClassifier(ExpressionClassifierConfig(resolution=32, widths=(4, 8))).save_pretrained(root / "classifier")
    return root


class CountingDetector:
    """The editor's default detector (RetinaFace), counting how often the Space runs it."""

    def __init__(self):
        from expr_models.faces.detection import RetinaFaceDetector

        self.inner = RetinaFaceDetector()
        self.calls = 0
        self.lock = threading.Lock()

    def detect(self, image):
        with self.lock:
            self.calls += 1
        return self.inner.detect(image)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    # The astronaut on a wider white canvas: a non-square photo catches a swapped width and height.
    canvas = np.full((512, 640, 3), 255, np.uint8)
    canvas[:, :512] = data.astronaut()
    Image.fromarray(canvas).save(folder / "astronaut.png")
    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp], -1)).save(folder / "no_face.png")
    (folder / "not_an_image.jpg").write_bytes(b"this is a text file, not a JPEG\n" * 20)
    (folder / "huge.png").write_bytes(png_header(12_000, 9_000))
    # Larger than the display size, with a colour profile: the views come back smaller, the download at full size.
    large = np.tile(np.linspace(40, 220, 1280, dtype=np.uint8)[None, :, None], (1024, 1, 3))
    large[:, :1024] = np.asarray(Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.BICUBIC))
    Image.fromarray(large).save(folder / "large_with_profile.png", icc_profile=srgb_profile())
    return folder


def srgb_profile() -> bytes:
    """An sRGB ICC profile (Pillow's; it carries its creation time, so two calls differ)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature and header claiming ``width x height`` with almost no data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def detector():
    return CountingDetector()


@pytest.fixture(scope="module")
def space(tmp_path_factory, detector):
    from space.actions import load_models
    from space.ui import build_demo, serve

    models_dir = make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    demo = build_demo(load_models(models_dir, detector=detector))
    serve(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_methods_endpoint_reports_what_is_available(space):
    summary = space.predict(api_name="/methods")
    methods = summary["methods"]
    assert methods["cyclegan"]["available"] and set(methods["cyclegan"]["targets"]) == {"neutral", "happy"}
    assert methods["sagan"]["available"] and "sad" in methods["sagan"]["targets"]
    assert not methods["nst"]["available"] and "style" in methods["nst"]["problem"]
    assert summary["classifier"]["available"]


def test_edit_returns_the_photo_at_its_size_with_readings(space, photos):
    edited, before_after, faces, before, after, details = space.predict(
        handle_file(photos / "astronaut.png"), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    with Image.open(edited) as image:
        assert image.size == (640, 512)
    assert len(before_after) == 2 and all(os.path.isfile(path) for path in before_after)
    assert os.path.isfile(faces)
    assert len(details["faces"]) >= 1 and details["method"] == "cyclegan" and details["target"] == "happy"
    assert details["timings"]["total"] > 0
    for reading in (before, after):  # the classifier's whole distribution for the largest face
        assert len(reading["confidences"]) == 7 and reading["label"] == reading["confidences"][0]["label"]
        assert abs(sum(c["confidence"] for c in reading["confidences"]) - 1.0) < 1e-3


def test_sagan_edits_to_any_of_its_classes(space, photos):
    edited, *_, details = space.predict(handle_file(photos / "astronaut.png"), "sagan", "surprise", 0.5, None, 20,
                                        api_name="/edit")
    with Image.open(edited) as image:
        assert image.size == (640, 512)
    assert details["target"] == "surprise"


def test_concurrent_requests_share_the_models(space, photos):
    photo = handle_file(photos / "astronaut.png")
    jobs = [space.submit(photo, method, target, 1.0, None, 20, api_name="/edit")
            for method, target in [("cyclegan", "happy"), ("sagan", "sad"), ("cyclegan", "neutral"), ("sagan", "fear")]]
    for job in jobs:
        edited, *_, details = job.result(timeout=60)
        with Image.open(edited) as image:
            assert image.size == (640, 512)


def test_no_face_gives_a_clear_error(space, photos):
    with pytest.raises(AppError, match="No face found"):
        space.predict(handle_file(photos / "no_face.png"), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")


def test_unreadable_or_huge_files_give_clear_errors(space, photos):
    with pytest.raises(AppError, match="not_an_image.jpg is not an image file"):
        space.predict(handle_file(photos / "not_an_image.jpg"), "cyclegan", "happy", 1.0, None, 20,
                      api_name="/edit")
    # Refused from the header, before anything is decoded.
    with pytest.raises(AppError, match="huge.png is 12000x9000 = 108.0 MP, more than the limit"):
        space.predict(handle_file(photos / "huge.png"), "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    with pytest.raises(AppError, match="Upload a photo first"):
        space.predict(None, "cyclegan", "happy", 1.0, None, 20, api_name="/edit")


def test_missing_checkpoint_and_unsupported_target_are_explained(space, photos):
    photo = handle_file(photos / "astronaut.png")
    with pytest.raises(AppError, match="style-transfer features"):
        space.predict(photo, "nst", "happy", 1.0, photo, 5, api_name="/edit")
    with pytest.raises(AppError, match="style-transfer features"):  # as the UI sends it: no target to pick
        space.predict(photo, "nst", None, 1.0, None, 5, api_name="/edit")
    with pytest.raises(AppError, match="can produce happy, neutral"):
        space.predict(photo, "cyclegan", "sad", 1.0, None, 20, api_name="/edit")


def test_detect_and_classify(space, photos):
    view, info = space.predict(handle_file(photos / "astronaut.png"), api_name="/detect")
    with Image.open(view) as image:
        assert image.size == (640, 512)
    assert info["size"] == [640, 512] and len(info["faces"]) >= 1
    x0, y0, x1, y1 = info["faces"][0]["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512

    reading = space.predict(handle_file(photos / "astronaut.png"), api_name="/classify")
    assert len(reading["confidences"]) >= 3
    with pytest.raises(AppError, match="No face found"):
        space.predict(handle_file(photos / "no_face.png"), api_name="/classify")

    view, info = space.predict(handle_file(photos / "no_face.png"), api_name="/detect")
    assert info["faces"] == []


def test_an_upload_detects_once_and_its_edit_reuses_the_detection(space, photos, detector):
    photo = handle_file(photos / "astronaut.png")
    start = detector.calls
    # What the UI runs when a photo is uploaded: detect, then classify the same photo (one session).
    view, info = space.predict(photo, api_name="/detect")
    reading = space.predict(photo, api_name="/classify")
    assert len(info["faces"]) == 1 and len(reading["confidences"]) == 7
    assert detector.calls == start + 1
    *_, before, after, details = space.predict(photo, "cyclegan", "happy", 1.0, None, 20, api_name="/edit")
    assert detector.calls == start + 1  # the session's upload was detected already
    assert before["label"] == reading["label"]  # the edit's reading of the photo is the upload's
    # Another photo in the same session is decoded and searched afresh.
    space.predict(handle_file(photos / "large_with_profile.png"), "cyclegan", "happy", 1.0, None, 20,
                  api_name="/edit")
    assert detector.calls == start + 2


def test_views_come_at_display_size_and_the_download_is_the_lossless_full_size_edit(space, photos):
    from expr_models.pipeline import ExpressionEditor
    from space.actions import DISPLAY_SIDE, blend_masks

    source = photos / "large_with_profile.png"
    edited, before_after, faces, *_ = space.predict(handle_file(source), "cyclegan", "happy", 1.0, None, 20,
                                                    api_name="/edit")
    for view in (edited, *before_after, faces):
        with Image.open(view) as image:
            assert image.size == (DISPLAY_SIDE, DISPLAY_SIDE * 1024 // 1280)

    path = space.predict(api_name="/download")  # built now, from this session's last edit
    assert path.endswith(".png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1280, 1024)
        profile = image.info.get("icc_profile")
        downloaded = np.asarray(image.convert("RGB"))
    with Image.open(source) as image:
        assert profile and profile == image.info["icc_profile"]  # the upload's colour profile, carried over
        original = np.asarray(image.convert("RGB"))
    # Outside the editor's blend masks (the same detector, so the same boxes) every pixel is the upload's.
    editor = ExpressionEditor(models_dir=None)
    outside = blend_masks(editor, editor.detect(source)) == 0
    assert 0.5 < outside.mean() < 1.0
    assert np.array_equal(downloaded[outside], original[outside])
    assert np.abs(downloaded.astype(int) - original).sum(axis=-1)[~outside].mean() > 1  # the face was edited


def test_download_before_any_edit_says_what_to_do(space):
    fresh = Client(space.src, verbose=False)  # a new session: nothing edited yet
    with pytest.raises(AppError, match="Edit a photo first"):
        fresh.predict(api_name="/download")


def test_actions_decode_and_detect_once(tmp_path, photos, detector):
    from space.actions import OutputFiles, full_size_png, load_models, open_upload, preview, run_edit

    models = load_models(make_tiny_checkpoints(tmp_path / "checkpoints"), detector=detector)
    start = detector.calls
    shown = preview(models, open_upload(photos / "astronaut.png"))
    assert detector.calls == start + 1 and len(shown.detection.boxes) == 1
    assert shown.view.size == (640, 512) and shown.info()["faces"][0]["face"] == 1
    out = run_edit(models, photos / "astronaut.png", "sagan", "happy", 0.5)
    assert detector.calls == start + 2
    face = out.result.faces[0]
    assert out.reading_before == face.reading_before == shown.reading  # the editor's readings, formatted only
    assert out.reading_after == face.reading_after and set(out.reading_after) == set(shown.reading)
    # With the upload's detection: no second decode or detection, the same edit.
    again = run_edit(models, photos / "astronaut.png", "sagan", "happy", 0.5, detection=shown.detection)
    assert detector.calls == start + 2
    assert np.array_equal(np.asarray(again.result.image), np.asarray(out.result.image))

    # The download: lossless, and outside the blend masks the upload's bytes.
    path = full_size_png(OutputFiles(tmp_path / "out"), out.full_size)
    with Image.open(path) as image:
        downloaded = np.asarray(image.convert("RGB"))
    original = np.asarray(out.result.original)
    outside = np.asarray(out.result.mask_image()) == 0
    assert np.array_equal(downloaded, np.asarray(out.result.image))
    assert np.array_equal(downloaded[outside], original[outside]) and not outside.all()


def test_unexpected_errors_are_logged_and_shown_as_a_generic_message(caplog):
    import gradio as gr
    from space.ui import guarded

    @guarded("edit the photo")
    def broken(photo):
        raise RuntimeError("internal detail")

    with pytest.raises(gr.Error) as caught:
        broken("photo.jpg")
    assert "went wrong on our side" in caught.value.message and "internal detail" not in caught.value.message
    assert "internal detail" in caplog.text


def test_a_broken_checkpoint_does_not_stop_the_space(tmp_path):
    from space.actions import load_models

    make_tiny_checkpoints(tmp_path)
    (tmp_path / "cyclegan" / "model.safetensors").write_bytes(b"not safetensors")
    models = load_models(tmp_path)
    assert not models.available("cyclegan") and "model.safetensors" in models.problem("cyclegan")
    assert models.available("sagan") and models.has_classifier
