"""The study's report: REPORT.md rendered from a Jinja template shipped in the package, and its two plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from ...plotting import pyplot
from .config import CALIBRATED, CRITERIA, METHODS, PAPER_REMOVALS, PAPER_SINGLE_REMOVAL, PAPER_UNPRUNED, StudyConfig

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "study_report.md"

_LABELS = {"gardener": "Gardener (entropy)", "oracle": "Oracle", "l1": "L1, lowest first (paper)",
           "l1-reverse": "L1, highest first", "random": "Random", "label-free": "Best label-free"}
_COLOURS = {"gardener": "tab:green", "oracle": "black", "l1": "tab:red", "l1-reverse": "tab:orange", "random": "tab:grey",
            "label-free": "tab:cyan"}


def _label(method: str, results: dict[str, Any]) -> str:
    if method == "label-free":
        return f"Best label-free ({results.get('label_free_criterion')})"
    return _LABELS[method]


def _methods(results: dict[str, Any]) -> list[str]:
    """The sweep methods this study ran (older studies have no label-free one)."""
    return [m for m in METHODS if m in results["sweep"]]


def plot_scores(results: dict[str, Any], path: Path) -> None:
    """One panel per criterion (score per block) after a panel of the oracle's accuracy per removed block."""
    plt = pyplot()
    n = results["num_blocks"]
    blocks = np.arange(1, n + 1)
    panels = ["oracle", *CRITERIA, *[c for c in CALIBRATED if c in results["scores"]]]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.7 * rows), squeeze=False)
    for ax, name in zip(axes.flat, panels, strict=False):
        if name == "oracle":
            single = results["single_removal"]
            mean = np.array([single[str(b)]["mean"] for b in range(n)]) * 100
            lo = mean - np.array([single[str(b)]["min"] for b in range(n)]) * 100
            hi = np.array([single[str(b)]["max"] for b in range(n)]) * 100 - mean
            ax.bar(blocks, mean, color="black", alpha=0.75, yerr=[lo, hi], capsize=2, ecolor="tab:blue")
            base = results["baseline"]["mean"] * 100
            ax.axhline(base, color="tab:blue", ls="--", lw=1, label=f"unpruned {base:.1f}%")
            ax.set_ylim(max(0.0, min(mean - lo) - 5), min(100.0, max(max(mean + hi), base) + 3))
            ax.set_title(f"oracle: top-1 % with block removed\n(mean of {results['config']['seeds']} seeds, bars min-max)", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
        else:
            s = results["scores"][name]
            agree = results["agreement"][name]
            colour = "tab:green" if name == "entropy" else "tab:cyan" if name in CALIBRATED else "tab:purple"
            ax.plot(blocks, s["scores"], "o-", color=colour, ms=4)
            kept_last = f"{'low' if s['prune_first'] == 'lowest' else 'high'}est removed first"
            ax.set_title(f"{name} ({kept_last})\nSpearman vs oracle {agree['spearman']:+.2f} (p={agree['spearman_p']:.2g})", fontsize=9)
        ax.set_xticks(blocks)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("block (1-based)", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"Block scores of {results['scores']['entropy']['source']} vs the finetuning oracle", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(results: dict[str, Any], path: Path) -> None:
    """Top-1 vs blocks removed per method (ours: mean, min-max bars), next to the paper's Table 3."""
    plt = pyplot()
    fig, (ax, ax_paper) = plt.subplots(1, 2, figsize=(12, 4.5))
    removals = [int(r) for r in results["config"]["removals"]]
    for i, method in enumerate(_methods(results)):
        row = results["sweep"][method]
        mean = np.array([row[str(r)]["mean"] for r in removals]) * 100
        lo = mean - np.array([row[str(r)]["min"] for r in removals]) * 100
        hi = np.array([row[str(r)]["max"] for r in removals]) * 100 - mean
        x = np.array(removals) + (i - 2) * 0.09
        ax.errorbar(x, mean, yerr=[lo, hi], marker="o", ms=4, capsize=3, label=_label(method, results), color=_COLOURS[method])
    base = results["baseline"]
    ax.axhline(base["mean"] * 100, color="tab:blue", ls="--", lw=1, label=f"unpruned ({base['mean'] * 100:.1f}%)")
    if results.get("scratch"):
        ax.axhline(results["scratch"]["mean"] * 100, color="tab:brown", ls=":", lw=1.2,
                   label=f"unpruned, no pretraining ({results['scratch']['mean'] * 100:.1f}%)")
    ax.axhline(results["chance"] * 100, color="0.6", ls="-.", lw=1, label=f"chance ({results['chance'] * 100:.0f}%)")
    ax.set_title(f"This study: {results['config']['task']} task, mean of {results['config']['seeds']} seeds (bars: min-max)", fontsize=10)
    for method, values in results["paper"]["sweep"].items():
        ax_paper.plot(PAPER_REMOVALS, [values[str(r)] for r in PAPER_REMOVALS], "o-", ms=4, label=_LABELS[method], color=_COLOURS[method])
    ax_paper.axhline(PAPER_UNPRUNED, color="tab:blue", ls="--", lw=1, label=f"unpruned ({PAPER_UNPRUNED}%)")
    ax_paper.set_title("Paper (docs/method.md §5): VideoMAE-B K400-FT on UCF101, one seed", fontsize=10)
    for a in (ax, ax_paper):
        a.set_xlabel("blocks removed (of 12)")
        a.set_ylabel("top-1 accuracy (%)")
        a.set_xticks(removals if a is ax else PAPER_REMOVALS)
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


def render_report(results: dict[str, Any]) -> str:
    """REPORT.md: the numbers of `results`, laid out next to the paper's (template `templates/study_report.md`)."""
    config = StudyConfig.from_dict(results["config"])
    n = results["num_blocks"]
    env = results.get("environment", {})
    removals = list(config.removals)
    single = results["single_removal"]
    blocks = " | ".join(str(b + 1) for b in range(n))
    oracle_rows = [
        "| top-1 % (ours, mean) | " + " | ".join(f"{single[str(b)]['mean'] * 100:.1f}" for b in range(n)) + " |",
        "| std over seeds | " + " | ".join(f"{single[str(b)]['std'] * 100:.1f}" for b in range(n)) + " |",
    ]
    if n == len(PAPER_SINGLE_REMOVAL):
        oracle_rows.append("| paper (UCF101) | " + " | ".join(f"{v:.1f}" for v in PAPER_SINGLE_REMOVAL) + " |")
    rel = results["oracle_reliability_spearman"]["values"]
    agreement = []
    for name, row in results["agreement"].items():
        lo, hi = row["spearman_ci95"]
        agreement.append(
            f"| {name} | {row['prune_first']} | {row['spearman']:+.3f} | {fmt_p(row['spearman_p'])} | [{lo:+.2f}, {hi:+.2f}] "
            f"| {row['kendall']:+.3f} | {fmt_p(row['kendall_p'])} |"
        )
    paper = results["paper"]["agreement_entropy"]
    agreement.append(
        f"| **paper: entropy, VideoMAE-B K400-FT / UCF101** | lowest | {paper['spearman']:+.3f} | {fmt_p(paper['spearman_p'])} | (one seed) "
        f"| {paper['kendall']:+.3f} | {fmt_p(paper['kendall_p'])} |"
    )
    sweep_rows = []
    for method in _methods(results):
        row = results["sweep"][method]
        cells = [f"{_pm(row[str(r)])} [{row[str(r)]['min'] * 100:.1f}, {row[str(r)]['max'] * 100:.1f}]" for r in removals]
        sweep_rows.append(f"| {_label(method, results)} | " + " | ".join(cells) + " |")
    for method, values in results["paper"]["sweep"].items():
        cells = [f"{values[str(r)]:.2f}" if str(r) in values else "" for r in removals]
        sweep_rows.append(f"| paper: {_LABELS[method]} | " + " | ".join(cells) + " |")
    sweep_plans = [
        f"{_label(method, results)}: " + "; ".join(
            f"k={r}: " + (",".join(str(b + 1) for b in results["sweep"][method][str(r)]["plans"][0]) or "-") for r in removals
        )
        for method in _methods(results)
    ]
    ssl = [
        f"| {c} | {', '.join(f'{v:+.2f}' for v in row['spearman'])} | {', '.join(f'{v:+.2f}' for v in row['kendall'])} "
        f"| {', '.join(f'{v:+.2f}' for v in row['finetuned_vs_oracle_spearman'])} | {row['max_abs_change']:.3g} |"
        for c, row in results["ssl_vs_finetuned"].items()
    ]
    variants = [
        f"| {name} | {row['spearman']:+.3f} | {fmt_p(row['spearman_p'])} | {row['kendall']:+.3f} | {fmt_p(row['kendall_p'])} |"
        for name, row in results["entropy_variants"].items()
    ]
    score_rows = [f"| {name} | " + " | ".join(f"{v:.6g}" for v in s["scores"]) + " |" for name, s in results["scores"].items()]
    runs_line = f"{results['runs']['count']} distinct runs, {results['runs']['cpu_seconds'] / 3600:.2f} CPU-thread hours"
    if env and "runs_this_call" in env and env["runs_this_call"] < results["runs"]["count"]:
        # a resumed study: the machine of the last call ran only some of the runs
        runs_line += (f"; the call that wrote this report ran {env['runs_this_call']} of them on {env.get('cpus')} x "
                      f"{env.get('processor')} ({env.get('jobs')} at a time, one thread each) and reused the rest")
    elif env:
        runs_line += f" on {env.get('cpus')} x {env.get('processor')} ({env.get('jobs')} runs at a time, one thread each)"
    view = {
        "cfg": config,
        "n": n,
        "env": env,
        "source": results["scores"]["entropy"]["source"],
        "clip_options": json.dumps(config.clip_options),
        "chance": f"{results['chance'] * 100:.0f}",
        "learning_rate": f"{config.learning_rate:g}",
        "weight_decay": f"{config.weight_decay:g}",
        "warmup": f"{config.warmup_ratio:.0%}",
        "runs_line": runs_line,
        "command": results.get("command", ""),
        "baseline": _pm(results["baseline"]),
        "scratch": _pm(results["scratch"]) if results.get("scratch") else None,
        "oracle_table": _table(f"| block | {blocks} |", oracle_rows, n),
        "oracle_order": ", ".join(str(b + 1) for b in results["oracle_removal_order"]),
        "reliability": (", ".join(f"{v:+.2f}" for v in rel) + f" (mean {np.mean(rel):+.2f}) over the {len(rel)} seed pairs."
                        if rel else "n/a (one seed)."),
        "agreement": agreement,
        "calibration": results.get("calibration"),
        "label_free": results.get("label_free_criterion"),
        "sweep_table": _table("| method | " + " | ".join(f"k={r}" for r in removals) + " |", sweep_rows, len(removals)),
        "paper_unpruned": PAPER_UNPRUNED,
        "sweep_plans": sweep_plans,
        "ssl_vs_finetuned": ssl,
        "entropy_variants": variants,
        "score_table": _table(f"| criterion | {blocks} |", score_rows, n),
    }
    env_jinja = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    return env_jinja.from_string(TEMPLATE.read_text(encoding="utf-8")).render(**view)
