"""One evaluation run: every editor on every held-out face set, measured; the results as one JSON-ready dict.

For each editor and each target it can produce, the faces of the other expressions are edited and measured
(expression success and its ceiling, KID, upper-face preservation, pixels changed outside the blend mask on whole
photos, cycle reconstruction, the paired error on FEI). A WIDER dataset gets the face-detection evaluation
(:mod:`expr_models.evaluation.detection`) instead.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..components import EDITING_METHODS, editing_method
from ..errors import NoFaceError
from ..labels import EXPRESSIONS
from ..models.runtime import widest_vector_unit
from ..pipeline import ExpressionEditor
from . import metrics
from .detection import evaluate_detectors, is_detection_dataset
from .editors import Method, load_models, load_second_reader, load_segmenter, run_batched
from .heldout import Face, HeldOut, load_held_out, original_photo, to_tensor, whole_photo
from .readings import success_by_readers
from .realism import DEFINITION as REALISM_DEFINITION
from .realism import MESH_DEFINITION, evaluate_realism

# Every registered method but those that need a reference photo (NST: minutes per face; ask for it by name) and the
# average edit (the realism ratio's baseline, measured there whatever is asked).
DEFAULT_METHODS = tuple(name for name, method in EDITING_METHODS.items()
                        if not method.needs_reference and name != "average")
PAIRED_SOURCES = ("fei",)  # sources whose subjects have a neutral and a smiling photo, taken alike
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# The judge: the expression classifier
# ---------------------------------------------------------------------------------------------------------------------

class Judge:
    """The expression classifier as the judge: its readings of a batch of faces, and their penultimate features."""

    def __init__(self, classifier, batch_size: int = 64, second_reader=None):
        self.classifier = classifier
        self.second_reader = second_reader  # an independent reader (another network, other people's training)
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


# ---------------------------------------------------------------------------------------------------------------------
# One dataset: every editor, every target
# ---------------------------------------------------------------------------------------------------------------------

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


def whole_photo_check(method: Method, target: str, sources: list[Face], references: list[Face] | None,
                      raw_data: Path | None, device: torch.device, max_photos: int,
                      judge: Judge | None = None) -> dict:
    """Edit whole photos through the pipeline (detect, crop, edit, paste back), as a user gets them, and count the
    pixels changed outside the blend mask, which paste-back promises to leave byte-identical. With a ``judge``, the
    edited originals are also read as the Space reads them (the largest face's square, cut from the edited photo by
    the editor's face processor): success end to end, beside the crops' figure."""
    component = editing_method(method.kind).component
    models = {component: method.model, **method.extra_models}
    if judge:  # the editor reads each face's expression first and edits from it, as in the Space and the CLI
        models["classifier"] = judge.classifier
    editor = ExpressionEditor(models_dir=None, device=device, models=models, **method.editor_options)
    # Faces with an original photo first: FER2013/CK+ are 48x48 crops with no photo around them.
    order = sorted(range(len(sources)), key=lambda i: original_photo(sources[i], raw_data) is None)
    photos, changed, outside, no_face, kinds = 0, 0, 0, 0, Counter()
    read_crops = []  # the edited originals' faces, for the readers
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
        if judge and kind == "original" and result.faces:
            read_crops.append(editor.processor.crop(np.asarray(result.image), result.faces[0].box)[0])
    check = {"photos": photos, "no_face_found": no_face, "photo_kinds": dict(kinds),
             "changed_pixels_outside_mask": changed, "pixels_outside_mask": outside}
    if read_crops and target in EXPRESSIONS:
        config = judge.classifier.config
        readers = {"classifier": judge.classifier}
        if judge.second_reader is not None:
            readers["second_reader"] = judge.second_reader
        crops = editor.processor.to_tensor(read_crops, config.resolution, config.in_channels)
        shares = success_by_readers(readers, crops, [target] * len(read_crops))
        check["read_as_target"] = {"photos": len(read_crops),
                                   **{name: share["success"] for name, share in shares.items()}}
    return check


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
            if method.needs_reference:  # NST: minutes per face
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
        if judge.second_reader is not None and target in EXPRESSIONS:
            # Every success figure by a second reader too, so none rests on the classifier the Space shows alone.
            shares = success_by_readers({"classifier": judge.classifier, "second_reader": judge.second_reader},
                                        edited, [target] * len(edited))
            row["success_second_reader"] = shares["second_reader"]["success"]
            row["success_both_readers"] = shares["both"]["success"]
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
        reconstructed = run_batched(lambda x: method.edit(x, back), edited, device=device)  # the same edit, back
        row["cycle_l1"] = metrics.cycle_reconstruction_l1(inputs, reconstructed)

    if target == "happy":
        pairs = fei_pairs(sources, faces)
        if pairs:
            index = torch.tensor([i for i, _ in pairs])
            real = to_tensor([smile for _, smile in pairs], method.resolution, method.channels)
            row["paired"] = paired_error(edited[index], inputs[index], real)

    if max_photos > 0:
        row["whole_photos"] = whole_photo_check(method, target, sources, references, raw_data, device, max_photos,
                                                judge)
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
        "vector_unit": widest_vector_unit(),  # e.g. avx512_bf16: precision="auto" then runs torch in bf16
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
    "trained on splits built with the same seed (train.tools.prepare_data --seed, default 0).",
    "Expression success: share of edited faces the expression classifier reads as the target. Ceiling: the same "
    "classifier's recall on real held-out faces of the target expression; floor: share of the unedited inputs it "
    "already read as the target.",
    "Mesh methods (the mesh CycleGAN and SA-GAN, the mesh motion) leave a face turned past the face mesh's reach "
    "(methods.mesh.MAX_HEAD_TURN, about 44 degrees) unchanged, as the editor does; such a face counts as a miss.",
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


def run_evaluation(models_dir: str | os.PathLike, data_dirs: list[str | os.PathLike], methods=DEFAULT_METHODS,
                   limit: int | None = None, device: str = "cpu", raw_data: str | os.PathLike | None = None,
                   split: str = "test", max_photos: int = 20, nst_steps: int = 30, nst_faces: int = 8,
                   nst_resolution: int = 128, detection_photos: int | None = 150, realism: bool = True,
                   realism_limit: int | None = None) -> dict:
    """Evaluate the checkpoints in ``models_dir`` on the ``split`` of each dataset; returns the results dict.

    A dataset of WIDER photos (a ``faces`` column) is evaluated for face detection instead, on its ``validation``
    split (WIDER's test annotations are not public): the default RetinaFace, the Haar cascade and the segmenter
    checkpoint, if any, on the first ``detection_photos`` photos (see :mod:`expr_models.evaluation.detection`).

    ``realism``: also the paired realism ratio of each method and the average edit on the ``split`` people of
    ``raw_data`` (:mod:`expr_models.evaluation.realism`; at most ``realism_limit`` photo pairs per edit), through an
    editor over ``models_dir``; noted as skipped without ``raw_data``.

    Raises :class:`EvaluationDataError` for an unusable dataset and ``CheckpointError`` for a broken checkpoint.
    """
    torch.manual_seed(0)
    device = torch.device(device)
    raw_data = Path(raw_data) if raw_data is not None else None
    editors, classifier, checkpoints = load_models(Path(models_dir), tuple(methods), device, nst_steps,
                                                   nst_resolution)
    judge = Judge(classifier, second_reader=load_second_reader(Path(models_dir), device, checkpoints))
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
        if is_detection_dataset(data_dir):
            segmenter = load_segmenter(Path(models_dir), device, checkpoints)
            log(f"[{Path(data_dir).name}] face detection: RetinaFace, Haar"
                + (" and the segmenter" if segmenter else "") + f" on up to {detection_photos} validation photos")
            results.setdefault("detection", {})[Path(data_dir).name] = evaluate_detectors(
                data_dir, segmenter, "validation", detection_photos)
            continue
        held_out = load_held_out(data_dir, split, limit)
        log(f"[{held_out.name}] {len(held_out.faces)} held-out faces ({held_out.total} in the {split} split)")
        name = held_out.name if held_out.name not in results["datasets"] else str(data_dir)
        results["datasets"][name] = evaluate_dataset(held_out, editors, judge, device, raw_data, max_photos,
                                                     nst_faces)
    if realism:
        results["realism"] = realism_section(models_dir, methods, raw_data, split, realism_limit, device)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def realism_section(models_dir, methods, raw_data: Path | None, split: str, limit: int | None,
                    device: torch.device) -> dict:
    """The paired realism ratio through the editor a user gets: every component of ``models_dir``, its default
    detector and its classifier (which picks the average edit's source expression)."""
    if raw_data is None:
        log("[realism] skipped: no raw data (../shared/data or --raw-data)")
        return {"skipped": "no raw data: the realism ratio needs the photos of ../shared/data (or --raw-data)"}
    editor = ExpressionEditor(models_dir=models_dir, device=device)
    tick = time.perf_counter()
    section = evaluate_realism(editor, methods, raw_data, split, limit, log=log)
    section["seconds"] = round(time.perf_counter() - tick, 1)
    section["definition"] = REALISM_DEFINITION
    section["mesh_definition"] = MESH_DEFINITION
    if "skipped" in section:
        log(f"[realism] skipped: {section['skipped']}")
    return section
