"""What every `gardener` command shares: logging set-up, checked number parsers, and the error boundary.

This is the only place in the package that configures logging: library modules only create loggers.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from ..errors import GardenerError, first_line, is_network_error

logger = logging.getLogger("gardener_hf.cli")

#: exit status of every expected failure (bad input, missing files, the Hub, the disk): one `error:` line
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
#: set to 1 to see the traceback of an expected failure (for bug reports)
DEBUG_ENV = "GARDENER_DEBUG"

_OS_HINTS = {
    errno.ENOSPC: "no space left on the device: free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded: free some space or write somewhere else",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.EROFS: "read-only file system: write somewhere else",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "it already exists",
    errno.ENOENT: "no such file or folder",
}


def setup_logging(quiet: bool = False, *, fmt: str = "%(message)s") -> None:
    """Log gardener_hf's messages to stderr (warnings only when `quiet`, which also hides progress bars)."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format=fmt)
    # huggingface_hub logs through a handler of its own: without this its retry lines print twice.
    logging.getLogger("huggingface_hub").propagate = False
    if quiet:
        import transformers
        from huggingface_hub.utils import disable_progress_bars

        from huggingface_hub.utils import logging as hub_logging

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        disable_progress_bars()
        hub_logging.set_verbosity_error()  # "Retrying in 8s" and the like


def describe_error(err: BaseException) -> str | None:
    """One line naming the cause (and the fix) of an expected failure, or None for a bug."""
    if isinstance(err, GardenerError):
        return str(err)
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        return f"the Hub answered {status or 'with an error'}: {first_line(err)}"
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        hint = _OS_HINTS.get(err.errno or -1)
        if hint:
            return f"{where}{hint}"
        if err.errno is None and is_network_error(err):
            return f"lost the connection to the Hub ({first_line(err)}); check the network and run the command again"
        return f"{where}{err.strerror or first_line(err)}"
    if is_network_error(err):
        return f"lost the connection to the Hub ({first_line(err)}); check the network and run the command again"
    if isinstance(err, UnicodeDecodeError):
        return f"a text file is not UTF-8 ({err.reason} at byte {err.start}); save it as UTF-8"
    return None


def run_guarded(fn: Callable[[], int], *, interrupted: str = "interrupted") -> int:
    """Run a command: an expected failure is one `error:` line and exit status 2, Ctrl-C is 130.

    With `GARDENER_DEBUG=1` the traceback of an expected failure is shown too (for bug reports).
    """
    try:
        return fn()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        message = describe_error(err)
        if message is None or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


def with_flags(message: str, names: Any, flags: dict[str, str] | None = None) -> str:
    """`message` with each field name in `names` written as its command-line flag (`image_size` -> `--image-size`)."""
    flags = flags or {}
    for name in sorted(names, key=len, reverse=True):
        flag = flags.get(name, "--" + name.replace("_", "-"))
        message = re.sub(rf"(?<![\w-]){re.escape(name)}\b", flag, message)
    return message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one `error:` line (exit 2), like every other failure."""

    def error(self, message: str):
        one_line_usage_error(self, message)


def one_line_usage_error(parser: argparse.ArgumentParser, message: str):
    print(f"error: {message} (see {parser.prog} --help)", file=sys.stderr)
    sys.exit(EXIT_ERROR)


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


def add_source_args(p: argparse.ArgumentParser, revision_flag: str = "--revision", *, model_help: str | None = None) -> None:
    """MODEL, its revision, the Hub token and --quiet."""
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help=model_help or "Hub repo id (e.g. MCG-NJU/videomae-base) or local folder; default: the tiny embedded VideoMAE",
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
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="seed for --criterion random, and of the calibration draw and masks (default 0)")
    p.add_argument("--calibration", metavar="PATH", default=None,
                   help="unlabeled inputs for block-influence, angular, removal-drift and reconstruction: a folder of "
                        "images or videos, a CSV/JSON manifest, a .pt/.npy/.safetensors file holding pixel_values, or "
                        "'digits' (generated clips, video models)")
    p.add_argument("--calibration-samples", type=positive_int, default=None, metavar="N",
                   help="calibration samples to use (default 32)")
    p.add_argument("--protect", type=int_list, default=None, metavar="I,J",
                   help="0-based blocks to keep whatever the criterion says, e.g. 0,11")


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


def calibration_params(args: argparse.Namespace) -> dict[str, Any]:
    """`calibration=` / `calibration_samples=` for the scoring functions: a loader the model is given to.

    The loader reads `--calibration` when the model is known (its shape, processor and clip length decide
    how): `digits` through `research.synthetic.digit_calibration`, anything else through
    `data.load_calibration`; it carries `spec`, the name the card's Reproduce command shows.
    """
    if args.calibration is None:
        return {"calibration": None, "calibration_samples": args.calibration_samples}
    spec, samples, seed = args.calibration, args.calibration_samples, args.seed or 0
    revision, token = getattr(args, "revision", None), getattr(args, "token", None)

    def load(model: Any):
        if spec == "digits":
            from ..research.synthetic import digit_calibration

            return digit_calibration(model, samples or 32, seed=seed, revision=revision, token=token)
        from ..data import load_calibration

        return load_calibration(spec, model, samples=samples, seed=seed, revision=revision, token=token)

    from pathlib import Path

    from ..data import data_name

    load.spec = spec if spec == "digits" else data_name(str(Path(spec).resolve()))  # type: ignore[attr-defined]
    return {"calibration": load, "calibration_samples": samples}


def command_main(build_parser: Callable[[str], argparse.ArgumentParser], run: Callable[[argparse.Namespace], int],
                 argv: Any, prog: str) -> int:
    """Parse `argv`, set up logging from `--quiet`, and run the command inside the error boundary."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    setup_logging(args.quiet)
    return run_guarded(lambda: run(args))
