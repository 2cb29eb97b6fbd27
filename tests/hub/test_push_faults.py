"""A Hub that fails at any step of a push: one error line, no partial commit, the staged variant kept."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOKEN = "hf_test_token_123"
# The child pushes with huggingface_hub's retries made instant (the Hub's client retries 5xx and dropped
# connections with back-off for about 30 s).
CHILD = textwrap.dedent(
    """
    import sys
    import huggingface_hub.utils._http as http
    http.http_backoff.__kwdefaults__.update(base_wait_time=0.001, max_wait_time=0.001)
    from gardener_hf.cli import push_main
    sys.exit(push_main(sys.argv[1:]))
    """
)
FILES = ["README.md", "block_scores.png", "config.json", "gardener_pruning.json", "model.safetensors",
         "preprocessor_config.json"]


@pytest.mark.parametrize("mode", [500, "drop"])
@pytest.mark.parametrize("step", ["create_repo", "preupload", "lfs_batch", "storage", "commit"])
def test_push_failing_at_each_step(fake_hub, tiny_videomae_dir, tmp_path, step, mode):
    fake_hub.fail = {step: mode}
    staging = ["--output-dir", str(tmp_path / "staged")] if step in ("preupload", "commit") else []
    result = subprocess.run([sys.executable, "-c", CHILD, str(tiny_videomae_dir), "--keep", "2", "--repo-id", "tester/x",
                             "-q", *staging], capture_output=True, text=True, env=fake_hub.env(TOKEN), cwd=tmp_path,
                            timeout=300)
    assert step in fake_hub.failed
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: push to tester/x failed: ") and "Traceback" not in result.stderr
    assert not fake_hub.repos.get("tester/x", {}).get("commits")  # upload_folder is one commit: nothing partial
    kept = Path(re.search(r"kept in (\S+);", last).group(1))
    assert kept == (tmp_path / "staged" / "x" if staging else tmp_path / "x")
    assert sorted(p.name for p in kept.iterdir()) == FILES
    assert f"hf upload tester/x {kept}" in last
    assert not list(tmp_path.glob("**/.x.partial-*"))


def test_create_pr_with_a_revision_is_refused_up_front(tiny_videomae_dir, tmp_path, capsys):
    from gardener_hf.cli import push_main

    rc = push_main([str(tiny_videomae_dir), "--keep", "2", "--create-pr", "--revision", "dev", "--token", TOKEN,
                    "--repo-id", "tester/x", "--output-dir", str(tmp_path / "o")])
    assert rc == 2 and "--create-pr cannot be combined with --revision" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
