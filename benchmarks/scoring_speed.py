"""How fast is the float16-code entropy of a VideoMAE-B encoder, relative to reading its weights once?

Builds 12 VideoMAE-B shaped blocks (per block: query/key/value/attention-output 768x768, fc1 3072x768,
fc2 768x3072; 7,077,888 float32 weights, `torch.randn * 0.02`, seeded) and times, in one process,
best of N:

  (a) read-once  : `[m.sum() for m in mats]` over all 72 matrices, the floor for any scorer;
  (b) gardener   : `f16_code_counts` + `entropy_from_counts` per block (active backend, all threads);
  (b1)           : the same on a single thread (for reference);
  (c) paper-style: per block, concatenate, cast to float16, `pandas.Series(values).value_counts()`,
                   entropy (what the authors' notebooks do); skipped with a note if pandas is absent;
  (d) torch      : the pure-torch fallback backend (`x.half()` + `torch.bincount`).

Each method is timed over N back-to-back runs (after one untimed warm-up run), and the whole
schedule is done twice, so a slow phase of a shared machine does not decide a result alone. A last
row, (b'), times (b) with every run directly after an (a) run: torch's OpenMP worker threads keep
spinning for a few milliseconds after a parallel op such as `sum`, and on a machine with few cores
they compete with the counting threads (`OMP_WAIT_POLICY=PASSIVE` removes the difference).
Prints a table and the ratios to (a), and writes JSON and markdown next to each other
(default `benchmarks/results/scoring_speed.{json,md}`).

Usage:
    python benchmarks/scoring_speed.py [--repeats 20] [--slow-repeats 2] [--output PATH.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import base_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from gardener_hf import _f16hist
from gardener_hf._f16hist import entropy_from_counts, f16_code_counts

SHAPES = {
    "query": (768, 768),
    "key": (768, 768),
    "value": (768, 768),
    "attn_out": (768, 768),
    "fc1": (3072, 768),
    "fc2": (768, 3072),
}
NUM_BLOCKS = 12


def make_blocks(seed: int = 0) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(*s, generator=gen) * 0.02 for s in SHAPES.values()] for _ in range(NUM_BLOCKS)]


def machine_info() -> dict:
    info = {
        **base_info(),
        "f16hist_backend": _f16hist.BACKEND,
        "f16hist_threads": _f16hist.NUM_THREADS,
    }
    for mod in ("numba", "pandas"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


class use_backend:
    """Temporarily switch `_f16hist.BACKEND`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.saved = _f16hist.BACKEND
        _f16hist.BACKEND = self.name

    def __exit__(self, *exc: object) -> None:
        _f16hist.BACKEND = self.saved


def read_once(blocks):
    return [m.sum() for b in blocks for m in b]


def gardener(blocks, threads=None):
    return [entropy_from_counts(f16_code_counts(b, threads=threads)) for b in blocks]


def torch_fallback(blocks):
    with use_backend("torch"):
        return [entropy_from_counts(f16_code_counts(b)) for b in blocks]


def paper_style(blocks):
    import pandas as pd

    out = []
    for b in blocks:
        values = torch.cat([m.reshape(-1) for m in b]).to(torch.float16).numpy()
        counts = pd.Series(values).value_counts().to_numpy()
        p = counts / counts.sum()
        out.append(float(-(p * np.log(p)).sum()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="best-of-N for the fast methods (default 20)")
    ap.add_argument("--slow-repeats", type=int, default=2, help="best-of-N for the pandas method (default 2)")
    ap.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "scoring_speed.json",
        help="JSON path; the markdown goes next to it with a .md suffix",
    )
    args = ap.parse_args(argv)

    info = machine_info()
    # First call: imports numba and loads (or compiles) the cached kernels; reported, not timed below.
    t0 = time.perf_counter()
    f16_code_counts([torch.zeros(8)])
    first_call_s = time.perf_counter() - t0
    info["f16hist_backend"] = _f16hist.BACKEND
    stats = getattr((_f16hist._kernels or {}).get("f32"), "stats", None)
    if stats is not None:
        info["numba_cache"] = "hit" if sum(stats.cache_hits.values()) else "miss (compiled)"

    blocks = make_blocks()
    per_block = sum(m.numel() for m in blocks[0])
    try:
        import pandas  # noqa: F401

        have_pandas = True
    except ImportError:
        have_pandas = False

    methods: dict[str, tuple[str, Callable, int]] = {
        "a": ("read-once: sum of all weights", read_once, args.repeats),
        "b": (
            f"gardener f16_code_counts + entropy ({_f16hist.BACKEND}, {_f16hist.NUM_THREADS} threads)",
            gardener,
            args.repeats,
        ),
        "b1": ("gardener, 1 thread", lambda bl: gardener(bl, threads=1), args.repeats),
        "c": ("paper-style: cat + float16 + pandas value_counts", paper_style, args.slow_repeats),
        "d": ("pure-torch fallback: half() + bincount", torch_fallback, args.repeats),
    }
    if not have_pandas:
        del methods["c"]

    # Correctness before timing: identical counts across backends, matching entropies everywhere.
    ent = {k: fn(blocks) for k, (_, fn, _) in methods.items() if k != "a"}
    with use_backend("torch"):
        ref_counts = [f16_code_counts(b) for b in blocks]
    counts_equal = all(np.array_equal(f16_code_counts(b), r) for b, r in zip(blocks, ref_counts, strict=True))
    max_entropy_diff = {k: float(np.max(np.abs(np.array(v) - np.array(ent["d"])))) for k, v in ent.items()}

    def timed(fn: Callable) -> float:
        t = time.perf_counter()
        fn(blocks)
        return time.perf_counter() - t

    best = {k: float("inf") for k in methods}
    runs = {k: 0 for k in methods}
    for _ in range(2):
        for k, (_, fn, n) in methods.items():
            if k != "c":
                fn(blocks)  # untimed warm-up (pandas is far too slow to bother)
            for _ in range(max(1, n // 2)):
                best[k] = min(best[k], timed(fn))
                runs[k] += 1
    methods["b'"] = ("(b), each run right after an (a) run", gardener, args.repeats)
    best["b'"] = float("inf")
    for _ in range(args.repeats):
        timed(read_once)
        best["b'"] = min(best["b'"], timed(gardener))
    runs["b'"] = args.repeats

    rows = [
        {
            "key": k,
            "method": methods[k][0],
            "repeats": runs[k],
            "seconds": best[k],
            "ratio_to_read_once": best[k] / best["a"],
        }
        for k in methods
    ]
    result = {
        "workload": f"{NUM_BLOCKS} VideoMAE-B blocks x 6 matrices, {per_block:,} float32 weights each "
        "(randn * 0.02, seed 0)",
        "machine": info,
        "first_call_seconds": first_call_s,
        "counts_identical_numba_vs_torch": counts_equal,
        "max_entropy_diff_vs_torch": max_entropy_diff,
        "results": rows,
        "ratios": {f"({k})/(a)": best[k] / best["a"] for k in methods if k != "a"},
        "pandas_skipped": not have_pandas,
    }

    lines = [
        "# Scoring speed: float16-code entropy vs reading the weights once",
        "",
        f"Workload: {result['workload']}. Best of N runs, one process.",
        "",
        "| key | method | best of | seconds | x read-once |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| ({r['key']}) | {r['method']} | {r['repeats']} | {r['seconds']:.4f} | {r['ratio_to_read_once']:.2f} |"
        for r in rows
    ]
    lines += [
        "",
        "Ratios: " + ", ".join(f"{k} = {v:.2f}" for k, v in result["ratios"].items()),
        "",
        (
            "- (b') vs (b): torch's OpenMP workers spin for a few ms after a parallel op and, with few cores,"
            " compete with the counting threads (OMP_WAIT_POLICY=PASSIVE removes the gap)"
        ),
        f"- counts identical, numba vs torch backend: {counts_equal}",
        "- max |entropy - torch backend| (nats): " + ", ".join(f"({k}) {v:.2e}" for k, v in max_entropy_diff.items()),
        "  (pandas' value_counts merges +0.0 and -0.0; the code histogram keeps them apart)",
        f"- first call (numba import + kernel load/compile + self-check): {first_call_s:.2f} s"
        + (f", numba cache {info['numba_cache']}" if "numba_cache" in info else ""),
    ]
    if not have_pandas:
        lines.append("- (c) skipped: pandas is not installed")
    lines += ["", "Machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), ""]
    md = "\n".join(lines)

    print(md)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
