"""The paper's study, end to end, on any VideoMAE checkpoint: do weight scores predict block importance?

    python scripts/reproduce.py --output-dir docs/study            # the embedded default, generated digit task
    gardener study MODEL --output-dir runs/study --jobs 2          # same, as a subcommand

Modules: `config` (what a study is), `runs` (the finetuning runs and their store), `analysis`
(correlations, intervals, the sweep), `report` (REPORT.md from a template, the plots), `driver`
(`run_study`: all of it in order).


What it measures (docs/method.md §3-§5, with the open questions of §7):

1. **Scores.** Every registered criterion on the checkpoint's encoder blocks (no data), plus K-bin
   histogram entropies for several K.
2. **Oracle.** The unpruned model and every single-block removal are finetuned on a labelled task
   and evaluated, once per seed; a block's *importance* is the accuracy lost by removing it alone
   (mean over seeds). The oracle removes the least harmful blocks first (ranked once, not greedily).
3. **Agreement.** Spearman and Kendall rank correlations (with p-values) between each criterion's
   importance (its score, sign-flipped when the criterion removes the highest scores first) and the
   oracle's, with a bootstrap interval over seeds that shows how much the oracle's own noise moves
   them, and the oracle's seed-to-seed agreement (its reliability).
4. **Sweep.** Removing 1, 3, 5, 7, 9, 11 blocks by Gardener (entropy), the oracle, L1 in both
   directions and random orders, each finetuned with the same budget and seeds; mean and spread.
5. **Open questions.** Rank agreement between the pretrained checkpoint's scores and the scores of
   the same model after finetuning, and between float16-code entropy, exact float32 entropy and
   K-bin histograms.

Every finetuning run is fully determined by (blocks removed, seed): a run is done once and reused
wherever the same plan comes up again (the oracle's 1-block plan is also some criterion's 1-block
plan). Runs are appended to `runs.jsonl` as they finish, so an interrupted study resumes where it
stopped. Each run trains on one CPU thread (`--jobs` runs at a time), so results do not depend on
`--jobs`.

The labelled task is generated (`gardener_hf.research.synthetic`). By default it is `moving-digit` without
static digits: one handwritten digit bounces around the clip and the class is the digit (10 classes).
Training clips draw digits from scikit-learn's "train" handwriting subset, validation clips from the
disjoint "test" subset. Why this task: in probes with the embedded default and this budget (150
steps of 32 clips), the `direction` task (left/right/up/down) was bimodal across seeds (top-1 65%,
53%, 50%: the axis of motion is learned at once, its sign by some seeds only), and `moving-digit`
with one static distractor stayed at 20-26%; without distractors two seeds reached 58% and 66%, a
graded score that block removals can move. Other tasks: `--task`, `--clip-options`.

Finetuning is a plain PyTorch loop (AdamW, warmup + cosine, the paper's peak learning rate 1e-3)
over clips held in memory, not `transformers.Trainer` over files: the study runs about a hundred
short finetunes, and on a CPU file decoding would dominate them.

Outputs in `--output-dir`: `study_config.json`, `runs.jsonl`, `results.json` (everything the report
shows), `REPORT.md` (tables, side by side with the paper), `block_scores.png`, `sweep.png`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from ..._version import __version__ as _gardener_version
from ...checkpoint import load_classifier
from ...errors import GardenerError
from .analysis import analyse, best_label_free, score_all, single_removals, sweep_plans
from .config import CALIBRATION_CLIPS, METHODS, StudyConfig, study_command
from .report import plot_scores, plot_sweep, render_report
from .runs import RunStore, Spec, run_all

logger = logging.getLogger(__name__)


def _require_extra() -> None:
    """The study needs scikit-learn (the digits) and scipy (rank correlations): say so before any work."""
    import importlib.util

    missing = [name for module, name in (("sklearn", "scikit-learn"), ("scipy", "scipy"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise GardenerError(f"the study needs {' and '.join(missing)}: pip install 'gardener_hf[study]'")


def _normalised(previous: Any, path: Path) -> dict[str, Any]:
    """A saved study_config.json in today's spelling (older studies wrote `lr`, `val_clips`); nothing else changed."""
    if not isinstance(previous, dict):
        raise GardenerError(f"{path} does not hold a study configuration; use another --output-dir, or --overwrite")
    return StudyConfig.renamed(previous)


def run_study(config: StudyConfig, output_dir: str | Path, *, jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole study into `output_dir` and write its results, plots and report.

    Returns:
        The results dict also written to `results.json`.

    Raises:
        GardenerError: `output_dir` holds a study with a different configuration, or the model
            cannot serve (not a VideoMAE, too few blocks for the removals asked).
    """
    t0 = time.perf_counter()
    _require_extra()
    model_id = config.model_id()
    model = load_classifier(model_id, ("a", "b"), revision=config.revision)
    num_blocks = model.config.num_hidden_layers
    too_deep = [r for r in config.removals if r >= num_blocks]
    if too_deep:
        raise GardenerError(f"removals {too_deep}: the model has {num_blocks} blocks, so at most {num_blocks - 1} can go")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GardenerError(f"cannot use {out} as the study folder: {err.strerror or err}") from None
    config_path = out / "study_config.json"
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise GardenerError(f"{config_path} is unreadable ({err}); use another --output-dir, or --overwrite") from None
        previous = _normalised(previous, config_path)
        if previous != config.to_dict():
            changed = sorted(k for k in set(previous) | set(config.to_dict()) if previous.get(k) != config.to_dict().get(k))
            raise GardenerError(
                f"{out} holds a study with different settings ({', '.join(changed)}); "
                "use another --output-dir, or --overwrite to start it again"
            )
    else:
        config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    store = RunStore(out / "runs.jsonl")
    recorded_before = len(store.runs)

    source = config.model or "embedded default"
    scores, hist = score_all(model, source, _calibration(config, model), _pretraining(config))
    del model

    seeds = range(config.seeds)
    oracle_specs: list[Spec] = [((), s, False) for s in seeds]
    oracle_specs += [((b,), s, False) for b in range(num_blocks) for s in seeds]
    if config.scratch:
        oracle_specs += [((), s, True) for s in seeds]
    run_all(oracle_specs, store, config, jobs=jobs, desc="oracle (single-block removals)", progress=progress)

    single, oracle_order = single_removals(store, config.seeds, num_blocks)
    label_free = best_label_free(scores, -single.mean(1))

    plans = {m: sweep_plans(m, config.removals, config.seeds, scores, oracle_order, num_blocks, label_free) for m in METHODS}
    sweep_specs = [(removed, seed, False) for p in plans.values() for (_, seed), removed in p.items()]
    run_all(sweep_specs, store, config, jobs=jobs, desc="sweep", progress=progress)

    results = analyse(config, store, scores, hist, plans, oracle_order, num_blocks)
    results["command"] = study_command(config, output_dir)
    results["wall_seconds_this_call"] = round(time.perf_counter() - t0, 1)
    results["environment"] = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "gardener_hf": _gardener_version, "machine": platform.machine(), "processor": _cpu_name(), "cpus": os.cpu_count(),
        "jobs": jobs, "threads_per_run": 1, "runs_this_call": len(store.runs) - recorded_before,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot_scores(results, out / "block_scores.png")
    plot_sweep(results, out / "sweep.png")
    (out / "REPORT.md").write_text(render_report(results))
    logger.info("wrote %s", out / "REPORT.md")
    return results


def _calibration(config: StudyConfig, model: Any):
    """`CALIBRATION_CLIPS` unlabeled clips of the task's training subset (their own stream: no training or validation clip)."""
    from ...calibration import Calibration
    from ...checkpoint import load_processor
    from ..synthetic import to_pixel_values
    from .runs import _CALIBRATION_DATA, make_clips

    processor = load_processor(config.model_id(), model.config, revision=config.revision)
    clips, _ = make_clips(config.task, CALIBRATION_CLIPS, seed=config.data_seed, stream=_CALIBRATION_DATA, subset="train",
                          num_frames=model.config.num_frames, size=model.config.image_size, **config.clip_options)
    pixels = to_pixel_values(clips, list(processor.image_mean), list(processor.image_std))
    return Calibration(pixels, f"{CALIBRATION_CLIPS} unlabeled clips of the {config.task} task (training digits, seed "
                               f"{config.data_seed})", seed=config.data_seed)


def _pretraining(config: StudyConfig):
    """The checkpoint with its pretraining decoder, for `reconstruction`; None when it has none."""
    from ...checkpoint import load_model, read_config

    architectures = read_config(config.model_id(), revision=config.revision).get("architectures") or []
    if architectures[:1] != ["VideoMAEForPreTraining"]:
        logger.info("%s is not a VideoMAEForPreTraining checkpoint: no reconstruction scores", config.model_id())
        return None
    return load_model(config.model_id(), revision=config.revision)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
