"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright's sync API.

Skips where Playwright or Chromium is missing (`pip install playwright`, `apt-get install chromium`; Playwright's own
browser download is not needed). Saves a screenshot of an edited result to $SPACE_SCREENSHOT or
/tmp/space_screenshot.png.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.environ.get("SPACE_SCREENSHOT", "/tmp/space_screenshot.png")
TIMEOUT_MS = 60_000


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"):
        if candidate and (shutil.which(candidate) or os.path.isfile(candidate)):
            return shutil.which(candidate) or candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except Exception as error:  # noqa: BLE001 - a Chromium that cannot start here is a missing browser
            pytest.skip(f"Chromium at {executable} does not start: {error}")
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
