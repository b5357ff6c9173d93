"""The evaluation's mesh measures (what a person sees): their summary over people on synthetic records, the report's
tables, and a small run on held-out people of ../shared/data (skipped without it)."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from expr_models.evaluation.mesh_metrics import mouth_sharpness, photo_scores
from expr_models.evaluation.realism import MESH_DEFINITION, MESH_MEASURES, mesh_tables, summarise
from expr_models.evaluation.report import markdown_report
from expr_models.evaluation.run import realism_section
from expr_models.faces.mesh import eye_centres, eye_distance
from expr_models.faces.mesh_topology import LIPS_INNER_LOWER

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
RAW_DATA = REPO.parent / "shared" / "data"


def _record(subject: str, method: str = "mesh", pair: str = "neutral->sad", **measures) -> dict:
    return {"dataset": "jaffe", "pair": pair, "method": method, "subject": subject, "ratio": 0.5, **measures}


def _measured(gain: float, gap_ratio: float | None = 1.0, sharpness: float = 1.0) -> dict:
    return {"gain": gain, "cosine": gain / 2, "gap_edit": 0.03, "gap_real": 0.04, "gap_ratio": gap_ratio,
            "sharpness": sharpness, "sharpness_real": 0.7, "changed_outside_mask": 0, "pixels_outside_mask": 100}


def test_mesh_measures_are_the_median_over_people_of_each_persons_median():
    records = [_record("KA", **_measured(g, sharpness=s)) for g, s in ((0.2, 0.8), (0.4, 0.9), (float("nan"), 1.0))]
    records += [_record("KM", **_measured(1.0, gap_ratio=None, sharpness=2.0)),
                _record("YM", changed_outside_mask=3, pixels_outside_mask=50),  # meshes missing: realism ratio only
                _record("YM", method="sagan")]  # no mesh, no pixel count: neither summary
    rows = {r["method"]: r for r in summarise(records)}
    mesh = rows["mesh"]["mesh"]
    assert rows["mesh"]["subjects"] == 3 and rows["mesh"]["photo_pairs"] == 5  # the realism ratio keeps every pair
    assert mesh["photo_pairs"] == 4  # YM's pair has no mesh
    assert mesh["gain"] == {"median": pytest.approx(0.65), "subjects": 2}  # KA 0.3 (NaN left out), KM 1.0
    assert mesh["cosine"]["median"] == pytest.approx(0.325)
    assert mesh["gap_ratio"] == {"median": 1.0, "subjects": 1}  # KM's is undefined
    assert mesh["sharpness"] == {"median": pytest.approx(1.45), "subjects": 2}  # KA 0.9, KM 2.0
    assert set(MESH_MEASURES) <= set(mesh)
    assert rows["mesh"]["changed_outside_mask"] == 3 and rows["mesh"]["pixels_outside_mask"] == 450
    assert "mesh" not in rows["sagan"] and "changed_outside_mask" not in rows["sagan"]


def test_mesh_tables_give_gain_cosine_opening_and_sharpness_per_edit_and_method():
    records = [_record(s, "mesh", "neutral->happy", **_measured(g)) for s, g in (("1", 0.6), ("2", 0.8))]
    records += [_record("1", "average", "neutral->happy", **_measured(0.5))]
    records += [_record("1", "average", "neutral->sad", changed_outside_mask=0, pixels_outside_mask=10)]
    realism = {"methods": ["mesh", "average"], "rows": summarise(records)}
    text = "\n".join(mesh_tables(realism))
    assert "| data | edit | mesh | average edit (baseline) |" in text  # the methods in the order measured
    assert "| jaffe | neutral → happy | 0.70 / 0.35 (2) | 0.50 / 0.25 (1) |" in text
    assert "| jaffe | neutral → happy | 0.040 | 1.00 (0.030) | 1.00 (0.030) |" in text  # real gap, then each edit
    assert "| jaffe | neutral → sad | – | n/a |" in text  # mesh: no such edit; average: realism ratio only
    assert "| data | edit | real photo | mesh | average edit (baseline) |" in text  # the sharpness's reference
    assert "| jaffe | neutral → happy | 0.70 | 1.00 (2) | 1.00 (1) |" in text
    assert "average edit (baseline) 0 of 110 (2 photos); mesh 0 of 200 (2 photos)" in text
    assert mesh_tables({"methods": ["mesh"], "rows": [], "mesh_skipped": "no face_mesh"}) == [
        "Mesh measures skipped: no face_mesh.", ""]


def test_photo_scores_add_the_opening_ratio_and_the_sharpness():
    rng = np.random.default_rng(0)
    source = rng.uniform([300, 200], [520, 480], (468, 2))
    right, left = eye_centres(source)
    along = (left - right) / np.linalg.norm(left - right)
    down = np.array([-along[1], along[0]])
    opened, shut = source.copy(), source.copy()
    opened[list(LIPS_INNER_LOWER[1:-1])] += 0.1 * eye_distance(source) * down
    shut[list(LIPS_INNER_LOWER[1:-1])] -= 10 * eye_distance(source) * down  # lower lip far above the upper: gap < 0
    image, edited = rng.integers(0, 255, (600, 700, 3), dtype=np.uint8), rng.integers(0, 255, (600, 700, 3), np.uint8)
    scores = photo_scores(image, edited, source, opened, opened)
    assert scores["gap_ratio"] == pytest.approx(1.0) and scores["gain"] == pytest.approx(1.0)
    assert scores["sharpness"] == mouth_sharpness(image, edited, source, opened) and "sharpness_real" not in scores
    real_image = rng.integers(0, 255, (600, 700, 3), dtype=np.uint8)
    with_real = photo_scores(image, edited, source, opened, opened, real_image)
    assert with_real["sharpness_real"] == mouth_sharpness(image, real_image, source, opened)
    half = photo_scores(image, edited, source, source, opened)
    assert half["gap_ratio"] == pytest.approx(half["gap_edit"] / half["gap_real"]) and half["gain"] == 0.0
    assert np.isnan(photo_scores(image, edited, source, opened, shut)["gap_ratio"])


def _minimal_results(realism: dict) -> dict:
    return {"machine": {"device": "cpu", "processor": "x", "machine": "x", "cpu_count": 2, "torch": "2"},
            "settings": {"split": "test"}, "created": "now", "checkpoints": {}, "datasets": {}, "notes": [],
            "realism": realism}


@pytest.mark.data
@pytest.mark.skipif(not (CHECKPOINTS / "face_mesh" / "config.json").is_file()
                    or not (CHECKPOINTS / "mesh_motion" / "config.json").is_file(),
                    reason="no committed face_mesh / mesh_motion checkpoints")
def test_one_pair_per_edit_of_held_out_people_gets_the_mesh_measures():
    """One held-out pair per dataset and edit (FEI and London both ways, JAFFE neutral -> each expression), edited
    by the mesh-motion method and the average edit; every edit meshed."""
    if not all((RAW_DATA / name).is_dir() for name in ("fei", "london", "jaffe")):
        pytest.skip("../shared/data is absent")
    tick = time.perf_counter()
    realism = realism_section(CHECKPOINTS, ["mesh"], RAW_DATA, "test", 1, torch.device("cpu"))  # as evaluate does
    seconds = time.perf_counter() - tick
    assert realism["methods"] == ["mesh", "average"] and not realism["skipped_pairs"]
    rows = {(r["dataset"], r["pair"], r["method"]): r for r in realism["rows"]}
    edits = {(d, p) for d in ("fei", "london") for p in ("neutral->happy", "happy->neutral")}
    edits |= {("jaffe", f"neutral->{t}") for t in ("angry", "disgust", "fear", "happy", "sad", "surprise")}
    assert {(d, p) for d, p, _ in rows} == edits and realism["photo_pairs"] == len(edits)
    for (dataset, pair, method), row in rows.items():
        mesh = row["mesh"]
        assert mesh["photo_pairs"] == 1 and row["changed_outside_mask"] == 0 and row["pixels_outside_mask"] > 0
        assert np.isfinite(mesh["gain"]["median"]) and -1.0 <= mesh["cosine"]["median"] <= 1.0
        assert mesh["sharpness"]["median"] > 0
        assert 0.0 < mesh["gap_real"]["median"] < 0.5 and -0.1 < mesh["gap_edit"]["median"] < 0.5
        assert mesh["gap_real"] == rows[(dataset, pair, "average")]["mesh"]["gap_real"]  # one real photo per pair
    # the baseline moves a FEI face towards the same person's real smile
    assert rows[("fei", "neutral->happy", "average")]["mesh"]["cosine"]["median"] > 0.5
    report = markdown_report(_minimal_results(realism))
    assert "### What a person sees" in report and MESH_DEFINITION in report
    assert "**Mesh-motion gain / cosine**" in report and "| london | happy → neutral |" in report
    print(f"{seconds:.1f} s for {len(edits)} pairs")
