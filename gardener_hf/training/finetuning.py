"""Finetune (pruned) VideoMAE classifiers on video files with `transformers.Trainer`.

Two levels, both plain Python:

* `finetune(model, train_set, eval_set, training_args)` trains a classifier you built, evaluates it
  and writes the model, its processor config, the pruning record, `finetune_report.json`,
  `eval_results.json` and the plots into `training_args.output_dir`.
* `finetune_checkpoint(source, settings)` does everything from a checkpoint id or folder: reads the
  processor, finds the videos, adds a head for their labels, optionally prunes on the fly, then
  calls `finetune`. `gardener finetune` and `gardener push --train-dir` call it.

Under `accelerate launch` the Trainer runs data-parallel; everything this module writes besides the
Trainer's own checkpoints is written by the main process only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..checkpoint import (
    load_classifier,
    load_processor,
    read_config,
    require_finite,
    require_videomae,
)
from ..constants import CONFUSION_FILE, CURVE_FILE, EVAL_FILE, METRIC_KEYS, REPORT_FILE, SAFE_INDEX, SAFE_WEIGHTS
from ..data import (
    SPLIT_NAMES,
    VideoClassificationDataset,
    VideoTransform,
    collate_videos,
    count_frames,
    data_name,
    eval_split,
    find_videos,
)
from ..data.sampling import SAMPLING_MODES
from ..errors import DataError, GardenerError
from ..plotting import plot_confusion_matrix, plot_training_curve
from ..scoring import score_model
from ..surgery import PruningRecord, apply_plan, make_plan, save_pruned, write_pruning_record
from .metrics import classification_metrics, compute_metrics_fn
from .trainer import RECIPES, VideoTrainer, resolve_training_args

logger = logging.getLogger(__name__)

#: subfolder of a run folder holding the pruned variant a finetune started from
VARIANT_FOLDER = "pruned_variant"
FLIP_SENSITIVE = ("left", "right", "clockwise", "counterclockwise", "anticlockwise")
HFLIP_SETTINGS = ("auto", "on", "off")
EVAL_SAMPLING_MODES = ("start", "uniform")


@dataclass
class ClipConfig:
    """How clips are cut from videos and augmented. Field help texts are the command line's."""

    frame_stride: int = field(default=4, metadata={"help": "take every n-th frame"})
    sampling: str = field(default="random", metadata={"help": "training clips: random | start | uniform"})
    eval_sampling: str = field(default="start", metadata={"help": "evaluation clips: start | uniform"})
    eval_clips: int = field(default=1, metadata={"help": "clips per video at evaluation (their softmax is averaged)"})
    hflip: str = field(
        default="auto", metadata={"help": "random horizontal flips in training: auto (off when labels name left/right), on, off"}
    )
    strict: bool = field(default=False, metadata={"help": "an unreadable video is an error instead of being skipped"})

    def validate(self) -> None:
        """Refuse bad choices before anything is read or probed.

        Raises:
            GardenerError: naming the field and what it accepts.
        """
        if self.hflip not in HFLIP_SETTINGS:
            raise GardenerError(f"hflip {self.hflip!r}: expected auto, on or off")
        if self.sampling not in SAMPLING_MODES:
            raise GardenerError(f"sampling {self.sampling!r}: expected one of {', '.join(SAMPLING_MODES)}")
        if self.eval_sampling not in EVAL_SAMPLING_MODES:
            raise GardenerError(f"eval_sampling {self.eval_sampling!r}: expected start or uniform")
        for name in ("frame_stride", "eval_clips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GardenerError(f"{name} {value!r}: expected a whole number >= 1")


@dataclass
class FinetuneSettings:
    """What `finetune_checkpoint` needs besides the checkpoint: data, Trainer arguments, clip options.

    Args:
        train_data: training videos (a class-per-subfolder folder, a CSV/JSON manifest, or a
            `datasets.Dataset`; see `gardener_hf.data.find_videos`).
        training_args: `transformers.TrainingArguments`; `output_dir` is where everything goes.
            Build them with `training.default_training_args` for gardener_hf's defaults.
        eval_data: evaluation videos, same forms (None: no evaluation).
        clips: how clips are cut and augmented.
        mean_pooling: classify from the mean of all tokens through a fresh fc_norm.
        recipe: `"paper"` accumulates gradients to the paper's total batch of 64.
        resume: continue from the newest checkpoint in `training_args.output_dir`.
    """

    train_data: Any
    training_args: TrainingArguments
    eval_data: Any = None
    clips: ClipConfig = field(default_factory=ClipConfig)
    mean_pooling: bool = True
    recipe: str = "default"
    resume: bool = False


@dataclass
class FinetuneResult:
    """What `finetune` returns."""

    output_dir: Path
    model: nn.Module
    metrics: dict[str, Any]
    report: dict[str, Any]
    log_history: list[dict[str, Any]]
    is_main_process: bool


# --------------------------------------------------------------------------- data


def build_datasets(
    train_data: Any, eval_data: Any, config: Any, processor: Any, clips: ClipConfig | None = None, *, progress: bool = True
):
    """Train and eval datasets (eval is None without `eval_data`), their label names and the data report."""
    clips = clips or ClipConfig()
    if train_data is None:
        raise DataError("no training data: give a folder with one subfolder per class, or a CSV/JSON list")
    train_items, labels, train_report = find_videos(train_data, strict=clips.strict, progress=progress)
    if len(labels) < 2:
        raise DataError(f"the training data has {len(labels)} class ({', '.join(labels)}): a classifier needs at least 2")
    hflip = _hflip(clips.hflip, labels)
    common = {"num_frames": config.num_frames, "stride": clips.frame_stride, "strict": clips.strict}
    train = VideoClassificationDataset(
        train_items, labels, VideoTransform.from_processor(processor, train=True, hflip=hflip), sampling=clips.sampling, **common
    )
    evaluation, eval_report = None, None
    if eval_data is not None:
        eval_items, _, eval_report = find_videos(
            eval_data, labels=labels, strict=clips.strict, progress=progress, split=eval_split(eval_data)
        )
        evaluation = VideoClassificationDataset(
            eval_items,
            labels,
            VideoTransform.from_processor(processor, train=False),
            sampling=clips.eval_sampling,
            num_clips=clips.eval_clips,
            **common,
        )
    reports = {"train": train_report, "eval": eval_report}
    for name, dataset in (("train", train), ("eval", evaluation)):
        if dataset is not None:
            reports[name].clip_check = check_clip_length(dataset, name)
    return train, evaluation, labels, reports


def check_clip_length(dataset: VideoClassificationDataset, name: str, *, sample: int = 8) -> dict[str, Any]:
    """Warn when videos are shorter than a clip spans: their last frame would be repeated to fill the clip.

    Counts the frames of up to `sample` videos (evenly spread) and returns what it found, for the report.
    """
    needed = dataset.num_frames if dataset.sampling == "uniform" else dataset.num_frames * dataset.stride
    items = dataset.items
    picked = items[:: max(1, len(items) // sample)][:sample]
    counts = []
    for item in picked:
        try:
            counts.append(count_frames(item.path))
        except DataError:  # unreadable files are reported by the dataset itself
            continue
    short = [c for c in counts if c < needed]
    if short:
        logger.warning(
            "%d of %d %s videos checked have fewer frames (fewest: %d) than a clip spans (%d frames x stride %d = %d): "
            "their last frame is repeated to fill the clip. Lower the frame stride or use longer videos",
            len(short), len(counts), name, min(short), dataset.num_frames, dataset.stride, needed,
        )
    return {"checked": len(counts), "shorter_than_clip": len(short), "frames_per_clip": needed,
            "fewest_frames": min(counts) if counts else None}


def _hflip(setting: str, labels: Sequence[str]) -> bool:
    if setting != "auto":
        return setting == "on"
    sensitive = [name for name in labels if any(word in name.lower() for word in FLIP_SENSITIVE)]
    if sensitive:
        logger.info("horizontal flips off: they would change the meaning of labels %s (hflip on to force)", sensitive)
        return False
    return True


def data_report(report) -> dict[str, Any]:
    """A `DataReport` as the JSON the reports hold (with the clip-length check when one was made)."""
    out = {"videos": report.total, "used": report.used, "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}
    if getattr(report, "clip_check", None) is not None:
        out["clip_check"] = report.clip_check
    return out


# --------------------------------------------------------------------------- training


def logits_of(predictions: Any) -> Any:
    """Trainer returns a tuple when the model outputs more than logits; the logits come first."""
    return predictions[0] if isinstance(predictions, tuple) else predictions


def check_training_length(training_args: TrainingArguments) -> None:
    """Refuse arguments that would train for zero steps (transformers trains one step for max_steps=0).

    Raises:
        GardenerError: naming the argument.
    """
    if training_args.max_steps == 0 or (training_args.max_steps < 0 and not training_args.num_train_epochs > 0):
        which = "max_steps" if training_args.max_steps == 0 else "num_train_epochs"
        raise GardenerError(f"{which} {getattr(training_args, which)}: a finetune needs at least one step")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, name) < 1:
            raise GardenerError(f"{name} {getattr(training_args, name)}: expected a whole number >= 1")
    if not (math.isfinite(training_args.learning_rate) and training_args.learning_rate > 0):
        raise GardenerError(f"learning_rate {training_args.learning_rate}: expected a finite number > 0")


class _EpochCallback(TrainerCallback):
    """Tell the dataset the epoch so each epoch draws new augmentations, reproducibly."""

    def __init__(self, dataset: VideoClassificationDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))


def finetune(
    model: nn.Module,
    train_set: VideoClassificationDataset,
    eval_set: VideoClassificationDataset | None,
    training_args: TrainingArguments,
    *,
    processor: Any = None,
    resume_from_checkpoint: str | None = None,
    callbacks: Sequence[Any] | None = None,
    report: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Finetune, evaluate and save a (pruned) VideoMAE classifier.

    Args:
        model: a `VideoMAEForVideoClassification` whose head matches `train_set.labels`.
        train_set / eval_set: clip datasets (`eval_set` may be None).
        training_args: `transformers.TrainingArguments`, used as given (see `resolve_training_args`
            for the run-time defaults `finetune_checkpoint` fills in).
        processor: image processor saved beside the model, so pipelines work on the output folder.
        resume_from_checkpoint: a Trainer checkpoint folder to continue from.
        callbacks: extra `TrainerCallback`s.
        report: facts about the run to record in `finetune_report.json` (source, data report, settings).

    Returns:
        A `FinetuneResult`; `training_args.output_dir` holds the model (loadable with plain
        transformers), its processor config, `eval_results.json`, `finetune_report.json` and the plots.
    """
    output_dir = Path(training_args.output_dir)
    labels = train_set.labels
    trainer = VideoTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collate_videos,
        compute_metrics=compute_metrics_fn(len(labels)) if eval_set is not None else None,
        callbacks=[*(callbacks or []), _EpochCallback(train_set)],
    )
    train_output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    if not math.isfinite(train_output.training_loss):
        raise GardenerError(f"the mean training loss is {train_output.training_loss}; nothing was saved")
    metrics: dict[str, Any] = {}
    if eval_set is not None:
        prediction = trainer.predict(eval_set, metric_key_prefix="eval")
        metrics = classification_metrics(logits_of(prediction.predictions), prediction.label_ids, num_classes=len(labels))
    trainer.save_model(str(output_dir))  # rank 0 writes; every rank must call it (FSDP / DeepSpeed)
    main = trainer.is_world_process_zero()
    report = {
        **(report or {}),
        "labels": list(labels),
        "global_step": trainer.state.global_step,
        "train_runtime_s": train_output.metrics.get("train_runtime"),
        "train_samples_per_second": train_output.metrics.get("train_samples_per_second"),
        "world_size": training_args.world_size,
        "best_checkpoint": trainer.state.best_model_checkpoint,
    }
    if main:
        if processor is not None:
            processor.save_pretrained(str(output_dir))
        write_pruning_record(trainer.model, output_dir)
        (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        if metrics:
            eval_data = (report.get("data") or {}).get("eval")
            (output_dir / EVAL_FILE).write_text(json.dumps({"metrics": metrics, "data": eval_data}, indent=2) + "\n")
            plot_confusion_matrix(metrics["confusion_matrix"], labels, output_dir / CONFUSION_FILE)
        try:
            plot_training_curve(trainer.state.log_history, output_dir / CURVE_FILE)
        except ValueError as err:
            logger.info("no training curve: %s", err)
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(output_dir, trainer.model, metrics, report, list(trainer.state.log_history), main)


def is_complete_checkpoint(folder: str | Path) -> bool:
    """Whether a Trainer checkpoint was written to the end: the Trainer writes `trainer_state.json` last."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((folder / name).is_file() for name in (SAFE_WEIGHTS, SAFE_INDEX))


def resume_checkpoint(output_dir: str | Path, resume: bool) -> str | None:
    """The checkpoint to resume from, decided before any heavy work.

    With `resume`, checkpoints that a kill or a full disk left half-written are removed (saying so)
    and the newest complete one is used; with none, training starts from the beginning.

    Raises:
        GardenerError: `output_dir` holds checkpoints of an earlier run and `resume` is False.
    """
    output_dir = Path(output_dir)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if resume:
        while last is not None and not is_complete_checkpoint(last):
            logger.warning("%s was not written to the end (the run was interrupted while saving it): removing it",
                           Path(last).name)
            shutil.rmtree(last)
            last = get_last_checkpoint(str(output_dir))
        if last is None:
            logger.info("resume: no complete checkpoint in %s, starting from the beginning", output_dir)
        else:
            logger.info("resuming from %s", last)
        return last
    if last is not None:
        raise GardenerError(
            f"{output_dir} holds checkpoints of an earlier run; pass --resume to continue it or choose another --output-dir"
        )
    return None


def finetune_checkpoint(
    source: str,
    settings: FinetuneSettings,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    keep: int | None = None,
    criterion: str = "entropy",
    source_name: str | None = None,
    callbacks: Sequence[Any] | None = None,
) -> FinetuneResult:
    """Finetune a VideoMAE checkpoint (a pruned repo, or any VideoMAE with `keep` to prune on the fly).

    Args:
        source: Hub repo id or local folder.
        settings: data, Trainer arguments and clip options.
        revision / token: of `source` on the Hub.
        keep: prune on the fly to the `keep` best blocks by `criterion` first.
        criterion: block score for `keep`.
        source_name: how reports name the source (default: `source`; never a local path for the
            embedded default).
        callbacks: extra `TrainerCallback`s.

    Returns:
        The `FinetuneResult` of `finetune`.

    Raises:
        GardenerError: bad settings, existing checkpoints without `resume`, not a VideoMAE, bad data.
    """
    training_args = settings.training_args
    if not training_args.output_dir:
        raise GardenerError("training_args.output_dir is required: the model, reports and checkpoints go there")
    if settings.recipe not in RECIPES:
        raise GardenerError(f"recipe {settings.recipe!r}: expected default or paper")
    settings.clips.validate()
    check_training_length(training_args)
    progress = not training_args.disable_tqdm
    checkpoint = resume_checkpoint(training_args.output_dir, settings.resume)
    from transformers import VideoMAEConfig

    config_dict = read_config(source, revision=revision, token=token)
    require_videomae(source, config_dict)
    config = VideoMAEConfig.from_dict(config_dict)
    processor = load_processor(source, config, revision=revision, token=token)
    train_set, eval_set, labels, reports = build_datasets(
        settings.train_data, settings.eval_data, config, processor, settings.clips, progress=progress
    )
    training_args = resolve_training_args(training_args, has_eval=eval_set is not None, recipe=settings.recipe)
    torch.manual_seed(training_args.seed)
    model = load_classifier(source, labels, revision=revision, token=token, mean_pooling=settings.mean_pooling)
    require_finite(model, source)
    if keep is not None:
        if PruningRecord.from_model(model) is not None:
            logger.info("%s was pruned before; pruning it again composes the records", source)
        scores = score_model(model, criterion, progress=progress)
        scores.source = source_name or source
        plan = make_plan(scores, keep=keep)
        apply_plan(model, plan)
        logger.info("pruned on the fly: %s", plan.describe())
    report = {
        "model": source_name or source,
        "revision": revision,
        "keep": keep,
        "criterion": criterion if keep else None,
        "hyperparameters": hyperparameters(training_args, settings),
        "data": {name: data_report(r) for name, r in reports.items() if r is not None},
    }
    return finetune(
        model, train_set, eval_set, training_args, processor=processor, resume_from_checkpoint=checkpoint,
        callbacks=callbacks, report=report,
    )


def finetune_variant(
    variant: nn.Module,
    source: str,
    settings: FinetuneSettings,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
) -> tuple[FinetuneResult, dict[str, Any]]:
    """Finetune an in-memory pruned model: returns the result and the `training` dict for `build_card`.

    Args:
        variant: the pruned model (any supported VideoMAE class; a new classification head is added).
        source: the checkpoint it was pruned from (its processor config is used).
        settings: data, Trainer arguments (their `output_dir` is the run folder) and clip options.
    """
    record = PruningRecord.from_model(variant)
    args = settings.training_args
    if not settings.resume:  # refuse an earlier run before the folder below is touched (resuming: finetune_checkpoint)
        resume_checkpoint(args.output_dir, resume=False)
    # The variant is finetuned from a folder inside the run folder, written by the main process only:
    # once torch.distributed is up, transformers saves on rank 0 only, so a folder per process would
    # stay empty on the others. The other processes wait, then read the same folder.
    folder = Path(args.output_dir) / VARIANT_FOLDER
    with args.main_process_first(local=False, desc="saving the pruned variant"):
        if args.process_index == 0:
            save_pruned(variant, folder, source=source, revision=revision, token=token)
    result = finetune_checkpoint(str(folder), settings, source_name=record.source_model if record else None)
    return result, training_summary(result, settings)


def training_summary(result: FinetuneResult, settings: FinetuneSettings) -> dict[str, Any]:
    """The `training` dict `build_card` shows: names (not local paths), sizes, metrics, hyperparameters."""
    data = result.report["data"]
    return {
        "train_data": data_name(settings.train_data),
        "eval_data": data_name(settings.eval_data) if settings.eval_data is not None else None,
        **_eval_dataset(settings.eval_data),
        "num_train_videos": data["train"]["used"],
        "num_eval_videos": data.get("eval", {}).get("used") if data.get("eval") else None,
        "num_labels": len(result.report["labels"]),
        "metrics": {k: result.metrics[k] for k in METRIC_KEYS if k in result.metrics} or None,
        "hyperparameters": result.report["hyperparameters"],
        "global_step": result.report["global_step"],
        "selected_on_eval": bool(result.report.get("best_checkpoint")) and settings.eval_data is not None,
        "curve_file": CURVE_FILE if (result.output_dir / CURVE_FILE).exists() else None,
        "confusion_file": CONFUSION_FILE if (result.output_dir / CONFUSION_FILE).exists() else None,
    }


def _eval_dataset(eval_data: Any) -> dict[str, Any]:
    """The evaluation set as the model-index names it: the dataset (folder) name and the split used."""
    if not isinstance(eval_data, (str, os.PathLike)):
        return {"eval_dataset": None, "eval_split": None}
    path = Path(eval_data)
    if path.name.lower() in SPLIT_NAMES and path.parent.name:  # ucf101/test
        return {"eval_dataset": path.parent.name, "eval_split": path.name}
    split = eval_split(path)
    if (path / split).is_dir():  # a folder of split folders: evaluation read one of them
        return {"eval_dataset": path.name, "eval_split": split}
    return {"eval_dataset": path.name, "eval_split": "validation"}


def hyperparameters(training_args: TrainingArguments, settings: FinetuneSettings) -> dict[str, Any]:
    """The settings a reader needs to reproduce a finetune (shown in the model card)."""
    total_batch = (
        training_args.per_device_train_batch_size * max(1, training_args.world_size) * training_args.gradient_accumulation_steps
    )
    clips = settings.clips
    return {
        "recipe": settings.recipe,
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
        "mean_pooling": settings.mean_pooling,
        "frame_stride": clips.frame_stride,
        "sampling": clips.sampling,
        "eval_sampling": clips.eval_sampling,
        "eval_clips": clips.eval_clips,
        "hflip": clips.hflip,
    }


def with_output_dir(settings: FinetuneSettings, output_dir: str | Path) -> FinetuneSettings:
    """A copy of `settings` whose Trainer writes into `output_dir`."""
    return dataclasses.replace(settings, training_args=dataclasses.replace(settings.training_args, output_dir=str(output_dir)))

