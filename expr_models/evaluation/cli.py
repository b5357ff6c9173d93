"""Evaluate the expression editors on held-out subjects, with numbers beyond the study's cycle L1.

    python -m expr_models evaluate --models checkpoints --data prepared/paper prepared/expressions --out results/

Each ``--data`` folder is a ``DatasetDict`` saved by ``python -m train.tools.prepare_data`` (columns ``image``,
``expression``, ``subject``, ``source``); its ``test`` split holds the held-out subjects. For every editor in
``--models`` (found by ``model_type``, as the pipeline finds them) and every target it can produce, the faces of the
other expressions are edited and measured:

- **expression success**: the fraction of edited faces the expression classifier reads as the target, next to its
  *ceiling*, the classifier's recall on real held-out faces of that expression (and its accuracy on all of them);
  also the fraction of the *inputs* it already read as the target (the floor);
- **KID** between real target-expression faces and edited faces, on the classifier's penultimate features;
- **preservation**: SSIM and L1 of the upper face (the top 45% of the aligned crop: eyes, brows, forehead), and on
  whole photos through the pipeline's paste-back, the pixels changed outside the blend mask (should be 0);
- CycleGAN only: the **cycle reconstruction L1** ``mean |x - F(G(x))|``, on [-1, 1] tensors, [0, 1] and [0, 255];
- edits to happy: the **paired error** on FEI, whose subjects each have a neutral and a smiling photo;
- the **paired realism ratio** (:mod:`expr_models.evaluation.realism`): held-out people's whole photos (FEI and London
  Set neutral <-> happy, JAFFE neutral -> each other expression, from ``--raw-data``) edited by the editor with each
  method and the average-edit baseline, the mouth compared with the same person's real photo of the target; skipped,
  with a note, without the raw data;
- on the same edits, **what a person sees**: the face mesh's motion from input to edit against the motion to the real
  photo (gain and cosine), the mouth opening of the edit against the real photo's, the mouth's sharpness (edit over
  input) and the pixels changed outside the blend mask.

A ``--data`` folder of WIDER photos (``prepare_data --source wider``) gets the face-detection evaluation instead:
AP@0.5 of the default RetinaFace detector, the Haar cascade and the trained segmenter
(:mod:`expr_models.evaluation.detection`).

Writes ``OUT/evaluation.json`` and ``OUT/evaluation.md`` (tables to paste into the README). No image is written.

Exit status: 0 when the evaluation ran, and also when it was skipped because the data or the checkpoints are absent
(the message starts with ``skipped:``); 2 for bad arguments, a broken data folder or a broken checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli.types import positive_int
from ..components import METHODS, editing_method
from ..errors import CheckpointError
from ..pipeline import find_checkpoints
from .heldout import EvaluationDataError
from .report import markdown_report, write_results
from .run import DEFAULT_METHODS, log, run_evaluation

EXIT_OK, EXIT_USAGE = 0, 2

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ("prepared/paper", "prepared/expressions")


def default_raw_data() -> Path:
    """``../shared/data`` next to the repository (or next to the working directory for an installed package)."""
    beside_repo = REPO_ROOT.parent / "shared" / "data"
    return beside_repo if (REPO_ROOT / "pyproject.toml").is_file() else Path("..") / "shared" / "data"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--models", type=Path, default=Path("checkpoints"),
                        help="folder of checkpoints, found by model_type (default: checkpoints)")
    parser.add_argument("--data", nargs="+", metavar="DIR",
                        help="DatasetDicts saved by train.tools.prepare_data (default: those of prepared/paper and "
                             "prepared/expressions that exist)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS),
                        help=f"editors to evaluate (default: {' '.join(DEFAULT_METHODS)}; nst is slow; the average "
                             "edit is always the realism ratio's baseline)")
    parser.add_argument("--limit", type=positive_int, help="at most N held-out faces per expression and dataset")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--split", default="test", help="the held-out split (default: test)")
    parser.add_argument("--raw-data", type=Path, default=None,
                        help="the raw data, for whole photos (default: ../shared/data beside the repository)")
    parser.add_argument("--max-photos", type=int, default=20,
                        help="whole photos edited through the pipeline per edit (default: 20; 0 skips the check)")
    parser.add_argument("--realism-pairs", type=int, default=None, metavar="N",
                        help="paired realism ratio: at most N photo pairs per dataset and edit (default: all; "
                             "0 skips it)")
    parser.add_argument("--nst-steps", type=positive_int, default=30, help="NST optimisation steps (default: 30)")
    parser.add_argument("--nst-faces", type=positive_int, default=8, help="faces per NST edit (default: 8)")
    parser.add_argument("--detection-photos", type=positive_int, default=150,
                        help="WIDER validation photos for the face-detection AP (default: 150)")
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the report."""
    parts = ["python -m expr_models evaluate", f"--models {args.models}"]
    if args.data:
        parts.append("--data " + " ".join(map(str, args.data)))
    parts += [f"--out {args.out}", "--methods " + " ".join(args.methods), f"--device {args.device}"]
    if args.limit:
        parts.append(f"--limit {args.limit}")
    if args.split != "test":
        parts.append(f"--split {args.split}")
    if args.raw_data is not None:
        parts.append(f"--raw-data {args.raw_data}")
    if args.max_photos != 20:
        parts.append(f"--max-photos {args.max_photos}")
    if args.realism_pairs is not None:
        parts.append(f"--realism-pairs {args.realism_pairs}")
    if "nst" in args.methods:
        parts.append(f"--nst-steps {args.nst_steps} --nst-faces {args.nst_faces}")
    if args.detection_photos != 150:
        parts.append(f"--detection-photos {args.detection_photos}")
    return " ".join(parts)


def main(args: argparse.Namespace) -> int:
    """Run the ``evaluate`` command; returns the exit status (see the module docstring)."""
    raw_data = args.raw_data if args.raw_data is not None else default_raw_data()
    data_dirs = [Path(d) for d in args.data] if args.data else [Path(d) for d in DEFAULT_DATA if Path(d).is_dir()]
    missing = [d for d in data_dirs if not d.exists()]
    if missing or not data_dirs:
        where = ", ".join(map(str, missing or [Path(d) for d in DEFAULT_DATA]))
        has_raw = raw_data.is_dir()
        log(f"skipped: no prepared data at {where}. " + (
            "Prepare it from the raw data with: python -m train.tools.prepare_data --source paper --out prepared/paper "
            "&& python -m train.tools.prepare_data --source expressions --out prepared/expressions" if has_raw else
            f"The raw data ({raw_data}) is absent too, so there is nothing to evaluate on."))
        return EXIT_OK

    found = find_checkpoints(args.models)
    if not any(found.get(editing_method(method).component) for method in args.methods):
        log(f"skipped: no checkpoint for {', '.join(args.methods)} in {args.models} (expected "
            f"{args.models}/<name>/config.json + model.safetensors; train them with train/ or point --models at them)")
        return EXIT_OK
    if not found.get("classifier"):
        log(f"warning: no expression classifier in {args.models}: success rates, ceilings and KID are left out")

    try:
        results = run_evaluation(args.models, data_dirs, args.methods, args.limit, args.device,
                                 raw_data if raw_data.is_dir() else None, args.split, args.max_photos,
                                 args.nst_steps, args.nst_faces, detection_photos=args.detection_photos,
                                 realism=args.realism_pairs != 0, realism_limit=args.realism_pairs or None)
    except (EvaluationDataError, CheckpointError) as error:
        log(f"error: {error}")
        return EXIT_USAGE
    results["command"] = command_line(args)
    json_path, md_path = write_results(results, args.out)
    print(markdown_report(results))
    log(f"wrote {json_path} and {md_path} ({results['seconds']} s)")
    return EXIT_OK
