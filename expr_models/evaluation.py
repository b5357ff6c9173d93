"""Evaluate the expression editors on held-out subjects, with numbers beyond the study's cycle L1.

    python -m expr_models evaluate --models checkpoints --data prepared/paper prepared/expressions --out results/

Each ``--data`` folder is a ``DatasetDict`` saved by ``python -m train.prepare_data`` (columns ``image``,
``expression``, ``subject``, ``source``); its ``test`` split holds the held-out subjects. For every editor in
``--models`` (found by ``model_type``, as the pipeline finds them) and every target it can produce, the faces of the
other expressions are edited and measured:

- **expression success**: the fraction of edited faces the expression classifier reads as the target, next to its
  *ceiling*, the classifier's recall on real held-out faces of that expression (and its accuracy on all of them);
  also the fraction of the *inputs* it already read as the target (the floor);
- **KID** between real target-expression faces and edited faces, on the classifier's penultimate features;
- **preservation**: SSIM and L1 of the upper face (the top 45% of the aligned crop: eyes, brows, forehead), and on
  whole photos through the pipeline's paste-back, the pixels changed outside the blend mask (should be 0);
- CycleGAN only: the **cycle reconstruction L1** ``mean |x - F(G(x))|``, on [-1, 1] tensors, [0, 1] and [0, 255];
- edits to happy: the **paired error** on FEI, whose subjects each have a neutral and a smiling photo.

A ``--data`` folder of WIDER photos (``prepare_data --source wider``) gets the face-detection evaluation instead:
AP@0.5 of the default RetinaFace detector, the Haar cascade and the trained segmenter
(:mod:`expr_models.detection_evaluation`).

Writes ``OUT/evaluation.json`` and ``OUT/evaluation.md`` (tables to paste into the README). No image is written.

Exit status: 0 when the evaluation ran, and also when it was skipped because the data or the checkpoints are absent
(the message starts with ``skipped:``); 2 for bad arguments, a broken data folder or a broken checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from PIL import Image

from . import metrics
from .cli_types import positive_int
from .errors import ExpressionEditError, NoFaceError

EXIT_OK, EXIT_USAGE = 0, 2

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ("prepared/paper", "prepared/expressions")
from .components import METHOD_COMPONENTS, METHODS
PAIRED_SOURCES = ("fei",)  # sources whose subjects have a neutral and a smiling photo, taken alike
BATCH_SIZE = 16
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


def default_raw_data() -> Path:
    """``../shared/data`` next to the repository (or next to the working directory for an installed package)."""
    beside_repo = REPO_ROOT.parent / "shared" / "data"
    return beside_repo if (REPO_ROOT / "pyproject.toml").is_file() else Path("..") / "shared" / "data"


class EvaluationDataError(ExpressionEditError):
    """A ``--data`` folder is not a usable DatasetDict (not one, no test split, no expression column)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Held-out faces
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Face:
    """One held-out face crop as stored in the dataset (grayscale uint8), with its labels."""

    pixels: np.ndarray
    expression: str
    subject: str
    source: str
    path: str  # the source file's path inside its source folder, as the dataset stored it (finds the photo)

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.subject


@dataclass
class HeldOut:
    name: str
    path: Path
    split: str
    faces: list[Face]
    total: int  # faces in the split before --limit

    def info(self) -> dict:
        return {
            "path": str(self.path),
            "split": self.split,
            "faces": len(self.faces),
            "faces_in_split": self.total,
            "per_expression": dict(sorted(Counter(f.expression for f in self.faces).items())),
            "per_source": dict(sorted(Counter(f.source for f in self.faces).items())),
            "subjects": len({f.key for f in self.faces if f.subject}),
        }


def load_held_out(path: str | os.PathLike, split: str = "test", limit: int | None = None) -> HeldOut:
    """The ``split`` of the DatasetDict saved at ``path``, decoded to grayscale crops.

    Faces are sorted by (source, subject, file) so that runs agree; ``limit`` keeps at most ``limit`` faces of each
    expression, taken in turn from each source (FEI pairs stay together, as each subject has one face per
    expression).
    """
    from datasets import DatasetDict, Image as ImageFeature, load_from_disk

    path = Path(path)
    try:
        dsd = load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - datasets raises several types for a folder it cannot read
        raise EvaluationDataError(f"{path} is not a dataset saved with save_to_disk ({error})") from error
    if not isinstance(dsd, DatasetDict):
        raise EvaluationDataError(f"{path} holds a single Dataset; expected a DatasetDict with a {split!r} split")
    if split not in dsd:
        raise EvaluationDataError(f"{path} has no {split!r} split (it has {', '.join(dsd) or 'none'})")
    dataset = dsd[split]
    missing = {"image", "expression"} - set(dataset.column_names)
    if missing:
        raise EvaluationDataError(f"{path} [{split}] lacks the column(s) {', '.join(sorted(missing))}")
    names = dataset.features["expression"].names
    dataset = dataset.cast_column("image", ImageFeature(decode=False))  # bytes + stored path, decoded here

    faces = []
    for row in dataset:
        image = row["image"]
        with Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]) as opened:
            pixels = np.asarray(opened.convert("L"))
        faces.append(Face(pixels, names[row["expression"]], row.get("subject") or "", row.get("source") or "",
                          image.get("path") or ""))
    faces.sort(key=lambda f: (f.source, f.subject, f.path, f.expression))
    total = len(faces)
    if limit is not None:
        faces = _first_per_expression(faces, limit)
    return HeldOut(path.name, path, split, faces, total)


def _first_per_expression(faces: list[Face], limit: int) -> list[Face]:
    """At most ``limit`` faces per expression, taken in turn from each source so that a small limit still mixes
    the sources (in source order, each source's faces in sorted order: FEI pairs stay together)."""
    by_expression: dict[str, dict[str, list[Face]]] = {}
    for face in faces:
        by_expression.setdefault(face.expression, {}).setdefault(face.source, []).append(face)
    kept = []
    for sources in by_expression.values():
        queues = [list(reversed(group)) for _, group in sorted(sources.items())]
        taken = 0
        while taken < limit and any(queues):
            for queue in queues:
                if queue and taken < limit:
                    kept.append(queue.pop())
                    taken += 1
    return sorted(kept, key=lambda f: (f.source, f.subject, f.path, f.expression))


def to_tensor(faces: list[Face], resolution: int, channels: int = 1) -> torch.Tensor:
    """Stored crops -> ``N x channels x R x R`` in [-1, 1], resized as the pipeline resizes (area down, cubic up)."""
    arrays = []
    for face in faces:
        pixels = face.pixels
        if pixels.shape != (resolution, resolution):
            shrink = pixels.shape[0] > resolution
            pixels = cv2.resize(pixels, (resolution, resolution),
                                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        arrays.append(pixels.astype(np.float32) / 127.5 - 1.0)
    if not arrays:
        return torch.zeros(0, channels, resolution, resolution)
    tensor = torch.from_numpy(np.stack(arrays))[:, None]
    return tensor.expand(-1, channels, -1, -1).contiguous() if channels != 1 else tensor


# ---------------------------------------------------------------------------------------------------------------------
# Editors under test
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Method:
    """One editor: how to edit a batch of crops to a target, and which inputs each target is edited from."""

    name: str  # row label: the pipeline method, plus the checkpoint name when there are several
    kind: str  # the pipeline's method: cyclegan, sagan or nst
    checkpoint: str
    model: Any
    resolution: int
    channels: int
    targets: tuple[str, ...]
    needs_reference: bool = False
    edit: Callable[..., torch.Tensor] = field(repr=False, default=None)
    editor_options: dict = field(default_factory=dict)  # ExpressionEditor arguments for the whole-photo check

    def sources_for(self, target: str) -> tuple[str, ...]:
        """The input expressions edited to ``target``: the other domain for two-domain editors, else all others."""
        if self.kind == "sagan":
            return tuple(name for name in self.model.config.class_names if name != target)
        return tuple(name for name in self.targets if name != target)


def cyclegan_method(model, checkpoint: str, name: str = "cyclegan") -> Method:
    config = model.config

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        return model.generate(x, to=target)

    return Method(name, "cyclegan", checkpoint, model, config.resolution, config.in_channels, tuple(config.domains),
                  edit=edit)


def sagan_method(model, checkpoint: str) -> Method:
    config = model.config

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        return model.generate(x, to=target)

    return Method("sagan", "sagan", checkpoint, model, config.resolution, config.in_channels,
                  tuple(config.class_names), edit=edit)


def nst_method(extractor, checkpoint: str, steps: int, resolution: int = 128,
               targets: tuple[str, ...] = ("neutral", "happy")) -> Method:
    """Gatys NST from each face to a real face of the target expression (another subject), inside the face mask,
    as the pipeline does it; the result's luminance is kept."""
    from .face import face_mask
    from .style_transfer import run_style_transfer

    mask = torch.from_numpy(face_mask(resolution))[None, None]

    def rgb01(image: torch.Tensor) -> torch.Tensor:  # 1 x H x W in [-1, 1] -> 1 x 3 x H x W in [0, 1], as NST takes
        return ((image + 1) / 2).expand(3, -1, -1)[None]

    def edit(x: torch.Tensor, target: str, references: torch.Tensor) -> torch.Tensor:
        device = next(extractor.parameters()).device
        outputs = []
        for content, style in zip(x, references):
            with torch.enable_grad():  # NST optimises the pixels
                result = run_style_transfer(rgb01(content).to(device), rgb01(style).to(device), extractor,
                                            mask=mask.to(device), style_mask=mask.to(device), steps=steps)
            outputs.append(metrics.match_input(result.cpu() * 2 - 1, None, 1))  # back to [-1, 1] luma
        return torch.cat(outputs)

    return Method("nst", "nst", checkpoint, extractor, resolution, 1, targets, needs_reference=True, edit=edit,
                  editor_options={"nst_steps": steps, "nst_resolution": resolution})


@torch.no_grad()
def run_batched(fn: Callable[..., torch.Tensor], x: torch.Tensor, *extra: torch.Tensor | None,
                device: torch.device | str = "cpu", batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``fn(batch, *extra_batches)`` over ``x`` in batches on ``device``; the outputs come back to the CPU."""
    outputs = []
    for start in range(0, len(x), batch_size):
        pieces = [t[start:start + batch_size].to(device) if t is not None else None for t in (x, *extra)]
        outputs.append(fn(*pieces).float().cpu().clamp(-1, 1))
    return torch.cat(outputs) if outputs else x.clone()


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def checkpoint_info(path: Path) -> dict:
    """Name, path, model type and the first 16 hex digits of ``model.safetensors``' SHA-256, for provenance."""
    info = {"name": path.name, "path": str(path)}
    try:
        info["model_type"] = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        pass
    weights = path / "model.safetensors"
    if weights.is_file():
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        info["sha256"] = digest.hexdigest()[:16]
    return info


def load_models(models_dir: Path, methods: tuple[str, ...], device: torch.device, nst_steps: int,
                nst_resolution: int) -> tuple[list[Method], Any, dict[str, list[dict]]]:
    """The editors to evaluate, the classifier (or None) and the checkpoints' provenance."""
    from .classifier import ExpressionClassifier
    from .cyclegan import CycleGANModel
    from .pipeline import find_checkpoints
    from .sagan import SAGANModel

    found = find_checkpoints(models_dir)
    used: dict[str, list[dict]] = {}
    editors: list[Method] = []

    def load(component: str, cls, path: Path):
        used.setdefault(component, []).append(checkpoint_info(path))
        return cls.from_pretrained(path).to(device).eval()

    if "cyclegan" in methods:
        paths = found.get("cyclegan", [])
        for path in paths:
            name = "cyclegan" if len(paths) == 1 else f"cyclegan:{path.name}"
            editors.append(cyclegan_method(load("cyclegan", CycleGANModel, path), path.name, name))
    if "sagan" in methods and found.get("sagan"):
        path = found["sagan"][0]
        editors.append(sagan_method(load("sagan", SAGANModel, path), path.name))
    if "nst" in methods and found.get("style_features"):
        from .style_transfer import StyleFeatureExtractor

        path = found["style_features"][0]
        extractor = load("style_features", StyleFeatureExtractor, path)
        editors.append(nst_method(extractor, path.name, nst_steps, nst_resolution))
    classifier = None
    if found.get("classifier"):
        classifier = load("classifier", ExpressionClassifier, found["classifier"][0])
    return editors, classifier, used


def load_segmenter(models_dir: Path, device: torch.device, used: dict[str, list[dict]]):
    """The trained face segmenter in ``models_dir``, or None; records its provenance in ``used``."""
    from .pipeline import find_checkpoints
    from .segmenter import FaceSegmenter

    paths = find_checkpoints(models_dir).get("segmenter")
    if not paths:
        return None
    if "segmenter" not in used:
        used["segmenter"] = [checkpoint_info(paths[0])]
    return FaceSegmenter.from_pretrained(paths[0]).to(device).eval()


# ---------------------------------------------------------------------------------------------------------------------
# One dataset
# ---------------------------------------------------------------------------------------------------------------------

class Judge:
    """The expression classifier's readings and features, cached per set of faces."""

    def __init__(self, classifier, batch_size: int = 64):
        self.classifier = classifier
        self.names = list(classifier.config.class_names) if classifier is not None else []
        self.batch_size = batch_size

    def __bool__(self) -> bool:
        return self.classifier is not None

    def index(self, expression: str) -> int | None:
        return self.names.index(expression) if expression in self.names else None

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return metrics.predict(self.classifier, images, self.batch_size)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return metrics.classifier_features(self.classifier, images, self.batch_size)


def ceiling(judge: Judge, faces: list[Face]) -> dict:
    """The classifier on the real held-out faces: accuracy and per-expression recall (the ceiling of success)."""
    known = [f for f in faces if judge.index(f.expression) is not None]
    if not known:
        return {"n": 0, "accuracy": None, "recall": {}, "n_per_expression": {}}
    labels = torch.tensor([judge.index(f.expression) for f in known])
    predictions = judge.predict(to_tensor(known, judge.classifier.config.resolution))
    recall = metrics.per_class_recall(predictions, labels, len(judge.names))
    counts = Counter(f.expression for f in known)
    return {
        "n": len(known),
        "accuracy": metrics.accuracy(predictions, labels),
        "recall": {name: value for name, value in zip(judge.names, recall) if counts[name]},
        "n_per_expression": {name: counts[name] for name in judge.names if counts[name]},
        "left_out": dict(Counter(f.expression for f in faces if judge.index(f.expression) is None)),
    }


def pick_references(sources: list[Face], candidates: list[Face]) -> list[Face]:
    """For NST: a real target-expression face for each input, of another subject where possible (round-robin)."""
    picked = []
    for number, face in enumerate(sources):
        others = [c for c in candidates if c.key != face.key] or candidates
        picked.append(others[number % len(others)])
    return picked


def fei_pairs(sources: list[Face], faces: list[Face]) -> list[tuple[int, Face]]:
    """``(index in sources, the same subject's smiling face)`` for the neutral inputs of paired sources."""
    smiles = {f.key: f for f in faces if f.expression == "happy" and f.source in PAIRED_SOURCES and f.subject}
    return [(i, smiles[f.key]) for i, f in enumerate(sources)
            if f.expression == "neutral" and f.source in PAIRED_SOURCES and f.key in smiles]


def paired_error(edited: torch.Tensor, inputs: torch.Tensor, real: torch.Tensor) -> dict:
    """L1 and SSIM, whole crop and lower face, of the edit and of the unedited input against the real expression."""
    def scores(a: torch.Tensor) -> dict:
        return {"l1": metrics.l1(a, real), "ssim": metrics.ssim(a, real),
                "lower_face_l1": metrics.l1(metrics.lower_face(a), metrics.lower_face(real)),
                "lower_face_ssim": metrics.ssim(metrics.lower_face(a), metrics.lower_face(real))}

    return {"n_pairs": len(real), "edited_vs_real": scores(edited), "input_vs_real": scores(inputs)}


def original_photo(face: Face, raw_data: Path | None) -> Path | None:
    """The face's source file in the raw data, ``<raw>/<source folder>/<stored path>``, if it is there."""
    from .data import SOURCE_DIRS

    if raw_data is None or not face.path:
        return None
    path = raw_data / SOURCE_DIRS.get(face.source, face.source) / face.path
    return path if path.is_file() else None


def whole_photo(face: Face, raw_data: Path | None) -> tuple[np.ndarray, str]:
    """The face's original photo (RGB uint8) from the raw data, else its stored crop; and which of the two."""
    from .pipeline import load_image

    original = original_photo(face, raw_data)
    if original is not None:
        return np.asarray(load_image(original)), "original"
    return np.repeat(face.pixels[..., None], 3, axis=-1), "dataset image"


def whole_photo_check(method: Method, target: str, sources: list[Face], references: list[Face] | None,
                      raw_data: Path | None, device: torch.device, max_photos: int) -> dict:
    """Edit whole photos through the pipeline (detect, crop, edit, paste back) and count the pixels changed outside
    the blend mask, which paste-back promises to leave byte-identical."""
    from .pipeline import ExpressionEditor

    component = METHOD_COMPONENTS[method.kind]
    editor = ExpressionEditor(models_dir=None, device=device, models={component: method.model},
                              **method.editor_options)
    # Faces with an original photo first: FER2013/CK+ are 48x48 crops with no photo around them.
    order = sorted(range(len(sources)), key=lambda i: original_photo(sources[i], raw_data) is None)
    photos, changed, outside, no_face, kinds = 0, 0, 0, 0, Counter()
    for number in order[:max_photos]:
        photo, kind = whole_photo(sources[number], raw_data)
        reference = whole_photo(references[number], raw_data)[0] if references else None
        try:
            result = editor.edit(photo, method=method.kind, target=target, reference=reference, max_faces=None)
        except NoFaceError:
            no_face += 1
            continue
        counted = metrics.changed_pixels_outside_mask(np.asarray(result.original), np.asarray(result.image),
                                                      np.asarray(result.mask_image()))
        photos += 1
        kinds[kind] += 1
        changed += counted["changed"]
        outside += counted["outside"]
    return {"photos": photos, "no_face_found": no_face, "photo_kinds": dict(kinds),
            "changed_pixels_outside_mask": changed, "pixels_outside_mask": outside}


def evaluate_dataset(held_out: HeldOut, editors: list[Method], judge: Judge, device: torch.device,
                     raw_data: Path | None, max_photos: int, nst_faces: int) -> dict:
    faces = held_out.faces
    result: dict[str, Any] = {"data": held_out.info(), "edits": []}
    real_features: dict[str, torch.Tensor] = {}  # classifier features of the real faces, per expression
    if judge:
        log(f"[{held_out.name}] classifier on {len(faces)} real held-out faces")
        result["classifier"] = ceiling(judge, faces)
    for method in editors:
        for target in method.targets:
            sources = [f for f in faces if f.expression in method.sources_for(target)]
            if method.kind == "nst":
                sources = sources[:nst_faces]
            if not sources:
                log(f"[{held_out.name}] {method.name} -> {target}: no inputs of {', '.join(method.sources_for(target))}"
                    " in this split; skipped")
                continue
            log(f"[{held_out.name}] {method.name} -> {target}: editing {len(sources)} faces")
            tick = time.perf_counter()
            row = evaluate_edit(held_out, method, target, sources, judge, device, raw_data, max_photos,
                                real_features)
            row["seconds"] = round(time.perf_counter() - tick, 1)
            result["edits"].append(row)
    return result


def evaluate_edit(held_out: HeldOut, method: Method, target: str, sources: list[Face], judge: Judge,
                  device: torch.device, raw_data: Path | None, max_photos: int,
                  real_features: dict[str, torch.Tensor]) -> dict:
    faces = held_out.faces
    real_target = [f for f in faces if f.expression == target]
    references = None
    if method.needs_reference:
        if not real_target:
            return {"method": method.name, "checkpoint": method.checkpoint, "target": target, "n": 0,
                    "skipped": f"no real {target} face to take the style from"}
        references = pick_references(sources, real_target)

    inputs = to_tensor(sources, method.resolution, method.channels)
    reference_tensor = to_tensor(references, method.resolution, method.channels) if references else None
    edited = run_batched(lambda x, r=None: method.edit(x, target, r), inputs, reference_tensor, device=device)

    row: dict[str, Any] = {
        "method": method.name, "checkpoint": method.checkpoint, "target": target, "n": len(sources),
        "inputs": dict(sorted(Counter(f.expression for f in sources).items())),
        "upper_face": {"ssim": metrics.ssim(metrics.upper_face(inputs), metrics.upper_face(edited)),
                       "l1": metrics.l1(metrics.upper_face(inputs), metrics.upper_face(edited))},
    }

    target_index = judge.index(target) if judge else None
    if target_index is not None:
        row["success_rate"] = metrics.success_rate(judge.predict(edited), target_index)
        row["inputs_read_as_target"] = metrics.success_rate(judge.predict(inputs), target_index)
        if target not in real_features:
            real_features[target] = judge.features(to_tensor(real_target, judge.classifier.config.resolution))
        real, fake = real_features[target], judge.features(edited)
        if len(real) >= 2 and len(fake) >= 2:
            row["kid"] = {**metrics.kernel_inception_distance(real, fake, KID_SUBSETS, KID_SUBSET_SIZE),
                          "n_real": len(real), "n_edited": len(fake)}
        else:
            row["kid"] = {"skipped": f"needs 2 real and 2 edited faces, has {len(real)} and {len(fake)}"}
    elif judge:
        row["success_rate"] = None
        row["note"] = f"the classifier does not know {target!r}"

    if method.kind == "cyclegan":
        back = method.model.other_domain(target)
        reconstructed = run_batched(lambda x: method.model.generate(x, to=back), edited, device=device)
        row["cycle_l1"] = metrics.cycle_reconstruction_l1(inputs, reconstructed)

    if target == "happy":
        pairs = fei_pairs(sources, faces)
        if pairs:
            index = torch.tensor([i for i, _ in pairs])
            real = to_tensor([smile for _, smile in pairs], method.resolution, method.channels)
            row["paired"] = paired_error(edited[index], inputs[index], real)

    if max_photos > 0:
        row["whole_photos"] = whole_photo_check(method, target, sources, references, raw_data, device, max_photos)
    return row


# ---------------------------------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------------------------------

def _cpu_name() -> str | None:
    try:  # platform.processor() is empty on most Linux systems
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


NOTES = [
    "Held-out = the test split of each --data folder: subjects the models never saw in training, provided they were "
    "trained on splits built with the same seed (train.prepare_data --seed, default 0).",
    "Expression success: share of edited faces the expression classifier reads as the target. Ceiling: the same "
    "classifier's recall on real held-out faces of the target expression; floor: share of the unedited inputs it "
    "already read as the target.",
    "KID: unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3, mean and std over random subsets, on the "
    "expression classifier's penultimate (pooled, pre-linear) features, not on Inception features, so its scale is "
    "this classifier's own. Each subset holds min(1000, real, edited) faces: with small held-out sets that is the "
    "whole smaller set, so the std only shows the subsampling of the larger one (0 for sets of one size).",
    "Cycle L1: mean |x - F(G(x))| on the model's [-1, 1] tensors (the reference CycleGAN code's scale); the same "
    "number on [0, 1] is half of it and per pixel on [0, 255] it is 127.5 times it.",
    "Upper face: the top 45% of the rows of the aligned crop (eyes, brows, forehead), input vs. edit at the model's "
    "resolution, SSIM (scikit-image, data range 2) and L1 on [-1, 1].",
    "Whole photos: the original photo (or the stored crop where no original is found) edited through the pipeline; "
    "pixels with any channel changed where the blend mask is 0.",
    "Paired (FEI): neutral photo edited to happy vs. the same subject's real smiling photo, against the unedited "
    "neutral photo vs. the smile; lower face = the rows below the upper face.",
]


def run_evaluation(models_dir: str | os.PathLike, data_dirs: list[str | os.PathLike], methods=("cyclegan", "sagan"),
                   limit: int | None = None, device: str = "cpu", raw_data: str | os.PathLike | None = None,
                   split: str = "test", max_photos: int = 20, nst_steps: int = 30, nst_faces: int = 8,
                   nst_resolution: int = 128, detection_photos: int | None = 150) -> dict:
    """Evaluate the checkpoints in ``models_dir`` on the ``split`` of each dataset; returns the results dict.

    A dataset of WIDER photos (a ``faces`` column) is evaluated for face detection instead, on its ``validation``
    split (WIDER's test annotations are not public): the default RetinaFace, the Haar cascade and the segmenter
    checkpoint, if any, on the first ``detection_photos`` photos (see :mod:`expr_models.detection_evaluation`).

    Raises :class:`EvaluationDataError` for an unusable dataset and ``CheckpointError`` for a broken checkpoint.
    """
    from . import detection_evaluation

    torch.manual_seed(0)
    device = torch.device(device)
    raw_data = Path(raw_data) if raw_data is not None else None
    editors, classifier, checkpoints = load_models(Path(models_dir), tuple(methods), device, nst_steps,
                                                   nst_resolution)
    judge = Judge(classifier)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(device),
        "settings": {"models": str(models_dir), "data": [str(d) for d in data_dirs], "split": split,
                     "methods": [m.name for m in editors], "limit_per_expression": limit,
                     "raw_data": str(raw_data) if raw_data else None, "max_photos": max_photos,
                     "upper_face_fraction": metrics.UPPER_FACE_FRACTION,
                     "kid": {"subsets": KID_SUBSETS, "max_subset_size": KID_SUBSET_SIZE, "kernel": "(x.y/d + 1)^3"},
                     **({"nst": {"steps": nst_steps, "faces": nst_faces, "resolution": nst_resolution}}
                        if any(m.kind == "nst" for m in editors) else {})},
        "checkpoints": checkpoints,
        "classifier_available": classifier is not None,
        "notes": list(NOTES),
        "datasets": {},
    }
    if classifier is None:
        results["notes"].append("No expression classifier checkpoint: success rates, ceilings and KID are missing.")
    for data_dir in data_dirs:
        if detection_evaluation.is_detection_dataset(data_dir):
            segmenter = load_segmenter(Path(models_dir), device, checkpoints)
            log(f"[{Path(data_dir).name}] face detection: RetinaFace, Haar"
                + (" and the segmenter" if segmenter else "") + f" on up to {detection_photos} validation photos")
            results.setdefault("detection", {})[Path(data_dir).name] = detection_evaluation.evaluate_detectors(
                data_dir, segmenter, "validation", detection_photos)
            continue
        held_out = load_held_out(data_dir, split, limit)
        log(f"[{held_out.name}] {len(held_out.faces)} held-out faces ({held_out.total} in the {split} split)")
        name = held_out.name if held_out.name not in results["datasets"] else str(data_dir)
        results["datasets"][name] = evaluate_dataset(held_out, editors, judge, device, raw_data, max_photos,
                                                     nst_faces)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


# ---------------------------------------------------------------------------------------------------------------------
# The Markdown report
# ---------------------------------------------------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _kid_text(kid: dict) -> str:
    """KID x 10^3 as ``mean ± std``; a std at float rounding level (identical subsets) shows as 0."""
    if "mean" not in kid:
        return "n/a"
    mean, std = 1e3 * kid["mean"], 1e3 * kid["std"]
    std = 0.0 if std <= 1e-9 * max(abs(mean), 1e-3) else std
    return f"{mean:.3g} ± {std:.2g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def _edit_label(row: dict) -> str:
    inputs = row.get("inputs", {})
    source = next(iter(inputs)) if len(inputs) == 1 else "others"
    return f"{source} → {row['target']}"


def markdown_report(results: dict) -> str:
    """The results as Markdown tables, ready to paste into the README."""
    machine = results["machine"]
    lines = [
        "## Evaluation",
        "",
        f"Held-out subjects (the `{results['settings']['split']}` split), {results['created']}, on "
        f"{machine['device']} ({machine.get('gpu') or machine['processor'] or machine['machine']}, "
        f"{machine['cpu_count']} CPUs, torch {machine['torch']}).",
        "",
    ]
    if results.get("command"):
        lines += [f"`{results['command']}`", ""]
    names = {kind: ", ".join(f"`{c['name']}`" + (f" ({c['sha256']})" if c.get("sha256") else "") for c in found)
             for kind, found in results["checkpoints"].items()}
    lines += ["Checkpoints: " + ("; ".join(f"{kind} {value}" for kind, value in names.items()) or "none") + ".", ""]
    data_rows = []
    for name, dataset in results["datasets"].items():
        info = dataset["data"]
        per = ", ".join(f"{k} {v}" for k, v in info["per_expression"].items())
        data_rows.append([f"`{name}`", info["split"], f"{info['faces']} of {info['faces_in_split']}",
                          info["subjects"], ", ".join(f"{k} {v}" for k, v in info["per_source"].items()), per])
    lines += _table(["data", "split", "faces used", "subjects", "sources", "per expression"], data_rows)
    limit = results["settings"].get("limit_per_expression")
    if limit:
        lines += [f"At most {limit} faces per expression and dataset (`--limit {limit}`).", ""]

    if results.get("classifier_available"):
        lines += ["### The judge: expression classifier on real held-out faces", "",
                  "Its accuracy on all real held-out faces, and its recall per expression (the share of real faces "
                  "of that expression it reads correctly): the ceiling of the success rates below.", ""]
        rows = []
        for name, dataset in results["datasets"].items():
            judged = dataset.get("classifier", {})
            recall = ", ".join(f"{expression} {_pct(value)} ({judged['n_per_expression'][expression]})"
                               for expression, value in judged.get("recall", {}).items())
            rows.append([f"`{name}`", judged.get("n", 0), _pct(judged.get("accuracy")), recall or "n/a"])
        lines += _table(["data", "real faces", "accuracy", "recall per expression (faces)"], rows)

        lines += ["### Expression success", "",
                  "Share of edited faces the classifier reads as the target, beside its ceiling: the classifier's "
                  "recall on real held-out faces of the target (their count in brackets) and its accuracy on all "
                  "real held-out faces. *Inputs*: share of the unedited inputs already read as the target. KID "
                  "between real faces of the target and the edits, on the classifier's penultimate features "
                  "(x10^3, mean ± std over subsets; lower = closer; n/a with fewer than 2 real faces).", ""]
        rows = []
        for name, dataset in results["datasets"].items():
            judged = dataset.get("classifier", {})
            for row in dataset["edits"]:
                if "success_rate" not in row:
                    continue
                target = row["target"]
                n_real = judged.get("n_per_expression", {}).get(target, 0)
                recall = f"{_pct(judged.get('recall', {}).get(target))} ({n_real})" if n_real else "no real faces"
                kid = row.get("kid", {})
                kid_text = _kid_text(kid)
                rows.append([f"`{name}`", row["method"], _edit_label(row), row["n"], _pct(row["success_rate"]),
                             recall, _pct(judged.get("accuracy")), _pct(row.get("inputs_read_as_target")),
                             kid_text])
        lines += _table(["data", "method", "edit", "faces", "success", "ceiling: recall on real target",
                         "ceiling: accuracy", "inputs", "KID x10^3"], rows)

    lines += ["### Preservation", "",
              "Upper face (top 45% of the aligned crop: eyes, brows, forehead): input vs. edit, SSIM (1 = identical) "
              "and L1 on [-1, 1]. Whole photos through the pipeline: pixels changed outside the blend mask (should "
              "be 0).", ""]
    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "upper_face" not in row:
                continue
            photos = row.get("whole_photos")
            photo_text = (f"{photos['changed_pixels_outside_mask']} of {photos['pixels_outside_mask']} "
                          f"({photos['photos']} photos)" if photos else "not run")
            rows.append([f"`{name}`", row["method"], _edit_label(row), row["n"], _num(row["upper_face"]["ssim"]),
                         _num(row["upper_face"]["l1"], 4), photo_text])
    lines += _table(["data", "method", "edit", "faces", "upper-face SSIM", "upper-face L1", "changed outside mask"],
                    rows)

    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "cycle_l1" in row:
                cycle = row["cycle_l1"]
                back = row["target"]
                source = _edit_label(row).split(" → ")[0]
                rows.append([f"`{name}`", row["method"], f"{source} → {back} → {source}", row["n"],
                             _num(cycle["[-1,1]"], 4), _num(cycle["[0,1]"], 4), _num(cycle["[0,255]"], 2)])
    if rows:
        lines += ["### Cycle reconstruction (CycleGAN)", "",
                  "mean |x − F(G(x))| on the model's [-1, 1] tensors, the scale of the reference CycleGAN code and "
                  "so the likely scale of the study's number; the same on [0, 1] (half of it), to compare with a "
                  "study number on that scale; and per pixel on [0, 255] (127.5 times it).", ""]
        lines += _table(["data", "method", "cycle", "faces", "L1 [-1,1]", "L1 [0,1]", "L1 [0,255]"], rows)

    rows = []
    for name, dataset in results["datasets"].items():
        for row in dataset["edits"]:
            if "paired" in row:
                paired = row["paired"]
                edited, unedited = paired["edited_vs_real"], paired["input_vs_real"]
                rows.append([f"`{name}`", row["method"], paired["n_pairs"],
                             f"{_num(edited['l1'], 4)} / {_num(unedited['l1'], 4)}",
                             f"{_num(edited['lower_face_l1'], 4)} / {_num(unedited['lower_face_l1'], 4)}",
                             f"{_num(edited['ssim'])} / {_num(unedited['ssim'])}",
                             f"{_num(edited['lower_face_ssim'])} / {_num(unedited['lower_face_ssim'])}"])
    if rows:
        lines += ["### Paired error on FEI (neutral → happy)", "",
                  "Each held-out FEI subject's neutral photo, edited to happy, against the same subject's real smile: "
                  "**edit / unedited input** (L1 on [-1, 1], lower = closer; SSIM, higher = closer). An edit that "
                  "moves towards the real smile beats the unedited input.", ""]
        lines += _table(["data", "method", "pairs", "L1", "lower-face L1", "SSIM", "lower-face SSIM"], rows)

    for name, detection in results.get("detection", {}).items():
        from .detection_evaluation import markdown_table

        lines += [f"### Face detection on WIDER FACE (`{name}`)", "",
                  "AP over the interpolated precision-recall curve (PASCAL VOC matching), each detector above its "
                  "own score threshold. RetinaFace's own boxes are scored (the editor maps them to the Haar framing "
                  "for its crops). Haar boxes span brows to mouth and WIDER's the whole head, so IoU 0.3 is given "
                  "beside the usual 0.5.", ""]
        lines += markdown_table(detection) + [""]

    lines += ["Notes:", ""] + [f"- {note}" for note in results["notes"]] + [""]
    return "\n".join(lines)


def write_results(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "evaluation.json", out_dir / "evaluation.md"
    json_path.write_text(json.dumps(_jsonable(results), indent=2) + "\n")
    md_path.write_text(markdown_report(results))
    return json_path, md_path


def _jsonable(value: Any) -> Any:
    # JSON has no NaN: an undefined rate (no faces) becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--models", type=Path, default=Path("checkpoints"),
                        help="folder of checkpoints, found by model_type (default: checkpoints)")
    parser.add_argument("--data", nargs="+", metavar="DIR",
                        help="DatasetDicts saved by train.prepare_data (default: those of prepared/paper and "
                             "prepared/expressions that exist)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["cyclegan", "sagan"],
                        help="editors to evaluate (default: cyclegan sagan; nst is slow)")
    parser.add_argument("--limit", type=positive_int, help="at most N held-out faces per expression and dataset")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--split", default="test", help="the held-out split (default: test)")
    parser.add_argument("--raw-data", type=Path, default=None,
                        help="the raw data, for whole photos (default: ../shared/data beside the repository)")
    parser.add_argument("--max-photos", type=int, default=20,
                        help="whole photos edited through the pipeline per edit (default: 20; 0 skips the check)")
    parser.add_argument("--nst-steps", type=positive_int, default=30, help="NST optimisation steps (default: 30)")
    parser.add_argument("--nst-faces", type=positive_int, default=8, help="faces per NST edit (default: 8)")
    parser.add_argument("--detection-photos", type=positive_int, default=150,
                        help="WIDER validation photos for the face-detection AP (default: 150)")
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the report."""
    parts = ["python -m expr_models evaluate", f"--models {args.models}"]
    if args.data:
        parts.append("--data " + " ".join(map(str, args.data)))
    parts += [f"--out {args.out}", "--methods " + " ".join(args.methods), f"--device {args.device}"]
    if args.limit:
        parts.append(f"--limit {args.limit}")
    if args.split != "test":
        parts.append(f"--split {args.split}")
    if args.raw_data is not None:
        parts.append(f"--raw-data {args.raw_data}")
    if args.max_photos != 20:
        parts.append(f"--max-photos {args.max_photos}")
    if "nst" in args.methods:
        parts.append(f"--nst-steps {args.nst_steps} --nst-faces {args.nst_faces}")
    if args.detection_photos != 150:
        parts.append(f"--detection-photos {args.detection_photos}")
    return " ".join(parts)


def main(args: argparse.Namespace) -> int:
    """Run the ``evaluate`` command; returns the exit status (see the module docstring)."""
    from .errors import CheckpointError
    from .pipeline import find_checkpoints

    raw_data = args.raw_data if args.raw_data is not None else default_raw_data()
    data_dirs = [Path(d) for d in args.data] if args.data else [Path(d) for d in DEFAULT_DATA if Path(d).is_dir()]
    missing = [d for d in data_dirs if not d.exists()]
    if missing or not data_dirs:
        where = ", ".join(map(str, missing or [Path(d) for d in DEFAULT_DATA]))
        has_raw = raw_data.is_dir()
        log(f"skipped: no prepared data at {where}. " + (
            "Prepare it from the raw data with: python -m train.prepare_data --source paper --out prepared/paper "
            "&& python -m train.prepare_data --source expressions --out prepared/expressions" if has_raw else
            f"The raw data ({raw_data}) is absent too, so there is nothing to evaluate on."))
        return EXIT_OK

    found = find_checkpoints(args.models)
    needs = METHOD_COMPONENTS
    if not any(found.get(needs[method]) for method in args.methods):
        log(f"skipped: no checkpoint for {', '.join(args.methods)} in {args.models} (expected "
            f"{args.models}/<name>/config.json + model.safetensors; train them with train/ or point --models at them)")
        return EXIT_OK
    if not found.get("classifier"):
        log(f"warning: no expression classifier in {args.models}: success rates, ceilings and KID are left out")

    try:
        results = run_evaluation(args.models, data_dirs, args.methods, args.limit, args.device,
                                 raw_data if raw_data.is_dir() else None, args.split, args.max_photos,
                                 args.nst_steps, args.nst_faces, detection_photos=args.detection_photos)
    except (EvaluationDataError, CheckpointError) as error:
        log(f"error: {error}")
        return EXIT_USAGE
    results["command"] = command_line(args)
    json_path, md_path = write_results(results, args.out)
    print(markdown_report(results))
    log(f"wrote {json_path} and {md_path} ({results['seconds']} s)")
    return EXIT_OK


if __name__ == "__main__":  # python -m expr_models.evaluation ... (the same as python -m expr_models evaluate ...)
    sys.exit(main(add_arguments(argparse.ArgumentParser(prog="python -m expr_models.evaluation",
                                                        description=__doc__,
                                                        formatter_class=argparse.RawDescriptionHelpFormatter))
                  .parse_args()))
