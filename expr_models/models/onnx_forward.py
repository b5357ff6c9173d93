"""A faster CPU forward for the networks every edit runs: the same weights as an ONNX graph, run by onnxruntime.

On a 2-core CPU onnxruntime runs these small convolutional networks 1.3 to 3 times faster than torch's eager forward,
both on one thread (`python benchmarks/onnx_speed.py`). A checkpoint folder may hold its network's graph as
``model.onnx`` beside ``model.safetensors``: ``python -m train.tools.export_onnx`` writes it, with its weights read
from that very file (ONNX external data: nothing is copied), and records the file's SHA-256 in it. ``from_pretrained``
attaches the graph only where that hash matches the weights it loaded; a stale or unreadable graph is skipped with a
warning, and the model runs on torch as before.

torch's forward still runs wherever the graph would not give the same numbers or could not serve: in training, with
gradients, on a GPU, and once a weight has been changed or moved since loading. Under autocast (bf16 on CPUs that have
it) torch runs too, unless the caller asked for the fastest arithmetic rather than bf16's (:func:`serve_under_autocast`,
the editor's ``precision="auto"``): on such CPUs the fp32 graphs of the networks an edit runs under autocast were as
fast as torch's bf16 forwards or faster.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

ONNX_FILE = "model.onnx"
WEIGHTS_HASH_KEY = "weights_sha256"  # in the graph's metadata: the SHA-256 of the model.safetensors it was made from
# One thread, as the editor's cap for the torch networks (expr_models.pipeline): two would fight a busy core.
THREADS = 1

logger = logging.getLogger(__name__)

# Set by serve_under_autocast(); a context variable, so each thread (each Space request) has its own.
_SERVE_UNDER_AUTOCAST = contextvars.ContextVar("serve_under_autocast", default=False)


@contextlib.contextmanager
def serve_under_autocast():
    """Within the block, graphs serve under autocast as well: for callers who want speed, not bf16's numbers.

    On a CPU with native bf16 (avx512_bf16) the graphs ran the face mesh, brows, eyes and lower face 1.6-2.4x faster
    than torch's bf16 forward and the mouths 1.1-1.2x faster (``benchmarks/onnx_speed.py``), with fp32's numbers."""
    token = _SERVE_UNDER_AUTOCAST.set(True)
    try:
        yield
    finally:
        _SERVE_UNDER_AUTOCAST.reset(token)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxForward:
    """One network's graph in an onnxruntime session, bound to the parameters of the torch module it was made from:
    :meth:`serves` says whether it may stand in for that module's forward now."""

    def __init__(self, session, module: nn.Module):
        self.session = session
        self.input_names = [node.name for node in session.get_inputs()]
        self._module = module
        self._parameters = list(module.parameters())
        self._state = self._parameter_state()

    def _parameter_state(self) -> list[tuple]:
        # An in-place change (an optimiser step, load_state_dict) bumps a tensor's version; .to() gives new storage.
        return [(parameter._version, parameter.data_ptr(), parameter.device.type, parameter.dtype)
                for parameter in self._parameters]

    @classmethod
    def load(cls, folder: str | os.PathLike, module: nn.Module,
             weights_file: str | os.PathLike) -> "OnnxForward | None":
        """The graph ``folder/model.onnx`` for ``module``, or None where there is none, no onnxruntime, or the graph
        cannot serve these weights (a warning says why)."""
        path = Path(folder) / ONNX_FILE
        if not path.is_file():
            return None
        try:
            import onnxruntime
        except ImportError:
            return None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        again = f"export it again: python -m train.tools.export_onnx {Path(folder).parent}"
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - a broken graph costs speed, never the edit
            # (a graph left beside retrained weights may point past the end of the new file)
            logger.warning("%s could not be read (%s); the model runs on torch (%s).", path, error, again)
            return None
        recorded = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_HASH_KEY)
        if recorded != file_sha256(weights_file):
            logger.warning("%s was exported from other weights than %s; the model runs on torch (%s).", path,
                           weights_file, again)
            return None
        return cls(session, module)

    def __reduce__(self):
        # A session cannot be copied or pickled: a copied model runs on torch.
        return type(None), ()

    def serves(self) -> bool:
        """True where the graph gives what the module's forward would: evaluation, no gradients, no autocast (but see
        :func:`serve_under_autocast`), and the parameters as they were loaded (float32, on the CPU, unchanged)."""
        if self._module.training or torch.is_grad_enabled():
            return False
        if torch.is_autocast_enabled("cpu") and not _SERVE_UNDER_AUTOCAST.get():
            return False
        return self._parameter_state() == self._state

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: np.ascontiguousarray(tensor.detach().cpu().numpy(), np.float32)
                for name, tensor in zip(self.input_names, inputs)}
        return [torch.from_numpy(output) for output in self.session.run(None, feed)]
