"""Surgery: the pruned model is exactly the source with those blocks deleted, and reloads with plain
transformers (concrete class, Auto class, pipeline) to identical outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ALL_CLASSES, NUM_BLOCKS, main_output, make_inputs, make_model, save_with_processor
from safetensors.torch import load_file, save_file

from gardener_hf import make_plan, prune_model, score_model
from gardener_hf.arch import get_blocks
from gardener_hf.errors import PlanError
from gardener_hf.checkpoint import copy_processor_files
from gardener_hf.constants import PRUNING_FILE
from gardener_hf.surgery import apply_plan, save_pruned


# Where each supported class keeps its encoder blocks in memory, written out here, not asked of gardener_hf.
MEMORY_BLOCKS = re.compile(r"^((?:[a-z0-9_]+\.)?(?:encoder\.layer|layers)|model\.layer)\.(\d+)\.(.*)$")


def reference_pruned(model: torch.nn.Module, kept: list[int]) -> torch.nn.Module:
    """Build the smaller model from scratch and copy weights by renaming keys: no gardener code involved."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.num_hidden_layers = len(kept)
    for taps in ("out_features", "out_indices", "stage_names"):  # a backbone's taps refer to the old depth
        config.__dict__.pop(taps, None)
        config.__dict__.pop(f"_{taps}", None)
    ref = type(model)(config).eval()
    state = {}
    for key, value in model.state_dict().items():
        match = MEMORY_BLOCKS.match(key)
        if match is None:
            state[key] = value
        elif int(match.group(2)) in kept:
            state[f"{match.group(1)}.{kept.index(int(match.group(2)))}.{match.group(3)}"] = value
    ref.load_state_dict(state, strict=True)
    return ref


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_pruned_equals_deleted_blocks(name):
    model = make_model(name)
    scores = score_model(model, progress=False)
    plan = make_plan(scores, keep=3)
    inputs = make_inputs(model)
    reference = reference_pruned(model, plan.kept)
    decoder_before = sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder"))
    apply_plan(model, plan)
    assert len(get_blocks(model)) == 3 and model.config.num_hidden_layers == 3
    assert sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder")) == decoder_before
    with torch.no_grad():
        got, want = main_output(model(**inputs)), main_output(reference(**inputs))
    assert torch.equal(got, want)


def test_kept_blocks_keep_order_and_record():
    model = make_model("VideoMAEForVideoClassification")
    blocks = list(get_blocks(model))
    plan = prune_model(model, remove=[4, 1])
    assert plan.kept == [0, 2, 3, 5] and plan.removed == [1, 4]
    assert [id(b) for b in get_blocks(model)] == [id(blocks[i]) for i in plan.kept]
    record = model.config.gardener
    assert record["kept_blocks"] == [0, 2, 3, 5] and record["source_num_blocks"] == NUM_BLOCKS


def test_pruning_twice_composes_indices():
    model = make_model("ViTModel")
    prune_model(model, remove=[0, 1])  # kept 2..5
    prune_model(model, remove=[1])  # drops original block 3
    assert model.config.gardener["kept_blocks"] == [2, 4, 5]
    assert model.config.gardener["removed_blocks"] == [0, 1, 3]
    assert model.config.gardener["history"][0]["kept_blocks"] == [2, 3, 4, 5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keep": 0}, "keep must be between 1 and 6"),
        ({"keep": 7}, "keep must be between 1 and 6"),
        ({"remove": [0, 1, 2, 3, 4, 5]}, "at least one"),
        ({"remove": [6]}, "below 6"),
        ({"remove": [1, 1]}, "twice"),
        ({"remove_ratio": 1.0}, r"\[0, 1\)"),
        ({"keep": 2, "remove": [1]}, "exactly one"),
    ],
)
def test_bad_plans(kwargs, message):
    scores = score_model(make_model("ViTModel"), progress=False)
    with pytest.raises(PlanError, match=message):
        make_plan(scores, **kwargs)


def test_remove_ratio_rounds():
    scores = score_model(make_model("ViTModel"), progress=False)
    assert make_plan(scores, remove_ratio=0.5).num_kept == 3
    assert make_plan(scores, remove_ratio=0.0).num_kept == 6


RELOAD = textwrap.dedent(
    """
    import json, sys, warnings, logging
    import torch
    from safetensors.torch import load_file
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification, AutoModelForImageClassification, AutoModelForPreTraining
    path, cls_name, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    expected = load_file(path + "/../expected.safetensors")
    cls = getattr(transformers, cls_name)
    report = {}
    model, info = cls.from_pretrained(path, output_loading_info=True)
    report["info"] = {k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs"}
    out = model.eval()(**{k: v for k, v in expected.items() if k != "want"})
    value = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    report["concrete_equal"] = bool(torch.equal(value, expected["want"]))
    auto = {"video": AutoModelForVideoClassification, "image": AutoModelForImageClassification, "pretraining": AutoModelForPreTraining}.get(kind, AutoModel)
    amodel = auto.from_pretrained(path).eval()
    aout = amodel(**{k: v for k, v in expected.items() if k != "want"})
    avalue = aout.logits if getattr(aout, "logits", None) is not None else aout.last_hidden_state
    report["auto_class"] = type(amodel).__name__
    report["auto_equal"] = bool(torch.equal(avalue, expected["want"]))
    report["num_hidden_layers"] = AutoConfig.from_pretrained(path).num_hidden_layers
    report["gardener_modules"] = sorted(m for m in sys.modules if m.startswith("gardener"))
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("VideoMAEForVideoClassification", "video"),
        ("VideoMAEForPreTraining", "pretraining"),
        ("ViTForImageClassification", "image"),
        ("ViTMAEForPreTraining", "pretraining"),
    ],
)
def test_saved_model_reloads_with_plain_transformers(name, kind, tmp_path):
    source = save_with_processor(make_model(name), tmp_path / "source")
    from gardener_hf.checkpoint import load_model

    model = load_model(str(source))
    plan = prune_model(model, score_model(model, progress=False), keep=4)
    out = save_pruned(model, tmp_path / "pruned")
    copied = copy_processor_files(str(source), out)
    assert copied == ["preprocessor_config.json"]
    inputs = make_inputs(model, seed=1)
    with torch.no_grad():
        want = main_output(model(**inputs))
    save_file({**inputs, "want": want.contiguous()}, str(tmp_path / "expected.safetensors"))

    record = json.loads((out / PRUNING_FILE).read_text())
    config = json.loads((out / "config.json").read_text())
    assert record["kept_blocks"] == plan.kept == config["gardener"]["kept_blocks"]
    assert config["num_hidden_layers"] == 4 and config["architectures"] == [name]
    assert len(record["scores"]) == NUM_BLOCKS and record["criterion"] == "entropy"
    keys = load_file(str(out / "model.safetensors")).keys()
    if name.startswith("VideoMAE"):
        assert any(k.endswith("attention.attention.q_bias") for k in keys)  # Hub legacy form
        if name == "VideoMAEForPreTraining":
            assert any(k.startswith("decoder.decoder_layers.1.") for k in keys)
    assert not any("layer.4." in k or "layers.4." in k for k in keys if not k.startswith("decoder"))

    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    import os

    env = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(out), name, kind], capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert report["info"] == {"missing_keys": [], "mismatched_keys": [], "unexpected_keys": []}
    assert report["concrete_equal"] and report["auto_equal"]
    assert report["num_hidden_layers"] == 4
    assert report["gardener_modules"] == []
    for noise in ("newly initialized", "were not used", "not initialized", "MISSING", "UNEXPECTED"):
        assert noise not in result.stderr, result.stderr[-2000:]


def test_save_pruned_copies_the_processor_of_the_folder_it_was_loaded_from(tiny_videomae_dir, tmp_path):
    from gardener_hf.checkpoint import load_model as load

    model = load(str(tiny_videomae_dir))
    prune_model(model, score_model(model, progress=False), keep=2)
    save_pruned(model, tmp_path / "a")
    assert (tmp_path / "a" / "preprocessor_config.json").read_bytes() == (
        tiny_videomae_dir / "preprocessor_config.json").read_bytes()
    save_pruned(model, tmp_path / "b", source="")
    assert not (tmp_path / "b" / "preprocessor_config.json").exists()
    from transformers import pipeline

    assert pipeline("video-classification", model=str(tmp_path / "a")).model.config.num_hidden_layers == 2


def test_a_full_disk_while_writing_weights_is_one_line_and_leaves_nothing(tiny_videomae_dir, tmp_path, monkeypatch, capsys):
    import errno

    import transformers.modeling_utils

    from gardener_hf.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[1]) if len(args) > 1 else None)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)  # what save_pretrained writes with
    out = tmp_path / "out"
    assert main(["prune", str(tiny_videomae_dir), "--keep", "2", "--output-dir", str(out), "-q"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "no space left on the device" in line
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))
