"""The CycleGAN's own mouth: the warp its training uses, a training run through the one loop on windows the committed
CycleGAN edits, and the editor choosing it for the CycleGAN's edits only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from expr_models.components import COMPONENT_BY_MODEL_TYPE
from expr_models.faces.mouth_frame import MouthFrame
from expr_models.hub.model_store import find_checkpoints
from expr_models.methods.mesh import warp_parts
from expr_models.models.mouth_inpainter import CycleGANMouthModel, MouthInpainterModel
from tests.test_mouth_fill import synthetic_face
from tests.test_mouth_inpainter import tiny_mouth_dataset
from tests.test_training import train_in_process

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_sampling_grid_is_the_identity_where_nothing_moves_and_follows_the_lips_where_they_part(mesh_motion):
    from train.mouth_cycle import identity_grid, resample, sampling_grid

    photo, points, smile = synthetic_face(mesh_motion)
    frame = MouthFrame.from_points(points)
    source, target = frame.to_frame(points)[:, :2], frame.to_frame(smile)[:, :2]
    window = torch.from_numpy(frame.crop(photo)).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert torch.allclose(resample(window, sampling_grid(source, source)[None]), window, atol=1e-5)
    assert torch.allclose(resample(window, identity_grid(window)), window, atol=1e-5)
    grid = sampling_grid(source, target)
    corner = np.round(target[61]).astype(int)  # a mouth corner: its pixel comes from the source's corner
    assert np.allclose(((grid[corner[1], corner[0]].numpy() + 1) / 2) * [127, 95], source[61], atol=1.0)
    assert not torch.allclose(resample(window, grid[None]), window, atol=0.05)


def renamed_windows(tmp_path: Path, mesh_motion) -> Path:
    """The tiny mouth windows under GENKI-4K ids the mesh cache and the labels know."""
    data = tiny_mouth_dataset(tmp_path / "mouths", mesh_motion)
    for split in ("train", "validation"):
        rows = Dataset.load_from_disk(str(data / split))
        rows = rows.map(lambda row, index: {"id": f"genki4k/files/file{index + 1:04d}.jpg"}, with_indices=True)
        rows.save_to_disk(str(tmp_path / "renamed" / split))
    (tmp_path / "renamed" / "dataset_dict.json").write_text('{"splits": ["train", "validation"]}')
    return tmp_path / "renamed"


def tiny_meshes_and_labels(tmp_path: Path, data: Path, mesh_motion) -> tuple[Path, Path]:
    """A mesh cache for the tiny windows (renamed GENKI-4K files, half of them smiles) and their labels file."""
    rows = Dataset.load_from_disk(str(data / "train"))
    photo, points, smile = synthetic_face(mesh_motion)
    meshes, raw = tmp_path / "meshes", tmp_path / "raw"
    meshes.mkdir()
    (raw / "genki4k").mkdir(parents=True)
    (raw / "jaffe").mkdir()  # the labels' reader scans JAFFE's folder too
    ids = [f"genki4k/files/file{index + 1:04d}.jpg" for index in range(len(rows))]
    smiles = [index % 2 for index in range(len(rows))]
    np.savez(meshes / "genki4k.npz", ids=np.array(ids),
             points=np.stack([np.concatenate([smile, points[:, 2:]], 1) if smiling else points
                              for smiling in smiles]).astype(np.float32))
    (raw / "genki4k" / "labels.txt").write_text("".join(f"{s} 0 0 0\n" for s in smiles))
    return meshes, raw


def test_the_cyclegan_mouth_trains_through_the_loop_on_the_cyclegan_s_edits(tmp_path, mesh_motion):
    from train.mouth_cycle import MouthCycleStep, window_domains

    data = renamed_windows(tmp_path, mesh_motion)
    meshes, raw = tiny_meshes_and_labels(tmp_path, data, mesh_motion)
    rows = Dataset.load_from_disk(str(data / "train"))
    assert window_domains(list(rows["id"]), raw).tolist() == [0, 1, 0, 1, 0, 1]

    code = train_in_process(MouthCycleStep, ["--data", data, "--output-dir", tmp_path / "run", "--cpu",
                                             "--models", CHECKPOINTS, "--meshes", meshes, "--raw-data", raw,
                                             "--max-steps", 3, "--d-warmup-steps", 1, "--batch-size", 4,
                                             "--judge-downsample", 1,
                                             "--report-to", "none", "--sample-every", 0, "--checkpointing-steps", 0])
    assert code == 0
    final = tmp_path / "run" / "final"
    assert find_checkpoints(tmp_path / "run").get("cyclegan_mouth") == [final]
    model = CycleGANMouthModel.from_pretrained(final)
    start = MouthInpainterModel.from_pretrained(CHECKPOINTS / "mouth_inpainter").float()
    changed = [not torch.equal(a, b.float()) for a, b in zip(model.generator.parameters(),
                                                            start.generator.parameters())]
    assert model.discriminator is None and any(changed)  # the generator learned after the discriminators' warm-up


def test_the_cyclegan_s_own_mouth_draws_its_lips_and_the_other_methods_keep_the_learned_mouth():
    assert COMPONENT_BY_MODEL_TYPE["expr-cyclegan-mouth"] == "cyclegan_mouth"
    present = {"mouth_inpainter", "mouth_exemplars", "cyclegan_mouth"}
    load = lambda component: component  # noqa: E731 - the parts by name
    own = warp_parts(present.__contains__, load, owner="cyclegan")
    assert (own["mouth"], own["exemplars"]) == ("cyclegan_mouth", "mouth_exemplars")
    shared = warp_parts(present.__contains__, load, owner="sagan")  # no sagan_mouth: the learned one
    assert (shared["mouth"], shared["exemplars"]) == ("mouth_inpainter", "mouth_exemplars")
    assert warp_parts(present.__contains__, load)["mouth"] == "mouth_inpainter"
    alone = warp_parts({"cyclegan_mouth"}.__contains__, load, owner="cyclegan")
    assert (alone["mouth"], alone["exemplars"]) == ("cyclegan_mouth", None)


def test_the_cards_credit_the_cyclegan_s_edits_to_its_own_mouth_where_it_drew_them():
    from expr_models.hub.cards import eval_results_from_report

    mesh = {"gap_ratio": {"median": 1.11, "subjects": 12}, "sharpness": {"median": 0.6, "subjects": 12}}
    rows = [{"dataset": "fei", "pair": "happy->neutral", "method": method, "median_ratio": 0.85, "subjects": 12,
             "mesh": mesh} for method in ("cyclegan", "sagan")]
    used = {name: [{"name": name}] for name in ("mouth_inpainter", "cyclegan_mouth")}
    report = {"checkpoints": used, "realism": {"split": "test", "rows": rows}}
    own = eval_results_from_report(report, "cyclegan_mouth")
    assert own and all("CycleGAN happy → neutral (with this mouth)" in r["metric_name"] for r in own)
    shared = eval_results_from_report(report, "mouth_inpainter")
    assert shared and all("SA-GAN happy → neutral (with this mouth)" in r["metric_name"] for r in shared)
    report["checkpoints"] = {"mouth_inpainter": used["mouth_inpainter"]}  # no own mouth: the learned one drew both
    assert len(eval_results_from_report(report, "mouth_inpainter")) == 2 * len(shared)
