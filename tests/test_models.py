"""Every model family: Auto round trips, shapes, configs, model cards and clear errors on broken checkpoints."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoConfig, AutoModel

import expr_models as em
from expr_models.errors import CheckpointError, HubUnavailableError

torch.set_num_threads(2)

TINY = {
    "cyclegan": lambda resolution=64, channels=1: em.CycleGANConfig(
        resolution=resolution, in_channels=channels, generator_channels=8, n_residual_blocks=1,
        discriminator_channels=8),
    "sagan": lambda resolution=64, channels=1: em.SAGANConfig(
        resolution=resolution, in_channels=channels, generator_channels=8, n_residual_blocks=1,
        discriminator_channels=8),
    "classifier": lambda resolution=64, channels=1: em.ExpressionClassifierConfig(
        resolution=resolution, in_channels=channels, widths=(8, 16, 16, 32)),
    "segmenter": lambda resolution=64, channels=3: em.FaceSegmenterConfig(
        backbone="mobilenet_v3_small", fpn_channels=16, box_head_size=32, min_size=64, max_size=96),
    "style_vgg19": lambda resolution=64, channels=3: em.StyleFeatureConfig(architecture="vgg19"),
    "style_mobilenet": lambda resolution=64, channels=3: em.StyleFeatureConfig(architecture="mobilenet_v2"),
}


def run_model(model, pixel_values):
    """The one output that matters for each family, as a tensor (or a tuple of tensors)."""
    if isinstance(model, em.CycleGANModel):
        return model.generate(pixel_values, to="happy"), model.generate(pixel_values, to="neutral")
    if isinstance(model, em.SAGANModel):
        return model.generate(pixel_values, to="surprise")
    if isinstance(model, em.ExpressionClassifier):
        return model(pixel_values).logits
    if isinstance(model, em.StyleFeatureExtractor):
        return tuple(model(pixel_values).values())
    detections = model(list(pixel_values)).detections[0]
    return tuple(detections[key] for key in sorted(detections))


def make_input(config, batch=2, resolution=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    channels = getattr(config, "in_channels", 3)
    values = torch.rand(batch, channels, resolution, resolution, generator=generator)
    # GAN and classifier inputs live in [-1, 1]; the segmenter and NST features take [0, 1].
    return values * 2 - 1 if hasattr(config, "in_channels") else values


@pytest.mark.parametrize("family", sorted(TINY))
def test_auto_round_trip_gives_identical_outputs(family, tmp_path):
    torch.manual_seed(0)
    config = TINY[family]()
    model = AutoModel.from_config(config).eval()
    model.save_pretrained(tmp_path)
    # Never a pickle; the card's LICENSE.md names the terms of weights trained on research-only data.
    assert sorted(os.listdir(tmp_path)) == ["LICENSE.md", "README.md", "config.json", "model.safetensors"]

    assert isinstance(AutoConfig.from_pretrained(tmp_path), type(config))
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(model)
    pixel_values = make_input(config)
    with torch.no_grad():
        expected, actual = run_model(model, pixel_values), run_model(reloaded, pixel_values)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = actual if isinstance(actual, tuple) else (actual,)
    for left, right in zip(expected, actual, strict=True):
        assert torch.equal(left, right)


@pytest.mark.parametrize("family", ["cyclegan", "sagan"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_generators_keep_shape(family, channels, resolution):
    config = TINY[family](resolution, channels)
    model = AutoModel.from_config(config).eval()
    pixel_values = make_input(config, batch=1, resolution=resolution)
    with torch.no_grad():
        outputs = run_model(model, pixel_values)
    for output in outputs if isinstance(outputs, tuple) else (outputs,):
        assert output.shape == pixel_values.shape
        assert output.min() >= -1 and output.max() <= 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_discriminators_and_classifier_shapes(channels, resolution):
    cyclegan = em.CycleGANModel(TINY["cyclegan"](resolution, channels))
    sagan = em.SAGANModel(TINY["sagan"](resolution, channels))
    classifier = em.ExpressionClassifier(TINY["classifier"](resolution, channels)).eval()
    pixel_values = make_input(cyclegan.config, batch=2, resolution=resolution)
    with torch.no_grad():
        patch = cyclegan.discriminator_of("happy")(pixel_values)
        assert patch.shape[:2] == (2, 1) and patch.shape[-1] == resolution // 8 - 2
        judged = sagan.discriminator(pixel_values)
        assert judged.class_logits.shape == (2, len(em.EXPRESSIONS) + 1)  # the last class means "generated"
        assert judged.critic.shape[:2] == (2, 1)
        assert classifier(pixel_values).logits.shape == (2, len(em.EXPRESSIONS))


def test_inference_checkpoints_leave_discriminators_out(tmp_path):
    model = em.CycleGANModel(TINY["cyclegan"]()).eval()
    generators_only = model.without_discriminators()
    generators_only.save_pretrained(tmp_path / "small")
    model.save_pretrained(tmp_path / "full")
    small = (tmp_path / "small" / "model.safetensors").stat().st_size
    assert small < (tmp_path / "full" / "model.safetensors").stat().st_size
    reloaded = AutoModel.from_pretrained(tmp_path / "small").eval()
    assert reloaded.discriminator_x is None
    pixel_values = make_input(model.config)
    assert torch.equal(model.generate(pixel_values), reloaded.generate(pixel_values))
    # A full checkpoint also loads as generators-only (the discriminator weights are simply not used).
    AutoModel.from_pretrained(tmp_path / "full", with_discriminators=False)

    sagan = em.SAGANModel(TINY["sagan"]())
    sagan.without_discriminator().save_pretrained(tmp_path / "sagan")
    assert AutoModel.from_pretrained(tmp_path / "sagan").discriminator is None


def test_fp16_checkpoint_loads_as_fp32(tmp_path):
    model = em.ExpressionClassifier(TINY["classifier"]()).eval()
    model.to(torch.float16).save_pretrained(tmp_path)
    reloaded = em.ExpressionClassifier.from_pretrained(tmp_path)
    assert reloaded.dtype == torch.float32
    pixel_values = make_input(model.config)
    expected = model.float()(pixel_values).logits
    torch.testing.assert_close(reloaded(pixel_values).logits, expected, atol=2e-2, rtol=2e-2)


def test_model_card_names_data_terms_and_metrics(tmp_path):
    model = em.CycleGANModel(TINY["cyclegan"]())
    model.card_info = {"training_data": "JAFFE + FEI (held-out subjects excluded)", "metrics": {"cycle L1": 0.05}}
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "JAFFE + FEI" in card and "research-only" in card and "| cycle L1 | 0.05 |" in card
    assert card.startswith("---\nlibrary_name: expr-models\nlicense: other\n")  # not apache-2.0: research-only data
    assert "pipeline_tag: image-to-image" in card and "pip install ." in card and "import expr_models" in card


def test_classifier_is_an_auto_image_classifier(tmp_path):
    from transformers import AutoModelForImageClassification

    em.ExpressionClassifier(TINY["classifier"]()).save_pretrained(tmp_path)
    assert type(AutoModelForImageClassification.from_pretrained(tmp_path)) is em.ExpressionClassifier
    assert "pipeline_tag: image-classification" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete_weights", "bad_json"])
def test_broken_checkpoint_raises_a_clear_error_naming_the_file(damage, tmp_path):
    em.SAGANModel(TINY["sagan"]()).save_pretrained(tmp_path)
    weights, config = tmp_path / "model.safetensors", tmp_path / "config.json"
    if damage == "truncate":
        with open(weights, "r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif damage == "garbage":
        weights.write_bytes(b"\x00" * 64)
    elif damage == "delete_weights":
        weights.unlink()
    else:
        config.write_text("{not json")
    with pytest.raises(CheckpointError) as raised:
        AutoModel.from_pretrained(tmp_path) if damage != "bad_json" else em.SAGANModel.from_pretrained(tmp_path)
    message = str(raised.value)
    assert str(config if damage == "bad_json" else weights) in message or str(tmp_path) in message


def test_checkpoint_of_another_model_type_is_refused(tmp_path):
    em.CycleGANModel(TINY["cyclegan"]()).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="expr-cyclegan"):
        em.SAGANModel.from_pretrained(tmp_path)


def test_incomplete_checkpoint_is_refused_not_half_random(tmp_path):
    from safetensors.torch import load_file, save_file

    em.ExpressionClassifier(TINY["classifier"]()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop(next(iter(weights)))
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="lacks 1 weights"):
        em.ExpressionClassifier.from_pretrained(tmp_path)


def test_hub_ids_fail_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="Hub"):
        em.CycleGANModel.from_pretrained("expr-models/cyclegan-that-is-not-cached")


def test_push_to_hub_fails_clearly_offline(monkeypatch, tmp_path):
    # An endpoint on loopback that nothing listens on: the push cannot reach any server.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_dummy_token_for_an_unreachable_endpoint")
    model = em.ExpressionClassifier(TINY["classifier"]())
    with pytest.raises(HubUnavailableError, match="unreachable"):
        model.push_to_hub("someone/expr-classifier", private=True)


@pytest.mark.parametrize("make_config, message", [
    (lambda: em.CycleGANConfig(resolution=100, n_downsampling=3), "divisible"),
    (lambda: em.CycleGANConfig(gan_loss="hinge"), "gan_loss"),
    (lambda: em.CycleGANConfig(in_channels=2), "in_channels"),
    (lambda: em.CycleGANConfig(mask_region="eyes"), "mask_region"),
    (lambda: em.CycleGANConfig(mask_region="lower_face", attention_mask=False), "needs attention_mask"),
    (lambda: em.SAGANConfig(objective="hinge"), "objective"),
    (lambda: em.SAGANConfig(resolution=48, discriminator_layers=5), "divisible"),
    (lambda: em.FaceSegmenterConfig(backbone="vgg11"), "backbone"),
    (lambda: em.StyleFeatureConfig(architecture="alexnet"), "architecture"),
])
def test_bad_configs_fail_with_a_clear_message(make_config, message):
    with pytest.raises(Exception, match=message):
        make_config()


def test_sagan_accepts_names_indices_and_soft_labels():
    model = em.SAGANModel(TINY["sagan"]()).eval()
    pixel_values = make_input(model.config, batch=2)
    by_name = model.generate(pixel_values, "happy")
    by_index = model.generate(pixel_values, em.EXPRESSIONS.index("happy"))
    soft = torch.zeros(2, len(em.EXPRESSIONS))
    soft[:, em.EXPRESSIONS.index("happy")] = 1
    assert torch.equal(by_name, by_index) and torch.equal(by_name, model.generate(pixel_values, soft))
    with pytest.raises(ValueError, match="not 'bored'"):
        model.generate(pixel_values, "bored")


def test_segmenter_trains_and_detects():
    model = em.FaceSegmenter(TINY["segmenter"]())
    images = [torch.rand(3, 80, 96), torch.rand(3, 64, 64)]
    masks = [torch.zeros(1, 80, 96, dtype=torch.uint8), torch.zeros(1, 64, 64, dtype=torch.uint8)]
    masks[0][:, 20:60, 30:60] = 1
    masks[1][:, 10:40, 10:40] = 1
    targets = [{"boxes": torch.tensor([[30.0, 20, 60, 60]]), "labels": torch.tensor([1]), "masks": masks[0]},
               {"boxes": torch.tensor([[10.0, 10, 40, 40]]), "labels": torch.tensor([1]), "masks": masks[1]}]
    model.train()
    output = model(images, targets)
    assert torch.isfinite(output.loss) and "loss_mask" in output.losses
    faces = model.detect((torch.rand(70, 90, 3) * 255).byte().numpy())
    assert isinstance(faces, list)
    for face in faces:
        assert len(face["box"]) == 4 and face["mask"].shape == (70, 90)


def test_style_features_follow_torchvision_layout():
    import torchvision

    reference = torchvision.models.vgg19(weights=None)
    model = em.StyleFeatureExtractor.from_torchvision_state_dict(reference.state_dict(), "vgg19", "test")
    pixel_values = torch.rand(1, 3, 64, 64)
    normalised = (pixel_values - model.mean) / model.std
    expected = reference.features[:23](normalised)  # up to relu4_2
    torch.testing.assert_close(model(pixel_values, ("relu4_2",))["relu4_2"], expected)
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_style_features_keep_only_the_layers_the_losses_read():
    import torchvision

    reference = torchvision.models.mobilenet_v2(weights=None).eval()
    model = em.StyleFeatureExtractor.from_torchvision_state_dict(reference.state_dict(), "mobilenet_v2", "test")
    assert model.layer_names[-1] == "block13" and len(model.features) == 14  # the deepest default style layer
    pixel_values = torch.rand(1, 3, 64, 64)
    expected = reference.features[:14]((pixel_values - model.mean) / model.std)
    torch.testing.assert_close(model(pixel_values)["block13"], expected)
    deeper = em.StyleFeatureExtractor(em.StyleFeatureConfig(architecture="mobilenet_v2", style_layers=["block17"]))
    assert len(deeper.features) == 18
    with pytest.raises(ValueError, match="Unknown layers"):
        model(pixel_values, ("block17",))


def test_committed_style_features_are_imagenet_mobilenet():
    path = "checkpoints/style_features"
    config = json.load(open(os.path.join(path, "config.json")))
    assert config["architecture"] == "mobilenet_v2" and "IMAGENET1K_V1" in config["weights_source"]
    model = em.StyleFeatureExtractor.from_pretrained(path)
    assert model.dtype == torch.float32


def test_style_transfer_changes_only_the_masked_region_and_lowers_the_loss():
    torch.manual_seed(0)
    features = em.StyleFeatureExtractor(em.StyleFeatureConfig(architecture="mobilenet_v2"))
    content = torch.rand(1, 3, 64, 64)
    style = torch.rand(1, 3, 64, 64).pow(3)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    losses = []
    result = em.run_style_transfer(content, style, features, mask=mask, steps=8, optimizer="adam",
                                   callback=lambda step, total, loss: losses.append(loss))
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert torch.equal(result * (1 - mask), content * (1 - mask))
    assert (result - content).abs()[..., 16:48, 16:48].mean() > 0
    with pytest.raises(ValueError, match="optimizer"):
        em.run_style_transfer(content, style, features, steps=1, optimizer="sgd")


def test_training_record_survives_an_fp16_export(tmp_path):
    from train.tools.export_checkpoint import main as export

    model = em.CycleGANModel(TINY["cyclegan"]())
    model.card_info = {"training_data": "generated faces", "training": "3 steps on CPU."}
    model.save_pretrained(tmp_path / "run")
    (tmp_path / "report.md").write_text("## Evaluation\n\n| metric | value |\n|---|---|\n| success | 90% |\n")
    assert export([str(tmp_path / "run"), str(tmp_path / "ckpt"), "--fp16", "--note", "Took 1 minute.",
                   "--evaluation", str(tmp_path / "report.md")]) == 0
    exported = AutoModel.from_pretrained(tmp_path / "ckpt")
    assert exported.discriminator_x is None and exported.dtype == torch.float32
    assert exported.card_info["training"] == "3 steps on CPU. Took 1 minute."
    card = (tmp_path / "ckpt" / "README.md").read_text()
    assert "generated faces" in card and "| success | 90% |" in card
    assert f'from_pretrained("{tmp_path / "ckpt"}")' in card  # the destination, not the staging folder
    pixel_values = make_input(model.config)
    torch.testing.assert_close(exported.generate(pixel_values), model.eval().generate(pixel_values), atol=2e-2,
                               rtol=0)


def test_an_int8_export_loads_back_within_a_step_of_each_weight(tmp_path):
    from safetensors import safe_open

    from expr_models.errors import CheckpointError
    from expr_models.models.modeling_utils import INT8_SCALE_SUFFIX, quantize_weights
    from train.tools.export_checkpoint import main as export

    torch.manual_seed(0)
    model = em.ExpressionClassifier(TINY["classifier"]()).eval()
    model.save_pretrained(tmp_path / "run")
    assert export([str(tmp_path / "run"), str(tmp_path / "fp16"), "--fp16"]) == 0
    assert export([str(tmp_path / "run"), str(tmp_path / "int8"), "--fp16", "--int8"]) == 0
    sizes = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("fp16", "int8")}
    assert sizes["int8"] < 0.8 * sizes["fp16"]  # the tiny model's small layers stay fp16
    with safe_open(str(tmp_path / "int8" / "model.safetensors"), framework="pt") as handle:
        stored = {name: handle.get_tensor(name) for name in handle.keys()}
    int8 = [name for name, tensor in stored.items() if tensor.dtype == torch.int8]
    assert int8 and all(name + INT8_SCALE_SUFFIX in stored for name in int8)
    loaded = AutoModel.from_pretrained(tmp_path / "int8")
    assert loaded.dtype == torch.float32
    original, back = dict(model.named_parameters()), dict(loaded.named_parameters())
    for name in int8:  # each weight within half a step (its channel's largest / 127) of the original, plus fp16's
        step = original[name].detach().abs().flatten(1).amax(1) / 127  # rounding of the weight before it
        error = (back[name] - original[name]).detach().abs().flatten(1).amax(1)
        assert bool((error <= 0.6 * step).all()), name
    pixel_values = make_input(model.config)
    torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits, atol=0.05, rtol=0)
    assert "stored as int8" in (tmp_path / "int8" / "README.md").read_text()
    nested = AutoModel.from_pretrained(tmp_path, subfolder="int8")  # as from an editor repo's folder
    torch.testing.assert_close(nested(pixel_values).logits, loaded(pixel_values).logits)
    assert export([str(tmp_path / "int8"), str(tmp_path / "again"), "--fp16"]) == 0  # back to fp16, note gone
    assert "stored as int8" not in (tmp_path / "again" / "README.md").read_text()
    # a scale for a weight the model does not have is a broken checkpoint, said so
    quantize_weights(tmp_path / "fp16" / "model.safetensors")
    from safetensors.torch import load_file, save_file
    tensors = load_file(tmp_path / "fp16" / "model.safetensors")
    tensors["nowhere.weight" + INT8_SCALE_SUFFIX] = torch.ones(3, dtype=torch.float16)
    save_file(tensors, tmp_path / "fp16" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="nowhere.weight"):
        AutoModel.from_pretrained(tmp_path / "fp16")


def test_self_attention_matches_the_sagan_formula():
    """The padded fused-SDPA path must give softmax(q k^T / sqrt(K)) v exactly as written out."""
    from expr_models.models.layers import SelfAttention2d

    torch.manual_seed(0)
    attention = SelfAttention2d(32)
    attention.gamma.data.fill_(0.7)
    x = torch.randn(2, 32, 8, 6)
    with torch.no_grad():
        query = attention.query(x).flatten(2).transpose(1, 2)
        key = attention.key(x).flatten(2).transpose(1, 2)
        value = attention.value(x).flatten(2).transpose(1, 2)
        weights = torch.softmax(query @ key.transpose(1, 2) / query.shape[-1] ** 0.5, dim=-1)
        expected = x + 0.7 * (weights @ value).transpose(1, 2).reshape(x.shape)
        torch.testing.assert_close(attention(x), expected, atol=1e-5, rtol=1e-5)
    # With gradients (training), the same values and a double backward, as WGAN-GP's gradient penalty takes.
    x.requires_grad_(True)
    output = attention(x)
    torch.testing.assert_close(output.detach(), expected, atol=1e-5, rtol=1e-5)
    (gradient,) = torch.autograd.grad(output.square().sum(), x, create_graph=True)
    gradient.square().sum().backward()


def test_pretrained_feature_discriminator_keeps_its_trunk_frozen():
    from expr_models.models.layers import PretrainedFeatureDiscriminator
    from expr_models.models.style_transfer import StyleFeatureExtractor, StyleFeatureConfig

    discriminator = PretrainedFeatureDiscriminator(in_channels=1, head_channels=8)
    assert all(name.startswith("heads.") for name, _ in discriminator.named_parameters())
    imagenet = StyleFeatureExtractor(StyleFeatureConfig(architecture="mobilenet_v2"))
    discriminator.load_trunk(imagenet.features.state_dict())
    torch.testing.assert_close(discriminator.trunk[5].conv[0][0].weight, imagenet.features[5].conv[0][0].weight)
    discriminator.train()
    assert not discriminator.trunk.training and discriminator.heads.training
    image = torch.rand(2, 1, 64, 64, requires_grad=True)
    logits = discriminator(image * 2 - 1)
    assert logits.shape == (2, 16 * 16 + 8 * 8 + 4 * 4)
    logits.mean().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0  # the generator gets a gradient through the trunk
    with pytest.raises(ValueError, match="lack"):
        discriminator.load_trunk({})
    config = em.CycleGANConfig(discriminator_type="pretrained_features", resolution=64, generator_channels=8,
                               discriminator_channels=8)
    model = em.CycleGANModel(config)
    assert isinstance(model.discriminator_of("happy"), PretrainedFeatureDiscriminator)
    assert model.without_discriminators().discriminator_x is None


def test_lower_face_cyclegan_never_changes_the_upper_face(tmp_path):
    """mask_region=lower_face copies the rows above the window through exactly, also after an fp16 save and load at
    another resolution (the window is rebuilt from the config, never read from uninitialised buffers)."""
    from expr_models.models.cyclegan import LOWER_FACE_WINDOW

    model = em.CycleGANModel(TINY["cyclegan"]())
    model.config.mask_region = "lower_face"
    model = em.CycleGANModel(model.config).eval()
    model.without_discriminators().half().save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).float().eval()
    for resolution in (64, 128):
        faces = make_input(loaded.config, resolution=resolution)
        for target in ("happy", "neutral"):
            edited = loaded.generate(faces, to=target)
            top = int(resolution * LOWER_FACE_WINDOW[0])
            assert torch.equal(edited[..., :top, :], faces[..., :top, :])
            assert (edited[..., -resolution // 4:, :] - faces[..., -resolution // 4:, :]).abs().mean() > 1e-3


def test_classifier_flip_average_and_eval_layout():
    torch.manual_seed(0)
    config = em.ExpressionClassifierConfig(resolution=16, widths=(4, 8), architecture="resnet", blocks=(1, 1),
                                           flip_average=True, temperature=0.5, class_bias=[0.1] * 7)
    model = em.ExpressionClassifier(config).eval()
    assert model.features[1].conv1[0].weight.is_contiguous(memory_format=torch.channels_last)  # oneDNN's path
    pixel_values = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        logits = model(pixel_values).logits
        raw = lambda x: model.head(model.features(x))  # noqa: E731
        expected = ((raw(pixel_values) + raw(pixel_values.flip(-1))) / 2 + 0.1) / 0.5
        assert torch.allclose(logits, expected, atol=1e-5)
        assert torch.allclose(model(pixel_values.flip(-1)).logits, logits, atol=1e-5)  # mirror-symmetric
        model.config.flip_average = False
        assert torch.allclose(model(pixel_values).logits, (raw(pixel_values) + 0.1) / 0.5, atol=1e-5)
