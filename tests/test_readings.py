"""The second reader (its port of facial-emotion-recognition's network) and readings by several readers at once."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoModel

import expr_models as em
from expr_models.labels import EXPRESSIONS
from expr_models.evaluation.metrics import predict
from expr_models.evaluation.readings import expected_calibration_error, probabilities, success_by_readers
from expr_models.models.second_reader import PACKAGE_CLASSES, SecondReader, SecondReaderConfig

torch.set_num_threads(2)


def tiny_reader(seed=0, **config):
    torch.manual_seed(seed)
    return SecondReader(SecondReaderConfig(width=4, hidden=8, **config)).eval()


def faces(count=24, side=64, seed=1):
    return torch.rand(count, 1, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_second_reader_matches_the_package_layout_and_round_trips(tmp_path):
    reader = tiny_reader()
    # The package's NetworkV2 state dict keys (its Sigmoid has none), so its model.pkl loads with strict=True.
    expected = {f"conv_{i}.{j}.{p}" for i in range(1, 5) for j, p in ((1, "weight"), (1, "bias"), (2, "weight"),
                                                                       (2, "bias"), (2, "running_mean"),
                                                                       (2, "running_var"), (2, "num_batches_tracked"))}
    expected |= {"linear.0.weight", "linear.0.bias", "linear.2.weight", "linear.2.bias"}
    assert set(reader.state_dict()) == expected
    assert reader.linear[0].in_features == 8 * 4 * 6 * 6  # 48 px -> 6 x 6 after three stride-2 stages
    reader.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SecondReader)
    pixels = faces(3, 48)
    with torch.no_grad():
        assert torch.equal(loaded(pixels).logits, reader(pixels).logits)


def test_success_by_readers_maps_each_readers_class_order():
    reader = tiny_reader(seed=3)
    # The same network with its logits in the package's order: the readings must not change.
    permuted = tiny_reader(seed=3, class_names=list(PACKAGE_CLASSES))
    order = [EXPRESSIONS.index(name) for name in PACKAGE_CLASSES]
    with torch.no_grad():
        permuted.linear[2].weight.copy_(reader.linear[2].weight[order])
        permuted.linear[2].bias.copy_(reader.linear[2].bias[order])
    classifier = em.ExpressionClassifier(em.ExpressionClassifierConfig(widths=(8, 8, 8, 8))).eval()
    edited = faces(28)
    targets = [EXPRESSIONS[i % 7] for i in range(28)]
    assert torch.allclose(probabilities(permuted, edited), probabilities(reader, edited), atol=1e-6)

    table = success_by_readers({"classifier": classifier, "second": reader}, edited, targets)
    index = torch.tensor([EXPRESSIONS.index(t) for t in targets])
    for name, model in (("classifier", classifier), ("second", reader)):
        hits = predict(model, edited) == index
        assert table[name]["success"] == pytest.approx(hits.double().mean().item())
        assert table[name]["per_target"]["happy"] == (pytest.approx(hits[index == 3].double().mean().item()), 4)
    both = (predict(classifier, edited) == index) & (predict(reader, edited) == index)
    assert table["both"]["success"] == pytest.approx(both.double().mean().item())
    assert table["both"]["faces"] == 28
    with pytest.raises(ValueError):
        success_by_readers({"second": reader}, edited, ["smug"] * 28)
    with pytest.raises(ValueError):
        success_by_readers({"second": reader}, edited, targets[:-1])


def test_expected_calibration_error():
    probs = torch.full((10, 7), 0.2 / 6)
    probs[:, 0] = 0.8
    assert expected_calibration_error(probs, [0] * 8 + [1] * 2) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(probs, [0] * 5 + [1] * 5) == pytest.approx(0.3)
    assert expected_calibration_error(probs[:0], []) != expected_calibration_error(probs[:0], [])  # nan


def test_temperature_and_flip_average_of_the_classifier():
    torch.manual_seed(0)
    config = em.ExpressionClassifierConfig(architecture="resnet", resolution=48, widths=(8, 8, 16, 16),
                                           blocks=(1, 1, 1, 1))
    model = em.ExpressionClassifier(config).eval()
    pixels = faces(2, 48)
    with torch.no_grad():
        logits = model(pixels).logits
        model.config.temperature = 2.0
        assert torch.allclose(model(pixels).logits, logits / 2)
        model.config.flip_average = True
        mirrored = model(pixels.flip(-1)).logits
        assert torch.allclose(model(pixels).logits, mirrored, atol=1e-6)  # the mean of a face and its mirror
    with pytest.raises(StrictDataclassClassValidationError, match="differ in length"):
        em.ExpressionClassifierConfig(architecture="resnet", widths=(8, 8), blocks=(1, 1, 1))
