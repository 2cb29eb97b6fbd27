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

from . import _legacy
from ._version import __version__
from .arch import ArchSpec, UnsupportedModelError, get_arch, supported_architectures
from .checkpoint import load_model
from .constants import EMBEDDED_DEFAULT
from .errors import GardenerError
from .scoring import BlockScores, Scorer, available_criteria, get_scorer, score_model, score_pretrained
from .surgery import PrunePlan, PruningRecord, make_plan, prune_model

_legacy.install()

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
