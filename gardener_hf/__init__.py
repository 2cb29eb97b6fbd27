"""gardener_hf: data-free block pruning of Hugging Face vision transformers by weight entropy.

Implements Gardener ("Entropy Reveals Block Importance in Masked Self-Supervised Vision
Transformers", arXiv 2602.03918): every transformer block is scored from its weights alone, the
lowest-scoring blocks are removed, and the result is a plain `transformers` checkpoint.

Example:
    >>> from gardener_hf import load_model, score_model, prune_model
    >>> model = load_model("MCG-NJU/videomae-base-finetuned-kinetics")  # doctest: +SKIP
    >>> scores = score_model(model)  # doctest: +SKIP
    >>> plan = prune_model(model, scores, keep=4)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .arch import ArchSpec, UnsupportedModelError, get_arch, supported_architectures
from .errors import GardenerError
from .scoring import BlockScores, available_criteria, get_scorer, score_model, score_pretrained
from .surgery import PrunePlan, load_model, make_plan, prune_model

__all__ = [
    "ArchSpec",
    "BlockScores",
    "GardenerError",
    "PrunePlan",
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
