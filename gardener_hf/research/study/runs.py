"""The study's finetuning runs: one run per (blocks removed, seed), done once, in parallel, resumable.

Finetuning is a plain PyTorch loop (AdamW, warmup + cosine, the paper's peak learning rate 1e-3)
over clips held in memory, not `transformers.Trainer` over files: the study runs about a hundred
short finetunes, and on a CPU file decoding would dominate them. Each run trains on one CPU thread,
so results do not depend on how many run at a time.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch import nn
from tqdm.auto import tqdm

from ...checkpoint import load_classifier, load_processor
from ...scoring import score_model
from ...surgery import apply_plan, make_plan
from ..pretrain import decay_groups
from ..synthetic import task_clip_function, task_labels, to_pixel_values
from .config import CRITERIA, StudyConfig

logger = logging.getLogger(__name__)

# rng streams: generators are seeded with [data_seed or seed, STREAM, ...]
_TRAIN_DATA, _EVAL_DATA, _ORDER, _CALIBRATION_DATA = 11, 12, 13, 14


@dataclass
class _Context:
    """What every run in a process shares: the classifier with its pretrained encoder and the clips."""

    config: StudyConfig
    base: nn.Module
    labels: tuple[str, ...]
    mean: list[float]
    std: list[float]
    train_x: torch.Tensor  # uint8 [N, T, H, W, 3]
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor


def make_clips(task: str, count: int, *, seed: int, stream: int, subset: str, num_frames: int, size: int, **options):
    """`count` labelled clips of a digit task, classes balanced in turn; uint8 `[N, T, H, W, 3]` and labels."""
    num_classes = len(task_labels(task))
    fn = task_clip_function(task)
    clips = np.empty((count, num_frames, size, size, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, stream, i])
        clips[i], labels[i] = fn(rng, label=i % num_classes, num_frames=num_frames, size=size, subset=subset, **options)
    return torch.from_numpy(clips), torch.from_numpy(labels)


def build_context(config: StudyConfig) -> _Context:
    """Load the classifier (pretrained encoder, new head) and generate the train / validation clips."""
    labels = task_labels(config.task)
    base = load_classifier(config.model_id(), labels, revision=config.revision)
    processor = load_processor(config.model_id(), base.config, revision=config.revision)
    frames, size = base.config.num_frames, base.config.image_size
    train_x, train_y = make_clips(
        config.task, config.train_clips, seed=config.data_seed, stream=_TRAIN_DATA, subset="train", num_frames=frames, size=size,
        **config.clip_options,
    )
    eval_x, eval_y = make_clips(
        config.task, config.eval_clips, seed=config.data_seed, stream=_EVAL_DATA, subset="test", num_frames=frames, size=size,
        **config.clip_options,
    )
    return _Context(config, base, labels, list(processor.image_mean), list(processor.image_std), train_x, train_y, eval_x, eval_y)


def _reinit(module: nn.Module, std: float) -> None:
    """transformers' default initialisation (VideoMAE has no own): normal(0, std) Linear, zero bias, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# Not pretrain.lr_at: that one rounds differently in the last bits (pi * (x / d) against pi * x / d), and
# the committed study's runs were made with this one.
def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _pixels(ctx: _Context, clips: torch.Tensor) -> torch.Tensor:
    return to_pixel_values(clips, ctx.mean, ctx.std)


@torch.no_grad()
def _evaluate(model: nn.Module, ctx: _Context, batch: int = 256) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(ctx.eval_x), batch):
        logits = model(pixel_values=_pixels(ctx, ctx.eval_x[i : i + batch])).logits
        y = ctx.eval_y[i : i + batch]
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
    model.train()
    return correct / len(ctx.eval_x), loss / len(ctx.eval_x)


def finetune_run(ctx: _Context, removed: Sequence[int], seed: int, *, scratch: bool = False) -> dict[str, Any]:
    """Finetune the context's classifier with `removed` blocks deleted; deterministic in (removed, seed).

    The head (and fc_norm) is re-initialised from `seed`, so runs that differ only in `seed` differ in
    head initialisation and data order. With `scratch`, the encoder is re-initialised too (the
    "no pretraining" reference).

    Returns:
        A JSON-able dict: accuracy, val_loss, train_loss (mean of the last 10 steps), seconds,
        num_blocks, and, for the unpruned model, the finetuned encoder's block scores by criterion.
    """
    cfg = ctx.config
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = copy.deepcopy(ctx.base)
    std = model.config.initializer_range
    if scratch:
        _reinit(model, std)
    else:
        _reinit(model.classifier, std)
        if getattr(model, "fc_norm", None) is not None:
            _reinit(model.fc_norm, std)
    num_blocks = model.config.num_hidden_layers
    if removed:
        apply_plan(model, make_plan(num_blocks=num_blocks, remove=list(removed)))
    optimizer = torch.optim.AdamW(decay_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    rng = np.random.default_rng([seed, _ORDER])
    order = np.empty(0, dtype=np.int64)
    warmup = round(cfg.warmup_ratio * cfg.steps)
    losses = []
    model.train()
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:  # epochs of fresh permutations; a short tail joins the next epoch
            order = np.concatenate([order, rng.permutation(len(ctx.train_x))])
        idx, order = torch.from_numpy(order[: cfg.batch_size]), order[cfg.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg.steps, warmup, cfg.learning_rate)
        loss = model(pixel_values=_pixels(ctx, ctx.train_x[idx]), labels=ctx.train_y[idx]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    accuracy, eval_loss = _evaluate(model, ctx)
    result = {
        "removed": sorted(int(b) for b in removed),
        "seed": int(seed),
        "scratch": bool(scratch),
        "num_blocks": num_blocks - len(removed),
        "accuracy": accuracy,
        "val_loss": eval_loss,  # the key of every committed run record; kept
        "train_loss": float(np.mean(losses[-10:])),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if not removed and not scratch:
        result["finetuned_scores"] = {c: score_model(model, c, progress=False).scores for c in CRITERIA}
    return result


# ----------------------------------------------------------------------------------------------------------------
# running many runs: once each, in parallel, resumable

Spec = tuple[tuple[int, ...], int, bool]  # (removed blocks, seed, scratch)


def run_key(removed: Iterable[int], seed: int, scratch: bool = False) -> str:
    """Identity of a finetuning run: `"r3-11@0"` (blocks 3 and 11 removed, seed 0), `"r@0"`, `"scratch@0"`."""
    if scratch:
        return f"scratch@{seed}"
    return "r" + "-".join(str(b) for b in sorted(removed)) + f"@{seed}"


_CTX: _Context | None = None


def _worker_init(config: dict[str, Any], verbosity: int, level: int) -> None:
    global _CTX
    torch.set_num_threads(1)
    _mirror_logging(verbosity, level)
    _CTX = build_context(StudyConfig.from_dict(config))


def _worker_run(spec: Spec) -> dict[str, Any]:
    assert _CTX is not None
    removed, seed, scratch = spec
    return finetune_run(_CTX, removed, seed, scratch=scratch)


def _mirror_logging(verbosity: int, level: int) -> None:
    """A spawned worker logs as its parent does (transformers' verbosity, gardener_hf's level), without progress bars."""
    transformers.logging.set_verbosity(verbosity)
    transformers.logging.disable_progress_bar()
    logging.getLogger("gardener_hf").setLevel(level)


class RunStore:
    """Finished runs by key, backed by an append-only JSON-lines file (one line per run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line_no, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    run = json.loads(line)
                    self.runs[run_key(run["removed"], run["seed"], run["scratch"])] = run
                except (json.JSONDecodeError, KeyError, TypeError):
                    # a line cut short by a kill mid-write: the run is simply done again
                    logger.warning("%s:%d: unreadable run record skipped", path, line_no)

    def __contains__(self, key: str) -> bool:
        return key in self.runs

    def get(self, removed: Iterable[int], seed: int, scratch: bool = False) -> dict[str, Any]:
        return self.runs[run_key(removed, seed, scratch)]

    def add(self, run: dict[str, Any]) -> None:
        self.runs[run_key(run["removed"], run["seed"], run["scratch"])] = run
        with open(self.path, "a") as f:
            f.write(json.dumps(run) + "\n")
            f.flush()
            os.fsync(f.fileno())


def run_all(specs: Sequence[Spec], store: RunStore, config: StudyConfig, *, jobs: int, desc: str, progress: bool = True) -> None:
    """Run every spec not yet in `store`, `jobs` at a time (each on one thread), recording each as it ends."""
    wanted = {run_key(*s): s for s in specs}
    todo = [s for key, s in wanted.items() if key not in store]
    done = len(wanted) - len(todo)
    if not todo:
        logger.info("%s: all %d runs already done", desc, done)
        return
    logger.info("%s: %d runs to do (%d already done), %d at a time", desc, len(todo), done, jobs)
    bar = tqdm(total=len(todo), desc=desc, unit="run", disable=not progress)
    try:
        if jobs == 1:
            global _CTX
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                if _CTX is None or _CTX.config != config:
                    _CTX = build_context(config)
                for spec in todo:
                    store.add(_worker_run(spec))
                    bar.update()
            finally:
                torch.set_num_threads(threads)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init,
                                     initargs=(config.to_dict(), transformers.logging.get_verbosity(),
                                               logging.getLogger("gardener_hf").getEffectiveLevel())) as pool:
                futures = [pool.submit(_worker_run, spec) for spec in todo]
                for future in as_completed(futures):
                    store.add(future.result())
                    bar.update()
    finally:
        bar.close()
