"""The `gardener` command: argument parsing only; the work is done by the library.

    gardener score MODEL [--criterion C] [--keep K] [--json]
    gardener prune MODEL --keep K --output-dir DIR
    gardener push  MODEL --keep 2 4 6 [--dry-run --output-dir DIR]   (= scripts/push_pruned.py)
    gardener finetune MODEL --train-dir DIR --eval-dir DIR --output-dir OUT   (= scripts/finetune.py)
    gardener evaluate MODEL DATA [--output-dir DIR]
    gardener study [MODEL] --output-dir DIR   (= scripts/reproduce.py)
    gardener pretrain --output-dir DIR   (= scripts/pretrain.py)

One module per command (`build_parser` + `run`, or `main`), sharing `_common` (logging, checked
number parsers, the error boundary). Errors caused by the input print one line to stderr and exit
with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..constants import EMBEDDED_DEFAULT, EMBEDDED_NAME
from . import evaluate, finetune, pretrain, prune, push, score, study
from ._common import EXIT_ERROR, Parser

#: the embedded default's folder, as gardener_hf 0.1 named it here (also `gardener_hf.EMBEDDED_DEFAULT`)
DEFAULT_MODEL = EMBEDDED_DEFAULT
__all__ = ["COMMANDS", "DEFAULT_MODEL", "EMBEDDED_NAME", "build_parser", "main", "push_main"]

#: subcommand -> its module, in the order `gardener --help` lists them
COMMANDS = {
    "score": score,
    "prune": prune,
    "push": push,
    "finetune": finetune,
    "study": study,
    "evaluate": evaluate,
    "pretrain": pretrain,
}


def build_parser(prog: str = "gardener") -> argparse.ArgumentParser:
    """The top-level parser: `--version`, and the list of subcommands for `--help`."""
    parser = Parser(prog=prog, description="Data-free block pruning of Hugging Face ViTs (Gardener).")
    parser.add_argument("--version", action="version", version=f"gardener_hf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        sub.add_parser(name, help=module.HELP, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "gardener") -> int:
    """Entry point of the `gardener` console script and `python -m gardener_hf`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]].main(argv[1:], prog=f"{prog} {argv[0]}")
    build_parser(prog).parse_args(argv)  # --help / --version exit here; anything else is a usage error
    return EXIT_ERROR


def push_main(argv: Sequence[str] | None = None, prog: str = "push_pruned.py") -> int:
    """Entry point of scripts/push_pruned.py (the same command as `gardener push`)."""
    return push.main(argv, prog=prog)
