"""Atomic folders: nothing half-written survives a kill, and the next run removes what a kill left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from gardener_hf._io import atomic_folder, remove_stale_partials

KILLED = textwrap.dedent(
    """
    import sys, time
    from gardener_hf._io import atomic_folder

    with atomic_folder(sys.argv[1]) as tmp:
        (tmp / "model.safetensors").write_bytes(b"x" * 1000)
        (tmp / "READY").touch()
        time.sleep(120)
    """
)


def test_a_killed_staging_leaves_a_partial_that_the_next_run_removes(tmp_path):
    destination = tmp_path / "variant"
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(destination)])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".variant.partial-*/READY")):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    (partial,) = tmp_path.glob(".variant.partial-*")
    assert not destination.exists()
    with atomic_folder(destination) as tmp:
        (tmp / "ok").write_text("done")
    assert not partial.exists() and (destination / "ok").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variant"]


def test_partials_of_a_live_run_are_left_alone(tmp_path):
    live = tmp_path / f".variant.partial-{os.getpid()}-abcd"
    live.mkdir()
    dead = tmp_path / ".variant.partial-999999999-efgh"
    dead.mkdir()
    assert remove_stale_partials(tmp_path / "variant") == [dead]
    assert live.exists() and not dead.exists()
