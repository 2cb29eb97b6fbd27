"""Video classification metric for `evaluate`: top-k accuracy, mean class accuracy, per-class accuracy and the
confusion matrix, computed from per-sample class scores.

This file is an `evaluate` metric script shipped inside gardener_hf; load it with
`gardener_hf.training.metrics.load_metric()` (or `evaluate.load(path_to_this_folder)`), never by a Hub name.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

# `evaluate.load` instantiates the first non-abstract EvaluationModule subclass found in this module's namespace,
# so no other metric class may be imported by name here (`from evaluate import Metric` would be picked instead).

_DESCRIPTION = """\
Accuracy measures for single-label video classification (Kinetics, Something-Something, UCF101, HMDB51, ...),
computed from one score vector per video (logits or probabilities; for multi-view testing, average the
per-clip softmax probabilities first).

- top-k accuracy: fraction of videos whose true class is among the k highest scores. Ties are broken in a
  stable way: among equal scores the lower class index ranks first. k is capped at the number of classes,
  the result key keeps the requested k ("top5" is 1.0 when there are only 3 classes).
- mean class accuracy: the top-1 recall of every class that has at least one video, averaged over those
  classes (the "mean class accuracy" reported for imbalanced sets such as Something-Something or HMDB51).
- per-class accuracy: top-1 recall of each class, None for a class without videos.
- confusion matrix: counts, rows are the true class and columns the predicted (top-1) class.

Scores that are NaN rank below every number. All accuracies are fractions in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): one score vector of length num_classes per video (logits or
        probabilities; only their order matters).
    references (`list` of `int`): the true class id of every video, in [0, num_classes).
    num_classes (`int`, *optional*): number of classes; defaults to the length of the score vectors, which it
        must equal when given.
    top_k (`Sequence[int]`, defaults to `(1, 5)`): the k values to report as "top{k}".

Returns:
    top{k} (`float`): top-k accuracy for every requested k ("top1", "top5" by default).
    mean_class_accuracy (`float`): mean top-1 recall over the classes that have at least one reference.
    per_class_accuracy (`list` of `float` or `None`): top-1 recall per class, None for classes without samples.
    confusion_matrix (`list` of `list` of `int`): num_classes x num_classes counts, rows = true, cols = predicted.
    num_samples (`int`): number of videos.

Examples:
    >>> metric = evaluate.load("gardener_hf/metric_modules/video_classification")  # doctest: +SKIP
    >>> results = metric.compute(
    ...     predictions=[[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]],
    ...     references=[1, 0, 0],
    ...     top_k=[1, 2],
    ... )  # doctest: +SKIP
    >>> results["top1"], results["top2"], results["mean_class_accuracy"]  # doctest: +SKIP
    (0.6666666666666666, 1.0, 0.75)
"""


def _topk_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row; equal scores keep the lower class index first."""
    # NaN is moved to -inf so that a diverged sample ranks its NaN classes last instead of first.
    keys = np.where(np.isnan(scores), -np.inf, scores)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


class VideoClassification(evaluate.Metric):
    """Top-k, mean class and per-class accuracy plus the confusion matrix for video classification."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://huggingface.co/docs/evaluate/creating_and_sharing"],
        )

    def _compute(
        self,
        predictions,
        references,
        num_classes: int | None = None,
        top_k: Sequence[int] = (1, 5),
    ) -> dict:
        labels = np.asarray(references, dtype=np.int64).reshape(-1)
        if labels.size == 0:
            raise ValueError("video_classification: no samples were given; pass at least one prediction/reference.")
        try:
            scores = np.asarray(predictions, dtype=np.float64)
        except ValueError as err:  # ragged rows
            raise ValueError(
                "video_classification: every prediction must be a score vector of the same length (one score per "
                f"class): {err}"
            ) from None
        if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
            raise ValueError(
                f"video_classification: predictions must have shape [num_samples, num_classes] with num_samples = "
                f"{labels.shape[0]} (the number of references); got {tuple(scores.shape)}."
            )
        width = scores.shape[1]
        num_classes = width if num_classes is None else int(num_classes)
        if num_classes < 1 or width != num_classes:
            raise ValueError(
                f"video_classification: num_classes={num_classes} but each prediction has {width} scores; they must "
                "be equal (leave num_classes unset to use the prediction width)."
            )
        out_of_range = labels[(labels < 0) | (labels >= num_classes)]
        if out_of_range.size:
            raise ValueError(
                f"video_classification: reference class ids must lie in [0, {num_classes}); found "
                f"{sorted(set(out_of_range.tolist()))[:10]}."
            )
        ks = [int(k) for k in top_k]
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"video_classification: top_k must be positive integers, got {list(top_k)}.")

        order = _topk_order(scores, min(max(ks), num_classes))
        hits = order == labels[:, None]  # [N, k_max]: at most one True per row
        results: dict = {}
        for k in ks:
            results[f"top{k}"] = float(hits[:, : min(k, num_classes)].any(axis=1).mean())

        predicted = order[:, 0]
        confusion = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
        confusion = confusion.reshape(num_classes, num_classes)
        support = confusion.sum(axis=1)
        correct = np.diag(confusion)
        present = support > 0
        recall = np.divide(correct, support, out=np.zeros(num_classes), where=present)
        results["mean_class_accuracy"] = float(recall[present].mean())
        results["per_class_accuracy"] = [float(r) if p else None for r, p in zip(recall, present, strict=True)]
        results["confusion_matrix"] = confusion.tolist()
        results["num_samples"] = int(labels.shape[0])
        return results
