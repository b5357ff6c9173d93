"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright's sync API.

Live mode is tested with Chromium's fake camera fed a .y4m written here from a package sample photo.

Skips where Playwright or Chromium is missing (`pip install playwright`, `apt-get install chromium`; Playwright's own
browser download is not needed). Saves a screenshot of an edited result to $SPACE_SCREENSHOT or
/tmp/space_screenshot.png.
"""

import os
import socket
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

from fake_camera import CHROMIUM_ARGS, camera_picture, chromium_path, write_y4m

pytestmark = pytest.mark.browser

SCREENSHOT = os.environ.get("SPACE_SCREENSHOT", "/tmp/space_screenshot.png")
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def playwright():
    """Playwright and the Chromium to launch: one Playwright per module (its sync API cannot be nested)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        yield playwright, executable


def launch(playwright, extra_args=()):
    playwright, executable = playwright
    try:
        return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS + list(extra_args),
                                          headless=True)
    except Exception as error:  # noqa: BLE001 - a Chromium that cannot start here is a missing browser
        pytest.skip(f"Chromium at {executable} does not start: {error}")


@pytest.fixture(scope="module")
def browser(playwright):
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def space_url(tmp_path_factory):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from expr_models import CycleGANConfig, CycleGANModel, ExpressionClassifier, ExpressionClassifierConfig
    from space.ui import build_demo, serve

    # Tiny random checkpoints: CycleGAN (neutral <-> happy) and the classifier; SA-GAN and NST are missing.
    models_dir = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    CycleGANModel(CycleGANConfig(resolution=32, generator_channels=4, n_residual_blocks=1,
                                 with_discriminators=False)).save_pretrained(models_dir / "cyclegan")
    ExpressionClassifier(ExpressionClassifierConfig(resolution=32, widths=(4, 8))).save_pretrained(
        models_dir / "classifier")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(models_dir=models_dir)
    serve(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from skimage import data

    canvas = np.full((512, 640, 3), 255, np.uint8)  # non-square, so a swapped width and height shows
    canvas[:, :512] = data.astronaut()
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(canvas).save(path)
    return path


def test_upload_edit_and_see_the_result(browser, space_url, photo):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    # The Space must work offline: refuse every request that leaves the server, and remember them.
    outside = []

    def only_local(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    page.goto(space_url)

    # Upload, and wait until the preview shows, so the click does not race the upload.
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.locator("#photo img").first.wait_for(state="visible")

    # An unavailable method says so; switching back to CycleGAN offers only its own two targets.
    page.locator("#method").get_by_text("SA-GAN (unavailable)").click()
    page.locator("#method-note").get_by_text("not available here").wait_for()
    page.locator("#method").get_by_text("CycleGAN", exact=True).click()
    page.locator("#method-note").get_by_text("CycleGAN can produce").wait_for()
    page.locator("#target input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    assert sorted(text.split()[-1] for text in options.all_inner_texts()) == ["happy", "neutral"]  # "✓ happy"
    page.get_by_role("option", name="happy").click()

    page.locator("#run").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('#edited img');"
        " return i && i.complete && i.naturalWidth > 0; }", timeout=TIMEOUT_MS)
    size = page.evaluate("() => { const i = document.querySelector('#edited img');"
                         " return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [640, 512]
    page.locator("#reading-after").get_by_text("happy").first.wait_for()  # the readings are filled in

    page.wait_for_timeout(300)  # let the progress overlay fade before the screenshot
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert not outside, f"The page tried to reach outside the server: {outside}"
    page.close()


def test_a_file_that_is_not_an_image_gets_a_clear_message(browser, space_url, tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"not really a JPEG\n" * 50)
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(space_url)
    page.locator("#photo input[type=file]").set_input_files(str(fake))
    # The upload's face search reports it at once, in words the visitor can act on.
    page.get_by_text("holiday.jpg is not an image file").first.wait_for()
    page.close()


# ---------------------------------------------------------------------------------------------------------------------
# Live mode with a fake camera
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def camera_page(playwright, tmp_path_factory):
    """A page of a Chromium whose camera films :func:`camera_picture`, with camera access granted."""
    video = tmp_path_factory.mktemp("camera") / "astronaut.y4m"
    write_y4m(video, camera_picture())
    browser = launch(playwright, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                  f"--use-file-for-fake-video-capture={video}"])
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    browser.close()


def shown_live_frames(page, count: int, timeout_s: float = 60.0) -> tuple[list[np.ndarray], float]:
    """The next ``count`` distinct edited frames the page shows, and how many it showed per second meanwhile."""
    import io
    import time

    frames, seen, started, first = [], set(), time.monotonic(), None
    while len(frames) < count:
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"only {len(frames)} live frames shown in {timeout_s:.0f} s")
        source = page.evaluate("() => { const i = document.querySelector('#live-output img'); return i && i.src; }")
        if source and source not in seen:
            seen.add(source)
            response = page.request.get(source)
            assert response.ok, source
            try:
                frames.append(np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB")))
            except UnidentifiedImageError:
                # The fake camera repeats one picture, so Gradio caches equal frames under one name and may rewrite
                # that file while this second request reads it; the page itself has moved on to the next frame.
                continue
            first = first or time.monotonic()
        page.wait_for_timeout(10)
    return frames, (len(frames) - 1) / max(time.monotonic() - first, 1e-6)  # from the first frame shown


def test_live_mode_edits_the_webcam_stream(camera_page, space_url):
    page = camera_page
    page.goto(space_url)
    page.get_by_role("tab", name="Live webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    page.locator("#live-input").get_by_role("button", name="capture photo").click()  # "Record": the stream starts
    frames, per_second = shown_live_frames(page, count=6)
    page.locator("#live-input").get_by_role("button", name="capture photo").click()  # stop

    picture = camera_picture()
    from expr_models.faces.detection import RetinaFaceDetector

    box = RetinaFaceDetector().detect(picture)[0]  # where the editor finds the face on the camera's picture
    width, height = box.x1 - box.x0, box.y1 - box.y0
    # CycleGAN edits the lower face (its blend mask spares the eyes); everything outside twice the box is background.
    lower_face = (slice(int(box.y0 + 0.6 * height), int(box.y1)),
                  slice(int(box.x0 + 0.2 * width), int(box.x1 - 0.2 * width)))
    crop_square = np.zeros(picture.shape[:2], bool)
    crop_square[max(0, int(box.y0 - height / 2)):int(box.y1 + height / 2),
                max(0, int(box.x0 - width / 2)):int(box.x1 + width / 2)] = True
    picture = picture.astype(np.int16)
    for frame in frames:
        assert frame.shape == picture.shape
        # The camera may be mirrored: compare with whichever way round the frame is.
        frame = min((frame, frame[:, ::-1]), key=lambda f: np.abs(f.astype(np.int16) - picture)[~crop_square].mean())
        difference = np.abs(frame.astype(np.int16) - picture).mean(axis=-1)
        background = difference[~crop_square].mean()
        assert background < 6, f"the background moved: mean difference {background:.1f}"
        assert difference[lower_face].mean() > background + 8, "the face was not edited"
    print(f"\n{len(frames)} live frames shown, {per_second:.1f} per second (tiny models, headless Chromium)")
