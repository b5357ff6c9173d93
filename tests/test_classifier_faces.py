"""The classifier's face arrays (train/classifier_data.py): partial "not happy" labels, training on them and the
temperature fitted afterwards."""

import json

import numpy as np
import pytest
import torch

from train.args import ConfigError
from train.classifier import ClassifierStep, not_label_loss, oversample_counts
from train.classifier_data import IGNORE, FaceArrays, save

torch.set_num_threads(2)


def test_not_label_loss_is_minus_log_one_minus_p():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    not_labels = torch.tensor([0, IGNORE, 2])
    p = logits.softmax(-1)
    expected = -(torch.log(1 - p[0, 0]) + torch.log(1 - p[2, 2])) / 3  # a share of the whole batch
    assert not_label_loss(logits, not_labels) == pytest.approx(expected.item(), rel=1e-6)
    assert not_label_loss(logits, torch.full((3,), IGNORE)) == 0
    # Pushing p(not_label) down lowers it; pushing it up raises it.
    assert not_label_loss(logits - torch.tensor([[3.0, 0, 0]] * 3), not_labels) < not_label_loss(logits, not_labels)


def fake_faces(folder, per_split=(28, 14), resolution=16, seed=0):
    rng = np.random.default_rng(seed)
    rows = {}
    for split, count in zip(("train", "validation"), per_split):
        labels = [i % 7 for i in range(count)]
        not_labels = [IGNORE] * count
        for i in range(0, count, 7):  # one GENKI-like "no smile" face per 7: label unknown, known not to be happy
            labels[i], not_labels[i] = IGNORE, 3
        rows[split] = {"images": list(rng.integers(0, 256, (count, resolution, resolution), dtype=np.uint8)),
                       "labels": labels, "not_labels": not_labels, "sources": ["fer2013"] * count,
                       "subjects": [""] * count}
    save(rows, folder, resolution)
    return folder


def test_face_arrays_and_training_with_partial_labels(tmp_path, capsys):
    from test_training import QUIET, assert_finite_losses, summary, train_in_process
    from transformers import AutoModel

    faces = fake_faces(tmp_path / "faces")
    dataset = FaceArrays(faces, "train", 16)
    item = dataset[0]
    assert item["pixel_values"].shape == (1, 16, 16) and item["labels"] == IGNORE and item["not_labels"] == 3
    assert -1 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1
    with pytest.raises(ValueError, match="prepare the faces again"):
        FaceArrays(faces, "train", 32)

    run = tmp_path / "run"
    status = train_in_process(ClassifierStep, ["--data", faces, "--output-dir", run, "--architecture", "resnet",
                                               "--resolution", "16", "--widths", "4", "8", "--blocks", "1", "1",
                                               "--epochs", "1", "--batch-size", "7", *QUIET,
                                               "--checkpointing-steps", "0"])
    assert status == 0
    assert_finite_losses(run)
    assert summary(run)["steps"] == 4
    assert 0.0 <= summary(run)["metrics"]["accuracy"] <= 1.0  # over the 12 labelled validation faces
    model = AutoModel.from_pretrained(run / "final")
    assert model.config.architecture == "resnet"
    assert "partial labels" in (run / "final" / "README.md").read_text()

    from train.tools.calibrate_classifier import main as calibrate

    assert calibrate([str(run / "final"), "--faces", str(faces), "--flip-average", "--out", str(tmp_path / "cal")]) == 0
    config = json.loads((tmp_path / "cal" / "config.json").read_text())
    assert config["flip_average"] is True and config["temperature"] > 0
    assert "Temperature scaling on 12 validation faces" in (tmp_path / "cal" / "README.md").read_text()
    assert calibrate([str(run / "final"), "--faces", str(faces), "--min-recall", "0.2", "--out",
                      str(tmp_path / "floor")]) == 0
    config = json.loads((tmp_path / "floor" / "config.json").read_text())
    assert len(config["class_bias"]) == 7 and abs(sum(config["class_bias"])) < 1e-3
    assert "validation recall reached 0.2" in (tmp_path / "floor" / "README.md").read_text()

    # A warm restart from that model, its training faces listed twice: twice the steps, the same starting weights.
    warm = tmp_path / "warm"
    status = train_in_process(ClassifierStep, ["--data", faces, "--output-dir", warm, "--architecture", "resnet",
                                               "--resolution", "16", "--widths", "4", "8", "--blocks", "1", "1",
                                               "--epochs", "1", "--batch-size", "7", *QUIET, "--checkpointing-steps",
                                               "0", "--init-from", run / "final", "--oversample", "fer2013=2",
                                               "--lr", "1e-9", "--warmup-steps", "0", "--random-erasing", "0.5"])
    assert status == 0
    assert summary(warm)["steps"] == 8
    before, after = model.state_dict(), AutoModel.from_pretrained(warm / "final").state_dict()
    convs = [name for name in before if name.endswith(".0.weight")]  # conv kernels (BN stats move in training)
    assert convs and all(torch.allclose(before[n], after[n], atol=1e-5) for n in convs)
    card = (warm / "final" / "README.md").read_text()
    assert "Started from the weights of" in card and "one noise rectangle in 50% of the training faces" in card

    # Distilled from two teachers; a teacher that reads other faces (another resolution) is refused by name.
    common = ["--data", faces, "--architecture", "resnet", "--widths", "4", "8", "--blocks", "1", "1", "--epochs",
              "1", "--batch-size", "7", *QUIET, "--checkpointing-steps", "0", "--distill-weight", "1"]
    distilled = tmp_path / "distilled"
    status = train_in_process(ClassifierStep, [*common, "--output-dir", distilled, "--resolution", "16",
                                               "--teachers", run / "final", warm / "final"])
    assert status == 0
    assert_finite_losses(distilled)
    assert "Distilled from" in (distilled / "final" / "README.md").read_text()
    capsys.readouterr()
    assert train_in_process(ClassifierStep, [*common, "--output-dir", tmp_path / "other", "--resolution", "32",
                                             "--teachers", run / "final"]) != 0
    assert "resolution, channels or classes differ from the student's ((16, 1) against (32, 1))" in \
        capsys.readouterr().err


def test_distillation_pulls_the_student_towards_its_teachers():
    step = ClassifierStep.__new__(ClassifierStep)
    step.args = type("Args", (), {"distill_temperature": 2.0})()
    sure, unsure = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    with torch.no_grad():
        sure.weight.zero_(), unsure.weight.zero_()
        sure.bias.copy_(torch.tensor([4.0, 0.0, 0.0])), unsure.bias.zero_()
    step.teachers = [lambda x, net=net: type("Output", (), {"logits": net(x)})() for net in (sure, unsure)]
    probabilities = step.teacher_probabilities(torch.zeros(2, 4))
    expected = (torch.tensor([2.0, 0.0, 0.0]).softmax(-1) + torch.full((3,), 1 / 3)) / 2  # logits / T, then averaged
    assert torch.allclose(probabilities, expected.expand(2, 3), atol=1e-6)


def test_face_arrays_repeat_sources(tmp_path):
    faces = fake_faces(tmp_path / "faces")
    with np.load(faces / "train.npz") as data:
        sources = data["sources"].copy()
    sources[:4] = "london"
    np.savez_compressed(faces / "train.npz", **{**dict(np.load(faces / "train.npz")), "sources": sources})
    plain, repeated = FaceArrays(faces, "train", 16), FaceArrays(faces, "train", 16, repeats={"london": 3})
    assert len(repeated) == len(plain) + 2 * 4
    assert (repeated.sources == "london").sum() == 12
    assert torch.equal(repeated.images[len(plain):len(plain) + 4], plain.images[:4])
    with pytest.raises(ValueError, match="at least 1"):
        FaceArrays(faces, "train", 16, repeats={"london": 0})
    assert oversample_counts(["london=10", "fei=4"]) == {"london": 10, "fei": 4}
    with pytest.raises(ConfigError, match="SOURCE=N"):
        oversample_counts(["london"])


def test_random_erasing_fills_one_rectangle_with_noise():
    from train.classifier import Augment

    still = dict(degrees=0.0, translate=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0)
    image = torch.full((1, 48, 48), 0.25)
    assert torch.allclose(Augment(**still)(image, torch.Generator().manual_seed(0)), image, atol=1e-4)  # erasing off
    for seed in range(20):
        erased = Augment(**still, erasing=1.0)(image, torch.Generator().manual_seed(seed))
        changed = ((erased - image).abs() > 1e-3)[0]
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert float(box.float().mean()) > 0.97, "the changed pixels fill one rectangle (noise may hit 0.25)"
        assert 0.015 <= box.numel() / changed.numel() <= 0.27  # 2-25% of the face, up to rounding
        assert float(erased.min()) >= -1 and float(erased.max()) <= 1 and float(erased[0][changed].std()) > 0.2
        assert torch.equal(erased, Augment(**still, erasing=1.0)(image, torch.Generator().manual_seed(seed)))
    with pytest.raises(ConfigError, match="random-erasing"):
        ClassifierStep.check_arguments(ClassifierStep.arguments_class(data=[], random_erasing=1.5))


def test_recall_floor_raises_the_least_read_class():
    from train.tools.calibrate_classifier import raise_recall_floor

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(100)
    logits = torch.nn.functional.one_hot(labels, 3).float() * 2 + torch.randn(300, 3, generator=generator)
    logits[:, 2] -= 1.5  # class 2 is read too rarely
    recall = lambda bias: [float(((logits + bias).argmax(-1) == labels)[labels == c].float().mean()) for c in range(3)]
    assert min(recall(torch.zeros(3))) < 0.6
    bias, floor_recall = raise_recall_floor(logits, labels, torch.zeros(3), 0.75)
    assert min(recall(bias)) >= 0.75 and floor_recall == pytest.approx(recall(bias), abs=1e-4)
    assert bias[2] == bias.max() and abs(float(bias.sum())) < 1e-5
    unchanged, _ = raise_recall_floor(logits, labels, torch.zeros(3), 0.0)
    assert torch.equal(unchanged, torch.zeros(3))
