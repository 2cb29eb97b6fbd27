"""Pushing through huggingface_hub's real client to a loopback Hub that records what arrives."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import REPO

TOKEN = "hf_test_token_123"


def push(hub, *args: str, token: str = TOKEN, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the headline script against the loopback Hub, in `cwd` (a failed push keeps its variant there)."""
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "push_pruned.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=cwd or tempfile.mkdtemp())


def staged_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_variants_arrive_byte_identical(fake_hub, tiny_videomae_dir, tmp_path):
    out = tmp_path / "staged"
    result = push(fake_hub, str(tiny_videomae_dir), "--keep", "2", "4", "--output-dir", str(out),
                  "--repo-id", "tester/{name}-keep{keep}", "--private", "-q")
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    for keep in (2, 4):
        repo_id = f"tester/tiny-videomae-keep{keep}"
        repo = fake_hub.repos[repo_id]
        assert repo["private"] is True
        local = staged_files(out / f"tiny-videomae-keep{keep}")
        arrived = repo["branches"]["main"]
        assert arrived == local  # every file, byte for byte, nothing else
        assert all(TOKEN.encode() not in data for data in local.values())
        assert f"pushed {repo_id}" in result.stdout
    messages = [c["message"] for c in fake_hub.repos["tester/tiny-videomae-keep4"]["commits"]]
    assert len(messages) == 1 and "keep 4 blocks" in messages[0]


def test_push_default_namespace_branch_and_pr(fake_hub, tiny_videomae_dir, tmp_path):
    result = push(fake_hub, str(tiny_videomae_dir), "--keep", "3", "--revision", "dev", "-q")
    assert result.returncode == 0, result.stderr
    (repo_id,) = [r for r in fake_hub.repos if r.endswith("tiny-videomae-gardener-keep3")]
    assert "README.md" in fake_hub.repos[repo_id]["branches"]["dev"]
    result = push(fake_hub, str(tiny_videomae_dir), "--keep", "3", "--create-pr", "-q")
    assert result.returncode == 0, result.stderr
    assert fake_hub.repos[repo_id]["prs"], "a pull request should have been opened"
    assert "model.safetensors" not in fake_hub.repos[repo_id]["branches"].get("main", {})


def test_wrong_token_is_one_line_and_never_echoed(fake_hub, tiny_videomae_dir, tmp_path):
    bad = "hf_wrong_secret_987"
    result = push(fake_hub, str(tiny_videomae_dir), "--keep", "2", "--repo-id", "tester/x", "-q", token=bad,
                  cwd=tmp_path)
    assert result.returncode == 2
    assert (tmp_path / "x" / "model.safetensors").is_file()  # the staged variant is kept where the user ran it
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert bad not in result.stdout + result.stderr
    assert "tester/x" not in fake_hub.repos
