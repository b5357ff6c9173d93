"""The evaluation of the expression editors (``python -m expr_models evaluate``; see :mod:`.cli` for what it measures).

- :mod:`.heldout`: the held-out faces of a prepared dataset, and the whole photos behind them;
- :mod:`.editors`: each editing method as a :class:`Method`, loaded from a folder of checkpoints;
- :mod:`.run`: one run, every editor on every dataset, measured;
- :mod:`.detection`: the face-detection AP on WIDER FACE;
- :mod:`.realism`: the paired realism ratio of each method on held-out people's whole photos, through the editor,
  and the mesh measures of the same edits (:mod:`.mesh_metrics`: gain, cosine, mouth opening, sharpness);
- :mod:`.report`: the results as JSON and as Markdown tables;
- :mod:`.cli`: the ``evaluate`` command's arguments and ``main``.
"""

from .cli import add_arguments, command_line, main
from .detection import evaluate_detectors, is_detection_dataset
from .editors import Method, average_method, cyclegan_method, load_models, nst_method, sagan_method
from .heldout import EvaluationDataError, Face, HeldOut, load_held_out, to_tensor
from .realism import evaluate_realism
from .report import markdown_report, write_results
from .run import Judge, evaluate_dataset, evaluate_edit, run_evaluation

__all__ = [
    "add_arguments", "command_line", "main",
    "evaluate_detectors", "is_detection_dataset",
    "Method", "average_method", "cyclegan_method", "load_models", "nst_method", "sagan_method",
    "EvaluationDataError", "Face", "HeldOut", "load_held_out", "to_tensor",
    "evaluate_realism", "markdown_report", "write_results",
    "Judge", "evaluate_dataset", "evaluate_edit", "run_evaluation",
]
