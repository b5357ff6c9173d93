"""Command line: ``python -m expr_models <command> ...``.

    python -m expr_models edit photo.jpg photos/ --method cyclegan --to happy --out edited/
    python -m expr_models edit me.jpg --method nst --reference smile.jpg --out edited/ --json

Each command is one ``add_<command>_parser`` + one ``run_<command>`` function; add new ones (e.g. ``evaluate``) to
``COMMANDS``. Exit status: 0 when every input succeeded, 1 when any input failed (the batch goes on), 2 for bad
arguments or a setup problem (missing checkpoint, unknown method or expression).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from ..components import EDITING_METHODS, METHODS, editing_method
from ..errors import ExpressionEditError, ImageLoadError
from ..io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, OUTPUT_FORMATS, photo_metadata, save_image
from ..methods.mesh import MAX_INTENSITY  # the most any method takes; the chosen one's own limit is checked at start
from ..models.mesh_motion import CONTROLS
from ..pipeline import DETECTORS, ExpressionEditor
from .types import positive_int

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
CONTROL_HELP = {"smile": "smile: lifts and widens the mouth corners", "mouth_open": "opens (or closes) the mouth",
                "brows": "raises (or lowers) the brows", "eyes": "opens (or narrows) the eyes"}


# ---------------------------------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------------------------------

def collect_inputs(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, and the images in folders (and their direct subfolders), in a stable order.

    Returns the files and ``(path, error)`` for inputs that do not exist or hold no images.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = [p for p in sorted(path.iterdir()) if _is_image_name(p)]
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                found += [p for p in sorted(sub.iterdir()) if _is_image_name(p)]
            if not found:
                problems.append((raw, f"no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder or its subfolders"))
            files += found
        else:
            problems.append((raw, "no such file or folder"))
    return files, problems


def _is_image_name(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def safe_stem(path: Path, max_length: int = 100) -> str:
    """A file-name stem that cannot leave the output folder: letters, digits, ``._-`` only, no leading dot."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).lstrip(".")[:max_length].strip("_")
    return stem or "image"


class OutputNames:
    """``DIR/<stem><suffix>`` for each input; a repeated stem gets ``-2``, ``-3``, ... (case-insensitively)."""

    def __init__(self, out_dir: Path, suffix: str = ".png"):
        self.out_dir = out_dir.resolve()
        self.suffix = suffix
        self.used: set[str] = set()

    def __call__(self, path: Path) -> Path:
        stem = safe_stem(path)
        name, number = stem, 1
        while name.lower() in self.used:
            number += 1
            name = f"{stem}-{number}"
        self.used.add(name.lower())
        target = (self.out_dir / f"{name}{self.suffix}").resolve()
        if target.parent != self.out_dir:  # belt and braces: safe_stem already prevents this
            raise ValueError(f"Refusing to write outside {self.out_dir}: {target}")
        return target


# ---------------------------------------------------------------------------------------------------------------------
# edit
# ---------------------------------------------------------------------------------------------------------------------

def add_edit_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "edit", help="edit the expression of every face in photos",
        description="Edit the facial expression of every face in each photo; writes OUT/<name>.png (or --format). "
                    "The input's colour profile and EXIF (less the orientation, already applied) are kept.",
    )
    with_reference = " and ".join(name for name, method in EDITING_METHODS.items() if method.needs_reference)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, or folders (their images and those of their direct subfolders)")
    parser.add_argument("--method", choices=METHODS, default="cyclegan",
                        help="editing method: " + ", ".join(f"{name} ({method.label})" for name, method in
                                                            EDITING_METHODS.items()) + " (default: cyclegan)")
    parser.add_argument("--to", dest="target", default=None,
                        help=f"target expression, e.g. happy, neutral, surprise (default: happy; for {with_reference} "
                             "a label only)")
    parser.add_argument("--intensity", type=_intensity, default=1.0,
                        help=f"how much of the edit to apply, 0..1 (default: 1); up to {MAX_INTENSITY:g} for a method "
                             "that moves the face mesh (mesh, and CycleGAN / SA-GAN with mesh generators)")
    for name in CONTROLS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=_control, default=0.0, metavar="X",
                            help=f"-1..1 (default: 0): {CONTROL_HELP.get(name, name)}, on top of the target; for "
                                 "methods that move the face mesh")
    parser.add_argument("--reference", help=f"a photo of a face with the wanted expression (required for "
                                             f"{with_reference})")
    parser.add_argument("--models", default="checkpoints", help="folder of checkpoints (default: checkpoints)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="png",
                        help="output file format: png (default; lossless, so pixels outside the faces stay identical "
                             "to the input), webp or jpg (smaller, lossy)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary of every file on stdout")
    parser.add_argument("--max-faces", type=positive_int, default=10, help="edit at most the N largest faces")
    parser.add_argument("--detector", choices=DETECTORS, default=DETECTORS[0],
                        help="face detector: RetinaFace (default; needs onnxruntime), the embedded Haar cascade "
                             "(needs nothing more) or the trained Mask R-CNN segmenter")
    parser.add_argument("--steps", type=positive_int, default=100, help="optimisation steps for nst (default: 100)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse larger images (default: {DEFAULT_MAX_PIXELS})")
    parser.set_defaults(func=run_edit)


def run_edit(args: argparse.Namespace) -> int:
    log = _logger(args.json)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} exists and is not a folder", file=sys.stderr)
        return EXIT_USAGE
    method = editing_method(args.method)
    if method.needs_reference and not args.reference:
        print(f"error: --method {method.name} needs --reference FACE (a photo with the expression to copy)",
              file=sys.stderr)
        return EXIT_USAGE
    target = args.target if args.target is not None else ("happy" if method.needs_target else None)
    controls = {name: getattr(args, name) for name in CONTROLS}

    editor = ExpressionEditor.from_pretrained(args.models, device=args.device, detector=args.detector,
                                              max_pixels=args.max_pixels, max_faces=args.max_faces,
                                              nst_steps=args.steps)
    # Problems that would fail every file (unknown expression, missing or broken checkpoint) stop the run at once.
    try:
        target = editor.prepare(args.method, target)
    except ExpressionEditError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problem = _setup_problem(editor, method, args.intensity, controls)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # Passed only to a method that takes them (the editor refuses a keyword its method does not know).
    controls = {name: value for name, value in controls.items() if name in method.controls}
    reference = None
    if args.reference:
        try:
            reference = _read_bytes(args.reference)  # read once, decoded per edit
        except ImageLoadError as error:
            print(f"error: --reference: {error}", file=sys.stderr)
            return EXIT_USAGE

    files, problems = collect_inputs(args.inputs)
    records = [{"input": path, "output": None, "error": None} for path in files]
    for path, error in problems:
        print(f"error: {path}: {error}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    names = OutputNames(args.out, suffix="." + args.format)

    # The next photo is decoded and its faces found, and the last one encoded, on helper threads while this one is
    # edited: on two cores the detector and the PNG encoder then share the core the edit leaves (the edit itself runs
    # its networks on one thread). Outputs are still written, logged and reported in input order.
    writes: deque[tuple[dict, Future]] = deque()
    with ThreadPoolExecutor(1, "expr-read") as reader, ThreadPoolExecutor(1, "expr-write") as writer:
        for record, photo in zip(records, _detect_ahead(files, reader, editor)):
            path = record["input"]
            start = time.perf_counter()
            try:
                # Without --json nothing shows the readings: the classifier reads a face only where the method
                # starts from its reading (the SA-GAN, the mesh motion, the average edit).
                result = editor.edit(photo.result(), method=args.method, target=target, intensity=args.intensity,
                                     reference=reference, max_faces=args.max_faces,
                                     read_expressions=args.json or method.reads_expression, read_edited=args.json,
                                     **controls)
                output = names(path)
                record.update(output=str(output), **result.to_dict(), controls=controls)
                writes.append((record, writer.submit(_write, result, output, args.format)))
            except Exception as error:  # noqa: BLE001 - one odd file must not stop the batch; it is still reported
                _fail(record, error)
            record["seconds"] = round(time.perf_counter() - start, 3)
            while len(writes) > 2 or (writes and writes[0][1].done()):  # at most two photos wait to be written
                _finish_write(*writes.popleft(), log)
        while writes:
            _finish_write(*writes.popleft(), log)
    for record in records:
        record["input"] = str(record["input"])
    records = [{"input": path, "output": None, "error": error} for path, error in problems] + records

    failed = sum(record["error"] is not None for record in records)
    if args.json:
        json.dump({"command": "edit", "method": args.method, "target": target, "intensity": args.intensity,
                   "controls": controls, "files": records,
                   "succeeded": len(records) - failed, "failed": failed}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if failed:
        print(f"{failed} of {len(records)} inputs failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _setup_problem(editor: ExpressionEditor, method, intensity: float, controls: dict[str, float]) -> str | None:
    """What in the arguments would fail every photo with this method and these checkpoints, or None."""
    highest = method.max_intensity(editor)
    if intensity > highest:
        return f"--intensity goes up to {highest:g} for --method {method.name}, got {intensity:g}"
    flags = " ".join(f"--{name.replace('_', '-')} {value:g}" for name, value in controls.items() if value)
    if flags and not editor.supported_controls(method.name):
        why = ("its checkpoints' generators move no face mesh" if method.controls
               else "only methods that move the face mesh take them")
        return f"--method {method.name} takes no {flags} ({why}); try --method mesh"
    return None


def _detect_ahead(paths: list[Path], reader: ThreadPoolExecutor, editor: ExpressionEditor) -> Iterator[Future]:
    """Futures of the photos' detections (decoded, faces found), in order, the next one always already under way.
    A file that cannot be read raises from its future, in the edit's ``try``, as it would from the edit."""
    pending = reader.submit(editor.detect, paths[0]) if paths else None
    for index in range(len(paths)):
        current = pending
        pending = reader.submit(editor.detect, paths[index + 1]) if index + 1 < len(paths) else None
        yield current


def _write(result, output: Path, format: str) -> float:
    start = time.perf_counter()
    save_image(result.image, output, format, metadata=photo_metadata(result.original))
    return time.perf_counter() - start


def _finish_write(record: dict, write: Future, log: Callable[[str], None]) -> None:
    try:
        record["write_seconds"] = round(write.result(), 3)
    except Exception as error:  # noqa: BLE001 - a full disk or a vanished folder fails this file, not the batch
        record["output"] = None
        _fail(record, error)
        return
    faces = len(record["faces"])
    log(f"{record['input']} -> {record['output']} ({faces} face{'s' * (faces != 1)}, "
        f"{record['timings']['total']:.2f} s)")
    for note in record["notes"]:
        log(f"  note: {note}")


def _fail(record: dict, error: BaseException) -> None:
    if isinstance(error, ExpressionEditError):
        record["error"] = f"{type(error).__name__}: {error}"
        print(f"error: {record['input']}: {error}", file=sys.stderr)
    else:
        record["error"] = f"internal error: {type(error).__name__}: {error}"
        print(f"error: {record['input']}: internal error ({type(error).__name__}: {error})", file=sys.stderr)


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ImageLoadError(f"Could not read {path}: {error}") from error


# ---------------------------------------------------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------------------------------------------------

def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value != value:  # NaN passes every comparison below
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}")
    return value


def _intensity(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= MAX_INTENSITY:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_INTENSITY:g}, got {text}")
    return value


def _control(text: str) -> float:
    value = _number(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between -1 and 1, got {text}")
    return value


def _logger(quiet_stdout: bool) -> Callable[[str], None]:
    # With --json, stdout carries the JSON alone; progress lines go to stderr.
    stream = sys.stderr if quiet_stdout else sys.stdout
    return lambda message: print(message, file=stream, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# evaluate (expr_models.evaluation.cli)
# ---------------------------------------------------------------------------------------------------------------------

def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..evaluation import cli as evaluation_cli

    parser = subparsers.add_parser(
        "evaluate", help="measure the editors on held-out subjects; writes OUT/evaluation.{json,md}",
        description=evaluation_cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluation_cli.add_arguments(parser)
    parser.set_defaults(func=evaluation_cli.main)


# One entry per subcommand: another command (e.g. "evaluate") adds its add_<name>_parser here.
def _hub_parsers(subparsers: argparse._SubParsersAction) -> None:
    from ..evaluation.cards import add_cards_parser
    from ..evaluation.figure import add_figure_parser
    from ..hub.push import add_push_parser
    from ..hub.space_export import add_space_export_parser

    add_push_parser(subparsers)
    add_space_export_parser(subparsers)
    add_cards_parser(subparsers)
    add_figure_parser(subparsers)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_edit_parser, add_evaluate_parser, _hub_parsers]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="expr-models",
                                     description="Facial expression editing with CycleGAN, SA-GAN and style transfer.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bars between our lines
    except ImportError:
        pass
    try:
        return args.func(args)
    except ExpressionEditError as error:  # a setup problem (e.g. a broken checkpoint) outside any one file
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
