"""A Hub repo with only pickled weights: its safetensors conversion pull request is used, else a clear refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from conftest import make_model, save_with_processor

from gardener_hf import score_model

TOKEN = "hf_test_token_123"


def _gardener(hub, *args, cwd):
    return subprocess.run([sys.executable, "-m", "gardener_hf", *args], capture_output=True, text=True, timeout=300,
                          env={**hub.env(TOKEN), "HF_HOME": str(cwd / "hf")}, cwd=cwd)


def test_the_hubs_conversion_pull_request_is_used(fake_hub, tmp_path):
    from huggingface_hub import CommitOperationAdd, HfApi

    model = make_model("VideoMAEForVideoClassification")
    folder = save_with_processor(model, tmp_path / "src")
    api = HfApi(endpoint=fake_hub.endpoint, token=TOKEN)
    api.create_repo("tester/pickled")
    pickled = tmp_path / "pytorch_model.bin"
    torch.save(model.state_dict(), pickled)
    api.create_commit("tester/pickled", [CommitOperationAdd("config.json", str(folder / "config.json")),
                                         CommitOperationAdd("preprocessor_config.json", str(folder / "preprocessor_config.json")),
                                         CommitOperationAdd("pytorch_model.bin", str(pickled))], commit_message="pickle")

    refused = _gardener(fake_hub, "score", "tester/pickled", "-q", cwd=tmp_path)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "only pickled pytorch_model.bin weights" in line and "safetensors/convert" in line

    api.create_commit("tester/pickled", [CommitOperationAdd("model.safetensors", str(folder / "model.safetensors"))],
                      commit_message="Adding `safetensors` variant of this model", create_pr=True)
    fake_hub.repos["tester/pickled"]["prs"][0]["author"] = "SFconvertbot"
    used = _gardener(fake_hub, "score", "tester/pickled", "--json", cwd=tmp_path)
    assert used.returncode == 0, used.stderr[-2000:]
    assert "using the Hub's safetensors conversion refs/pr/1" in used.stderr
    assert json.loads(used.stdout)["scores"] == score_model(model, progress=False).scores
    out = tmp_path / "staged"
    pushed = _gardener(fake_hub, "push", "tester/pickled", "--keep", "2", "--dry-run", "--output-dir", str(out), "-q",
                       cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    config = json.loads((out / "pickled-gardener-keep2" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["gardener"]["source_model"] == "tester/pickled"
