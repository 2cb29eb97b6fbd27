"""Finetune and evaluate (pruned) VideoMAE classifiers on video files with `transformers.Trainer`.

A thin layer: the options are `transformers.TrainingArguments` plus two small dataclasses
(`ModelArguments`, `DataArguments`), parsed with `HfArgumentParser`, so every Trainer option works
(`--learning_rate`, `--num_train_epochs`, `--bf16`, `--gradient_checkpointing`, ...). Under
`accelerate launch` the Trainer runs data-parallel; everything this module writes besides the
Trainer's own checkpoints is written by the main process only.

    python scripts/finetune.py MODEL --train-dir DIR --eval-dir DIR --output-dir OUT [--keep K]
    gardener evaluate MODEL DATA [--output-dir DIR]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DataError, GardenerError

logger = logging.getLogger(__name__)

REPORT_FILE = "finetune_report.json"
EVAL_FILE = "eval_results.json"
CURVE_FILE = "training_curve.png"
CONFUSION_FILE = "confusion_matrix.png"

# Defaults we chose (see the README): the Trainer's own are for text models.
TRAINER_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,
    "weight_decay": 0.05,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,
    "num_train_epochs": 5.0,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "logging_steps": 10,
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "report_to": "none",
    "remove_unused_columns": False,
    "dataloader_num_workers": -1,  # -1: decided at run time from the CPUs per process
}
# `--recipe paper`: the released code's recipe (PAPER.md section 6): AdamW, wd 0.05, peak lr 1e-3,
# linear warmup then cosine, batch 64 in total, 16 frames at stride 4 from the start of the video.
PAPER_RECIPE: dict[str, Any] = {
    "learning_rate": 1e-3,
    "weight_decay": 0.05,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,
    "sampling": "start",
    "eval_sampling": "start",
    "frame_stride": 4,
}
PAPER_BATCH = 64
FLIP_SENSITIVE = ("left", "right", "clockwise", "counterclockwise", "anticlockwise")


@dataclass
class ModelArguments:
    """What to finetune."""

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
    """Where the videos are and how clips are cut from them."""

    train_dir: str | None = field(
        default=None, metadata={"help": "training videos: a folder with one subfolder per class, or a CSV/JSON list of (path, label)"}
    )
    eval_dir: str | None = field(default=None, metadata={"help": "evaluation videos, same forms as --train-dir"})
    frame_stride: int = field(default=4, metadata={"help": "take every n-th frame"})
    sampling: str = field(default="random", metadata={"help": "training clips: random | start | uniform"})
    eval_sampling: str = field(default="start", metadata={"help": "evaluation clips: start | uniform"})
    eval_clips: int = field(default=1, metadata={"help": "clips per video at evaluation (their softmax is averaged)"})
    hflip: str = field(
        default="auto", metadata={"help": "random horizontal flips in training: auto (off when labels name left/right), on, off"}
    )
    strict: bool = field(default=False, metadata={"help": "an unreadable video is an error instead of being skipped"})


@dataclass
class FinetuneResult:
    """What `finetune` returns."""

    output_dir: Path
    model: nn.Module
    metrics: dict[str, Any]
    report: dict[str, Any]
    log_history: list[dict[str, Any]]
    is_main_process: bool


# --------------------------------------------------------------------------- argument parsing


def build_parser(defaults: dict[str, Any] | None = None):
    """`HfArgumentParser` over (ModelArguments, DataArguments, TrainingArguments) with our defaults."""
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments), prog="finetune.py")
    launched = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Several processes (accelerate launch / torchrun) and no GPU: join them over gloo on the CPU.
        # Without use_cpu each process would train alone on its own copy, unaware of the others.
        launched["use_cpu"] = True
    parser.set_defaults(**{**TRAINER_DEFAULTS, **launched, **(defaults or {})})
    return parser


def parse_args(argv: Sequence[str] | None = None):
    """Parse finetune options; a leading positional is the model, `--recipe paper` changes defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--model", argv[0], *argv[1:]]
    defaults = dict(PAPER_RECIPE) if _recipe(argv) == "paper" else {}
    parser = build_parser(defaults)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    return model_args, data_args, training_args


def _recipe(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--recipe" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--recipe="):
            return arg.split("=", 1)[1]
    return "default"


# --------------------------------------------------------------------------- model


def load_classifier(
    model_id: str,
    labels: Sequence[str],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    keep: int | None = None,
    criterion: str = "entropy",
    mean_pooling: bool = True,
    source_name: str | None = None,
    progress: bool = True,
) -> nn.Module:
    """A `VideoMAEForVideoClassification` with a new head for `labels`, optionally pruned first.

    Works from any VideoMAE checkpoint: a pretraining one (decoder weights are not loaded), a bare
    encoder, or a classifier (its head is replaced when the labels differ). With `mean_pooling` the
    classifier reads the mean of all tokens through a freshly initialised `fc_norm`, as VideoMAE's
    own finetuning does; the pretraining checkpoints on the Hub were converted with
    `use_mean_pooling=False`, whose first-token readout has no class token behind it.

    Raises:
        GardenerError: not a VideoMAE checkpoint, or unloadable.
    """
    import transformers
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from .sources import SafetensorsCheckpoint, read_config
    from .surgery import CONFIG_KEY, apply_plan, make_plan

    config_dict = read_config(model_id, revision=revision, token=token)
    _require_videomae(model_id, config_dict)
    SafetensorsCheckpoint.open(model_id, revision=revision, token=token)  # refuse pickle-only repos clearly
    id2label = dict(enumerate(labels))
    overrides: dict[str, Any] = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}
    if mean_pooling:
        overrides["use_mean_pooling"] = True
    config = VideoMAEConfig.from_dict(config_dict, **overrides)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # we report what is new in one line below
    try:
        model, info = VideoMAEForVideoClassification.from_pretrained(
            model_id,
            config=config,
            revision=revision,
            token=token,
            use_safetensors=True,
            dtype=torch.float32,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise GardenerError(f"could not load {model_id}: {str(err).splitlines()[0]}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    new = sorted({k.split(".")[0] for k in info.get("missing_keys", [])} | {k[0].split(".")[0] for k in info.get("mismatched_keys", [])})
    if new:  # nothing is new when the checkpoint already has this head
        logger.info("new, randomly initialised: %s (%d labels)", ", ".join(new), len(labels))
    encoder_missing = [k for k in info.get("missing_keys", []) if k.startswith("videomae.encoder")]
    if encoder_missing:
        raise GardenerError(f"{model_id}: encoder weights missing from the checkpoint: {encoder_missing[:3]}")
    if keep is not None:
        if isinstance(getattr(model.config, CONFIG_KEY, None), dict):
            logger.info("%s was pruned before; pruning it again composes the records", model_id)
        from .scoring import score_model

        scores = score_model(model, criterion, progress=progress)
        scores.source = source_name or model_id
        plan = make_plan(scores, keep=keep)
        apply_plan(model, plan)
        logger.info("pruned on the fly: %s", plan.describe())
    return model


def _require_videomae(model_id: str, config_dict: dict[str, Any]) -> None:
    if config_dict.get("model_type") != "videomae":
        raise GardenerError(f"{model_id} is a {config_dict.get('model_type')!r} model; finetuning supports VideoMAE checkpoints")


def load_processor(model_id: str, config: Any, *, revision: str | None = None, token: str | bool | None = None):
    """The checkpoint's VideoMAE image processor; VideoMAE's defaults at the model's size when it has none."""
    from transformers import VideoMAEImageProcessor

    from .sources import resolve_file

    if resolve_file(model_id, "preprocessor_config.json", revision=revision, token=token, required=False):
        processor = VideoMAEImageProcessor.from_pretrained(model_id, revision=revision, token=token)
    else:
        logger.warning("%s has no preprocessor_config.json: using VideoMAE's defaults at %dpx", model_id, config.image_size)
        processor = VideoMAEImageProcessor(
            size={"shortest_edge": config.image_size}, crop_size={"height": config.image_size, "width": config.image_size}
        )
    crop = processor.crop_size
    height, width = crop.get("height"), crop.get("width")
    if (height, width) != (config.image_size, config.image_size):
        raise GardenerError(
            f"{model_id}: the processor crops frames to {height}x{width} but the model takes "
            f"{config.image_size}x{config.image_size}; fix crop_size in preprocessor_config.json"
        )
    return processor


# --------------------------------------------------------------------------- data


def build_datasets(data_args: DataArguments, config: Any, processor: Any, *, progress: bool = True):
    """Train and eval datasets (eval may be None), their label names and the data report."""
    from .data import VideoClassificationDataset, VideoTransform, eval_split, find_videos

    if not data_args.train_dir:
        raise DataError("--train-dir is required: a folder with one subfolder per class, or a CSV/JSON list")
    train_items, labels, train_report = find_videos(data_args.train_dir, strict=data_args.strict, progress=progress)
    hflip = _hflip(data_args.hflip, labels)
    common = {"num_frames": config.num_frames, "stride": data_args.frame_stride, "strict": data_args.strict}
    train = VideoClassificationDataset(
        train_items, labels, VideoTransform.from_processor(processor, train=True, hflip=hflip), sampling=data_args.sampling, **common
    )
    evaluation, eval_report = None, None
    if data_args.eval_dir:
        eval_items, _, eval_report = find_videos(
            data_args.eval_dir, labels=labels, strict=data_args.strict, progress=progress, split=eval_split(data_args.eval_dir)
        )
        evaluation = VideoClassificationDataset(
            eval_items,
            labels,
            VideoTransform.from_processor(processor, train=False),
            sampling=data_args.eval_sampling,
            num_clips=data_args.eval_clips,
            **common,
        )
    return train, evaluation, labels, {"train": train_report, "eval": eval_report}


def _check_choices(model_args: ModelArguments, data_args: DataArguments) -> None:
    """Refuse a bad --recipe / --hflip before anything is read or probed."""
    if model_args.recipe not in ("default", "paper"):
        raise GardenerError(f"--recipe {model_args.recipe!r}: expected default or paper")
    if data_args.hflip not in ("auto", "on", "off"):
        raise GardenerError(f"--hflip {data_args.hflip!r}: expected auto, on or off")


def _hflip(setting: str, labels: Sequence[str]) -> bool:
    if setting != "auto":
        return setting == "on"
    sensitive = [name for name in labels if any(word in name.lower() for word in FLIP_SENSITIVE)]
    if sensitive:
        logger.info("horizontal flips off: they would change the meaning of labels %s (--hflip on to force)", sensitive)
        return False
    return True


# --------------------------------------------------------------------------- trainer


def _make_trainer_class():
    from transformers import Trainer

    class VideoTrainer(Trainer):
        """Trainer that averages several clips per video at evaluation ([B, clips, T, C, H, W] inputs),
        and reloads its own checkpoints (resume, best model) through `from_pretrained`.

        The stock Trainer reloads a checkpoint with a raw `load_state_dict(strict=False)` of
        model.safetensors. transformers writes VideoMAE checkpoints in the Hub's legacy key form
        (`q_bias` / `v_bias`) and renames them only inside `from_pretrained`, so the raw load silently
        skipped the attention query/value biases (transformers 5.23): a resumed run or the "best" model
        kept the wrong biases.
        """

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            if not self._plain_checkpoint(resume_from_checkpoint):
                return super()._load_from_checkpoint(resume_from_checkpoint, model=model)
            load_checkpoint_weights(model if model is not None else self.model, resume_from_checkpoint)

        def _load_best_model(self):
            if not self._plain_checkpoint(self.state.best_model_checkpoint):
                return super()._load_best_model()
            logger.info("loading the best model from %s (%s = %s)", self.state.best_model_checkpoint,
                        self.args.metric_for_best_model, self.state.best_metric)
            load_checkpoint_weights(self.model, self.state.best_model_checkpoint)

        def _plain_checkpoint(self, folder) -> bool:
            plain = not (self.is_fsdp_enabled or self.is_deepspeed_enabled)
            return plain and folder is not None and os.path.isfile(os.path.join(folder, "model.safetensors"))

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            pixel_values = inputs["pixel_values"]
            if pixel_values.ndim != 6:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
            inputs = self._prepare_inputs(inputs)
            pixel_values, labels = inputs["pixel_values"], inputs.get("labels")
            batch, clips = pixel_values.shape[:2]
            with torch.no_grad(), self.compute_loss_context_manager():
                logits = model(pixel_values=pixel_values.flatten(0, 1)).logits.float()
            # Mean of the clips' probabilities, returned as log-probabilities (argmax-equivalent logits).
            log_probs = torch.log(logits.softmax(-1).view(batch, clips, -1).mean(1).clamp_min(1e-12))
            loss = nn.functional.nll_loss(log_probs, labels) if labels is not None else None
            if prediction_loss_only:
                return loss, None, None
            return loss, log_probs, labels

    return VideoTrainer


def default_workers(processes: int) -> int:
    """DataLoader workers per process: the CPUs each process gets, less one for it, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) // processes - 1))


def load_checkpoint_weights(model: nn.Module, folder: str | os.PathLike[str]) -> None:
    """Load a Trainer checkpoint's weights into `model` in place, through `from_pretrained` (strict).

    Raises:
        GardenerError: the checkpoint does not hold exactly this model's weights.
    """
    param = next(model.parameters())
    loaded = type(model).from_pretrained(folder, config=model.config, dtype=param.dtype, use_safetensors=True)
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise GardenerError(
            f"{folder} does not match the model: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}"
        )


def _resolve_training_args(training_args, model_args: ModelArguments, *, has_eval: bool):
    """Fill in run-time defaults: workers, mixed precision, evaluation/saving cadence, paper batch."""
    changes: dict[str, Any] = {}
    world = max(1, training_args.world_size)
    if training_args.dataloader_num_workers < 0:
        changes["dataloader_num_workers"] = default_workers(world)
    if training_args.dataloader_pin_memory and not torch.cuda.is_available():
        changes["dataloader_pin_memory"] = False
    if torch.cuda.is_available() and not (training_args.bf16 or training_args.fp16) and not training_args.use_cpu:
        if torch.cuda.is_bf16_supported():
            changes["bf16"] = True
        else:
            changes["fp16"] = True
    if has_eval:
        if training_args.eval_strategy == "no":
            changes["eval_strategy"] = training_args.save_strategy if training_args.save_strategy != "no" else "epoch"
            if changes["eval_strategy"] == "steps":
                changes["eval_steps"] = training_args.save_steps
        if not training_args.metric_for_best_model:
            changes["metric_for_best_model"] = "top1"
            changes["greater_is_better"] = True
        if training_args.save_strategy != "no":
            changes["load_best_model_at_end"] = True
    if model_args.recipe == "paper":
        per_step = training_args.per_device_train_batch_size * world
        changes["gradient_accumulation_steps"] = max(1, math.ceil(PAPER_BATCH / per_step))
        if per_step * changes["gradient_accumulation_steps"] != PAPER_BATCH:
            logger.warning("--recipe paper: total batch %d (not 64): %d per step x %d accumulation",
                           per_step * changes["gradient_accumulation_steps"], per_step, changes["gradient_accumulation_steps"])
    if not changes:
        return training_args
    return dataclasses.replace(training_args, **changes)


def finetune(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args,
    *,
    callbacks: Sequence[Any] | None = None,
    source_name: str | None = None,
) -> FinetuneResult:
    """Finetune, evaluate and save a (pruned) VideoMAE classifier.

    Args:
        model_args / data_args / training_args: the parsed options (`transformers.TrainingArguments`).
            `model_args.resume` continues from the newest checkpoint in the output folder.
        callbacks: extra `TrainerCallback`s.
        source_name: how to name the model in the report (default: `model_args.model`).

    Returns:
        A `FinetuneResult`; the output folder holds the model (loadable with plain transformers),
        its processor config, `eval_results.json`, `finetune_report.json` and the plots.
    """
    from transformers.trainer_utils import get_last_checkpoint

    from .cli import DEFAULT_MODEL, EMBEDDED_NAME
    from .data import collate_videos
    from .metrics import classification_metrics, compute_metrics_fn, plot_confusion_matrix, plot_training_curve

    if not training_args.output_dir:
        raise GardenerError("--output-dir is required")
    _check_choices(model_args, data_args)
    progress = not training_args.disable_tqdm
    output_dir = Path(training_args.output_dir)
    checkpoint = None  # decided first: a refusal should come before any heavy work
    if model_args.resume:
        checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if checkpoint is None:
            logger.info("--resume: no checkpoint in %s, starting from the beginning", output_dir)
        else:
            logger.info("resuming from %s", checkpoint)
    elif output_dir.is_dir() and get_last_checkpoint(str(output_dir)) is not None:
        raise GardenerError(f"{output_dir} holds checkpoints of an earlier run; pass --resume to continue it or choose another --output-dir")
    model_id = model_args.model or DEFAULT_MODEL
    source_name = source_name or model_args.model or EMBEDDED_NAME
    from transformers import VideoMAEConfig

    from .sources import read_config

    config_dict = read_config(model_id, revision=model_args.revision, token=model_args.token)
    _require_videomae(model_id, config_dict)
    config = VideoMAEConfig.from_dict(config_dict)
    processor = load_processor(model_id, config, revision=model_args.revision, token=model_args.token)
    train_set, eval_set, labels, reports = build_datasets(data_args, config, processor, progress=progress)
    training_args = _resolve_training_args(training_args, model_args, has_eval=eval_set is not None)
    torch.manual_seed(training_args.seed)
    model = load_classifier(
        model_id,
        labels,
        revision=model_args.revision,
        token=model_args.token,
        keep=model_args.keep,
        criterion=model_args.criterion,
        mean_pooling=model_args.mean_pooling,
        source_name=source_name,
        progress=progress,
    )
    trainer = _make_trainer_class()(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collate_videos,
        compute_metrics=compute_metrics_fn(len(labels)) if eval_set is not None else None,
        callbacks=list(callbacks or []),
    )
    _set_epoch_callback(trainer, train_set)
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    metrics: dict[str, Any] = {}
    if eval_set is not None:
        prediction = trainer.predict(eval_set, metric_key_prefix="eval")
        metrics = classification_metrics(_logits(prediction.predictions), prediction.label_ids, num_classes=len(labels))
    trainer.save_model(str(output_dir))  # rank 0 writes; every rank must call it (FSDP / DeepSpeed)
    main = trainer.is_world_process_zero()
    report = {
        "model": source_name,
        "revision": model_args.revision,
        "keep": model_args.keep,
        "criterion": model_args.criterion if model_args.keep else None,
        "labels": list(labels),
        "global_step": trainer.state.global_step,
        "train_runtime_s": train_output.metrics.get("train_runtime"),
        "train_samples_per_second": train_output.metrics.get("train_samples_per_second"),
        "world_size": training_args.world_size,
        "hyperparameters": hyperparameters(training_args, model_args, data_args),
        "data": {name: _report_dict(r) for name, r in reports.items() if r is not None},
        "best_checkpoint": trainer.state.best_model_checkpoint,
    }
    if main:
        processor.save_pretrained(str(output_dir))
        from .surgery import write_pruning_record

        write_pruning_record(trainer.model, output_dir)
        (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        if metrics:
            (output_dir / EVAL_FILE).write_text(json.dumps({"metrics": metrics, "data": report["data"].get("eval")}, indent=2) + "\n")
            plot_confusion_matrix(metrics["confusion_matrix"], labels, output_dir / CONFUSION_FILE)
        try:
            plot_training_curve(trainer.state.log_history, output_dir / CURVE_FILE)
        except ValueError as err:
            logger.info("no training curve: %s", err)
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(output_dir, trainer.model, metrics, report, list(trainer.state.log_history), main)


def finetune_variant(
    variant: nn.Module, source: str, argv: Sequence[str], *, revision: str | None = None, token: str | bool | None = None
) -> tuple[FinetuneResult, dict[str, Any]]:
    """Finetune an in-memory pruned model (`push_pruned.py --train-dir`): returns the result and the
    `training` dict for `build_card`.

    Args:
        variant: the pruned model (any supported VideoMAE class; a new classification head is added).
        source: the model it was pruned from (its processor config is used).
        argv: finetune options, e.g. ["--train-dir", D, "--eval-dir", E, "--output-dir", RUN, "--num-train-epochs", "3"].
    """
    import tempfile

    from .surgery import CONFIG_KEY, copy_processor_files, save_pruned

    with tempfile.TemporaryDirectory(prefix="gardener-variant-") as folder:  # one per process
        save_pruned(variant, folder)
        copy_processor_files(source, folder, revision=revision, token=token)
        model_args, data_args, training_args = parse_args([folder, *argv])
        record = getattr(variant.config, CONFIG_KEY)
        result = finetune(model_args, data_args, training_args, source_name=record.get("source_model"))
    return result, training_summary(result, data_args)


def training_summary(result: FinetuneResult, data_args: DataArguments) -> dict[str, Any]:
    """The `training` dict `build_card` shows: names (not local paths), sizes, metrics, hyperparameters."""
    data = result.report["data"]
    return {
        "train_data": _data_name(data_args.train_dir),
        "eval_data": _data_name(data_args.eval_dir) if data_args.eval_dir else None,
        "num_train_videos": data["train"]["used"],
        "num_eval_videos": data.get("eval", {}).get("used") if data.get("eval") else None,
        "num_labels": len(result.report["labels"]),
        "metrics": {k: result.metrics[k] for k in ("top1", "top5", "mean_class_accuracy") if k in result.metrics} or None,
        "hyperparameters": result.report["hyperparameters"],
        "global_step": result.report["global_step"],
        "selected_on_eval": bool(result.report.get("best_checkpoint")) and bool(data_args.eval_dir),
        "curve_file": CURVE_FILE if (result.output_dir / CURVE_FILE).exists() else None,
        "confusion_file": CONFUSION_FILE if (result.output_dir / CONFUSION_FILE).exists() else None,
    }


def _data_name(source: str) -> str:
    from .data import SPLIT_NAMES

    """A short public name for a local dataset path: the folder name, with its parent for a split
    folder ("ucf101/test", not "test"); never the full local path."""
    path = Path(source)
    if path.name.lower() in SPLIT_NAMES and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


def _logits(predictions: Any) -> Any:
    """Trainer returns a tuple when the model outputs more than logits; the logits come first."""
    return predictions[0] if isinstance(predictions, tuple) else predictions


def _set_epoch_callback(trainer, dataset) -> None:
    """Tell the dataset the epoch so each epoch draws new augmentations, reproducibly."""
    from transformers import TrainerCallback

    class _Epoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            dataset.set_epoch(int(state.epoch or 0))

    trainer.add_callback(_Epoch())


def _report_dict(report) -> dict[str, Any]:
    return {"videos": report.total, "used": report.used, "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}


def hyperparameters(training_args, model_args: ModelArguments, data_args: DataArguments) -> dict[str, Any]:
    """The settings a reader needs to reproduce a finetune (shown in the model card)."""
    total_batch = (
        training_args.per_device_train_batch_size * max(1, training_args.world_size) * training_args.gradient_accumulation_steps
    )
    return {
        "recipe": model_args.recipe,
        "learning_rate": training_args.learning_rate,
        "weight_decay": training_args.weight_decay,
        "optimizer": str(getattr(training_args.optim, "value", training_args.optim)),
        "lr_scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup": training_args.warmup_steps,
        "epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "total_batch_size": total_batch,
        "per_device_batch_size": training_args.per_device_train_batch_size,
        "num_processes": max(1, training_args.world_size),
        "mixed_precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
        "gradient_checkpointing": training_args.gradient_checkpointing,
        "seed": training_args.seed,
        "mean_pooling": model_args.mean_pooling,
        "frame_stride": data_args.frame_stride,
        "sampling": data_args.sampling,
        "eval_sampling": data_args.eval_sampling,
        "eval_clips": data_args.eval_clips,
        "hflip": data_args.hflip,
    }


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    model_id: str,
    data: str,
    *,
    output_dir: str | Path | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    batch_size: int = 8,
    num_clips: int = 1,
    sampling: str = "start",
    frame_stride: int = 4,
    num_workers: int = -1,
    strict: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1, top-5 and mean per-class accuracy of a VideoMAE classifier on a video dataset.

    The dataset's labels are matched by name to the model's `id2label`. Runs through
    `Trainer.predict`, so `accelerate launch` spreads it over processes.

    Returns:
        The metrics dict (with per-class accuracy and the confusion matrix) plus a "data" report.
    """
    import tempfile

    from transformers import TrainingArguments, VideoMAEForVideoClassification

    from .data import VideoClassificationDataset, VideoTransform, collate_videos, eval_split, find_videos
    from .metrics import classification_metrics, plot_confusion_matrix
    from .sources import read_config

    config_dict = read_config(model_id, revision=revision, token=token)
    if "VideoMAEForVideoClassification" not in (config_dict.get("architectures") or []):
        raise GardenerError(f"{model_id} is not a VideoMAEForVideoClassification checkpoint (finetune it first)")
    model = VideoMAEForVideoClassification.from_pretrained(model_id, revision=revision, token=token, use_safetensors=True)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    processor = load_processor(model_id, model.config, revision=revision, token=token)
    items, _, report = find_videos(data, labels=labels, strict=strict, progress=progress, split=eval_split(data))
    dataset = VideoClassificationDataset(
        items, labels, VideoTransform.from_processor(processor, train=False), num_frames=model.config.num_frames,
        stride=frame_stride, sampling=sampling, num_clips=num_clips, strict=strict,
    )
    with tempfile.TemporaryDirectory(prefix="gardener-eval-") as scratch:
        args = TrainingArguments(
            output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none", remove_unused_columns=False,
            dataloader_num_workers=default_workers(1) if num_workers < 0 else num_workers,
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), disable_tqdm=not progress,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = _make_trainer_class()(model=model, args=args, data_collator=collate_videos)
        prediction = trainer.predict(dataset)
        main = trainer.is_world_process_zero()
    metrics = classification_metrics(_logits(prediction.predictions), prediction.label_ids, num_classes=len(labels))
    metrics["labels"] = labels
    metrics["data"] = _report_dict(report)
    if output_dir is not None and main:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / EVAL_FILE).write_text(json.dumps({"model": model_id, "data": str(data), "metrics": metrics}, indent=2) + "\n")
        plot_confusion_matrix(metrics["confusion_matrix"], labels, output_dir / CONFUSION_FILE)
    return metrics


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of scripts/finetune.py and `gardener finetune`."""
    from .metrics import format_metrics_table

    try:
        model_args, data_args, training_args = parse_args(argv)
        _setup_logging(training_args)
        result = finetune(model_args, data_args, training_args)
    except GardenerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.is_main_process:
        if result.metrics:
            print(format_metrics_table(result.metrics, result.report["labels"]))
        skipped = sum(len(d["skipped"]) for d in result.report["data"].values())
        print(f"saved to {result.output_dir} ({result.report['global_step']} steps; {skipped} unreadable videos skipped)")
    return 0


def _setup_logging(training_args) -> None:
    quiet = training_args.disable_tqdm
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    if quiet:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    if not training_args.should_log:  # processes other than the main one stay quiet
        logging.getLogger("gardener_hf").setLevel(logging.WARNING)
