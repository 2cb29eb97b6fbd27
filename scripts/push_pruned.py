#!/usr/bin/env python
"""Prune a ViT / VideoMAE checkpoint by block entropy and push each variant to the Hub.

    python scripts/push_pruned.py MCG-NJU/videomae-base --keep 4
    python scripts/push_pruned.py MCG-NJU/videomae-base --keep 2 4 6 --dry-run --output-dir pruned/

Same options as `gardener push`; see `--help`.
"""

import sys

from gardener_hf.cli import push_main

if __name__ == "__main__":
    sys.exit(push_main())
