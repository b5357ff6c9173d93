"""A fake webcam for Chromium, shared by the browser test and the live-mode benchmark: what it films (a package
sample photo on a 640 x 480 canvas), that picture as a YUV4MPEG2 file for ``--use-file-for-fake-video-capture``, and
how to find and start Chromium headless."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"):
        if candidate and (shutil.which(candidate) or os.path.isfile(candidate)):
            return shutil.which(candidate) or candidate
    return None


CAMERA_SIZE = (640, 480)
FACE_SQUARE = (120, 40, 400)  # x, y and side of the astronaut on the camera's canvas


def camera_picture() -> np.ndarray:
    """What the fake camera films: the astronaut (a package sample photo) on a 640 x 480 grey gradient."""
    from skimage import data

    width, height = CAMERA_SIZE
    x, y, side = FACE_SQUARE
    canvas = np.repeat(np.linspace(70, 170, width, dtype=np.float32)[None, :, None], height, axis=0)
    canvas = np.repeat(canvas, 3, axis=-1).astype(np.uint8)
    canvas[y:y + side, x:x + side] = np.asarray(Image.fromarray(data.astronaut()).resize((side, side)))
    return canvas


def write_y4m(path, rgb: np.ndarray, frames: int = 30, noise: float = 1.0, seed: int = 0) -> None:
    """``rgb`` as ``frames`` frames of YUV4MPEG2 4:2:0 (BT.601 limited range, as Chromium's reader takes it), each
    with its own faint sensor noise (``noise`` grey levels): frames that differ, as a camera's do, so every edited
    frame is a new image."""
    height, width = rgb.shape[:2]
    pixels = rgb.astype(np.float32)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    luma = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    blue = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    red = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def quarter(plane):  # 2 x 2 averages: the 4:2:0 chroma planes
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    chroma = b"".join(np.clip(np.round(quarter(p)), 0, 255).astype(np.uint8).tobytes() for p in (blue, red))
    rng = np.random.default_rng(seed)
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            noisy = luma + rng.normal(0.0, noise, luma.shape)
            file.write(b"FRAME\n" + np.clip(np.round(noisy), 0, 255).astype(np.uint8).tobytes() + chroma)
