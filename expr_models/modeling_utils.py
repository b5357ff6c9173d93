"""What every model in ``expr_models`` shares: safetensors only, a model card, and clear loading errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from .errors import CheckpointError, HubUnavailableError

CARD_INFO_FILE = "model_card.json"
DATA_TERMS = (
    "The training images are research-only and may not be redistributed: JAFFE, FEI, FER2013, CK+ and WIDER FACE "
    "each have non-commercial, research-only licences. These weights are shared for research on expression editing; "
    "check each dataset's licence before any other use."
)


def _is_connection_error(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) means the Hub could not be reached."""
    names = {"ConnectionError", "ConnectError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "Timeout",
             "ConnectTimeout", "ReadTimeout", "MaxRetryError", "NameResolutionError"}
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ in names or "offline" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False


class ExprPreTrainedModel(PreTrainedModel):
    """Base class: adds a model card to ``save_pretrained`` and turns loading failures into clear errors.

    Set ``model.card_info`` (a dict with any of ``training_data``, ``training``, ``metrics``, ``notes``) before saving
    to put what a user should know into the card.
    """

    base_model_prefix = "model"
    main_input_name = "pixel_values"
    # The card's one-paragraph description of the family; subclasses override it.
    card_summary = "An expression-editing model from expr_models."

    def __init__(self, config, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        self.card_info: dict[str, Any] = {}

    # --- saving -----------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        kwargs["safe_serialization"] = True  # never pickle
        result = super().save_pretrained(save_directory, *args, **kwargs)
        Path(save_directory, "README.md").write_text(self.model_card())
        if self.card_info:  # kept beside the card so a re-save (fp16 export, new metrics) keeps the training record
            Path(save_directory, CARD_INFO_FILE).write_text(json.dumps(self.card_info, indent=2) + "\n")
        return result

    def model_card(self) -> str:
        info = self.card_info or {}
        config = self.config.to_diff_dict()
        config.pop("transformers_version", None)
        lines = [
            "---",
            "library_name: transformers",
            "license: apache-2.0",
            "pipeline_tag: image-to-image" if self.main_input_name == "pixel_values" else "",
            "tags:",
            "- expression-editing",
            f"- {self.config.model_type}",
            "---",
            "",
            f"# {type(self).__name__}",
            "",
            self.card_summary,
            "",
            "## Usage",
            "",
            "```python",
            "import expr_models  # registers the model types with the Auto classes",
            "from transformers import AutoModel",
            "",
            'model = AutoModel.from_pretrained("path/or/hub-id")',
            "```",
            "",
            "## Training data",
            "",
            info.get("training_data", "Not trained on any data yet (random initialisation)."),
            "",
            f"**Terms.** {info.get('terms', DATA_TERMS)}",
            "",
        ]
        if info.get("training"):
            lines += ["## Training", "", str(info["training"]), ""]
        if info.get("metrics"):
            lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in info["metrics"].items()]
            lines.append("")
        if info.get("evaluation"):
            # The evaluation report's own headings start at "##"; nest them under this card's section.
            report = str(info["evaluation"]).replace("\n## ", "\n### ").removeprefix("## Evaluation").strip()
            lines += ["## Evaluation report", "", report, ""]
        if info.get("notes"):
            lines += ["## Notes", "", str(info["notes"]), ""]
        lines += ["## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
        return "\n".join(line for line in lines if line is not None)

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
        return (model, info) if wants_info else model

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        try:
            return super().push_to_hub(repo_id, *args, **kwargs)
        except Exception as error:  # noqa: BLE001
            if _is_connection_error(error):
                raise HubUnavailableError(
                    f"Could not push to the Hub repo {repo_id!r}: the Hugging Face Hub is unreachable (offline?). "
                    "Save locally with save_pretrained(dir) and push later."
                ) from error
            raise


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
    if _is_connection_error(error) or "/" in path:
        return HubUnavailableError(
            f"Could not load {path!r}: it is not a local folder, and the Hugging Face Hub could not be reached or has no "
            f"such repo ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Use a local "
            "checkpoint folder, e.g. checkpoints/<name>, when offline."
        )
    return CheckpointError(f"Could not load {cls.__name__} from {path!r}: {error}")
