"""The SA-GAN's own mouth: a training run through the one loop on windows the committed SA-GAN edits to its other
expressions, judged by the study's class head, and the editor choosing it for the SA-GAN's edits only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from expr_models.components import COMPONENT_BY_MODEL_TYPE
from expr_models.hub.model_store import find_checkpoints
from expr_models.methods.mesh import warp_parts
from expr_models.models.mouth_inpainter import MouthInpainterModel, SAGANMouthModel
from tests.test_mouth_cycle import renamed_windows, tiny_meshes_and_labels
from tests.test_training import train_in_process

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_sagan_mouth_trains_through_the_loop_on_the_sagan_s_edits(tmp_path, mesh_motion):
    from train.mouth_sagan import MouthSAGANStep

    data = renamed_windows(tmp_path, mesh_motion)
    meshes, raw = tiny_meshes_and_labels(tmp_path, data, mesh_motion)
    code = train_in_process(MouthSAGANStep, ["--data", data, "--output-dir", tmp_path / "run", "--cpu",
                                             "--models", CHECKPOINTS, "--meshes", meshes, "--raw-data", raw,
                                             "--max-steps", 3, "--d-warmup-steps", 1, "--batch-size", 4,
                                             "--report-to", "none", "--sample-every", 0, "--checkpointing-steps", 0])
    assert code == 0
    final = tmp_path / "run" / "final"
    assert find_checkpoints(tmp_path / "run").get("sagan_mouth") == [final]
    model = SAGANMouthModel.from_pretrained(final)
    start = MouthInpainterModel.from_pretrained(CHECKPOINTS / "mouth_inpainter").float()
    changed = [not torch.equal(a, b.float()) for a, b in zip(model.generator.parameters(),
                                                            start.generator.parameters())]
    assert model.discriminator is None and any(changed)  # the mouth learned after the head's warm-up


def test_each_window_is_edited_to_every_other_expression_and_an_item_takes_one(tmp_path, mesh_motion):
    from expr_models.components import model_class
    from train.mouth_cycle import cached_meshes
    from train.mouth_sagan import MouthClassEdits, class_targets

    data = renamed_windows(tmp_path, mesh_motion)
    meshes, _ = tiny_meshes_and_labels(tmp_path, data, mesh_motion)
    rows = Dataset.load_from_disk(str(data / "train"))
    sagan = model_class("sagan").from_pretrained(CHECKPOINTS / "sagan").eval()
    names = tuple(sagan.config.class_names)
    classes = np.array([names.index("happy" if index % 2 else "neutral") for index in range(len(rows))])
    classes[0] = -1  # of no known expression: no edit
    targets = class_targets(rows, classes, cached_meshes(meshes), sagan, None)
    assert np.isnan(targets[0]).all()
    for row in range(1, len(rows)):
        own = np.isnan(targets[row, :, 0, 0])
        assert own.tolist() == [index == classes[row] for index in range(len(names))]
    surprise = targets[1, names.index("surprise")]
    assert np.isfinite(surprise).all() and np.abs(surprise - targets[1, names.index("sad")]).max() > 0.5
    windows = MouthClassEdits(rows, targets, classes, 2.0, seed=0)
    assert len(windows) and all(classes[row] >= 0 for row in windows.rows)
    item = windows[0]
    assert item["targets"] != item["classes"] and item["classes"] == classes[windows.rows[0]]
    assert item["edit_grids"].shape[-1] == 2 and item["edit_holes"].shape == item["holes"].shape


def test_the_sagan_s_own_mouth_draws_its_lips_and_the_other_methods_keep_theirs():
    assert COMPONENT_BY_MODEL_TYPE["expr-sagan-mouth"] == "sagan_mouth"
    present = {"mouth_inpainter", "mouth_exemplars", "cyclegan_mouth", "sagan_mouth"}
    load = lambda component: component  # noqa: E731 - the parts by name
    own = warp_parts(present.__contains__, load, owner="sagan")
    assert (own["mouth"], own["exemplars"]) == ("sagan_mouth", "mouth_exemplars")
    assert warp_parts(present.__contains__, load, owner="cyclegan")["mouth"] == "cyclegan_mouth"
    assert warp_parts(present.__contains__, load, owner="mesh")["mouth"] == "mouth_inpainter"
