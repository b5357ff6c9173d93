"""Awkward and hostile photos for the reliability and security tests, all made on the fly (no research images).

``write_catalog(folder)`` writes one file per case and returns what the editor should make of each: an edit (with a
note, where the pipeline converts something) or a clear error of a given kind. The pipeline, the CLI and the Space
tests run the same catalog, so the three say the same thing about the same file.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from expr_models.errors import ImageLoadError, ImageTooLargeError, NoFaceError


# ---------------------------------------------------------------------------------------------------------------------
# Decompression bombs


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of ``width x height`` black pixels: a real decompression bomb (10000 x 10000 is
    12 kB on disk, 100 MP decoded). The rows are compressed one by one; the raw image is never held in memory."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + the row's bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def header_bombs() -> dict[str, tuple[bytes, str]]:
    """Small files whose headers claim a huge image, in formats other than PNG, and what the refusal says."""
    gif = (b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)  # screen 65535 x 65535
           + b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x4c\x01\x00;")  # one frame as large
    bmp = bytearray(encode(Image.new("RGB", (1, 1)), "BMP"))
    bmp[18:26] = struct.pack("<ii", 30000, 30000)
    jpeg = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 9000, 9000)  # 81 MP: above our 40 MP cap, below Pillow's own limit
    return {"bomb_header.gif": (gif, "too large to open safely"), "bomb_header.bmp": (bytes(bmp), "too large to open"),
            "bomb_header.jpg": (bytes(jpeg), "9000x9000 = 81.0 MP")}


# ---------------------------------------------------------------------------------------------------------------------
# Faces


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@lru_cache(maxsize=1)
def face_crop() -> np.ndarray:
    """The astronaut's face with a margin (twice the detector's box), to tile into test photos."""
    from expr_models.faces.detection import detect_faces
    from expr_models.faces.geometry import crop_face

    photo = astronaut()
    crop, _ = crop_face(photo, detect_faces(photo)[0], scale=2.0)
    return crop


def face_grid(count: int = 20, cell: int = 120, columns: int = 5) -> np.ndarray:
    """``count`` copies of the astronaut's face on a grey canvas, ``cell`` pixels apart (faces of ~cell/2)."""
    rows = -(-count // columns)
    canvas = np.full((rows * cell, columns * cell, 3), 200, np.uint8)
    face = np.asarray(Image.fromarray(face_crop()).resize((cell - 10, cell - 10), Image.Resampling.LANCZOS))
    for index in range(count):
        row, column = divmod(index, columns)
        canvas[row * cell + 5:(row + 1) * cell - 5, column * cell + 5:(column + 1) * cell - 5] = face
    return canvas


def small_face(face_side: int, canvas_side: int = 300) -> np.ndarray:
    """A photo with one face whose detector box is about ``face_side`` pixels."""
    canvas = np.full((canvas_side, canvas_side, 3), 200, np.uint8)
    face = np.asarray(Image.fromarray(face_crop()).resize((2 * face_side, 2 * face_side), Image.Resampling.LANCZOS))
    start = (canvas_side - 2 * face_side) // 2
    canvas[start:start + 2 * face_side, start:start + 2 * face_side] = face
    return canvas


# ---------------------------------------------------------------------------------------------------------------------
# The catalog


@dataclass
class Case:
    """What the editor should do with one file: edit it (``error`` None; ``note``: a substring of one of the
    result's notes), or refuse it with ``error`` whose message holds ``message``."""

    data: bytes
    error: type[Exception] | None = None
    message: str = ""
    note: str | None = None
    faces: int | None = None  # how many faces the edit should report, when it matters


def catalog() -> dict[str, Case]:
    photo = Image.fromarray(astronaut())
    jpeg = encode(photo, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rgba = photo.convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, 512, 40))  # a transparent band at the top
    deep = (np.asarray(photo.convert("L"), np.uint16) * 257).astype(np.uint16)
    frames = [photo.convert("P", palette=Image.Palette.ADAPTIVE)] + [Image.new("P", photo.size, i) for i in (1, 2)]
    no_face = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))

    cases = {
        # unreadable
        "not_an_image.jpg": Case(b"this is a text file, not a JPEG\n" * 20, ImageLoadError, "is not an image file"),
        "empty.png": Case(b"", ImageLoadError, "is not an image file"),
        "truncated.jpg": Case(jpeg[: len(jpeg) // 3], ImageLoadError, "truncated"),
        "postscript.jpg": Case(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n%%EOF\n",
                               ImageLoadError, "is not an image file"),  # never handed to Ghostscript
        # too large: refused from the header, before decoding
        "bomb_100mp.png": Case(blank_png(10_000, 10_000), ImageTooLargeError, "10000x10000 = 100.0 MP"),
        "bomb_400mp.png": Case(blank_png(20_000, 20_000), ImageTooLargeError, "too large"),
        **{name: Case(data, ImageTooLargeError, message) for name, (data, message) in header_bombs().items()},
        # odd but fine: converted, with a note where something was changed
        "animated.gif": Case(encode(frames[0], "GIF", save_all=True, append_images=frames[1:]), note="3 frames"),
        "cmyk.jpg": Case(encode(photo.convert("CMYK"), "JPEG", quality=90), note="CMYK"),
        "deep16.png": Case(encode(Image.fromarray(deep), "PNG"), note="high bit depth"),
        "rotated.jpg": Case(encode(photo.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())),
        "rgba.png": Case(encode(rgba, "PNG"), note="white"),
        "gray.png": Case(encode(photo.convert("L"), "PNG")),
        "twenty_faces.png": Case(encode(Image.fromarray(face_grid(20)), "PNG"),
                                 note="Found 20 faces; edited the 10 largest", faces=10),
        # no face to edit
        "one_pixel.png": Case(encode(Image.new("RGB", (1, 1), "white"), "PNG"), NoFaceError, "No face"),
        "thin_strip.png": Case(encode(Image.new("RGB", (20_000, 1), "white"), "PNG"), NoFaceError, "No face"),
        "no_face.png": Case(encode(Image.fromarray(np.stack([no_face, no_face[::-1], no_face], -1)), "PNG"),
                            NoFaceError, "No face"),
        "tiny_face.png": Case(encode(Image.fromarray(small_face(20)), "PNG"), NoFaceError, "32 pixels"),
    }
    return cases


def write_catalog(folder: Path) -> dict[str, Case]:
    folder.mkdir(parents=True, exist_ok=True)
    cases = catalog()
    for name, case in cases.items():
        (folder / name).write_bytes(case.data)
    return cases
