"""What the Space does, without Gradio: load the models once, run the editor, format what it returns.

``space/ui.py`` wraps these functions in Blocks. Keeping them free of gradio keeps the UI thin and this logic testable.
Every model call goes through :class:`expr_models.pipeline.ExpressionEditor`: an uploaded photo is decoded and its faces
found once (:func:`preview`), and an edit of it reuses that detection (:func:`run_edit`); the expression readings are
the editor's own. What a visitor waits for is the edit: the views are returned at display size, and the full-size
lossless PNG is written only when asked for (:func:`full_size_png`). Live mode (:func:`live_edit`) runs webcam frames
through :class:`expr_models.faces.live.LiveTracker`. The controls (smile, mouth open, brows, eyes:
:data:`CONTROL_LABELS`) reach a method that takes them with the checkpoints at hand (:func:`edit_controls`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PIL import Image

from expr_models.components import EDITING_METHODS, editing_method
from expr_models.errors import CheckpointError, ExpressionEditError, NoFaceError
from expr_models.faces.geometry import FaceBox, stamp_mask
from expr_models.faces.live import LiveTracker
from expr_models.io import photo_metadata, save_image
from expr_models.models.mesh_motion import CONTROLS
from expr_models.pipeline import Detection, EditResult, ExpressionEditor, Reading, find_checkpoints

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR_ENV = "EXPR_MODELS_DIR"  # where the Space looks for checkpoints/<name>/ (default: the repo's checkpoints/)
# Every view (edited, before/after, faces) is returned at most this many pixels on its longer side: the image panels
# are 420 CSS pixels high, twice that on a high-density screen. The full-size result is the PNG download.
DISPLAY_SIDE = 840
LIVE_METHODS = tuple(name for name, method in EDITING_METHODS.items() if method.live)  # NST: seconds per frame
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# The controls a mesh-moving method takes on top of its target, in slider order, with what the sliders say.
CONTROL_LABELS = {name: {"smile": "Smile", "mouth_open": "Mouth open", "brows": "Brows", "eyes": "Eyes"}.get(
    name, name.replace("_", " ").capitalize()) for name in CONTROLS}


# ---------------------------------------------------------------------------------------------------------------------
# Models: one editor for the whole process, loaded at start
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class SpaceModels:
    """The shared editor and what it can do with the checkpoints at hand."""

    editor: ExpressionEditor
    models_dir: Path
    problems: dict[str, str] = field(default_factory=dict)  # component -> why it cannot be used
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # method -> expressions it can produce
    controls: dict[str, tuple[str, ...]] = field(default_factory=dict)  # method -> the controls it takes here
    max_intensity: dict[str, float] = field(default_factory=dict)  # method -> the largest intensity it takes here

    def problem(self, method: str) -> str | None:
        """Why ``method`` cannot run here (a missing or broken checkpoint), or None when it can."""
        component = EDITING_METHODS[method].component
        if component in self.problems:
            return self.problems[component]
        if not self.targets.get(method):
            return f"The {EDITING_METHODS[method].label} checkpoint in {self.models_dir} names no target expression."
        return None

    def available(self, method: str) -> bool:
        return self.problem(method) is None

    def highest(self, method: str) -> float:
        """The largest intensity ``method`` takes here (1 where it cannot run)."""
        return self.max_intensity.get(method, 1.0)

    @property
    def has_classifier(self) -> bool:
        return "classifier" not in self.problems

    def summary(self) -> dict[str, Any]:
        """What the ``methods`` API endpoint returns."""
        methods = {name: {"label": method.label, "available": self.available(name),
                          "targets": list(self.targets.get(name, ())), "problem": self.problem(name),
                          "controls": list(self.controls.get(name, ())), "max_intensity": self.highest(name)}
                   for name, method in EDITING_METHODS.items()}
        return {"methods": methods,
                "classifier": {"available": self.has_classifier, "problem": self.problems.get("classifier")}}


def resolve_models_dir(models_dir: str | os.PathLike | None = None) -> Path:
    return Path(models_dir or os.environ.get(MODELS_DIR_ENV) or REPO_ROOT / "checkpoints")


def load_models(models_dir: str | os.PathLike | None = None, **editor_kwargs: Any) -> SpaceModels:
    """Load every checkpoint in ``models_dir`` now, so the first visitor does not wait and broken ones show up at start.

    A missing or broken checkpoint never stops the Space: it is recorded in ``problems`` and the UI says so.
    """
    start = time.perf_counter()
    models_dir = resolve_models_dir(models_dir)
    editor = ExpressionEditor.from_pretrained(models_dir, **editor_kwargs)
    found = find_checkpoints(models_dir)
    problems: dict[str, str] = {}
    # Every method's component, and the classifier.
    for component in dict.fromkeys([method.component for method in EDITING_METHODS.values()] + ["classifier"]):
        try:
            # A missing component raises the pipeline's own CheckpointError, whose message says what to do.
            for index in range(max(1, len(found.get(component, [])))):
                editor.model(component, index)
        except ExpressionEditError as error:
            problems[component] = str(error)
        except Exception as error:  # noqa: BLE001 - whatever a broken file raises, the Space still starts
            logger.exception("Could not load the %s checkpoint", component)
            problems[component] = f"Could not load the {component} checkpoint in {models_dir}: {error}"

    targets: dict[str, tuple[str, ...]] = {}
    controls: dict[str, tuple[str, ...]] = {}
    max_intensity: dict[str, float] = {}
    for name, method in EDITING_METHODS.items():
        targets[name], controls[name], max_intensity[name] = (), (), 1.0
        if method.component in problems:
            continue
        try:
            targets[name] = tuple(method.targets(editor))
            controls[name] = editor.supported_controls(name)
            max_intensity[name] = float(method.max_intensity(editor))
        except ExpressionEditError as error:
            problems[method.component] = str(error)
    models = SpaceModels(editor, models_dir, problems, targets, controls, max_intensity)
    logger.info("Loaded the models in %s in %.1f s: %s", models_dir, time.perf_counter() - start,
                {m: "ok" if models.available(m) else "missing" for m in EDITING_METHODS})
    return models


# ---------------------------------------------------------------------------------------------------------------------
# Reading uploads
# ---------------------------------------------------------------------------------------------------------------------

def open_upload(path: str | os.PathLike | None) -> io.BytesIO | None:
    """An uploaded file as a stream named like the user's file, so that load_image's messages name their file and
    not the server's cache path."""
    if path is None:
        return None
    path = Path(path)
    try:
        stream = io.BytesIO(path.read_bytes())
    except OSError as error:
        raise ExpressionEditError(f"Could not read the uploaded file {path.name}: {error}") from error
    stream.name = path.name
    return stream


def display_copy(image: Image.Image | np.ndarray, max_side: int = DISPLAY_SIDE) -> Image.Image:
    """A copy at most ``max_side`` pixels on its longer side: the views need no more and encode much faster."""
    width, height = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
    if max(width, height) <= max_side:
        return image if isinstance(image, Image.Image) else Image.fromarray(image)
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # OpenCV, several times faster than Pillow's filters: area averaging where it shrinks a lot (no aliasing), bilinear
    # for a mild shrink (as good there, and area averaging at a fractional scale is slow).
    interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=interpolation))


# ---------------------------------------------------------------------------------------------------------------------
# An uploaded photo: its faces, masks and reading
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Preview:
    """What an upload shows before any edit: its faces and blend masks drawn, and the largest face's reading."""

    detection: Detection  # the decoded photo and its faces
    view: Image.Image  # the photo at display size, with each face's box and the blend mask an edit would use
    reading: Reading | None  # the classifier's, of the largest face; None without a classifier or a face

    def info(self) -> dict:
        return {"size": list(self.detection.image.size), "faces": faces_info(self.detection.boxes),
                "notes": list(self.detection.notes)}


def preview(models: SpaceModels, source: Any, read: bool = True) -> Preview:
    """The ``detect`` action: decode the photo and find its faces (once) and draw them; with ``read``, read the
    largest face too (the UI leaves that to the ``classify`` step that follows, so the faces show sooner)."""
    detection = models.editor.detect(source)
    view = faces_view(detection.image, detection.boxes, blend_masks(models.editor, detection))
    return Preview(detection, view, largest_face_of(models, detection) if read else None)


def largest_face_of(models: SpaceModels, detection: Detection) -> Reading | None:
    """The classifier's reading of the largest face found; None without a classifier or a face."""
    if not detection.boxes or not models.has_classifier:
        return None
    return (models.editor.read_expressions(detection.pixels, detection.boxes[:1]) or [None])[0]


def largest_face_reading(models: SpaceModels, faces: int, reading: Reading | None) -> Reading:
    """The ``classify`` action's answer from a preview's face count and reading. Raises NoFaceError, or
    CheckpointError without a classifier."""
    if not faces:
        raise NoFaceError(no_face_message(models))
    if reading is None:
        raise CheckpointError(models.problems.get("classifier") or "No expression classifier is loaded.")
    return reading


def blend_masks(editor: ExpressionEditor, detection: Detection) -> np.ndarray:
    """The blend masks an edit of ``detection`` would use (the editor's crops and masks), over the whole photo:
    float32 in [0, 1], for showing where an edit would land before running it."""
    processor, photo = editor.processor, detection.pixels
    height, width = photo.shape[:2]
    canvas = np.zeros((height, width), np.float32)
    for box in detection.boxes:
        transform = processor.frame(box, width, height)
        stamp_mask(canvas, processor.blend_mask(transform, box, photo), transform)
    return canvas


def no_face_message(models: SpaceModels) -> str:
    return models.editor.no_face_message()


_BOX_COLOUR = (60, 220, 90)
_MASK_COLOUR = np.array([255, 60, 170], np.float32)


def faces_view(photo: Image.Image, boxes: list[FaceBox], mask: np.ndarray, captions: list[str] | None = None,
               shown: Image.Image | None = None) -> Image.Image:
    """The photo with each face's box and number drawn on it and the blend mask (``H x W`` in [0, 1], or uint8 in
    [0, 255]) tinted over it, at display size (``shown``: the photo's display copy when there is one already)."""
    shown = shown or display_copy(photo)
    scale = shown.width / photo.width
    canvas = np.array(shown, np.uint8)
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:  # tint only the masks' bounding box, scaled to the display: the rest is most of the photo
        mask_height, mask_width = mask.shape
        top, left = int(rows[0] * canvas.shape[0] / mask_height), int(columns[0] * canvas.shape[1] / mask_width)
        bottom = max(top + 1, int(np.ceil((rows[-1] + 1) * canvas.shape[0] / mask_height)))
        right = max(left + 1, int(np.ceil((columns[-1] + 1) * canvas.shape[1] / mask_width)))
        part = mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].astype(np.float32)
        if part.shape != (bottom - top, right - left):
            part = cv2.resize(part, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
        scale_to_one = 1.0 / 255.0 if mask.dtype == np.uint8 else 1.0
        alpha = 0.45 * np.clip(part * scale_to_one, 0.0, 1.0)[..., None]
        tinted = canvas[top:bottom, left:right].astype(np.float32) * (1.0 - alpha) + _MASK_COLOUR * alpha
        canvas[top:bottom, left:right] = tinted.round().astype(np.uint8)

    thickness = max(2, round(max(shown.size) / 320))
    font_scale = 0.45 * thickness
    for number, box in enumerate(boxes, start=1):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in (box.x0, box.y0, box.x1, box.y1))
        cv2.rectangle(canvas, (x0, y0), (x1, y1), _BOX_COLOUR, thickness)
        caption = captions[number - 1] if captions and number <= len(captions) else ""
        text = f"{number} {caption}".strip()
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness // 2))
        top = y0 - height - baseline - 2 * thickness
        top = top if top >= 0 else y1  # no room above the box: write under it
        cv2.rectangle(canvas, (x0, top), (x0 + width + 2 * thickness, top + height + baseline + 2 * thickness),
                      _BOX_COLOUR, -1)
        cv2.putText(canvas, text, (x0 + thickness, top + height + thickness), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), max(1, thickness // 2), cv2.LINE_AA)
    return Image.fromarray(canvas)


def faces_info(boxes: list[FaceBox]) -> list[dict]:
    return [{"face": number, **box.to_dict()} for number, box in enumerate(boxes, start=1)]


# ---------------------------------------------------------------------------------------------------------------------
# Editing
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class FullSizeResult:
    """What the lossless download is made of, kept (in the visitor's session) until it is asked for."""

    image: Image.Image  # the edited photo at the upload's size
    metadata: dict[str, bytes]  # the upload's ICC profile and EXIF (io.photo_metadata)
    name: str  # the file name, without suffix


@dataclass
class EditOutputs:
    result: EditResult
    full_size: FullSizeResult  # written as PNG only when the visitor asks for it (full_size_png)
    edited: Image.Image  # display copy of the edited photo
    before_after: tuple[Image.Image, Image.Image]  # display copies
    faces: Image.Image  # display copy with boxes and masks
    reading_before: dict[str, float] | None  # None without a classifier checkpoint
    reading_after: dict[str, float] | None
    details: dict


def edit_controls(models: SpaceModels, method: str, values: dict[str, Any] | None) -> dict[str, float]:
    """The controls to pass to ``edit`` for ``method``: each value checked (-1..1, a missing one is 0), and only to a
    method that takes them here. A control set on a method that takes none raises ExpressionEditError."""
    checked = {}
    for name, value in (values or {}).items():
        if name not in CONTROL_LABELS:
            raise ExpressionEditError(f"Unknown control {name!r}; the controls are {', '.join(CONTROL_LABELS)}.")
        try:
            number = 0.0 if value is None else float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not -1.0 <= number <= 1.0:  # NaN included
            raise ExpressionEditError(f"{CONTROL_LABELS[name]} must be between -1 and 1, not {value}.")
        checked[name] = number
    taken = models.controls.get(method, ())
    refused = [CONTROL_LABELS[name] for name, number in checked.items() if number and name not in taken]
    if refused:
        spec = EDITING_METHODS[method]
        why = ("the generator of its checkpoint moves no face mesh" if spec.controls
               else "only the methods that move the face mesh take them")
        others = " or ".join(EDITING_METHODS[name].label for name, taken in models.controls.items() if taken)
        raise ExpressionEditError(f"{spec.label} takes no {' / '.join(refused).lower()} control"
                                  f"{'s' * (len(refused) > 1)} ({why}); set "
                                  f"{'it' if len(refused) == 1 else 'them'} to 0"
                                  + (f" or pick {others}." if others else "."))
    return {name: checked.get(name, 0.0) for name in taken}


def check_intensity(models: SpaceModels, method: str, intensity: Any) -> float:
    highest = models.highest(method)
    try:
        value = float(intensity)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= highest:
        raise ExpressionEditError(f"Intensity must be between 0 and {highest:g} for {EDITING_METHODS[method].label}, "
                                  f"not {intensity}.")
    return value


def run_edit(models: SpaceModels, photo: str | os.PathLike | None, method: str,
             target: str | None, intensity: float, reference: str | os.PathLike | None = None,
             steps: int | None = None, progress: Callable[[float, str], None] | None = None,
             detection: Detection | None = None, controls: dict[str, Any] | None = None) -> EditOutputs:
    """The ``edit`` action. ``detection``: the upload's, when the detect step made one for this photo (skips decoding
    and detection). ``controls``: ``{name: -1..1}`` (:data:`CONTROL_LABELS`). Raises the pipeline's
    ExpressionEditError subclasses for anything the user can fix."""
    if photo is None:
        raise ExpressionEditError("Upload a photo first (or pick one of the examples).")
    spec = editing_method(str(method))  # an unknown method raises UnknownMethodError
    method = spec.name
    if models.problem(method):
        # Say the model is missing, rather than whatever the pipeline trips over first (e.g. no target to pick).
        raise CheckpointError(models.problem(method))
    intensity = check_intensity(models, method, intensity)
    controls = edit_controls(models, method, controls)
    result = models.editor.edit(detection or open_upload(photo), method=method, target=target or None,
                                intensity=intensity,
                                reference=open_upload(reference) if spec.needs_reference else None,
                                steps=int(steps) if spec.needs_reference and steps else None,
                                progress_callback=progress, **controls)

    boxes = [face.box for face in result.faces]
    largest = result.faces[0]  # the editor raises NoFaceError when there is none
    mask = np.asarray(result.mask_image())  # uint8; faces_view tints only around it
    captions = [face.source_expression or "" for face in result.faces]
    details = result.to_dict()
    details["faces"] = [{"face": number, **face} for number, face in enumerate(details["faces"], start=1)]
    details["controls"] = controls

    before, after = display_copy(result.original), display_copy(result.image)
    return EditOutputs(
        result=result,
        full_size=FullSizeResult(result.image, photo_metadata(result.original),
                                 f"{Path(photo).stem}-{method}-{result.target or 'reference'}"),
        edited=after,
        before_after=(before, after),
        faces=faces_view(result.original, boxes, mask, captions, shown=before),
        reading_before=largest.reading_before,
        reading_after=largest.reading_after,
        details=details,
    )


def full_size_png(outputs: "OutputFiles", full_size: FullSizeResult | None) -> str:
    """The ``download`` action: the full-size edit as a lossless PNG with the upload's colour profile and EXIF (the
    pixels outside the faces are the upload's, byte for byte)."""
    if full_size is None:
        raise ExpressionEditError("Edit a photo first; its full-size result can then be downloaded.")
    return outputs.save(full_size.image, full_size.name, format="png", metadata=full_size.metadata)


def live_edit(models: SpaceModels, tracker: LiveTracker | None, frame: np.ndarray | None, method: str,
              target: str | None, intensity: float, controls: dict[str, Any] | None = None
              ) -> tuple[np.ndarray | None, LiveTracker]:
    """The ``live`` action: one webcam frame through the viewer's tracker (made on the first frame), with the
    controls as for :func:`run_edit`."""
    tracker = tracker or LiveTracker(models.editor)
    if frame is None:
        return None, tracker
    spec = editing_method(str(method))
    method = spec.name
    if method not in LIVE_METHODS:
        raise ExpressionEditError(f"Live mode runs {', '.join(EDITING_METHODS[m].label for m in LIVE_METHODS)}; "
                                  f"{spec.label} is too slow for a webcam stream.")
    if models.problem(method):
        raise CheckpointError(models.problem(method))
    intensity = check_intensity(models, method, intensity)
    controls = edit_controls(models, method, controls)
    return tracker.edit(frame, method, target or None, intensity, **controls).pixels, tracker


class OutputFiles:
    """Writes the Space's files (display views as JPEG, the full-size result as PNG) into a private temp folder, one
    folder per file, and removes those older than an hour.

    Why not let Gradio encode the views: it writes a returned image in place to a path named by its content, so two
    requests making the same view rewrite the file while the first visitor downloads it (a truncated image).
    """

    def __init__(self, folder: str | os.PathLike | None = None, keep_seconds: float = 3600.0):
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="expr-space-outputs-"))
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()

    def save(self, image: Image.Image, name: str, quality: int = 95, format: str = "jpg",
             metadata: dict[str, bytes] | None = None) -> str:
        """Write ``image`` as ``format`` (``jpg`` or ``png``, see ``expr_models.io.save_image``); the path."""
        self._prune()
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "edited"
        folder = self.folder / uuid.uuid4().hex  # a folder per file, so the download keeps a readable name
        folder.mkdir(parents=True)
        path = folder / f"{name}.{format}"
        if format == "jpg":
            image.convert("RGB").save(path, "JPEG", quality=quality, subsampling=0)
        else:
            save_image(image, path, format, metadata=metadata or {})
        return str(path)

    def _prune(self) -> None:
        cutoff = time.time() - self.keep_seconds
        with self._lock:
            for file in self.folder.glob("*/*.*"):
                try:
                    if file.stat().st_mtime < cutoff:
                        file.unlink()
                        file.parent.rmdir()
                except OSError:
                    pass  # another request got there first


# ---------------------------------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------------------------------

def example_photos(cache_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Example photos and their captions: the committed astronaut (public domain) and photos written at start from
    packages that ship them (matplotlib's Grace Hopper, not committed), plus a two-face collage made of both."""
    examples: list[tuple[Path, str]] = []
    astronaut = EXAMPLES_DIR / "astronaut.jpg"
    if astronaut.is_file():
        examples.append((astronaut, "Eileen Collins (NASA, public domain; scikit-image)"))

    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "expr-space-examples"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        hopper_path = cache / "grace_hopper.jpg"
        if not hopper_path.is_file():
            from matplotlib import cbook

            with cbook.get_sample_data("grace_hopper.jpg") as file:
                Image.open(file).convert("RGB").save(hopper_path, quality=92)
        examples.append((hopper_path, "Grace Hopper (matplotlib sample data)"))

        pair_path = cache / "two_faces.jpg"
        if astronaut.is_file() and not pair_path.is_file():
            left = Image.open(astronaut).convert("RGB")
            right = Image.open(hopper_path).convert("RGB").resize((round(512 * 512 / 600), 512))
            pair = Image.new("RGB", (left.width + right.width, 512), "white")
            pair.paste(left, (0, 0))
            pair.paste(right, (left.width, 0))
            pair.save(pair_path, quality=92)
        if pair_path.is_file():
            examples.append((pair_path, "Two faces (a collage of both)"))
    except Exception:  # noqa: BLE001 - examples are a nicety; the Space starts without them
        logger.exception("Could not write the example photos to %s", cache)
    return examples
