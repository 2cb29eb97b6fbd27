"""The `transformers.Trainer` gardener_hf finetunes and evaluates with, and the defaults it runs under.

`VideoTrainer` averages several clips per video at evaluation and reloads its own checkpoints
through `from_pretrained`; `resolve_training_args` fills in what depends on the machine (DataLoader
workers, mixed precision) and on the data (evaluation cadence, the best-model metric).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from ..constants import SAFE_WEIGHTS
from ..errors import GardenerError

logger = logging.getLogger(__name__)

#: Defaults we chose (see the README): the Trainer's own are for text models.
TRAINER_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5,
    "weight_decay": 0.05,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,  # a float below 1 is a fraction of the training steps (transformers >= 5)
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
#: `recipe="paper"`: the released code's recipe (docs/method.md §6): AdamW, wd 0.05, peak lr 1e-3,
#: linear warmup then cosine, batch 64 in total, 16 frames at stride 4 from the start of the video.
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
RECIPES = ("default", "paper")


def default_training_args(output_dir: str, **overrides: Any) -> TrainingArguments:
    """`TrainingArguments` with gardener_hf's defaults (`TRAINER_DEFAULTS`), then `overrides`."""
    return TrainingArguments(output_dir=output_dir, **{**TRAINER_DEFAULTS, **overrides})


class VideoTrainer(Trainer):
    """Trainer that averages several clips per video at evaluation ([B, clips, T, C, H, W] inputs),
    and reloads its own checkpoints (resume, best model) through `from_pretrained`.

    The stock Trainer reloads a checkpoint with a raw `load_state_dict(strict=False)` of
    model.safetensors. transformers writes VideoMAE checkpoints in the Hub's legacy key form
    (`q_bias` / `v_bias`) and renames them only inside `from_pretrained`, so the raw load silently
    skipped the attention query/value biases (transformers 5.23): a resumed run or the "best" model
    kept the wrong biases.
    """

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        # Stop at the first non-finite loss: the Trainer would otherwise hide it from its logs
        # (logging_nan_inf_filter), train on, and save garbage with a "train_loss" of 0.
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        loss = result[0] if return_outputs else result
        if not bool(torch.isfinite(loss.detach()).all()):
            raise GardenerError(
                f"the training loss became {float(loss.detach().float().mean())} at step {self.state.global_step}; "
                "nothing was saved. Lower the learning rate, or check the weights and the data"
            )
        return result

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
        return plain and folder is not None and os.path.isfile(os.path.join(folder, SAFE_WEIGHTS))

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


def resolve_training_args(training_args: TrainingArguments, *, has_eval: bool, recipe: str = "default") -> TrainingArguments:
    """Fill in run-time defaults: workers, mixed precision, evaluation/saving cadence, the paper's batch.

    Args:
        training_args: the arguments as given.
        has_eval: an evaluation set exists (evaluation follows the save cadence; the best top-1 is kept).
        recipe: `"paper"` accumulates gradients up to the paper's total batch of 64.

    Returns:
        `training_args` itself when nothing changes, else a copy with the changes.
    """
    changes: dict[str, Any] = {}
    if training_args.hub_token and not training_args.push_to_hub:
        changes["hub_token"] = None  # the Trainer pickles its arguments into every checkpoint; gardener pushes itself
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
    if recipe == "paper":
        per_step = training_args.per_device_train_batch_size * world
        changes["gradient_accumulation_steps"] = max(1, math.ceil(PAPER_BATCH / per_step))
        if per_step * changes["gradient_accumulation_steps"] != PAPER_BATCH:
            logger.warning("recipe paper: total batch %d (not 64): %d per step x %d accumulation",
                           per_step * changes["gradient_accumulation_steps"], per_step, changes["gradient_accumulation_steps"])
    if not changes:
        return training_args
    return dataclasses.replace(training_args, **changes)
