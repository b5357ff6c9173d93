"""The editing pipeline: a whole photo in, the same photo with edited faces out.

The CLI, the Gradio Space and the evaluation all go through :class:`ExpressionEditor`. :meth:`~ExpressionEditor.detect`
decodes a photo (:func:`expr_models.io.load_image`) and finds its faces (:mod:`expr_models.faces.detection`) into a
:class:`Detection`. :meth:`~ExpressionEditor.edit` takes a photo or a Detection; for each face the
:class:`~expr_models.faces.processing.FaceImageProcessor` cuts the full-resolution crop at the training framing, the
editing method (:mod:`expr_models.methods`, found by name in :data:`expr_models.components.EDITING_METHODS`) edits it,
and the crop is blended back with a feathered face mask (pixels outside it stay byte-identical). ``intensity`` is how
much of the change is applied. The :class:`EditResult` carries the classifier's reading of each face before and
after.

    editor = ExpressionEditor.from_pretrained("checkpoints")
    result = editor.edit("photo.jpg", method="cyclegan", target="happy")
    result.image.save("happy.png")
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .components import EDITING_METHODS, editing_method
from .errors import CheckpointError, ExpressionEditError, NoFaceError, UnknownExpressionError
from .faces.detection import DETECTORS, RetinaFaceDetector, detect_faces, make_detector
from .faces.geometry import CropTransform, FaceBox, stamp_mask
from .faces.processing import FaceImageProcessor
from .hub.model_store import ModelStore, find_checkpoints  # noqa: F401 - find_checkpoints: the editor's public API
from .io import DEFAULT_MAX_PIXELS, load_image
from .labels import canonical_expression
from .methods.base import FaceToEdit, ProgressCallback, no_progress
from .models.onnx_forward import serve_under_autocast
from .models.runtime import resolve_precision, torch_threads

logger = logging.getLogger(__name__)

Reading = dict[str, float]  # the classifier's probability of each expression, in its class order


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Detection:
    """A decoded photo and the faces in it: what :meth:`ExpressionEditor.edit` needs besides the method.

    Made by :meth:`ExpressionEditor.detect`; pass it to ``edit`` (several times, if you like) to skip decoding and
    detection.
    """

    image: Image.Image  # the upright RGB photo
    pixels: np.ndarray  # its H x W x 3 uint8 pixels
    boxes: list[FaceBox]  # every face found, largest first (edit keeps the max_faces largest)
    notes: list[str] = field(default_factory=list)  # what loading the photo changed (EXIF rotation, alpha, ...)
    timings: dict[str, float] = field(default_factory=dict)  # load, detect; seconds


@dataclass
class FaceResult:
    """One edited face: where it was, how it was cropped and blended, how long it took and how it reads."""

    box: FaceBox
    transform: CropTransform
    mask: np.ndarray  # ``side x side`` float32 blend mask, in the crop's full-resolution coordinates
    seconds: float
    source_expression: str | None = None  # the classifier's top reading of the input face, when one is loaded
    reading_before: Reading | None = None  # the classifier's full reading of the input face
    reading_after: Reading | None = None  # and of the same square in the edited photo
    mesh: np.ndarray | None = None  # the input face's 468-point mesh (x, y, z photo pixels), where the method read it

    def to_dict(self) -> dict:
        readings = {name: None if reading is None else {label: round(p, 4) for label, p in reading.items()}
                    for name, reading in (("reading_before", self.reading_before),
                                          ("reading_after", self.reading_after))}
        return {**self.box.to_dict(), "seconds": round(self.seconds, 3), "source_expression": self.source_expression,
                **readings}


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
            stamp_mask(canvas, face.mask, face.transform)
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
    any object with ``detect(image) -> list[FaceBox]`` (boxes in the Haar framing, see ``expr_models.faces.detection``).

    Speed (measured in benchmarks/): ``precision`` is the generators' arithmetic: ``auto`` (bfloat16 autocast on CPUs
    with native bf16, else fp32), ``fp32`` or ``bf16``. ``num_threads`` is torch's thread count while the models run:
    ``"auto"`` (default) runs the GAN generators and the classifier on one thread, and NST on one thread while the
    machine is busy (1-minute load average at or above its cores) and on torch's own setting otherwise; a number
    applies to every model; ``None`` leaves torch's setting alone throughout. Why: on a machine whose cores are
    shared (two requests at once on a two-vCPU Space, or other jobs) OpenMP threads spin against each other and a
    GAN edit becomes many times slower. The GAN forwards are short, so one thread costs them little anywhere; NST's
    long optimisation uses every idle core. A network whose checkpoint folder also holds its ONNX graph
    (``model.onnx``: the face mesh, the classifier, the learned mouths, brows, eyes and lower face) runs that graph on
    one onnxruntime thread wherever torch would run it in fp32 on the CPU, 1.3-3x faster. Under ``precision="auto"``
    the graph also stands in for torch's bf16 forward, being as fast or faster; ``precision="bf16"`` keeps torch's
    (``expr_models.models.onnx_forward``, ``benchmarks/onnx_speed.py``).
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
        self.processor = FaceImageProcessor()
        self.max_pixels = max_pixels
        self.min_face_size = min_face_size
        self.max_faces = max_faces
        self.nst_steps = nst_steps
        self.nst_resolution = nst_resolution
        self.sagan_intensity = sagan_intensity

        self.store = ModelStore(self.models_dir, self.device, models)
        self._lock = self.store.lock

    @classmethod
    def from_pretrained(cls, models_dir: str | os.PathLike | dict[str, Any] = "checkpoints",
                        device: str | torch.device = "cpu", **kwargs) -> "ExpressionEditor":
        """An editor over an editor folder, an editor repo id on the Hub (``"user/repo"``, fetched with
        ``snapshot_download``; ``revision=`` picks a branch or commit) or a ``{component: dir or Hub id}`` dict."""
        from .hub.editor_repo import load_editor

        return load_editor(cls, models_dir, device=device, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Write every component (detector included) in a subfolder, plus ``model_index.json`` and the card."""
        from .hub.editor_repo import save_editor

        return save_editor(self, save_directory, repo_id=repo_id)

    def push_to_hub(self, repo_id: str, private: bool = True, **kwargs) -> str:
        """Push exactly what :meth:`save_pretrained` writes; private unless ``private=False``."""
        from .hub.editor_repo import push_editor

        return push_editor(self, repo_id, private=private, **kwargs)

    # --- models ------------------------------------------------------------------------------------------------------
    def has(self, component: str) -> bool:
        return self.store.count(component) > 0

    def available_methods(self) -> list[str]:
        return [name for name, method in EDITING_METHODS.items() if self.has(method.component)]

    def model(self, component: str, index: int = 0) -> Any:
        """The loaded model of a component (loaded on first use, then cached)."""
        return self.store.model(component, index)

    def supported_targets(self, method: str) -> tuple[str, ...]:
        """The expressions ``method`` can produce with the models at hand (empty when its checkpoint is missing)."""
        return editing_method(method).targets(self)

    def max_intensity(self, method: str) -> float:
        """The largest ``intensity`` ``method`` takes with the checkpoints at hand (1, or 1.5 for mesh edits)."""
        return editing_method(method).max_intensity(self)

    def supported_controls(self, method: str) -> tuple[str, ...]:
        """The controls (``edit(..., smile=0.5)``) ``method`` takes with the checkpoints at hand."""
        return editing_method(method).supported_controls(self)

    # --- finding faces -----------------------------------------------------------------------------------------------
    def face_detector(self) -> Any:
        """The detector object :meth:`detect` uses (made on first use): a ``RetinaFaceDetector``, a
        ``HaarFaceDetector``, the segmenter model or the object given as ``detector``."""
        if self.detector == "segmenter":
            return self.model("segmenter")
        if self.detector not in (None, "retinaface", "haar"):
            return self.detector
        if self._detector_object is None:
            with self._lock:
                if self._detector_object is None:
                    # The models folder's own RetinaFace file when it has one, else the one committed with the package.
                    self._detector_object = make_detector(self.detector or DETECTORS[0], self.models_dir)
        return self._detector_object

    def no_face_message(self) -> str:
        """What :meth:`edit` says when :meth:`detect_faces` finds nothing (the Space shows it too)."""
        return ("No face found in the photo. The detector looks for faces at least "
                f"{self.min_face_size:g} pixels wide; try a well-lit photo with the face in view, or a larger face.")

    def detect_faces(self, photo: np.ndarray) -> list[FaceBox]:
        """The faces :meth:`edit` would edit in an RGB photo array, largest first (before ``max_faces``)."""
        return detect_faces(photo, min_size=self.min_face_size, detector=self.face_detector())

    def detect(self, image: Any) -> Detection:
        """Decode ``image`` (a path, bytes, file object, PIL image or array) and find its faces, largest first.

        Finding no face is not an error here (``boxes`` is empty); :meth:`edit` raises :class:`NoFaceError` for it.
        Raises :class:`ImageLoadError` and its :class:`ImageTooLargeError`.
        """
        start = time.perf_counter()
        photo = load_image(image, self.max_pixels)
        pixels = np.asarray(photo)
        loaded = time.perf_counter()
        boxes = self.detect_faces(pixels)
        timings = {"load": loaded - start, "detect": time.perf_counter() - loaded}
        return Detection(photo, pixels, boxes, list(photo.info.get("notes", [])), timings)

    def read_expressions(self, photo: np.ndarray, boxes: list[FaceBox]) -> list[Reading] | None:
        """The classifier's reading of each face (``{expression: probability}``), in one batch; ``None`` without a
        classifier checkpoint."""
        model = self._classifier()
        if model is None:
            return None
        if not boxes:
            return []
        config = model.config
        crops = [self.processor.crop(photo, box)[0] for box in boxes]
        pixels = self.processor.to_tensor(crops, config.resolution, config.in_channels)
        with torch_threads(self._gan_threads), torch.inference_mode():
            probabilities = model(pixels.to(self.device)).logits.float().softmax(-1).tolist()
        names = getattr(config, "class_names", None) or [config.id2label[i] for i in range(len(probabilities[0]))]
        return [{str(name): float(p) for name, p in zip(names, row)} for row in probabilities]

    def _classifier(self) -> Any:
        if not self.has("classifier"):
            return None
        try:
            return self.model("classifier")
        except CheckpointError as error:
            logger.warning("Expression classifier unavailable: %s", error)
            return None

    # --- editing -----------------------------------------------------------------------------------------------------
    def edit(self, image: Any, method: str = "cyclegan", target: str | None = "happy", intensity: float = 1.0,
             reference: Any = None, progress_callback: ProgressCallback | None = None,
             max_faces: int | None = -1, steps: int | None = None, read_expressions: bool = True,
             read_edited: bool = True, **controls: Any) -> EditResult:
        """Edit every face (the ``max_faces`` largest; ``-1`` means the editor's default) of ``image``.

        ``image``: a photo (path, bytes, file object, PIL image or array) or the :class:`Detection` of one, which skips
        decoding and detection. ``steps``: neural style transfer's optimisation steps for this call (default: the
        editor's ``nst_steps``). ``read_expressions=False`` skips the classifier's readings (``reading_before`` and
        ``reading_after`` stay None; the SA-GAN's ``intensity`` then walks from no particular expression, a blend):
        a live webcam frame needs none. ``read_edited=False`` skips only the reading of the edited faces
        (``reading_after``), which steers nothing: a caller that will not show it saves a classifier pass (the CLI
        without ``--json``). ``controls``: the method's own options (``EditingMethod.controls``); a name
        the method does not take raises ``TypeError``.

        Raises :class:`UnknownMethodError`, :class:`UnknownExpressionError`, :class:`ImageLoadError` and its
        :class:`ImageTooLargeError`, :class:`NoFaceError` (no face in the photo or in the NST ``reference``) and
        :class:`CheckpointError` (the method's model is missing); all derive from ``ExpressionEditError``.
        """
        start = time.perf_counter()
        report = progress_callback or no_progress
        spec = editing_method(method)
        target = self.check_target(spec.name, target)
        controls = spec.check_controls(controls)
        highest = self.max_intensity(spec.name)
        if not 0.0 <= float(intensity) <= highest:
            raise ValueError(f"intensity must be in [0, {highest:g}] for {spec.label}, got {intensity}")
        intensity = float(intensity)
        max_faces = self.max_faces if max_faces == -1 else max_faces
        steps = self.nst_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if spec.needs_reference and reference is None:
            raise ExpressionEditError(f"{spec.label} needs a reference face photo (the expression to copy).")

        if isinstance(image, Detection):
            detection = image
        else:
            report(0.0, "Loading the photo and finding faces")
            detection = self.detect(image)
        photo, boxes, notes = detection.pixels, detection.boxes, list(detection.notes)
        timings = dict(detection.timings)
        if not boxes:
            raise NoFaceError(self.no_face_message())
        if max_faces is not None and len(boxes) > max_faces:
            notes.append(f"Found {len(boxes)} faces; edited the {max_faces} largest.")
            boxes = boxes[:max_faces]

        reference_crop = self._reference_crop(spec, reference) if spec.needs_reference else None

        tick = time.perf_counter()
        readings = (self.read_expressions(photo, boxes) if read_expressions else None) or [None] * len(boxes)
        output = photo.copy()  # the faces are pasted into this one copy
        faces: list[FaceResult] = []
        for number, (box, reading) in enumerate(zip(boxes, readings)):
            face_start = time.perf_counter()
            span = (0.1 + 0.85 * number / len(boxes), 0.1 + 0.85 * (number + 1) / len(boxes))

            def face_progress(fraction: float, message: str, span=span) -> None:
                report(span[0] + (span[1] - span[0]) * fraction, message)

            face_progress(0.0, f"Editing face {number + 1} of {len(boxes)}")
            source_expression = max(reading, key=reading.get) if reading else None
            # Full resolution; each method resizes for its model.
            crop, transform = self.processor.crop(photo, box, scale=spec.crop_scale(self))
            face = FaceToEdit(crop, self.processor.crop_landmarks(box, transform), photo, box, transform, target,
                              intensity, source_expression, reference_crop, steps, face_progress, controls,
                              smile=reading.get("happy") if reading else None)
            # Intensity 0 and no control set: nothing to apply; the model is skipped.
            edited = crop if intensity == 0.0 and not any(controls.values()) else spec.edit_face(self, face)
            notes.extend(f"Face {number + 1} {note}" if len(boxes) > 1 else f"The face {note}" for note in face.notes)
            mask = spec.blend_mask(self, face)
            if mask is None:
                mask = self.processor.blend_mask(transform, box, photo)
            output = self.processor.paste(output, edited, transform, mask, out=output)
            faces.append(FaceResult(box, transform, mask, time.perf_counter() - face_start, source_expression, reading,
                                    mesh=face.mesh))
        read_after = read_expressions and read_edited
        for face, reading in zip(faces, (self.read_expressions(output, boxes) if read_after else None) or []):
            face.reading_after = reading
        timings["edit"] = time.perf_counter() - tick
        # A Detection made earlier: its load and detect times are part of the total.
        timings["total"] = time.perf_counter() - start + (sum(detection.timings.values()) if detection is image else 0)
        report(1.0, "Done")
        return EditResult(Image.fromarray(output), detection.image, faces, spec.name, target, intensity, timings, notes)

    def prepare(self, method: str, target: str | None = "happy") -> str | None:
        """Check ``method`` and ``target`` and load the models they need now (not on the first photo).

        Returns the target's canonical name. Raises the errors :meth:`edit` would raise for every photo.
        """
        spec = editing_method(method)
        target = self.check_target(spec.name, target)
        spec.prepare(self, target)
        self._classifier()
        detector = self.face_detector()  # loads the segmenter's checkpoint when that is the detector
        if isinstance(detector, RetinaFaceDetector):
            detector.load()  # onnxruntime and the model file, checked now
        return target

    def check_target(self, method: str, target: str | None) -> str | None:
        """``target``'s canonical name, if ``method`` can produce it with the models at hand."""
        spec = editing_method(method)
        if target is None:
            if not spec.needs_target:
                return None
            raise UnknownExpressionError(f"{spec.name} needs a target expression, e.g. 'happy'.")
        try:
            target = canonical_expression(target)
        except ValueError as error:
            raise UnknownExpressionError(str(error)) from None
        supported = spec.targets(self)
        if not supported:
            raise CheckpointError(self.store.missing_message(spec.component))
        if target not in supported:
            raise UnknownExpressionError(f"{spec.name} here can produce {', '.join(supported)}, not {target!r}.")
        return target

    def _reference_crop(self, spec, reference: Any) -> np.ndarray:
        reference_image = np.asarray(load_image(reference, self.max_pixels))
        boxes = self.detect_faces(reference_image)
        if not boxes:
            raise NoFaceError(f"No face found in the reference photo for {spec.label}.")
        return spec.reference_crop(self, reference_image, boxes[0])

    @contextlib.contextmanager
    def generating(self):
        """Inference mode, the editor's thread cap and, where it pays (``precision``), bfloat16 autocast: how the
        methods run their generators."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch_threads(self._gan_threads))
            stack.enter_context(torch.inference_mode())
            if self.autocast_dtype is not None:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
                if self.precision == "auto":  # speed was asked for, not bf16: the fp32 graphs are faster still
                    stack.enter_context(serve_under_autocast())
            yield
