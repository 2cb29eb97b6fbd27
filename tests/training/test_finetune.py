"""Finetune / evaluate with transformers.Trainer on generated videos: plain checkpoints out, correct
reloads of Trainer checkpoints, resume after a kill, bad input, multi-clip evaluation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import FAST, REPO
from transformers import VideoMAEForVideoClassification

from gardener_hf.cli import main
from gardener_hf.cli.finetune import main as finetune_main
from gardener_hf.cli.finetune import parse_finetune_args
from gardener_hf.training import load_checkpoint_weights, resolve_training_args
from gardener_hf.research.synthetic import make_motion_dataset

LABELS = ["down", "left", "right", "up"]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_finetune_prunes_on_the_fly_and_saves_a_plain_checkpoint(videos, tmp_path, capsys):
    out = tmp_path / "run"
    rc = finetune_main([
        "--train-dir", str(videos["train"]), "--eval-dir", str(videos["eval"]), "--output-dir", str(out),
        "--keep", "4", "--max-steps", "6", "--save-steps", "3", "--eval-steps", "3", *FAST,
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "top-1 accuracy" in printed and "saved to" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 4 and config["use_mean_pooling"] is True
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["gardener"]["source_model"] == "gardener_hf/default_model" and len(config["gardener"]["kept_blocks"]) == 4
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["global_step"] == 6 and report["data"]["train"]["used"] == 12 and report["data"]["eval"]["used"] == 8
    assert report["hyperparameters"]["hflip"] == "auto"  # resolved off: the labels name left/right
    results = json.loads((out / "eval_results.json").read_text())["metrics"]
    assert results["num_samples"] == 8 and 0 <= results["top1"] <= results["top5"] <= 1
    assert sum(map(sum, results["confusion_matrix"])) == 8
    for name in ("training_curve.png", "confusion_matrix.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    # The saved model is the best checkpoint, every weight of it (q/v biases included).
    saved = VideoMAEForVideoClassification.from_pretrained(out)
    best = VideoMAEForVideoClassification.from_pretrained(report["best_checkpoint"])
    for key, value in _state(best).items():
        assert torch.equal(saved.state_dict()[key], value), key


def test_checkpoint_reload_restores_attention_biases(tmp_path):
    model = VideoMAEForVideoClassification.from_pretrained(REPO / "gardener_hf" / "default_model")
    model.save_pretrained(tmp_path)  # legacy key form on disk: q_bias / v_bias
    want = _state(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    load_checkpoint_weights(model, tmp_path)
    got = _state(model)
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_paper_recipe_and_defaults():
    model_args, _, clips, args = parse_finetune_args(["m", "--train-dir", "d", "--output-dir", "o", "--recipe", "paper",
                                                      "--per-device-train-batch-size", "16"])
    assert model_args.model == "m" and args.learning_rate == 1e-3 and args.weight_decay == 0.05
    assert clips.sampling == "start" and clips.frame_stride == 4
    args = resolve_training_args(args, has_eval=True, recipe=model_args.recipe)
    assert args.gradient_accumulation_steps * args.per_device_train_batch_size * max(1, args.world_size) == 64
    assert args.metric_for_best_model == "top1" and args.load_best_model_at_end
    _, _, _, default = parse_finetune_args(["--train-dir", "d", "--output-dir", "o", "--learning-rate", "3e-4"])
    assert default.learning_rate == 3e-4 and default.lr_scheduler_type == "cosine" and default.report_to in ([], "none", ["none"])


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        ("empty", [], "no class subfolders"),
        ("class-without-videos", [], "hold no videos"),
        ("checkpoints", [], "--resume"),
        (None, ["--recipe", "fast"], "--recipe 'fast'"),
        (None, ["--hflip", "maybe"], "--hflip 'maybe'"),
    ],
)
def test_bad_input_is_one_line(videos, tmp_path, setup, extra, message, capsys):
    train = videos["train"]
    out = tmp_path / "out"
    if setup == "empty":
        train = tmp_path / "empty"
        train.mkdir()
    elif setup == "class-without-videos":
        train = tmp_path / "t"
        make_motion_dataset(train, videos_per_class=1, num_frames=8, size=32, seed=0, classes=("left", "right"))
        (train / "up").mkdir()
    elif setup == "checkpoints":
        (out / "checkpoint-2").mkdir(parents=True)
        (out / "checkpoint-2" / "model.safetensors").write_bytes(b"")
    rc = finetune_main(["--train-dir", str(train), "--output-dir", str(out), "--max-steps", "1", *FAST, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_not_a_videomae(tmp_path, capsys):
    from conftest import make_model, save_with_processor

    folder = save_with_processor(make_model("ViTForImageClassification"), tmp_path / "vit")
    rc = finetune_main([str(folder), "--train-dir", str(tmp_path), "--output-dir", str(tmp_path / "o"), *FAST])
    assert rc == 2 and "supports VideoMAE" in capsys.readouterr().err


def test_evaluate_command_with_several_clips(videos, tmp_path, capsys):
    run = tmp_path / "run"
    assert finetune_main(["--train-dir", str(videos["train"]), "--output-dir", str(run), "--max-steps", "2",
                          "--save-steps", "2", *FAST]) == 0
    capsys.readouterr()
    report = tmp_path / "report"
    rc = main(["evaluate", str(run), str(videos["eval"]), "--clips", "2", "--num-workers", "0", "--output-dir",
               str(report), "-q"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "top-1 accuracy" in printed and "samples" in printed
    doc = json.loads((report / "eval_results.json").read_text())
    assert doc["metrics"]["num_samples"] == 8 and len(doc["metrics"]["confusion_matrix"]) == 4
    assert (report / "confusion_matrix.png").exists()
    # Not a classifier: a clear error.
    from conftest import make_model, save_with_processor

    encoder = save_with_processor(make_model("VideoMAEModel"), tmp_path / "encoder")
    assert main(["evaluate", str(encoder), str(videos["eval"]), "-q"]) == 2
    assert "not a VideoMAEForVideoClassification" in capsys.readouterr().err


SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from transformers import TrainerCallback
    from gardener_hf.cli.finetune import main

    class Slow(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(0.4)

    sys.exit(main(sys.argv[1:], callbacks=[Slow()]))
    """
)


def test_resume_after_kill_matches_uninterrupted_run(videos, tmp_path):
    common = ["--train-dir", str(videos["train"]), "--max-steps", "8", "--save-steps", "2", "--seed", "3", *FAST]
    whole = tmp_path / "whole"
    assert finetune_main([*common, "--output-dir", str(whole)]) == 0

    killed = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", SLOW_RUN, *common, "--output-dir", str(killed)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint-4" / "trainer_state.json").exists():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint-4 appeared"
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (killed / "checkpoint-8").exists() and not (killed / "model.safetensors").exists()

    assert finetune_main([*common, "--output-dir", str(killed), "--resume"]) == 0
    state = json.loads((killed / "checkpoint-8" / "trainer_state.json").read_text())
    want = json.loads((whole / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == want["global_step"] == 8
    losses = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    want_losses = {e["step"]: e["loss"] for e in want["log_history"] if "loss" in e}
    assert sorted(losses) == sorted(want_losses) == list(range(1, 9))
    # Same data order and augmentation after the resume: the losses of the resumed steps agree.
    for step in range(5, 9):
        assert losses[step] == pytest.approx(want_losses[step], rel=1e-4, abs=1e-5), step
    a = VideoMAEForVideoClassification.from_pretrained(killed).state_dict()
    b = VideoMAEForVideoClassification.from_pretrained(whole).state_dict()
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_split_folders_train_on_train_and_evaluate_on_validation(tmp_path):
    from transformers import VideoMAEConfig, VideoMAEImageProcessor

    from gardener_hf.training import build_datasets

    make_motion_dataset(tmp_path / "ucf" / "train", videos_per_class=2, num_frames=8, size=32, seed=0)
    make_motion_dataset(tmp_path / "ucf" / "val", videos_per_class=1, num_frames=8, size=32, seed=1)
    config = VideoMAEConfig(image_size=32, num_frames=4)
    processor = VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    train, evaluation, labels, _ = build_datasets(str(tmp_path / "ucf"), str(tmp_path / "ucf"), config, processor, progress=False)
    assert labels == LABELS and len(train) == 8 and len(evaluation) == 4
    assert all("/val/" in item.path for item in evaluation.items)
