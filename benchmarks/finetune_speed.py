"""How much faster does a pruned VideoMAE finetune, and can real video files keep it fed?

Two measurements, side by side in one process:

1. Model throughput. One VideoMAEForVideoClassification at VideoMAE-B width (hidden 768, 12 heads,
   MLP 3072, 12 blocks, patch 16, tubelet 2, mean pooling, SDPA attention, random init with seed 0)
   and pruned deep copies of it (`prune_model(copy, score_model(base), keep=k)`, default k = 8, 4).
   For each variant: inference samples/s (eval mode, `torch.inference_mode`) and training samples/s
   (forward + loss + backward + AdamW step, fused AdamW as `Trainer`'s default `adamw_torch_fused`)
   on one fixed in-memory batch. After a warm-up (1 inference, 2 training steps per variant: the first
   AdamW step allocates its state), the variants are interleaved, full, k8, k4, full, k8, k4, ..., so
   a slow phase of a shared machine hits all of them alike; each number is the best of N timed steps
   (the median is kept too). Speedups are set against the FLOPs ratio of
   `gardener_hf.stats.encoder_flops`, which counts the parts pruning does not touch as well (patch
   embedding and classifier head), so a perfect implementation reaches speedup / FLOPs ratio = 1.

2. Data pipeline. Moving-shape mp4 files (`gardener_hf.research.synthetic.make_motion_dataset`, 4 classes) read
   through `gardener_hf.data` exactly as finetuning reads them: `find_videos` ->
   `VideoClassificationDataset` (random clip of `frames` frames at stride 2, train-mode
   `VideoTransform`: random short-side scale, random crop, ImageNet normalisation) -> `collate_videos`.
   (a) DataLoader alone, samples/s for each `num_workers` (steady state: the first batch, which pays
   for starting the workers, is reported separately); (b) the smallest pruned model trained on one
   in-memory batch, against (c) the same model trained on batches from the DataLoader (including the
   copy to the device), interleaved b, c(w0), c(w1), c(w2), with the order rotated each round. The
   first step of each segment (for (c): worker start-up) is untimed; with workers > 0 they may have
   prefetched up to `prefetch_factor * num_workers` batches during it, so when the loader is close to
   the model's speed use `--feed-steps` well above that.

The default is a reduced configuration for a small CPU (8 frames x 112x112 = 196 tokens instead of
VideoMAE-B's 16 x 224x224 = 1568; same width and depth); the same script runs the real one on a GPU:

    python benchmarks/finetune_speed.py --device cuda --frames 16 --size 224 --dtype bf16 --batch 16 \\
        --repeats 20 --feed-steps 50 --output benchmarks/results/finetune_speed_cuda.json

Usage:
    python benchmarks/finetune_speed.py [--frames 8] [--size 112] [--batch 4] [--device cpu]
        [--dtype fp32|bf16] [--repeats 8] [--quick] [--output PATH.json]

Writes JSON and markdown next to each other (default `benchmarks/results/finetune_speed.{json,md}`);
`--quick` (a smoke run of about a minute) writes nothing unless `--output` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import transformers
from _machine import base_info  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from gardener_hf import prune_model, score_model
from gardener_hf.data import VideoClassificationDataset, VideoTransform, collate_videos, find_videos
from gardener_hf.stats import count_parameters, encoder_flops, num_tokens
from gardener_hf.research.synthetic import make_motion_dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FULL_FRAMES, FULL_SIZE = 16, 224  # VideoMAE-B's input
GOAL = 0.9  # issue: pruned speedup >= 0.9 x FLOPs ratio; real-file training >= 0.9 x in-memory training
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "finetune_speed.json"


# ----------------------------------------------------------------------------------------------------------------
# machine


def load_average() -> str | None:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info(device: torch.device, dtype: str) -> dict:
    return {
        **base_info(),
        "transformers": transformers.__version__,
        "av": __import__("av").__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype,
        "load_average_start": load_average(),
    }


# ----------------------------------------------------------------------------------------------------------------
# timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, lr: float) -> tuple[torch.optim.Optimizer, str]:
    """Fused AdamW (what `Trainer` uses by default), falling back to the for-each implementation."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, fused=True), "AdamW (fused)"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05), "AdamW"


class Variant:
    """One model under test with its optimizer and its step functions."""

    def __init__(self, name: str, model: torch.nn.Module, kept: list[int] | None, lr: float,
                 device: torch.device, dtype: str, num_labels: int) -> None:
        self.name, self.model, self.kept = name, model.to(device), kept
        self.device, self.dtype = device, dtype
        self.blocks = model.config.num_hidden_layers
        self.optimizer, self.optimizer_name = make_optimizer(self.model, lr)
        self.params = count_parameters(model)
        self.flops = encoder_flops(model.config, self.blocks, num_labels)
        self.losses: list[float] = []

    def infer(self, pixel_values: torch.Tensor) -> None:
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.dtype):
            self.model(pixel_values=pixel_values)

    def train_step(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> None:
        self.model.train()
        with autocast(self.device, self.dtype):
            loss = self.model(pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(loss.detach())


def attention_share(tokens: int, hidden: int, intermediate: int) -> float:
    """Share of a block's MACs in the two attention matmuls (QK^T, AV), as `block_flops` counts them."""
    return 2 * tokens * hidden / (4 * hidden * hidden + 2 * hidden * intermediate + 2 * tokens * hidden)


def summary(seconds: list[float], batch: int) -> dict:
    best, median = min(seconds), statistics.median(seconds)
    return {"seconds": seconds, "best_s": best, "median_s": median,
            "samples_per_s": batch / best, "samples_per_s_median": batch / median}


# ----------------------------------------------------------------------------------------------------------------
# part 1: model throughput


def build_variants(args: argparse.Namespace, device: torch.device) -> tuple[list[Variant], VideoMAEConfig]:
    config = VideoMAEConfig(
        image_size=args.size, num_frames=args.frames, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, patch_size=16, tubelet_size=2,
        num_labels=args.num_labels, use_mean_pooling=True, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    base = VideoMAEForVideoClassification(config)
    scores = score_model(base, progress=False)
    variants = []
    for keep in [None, *args.keep]:
        model = copy.deepcopy(base)
        kept = None
        if keep is not None:
            kept = prune_model(model, scores, keep=keep).kept
        name = "full" if keep is None else f"keep {keep}"
        variants.append(Variant(name, model, kept, args.lr, device, args.dtype, args.num_labels))
    return variants, config


def measure_models(variants: list[Variant], args: argparse.Namespace, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=gen).to(device)
    y = torch.randint(0, args.num_labels, (args.batch,), generator=gen).to(device)

    t0 = time.perf_counter()
    for v in variants:
        v.infer(x)
        v.train_step(x, y)
        v.train_step(x, y)
    synchronize(device)
    log(f"warm-up done in {time.perf_counter() - t0:.1f} s")

    infer = {v.name: [] for v in variants}
    train = {v.name: [] for v in variants}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for v in variants:
            infer[v.name].append(timed(lambda v=v: v.infer(x), device))
        for v in variants:
            train[v.name].append(timed(lambda v=v: v.train_step(x, y), device))
        log(f"repeat {r + 1}/{args.repeats} ({time.perf_counter() - t0:.1f} s): "
            + ", ".join(f"{v.name} infer {infer[v.name][-1]:.2f} s train {train[v.name][-1]:.2f} s" for v in variants))

    full = variants[0]
    rows = []
    for v in variants:
        ratio = full.flops / v.flops
        inf, tr = summary(infer[v.name], args.batch), summary(train[v.name], args.batch)
        for d, ref in ((inf, infer[full.name]), (tr, train[full.name])):
            d["speedup"] = min(ref) / d["best_s"]
            d["speedup_median"] = statistics.median(ref) / d["median_s"]
            d["speedup_over_flops_ratio"] = d["speedup"] / ratio
            d["speedup_over_flops_ratio_median"] = d["speedup_median"] / ratio
        losses = [float(loss) for loss in v.losses]
        rows.append({
            "variant": v.name, "blocks": v.blocks, "kept_blocks": v.kept, "params": v.params,
            "gflops_per_clip": v.flops / 1e9, "flops_ratio": ratio, "inference": inf, "training": tr,
            "all_losses_finite": bool(np.isfinite(losses).all()),
        })
    return {"optimizer": full.optimizer_name, "variants": rows}


# ----------------------------------------------------------------------------------------------------------------
# part 2: data pipeline


def make_loader(dataset: VideoClassificationDataset, args: argparse.Namespace, num_workers: int,
                num_samples: int, device: torch.device, seed: int) -> torch.utils.data.DataLoader:
    # sampling without replacement, several permutations back to back when num_samples > len(dataset)
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=num_samples,
                                             generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.DataLoader(dataset, batch_size=args.batch, sampler=sampler, num_workers=num_workers,
                                       collate_fn=collate_videos, drop_last=True,
                                       pin_memory=device.type == "cuda")


def measure_data(variant: Variant, args: argparse.Namespace, device: torch.device, root: Path) -> dict:
    t0 = time.perf_counter()
    make_motion_dataset(root, videos_per_class=args.videos_per_class, num_frames=args.video_frames,
                        size=args.video_size, seed=0)
    generate_s = time.perf_counter() - t0
    items, labels, report = find_videos(root, progress=False)
    transform = VideoTransform(crop_size=(args.size, args.size), short_side=args.size, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD, train=True, hflip=False)
    dataset = VideoClassificationDataset(items, labels, transform, num_frames=args.frames, stride=2,
                                         sampling="random")
    files_mb = sum(Path(item.path).stat().st_size for item in items) / 1e6
    log(f"wrote {len(items)} videos ({files_mb:.1f} MB) in {generate_s:.1f} s; {report.summary()}")

    # (a) DataLoader alone
    loader_only: dict[int, dict] = {w: {"first_batch_s": [], "samples_per_s_passes": []} for w in args.workers}
    seed = 0
    for r in range(args.loader_rounds):
        for w in args.workers:
            seed += 1
            loader = make_loader(dataset, args, w, (args.loader_batches + 1) * args.batch, device, seed)
            start = time.perf_counter()
            it = iter(loader)
            next(it)
            first = time.perf_counter() - start
            start = time.perf_counter()
            n = sum(batch["pixel_values"].shape[0] for batch in it)
            elapsed = time.perf_counter() - start
            del it
            loader_only[w]["first_batch_s"].append(first)
            loader_only[w]["samples_per_s_passes"].append(n / elapsed)
        log(f"loader round {r + 1}/{args.loader_rounds}: "
            + ", ".join(f"workers={w} {loader_only[w]['samples_per_s_passes'][-1]:.1f} samples/s"
                        for w in args.workers))
    for w in args.workers:
        loader_only[w]["samples_per_s"] = max(loader_only[w]["samples_per_s_passes"])
    best_workers = max(args.workers, key=lambda w: loader_only[w]["samples_per_s"])

    # (b) in-memory batch vs (c) real-file DataLoader, same model, interleaved
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=gen).to(device)
    y = torch.randint(0, len(labels), (args.batch,), generator=gen).to(device)
    memory_s: list[float] = []
    fed_s: dict[int, list[float]] = {w: [] for w in args.workers}
    non_blocking = device.type == "cuda"

    def fed_step(it) -> None:
        batch = next(it)
        variant.train_step(batch["pixel_values"].to(device, non_blocking=non_blocking),
                           batch["labels"].to(device, non_blocking=non_blocking))

    segments: list[int | None] = [None, *args.workers]  # None: the in-memory batch
    for r in range(args.feed_rounds):
        t0 = time.perf_counter()
        # rotate the order each round, so that no feed always runs first or right after a loader's teardown
        for w in segments[r % len(segments):] + segments[: r % len(segments)]:
            if w is None:
                variant.train_step(x, y)  # untimed, like the first step of a DataLoader segment
                memory_s.append(timed(lambda: [variant.train_step(x, y) for _ in range(args.feed_steps)], device))
                continue
            seed += 1
            it = iter(make_loader(dataset, args, w, (args.feed_steps + 1) * args.batch, device, seed))
            fed_step(it)  # untimed: starts the workers
            fed_s[w].append(timed(lambda it=it: [fed_step(it) for _ in range(args.feed_steps)], device))
            del it
        log(f"feed round {r + 1}/{args.feed_rounds} ({time.perf_counter() - t0:.1f} s): "
            f"in-memory {args.feed_steps * args.batch / memory_s[-1]:.2f} samples/s, "
            + ", ".join(f"files workers={w} {args.feed_steps * args.batch / fed_s[w][-1]:.2f}" for w in args.workers))

    samples = args.feed_steps * args.batch
    memory = {"seconds_per_segment": memory_s, "samples_per_s": samples / min(memory_s),
              "samples_per_s_worst": samples / max(memory_s),
              "samples_per_s_median": samples / statistics.median(memory_s)}
    fed = {}
    for w in args.workers:
        fed[w] = {"seconds_per_segment": fed_s[w], "samples_per_s": samples / min(fed_s[w]),
                  "samples_per_s_median": samples / statistics.median(fed_s[w])}
        fed[w]["ratio_to_in_memory"] = fed[w]["samples_per_s"] / memory["samples_per_s"]
        fed[w]["ratio_to_in_memory_median"] = fed[w]["samples_per_s_median"] / memory["samples_per_s_median"]
    return {
        "videos": len(items), "classes": labels, "video_frames": args.video_frames, "video_size": args.video_size,
        "files_mb": files_mb, "generate_s": generate_s, "model": variant.name,
        "loader_only": loader_only, "best_workers_loader_only": best_workers,
        "in_memory": memory, "from_files": fed,
        "ratio_files_to_in_memory": fed[best_workers]["ratio_to_in_memory"],
        "loader_over_model": loader_only[best_workers]["samples_per_s"] / memory["samples_per_s"],
    }


# ----------------------------------------------------------------------------------------------------------------
# report


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def render(result: dict) -> str:
    cfg, model, data, info = result["config"], result["model"], result["data"], result["machine"]
    lines = ["# Finetuning speed: pruned VideoMAE-B width, and real video files vs in-memory batches", ""]
    lines += [(f"Configuration: {cfg['label']}. Batch {cfg['batch']}, {cfg['dtype']}, {info['device']}, "
              f"{model['optimizer']}; best of {cfg['repeats']} interleaved steps, one process."), ""]
    lines += [
        ("| variant | blocks | GFLOPs | FLOPs ratio | infer samples/s | infer speedup | speedup/FLOPs-ratio "
        "| train samples/s | train speedup | speedup/FLOPs-ratio |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in model["variants"]:
        inf, tr = row["inference"], row["training"]
        lines.append(
            f"| {row['variant']} | {row['blocks']} | {row['gflops_per_clip']:.2f} | {row['flops_ratio']:.2f} "
            f"| {inf['samples_per_s']:.2f} | {inf['speedup']:.2f} | {inf['speedup_over_flops_ratio']:.2f} "
            f"| {tr['samples_per_s']:.3f} | {tr['speedup']:.2f} | {tr['speedup_over_flops_ratio']:.2f} |"
        )
    lines += ["", "Same from the medians: " + "; ".join(
        f"{row['variant']} infer {row['inference']['speedup_median']:.2f}x "
        f"({row['inference']['speedup_over_flops_ratio_median']:.2f} of FLOPs ratio), "
        f"train {row['training']['speedup_median']:.2f}x ({row['training']['speedup_over_flops_ratio_median']:.2f})"
        for row in model["variants"][1:]), ""]

    lines += [
        (f"Data pipeline: {data['videos']} mp4 files ({len(data['classes'])} classes, {data['video_frames']} frames "
        f"at {data['video_size']}x{data['video_size']}, {data['files_mb']:.1f} MB), random {cfg['frames']}-frame "
        f"clip at stride 2, train transform to {cfg['size']}x{cfg['size']}; model: {data['model']}."),
        "",
        ("| feed | num_workers | DataLoader alone samples/s | first batch s | training samples/s "
        "| x in-memory (best) | x in-memory (median) |"),
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| (b) in-memory tensor | - | - | - | {data['in_memory']['samples_per_s']:.3f} | 1.00 | 1.00 |",
    ]
    for w, fed in data["from_files"].items():
        lo = data["loader_only"][w]
        mark = " (best alone)" if w == data["best_workers_loader_only"] else ""
        lines.append(
            f"| (c) video files | {w}{mark} | {lo['samples_per_s']:.1f} | {min(lo['first_batch_s']):.2f} "
            f"| {fed['samples_per_s']:.3f} | {fed['ratio_to_in_memory']:.2f} | {fed['ratio_to_in_memory_median']:.2f} |"
        )
    lines += ["", (f"(c)/(b) at the DataLoader's best num_workers ({data['best_workers_loader_only']}): "
              f"{data['ratio_files_to_in_memory']:.2f} (goal >= {GOAL}); DataLoader alone / model training: "
              f"{data['loader_over_model']:.0f}x"), ""]
    lines += ["Notes:", *[f"- {note}" for note in result["notes"]], ""]
    lines += ["Machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), ""]
    return "\n".join(lines)


def notes(result: dict) -> list[str]:
    cfg, rows, data = result["config"], result["model"]["variants"], result["data"]
    out = []
    if cfg["reduced"]:
        out.append(f"Reduced configuration ({cfg['tokens']} tokens per clip instead of VideoMAE-B's 1568): attention "
                   "is a smaller share of a block here (2*n^2*d vs n*(4d^2+2d*i): "
                   f"{cfg['attention_share']:.1%} of block MACs, {attention_share(1568, 768, 3072):.1%} at 1568 "
                   "tokens), so the measured ratios are those of a mostly-matmul model; they say nothing about a "
                   "GPU's absolute samples/s.")
    out.append("GFLOPs are multiply-accumulates per clip, forward, from `encoder_flops`: patch embedding + blocks + "
               "linear head (LayerNorm, softmax, GELU, biases, mean pooling not counted). The FLOPs ratio therefore "
               "already includes the unpruned embedding and head, so speedup/FLOPs-ratio = 1 is the ideal. Training "
               "also pays the AdamW step, proportional to parameters: "
               + ", ".join(f"{r['variant']} {r['params'] / 1e6:.1f} M" for r in rows) + ".")
    for kind in ("inference", "training"):
        misses = [r for r in rows[1:] if r[kind]["speedup_over_flops_ratio"] < GOAL]
        if misses:
            out.append(f"{kind.capitalize()}: below the {GOAL}x-of-FLOPs-ratio goal: "
                       + ", ".join(f"{r['variant']} ({r[kind]['speedup_over_flops_ratio']:.2f})" for r in misses)
                       + "; see the medians and the load average before reading this as a property of the model.")
        else:
            out.append(f"{kind.capitalize()}: every pruned variant reaches >= {GOAL}x of its FLOPs ratio (best of N).")
    spread = max(max(r[k]["seconds"]) / r[k]["best_s"] for r in rows for k in ("inference", "training"))
    machine = result["machine"]
    out.append(f"Slowest / best step of any variant: {spread:.2f}x. "
               + (f"Load average (1, 5, 15 min; this run's own threads count too) {machine['load_average_start']} "
                  f"at the start, {machine['load_average_end']} at the end, on {machine['cores_available']} cores: "
                  "on a shared machine best-of-N is the number that other work disturbed least."
                  if cfg["device"] == "cpu" else ""))
    if cfg["device"] == "cpu":
        out.append("On a CPU the decoding workers and the model share the same few cores, so (c)/(b) measures that "
                   "competition, not whether an accelerator would wait on decoding. The informative comparison here "
                   f"is the DataLoader alone against the model: {data['loader_over_model']:.0f}x the {data['model']} "
                   "model's training samples/s at this size; for a GPU, compare the loader's samples/s at the real "
                   "clip size with the GPU's training samples/s (or run this script there).")
        if 0 in data["loader_only"]:
            share = data["in_memory"]["samples_per_s"] / data["loader_only"][0]["samples_per_s"]
            out.append(f"Decoding and transforming a clip in the main process (DataLoader alone, 0 workers) takes "
                       f"{share:.1%} of the time a training step spends per clip: about what (c) can lose to "
                       "decoding on these shared cores, before scheduling overheads.")
    above = [w for w, fed in data["from_files"].items() if fed["ratio_to_in_memory"] > 1]
    if above:
        mem = data["in_memory"]
        out.append(f"(c)/(b) above 1 (num_workers {', '.join(map(str, above))}) is run-to-run noise, not a faster "
                   "model: same model, batch size and step; the (b) segments alone ranged "
                   f"{mem['samples_per_s_worst']:.3f} to {mem['samples_per_s']:.3f} samples/s.")
    out.append("Timed steps of (c) include `next(loader)` and the copy to the device; the first step after creating "
               "each DataLoader (worker start-up, also the cost of every epoch with non-persistent workers) is "
               "untimed and shown as 'first batch s' (loader alone).")
    losses_ok = all(r["all_losses_finite"] for r in rows)
    out.append(f"All training losses finite: {losses_ok}.")
    return out


# ----------------------------------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--frames", type=int, default=8, help="frames per clip (VideoMAE-B: 16)")
    ap.add_argument("--size", type=int, default=112, help="clip height and width (VideoMAE-B: 224)")
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: torch.autocast to bfloat16")
    ap.add_argument("--repeats", type=int, default=8, help="timed steps per variant (best of / median of)")
    ap.add_argument("--keep", type=int_list, default=[8, 4], help="pruned variants: blocks kept")
    ap.add_argument("--num-labels", type=int, default=101, help="classifier outputs (UCF101: 101)")
    ap.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (keeps random-init training finite)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--video-frames", type=int, default=None, help="frames per mp4 (default: max(32, 4 * frames))")
    ap.add_argument("--video-size", type=int, default=None,
                    help="mp4 height and width (default: size * 8/7 rounded to even, 128 for 112, 256 for 224)")
    ap.add_argument("--videos-per-class", type=int, default=8, help="mp4 files per class (4 classes)")
    ap.add_argument("--workers", type=int_list, default=[0, 1, 2], help="DataLoader num_workers to compare")
    ap.add_argument("--loader-batches", type=int, default=12, help="timed batches per DataLoader-only pass")
    ap.add_argument("--loader-rounds", type=int, default=2, help="DataLoader-only passes per num_workers")
    ap.add_argument("--feed-steps", type=int, default=6, help="timed training steps per (b)/(c) segment")
    ap.add_argument("--feed-rounds", type=int, default=3, help="rounds of (b), (c) per num_workers")
    ap.add_argument("--data-root", type=Path, default=None, help="where to write the mp4 files (default: temp dir)")
    ap.add_argument("--quick", action="store_true", help="about a minute: tiny clips, few repeats, no files written")
    ap.add_argument("--output", type=Path, default=None,
                    help=f"JSON path, markdown next to it (default {DEFAULT_OUTPUT}; --quick: none)")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.batch, args.repeats = 4, 64, 2, 2
        args.videos_per_class, args.loader_batches, args.loader_rounds = 2, 3, 1
        args.feed_steps, args.feed_rounds = 2, 1
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    if args.video_frames is None:
        args.video_frames = max(32, 4 * args.frames)
    if args.video_size is None:
        args.video_size = 2 * round(args.size * 4 / 7)
    if args.size % 16 or args.frames % 2:
        ap.error(f"--size {args.size} --frames {args.frames}: size must be a multiple of 16 (patch) "
                 "and frames a multiple of 2 (tubelet)")
    if not args.keep or any(not 1 <= k < 12 for k in args.keep):
        ap.error(f"--keep {args.keep}: each value must be between 1 and 11 (the model has 12 blocks)")
    if args.video_frames < 2 * args.frames - 1:
        ap.error(f"--video-frames {args.video_frames}: a {args.frames}-frame clip at stride 2 needs "
                 f"at least {2 * args.frames - 1} frames")
    if args.video_size < args.size:
        ap.error(f"--video-size {args.video_size} is below --size {args.size}: frames would be upscaled")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here; use --device cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # what an fp32 GPU run would use in practice
        torch.backends.cudnn.allow_tf32 = True
    info = machine_info(device, args.dtype)
    started = time.perf_counter()
    reduced = (args.frames, args.size) != (FULL_FRAMES, FULL_SIZE)
    kind = "reduced " if reduced else ""
    label = (f"{kind}{args.device.upper() if device.type == 'cpu' else args.device} configuration, "
             f"{args.frames} frames x {args.size}x{args.size}")
    log(f"{label}, batch {args.batch}, {args.dtype}, {torch.get_num_threads()} threads")

    t0 = time.perf_counter()
    variants, config = build_variants(args, device)
    log(f"built and pruned {len(variants)} variants in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{v.name} kept {v.kept}" for v in variants[1:]))
    tokens = num_tokens(config)
    d, i = config.hidden_size, config.intermediate_size
    if reduced:
        label += f" = {tokens} tokens (VideoMAE-B: {FULL_FRAMES} x {FULL_SIZE}x{FULL_SIZE} = 1568)"
    else:
        label += f" = {tokens} tokens"

    model_result = measure_models(variants, args, device)

    smallest = min(variants[1:], key=lambda v: v.blocks)
    for v in variants:
        if v is not smallest:  # free memory for the data part
            v.model, v.optimizer = None, None
    root = args.data_root or Path(tempfile.mkdtemp(prefix="finetune_speed_"))
    try:
        data_result = measure_data(smallest, args, device, root)
    finally:
        if args.data_root is None:
            shutil.rmtree(root, ignore_errors=True)

    info["load_average_end"] = load_average()
    result = {
        "config": {
            "label": label, "reduced": reduced, "device": device.type, "frames": args.frames, "size": args.size,
            "tokens": tokens, "attention_share": attention_share(tokens, d, i),
            "batch": args.batch, "dtype": args.dtype, "repeats": args.repeats, "keep": args.keep,
            "num_labels": args.num_labels, "lr": args.lr, "hidden_size": d, "intermediate_size": i,
            "num_attention_heads": config.num_attention_heads, "num_hidden_layers": 12,
            "patch_size": config.patch_size, "tubelet_size": config.tubelet_size, "use_mean_pooling": True,
            "attn_implementation": "sdpa", "seed": 0, "quick": args.quick,
            "workers": args.workers, "loader_batches": args.loader_batches, "loader_rounds": args.loader_rounds,
            "feed_steps": args.feed_steps, "feed_rounds": args.feed_rounds,
            "videos_per_class": args.videos_per_class,
        },
        "model": model_result,
        "data": data_result,
        "machine": info,
    }
    info["runtime_s"] = round(time.perf_counter() - started, 1)
    result["notes"] = notes(result)
    md = render(result)
    print(md)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        args.output.with_suffix(".md").write_text(md)
        log(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
