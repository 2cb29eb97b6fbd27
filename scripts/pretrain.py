#!/usr/bin/env python
"""Masked-autoencoder pretraining of a small 12-block VideoMAE on synthetic moving handwritten digits.

    python scripts/pretrain.py --output-dir runs/digits-mae --steps 6000

The work is done by `gardener_hf.research.pretrain`; see its docstring and `--help`. Same as `gardener pretrain`.
"""

import sys

from gardener_hf.cli.pretrain import main

if __name__ == "__main__":
    sys.exit(main(prog="pretrain.py"))
