"""``python -m expr_models.evaluation ...``: the same as ``python -m expr_models evaluate ...``."""

import argparse
import sys

from . import cli

parser = argparse.ArgumentParser(prog="python -m expr_models.evaluation", description=cli.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
sys.exit(cli.main(cli.add_arguments(parser).parse_args()))
