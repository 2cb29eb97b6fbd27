"""Evaluate a finetuned VideoMAE classifier on labelled videos: top-1, top-5, mean per-class accuracy."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments, VideoMAEForVideoClassification

from ..checkpoint import SafetensorsCheckpoint, load_processor, offline_kwargs, public_name, read_config, require_finite
from ..constants import CONFUSION_FILE, EVAL_FILE
from ..data import VideoClassificationDataset, VideoTransform, collate_videos, eval_split, find_videos
from ..errors import GardenerError
from ..plotting import plot_confusion_matrix
from .finetuning import data_report, logits_of
from .metrics import classification_metrics
from .trainer import VideoTrainer, default_workers


def load_trained_classifier(model_id: str, *, revision: str | None = None, token: str | bool | None = None):
    """A finetuned `VideoMAEForVideoClassification` with every weight from the checkpoint, all finite.

    Raises:
        GardenerError: no safetensors weights, a head (or any weight) missing from the checkpoint, or
            non-finite weights.
    """
    SafetensorsCheckpoint.open(model_id, revision=revision, token=token)  # refuse pickle-only or broken weights clearly
    try:
        model, info = VideoMAEForVideoClassification.from_pretrained(
            model_id, revision=revision, token=token, use_safetensors=True, output_loading_info=True,
            **offline_kwargs(model_id),
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise GardenerError(f"could not load {public_name(model_id)}: {str(err).splitlines()[0]}") from None
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise GardenerError(
            f"{public_name(model_id)} lacks {len(missing)} weight(s) of a classifier, e.g. {missing[0]}: it would be "
            "evaluated with a random head. Finetune it first (gardener finetune)"
        )
    require_finite(model, model_id)
    return model


def evaluate_model(
    model_id: str,
    data: Any,
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

    Args:
        model_id: Hub repo id or folder of a `VideoMAEForVideoClassification`.
        data: labelled videos (folder, CSV/JSON manifest or `datasets.Dataset`).
        output_dir: where `eval_results.json` and `confusion_matrix.png` go (None: nowhere).
        batch_size / num_clips / sampling / frame_stride / num_workers / strict: how clips are read;
            `num_workers=-1` picks CPUs - 1 (at most 8).
        progress: progress bars.

    Returns:
        The metrics dict (with per-class accuracy and the confusion matrix) plus "labels" and a
        "data" report.
    """
    config_dict = read_config(model_id, revision=revision, token=token)
    if "VideoMAEForVideoClassification" not in (config_dict.get("architectures") or []):
        raise GardenerError(f"{model_id} is not a VideoMAEForVideoClassification checkpoint (finetune it first)")
    model = load_trained_classifier(model_id, revision=revision, token=token)
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
        trainer = VideoTrainer(model=model, args=args, data_collator=collate_videos)
        prediction = trainer.predict(dataset)
        main = trainer.is_world_process_zero()
    metrics = classification_metrics(logits_of(prediction.predictions), prediction.label_ids, num_classes=len(labels))
    metrics["labels"] = labels
    metrics["data"] = data_report(report)
    if output_dir is not None and main:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / EVAL_FILE).write_text(json.dumps({"model": model_id, "data": str(data), "metrics": metrics}, indent=2) + "\n")
        plot_confusion_matrix(metrics["confusion_matrix"], labels, output_dir / CONFUSION_FILE)
    return metrics
