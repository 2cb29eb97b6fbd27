#!/usr/bin/env python
"""Masked-autoencoder pretraining of a small 12-block VideoMAE on synthetic moving handwritten digits.

    python scripts/pretrain.py --output-dir runs/digits-mae --steps 6000

The work is done by `gardener_hf.pretrain`; see its docstring and `--help`.
"""

import sys

from gardener_hf.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
