"""Reading and writing photos.

:func:`load_image`: any path, bytes, file object, PIL image or array -> an upright RGB PIL image, with clear errors.
:func:`save_image`: PNG (lossless, the default), WebP or JPEG, fast, keeping the input's colour profile and EXIF.
The one list of image file extensions the project accepts lives here too.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, ImageTooLargeError

# 40 MP covers every phone and most DSLR photos; beyond that a photo is more likely a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
# The Pillow formats those are. Others are refused before their plug-in parses anything: EPS hands the file to
# Ghostscript, and each rarely used parser is more surface for a crafted upload.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def load_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray | Any,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read a photo into an RGB PIL image, upright.

    ``source``: a path, raw file bytes, a binary file object, a PIL image or a uint8 array. EXIF orientation is
    applied; RGBA/LA/transparent palettes are composited on white; CMYK, 16-bit and float, grayscale and palette
    images become RGB; an animated image gives its first frame. Notes about such conversions are kept in
    ``image.info["notes"]``.

    Raises :class:`ImageTooLargeError` for more than ``max_pixels`` pixels (read from the header, before decoding)
    and :class:`ImageLoadError` for missing files, non-images and truncated or corrupt files.
    """
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        source = _array_to_pil(source)
    if isinstance(source, Image.Image):
        name = "the image"
        image = source
        _check_pixels(image.size, max_pixels, name)
    else:
        name, image = _open(source, max_pixels)

    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.seek(0)
        notes.append(f"{name} has {frames} frames; edited the first one.")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageLoadError(f"Could not decode {name}: the file is truncated or corrupt ({error}).") from error

    try:
        upright = ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block should not stop the edit
        notes.append(f"Ignored the unreadable EXIF orientation of {name} ({error}).")
        upright = image
    if upright is None:  # older Pillow returns None for in-place transposes
        upright = image

    try:
        # exif_transpose returns a new image; the caller's own is copied only where it did not run.
        rgb = _to_rgb(upright, notes, copy=upright is image)
    except (ValueError, OSError) as error:  # modes Pillow cannot convert to RGB (e.g. LAB)
        raise ImageLoadError(f"Cannot convert {name} from mode {upright.mode} to RGB: {error}") from error
    rgb.info["notes"] = list(image.info.get("notes", [])) + notes
    rgb.info.update(_metadata_to_keep(image, upright, notes))
    return rgb


# ---------------------------------------------------------------------------------------------------------------------
# Metadata that travels from the input to the output
# ---------------------------------------------------------------------------------------------------------------------

def _metadata_to_keep(original: Image.Image, upright: Image.Image, notes: list[str]) -> dict[str, bytes]:
    """The colour profile and EXIF the RGB image may carry on.

    ICC: kept only when it describes RGB data (a CMYK or gray profile would mislabel the converted pixels).
    EXIF: ``exif_transpose`` already dropped the orientation tag, since the pixels are upright now.
    """
    kept: dict[str, bytes] = {}
    profile = original.info.get("icc_profile")
    if isinstance(profile, bytes) and len(profile) >= 20:
        if profile[16:20] == b"RGB ":
            kept["icc_profile"] = profile
        else:
            notes.append(f"Dropped the input's {profile[16:20].decode('latin-1').strip()} colour profile "
                         "(it does not describe RGB pixels).")
    exif = upright.info.get("exif")
    if isinstance(exif, bytes) and exif:
        kept["exif"] = exif
    return kept


def photo_metadata(image: Image.Image) -> dict[str, bytes]:
    """``{"icc_profile": ..., "exif": ...}`` as far as :func:`load_image` kept them on ``image``."""
    return {key: image.info[key] for key in ("icc_profile", "exif") if isinstance(image.info.get(key), bytes)}


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------

OUTPUT_FORMATS = {"png": "PNG", "webp": "WEBP", "jpg": "JPEG"}  # --format -> Pillow format; the name is the suffix
# PNG by OpenCV's libpng with one filter for every row (Paeth) and zlib level 1 run-length coding: the same size as
# Pillow's level-1 files (which try all five filters on each row) in 0.69-0.76 of the time (1 MP photos: 72-80 ->
# 53-55 ms; benchmarks/png_encoding.py). The CLI encodes beside the next edit: on two cores its time is the edits'.
PNG_ENCODE_OPTIONS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                      cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH)
_PNG_SIGNATURE_AND_HEADER = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
_OPENCV_PNG_MODES = ("RGB", "RGBA", "L")


def save_image(image: Image.Image, destination: str | os.PathLike | io.BytesIO, format: str = "png",
               metadata: dict[str, bytes] | None = None, quality: int = 95) -> None:
    """Write ``image`` as PNG (lossless), WebP or JPEG (lossy, ``quality``), with the colour profile and EXIF.

    ``metadata``: from :func:`photo_metadata` of the input photo; by default, whatever ``image.info`` carries.
    """
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"Unknown output format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    metadata = photo_metadata(image) if metadata is None else metadata
    options: dict[str, Any] = {key: value for key, value in metadata.items() if value}
    if format == "png" and image.mode in _OPENCV_PNG_MODES:
        encoded = png_bytes(np.asarray(image), options.get("icc_profile"), options.get("exif"))
        if isinstance(destination, (str, os.PathLike)):
            Path(destination).write_bytes(encoded)
        else:
            destination.write(encoded)
        return
    if format == "png":  # modes OpenCV does not write (palette, 16-bit, ...)
        options.update(compress_level=1, compress_type=3)
    else:
        options["quality"] = quality
    image.save(destination, OUTPUT_FORMATS[format], **options)


def png_bytes(pixels: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A PNG file of ``pixels`` (H x W RGB, RGBA or grey uint8), with the colour profile (``iCCP``) and EXIF
    (``eXIf``) chunks where given, placed right after the header as the PNG specification asks (before the image
    data)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels in (3, 4):  # OpenCV's channel order
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(".png", pixels, PNG_ENCODE_OPTIONS)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image as PNG")
    chunks = b""
    if icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)  # no JPEG APP1 header
    encoded = encoded.tobytes()
    return encoded[:_PNG_SIGNATURE_AND_HEADER] + chunks + encoded[_PNG_SIGNATURE_AND_HEADER:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _open(source: Any, max_pixels: int | None) -> tuple[str, Image.Image]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = "the uploaded bytes", io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageLoadError(f"{name} does not exist or is not a file.")
        try:
            stream = io.BytesIO(path.read_bytes())  # read once: the file is closed whatever happens next
        except OSError as error:
            raise ImageLoadError(f"Could not read {name}: {error}") from error
    elif hasattr(source, "read"):
        name, stream = getattr(source, "name", "the uploaded file"), source
    else:
        raise ImageLoadError(f"Cannot read an image from a {type(source).__name__}.")

    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (~89 MP) and raises above twice that; our cap is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=IMAGE_FORMATS)  # reads the header only
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{name} is too large to open safely ({error}).") from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{name} is not an image file we can read (JPEG, PNG, TIFF, WebP, ...).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"Could not read {name}: {error}") from error
    _check_pixels(image.size, max_pixels, name)
    return name, image


def _check_pixels(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{name} has no pixels ({width}x{height}).")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} MP, more than the limit of "
            f"{max_pixels / 1e6:.0f} MP. Downscale it first (or raise max_pixels if you trust the file)."
        )


def _array_to_pil(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype == np.uint16:
        return Image.fromarray((array.astype(np.float32) / 257.0).round().astype(np.uint8))
    if np.issubdtype(array.dtype, np.floating):
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0  # [0, 1] floats or already 0..255
        return Image.fromarray(np.clip(array * scale, 0, 255).round().astype(np.uint8))
    raise ImageLoadError(f"Cannot use an array of dtype {array.dtype} as an image; expected uint8.")


def _to_rgb(image: Image.Image, notes: list[str], copy: bool = True) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy() if copy else image
    if mode.startswith("I") or mode == "F":
        # 16-bit or 32-bit integer / float grayscale: scale to 8 bits by the range the data can have.
        array = np.asarray(image, dtype=np.float64)
        if mode == "F":
            top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        else:
            top = 255.0 if array.max(initial=0) <= 255 else 65535.0 if array.max() <= 65535 else float(array.max())
        notes.append(f"Converted {mode} ({'float' if mode == 'F' else 'high bit depth'}) grayscale to 8-bit RGB.")
        gray = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("Composited the transparent areas on white.")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("Converted CMYK to RGB (no colour profile applied).")
    return image.convert("RGB")
