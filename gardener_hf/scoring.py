"""Data-free block scorers ("importance" criteria) behind a small registry.

A scorer turns the six weight matrices of each block (see `arch.ROLES`) into one number per block,
and says which end of the scale is pruned first. Scorers never touch data or gradients and never
modify a model; `surgery.py` does the cutting.

Scorers work block by block (`Scorer.block_stat`) and only combine at the end (`Scorer.finalize`), so
the same code scores a model in memory or streams a safetensors checkpoint one block at a time
(`score_pretrained`). `score_model` / `score_pretrained` / `score_blocks` take a registered name or a
`Scorer` instance, so a criterion of your own needs no registration.

Example:
    >>> from gardener_hf.scoring import available_criteria
    >>> "entropy" in available_criteria()
    True
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import calibrated
from ._f16hist import entropy_from_counts, f16_code_counts
from .arch import block_matrices, get_arch, get_blocks
from .calibration import resolve_calibration
from .checkpoint import SafetensorsCheckpoint
from .errors import GardenerError, WeightsError
from .scorer import PruneFirst, Scorer

logger = logging.getLogger(__name__)


_REGISTRY: dict[str, type[Scorer]] = {}


def register(name: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator adding a scorer to the registry under `name`."""

    def wrap(cls: type[Scorer]) -> type[Scorer]:
        if name in _REGISTRY:
            raise ValueError(f"scorer {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_criteria() -> dict[str, str]:
    """Return `{name: one-line description}` of every registered criterion."""
    return {name: cls.describe() for name, cls in _REGISTRY.items()}


def criterion_summary(criterion: str) -> str | None:
    """The one-line summary of a registered criterion (for cards and reports), or None if unknown."""
    cls = _REGISTRY.get(criterion)
    return cls.summary if cls else None


def get_scorer(criterion: str | Scorer, **params: Any) -> Scorer:
    """Instantiate the scorer registered as `criterion` (a `Scorer` instance is returned as it is).

    Args:
        criterion: registry name, e.g. `"entropy"` (see `available_criteria()`), or a `Scorer`.
        **params: scorer parameters (`bins` for `entropy-hist`, `seed` for `random`); parameters a
            scorer does not take are ignored so callers can pass one set of options.

    Raises:
        GardenerError: unknown criterion.
    """
    if isinstance(criterion, Scorer):
        return criterion
    cls = _REGISTRY.get(criterion)
    if cls is None:
        raise GardenerError(
            f"unknown criterion {criterion!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        )
    accepted = {k: v for k, v in params.items() if k in cls.param_names and v is not None}
    return cls(**accepted)


def _check_finite(matrices: Sequence[torch.Tensor]) -> None:
    for m in matrices:
        if not bool(torch.isfinite(m).all()):
            raise WeightsError("weights are not finite (NaN or inf)")


# float16 codes of +-inf and NaN: exponent bits all ones.
_NONFINITE_F16 = np.zeros(65536, dtype=bool)
_NONFINITE_F16[0x7C00:0x8000] = True
_NONFINITE_F16[0xFC00:] = True


def _f16_counts_checked(matrices: Sequence[torch.Tensor]) -> np.ndarray:
    counts = f16_code_counts(matrices)
    if counts[_NONFINITE_F16].any():
        # A float16 inf code means a NaN/inf weight, or a finite one beyond +-65504; either way the
        # cast-based entropy would be meaningless.
        raise WeightsError("weights are not finite (NaN or inf) or exceed the float16 range (|w| > 65504)")
    return counts


@register("entropy")
class Float16EntropyScorer(Scorer):
    """Gardener's criterion, as the authors' code computes it (docs/method.md §1).

    Shannon entropy (natural log) of the exact value counts of the block's six weight matrices after
    casting them to float16. On checkpoints whose weights already lie on the float16 grid this is
    the authors' exact-value counting; on float32 checkpoints the cast turns counting into a
    histogram over float16 codes (log-spaced bins) instead of a flat ~ln(N).
    """

    prune_first = "lowest"
    summary = "entropy of float16-cast weight value counts (Gardener, paper-faithful)"

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> np.ndarray:
        return _f16_counts_checked(matrices)

    def finalize(self, stats: list[np.ndarray]) -> list[float]:
        return [entropy_from_counts(c) for c in stats]


@register("entropy-hist")
class HistogramEntropyScorer(Scorer):
    """Entropy over K equal-width bins spanning the block's own [min, max] (the paper's prose)."""

    prune_first = "lowest"
    summary = "entropy of a K-bin equal-width histogram (the paper's prose; --bins K)"
    param_names = ("bins",)

    def __init__(self, bins: int = 1024) -> None:
        if not isinstance(bins, int) or bins < 2:
            raise GardenerError(f"bins={bins!r}: the number of histogram bins must be an integer >= 2")
        super().__init__(bins=bins)
        self.bins = bins

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> float:
        _check_finite(matrices)
        lo = min(float(m.min()) for m in matrices)
        hi = max(float(m.max()) for m in matrices)
        if hi == lo:
            return 0.0
        counts = sum(torch.histc(m.float(), bins=self.bins, min=lo, max=hi).double() for m in matrices)
        return entropy_from_counts(counts.numpy())


@register("entropy-exact")
class ExactEntropyScorer(Scorer):
    """Entropy of exact value counts in the stored precision, without the float16 cast.

    On float32 checkpoints off the float16 grid almost every value is distinct, so this is close
    to ln(N) for every block (docs/method.md §1): kept for comparison.
    """

    prune_first = "lowest"
    summary = "entropy of exact value counts in stored precision, no cast"

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> float:
        _check_finite(matrices)
        # +0.0 and -0.0 compare equal, as in value counting; upcast keeps every value exact.
        values = torch.cat([m.reshape(-1).float() for m in matrices])
        _, counts = torch.unique(values, return_counts=True)
        return entropy_from_counts(counts.numpy())


@dataclass
class _Moments:
    n: int
    abs_sum: float
    s1: float
    s2: float
    s3: float
    s4: float

    @property
    def mean(self) -> float:
        return self.s1 / self.n

    @property
    def variance(self) -> float:
        mu = self.mean
        return max(self.s2 / self.n - mu * mu, 0.0)

    @property
    def excess_kurtosis(self) -> float:
        mu = self.mean
        e2, e3, e4 = self.s2 / self.n, self.s3 / self.n, self.s4 / self.n
        m4 = e4 - 4 * mu * e3 + 6 * mu * mu * e2 - 3 * mu**4
        var = self.variance
        return m4 / (var * var) - 3.0 if var > 0 else 0.0


def _moments(matrices: Sequence[torch.Tensor]) -> _Moments:
    n, a, s1, s2, s3, s4 = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    for m in matrices:
        x = m.reshape(-1).double()
        x2 = x * x
        n += x.numel()
        a += float(x.abs().sum())
        s1 += float(x.sum())
        s2 += float(x2.sum())
        s3 += float((x2 * x).sum())
        s4 += float((x2 * x2).sum())
    result = _Moments(n, a, s1, s2, s3, s4)
    if not all(math.isfinite(v) for v in (a, s1, s2, s3, s4)):
        raise WeightsError("weights are not finite (NaN or inf)")
    return result


class _MomentScorer(Scorer):
    def block_stat(self, matrices: Sequence[torch.Tensor]) -> _Moments:
        return _moments(matrices)

    def finalize(self, stats: list[_Moments]) -> list[float]:
        return [float(self.value(m)) for m in stats]

    def value(self, m: _Moments) -> float:
        raise NotImplementedError


@register("l1")
class L1Scorer(_MomentScorer):
    summary = "mean absolute weight (paper baseline 'Mean|w|' / L1)"
    prune_first = "lowest"

    def value(self, m: _Moments) -> float:
        return m.abs_sum / m.n


@register("l1-reverse")
class L1ReverseScorer(L1Scorer):
    summary = "mean absolute weight, largest-norm blocks removed first (not in the paper)"
    prune_first = "highest"


@register("l2")
class L2Scorer(_MomentScorer):
    summary = "L2 norm of the weights (paper baseline)"
    prune_first = "lowest"

    def value(self, m: _Moments) -> float:
        return math.sqrt(m.s2)


@register("l2-reverse")
class L2ReverseScorer(L2Scorer):
    summary = "L2 norm, largest-norm blocks removed first (not in the paper)"
    prune_first = "highest"


@register("std")
class StdScorer(_MomentScorer):
    summary = "standard deviation of the weights (paper baseline 'Variance')"
    prune_first = "lowest"

    def value(self, m: _Moments) -> float:
        return math.sqrt(m.variance)


@register("kurtosis")
class KurtosisScorer(_MomentScorer):
    summary = "Fisher excess kurtosis of the signed weights (paper baseline)"
    prune_first = "highest"

    def value(self, m: _Moments) -> float:
        return m.excess_kurtosis


@register("mi")
class MutualInformationScorer(Scorer):
    """Mean mutual information to the other blocks, MI(j,k) = H(B_j) + H(B_k) - H(B_j ++ B_k).

    Uses the same float16-code value counts as `entropy`, so H of a concatenation is the entropy of
    the summed counts.
    """

    summary = "mean mutual information to the other blocks (paper baseline)"
    prune_first = "highest"

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> np.ndarray:
        return _f16_counts_checked(matrices)

    def finalize(self, stats: list[np.ndarray]) -> list[float]:
        h = [entropy_from_counts(c) for c in stats]
        n = len(stats)
        if n < 2:
            return [0.0] * n
        scores = []
        for j in range(n):
            mi = [h[j] + h[k] - entropy_from_counts(stats[j] + stats[k]) for k in range(n) if k != j]
            scores.append(float(np.mean(mi)))
        return scores


@register("random")
class RandomScorer(Scorer):
    """A seeded random order: the floor every criterion must beat."""

    summary = "seeded random order (--seed)"
    prune_first = "lowest"
    param_names = ("seed",)

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.seed = seed

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> None:
        _check_finite(matrices)

    def finalize(self, stats: list[Any]) -> list[float]:
        return [float(v) for v in np.random.default_rng(self.seed).permutation(len(stats))]


@dataclass
class BlockScores:
    """One score per encoder block and the rule that turns them into a pruning order.

    Args:
        criterion: registry name of the scorer.
        scores: one score per block, index = block index (0-based).
        prune_first: "lowest" or "highest": which end is removed first.
        params: scorer parameters (e.g. `{"bins": 1024}`).
        source: where the weights came from (model id or path), for reports.
        protected: blocks never removed whatever their score (`--protect`): last in the removal order.
    """

    criterion: str
    scores: list[float]
    prune_first: PruneFirst
    params: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    protected: list[int] = field(default_factory=list)

    @property
    def num_blocks(self) -> int:
        return len(self.scores)

    def removal_order(self) -> list[int]:
        """Block indices in the order they are removed (one shot, no re-scoring).

        Ties are broken by removing the deeper block first, which makes the order deterministic.
        Protected blocks come last, in their own score order.
        """
        sign = 1.0 if self.prune_first == "lowest" else -1.0
        protected = set(self.protected)
        return sorted(range(self.num_blocks), key=lambda i: (i in protected, sign * self.scores[i], -i))

    def protect(self, blocks: Sequence[int]) -> BlockScores:
        """These scores with `blocks` kept whatever they score (a copy; blocks are 0-based).

        Raises:
            GardenerError: a block index out of range.
        """
        blocks = sorted(set(blocks))
        bad = [b for b in blocks if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < self.num_blocks]
        if bad:
            raise GardenerError(f"protect {bad}: block indices must be 0-based integers below {self.num_blocks}")
        return BlockScores(self.criterion, list(self.scores), self.prune_first, dict(self.params), self.source,
                           sorted(set(self.protected) | set(blocks)))

    def ranks(self) -> list[int]:
        """Importance rank per block: 1 = most important (removed last)."""
        order = self.removal_order()
        rank = [0] * self.num_blocks
        for position, block in enumerate(order):
            rank[block] = self.num_blocks - position
        return rank

    def kept_blocks(self, keep: int) -> list[int]:
        """The `keep` best blocks, in their original order."""
        if not 1 <= keep <= self.num_blocks:
            raise GardenerError(f"keep={keep}: keep must be between 1 and {self.num_blocks} for this model")
        if keep < len(self.protected):
            raise GardenerError(f"keep={keep} is fewer than the {len(self.protected)} protected blocks {self.protected}")
        return sorted(self.removal_order()[self.num_blocks - keep :])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["removal_order"] = self.removal_order()
        data["ranks"] = self.ranks()
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockScores:
        return cls(
            criterion=data["criterion"],
            scores=[float(s) for s in data["scores"]],
            prune_first=data["prune_first"],
            params=dict(data.get("params", {})),
            source=data.get("source"),
            protected=[int(b) for b in data.get("protected", [])],
        )


def score_blocks(
    blocks: Iterable[Sequence[torch.Tensor]],
    criterion: str | Scorer = "entropy",
    *,
    num_blocks: int | None = None,
    progress: bool = True,
    source: str | None = None,
    **params: Any,
) -> BlockScores:
    """Score an iterable of blocks, each given as its weight matrices.

    Args:
        blocks: yields, per block in order, the sequence of matrices to score.
        criterion: scorer name (see `available_criteria()`) or a `Scorer` instance.
        num_blocks: length of `blocks` for the progress bar, if known.
        progress: show a tqdm progress bar.
        source: recorded in the result.
        **params: scorer parameters.

    Returns:
        `BlockScores` with one finite score per block.
    """
    scorer = get_scorer(criterion, **params)
    stats = []
    bar = tqdm(blocks, total=num_blocks, desc=f"scoring ({scorer.criterion})", unit="block", disable=not progress)
    for index, matrices in enumerate(bar):
        try:
            stats.append(scorer.block_stat(matrices))
        except WeightsError as err:
            raise WeightsError(f"block {index}: {err}") from None
    if not stats:
        raise WeightsError("the model has no encoder blocks to score")
    scores = scorer.finalize(stats)
    if len(scores) != len(stats) or not all(math.isfinite(v) for v in scores):
        raise GardenerError(f"criterion {scorer.criterion!r} must give one finite score per block, got {scores!r}")
    return BlockScores(
        criterion=scorer.criterion, scores=[float(v) for v in scores], prune_first=scorer.prune_first,
        params=dict(scorer.params), source=source,
    )


def iter_model_blocks(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Yield the six scored matrices of each encoder block of an in-memory model."""
    for block in get_blocks(model):
        yield [w.detach() for w in block_matrices(model, block).values()]


def score_model(
    model: torch.nn.Module,
    criterion: str | Scorer = "entropy",
    *,
    progress: bool = True,
    calibration: Any = None,
    calibration_samples: int | None = None,
    **params: Any,
) -> BlockScores:
    """Score every encoder block of a loaded model: from its weights, or from calibration inputs.

    Args:
        model: a supported transformers model (see `supported_architectures()`).
        criterion: scorer name (`"entropy"` is Gardener's) or a `Scorer` instance.
        progress: show a progress bar.
        calibration: for the calibrated criteria (`block-influence`, `angular`, `removal-drift`,
            `reconstruction`): a `calibration.Calibration`, a `pixel_values` tensor, a tensor file, or a
            function of the model returning one. Folders and manifests of images or videos:
            `gardener_hf.data.load_calibration(path, model)`; generated clips:
            `gardener_hf.research.synthetic.digit_calibration(model)`.
        calibration_samples: samples to use (default `calibration.DEFAULT_SAMPLES`, or all of a `Calibration`).
        **params: scorer parameters (`bins`, `seed`, `batch_size`).

    Returns:
        `BlockScores`.

    Example:
        >>> import torch
        >>> from transformers import ViTConfig, ViTModel
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        ...                            intermediate_size=64, image_size=32, patch_size=16))
        >>> scores = score_model(model, progress=False)
        >>> scores.num_blocks, scores.prune_first
        (3, 'lowest')
    """
    get_arch(model)
    scorer = get_scorer(criterion, **params)
    if getattr(scorer, "needs_calibration", False):
        if calibration is None:
            scorer.block_stat([])  # raises: says what to pass
        calibration = resolve_calibration(calibration, model, samples=calibration_samples,
                                          seed=int(params.get("seed") or 0))
        return score_calibrated(model, scorer, calibration, progress=progress)
    if calibration is not None:
        logger.warning("criterion %r scores weights only: the calibration inputs are not used", scorer.criterion)
    source = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    num = len(get_blocks(model))
    with torch.no_grad():
        return score_blocks(
            iter_model_blocks(model), scorer, num_blocks=num, progress=progress, source=source
        )


def score_pretrained(
    model_id: str,
    criterion: str | Scorer = "entropy",
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    progress: bool = True,
    calibration: Any = None,
    calibration_samples: int | None = None,
    device: str | torch.device | None = None,
    **params: Any,
) -> BlockScores:
    """Score a checkpoint straight from its safetensors files, without building the model.

    Reads one block of weights at a time, so memory stays at about one block (about 28 MB for
    VideoMAE-B) whatever the model size. Gives the same scores as `score_model` on the loaded model.
    A calibrated criterion (`block-influence`, ...) needs the model: it is loaded (on `device`, default
    CUDA when there is one) and scored on `calibration` as `score_model` does.

    Args:
        model_id: a local folder or a Hub repo id.
        criterion: scorer name or a `Scorer` instance.
        revision: Hub revision (branch, tag or commit).
        token: Hub token, or None to use the cached login.
        progress: show a progress bar.
        calibration / calibration_samples: for calibrated criteria (see `score_model`).
        device: where a calibrated criterion runs the model.
        **params: scorer parameters.
    """
    scorer = get_scorer(criterion, **params)
    if getattr(scorer, "needs_calibration", False):
        if calibration is None:
            scorer.block_stat([])  # raises: says what to pass
        from .checkpoint import load_model

        model = load_model(model_id, revision=revision, token=token)
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        scores = score_model(model, scorer, progress=progress, calibration=calibration,
                             calibration_samples=calibration_samples, seed=params.get("seed"))
        scores.source = model_id
        return scores
    if calibration is not None:
        logger.warning("criterion %r scores weights only: the calibration inputs are not used", scorer.criterion)
    ckpt = SafetensorsCheckpoint.open(model_id, revision=revision, token=token)
    return score_blocks(
        ckpt.iter_blocks(), scorer, num_blocks=ckpt.num_blocks, progress=progress, source=model_id
    )



def score_calibrated(model: torch.nn.Module, criterion: str | Scorer, calibration: Any, *, progress: bool = True,
                     **params: Any) -> BlockScores:
    """Score every block of `model` with a calibrated criterion on a `calibration.Calibration`."""
    get_arch(model)
    scorer = get_scorer(criterion, **params)
    if not getattr(scorer, "needs_calibration", False):
        raise GardenerError(f"criterion {scorer.criterion!r} scores weights, not activations: call score_model")
    scores = scorer.score_activations(model, calibration, progress=progress)
    if len(scores) != len(get_blocks(model)) or not all(math.isfinite(v) for v in scores):
        raise GardenerError(f"criterion {scorer.criterion!r} gave non-finite scores {scores!r}: check the calibration inputs")
    source = getattr(model.config, "_name_or_path", None) or None
    return BlockScores(criterion=scorer.criterion, scores=[float(v) for v in scores], prune_first=scorer.prune_first,
                       params={**scorer.params, **calibration.to_dict()}, source=source)


# The calibrated criteria (gardener_hf.calibrated) join the same registry.
for _name, _cls in calibrated.CRITERIA.items():
    register(_name)(_cls)
