"""Smoke tests of benchmarks/ with tiny settings: the scripts' pieces run and report what they should (no timing is
checked here; benchmarks/README.md says how to take real measurements)."""

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

import bench_utils as bu


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy test machine makes OpenMP threads spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_photos_have_the_size_and_faces_asked_for():
    from expr_models.faces.detection import detect_faces

    photo = bu.photo_of_size(0.3)
    assert abs(photo.shape[0] * photo.shape[1] / 1e6 - 0.3) < 0.01
    canvas = bu.multi_face_canvas(0.3, faces=5)
    assert canvas.shape[1] / canvas.shape[0] == pytest.approx(4 / 3, abs=0.01)
    assert len(detect_faces(canvas, min_size=32)) == 5


def test_measure_and_table():
    stats = bu.measure(lambda: sum(range(1000)), repeats=3)
    assert stats["runs"] == 3 and stats["min_s"] <= stats["median_s"] <= stats["q3_s"]
    table = bu.format_table([{"a": 1.23456, "b": None}], [("a", "A"), ("b", "B")])
    assert table.splitlines()[2] == "| 1.23 | - |"
    assert bu.peak_rss_mib() > 10 and bu.machine()["cores_available"] >= 1


def test_reference_generator_is_the_resnet9():
    from edit_latency import ReferenceResnetGenerator

    model = ReferenceResnetGenerator()
    # The reference implementation reports 11.378 M parameters for its resnet_9blocks generator (ngf 64, RGB).
    assert sum(p.numel() for p in model.parameters()) == 11_378_179
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32)


def test_edit_latency_worker(tmp_path):
    import edit_latency

    bu.inference_checkpoints(tmp_path / "models")  # random default models (or the committed ones)
    photos = edit_latency.make_photos(tmp_path, [0.1], [1])
    (tmp_path / "photos.json").write_text(json.dumps(photos))
    args = Namespace(workdir=str(tmp_path), method="cyclegan", variant="default", repeats=1, anchor_repeats=1,
                     anchor_size=32, nst_steps=1)
    result = edit_latency.worker(args)
    row = result["rows"][0]
    assert row["faces_found"] == 1 and row["median_s"] > 0 and row["ratio_to_reference"] > 0
    assert result["peak_rss_mib"] > 0 and result["reference"]["median_s"] > 0


def test_training_steps_run_both_sides(tmp_path):
    from training_throughput import ReferenceStep, build_ours

    tiny = ["--resolution", "32", "--generator-channels", "4", "--n-residual-blocks", "1",
            "--discriminator-channels", "4", "--discriminator-layers", "2"]
    trainer, step, accelerator = build_ours(tiny, {}, "cpu", 2, tmp_path)
    batch = {"x": torch.rand(2, 1, 32, 32) * 2 - 1, "y": torch.rand(2, 1, 32, 32) * 2 - 1}
    with accelerator.accumulate(*trainer.modules.values()):
        losses = step.step(batch, 0)
    assert torch.isfinite(losses["generator"])
    reference = ReferenceStep(step.config, step.args, torch.device("cpu"))
    assert torch.isfinite(reference.step(batch["x"], batch["y"]))


def test_nst_speed_runs(capsys):
    import nst_speed

    assert nst_speed.main(["--steps", "2", "--repeats", "1", "--size", "64", "--anchor-steps", "0",
                           "--optimizers", "adam", "--no-save"]) == 0
    assert "mobilenet_v2" in capsys.readouterr().out


def test_detector_recall_skips_without_data(tmp_path, capsys):
    import detector_recall

    assert detector_recall.main(["--data", str(tmp_path / "nowhere"), "--no-save"]) == 0
    assert "SKIP" in capsys.readouterr().out
    boxes = np.array([[0, 0, 10, 10]], np.float32)
    assert detector_recall.box_iou(boxes, boxes)[0, 0] == pytest.approx(1.0)


def test_face_framing_skips_without_data_and_its_statistics(tmp_path, capsys, astronaut):
    import face_framing

    from expr_models.faces.detection import retinaface

    assert face_framing.main(["--data", str(tmp_path / "nowhere"), "--no-save"]) == 0
    assert "SKIP" in capsys.readouterr().out
    # Haar boxes placed exactly where the committed mapping puts them: the statistics give back its constants.
    raw = retinaface.RetinaFaceDetector(framing="raw").detect(astronaut)[0]
    raws = np.array([[raw.x0, raw.y0, raw.x1, raw.y1]] * 3, np.float32) * np.array([[1], [1.5], [2]], np.float32)
    landmarks = np.stack([raw.landmarks, raw.landmarks * 1.5, raw.landmarks * 2])
    haar = retinaface.haar_framing_arrays(raws, landmarks)
    stats = face_framing.calibration(haar, raws, landmarks, np.array(["jaffe", "fei", "fei"]))
    assert stats["centre_below_eyes_over_w"]["median"] == pytest.approx(retinaface.HAAR_CENTRE_BELOW_EYES, abs=1e-4)
    assert stats["side_over_w"]["median"] == pytest.approx(retinaface.HAAR_SIDE, abs=1e-4)
    check = face_framing.agreement(haar, raws, haar)
    assert check["mean_iou_mapped"] == pytest.approx(1.0) and check["mean_iou_raw"] < 0.9


def test_edit_latency_detector_variants(tmp_path):
    import edit_latency

    from expr_models.faces.detection import HaarFaceDetector, RetinaFaceDetector

    assert isinstance(edit_latency.build_editor(tmp_path, "default", 1).face_detector(), RetinaFaceDetector)
    haar = edit_latency.build_editor(tmp_path, "haar", 1).face_detector()
    assert isinstance(haar, HaarFaceDetector) and haar.max_side == 640
    assert edit_latency.build_editor(tmp_path, "before", 1).face_detector().max_side == 1024
    assert edit_latency.build_editor(tmp_path, "retinaface480", 1).face_detector().max_side == 480


# --- the pipeline's speed settings --------------------------------------------------------------------------------

def test_torch_threads_restores_the_setting():
    from expr_models.models.runtime import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_precision_and_thread_settings_are_checked():
    from expr_models.models.runtime import resolve_precision
    from expr_models.pipeline import ExpressionEditor

    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda")) is None
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(ValueError, match="num_threads"):
        ExpressionEditor(models_dir=None, num_threads=0)
    with pytest.raises(ValueError, match="num_threads"):
        ExpressionEditor(models_dir=None, num_threads="many")


def test_each_measurement_names_the_cpu_s_widest_vector_unit():
    from expr_models.evaluation.report import markdown_report
    from expr_models.evaluation.run import machine_info
    from expr_models.models.runtime import VECTOR_UNITS, widest_vector_unit

    assert widest_vector_unit({"avx2": True, "avx512_f": True, "avx512_bf16": False}) == "avx512_f"
    assert widest_vector_unit({"avx2": False}) == "no avx2"
    assert widest_vector_unit({}) == "vector units unknown"
    here = machine_info(torch.device("cpu"))
    assert here["vector_unit"] in (*VECTOR_UNITS, "no avx2", "vector units unknown")
    results = {"machine": here, "settings": {"split": "test"}, "created": "now", "checkpoints": {}, "datasets": {},
               "notes": []}
    assert f", {here['vector_unit']}, {here['cpu_count']} CPUs" in markdown_report(results)
    info = bu.machine()
    assert f" ({widest_vector_unit(info['cpu_features'])}), " in bu.machine_line(info)


def test_bf16_edit_stays_close_to_fp32():
    from expr_models import CycleGANConfig, CycleGANModel
    from expr_models.pipeline import ExpressionEditor

    torch.manual_seed(0)
    model = CycleGANModel(CycleGANConfig(**bu.DEFAULT_CYCLEGAN, with_discriminators=False))
    photo = bu.astronaut()
    fast = ExpressionEditor(models_dir=None, models={"cyclegan": model}, precision="bf16").edit(photo, target="happy")
    exact = ExpressionEditor(models_dir=None, models={"cyclegan": model}, precision="fp32").edit(photo, target="happy")
    diff = np.abs(np.asarray(fast.image, int) - np.asarray(exact.image, int))
    assert diff.mean() < 0.5 and diff.max() <= 12


def test_paste_back_in_place_matches_a_copy():
    from expr_models.faces.detection import detect_faces
    from expr_models.faces.geometry import crop_face, face_mask, paste_back

    photo = bu.astronaut()
    box = detect_faces(photo)[0]
    crop, transform = crop_face(photo, box)
    edited = 255 - crop
    expected = paste_back(photo, edited, transform, face_mask(transform.side))
    target = photo.copy()
    assert paste_back(target, edited, transform, face_mask(transform.side), out=target) is target
    np.testing.assert_array_equal(target, expected)


def test_mesh_direction_ceiling_skips_without_data_and_scores_a_shared_motion_as_one(tmp_path, capsys):
    import mesh_direction_ceiling

    from expr_models.faces.mesh_topology import LIPS_OUTER

    assert mesh_direction_ceiling.main(["--data", str(tmp_path / "nowhere")]) == 0
    assert "skipped" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    motion = np.zeros((468, 3))
    motion[list(LIPS_OUTER), :2] = rng.normal(0, 0.8, (len(LIPS_OUTER), 2))  # the lips move; the stable points stay

    shape = rng.uniform(100, 300, (468, 3))

    def person(seed: int, real_motion: np.ndarray, name: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
        face = shape + np.random.default_rng(seed).uniform(-50, 50, 3)  # the same face elsewhere in the photo
        return name or f"person {seed}", face, face + real_motion

    train = [person(seed, motion) for seed in range(3)]
    same = mesh_direction_ceiling.ceiling(train, [person(10 + seed, motion) for seed in range(2)])
    assert same["median_gain"] == pytest.approx(1.0, abs=1e-3) and same["median_cosine"] == pytest.approx(1.0, abs=1e-3)
    other = np.zeros_like(motion)
    other[list(LIPS_OUTER), :2] = rng.normal(0, 0.8, (len(LIPS_OUTER), 2))
    unrelated = mesh_direction_ceiling.ceiling(train, [person(20, other)])
    assert abs(unrelated["median_cosine"]) < 0.5 and same["test_people"] == 2 and same["train_pairs"] == 3
    # one person's several takes (JAFFE) count once: their median, then the median over people
    takes = [person(30, motion, "KA"), person(31, motion, "KA"), person(32, other, "KA"), person(33, other, "KM")]
    grouped = mesh_direction_ceiling.ceiling(train, takes)
    assert grouped["test_people"] == 2 and grouped["median_cosine"] < 0.9


def test_edit_confusion_skips_without_data_and_its_mesh_reader_learns_what_tells_expressions_apart(tmp_path, capsys):
    import edit_confusion

    from expr_models.labels import EXPRESSIONS

    assert edit_confusion.main(["--data", str(tmp_path / "nowhere")]) == 0
    assert "skipped" in capsys.readouterr().out
    # Two expressions that differ by one point's height, among faces that differ in every point: the reader must
    # learn the one point that matters, and read faces it never saw by it.
    generator = torch.Generator().manual_seed(0)
    happy, sad = EXPRESSIONS.index("happy"), EXPRESSIONS.index("sad")

    def faces(n: int, label: int) -> torch.Tensor:
        meshes = 0.05 * torch.randn(n, 12, 2, generator=generator)
        meshes[:, 3, 1] += 0.1 if label == happy else -0.1
        return meshes

    train = torch.cat([faces(200, happy), faces(200, sad)])
    labels = torch.tensor([happy] * 200 + [sad] * 200)
    read = edit_confusion.mesh_reader(train, labels, torch.zeros(12, 2), epochs=20)
    with torch.no_grad():
        assert (read(faces(50, happy)) == happy).float().mean() > 0.9
        assert (read(faces(50, sad)) == sad).float().mean() > 0.9


def test_head_turn_yaw_skips_without_data_and_reports_a_defective_label(tmp_path, capsys, astronaut):
    import head_turn_yaw
    from PIL import Image

    assert head_turn_yaw.main(["--data", str(tmp_path / "nowhere")]) == 0
    assert "skipped" in capsys.readouterr().out
    files = tmp_path / "data" / "genki4k" / "files"
    files.mkdir(parents=True)
    Image.fromarray(astronaut).save(files / "file0001.jpg")
    Image.fromarray(astronaut[:, ::-1].copy()).save(files / "file0002.jpg")
    (files.parent / "labels.txt").write_text("1 0.1 0 0\n1 -0.2 0 0\n1 not-a-number 0 0\n")
    out = tmp_path / "turn.json"
    assert head_turn_yaw.main(["--data", str(tmp_path / "data"), "--every", "1", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["faces"] == 2 and len(report["unreadable"]) == 1 and "line 3" in report["unreadable"][0]
    assert report["bands"][0]["turn_median"] < 0.3  # the astronaut faces the camera


def test_mouth_open_shape_measures_the_lower_lip_and_sees_a_stretched_one(tmp_path):
    import mouth_open_shape

    from expr_models.models.mesh_motion import MeshMotionModel
    from expr_models.faces.mesh_topology import LIPS_INNER_LOWER

    committed = BENCHMARKS.parent / "checkpoints" / "mesh_motion"
    shape = mouth_open_shape.shape(committed)
    assert shape["parting"] == pytest.approx(0.3, abs=0.02) and shape["lower_lip_triangles"] > 20
    assert shape["corner_drop_over_middle"] > 0.1 and shape["area_growth_median"] < 2.5
    # The same model with the lower lip's inner points dropped alone: its triangles grow far more.
    model = MeshMotionModel.from_pretrained(committed)
    with torch.no_grad():
        index = list(model.config.controls).index("mouth_open")
        model.directions[index].zero_()
        model.directions[index, list(LIPS_INNER_LOWER[1:-1]), 1] = 0.3
    model.save_pretrained(tmp_path / "stretched")
    stretched = mouth_open_shape.shape(tmp_path / "stretched")
    assert stretched["area_growth_max"] > 2 * shape["area_growth_max"] and stretched["corner_drop_over_middle"] == 0
    # A laugh (smile + mouth_open +1): the editor's rules keep its lips as bands.
    assert shape["laugh_with_rules_area_growth_max"] < 0.5 * shape["laugh_area_growth_max"]


def test_laugh_readings_skips_without_data(tmp_path, capsys):
    import laugh_readings

    assert laugh_readings.main(["--data", str(tmp_path / "nowhere")]) == 0
    assert capsys.readouterr().out.startswith("skipped:")


def test_onnx_speed_compares_against_the_same_checkpoints_without_their_graphs(tmp_path):
    from onnx_speed import torch_only

    from expr_models.pipeline import ExpressionEditor

    models = BENCHMARKS.parent / "checkpoints"
    plain = torch_only(models, tmp_path / "torch_only")
    assert not list(plain.rglob("model.onnx")) and (plain / "face_mesh" / "model.safetensors").is_file()
    with_graphs, without = ExpressionEditor.from_pretrained(models), ExpressionEditor.from_pretrained(plain)
    assert with_graphs.model("face_mesh").onnx_graph is not None and without.model("face_mesh").onnx_graph is None
