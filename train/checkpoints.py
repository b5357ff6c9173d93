"""Checkpoints that resume *exactly* and survive a kill at any moment.

A resumable checkpoint holds the weights, optimisers, schedulers, RNG streams, the step counter, the EMA and per-process
state such as CycleGAN's image pools. Both it and the final model are written into a temporary folder, flushed to
disk and renamed into place (:func:`replace_atomically`): a kill leaves the previous complete folder, never half of a
new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d+)$")


def replace_atomically(temporary: Path, final: Path) -> None:
    """Flush ``temporary`` to disk, then rename it to ``final`` (a folder already there is replaced; a kill in
    between leaves it as ``.old-<name>``, which ``CheckpointManager.clean_stale`` removes)."""
    _fsync_tree(temporary)
    if final.exists():  # the same step saved before (a resumed run passed it again), or a finished run's final/
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(temporary, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, final)
    _fsync_dir(final.parent)


# ----------------------------------------------------------------------------------------------------------------
# State that checkpoints carry besides weights and optimisers


@dataclass
class TrainState:
    """The loop's own counters; registered for checkpointing."""

    step: int = 0
    elapsed_seconds: float = 0.0  # summed over the runs that made up this training (resumes included)

    def state_dict(self) -> dict:
        return {"step": self.step, "elapsed_seconds": self.elapsed_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.elapsed_seconds = float(state.get("elapsed_seconds", 0.0))


class RankLocal:
    """Wraps state that differs between processes (an image pool) so each process gets its own back on resume.

    accelerate writes registered objects from the main process only; ``state_dict`` therefore gathers every
    process's state (it runs on all of them during ``save_state``), and ``load_state_dict`` picks this process's.
    """

    def __init__(self, obj: Any, accelerator):
        self.obj, self.accelerator = obj, accelerator

    def state_dict(self) -> dict:
        from accelerate.utils import gather_object

        return {"per_process": gather_object([self.obj.state_dict()])}

    def load_state_dict(self, state: dict) -> None:
        per_process = state["per_process"]
        self.obj.load_state_dict(per_process[self.accelerator.process_index % len(per_process)])


class EMAState:
    """diffusers' EMAModel, moved back onto the training device after loading."""

    def __init__(self, ema, device):
        self.ema, self.device = ema, device

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state)
        self.ema.to(self.device)


# ----------------------------------------------------------------------------------------------------------------
# Saving, rotating, finding the newest


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (``checkpoint_<step>``) under ``root``, oldest first. Temporary folders are ignored."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


class CheckpointManager:
    """Writes ``<output>/checkpoints/checkpoint_<step>`` atomically and keeps the newest ``total_limit``.

    Every process writes into ``.tmp-checkpoint_<step>`` (accelerate's ``save_state``); when all are done, the main
    process renames it into place, which is atomic. A kill at any moment therefore leaves the newest complete
    checkpoint loadable, at worst with a stale ``.tmp-*`` folder that the next start removes. Old checkpoints are
    deleted only after the new one is in place.

    (accelerate's own ``automatic_checkpoint_naming`` writes in place and deletes the oldest checkpoint *before*
    writing the new one, so with ``total_limit=1`` a kill during a save would leave nothing to resume from.)
    """

    def __init__(self, accelerator, root: Path, total_limit: int):
        self.accelerator, self.root, self.total_limit = accelerator, Path(root), total_limit

    def clean_stale(self) -> None:
        if self.accelerator.is_main_process and self.root.is_dir():
            for path in self.root.glob(".tmp-checkpoint_*"):
                shutil.rmtree(path, ignore_errors=True)
            for path in self.root.glob(".old-checkpoint_*"):
                shutil.rmtree(path, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def latest(self) -> Path | None:
        found = list_checkpoints(self.root)
        return found[-1][1] if found else None

    def save(self, step: int, extra: dict) -> Path:
        accelerator = self.accelerator
        final = self.root / f"checkpoint_{step}"
        temporary = self.root / f".tmp-checkpoint_{step}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(temporary, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (temporary / "trainer_state.json").write_text(json.dumps(extra, indent=2, default=str))
            replace_atomically(temporary, final)
            for _, path in list_checkpoints(self.root)[:-self.total_limit]:
                shutil.rmtree(path, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final


def save_final(model, final_dir: Path) -> None:
    """``save_pretrained`` into a temporary folder, then rename it to ``final_dir``: a kill mid-save leaves the
    previous ``final/`` (or none), never a half-written one that a user would load."""
    temporary = final_dir.with_name(f".tmp-{final_dir.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    replace_atomically(temporary, final_dir)


def push_to_hub(model, repo: str, saved_in: Path | None = None, private: bool = True) -> int:
    """Push the final model; offline (or without rights) print one line and return a non-zero status."""
    from expr_models.errors import HubUnavailableError

    where = f" The model is saved in {saved_in}; push that folder later." if saved_in else ""
    try:
        model.push_to_hub(repo, private=private)
    except HubUnavailableError as error:
        print(f"error: {' '.join(str(error).split())}{where}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - no token, no rights, bad repo id: one line, not a traceback
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"error: could not push to the Hub repo {repo!r} ({type(error).__name__}: {first_line}).{where}",
              file=sys.stderr)
        return 1
    print(f"Pushed the final model to https://huggingface.co/{repo}")
    return 0


def state_dict_hash(state_dict: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    """Flush the checkpoint's files to disk before the rename makes it visible (survives power loss too)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
