"""The command line: score output, dry-run staging, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_model, save_with_processor
from safetensors.torch import load_file, save_file

from gardener_hf.cli import main, push_main


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gardener_hf.cli", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def test_score_json_and_table(tiny_videomae_dir, capsys):
    assert main(["score", str(tiny_videomae_dir), "--json", "--keep", "2", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["criterion"] == "entropy" and len(doc["scores"]) == 6 and len(doc["kept_blocks"]) == 2
    assert doc["kept_blocks"] == sorted(doc["removal_order"][-2:])
    assert main(["score", str(tiny_videomae_dir), "--criterion", "kurtosis", "--keep", "2", "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "kurtosis (prunes highest first)" in out[0]
    assert sum(line.endswith("kept") for line in out) == 2 and sum(line.endswith("pruned") for line in out) == 4


def test_dry_run_stages_several_variants_loading_once(tiny_videomae_dir, tmp_path, monkeypatch, capsys):
    from gardener_hf.hub import publish as surgery  # where `gardener push` loads the source

    calls = []
    real = surgery.load_model
    monkeypatch.setattr(surgery, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    out = tmp_path / "staged"
    rc = push_main([str(tiny_videomae_dir), "--keep", "2", "4", "--dry-run", "--output-dir", str(out), "-q"])
    assert rc == 0 and len(calls) == 1
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["tiny-videomae-gardener-keep2", "tiny-videomae-gardener-keep4"]
    for keep in (2, 4):
        folder = out / f"tiny-videomae-gardener-keep{keep}"
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["README.md", "block_scores.png", "config.json", "gardener_pruning.json",
                         "model.safetensors", "preprocessor_config.json"]
        assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == keep
        assert f"--keep {keep} --criterion entropy" in (folder / "README.md").read_text()
    assert "staged local/tiny-videomae-gardener-keep2" in capsys.readouterr().out
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "tiny-videomae-gardener-keep2").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert (out / "tiny-videomae-gardener-keep2" / "README.md").stat().st_mode & 0o777 == 0o666 & ~umask


def test_existing_variant_is_refused_before_anything_is_staged(tiny_videomae_dir, tmp_path, capsys):
    out = tmp_path / "staged"
    assert push_main([str(tiny_videomae_dir), "--keep", "4", "--dry-run", "--output-dir", str(out), "-q"]) == 0
    before = (out / "tiny-videomae-gardener-keep4" / "model.safetensors").read_bytes()
    capsys.readouterr()
    rc = push_main([str(tiny_videomae_dir), "--keep", "2", "4", "--dry-run", "--output-dir", str(out), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "tiny-videomae-gardener-keep4 already exists" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["tiny-videomae-gardener-keep4"]  # keep2 not staged, no temp left
    assert (out / "tiny-videomae-gardener-keep4" / "model.safetensors").read_bytes() == before
    rc = push_main([str(tiny_videomae_dir), "--keep", "2", "4", "--dry-run", "--output-dir", str(out), "-q", "--overwrite"])
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == [
        "tiny-videomae-gardener-keep2", "tiny-videomae-gardener-keep4"]


def test_no_token_stages_and_explains(tiny_videomae_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "push_pruned.py"), str(tiny_videomae_dir), "--keep", "3",
         "--output-dir", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""},
    )
    assert result.returncode == 2, result.stderr  # staged, but nothing was pushed: not a success
    assert "no Hub token found" in result.stderr and result.stderr.strip().splitlines()[-1].startswith(
        "error: nothing was pushed: no Hub token")
    assert (tmp_path / "o" / "tiny-videomae-gardener-keep3" / "model.safetensors").exists()


def test_embedded_default_runs_offline(tmp_path):
    result = run_cli("push", "--keep", "4", "--dry-run", "--output-dir", str(tmp_path / "d"), "-q")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "d" / "default_model-gardener-keep4"
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 4 and config["gardener"]["source_model"] == "gardener_hf/default_model"
    assert "gardener push --keep 4 --criterion entropy" in (folder / "README.md").read_text()


def _corrupt(tmp_path: Path, kind: str) -> Path:
    path = save_with_processor(make_model("VideoMAEForVideoClassification"), tmp_path / kind)
    weights = path / "model.safetensors"
    if kind == "missing":
        weights.unlink()
    elif kind == "garbage":
        weights.write_bytes(b"\x00\x01not a safetensors file" * 10)
    elif kind == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif kind == "nonfinite":
        state = load_file(str(weights))
        key = "videomae.encoder.layer.2.intermediate.dense.weight"
        state[key][0, 0] = float("inf")
        save_file(state, str(weights), metadata={"format": "pt"})
    elif kind == "missing_block":
        state = load_file(str(weights))
        del state["videomae.encoder.layer.5.output.dense.weight"]
        save_file(state, str(weights), metadata={"format": "pt"})
    elif kind == "bert":
        (path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    elif kind == "pickle":
        weights.unlink()
        torch.save({}, path / "pytorch_model.bin")
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "model.safetensors not found"),
        ("garbage", "not a readable safetensors file"),
        ("truncated", "not a readable safetensors file"),
        ("nonfinite", "block 2: weights are not finite"),
        ("missing_block", "block 5 has no fc2 weight"),
        ("bert", "model type 'bert' is not supported; supported: videomae"),
        ("pickle", "only pickled pytorch_model.bin"),
    ],
)
def test_bad_weights_one_line_no_traceback(kind, message, tmp_path):
    path = _corrupt(tmp_path, kind)
    out = tmp_path / "out"
    for args in (["score", str(path)], ["push", str(path), "--keep", "2", "--dry-run", "--output-dir", str(out)]):
        result = run_cli(*args, "-q")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keep", "0"], "keep=0: keep must be between 1 and 6 for this model"),
        (["--keep", "13"], "keep=13: keep must be between 1 and 6 for this model"),
        (["--keep", "3", "--criterion", "entropyy"], "unknown criterion 'entropyy'; choose one of"),
        (["--keep", "3", "--repo-id", "bad//id"], "malformed repo id 'bad//id'"),
        (["--keep", "2", "4", "--repo-id", "me/fixed"], "need a --repo-id template containing {keep}"),
        (["--remove", "9"], "below 6"),
    ],
)
def test_bad_arguments_one_line(args, message, tiny_videomae_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("push", str(tiny_videomae_dir), *args, "--dry-run", "--output-dir", str(out), "-q")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_not_a_number_and_bad_model_id(tmp_path):
    result = run_cli("score", "x/y", "--keep", "four")
    assert result.returncode == 2 and "'four' is not a whole number" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("score", "not a//repo", "-q")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: 'not a//repo' is neither an existing folder nor a valid Hub repo id (expected 'namespace/name')"
    result = run_cli("score", "someone/absent-model", "-q")  # offline: the Hub is unreachable
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_existing_output_is_not_clobbered(tiny_videomae_dir, tmp_path):
    out = tmp_path / "o"
    assert push_main([str(tiny_videomae_dir), "--keep", "2", "--dry-run", "--output-dir", str(out), "-q"]) == 0
    marker = out / "tiny-videomae-gardener-keep2" / "config.json"
    before = marker.read_bytes()
    assert push_main([str(tiny_videomae_dir), "--keep", "2", "--dry-run", "--output-dir", str(out), "-q"]) == 2
    assert marker.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["tiny-videomae-gardener-keep2"]  # no partial folders left
