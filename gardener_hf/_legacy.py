"""Module paths of gardener_hf 0.1 before the package was split into rooms, kept importable.

`import gardener_hf.finetune` (and the other names below) still works: the finder loads the module's
new home and registers it under the old name too, so both names are the same module object. New code
should import the new paths; nothing inside the package uses the old ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module path -> new module path
MOVED = {
    "gardener_hf.sources": "gardener_hf.checkpoint",
    "gardener_hf.cards": "gardener_hf.hub.cards",
    "gardener_hf.metrics": "gardener_hf.training.metrics",
    "gardener_hf.finetune": "gardener_hf.training",
    "gardener_hf.video": "gardener_hf.research.synthetic",
    "gardener_hf.digits": "gardener_hf.research.synthetic",
    "gardener_hf.pretrain": "gardener_hf.research.pretrain",
    "gardener_hf.study": "gardener_hf.research.study",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Register the finder once (called when gardener_hf is imported)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
