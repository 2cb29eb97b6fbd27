"""A pruned repo holds exactly the source's tensors minus the removed blocks: nothing added, nothing changed."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import ALL_CLASSES, make_model, save_with_processor
from safetensors.torch import load_file
from transformers import ViTConfig, ViTModel

from gardener_hf.cli import main

# Encoder blocks in the Hub's key form, written out here: `[base.]encoder.layer.N`, DINOv3's bare `layer.N`.
# Decoder, predictor (V-JEPA 2) and pooler blocks do not match and must come through unchanged.
BLOCK = re.compile(r"^((?:[a-z0-9_]+\.)?(?:encoder\.layer|layers)|layer)\.(\d+)\.(.*)$")


def _expected(source: dict[str, torch.Tensor], kept: list[int]) -> dict[str, torch.Tensor]:
    """The source's tensors with the removed blocks dropped and the kept ones renumbered in order."""
    position = {block: i for i, block in enumerate(kept)}
    out = {}
    for key, tensor in source.items():
        match = BLOCK.match(key)
        if match and not key.startswith("decoder"):
            block = int(match.group(2))
            if block not in position:
                continue
            key = f"{match.group(1)}.{position[block]}.{match.group(3)}"
        out[key] = tensor
    return out


def _check(src, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert main(["prune", str(src), "--keep", "3", "--output-dir", str(out), "-q"]) == 0, capsys.readouterr().err
    kept = json.loads((out / "config.json").read_text())["gardener"]["kept_blocks"]
    want = _expected(load_file(src / "model.safetensors"), kept)
    got = load_file(out / "model.safetensors")
    assert sorted(got) == sorted(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_every_class_keeps_exactly_the_source_tensors(name, tmp_path, capsys):
    _check(save_with_processor(make_model(name), tmp_path / "src"), tmp_path, capsys)


def test_a_vit_without_a_pooler_gets_no_random_pooler(tmp_path, capsys):
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                       intermediate_size=64)
    src = save_with_processor(ViTModel(config, add_pooling_layer=False), tmp_path / "src")
    assert not any(k.startswith("pooler") for k in load_file(src / "model.safetensors"))
    _check(src, tmp_path, capsys)
