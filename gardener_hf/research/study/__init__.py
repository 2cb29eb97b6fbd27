"""The paper's study on a VideoMAE checkpoint: do weight scores predict block importance?

`run_study(StudyConfig(...), output_dir)` scores every block by every criterion, finetunes the oracle
(each single-block removal, several seeds) and the pruning sweep, and writes `results.json`,
`REPORT.md` and two plots; see `driver` for what is measured. `gardener study` is its command line.
"""

from .analysis import bootstrap_spearman, importance, paper_correlations, rank_correlations, single_removals, sweep_plans
from .config import CRITERIA, HIST_BINS, METHODS, PAPER_REMOVALS, StudyConfig, study_command
from .driver import run_study
from .report import plot_scores, plot_sweep, render_report
from .runs import RunStore, build_context, finetune_run, make_clips, run_all, run_key

__all__ = [
    "CRITERIA",
    "HIST_BINS",
    "METHODS",
    "PAPER_REMOVALS",
    "RunStore",
    "StudyConfig",
    "bootstrap_spearman",
    "build_context",
    "finetune_run",
    "importance",
    "make_clips",
    "paper_correlations",
    "plot_scores",
    "plot_sweep",
    "rank_correlations",
    "render_report",
    "run_all",
    "run_key",
    "run_study",
    "single_removals",
    "study_command",
    "sweep_plans",
]
