"""The masked self-supervised ViT family beyond VideoMAE / ViTMAE / ViT: DINOv2 (with registers), DINOv3,
BEiT, data2vec-vision, I-JEPA, V-JEPA 2, ViT-MSN and DeiT.

Every class is built tiny and random here, saved in the Hub's key form by `save_pretrained`, pruned through
the command line, and reloaded by plain transformers in a process that never imports gardener_hf.
(Equality with deleted blocks, exact tensors and streaming scores are parametrised over every class in
test_surgery.py, test_exact_tensors.py and test_scoring.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import FAMILY_CLASSES, main_output, make_inputs, make_model, save_with_processor, tiny_config
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from gardener_hf import make_plan, prune_model, score_model, score_pretrained
from gardener_hf.arch import get_arch, get_blocks
from gardener_hf.cli import main
from gardener_hf.errors import PlanError
from gardener_hf.hub.cards import build_card
from gardener_hf.stats import cost_summary
from gardener_hf.surgery import apply_plan

RELOAD_ALL = textwrap.dedent(
    """
    import json, sys, warnings
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    reports = {}
    for folder, name in json.loads(sys.argv[1]):
        cls = getattr(transformers, name)
        data = load_file(folder + "/expected.safetensors")
        want = data.pop("want")
        model, info = cls.from_pretrained(folder, output_loading_info=True)
        with torch.no_grad():
            out = model.eval()(**data)
        got = next(getattr(out, k) for k in ("logits", "reconstruction", "last_hidden_state") if getattr(out, k, None) is not None)
        reports[name] = {
            "info": {k: sorted(v) for k, v in info.items() if k != "error_msgs"},
            "equal": bool(torch.equal(got, want)),
            "num_hidden_layers": AutoConfig.from_pretrained(folder).num_hidden_layers,
        }
    reports["gardener_modules"] = sorted(m for m in sys.modules if m.startswith("gardener"))
    print("REPORT " + json.dumps(reports))
    """
)


def test_every_family_class_reloads_with_plain_transformers(tmp_path, capsys):
    jobs = []
    for name in FAMILY_CLASSES:
        folder = tmp_path / name.replace("+", "-")
        src = save_with_processor(make_model(name), folder / "src")
        out = folder / "pruned"
        assert main(["prune", str(src), "--keep", "4", "--output-dir", str(out), "-q"]) == 0, capsys.readouterr().err
        config = json.loads((out / "config.json").read_text())
        assert config["num_hidden_layers"] == 4 and config["architectures"] == [name.partition("+")[0]]
        assert len(config["gardener"]["kept_blocks"]) == 4
        from gardener_hf.checkpoint import load_model

        pruned = load_model(str(out))
        inputs = make_inputs(pruned, seed=1)
        with torch.no_grad():
            want = main_output(pruned(**inputs)).contiguous()
        save_file({**inputs, "want": want}, str(out / "expected.safetensors"))
        jobs.append((str(out), name.partition("+")[0]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", RELOAD_ALL, json.dumps(jobs)], capture_output=True, text=True,
                            env=env, cwd=str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert reports.pop("gardener_modules") == []
    for folder, name in jobs:
        report = reports[name]
        assert report["info"] == {"missing_keys": [], "mismatched_keys": [], "unexpected_keys": []}, name
        assert report["equal"] and report["num_hidden_layers"] == 4, name
    for noise in ("newly initialized", "were not used", "not initialized", "MISSING", "UNEXPECTED"):
        assert noise not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    "name, spelled",
    [
        ("Dinov2Model", "encoder.layer.0.attention.attention.query.weight"),
        ("Dinov2Model+swiglu", "encoder.layer.0.mlp.weights_in.weight"),  # gate and up fused on the Hub
        ("DINOv3ViTModel", "layer.0.mlp.up_proj.weight"),  # no `model.` prefix on the Hub
        ("DINOv3ViTModel+gated", "layer.0.mlp.gate_proj.weight"),
        ("BeitForImageClassification", "beit.encoder.layer.0.intermediate.dense.weight"),
        ("VJEPA2ForVideoClassification", "vjepa2.encoder.layer.0.attention.proj.weight"),
    ],
)
def test_scores_stream_from_the_hub_spelling(name, spelled, tmp_path):
    model = make_model(name)
    model.save_pretrained(tmp_path / "m")
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert spelled in set(f.keys())
    assert score_pretrained(str(tmp_path / "m"), progress=False).scores == score_model(model, progress=False).scores


def test_a_gated_mlp_is_scored_as_the_hubs_fused_matrix(tmp_path):
    from safetensors.torch import load_file

    from gardener_hf.arch import block_matrices

    model = make_model("Dinov2Model+swiglu")
    model.save_pretrained(tmp_path / "m")
    hub = load_file(str(tmp_path / "m" / "model.safetensors"))
    for i, block in enumerate(get_blocks(model)):  # [gate; up] in memory is weights_in on the Hub, row for row
        assert torch.equal(block_matrices(model, block)["fc1"], hub[f"encoder.layer.{i}.mlp.weights_in.weight"])


def test_negative_and_named_taps_follow_the_kept_blocks(tmp_path):
    import transformers

    config = tiny_config("Dinov2Model")
    config.set_output_features_output_indices(out_features=["stage2", "stage6"], out_indices=None)
    model = transformers.Dinov2Model(config)
    apply_plan(model, make_plan(num_blocks=6, remove=[0, 5]))  # kept 1..4: stage 2 -> 1, stage 6 (block 5) dropped
    assert model.config.out_indices == [1]
    config = tiny_config("Dinov2Model")
    config.set_output_features_output_indices(out_features=None, out_indices=[-1])
    model = transformers.Dinov2Model(config)
    apply_plan(model, make_plan(num_blocks=6, remove=[5]))
    assert model.config.out_features == ["stage5"]  # -1 still names the last stage
    model.save_pretrained(tmp_path / "p")
    assert transformers.Dinov2Backbone.from_pretrained(tmp_path / "p").config.out_features == ["stage5"]


def test_a_beit_with_fpn_taps_kept_prunes_and_gets_a_card():
    import transformers

    config = tiny_config("BeitModel")
    config.add_fpn, config.out_indices = True, [2, 3, 4, 6]
    model = transformers.BeitModel(config).eval()
    prune_model(model, remove=[4])
    assert model.config.out_indices == [2, 3, 4, 5]
    assert "5 of its 6 transformer blocks" in build_card(model, repo_id="me/b", command="gardener ...").text


def test_a_gated_mlp_scores_gate_and_up_together():
    model = make_model("Dinov2Model+swiglu")
    before = score_model(model, progress=False).scores
    with torch.no_grad():
        get_blocks(model)[2].mlp.gate_proj.weight.mul_(5)  # only half of fc1 changes
    after = score_model(model, progress=False).scores
    assert after[2] != before[2] and after[:2] == before[:2] and after[3:] == before[3:]


@pytest.mark.parametrize("name", ["BeitForImageClassification", "Data2VecVisionModel", "VJEPA2ForVideoClassification"])
def test_drop_path_rates_are_those_from_pretrained_builds(name, tmp_path):
    """Depth-dependent drop-path schedules: the pruned model in memory is the model its files load as."""
    model = make_model(name)
    model.config.drop_path_rate = 0.3
    model = type(model)(model.config).eval()  # rebuilt so its schedule spans 0..0.3 over 6 blocks
    apply_plan(model, make_plan(num_blocks=6, remove=[0, 2, 3]))
    model.save_pretrained(tmp_path / "p")
    reloaded = type(model).from_pretrained(tmp_path / "p")

    def rates(m):
        return [getattr(b.drop_path, "drop_prob", 0.0) for b in get_blocks(m)]

    assert rates(model) == rates(reloaded) and len(set(rates(model))) == 3
    assert not any(m.training for b in get_blocks(model) for m in b.modules())  # still in eval mode


def test_backbone_taps_follow_the_kept_blocks(tmp_path):
    import transformers

    config = tiny_config("Dinov2Model")
    config.set_output_features_output_indices(out_features=None, out_indices=[2, 4, 6])
    model = transformers.Dinov2Model(config)
    apply_plan(model, make_plan(num_blocks=6, remove=[0, 2]))  # kept 1, 3, 4, 5: stage 2 -> 1, 4 -> 2, 6 -> 4
    assert model.config.out_indices == [1, 2, 4] and model.config.stage_names[-1] == "stage4"
    model.save_pretrained(tmp_path / "p")
    assert transformers.Dinov2Backbone.from_pretrained(tmp_path / "p").config.out_features == ["stage1", "stage2", "stage4"]


def test_fpn_taps_of_removed_blocks_are_refused_and_nothing_changes():
    import transformers

    config = tiny_config("BeitModel")
    config.add_fpn, config.out_indices = True, [2, 3, 4, 6]
    model = transformers.BeitModel(config)
    with pytest.raises(PlanError, match=r"add_fpn=True.*keep blocks \[1, 2, 3, 5\]"):
        apply_plan(model, make_plan(num_blocks=6, remove=[2]))
    assert len(get_blocks(model)) == 6 and model.config.num_hidden_layers == 6 and model.config.out_indices == [2, 3, 4, 6]


def test_a_stored_layer_idx_is_renumbered():
    model = make_model("DINOv3ViTModel")
    for i, block in enumerate(get_blocks(model)):
        block.attention.layer_idx = i
    prune_model(model, remove=[0, 1, 4])
    assert [b.attention.layer_idx for b in get_blocks(model)] == [0, 1, 2]


# The Hub's pipeline tag of each class, written out here.
PIPELINE_TAGS = {
    "Dinov2Model": "image-feature-extraction", "Dinov2ForImageClassification": "image-classification",
    "DINOv3ViTModel": "image-feature-extraction", "BeitModel": "image-feature-extraction",
    "BeitForMaskedImageModeling": None, "Data2VecVisionForImageClassification": "image-classification",
    "IJepaModel": "image-feature-extraction", "VJEPA2Model": None,
    "VJEPA2ForVideoClassification": "video-classification", "DeiTForImageClassificationWithTeacher": "image-classification",
    "ViTMSNForImageClassification": "image-classification",
}


@pytest.mark.parametrize("name", sorted(PIPELINE_TAGS))
def test_card_names_the_class_and_pipeline(name):
    model = make_model(name)
    prune_model(model, score_model(model, progress=False), keep=3)
    card = build_card(model, repo_id=f"me/{name.lower()}-keep3", command="gardener prune ...")
    data = card.data.to_dict()
    assert data.get("pipeline_tag") == PIPELINE_TAGS[name]
    assert get_arch(model).model_type in data["tags"] and ("video" in data["tags"]) == name.startswith("VJEPA2")
    assert f"from transformers import {name}" in card.text and "3 of its 6 transformer blocks" in card.text


# Classes whose forward is patch embedding + blocks + (a linear head): what `encoder_flops` counts.
FLOP_CLASSES = ["Dinov2Model", "Dinov2Model+swiglu", "Dinov2ForImageClassification",
                "Dinov2WithRegistersForImageClassification", "DINOv3ViTModel", "DINOv3ViTModel+gated",
                "BeitForImageClassification", "Data2VecVisionForImageClassification", "IJepaModel",
                "IJepaForImageClassification", "ViTMSNForImageClassification", "DeiTForImageClassification",
                "DeiTForImageClassificationWithTeacher"]


@pytest.mark.parametrize("name", FLOP_CLASSES)
def test_flops_match_torch_flop_counter(name):
    import transformers

    config = tiny_config(name)
    config._attn_implementation = "eager"  # the counter sees the attention matmuls only when eager (data2vec
    model = getattr(transformers, name.partition("+")[0])(config).eval()  # picks its attention class when built)
    inputs = make_inputs(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs)
    macs_per_input = counter.get_total_flops() / 2 / inputs["pixel_values"].shape[0]
    assert cost_summary(model, 6)["gflops"] * 1e9 == pytest.approx(macs_per_input, rel=1e-12)


def test_card_counts_flops_at_the_processors_crop_not_the_position_grid(tmp_path, capsys):
    """DINOv2 configs say image_size 518 (their position grid); their processors crop 224. Tiny: 64 vs 32."""
    import transformers

    config = tiny_config("Dinov2Model")
    config.image_size = 64
    src = tmp_path / "src"
    transformers.Dinov2Model(config).save_pretrained(src)
    transformers.BitImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}).save_pretrained(src)
    from gardener_hf.hub.cards import processor_input_size

    assert processor_input_size(src) == (32, 32)
    assert main(["push", str(src), "--keep", "3", "--dry-run", "--output-dir", str(tmp_path / "out"), "-q"]) == 0
    card = next((tmp_path / "out").glob("*/README.md")).read_text()
    assert "GFLOPs per input (32x32, 17 tokens)" in card  # 4x4 patches of 8 px + [CLS]
