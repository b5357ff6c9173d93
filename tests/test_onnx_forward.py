"""The checkpoints' ONNX graphs: the same numbers as torch, used only where they serve, and never a reason to fail."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

import expr_models  # noqa: F401  (registers the Auto classes)
from expr_models.models.mouth_inpainter import MouthInpainterConfig, MouthInpainterModel
from expr_models.models.onnx_forward import ONNX_FILE, serve_under_autocast
from expr_models.pipeline import ExpressionEditor

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO_ROOT / "checkpoints"
WITH_GRAPHS = ("face_mesh", "classifier", "mouth_inpainter", "cyclegan_mouth", "sagan_mouth", "brow_inpainter",
               "eyes_inpainter", "lower_face_inpainter")


def outputs(model, inputs) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        result = model.run_network(*inputs)
    return result if isinstance(result, tuple) else (result,)


def torch_outputs(model, inputs) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        result = model.onnx_network()(*inputs)
    return result if isinstance(result, tuple) else (result,)


def serves(model) -> bool:
    with torch.inference_mode():
        return model.onnx_graph is not None and model.onnx_graph.serves()


def largest_relative_difference(expected, got) -> float:
    return max(float((e - g).abs().max() / e.abs().max()) for e, g in zip(expected, got))


@pytest.mark.parametrize("component", WITH_GRAPHS)
def test_each_committed_graph_serves_its_weights_and_gives_torch_s_numbers(component):
    model = AutoModel.from_pretrained(CHECKPOINTS / component)
    assert serves(model), f"{component}: run python -m train.tools.export_onnx checkpoints"
    torch.manual_seed(1)
    example = model.onnx_example_inputs()
    for batch in (1, 3):  # the graphs take any batch size
        inputs = tuple(tensor[:1].repeat(batch, *[1] * (tensor.ndim - 1)) for tensor in example)
        assert largest_relative_difference(torch_outputs(model, inputs), outputs(model, inputs)) < 1e-4


def test_every_model_with_an_onnx_network_has_its_graph_committed():
    with_network = []
    for folder in sorted(CHECKPOINTS.iterdir()):
        if (folder / "config.json").is_file():
            model = AutoModel.from_pretrained(folder)
            if model.onnx_network() is not None:
                with_network.append(folder.name)
                assert (folder / ONNX_FILE).is_file()
    assert sorted(with_network) == sorted(WITH_GRAPHS)


@pytest.fixture
def mouth_folder(tmp_path) -> Path:
    folder = tmp_path / "mouth"
    shutil.copytree(CHECKPOINTS / "mouth_inpainter", folder)
    return folder


def test_a_changed_weight_turns_the_graph_off_and_torch_gives_the_new_numbers(mouth_folder):
    model = AutoModel.from_pretrained(mouth_folder)
    inputs = model.onnx_example_inputs()
    before = outputs(model, inputs)
    with torch.no_grad():
        model.generator.head[0].bias.add_(0.5)  # an in-place change, as an optimiser step makes
    assert not serves(model)
    after = outputs(model, inputs)
    assert largest_relative_difference(torch_outputs(model, inputs), after) == 0
    assert not torch.allclose(before[0], after[0])


def test_training_gradients_and_copies_run_on_torch(mouth_folder):
    model = AutoModel.from_pretrained(mouth_folder)
    frames, holes, maps = model.onnx_example_inputs()
    assert serves(model)
    model.train()
    assert not serves(model)
    model.eval()
    frames.requires_grad_(True)
    model.run_network(frames, holes, maps).mean().backward()  # grad enabled: torch's forward, so gradients flow
    assert frames.grad is not None and frames.grad.abs().sum() > 0
    duplicate = copy.deepcopy(model)
    assert duplicate.onnx_graph is None  # a session cannot be copied: the copy runs torch's forward
    inputs = (frames.detach(), holes, maps)
    assert largest_relative_difference(torch_outputs(model, inputs), outputs(duplicate, inputs)) == 0


def test_under_autocast_the_graph_serves_only_where_speed_not_bf16_was_asked_for(mouth_folder):
    model = AutoModel.from_pretrained(mouth_folder)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not serves(model)  # precision="bf16": torch's bf16 forward, as asked
        with serve_under_autocast():
            assert serves(model)  # precision="auto": the fp32 graph, as fast or faster
    assert serves(model)


@pytest.mark.parametrize(("precision", "graph_runs"), [("auto", True), ("bf16", False), ("fp32", True)])
def test_the_editor_s_precision_decides_whether_the_graphs_stand_in_for_bf16(precision, graph_runs):
    editor = ExpressionEditor.from_pretrained(CHECKPOINTS, precision=precision)
    editor.autocast_dtype = None if precision == "fp32" else torch.bfloat16  # as on a CPU with native bf16
    model = editor.model("face_mesh")
    calls = []
    model.onnx_graph.session.run = lambda *args, run=model.onnx_graph.session.run: calls.append(1) or run(*args)
    with editor.generating():
        size = model.config.image_size
        model.predict(np.zeros((1, size, size, 3), np.uint8))
    assert bool(calls) == graph_runs


def test_a_graph_of_other_weights_is_skipped_with_a_warning(mouth_folder, caplog):
    other = MouthInpainterModel(MouthInpainterConfig(with_discriminator=False))
    other.save_pretrained(mouth_folder)  # new weights, the old graph left beside them
    with caplog.at_level(logging.WARNING, logger="expr_models.models.onnx_forward"):
        model = AutoModel.from_pretrained(mouth_folder)
    assert model.onnx_graph is None
    assert "exported from other weights" in caplog.text and "export_onnx" in caplog.text
    inputs = model.onnx_example_inputs()
    assert largest_relative_difference(torch_outputs(model, inputs), outputs(model, inputs)) == 0


def test_a_broken_graph_is_skipped_with_a_warning(mouth_folder, caplog):
    (mouth_folder / ONNX_FILE).write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="expr_models.models.onnx_forward"):
        model = AutoModel.from_pretrained(mouth_folder)
    assert model.onnx_graph is None and "could not be read" in caplog.text
    frames, holes, maps = model.onnx_example_inputs()
    assert model.inpaint(frames, holes, maps).shape == frames.shape


def test_the_export_tool_writes_a_graph_that_reads_the_weights_file(tmp_path):
    pytest.importorskip("onnxscript")
    from train.tools import export_onnx

    folder = tmp_path / "small_mouth"
    small = MouthInpainterModel(MouthInpainterConfig(base_channels=4, residual_blocks=1, with_discriminator=False))
    small.save_pretrained(folder)
    assert export_onnx.main([str(tmp_path), "--components", "small_mouth"]) == 0
    graph = folder / ONNX_FILE
    assert graph.stat().st_size < (folder / "model.safetensors").stat().st_size  # the weights are not copied
    model = AutoModel.from_pretrained(folder)
    assert serves(model)
    inputs = model.onnx_example_inputs()
    assert largest_relative_difference(torch_outputs(model, inputs), outputs(model, inputs)) < 1e-4
