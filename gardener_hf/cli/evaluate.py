"""`gardener evaluate`: top-1 / top-5 / mean per-class accuracy of a finetuned VideoMAE classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GardenerError
from . import _common

HELP = "top-1 / top-5 / mean per-class accuracy of a VideoMAE classifier"


def build_parser(prog: str = "gardener evaluate") -> argparse.ArgumentParser:
    p = _common.Parser(prog=prog)
    # evaluate has no default model: a classifier must be finetuned first
    _common.add_source_args(p, model_help="the finetuned VideoMAE classifier: Hub repo id or local folder (required)")
    p.add_argument("data", help="videos: a folder with one subfolder per class, or a CSV/JSON list of (path, label)")
    p.add_argument("--output-dir", default=None, help="write eval_results.json and confusion_matrix.png here")
    p.add_argument("--batch-size", type=_common.positive_int, default=8)
    p.add_argument("--clips", type=_common.positive_int, default=1, help="clips per video (softmax averaged)")
    p.add_argument("--sampling", default="start", choices=["start", "uniform"], help="where clips are taken")
    p.add_argument("--frame-stride", type=_common.positive_int, default=4)
    p.add_argument("--num-workers", type=int, default=-1, help="DataLoader workers (default: CPUs - 1, at most 8)")
    p.add_argument("--strict", action="store_true", help="an unreadable video is an error, not skipped")
    return p


def run(args: argparse.Namespace) -> int:
    from ..training import evaluate_model, format_metrics_table

    if args.model is None:
        raise GardenerError("give the model to evaluate (a finetuned VideoMAE classifier)")
    if args.output_dir is not None and Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise GardenerError(f"--output-dir {args.output_dir} is a file, not a folder")
    metrics = evaluate_model(
        args.model, args.data, output_dir=args.output_dir, revision=args.revision, token=args.token,
        batch_size=args.batch_size, num_clips=args.clips, sampling=args.sampling, frame_stride=args.frame_stride,
        num_workers=args.num_workers, strict=args.strict, progress=not args.quiet,
    )
    print(format_metrics_table(metrics, metrics["labels"]))
    skipped = metrics["data"]["skipped"]
    if skipped:
        print(f"{len(skipped)} unreadable videos skipped: " + ", ".join(s["path"] for s in skipped))
    if args.output_dir:
        print(f"wrote {Path(args.output_dir) / 'eval_results.json'}")
    return 0


def main(argv=None, prog: str = "gardener evaluate") -> int:
    """Entry point of `gardener evaluate`."""
    return _common.command_main(build_parser, run, argv, prog)
