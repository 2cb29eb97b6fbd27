"""`gardener pretrain` / `scripts/pretrain.py`: masked-video pretraining on moving digits (the embedded default's recipe)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields

from . import _common

HELP = "masked-video pretraining of a small VideoMAE on generated moving digits (how the embedded default was made)"
#: command-line flags whose spelling differs from the PretrainConfig field (kept as they were)
FLAGS = {"learning_rate": "--lr", "min_learning_rate": "--min-lr", "warmup_ratio": "--warmup-fraction",
         "eval_clips": "--val-clips"}


def build_parser(prog: str = "gardener pretrain") -> argparse.ArgumentParser:
    from ..research import pretrain

    parser = _common.Parser(prog=prog, description=pretrain.__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="folder for the checkpoint, processor, log and plot")
    for f in fields(pretrain.PretrainConfig):
        flag = FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
        kwargs = {"dest": f.name, "default": f.default, "help": f.metadata["help"],
                  "metavar": flag[2:].upper().replace("-", "_")}
        if isinstance(f.default, tuple):
            kwargs.update(nargs=2, type=type(f.default[0]), metavar=("LOW", "HIGH"))
        elif f.name in ("steps", "eval_every", "threads"):
            kwargs["type"] = int
        elif f.name == "digit_subset":
            kwargs["choices"] = ("all", "train", "test")
            del kwargs["metavar"]
        else:
            kwargs["type"] = type(f.default)
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import GardenerError
    from ..research.pretrain import PretrainConfig, pretrain

    names = [f.name for f in fields(PretrainConfig)]
    try:
        cfg = PretrainConfig(**{name: getattr(args, name) for name in names})
    except ValueError as err:
        raise GardenerError(_common.with_flags(str(err), names, FLAGS)) from None
    try:
        _, log = pretrain(cfg, args.output_dir)
    except FloatingPointError as err:
        raise GardenerError(str(err)) from None
    init, final = log["block_scores"]["init"], log["block_scores"]["final"]
    print(f"{log['steps']} steps, {log['clips_seen']} clips in {log['train_seconds'] / 60:.1f} min "
          f"({log['clips_per_second']:.1f} clips/s); held-out loss {log['evals']['val_loss'][0]:.4f} -> "
          f"{log['final_val_loss']:.4f}")
    for key in ("entropy", "kurtosis"):
        print(f"block {key} spread (max - min / std across blocks): init {init[key]['range']:.4f} / "
              f"{init[key]['std']:.4f} -> final {final[key]['range']:.4f} / {final[key]['std']:.4f}")
    print("final entropy per block: " + " ".join(f"{s:.4f}" for s in final["entropy"]["scores"]))
    print(f"saved to {args.output_dir}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "gardener pretrain") -> int:
    """Entry point of `gardener pretrain` and scripts/pretrain.py."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    _common.setup_logging(args.quiet)
    return _common.run_guarded(lambda: run(args))
