#!/usr/bin/env python
"""Finetune a (pruned) VideoMAE on a folder of videos with transformers.Trainer.

    python scripts/finetune.py MODEL --train-dir DIR --eval-dir DIR --output-dir OUT [--keep K]
    accelerate launch scripts/finetune.py MODEL --train-dir DIR --eval-dir DIR --output-dir OUT

Every transformers.TrainingArguments option is accepted (--learning-rate, --num-train-epochs, --bf16,
--gradient-checkpointing, ...); `--recipe paper` switches to the paper's recipe; `--resume` continues
an interrupted run. Same as `gardener finetune`; see `--help`.
"""

import sys

from gardener_hf.cli.finetune import main

if __name__ == "__main__":
    sys.exit(main(prog="finetune.py"))
