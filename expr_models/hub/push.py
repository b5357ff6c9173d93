"""Pushes that keep our cards, and the card writer and pusher the models are given (:class:`HubPublisher`).

Every ``push_to_hub`` (a model's, an editor's, ``expr-models push``) uploads exactly the folder ``save_pretrained``
wrote, with ``HfApi.upload_folder``, to a private repo unless asked otherwise. transformers' own ``push_to_hub`` is
never used: it replaces the card with its template, or with the card already on the Hub.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ExpressionEditError, HubUnavailableError, is_connection_error
from ..models.modeling_utils import ExprPreTrainedModel
from .cards import model_card, write_card_files

logger = logging.getLogger(__name__)

PUBLIC_NOTICE = ("This makes the weights public. They were trained on research-only face data (JAFFE, FEI, FER2013, "
                 "CK+, WIDER FACE: non-commercial research licences); the card and LICENSE.md say so. Publish them "
                 "only where those terms allow it.")


class HubPushError(ExpressionEditError):
    """The Hub refused a push (no token, no rights, a public repo where a private one was asked for)."""


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = True, commit_message: str | None = None,
                token: str | None = None) -> str:
    """Upload every file of ``folder`` as it is to the model repo ``repo_id`` (created if needed); returns the commit
    URL. Private unless ``private=False``; an existing public repo is refused when a private one is asked for."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if not private:
        logger.warning("%s (%s)", PUBLIC_NOTICE, repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if private and not api.repo_info(repo_id).private:
            raise HubPushError(f"{repo_id} exists and is public; refusing to push weights trained on research-only "
                               "data there (push with private=False / --public to publish them on purpose).")
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, ignore_patterns=["__pycache__/*"],
                                   commit_message=commit_message or "Upload with expr_models")
    except HubPushError:
        raise
    except Exception as error:  # noqa: BLE001 - one clear error instead of a stack of HTTP internals
        if is_connection_error(error):
            raise HubUnavailableError(
                f"Could not push to the Hub repo {repo_id!r}: the Hugging Face Hub is unreachable (offline?). The "
                f"folder {folder} is complete; push it later (expr-models push {folder} {repo_id})."
            ) from error
        if isinstance(error, HfHubHTTPError):
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise HubPushError(f"The Hub refused the push to {repo_id!r}: {first_line}") from error
        raise
    return str(commit.commit_url)


class HubPublisher:
    """What :class:`~expr_models.models.modeling_utils.ExprPreTrainedModel` is given for its card and its pushes
    (``expr_models/__init__.py`` registers one): the models do not import publishing, publishing knows the models."""

    def write_card(self, model: ExprPreTrainedModel, folder: Path, repo_id: str) -> None:
        """README.md, LICENSE.md and model_card.json of a model just saved to ``folder``."""
        config = model.config.to_diff_dict()
        config.pop("transformers_version", None)
        card = model_card(type(model).__name__, model.card_summary, config, model.card_info or {}, repo_id)
        write_card_files(folder, card, model.card_info)

    def push_folder(self, folder: str | os.PathLike, repo_id: str, **kwargs: Any) -> str:
        return push_folder(folder, repo_id, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Command line: expr-models push FOLDER REPO [--public]
# ---------------------------------------------------------------------------------------------------------------------

def add_push_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "push", help="upload an editor folder (e.g. checkpoints) or one model folder to a Hub model repo",
        description="Upload FOLDER as it is (its cards included) to the Hub model repo REPO. The repo is private "
                    "unless --public is given: the weights were trained on research-only face data.")
    parser.add_argument("folder", type=Path, help="an editor folder (model_index.json) or a model folder")
    parser.add_argument("repo", help="the Hub repo id, e.g. me/expr-models")
    parser.add_argument("--public", action="store_true",
                        help="make a new repo public; you state that the data terms allow it (they are printed)")
    parser.add_argument("--message", help="the commit message")
    parser.set_defaults(func=run_push)


def run_push(args: Any) -> int:
    import sys

    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    if args.public:
        print(f"note: {PUBLIC_NOTICE}", file=sys.stderr)
    url = push_folder(args.folder, args.repo, private=not args.public, commit_message=args.message)
    print(f"Pushed {args.folder} to {args.repo} ({'public' if args.public else 'private'}): {url}")
    return 0
