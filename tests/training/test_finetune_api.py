"""The Python finetuning API: `finetune(model, train_set, eval_set, training_args)` on objects you built."""

from __future__ import annotations

import json

import pytest
from transformers import VideoMAEForVideoClassification

from gardener_hf import score_model
from gardener_hf.checkpoint import load_classifier, load_processor
from gardener_hf.constants import EMBEDDED_DEFAULT, EVAL_FILE, REPORT_FILE
from gardener_hf.errors import GardenerError
from gardener_hf.surgery import PruningRecord, prune_model
from gardener_hf.training import ClipConfig, FinetuneSettings, build_datasets, default_training_args, finetune
from gardener_hf.training.finetuning import finetune_checkpoint


def _args(output_dir, **kw):
    return default_training_args(
        str(output_dir), max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=4, logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True, save_strategy="no", learning_rate=1e-3, **kw,
    )


def test_finetune_takes_objects_and_writes_a_loadable_model(videos, tmp_path):
    model = load_classifier(EMBEDDED_DEFAULT, ["down", "left", "right", "up"])
    prune_model(model, score_model(model, progress=False), keep=4)
    processor = load_processor(EMBEDDED_DEFAULT, model.config)
    clips = ClipConfig(frame_stride=1)
    train, evaluation, labels, _ = build_datasets(videos["train"], videos["eval"], model.config, processor, clips,
                                                  progress=False)
    result = finetune(model, train, evaluation, _args(tmp_path / "run"), processor=processor, report={"model": "mine"})
    assert result.report["global_step"] == 2 and result.report["model"] == "mine" and result.is_main_process
    assert result.metrics["num_samples"] == len(evaluation) == 8 and 0.0 <= result.metrics["top1"] <= 1.0
    saved = VideoMAEForVideoClassification.from_pretrained(tmp_path / "run")
    assert saved.config.num_hidden_layers == 4 and PruningRecord.load(tmp_path / "run").num_kept == 4
    assert json.loads((tmp_path / "run" / EVAL_FILE).read_text())["metrics"]["top1"] == result.metrics["top1"]
    assert json.loads((tmp_path / "run" / REPORT_FILE).read_text())["labels"] == labels
    assert (tmp_path / "run" / "preprocessor_config.json").exists()


def test_finetune_checkpoint_checks_settings_by_name(videos, tmp_path):
    settings = FinetuneSettings(train_data=videos["train"], training_args=_args(tmp_path / "o"), clips=ClipConfig(hflip="x"))
    with pytest.raises(GardenerError, match="hflip 'x'"):
        finetune_checkpoint(EMBEDDED_DEFAULT, settings)
    settings = FinetuneSettings(train_data=videos["train"], training_args=_args(tmp_path / "o"), recipe="fast")
    with pytest.raises(GardenerError, match="recipe 'fast'"):
        finetune_checkpoint(EMBEDDED_DEFAULT, settings)
    assert not (tmp_path / "o").exists()


def test_videos_shorter_than_a_clip_are_warned_about_and_reported(videos, tmp_path, caplog):
    from gardener_hf.data import count_frames
    from gardener_hf.research.synthetic import make_digit_dataset
    from gardener_hf.training.finetuning import data_report

    model = load_classifier(EMBEDDED_DEFAULT, ["down", "left", "right", "up"])
    processor = load_processor(EMBEDDED_DEFAULT, model.config)
    with caplog.at_level("WARNING"):
        _, _, _, reports = build_datasets(videos["train"], None, model.config, processor, ClipConfig(frame_stride=4),
                                          progress=False)
    assert "than a clip spans (16 frames x stride 4 = 64)" in caplog.text
    check = data_report(reports["train"])["clip_check"]
    assert check["frames_per_clip"] == 64 and check["shorter_than_clip"] == check["checked"] > 0
    assert check["fewest_frames"] == 16
    caplog.clear()
    with caplog.at_level("WARNING"):
        _, _, _, reports = build_datasets(videos["train"], None, model.config, processor, ClipConfig(frame_stride=1),
                                          progress=False)
    assert "clip spans" not in caplog.text and reports["train"].clip_check["shorter_than_clip"] == 0
    # the generator's default is long enough for the default sampling (16 frames at stride 4)
    root = make_digit_dataset(tmp_path / "digits", videos_per_class=1)
    assert {count_frames(str(p)) for p in root.rglob("*.mp4")} == {64}
