"""The study's report: REPORT.md rendered from a Jinja template shipped in the package, and its two plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ...plotting import pyplot
from .config import (
    CALIBRATED,
    CRITERIA,
    FEATURE_ORACLES,
    KNN_K,
    PAPER_REMOVALS,
    PAPER_SINGLE_REMOVAL,
    PAPER_UNPRUNED,
    PROBE_C,
    StudyConfig,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "study_report.md"

_LABELS = {"gardener": "Gardener (entropy)", "oracle": "Oracle", "l1": "L1, lowest first (paper)",
           "l1-reverse": "L1, highest first", "random": "Random", "drop-last": "Drop the last blocks",
           "label-free": "Best label-free"}
_COLOURS = {"gardener": "tab:green", "oracle": "black", "drop-last": "tab:olive", "l1": "tab:red", "l1-reverse": "tab:orange", "random": "tab:grey",
            "label-free": "tab:cyan", "block-influence": "tab:cyan", "angular": "tab:blue", "removal-drift": "tab:purple",
            "reconstruction": "tab:pink"}
_ORACLE_TEXT = {"finetune": "finetuned top-1", "linear-probe": "linear-probe top-1", "knn": f"{KNN_K}-NN top-1"}


def _label(method: str, oracle: dict[str, Any]) -> str:
    if method == "label-free":
        return f"Best label-free ({oracle.get('label_free_criterion')})"
    return _LABELS.get(method, f"{method} (label-free)")


def _verdict(row: dict[str, float]) -> str:
    """How a rank correlation reads: positive / negative when p < 0.05, else not told apart from zero."""
    if not np.isfinite(row["spearman"]):
        return "undefined (the oracle or the scores do not vary over the blocks)"
    if not np.isfinite(row["spearman_p"]) or row["spearman_p"] >= 0.05:
        return "not distinguishable from no agreement (p >= 0.05)"
    return "agrees (p < 0.05)" if row["spearman"] > 0 else "ranks blocks *against* the oracle (p < 0.05)"


def plot_scores(results: dict[str, Any], path: Path) -> None:
    """A panel per oracle (accuracy per removed block), then one per criterion (score per block)."""
    plt = pyplot()
    n = results["num_blocks"]
    blocks = np.arange(1, n + 1)
    oracles = results["oracles"]
    first = next(iter(oracles))
    panels = [*(("oracle", o) for o in oracles), *(("score", c) for c in [*CRITERIA, *CALIBRATED] if c in results["scores"])]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.7 * rows), squeeze=False)
    for ax, (kind, name) in zip(axes.flat, panels, strict=False):
        if kind == "oracle":
            single = oracles[name]["single_removal"]
            mean = np.array([single[str(b)]["mean"] for b in range(n)]) * 100
            lo = mean - np.array([single[str(b)]["min"] for b in range(n)]) * 100
            hi = np.array([single[str(b)]["max"] for b in range(n)]) * 100 - mean
            ax.bar(blocks, mean, color="black", alpha=0.75, yerr=[lo, hi], capsize=2, ecolor="tab:blue")
            base = oracles[name]["baseline"]["mean"] * 100
            ax.axhline(base, color="tab:blue", ls="--", lw=1, label=f"unpruned {base:.1f}%")
            ax.set_ylim(max(0.0, min(mean - lo) - 5), min(100.0, max(max(mean + hi), base) + 3))
            ax.set_title(f"{name} oracle: {_ORACLE_TEXT[name]} % with block removed\n(mean of "
                         f"{results['config']['seeds']} seeds, bars min-max)", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
        else:
            s = results["scores"][name]
            agree = oracles[first]["agreement"][name]
            colour = "tab:green" if name == "entropy" else "tab:cyan" if name in CALIBRATED else "tab:purple"
            ax.plot(blocks, s["scores"], "o-", color=colour, ms=4)
            kept_last = f"{'low' if s['prune_first'] == 'lowest' else 'high'}est removed first"
            ax.set_title(f"{name} ({kept_last})\nSpearman vs {first} {agree['spearman']:+.2f} (p={agree['spearman_p']:.2g})",
                         fontsize=9)
        ax.set_xticks(blocks)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("block (1-based)", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"Block scores of {results['scores']['entropy']['source']} vs the oracles", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(results: dict[str, Any], path: Path) -> None:
    """Top-1 vs blocks removed per method under each oracle (mean, min-max bars), next to the paper's Table 3."""
    plt = pyplot()
    oracles = results["oracles"]
    fig, axes = plt.subplots(1, len(oracles) + 1, figsize=(6 * (len(oracles) + 1), 4.5), squeeze=False)
    removals = [int(r) for r in results["config"]["removals"]]
    for ax, (name, oracle) in zip(axes[0], oracles.items(), strict=False):
        methods = list(oracle["sweep"])
        for i, method in enumerate(methods):
            row = oracle["sweep"][method]
            mean = np.array([row[str(r)]["mean"] for r in removals]) * 100
            lo = mean - np.array([row[str(r)]["min"] for r in removals]) * 100
            hi = np.array([row[str(r)]["max"] for r in removals]) * 100 - mean
            x = np.array(removals) + (i - len(methods) / 2) * 0.07
            ax.errorbar(x, mean, yerr=[lo, hi], marker="o", ms=4, capsize=3, label=_label(method, oracle),
                        color=_COLOURS.get(method, "tab:olive"))
        base = oracle["baseline"]
        ax.axhline(base["mean"] * 100, color="tab:blue", ls="--", lw=1, label=f"unpruned ({base['mean'] * 100:.1f}%)")
        if oracle.get("scratch"):
            ax.axhline(oracle["scratch"]["mean"] * 100, color="tab:brown", ls=":", lw=1.2,
                       label=f"unpruned, no pretraining ({oracle['scratch']['mean'] * 100:.1f}%)")
        ax.axhline(results["chance"] * 100, color="0.6", ls="-.", lw=1, label=f"chance ({results['chance'] * 100:.0f}%)")
        ax.set_title(f"{name} oracle ({_ORACLE_TEXT[name]}), mean of {results['config']['seeds']} seeds (bars: min-max)",
                     fontsize=10)
        ax.set_xticks(removals)
    ax_paper = axes[0][-1]
    for method, values in results["paper"]["sweep"].items():
        ax_paper.plot(PAPER_REMOVALS, [values[str(r)] for r in PAPER_REMOVALS], "o-", ms=4, label=_LABELS[method],
                      color=_COLOURS[method])
    ax_paper.axhline(PAPER_UNPRUNED, color="tab:blue", ls="--", lw=1, label=f"unpruned ({PAPER_UNPRUNED}%)")
    ax_paper.set_title("Paper (docs/method.md §5): VideoMAE-B K400-FT on UCF101, one seed", fontsize=10)
    ax_paper.set_xticks(PAPER_REMOVALS)
    for a in axes[0]:
        a.set_xlabel(f"blocks removed (of {results['num_blocks'] if a is not ax_paper else 12})")
        a.set_ylabel("top-1 accuracy (%)")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pm(s: dict[str, float], scale: float = 100.0) -> str:
    return f"{s['mean'] * scale:.1f} ± {s['std'] * scale:.1f}"


def fmt_p(p: float) -> str:
    """A p-value for a table: two significant digits, "n/a" when undefined."""
    return f"{p:.2g}" if np.isfinite(p) else "n/a"


def _table(header: str, rows: list[str], columns: int) -> list[str]:
    return [header, "|---|" + "---|" * columns, *rows]


def _oracle_view(name: str, oracle: dict[str, Any], results: dict[str, Any], config: StudyConfig) -> dict[str, Any]:
    n = results["num_blocks"]
    removals = list(config.removals)
    single = oracle["single_removal"]
    blocks = " | ".join(str(b + 1) for b in range(n))
    oracle_rows = [
        "| top-1 % (ours, mean) | " + " | ".join(f"{single[str(b)]['mean'] * 100:.1f}" for b in range(n)) + " |",
        "| std over seeds | " + " | ".join(f"{single[str(b)]['std'] * 100:.1f}" for b in range(n)) + " |",
    ]
    if n == len(PAPER_SINGLE_REMOVAL):
        oracle_rows.append("| paper (finetuned, UCF101) | " + " | ".join(f"{v:.1f}" for v in PAPER_SINGLE_REMOVAL) + " |")
    rel = oracle["reliability_spearman"]["values"]
    agreement = []
    for criterion, row in oracle["agreement"].items():
        lo, hi = row["spearman_ci95"]
        agreement.append(
            f"| {criterion} | {row['prune_first']} | {row['spearman']:+.3f} | {fmt_p(row['spearman_p'])} | [{lo:+.2f}, {hi:+.2f}] "
            f"| {row['kendall']:+.3f} | {fmt_p(row['kendall_p'])} |"
        )
    paper = results["paper"]["agreement_entropy"]
    agreement.append(
        f"| **paper: entropy, VideoMAE-B K400-FT / UCF101** | lowest | {paper['spearman']:+.3f} | {fmt_p(paper['spearman_p'])} "
        f"| (one seed) | {paper['kendall']:+.3f} | {fmt_p(paper['kendall_p'])} |"
    )
    sweep_rows = []
    for method, row in oracle["sweep"].items():
        cells = [f"{_pm(row[str(r)])} [{row[str(r)]['min'] * 100:.1f}, {row[str(r)]['max'] * 100:.1f}]" for r in removals]
        sweep_rows.append(f"| {_label(method, oracle)} | " + " | ".join(cells) + " |")
    for method, values in results["paper"]["sweep"].items():
        cells = [f"{values[str(r)]:.2f}" if str(r) in values else "" for r in removals]
        sweep_rows.append(f"| paper: {_LABELS[method]} | " + " | ".join(cells) + " |")
    sweep_plans = [
        f"{_label(method, oracle)}: " + "; ".join(
            f"k={r}: " + (",".join(str(b + 1) for b in oracle["sweep"][method][str(r)]["plans"][0]) or "-") for r in removals
        )
        for method in oracle["sweep"]
    ]
    entropy = oracle["agreement"]["entropy"]
    return {
        "name": name,
        "what": _ORACLE_TEXT[name],
        "baseline": _pm(oracle["baseline"]),
        "scratch": _pm(oracle["scratch"]) if oracle.get("scratch") else None,
        "oracle_table": _table(f"| block | {blocks} |", oracle_rows, n),
        "oracle_order": ", ".join(str(b + 1) for b in oracle["removal_order"]),
        "reliability": (", ".join(f"{v:+.2f}" for v in rel) + f" (mean {np.mean(rel):+.2f}) over the {len(rel)} seed pairs."
                        if rel else "n/a (one seed)."),
        "reliability_mean": float(np.mean(rel)) if rel else None,
        "agreement": agreement,
        "label_free": oracle.get("label_free_criterion"),
        "sweep_table": _table("| method | " + " | ".join(f"k={r}" for r in removals) + " |", sweep_rows, len(removals)),
        "sweep_plans": sweep_plans,
        "entropy": f"Spearman {entropy['spearman']:+.3f} (p={fmt_p(entropy['spearman_p'])}, 95% interval "
                   f"[{entropy['spearman_ci95'][0]:+.2f}, {entropy['spearman_ci95'][1]:+.2f}]), Kendall {entropy['kendall']:+.3f}",
        "entropy_verdict": _verdict(entropy),
        "best": max(((c, r) for c, r in oracle["agreement"].items() if np.isfinite(r["spearman"])),
                    key=lambda pair: pair[1]["spearman"], default=(None, None)),
    }


def render_report(results: dict[str, Any]) -> str:
    """REPORT.md: the numbers of `results`, laid out next to the paper's (template `templates/study_report.md`)."""
    config = StudyConfig.from_dict(results["config"])
    n = results["num_blocks"]
    env = results.get("environment", {})
    oracles = [_oracle_view(name, o, results, config) for name, o in results["oracles"].items()]
    for view in oracles:
        best, row = view.pop("best")
        view["best"] = f"`{best}` (Spearman {row['spearman']:+.3f}, p={fmt_p(row['spearman_p'])})" if best else "n/a"
    pairs = results.get("oracle_agreement", {})
    between = [
        f"| {pair} | {row['spearman']:+.3f} | {fmt_p(row['spearman_p'])} | {row['kendall']:+.3f} | {fmt_p(row['kendall_p'])} |"
        for pair, row in pairs.items()
    ]
    between_summary = "; ".join(f"{pair}: Spearman {row['spearman']:+.2f} (p={fmt_p(row['spearman_p'])})"
                                for pair, row in pairs.items())
    finetune = results["oracles"].get("finetune")
    ssl = [
        f"| {c} | {', '.join(f'{v:+.2f}' for v in row['spearman'])} | {', '.join(f'{v:+.2f}' for v in row['kendall'])} "
        f"| {', '.join(f'{v:+.2f}' for v in row['finetuned_vs_oracle_spearman'])} | {row['max_abs_change']:.3g} |"
        for c, row in (finetune or {}).get("ssl_vs_finetuned", {}).items()
    ]
    variants = [
        f"| {name} | {row['spearman']:+.3f} | {fmt_p(row['spearman_p'])} | {row['kendall']:+.3f} | {fmt_p(row['kendall_p'])} |"
        for name, row in results["entropy_variants"].items()
    ]
    blocks = " | ".join(str(b + 1) for b in range(n))
    score_rows = [f"| {name} | " + " | ".join(f"{v:.6g}" for v in s["scores"]) + " |" for name, s in results["scores"].items()]
    by_oracle = results["runs"].get("by_oracle", {})
    runs_line = (f"{results['runs']['count']} distinct runs"
                 + (" (" + ", ".join(f"{o}: {c}" for o, c in by_oracle.items()) + ")" if by_oracle else "")
                 + f", {results['runs']['cpu_seconds'] / 3600:.2f} CPU-thread hours")
    where = f"{env.get('cpus')} x {env.get('processor')}"
    if env.get("device") not in (None, "cpu"):
        where += f" with {env.get('device')}"
    parallel = f"{env.get('jobs')} at a time" + (f" in each of {env['processes']} processes" if env.get("processes", 1) > 1 else "")
    if env and "runs_this_call" in env and env["runs_this_call"] < results["runs"]["count"]:
        # a resumed study: the machine of the last call ran only some of the runs
        runs_line += f"; the call that wrote this report ran {env['runs_this_call']} of them on {where} ({parallel}) and reused the rest"
    elif env:
        runs_line += f" on {where} ({parallel})"
    view = {
        "cfg": config,
        "n": n,
        "env": env,
        "source": results["scores"]["entropy"]["source"],
        "data": results.get("data", ""),
        "generated": config.data is None,
        "clip_options": json.dumps(config.clip_options),
        "chance": f"{results['chance'] * 100:.0f}",
        "learning_rate": f"{config.learning_rate:g}",
        "weight_decay": f"{config.weight_decay:g}",
        "warmup": f"{config.warmup_ratio:.0%}",
        "probe_fraction": f"{config.probe_fraction:.0%}",
        "probe_c": f"{PROBE_C:g}",
        "knn_k": KNN_K,
        "runs_line": runs_line,
        "command": results.get("command", ""),
        "oracles": oracles,
        "has_finetune": finetune is not None,
        "has_features": any(o in FEATURE_ORACLES for o in results["oracles"]),
        "between": between,
        "between_summary": between_summary,
        "calibration": results.get("calibration"),
        "paper_unpruned": PAPER_UNPRUNED,
        "ssl_vs_finetuned": ssl,
        "entropy_variants": variants,
        "score_table": _table(f"| criterion | {blocks} |", score_rows, n),
    }
    env_jinja = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    return env_jinja.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**view)
