"""The only code that changes a model: keep some encoder blocks, drop the rest, update the config.

A pruned model is an ordinary transformers model: its encoder `nn.ModuleList` holds the kept
blocks in their original order and `config.num_hidden_layers` says how many there are, so
`save_pretrained` writes a checkpoint that plain `from_pretrained` loads with no custom code. What was
done is recorded in `config.gardener` (and in `gardener_pruning.json` beside the weights).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from ._version import __version__
from .arch import base_model, block_list_path, get_arch, get_blocks

# Re-exported: these lived here before checkpoint.py, and `from gardener_hf.surgery import ...` keeps working.
from .checkpoint import copy_processor_files, load_model, model_class_for, public_name  # noqa: F401
from .constants import CONFIG_KEY, PROCESSOR_FILES, PRUNING_FILE  # noqa: F401
from .errors import GardenerError, PlanError, WeightsError
from .scoring import BlockScores

logger = logging.getLogger(__name__)

#: config keys that make `from_pretrained` look for code in a repo (`trust_remote_code`); dropped on pruning
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


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
    protect: Sequence[int] | None = None,
) -> PrunePlan:
    """Decide which blocks stay, without touching any model (a dry run).

    Exactly one of `keep`, `remove` or `remove_ratio` must be given.

    Args:
        scores: block scores; required for `keep` and `remove_ratio`.
        num_blocks: number of blocks; taken from `scores` when omitted.
        keep: keep the best `keep` blocks (1 <= keep <= num_blocks).
        remove: explicit 0-based block indices to remove.
        remove_ratio: fraction of blocks to remove, in [0, 1); rounded to the nearest count.
        protect: blocks kept whatever the criterion says (recorded in the plan's params as `protected`).

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
    if protect:
        bad = [b for b in protect if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < num_blocks]
        if bad:
            raise PlanError(f"protect={list(protect)}: block indices must be 0-based integers below {num_blocks}")
        if remove is not None and set(remove) & set(protect):
            raise PlanError(f"remove={list(remove)} names protected block(s) {sorted(set(remove) & set(protect))}")
        if scores is not None:
            scores = scores.protect(protect)

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
        if keep < len(scores.protected):
            raise PlanError(f"keep={keep} is fewer than the {len(scores.protected)} protected blocks {scores.protected}")
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
        params={**scores.params, **({"protected": list(scores.protected)} if scores.protected else {})},
        source=scores.source,
        removal_order=scores.removal_order(),
    )


def apply_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """Keep `plan.kept` blocks of `model` in place; rewrite the block list and the config together.

    Everything per block follows the blocks: per-layer config lists (`layer_types`) are sliced, backbone
    taps (`out_indices` / `out_features` / `stage_names`) renumbered, a stored `layer_idx` renumbered, and
    depth-dependent drop-path rates (BEiT, data2vec-vision, V-JEPA 2) set to what `from_pretrained` builds
    for the smaller config, so the pruned model in memory is the model its saved files load as.

    If the model was already pruned by gardener_hf, the recorded block indices are composed so that
    `config.gardener["kept_blocks"]` always refers to the original checkpoint's blocks.

    Returns:
        The same model object, pruned.

    Raises:
        PlanError: the plan does not fit the model, or the config needs the output of a removed block
            (BEiT's `add_fpn` taps).
    """
    parent, attr = block_list_path(model)
    blocks: nn.ModuleList = getattr(parent, attr)
    if len(blocks) != plan.num_blocks:
        raise PlanError(f"the plan is for {plan.num_blocks} blocks but the model has {len(blocks)}")
    configs = list({id(model.config): model.config, id(base_model(model).config): base_model(model).config}.values())
    updates = [_per_block_config(cfg, plan) for cfg in configs]  # may refuse: nothing is changed before this
    record = PruningRecord.from_plan(plan, PruningRecord.from_model(model)).to_dict()

    setattr(parent, attr, nn.ModuleList([blocks[i] for i in plan.kept]))
    for cfg, update in zip(configs, updates, strict=True):
        cfg.num_hidden_layers = plan.num_kept
        for key, value in update.items():
            if key == "out_indices" and hasattr(cfg, "set_output_features_output_indices"):
                cfg.stage_names = ["stem"] + [f"stage{i}" for i in range(1, plan.num_kept + 1)]
                cfg.set_output_features_output_indices(out_features=None, out_indices=value)
            else:
                setattr(cfg, key, value)
        setattr(cfg, CONFIG_KEY, record)
        for key in REMOTE_CODE_KEYS:  # a pruned repo never points at remote code
            if key in cfg.__dict__:
                delattr(cfg, key)
    _renumber_blocks(getattr(parent, attr), plan)
    _rebuild_drop_paths(model, getattr(parent, attr))
    return model


def _map_taps(taps: Sequence[int], plan: PrunePlan) -> tuple[list[int], list[int]]:
    """Map stage indices (0 = embeddings, s = output of block s-1) to the pruned model's; also the dropped ones.

    A negative tap counts from the end (-1: the last stage) and keeps that meaning in the pruned model.
    """
    position = {block: i for i, block in enumerate(plan.kept)}
    mapped, dropped = [], []
    for tap in taps:
        if tap < 0 and -tap <= plan.num_kept + 1:
            mapped.append(tap)
        elif tap == 0:
            mapped.append(0)
        elif tap > 0 and tap - 1 in position:
            mapped.append(position[tap - 1] + 1)
        else:
            dropped.append(tap)
    return mapped, dropped


def _per_block_config(config: Any, plan: PrunePlan) -> dict[str, Any]:
    """The config fields, other than `num_hidden_layers`, that must change with the blocks kept."""
    update: dict[str, Any] = {}
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, (list, tuple)) and len(layer_types) == plan.num_blocks:
        update["layer_types"] = [layer_types[i] for i in plan.kept]
    taps = getattr(config, "out_indices", None)
    if isinstance(taps, (list, tuple)) and taps:
        if hasattr(config, "stage_names") and list(taps) == [plan.num_blocks]:  # the default: the last stage
            mapped, dropped = [plan.num_kept], []
        else:
            mapped, dropped = _map_taps(list(taps), plan)
        if dropped and getattr(config, "add_fpn", False):
            raise PlanError(
                f"out_indices={list(taps)} feed the FPN (add_fpn=True), but the plan removes the block(s) behind "
                f"{dropped}; keep blocks {sorted(t - 1 for t in taps if t > 0)} (the outputs they name) or prune a "
                "checkpoint without add_fpn"
            )
        if dropped:
            # Only backbone and segmentation heads read these taps, and gardener_hf loads neither.
            logger.info("out_indices %s name the output of removed blocks: dropped from the pruned config", dropped)
        update["out_indices"] = mapped or [plan.num_kept]
    return update


def _renumber_blocks(blocks: nn.ModuleList, plan: PrunePlan) -> None:
    """A `layer_idx` stored in a kept block (or inside it) becomes the block's new position."""
    for position, (block, source) in enumerate(zip(blocks, plan.kept, strict=True)):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int) and module.layer_idx == source:
                module.layer_idx = position


def _rebuild_drop_paths(model: nn.Module, blocks: nn.ModuleList) -> None:
    """Give the kept blocks the drop-path modules `from_pretrained` builds for the pruned config.

    BEiT, data2vec-vision and V-JEPA 2 spread the drop-path rate linearly over the depth, so block i of
    the pruned model gets the rate of position i in the smaller model, not the one it had. A twin of the
    pruned model is built on the meta device (no memory, no weights) and its parameterless drop-path
    modules are copied over.
    """
    import copy

    import torch

    if not any("drop_path" in name.rsplit(".", 1)[-1] for name, _ in blocks.named_modules()):
        return
    with torch.device("meta"):
        twin = type(model)(copy.deepcopy(model.config))
    for block, twin_block in zip(blocks, get_blocks(twin), strict=True):
        for name, module in twin_block.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if "drop_path" not in leaf or any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
                continue
            owner = block.get_submodule(name.rpartition(".")[0]) if "." in name else block
            replacement = copy.deepcopy(module).train(getattr(owner, leaf).training)  # the twin was built in train mode
            setattr(owner, leaf, replacement)


@dataclass
class PruningRecord:
    """What gardener_hf did to a checkpoint: stored in `config.gardener` and in `gardener_pruning.json`.

    Every block index is 0-based and refers to the *source* checkpoint's blocks, also after a second
    pruning (then `history` lists the earlier steps). Saved as JSON with the gardener_hf version, as
    peft saves its configs; `load` reads it back from a folder.

    Attributes:
        gardener_version: version of gardener_hf that wrote the record.
        criterion: scorer name, or "manual" for an explicit list of blocks.
        prune_first: "lowest" / "highest" (None for manual plans).
        params: scorer parameters.
        source_model: the source checkpoint: its Hub id, or a local folder's name (`public_name`).
        source_num_blocks: blocks of the source checkpoint.
        kept_blocks: source blocks kept, in order.
        removed_blocks: source blocks removed.
        scored_blocks: `scores[i]` belongs to source block `scored_blocks[i]` (None without scores).
        scores: the score of every scored block (None for manual plans).
        removal_order: the scorer's full removal order, in source numbering (None for manual plans).
        history: earlier prunings of the same source, oldest first (`criterion`, `kept_blocks`).

    Example:
        >>> plan = PrunePlan(num_blocks=4, kept=[0, 2], removed=[1, 3])
        >>> PruningRecord.from_plan(plan).removed_blocks
        [1, 3]
    """

    gardener_version: str
    criterion: str
    prune_first: str | None
    params: dict[str, Any]
    source_model: str | None
    source_num_blocks: int
    kept_blocks: list[int]
    removed_blocks: list[int]
    scored_blocks: list[int] | None = None
    scores: list[float] | None = None
    removal_order: list[int] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: PrunePlan, previous: PruningRecord | None = None) -> PruningRecord:
        """The record of applying `plan`, composed with `previous` when the model was pruned before."""
        if previous is not None:
            # Plan indices are positions in the pruned model: map them back to the source numbering.
            original = list(previous.kept_blocks)
            source_blocks = previous.source_num_blocks
            history = [*previous.history, {"criterion": previous.criterion, "kept_blocks": list(previous.kept_blocks)}]
        else:
            original, source_blocks, history = list(range(plan.num_blocks)), plan.num_blocks, []
        kept = [original[i] for i in plan.kept]
        return cls(
            gardener_version=__version__,
            criterion=plan.criterion,
            prune_first=plan.prune_first,
            params=dict(plan.params),
            source_model=public_name(plan.source),
            source_num_blocks=source_blocks,
            kept_blocks=kept,
            removed_blocks=[b for b in range(source_blocks) if b not in set(kept)],
            scored_blocks=original if plan.scores is not None else None,
            scores=plan.scores,
            removal_order=[original[i] for i in plan.removal_order] if plan.removal_order is not None else None,
            history=history,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in config.json (`history` only when there is one)."""
        data = asdict(self)
        if not data["history"]:
            del data["history"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningRecord:
        """Read a record back; keys a newer gardener_hf may add are ignored.

        Raises:
            WeightsError: required keys are missing.
        """
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise WeightsError(f"malformed gardener pruning record: {err}") from None

    @classmethod
    def from_model(cls, model: nn.Module) -> PruningRecord | None:
        """The record in `model.config.gardener`, or None when the model was not pruned by gardener_hf."""
        data = getattr(getattr(model, "config", None), CONFIG_KEY, None)
        return cls.from_dict(data) if isinstance(data, dict) else None

    def save(self, folder: str | Path) -> Path:
        """Write `gardener_pruning.json` into `folder`; returns its path."""
        path = Path(folder) / PRUNING_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PruningRecord:
        """Read `gardener_pruning.json` from `folder`.

        Raises:
            WeightsError: the file is missing or not a valid record.
        """
        path = Path(folder) / PRUNING_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise WeightsError(f"cannot read the pruning record {path.name} in {Path(folder).name}: {err}") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{path.name} in {Path(folder).name} is not a pruning record")
        return cls.from_dict(data)

    @property
    def num_kept(self) -> int:
        return len(self.kept_blocks)

    def ranks(self) -> dict[int, int]:
        """Source block -> importance rank among the scored blocks (1 = most important)."""
        order = self.removal_order or []
        return {block: len(order) - position for position, block in enumerate(order)}

    def score_of(self) -> dict[int, float]:
        """Source block -> its score (empty for manual plans)."""
        if not self.scores:
            return {}
        blocks = self.scored_blocks or list(range(len(self.scores)))
        return dict(zip(blocks, self.scores, strict=True))


def prune_model(
    model: nn.Module,
    scores: BlockScores | None = None,
    *,
    keep: int | None = None,
    remove: Sequence[int] | None = None,
    remove_ratio: float | None = None,
    protect: Sequence[int] | None = None,
) -> PrunePlan:
    """Plan and apply pruning in one call; the model is modified in place.

    Args:
        model: a supported transformers model.
        scores: block scores (from `score_model`); needed for `keep` / `remove_ratio`.
        keep: keep the best `keep` blocks.
        remove: explicit 0-based block indices to remove.
        remove_ratio: fraction of blocks to remove.
        protect: blocks kept whatever the scores say.

    Returns:
        The `PrunePlan` that was applied.
    """
    get_arch(model)
    plan = make_plan(scores, num_blocks=len(getattr(*block_list_path(model))), keep=keep, remove=remove, remove_ratio=remove_ratio,
                     protect=protect)
    apply_plan(model, plan)
    return plan


def save_pruned(
    model: nn.Module,
    output_dir: str | Path,
    *,
    source: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """`save_pretrained` (safetensors), `gardener_pruning.json`, and the source's processor configs.

    Args:
        model: a model pruned by gardener_hf.
        output_dir: the folder to write (created if needed).
        source: the checkpoint whose processor configs (`preprocessor_config.json`, ...) are copied, so
            that `pipeline(...)` works on the folder; default: the folder or Hub id the model was loaded
            from (`config._name_or_path`), skipped quietly when that cannot be read; "" copies none.
        revision / token: of `source` on the Hub.

    Returns:
        `output_dir` as a `Path`.
    """
    record = PruningRecord.from_model(model)
    if record is None:
        raise GardenerError("this model has not been pruned by gardener_hf (no config.gardener record)")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    record.save(output_dir)
    if source is None:
        loaded_from = getattr(model.config, "_name_or_path", "") or ""
        try:
            if loaded_from:
                copy_processor_files(loaded_from, output_dir, revision=revision, token=token)
        except GardenerError as err:
            logger.info("no processor configs copied from %s: %s", public_name(loaded_from), err)
    elif source:
        copy_processor_files(source, output_dir, revision=revision, token=token)
    return output_dir


def write_pruning_record(model: nn.Module, output_dir: str | Path) -> bool:
    """Write `config.gardener` to `gardener_pruning.json` in `output_dir`; False if the model has none."""
    record = PruningRecord.from_model(model)
    if record is None:
        return False
    record.save(output_dir)
    return True
