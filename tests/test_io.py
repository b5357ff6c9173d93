"""Writing photos: ``save_image`` is lossless in PNG for every mode, and keeps the input's colour profile and EXIF."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from expr_models.io import load_image, save_image


def photo(mode: str) -> Image.Image:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-3, 4, (96, 128, 4)), axis=1).clip(0, 255).astype(np.uint8)  # photo-like rows
    if mode == "I;16":
        return Image.fromarray(smooth[..., 0].astype(np.uint16) * 257)
    return Image.fromarray(smooth, "RGBA").convert(mode)


def chunk_types(png: bytes) -> list[bytes]:
    position, kinds = 8, []
    while position < len(png):
        length = struct.unpack(">I", png[position:position + 4])[0]
        kinds.append(png[position + 4:position + 8])
        position += 12 + length
    return kinds


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_png_is_lossless_in_every_mode(mode):
    image = photo(mode)
    buffer = io.BytesIO()
    save_image(image, buffer, "png")
    written = Image.open(io.BytesIO(buffer.getvalue()))
    assert written.format == "PNG" and written.mode == image.mode
    assert np.array_equal(np.asarray(written), np.asarray(image))


def test_png_keeps_a_jpegs_colour_profile_and_exif(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Maker of the camera"
    source = tmp_path / "in.jpg"
    photo("RGB").save(source, quality=95, icc_profile=profile, exif=exif.tobytes())
    loaded = load_image(source)
    assert loaded.info["exif"].startswith(b"Exif\0\0")  # a JPEG's APP1 header, which PNG's eXIf does not carry

    save_image(loaded, tmp_path / "out.png", "png")
    png = (tmp_path / "out.png").read_bytes()
    kinds = chunk_types(png)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iCCP") < kinds.index(b"IDAT") and kinds.index(b"eXIf") < kinds.index(b"IDAT")
    written = Image.open(tmp_path / "out.png")
    assert written.info["icc_profile"] == profile
    assert written.getexif()[0x010F] == "Maker of the camera"
    assert np.array_equal(np.asarray(written), np.asarray(loaded))


def test_png_without_metadata_has_no_metadata_chunks():
    buffer = io.BytesIO()
    save_image(photo("RGB"), buffer, "png", metadata={})
    assert not {b"iCCP", b"eXIf"} & set(chunk_types(buffer.getvalue()))


def test_load_image_leaves_the_callers_image_alone():
    image = photo("RGB")
    loaded = load_image(image)
    loaded.paste((0, 0, 0), (0, 0, 10, 10))
    assert loaded is not image and np.asarray(image)[:10, :10].any()
