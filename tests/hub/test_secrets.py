"""Nothing secret or private in what is written or uploaded: tokens, local paths, remote-code pointers."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FAST, REPO, make_model, save_with_processor

TOKEN = "hf_test_token_123"  # the loopback Hub's valid token
PLANTED = "hf_planted_secret_4242"


def _all_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_no_token_or_local_path_in_anything_written_or_uploaded(fake_hub, videos, tmp_path):
    source = make_model("VideoMAEForVideoClassification")
    source.config.auto_map = {"AutoModel": "modeling_evil.Model"}  # a remote-code pointer the pruned repo must drop
    src = save_with_processor(source, tmp_path / "my-videomae")
    out = tmp_path / "runs"
    cmd = [sys.executable, str(REPO / "scripts" / "push_pruned.py"), str(src), "--keep", "3",
           "--repo-id", "tester/{name}-k{keep}", "--train-dir", str(videos["train"]), "--eval-dir", str(videos["eval"]),
           "--output-dir", str(out), "--max-steps", "2", "--save-steps", "1", "--hub-token", PLANTED,
           "--hub_model_id", "tester/x", *FAST]
    env = {**fake_hub.env(TOKEN), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for secret in (TOKEN, PLANTED):
        assert secret not in result.stdout + result.stderr
    written = _all_bytes(out)
    uploaded = fake_hub.repos["tester/my-videomae-k3"]["branches"]["main"]
    assert uploaded == _all_bytes(out / "my-videomae-k3")
    assert any(name.startswith("my-videomae-k3-run/checkpoint-") for name in written)  # Trainer's own files too
    for name, data in written.items():
        assert PLANTED.encode() not in data and TOKEN.encode() not in data, name
    for name, data in uploaded.items():
        assert str(tmp_path).encode() not in data, name  # no local path in anything uploaded
    config = json.loads(uploaded["config.json"])
    assert "auto_map" not in config and config["gardener"]["source_model"] == "my-videomae"
    card = uploaded["README.md"].decode()
    assert "gardener push my-videomae --keep 3 --criterion entropy" in card
    parent = videos["train"].parent.name  # split folders are named with their parent: "videos0/train"
    assert f"--train-dir {parent}/train --eval-dir {parent}/eval --output-dir runs --max-steps 2" in card
    assert "--hub-token" not in card and "--hub_model_id tester/x" in card
