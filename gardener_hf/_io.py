"""Write a folder all at once: build it under a temporary name beside the destination, then move it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import GardenerError


def check_destination(destination: str | Path, overwrite: bool) -> Path:
    """Refuse an existing destination unless `overwrite`; checked before any heavy work starts."""
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise GardenerError(f"{destination} already exists; remove it or pass --overwrite")
    if destination.exists() and not destination.is_dir():
        raise GardenerError(f"{destination} is a file; --overwrite replaces folders only: remove it or choose another folder")
    for parent in destination.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GardenerError(f"cannot create {destination}: {parent} is a file, not a folder")
            break
    return destination


@contextlib.contextmanager
def atomic_folder(destination: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces `destination` only if the block finishes without error.

    On any error (or Ctrl-C) the temporary folder is removed and `destination` is left as it was.
    Files get the permissions the user's umask gives new files, not the private ones of `mkdtemp`.
    """
    destination = check_destination(destination, overwrite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(destination)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-{os.getpid()}-", dir=destination.parent))
    try:
        yield tmp
        _apply_umask(tmp)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_partials(destination: str | Path) -> list[Path]:
    """Remove temporary folders that a killed run left beside `destination`; returns what was removed.

    A temporary folder is named `.NAME.partial-PID-XXXX`: it is stale when process PID is gone (on this
    machine). Folders of runs that are still going are left alone.
    """
    destination = Path(destination)
    removed = []
    for path in destination.parent.glob(f".{destination.name}.partial-*"):
        pid = path.name[len(f".{destination.name}.partial-"):].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _apply_umask(root: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
