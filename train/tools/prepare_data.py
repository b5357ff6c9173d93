"""Package a face dataset (or a training recipe) as a Hugging Face ``DatasetDict`` and save it to disk.

    python -m train.tools.prepare_data --source jaffe --out prepared/jaffe --summary
    python -m train.tools.prepare_data --source paper --crop-size 128 --out prepared/paper
    python -m train.tools.prepare_data --source fer2013 --out prepared/fer2013 --push-to-hub me/fer2013 --private

Sources: jaffe, fei, fer2013, ckplus, wider, imagefolder. Recipes: paper (JAFFE+FEI happy/neutral face crops),
paper_fer (paper + FER2013 happy/neutral, upscaled), expressions (7-class JAFFE crops + FER2013 + CK+).
``--root`` defaults to ``../shared/data/<source folder>`` (the whole ``../shared/data`` for recipes).
The data is research-only: a Hub push is always private, and refused without ``--private``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
SOURCES = ("jaffe", "fei", "fer2013", "ckplus", "wider", "imagefolder")
RECIPES = ("paper", "paper_fer", "expressions")
# The original datasets each recipe draws on, for the dataset card.
RECIPE_SOURCES = {"paper": ("jaffe", "fei"), "paper_fer": ("jaffe", "fei", "fer2013"),
                  "expressions": ("jaffe", "fer2013", "ckplus")}
DEFAULT_CROP_SIZE = {"paper": 128, "paper_fer": 128, "expressions": 64}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES + RECIPES)
    parser.add_argument("--root", type=Path, help="source folder (default: ../shared/data/<source>)")
    parser.add_argument("--out", type=Path, help="output folder for save_to_disk (default: prepared/<source>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject/validation splits")
    parser.add_argument("--crop-size", type=int, help="recipes: side of the face crops (paper 128, expressions 64)")
    parser.add_argument("--no-crop", action="store_true", help="recipes: keep whole JAFFE/FEI images, no face crop")
    parser.add_argument("--summary", action="store_true", help="print counts per split and class, and the "
                        "subject-disjointness check")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also push to this PRIVATE Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="required with --push-to-hub (the data is "
                        "research-only; the repo is always created private)")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.private:
        parser.error("--push-to-hub needs --private: this data is research-only and must never be public")
    if args.source == "imagefolder" and args.root is None:
        parser.error("--source imagefolder needs --root")
    if args.crop_size is not None and args.crop_size < 8:
        parser.error("--crop-size must be at least 8")
    return args


def default_root(source: str) -> Path:
    from expr_models.data import SOURCE_DIRS

    return DEFAULT_DATA_ROOT if source in RECIPES else DEFAULT_DATA_ROOT / SOURCE_DIRS[source]


def build(source: str, root: Path, seed: int = 0, crop_size: int | None = None, crop: bool = True, report=None):
    """Build one source or recipe; returns the ``DatasetDict``."""
    from expr_models import data

    if source in RECIPES:
        builder = {"paper": data.build_paper, "paper_fer": data.build_paper_fer,
                   "expressions": data.build_expressions}[source]
        size = crop_size or DEFAULT_CROP_SIZE[source]
        return builder(root, seed=seed, crop_size=size, crop=crop, report=report)
    builder = {"jaffe": data.build_jaffe, "fei": data.build_fei, "fer2013": data.build_fer2013,
               "ckplus": data.build_ckplus, "wider": data.build_wider, "imagefolder": data.build_imagefolder}[source]
    return builder(root, seed=seed, report=report)


class HubPushError(RuntimeError):
    """The push could not be done; the message is one line meant for the user."""


def _hub_connection_errors() -> tuple[type[BaseException], ...]:
    # huggingface_hub raises OfflineModeIsEnabled (a ConnectionError) offline, and its HTTP client's transport
    # errors (httpx2/httpx, requests in older versions) when the endpoint cannot be reached.
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module_name).TransportError)
        except (ImportError, AttributeError):
            pass
    try:
        import requests

        errors += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:
        pass
    return tuple(errors)


def push_private(dsd, repo_id: str, card_text: str) -> str:
    """Push ``dsd`` to a private dataset repo with ``card_text`` as its card; returns the repo URL.

    Refuses a repo that already exists and is public. Raises :class:`HubPushError` with one line on any failure.
    """
    from huggingface_hub import DatasetCard, HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        api = HfApi()
        url = api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
        if not api.repo_info(repo_id, repo_type="dataset").private:
            raise HubPushError(f"{repo_id} exists and is public; refusing to push research-only data there")
        dsd.push_to_hub(repo_id, private=True)
        # Keep the YAML that push_to_hub wrote (features, splits, configs) and put our card text under it.
        pushed = DatasetCard.load(repo_id, repo_type="dataset")
        ours = DatasetCard(card_text)
        metadata = {**pushed.data.to_dict(), **ours.data.to_dict()}
        DatasetCard(f"---\n{_yaml(metadata)}---\n{ours.text}").push_to_hub(repo_id, repo_type="dataset")
        return str(url)
    except HubPushError:
        raise
    except _hub_connection_errors() as error:
        reason = f"{type(error).__name__}: {_first_line(error)}"
        raise HubPushError(f"cannot reach the Hugging Face Hub ({reason})") from None
    except LocalTokenNotFoundError:
        raise HubPushError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as error:
        raise HubPushError(f"the Hugging Face Hub refused the push: {_first_line(error)}") from None


def _yaml(metadata: dict) -> str:
    import yaml

    return yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import datasets

    datasets.disable_progress_bars()  # the summary below is the output
    from expr_models.data import BuildReport, dataset_card, format_counts, subject_disjoint_check

    root = args.root or default_root(args.source)
    out = args.out or REPO_ROOT / "prepared" / args.source
    report = BuildReport(args.source)
    started = time.perf_counter()
    try:
        dsd = build(args.source, root, args.seed, args.crop_size, not args.no_crop, report)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not dsd:
        print(f"error: no usable records under {root}\n{report.summary()}", file=sys.stderr)
        return 1

    out.mkdir(parents=True, exist_ok=True)
    dsd.save_to_disk(str(out))
    sources = RECIPE_SOURCES.get(args.source, (args.source,))
    card = dataset_card(dsd, args.source, sources, report)
    (out / "README.md").write_text(card, encoding="utf-8")
    (out / "build_report.json").write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    elapsed = time.perf_counter() - started

    print(report.summary())
    print(f"saved {sum(len(d) for d in dsd.values())} records to {out} in {elapsed:.1f} s")
    if args.summary:
        print(format_counts(dsd))
        if any("subject" in d.column_names for d in dsd.values()):
            print(subject_disjoint_check(dsd))

    if args.push_to_hub:
        try:
            url = push_private(dsd, args.push_to_hub, card)
        except HubPushError as error:
            print(f"error: push to {args.push_to_hub} failed: {error}; the dataset is saved at {out}", file=sys.stderr)
            return 2
        print(f"pushed to {url} (private)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
