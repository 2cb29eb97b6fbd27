"""Every subcommand keeps the options it had; number options are checked while parsing."""

from __future__ import annotations

import argparse
import re

import pytest

from gardener_hf.cli import COMMANDS, _common, main

SOURCE = {"-h", "--help", "--token", "--quiet", "-q"}
CRITERION = {"--criterion", "--bins", "--seed", "--calibration", "--calibration-samples", "--protect"}
PLAN = {"--keep", "--remove", "--remove-ratio"}
# The options of gardener_hf 0.1's subcommands (finetune: gardener's own; the Trainer's come from transformers).
OPTIONS = {
    "score": SOURCE | CRITERION | {"--revision", "--keep", "--json"},
    "prune": SOURCE | CRITERION | PLAN | {"--revision", "--output-dir", "--overwrite"},
    "push": SOURCE | CRITERION | PLAN | {"--source-revision", "--repo-id", "--private", "--revision", "--create-pr",
                                         "--dry-run", "--output-dir", "--overwrite", "--model-class", "--train-dir",
                                         "--eval-dir"},
    "evaluate": SOURCE | {"--revision", "--output-dir", "--batch-size", "--clips", "--sampling", "--frame-stride",
                          "--num-workers", "--strict"},
    "study": {"-h", "--help", "--revision", "--output-dir", "--overwrite", "--task", "--clip-options", "--train-clips",
              "--val-clips", "--data-seed", "--steps", "--batch-size", "--lr", "--weight-decay", "--warmup-ratio",
              "--seeds", "--removals", "--no-scratch", "--jobs", "--quiet", "--data", "--eval-data", "--val-fraction",
              "--max-per-split", "--image-size", "--oracle", "--probe-fraction"},
}
FINETUNE_OWN = {"--model", "--revision", "--token", "--keep", "--criterion", "--mean_pooling", "--no_mean_pooling",
                "--recipe", "--resume", "--train_dir", "--eval_dir", "--frame_stride", "--sampling", "--eval_sampling",
                "--eval_clips", "--hflip", "--strict", "--output_dir", "--learning_rate", "--num_train_epochs"}
PRETRAIN = {"--output-dir", "--seed", "--steps", "--minutes", "--batch-size", "--lr", "--min-lr", "--warmup-fraction",
            "--weight-decay", "--clip-grad", "--mask-ratio", "--num-frames", "--image-size", "--patch-size",
            "--tubelet-size", "--num-hidden-layers", "--hidden-size", "--num-heads", "--intermediate-size",
            "--decoder-layers", "--decoder-hidden-size", "--decoder-heads", "--decoder-intermediate-size",
            "--num-digits", "--digit-scale", "--digit-speed", "--digit-subset", "--val-clips", "--eval-every",
            "--log-every", "--num-workers", "--threads", "--quiet", "-h", "--help"}


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_each_subcommand_has_its_options(command, capsys):
    text = _help(capsys, command)
    assert text.startswith(f"usage: gardener {command} ")
    assert set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text.split("options:", 1)[1])) >= OPTIONS[command]
    assert set(COMMANDS[command].build_parser()._option_string_actions) == OPTIONS[command]


def test_finetune_and_pretrain_keep_their_options(capsys):
    finetune = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", _help(capsys, "finetune")))
    assert finetune >= FINETUNE_OWN
    assert set(COMMANDS["pretrain"].build_parser()._option_string_actions) == PRETRAIN
    assert _help(capsys, "pretrain").startswith("usage: gardener pretrain ")


def test_top_level_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "{score,prune,push,finetune,study,evaluate,pretrain}" in text


@pytest.mark.parametrize(
    "parser, good, bad",
    [
        (_common.positive_int, {"1": 1, "12": 12}, ["0", "-3", "x", "1.5"]),
        (_common.non_negative_int, {"0": 0, "7": 7}, ["-1", "y"]),
        (_common.integer, {"-2": -2, "0": 0}, ["two", "1e3"]),
        (_common.finite_float, {"0.5": 0.5, "-1": -1.0}, ["nan", "inf", "a"]),
        (_common.int_list, {"1,3,5": (1, 3, 5)}, ["", "1,x"]),
    ],
)
def test_number_parsers_check_what_their_names_say(parser, good, bad):
    for text, value in good.items():
        assert parser(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parser(text)


def test_bad_seed_is_refused_while_parsing(capsys, tiny_videomae_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tiny_videomae_dir), "--criterion", "random", "--seed", "-1"])
    assert exit_info.value.code == 2 and "expected an integer >= 0" in capsys.readouterr().err


def test_pretrain_is_a_subcommand_with_one_line_errors(capsys):
    assert main(["pretrain", "--output-dir", "unused", "--image-size", "30", "--patch-size", "8"]) == 2
    assert capsys.readouterr().err == "error: --image-size 30 must be a multiple of --patch-size 8\n"
