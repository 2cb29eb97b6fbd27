"""The paper's study, end to end, on any supported checkpoint and data: do weight scores predict block importance?

    python scripts/reproduce.py --output-dir docs/study            # the embedded default, generated digit task
    gardener study MODEL --data DIR --oracle linear-probe,knn --output-dir runs/study   # your model, your data
    torchrun --nproc_per_node 4 -m gardener_hf study MODEL --data DIR --output-dir runs/study   # 4 processes / GPUs

Modules: `config` (what a study is), `runs` (the runs and their store), `analysis` (correlations, intervals,
the sweep), `report` (REPORT.md from a template, the plots), `driver` (`run_study`: all of it in order).


What it measures (docs/method.md §3-§5, with the open questions of §7):

1. **Scores.** Every registered criterion on the checkpoint's encoder blocks (no data), plus K-bin
   histogram entropies for several K, and the calibrated criteria on 32 unlabeled training inputs.
2. **Oracles.** The unpruned model and every single-block removal are measured on a labelled task, once
   per seed; a block's *importance* is the accuracy lost by removing it alone (mean over seeds). The
   oracle removes the least harmful blocks first (ranked once, not greedily). `finetune` (the paper's)
   finetunes each pruned model; `linear-probe` and `knn` freeze it and classify its features, the way
   self-supervised ViTs are usually evaluated, without finetuning noise.
3. **Agreement.** Spearman and Kendall rank correlations (with p-values) between each criterion's
   importance (its score, sign-flipped when the criterion removes the highest scores first) and each
   oracle's, with a bootstrap interval over seeds that shows how much the oracle's own noise moves
   them, the oracle's seed-to-seed agreement (its reliability), and the oracles' agreement with each other.
4. **Sweep.** Removing 1, 3, 5, 7, 9, 11 blocks by Gardener (entropy), the oracle, L1 in both
   directions, random orders, the deepest blocks first (`drop-last`) and the label-free criteria, each measured with the same budget and seeds;
   mean and spread.
5. **Open questions.** Rank agreement between the pretrained checkpoint's scores and the scores of
   the same model after finetuning (finetune oracle), and between float16-code entropy, exact float32
   entropy and K-bin histograms.

Every run is fully determined by (oracle, blocks removed, seed): a run is done once and reused wherever the
same plan comes up again (the oracle's 1-block plan is also some criterion's 1-block plan). Runs are appended
to `runs.jsonl` as they finish, so an interrupted study resumes where it stopped, and adding an oracle to a
study keeps the runs of the others. On a CPU each run uses one thread (`--jobs` runs at a time), so results
do not depend on `--jobs` or on the number of processes.

Data. `--data` takes the user's labelled images (image models) or videos (video models) in the finetune
formats: class subfolders, split folders (`train/`, `validation/`), or a CSV / JSON manifest, with the
validation split from the folder, `--eval-data` or `--val-fraction` (`gardener_hf.data.load_labelled`).
Without it the task is generated (`gardener_hf.research.synthetic`; an image model gets frame 0 of each clip).
By default it is `moving-digit` without static digits: one handwritten digit bounces around the clip and the
class is the digit (10 classes). Training clips draw digits from scikit-learn's "train" handwriting subset,
validation clips from the disjoint "test" subset. Why this task: in probes with the embedded default and this
budget (150 steps of 32 clips), the `direction` task (left/right/up/down) was bimodal across seeds (top-1 65%,
53%, 50%: the axis of motion is learned at once, its sign by some seeds only), and `moving-digit` with one
static distractor stayed at 20-26%; without distractors two seeds reached 58% and 66%, a graded score that
block removals can move. Other tasks: `--task`, `--clip-options`.

Outputs in `--output-dir`: `study_config.json`, `runs.jsonl`, `results.json` (everything the report
shows), `REPORT.md` (tables, side by side with the paper), `block_scores.png`, `sweep.png`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from ..._version import __version__ as _gardener_version
from ...errors import GardenerError
from . import runs as _runs
from .analysis import all_plans, analyse, oracle_specs, score_all, sweep_specs
from .config import CALIBRATION_CLIPS, StudyConfig, study_command
from .report import plot_scores, plot_sweep, render_report
from .runs import RunStore, barrier, build_context, distributed, run_all

logger = logging.getLogger(__name__)


def _require_extra() -> None:
    """The study needs scikit-learn (the digits, the probe) and scipy (rank correlations): say so before any work."""
    import importlib.util

    missing = [name for module, name in (("sklearn", "scikit-learn"), ("scipy", "scipy"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise GardenerError(f"the study needs {' and '.join(missing)}: pip install 'gardener_hf[study]'")


def _normalised(previous: Any, path: Path) -> dict[str, Any]:
    """A saved study_config.json's identity in today's spelling (older studies wrote `lr`, `val_clips` and had no
    oracle or data fields: their defaults are filled in)."""
    if not isinstance(previous, dict):
        raise GardenerError(f"{path} does not hold a study configuration; use another --output-dir, or --overwrite")
    try:
        known = StudyConfig.from_dict(previous).identity()
    except (GardenerError, TypeError, ValueError) as err:
        raise GardenerError(f"{path} does not hold a study configuration ({err}); use another --output-dir, "
                            "or --overwrite") from None
    names = {f.name for f in fields(StudyConfig)}
    # keys this version does not know (a newer gardener_hf's settings) count as different settings
    return {**known, **{k: v for k, v in StudyConfig.renamed(previous).items() if k not in names}}


def _check_folder(config: StudyConfig, out: Path) -> None:
    """Refuse `out` if it cannot hold the study, or holds one with other settings (reads only)."""
    if out.exists() and not out.is_dir():
        raise GardenerError(f"cannot use {out} as the study folder: it is a file")
    config_path = out / "study_config.json"
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise GardenerError(f"{config_path} is unreadable ({err}); use another --output-dir, or --overwrite") from None
        previous = _normalised(previous, config_path)
        now = config.identity()
        if previous != now:
            changed = sorted(k for k in set(previous) | set(now) if previous.get(k) != now.get(k))
            raise GardenerError(
                f"{out} holds a study with different settings ({', '.join(changed)}); "
                "use another --output-dir, or --overwrite to start it again"
            )


def _write_folder(config: StudyConfig, out: Path) -> None:
    """Create `out` and record `config` there (with the oracles of the latest call)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GardenerError(f"cannot use {out} as the study folder: {err.strerror or err}") from None
    (out / "study_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def run_study(config: StudyConfig, output_dir: str | Path, *, jobs: int = 1, progress: bool = True,
              device: str | torch.device | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) the whole study into `output_dir` and write its results, plots and report.

    Under `torchrun` / `accelerate launch` every process calls this with the same arguments; they share the
    runs and rank 0 writes the files.

    Args:
        config: the study.
        output_dir: its folder (runs are kept there, so a second call resumes).
        jobs: runs at a time in this process, one CPU thread each.
        progress: progress bars (rank 0 only).
        device: where runs compute; default GPU `LOCAL_RANK` when there is one, else the CPU.
        overwrite: discard the folder's study (its config and runs) once the model and data have loaded.

    Returns:
        The results dict also written to `results.json`.

    Raises:
        GardenerError: `output_dir` holds a study with different settings, the model or data cannot serve
            (unsupported model, too few blocks for the removals asked, one class, no validation split, ...).
    """
    t0 = time.perf_counter()
    _require_extra()
    rank, world = distributed()
    num_blocks = _num_blocks(config)
    too_deep = [r for r in config.removals if r >= num_blocks]
    if too_deep:
        raise GardenerError(f"removals {too_deep}: the model has {num_blocks} blocks, so at most {num_blocks - 1} can go")
    out = Path(output_dir)
    if rank == 0 and not overwrite:
        _check_folder(config, out)
    ctx = build_context(config, progress=progress and rank == 0, device=device)  # bad data fails before any write
    if rank == 0:
        if overwrite:
            for path in [out / "study_config.json", out / "runs.jsonl", *out.glob("runs.rank*.jsonl")]:
                path.unlink(missing_ok=True)
        _write_folder(config, out)
    barrier()
    _runs._CTX = ctx  # runs in this process reuse the loaded model and data
    store = RunStore(out / "runs.jsonl", rank=rank if world > 1 else None)
    if world == 1 and list(out.glob("runs.rank*.jsonl")):
        store.merge()  # what the ranks of an interrupted multi-process study finished
    recorded_before = len(store.runs)

    source = config.model or "embedded default"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # scores to the last bit whatever the process layout (torchrun sets one thread per rank)
    try:
        scores, hist = score_all(ctx.model, source, _calibration(config, ctx), _pretraining(ctx.model))
    finally:
        torch.set_num_threads(threads)

    run_all(oracle_specs(config, num_blocks), store, config, jobs=jobs, desc="oracles (single-block removals)",
            progress=progress, device=ctx.device)
    plans = all_plans(config, store, scores, num_blocks)
    run_all(sweep_specs(plans), store, config, jobs=jobs, desc="sweep", progress=progress, device=ctx.device)

    results = analyse(config, store, scores, hist, plans, num_blocks, data=ctx.data.description,
                      num_classes=len(ctx.data.labels))
    results["command"] = study_command(config, output_dir)
    results["wall_seconds_this_call"] = round(time.perf_counter() - t0, 1)
    results["environment"] = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "gardener_hf": _gardener_version, "machine": platform.machine(), "processor": _cpu_name(), "cpus": os.cpu_count(),
        "device": ctx.device.type, "processes": world, "jobs": jobs, "threads_per_run": 1 if ctx.device.type == "cpu" else None,
        "runs_this_call": len(store.runs) - recorded_before,
    }
    if rank == 0:
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        plot_scores(results, out / "block_scores.png")
        plot_sweep(results, out / "sweep.png")
        (out / "REPORT.md").write_text(render_report(results))
        logger.info("wrote %s", out / "REPORT.md")
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return results


def _num_blocks(config: StudyConfig) -> int:
    """The checkpoint's block count, from its config alone (bad ids and unsupported models fail here, first)."""
    from ...arch import get_arch
    from ...checkpoint import read_config

    saved = read_config(config.model_id(), revision=config.revision)
    get_arch(saved)
    return int(saved["num_hidden_layers"])


def _calibration(config: StudyConfig, ctx: Any):
    """`CALIBRATION_CLIPS` unlabeled inputs of the training split, never a validation input: generated clips of their
    own stream (the generated task), or a seeded draw of the user's training split (labels unused)."""
    from ...calibration import Calibration
    from ...data.sources import data_name
    from .runs import _CALIBRATION_DATA, _input_size, make_clips

    data = ctx.data
    if config.data is None:
        frames, size = _input_size(config, ctx.model)
        clips, _ = make_clips(config.task, CALIBRATION_CLIPS, seed=config.data_seed, stream=_CALIBRATION_DATA,
                              subset="train", num_frames=frames, size=size, **config.clip_options)
        pixels = data.pixels(clips if data.video else clips[:, 0].contiguous())
        kind = "clips" if data.video else "images"
        return Calibration(pixels, f"{CALIBRATION_CLIPS} unlabeled {kind} of the {config.task} task (training digits, "
                                   f"seed {config.data_seed})", seed=config.data_seed)
    count = min(CALIBRATION_CLIPS, len(data.train_x))
    pick = np.sort(np.random.default_rng([config.data_seed, _CALIBRATION_DATA]).permutation(len(data.train_x))[:count])
    pixels = data.pixels(data.train_x[torch.from_numpy(pick)])
    return Calibration(pixels, f"{count} unlabeled inputs drawn from the training split of {data_name(config.data)} "
                               f"(seed {config.data_seed})", seed=config.data_seed)


def _pretraining(model: Any):
    """The checkpoint itself when it is a pretraining one with its decoder (for `reconstruction`), else None."""
    from ...calibrated import RECONSTRUCTION_CLASSES

    if type(model).__name__ not in RECONSTRUCTION_CLASSES:
        logger.info("%s is not a pretraining checkpoint with its decoder: no reconstruction scores", type(model).__name__)
        return None
    return model


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
