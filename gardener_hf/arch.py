"""The one table that knows where each supported model keeps its transformer blocks.

Everything else in gardener_hf asks this module, never the model classes directly: where the block
list lives in memory, which six weight matrices of a block are scored (docs/method.md §1: the q, k
and v projections, the attention output projection, the MLP's input and output matrices), and how
those matrices are spelled in a safetensors file.

Two spellings matter because transformers 5.x renames many vision checkpoints on load: the Hub, and
`save_pretrained`, keep the original layout (`encoder.layer.N.attention.attention.query.weight`),
while several modules in memory say `layers.N.attention.q_proj`. The table lists both, learnt from
`transformers.conversion_mapping` and from the modelling files. A matrix may also be stored in parts:
a gated MLP's input matrix is `[gate; up]`, which DINOv2 stores fused (`mlp.weights_in`) and splits in
memory (`mlp.gate_proj`, `mlp.up_proj`), and DINOv3 stores split. The parts are concatenated along
dim 0 in the order listed, so a block scores the same from a file as from memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import UnsupportedModelError

# Scored matrices, in the order the authors concatenate them: q, k, v, attention output, fc1, fc2.
ROLES = ("query", "key", "value", "attn_out", "fc1", "fc2")

#: A matrix spelling: the module paths (inside a block, without `.weight`) whose weights are
#: concatenated along dim 0 to form it; most are one path.
Spelling = tuple[str, ...]


def _one(**paths: str) -> dict[str, tuple[Spelling, ...]]:
    return {role: ((path,),) for role, path in paths.items()}


def _merge(*tables: dict[str, tuple[Spelling, ...]]) -> dict[str, tuple[Spelling, ...]]:
    """Every spelling of each role, in the order given (the first that a block has wins)."""
    out: dict[str, tuple[Spelling, ...]] = {}
    for table in tables:
        for role, spellings in table.items():
            out[role] = out.get(role, ()) + tuple(s for s in spellings if s not in out.get(role, ()))
    return out


# The original (Hub / save_pretrained) BERT-style layout of ViT, ViTMAE, VideoMAE, DeiT, BEiT, ...
LEGACY = _one(
    query="attention.attention.query", key="attention.attention.key", value="attention.attention.value",
    attn_out="attention.output.dense", fc1="intermediate.dense", fc2="output.dense",
)
# transformers >= 5 in memory: ViT, ViTMAE, ViTMSN, DeiT, I-JEPA, BEiT.
VIT5 = _one(
    query="attention.q_proj", key="attention.k_proj", value="attention.v_proj",
    attn_out="attention.o_proj", fc1="mlp.fc1", fc2="mlp.fc2",
)
# DINOv2 (and with registers): legacy attention on the Hub; MLP `fc1`/`fc2`, or SwiGLU (`use_swiglu_ffn`).
_DINOV2_ATTN_HUB = {r: LEGACY[r] for r in ("query", "key", "value", "attn_out")}
_DINOV2_ATTN_MEM = {r: VIT5[r] for r in ("query", "key", "value", "attn_out")}
DINOV2_HUB = {**_DINOV2_ATTN_HUB, "fc1": (("mlp.fc1",), ("mlp.weights_in",)), "fc2": (("mlp.fc2",), ("mlp.weights_out",))}
DINOV2_MEM = {**_DINOV2_ATTN_MEM, "fc1": (("mlp.fc1",), ("mlp.gate_proj", "mlp.up_proj")),
              "fc2": (("mlp.fc2",), ("mlp.down_proj",))}
# DINOv3 ViT, the same in memory and on the Hub; the gated MLP (`use_gated_mlp`) is listed first because
# the plain one is its `up_proj` alone.
DINOV3 = {**_DINOV2_ATTN_MEM, "fc1": (("mlp.gate_proj", "mlp.up_proj"), ("mlp.up_proj",)), "fc2": (("mlp.down_proj",),)}
# V-JEPA 2, the same in memory and on the Hub.
VJEPA2 = _one(query="attention.query", key="attention.key", value="attention.value", attn_out="attention.proj",
              fc1="mlp.fc1", fc2="mlp.fc2")


@dataclass(frozen=True)
class ArchSpec:
    """Where one model type keeps its encoder blocks.

    Args:
        model_type: `config.model_type` this entry describes.
        base_attr: attribute of a head model (`...ForImageClassification`) that holds the base model,
            which is also the base model's key prefix on the Hub; None when the classes have no base
            model inside (DINOv3 ViT).
        block_paths: candidate attribute paths, relative to the base model, of the `nn.ModuleList`
            of encoder blocks; the first one that exists is used.
        key_blocks: the block-list paths a safetensors key may use, without the base prefix.
        module_matrices: role -> spellings of that matrix inside a block module (in memory).
        key_matrices: role -> spellings of that matrix in a block's safetensors keys.
        classes: the model classes gardener_hf loads for this type; the first is the default.
        pipeline_tag: Hub pipeline tag, keyed by class name.
        video: whether inputs are videos (FLOP counting, cards).
        size_key / frames_key: config fields of the input resolution and (video) clip length.
        prefix_tokens: config -> tokens the encoder adds before the patches ([CLS], distillation, registers).
    """

    model_type: str
    base_attr: str | None
    block_paths: tuple[str, ...]
    key_blocks: tuple[str, ...]
    module_matrices: dict[str, tuple[Spelling, ...]]
    key_matrices: dict[str, tuple[Spelling, ...]]
    classes: tuple[str, ...]
    pipeline_tag: dict[str, str] = field(default_factory=dict)
    video: bool = False
    size_key: str = "image_size"
    frames_key: str | None = None
    prefix_tokens: Any = 1  # int, or a callable taking the config

    def key_pattern(self) -> re.Pattern[str]:
        """Regex matching a block weight key in a safetensors file; groups: block index, path in the block.

        The base prefix is optional (a bare `ViTModel` is saved without it), and the pattern is anchored
        at the start so that decoder and predictor blocks (`decoder.decoder_layers.N`,
        `predictor.layer.N`) never match.
        """
        prefix = rf"(?:{re.escape(self.base_attr)}\.)?" if self.base_attr else ""
        blocks = "|".join(re.escape(p) for p in sorted(self.key_blocks, key=len, reverse=True))
        return re.compile(rf"^{prefix}(?:{blocks})\.(\d+)\.(.+)\.weight$")

    def key_spelling(self, role: str, present: set[str] | frozenset[str]) -> Spelling | None:
        """The spelling of `role` among one block's weight paths `present` (None if none matches)."""
        return _first_spelling(self.key_matrices[role], present)

    def num_prefix_tokens(self, config: Any) -> int:
        return int(self.prefix_tokens(config) if callable(self.prefix_tokens) else self.prefix_tokens)


def _first_spelling(spellings: tuple[Spelling, ...], present: set[str] | frozenset[str]) -> Spelling | None:
    return next((s for s in spellings if all(part in present for part in s)), None)


def _cls_and_registers(config: Any) -> int:
    return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


_IMAGE_FEATURES = "image-feature-extraction"
_IMAGE_CLASSES = "image-classification"
_ENCODER_KEYS = ("encoder.layer", "layers")


def _vit_like(model_type: str, base_attr: str, classes: tuple[str, ...], *, prefix_tokens: Any = 1,
              pipeline_tag: dict[str, str] | None = None) -> ArchSpec:
    """A ViT-style encoder: `layers` with `q_proj`... in memory, the legacy layout on the Hub."""
    return ArchSpec(
        model_type=model_type, base_attr=base_attr, block_paths=("layers", "encoder.layer"), key_blocks=_ENCODER_KEYS,
        module_matrices=_merge(VIT5, LEGACY), key_matrices=_merge(LEGACY, VIT5), classes=classes,
        pipeline_tag=pipeline_tag or {}, prefix_tokens=prefix_tokens,
    )


def _dinov2(model_type: str, base_attr: str, classes: tuple[str, ...]) -> ArchSpec:
    return ArchSpec(
        model_type=model_type, base_attr=base_attr, block_paths=("encoder.layer",), key_blocks=_ENCODER_KEYS,
        module_matrices=DINOV2_MEM, key_matrices=_merge(DINOV2_HUB, DINOV2_MEM), classes=classes,
        pipeline_tag={classes[0]: _IMAGE_FEATURES, classes[1]: _IMAGE_CLASSES}, prefix_tokens=_cls_and_registers,
    )


_SPECS = [
    ArchSpec(
        model_type="videomae", base_attr="videomae", block_paths=("encoder.layer",), key_blocks=_ENCODER_KEYS,
        module_matrices=LEGACY, key_matrices=LEGACY,
        classes=("VideoMAEForVideoClassification", "VideoMAEModel", "VideoMAEForPreTraining"),
        pipeline_tag={"VideoMAEForVideoClassification": "video-classification"},
        video=True, frames_key="num_frames", prefix_tokens=0,
    ),
    _vit_like("vit_mae", "vit", ("ViTMAEForPreTraining", "ViTMAEModel")),
    _vit_like("vit", "vit", ("ViTForImageClassification", "ViTModel"),
              pipeline_tag={"ViTForImageClassification": _IMAGE_CLASSES, "ViTModel": _IMAGE_FEATURES}),
    _vit_like("vit_msn", "vit", ("ViTMSNModel", "ViTMSNForImageClassification"),
              pipeline_tag={"ViTMSNForImageClassification": _IMAGE_CLASSES, "ViTMSNModel": _IMAGE_FEATURES}),
    _vit_like("deit", "deit",
              ("DeiTForImageClassification", "DeiTForImageClassificationWithTeacher", "DeiTModel",
               "DeiTForMaskedImageModeling"),
              prefix_tokens=2,  # [CLS] and the distillation token
              pipeline_tag={"DeiTForImageClassification": _IMAGE_CLASSES,
                            "DeiTForImageClassificationWithTeacher": _IMAGE_CLASSES, "DeiTModel": _IMAGE_FEATURES}),
    _vit_like("ijepa", "ijepa", ("IJepaModel", "IJepaForImageClassification"), prefix_tokens=0,
              pipeline_tag={"IJepaForImageClassification": _IMAGE_CLASSES, "IJepaModel": _IMAGE_FEATURES}),
    _vit_like("beit", "beit", ("BeitForImageClassification", "BeitModel", "BeitForMaskedImageModeling"),
              pipeline_tag={"BeitForImageClassification": _IMAGE_CLASSES, "BeitModel": _IMAGE_FEATURES}),
    ArchSpec(
        model_type="data2vec-vision", base_attr="data2vec_vision", block_paths=("encoder.layer", "layers"),
        key_blocks=_ENCODER_KEYS, module_matrices=_merge(LEGACY, VIT5), key_matrices=_merge(LEGACY, VIT5),
        classes=("Data2VecVisionForImageClassification", "Data2VecVisionModel"),
        pipeline_tag={"Data2VecVisionForImageClassification": _IMAGE_CLASSES, "Data2VecVisionModel": _IMAGE_FEATURES},
    ),
    _dinov2("dinov2", "dinov2", ("Dinov2Model", "Dinov2ForImageClassification")),
    _dinov2("dinov2_with_registers", "dinov2_with_registers",
            ("Dinov2WithRegistersModel", "Dinov2WithRegistersForImageClassification")),
    ArchSpec(
        model_type="dinov3_vit", base_attr=None, block_paths=("model.layer",), key_blocks=("layer", "model.layer"),
        module_matrices=DINOV3, key_matrices=DINOV3, classes=("DINOv3ViTModel",),
        pipeline_tag={"DINOv3ViTModel": _IMAGE_FEATURES}, prefix_tokens=_cls_and_registers,
    ),
    ArchSpec(
        model_type="vjepa2", base_attr="vjepa2", block_paths=("encoder.layer",), key_blocks=("encoder.layer",),
        module_matrices=VJEPA2, key_matrices=VJEPA2, classes=("VJEPA2Model", "VJEPA2ForVideoClassification"),
        pipeline_tag={"VJEPA2ForVideoClassification": "video-classification"},
        video=True, size_key="crop_size", frames_key="frames_per_clip", prefix_tokens=0,
    ),
]
_TABLE: dict[str, ArchSpec] = {spec.model_type: spec for spec in _SPECS}


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
    """The encoder-bearing base model (`model.videomae`, `model.dinov2`, ..., or the model itself)."""
    spec = get_arch(model)
    inner = getattr(model, spec.base_attr, None) if spec.base_attr else None
    return inner if isinstance(inner, nn.Module) else model


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


def block_matrix_parts(model: nn.Module, block: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The weight parameters behind each scored matrix of one block, keyed by role, in `ROLES` order.

    Most roles are one `nn.Linear` weight; a gated MLP's `fc1` is `[gate_proj, up_proj]`.

    Raises:
        UnsupportedModelError: the block has none of the known spellings of a matrix.
    """
    spec = get_arch(model)
    present = {name for name, module in block.named_modules() if isinstance(getattr(module, "weight", None), torch.Tensor)}
    parts: dict[str, list[nn.Parameter]] = {}
    for role in ROLES:
        spelling = _first_spelling(spec.module_matrices[role], present)
        if spelling is None:
            raise UnsupportedModelError(
                f"a {type(block).__name__} block of {type(model).__name__} has no {role} matrix at any of "
                f"{['+'.join(s) for s in spec.module_matrices[role]]}; this transformers version may have renamed it"
            )
        parts[role] = [_resolve(block, path).weight for path in spelling]
    return parts


def block_matrices(model: nn.Module, block: nn.Module) -> dict[str, torch.Tensor]:
    """The six scored weight matrices of one block, keyed by role, in `ROLES` order (parts concatenated)."""
    return {role: ws[0] if len(ws) == 1 else torch.cat(ws, dim=0)
            for role, ws in block_matrix_parts(model, block).items()}
