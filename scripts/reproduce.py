#!/usr/bin/env python
"""Reproduce the paper's study (scores, oracle, correlations, pruning sweep) on a VideoMAE checkpoint.

    python scripts/reproduce.py --output-dir docs/study

See gardener_hf/research/study/ for what is measured, and docs/study/REPORT.md for the committed result.
"""

import sys

from gardener_hf.cli.study import main

if __name__ == "__main__":
    sys.exit(main(prog="reproduce.py"))
