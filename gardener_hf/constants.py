"""Names shared across the package: files a pruned repo holds, config keys, the embedded default, metric keys.

Only constants live here (no imports of the package's own modules), so every room may import it.
"""

from __future__ import annotations

from pathlib import Path

# -- files of a checkpoint folder
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
#: the pruning record beside the weights (the same record is in config.json under CONFIG_KEY)
PRUNING_FILE = "gardener_pruning.json"
#: key of the pruning record in config.json
CONFIG_KEY = "gardener"
#: files describing how inputs are prepared; copied unchanged so a pruned repo works in pipelines
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
)

# -- files a finetune, an evaluation or a staged variant writes beside the model
REPORT_FILE = "finetune_report.json"
EVAL_FILE = "eval_results.json"
CURVE_FILE = "training_curve.png"
CONFUSION_FILE = "confusion_matrix.png"
PLOT_FILE = "block_scores.png"

# -- the embedded default: a 12-block VideoMAE this project pretrained itself (README, "Set up and run")
#: folder of the embedded default checkpoint inside the installed package
EMBEDDED_DEFAULT = str(Path(__file__).parent / "default_model")
#: how records, cards and reports name the embedded default (never its local path)
EMBEDDED_NAME = "gardener_hf/default_model"

# -- classification metrics (fractions in [0, 1]) that reports, cards and the Trainer log
METRIC_KEYS = ("top1", "top5", "mean_class_accuracy")
