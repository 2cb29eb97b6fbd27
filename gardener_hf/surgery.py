"""The only code that changes a model: keep some encoder blocks, drop the rest, update the config.

A pruned model is an ordinary transformers model: its encoder `nn.ModuleList` holds the kept
blocks in their original order and `config.num_hidden_layers` says how many there are, so
`save_pretrained` writes a checkpoint that plain `from_pretrained` loads with no custom code. What was
done is recorded in `config.gardener` (and in `gardener_pruning.json` beside the weights).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .arch import base_model, block_list_path, get_arch
from .errors import GardenerError, PlanError, UnsupportedModelError
from .scoring import BlockScores
from .sources import read_config, resolve_file, validate_model_id

logger = logging.getLogger(__name__)

PRUNING_FILE = "gardener_pruning.json"
CONFIG_KEY = "gardener"
# Files describing how inputs are prepared; copied unchanged so a pruned repo works in pipelines.
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
)


@dataclass
class PrunePlan:
    """Which blocks to keep, and why. Indices are 0-based, as in `encoder.layer.N`.

    Attributes:
        num_blocks: blocks in the model the plan applies to.
        kept: kept block indices, ascending (their order in the pruned model).
        removed: removed block indices, ascending.
        criterion: scorer name, or "manual" for an explicit list of blocks.
        scores: the score of every block (None for manual plans).
        prune_first: "lowest"/"highest", the scorer's direction.
        params: scorer parameters.
        source: model id or path the blocks came from.
        removal_order: full removal order of the scorer (None for manual plans).
    """

    num_blocks: int
    kept: list[int]
    removed: list[int]
    criterion: str = "manual"
    scores: list[float] | None = None
    prune_first: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    removal_order: list[int] | None = None

    @property
    def num_kept(self) -> int:
        return len(self.kept)

    def describe(self) -> str:
        """One line for logs and dry runs, e.g. `keep 4/12 blocks [0, 1, 3, 5] (entropy)`."""
        return f"keep {self.num_kept}/{self.num_blocks} blocks {self.kept}, remove {self.removed} ({self.criterion})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(
    scores: BlockScores | None = None,
    *,
    num_blocks: int | None = None,
    keep: int | None = None,
    remove: Sequence[int] | None = None,
    remove_ratio: float | None = None,
) -> PrunePlan:
    """Decide which blocks stay, without touching any model (a dry run).

    Exactly one of `keep`, `remove` or `remove_ratio` must be given.

    Args:
        scores: block scores; required for `keep` and `remove_ratio`.
        num_blocks: number of blocks; taken from `scores` when omitted.
        keep: keep the best `keep` blocks (1 <= keep <= num_blocks).
        remove: explicit 0-based block indices to remove.
        remove_ratio: fraction of blocks to remove, in [0, 1); rounded to the nearest count.

    Returns:
        A `PrunePlan`.

    Raises:
        PlanError: bad or conflicting arguments.

    Example:
        >>> from gardener_hf.scoring import BlockScores
        >>> s = BlockScores("entropy", [9.5, 9.4, 9.35, 9.39], "lowest")
        >>> make_plan(s, keep=2).kept
        [0, 1]
    """
    given = [name for name, value in (("keep", keep), ("remove", remove), ("remove_ratio", remove_ratio)) if value is not None]
    if len(given) != 1:
        raise PlanError("give exactly one of keep, remove, remove_ratio" + (f" (got {', '.join(given)})" if given else ""))
    if num_blocks is None:
        if scores is None:
            raise PlanError("num_blocks is required when no scores are given")
        num_blocks = scores.num_blocks
    if scores is not None and scores.num_blocks != num_blocks:
        raise PlanError(f"scores cover {scores.num_blocks} blocks but the model has {num_blocks}")

    if remove_ratio is not None:
        if not isinstance(remove_ratio, (int, float)) or not 0 <= remove_ratio < 1:
            raise PlanError(f"remove_ratio={remove_ratio!r}: must be a fraction in [0, 1)")
        keep = num_blocks - round(remove_ratio * num_blocks)
        keep = max(keep, 1)

    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= num_blocks:
            raise PlanError(f"keep={keep!r}: keep must be between 1 and {num_blocks} for this model")
        if scores is None:
            raise PlanError("keep needs block scores to choose the best blocks")
        kept = scores.kept_blocks(keep)
    else:
        assert remove is not None
        bad = [b for b in remove if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < num_blocks]
        if bad:
            raise PlanError(f"remove={list(remove)}: block indices must be 0-based integers below {num_blocks}")
        if len(set(remove)) != len(remove):
            raise PlanError(f"remove={list(remove)}: a block is listed twice")
        if len(set(remove)) >= num_blocks:
            raise PlanError(f"remove={list(remove)}: at least one of the {num_blocks} blocks must stay")
        kept = [b for b in range(num_blocks) if b not in set(remove)]

    removed = [b for b in range(num_blocks) if b not in set(kept)]
    if scores is None:
        return PrunePlan(num_blocks=num_blocks, kept=kept, removed=removed)
    return PrunePlan(
        num_blocks=num_blocks,
        kept=kept,
        removed=removed,
        criterion=scores.criterion if keep is not None or remove is None else "manual",
        scores=list(scores.scores),
        prune_first=scores.prune_first,
        params=dict(scores.params),
        source=scores.source,
        removal_order=scores.removal_order(),
    )


def apply_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """Keep `plan.kept` blocks of `model` in place; rewrite the block list and the config together.

    If the model was already pruned by gardener_hf, the recorded block indices are composed so that
    `config.gardener["kept_blocks"]` always refers to the original checkpoint's blocks.

    Returns:
        The same model object, pruned.
    """
    parent, attr = block_list_path(model)
    blocks: nn.ModuleList = getattr(parent, attr)
    if len(blocks) != plan.num_blocks:
        raise PlanError(f"the plan is for {plan.num_blocks} blocks but the model has {len(blocks)}")
    setattr(parent, attr, nn.ModuleList([blocks[i] for i in plan.kept]))

    config = model.config
    previous = getattr(config, CONFIG_KEY, None)
    record = pruning_record(plan, previous if isinstance(previous, dict) else None)
    for cfg in {id(config): config, id(base_model(model).config): base_model(model).config}.values():
        cfg.num_hidden_layers = plan.num_kept
        setattr(cfg, CONFIG_KEY, record)
    return model


def pruning_record(plan: PrunePlan, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-able record stored in `config.gardener` and `gardener_pruning.json`."""
    if previous:
        # The model was pruned before: plan indices are positions in the pruned model. Map them back to
        # the source model's numbering so every index in the record means the same block.
        original = list(previous["kept_blocks"])
        source_blocks = previous["source_num_blocks"]
        history = list(previous.get("history", [])) + [{k: previous[k] for k in ("criterion", "kept_blocks")}]
    else:
        original, source_blocks, history = list(range(plan.num_blocks)), plan.num_blocks, []
    kept = [original[i] for i in plan.kept]
    record = {
        "gardener_version": __version__,
        "criterion": plan.criterion,
        "prune_first": plan.prune_first,
        "params": plan.params,
        "source_model": plan.source,
        "source_num_blocks": source_blocks,
        "kept_blocks": kept,
        "removed_blocks": [b for b in range(source_blocks) if b not in set(kept)],
        # scores[i] belongs to source block scored_blocks[i] (all blocks unless pruned before).
        "scored_blocks": original if plan.scores is not None else None,
        "scores": plan.scores,
        "removal_order": [original[i] for i in plan.removal_order] if plan.removal_order is not None else None,
    }
    if history:
        record["history"] = history
    return record


def prune_model(
    model: nn.Module,
    scores: BlockScores | None = None,
    *,
    keep: int | None = None,
    remove: Sequence[int] | None = None,
    remove_ratio: float | None = None,
) -> PrunePlan:
    """Plan and apply pruning in one call; the model is modified in place.

    Args:
        model: a supported transformers model.
        scores: block scores (from `score_model`); needed for `keep` / `remove_ratio`.
        keep: keep the best `keep` blocks.
        remove: explicit 0-based block indices to remove.
        remove_ratio: fraction of blocks to remove.

    Returns:
        The `PrunePlan` that was applied.
    """
    get_arch(model)
    plan = make_plan(scores, num_blocks=len(getattr(*block_list_path(model))), keep=keep, remove=remove, remove_ratio=remove_ratio)
    apply_plan(model, plan)
    return plan


def model_class_for(config: dict[str, Any], model_class: str | None = None) -> type[nn.Module]:
    """The transformers class to load a checkpoint with: `model_class`, else the one it was saved as.

    Raises:
        UnsupportedModelError: the class is not in the architecture table.
    """
    import transformers

    spec = get_arch(config)
    if model_class is None:
        architectures = config.get("architectures") or []
        if architectures:
            model_class = architectures[0]
        else:
            model_class = next(c for c in spec.classes if c.endswith("Model"))
    if model_class not in spec.classes:
        raise UnsupportedModelError(
            f"model class {model_class} is not supported for model type {spec.model_type!r}; "
            f"supported: {', '.join(spec.classes)}"
        )
    return getattr(transformers, model_class)


def load_model(
    model_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    model_class: str | None = None,
    dtype: str | torch.dtype = "auto",
) -> nn.Module:
    """Load a supported checkpoint from the Hub or a folder, safetensors only, no remote code.

    Args:
        model_id: Hub repo id or local folder.
        revision: Hub revision.
        token: Hub token (None: cached login).
        model_class: transformers class name; default: the class the checkpoint was saved as.
        dtype: `"auto"` keeps the stored precision, so scores match `score_pretrained`.

    Returns:
        The model, in eval mode.

    Raises:
        GardenerError: bad id, unsupported model, missing or unreadable weights.
    """
    config = read_config(model_id, revision=revision, token=token)
    cls = model_class_for(config, model_class)
    # Locate the weights first so a missing/pickle-only checkpoint gets our message, not a traceback.
    from .sources import SafetensorsCheckpoint

    SafetensorsCheckpoint.open(model_id, revision=revision, token=token)
    try:
        model, info = cls.from_pretrained(
            model_id, revision=revision, token=token, use_safetensors=True, dtype=dtype, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise GardenerError(f"could not load {model_id}: {str(err).splitlines()[0]}") from None
    if info.get("missing_keys"):
        logger.warning("%s: weights not in the checkpoint were initialised: %s", model_id, sorted(info["missing_keys"]))
    model.eval()
    return model


def copy_processor_files(
    model_id: str, output_dir: str | Path, *, revision: str | None = None, token: str | bool | None = None
) -> list[str]:
    """Copy the source's processor configs (if any) into `output_dir`; returns the names copied."""
    validate_model_id(model_id)
    copied = []
    for name in PROCESSOR_FILES:
        path = resolve_file(model_id, name, revision=revision, token=token, required=False)
        if path is not None:
            shutil.copyfile(path, Path(output_dir) / name)
            copied.append(name)
    return copied


def save_pruned(model: nn.Module, output_dir: str | Path) -> Path:
    """`save_pretrained` (safetensors) plus `gardener_pruning.json` beside the weights."""
    if not isinstance(getattr(model.config, CONFIG_KEY, None), dict):
        raise GardenerError("this model has not been pruned by gardener_hf (no config.gardener record)")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    write_pruning_record(model, output_dir)
    return output_dir


def write_pruning_record(model: nn.Module, output_dir: str | Path) -> bool:
    """Write `config.gardener` to `gardener_pruning.json` in `output_dir`; False if the model has none."""
    record = getattr(model.config, CONFIG_KEY, None)
    if not isinstance(record, dict):
        return False
    (Path(output_dir) / PRUNING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return True


def source_config(model_id: str, *, revision: str | None = None, token: str | bool | None = None) -> dict[str, Any]:
    """config.json of a checkpoint as a dict (no weights loaded)."""
    return read_config(model_id, revision=revision, token=token)
