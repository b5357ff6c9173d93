"""The evaluation's paired realism ratio (expr_models.evaluation.realism) on generated photo pairs.

The "people" are scikit-image's astronaut, lit differently per person, laid out as the London Set is
(``neutral/NNN_03.jpg``, ``smiling/NNN_08.jpg``): the smiling photo is the neutral one moved by the committed
average edit, so the average edit run through the editor must land close to it.
Nothing comes from ../shared/data.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from expr_models.data.paired_faces import photo_pairs
from expr_models.evaluation.realism import evaluate_realism, markdown_table, mesh_tables, realism_pairs, summarise
from expr_models.models.average_edit import AverageEditModel
from expr_models.pipeline import ExpressionEditor

torch.set_num_threads(2)

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
needs_checkpoints = pytest.mark.skipif(not (CHECKPOINTS / "average" / "config.json").is_file(),
                                       reason="no committed average-edit checkpoint")


def test_summary_is_the_median_over_people_of_each_persons_median():
    records = [{"dataset": "jaffe", "pair": "neutral->sad", "method": "sagan", "subject": "KA", "ratio": r}
               for r in (0.2, 0.4, 0.9)]  # one person, three takes: 0.4
    records += [{"dataset": "jaffe", "pair": "neutral->sad", "method": "sagan", "subject": "KM", "ratio": 1.0},
                {"dataset": "jaffe", "pair": "neutral->sad", "method": "sagan", "subject": "YM", "ratio": 0.6},
                {"dataset": "fei", "pair": "happy->neutral", "method": "average", "subject": "7", "ratio": 0.5},
                {"dataset": "fei", "pair": "neutral->happy", "method": "cyclegan", "subject": "7", "ratio": 0.8},
                {"dataset": "fei", "pair": "neutral->happy", "method": "average", "subject": "7", "ratio": 0.3}]
    rows = summarise(records)
    assert [(r["dataset"], r["pair"], r["method"]) for r in rows] == [
        ("fei", "neutral->happy", "average"), ("fei", "neutral->happy", "cyclegan"),
        ("fei", "happy->neutral", "average"), ("jaffe", "neutral->sad", "sagan")]
    sad = rows[-1]
    assert sad["median_ratio"] == pytest.approx(0.6)  # median of 0.4, 1.0, 0.6
    assert sad["subjects"] == 3 and sad["photo_pairs"] == 5
    assert sad["per_subject"] == {"KA": pytest.approx(0.4), "KM": 1.0, "YM": 0.6}


def test_skips_cleanly_without_raw_data(tmp_path):
    result = evaluate_realism(None, ["cyclegan"], tmp_path / "absent")
    assert "skipped" in result and "no raw data" in result["skipped"]
    assert markdown_table(result)[0].startswith("Skipped: no raw data")


def test_jaffe_pairs_start_neutral_and_london_goes_both_ways(tmp_path):
    (tmp_path / "jaffe").mkdir()
    for subject in ("KA", "KL", "KM", "KR"):
        for code in ("NE1", "HA1", "SA1", "SA2"):
            (tmp_path / "jaffe" / f"{subject}.{code}.1.tiff").touch()
    pairs = realism_pairs(tmp_path, split=None)
    assert {p.source_expression for p in pairs} == {"neutral"}  # JAFFE happy -> neutral is left out
    assert sum(p.pair == "neutral->sad" for p in pairs) == 8 and sum(p.pair == "neutral->happy" for p in pairs) == 4


@pytest.fixture(scope="module")
def london_like(tmp_path_factory):
    """Three astronaut 'people' in the London Set's layout; their smiles made by the committed average edit."""
    root = tmp_path_factory.mktemp("raw")
    (root / "london" / "neutral").mkdir(parents=True)
    (root / "london" / "smiling").mkdir()
    average = AverageEditModel.from_pretrained(CHECKPOINTS / "average")
    for number in (1, 2, 3):
        neutral = np.clip(skimage_data.astronaut().astype(np.float32) * (0.85 + 0.05 * number), 0, 255)
        neutral = neutral.astype(np.uint8)
        smiling = average.edit_photo(neutral, "neutral", "happy")
        Image.fromarray(neutral).save(root / "london" / "neutral" / f"{number:03d}_03.jpg", quality=95)
        Image.fromarray(smiling).save(root / "london" / "smiling" / f"{number:03d}_08.jpg", quality=95)
    split = photo_pairs(root, split=None)[0].split  # whichever split the first person falls in
    return root, split


@needs_checkpoints
def test_average_edit_lands_on_a_smile_made_by_it_and_doing_nothing_does_not(london_like):
    root, split = london_like
    editor = ExpressionEditor(CHECKPOINTS)
    result = evaluate_realism(editor, ["cyclegan"], root, split=split)
    assert result["methods"] == ["cyclegan", "average"] and not result["skipped_pairs"]
    rows = {(r["pair"], r["method"]): r for r in result["rows"]}
    assert set(rows) == {(pair, method) for pair in ("neutral->happy", "happy->neutral")
                         for method in ("cyclegan", "average")}
    to_smile = rows[("neutral->happy", "average")]
    assert to_smile["subjects"] == 1 and to_smile["dataset"] == "london"
    # The editor's average edit (box crop, aligned frame, paste-back) against the same edit of the whole photo.
    assert to_smile["median_ratio"] < 0.35
    # The way back undoes part of it; the CycleGAN is measured on the same pairs, any ratio.
    assert np.isfinite(rows[("neutral->happy", "cyclegan")]["median_ratio"])
    table = "\n".join(markdown_table(result))
    assert "| london | neutral → happy |" in table and "average edit (baseline)" in table
    # The same edits meshed: the average edit moves the face as far as, and the way of, the smile it made.
    mesh = to_smile["mesh"]
    assert 0.8 < mesh["gain"]["median"] < 1.2 and mesh["cosine"]["median"] > 0.9 and mesh["gain"]["subjects"] == 1
    for row in rows.values():
        assert -1.0 <= row["mesh"]["cosine"]["median"] <= 1.0 and row["mesh"]["sharpness"]["median"] > 0
        assert row["changed_outside_mask"] == 0 and row["pixels_outside_mask"] > 0
    assert "**Mesh-motion gain / cosine**" in "\n".join(mesh_tables(result))



def test_realism_ratios_go_into_the_cards_as_eval_results():
    from expr_models.hub.cards import eval_results_from_report

    report = {"checkpoints": {"cyclegan": [{"name": "cyclegan"}, {"name": "cyclegan_other"}]},
              "realism": {"split": "test", "rows": [
                  {"dataset": "london", "pair": "neutral->happy", "method": "cyclegan", "median_ratio": 0.914,
                   "subjects": 10},
                  {"dataset": "london", "pair": "neutral->happy", "method": "average", "median_ratio": 0.64,
                   "subjects": 10}]}}
    results = eval_results_from_report(report, "cyclegan")
    assert len(results) == 1
    assert results[0]["metric_type"] == "realism_ratio" and results[0]["metric_value"] == 0.91
    assert results[0]["dataset_type"] == "london-photos" and "London Set" in results[0]["dataset_name"]
    assert "neutral → happy" in results[0]["metric_name"] and "10 people" in results[0]["metric_name"]
    assert eval_results_from_report(report, "cyclegan", "cyclegan_other") == []  # the editor used the first one
    assert [r["metric_value"] for r in eval_results_from_report(report, "average")] == [0.64]


def test_mesh_measures_go_into_the_card_of_the_methods_component():
    from expr_models.hub.cards import eval_results_from_report

    mesh = {"photo_pairs": 12, "gain": {"median": 0.614, "subjects": 11}, "cosine": {"median": 0.9, "subjects": 11},
            "gap_ratio": {"median": 0.4, "subjects": 11}, "sharpness": {"median": None, "subjects": 0}}
    report = {"realism": {"split": "test", "rows": [
        {"dataset": "fei", "pair": "neutral->happy", "method": "mesh", "median_ratio": 0.8, "subjects": 12,
         "mesh": mesh}]}}
    results = eval_results_from_report(report, "mesh_motion")  # the mesh method's checkpoint
    assert [(r["metric_type"], r["metric_value"]) for r in results] == [
        ("realism_ratio", 0.8), ("mesh_gain", 0.61), ("mesh_cosine", 0.9)]  # no sharpness measured: none
    assert "11 people" in results[1]["metric_name"] and "neutral → happy" in results[1]["metric_name"]
    assert eval_results_from_report(report, "cyclegan") == []


def test_a_mouth_card_lists_the_mesh_warps_it_drew_on_happy_neutral_pairs_only():
    from expr_models.hub.cards import eval_results_from_report

    mesh = {"gap_ratio": {"median": 1.11, "subjects": 12}, "sharpness": {"median": 0.6, "subjects": 12}}
    rows = [{"dataset": dataset, "pair": pair, "method": method, "median_ratio": 0.85, "subjects": 12, "mesh": mesh}
            for dataset, pair in (("fei", "happy->neutral"), ("jaffe", "neutral->sad"))
            for method in ("cyclegan", "average")]
    report = {"checkpoints": {"mouth_inpainter": [{"name": "mouth_inpainter"}]},
              "realism": {"split": "test", "rows": rows}}
    results = eval_results_from_report(report, "mouth_inpainter")
    assert [r["metric_type"] for r in results] == ["realism_ratio", "mouth_opening_ratio", "mouth_sharpness"]
    assert all("CycleGAN happy → neutral (with this mouth)" in r["metric_name"] for r in results)
    assert eval_results_from_report({"realism": report["realism"]}, "mouth_inpainter") == []  # never loaded


def test_the_share_read_as_the_target_counts_photo_pairs_beside_the_real_photos():
    records = [{"dataset": "london", "pair": "neutral->happy", "method": "cyclegan", "subject": subject,
                "ratio": 1.0, "read_as_target": edit, "real_read_as_target": real}
               for subject, edit, real in (("005", True, False), ("006", True, True), ("020", False, False))]
    records.append({"dataset": "london", "pair": "neutral->happy", "method": "cyclegan", "subject": "062",
                    "ratio": 1.0})  # no classifier reading: left out of the share
    row = summarise(records)[0]
    assert row["read_as_target"] == {"share": pytest.approx(2 / 3), "real_share": pytest.approx(1 / 3),
                                     "photo_pairs": 3}
    from expr_models.evaluation.realism import mesh_tables

    table = "\n".join(mesh_tables({"methods": ["cyclegan"], "rows": [row]}))
    assert "| london | neutral → happy | 33% | 67% (3) |" in table
