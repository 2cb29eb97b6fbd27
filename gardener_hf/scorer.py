"""The contract every block criterion follows (`Scorer`), shared by the weight criteria (`scoring`) and the
calibrated ones (`calibrated`); `scoring` holds the registry and re-exports `Scorer`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch

PruneFirst = Literal["lowest", "highest"]


class Scorer(ABC):
    """A block-importance criterion: one statistic per block, then one score per block.

    The contract, which `score_blocks` relies on:

    * `block_stat(matrices)` is called once per encoder block, in block order, with the block's six
      scored weight matrices (`arch.ROLES` order: query, key, value, attention output, fc1, fc2) as
      tensors in their stored dtype. It returns anything (a float, a count vector, moments) and
      must not keep references to the tensors: a streamed checkpoint frees them after the call.
      It raises `WeightsError` for weights it cannot score (NaN, inf).
    * `finalize(stats)` gets the list of every block's statistic and returns one finite float per
      block. Criteria that compare blocks with each other (mutual information, a random order) do
      their work here; per-block criteria just convert. The default converts each stat to float.
    * `prune_first` says which end is removed first: `"lowest"` or `"highest"` scores.
    * `summary` is one line for help texts, cards and reports; `name` is set by `@register`.
    * `param_names` lists the keyword parameters `get_scorer` passes on (`bins`, `seed`); the
      values a scorer was built with go in `self.params`, which is recorded with the scores.

    Example:
        >>> import torch
        >>> class MaxAbs(Scorer):
        ...     summary = "largest absolute weight"
        ...     prune_first = "lowest"
        ...     def block_stat(self, matrices):
        ...         return max(float(m.abs().max()) for m in matrices)
        >>> blocks = [[torch.full((2, 2), 0.5)] * 6, [torch.full((2, 2), 2.0)] * 6]
        >>> from gardener_hf.scoring import score_blocks
        >>> score_blocks(blocks, MaxAbs(), progress=False).kept_blocks(1)
        [1]
    """

    name: ClassVar[str] = ""
    prune_first: ClassVar[PruneFirst] = "lowest"
    summary: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.params = params

    @classmethod
    def describe(cls) -> str:
        return f"{cls.summary} (prunes {cls.prune_first} first)"

    @property
    def criterion(self) -> str:
        """The name recorded with the scores: the registry name, else the class name."""
        return self.name or type(self).__name__

    @abstractmethod
    def block_stat(self, matrices: Sequence[torch.Tensor]) -> Any:
        """The statistic of one block, from its six weight matrices (see the class docstring)."""

    def finalize(self, stats: list[Any]) -> list[float]:
        """One score per block from every block's statistic; by default each statistic as a float."""
        return [float(s) for s in stats]
