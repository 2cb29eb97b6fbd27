"""Model cards (metadata round trip, table, plot) and the analytic FLOP / parameter counts."""

from __future__ import annotations

import pytest
import torch
from conftest import make_inputs, make_model
from huggingface_hub import ModelCard
from torch.utils.flop_counter import FlopCounterMode

from gardener_hf import prune_model, score_model
from gardener_hf.hub.cards import build_card
from gardener_hf.plotting import plot_block_scores
from gardener_hf.stats import cost_summary, count_parameters, encoder_flops


@pytest.mark.parametrize("name", ["VideoMAEForVideoClassification", "ViTForImageClassification"])
def test_flops_match_torch_flop_counter(name):
    model = make_model(name)
    model.set_attn_implementation("eager")  # the counter sees the attention matmuls only when eager
    inputs = make_inputs(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs)
    macs_per_input = counter.get_total_flops() / 2 / inputs["pixel_values"].shape[0]
    assert encoder_flops(model.config, num_labels=3) == macs_per_input


def test_videomae_base_is_180_gflops():
    from transformers import VideoMAEConfig

    config = VideoMAEConfig()
    assert round(encoder_flops(config, num_labels=400) / 1e9) == 180  # the paper's figure for 16x224x224
    assert encoder_flops(config, 4) < encoder_flops(config) / 2.5


def test_cost_summary_counts_removed_parameters():
    model = make_model("VideoMAEForVideoClassification")
    before = count_parameters(model)
    prune_model(model, score_model(model, progress=False), keep=2)
    cost = cost_summary(model, 6)
    assert cost["params_source"] == before and cost["params"] == count_parameters(model) < before
    assert cost["gflops"] < cost["gflops_source"]


def test_card_metadata_round_trip(tmp_path):
    model = make_model("VideoMAEForVideoClassification")
    scores = score_model(model, progress=False)
    scores.source = "MCG-NJU/videomae-base"
    plan = prune_model(model, scores, keep=4)
    card = build_card(model, repo_id="me/videomae-base-gardener-keep4", command="python scripts/push_pruned.py MCG-NJU/videomae-base --keep 4", license="cc-by-nc-4.0")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data.to_dict()
    assert data["base_model"] == "MCG-NJU/videomae-base"
    assert data["base_model_relation"] == "finetune"
    assert data["pipeline_tag"] == "video-classification" and data["library_name"] == "transformers"
    assert data["license"] == "cc-by-nc-4.0"
    assert {"pruned", "gardener", "videomae"} <= set(data["tags"])
    text = loaded.text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.rstrip().endswith(("kept |", "removed |"))]
    assert len(rows) == 6
    assert [int(r.split("|")[1]) for r in rows if r.rstrip().endswith("kept |")] == plan.kept
    assert "python scripts/push_pruned.py MCG-NJU/videomae-base --keep 4" in text
    assert 'VideoMAEForVideoClassification.from_pretrained("me/videomae-base-gardener-keep4")' in text
    assert "![block scores](block_scores.png)" in text
    assert text.count("## What was removed") == 1


def test_card_for_local_source_has_no_base_model(tmp_path):
    model = make_model("ViTModel")
    prune_model(model, score_model(model, progress=False), keep=2)  # source: none recorded
    card = build_card(model, repo_id="me/x", command="gardener ...")
    data = card.data.to_dict()
    assert "base_model" not in data and data["pipeline_tag"] == "image-feature-extraction"


def test_plot_is_png(tmp_path):
    model = make_model("ViTModel")
    prune_model(model, score_model(model, progress=False), keep=3)
    path = plot_block_scores(model.config.gardener, tmp_path / "p.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_second_prune_keeps_source_numbering_in_record_and_card(tmp_path):
    model = make_model("VideoMAEForVideoClassification")
    prune_model(model, score_model(model, progress=False), keep=4)
    first = list(model.config.gardener["kept_blocks"])
    second_scores = score_model(model, progress=False)
    prune_model(model, second_scores, keep=2)
    record = model.config.gardener
    assert record["scored_blocks"] == first and len(record["scores"]) == 4
    # The second removal order, in source numbering, ends with the two blocks that were kept.
    assert sorted(record["removal_order"]) == first
    assert sorted(record["removal_order"][-2:]) == record["kept_blocks"]
    text = build_card(model, repo_id="me/x", command="gardener ...").text
    rows = {int(r.split("|")[1]): r for r in text.splitlines() if r.rstrip().endswith(("kept |", "removed |"))}
    assert len(rows) == 6
    for block in range(6):
        if block in first:
            score = second_scores.scores[first.index(block)]
            assert f"{score:.4f}" in rows[block]
        else:
            assert "n/a" in rows[block] and rows[block].rstrip().endswith("removed |")
    assert plot_block_scores(record, tmp_path / "p.png").stat().st_size > 5000


def test_cards_name_real_repos_only(tmp_path):
    from huggingface_hub import ModelCard

    from gardener_hf.hub import prune_and_publish

    dry = prune_and_publish(None, keep=[3], output_dir=tmp_path / "a", dry_run=True, progress=False)[0].staged
    card = ModelCard.load(dry.folder / "README.md")
    assert card.data.base_model is None and card.data.license == "apache-2.0"
    assert "`gardener_hf/default_model` with **3 of its 12" in card.text and "huggingface.co/gardener_hf" not in card.text
    assert 'from_pretrained("default_model-gardener-keep3")' in card.text and "local/" not in card.text
    named = prune_and_publish(None, keep=[3], repo_id="me/{name}-{keep}", output_dir=tmp_path / "b", dry_run=True,
                              progress=False)[0].staged
    assert 'from_pretrained("me/default_model-3")' in (named.folder / "README.md").read_text()
