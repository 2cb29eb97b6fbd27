"""The paper's study on any supported checkpoint and labelled data: do weight scores predict block importance?

`run_study(StudyConfig(...), output_dir)` scores every block by every criterion, measures each oracle (every
single-block removal, several seeds: finetuned, or a linear probe / kNN on frozen features) and the pruning
sweep, and writes `results.json`, `REPORT.md` and two plots; see `driver` for what is measured.
`gardener study` is its command line.
"""

from .analysis import (
    bootstrap_spearman,
    importance,
    paper_correlations,
    rank_correlations,
    single_removals,
    sweep_plans,
)
from .config import CRITERIA, HIST_BINS, METHODS, ORACLES, PAPER_REMOVALS, StudyConfig, study_command
from .driver import run_study
from .report import plot_scores, plot_sweep, render_report
from .runs import (
    RunStore,
    build_context,
    feature_run,
    features,
    finetune_run,
    knn_accuracy,
    make_clips,
    probe_accuracy,
    probe_subset,
    run_all,
    run_key,
)

__all__ = [
    "CRITERIA",
    "HIST_BINS",
    "METHODS",
    "ORACLES",
    "PAPER_REMOVALS",
    "RunStore",
    "StudyConfig",
    "bootstrap_spearman",
    "build_context",
    "feature_run",
    "features",
    "finetune_run",
    "importance",
    "knn_accuracy",
    "make_clips",
    "paper_correlations",
    "plot_scores",
    "plot_sweep",
    "probe_accuracy",
    "probe_subset",
    "rank_correlations",
    "render_report",
    "run_all",
    "run_key",
    "run_study",
    "single_removals",
    "study_command",
    "sweep_plans",
]
