"""Every plot the package draws for users: block scores, confusion matrices, training curves.

matplotlib is imported only when a plot is drawn, on the Agg backend (no display needed). PNGs carry
no software or date metadata, so identical inputs give identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .surgery import PruningRecord


def pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (it takes about a second)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_block_scores(record: PruningRecord | dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Bar plot of every block's score, kept blocks and removed blocks in different colours.

    Args:
        record: the pruning record (or its dict form, as stored in `config.gardener`); needs scores.
        path: where to write the PNG (byte-identical for identical inputs).
        title: figure title; default: how many blocks were kept and which end is removed first.

    Returns:
        `path` as a `Path`.
    """
    if isinstance(record, dict):
        record = PruningRecord.from_dict(record)
    if not record.scores:
        raise ValueError("plot_block_scores: the record has no scores (blocks were chosen by hand)")
    plt = pyplot()
    scores = record.scores
    blocks = record.scored_blocks or list(range(len(scores)))
    kept = set(record.kept_blocks)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(scores) + 1.5), 3.2), dpi=100)
    colors = ["#2a9d8f" if b in kept else "#c8c8c8" for b in blocks]
    ax.bar(range(len(scores)), scores, color=colors, edgecolor="#444444", linewidth=0.5)
    lo, hi = min(scores), max(scores)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.01 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(range(len(scores)), [str(b) for b in blocks])
    ax.set_xlabel("block of the source model (0-based)")
    ax.set_ylabel(f"{record.criterion} score")
    ax.set_title(title or f"{len(kept)} of {len(scores)} blocks kept (green); {record.prune_first} scores removed first")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]],
    label_names: Sequence[str],
    path: str | Path,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Save the confusion matrix as a PNG heat map (rows = true class, columns = predicted class).

    Args:
        confusion: `num_classes x num_classes` counts, e.g. `classification_metrics(...)["confusion_matrix"]`.
        label_names: one name per class id.
        path: where to write the PNG.
        normalize: colour each row by its share of the true class (recall), so rare classes stay visible;
            `False` colours raw counts. Counts are written in the cells when there are at most 30 classes.
        title: figure title; defaults to a summary with the overall top-1 accuracy.

    Returns:
        `path` as a `Path`. The file is byte-identical for identical inputs (no software/date metadata).
    """
    counts = np.asarray(confusion, dtype=np.int64)
    n = len(label_names)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(
            f"plot_confusion_matrix: confusion has shape {counts.shape} but there are {n} label names; "
            "it must be num_classes x num_classes with one name per class."
        )
    plt = pyplot()
    support = counts.sum(axis=1, keepdims=True)
    if normalize:
        colors = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
        vmax, cbar_label = 1.0, "fraction of the true class"
    else:
        colors = counts.astype(np.float64)
        vmax, cbar_label = max(1.0, float(counts.max())), "videos"
    # About 0.35 inch per class keeps annotated cells legible; beyond ~80 classes only the colours are readable.
    side = float(np.clip(0.35 * n + 2.5, 4.0, 24.0))
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=100)
    image = ax.imshow(colors, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=cbar_label)
    if n <= 100:
        fontsize = 8 if n <= 30 else 5
        ax.set_xticks(range(n), [str(x) for x in label_names], rotation=60, ha="right", rotation_mode="anchor",
                      fontsize=fontsize)
        ax.set_yticks(range(n), [str(x) for x in label_names], fontsize=fontsize)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if colors[i, j] > 0.6 * vmax else "#222222")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    accuracy = float(np.trace(counts)) / total if total else 0.0
    ax.set_title(title or f"confusion matrix: {total} videos, top-1 {100 * accuracy:.2f}%")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def plot_training_curve(
    log_history: Sequence[dict],
    path: str | Path,
    *,
    title: str | None = None,
    metric_prefix: str = "eval",
) -> Path:
    """Save training / evaluation loss and evaluation top-1 accuracy against the optimizer step as a PNG.

    Args:
        log_history: `trainer.state.log_history`: entries with `"loss"` and `"step"` (training loss) and entries
            with `"eval_loss"` and/or `"eval_top1"` and `"step"` (evaluations). Other entries are ignored.
        path: where to write the PNG.
        title: figure title.
        metric_prefix: the Trainer's `metric_key_prefix` of the evaluation entries.

    Returns:
        `path` as a `Path`; the loss panel, plus a top-1 (%) panel when evaluations logged `top1`.

    Raises:
        ValueError: `log_history` holds no training loss, evaluation loss or evaluation top-1 with a step.
    """
    series: dict[str, list[tuple[int, float]]] = {"train": [], "eval": [], "top1": []}
    keys = {"train": "loss", "eval": f"{metric_prefix}_loss", "top1": f"{metric_prefix}_top1"}
    for entry in log_history:
        if "step" not in entry:
            continue
        for name, key in keys.items():
            value = entry.get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                series[name].append((int(entry["step"]), float(value) * (100.0 if name == "top1" else 1.0)))
    has_loss = bool(series["train"] or series["eval"])
    has_top1 = bool(series["top1"])
    if not (has_loss or has_top1):
        raise ValueError(
            f"plot_training_curve: nothing to plot: no entry of log_history has 'step' with 'loss', "
            f"'{keys['eval']}' or '{keys['top1']}' ({len(log_history)} entries); pass trainer.state.log_history "
            "after training with logging and evaluation enabled."
        )
    plt = pyplot()
    panels = int(has_loss) + int(has_top1)
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 3.6), dpi=100, squeeze=False)
    axes = list(axes[0])
    if has_loss:
        ax = axes.pop(0)
        for name, label, style in (("train", "train loss", "-"), ("eval", "eval loss", "o-")):
            if series[name]:
                steps, values = zip(*sorted(series[name]), strict=True)
                ax.plot(steps, values, style, label=label, markersize=4, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    if has_top1:
        ax = axes.pop(0)
        steps, values = zip(*sorted(series["top1"]), strict=True)
        ax.plot(steps, values, "o-", color="#2a9d8f", markersize=4, linewidth=1.2)
        best = int(np.argmax(values))
        ax.annotate(f"best {values[best]:.2f}%", (steps[best], values[best]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("eval top-1 accuracy (%)")
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
