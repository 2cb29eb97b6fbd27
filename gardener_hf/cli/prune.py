"""`gardener prune`: prune and save a model folder (no card, no push)."""

from __future__ import annotations

import argparse

from . import _common

HELP = "prune and save a model folder (no card, no push)"


def build_parser(prog: str = "gardener prune") -> argparse.ArgumentParser:
    p = _common.Parser(prog=prog)
    _common.add_source_args(p)
    _common.add_criterion_args(p)
    _common.add_plan_args(p, multi=False)
    p.add_argument("--output-dir", required=True, help="folder to write the pruned model to")
    p.add_argument("--overwrite", action="store_true", help="replace --output-dir if it exists")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from .._io import atomic_folder, check_destination
    from ..checkpoint import load_model
    from ..constants import EMBEDDED_DEFAULT, EMBEDDED_NAME
    from ..scoring import score_model
    from ..surgery import apply_plan, make_plan, save_pruned


    model_id = args.model or EMBEDDED_DEFAULT
    out = check_destination(args.output_dir, args.overwrite)
    model = load_model(model_id, revision=args.revision, token=args.token)
    if args.calibration is not None and torch.cuda.is_available():
        model.cuda()  # calibrated criteria run the model; the saved tensors are the same
    scores = score_model(model, args.criterion, progress=not args.quiet, **_common.calibration_params(args),
                         **_common.score_params(args))
    scores.source = args.model or EMBEDDED_NAME
    plan = make_plan(scores, keep=args.keep, remove=args.remove, remove_ratio=args.remove_ratio, protect=args.protect)
    apply_plan(model, plan)
    with atomic_folder(out, overwrite=args.overwrite) as tmp:
        save_pruned(model, tmp, source=model_id, revision=args.revision, token=args.token)
    _common.logger.info("%s -> %s", plan.describe(), out)
    return 0


def main(argv=None, prog: str = "gardener prune") -> int:
    """Entry point of `gardener prune`."""
    return _common.command_main(build_parser, run, argv, prog)
