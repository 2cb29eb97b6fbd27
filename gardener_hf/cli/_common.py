"""What every `gardener` command shares: logging set-up, checked number parsers, and the error boundary.

This is the only place in the package that configures logging: library modules only create loggers.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

from ..errors import GardenerError

logger = logging.getLogger("gardener_hf.cli")

#: exit status of every expected failure (bad input, missing files, ...): one `error:` line on stderr
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def setup_logging(quiet: bool = False, *, fmt: str = "%(message)s") -> None:
    """Log gardener_hf's messages to stderr (warnings only when `quiet`, which also hides progress bars)."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=fmt)
    if quiet:
        import transformers
        from huggingface_hub.utils import disable_progress_bars

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        disable_progress_bars()


def run_guarded(fn: Callable[[], int], *, interrupted: str = "interrupted") -> int:
    """Run a command: an expected failure is one `error:` line and exit status 2, Ctrl-C is 130."""
    try:
        return fn()
    except GardenerError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


def with_flags(message: str, names: Any, flags: dict[str, str] | None = None) -> str:
    """`message` with each field name in `names` written as its command-line flag (`image_size` -> `--image-size`)."""
    flags = flags or {}
    for name in sorted(names, key=len, reverse=True):
        flag = flags.get(name, "--" + name.replace("_", "-"))
        message = re.sub(rf"(?<![\w-]){re.escape(name)}\b", flag, message)
    return message


# -- checked parsers for argparse `type=`: the value is refused while parsing, with the reason


def integer(text: str) -> int:
    """A whole number, range checked later against the model (e.g. `--keep`, `--remove`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (seeds)."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A finite real number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated whole numbers, e.g. `1,3,5`."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block counts like 1,3,5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one block count")
    return values


def json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. `'{"num_static": 0}'`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"num_static\": 0}}', got {text!r}")
    return value


# -- options shared by several commands


def add_source_args(p: argparse.ArgumentParser, revision_flag: str = "--revision") -> None:
    """MODEL, its revision, the Hub token and --quiet."""
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="Hub repo id (e.g. MCG-NJU/videomae-base) or local folder; default: the tiny embedded VideoMAE",
    )
    p.add_argument(revision_flag, dest="revision", default=None, help="Hub revision (branch, tag or commit) of the source model")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached `hf auth login`)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info messages")


def add_criterion_args(p: argparse.ArgumentParser) -> None:
    """--criterion and its parameters."""
    from ..scoring import available_criteria

    criteria = available_criteria()
    p.add_argument(
        "--criterion",
        default="entropy",
        metavar="NAME",
        help="block score: " + "; ".join(f"{k}: {v}" for k, v in criteria.items()) + " (default: entropy)",
    )
    p.add_argument("--bins", type=integer, default=None, help="histogram bins for --criterion entropy-hist (default 1024)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="seed for --criterion random (default 0)")


def add_plan_args(p: argparse.ArgumentParser, *, multi: bool) -> None:
    """--keep / --remove / --remove-ratio (exactly one)."""
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--keep",
        type=integer,
        nargs="+" if multi else None,
        help="keep the K best blocks" + (" (several values: one variant each)" if multi else ""),
    )
    group.add_argument("--remove", type=integer, nargs="+", help="0-based indices of blocks to remove")
    group.add_argument("--remove-ratio", type=float, help="fraction of blocks to remove, e.g. 0.5")


def score_params(args: argparse.Namespace) -> dict[str, Any]:
    """The criterion parameters given on the command line."""
    return {"bins": args.bins, "seed": args.seed}


def command_main(build_parser: Callable[[str], argparse.ArgumentParser], run: Callable[[argparse.Namespace], int],
                 argv: Any, prog: str) -> int:
    """Parse `argv`, set up logging from `--quiet`, and run the command inside the error boundary."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    setup_logging(args.quiet)
    return run_guarded(lambda: run(args))
