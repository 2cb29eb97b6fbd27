"""Analytic cost of a ViT-style encoder: parameters and FLOPs per forward pass.

FLOPs follow the convention of the paper and of fvcore: one multiply-accumulate counts as one FLOP.
Counted: patch embedding, the q/k/v/output projections and MLP of each block, the two attention
matmuls (QK^T and AV), and the classifier head. LayerNorm, softmax, GELU and biases are not
counted (a fraction of a percent). For VideoMAE-B at 16x224x224 this gives 180.3 GFLOPs, the
paper's 180.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .arch import get_arch, get_blocks


def num_tokens(config: Any) -> int:
    """Tokens the encoder sees for one unmasked input at the config's resolution."""
    spec = get_arch(config)
    patches = (config.image_size // config.patch_size) ** 2
    if spec.video:
        return (config.num_frames // config.tubelet_size) * patches
    return patches + 1  # + [CLS]


def block_flops(config: Any) -> int:
    """Multiply-accumulates of one transformer block."""
    n, d, i = num_tokens(config), config.hidden_size, config.intermediate_size
    return n * (4 * d * d + 2 * d * i) + 2 * n * n * d


def encoder_flops(config: Any, num_blocks: int | None = None, num_labels: int = 0) -> int:
    """Multiply-accumulates of patch embedding + `num_blocks` blocks + a `num_labels`-way linear head."""
    spec = get_arch(config)
    blocks = config.num_hidden_layers if num_blocks is None else num_blocks
    n_patch = (config.image_size // config.patch_size) ** 2
    patch_dim = config.num_channels * config.patch_size**2
    if spec.video:
        n_patch *= config.num_frames // config.tubelet_size
        patch_dim *= config.tubelet_size
    embed = n_patch * patch_dim * config.hidden_size
    return embed + blocks * block_flops(config) + config.hidden_size * num_labels


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def cost_summary(model: nn.Module, source_blocks: int) -> dict[str, Any]:
    """Parameters and GFLOPs of `model` next to the same model with `source_blocks` blocks.

    Args:
        model: a (pruned) supported model.
        source_blocks: number of blocks before pruning.

    Returns:
        `{"params": int, "params_source": int, "gflops": float, "gflops_source": float, "tokens": int}`.
    """
    config = model.config
    blocks = get_blocks(model)
    classifier = getattr(model, "classifier", None)
    labels = classifier.out_features if isinstance(classifier, nn.Linear) else 0
    per_block = sum(p.numel() for p in blocks[0].parameters()) if len(blocks) else 0
    params = count_parameters(model)
    return {
        "params": params,
        "params_source": params + (source_blocks - len(blocks)) * per_block,
        "gflops": encoder_flops(config, len(blocks), labels) / 1e9,
        "gflops_source": encoder_flops(config, source_blocks, labels) / 1e9,
        "tokens": num_tokens(config),
    }
