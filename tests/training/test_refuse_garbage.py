"""Finetune and evaluate refuse garbage: non-finite weights, a diverging loss, a missing head, zero steps."""

from __future__ import annotations

import pytest
import torch
from conftest import FAST, REPO
from safetensors.torch import load_file, save_file
from transformers import VideoMAEForVideoClassification

from gardener_hf.cli import main

DEFAULT = REPO / "gardener_hf" / "default_model"


def _classifier(tmp_path, name="clf"):
    """The embedded default with a 4-way head, saved as a finetuned classifier would be."""
    model = VideoMAEForVideoClassification.from_pretrained(
        DEFAULT, num_labels=4, id2label={0: "down", 1: "left", 2: "right", 3: "up"},
        label2id={"down": 0, "left": 1, "right": 2, "up": 3}, use_mean_pooling=True)
    folder = tmp_path / name
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_bytes((DEFAULT / "preprocessor_config.json").read_bytes())
    return folder


def _edit_weights(folder, fn):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    fn(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress bars of loading may come first
    assert last.startswith("error: ") and fragment in last and "Traceback" not in err, err
    return last


def test_finetune_refuses_non_finite_weights(videos, tmp_path, capsys):
    source = _classifier(tmp_path)
    _edit_weights(source, lambda t: t["videomae.encoder.layer.3.output.dense.weight"].fill_(float("nan")))
    out = tmp_path / "out"
    assert main(["finetune", str(source), "--train-dir", str(videos["train"]), "--output-dir", str(out),
                 "--max-steps", "1", *FAST]) == 2
    _one_line_error(capsys, "non-finite weights (NaN or inf) in 1 tensor(s)")
    assert not (out / "model.safetensors").exists()


def test_a_diverging_loss_stops_training_and_saves_nothing(videos, tmp_path, capsys):
    source = _classifier(tmp_path)

    def blow_up(tensors):  # finite weights whose attention logits overflow: the loss becomes NaN
        for role in ("query", "key"):
            tensors[f"videomae.encoder.layer.0.attention.attention.{role}.weight"].fill_(1e20)

    _edit_weights(source, blow_up)
    out = tmp_path / "out"
    assert main(["finetune", str(source), "--train-dir", str(videos["train"]), "--output-dir", str(out),
                 "--max-steps", "3", "--save-strategy", "no", *[a for a in FAST if a not in ("--save-strategy", "steps")]]) == 2
    _one_line_error(capsys, "training loss became nan")
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("flag, value", [("--max-steps", "0"), ("--num-train-epochs", "0")])
def test_zero_steps_are_refused_before_anything_runs(videos, tmp_path, capsys, flag, value):
    out = tmp_path / "out"
    assert main(["finetune", "--train-dir", str(videos["train"]), "--output-dir", str(out), flag, value, *FAST]) == 2
    _one_line_error(capsys, f"{flag} {value}")
    assert not out.exists()


def test_evaluate_refuses_a_nan_head_and_a_missing_head(videos, tmp_path, capsys):
    nan_head = _classifier(tmp_path, "nan-head")
    _edit_weights(nan_head, lambda t: t["classifier.weight"].fill_(float("nan")))
    assert main(["evaluate", str(nan_head), str(videos["eval"]), "-q"]) == 2
    _one_line_error(capsys, "non-finite weights")
    headless = _classifier(tmp_path, "headless")
    _edit_weights(headless, lambda t: [t.pop(k) for k in [k for k in t if k.startswith("classifier.")]])
    assert main(["evaluate", str(headless), str(videos["eval"]), "-q"]) == 2
    _one_line_error(capsys, "random head")
    good = _classifier(tmp_path, "good")
    assert main(["evaluate", str(good), str(videos["eval"]), "-q", "--frame-stride", "1"]) == 0
    assert "top-1 accuracy" in capsys.readouterr().out
    assert torch.isfinite(load_file(good / "model.safetensors")["classifier.weight"]).all()
