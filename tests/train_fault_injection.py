"""Run ``train/cyclegan.py`` with a fault injected, for tests/test_reliability.py (not a test module itself).

    python tests/train_fault_injection.py FAULT [train/cyclegan.py arguments...]

FAULT is one of:

- ``kill-mid-write:N`` -- on the N-th checkpoint save, once accelerate has written the temporary folder, cut its
  ``model.safetensors`` in half (a write the kill interrupted) and SIGKILL this process before the rename;
- ``kill-before-rename:N`` -- on the N-th save, SIGKILL after the files are flushed, just before the rename;
- ``kill-in-final`` -- SIGKILL half-way through writing ``final/model.safetensors``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import accelerate

from train import checkpoints, loop
from train.cyclegan import CycleGANStep


def halve(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
        handle.flush()
        os.fsync(handle.fileno())


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault: str) -> None:
    kind, _, count = fault.partition(":")
    target = int(count or 1)
    calls = {"n": 0}

    if kind == "kill-mid-write":
        original = accelerate.Accelerator.save_state

        def save_state(self, output_dir=None, **kwargs):
            result = original(self, output_dir, **kwargs)
            calls["n"] += 1
            if calls["n"] == target:
                halve(Path(output_dir) / "model.safetensors")
                die()
            return result

        accelerate.Accelerator.save_state = save_state
    elif kind == "kill-before-rename":
        original_fsync = checkpoints._fsync_tree

        def fsync_tree(folder):
            original_fsync(folder)
            calls["n"] += 1
            if calls["n"] == target:
                die()

        checkpoints._fsync_tree = fsync_tree
    elif kind == "kill-in-final":
        from expr_models.models.modeling_utils import ExprPreTrainedModel

        original_save = ExprPreTrainedModel.save_pretrained

        def save_pretrained(self, save_directory, *args, **kwargs):
            result = original_save(self, save_directory, *args, **kwargs)
            halve(Path(save_directory) / "model.safetensors")
            die()
            return result

        ExprPreTrainedModel.save_pretrained = save_pretrained
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    sys.exit(loop.main(CycleGANStep, sys.argv[2:]))
