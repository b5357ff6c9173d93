"""The editor's models: which checkpoints a folder holds, and each component loaded on first use, then cached."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch

from ..components import COMPONENT_BY_MODEL_TYPE, model_class
from ..errors import CheckpointError, HubUnavailableError

logger = logging.getLogger(__name__)


def find_checkpoints(models_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """The checkpoints in ``models_dir`` (``<models_dir>/<name>/config.json``), grouped by component, by name."""
    found: dict[str, list[Path]] = {}
    root = Path(models_dir)
    if not root.is_dir():
        return found
    for config_file in sorted(root.glob("*/config.json")):
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except (OSError, ValueError) as error:
            logger.warning("Skipping %s: %s", config_file, error)
            continue
        if model_type in COMPONENT_BY_MODEL_TYPE:
            found.setdefault(COMPONENT_BY_MODEL_TYPE[model_type], []).append(config_file.parent)
    return found


class ModelStore:
    """Every component's sources (local folders, Hub ids or ready model objects) and the models loaded from them.

    ``models`` maps a component to a source or a list of them; components not named there are found in
    ``models_dir`` (:func:`find_checkpoints`). Loading is thread-safe and happens once per model.
    """

    def __init__(self, models_dir: str | os.PathLike | None, device: torch.device,
                 models: dict[str, Any] | None = None):
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.device = device
        found = find_checkpoints(self.models_dir) if self.models_dir is not None else {}
        self.sources: dict[str, list[Any]] = {name: list(paths) for name, paths in found.items()}
        for name, value in (models or {}).items():
            if name not in COMPONENT_BY_MODEL_TYPE.values():
                raise ValueError(f"Unknown model component {name!r}; expected one of "
                                 f"{sorted(COMPONENT_BY_MODEL_TYPE.values())}")
            self.sources[name] = list(value) if isinstance(value, (list, tuple)) else [value]
        self._loaded: dict[tuple[str, int], Any] = {}
        self._configs: dict[tuple[str, int], Any] = {}
        self.lock = threading.RLock()

    def count(self, component: str) -> int:
        """How many checkpoints of ``component`` there are (CycleGAN may have several, one per pair of domains)."""
        return len(self.sources.get(component) or [])

    def model(self, component: str, index: int = 0) -> Any:
        """The loaded model of a component (loaded on first use, then cached)."""
        key = (component, index)
        if key in self._loaded:
            return self._loaded[key]
        with self.lock:
            if key not in self._loaded:
                sources = self.sources.get(component) or []
                if index >= len(sources):
                    if component == "style_features" and index == 0:
                        from ..models.style_transfer import load_feature_extractor

                        # Its error says how to get ImageNet features offline.
                        self._loaded[key] = load_feature_extractor(self.models_dir, device=self.device)
                        return self._loaded[key]
                    raise CheckpointError(self.missing_message(component))
                self._loaded[key] = self._load(component, sources[index])
            return self._loaded[key]

    def missing_message(self, component: str) -> str:
        where = f"in {self.models_dir}" if self.models_dir is not None else "among the given models"
        return (f"No {component} checkpoint {where}. Train one (see train/) or point models_dir at a folder of "
                f"checkpoints, e.g. checkpoints/{component}/config.json + model.safetensors.")

    def _load(self, component: str, source: Any) -> Any:
        if isinstance(source, (str, os.PathLike)):
            model = model_class(component).from_pretrained(source)  # a local folder or a Hub id
        else:
            model = source  # a ready model object
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        return model

    def config(self, component: str, index: int = 0) -> Any:
        """A component's config without loading its weights (for the targets a checkpoint supports)."""
        key = (component, index)
        if key in self._loaded:
            return self._loaded[key].config
        if key not in self._configs:
            source = self.sources[component][index]
            if not isinstance(source, (str, os.PathLike)):
                return source.config
            try:
                self._configs[key] = model_class(component).config_class.from_pretrained(source)
            except Exception as error:  # noqa: BLE001
                if not Path(source).exists():
                    raise HubUnavailableError(
                        f"{source} is not a local folder and its {component} config could not be fetched from the "
                        f"Hugging Face Hub (offline, or a wrong id?): {type(error).__name__}: {error}"
                    ) from error
                raise CheckpointError(f"Could not read the {component} config in {source}: {error}") from error
        return self._configs[key]
