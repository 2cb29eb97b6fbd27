"""A Hub that cannot be reached is named as the cause within seconds; files already cached are used."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from conftest import REPO

TOKEN = "hf_test_token_123"


def _dead_endpoint() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _gardener(*args, env, cwd):
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "gardener_hf", *args], capture_output=True, text=True, env=env,
                            cwd=cwd, timeout=300)
    return result, time.monotonic() - t0


def test_unreachable_hub_is_named_quickly_and_the_cache_is_used(fake_hub, tiny_videomae_dir, tmp_path):
    env = {**fake_hub.env(TOKEN), "HF_HOME": str(tmp_path / "hf")}
    push = subprocess.run([sys.executable, str(REPO / "scripts" / "push_pruned.py"), str(tiny_videomae_dir), "--keep", "3",
                           "--repo-id", "tester/tiny", "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert push.returncode == 0, push.stderr
    online, _ = _gardener("score", "tester/tiny", "--json", "-q", env=env, cwd=tmp_path)  # fills the cache
    assert online.returncode == 0, online.stderr
    dead = {**env, "HF_ENDPOINT": _dead_endpoint()}
    cached, seconds = _gardener("score", "tester/tiny", "--json", env=dead, cwd=tmp_path)
    assert cached.returncode == 0, cached.stderr
    assert json.loads(cached.stdout)["scores"] == json.loads(online.stdout)["scores"]
    assert "cannot be reached" in cached.stderr and "using the local cache" in cached.stderr and seconds < 20
    missing, seconds = _gardener("score", "tester/other", "-q", env=dead, cwd=tmp_path)
    assert missing.returncode == 2 and seconds < 20
    (line,) = missing.stderr.strip().splitlines()
    assert line.startswith("error: cannot download config.json of tester/other: the Hub at http://127.0.0.1:")
    assert "cannot be reached" in line and "HF_HUB_OFFLINE=1" in line and "not found" not in line


def test_push_with_a_token_and_no_network_is_one_line(tiny_videomae_dir, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN,
           "HF_ENDPOINT": _dead_endpoint(), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}
    result, seconds = _gardener("push", str(tiny_videomae_dir), "--keep", "2", "-q", env=env, cwd=tmp_path)
    assert result.returncode == 2 and seconds < 30
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot look up the Hub user of this token: the Hub at http://127.0.0.1:")
    assert TOKEN not in result.stderr and "--repo-id" in line
