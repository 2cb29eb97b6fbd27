"""Analytic cost of a ViT-style encoder: parameters and FLOPs per forward pass.

FLOPs follow the convention of the paper and of fvcore: one multiply-accumulate counts as one FLOP.
Counted: the patch embedding, every linear layer of each block (q/k/v/output projections, the MLP,
gated or not), the two attention matmuls (QK^T and AV) over all tokens ([CLS], distillation and
register tokens included), and linear classifier heads (modules named `...classifier`). LayerNorm,
softmax, GELU, rotary embeddings and biases are not counted (a fraction of a percent), nor what runs
beside the encoder: pretraining decoders, masked-image-modelling heads, V-JEPA 2's predictor (which
`VJEPA2Model` runs unless `skip_predictor=True`) and its attentive-pooling classifier. For VideoMAE-B at 16x224x224 this gives 180.3 GFLOPs, the paper's 180.

The shapes come from the config: a copy of the model is built on the meta device (no memory, no
weights) and its block's linear layers and patch-embedding convolution are read off.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import torch
from torch import nn

from .arch import get_arch, get_blocks


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


def num_patches(config: Any, input_size: tuple[int, int] | None = None) -> int:
    """Patch (or, for video, tubelet) tokens of one input at `input_size` (height, width), else the config's."""
    spec = get_arch(config)
    height, width = input_size or _pair(getattr(config, spec.size_key))
    patch_h, patch_w = _pair(config.patch_size)
    patches = (height // patch_h) * (width // patch_w)
    if spec.frames_key:
        patches *= getattr(config, spec.frames_key) // config.tubelet_size
    return patches


def num_tokens(config: Any, input_size: tuple[int, int] | None = None) -> int:
    """Tokens the encoder sees for one unmasked input: patches plus [CLS] / distillation / register tokens."""
    return num_patches(config, input_size) + get_arch(config).num_prefix_tokens(config)


@functools.lru_cache(maxsize=32)
def _shapes(config_json: str, model_type: str) -> tuple[int, int]:
    """(linear MACs per token of one block, MACs per patch of the patch embedding) for a config."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type, **json.loads(config_json))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    block = get_blocks(model)[0]
    linear = sum(m.in_features * m.out_features for m in block.modules() if isinstance(m, nn.Linear))
    conv = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
    embed = 0 if conv is None else conv.out_channels * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)
    return linear, embed


def _config_shapes(config: Any) -> tuple[int, int]:
    data = config.to_dict()
    data["num_hidden_layers"] = 1  # one block is enough to read the shapes
    if isinstance(data.get("layer_types"), list):
        data["layer_types"] = data["layer_types"][:1]
    for key in ("model_type", "gardener", "architectures", "_name_or_path", "transformers_version", "id2label", "label2id",
                # the per-stage taps, and BEiT's FPN that insists on four of them
                "out_features", "out_indices", "stage_names", "_out_features", "_out_indices", "add_fpn"):
        data.pop(key, None)
    return _shapes(json.dumps(data, sort_keys=True, default=str), config.model_type)


def block_flops(config: Any, input_size: tuple[int, int] | None = None) -> int:
    """Multiply-accumulates of one transformer block."""
    linear, _ = _config_shapes(config)
    return _block_macs(config, linear, input_size)


def _block_macs(config: Any, linear_per_token: int, input_size: tuple[int, int] | None) -> int:
    n = num_tokens(config, input_size)
    return n * linear_per_token + 2 * n * n * config.hidden_size


def encoder_flops(
    config: Any,
    num_blocks: int | None = None,
    num_labels: int = 0,
    *,
    head_macs: int | None = None,
    input_size: tuple[int, int] | None = None,
) -> int:
    """Multiply-accumulates of patch embedding + `num_blocks` blocks + a linear head.

    Args:
        config: a supported model's config.
        num_blocks: blocks counted (default: `config.num_hidden_layers`).
        num_labels: size of a `hidden_size -> num_labels` linear head (0: none).
        head_macs: the head's MACs per input, when it is not that shape (overrides `num_labels`).
        input_size: (height, width) of the input, when it is not the config's `image_size` (DINOv2 configs
            say 518, the size of their position grid, while their processors crop 224).
    """
    blocks = config.num_hidden_layers if num_blocks is None else num_blocks
    linear, per_patch = _config_shapes(config)  # read once: it serialises the config
    head = config.hidden_size * num_labels if head_macs is None else head_macs
    return num_patches(config, input_size) * per_patch + blocks * _block_macs(config, linear, input_size) + head


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _head_macs(model: nn.Module) -> int:
    """MACs of the linear classifier(s) of a head model (`classifier`, DeiT's `cls_classifier`, ...)."""
    return sum(m.in_features * m.out_features for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1].endswith("classifier"))


def cost_summary(model: nn.Module, source_blocks: int, input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Parameters and GFLOPs of `model` next to the same model with `source_blocks` blocks.

    Args:
        model: a (pruned) supported model.
        source_blocks: number of blocks before pruning.
        input_size: (height, width) of an input (default: the config's resolution).

    Returns:
        `{"params", "params_source", "gflops", "gflops_source", "tokens", "input"}`; `input` describes
        one input, e.g. `224x224` or `16x224x224` for a clip.
    """
    config = model.config
    blocks = get_blocks(model)
    head = _head_macs(model)
    per_block = sum(p.numel() for p in blocks[0].parameters()) if len(blocks) else 0
    params = count_parameters(model)
    return {
        "params": params,
        "params_source": params + (source_blocks - len(blocks)) * per_block,
        "gflops": encoder_flops(config, len(blocks), head_macs=head, input_size=input_size) / 1e9,
        "gflops_source": encoder_flops(config, source_blocks, head_macs=head, input_size=input_size) / 1e9,
        "tokens": num_tokens(config, input_size),
        "input": _describe_input(config, input_size),
    }


def _describe_input(config: Any, input_size: tuple[int, int] | None) -> str:
    spec = get_arch(config)
    height, width = input_size or _pair(getattr(config, spec.size_key))
    frames = f"{getattr(config, spec.frames_key)}x" if spec.frames_key else ""
    return f"{frames}{height}x{width}"
