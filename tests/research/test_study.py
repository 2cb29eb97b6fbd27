"""The paper's study (gardener_hf.research.study, scripts/reproduce.py) on tiny budgets with the embedded default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gardener_hf.cli import study as study_cli
from gardener_hf.research import study as st
from gardener_hf.errors import GardenerError
from gardener_hf.scoring import BlockScores

REPO = Path(__file__).resolve().parents[2]
# a study that finishes in seconds: 1-2 steps of 4 clips, 8 validation clips
TINY = {"train_clips": 8, "eval_clips": 8, "steps": 2, "batch_size": 4, "seeds": 2, "removals": (1, 11), "scratch": False}


@pytest.fixture(scope="module")
def ctx():
    return st.build_context(st.StudyConfig(**TINY))


# ---------------------------------------------------------------------------------------------- statistics


def test_paper_correlations_match_the_numbers_the_paper_states():
    # docs/method.md §3: Spearman 0.755, Kendall 0.667 between the entropy order and Table 2's sensitivities
    paper = st.paper_correlations()
    assert round(paper["spearman"], 3) == 0.755 and round(paper["kendall"], 3) == 0.667
    assert paper["spearman_p"] < 0.01


def test_rank_correlations_and_importance_direction():
    a = [0.1, 0.5, 0.3, 0.9]
    assert st.rank_correlations(a, [1, 5, 3, 9])["spearman"] == pytest.approx(1.0)
    assert st.rank_correlations(a, [9, 1, 3, 0])["kendall"] == pytest.approx(-1.0)
    low = BlockScores("entropy", [1.0, 3.0, 2.0], "lowest")
    high = BlockScores("kurtosis", [1.0, 3.0, 2.0], "highest")
    # importance = kept longer; "highest first" criteria remove their largest scores first
    assert list(st.importance(low)) == [1.0, 3.0, 2.0] and list(st.importance(high)) == [-1.0, -3.0, -2.0]
    assert np.argmax(st.importance(low)) == low.removal_order()[-1]
    assert np.argmax(st.importance(high)) == high.removal_order()[-1]


def test_bootstrap_interval_collapses_without_seed_noise_and_widens_with_it():
    target = np.arange(6, dtype=float)
    same = np.repeat((-target)[:, None], 3, axis=1)  # every seed agrees: accuracy falls with importance
    lo, hi = st.bootstrap_spearman(same, target, rounds=200)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    noisy = same + np.random.default_rng(0).normal(0, 3, size=same.shape)
    lo, hi = st.bootstrap_spearman(noisy, target, rounds=200)
    assert lo < hi and lo < 0.9


def test_sweep_plans_follow_each_methods_order():
    scores = {c: BlockScores(c, list(map(float, v)), "lowest") for c, v in
              {"entropy": [5, 1, 4, 2, 3], "l1": [1, 2, 3, 4, 5], "l1-reverse": [5, 4, 3, 2, 1]}.items()}
    oracle = [4, 0, 2, 1, 3]
    g = st.sweep_plans("gardener", (1, 3), 2, scores, oracle, 5)
    assert g[(1, 0)] == (1,) and g[(3, 0)] == (1, 3, 4) and g[(3, 1)] == g[(3, 0)]
    assert st.sweep_plans("oracle", (2,), 1, scores, oracle, 5)[(2, 0)] == (0, 4)
    assert st.sweep_plans("l1", (2,), 1, scores, oracle, 5)[(2, 0)] == (0, 1)
    rnd = st.sweep_plans("random", (2,), 4, scores, oracle, 5)
    assert len({rnd[(2, s)] for s in range(4)}) > 1  # a different random order per seed
    assert rnd == st.sweep_plans("random", (2,), 4, scores, oracle, 5)
    assert st.sweep_plans("drop-last", (1, 3), 1, scores, oracle, 5) == {(1, 0): (4,), (3, 0): (2, 3, 4)}


def test_config_rejects_bad_values():
    with pytest.raises(GardenerError, match="task"):
        st.StudyConfig(task="colour")
    with pytest.raises(GardenerError, match="removals"):
        st.StudyConfig(removals=(0, 3))
    with pytest.raises(GardenerError, match="steps"):
        st.StudyConfig(steps=0)


# ---------------------------------------------------------------------------------------------- runs


def test_make_clips_is_balanced_deterministic_and_uses_the_subset():
    x, y = st.make_clips("moving-digit", 20, seed=0, stream=1, subset="test", num_frames=4, size=32, num_static=0)
    assert x.shape == (20, 4, 32, 32, 3) and x.dtype == torch.uint8
    assert np.bincount(y.numpy()).tolist() == [2] * 10
    x2, _ = st.make_clips("moving-digit", 20, seed=0, stream=1, subset="test", num_frames=4, size=32, num_static=0)
    x3, _ = st.make_clips("moving-digit", 20, seed=0, stream=2, subset="test", num_frames=4, size=32, num_static=0)
    assert torch.equal(x, x2) and not torch.equal(x, x3)


def test_finetune_run_is_determined_by_plan_and_seed(ctx):
    a = st.finetune_run(ctx, (3,), 0)
    b = st.finetune_run(ctx, (3,), 0)
    c = st.finetune_run(ctx, (3,), 1)
    for r in (a, b, c):
        r.pop("seconds")
    assert a == b and a["train_loss"] != c["train_loss"]
    assert a["num_blocks"] == 11 and a["removed"] == [3] and 0 <= a["accuracy"] <= 1
    assert "finetuned_scores" not in a  # only the unpruned model's scores are kept
    base = st.finetune_run(ctx, (), 0)
    assert set(base["finetuned_scores"]) == set(st.CRITERIA) and len(base["finetuned_scores"]["entropy"]) == 12
    # the shared base model is never modified by a run
    assert len(ctx.base.videomae.encoder.layer) == 12 and ctx.base.config.num_hidden_layers == 12


def test_finetune_run_leaves_the_shared_model_alone(ctx):
    before = [p.detach().clone() for p in ctx.base.parameters()]
    run = st.finetune_run(ctx, (0, 5, 11), 0)
    assert run["num_blocks"] == 9 and (run["accuracy"] * 8).is_integer()  # 8 validation clips
    assert all(torch.equal(p, q) for p, q in zip(before, ctx.base.parameters(), strict=True))


def test_run_store_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = st.RunStore(path)
    store.add({"removed": [2], "seed": 0, "scratch": False, "accuracy": 0.5, "seconds": 1.0})
    with open(path, "a") as f:
        f.write('{"removed": [3], "seed"')  # killed mid-write
    again = st.RunStore(path)
    assert "r2@0" in again and "r3@0" not in again and again.get([2], 0)["accuracy"] == 0.5


# ---------------------------------------------------------------------------------------------- the whole study


def test_study_end_to_end_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "study"
    config = st.StudyConfig(**TINY)
    results = st.run_study(config, out, jobs=1, progress=False)
    runs = (out / "runs.jsonl").read_text().splitlines()
    # 2 unpruned + 12 single removals per seed; the sweep's k=1 plans are single removals already
    keys = {st.run_key(r["removed"], r["seed"], r["scratch"]) for r in map(json.loads, runs)}
    assert len(runs) == len(keys) == results["runs"]["count"]
    assert {f"r{b}@{s}" for b in range(12) for s in range(2)} | {"r@0", "r@1"} <= keys
    assert len(keys) <= 26 + 7 * 2  # at most one k=11 plan per method and seed on top
    for name in ("REPORT.md", "results.json", "block_scores.png", "sweep.png", "study_config.json"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["oracles"]) == ["finetune"] and saved["oracle_agreement"] == {}
    finetune = saved["oracles"]["finetune"]
    assert set(finetune["agreement"]) >= set(st.CRITERIA) and -1 <= finetune["agreement"]["entropy"]["spearman"] <= 1
    # the calibrated criteria, on clips of the training subset; the best of them is a sweep method
    assert set(finetune["agreement"]) >= {"block-influence", "angular", "removal-drift", "reconstruction"}
    assert saved["calibration"].startswith("32 unlabeled clips of the moving-digit task (training digits")
    best = max(("block-influence", "angular", "removal-drift", "reconstruction"),
               key=lambda c: finetune["agreement"][c]["spearman"])
    assert finetune["label_free_criterion"] == best and set(finetune["sweep"]["label-free"]) == {"1", "11"}
    assert finetune["removal_order"] == results["oracles"]["finetune"]["removal_order"]
    # the oracle's k=1 plan is its least harmful single removal, with the same accuracy as that run
    first = finetune["removal_order"][0]
    assert finetune["sweep"]["oracle"]["1"]["values"] == finetune["single_removal"][str(first)]["values"]
    # a gardener k plan removes the k lowest-entropy blocks
    entropy = np.array(saved["scores"]["entropy"]["scores"])
    assert sorted(finetune["sweep"]["gardener"]["11"]["plans"][0]) == sorted(np.argsort(entropy, kind="stable")[:11].tolist())
    report = (out / "REPORT.md").read_text()
    assert "Spearman" in report and "+0.755" in report and "paper: Gardener (entropy)" in report
    assert f"Best label-free ({best})" in report and "no input of the validation split" in report
    assert "## Open question 1" in report and "linear-probe" not in report

    # a second call does no run again and gives the same numbers
    again = st.run_study(config, out, jobs=1, progress=False)
    assert (out / "runs.jsonl").read_text().splitlines() == runs
    assert again["oracles"] == results["oracles"]
    with pytest.raises(GardenerError, match="different settings.*steps"):
        st.run_study(st.StudyConfig(**{**TINY, "steps": 3}), out, jobs=1, progress=False)

    # adding the feature oracles reuses every finetune run and adds theirs
    both = st.StudyConfig(**{**TINY, "oracles": ("finetune", "linear-probe", "knn")})
    results = st.run_study(both, out, jobs=1, progress=False)
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert lines[: len(runs)] == runs and results["oracles"]["finetune"] == again["oracles"]["finetune"]
    probe = results["oracles"]["linear-probe"]
    assert probe["label_free_criterion"] is None  # a feature oracle sweeps every calibrated criterion instead
    assert {"block-influence", "angular", "removal-drift", "reconstruction", "gardener", "oracle"} <= set(probe["sweep"])
    assert set(results["oracle_agreement"]) == {"finetune vs linear-probe", "finetune vs knn", "linear-probe vs knn"}
    assert results["runs"]["by_oracle"]["finetune"] == len(runs)
    assert json.loads((out / "study_config.json").read_text())["oracles"] == ["finetune", "linear-probe", "knn"]
    report = (out / "REPORT.md").read_text()
    assert "## The linear-probe oracle" in report and "## Do the oracles agree with each other?" in report


@pytest.mark.slow
def test_parallel_runs_give_the_same_numbers_as_serial(tmp_path):
    config = st.StudyConfig(**{**TINY, "seeds": 1, "removals": (11,), "oracles": ("finetune", "linear-probe")})
    serial = st.RunStore(tmp_path / "serial.jsonl")
    parallel = st.RunStore(tmp_path / "parallel.jsonl")
    specs = [((), 0, False), ((4,), 0, False), ((0, 1), 0, False), ("linear-probe", (4,), 0, False)]
    st.run_all(specs, serial, config, jobs=1, desc="serial", progress=False)
    st.run_all(specs, parallel, config, jobs=2, desc="parallel", progress=False)
    for key in serial.runs:
        a, b = dict(serial.runs[key]), dict(parallel.runs[key])
        a.pop("seconds"), b.pop("seconds")
        assert a == b, key


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "scripts" / "reproduce.py"), *args], capture_output=True, text=True)

    too_deep = run("--output-dir", str(tmp_path / "a"), "--removals", "12", "--quiet")
    assert too_deep.returncode == 2 and too_deep.stderr.strip().splitlines()[-1].startswith("error: removals [12]")
    (tmp_path / "file").write_text("x")
    not_a_folder = run("--output-dir", str(tmp_path / "file"), "--quiet")
    assert not_a_folder.returncode == 2 and not_a_folder.stderr.strip().splitlines()[-1].startswith("error: cannot use")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "study_config.json").write_text("{torn")
    torn = run("--output-dir", str(tmp_path / "c"), "--quiet")
    assert torn.returncode == 2 and "unreadable" in torn.stderr.strip().splitlines()[-1]
    bad_json = run("--output-dir", str(tmp_path / "b"), "--clip-options", "[1]")
    assert bad_json.returncode == 2 and "JSON object" in bad_json.stderr
    from gardener_hf.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["study", "--help"])
    assert exc.value.code == 0


def test_the_reported_command_parses_back_to_the_same_settings():
    import argparse
    import shlex

    config = st.StudyConfig(model="some/model", removals=(1, 2), scratch=False, clip_options={"num_static": 1},
                            learning_rate=5e-4, eval_clips=64)
    command = st.study_command(config, "out dir")
    parser = argparse.ArgumentParser()
    study_cli.add_study_args(parser)
    args = parser.parse_args(shlex.split(command)[2:])
    assert study_cli.config_from_args(args) == config and args.output_dir == "out dir"
    assert st.study_command(st.StudyConfig(), "docs/study") == "python scripts/reproduce.py --output-dir docs/study"
    assert "--lr 0.0005" in command and "--val-clips 64" in command
    data = st.StudyConfig(model="m", data="my data", val_fraction=0.25, image_size=56, max_per_split=100,
                          oracles=("linear-probe", "knn"), probe_fraction=0.8, seeds=5)
    command = st.study_command(data, "out")
    assert "--oracle linear-probe,knn" in command and "--data 'my data'" in command and "--image-size 56" in command
    assert study_cli.config_from_args(parser.parse_args(shlex.split(command)[2:])) == data


def test_studies_saved_before_the_rename_are_read_and_resumed(tmp_path):
    from gardener_hf.research.study.driver import _normalised

    # the study_config.json gardener_hf 0.1 wrote for docs/study: old spellings, no oracle or data fields
    committed = {"model": None, "revision": None, "task": "moving-digit", "clip_options": {"num_static": 0},
                 "train_clips": 2048, "val_clips": 1024, "data_seed": 0, "steps": 150, "batch_size": 32, "lr": 0.001,
                 "weight_decay": 0.05, "warmup_ratio": 0.1, "seeds": 3, "removals": [1, 3, 5, 7, 9, 11], "scratch": True}
    config = st.StudyConfig.from_dict(committed)
    assert config.learning_rate == committed["lr"] and config.eval_clips == committed["val_clips"]
    assert config == st.StudyConfig()  # the committed study used the defaults
    assert _normalised(committed, tmp_path / "study_config.json") == st.StudyConfig().identity()
    assert _normalised({**committed, "new_key": 1}, tmp_path / "c.json") != st.StudyConfig().identity()  # refused as changed
    # oracles are not part of a study's identity: adding one reuses the runs
    assert _normalised({**committed, "oracles": ["knn"]}, tmp_path / "c.json") == st.StudyConfig().identity()
    with pytest.raises(GardenerError, match="does not hold a study configuration"):
        _normalised([1], tmp_path / "study_config.json")


def test_a_missing_extra_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import importlib.util

    from gardener_hf.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a))
    assert main(["study", "--output-dir", str(tmp_path / "s"), "--removals", "1"]) == 2
    assert capsys.readouterr().err == "error: the study needs scipy: pip install 'gardener_hf[study]'\n"
    assert not (tmp_path / "s").exists()
