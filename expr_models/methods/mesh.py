"""Edits that move the face's dense mesh, then warp the photo's own pixels once, at full resolution.

The face mesh (``face_mesh``: MediaPipe's 468 points) is read from the photo; a motion model says where each point
goes; :func:`expr_models.faces.mesh_warp.warp_face` moves the crop's pixels there with one cubic sample. The motion
comes from the mesh-motion baseline (real people's median motion, :class:`MeshMotionEdit`) or from the CycleGAN's and
SA-GAN's mesh generators (``generator_type="mesh"``, see :mod:`.cyclegan` and :mod:`.sagan`), and four controls add
motions of their own: ``smile``, ``mouth_open``, ``brows`` and ``eyes``, each in [-1, 1], each moving only its own
points, combined with any target expression.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..errors import ExpressionEditError
from ..faces.mesh import (bend_lips_as_bands, close_lips_towards, face_mesh, head_turn, inner_lip_gap,
                          keep_eyes_open, keep_lips_closed, keep_nostrils_whole, spread_lips_evenly,
                          stop_jaw_where_lips_meet, uncross_lips)
from ..faces.mesh_motion import normalise
from ..faces.mesh_topology import LIPS_INNER
from ..faces.mesh_warp import warp_face
from ..faces.mouth_opening import drop_jaw_to_open_mouth
from ..models.mesh_motion import CONTROLS
from .base import EditingMethod, Editor, FaceToEdit

MAX_INTENSITY = 1.5  # past 1 for users who want more than the real expression's amplitude
# The most a face may be turned (``mesh.head_turn``: 0 frontal, 1 one cheek hidden) for the mesh warp to edit it.
# Past it the mesh guesses the hidden side: on the validation crops (FER2013, 180 faces edited to surprise, 13 past
# 0.8) the faces beyond 1.0 came out with torn jaws and eyes drawn on the cheek, those within it whole.
MAX_HEAD_TURN = 1.0
# The head turn per degree of yaw, measured on GENKI-4K's labelled photos (``benchmarks/head_turn_yaw.py``: 0.0226,
# correlation 0.93), to tell the user in degrees: the limit is about 44 degrees.
HEAD_TURN_PER_DEGREE = 0.0226
# A mesh warp's crop, over the detector's box. The warp's ring of fixed anchors must lie below a dropped jaw: in the
# editor's training framing (1.25) the crop ends just under the chin, so a surprise's chin was pressed against the
# crop's edge and cut off by a straight line, with the photo's own neck beneath it.
MESH_CROP_SCALE = 2.0
# No expression closes an eye past this share of its opening. The generators move every face's lids about as far, so
# they closed narrow eyes to slits (SA-GAN → sad: 0.54 of a London man's opening, 0.64-0.72 of others'); the same
# JAFFE posers' real expressions keep 0.91 (sad) and 0.86 (disgust) of it, 0.65-0.84 at the narrowest.
EYE_FLOOR = 0.75
# Expressions whose eyes open wider in real faces: an edit to them never narrows the eyes (a floor of 1). On the
# validation meshes FER2013's fear faces open them 1.03 times as wide as its neutral ones (surprise 1.17), but the
# SA-GAN's fear narrowed neutral faces' eyes to 0.80 of their opening: a drowsy look (London 005). The validation crops'
# fear edits read as fear 31 → 34 of 72 by the classifier, 8 → 9 by the second reader; surprise kept its 67 / 59.
WIDENING_TARGETS = ("fear", "surprise")
# The least probability of happy at which a face read as neutral is taken for a faint smile when asked for neutral.
# The London Set's validation smiles read as neutral gave 0.03 and 0.11; its neutral photos read so, 0.013 at the
# median (0.021 at the upper quartile); an unsmiling side-lit GENKI-4K man, 0.003.
SMILE_EVIDENCE = 0.03
# A neutral face's lips meet, or nearly: the validation meshes' real neutral FER2013 faces part them 0.025 eye
# distances at the median and 0.037 at the upper quartile. The SA-GAN's motion to neutral, about the same on every
# face, left a snarl's bared teeth parted 0.12 at its upper quartile (36% of angry faces over 0.06), read as happy,
# and opened a sad face's pressed lips (22% over 0.06). Past this gap a neutral target closes them, unless the user
# asks for an open mouth (``mouth_open`` > 0).
NEUTRAL_LIP_GAP = 0.04
CLOSED_MOUTH_TARGETS = ("happy",)  # smiles show teeth where they open: without a mouth filler they stay closed
# Expressions whose lips stay as closed as they were (unless the user opens the mouth): the SA-GAN's anger parts them
# by about a tenth of the mouth's width, a slit that the stored smiles fill with a soft pale band or a gap between two
# teeth (London 005, 062), where an angry face presses its lips together. On the validation crops the readers did not
# mind (classifier / second reader / both, of 72: 54 / 46 / 37 parted, 55 / 44 / 35 closed).
PRESSED_LIPS_TARGETS = ("angry",)
# Expressions whose open mouth is dark: a gasp's dropped jaw hides the teeth, so the whole opening gets the cavity
# (``warp_crop``'s ``dark_mouth``) rather than the source smile's or snarl's teeth stretched tall.
DARK_MOUTH_TARGETS = ("surprise",)
# A mouth opened wider than this (eye distances, inner-lip gap over the input's) keeps its lips as bands of their own
# thickness (``faces.mesh.bend_lips_as_bands``, ``spread_lips_evenly``): smile + ``mouth_open`` +1 dropped the inner
# lower lip beside the corners far below the outer contour there, and the warp fanned the lip out of each corner into
# radial streaks (its triangles grew 15-23 times in area). A smile opened onto stored teeth parts them 0.05-0.1.
WIDE_OPENING = 0.1
# What draws the mouth a warp opens or closes: the learned mouth (lips closing), the exemplar bank (lips parting).
MOUTH_COMPONENTS = ("mouth_inpainter", "mouth_exemplars")
# What shades the skin after the warp: a smile's folds and lifted cheeks, the other expressions' furrows.
SHADING_COMPONENT = "expression_shading"
# What redraws the upper face for the target expression last: the furrows and brows the warp and shading leave.
BROWS_COMPONENT = "brow_inpainter"
# What redraws the lower face for the target expression: the cheeks, folds and lips of an undone smile.
LOWER_FACE_COMPONENT = "lower_face_inpainter"
# What redraws the eyes and their lids: a squint or a frown undone, where the warp stretches the dark slit into a blot.
EYES_COMPONENT = "eyes_inpainter"

# (face mesh in crop pixels, 468 x 3) -> where its points go (468 x 2, crop pixels)
MeshMotion = Callable[[np.ndarray], np.ndarray]


def crop_mesh(editor: Editor, face: FaceToEdit) -> np.ndarray:
    """The face's 468 mesh points (x, y, z) in crop pixels, read from the photo around its box and landmarks (or,
    for a video frame's face, in the square its last frame's mesh placed: ``FaceBox.mesh_roi``); kept in photo pixels
    as ``face.mesh``."""
    with editor.generating():
        points = face_mesh(face.photo, face.box, editor.model("face_mesh"), refine=True).astype(np.float64)
    face.mesh = points.astype(np.float32)
    transform = face.transform
    points[:, 0] -= transform.x0
    points[:, 1] -= transform.y0
    return drop_jaw_to_open_mouth(face.crop, points * transform.scale)


def turned_too_far(points: np.ndarray) -> bool:
    """Whether the mesh warp leaves this face alone: turned past ``MAX_HEAD_TURN``, its hidden side is guessed."""
    return abs(head_turn(points)) > MAX_HEAD_TURN


def check_controls(controls: Mapping[str, Any]) -> dict[str, float]:
    """The four controls as floats in [-1, 1] (a value out of range or not a number is refused)."""
    checked = {}
    for name, value in controls.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"control {name} must be a number in [-1, 1], got {value!r}") from None
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"control {name} must be in [-1, 1], got {value}")
        checked[name] = value
    return checked


def moves_meshes(editor: Editor, component: str) -> bool:
    """Whether every checkpoint of a GAN component has a mesh generator (``generator_type="mesh"``)."""
    count = editor.store.count(component)
    return count > 0 and all(editor.store.config(component, index).generator_type == "mesh" for index in range(count))


def refuse_controls(method: EditingMethod, model: Any, face: FaceToEdit) -> None:
    """The controls move mesh points: a generator that paints or moves pixels in a frame has none to move."""
    if any(face.controls.values()):
        raise ExpressionEditError(f"This {method.label} checkpoint ({model.config.generator_type} generator) takes no "
                                  "smile / mouth / brows / eyes controls; they need a mesh generator.")


def source_for(reading: str | None, target: str, expressions: tuple[str, ...], smile: float | None = None) -> str:
    """The expression a face is edited from: the classifier's reading when it is another expression the model knows;
    else neutral, and for a neutral target happy: a face read as already showing the target is edited as from the
    commonest other expression, as the average edit does, rather than left alone. Except a face read as neutral,
    asked for neutral, whose reading gives a smile (``smile``, its probability of happy) under ``SMILE_EVIDENCE``: it
    is edited as from neutral, moved by the model's own correction alone. Edited as from happy, an unsmiling face had
    a smile it did not have taken away: its mouth narrowed and its lips were redrawn, and on a side-lit colour photo
    the fold fade lifted the nostril's and the chin's shadows into flat, greyish patches."""
    if reading in expressions and reading != target:
        return reading
    if target != "neutral":
        return "neutral"
    no_smile = reading == "neutral" and smile is not None and smile < SMILE_EVIDENCE
    return "neutral" if no_smile and "neutral" in expressions else "happy"


def expression_weights(target: str, source: str, intensity: float) -> dict[str, float]:
    """How much of each expression's furrows an edit from ``source`` to ``target`` adds (the shading's
    ``expressions``): the target's at the intensity, the source's taken away as far (a frown undone loses its knot)."""
    return {target: float(intensity), source: -float(intensity)} if source != target else {}


def warp_mask(face: FaceToEdit) -> np.ndarray:
    """The paste mask of a mesh warp: 1 over the box its moving triangles and shading reach (``face.changed_box``,
    which :func:`mesh_warp_edit` sets; the whole crop where it is not set), 0 beyond. The warp is the identity beyond
    its ring of fixed anchors, so every pixel it does not move keeps its bytes; the feathered face ellipse would blend
    the original back over a jaw or brow that moved past it."""
    if face.changed_box is None:
        return np.ones(face.crop.shape[:2], np.float32)
    mask = np.zeros(face.crop.shape[:2], np.float32)
    x0, y0, x1, y1 = face.changed_box
    mask[y0:y1, x0:x1] = 1.0
    return mask


def warp_parts(has: Callable[[str], bool], load: Callable[[str], Any], owner: str | None = None) -> dict[str, Any]:
    """``warp_face``'s ``mouth``, ``exemplars``, ``shading``, ``brows``, ``eyes`` and ``lower_face``: the first of
    ``MOUTH_COMPONENTS`` there is and, with the learned mouth, the exemplar bank for the smiles it has teeth for; the
    expression shading, the learned brows, eyes and lower face where there are (``has(component)``,
    ``load(component)``: the editor's, or the evaluation's). ``owner``: the method whose own mouth (``<owner>_mouth``,
    the learned mouth its GAN's losses fine-tuned, e.g. ``cyclegan_mouth``) replaces the learned mouth where there is
    one."""
    parts = {"mouth": None, "exemplars": None,
             "shading": load(SHADING_COMPONENT) if has(SHADING_COMPONENT) else None,
             "brows": load(BROWS_COMPONENT) if has(BROWS_COMPONENT) else None,
             "eyes": load(EYES_COMPONENT) if has(EYES_COMPONENT) else None,
             "lower_face": load(LOWER_FACE_COMPONENT) if has(LOWER_FACE_COMPONENT) else None}
    found = [component for component in MOUTH_COMPONENTS if has(component)]
    if owner is not None and has(f"{owner}_mouth"):
        found = [f"{owner}_mouth", *(component for component in found if component != "mouth_inpainter")]
    if found:
        learned = found[0] in ("mouth_inpainter", f"{owner}_mouth")
        parts["mouth"] = load(found[0])
        parts["exemplars"] = load("mouth_exemplars") if learned and "mouth_exemplars" in found else None
    return parts


def mesh_warp_edit(editor: Editor, face: FaceToEdit, motion: MeshMotion, source: str | None = None,
                   mouth_owner: str | None = None) -> np.ndarray:
    """Move the face's mesh by ``motion`` and warp the crop's own pixels there once. Where the lips part into a smile
    the mouth exemplars give a real mouth's interior (teeth, relit to the person); where they close over teeth the
    learned mouth redraws them meeting. Without the exemplars, or where none fits the mouth a smile would open, a new
    gap could only get a dark cavity, which reads as a gasp rather than a smile: a smile then keeps the lips together
    unless the user asks (``mouth_open`` > 0). Where the real expression drops the jaw (surprise, fear) the mouth
    opens either way, onto the dark cavity where no stored smile fits (a gasp's whole opening: ``DARK_MOUTH_TARGETS``):
    held shut, the lips would stretch over the gap. ``source``: the expression the face is edited
    from, whose furrows the shading takes away as it adds the target's (:func:`expression_weights`). ``mouth_owner``:
    the method whose own learned mouth draws the lips, where it has one (:func:`warp_parts`)."""
    points = crop_mesh(editor, face)
    if turned_too_far(points):
        degrees = min(abs(head_turn(points)) / HEAD_TURN_PER_DEGREE, 90.0)
        face.notes.append(f"was left unchanged: it is turned about {degrees:.0f} degrees from the camera, and the "
                          f"face mesh edits faces turned up to about {MAX_HEAD_TURN / HEAD_TURN_PER_DEGREE:.0f}; a "
                          "photo nearer the front can be edited.")
        face.changed_box = (0, 0, 0, 0)
        return face.crop
    exemplars = editor.model("mouth_exemplars") if editor.has("mouth_exemplars") else None
    target = target_rules(points, motion(points), face.target, face.controls, exemplars, face.intensity)
    parts = warp_parts(editor.has, editor.model, mouth_owner)
    # The learned mouth is a network too, so it runs under the editor's thread cap: two threads fighting a busy
    # core took a 1 MP photo's edit from about 0.1 s to 0.8 s.
    with editor.generating():
        expressions = expression_weights(face.target, source, face.intensity) if source else None
        if expressions is not None and face.controls.get("smile"):  # the smile control's folds come with it
            expressions["happy"] = expressions.get("happy", 0.0) + float(face.controls["smile"])
        result = warp_face(face.crop, points, target, expressions=expressions, expression=face.target,
                           intensity=face.intensity, dark_mouth=face.target in DARK_MOUTH_TARGETS, **parts)
    face.changed_box = result.box or (0, 0, 0, 0)  # nothing moved: nothing to paste
    return result.image


def target_rules(points: np.ndarray, target: np.ndarray, expression: str, controls: Mapping[str, float],
                 exemplars: Any = None, intensity: float = 1.0) -> np.ndarray:
    """The last word on a motion's target mesh (468 x 2) of a face at ``points``, for the editor and the evaluation
    alike: the nostrils keep their shape (``keep_nostrils_whole``); the jaw stops where the lips meet (a gasp's closing
    lifted closed mouths through themselves), and lips never pass through each other (a mild gasp undone by a median
    one's motion would fold them); a neutral face's lips part at most ``NEUTRAL_LIP_GAP`` eye distances (at
    ``intensity`` 1; part of the way there below it) unless the user opens the mouth; no eye closes past ``EYE_FLOOR``
    of its opening (fear and surprise, ``WIDENING_TARGETS``: not at all) unless the user closes it (the ``eyes``
    control below 0); anger (``PRESSED_LIPS_TARGETS``) parts the lips no further than they were unless the user opens
    the mouth; and a smile (``CLOSED_MOUTH_TARGETS``) keeps the lips as they were unless the user asks for an open
    mouth (``mouth_open`` > 0) where no stored smile of the exemplar bank (``exemplars``, anything with
    ``closest(inner_lips)``; None: no bank) fits the mouth it would open: that mouth would get the dark cavity, which
    reads as a gasp (on 48-px faces the opened lips are often too round for any stored smile: 12 of 40 CycleGAN smiles
    of the validation crops)."""
    target = uncross_lips(points, stop_jaw_where_lips_meet(points, keep_nostrils_whole(points, target)))
    if expression == "neutral" and controls.get("mouth_open", 0.0) <= 0:
        target = close_lips_towards(points, target, NEUTRAL_LIP_GAP, intensity)
    if controls.get("eyes", 0.0) >= 0:
        target = keep_eyes_open(points, target, 1.0 if expression in WIDENING_TARGETS else EYE_FLOOR)
    if expression in PRESSED_LIPS_TARGETS and controls.get("mouth_open", 0.0) <= 0:
        target = keep_lips_closed(points, target)
    elif expression in CLOSED_MOUTH_TARGETS and controls.get("mouth_open", 0.0) <= 0 and (
            exemplars is None or exemplars.closest(target[list(LIPS_INNER)]) is None):
        target = keep_lips_closed(points, target)
    if inner_lip_gap(target) > inner_lip_gap(points) + WIDE_OPENING:
        target = spread_lips_evenly(points, bend_lips_as_bands(points, target))
    return target


def with_controls(editor: Editor, points: np.ndarray, moved: np.ndarray, controls: Mapping[str, float]) -> np.ndarray:
    """``moved`` (468 x 2, where a generator sends these mesh points, their pixels) plus the controls' motion; a
    ``mouth_open`` below 0 then closes the lips by that share of their opening there. ``moved`` itself without the
    mesh-motion model's directions when no control is set."""
    if not any(controls.values()):
        return moved
    if not editor.has("mesh_motion"):
        raise ExpressionEditError("The smile / mouth / brows / eyes controls need the mesh_motion checkpoint.")
    return editor.model("mesh_motion").with_controls(points, moved, controls)


def generator_points(model: Any, points: np.ndarray, move: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Where a mesh generator sends a face's points (468 x 3 -> 468 x 2, the same pixels): the face put in the
    generator's canonical frame, moved there (``move``: canonical meshes -> moved canonical meshes), and the motion
    turned and scaled back onto the face."""
    mean = model_mean(model)
    canonical, frame = normalise(points[:, :mean.shape[1]], mean)
    with torch.inference_mode():
        moved = move(torch.from_numpy(canonical).float()[None])[0].double().cpu().numpy()
    return points[:, :2] + frame.vectors_to_photo(moved - canonical)[:, :2]


def generator_motion(editor: Editor, model: Any, face: FaceToEdit, move: Callable[[torch.Tensor], torch.Tensor]
                     ) -> MeshMotion:
    """A mesh generator's motion plus the controls'."""

    def motion(points: np.ndarray) -> np.ndarray:
        with editor.generating():
            moved = generator_points(model, points, move)
        return with_controls(editor, points, moved, face.controls)

    return motion


def model_mean(model: Any) -> np.ndarray:
    generator = getattr(model, "generator", None) or model.generator_xy
    return generator.mean_shape.detach().double().cpu().numpy()


class MeshMotionEdit(EditingMethod):
    """The mesh-motion baseline: every face moves by real people's median motion, scaled by the intensity."""

    name = "mesh"
    label = "Mesh motion"
    component = "mesh_motion"
    aliases = ("meshmotion",)
    controls = CONTROLS

    def targets(self, editor: Editor) -> tuple[str, ...]:
        if not (editor.has("mesh_motion") and editor.has("face_mesh")):
            return ()
        return tuple(editor.store.config("mesh_motion").expressions)

    def max_intensity(self, editor: Editor) -> float:
        return MAX_INTENSITY

    def prepare(self, editor: Editor, target: str | None) -> None:
        editor.model("mesh_motion")
        editor.model("face_mesh")

    def check_controls(self, controls: Mapping[str, Any]) -> dict[str, Any]:
        return check_controls(super().check_controls(controls))

    def blend_mask(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        return warp_mask(face)

    def crop_scale(self, editor: Editor) -> float:
        return MESH_CROP_SCALE

    def edit_face(self, editor: Editor, face: FaceToEdit) -> np.ndarray:
        model = editor.model("mesh_motion")
        source = source_for(face.source_expression, face.target, model.config.expressions, face.smile)
        return mesh_warp_edit(editor, face, lambda points: model.target_points(
            points, source, face.target, face.intensity, face.controls), source)
