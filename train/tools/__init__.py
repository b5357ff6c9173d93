"""Command-line tools around training: data preparation, checkpoint conversion and export, loss plots.

Each runs as ``python -m train.tools.<name> --help``.
"""
