"""Prune, finetune, evaluate and push in one command: alone (dry run) and under `accelerate launch`
with two CPU processes (gloo), where only rank 0 may write the staged variant and push it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, REPO
from huggingface_hub import ModelCard
from transformers import VideoMAEForVideoClassification

from gardener_hf.cli import push_main

TOKEN = "hf_test_token_123"


def test_push_after_finetune_dry_run(videos, tmp_path, capsys):
    out = tmp_path / "o"
    rc = push_main(["--keep", "4", "--train-dir", str(videos["train"]), "--eval-dir", str(videos["eval"]),
                    "--output-dir", str(out), "--dry-run", "-q", "--max-steps", "4", "--save-steps", "2", *FAST])
    assert rc == 0, capsys.readouterr().err
    staged = out / "default_model-gardener-keep4"
    names = sorted(p.name for p in staged.iterdir())
    assert names == ["README.md", "block_scores.png", "config.json", "confusion_matrix.png", "gardener_pruning.json",
                     "model.safetensors", "preprocessor_config.json", "training_curve.png"]
    assert (out / "default_model-gardener-keep4-run" / "finetune_report.json").exists()  # the run, kept for --resume
    card = ModelCard.load(staged / "README.md")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    report = json.loads((out / "default_model-gardener-keep4-run" / "eval_results.json").read_text())["metrics"]
    assert results == {"accuracy": round(100 * report["top1"], 2), "top_5_accuracy": round(100 * report["top5"], 2)}
    # the evaluation set as the user named it: the eval/ split folder of the videos folder, no local path
    assert {(r.dataset_name, r.dataset_split) for r in card.data.eval_results} == {(videos["eval"].parent.name, "eval")}
    assert card.data.base_model is None and card.data.license == "apache-2.0"  # the embedded default is no Hub repo
    assert 'from_pretrained("default_model-gardener-keep4")' in card.text  # the staged folder: no real repo id yet
    text = card.text
    assert "## Finetuning and evaluation" in text and "![training curve](training_curve.png)" in text
    assert "| learning_rate | 0.001 |" in text and "| total_batch_size | 4 |" in text
    assert "--train-dir" in text and "--max-steps 4" in text  # the reproduce command carries the finetune options
    model = VideoMAEForVideoClassification.from_pretrained(staged)
    assert model.config.num_hidden_layers == 4 and model.config.id2label[1] == "left"
    assert model.config.gardener["source_model"] == "gardener_hf/default_model"


def test_unknown_option_without_train_dir_is_refused(tmp_path, capsys):
    rc = push_main(["--keep", "4", "--dry-run", "--output-dir", str(tmp_path), "--max-steps", "4"])
    assert rc == 2 and "unrecognized arguments: --max-steps 4" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_finetune_pushes_once(fake_hub, videos, tmp_path):
    out = tmp_path / "o"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "accelerate_configs" / "cpu_2proc.yaml"),
        "--main_process_port", str(_free_port()),
        str(REPO / "scripts" / "push_pruned.py"), "--keep", "4", "--repo-id", "tester/{name}-keep{keep}",
        "--train-dir", str(videos["train"]), "--eval-dir", str(videos["eval"]), "--output-dir", str(out),
        "--max-steps", "4", "--save-steps", "2", *FAST,
    ]
    env = fake_hub.env(TOKEN)
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, [l for l in result.stderr.splitlines() if "error" in l.lower()][:20]
    assert TOKEN not in result.stdout + result.stderr
    report = json.loads((out / "default_model-keep4-run" / "finetune_report.json").read_text())
    assert report["world_size"] == 2 and report["global_step"] == 4
    assert report["hyperparameters"]["total_batch_size"] == 8  # 4 per process x 2 processes
    # Rank 0 alone staged and pushed: one commit, one staged folder, one "pushed" line.
    repo = fake_hub.repos["tester/default_model-keep4"]
    assert len(repo["commits"]) == 1
    assert result.stdout.count("pushed tester/default_model-keep4") == 1
    assert sorted(p.name for p in out.iterdir()) == ["default_model-keep4", "default_model-keep4-run"]
    staged = {str(p.relative_to(out / "default_model-keep4")): p.read_bytes()
              for p in (out / "default_model-keep4").rglob("*") if p.is_file()}
    assert repo["branches"]["main"] == staged
    metrics = json.loads((out / "default_model-keep4-run" / "eval_results.json").read_text())["metrics"]
    assert metrics["num_samples"] == 8  # the whole eval set, gathered from both processes, no duplicates
    print(f"2-process finetune: top-1 {100 * metrics['top1']:.1f}% on {metrics['num_samples']} videos")
    assert "model-index" in staged["README.md"].decode()


def test_accelerate_config_examples_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for path in sorted((REPO / "accelerate_configs").glob("*.yaml")):
        kinds[path.stem] = str(load_config_from_file(str(path)).distributed_type)
    assert kinds == {"cpu_2proc": "DistributedType.MULTI_GPU", "fsdp": "DistributedType.FSDP",
                     "multi_gpu": "DistributedType.MULTI_GPU", "multi_node": "DistributedType.MULTI_GPU"}
    assert Path(REPO / "accelerate_configs" / "fsdp.yaml").read_text().count("VideoMAELayer") == 1
    assert os.path.exists(REPO / "scripts" / "finetune.py")
