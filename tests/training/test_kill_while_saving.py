"""A run killed while a checkpoint is being written resumes from the last complete one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import FAST

from gardener_hf.cli.finetune import main as finetune_main

# The child trains with checkpoints every 2 steps and makes the save of checkpoint-4 slow, after the
# weights and the optimizer are written but before trainer_state.json: the parent kills it there.
SLOW_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from transformers import Trainer
    from gardener_hf.cli.finetune import main

    real = Trainer._save_rng_state

    def slow(self, output_dir):
        real(self, output_dir)
        if output_dir.endswith("checkpoint-4"):
            Path(output_dir, "KILL-ME-NOW").touch()
            time.sleep(120)

    Trainer._save_rng_state = slow
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_resume_skips_a_checkpoint_killed_while_it_was_written(videos, tmp_path, caplog):
    common = ["--train-dir", str(videos["train"]), "--max-steps", "6", "--save-steps", "2", "--seed", "3", *FAST]
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, *common, "--output-dir", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint-4" / "KILL-ME-NOW").exists():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "checkpoint-4 was never being written"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (out / "checkpoint-4" / "model.safetensors").exists()
    assert not (out / "checkpoint-4" / "trainer_state.json").exists()  # torn: the kill came mid-save

    assert finetune_main([*common, "--output-dir", str(out)]) == 2  # a plain rerun is refused, as before
    with caplog.at_level("WARNING"):
        assert finetune_main([*common, "--output-dir", str(out), "--resume"]) == 0
    assert "checkpoint-4 was not written to the end" in caplog.text
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert (out / "model.safetensors").exists() and not (out / "checkpoint-4" / "KILL-ME-NOW").exists()
