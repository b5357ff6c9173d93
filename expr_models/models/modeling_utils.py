"""What every model in ``expr_models`` shares: safetensors only, a model card, and clear loading errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from transformers import PreTrainedModel

from ..errors import CheckpointError, HubUnavailableError, is_connection_error
from .onnx_forward import OnnxForward

CARD_INFO_FILE = "model_card.json"  # the card's record beside the weights, read back into ``card_info`` on loading
WEIGHTS_FILE = "model.safetensors"
# A weight stored as int8 (``quantize_weights``) keeps its name and has its per-output-channel scale beside it.
INT8_SCALE_SUFFIX = "_int8_scale"


class ModelPublisher(Protocol):
    """What saving and pushing a model needs from the Hub side: ``expr_models.hub.push.HubPublisher``, which
    ``expr_models/__init__.py`` registers as :attr:`ExprPreTrainedModel.publisher`. Models do not import publishing."""

    def write_card(self, model: "ExprPreTrainedModel", folder: Path, repo_id: str) -> None: ...

    def push_folder(self, folder: str | os.PathLike, repo_id: str, *, private: bool = True,
                    commit_message: str | None = None, token: str | None = None) -> str: ...


class ExprPreTrainedModel(PreTrainedModel):
    """Base class: adds a model card to ``save_pretrained`` and turns loading failures into clear errors.

    Set ``model.card_info`` (a dict with any of ``training_data``, ``training``, ``metrics``, ``notes``) before saving
    to put what a user should know into the card.
    """

    base_model_prefix = "model"
    main_input_name = "pixel_values"
    # int8 weights' scales (``quantize_weights``) are read by ``from_pretrained`` itself, not by transformers.
    _keys_to_ignore_on_load_unexpected = [INT8_SCALE_SUFFIX + "$"]
    # The card's one-paragraph description of the family; subclasses override it.
    card_summary = "An expression-editing model from expr_models."
    publisher: ClassVar[ModelPublisher | None] = None  # registered by expr_models/__init__.py

    def __init__(self, config, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        self.card_info: dict[str, Any] = {}
        self.onnx_graph: OnnxForward | None = None  # set by from_pretrained where the folder has a matching graph

    def onnx_network(self) -> torch.nn.Module | None:
        """The network an exported ONNX graph may stand in for (tensors in, a tensor or a tuple of them out), or None
        for a model without one (``expr_models.models.onnx_forward``)."""
        return None

    def onnx_example_inputs(self) -> tuple[torch.Tensor, ...]:
        """Inputs of two faces for :meth:`onnx_network`: what the export traces and checks the graph on."""
        raise NotImplementedError(f"{type(self).__name__} has no ONNX network")

    def run_network(self, *inputs: torch.Tensor):
        """``self.onnx_network()(*inputs)``: by the checkpoint's ONNX graph where it serves, else by torch."""
        if self.onnx_graph is not None and self.onnx_graph.serves():
            outputs = self.onnx_graph(*inputs)
            return outputs[0] if len(outputs) == 1 else tuple(outputs)
        return self.onnx_network()(*inputs)

    def copy_with_config(self, **changes: Any) -> "ExprPreTrainedModel":
        """A copy of this model built from its config with ``changes`` (e.g. ``with_discriminator=False``), holding
        the weights it still has, the same card information, device and dtype: how the GANs drop their
        discriminators for small inference checkpoints."""
        model = type(self)(self.config_class(**{**self.config.to_dict(), **changes}))
        model.load_state_dict(self.state_dict(), strict=False)
        model.card_info = dict(self.card_info)
        return model.to(self.device, self.dtype)

    # --- saving -----------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *args, repo_id: str | None = None, **kwargs):
        """transformers' save (safetensors only), then our card: README.md, LICENSE.md and model_card.json.

        ``repo_id``: the Hub id the card's usage snippet loads (default: ``save_directory``). ``push_to_hub=True``
        pushes the saved folder with :meth:`push_to_hub` (private), never with transformers' own push, which would
        replace our card.
        """
        kwargs["safe_serialization"] = True  # never pickle
        push = kwargs.pop("push_to_hub", False)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        self._publisher().write_card(self, Path(save_directory), repo_id or str(save_directory))
        if push:
            self._publisher().push_folder(save_directory, repo_id or Path(save_directory).name, private=True)
        return result

    @classmethod
    def _publisher(cls) -> ModelPublisher:
        if cls.publisher is None:
            raise RuntimeError("No model publisher registered; `import expr_models` registers the Hub's.")
        return cls.publisher

    # --- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        path = str(pretrained_model_name_or_path)
        _check_model_type(cls, Path(path))
        # Checkpoints may be stored in fp16 to stay small; compute in fp32 unless asked otherwise (fp16 is slow on CPU).
        kwargs.setdefault("dtype", torch.float32)
        wants_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                                  **kwargs)
        except CheckpointError:
            raise
        except Exception as error:  # noqa: BLE001 - re-raised with the file named
            raise _loading_error(cls, path, error) from error
        _rescale_int8_weights(model, path, kwargs)
        card_file = Path(path) / CARD_INFO_FILE
        if card_file.is_file():
            try:
                model.card_info = json.loads(card_file.read_text())
            except ValueError as error:
                raise CheckpointError(f"{card_file} is not valid JSON ({error}).") from error
        # transformers fills missing weights with random ones and only warns; a half-random editor is a bug.
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])
            raise CheckpointError(f"{path} lacks {len(missing)} weights of {cls.__name__} (e.g. {missing[:3]}); the "
                                  "checkpoint is incomplete or belongs to another configuration.")
        weights = Path(path) / WEIGHTS_FILE
        if weights.is_file() and model.onnx_network() is not None:
            model.onnx_graph = OnnxForward.load(path, model, weights)
        return (model, info) if wants_info else model

    def push_to_hub(self, repo_id: str, private: bool = True, commit_message: str | None = None,
                    token: str | None = None) -> str:
        """Upload exactly what :meth:`save_pretrained` writes (weights, config, our card) to ``repo_id``.

        Private unless ``private=False``: the weights learned from research-only data (see the card's terms).
        Returns the commit URL. Raises :class:`HubUnavailableError` when the Hub cannot be reached.
        """
        with tempfile.TemporaryDirectory(prefix="expr-push-") as folder:
            self.save_pretrained(folder, repo_id=repo_id)
            return self._publisher().push_folder(folder, repo_id, private=private, commit_message=commit_message,
                                                 token=token)


def quantize_weights(weights_file: str | os.PathLike, min_elements: int = 4096) -> dict[str, int]:
    """Rewrite a saved ``model.safetensors`` with every weight of at least ``min_elements`` (the convolutions' and
    linear layers', 2-D or more) as int8, one fp16 scale per output channel beside it (``name`` + ``_int8_scale``),
    and the rest as they were: a classifier's weights in a quarter of fp32's bytes, half of fp16's.
    ``from_pretrained`` multiplies them back. Returns ``{"quantized": n, "kept": n}``."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights_file)
    stored, quantized = {}, 0
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and tensor.ndim >= 2 and tensor.numel() >= min_elements:
            weight = tensor.float()
            scale = weight.abs().flatten(1).amax(1).clamp_min(1e-12) / 127.0
            scale = scale.half().float()  # the scale as stored, so the rounding below matches loading
            shape = (-1,) + (1,) * (weight.ndim - 1)
            stored[name] = torch.round(weight / scale.view(shape)).clamp(-127, 127).to(torch.int8)
            stored[name + INT8_SCALE_SUFFIX] = scale.half()
            quantized += 1
        else:
            stored[name] = tensor
    save_file(stored, weights_file, metadata={"format": "pt"})
    return {"quantized": quantized, "kept": len(tensors) - quantized}


def _rescale_int8_weights(model: PreTrainedModel, path: str, kwargs: dict) -> None:
    """Multiply the int8 weights (loaded as whole numbers in the model's dtype) by their stored scales."""
    from safetensors import safe_open

    subfolder = kwargs.get("subfolder") or ""
    local = Path(path) / subfolder / WEIGHTS_FILE
    if local.is_file():
        weights_file = local
    else:  # a Hub checkpoint: the file from_pretrained has just cached
        from transformers.utils import cached_file

        weights_file = cached_file(path, WEIGHTS_FILE, subfolder=subfolder, revision=kwargs.get("revision"),
                                   cache_dir=kwargs.get("cache_dir"), token=kwargs.get("token"),
                                   local_files_only=kwargs.get("local_files_only", False),
                                   _raise_exceptions_for_missing_entries=False)
        if weights_file is None:
            return
    with safe_open(str(weights_file), framework="pt") as handle:
        scales = {name[:-len(INT8_SCALE_SUFFIX)]: handle.get_tensor(name) for name in handle.keys()
                  if name.endswith(INT8_SCALE_SUFFIX)}
    if not scales:
        return
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, scale in scales.items():
            if name not in parameters:
                raise CheckpointError(f"{weights_file} holds an int8 scale for {name!r}, which {type(model).__name__} "
                                      "does not have.")
            weight = parameters[name]
            weight.mul_(scale.to(weight.dtype).view((-1,) + (1,) * (weight.ndim - 1)))


def _check_model_type(cls: type, path: Path) -> None:
    """Refuse a local checkpoint of another model type before transformers quietly re-initialises it."""
    config_file = path / "config.json"
    expected = getattr(cls.config_class, "model_type", None)
    if not expected or not config_file.is_file():
        return
    try:
        found = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}).") from error
    if found != expected:
        raise CheckpointError(f"{path} holds a {found!r} checkpoint, not {expected!r} ({cls.__name__}).")


def _loading_error(cls: type, path: str, error: Exception) -> Exception:
    """Explain a failed ``from_pretrained``: which file is broken, or that the Hub is out of reach."""
    local = Path(path)
    if local.is_dir():
        weights = local / "model.safetensors"
        if not (local / "config.json").is_file():
            return CheckpointError(f"{local / 'config.json'} is missing: {local} is not a saved {cls.__name__}.")
        if not weights.is_file() and not list(local.glob("*.safetensors")):
            return CheckpointError(f"No safetensors weights in {local} (expected {weights}).")
        config_file = local / "config.json"
        try:
            json.loads(config_file.read_text())
        except (OSError, ValueError) as json_error:
            return CheckpointError(f"{config_file} is not valid JSON ({json_error}).")
        return CheckpointError(f"Could not load {cls.__name__} from {weights}: the file is corrupt, truncated or of "
                               f"another model type ({type(error).__name__}: {error}).")
    if is_connection_error(error) or "/" in path:
        return HubUnavailableError(
            f"Could not load {path!r}: it is not a local folder, and the Hugging Face Hub could not be reached or has no "
            f"such repo ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Use a local "
            "checkpoint folder, e.g. checkpoints/<name>, when offline."
        )
    return CheckpointError(f"Could not load {cls.__name__} from {path!r}: {error}")
