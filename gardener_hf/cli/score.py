"""`gardener score`: score every block from the weights alone and print a table (or JSON)."""

from __future__ import annotations

import argparse
import json

from . import _common

HELP = "score every block (from the weights alone, or from --calibration inputs) and print a table"


def build_parser(prog: str = "gardener score") -> argparse.ArgumentParser:
    p = _common.Parser(prog=prog)
    _common.add_source_args(p)
    _common.add_criterion_args(p)
    p.add_argument("--keep", type=_common.integer, default=None, help="mark which blocks --keep K would keep")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    return p


def run(args: argparse.Namespace) -> int:
    from ..constants import EMBEDDED_DEFAULT
    from ..scoring import score_pretrained

    model_id = args.model or EMBEDDED_DEFAULT
    if args.model is None:
        _common.logger.info("no model given: using the embedded default %s", EMBEDDED_DEFAULT)
    scores = score_pretrained(
        model_id, args.criterion, revision=args.revision, token=args.token, progress=not args.quiet,
        **_common.calibration_params(args), **_common.score_params(args),
    )
    if args.protect:
        scores = scores.protect(args.protect)
    kept = scores.kept_blocks(args.keep) if args.keep is not None else None
    if args.json:
        doc = scores.to_dict()
        if kept is not None:
            doc["keep"] = args.keep
            doc["kept_blocks"] = kept
        print(json.dumps(doc, indent=2))
        return 0
    ranks = scores.ranks()
    header = f"{'block':>5}  {'score':>12}  {'rank':>4}" + ("  status" if kept is not None else "")
    print(f"{model_id}: {scores.criterion} (prunes {scores.prune_first} first)"
          + (f", on {scores.params['calibration']}" if "calibration" in scores.params else "")
          + (f", protecting {scores.protected}" if scores.protected else ""))
    print(header)
    for i, value in enumerate(scores.scores):
        line = f"{i:>5}  {value:>12.6f}  {ranks[i]:>4}"
        if kept is not None:
            line += "  " + ("kept" if i in kept else "pruned")
        print(line)
    print("removal order: " + " ".join(str(b) for b in scores.removal_order()))
    return 0


def main(argv=None, prog: str = "gardener score") -> int:
    """Entry point of `gardener score`."""
    return _common.command_main(build_parser, run, argv, prog)
