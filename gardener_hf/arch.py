"""The one table that knows where each supported model keeps its transformer blocks.

Everything else in gardener_hf asks this module, never the model classes directly: where the block
list lives in memory, which six weight matrices of a block are scored (docs/method.md §1: the q, k
and v projections, the attention output projection, fc1 and fc2), and how those matrices are named in
a safetensors file. Checkpoints on the Hub, and those written by `save_pretrained` in transformers 5.x,
use the legacy key layout (`encoder.layer.N.attention.attention.query.weight`), while ViT and ViTMAE
modules in memory use `layers.N.attention.q_proj`; both spellings are listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import UnsupportedModelError

# Scored matrices, in the order the authors concatenate them: q, k, v, attention output, fc1, fc2.
ROLES = ("query", "key", "value", "attn_out", "fc1", "fc2")

# Legacy (Hub / save_pretrained) names of the six matrices inside one block.
_LEGACY_MATRICES = {
    "query": "attention.attention.query",
    "key": "attention.attention.key",
    "value": "attention.attention.value",
    "attn_out": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
# transformers >= 5 ViT / ViTMAE module names.
_VIT5_MATRICES = {
    "query": "attention.q_proj",
    "key": "attention.k_proj",
    "value": "attention.v_proj",
    "attn_out": "attention.o_proj",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}


@dataclass(frozen=True)
class ArchSpec:
    """Where one model type keeps its encoder blocks.

    Args:
        model_type: `config.model_type` this entry describes.
        base_prefix: attribute / key prefix of the base model (`model.base_model_prefix`).
        block_paths: candidate attribute paths, relative to the base model, of the `nn.ModuleList`
            of encoder blocks; the first one that exists is used.
        module_matrices: role -> linear-layer path inside a block module (in memory).
        key_matrices: role -> every spelling of that matrix in a safetensors key (without `.weight`).
        classes: the model classes gardener_hf loads for this type; the first is the default.
        pipeline_tag: Hub pipeline tag for classifier heads, keyed by class name.
        video: whether inputs are videos (affects FLOP counting and cards).
    """

    model_type: str
    base_prefix: str
    block_paths: tuple[str, ...]
    module_matrices: dict[str, str]
    key_matrices: dict[str, tuple[str, ...]]
    classes: tuple[str, ...]
    pipeline_tag: dict[str, str] = field(default_factory=dict)
    video: bool = False

    def key_pattern(self) -> re.Pattern[str]:
        """Regex matching a scored matrix key in a safetensors file; groups: block index, matrix name.

        The base prefix is optional (a bare `VideoMAEModel` is saved without it), and the pattern is
        anchored at the start so that decoder blocks (`decoder.decoder_layers.N`, ViTMAE's
        `decoder.decoder_encoder.layer.N`) never match.
        """
        names = sorted({n for spellings in self.key_matrices.values() for n in spellings}, key=len, reverse=True)
        alternation = "|".join(re.escape(n) for n in names)
        return re.compile(
            rf"^(?:{re.escape(self.base_prefix)}\.)?(?:encoder\.layer|layers)\.(\d+)\.({alternation})\.weight$"
        )

    def role_of(self, matrix_name: str) -> str:
        """Map a matrix spelling found in a key back to its role (`query`, ..., `fc2`)."""
        for role, spellings in self.key_matrices.items():
            if matrix_name in spellings:
                return role
        raise KeyError(matrix_name)


def _both_spellings() -> dict[str, tuple[str, ...]]:
    return {role: (_LEGACY_MATRICES[role], _VIT5_MATRICES[role]) for role in ROLES}


_TABLE: dict[str, ArchSpec] = {
    "videomae": ArchSpec(
        model_type="videomae",
        base_prefix="videomae",
        block_paths=("encoder.layer",),
        module_matrices=dict(_LEGACY_MATRICES),
        key_matrices={role: (_LEGACY_MATRICES[role],) for role in ROLES},
        classes=("VideoMAEForVideoClassification", "VideoMAEModel", "VideoMAEForPreTraining"),
        pipeline_tag={"VideoMAEForVideoClassification": "video-classification"},
        video=True,
    ),
    "vit_mae": ArchSpec(
        model_type="vit_mae",
        base_prefix="vit",
        block_paths=("layers", "encoder.layer"),
        module_matrices=dict(_VIT5_MATRICES),
        key_matrices=_both_spellings(),
        classes=("ViTMAEForPreTraining", "ViTMAEModel"),
    ),
    "vit": ArchSpec(
        model_type="vit",
        base_prefix="vit",
        block_paths=("layers", "encoder.layer"),
        module_matrices=dict(_VIT5_MATRICES),
        key_matrices=_both_spellings(),
        classes=("ViTForImageClassification", "ViTModel"),
        pipeline_tag={"ViTForImageClassification": "image-classification"},
    ),
}


def supported_architectures() -> dict[str, tuple[str, ...]]:
    """Return `{model_type: (class names...)}` for every supported architecture."""
    return {t: spec.classes for t, spec in _TABLE.items()}


def _supported_text() -> str:
    return "; ".join(f"{t}: {', '.join(spec.classes)}" for t, spec in _TABLE.items())


def get_arch(obj: Any) -> ArchSpec:
    """Look up the architecture entry for a model, a config, or a `model_type` string.

    Args:
        obj: a `PreTrainedModel`, a `PretrainedConfig`, a config dict, or a model type string.

    Returns:
        The matching `ArchSpec`.

    Raises:
        UnsupportedModelError: the model type (or, for a model, its class) is not supported.
    """
    if isinstance(obj, str):
        model_type = obj
    elif isinstance(obj, dict):
        model_type = obj.get("model_type")
    else:
        config = getattr(obj, "config", obj)
        model_type = getattr(config, "model_type", None)
    spec = _TABLE.get(model_type or "")
    if spec is None:
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported; supported: {_supported_text()}"
        )
    if isinstance(obj, nn.Module) and type(obj).__name__ not in spec.classes:
        raise UnsupportedModelError(
            f"model class {type(obj).__name__} is not supported for model type {model_type!r}; "
            f"supported: {_supported_text()}"
        )
    return spec


def _resolve(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def base_model(model: nn.Module) -> nn.Module:
    """The encoder-bearing base model (`model.videomae`, `model.vit`, or the model itself)."""
    spec = get_arch(model)
    return getattr(model, spec.base_prefix, model)


def block_list_path(model: nn.Module) -> tuple[nn.Module, str]:
    """Return `(parent_module, attribute_name)` of the encoder's block `nn.ModuleList`."""
    spec = get_arch(model)
    base = base_model(model)
    for path in spec.block_paths:
        parent_path, _, attr = path.rpartition(".")
        try:
            parent = _resolve(base, parent_path) if parent_path else base
        except AttributeError:
            continue
        if isinstance(getattr(parent, attr, None), nn.ModuleList):
            return parent, attr
    raise UnsupportedModelError(
        f"could not find the encoder blocks of {type(model).__name__} at any of {spec.block_paths}; "
        "this transformers version may have moved them"
    )


def get_blocks(model: nn.Module) -> nn.ModuleList:
    """The encoder's `nn.ModuleList` of transformer blocks."""
    parent, attr = block_list_path(model)
    return getattr(parent, attr)


def block_matrices(model: nn.Module, block: nn.Module) -> dict[str, Any]:
    """The six scored weight matrices of one block, keyed by role, in `ROLES` order."""
    spec = get_arch(model)
    return {role: _resolve(block, spec.module_matrices[role]).weight for role in ROLES}
