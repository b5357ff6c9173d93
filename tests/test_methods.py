"""The editing-method registry: one interface per method, asked by the editor, the CLI, the Space and the evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from expr_models.components import COMPONENTS, EDITING_METHODS, METHODS, editing_method
from expr_models.errors import UnknownMethodError
from expr_models.methods.base import EditingMethod, FaceToEdit
from expr_models.pipeline import ExpressionEditor

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_every_method_names_a_component_and_answers_to_its_aliases():
    assert METHODS == ("cyclegan", "sagan", "nst", "average", "mesh")  # the order the CLI and the Space list them
    for name, method in EDITING_METHODS.items():
        assert isinstance(method, EditingMethod) and method.name == name and method.label
        assert method.component in COMPONENTS
        for alias in (name, name.upper(), *method.aliases):
            assert editing_method(alias) is method
    assert editing_method("Neural-Style_Transfer").name == "nst"
    with pytest.raises(UnknownMethodError, match="expected one of cyclegan, sagan, nst, average, mesh"):
        editing_method("pix2pix")


@pytest.fixture(scope="module")
def editor():
    return ExpressionEditor.from_pretrained(CHECKPOINTS, num_threads=1)


def test_the_editor_asks_each_method_for_its_targets(editor):
    assert editor.supported_targets("average") == EDITING_METHODS["average"].targets(editor)
    assert editor.supported_targets("style-transfer") == EDITING_METHODS["nst"].targets(editor)
    assert set(editor.available_methods()) == set(METHODS)


class Darken(EditingMethod):
    """A method of the test's own, with a control: how it plugs in without touching the editor."""

    name = "darken"
    label = "Darken"
    component = "classifier"
    aliases = ("shade",)
    controls = ("amount",)
    seen: list[FaceToEdit] = []

    def targets(self, editor) -> tuple[str, ...]:
        return ("happy",)

    def edit_face(self, editor, face: FaceToEdit) -> np.ndarray:
        self.seen.append(face)
        change = round(face.controls.get("amount", 10) * face.intensity)
        return np.clip(face.crop.astype(np.int16) - change, 0, 255).astype(np.uint8)


def test_a_new_method_needs_only_its_class_and_a_registry_entry(editor, astronaut, monkeypatch):
    monkeypatch.setitem(EDITING_METHODS, "darken", Darken())
    Darken.seen.clear()
    result = editor.edit(astronaut, method="shade", target="happy", intensity=0.5, amount=60)
    assert result.method == "darken" and editor.prepare("darken", "happy") == "happy"

    face = Darken.seen[0]  # what the editor hands a method
    side = face.transform.side
    assert face.crop.shape == (side, side, 3) and face.points.shape == (5, 2)
    assert face.photo.shape == astronaut.shape and face.target == "happy" and face.intensity == 0.5
    assert face.controls == {"amount": 60} and face.source_expression in EDITING_METHODS["sagan"].targets(editor)
    # Darker inside the blend mask, untouched outside it.
    before, after, alpha = astronaut.astype(int), np.asarray(result.image).astype(int), np.asarray(result.mask_image())
    assert np.array_equal(before[alpha == 255] - after[alpha == 255], np.minimum(before[alpha == 255], 30))
    assert np.array_equal(before[alpha == 0], after[alpha == 0])

    with pytest.raises(TypeError, match="Darken does not take 'smile'; its options are amount"):
        editor.edit(astronaut, method="darken", target="happy", smile=1.0)


def test_methods_without_options_refuse_unknown_keywords(editor, astronaut):
    with pytest.raises(TypeError, match="Average edit does not take 'intesity'; it has no options"):
        editor.edit(astronaut, method="average", target="happy", intesity=0.5)
