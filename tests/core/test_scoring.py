"""Scorers: paper-faithful values, directions, determinism, and streaming == in-memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ALL_CLASSES, NUM_BLOCKS, make_model

from gardener_hf import BlockScores, available_criteria, score_model, score_pretrained
from gardener_hf.arch import block_matrices, get_blocks
from gardener_hf.errors import GardenerError, UnsupportedModelError

PAPER_ENTROPIES = [9.5484, 9.4170, 9.3856, 9.3946, 9.3830, 9.3894, 9.3775, 9.3787, 9.3612, 9.3514, 9.3539, 9.3487]


def reference_entropy(matrices) -> float:
    """The authors' recipe, written independently: concatenate, cast to float16, count exact values."""
    values = torch.cat([m.detach().reshape(-1) for m in matrices]).half().float().numpy()
    _, counts = np.unique(values.view(np.uint32), return_counts=True)  # bit patterns: +0 and -0 differ
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_entropy_matches_reference_recipe():
    model = make_model("VideoMAEForVideoClassification")
    scores = score_model(model, progress=False)
    expected = [reference_entropy(list(block_matrices(model, b).values())) for b in get_blocks(model)]
    assert scores.criterion == "entropy" and scores.prune_first == "lowest"
    np.testing.assert_allclose(scores.scores, expected, rtol=0, atol=1e-12)


def test_entropy_uses_exactly_the_six_matrices():
    model = make_model("VideoMAEForVideoClassification")
    before = score_model(model, progress=False).scores
    with torch.no_grad():  # biases and LayerNorms are not scored
        for block in get_blocks(model):
            block.layernorm_before.weight.mul_(3.7)
            block.attention.output.dense.bias.add_(1.0)
    assert score_model(model, progress=False).scores == before
    with torch.no_grad():
        get_blocks(model)[2].output.dense.weight.mul_(0.5).add_(0.001)
    after = score_model(model, progress=False).scores
    assert after[2] != before[2] and after[:2] == before[:2]


def test_paper_reference_removal_order():
    s = BlockScores("entropy", PAPER_ENTROPIES, "lowest")
    assert [b + 1 for b in s.removal_order()] == [12, 10, 11, 9, 7, 8, 5, 3, 6, 4, 2, 1]
    assert [b + 1 for b in s.kept_blocks(4)] == [1, 2, 4, 6]
    assert s.ranks()[0] == 1 and s.ranks()[11] == 12


def test_directions_and_ties():
    high = BlockScores("kurtosis", [1.0, 3.0, 2.0], "highest")
    assert high.removal_order() == [1, 2, 0]
    tie = BlockScores("x", [1.0, 1.0, 1.0], "lowest")
    assert tie.removal_order() == [2, 1, 0]  # deeper block first on ties
    with pytest.raises(GardenerError, match="keep must be between 1 and 3"):
        tie.kept_blocks(0)


WEIGHT_CRITERIA = sorted(c for c in available_criteria() if c not in ("block-influence", "angular", "removal-drift",
                                                                      "reconstruction"))  # those: test_calibrated.py


@pytest.mark.parametrize("criterion", WEIGHT_CRITERIA)
def test_every_criterion_streams_identically(criterion, tmp_path):
    model = make_model("VideoMAEForVideoClassification")
    model.save_pretrained(tmp_path / "m")
    mem = score_model(model, criterion, progress=False)
    disk = score_pretrained(str(tmp_path / "m"), criterion, progress=False)
    assert mem.scores == disk.scores
    assert len(mem.scores) == NUM_BLOCKS and all(np.isfinite(mem.scores))
    again = score_model(model, criterion, progress=False)
    assert again.scores == mem.scores  # deterministic


def test_criterion_directions():
    d = {name: cls for name, cls in available_criteria().items()}
    assert "prunes highest first" in d["kurtosis"] and "prunes highest first" in d["mi"]
    assert "prunes highest first" in d["l1-reverse"] and "prunes lowest first" in d["l1"]


def test_baselines_values():
    model = make_model("ViTModel")
    mats = [[w.detach() for w in block_matrices(model, b).values()] for b in get_blocks(model)]
    flat = [torch.cat([m.reshape(-1) for m in ms]).double() for ms in mats]
    l1 = score_model(model, "l1", progress=False).scores
    np.testing.assert_allclose(l1, [float(f.abs().mean()) for f in flat], rtol=1e-12)
    l2 = score_model(model, "l2", progress=False).scores
    np.testing.assert_allclose(l2, [float(f.norm()) for f in flat], rtol=1e-12)
    std = score_model(model, "std", progress=False).scores
    np.testing.assert_allclose(std, [float(f.std(unbiased=False)) for f in flat], rtol=1e-10)
    kurt = score_model(model, "kurtosis", progress=False).scores
    ref = [float(((f - f.mean()) ** 4).mean() / f.var(unbiased=False) ** 2 - 3) for f in flat]
    np.testing.assert_allclose(kurt, ref, rtol=1e-8)
    assert kurt[-1] > kurt[0]  # the test model gives deeper blocks heavier tails


def test_mutual_information_definition():
    model = make_model("ViTModel")
    mats = [[w.detach() for w in block_matrices(model, b).values()] for b in get_blocks(model)]
    h = [reference_entropy(m) for m in mats]
    mi = score_model(model, "mi", progress=False).scores
    j = 1
    pair = [h[j] + h[k] - reference_entropy(mats[j] + mats[k]) for k in range(len(mats)) if k != j]
    assert mi[j] == pytest.approx(float(np.mean(pair)), abs=1e-9)


def test_histogram_and_exact_entropy():
    model = make_model("ViTModel")
    mats = [w.detach() for w in block_matrices(model, get_blocks(model)[0]).values()]
    flat = torch.cat([m.reshape(-1) for m in mats])
    counts = torch.histc(flat, bins=16, min=float(flat.min()), max=float(flat.max())).double()
    p = counts[counts > 0] / counts.sum()
    assert score_model(model, "entropy-hist", bins=16, progress=False).scores[0] == pytest.approx(float(-(p * p.log()).sum()))
    exact = score_model(model, "entropy-exact", progress=False).scores
    assert max(exact) <= np.log(flat.numel()) + 1e-9
    with pytest.raises(GardenerError, match="bins"):
        score_model(model, "entropy-hist", bins=1, progress=False)


def test_random_is_seeded():
    model = make_model("ViTModel")
    a = score_model(model, "random", seed=3, progress=False).removal_order()
    b = score_model(model, "random", seed=3, progress=False).removal_order()
    c = score_model(model, "random", seed=4, progress=False).removal_order()
    assert a == b and sorted(a) == list(range(NUM_BLOCKS)) and a != c


def test_float16_checkpoint_is_exact_value_counting(tmp_path):
    model = make_model("ViTModel").half()
    model.save_pretrained(tmp_path / "fp16")
    ent = score_pretrained(str(tmp_path / "fp16"), progress=False).scores
    mats = [[w.detach() for w in block_matrices(model, b).values()] for b in get_blocks(model)]
    np.testing.assert_allclose(ent, [reference_entropy(m) for m in mats], atol=1e-12)


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_all_architectures_stream_from_legacy_keys(name, tmp_path):
    model = make_model(name)
    model.save_pretrained(tmp_path / "m")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    if name.startswith("ViT"):
        assert any("encoder.layer.0.attention.attention.query.weight" in k for k in keys)  # legacy form on disk
    assert score_pretrained(str(tmp_path / "m"), progress=False).scores == score_model(model, progress=False).scores


def test_sharded_checkpoint(tmp_path):
    model = make_model("VideoMAEForPreTraining")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    shards = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(shards.values())) > 2
    assert score_pretrained(str(tmp_path / "sharded"), progress=False).scores == score_model(model, progress=False).scores


def test_unsupported_architecture_message():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(UnsupportedModelError, match="'bert' is not supported; supported: videomae"):
        score_model(model, progress=False)


def test_unknown_criterion():
    with pytest.raises(GardenerError, match="unknown criterion 'nope'; choose one of: angular, block-influence, entropy"):
        score_model(make_model("ViTModel"), "nope", progress=False)


@pytest.mark.parametrize("criterion", ["entropy", "l1", "kurtosis", "mi", "random", "entropy-hist", "entropy-exact"])
def test_non_finite_weights_are_refused(criterion):
    model = make_model("ViTModel")
    with torch.no_grad():
        get_blocks(model)[3].mlp.fc1.weight[0, 0] = float("nan")
    with pytest.raises(GardenerError, match="block 3: weights are not finite"):
        score_model(model, criterion, progress=False)
