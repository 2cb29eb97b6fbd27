"""What the finished runs say: importance, rank correlations with p-values, bootstrap intervals, the sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ...scoring import score_blocks, score_model
from ..synthetic import task_labels
from .config import (
    CALIBRATED,
    CRITERIA,
    HIST_BINS,
    METHODS,
    PAPER_REMOVAL_ORDER,
    PAPER_REMOVALS,
    PAPER_SINGLE_REMOVAL,
    PAPER_SWEEP,
    PAPER_UNPRUNED,
    StudyConfig,
)
from .runs import RunStore

def importance(scores, values: Sequence[float] | None = None) -> np.ndarray:
    """A criterion's importance per block (higher = kept longer): its score, negated if it removes the highest first.

    `values` replaces `scores.scores` (e.g. the same criterion's scores of another checkpoint).
    """
    values = np.asarray(scores.scores if values is None else values, dtype=np.float64)
    return values if scores.prune_first == "lowest" else -values


def rank_correlations(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Spearman and Kendall (tau-b) correlations with their two-sided p-values."""
    from scipy import stats  # the `study` extra; imported here so the rest works without it

    rho, rho_p = stats.spearmanr(a, b)
    tau, tau_p = stats.kendalltau(a, b)
    return {"spearman": float(rho), "spearman_p": float(rho_p), "kendall": float(tau), "kendall_p": float(tau_p)}


def _spearman_rows(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman of `target` with each row of `values` (average ranks for ties)."""
    from scipy import stats

    rv = stats.rankdata(values, axis=1)
    rt = stats.rankdata(target)
    rv = rv - rv.mean(1, keepdims=True)
    rt = rt - rt.mean()
    denom = np.sqrt((rv**2).sum(1) * (rt**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rv @ rt) / denom


def bootstrap_spearman(per_seed: np.ndarray, target: np.ndarray, *, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of Spearman(-oracle accuracy, target) when each block's seeds are resampled.

    Args:
        per_seed: oracle accuracy `[blocks, seeds]` of each single-block removal.
        target: a criterion's importance per block.
    """
    rng = np.random.default_rng(seed)
    blocks, seeds = per_seed.shape
    pick = rng.integers(0, seeds, size=(rounds, blocks, seeds))
    means = np.take_along_axis(per_seed[None].repeat(rounds, 0), pick, axis=2).mean(2)
    rhos = _spearman_rows(-means, target)
    rhos = rhos[np.isfinite(rhos)]
    return float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))


def _summary(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "min": float(v.min()),
            "max": float(v.max()), "n": len(v), "values": [float(x) for x in v]}


def paper_correlations() -> dict[str, float]:
    """The paper's entropy-vs-oracle agreement recomputed from docs/method.md §2-§3 (Spearman 0.755, Kendall 0.667)."""
    n = len(PAPER_SINGLE_REMOVAL)
    entropy_importance = np.empty(n)
    for position, block in enumerate(PAPER_REMOVAL_ORDER):
        entropy_importance[block - 1] = position  # removed later = more important
    return rank_correlations(entropy_importance, -np.asarray(PAPER_SINGLE_REMOVAL))


def score_all(model: nn.Module, source: str, calibration: Any = None, pretraining: nn.Module | None = None
              ) -> tuple[dict[str, Any], dict[int, Any]]:
    """Every criterion's scores of `model`, and the K-bin histogram entropies for each K in `HIST_BINS`.

    With a `calibration`, the calibrated criteria too: `block-influence`, `angular` and `removal-drift` on
    `model`'s encoder, `reconstruction` on `pretraining` (the checkpoint with its decoder) when there is one.
    """
    scores = {c: score_model(model, c, progress=False) for c in CRITERIA}
    if calibration is not None:
        for c in CALIBRATED:
            target = pretraining if c == "reconstruction" else model
            if target is not None:
                scores[c] = score_model(target, c, calibration=calibration, calibration_samples=calibration.num_samples,
                                        progress=False)
    hist = {k: score_model(model, "entropy-hist", bins=k, progress=False) for k in HIST_BINS}
    for s in [*scores.values(), *hist.values()]:
        s.source = source
    return scores, hist


def best_label_free(scores: dict[str, Any], oracle_importance: np.ndarray) -> str | None:
    """The calibrated criterion whose importance agrees best (Spearman) with the oracle's (ties: the first in
    `CALIBRATED`), or None."""
    ranked = [(rank_correlations(importance(scores[c]), oracle_importance)["spearman"], c) for c in CALIBRATED if c in scores]
    ranked = [(rho, c) for rho, c in ranked if np.isfinite(rho)]
    return max(ranked, key=lambda pair: pair[0])[1] if ranked else None


def sweep_plans(method: str, removals: Sequence[int], seeds: int, scores: dict[str, Any], oracle_order: list[int],
                num_blocks: int, label_free: str | None = None):
    """`{(removal, seed): removed blocks}` of one sweep method (`label-free` follows the criterion `label_free`)."""
    plans = {}
    if method == "label-free" and label_free is None:
        return plans
    for seed in range(seeds):
        if method == "oracle":
            order = oracle_order
        elif method == "label-free":
            order = scores[label_free].removal_order()
        elif method == "random":
            order = score_blocks([[torch.zeros(1)]] * num_blocks, "random", seed=seed, progress=False).removal_order()
        else:
            order = scores[METHODS[method]].removal_order()
        for r in removals:
            plans[(r, seed)] = tuple(sorted(order[:r]))
    return plans


def single_removals(store: RunStore, seeds: int, num_blocks: int) -> tuple[np.ndarray, list[int]]:
    """Accuracy `[blocks, seeds]` after removing each block alone, and the oracle's removal order.

    The oracle removes the least harmful block first (highest mean accuracy without it); ties go to
    the deeper block, as in `BlockScores.removal_order`.
    """
    single = np.array([[store.get((b,), s)["accuracy"] for s in range(seeds)] for b in range(num_blocks)])
    mean = single.mean(1)
    return single, sorted(range(num_blocks), key=lambda b: (-mean[b], -b))


def analyse(config: StudyConfig, store: RunStore, scores, hist, plans, oracle_order, num_blocks) -> dict[str, Any]:
    """Everything the report shows, from the finished runs (JSON-able)."""
    seeds = range(config.seeds)
    base = [store.get((), s) for s in seeds]
    base_acc = np.array([r["accuracy"] for r in base])
    single, _ = single_removals(store, config.seeds, num_blocks)
    oracle_importance = -single.mean(1)  # more accuracy lost = more important

    agreement = {}
    rows = ([(c, scores[c]) for c in (*CRITERIA, *CALIBRATED) if c in scores]
            + [(f"entropy-hist K={k}", hist[k]) for k in HIST_BINS])
    for name, s in rows:
        imp = importance(s)
        row = rank_correlations(imp, oracle_importance)
        row["spearman_ci95"] = bootstrap_spearman(single, imp)
        row["prune_first"] = s.prune_first
        agreement[name] = row

    pairs = [(i, j) for i in seeds for j in seeds if i < j]
    reliability = [rank_correlations(-single[:, i], -single[:, j])["spearman"] for i, j in pairs]

    # open question 1: the pretrained checkpoint's scores vs the same model's after finetuning
    ssl_vs_ft = {}
    for c in CRITERIA:
        ft = [r["finetuned_scores"][c] for r in base]
        per_seed = [rank_correlations(scores[c].scores, f) for f in ft]
        ft_imp = [importance(scores[c], f) for f in ft]
        ssl_vs_ft[c] = {
            "spearman": [p["spearman"] for p in per_seed],
            "kendall": [p["kendall"] for p in per_seed],
            "finetuned_vs_oracle_spearman": [rank_correlations(i, oracle_importance)["spearman"] for i in ft_imp],
            "max_abs_change": float(max(np.max(np.abs(np.asarray(f) - np.asarray(scores[c].scores))) for f in ft)),
        }
    # open question 2: float16-code entropy vs exact float32 entropy vs K-bin histograms
    f16 = scores["entropy"].scores
    variants = {"entropy-exact": scores["entropy-exact"].scores, **{f"entropy-hist K={k}": hist[k].scores for k in HIST_BINS}}
    entropy_variants = {name: rank_correlations(f16, v) for name, v in variants.items()}

    sweep = {}
    for method, plan in plans.items():
        if not plan:
            continue
        sweep[method] = {}
        for r in config.removals:
            runs = [store.get(plan[(r, s)], s) for s in seeds]
            sweep[method][str(r)] = {"plans": [list(plan[(r, s)]) for s in seeds], **_summary([x["accuracy"] for x in runs])}

    runs = list(store.runs.values())
    result = {
        "config": config.to_dict(),
        "num_blocks": num_blocks,
        "chance": 1.0 / len(task_labels(config.task)),
        "scores": {name: s.to_dict() for name, s in rows},
        "baseline": _summary(base_acc),
        "scratch": _summary([store.get((), s, True)["accuracy"] for s in seeds]) if config.scratch else None,
        "single_removal": {str(b): _summary(single[b]) for b in range(num_blocks)},
        "oracle_removal_order": oracle_order,
        "oracle_reliability_spearman": {"pairs": [list(p) for p in pairs], "values": reliability},
        "agreement": agreement,
        "ssl_vs_finetuned": ssl_vs_ft,
        "entropy_variants": entropy_variants,
        "sweep": sweep,
        "label_free_criterion": best_label_free(scores, oracle_importance),
        "calibration": next((s.params.get("calibration") for s in scores.values() if "calibration" in s.params), None),
        "paper": {"agreement_entropy": paper_correlations(), "unpruned": PAPER_UNPRUNED, "single_removal": PAPER_SINGLE_REMOVAL,
                  "sweep": {m: dict(zip(map(str, PAPER_REMOVALS), v, strict=True)) for m, v in PAPER_SWEEP.items()}},
        "runs": {"count": len(runs), "cpu_seconds": round(sum(r["seconds"] for r in runs), 1)},
    }
    return result
