"""`prune_and_publish`: what `gardener push` does, called from Python."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gardener_hf.cli import push_main
from gardener_hf.errors import GardenerError
from gardener_hf.hub import prune_and_publish

TOKEN = "hf_test_token_123"


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_python_dry_run_stages_what_the_command_line_stages(tiny_videomae_dir, tmp_path, capsys):
    published = prune_and_publish(str(tiny_videomae_dir), keep=[2, 3], output_dir=tmp_path / "py", dry_run=True,
                                  progress=False)
    assert [p.plan.num_kept for p in published] == [2, 3] and all(p.url is None for p in published)
    assert [p.staged.repo_id for p in published] == ["local/tiny-videomae-gardener-keep2", "local/tiny-videomae-gardener-keep3"]
    assert push_main([str(tiny_videomae_dir), "--keep", "2", "3", "--dry-run", "--output-dir", str(tmp_path / "cli"), "-q"]) == 0
    for keep in (2, 3):
        name = f"tiny-videomae-gardener-keep{keep}"
        py, cli = files(tmp_path / "py" / name), files(tmp_path / "cli" / name)
        assert sorted(py) == ["README.md", "block_scores.png", "config.json", "gardener_pruning.json",
                              "model.safetensors", "preprocessor_config.json"]
        assert py == cli  # byte for byte, the card's Reproduce command included


def test_python_arguments_are_checked_before_loading(tiny_videomae_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(GardenerError, match="output folder"):
        prune_and_publish(str(tiny_videomae_dir), keep=[2], dry_run=True)
    with pytest.raises(GardenerError, match="template containing {keep}"):
        prune_and_publish(str(tiny_videomae_dir), keep=[2, 3], repo_id="me/fixed", output_dir=out, dry_run=True)
    with pytest.raises(GardenerError, match="unknown criterion"):
        prune_and_publish(str(tiny_videomae_dir), keep=[2], criterion="nope", output_dir=out, dry_run=True)
    assert not out.exists()


PUSH = textwrap.dedent(
    """
    import sys
    from gardener_hf.hub import prune_and_publish

    for item in prune_and_publish(sys.argv[1], keep=[2], repo_id="tester/{name}-k{keep}", progress=False):
        print(item.staged.repo_id, item.url)
    """
)


def test_python_push_reaches_the_hub_in_one_commit(fake_hub, tiny_videomae_dir):
    result = subprocess.run([sys.executable, "-c", PUSH, str(tiny_videomae_dir)], capture_output=True, text=True,
                            env=fake_hub.env(TOKEN), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    repo = fake_hub.repos["tester/tiny-videomae-k2"]
    assert len(repo["commits"]) == 1 and "config.json" in repo["branches"]["main"]
    assert result.stdout.startswith("tester/tiny-videomae-k2 http")
    assert TOKEN not in result.stdout + result.stderr


def test_the_cards_reproduce_command_runs_as_written(fake_hub, tiny_videomae_dir, tmp_path):
    import re
    import shlex
    import shutil
    from pathlib import Path

    staged = prune_and_publish(str(tiny_videomae_dir), keep=[3], criterion="kurtosis", output_dir=tmp_path / "a",
                               dry_run=True, progress=False)[0].staged
    card = (staged.folder / "README.md").read_text()
    (command,) = re.findall(r"```bash\n(.*)\n```", card)
    assert command == "gardener push tiny-videomae --keep 3 --criterion kurtosis"
    argv = shlex.split(command)
    argv[0] = shutil.which("gardener", path=str(Path(sys.executable).parent)) or argv[0]
    # run from the folder that holds the source, as the card says, with a login: it pushes the same variant
    result = subprocess.run([*argv, "--repo-id", "tester/again"], capture_output=True, text=True, timeout=300,
                            env=fake_hub.env(TOKEN), cwd=tiny_videomae_dir.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    arrived = fake_hub.repos["tester/again"]["branches"]["main"]
    assert arrived["model.safetensors"] == (staged.folder / "model.safetensors").read_bytes()
    assert arrived["config.json"] == (staged.folder / "config.json").read_bytes()
