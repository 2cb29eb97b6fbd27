"""gardener_hf: data-free block pruning of Hugging Face vision transformers by weight entropy.

Implements Gardener ("Entropy Reveals Block Importance in Masked Self-Supervised Vision
Transformers", arXiv 2602.03918): every transformer block is scored from its weights alone, the
lowest-scoring blocks are removed, and the result is a plain `transformers` checkpoint.

The package has a core and five rooms (see the README's "Layout"): the core modules here
(`arch`, `scoring`, `surgery`, `checkpoint`, ...), `hub/` (cards, staging, pushing), `data/` (video
datasets), `training/` (finetune and evaluate with `transformers.Trainer`), `research/` (the
paper's study and the synthetic data it needs) and `cli/` (the `gardener` command).

Example:
    >>> from gardener_hf import load_model, score_model, prune_model
    >>> model = load_model("MCG-NJU/videomae-base-finetuned-kinetics")  # doctest: +SKIP
    >>> scores = score_model(model)  # doctest: +SKIP
    >>> plan = prune_model(model, scores, keep=4)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from . import _legacy
from ._version import __version__
from .constants import EMBEDDED_DEFAULT
from .errors import GardenerError, UnsupportedModelError

# Public names are imported on first use (PEP 562), so `import gardener_hf` and `gardener --help` do not
# pay for torch: name -> module that defines it.
_LAZY = {
    "ArchSpec": "arch",
    "get_arch": "arch",
    "supported_architectures": "arch",
    "load_model": "checkpoint",
    "BlockScores": "scoring",
    "Scorer": "scoring",
    "available_criteria": "scoring",
    "get_scorer": "scoring",
    "score_model": "scoring",
    "score_pretrained": "scoring",
    "PrunePlan": "surgery",
    "PruningRecord": "surgery",
    "make_plan": "surgery",
    "prune_model": "surgery",
}

if TYPE_CHECKING:
    from .arch import ArchSpec, get_arch, supported_architectures
    from .checkpoint import load_model
    from .scoring import BlockScores, Scorer, available_criteria, get_scorer, score_model, score_pretrained
    from .surgery import PrunePlan, PruningRecord, make_plan, prune_model

_legacy.install()


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gardener_hf' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ArchSpec",
    "BlockScores",
    "EMBEDDED_DEFAULT",
    "GardenerError",
    "PrunePlan",
    "PruningRecord",
    "Scorer",
    "UnsupportedModelError",
    "__version__",
    "available_criteria",
    "get_arch",
    "get_scorer",
    "load_model",
    "make_plan",
    "prune_model",
    "score_model",
    "score_pretrained",
    "supported_architectures",
]
