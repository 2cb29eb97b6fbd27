"""Evaluation metrics for finetuned (pruned) video classifiers, and their plain-text table (plots: `gardener_hf.plotting`).

The numbers come from an `evaluate` metric script shipped inside the package
(`metric_modules/video_classification`), so `evaluate.load` reads it from disk and never needs the Hub.
`compute_metrics_fn` plugs it into `transformers.Trainer`; the Trainer gathers predictions from every process
first, so the metric always runs in one process on the full evaluation set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import METRIC_KEYS
from ..plotting import plot_confusion_matrix, plot_training_curve  # noqa: F401  (lived here in gardener_hf 0.1)

if TYPE_CHECKING:
    import evaluate
    import transformers

logger = logging.getLogger(__name__)

METRIC_PATH: Path = Path(__file__).resolve().parent / "metric_modules" / "video_classification"
SCALAR_KEYS = METRIC_KEYS

_metric: evaluate.EvaluationModule | None = None
_metric_lock = threading.RLock()  # the module is stateful: one load, one compute at a time


def load_metric() -> evaluate.EvaluationModule:
    """The `video_classification` evaluate module, loaded from the package (no network) and cached per process.

    `evaluate.load` on a local folder copies the script into `HF_MODULES_CACHE/evaluate_modules/metrics/` under a
    hash of its code (guarded by a file lock, so concurrent processes are safe) and imports it from there; it does
    not contact the Hub for a local path, so no offline switch is needed. The module keeps its predictions in
    memory: our callers compute on predictions already gathered from all processes, and an in-memory module
    writes no Arrow cache files and takes no cross-process locks. `HF_MODULES_CACHE` (default
    `HF_HOME/modules`) must be writable; point it elsewhere on a read-only home.

    Returns:
        An `evaluate.EvaluationModule`; call `.compute(predictions=..., references=..., num_classes=..., top_k=...)`.

    Example:
        >>> metric = load_metric()
        >>> metric.compute(predictions=[[0.2, 0.8], [0.6, 0.4]], references=[1, 1], top_k=[1])["top1"]
        0.5
    """
    global _metric
    with _metric_lock:
        if _metric is None:
            # Imported here, not at module level: `import evaluate` pulls in transformers.pipelines (seconds).
            import evaluate

            script = METRIC_PATH / f"{METRIC_PATH.name}.py"
            if not script.is_file():
                raise FileNotFoundError(
                    f"the metric script {script} is missing from the installed gardener_hf; reinstall the package "
                    "(setup.cfg must list training/metric_modules/*/*.py as package data)."
                )
            _metric = evaluate.load(str(METRIC_PATH), keep_in_memory=True)
            logger.debug("loaded metric %s from %s", _metric.name, METRIC_PATH)
        return _metric


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like; torch tensors (any device or dtype) are detached and copied to the CPU."""
    if hasattr(x, "detach"):
        x = x.detach()
        if x.is_floating_point():
            x = x.float()  # numpy has no bfloat16
        return x.cpu().numpy()
    return np.asarray(x)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int | None = None,
    top_k: Sequence[int] = (1, 5),
) -> dict[str, Any]:
    """Top-k, mean class and per-class accuracy and the confusion matrix of a classifier's outputs.

    Args:
        logits: `[N, C]` scores, or `[N, clips, C]` for multi-view testing, where the softmax probabilities are
            averaged over the clips of each video before ranking (the usual VideoMAE / Kinetics protocol).
        labels: `[N]` integer class ids in `[0, C)`.
        num_classes: number of classes; defaults to `C` and must equal it when given.
        top_k: the k values to report (`"top{k}"` keys); k is capped at the number of classes.

    Returns:
        `{"top1", "top5", "mean_class_accuracy"}` as fractions in [0, 1], `"per_class_accuracy"` (None for a class
        without samples), `"confusion_matrix"` (rows = true class, cols = predicted) and `"num_samples"`.

    Raises:
        ValueError: empty input, labels that do not match the logits, or logits that are not `[N, C]` / `[N, clips, C]`.

    Example:
        >>> import numpy as np
        >>> m = classification_metrics(np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), np.array([0, 1]))
        >>> m["top1"], m["top5"], m["confusion_matrix"]
        (0.5, 1.0, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    """
    scores = _to_numpy(logits)
    targets = _to_numpy(labels)
    if scores.size == 0 or targets.size == 0:
        raise ValueError(
            f"classification_metrics: empty input (logits {scores.shape}, labels {targets.shape}); "
            "evaluate at least one sample."
        )
    if scores.ndim not in (2, 3):
        raise ValueError(
            f"classification_metrics: logits must be [N, C] or [N, clips, C], got shape {scores.shape}."
        )
    if targets.ndim != 1 or targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"classification_metrics: labels must be [N] with N = {scores.shape[0]} (the logits' first dimension), "
            f"got shape {targets.shape}."
        )
    if not np.issubdtype(targets.dtype, np.integer):
        if not np.array_equal(targets, np.round(targets)):
            raise ValueError(f"classification_metrics: labels must be integer class ids, got dtype {targets.dtype}.")
        targets = targets.astype(np.int64)
    width = scores.shape[-1]
    if num_classes is not None and num_classes != width:
        raise ValueError(
            f"classification_metrics: num_classes={num_classes} but the logits have {width} classes in their last "
            "dimension; pass num_classes=None or logits with one score per class."
        )
    if scores.ndim == 3:
        # Average probabilities, not logits: one very confident clip must not outvote the others by its scale.
        scores = _softmax(scores.astype(np.float64), axis=-1).mean(axis=1)
    # float32 is the metric's input type; ranking ties created by the cast are resolved by class index.
    # Python lists go through evaluate's Arrow encoding about a third faster than numpy rows.
    with _metric_lock:
        return load_metric().compute(
            predictions=scores.astype(np.float32).tolist(),
            references=targets.astype(np.int64).tolist(),
            num_classes=width,
            top_k=list(top_k),
        )


class _TrainerMetrics:
    """`compute_metrics` callable for `transformers.Trainer` (a class so it pickles and has a readable repr)."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"compute_metrics_fn: num_classes must be >= 1, got {num_classes}.")
        self.num_classes = num_classes
        self._logits: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def __repr__(self) -> str:
        return f"compute_metrics_fn(num_classes={self.num_classes})"

    def __call__(self, eval_pred: transformers.EvalPrediction, compute_result: bool | None = None) -> dict[str, float]:
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        # Models that also return hidden states / attentions give a tuple whose first item is the logits.
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        if labels is None:
            raise ValueError(
                "compute_metrics_fn: the evaluation set has no labels; set label_names / a 'labels' column."
            )
        if compute_result is not None:
            # TrainingArguments(batch_eval_metrics=True): called once per gathered batch (torch tensors, possibly on
            # the accelerator); only the call with compute_result=True must return the metrics of all batches.
            self._logits.append(_to_numpy(predictions))
            self._labels.append(_to_numpy(labels).reshape(-1))
            if not compute_result:
                return {}
            predictions, labels = np.concatenate(self._logits), np.concatenate(self._labels)
            self._logits, self._labels = [], []
        metrics = classification_metrics(predictions, labels, num_classes=self.num_classes, top_k=(1, 5))
        return {key: metrics[key] for key in SCALAR_KEYS}


def compute_metrics_fn(num_classes: int) -> Callable[[transformers.EvalPrediction], dict[str, float]]:
    """A `compute_metrics` function for `transformers.Trainer`.

    Args:
        num_classes: number of classes of the classifier (`model.config.num_labels`).

    Returns:
        A callable taking a `transformers.EvalPrediction` (predictions `[N, C]` or a tuple whose first item is
        the logits) and returning `{"top1", "top5", "mean_class_accuracy"}` as floats; the Trainer logs them as
        `eval_top1`, `eval_top5`, `eval_mean_class_accuracy`. It also accepts the `compute_result` argument of
        `TrainingArguments(batch_eval_metrics=True)`, accumulating batches until `compute_result=True`.

    Example:
        >>> from transformers import EvalPrediction
        >>> fn = compute_metrics_fn(2)
        >>> fn(EvalPrediction(predictions=np.array([[0.1, 0.9], [0.3, 0.7]]), label_ids=np.array([1, 0])))
        {'top1': 0.5, 'top5': 1.0, 'mean_class_accuracy': 0.5}
    """
    return _TrainerMetrics(num_classes)


def _lookup(metrics: dict, key: str) -> Any:
    """`metrics[key]`, also accepting Trainer-prefixed keys (`eval_top1`, `test_top1`)."""
    if key in metrics:
        return metrics[key]
    for prefix in ("eval_", "test_"):
        if prefix + key in metrics:
            return metrics[prefix + key]
    return None


def _topk_keys(metrics: dict) -> list[tuple[int, str]]:
    found = {}
    for name in metrics:
        base = name.split("_", 1)[1] if name.startswith(("eval_", "test_")) else name
        if base.startswith("top") and base[3:].isdigit():
            found.setdefault(int(base[3:]), name)
    return sorted(found.items())


def format_metrics_table(metrics: dict, label_names: Sequence[str] | None = None) -> str:
    """A plain-text table of classification metrics.

    Args:
        metrics: output of `classification_metrics` (or the scalar dict of `compute_metrics_fn`, with or without
            the Trainer's `eval_` prefix).
        label_names: class names in class-id order; when given, one row per class follows (needs
            `per_class_accuracy` in `metrics`).

    Returns:
        The table, accuracies as percentages with 2 decimals, e.g.

        ```
        metric                 value
        top-1 accuracy        62.50%
        top-5 accuracy       100.00%
        mean class accuracy   58.33%
        samples                    8
        ```

    Raises:
        ValueError: `label_names` does not match the number of classes in `metrics`.
    """
    rows = [(f"top-{k} accuracy", f"{100 * metrics[key]:.2f}%") for k, key in _topk_keys(metrics)]
    mean_class = _lookup(metrics, "mean_class_accuracy")
    if mean_class is not None:
        rows.append(("mean class accuracy", f"{100 * mean_class:.2f}%"))
    num_samples = _lookup(metrics, "num_samples")
    if num_samples is not None:
        rows.append(("samples", str(int(num_samples))))
    if not rows:
        raise ValueError(f"format_metrics_table: no known metric in {sorted(metrics)}; pass classification_metrics().")
    name_w = max(len("metric"), *(len(r[0]) for r in rows))
    value_w = max(len("value"), *(len(r[1]) for r in rows))
    lines = [f"{'metric':<{name_w}}  {'value':>{value_w}}"]
    lines += [f"{name:<{name_w}}  {value:>{value_w}}" for name, value in rows]

    if label_names is not None:
        per_class = _lookup(metrics, "per_class_accuracy")
        if per_class is None:
            raise ValueError("format_metrics_table: label_names given but metrics has no per_class_accuracy.")
        if len(label_names) != len(per_class):
            raise ValueError(
                f"format_metrics_table: {len(label_names)} label names for {len(per_class)} classes; "
                "pass one name per class id."
            )
        confusion = _lookup(metrics, "confusion_matrix")
        support = [sum(row) for row in confusion] if confusion is not None else [None] * len(per_class)
        cells = [
            (str(name), "n/a" if acc is None else f"{100 * acc:.2f}%", "" if n is None else str(n))
            for name, acc, n in zip(label_names, per_class, support, strict=True)
        ]
        header = ("class", "top-1", "samples" if confusion is not None else "")
        widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(3)]
        lines.append("")
        for c in [header, *cells]:
            lines.append(f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:>{widths[2]}}".rstrip())
    return "\n".join(lines)
