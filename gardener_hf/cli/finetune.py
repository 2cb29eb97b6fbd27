"""`gardener finetune` / `scripts/finetune.py`: finetune a (pruned) VideoMAE on video files with Trainer.

The options are `transformers.TrainingArguments` plus gardener_hf's own (`ModelArguments`,
`DataArguments`), parsed with `HfArgumentParser`, so every Trainer option works (`--learning-rate`,
`--num-train-epochs`, `--bf16`, `--gradient-checkpointing`, ...).

    gardener finetune MODEL --train-dir DIR --eval-dir DIR --output-dir OUT [--keep K]
    accelerate launch scripts/finetune.py MODEL --train-dir DIR --eval-dir DIR --output-dir OUT
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import GardenerError, first_line
from . import _common

HELP = "finetune a (pruned) VideoMAE on video files with transformers.Trainer"


@dataclass
class ModelArguments:
    """What to finetune."""

    _argument_group_name = "gardener: the model"

    model: str | None = field(
        default=None, metadata={"help": "Hub repo id or folder (a pruned model, or any base with --keep); default: the embedded model"}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of MODEL"})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or the cached login)"})
    keep: int | None = field(default=None, metadata={"help": "prune on the fly: keep the K best blocks first"})
    criterion: str = field(default="entropy", metadata={"help": "block score for --keep"})
    mean_pooling: bool = field(
        default=True,
        metadata={"help": "classify from the mean of all tokens through a fresh fc_norm (VideoMAE's finetuning recipe); "
                  "--no_mean_pooling keeps the checkpoint's setting"},
    )
    recipe: str = field(
        default="default", metadata={"help": "'paper': lr 1e-3, wd 0.05, warmup + cosine, batch 64, 16x4 frames from the start"}
    )
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in --output-dir"})


@dataclass
class DataArguments:
    """Where the videos are; how clips are cut from them is `ClipConfig`'s (the fields that follow)."""

    _argument_group_name = "gardener: the data"

    train_dir: str | None = field(
        default=None, metadata={"help": "training videos: a folder with one subfolder per class, or a CSV/JSON list of (path, label)"}
    )
    eval_dir: str | None = field(default=None, metadata={"help": "evaluation videos, same forms as --train-dir"})


def _option_classes():
    """`ClipConfig` and `TrainingArguments` under the headings `--help` shows them with (gardener's first)."""
    from dataclasses import make_dataclass

    from transformers import TrainingArguments

    from ..training.finetuning import ClipConfig

    clips = make_dataclass("ClipOptions", [], bases=(ClipConfig,), namespace={"_argument_group_name": "gardener: clips"})
    trainer = make_dataclass("TrainerOptions", [], bases=(TrainingArguments,),
                             namespace={"_argument_group_name": "transformers.TrainingArguments (every option works)"})
    return clips, trainer


def build_parser(defaults: dict[str, Any] | None = None, prog: str = "gardener finetune"):
    """`HfArgumentParser` over (ModelArguments, DataArguments, ClipConfig, TrainingArguments) with our defaults."""
    import torch
    from transformers import HfArgumentParser

    from ..training.trainer import TRAINER_DEFAULTS

    parser = HfArgumentParser(
        (ModelArguments, DataArguments, *_option_classes()), prog=prog,
        usage=f"{prog} [MODEL] --train-dir DATA --output-dir DIR [--eval-dir DATA] [--keep K] [options]",
        description="Finetune a (pruned) VideoMAE on video files with transformers.Trainer.",
    )
    launched = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Several processes (accelerate launch / torchrun) and no GPU: join them over gloo on the CPU.
        # Without use_cpu each process would train alone on its own copy, unaware of the others.
        launched["use_cpu"] = True
    parser.set_defaults(**{**TRAINER_DEFAULTS, **launched, **(defaults or {})})
    return parser


def parse_finetune_args(argv: Sequence[str] | None = None, prog: str = "gardener finetune"):
    """Parse finetune options: `(ModelArguments, DataArguments, ClipConfig, TrainingArguments)`.

    A leading positional is the model; `--recipe paper` changes the defaults.
    """
    from ..training.trainer import PAPER_RECIPE

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--model", argv[0], *argv[1:]]
    if not {"-h", "--help"} & set(argv) and not any(a.split("=", 1)[0] in ("--output-dir", "--output_dir") for a in argv):
        # the Trainer would write into ./trainer_output
        raise GardenerError("--output-dir is required: the model, its reports and the checkpoints go there")
    defaults = dict(PAPER_RECIPE) if _recipe(argv) == "paper" else {}
    parser = build_parser(defaults, prog)
    parser.error = lambda message: _common.one_line_usage_error(parser, message)
    try:
        model_args, data_args, clips, trainer = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # unknown options, and values TrainingArguments refuses
        raise GardenerError(f"{first_line(err)} (see {prog} --help)") from None
    # back to the library's own classes: the option classes exist only for --help's headings, and the
    # Trainer pickles its arguments into checkpoints, which needs an importable class
    from transformers import TrainingArguments

    from ..training.finetuning import ClipConfig

    clips = ClipConfig(**{f.name: getattr(clips, f.name) for f in fields(ClipConfig)})
    trainer = TrainingArguments(**{f.name: getattr(trainer, f.name) for f in fields(TrainingArguments) if f.init})
    return model_args, data_args, clips, trainer


def _recipe(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--recipe" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--recipe="):
            return arg.split("=", 1)[1]
    return "default"


def settings_from(model_args: ModelArguments, data_args: DataArguments, clips: Any, training_args: Any):
    """The library's `FinetuneSettings` from the parsed options (flags are checked here, by name)."""
    from ..training.finetuning import FinetuneSettings
    from ..training.trainer import RECIPES

    if model_args.recipe not in RECIPES:
        raise GardenerError(f"--recipe {model_args.recipe!r}: expected default or paper")
    from ..training.finetuning import check_training_length

    try:
        clips.validate()
        check_training_length(training_args)
    except GardenerError as err:
        names = [f.name for f in fields(clips)] + ["max_steps", "num_train_epochs", "per_device_train_batch_size",
                                                   "per_device_eval_batch_size", "gradient_accumulation_steps",
                                                   "learning_rate"]
        raise GardenerError(_common.with_flags(str(err), names)) from None
    if not data_args.train_dir:
        raise GardenerError("--train-dir is required: a folder with one subfolder per class, or a CSV/JSON list")
    if not training_args.output_dir:
        raise GardenerError("--output-dir is required")
    return FinetuneSettings(
        train_data=data_args.train_dir, eval_data=data_args.eval_dir, training_args=training_args, clips=clips,
        mean_pooling=model_args.mean_pooling, recipe=model_args.recipe, resume=model_args.resume,
    )


def run(model_args: ModelArguments, data_args: DataArguments, clips: Any, training_args: Any, *, callbacks=None) -> int:
    from ..constants import EMBEDDED_DEFAULT, EMBEDDED_NAME
    from ..training import finetune_checkpoint, format_metrics_table

    settings = settings_from(model_args, data_args, clips, training_args)
    result = finetune_checkpoint(
        model_args.model or EMBEDDED_DEFAULT, settings, revision=model_args.revision, token=model_args.token,
        keep=model_args.keep, criterion=model_args.criterion, source_name=model_args.model or EMBEDDED_NAME,
        callbacks=callbacks,
    )
    if result.is_main_process:
        if result.metrics:
            print(format_metrics_table(result.metrics, result.report["labels"]))
        skipped = sum(len(d["skipped"]) for d in result.report["data"].values())
        print(f"saved to {result.output_dir} ({result.report['global_step']} steps; {skipped} unreadable videos skipped)")
    return 0


def _setup_logging(training_args) -> None:
    _common.setup_logging(False)
    logging.getLogger().setLevel(logging.WARNING if training_args.disable_tqdm else logging.INFO)
    if training_args.disable_tqdm:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    if not training_args.should_log:  # processes other than the main one stay quiet
        logging.getLogger("gardener_hf").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, prog: str = "gardener finetune", *, callbacks=None) -> int:
    """Entry point of `gardener finetune` and scripts/finetune.py."""

    def go() -> int:
        model_args, data_args, clips, training_args = parse_finetune_args(argv, prog)
        _setup_logging(training_args)
        return run(model_args, data_args, clips, training_args, callbacks=callbacks)

    return _common.run_guarded(go)


