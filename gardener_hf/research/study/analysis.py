"""What the finished runs say: importance, rank correlations with p-values, bootstrap intervals, the sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ...arch import base_model
from ...scoring import score_blocks, score_model
from .config import (
    CALIBRATED,
    CRITERIA,
    FEATURE_ORACLES,
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
    import warnings

    from scipy import stats  # the `study` extra; imported here so the rest works without it

    with warnings.catch_warnings():  # a constant side (an oracle no removal moves) gives NaN, reported as n/a
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
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
    if not len(rhos):  # every resample is constant (e.g. an oracle that no removal moves): no interval
        return float("nan"), float("nan")
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
    `model`'s encoder (its base model, every token), `reconstruction` on `pretraining` (the checkpoint with its decoder) when there is one.
    """
    scores = {c: score_model(model, c, progress=False) for c in CRITERIA}
    if calibration is not None:
        for c in CALIBRATED:
            # the encoder on all tokens (a pretraining checkpoint would show it only the tokens its masks leave)
            target = pretraining if c == "reconstruction" else base_model(model)
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


def sweep_methods(oracle: str, scores: dict[str, Any]) -> list[str]:
    """The sweep's methods under `oracle`: `METHODS`; a feature oracle (cheap) sweeps every calibrated criterion
    by name instead of only the best one."""
    if oracle not in FEATURE_ORACLES:
        return list(METHODS)
    return [m for m in METHODS if m != "label-free"] + [c for c in CALIBRATED if c in scores]


def sweep_plans(method: str, removals: Sequence[int], seeds: int, scores: dict[str, Any], oracle_order: list[int],
                num_blocks: int, label_free: str | None = None):
    """`{(removal, seed): removed blocks}` of one sweep method (`label-free` follows the criterion `label_free`; a
    calibrated criterion's name follows that criterion)."""
    plans = {}
    if method == "label-free" and label_free is None:
        return plans
    for seed in range(seeds):
        if method == "oracle":
            order = oracle_order
        elif method == "label-free":
            order = scores[label_free].removal_order()
        elif method == "drop-last":  # keep the first blocks
            order = list(range(num_blocks - 1, -1, -1))
        elif method == "random":
            order = score_blocks([[torch.zeros(1)]] * num_blocks, "random", seed=seed, progress=False).removal_order()
        else:
            order = scores[METHODS.get(method) or method].removal_order()
        for r in removals:
            plans[(r, seed)] = tuple(sorted(order[:r]))
    return plans


def single_removals(store: RunStore, seeds: int, num_blocks: int, oracle: str = "finetune") -> tuple[np.ndarray, list[int]]:
    """Accuracy `[blocks, seeds]` after removing each block alone, and the oracle's removal order.

    The oracle removes the least harmful block first (highest mean accuracy without it); ties go to
    the deeper block, as in `BlockScores.removal_order`.
    """
    single = np.array([[store.get((b,), s, oracle=oracle)["accuracy"] for s in range(seeds)] for b in range(num_blocks)])
    mean = single.mean(1)
    return single, sorted(range(num_blocks), key=lambda b: (-mean[b], -b))


def oracle_specs(config: StudyConfig, num_blocks: int) -> list[tuple]:
    """The runs of every oracle: the unpruned model and each single-block removal per seed (and the scratch
    reference)."""
    specs: list[tuple] = []
    for oracle in config.oracles:
        for removed in [(), *[(b,) for b in range(num_blocks)]]:
            specs += [(oracle, removed, s, False) for s in range(config.seeds)]
        if config.scratch:
            specs += [(oracle, (), s, True) for s in range(config.seeds)]
    return specs


def all_plans(config: StudyConfig, store: RunStore, scores: dict[str, Any], num_blocks: int) -> dict[str, Any]:
    """Per oracle: its removal order, its best label-free criterion and `{method: sweep plans}`."""
    out = {}
    for oracle in config.oracles:
        single, order = single_removals(store, config.seeds, num_blocks, oracle)
        label_free = best_label_free(scores, -single.mean(1)) if oracle not in FEATURE_ORACLES else None
        plans = {m: sweep_plans(m, config.removals, config.seeds, scores, order, num_blocks, label_free)
                 for m in sweep_methods(oracle, scores)}
        out[oracle] = {"order": order, "label_free": label_free, "plans": plans}
    return out


def sweep_specs(plans: dict[str, Any]) -> list[tuple]:
    """The runs the sweeps need, for `all_plans`' output."""
    return [(oracle, removed, seed, False) for oracle, p in plans.items() for plan in p["plans"].values()
            for (_, seed), removed in plan.items()]


def _criterion_rows(scores, hist) -> list[tuple[str, Any]]:
    """`(name, BlockScores)` of every criterion scored, then each K-bin histogram entropy, in report order."""
    return ([(c, scores[c]) for c in (*CRITERIA, *CALIBRATED) if c in scores]
            + [(f"entropy-hist K={k}", hist[k]) for k in HIST_BINS])


def _oracle_results(config: StudyConfig, store: RunStore, scores, hist, oracle: str, plans: dict[str, Any],
                    num_blocks: int) -> dict[str, Any]:
    seeds = range(config.seeds)
    base = [store.get((), s, oracle=oracle) for s in seeds]
    single, order = single_removals(store, config.seeds, num_blocks, oracle)
    oracle_importance = -single.mean(1)  # more accuracy lost = more important

    agreement = {}
    rows = _criterion_rows(scores, hist)
    for name, s in rows:
        imp = importance(s)
        row = rank_correlations(imp, oracle_importance)
        row["spearman_ci95"] = bootstrap_spearman(single, imp)
        row["prune_first"] = s.prune_first
        agreement[name] = row

    pairs = [(i, j) for i in seeds for j in seeds if i < j]
    reliability = [rank_correlations(-single[:, i], -single[:, j])["spearman"] for i, j in pairs]

    sweep = {}
    for method, plan in plans["plans"].items():
        if not plan:
            continue
        sweep[method] = {}
        for r in config.removals:
            runs = [store.get(plan[(r, s)], s, oracle=oracle) for s in seeds]
            sweep[method][str(r)] = {"plans": [list(plan[(r, s)]) for s in seeds], **_summary([x["accuracy"] for x in runs])}
    result = {
        "baseline": _summary([r["accuracy"] for r in base]),
        "scratch": _summary([store.get((), s, True, oracle)["accuracy"] for s in seeds]) if config.scratch else None,
        "single_removal": {str(b): _summary(single[b]) for b in range(num_blocks)},
        "removal_order": order,
        "importance": [float(v) for v in oracle_importance],
        "reliability_spearman": {"pairs": [list(p) for p in pairs], "values": reliability},
        "agreement": agreement,
        "sweep": sweep,
        "label_free_criterion": plans["label_free"],
    }
    if oracle == "finetune":
        result["ssl_vs_finetuned"] = _ssl_vs_finetuned(scores, base, oracle_importance)
    return result


def _ssl_vs_finetuned(scores, base: list[dict[str, Any]], oracle_importance: np.ndarray) -> dict[str, Any]:
    """Open question 1: the pretrained checkpoint's scores vs the same model's after finetuning."""
    out = {}
    for c in CRITERIA:
        ft = [r["finetuned_scores"][c] for r in base]
        per_seed = [rank_correlations(scores[c].scores, f) for f in ft]
        ft_imp = [importance(scores[c], f) for f in ft]
        out[c] = {
            "spearman": [p["spearman"] for p in per_seed],
            "kendall": [p["kendall"] for p in per_seed],
            "finetuned_vs_oracle_spearman": [rank_correlations(i, oracle_importance)["spearman"] for i in ft_imp],
            "max_abs_change": float(max(np.max(np.abs(np.asarray(f) - np.asarray(scores[c].scores))) for f in ft)),
        }
    return out


def analyse(config: StudyConfig, store: RunStore, scores, hist, plans: dict[str, Any], num_blocks: int, *,
            data: str, num_classes: int) -> dict[str, Any]:
    """Everything the report shows, from the finished runs (JSON-able)."""
    oracles = {o: _oracle_results(config, store, scores, hist, o, plans[o], num_blocks) for o in config.oracles}
    between = {}
    names = list(oracles)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            row = rank_correlations(oracles[a]["importance"], oracles[b]["importance"])
            row["same_removal_order_first_half"] = sorted(oracles[a]["removal_order"][: num_blocks // 2]) == sorted(
                oracles[b]["removal_order"][: num_blocks // 2])
            between[f"{a} vs {b}"] = row
    # open question 2: float16-code entropy vs exact float32 entropy vs K-bin histograms
    f16 = scores["entropy"].scores
    variants = {"entropy-exact": scores["entropy-exact"].scores, **{f"entropy-hist K={k}": hist[k].scores for k in HIST_BINS}}
    entropy_variants = {name: rank_correlations(f16, v) for name, v in variants.items()}
    rows = _criterion_rows(scores, hist)
    runs = [r for r in store.runs.values() if r.get("oracle", "finetune") in config.oracles]  # this call's oracles
    return {
        "config": config.to_dict(),
        "num_blocks": num_blocks,
        "data": data,
        "num_classes": num_classes,
        "chance": 1.0 / num_classes,
        "scores": {name: s.to_dict() for name, s in rows},
        "oracles": oracles,
        "oracle_agreement": between,
        "entropy_variants": entropy_variants,
        "calibration": next((s.params.get("calibration") for s in scores.values() if "calibration" in s.params), None),
        "paper": {"agreement_entropy": paper_correlations(), "unpruned": PAPER_UNPRUNED, "single_removal": PAPER_SINGLE_REMOVAL,
                  "sweep": {m: dict(zip(map(str, PAPER_REMOVALS), v, strict=True)) for m, v in PAPER_SWEEP.items()}},
        "runs": {"count": len(runs), "cpu_seconds": round(sum(r["seconds"] for r in runs), 1),
                 "by_oracle": {o: sum(1 for r in runs if r.get("oracle", "finetune") == o) for o in config.oracles}},
    }
