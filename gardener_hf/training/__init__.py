"""Finetune and evaluate (pruned) VideoMAE classifiers with `transformers.Trainer`, under Accelerate.

Modules: `finetuning` (the training flow: `finetune`, `finetune_checkpoint`), `trainer` (the Trainer subclass and its defaults),
`evaluate` (`evaluate_model`), `metrics` (top-k / per-class accuracy through a bundled `evaluate`
module). Importing this package imports `transformers.Trainer`.
"""

# Lived in gardener_hf.finetune (0.1), which is now this package: re-exported so old imports keep working.
from ..checkpoint import load_classifier, load_processor  # noqa: F401
from ..constants import CONFUSION_FILE, CURVE_FILE, EVAL_FILE, REPORT_FILE  # noqa: F401
from .evaluate import evaluate_model
from .finetuning import (
    ClipConfig,
    FinetuneResult,
    FinetuneSettings,
    build_datasets,
    finetune,
    finetune_checkpoint,
    finetune_variant,
    hyperparameters,
    training_summary,
)
from .metrics import classification_metrics, compute_metrics_fn, format_metrics_table
from .trainer import (
    PAPER_RECIPE,
    TRAINER_DEFAULTS,
    VideoTrainer,
    default_training_args,
    default_workers,
    load_checkpoint_weights,
    resolve_training_args,
)

__all__ = [
    "PAPER_RECIPE",
    "TRAINER_DEFAULTS",
    "ClipConfig",
    "FinetuneResult",
    "FinetuneSettings",
    "VideoTrainer",
    "build_datasets",
    "classification_metrics",
    "compute_metrics_fn",
    "default_training_args",
    "default_workers",
    "evaluate_model",
    "finetune",
    "finetune_checkpoint",
    "finetune_variant",
    "format_metrics_table",
    "hyperparameters",
    "load_checkpoint_weights",
    "resolve_training_args",
    "training_summary",
]
