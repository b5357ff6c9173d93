"""The editors under test: each editing method wrapped as a :class:`Method`, loaded from a folder of checkpoints.

Checkpoints are found by ``model_type`` (:func:`expr_models.pipeline.find_checkpoints`) and loaded with the classes of
:mod:`expr_models.components`, the registry the editor and the Space use too. The held-out crops are edited in
batches by a wrapper per method (:data:`WRAPPERS`); a registered method without one is measured on whole photos only
(the realism ratio, through the editor). Methods that edit a face from its own expression (the SA-GAN, the mesh
motion) take it from the classifier's reading of the crop, as the editor takes it from the photo.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..components import EDITING_METHODS, editing_method, model_class
from ..faces.geometry import FaceBox, face_mask
from ..faces.mesh import face_mesh
from ..faces.mesh_warp import warp_face
from ..faces.mouth_opening import drop_jaw_to_open_mouth
from ..methods.mesh import (DARK_MOUTH_TARGETS, expression_weights, generator_points, source_for, target_rules,
                            turned_too_far, warp_parts)
from ..faces.processing import BOX_FRAME_LANDMARKS, FaceImageProcessor
from ..models.average_edit import PAIR_SEPARATOR
from ..models.style_transfer import run_style_transfer
from ..pipeline import find_checkpoints
from . import metrics

BATCH_SIZE = 16
SourceReader = Callable[[torch.Tensor], list]  # a batch of crops in [-1, 1] -> each one's reading {name: p}
MESH_CROP = 128  # the crop side mesh methods are measured at (the paper crops'; the 64 px expression crops upscaled)


@dataclass
class Method:
    """One editor: how to edit a batch of crops to a target, and which inputs each target is edited from."""

    name: str  # row label: the pipeline method, plus the checkpoint name when there are several
    kind: str  # the pipeline's method: cyclegan, sagan, nst or average
    checkpoint: str
    model: Any
    resolution: int
    channels: int
    targets: tuple[str, ...]
    edit: Callable[..., torch.Tensor] = field(repr=False, default=None)
    editor_options: dict = field(default_factory=dict)  # ExpressionEditor arguments for the whole-photo check
    extra_models: dict = field(default_factory=dict)  # other components the editor needs for it (the face mesh)

    @property
    def needs_reference(self) -> bool:
        return editing_method(self.kind).needs_reference

    def sources_for(self, target: str) -> tuple[str, ...]:
        """The input expressions edited to ``target``: the other domain for two-domain editors, else all others."""
        if self.kind == "sagan":
            return tuple(name for name in self.model.config.class_names if name != target)
        if self.kind == "average":  # the sources of the pairs it holds, e.g. only neutral -> angry
            return tuple(pair.split(PAIR_SEPARATOR)[0] for pair in self.model.config.pairs
                         if pair.split(PAIR_SEPARATOR)[1] == target)
        return tuple(name for name in self.targets if name != target)


def cyclegan_method(model, checkpoint: str, name: str = "cyclegan", channels: int = 1,
                    face_mesh_model: Any = None, warp: dict | None = None) -> Method:
    config = model.config
    if config.generator_type == "mesh":  # moves the face mesh, as the editor runs it
        return Method(name, "cyclegan", checkpoint, model, MESH_CROP, channels, tuple(config.domains),
                      edit=mesh_edit(lambda points, target, source: generator_points(
                          model, points, lambda meshes: model.move_mesh(meshes, target)),
                          face_mesh_model, channels, tuple(config.domains), warp),
                      extra_models={"face_mesh": face_mesh_model})
    if config.generator_type == "warp_refine":  # edits aligned faces, as the editor runs it
        return Method(name, "cyclegan", checkpoint, model, config.resolution, channels, tuple(config.domains),
                      edit=aligned_edit(model.edit_aligned, channels))

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        return model.generate(x, to=target)

    return Method(name, "cyclegan", checkpoint, model, config.resolution, config.in_channels, tuple(config.domains),
                  edit=edit)


def sagan_method(model, checkpoint: str, channels: int = 1, face_mesh_model: Any = None,
                 warp: dict | None = None, read_source: SourceReader | None = None) -> Method:
    config = model.config
    if config.generator_type == "mesh":  # moves the face mesh from the face's read expression, as the editor runs it
        names = tuple(config.class_names)
        return Method("sagan", "sagan", checkpoint, model, MESH_CROP, channels, names,
                      edit=mesh_edit(lambda points, target, source: generator_points(
                          model, points, lambda meshes: model.move_mesh(meshes, target, source)),
                          face_mesh_model, channels, names, warp, read_source),
                      extra_models={"face_mesh": face_mesh_model})
    if config.generator_type == "warp_refine":  # edits aligned faces, as the editor runs it
        return Method("sagan", "sagan", checkpoint, model, config.resolution, channels, tuple(config.class_names),
                      edit=aligned_edit(model.edit_aligned, channels))

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        return model.generate(x, to=target)

    return Method("sagan", "sagan", checkpoint, model, config.resolution, config.in_channels,
                  tuple(config.class_names), edit=edit)


def aligned_edit(edit_face: Callable[[np.ndarray, str], np.ndarray], channels: int) -> Callable[..., torch.Tensor]:
    """A batch edit for a model that edits aligned faces (``edit_face(aligned_uint8, target)``), run on the held-out
    crops as the editor runs it: the crop's five landmarks from RetinaFace (:func:`crop_points`), the edit done in the
    aligned frame, only the change pasted back."""

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        crops = np.rint(FaceImageProcessor.from_tensor(x.cpu())).clip(0, 255).astype(np.uint8)
        edited = [FaceImageProcessor.edit_aligned(crop[..., 0] if channels == 1 else crop, crop_points(crop),
                                                  lambda face: edit_face(face, target)) for crop in crops]
        tensor = torch.from_numpy(np.stack(edited).astype(np.float32) / 127.5 - 1.0)
        tensor = tensor[:, None] if channels == 1 else tensor.permute(0, 3, 1, 2)
        return tensor.to(x.device)

    return edit


def mesh_edit(target_points: Callable[[np.ndarray, str, str], np.ndarray], face_mesh_model: Any,
              channels: int, expressions: tuple[str, ...], warp: dict | None = None,
              read_source: SourceReader | None = None) -> Callable[..., torch.Tensor]:
    """A batch edit for a method that moves the face mesh (``target_points(mesh 468 x 3, target, source) -> 468 x
    2``), run on the held-out crops as the editor runs it: each face edited from its source expression
    (``methods.mesh.source_for`` of the classifier's reading, among the method's ``expressions``), the mesh found from
    the crop's RetinaFace landmarks (:func:`crop_points`), then one warp of the crop's own pixels (grey crops warped
    as grey; ``warp``: what draws a mouth that opens or closes and shades the skin, ``warp_face``'s ``mouth``,
    ``exemplars`` and ``shading`` as ``methods.mesh.warp_parts`` gives them, as the editor uses them where present),
    the source's furrows taken away and the target's added as the editor does."""
    if face_mesh_model is None:
        raise ValueError("a mesh method needs the face_mesh checkpoint beside it")

    # As the editor decides it: an exemplar bank passed as the mouth, or beside the learned one.
    mouth = (warp or {}).get("mouth")
    exemplars = (warp or {}).get("exemplars")
    if exemplars is None and mouth is not None and not hasattr(mouth, "inpaint"):
        exemplars = mouth

    def edit(x: torch.Tensor, target: str, references=None) -> torch.Tensor:
        crops = np.rint(FaceImageProcessor.from_tensor(x.cpu())).clip(0, 255).astype(np.uint8)
        readings = read_source(x) if read_source is not None else [None] * len(crops)
        edited = []
        for crop, reading in zip(crops, readings):
            rgb = np.repeat(crop, 3, axis=2) if crop.shape[2] == 1 else crop
            size = rgb.shape[0]
            box = FaceBox(0, 0, size, size, landmarks=crop_points(rgb))
            with torch.inference_mode():
                points = drop_jaw_to_open_mouth(rgb, face_mesh(rgb, box, face_mesh_model, refine=True))
            if turned_too_far(points):  # left unchanged, as the editor leaves it
                edited.append(crop)
                continue
            top = max(reading, key=reading.get) if reading else None
            source = source_for(top, target, expressions, reading.get("happy") if reading else None)
            moved_points = target_rules(points, target_points(points, target, source), target, {}, exemplars)
            moved = warp_face(rgb, points, moved_points, expressions=expression_weights(target, source, 1.0),
                              expression=target, dark_mouth=target in DARK_MOUTH_TARGETS, **(warp or {})).image
            edited.append(moved[..., :1] if channels == 1 else moved)
        tensor = torch.from_numpy(np.stack(edited).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        return tensor.to(x.device)

    return edit


def crop_points(crop: np.ndarray) -> np.ndarray:
    """The five landmarks of the face filling a square held-out crop, in its pixels: RetinaFace on the crop with a
    margin around it (a detector needs to see the face's outline; small crops enlarged to 256 px first), as the
    editor has them for a face in a photo. Where RetinaFace finds none: estimated from the box framing, as the editor
    does for a face found without landmarks."""
    import cv2

    from ..faces.alignment import retinaface_points

    size = crop.shape[0]
    margin = size // 2
    padded = cv2.copyMakeBorder(np.ascontiguousarray(crop), margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    scale = max(1.0, 256 / padded.shape[0])
    if scale > 1:
        padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    points = retinaface_points(padded)
    if points is None:
        return BOX_FRAME_LANDMARKS * size
    return points / scale - margin


def average_method(model, checkpoint: str, channels: int = 1) -> Method:
    """The average-edit baseline on the held-out crops (see :func:`aligned_edit`)."""
    resolution = model.config.resolution

    def edit_face(face: np.ndarray, target: str) -> np.ndarray:
        return model.apply(face, model.source_for(None, target), target)  # each target has one source pair

    return Method("average", "average", checkpoint, model, resolution, channels, tuple(model.config.targets),
                  edit=aligned_edit(edit_face, channels))


def mesh_motion_method(model, checkpoint: str, face_mesh_model: Any, channels: int = 1,
                       warp: dict | None = None, read_source: SourceReader | None = None) -> Method:
    """The mesh-motion baseline on the held-out crops (see :func:`mesh_edit`), edited from the read expression."""
    names = tuple(model.config.expressions)

    def target_points(points: np.ndarray, target: str, source: str) -> np.ndarray:
        return model.target_points(points, source, target)

    return Method("mesh", "mesh", checkpoint, model, MESH_CROP, channels, names,
                  edit=mesh_edit(target_points, face_mesh_model, channels, names, warp, read_source),
                  extra_models={"face_mesh": face_mesh_model})


def nst_method(extractor, checkpoint: str, steps: int, resolution: int = 128,
               targets: tuple[str, ...] = ("neutral", "happy")) -> Method:
    """Gatys NST from each face to a real face of the target expression (another subject), inside the face mask,
    as the pipeline does it; the result's luminance is kept."""
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

    return Method("nst", "nst", checkpoint, extractor, resolution, 1, targets, edit=edit,
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


# Each method's batch edit of held-out crops: (the method's checkpoints in the folder, load, settings) -> Methods.
WRAPPERS: dict[str, Callable[..., list[Method]]] = {
    # Each CycleGAN covers its own two domains: every one is evaluated.
    "cyclegan": lambda paths, load, settings: [
        cyclegan_method(load(path), path.name, "cyclegan" if len(paths) == 1 else f"cyclegan:{path.name}",
                        face_mesh_model=settings["face_mesh"](), warp=settings["warp"]("cyclegan"))
        for path in paths],
    "sagan": lambda paths, load, settings: [sagan_method(load(paths[0]), paths[0].name,
                                                         face_mesh_model=settings["face_mesh"](),
                                                         warp=settings["warp"]("sagan"),
                                                         read_source=settings["read_source"])],
    "nst": lambda paths, load, settings: [nst_method(load(paths[0]), paths[0].name, settings["nst_steps"],
                                                     settings["nst_resolution"])],
    "average": lambda paths, load, settings: [average_method(load(paths[0]), paths[0].name)],
    "mesh": lambda paths, load, settings: [mesh_motion_method(load(paths[0]), paths[0].name, settings["face_mesh"](),
                                                              warp=settings["warp"](),
                                                              read_source=settings["read_source"])],
}


def load_models(models_dir: Path, methods: tuple[str, ...], device: torch.device, nst_steps: int,
                nst_resolution: int) -> tuple[list[Method], Any, dict[str, list[dict]]]:
    """The editors to evaluate, the classifier (or None) and the checkpoints' provenance."""
    found = find_checkpoints(models_dir)
    used: dict[str, list[dict]] = {}  # component -> checkpoint_info of each checkpoint loaded

    def loader(component: str) -> Callable[[Path], Any]:
        def load(path: Path):
            used.setdefault(component, []).append(checkpoint_info(path))
            return model_class(component).from_pretrained(path).to(device).eval()

        return load

    def face_mesh_model():  # loaded once, when a mesh method asks for it
        if "face_mesh" not in meshers and found.get("face_mesh"):
            meshers["face_mesh"] = loader("face_mesh")(found["face_mesh"][0])
        return meshers.get("face_mesh")

    def warp_models(owner: str | None = None):  # the editor's mouths (learned, exemplars; ``owner``'s own) and
        def load(component: str):                # shading, where present, as the editor uses them
            if component not in meshers:
                meshers[component] = loader(component)(found[component][0])
            return meshers[component]

        return warp_parts(lambda component: bool(found.get(component)), load, owner)

    meshers: dict[str, Any] = {}
    classifier = loader("classifier")(found["classifier"][0]) if found.get("classifier") else None
    settings = {"nst_steps": nst_steps, "nst_resolution": nst_resolution, "face_mesh": face_mesh_model,
                "warp": warp_models, "read_source": source_reader(classifier)}
    editors: list[Method] = []
    for name, method in EDITING_METHODS.items():  # the registry's order, whatever the order asked for
        paths = found.get(method.component, [])
        if name in methods and paths and name in WRAPPERS:
            editors += WRAPPERS[name](paths, loader(method.component), settings)
    for method in editors:  # the whole-photo check's editor gets the mouths and shading the crops were edited with
        if "face_mesh" in method.extra_models:
            method.extra_models.update(meshers)
    return editors, classifier, used


def source_reader(classifier: Any) -> SourceReader | None:
    """The classifier's reading of each crop of a batch (``{expression: probability}``), from which the editor takes
    the expression it edits a face from; None without a classifier (the methods then edit every face as from their
    default source)."""
    if classifier is None:
        return None
    names = list(classifier.config.class_names)

    def read(crops: torch.Tensor) -> list[dict[str, float]]:
        return [dict(zip(names, row.tolist())) for row in metrics.logits(classifier, crops).softmax(-1)]

    return read


def load_component(component: str, models_dir: Path, device: torch.device, used: dict[str, list[dict]]):
    """The first ``component`` checkpoint in ``models_dir``, or None; records its provenance in ``used``."""
    paths = find_checkpoints(models_dir).get(component)
    if not paths:
        return None
    if component not in used:
        used[component] = [checkpoint_info(paths[0])]
    return model_class(component).from_pretrained(paths[0]).to(device).eval()


def load_segmenter(models_dir: Path, device: torch.device, used: dict[str, list[dict]]):
    """The trained face segmenter in ``models_dir``, or None."""
    return load_component("segmenter", models_dir, device, used)


def load_second_reader(models_dir: Path, device: torch.device, used: dict[str, list[dict]]):
    """The independent expression reader (``second_reader``) in ``models_dir``, or None."""
    return load_component("second_reader", models_dir, device, used)
