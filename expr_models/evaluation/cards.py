"""``expr-models cards FOLDER [--evaluation evaluation.json]``: rewrite the cards of saved model folders, with an
evaluation's numbers as EvalResults and its report as the card's.

It lives here, above ``hub`` (whose card writers it calls) and beside ``report`` (which rebuilds the tables from the
JSON): the hub layer never imports the evaluation, which imports the editor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..components import COMPONENT_BY_MODEL_TYPE
from ..hub.cards import CARD_INFO_FILE, eval_results_from_report, write_model_card
from ..hub.editor_repo import write_editor_card
from .report import markdown_report


def add_cards_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cards", help="rewrite the cards of saved model folders (the weights stay as they are)",
        description="Rewrite README.md (and LICENSE.md, model_card.json) of every model folder in FOLDER, and the "
                    "editor card and model_index.json, from config.json and model_card.json.")
    parser.add_argument("folder", type=Path, help="an editor folder (e.g. checkpoints) or one model folder")
    parser.add_argument("--evaluation", type=Path,
                        help="evaluate's evaluation.json: its numbers go in as EvalResults, and the evaluation.md "
                             "beside it as the card's report")
    parser.set_defaults(func=run_cards)


def run_cards(args: Any) -> int:
    report = json.loads(args.evaluation.read_text()) if args.evaluation else None
    if report is not None:
        markdown = args.evaluation.with_suffix(".md")  # evaluate writes both; else rebuild the tables from the JSON
        if markdown.is_file():
            report_text = markdown.read_text()
        else:
            report_text = markdown_report(report)
    folders = [args.folder] if (args.folder / "config.json").is_file() else sorted(
        path.parent for path in args.folder.glob("*/config.json"))
    for folder in folders:
        info_file = folder / CARD_INFO_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        if report is not None:
            component = COMPONENT_BY_MODEL_TYPE[json.loads((folder / "config.json").read_text())["model_type"]]
            results = eval_results_from_report(report, component, folder.name)
            if results:
                info["eval_results"] = results
                info["evaluation"] = report_text  # the card's copy of the report, of the same run
        write_model_card(folder, info, repo_id=str(folder))  # the snippet loads this folder, as printed
        print(f"wrote {folder / 'README.md'}")
    if folders and folders[0] != args.folder:
        write_editor_card(args.folder, repo_id=str(args.folder))
        print(f"wrote {args.folder / 'README.md'} and {args.folder / 'model_index.json'}")
    return 0
