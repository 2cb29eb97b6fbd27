"""`gardener study` / `scripts/reproduce.py`: the paper's study on a checkpoint (see gardener_hf.research.study)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from . import _common

HELP = "the paper's study on a checkpoint and data: scores, oracles, rank correlations, pruning sweep"


def add_study_args(p: argparse.ArgumentParser) -> None:
    """The study's options (shared by scripts/reproduce.py and `gardener study`)."""
    from ..research.study.config import StudyConfig

    d = StudyConfig()
    p.add_argument("model", nargs="?", default=None,
                   help="any supported checkpoint (VideoMAE, DINOv2, ViT-MAE, ...): Hub id or local folder "
                        "(default: the embedded default)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of MODEL")
    p.add_argument("--output-dir", required=True, help="study folder: runs are kept here, so a second call resumes")
    p.add_argument("--overwrite", action="store_true", help="discard the runs already in --output-dir and start again")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="your labelled data instead of the generated task: a folder of class subfolders (with train/ and "
                        "validation/ split folders, or --val-fraction), or a .csv/.json/.jsonl manifest (path,label); "
                        "images for an image model, videos for a video model")
    p.add_argument("--eval-data", default=None, metavar="DIR", help="the validation split, when --data holds only training data")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="hold out this fraction of each class of --data for validation (when it has no split)")
    p.add_argument("--max-per-split", type=_common.positive_int, default=None, metavar="N",
                   help="use at most N inputs per split (a seeded, class-balanced draw)")
    p.add_argument("--image-size", type=_common.positive_int, default=None, metavar="PX",
                   help="input side in pixels instead of the processor's (models that interpolate position embeddings, "
                        "e.g. DINOv2)")
    p.add_argument("--oracle", dest="oracles", type=_oracles, default=d.oracles, metavar="ORACLES",
                   help="how block importance is measured, comma-separated: finetune (the paper's), linear-probe, knn "
                        f"(default {','.join(d.oracles)})")
    p.add_argument("--probe-fraction", type=float, default=d.probe_fraction, metavar="F",
                   help=f"share of each class of the training split that each seed's probe and kNN fit on "
                        f"(default {d.probe_fraction:g})")
    p.add_argument("--task", default=d.task, choices=["direction", "moving-digit"], help=f"generated labelled task (default {d.task})")
    p.add_argument("--clip-options", type=_common.json_object, default=d.clip_options, metavar="JSON",
                   help="options of the task's clip function, e.g. '{\"num_static\": 0}' (see gardener_hf.research.synthetic)")
    p.add_argument("--train-clips", type=_common.positive_int, default=d.train_clips, help=f"training clips (default {d.train_clips})")
    p.add_argument("--val-clips", dest="eval_clips", metavar="VAL_CLIPS", type=_common.positive_int, default=d.eval_clips,
                   help=f"validation clips (default {d.eval_clips})")
    p.add_argument("--data-seed", type=int, default=d.data_seed, help=f"seed of the generated clips (default {d.data_seed})")
    p.add_argument("--steps", type=_common.positive_int, default=d.steps, help=f"optimiser steps per finetuning run (default {d.steps})")
    p.add_argument("--batch-size", type=_common.positive_int, default=d.batch_size, help=f"(default {d.batch_size})")
    p.add_argument("--lr", dest="learning_rate", metavar="LR", type=float, default=d.learning_rate,
                   help=f"peak learning rate (default {d.learning_rate:g}, the paper's)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"(default {d.weight_decay:g})")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help=f"(default {d.warmup_ratio:g})")
    p.add_argument("--seeds", type=_common.positive_int, default=d.seeds, help=f"seeds per configuration: a finetune's head initialisation and data order, a probe's share of the "
                        f"training split (default {d.seeds})")
    p.add_argument("--removals", type=_common.int_list, default=d.removals,
                   help="blocks removed in the sweep, comma-separated (default " + ",".join(map(str, d.removals)) + ")")
    p.add_argument("--no-scratch", dest="scratch", action="store_false",
                   help="skip the no-pretraining reference (the unpruned model finetuned from random initialisation)")
    p.add_argument("--jobs", type=_common.positive_int, default=None,
                   help="runs at a time in each process, one CPU thread each (default: the number of CPUs, shared "
                        "among the processes of torchrun / accelerate launch)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _oracles(text: str) -> tuple[str, ...]:
    from ..research.study.config import ORACLES

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in ORACLES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or text!r}: use one or more of {', '.join(ORACLES)}")
    return names


def config_from_args(args: argparse.Namespace):
    """The `StudyConfig` the parsed options describe (every option's dest is its field's name)."""
    from dataclasses import fields

    from ..errors import GardenerError
    from ..research.study.config import FLAGS, StudyConfig

    names = [f.name for f in fields(StudyConfig)]
    try:
        return StudyConfig(**{name: getattr(args, name) for name in names})
    except GardenerError as err:
        raise GardenerError(_common.with_flags(str(err), names, FLAGS)) from None


def run(args: argparse.Namespace) -> int:
    import transformers

    from ..research.study import run_study
    from ..research.study.report import fmt_p
    from ..research.study.runs import distributed

    transformers.logging.set_verbosity_error()  # checkpoint loading chatter, once per process
    transformers.logging.disable_progress_bar()
    logging.getLogger("gardener_hf.checkpoint").setLevel(logging.WARNING)  # "new head" lines, once per worker
    config = config_from_args(args)
    out = Path(args.output_dir)
    t0 = time.perf_counter()
    world = distributed()[1]
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // world)
    results = run_study(config, out, jobs=jobs, progress=not args.quiet, overwrite=args.overwrite)
    if distributed()[0] != 0:
        return 0  # rank 0 speaks for the study
    for oracle, row in results["oracles"].items():
        entropy = row["agreement"]["entropy"]
        print(f"entropy vs the {oracle} oracle: Spearman {entropy['spearman']:+.3f} (p={fmt_p(entropy['spearman_p'])}), "
              f"Kendall {entropy['kendall']:+.3f} (p={fmt_p(entropy['kendall_p'])}); paper: +0.755 / +0.667")
    print(f"report: {out / 'REPORT.md'} ({time.perf_counter() - t0:.0f} s)")
    return 0


def build_parser(prog: str = "gardener study") -> argparse.ArgumentParser:
    from ..research.study import driver

    p = _common.Parser(prog=prog, description=driver.__doc__.split("\n\n")[0] if driver.__doc__ else None)
    add_study_args(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "gardener study") -> int:
    """Entry point of `gardener study` and scripts/reproduce.py."""
    args = build_parser(prog).parse_args(argv)
    _common.setup_logging(args.quiet, fmt="%(name)s: %(message)s")
    interrupted = (f"interrupted: finished runs are kept in {Path(args.output_dir)} (runs.jsonl, and runs.rank*.jsonl "
                   "under torchrun); "
                   "the same command resumes")
    return _common.run_guarded(lambda: run(args), interrupted=interrupted)
