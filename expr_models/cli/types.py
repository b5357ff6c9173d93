"""Argument types shared by the command lines (``python -m expr_models edit`` and ``evaluate``)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
