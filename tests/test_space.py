"""The Space end to end through its API: launch it on localhost with tiny random checkpoints and call it with
gradio_client, as a visitor's script would."""

import os
import shutil
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

from expr_models.errors import ExpressionEditError  # noqa: E402

CHECKPOINTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")


def make_tiny_checkpoints(root):
    """Random tiny CycleGAN (neutral <-> happy), SA-GAN and classifier, and the committed average edit, face mesh and
    mesh motion (the mesh method and its controls); no style features, so NST is missing."""
    from expr_models import (CycleGANConfig, CycleGANModel, ExpressionClassifier, ExpressionClassifierConfig,
                             SAGANConfig, SAGANModel)

    torch.manual_seed(0)
    CycleGANModel(CycleGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                                 with_discriminators=False)).save_pretrained(root / "cyclegan")
    SAGANModel(SAGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                           with_discriminator=False)).save_pretrained(root / "sagan")
    ExpressionClassifier(ExpressionClassifierConfig(resolution=32, widths=(4, 8))).save_pretrained(root / "classifier")
    for component in ("average", "face_mesh", "mesh_motion"):
        shutil.copytree(os.path.join(CHECKPOINTS, component), root / component)
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
    # The mesh method takes the four controls and goes to 1.5; these CycleGAN and SA-GAN generators move no mesh.
    assert methods["mesh"]["available"] and methods["mesh"]["label"] == "Mesh motion"
    assert methods["mesh"]["controls"] == ["smile", "mouth_open", "brows", "eyes"]
    assert methods["mesh"]["max_intensity"] == 1.5
    for name in ("cyclegan", "sagan", "average"):
        assert methods[name]["controls"] == [] and methods[name]["max_intensity"] == 1.0


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


def changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    changed = np.abs(before.astype(int) - after.astype(int)).max(axis=-1) > 2
    assert changed.any(), "the edit changed nothing"
    return np.nonzero(changed)[0]


def test_control_sliders_move_only_their_part_and_reuse_the_uploads_detection(space, photos, detector):
    from expr_models.faces.mesh import face_mesh
    from expr_models.faces.mesh_topology import LEFT_BROW, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE
    from expr_models.pipeline import ExpressionEditor

    source = photos / "astronaut.png"
    with Image.open(source) as image:
        original = np.asarray(image.convert("RGB"))
    editor = ExpressionEditor.from_pretrained(CHECKPOINTS, num_threads=1)
    mesh = face_mesh(original, editor.detect_faces(original)[0], editor.model("face_mesh"), refine=True)
    eye_line = mesh[list(RIGHT_EYE) + list(LEFT_EYE), 1].mean()
    brow_line = mesh[list(RIGHT_BROW) + list(LEFT_BROW), 1].mean()
    eye_distance = np.linalg.norm(mesh[list(RIGHT_EYE), :2].mean(0) - mesh[list(LEFT_EYE), :2].mean(0))
    mouth_top = mesh[list(LIPS_OUTER), 1].min()

    session = Client(space.src, verbose=False)
    photo = handle_file(source)
    start = detector.calls
    session.predict(photo, api_name="/detect")  # the upload: what a slider's release edits again
    assert detector.calls == start + 1
    for control in ("smile", "brows", "eyes"):
        *_, details = session.predict(photo, "mesh", "neutral", 0.0, None, 20, api_name="/edit", **{control: 1.0})
        assert details["controls"] == {name: float(name == control) for name in ("smile", "mouth_open", "brows",
                                                                                   "eyes")}
        with Image.open(session.predict(api_name="/download")) as image:  # lossless, full size
            rows = changed_rows(original, np.asarray(image.convert("RGB")))
        if control == "smile":  # the lips and cheeks; the eyes and brows stay put
            assert rows.min() > eye_line
        elif control == "brows":  # the brows and forehead, nothing at the mouth
            assert rows.max() < eye_line + 0.2 * eye_distance
        else:  # the lids
            assert rows.min() > brow_line - 0.2 * eye_distance and rows.max() < mouth_top - 0.2 * eye_distance
    # A target with a control and an intensity past 1, as the mesh method allows.
    *_, details = session.predict(photo, "mesh", "happy", 1.5, None, 20, mouth_open=-0.5, api_name="/edit")
    assert details["intensity"] == 1.5 and details["controls"]["mouth_open"] == -0.5
    assert detector.calls == start + 1  # every edit reused the upload's detection


def test_controls_and_intensity_a_method_cannot_take_give_clear_errors(space, photos):
    photo = handle_file(photos / "astronaut.png")
    with pytest.raises(AppError, match=r"Average edit takes no smile control \(only the methods that move the face "
                                       r"mesh take them\); set it to 0 or pick Mesh motion"):
        space.predict(photo, "average", "happy", 1.0, None, 20, 0.5, api_name="/edit")
    with pytest.raises(AppError, match=r"SA-GAN takes no brows / eyes controls \(the generator of its checkpoint "
                                       r"moves no face mesh\); set them to 0"):
        space.predict(photo, "sagan", "sad", 1.0, None, 20, brows=0.3, eyes=-1.0, api_name="/edit")
    with pytest.raises(AppError, match="Intensity must be between 0 and 1 for CycleGAN"):
        space.predict(photo, "cyclegan", "happy", 1.2, None, 20, api_name="/edit")
    with pytest.raises(AppError, match="Value 1.5 is greater than maximum value 1.0"):  # Gradio's slider says so
        space.predict(photo, "mesh", "happy", 1.0, None, 20, mouth_open=1.5, api_name="/edit")
    # Zero controls are no controls: a method without them edits as before.
    *_, details = space.predict(photo, "average", "happy", 1.0, None, 20, 0.0, 0.0, 0.0, 0.0, api_name="/edit")
    assert details["method"] == "average" and details["controls"] == {}


def test_method_change_shows_the_controls_and_sets_the_intensity_range(tmp_path, detector):
    from space.actions import load_models
    from space.ui import build_demo

    demo = build_demo(load_models(make_tiny_checkpoints(tmp_path), detector=detector))
    method_changed = next(block.fn for block in demo.fns.values() if block.name == "method_changed")
    target, note, nst_options, intensity, controls, *sliders = method_changed("mesh", 1.0)
    assert controls["visible"] and intensity["maximum"] == 1.5 and intensity["value"] == 1.0
    assert len(sliders) == 4 and all("value" not in slider for slider in sliders)  # the visitor's values stay
    target, note, nst_options, intensity, controls, *sliders = method_changed("cyclegan", 1.4)
    assert not controls["visible"] and intensity["maximum"] == 1.0 and intensity["value"] == 1.0
    assert all(slider["value"] == 0.0 for slider in sliders)  # hidden controls go back to 0


def test_releasing_a_control_slider_edits_the_upload_again(tmp_path, photos, detector):
    from space.actions import load_models, open_upload, preview
    from space.ui import Upload, build_demo

    models = load_models(make_tiny_checkpoints(tmp_path), detector=detector)
    demo = build_demo(models)
    releases = [block for block in demo.fns.values() if block.name == "control_preview"]
    assert len(releases) == 4  # one per slider, in the session's queue with the other model-running events
    assert all(block.trigger_mode == "always_last" and block.concurrency_id == "cpu" for block in releases)
    control_preview = releases[0].fn
    assert all(isinstance(update, dict) and update.get("__type__") == "update"
               for update in control_preview(None, "mesh", "neutral", 0.0, None, 20, 1.0, 0.0, 0.0, 0.0, None))

    path = str(photos / "astronaut.png")
    upload = Upload(path, preview(models, open_upload(path), read=False).detection)
    start = detector.calls
    edited, before_after, faces, before, after, details, full_size = control_preview(
        path, "mesh", "neutral", 0.0, None, 20, 0.0, 0.0, -1.0, 0.0, upload)
    assert detector.calls == start and details["controls"]["brows"] == -1.0
    assert not np.array_equal(np.asarray(full_size.image), np.asarray(upload.detection.image))


def test_live_frames_take_the_controls(tmp_path, photos, detector):
    from space.actions import live_edit, load_models

    models = load_models(make_tiny_checkpoints(tmp_path), detector=detector)
    with Image.open(photos / "astronaut.png") as image:
        frame = np.asarray(image.convert("RGB"))
    plain, tracker = live_edit(models, None, frame, "mesh", "neutral", 0.0)
    assert np.array_equal(plain, frame)  # intensity 0 and no control: the frame as it came
    eyes, tracker = live_edit(models, tracker, frame, "mesh", "neutral", 0.0, {"eyes": 1.0})
    assert not np.array_equal(eyes, frame) and tracker.detections == 1  # the same face, tracked
    with pytest.raises(ExpressionEditError, match="CycleGAN takes no smile control"):
        live_edit(models, tracker, frame, "cyclegan", "happy", 1.0, {"smile": 0.5})
