"""The editing pipeline: a whole photo in, the same photo with edited faces out.

The CLI, the Gradio Space and the evaluation all go through :class:`ExpressionEditor`. Each stage can also be used
alone:

1. :func:`load_image` -- any path/bytes/PIL/array -> RGB PIL image (EXIF rotation, odd modes, size cap, clear errors);
2. :func:`expr_models.face.detect_faces` -- face boxes, largest first (RetinaFace by default, its boxes mapped to the
   Haar framing the training crops were cut with);
3. :func:`expr_models.face.crop_face` -- the square crop at the training framing;
4. :func:`edit_luminance` -- run a model on the crop's luminance (Y of YCbCr) at the model's resolution and add the
   change, upsampled, to the full-resolution crop; the photo keeps its own colour (CbCr) and its sharpness where
   nothing changed;
5. :func:`expr_models.face.paste_back` -- blend the crop back with a feathered face mask; pixels outside the mask stay
   byte-identical;
6. intensity -- how much of the change is applied (0 = the input, 1 = the full edit). For the SA-GAN the editor
   interpolates the condition instead, from the classifier's reading of the face to the target.

    editor = ExpressionEditor.from_pretrained("checkpoints")
    result = editor.edit("photo.jpg", method="cyclegan", target="happy")
    result.image.save("happy.png")
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
import warnings
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (CheckpointError, ExpressionEditError, HubUnavailableError, ImageLoadError, ImageTooLargeError,
                     NoFaceError, UnknownExpressionError, UnknownMethodError)
from .face import CropTransform, FaceBox, HaarFaceDetector, crop_face, detect_faces, face_mask, paste_back
from .image_utils import rgb_to_ycbcr
from .labels import EXPRESSIONS, canonical_expression
from .components import COMPONENT_BY_MODEL_TYPE, METHOD_COMPONENTS, METHODS, canonical_method, model_class

logger = logging.getLogger(__name__)

DETECTORS = ("retinaface", "haar", "segmenter")  # the named face detectors; the first is the default
# 40 MP covers every phone and most DSLR photos; beyond that a photo is more likely a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
# The Pillow formats those are. Others are refused before their plug-in parses anything: EPS hands the file to
# Ghostscript, and each rarely used parser is more surface for a crafted upload.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")

ProgressCallback = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening); gr.Progress fits


# ---------------------------------------------------------------------------------------------------------------------
# 1. Loading
# ---------------------------------------------------------------------------------------------------------------------

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
        rgb = _to_rgb(upright, notes)
    except (ValueError, OSError) as error:  # modes Pillow cannot convert to RGB (e.g. LAB)
        raise ImageLoadError(f"Cannot convert {name} from mode {upright.mode} to RGB: {error}") from error
    rgb.info["notes"] = list(image.info.get("notes", [])) + notes
    return rgb


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


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
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


# ---------------------------------------------------------------------------------------------------------------------
# 4. Editing the luminance of a crop
# ---------------------------------------------------------------------------------------------------------------------

def edit_luminance(crop: np.ndarray, model_fn: Callable[[torch.Tensor], torch.Tensor], resolution: int,
                   channels: int = 1, intensity: float = 1.0) -> np.ndarray:
    """Edit an RGB uint8 crop (any size) with a model that works on ``resolution``-sized tensors in [-1, 1].

    The model sees the crop's luminance Y (``channels=1``) or its RGB (``channels=3``) at ``resolution``. Its change
    to Y, ``edited - original`` at the model's resolution, is upsampled to the crop's size, scaled by ``intensity``
    and added to the crop's own Y; the crop keeps its CbCr. So the full-resolution detail survives wherever the model
    changed nothing, and colours never shift.
    """
    side = crop.shape[0]
    small_rgb = cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA if side > resolution
                           else cv2.INTER_CUBIC)
    small_y = rgb_to_ycbcr(small_rgb)[..., 0]
    if channels == 1:
        pixels = torch.from_numpy(small_y / 127.5 - 1.0)[None, None]
    elif channels == 3:
        pixels = torch.from_numpy(small_rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    else:
        raise ValueError(f"Models take 1 or 3 channels, not {channels}")

    output = model_fn(pixels.contiguous().float()).detach().float().cpu().clamp(-1, 1)
    if output.shape != pixels.shape:
        raise RuntimeError(f"The model returned {tuple(output.shape)} for an input of {tuple(pixels.shape)}")
    output = ((output[0] + 1.0) * 127.5).permute(1, 2, 0).numpy()
    edited_y = output[..., 0] if channels == 1 else rgb_to_ycbcr(output)[..., 0]

    residual = (edited_y - small_y).astype(np.float32)
    if side != resolution:
        residual = cv2.resize(residual, (side, side), interpolation=cv2.INTER_CUBIC)
    # With Cb and Cr held fixed, YCbCr -> RGB adds a change of Y to R, G and B alike, so adding the residual to each
    # channel is exactly "new Y, own CbCr", without a round trip's rounding (gray stays gray, untouched stays put).
    edited = crop.astype(np.float32)
    edited += float(intensity) * residual[..., None]
    np.rint(edited, out=edited)
    np.clip(edited, 0, 255, out=edited)
    return edited.astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------------
# Running the models fast: precision and threads
# ---------------------------------------------------------------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AMX or AVX512-BF16), so bf16 convolutions beat fp32 ones.

    Without those instructions oneDNN emulates bf16, which is slower than fp32.
    """
    try:
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    except Exception:  # noqa: BLE001 - older torch: read the flags from the kernel
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype the generators run under (``None``: plain fp32).

    ``auto`` is bfloat16 on CPUs with native bf16 (measured on an AMX Xeon: the default CycleGAN generator 2.9x
    faster, its output within 0.6 gray levels on average and 5.4 at most of fp32's; see benchmarks/RESULTS.md) and
    fp32 everywhere else.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None


def machine_is_busy() -> bool:
    """True when the 1-minute load average is at or above the cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return os.getloadavg()[0] >= cores
    except OSError:  # no load average on this platform
        return False


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``count`` intra-op threads (``None``: leave torch's setting alone), then restore it.

    torch's thread count is OpenMP's, kept per calling thread: requests served on other threads keep their own
    setting (a thread that first runs torch code meanwhile starts with ``count``).
    """
    if not count:
        yield
        return
    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class FaceResult:
    """One edited face: where it was, how it was cropped and blended, and how long it took."""

    box: FaceBox
    transform: CropTransform
    mask: np.ndarray  # ``side x side`` float32 blend mask, in the crop's full-resolution coordinates
    seconds: float
    source_expression: str | None = None  # the classifier's reading of the input face, when one is loaded

    def to_dict(self) -> dict:
        return {**self.box.to_dict(), "seconds": round(self.seconds, 3), "source_expression": self.source_expression}


@dataclass
class EditResult:
    image: Image.Image  # the edited photo, same size as the (upright) input
    original: Image.Image  # the upright RGB input
    faces: list[FaceResult]
    method: str
    target: str | None
    intensity: float
    timings: dict[str, float] = field(default_factory=dict)  # load, detect, edit (all faces), total; seconds
    notes: list[str] = field(default_factory=list)

    def mask_image(self) -> Image.Image:
        """The blend masks of all faces over the whole photo, as an ``L`` image (255 = fully edited)."""
        width, height = self.original.size
        canvas = np.zeros((height, width), np.float32)
        for face in self.faces:
            t = face.transform
            x0, y0, x1, y1 = t.visible_region()
            patch = face.mask[y0 - t.y0:y1 - t.y0, x0 - t.x0:x1 - t.x0]
            canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], patch)
        return Image.fromarray((canvas * 255).round().astype(np.uint8), "L")

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "intensity": self.intensity,
            "size": list(self.image.size),
            "faces": [face.to_dict() for face in self.faces],
            "timings": {name: round(value, 3) for name, value in self.timings.items()},
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------------------------------
# The editor
# ---------------------------------------------------------------------------------------------------------------------

COMPONENT_TYPES = COMPONENT_BY_MODEL_TYPE


def find_checkpoints(models_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """The checkpoints in ``models_dir`` (``<models_dir>/<name>/config.json``), grouped by component, by name."""
    found: dict[str, list[Path]] = {}
    root = Path(models_dir)
    if not root.is_dir():
        return found
    for config_file in sorted(root.glob("*/config.json")):
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except (OSError, ValueError) as error:
            logger.warning("Skipping %s: %s", config_file, error)
            continue
        if model_type in COMPONENT_TYPES:
            found.setdefault(COMPONENT_TYPES[model_type], []).append(config_file.parent)
    return found


class ExpressionEditor:
    """Edits the expression of every face in a photo with CycleGAN, the conditional SA-GAN or neural style transfer.

    Models load lazily on first use and stay cached, so one editor serves many requests (it is safe to share across
    threads). ``models`` maps a component (``cyclegan``, ``sagan``, ``classifier``, ``style_features``,
    ``segmenter``) to a local directory, a Hub id or a ready model object; components not named there are found in
    ``models_dir`` by the ``model_type`` in each ``<models_dir>/<name>/config.json``. ``cyclegan`` may be a list:
    each CycleGAN checkpoint covers its two domains.

    ``detector``: ``"retinaface"`` (default: RetinaFace-MobileNet0.25 on onnxruntime, ``checkpoints/face_detector``
    or ``<models_dir>/face_detector``, boxes mapped to the training crops' Haar framing), ``"haar"`` (OpenCV's cascade,
    embedded, needs no onnxruntime), ``"segmenter"`` (the trained Mask R-CNN, whose masks then shape the blend) or
    any object with ``detect(image) -> list[FaceBox]`` (boxes in the Haar framing, see ``expr_models.face``).

    Speed (see benchmarks/): ``precision`` is the generators' arithmetic: ``auto`` (bfloat16 autocast on CPUs with
    native bf16, else fp32), ``fp32`` or ``bf16``. ``num_threads`` is torch's thread count while the models run:
    ``"auto"`` (default) runs the GAN generators and the classifier on one thread, and NST on one thread while the
    machine is busy (1-minute load average at or above its cores) and on torch's own setting otherwise; a number
    applies to every model; ``None`` leaves torch's setting alone throughout. Why: on a machine whose cores are
    shared (two requests at once on a two-vCPU Space, or other jobs) OpenMP threads spin against each other; there a
    1 MP CycleGAN edit took 2.6 s with torch's two threads and 0.27 s with one (benchmarks/RESULTS.md). The GAN
    forwards are short, so one thread costs them little anywhere; NST's long optimisation uses every idle core.
    """

    def __init__(self, models_dir: str | os.PathLike | None = "checkpoints", device: str | torch.device = "cpu",
                 models: dict[str, Any] | None = None, detector: Any = "retinaface",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, min_face_size: float = 32, max_faces: int | None = 10,
                 nst_steps: int = 100, nst_resolution: int = 128,
                 sagan_intensity: str = "condition", precision: str = "auto", num_threads: int | str | None = "auto"):
        if sagan_intensity not in ("condition", "blend"):
            raise ValueError(f"sagan_intensity must be 'condition' or 'blend', not {sagan_intensity!r}")
        if num_threads is not None and num_threads != "auto" and (isinstance(num_threads, str) or num_threads < 1):
            raise ValueError(f"num_threads must be 'auto', None or at least 1, not {num_threads!r}")
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.device = torch.device(device)
        self.precision = precision
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.num_threads = num_threads
        # The thread counts the model calls run with (None: torch's own).
        self._gan_threads = 1 if num_threads == "auto" else num_threads

        if isinstance(detector, str) and detector not in DETECTORS:
            raise ValueError(f"Unknown face detector {detector!r}; expected one of {', '.join(DETECTORS)} or an object "
                             "with a detect(image) method")
        self.detector = detector
        self._detector_object: Any = None
        self.max_pixels = max_pixels
        self.min_face_size = min_face_size
        self.max_faces = max_faces
        self.nst_steps = nst_steps
        self.nst_resolution = nst_resolution
        self.sagan_intensity = sagan_intensity

        found = find_checkpoints(self.models_dir) if self.models_dir is not None else {}
        self._sources: dict[str, list[Any]] = {name: list(paths) for name, paths in found.items()}
        for name, value in (models or {}).items():
            if name not in COMPONENT_TYPES.values():
                raise ValueError(f"Unknown model component {name!r}; expected one of {sorted(COMPONENT_TYPES.values())}")
            self._sources[name] = list(value) if isinstance(value, (list, tuple)) else [value]
        self._loaded: dict[tuple[str, int], Any] = {}
        self._configs: dict[tuple[str, int], Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_pretrained(cls, models_dir: str | os.PathLike | dict[str, Any] = "checkpoints",
                        device: str | torch.device = "cpu", **kwargs) -> "ExpressionEditor":
        """An editor over an editor folder, an editor repo id on the Hub (``"user/repo"``, fetched with
        ``snapshot_download``; ``revision=`` picks a branch or commit) or a ``{component: dir or Hub id}`` dict."""
        from .hub import load_editor

        return load_editor(cls, models_dir, device=device, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Write every component (detector included) in a subfolder, plus ``model_index.json`` and the card."""
        from .hub import save_editor

        return save_editor(self, save_directory, repo_id=repo_id)

    def push_to_hub(self, repo_id: str, private: bool = True, **kwargs) -> str:
        """Push exactly what :meth:`save_pretrained` writes; private unless ``private=False``."""
        from .hub import push_editor

        return push_editor(self, repo_id, private=private, **kwargs)

    # --- models ------------------------------------------------------------------------------------------------------
    def has(self, component: str) -> bool:
        return bool(self._sources.get(component))

    def available_methods(self) -> list[str]:
        return [method for method in METHODS if self.has(METHOD_COMPONENTS[method])]

    def model(self, component: str, index: int = 0) -> Any:
        """The loaded model of a component (loaded on first use, then cached)."""
        key = (component, index)
        if key in self._loaded:
            return self._loaded[key]
        with self._lock:
            if key not in self._loaded:
                sources = self._sources.get(component) or []
                if index >= len(sources):
                    if component == "style_features" and index == 0:
                        from .style_transfer import load_feature_extractor

                        # Its error says how to get ImageNet features offline.
                        self._loaded[key] = load_feature_extractor(self.models_dir, device=self.device)
                        return self._loaded[key]
                    raise CheckpointError(self._missing_message(component))
                self._loaded[key] = self._load(component, sources[index])
            return self._loaded[key]

    def _missing_message(self, component: str) -> str:
        where = f"in {self.models_dir}" if self.models_dir is not None else "among the given models"
        return (f"No {component} checkpoint {where}. Train one (see train/) or point models_dir at a folder of "
                f"checkpoints, e.g. checkpoints/{component}/config.json + model.safetensors.")

    def _load(self, component: str, source: Any) -> Any:
        if isinstance(source, (str, os.PathLike)):
            model = _model_class(component).from_pretrained(source)  # a local folder or a Hub id
        else:
            model = source  # a ready model object
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        return model

    def _config(self, component: str, index: int) -> Any:
        """A component's config without loading its weights (for the targets a checkpoint supports)."""
        key = (component, index)
        if key in self._loaded:
            return self._loaded[key].config
        if key not in self._configs:
            source = self._sources[component][index]
            if not isinstance(source, (str, os.PathLike)):
                return source.config
            try:
                self._configs[key] = _model_class(component).config_class.from_pretrained(source)
            except Exception as error:  # noqa: BLE001
                if not Path(source).exists():
                    raise HubUnavailableError(
                        f"{source} is not a local folder and its {component} config could not be fetched from the "
                        f"Hugging Face Hub (offline, or a wrong id?): {type(error).__name__}: {error}"
                    ) from error
                raise CheckpointError(f"Could not read the {component} config in {source}: {error}") from error
        return self._configs[key]

    def supported_targets(self, method: str) -> tuple[str, ...]:
        """The expressions ``method`` can produce with the models at hand (empty when its checkpoint is missing)."""
        method = _check_method(method)
        if method == "nst":
            return EXPRESSIONS  # the reference face decides; the target is only a label
        if method == "sagan":
            return tuple(self._config("sagan", 0).class_names) if self.has("sagan") else ()
        targets: list[str] = []
        for index in range(len(self._sources.get("cyclegan", []))):
            targets += [d for d in self._config("cyclegan", index).domains if d not in targets]
        return tuple(name for name in EXPRESSIONS if name in targets) + tuple(t for t in targets if t not in EXPRESSIONS)

    def face_detector(self) -> Any:
        """The detector object :meth:`edit` uses (made on first use): a ``RetinaFaceDetector``, a
        ``HaarFaceDetector``, the segmenter model or the object given as ``detector``."""
        if self.detector == "segmenter":
            return self.model("segmenter")
        if self.detector not in (None, "retinaface", "haar"):
            return self.detector
        if self._detector_object is None:
            with self._lock:
                if self._detector_object is None:
                    if self.detector == "haar":
                        self._detector_object = HaarFaceDetector()
                    else:
                        from .retinaface import DEFAULT_MODEL_PATH, MODEL_FILENAME, RetinaFaceDetector

                        # The models folder's own copy when it has one, else the one committed with the package.
                        local = self.models_dir / "face_detector" / MODEL_FILENAME if self.models_dir else None
                        path = local if local is not None and local.is_file() else DEFAULT_MODEL_PATH
                        self._detector_object = RetinaFaceDetector(path)
        return self._detector_object

    def no_face_message(self) -> str:
        """What :meth:`edit` says when :meth:`detect_faces` finds nothing (the Space shows it too)."""
        return ("No face found in the photo. The detector looks for faces at least "
                f"{self.min_face_size:g} pixels wide; try a well-lit photo with the face in view, or a larger face.")

    def detect_faces(self, photo: np.ndarray) -> list[FaceBox]:
        """The faces :meth:`edit` would edit in an RGB photo array, largest first (before ``max_faces``)."""
        return detect_faces(photo, min_size=self.min_face_size, detector=self.face_detector())

    # --- editing -----------------------------------------------------------------------------------------------------
    def edit(self, image: Any, method: str = "cyclegan", target: str | None = "happy", intensity: float = 1.0,
             reference: Any = None, progress_callback: ProgressCallback | None = None,
             max_faces: int | None = -1) -> EditResult:
        """Edit every face (the ``max_faces`` largest; ``-1`` means the editor's default) of ``image``.

        Raises :class:`UnknownMethodError`, :class:`UnknownExpressionError`, :class:`ImageLoadError` and its
        :class:`ImageTooLargeError`, :class:`NoFaceError` (no face in the photo or in the NST ``reference``) and
        :class:`CheckpointError` (the method's model is missing); all derive from ``ExpressionEditError``.
        """
        start = time.perf_counter()
        report = progress_callback or (lambda fraction, message: None)
        method = _check_method(method)
        target = self.check_target(method, target)
        if not 0.0 <= float(intensity) <= 1.0:
            raise ValueError(f"intensity must be in [0, 1], got {intensity}")
        intensity = float(intensity)
        max_faces = self.max_faces if max_faces == -1 else max_faces
        if method == "nst" and reference is None:
            raise ExpressionEditError("Neural style transfer needs a reference face photo (the expression to copy).")

        report(0.0, "Loading the photo")
        photo_image = load_image(image, self.max_pixels)
        notes = list(photo_image.info.get("notes", []))
        photo = np.asarray(photo_image)
        timings = {"load": time.perf_counter() - start}

        report(0.05, "Finding faces")
        tick = time.perf_counter()
        boxes = self.detect_faces(photo)
        timings["detect"] = time.perf_counter() - tick
        if not boxes:
            raise NoFaceError(self.no_face_message())
        if max_faces is not None and len(boxes) > max_faces:
            notes.append(f"Found {len(boxes)} faces; edited the {max_faces} largest.")
            boxes = boxes[:max_faces]

        reference_crop = self._reference_crop(reference) if method == "nst" else None

        output = photo.copy()  # the faces are pasted into this one copy
        faces: list[FaceResult] = []
        tick = time.perf_counter()
        for number, box in enumerate(boxes):
            face_start = time.perf_counter()
            span = (0.1 + 0.85 * number / len(boxes), 0.1 + 0.85 * (number + 1) / len(boxes))

            def face_progress(fraction: float, message: str, span=span) -> None:
                report(span[0] + (span[1] - span[0]) * fraction, message)

            face_progress(0.0, f"Editing face {number + 1} of {len(boxes)}")
            crop, transform = crop_face(photo, box)  # full resolution; each method resizes for its model
            edited, source_expression = self._edit_crop(crop, method, target, intensity, reference_crop, face_progress)
            mask = self._blend_mask(photo, box, transform)
            output = paste_back(output, edited, transform, mask, out=output)
            faces.append(FaceResult(box, transform, mask, time.perf_counter() - face_start, source_expression))
        timings["edit"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - start
        report(1.0, "Done")
        return EditResult(Image.fromarray(output), photo_image, faces, method, target, intensity, timings, notes)

    def prepare(self, method: str, target: str | None = "happy") -> str | None:
        """Check ``method`` and ``target`` and load the models they need now (not on the first photo).

        Returns the target's canonical name. Raises the errors :meth:`edit` would raise for every photo.
        """
        method = _check_method(method)
        target = self.check_target(method, target)
        if method == "cyclegan":
            self.model("cyclegan", self._cyclegan_index(target))
        else:
            self.model({"sagan": "sagan", "nst": "style_features"}[method])
        if self.has("classifier"):
            self._classify(np.zeros((8, 8, 3), np.uint8))
        from .retinaface import RetinaFaceDetector

        detector = self.face_detector()  # loads the segmenter's checkpoint when that is the detector
        if isinstance(detector, RetinaFaceDetector):
            detector.load()  # onnxruntime and the model file, checked now
        return target

    def _cyclegan_index(self, target: str) -> int:
        return next(i for i in range(len(self._sources["cyclegan"])) if target in self._config("cyclegan", i).domains)

    def check_target(self, method: str, target: str | None) -> str | None:
        """``target``'s canonical name, if ``method`` can produce it with the models at hand."""
        method = _check_method(method)
        if target is None:
            if method == "nst":
                return None
            raise UnknownExpressionError(f"{method} needs a target expression, e.g. 'happy'.")
        try:
            target = canonical_expression(target)
        except ValueError as error:
            raise UnknownExpressionError(str(error)) from None
        supported = self.supported_targets(method)
        if not supported:
            raise CheckpointError(self._missing_message({"cyclegan": "cyclegan", "sagan": "sagan"}[method]))
        if target not in supported:
            raise UnknownExpressionError(f"{method} here can produce {', '.join(supported)}, not {target!r}.")
        return target

    def _blend_mask(self, photo: np.ndarray, box: FaceBox, transform: CropTransform) -> np.ndarray:
        segmentation = None
        if box.mask is not None and box.mask.shape == photo.shape[:2]:
            segmentation, _ = crop_face(np.asarray(box.mask, np.float32), box)
        return face_mask(transform.side, segmentation=segmentation)

    def _reference_crop(self, reference: Any) -> np.ndarray:
        reference_image = np.asarray(load_image(reference, self.max_pixels))
        boxes = self.detect_faces(reference_image)
        if not boxes:
            raise NoFaceError("No face found in the reference photo for style transfer.")
        crop, _ = crop_face(reference_image, boxes[0], self.nst_resolution)
        return crop

    def _edit_crop(self, crop: np.ndarray, method: str, target: str | None, intensity: float,
                   reference_crop: np.ndarray | None, progress: ProgressCallback) -> tuple[np.ndarray, str | None]:
        """One full-resolution RGB crop -> the edited crop (same size), and the classifier's reading of the input."""
        source_expression = self._classify(crop)
        if intensity == 0.0:
            return crop, source_expression  # nothing to apply; skip the model
        if method == "cyclegan":
            model = self.model("cyclegan", self._cyclegan_index(target))
            config = model.config
            with self._generating():
                edited = edit_luminance(crop, lambda x: model.generate(x.to(self.device), to=target),
                                        config.resolution, config.in_channels, intensity)
            return edited, source_expression

        if method == "sagan":
            model = self.model("sagan")
            config = model.config
            names = list(config.class_names)
            labels = torch.zeros(1, len(names))
            labels[0, names.index(target)] = 1.0
            amount = intensity
            if self.sagan_intensity == "condition" and source_expression in names and intensity < 1.0:
                # Walk the condition from the face's own expression to the target: a real in-between expression,
                # not a cross-fade of two mouths.
                source = torch.zeros(1, len(names))
                source[0, names.index(source_expression)] = 1.0
                labels = (1.0 - intensity) * source + intensity * labels
                amount = 1.0
            with self._generating():
                edited = edit_luminance(crop, lambda x: model.generate(x.to(self.device), to=labels.to(self.device)),
                                        config.resolution, config.in_channels, amount)
            return edited, source_expression

        # Neural style transfer: optimise the crop's pixels towards the reference face's feature statistics.
        from .style_transfer import run_style_transfer

        extractor = self.model("style_features")
        size = self.nst_resolution
        # Everything on the extractor's device up front: run_style_transfer moves content, style and mask, not
        # style_mask.
        mask = torch.from_numpy(face_mask(size))[None, None].to(self.device)
        style = torch.from_numpy(reference_crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(self.device)

        def transfer(pixels: torch.Tensor) -> torch.Tensor:
            content = ((pixels + 1.0) / 2.0).to(self.device)  # [-1, 1] -> [0, 1]
            result = run_style_transfer(content, style, extractor, mask=mask, style_mask=mask, steps=self.nst_steps,
                                        callback=lambda step, total, loss: progress(step / total, f"Style transfer "
                                                                                      f"step {step}/{total}"))
            return result * 2.0 - 1.0

        with torch_threads(self._nst_threads()):
            return edit_luminance(crop, transfer, size, 3, intensity), source_expression

    def _nst_threads(self) -> int | None:
        if self.num_threads != "auto":
            return self.num_threads
        return 1 if machine_is_busy() else None

    @contextlib.contextmanager
    def _generating(self):
        """Inference mode, the editor's thread cap and, where it pays (``precision``), bfloat16 autocast."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch_threads(self._gan_threads))
            stack.enter_context(torch.inference_mode())
            if self.autocast_dtype is not None:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
            yield

    def _classify(self, crop: np.ndarray) -> str | None:
        """The classifier's reading of a face crop, or None without a classifier checkpoint."""
        if not self.has("classifier"):
            return None
        try:
            model = self.model("classifier")
        except CheckpointError as error:
            logger.warning("Expression classifier unavailable: %s", error)
            return None
        config = model.config
        small = cv2.resize(crop, (config.resolution, config.resolution), interpolation=cv2.INTER_AREA)
        if config.in_channels == 1:
            pixels = torch.from_numpy(rgb_to_ycbcr(small)[..., 0] / 127.5 - 1.0)[None, None]
        else:
            pixels = torch.from_numpy(small.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with torch_threads(self._gan_threads), torch.inference_mode():
            logits = model(pixels.float().to(self.device)).logits
        index = int(logits.argmax(-1)[0])
        names = getattr(config, "class_names", None)
        return names[index] if names else config.id2label[index]


_check_method = canonical_method
_model_class = model_class
