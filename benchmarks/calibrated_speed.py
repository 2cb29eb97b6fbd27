#!/usr/bin/env python
"""Cost of the calibrated criteria, in forward passes over the same calibration clips, and their peak memory.

For each model shape, one plain forward pass over the calibration clips (the same batches, no hooks) is timed
next to each criterion, in the same process, alternating, best of `--repeats`:

- `block-influence` and `angular` on the encoder (`VideoMAEModel`): one pass with hooks (goal: <= ~1.2x);
- `removal-drift` on the encoder: one pass plus re-running blocks i+1.. for each block i (goal: <= (L+1)/2 passes);
- `reconstruction` on `VideoMAEForPreTraining` (90% tube masking), against that model's own forward (encoder on
  the visible tokens + decoder): the same prefix reuse, then the decoder once per block (goal: <= (L+1)/2).

Memory: a fresh process loads the model and the clips, then runs one criterion (or only the plain forward passes)
while a thread samples its resident set size every 10 ms; the table gives the peak during the run above the RSS
just before it, so what the criterion adds on top of inference is the difference between its row and the
forward row. (The process's lifetime peak, `ru_maxrss`, is set by building the model and says nothing here.)

Shapes: `default` is the embedded default (12 blocks, 64 wide, 16x32x32 clips); `base` is VideoMAE-B (12
blocks, 768 wide, 16x224x224 clips, random weights: the timing does not depend on them).

    python benchmarks/calibrated_speed.py --output benchmarks/results/calibrated_speed.json
    python benchmarks/calibrated_speed.py --shapes base --clips 8 --batch-size 4 --output ...

Ratios are measured side by side in one run; absolute times are this machine's only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import base_info  # noqa: E402

CRITERIA = ("block-influence", "angular", "removal-drift", "reconstruction")


def build(shapes: str, pretraining: bool):
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEModel

    from gardener_hf.constants import EMBEDDED_DEFAULT

    if shapes == "default":
        config = VideoMAEConfig.from_pretrained(EMBEDDED_DEFAULT)
    else:
        config = VideoMAEConfig()  # VideoMAE-B: 12 x 768, 16 frames of 224x224, tubelet 2, patch 16
    config.use_mean_pooling = False
    torch.manual_seed(0)
    model = (VideoMAEForPreTraining if pretraining else VideoMAEModel)(config).eval()
    return model


def clips(model, n: int) -> torch.Tensor:
    c = model.config
    return torch.randn(n, c.num_frames, 3, c.image_size, c.image_size, generator=torch.Generator().manual_seed(1))


def plain_forward(model, pixels: torch.Tensor, batch_size: int, seed: int = 0) -> None:
    from gardener_hf.calibrated import _fixed_masks

    masks = _fixed_masks(model, pixels, seed)
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            model(pixel_values=pixels[start:start + batch_size], **{k: v[start:start + batch_size] for k, v in masks.items()})


def criterion_pass(model, criterion: str, pixels: torch.Tensor, batch_size: int) -> None:
    from gardener_hf import score_model

    score_model(model, criterion, calibration=pixels, calibration_samples=len(pixels), batch_size=batch_size,
                progress=False)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def one(args: argparse.Namespace) -> None:
    """Child process: load, run one thing while sampling RSS, print the run's RSS before and peak (KiB) as JSON."""
    import threading

    model = build(args.shapes, args.one == "reconstruction" or args.one == "forward-pretraining")
    pixels = clips(model, args.clips)
    before = _rss_kib()
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib())
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if args.one.startswith("forward"):
        plain_forward(model, pixels, args.batch_size)
    else:
        criterion_pass(model, args.one, pixels, args.batch_size)
    done.set()
    sampler.join()
    print(json.dumps({"before_kib": before, "peak_kib": max(peak[0], _rss_kib())}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", choices=("default", "base"), default="default")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--memory-only", action="store_true",
                        help="keep the timings already in --output and measure the memory again")
    args = parser.parse_args(argv)
    if args.one:
        one(args)
        return 0
    if args.output is None:
        parser.error("--output is required")

    rows = {}
    if args.memory_only:
        rows = json.loads(args.output.read_text())["criteria"]
    for pretraining, criteria in ((False, CRITERIA[:3]), (True, CRITERIA[3:])):
        if args.memory_only:
            break
        model = build(args.shapes, pretraining)
        pixels = clips(model, args.clips)
        plain_forward(model, pixels[: args.batch_size], args.batch_size)  # warm-up
        forward = best_of(lambda: plain_forward(model, pixels, args.batch_size), args.repeats)
        for criterion in criteria:
            seconds = best_of(lambda: criterion_pass(model, criterion, pixels, args.batch_size), args.repeats)
            rows[criterion] = {"model": type(model).__name__, "seconds": round(seconds, 3),
                               "forward_seconds": round(forward, 3), "passes": round(seconds / forward, 2)}
            print(f"{criterion}: {seconds:.2f} s = {seconds / forward:.2f} forward passes", flush=True)
    memory = {}
    for what in ("forward", *CRITERIA[:3], "forward-pretraining", "reconstruction"):
        out = subprocess.run([sys.executable, __file__, "--one", what, "--shapes", args.shapes, "--clips", str(args.clips),
                              "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
        memory[what] = json.loads(out.stdout.strip().splitlines()[-1])
    def during(what: str) -> float:
        return round((memory[what]["peak_kib"] - memory[what]["before_kib"]) / 1024, 1)

    for criterion in CRITERIA:
        forward_row = "forward-pretraining" if criterion == "reconstruction" else "forward"
        rows[criterion].pop("peak_mib", None), rows[criterion].pop("peak_mib_forward", None)
        rows[criterion]["run_mib"] = during(criterion)
        rows[criterion]["run_mib_forward"] = during(forward_row)
        rows[criterion]["extra_mib"] = round(during(criterion) - during(forward_row), 1)
    config = build(args.shapes, False).config
    result = {"benchmark": "calibrated_speed", "shapes": args.shapes, "clips": args.clips, "batch_size": args.batch_size,
              "repeats": args.repeats, "blocks": config.num_hidden_layers, "hidden": config.hidden_size,
              "input": f"{config.num_frames}x{config.image_size}x{config.image_size}",
              "goal_passes": {"block-influence": 1.2, "angular": 1.2,
                              "removal-drift": (config.num_hidden_layers + 1) / 2,
                              "reconstruction": (config.num_hidden_layers + 1) / 2},
              "machine": base_info(), "criteria": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# Calibrated criteria: cost in forward passes ({args.shapes} shapes)", "",
             f"{result['blocks']} blocks x {result['hidden']}, clips {result['input']}, {args.clips} clips in batches of "
             f"{args.batch_size}, best of {args.repeats}; {result['machine']['cpu']}, {result['machine']['cores_available']} "
             f"cores, {result['machine']['date']}. Written by `benchmarks/calibrated_speed.py`.", "",
             "| criterion | model | seconds | forward pass | passes | goal | RSS growth MiB (forward only) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for criterion, row in rows.items():
        lines.append(f"| `{criterion}` | {row['model']} | {row['seconds']} | {row['forward_seconds']} | {row['passes']} | "
                     f"<= {result['goal_passes'][criterion]:g} | {row['run_mib']} ({row['run_mib_forward']}) |")
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
