"""Bad input and faults across every command: one `error:` line naming the cause, exit 2, nothing half-written.

Each row: (id, command line with {placeholders}, fragment of the one error line). Placeholders name
files made once for the module (see `world`): {model} a tiny VideoMAE classifier, {out} an output
folder that must not exist afterwards, {existing} a folder that must stay as it was, and broken
checkpoints, data sources and study folders named by what is wrong with them.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from conftest import REPO, make_model, save_with_processor
from safetensors.torch import load_file, save_file

from gardener_hf.cli import main

DEFAULT = REPO / "gardener_hf" / "default_model"
FT = ["--output-dir", "{out}", "--max-steps", "1", "--dataloader-num-workers", "0", "--disable-tqdm", "true"]

CASES = [
    # --- gardener score: numbers and choices
    ("score-keep-word", ["score", "{model}", "--keep", "x"], "argument --keep: 'x' is not a whole number"),
    ("score-keep-float", ["score", "{model}", "--keep", "1.5"], "argument --keep: '1.5' is not a whole number"),
    ("score-keep-0", ["score", "{model}", "--keep", "0"], "keep=0: keep must be between 1 and 6"),
    ("score-keep-neg", ["score", "{model}", "--keep", "-2"], "keep=-2: keep must be between 1 and 6"),
    ("score-keep-big", ["score", "{model}", "--keep", "7"], "keep=7: keep must be between 1 and 6"),
    ("score-default-keep-13", ["score", "--keep", "13"], "keep must be between 1 and 12"),
    ("score-criterion", ["score", "{model}", "--criterion", "nope"], "unknown criterion 'nope'"),
    ("score-bins-1", ["score", "{model}", "--criterion", "entropy-hist", "--bins", "1"], "bins=1"),
    ("score-bins-word", ["score", "{model}", "--bins", "many"], "argument --bins: 'many' is not a whole number"),
    ("score-seed-neg", ["score", "{model}", "--criterion", "random", "--seed", "-1"], "expected an integer >= 0"),
    ("score-seed-word", ["score", "{model}", "--seed", "abc"], "argument --seed"),
    ("score-unknown-option", ["score", "{model}", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    # --- sources: ids, folders, configs
    ("src-missing-folder", ["score", "./no/such/folder"], "neither an existing folder nor a valid Hub repo id"),
    ("src-bad-id", ["score", "a/b/c"], "neither an existing folder nor a valid Hub repo id"),
    ("src-bad-chars", ["score", "bad id!"], "neither an existing folder nor a valid Hub repo id"),
    ("src-no-config", ["score", "{noconfig}"], "config.json not found in folder"),
    ("src-config-not-json", ["score", "{badjson}"], "config.json of"),
    ("src-unsupported-type", ["score", "{bert}"], "model type 'bert' is not supported"),
    ("src-no-weights", ["score", "{noweights}"], "model.safetensors not found"),
    ("src-pickle-only", ["score", "{pickle}"], "only pickled pytorch_model.bin weights"),
    ("src-truncated", ["score", "{truncated}"], "not a readable safetensors file"),
    ("src-nan", ["score", "{nanw}"], "not finite"),
    ("src-index-not-mapping", ["score", "{index_list}"], "model.safetensors.index.json of"),
    ("src-index-not-json", ["score", "{index_json}"], "model.safetensors.index.json of"),
    ("src-missing-matrix", ["score", "{missing_block}"], "block 2 has no query weight"),
    ("src-extra-blocks", ["score", "{extra_block}"], "exist but config.json says num_hidden_layers=5"),
    ("prune-nan", ["prune", "{nanw}", "--keep", "2", "--output-dir", "{out}"], "not finite"),
    ("prune-truncated", ["prune", "{truncated}", "--keep", "2", "--output-dir", "{out}"], "not a readable safetensors"),
    ("prune-pickle", ["prune", "{pickle}", "--keep", "2", "--output-dir", "{out}"], "only pickled pytorch_model.bin"),
    ("prune-unsupported-class", ["push", "{model}", "--keep", "2", "--model-class", "ViTModel", "--dry-run",
                                 "--output-dir", "{out}"], "model class ViTModel is not supported"),
    # --- gardener prune: plans and output folders
    ("prune-no-output", ["prune", "{model}", "--keep", "2"], "the following arguments are required: --output-dir"),
    ("prune-no-plan", ["prune", "{model}", "--output-dir", "{out}"], "one of the arguments --keep --remove --remove-ratio"),
    ("prune-two-plans", ["prune", "{model}", "--keep", "2", "--remove", "1", "--output-dir", "{out}"], "not allowed with"),
    ("prune-keep-0", ["prune", "{model}", "--keep", "0", "--output-dir", "{out}"], "keep must be between 1 and 6"),
    ("prune-keep-7", ["prune", "{model}", "--keep", "7", "--output-dir", "{out}"], "keep must be between 1 and 6"),
    ("prune-keep-word", ["prune", "{model}", "--keep", "two", "--output-dir", "{out}"], "is not a whole number"),
    ("prune-remove-6", ["prune", "{model}", "--remove", "6", "--output-dir", "{out}"], "0-based integers below 6"),
    ("prune-remove-neg", ["prune", "{model}", "--remove", "-1", "--output-dir", "{out}"], "0-based integers below 6"),
    ("prune-remove-twice", ["prune", "{model}", "--remove", "1", "1", "--output-dir", "{out}"], "listed twice"),
    ("prune-remove-all", ["prune", "{model}", "--remove", "0", "1", "2", "3", "4", "5", "--output-dir", "{out}"],
     "at least one of the 6 blocks must stay"),
    ("prune-remove-word", ["prune", "{model}", "--remove", "first", "--output-dir", "{out}"], "is not a whole number"),
    ("prune-ratio-1", ["prune", "{model}", "--remove-ratio", "1", "--output-dir", "{out}"], "must be a fraction in [0, 1)"),
    ("prune-ratio-neg", ["prune", "{model}", "--remove-ratio", "-0.1", "--output-dir", "{out}"], "fraction in [0, 1)"),
    ("prune-ratio-nan", ["prune", "{model}", "--remove-ratio", "nan", "--output-dir", "{out}"], "fraction in [0, 1)"),
    ("prune-ratio-word", ["prune", "{model}", "--remove-ratio", "half", "--output-dir", "{out}"], "invalid float value"),
    ("prune-criterion", ["prune", "{model}", "--keep", "2", "--criterion", "x", "--output-dir", "{out}"], "unknown criterion"),
    ("prune-existing", ["prune", "{model}", "--keep", "2", "--output-dir", "{existing}"], "already exists"),
    ("prune-onto-file", ["prune", "{model}", "--keep", "2", "--output-dir", "{afile}"], "already exists"),
    ("prune-overwrite-file", ["prune", "{model}", "--keep", "2", "--output-dir", "{afile}", "--overwrite"], "is a file"),
    ("prune-parent-file", ["prune", "{model}", "--keep", "2", "--output-dir", "{afile}/sub"], "is a file, not a folder"),
    ("prune-bad-model", ["prune", "./nope", "--keep", "2", "--output-dir", "{out}"], "neither an existing folder"),
    # --- gardener push / push_pruned.py
    ("push-dry-no-output", ["push", "{model}", "--keep", "2", "--dry-run"], "give --output-dir DIR"),
    ("push-no-plan", ["push", "{model}", "--dry-run", "--output-dir", "{out}"], "one of the arguments --keep"),
    ("push-keep-twice", ["push", "{model}", "--keep", "2", "2", "--dry-run", "--output-dir", "{out}"], "given twice"),
    ("push-keep-0", ["push", "{model}", "--keep", "0", "--dry-run", "--output-dir", "{out}"], "keep must be between 1 and 6"),
    ("push-keep-7", ["push", "{model}", "--keep", "2", "7", "--dry-run", "--output-dir", "{out}"], "between 1 and 6"),
    ("push-keep-word", ["push", "{model}", "--keep", "x", "--dry-run", "--output-dir", "{out}"], "is not a whole number"),
    ("push-fixed-repo-several", ["push", "{model}", "--keep", "2", "3", "--repo-id", "me/fixed", "--dry-run",
                                 "--output-dir", "{out}"], "template containing {keep}"),
    ("push-repo-bad", ["push", "{model}", "--keep", "2", "--repo-id", "bad id!", "--dry-run", "--output-dir", "{out}"],
     "malformed repo id"),
    ("push-repo-deep", ["push", "{model}", "--keep", "2", "--repo-id", "a/b/c", "--dry-run", "--output-dir", "{out}"],
     "malformed repo id"),
    ("push-repo-field", ["push", "{model}", "--keep", "2", "--repo-id", "me/{nope}", "--dry-run", "--output-dir", "{out}"],
     "is invalid"),
    ("push-criterion", ["push", "{model}", "--keep", "2", "--criterion", "x", "--dry-run", "--output-dir", "{out}"],
     "unknown criterion"),
    ("push-seed-neg", ["push", "{model}", "--keep", "2", "--seed", "-1", "--dry-run", "--output-dir", "{out}"],
     "expected an integer >= 0"),
    ("push-ratio-2", ["push", "{model}", "--remove-ratio", "2", "--dry-run", "--output-dir", "{out}"], "fraction in [0, 1)"),
    ("push-remove-twice", ["push", "{model}", "--remove", "3", "3", "--dry-run", "--output-dir", "{out}"], "listed twice"),
    ("push-existing", ["push", "{model}", "--keep", "2", "--dry-run", "--output-dir", "{staged}"], "already exists"),
    ("push-pr-revision", ["push", "{model}", "--keep", "2", "--create-pr", "--revision", "dev", "--dry-run",
                          "--output-dir", "{out}"], "--create-pr cannot be combined with --revision"),
    ("push-train-no-output", ["push", "{model}", "--keep", "2", "--train-dir", "{train}"], "--train-dir needs --output-dir"),
    ("push-foreign-no-train", ["push", "{model}", "--keep", "2", "--dry-run", "--output-dir", "{out}", "--max-steps", "3"],
     "unrecognized arguments: --max-steps 3"),
    ("push-bad-model", ["push", "./nope", "--keep", "2", "--dry-run", "--output-dir", "{out}"], "neither an existing folder"),
    ("push-nan", ["push", "{nanw}", "--keep", "2", "--dry-run", "--output-dir", "{out}"], "not finite"),
    ("push-train-missing", ["push", "{model}", "--keep", "2", "--dry-run", "--train-dir", "./no-videos", "--output-dir",
                            "{out}", "--max-steps", "1"], "does not exist"),
    ("push-train-sampling", ["push", "{model}", "--keep", "2", "--dry-run", "--train-dir", "{train}", "--output-dir", "{out}",
                             "--sampling", "foo"], "--sampling 'foo'"),
    ("push-train-stride-0", ["push", "{model}", "--keep", "2", "--dry-run", "--train-dir", "{train}", "--output-dir",
                             "{out}", "--frame-stride", "0"], "--frame-stride 0"),
    ("push-train-max-steps-0", ["push", "{model}", "--keep", "2", "--dry-run", "--train-dir", "{train}", "--output-dir",
                                "{out}", "--max-steps", "0"], "--max-steps 0"),
    ("push-train-unknown", ["push", "{model}", "--keep", "2", "--dry-run", "--train-dir", "{train}", "--output-dir",
                            "{out}", "--bogus-opt", "3"], "not used by the HfArgumentParser"),
    # --- gardener finetune
    ("ft-no-output", ["finetune", "--train-dir", "{train}"], "--output-dir is required"),
    ("ft-no-train", ["finetune", "--output-dir", "{out}"], "--train-dir is required"),
    ("ft-train-missing", ["finetune", "--train-dir", "./no-such-dir", *FT], "does not exist"),
    ("ft-train-empty", ["finetune", "--train-dir", "{empty}", *FT], "no class subfolders"),
    ("ft-train-file", ["finetune", "--train-dir", "{afile}", *FT], "unsupported data source"),
    ("ft-recipe", ["finetune", "--train-dir", "{train}", "--recipe", "fast", *FT], "--recipe 'fast'"),
    ("ft-hflip", ["finetune", "--train-dir", "{train}", "--hflip", "maybe", *FT], "--hflip 'maybe'"),
    ("ft-sampling", ["finetune", "--train-dir", "{train}", "--sampling", "foo", *FT], "--sampling 'foo'"),
    ("ft-eval-sampling", ["finetune", "--train-dir", "{train}", "--eval-sampling", "random", *FT], "--eval-sampling 'random'"),
    ("ft-stride-0", ["finetune", "--train-dir", "{train}", "--frame-stride", "0", *FT], "--frame-stride 0"),
    ("ft-stride-neg", ["finetune", "--train-dir", "{train}", "--frame-stride", "-4", *FT], "--frame-stride -4"),
    ("ft-eval-clips-0", ["finetune", "--train-dir", "{train}", "--eval-clips", "0", *FT], "--eval-clips 0"),
    ("ft-batch-0", ["finetune", "--train-dir", "{train}", "--per-device-train-batch-size", "0", *FT],
     "--per-device-train-batch-size 0"),
    ("ft-eval-batch-0", ["finetune", "--train-dir", "{train}", "--per-device-eval-batch-size", "0", *FT],
     "--per-device-eval-batch-size 0"),
    ("ft-accumulation-0", ["finetune", "--train-dir", "{train}", "--gradient-accumulation-steps", "0", *FT],
     "--gradient-accumulation-steps 0"),
    ("ft-lr-nan", ["finetune", "--train-dir", "{train}", "--learning-rate", "nan", *FT], "--learning-rate nan"),
    ("ft-lr-neg", ["finetune", "--train-dir", "{train}", "--learning-rate", "-1", *FT], "--learning-rate -1"),
    ("ft-lr-0", ["finetune", "--train-dir", "{train}", "--learning-rate", "0", *FT], "--learning-rate 0"),
    ("ft-lr-word", ["finetune", "--train-dir", "{train}", "--learning-rate", "fast", *FT], "argument --learning_rate"),
    ("ft-max-steps-0", ["finetune", "--train-dir", "{train}", *FT[:2], "--max-steps", "0"], "--max-steps 0"),
    ("ft-epochs-0", ["finetune", "--train-dir", "{train}", "--output-dir", "{out}", "--num-train-epochs", "0"],
     "--num-train-epochs 0"),
    ("ft-epochs-word", ["finetune", "--train-dir", "{train}", "--output-dir", "{out}", "--num-train-epochs", "ten"],
     "argument --num_train_epochs"),
    ("ft-seed-word", ["finetune", "--train-dir", "{train}", "--seed", "x", *FT], "argument --seed"),
    ("ft-unknown", ["finetune", "--train-dir", "{train}", "--bogus-opt", "1", *FT], "not used by the HfArgumentParser"),
    ("ft-keep-0", ["finetune", "--train-dir", "{train}", "--keep", "0", *FT], "keep=0: keep must be between 1 and 12"),
    ("ft-keep-13", ["finetune", "--train-dir", "{train}", "--keep", "13", *FT], "keep must be between 1 and 12"),
    ("ft-criterion", ["finetune", "--train-dir", "{train}", "--keep", "4", "--criterion", "x", *FT], "unknown criterion"),
    ("ft-not-videomae", ["finetune", "{vit}", "--train-dir", "{train}", *FT], "finetuning supports VideoMAE"),
    ("ft-nan", ["finetune", "{nanw}", "--train-dir", "{train}", *FT], "non-finite weights"),
    ("ft-pickle", ["finetune", "{pickle}", "--train-dir", "{train}", *FT], "only pickled pytorch_model.bin"),
    ("ft-bad-model", ["finetune", "./nope", "--train-dir", "{train}", *FT], "neither an existing folder"),
    ("ft-one-class", ["finetune", "--train-dir", "{one_class}", *FT], "a classifier needs at least 2"),
    ("ft-csv-latin1", ["finetune", "--train-dir", "{csv_latin1}", *FT], "is not UTF-8 text"),
    ("ft-csv-columns", ["finetune", "--train-dir", "{csv_nocols}", *FT], "lacks column(s)"),
    ("ft-csv-empty-label", ["finetune", "--train-dir", "{csv_nolabel}", *FT], "'label' must be a non-empty string"),
    ("ft-json-not-list", ["finetune", "--train-dir", "{json_dict}", *FT], "must hold a JSON list"),
    ("ft-json-bad", ["finetune", "--train-dir", "{json_bad}", *FT], "is not valid JSON"),
    ("ft-jsonl-bad", ["finetune", "--train-dir", "{jsonl_bad}", *FT], "is not valid JSON lines"),
    ("ft-json-no-path", ["finetune", "--train-dir", "{json_nopath}", *FT], "missing key(s) ['path']"),
    ("ft-eval-unknown-label", ["finetune", "--train-dir", "{train}", "--eval-dir", "{odd_labels}", *FT],
     "not among the known labels"),
    ("ft-strict-corrupt", ["finetune", "--train-dir", "{corrupt_videos}", "--strict", *FT], "unreadable video"),
    ("ft-existing-run", ["finetune", "--train-dir", "{train}", "--output-dir", "{old_run}", "--max-steps", "1"],
     "holds checkpoints of an earlier run"),
    # --- gardener evaluate
    ("ev-no-model", ["evaluate", "{train}"], "give the model to evaluate"),
    ("ev-no-data", ["evaluate"], "the following arguments are required: data"),
    ("ev-no-model-given", ["evaluate", "--clips", "1", "--", "{eval}"], "give the model to evaluate"),
    ("ev-clips-0", ["evaluate", "{clf}", "{eval}", "--clips", "0"], "argument --clips: expected a positive integer"),
    ("ev-batch-0", ["evaluate", "{clf}", "{eval}", "--batch-size", "0"], "argument --batch-size"),
    ("ev-stride-0", ["evaluate", "{clf}", "{eval}", "--frame-stride", "0"], "argument --frame-stride"),
    ("ev-stride-word", ["evaluate", "{clf}", "{eval}", "--frame-stride", "four"], "argument --frame-stride"),
    ("ev-sampling", ["evaluate", "{clf}", "{eval}", "--sampling", "random"], "argument --sampling: invalid choice"),
    ("ev-workers-word", ["evaluate", "{clf}", "{eval}", "--num-workers", "many"], "argument --num-workers"),
    ("ev-data-missing", ["evaluate", "{clf}", "./no-videos"], "does not exist"),
    ("ev-not-classifier", ["evaluate", "{encoder}", "{eval}"], "not a VideoMAEForVideoClassification"),
    ("ev-no-weights", ["evaluate", "{clf_noweights}", "{eval}"], "model.safetensors not found"),
    ("ev-truncated", ["evaluate", "{clf_truncated}", "{eval}"], "not a readable safetensors"),
    ("ev-pickle", ["evaluate", "{clf_pickle}", "{eval}"], "only pickled pytorch_model.bin"),
    ("ev-no-head", ["evaluate", "{clf_headless}", "{eval}"], "random head"),
    ("ev-nan-head", ["evaluate", "{clf_nan}", "{eval}"], "non-finite weights"),
    ("ev-output-file", ["evaluate", "{clf}", "{eval}", "--output-dir", "{afile}"], "is a file, not a folder"),
    ("ev-unknown-label", ["evaluate", "{clf}", "{odd_labels}"], "not among the known labels"),
    ("ev-bad-model", ["evaluate", "./nope", "{eval}"], "neither an existing folder"),
    # --- gardener study / reproduce.py
    ("st-no-output", ["study"], "the following arguments are required: --output-dir"),
    ("st-removals-12", ["study", "--output-dir", "{out}", "--removals", "12"], "removals [12]"),
    ("st-removals-0", ["study", "--output-dir", "{out}", "--removals", "0"], "distinct block counts >= 1"),
    ("st-removals-twice", ["study", "--output-dir", "{out}", "--removals", "1,1"], "distinct block counts >= 1"),
    ("st-removals-word", ["study", "--output-dir", "{out}", "--removals", "one"], "comma-separated block counts"),
    ("st-removals-empty", ["study", "--output-dir", "{out}", "--removals", ","], "at least one block count"),
    ("st-seeds-0", ["study", "--output-dir", "{out}", "--seeds", "0"], "argument --seeds: expected a positive integer"),
    ("st-steps-0", ["study", "--output-dir", "{out}", "--steps", "0"], "argument --steps"),
    ("st-train-clips-0", ["study", "--output-dir", "{out}", "--train-clips", "0"], "argument --train-clips"),
    ("st-val-clips-neg", ["study", "--output-dir", "{out}", "--val-clips", "-5"], "argument --val-clips"),
    ("st-batch-0", ["study", "--output-dir", "{out}", "--batch-size", "0"], "argument --batch-size"),
    ("st-jobs-0", ["study", "--output-dir", "{out}", "--jobs", "0"], "argument --jobs"),
    ("st-lr-0", ["study", "--output-dir", "{out}", "--lr", "0"], "--lr must be > 0"),
    ("st-lr-nan", ["study", "--output-dir", "{out}", "--lr", "nan"], "--lr must be > 0"),
    ("st-lr-word", ["study", "--output-dir", "{out}", "--lr", "big"], "argument --lr"),
    ("st-warmup-1", ["study", "--output-dir", "{out}", "--warmup-ratio", "1"], "--warmup-ratio must be in [0, 1)"),
    ("st-task", ["study", "--output-dir", "{out}", "--task", "colour"], "argument --task: invalid choice"),
    ("st-clip-options-json", ["study", "--output-dir", "{out}", "--clip-options", "{nope"], "not JSON"),
    ("st-clip-options-list", ["study", "--output-dir", "{out}", "--clip-options", "[1]"], "expected a JSON object"),
    ("st-clip-options-key", ["study", "--output-dir", "{out}", "--clip-options", '{"bogus": 1}'], "--clip-options ['bogus']: the moving-digit --task takes"),
    ("st-output-file", ["study", "--output-dir", "{afile}", "--removals", "1"], "cannot use"),
    ("st-torn-config", ["study", "--output-dir", "{torn_study}", "--removals", "1"], "is unreadable"),
    ("st-other-settings", ["study", "--output-dir", "{other_study}", "--removals", "1"], "holds a study with different settings"),
    ("st-vit-too-deep", ["study", "{vit}", "--output-dir", "{out}"], "the model has 6 blocks"),
    ("st-oracle", ["study", "--oracle", "finetune,nope", "--output-dir", "{out}"], "'nope': use one or more of"),
    ("st-eval-no-data", ["study", "--eval-data", "{train}", "--output-dir", "{out}"], "--eval-data and --val-fraction need --data"),
    ("st-val-fraction", ["study", "--data", "{train}", "--val-fraction", "1.5", "--output-dir", "{out}"],
     "--val-fraction must be in (0, 1)"),
    ("st-no-val-split", ["study", "--data", "{train}", "--output-dir", "{out}", "--removals", "1"], "no validation split"),
    ("st-one-class", ["study", "--data", "{one_class}", "--val-fraction", "0.5", "--output-dir", "{out}", "--removals", "1"],
     "a classifier needs at least 2"),
    # --- gardener pretrain
    ("pt-no-output", ["pretrain"], "the following arguments are required: --output-dir"),
    ("pt-patch", ["pretrain", "--output-dir", "{out}", "--image-size", "30", "--patch-size", "8"],
     "--image-size 30 must be a multiple of --patch-size 8"),
    ("pt-mask", ["pretrain", "--output-dir", "{out}", "--mask-ratio", "0.01"], "at least one patch must be masked"),
    ("pt-mask-all", ["pretrain", "--output-dir", "{out}", "--mask-ratio", "1"], "at least one patch must be masked"),
    ("pt-steps-0", ["pretrain", "--output-dir", "{out}", "--steps", "0"], "--steps must be >= 1"),
    ("pt-minutes-0", ["pretrain", "--output-dir", "{out}", "--minutes", "0"], "--minutes must be > 0"),
    ("pt-warmup-1", ["pretrain", "--output-dir", "{out}", "--warmup-fraction", "1"], "--warmup-fraction must be in [0, 1)"),
    ("pt-subset", ["pretrain", "--output-dir", "{out}", "--digit-subset", "most"], "argument --digit-subset: invalid choice"),
    ("pt-batch-0", ["pretrain", "--output-dir", "{out}", "--batch-size", "0"], "--batch-size must be >= 1"),
    ("pt-frames", ["pretrain", "--output-dir", "{out}", "--num-frames", "15"], "--num-frames 15 must be a multiple"),
    ("pt-heads", ["pretrain", "--output-dir", "{out}", "--hidden-size", "65"], "multiples of their number of heads"),
    ("pt-lr-word", ["pretrain", "--output-dir", "{out}", "--lr", "big"], "argument --lr"),
    ("pt-lr-nan", ["pretrain", "--output-dir", "{out}", "--lr", "nan"], "--lr must be a finite number"),
    ("pt-lr-0", ["pretrain", "--output-dir", "{out}", "--lr", "0"], "--lr must be > 0"),
    ("pt-digits-range", ["pretrain", "--output-dir", "{out}", "--num-digits", "3", "1"], "--num-digits 3 1"),
    ("pt-speed-range", ["pretrain", "--output-dir", "{out}", "--digit-speed", "2", "1"], "--digit-speed 2.0 1.0"),
    ("pt-layers-0", ["pretrain", "--output-dir", "{out}", "--num-hidden-layers", "0"], "--num-hidden-layers must be >= 1"),
    # --- the top level
    ("top-unknown-command", ["frobnicate"], "argument command: invalid choice"),
    ("top-no-command", [], "the following arguments are required: command"),
]


def _save(folder, tensors):
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def world(tmp_path_factory, videos):
    """Every file the table refers to, made once."""
    root = tmp_path_factory.mktemp("table")
    w = {"train": videos["train"], "eval": videos["eval"]}
    model = save_with_processor(make_model("VideoMAEForVideoClassification"), root / "model")
    w["model"] = model
    w["vit"] = save_with_processor(make_model("ViTModel"), root / "vit")
    w["encoder"] = save_with_processor(make_model("VideoMAEModel"), root / "encoder")
    tensors = load_file(model / "model.safetensors")

    def variant(name, *, config=None, weights="same", drop=()):
        folder = root / name
        folder.mkdir()
        if config is not False:
            text = (model / "config.json").read_text() if config is None else config
            (folder / "config.json").write_text(text)
        if weights == "same":
            _save(folder, {k: v for k, v in tensors.items() if k not in drop})
        w[name] = folder
        return folder

    variant("noconfig", config=False)
    variant("badjson", config="{not json")
    variant("bert", config=json.dumps({"model_type": "bert", "num_hidden_layers": 2}))
    variant("noweights", weights=None)
    torch.save({"x": torch.zeros(1)}, variant("pickle", weights=None) / "pytorch_model.bin")
    data = (model / "model.safetensors").read_bytes()
    (variant("truncated", weights=None) / "model.safetensors").write_bytes(data[: len(data) // 2])
    nan = dict(tensors)
    nan["videomae.encoder.layer.1.output.dense.weight"] = torch.full_like(nan["videomae.encoder.layer.1.output.dense.weight"], float("nan"))
    _save(variant("nanw", weights=None), nan)
    (variant("index_list") / "model.safetensors.index.json").write_text(json.dumps({"weight_map": ["a"]}))
    (variant("index_json") / "model.safetensors.index.json").write_text("{oops")
    variant("missing_block", drop=("videomae.encoder.layer.2.attention.attention.query.weight",))
    config = json.loads((model / "config.json").read_text())
    variant("extra_block", config=json.dumps({**config, "num_hidden_layers": 5}))
    w["afile"] = root / "a-file"
    w["afile"].write_text("not a folder")
    w["empty"] = root / "empty"
    w["empty"].mkdir()
    existing = root / "existing"
    existing.mkdir()
    (existing / "keep-me.txt").write_text("precious")
    w["existing"] = existing
    staged = root / "staged"
    (staged / "model-gardener-keep2").mkdir(parents=True)
    w["staged"] = staged
    one = root / "one_class"
    shutil.copytree(videos["train"] / "left", one / "left")
    w["one_class"] = one
    first = sorted((videos["train"] / "left").iterdir())[0]
    (root / "latin1.csv").write_bytes("path,label\n".encode() + f"{first},caf\xe9\n".encode("latin-1"))
    w["csv_latin1"] = root / "latin1.csv"
    (root / "nocols.csv").write_text("file,class\nx.mp4,a\n")
    w["csv_nocols"] = root / "nocols.csv"
    (root / "nolabel.csv").write_text(f"path,label\n{first},\n")
    w["csv_nolabel"] = root / "nolabel.csv"
    (root / "dict.json").write_text('{"path": "x"}')
    w["json_dict"] = root / "dict.json"
    (root / "bad.json").write_text("[{")
    w["json_bad"] = root / "bad.json"
    (root / "bad.jsonl").write_text('{"path": "a", "label": "b"}\n{oops\n')
    w["jsonl_bad"] = root / "bad.jsonl"
    (root / "nopath.json").write_text('[{"label": "a"}]')
    w["json_nopath"] = root / "nopath.json"
    odd = root / "odd_labels"
    shutil.copytree(videos["eval"] / "left", odd / "sideways")
    shutil.copytree(videos["eval"] / "up", odd / "up")
    w["odd_labels"] = odd
    corrupt = root / "corrupt_videos"
    shutil.copytree(videos["train"], corrupt)
    (corrupt / "left" / "broken.mp4").write_bytes(b"\x00" * 100)
    w["corrupt_videos"] = corrupt
    old_run = root / "old_run"
    (old_run / "checkpoint-2").mkdir(parents=True)
    (old_run / "checkpoint-2" / "trainer_state.json").write_text("{}")
    w["old_run"] = old_run
    # classifiers for evaluate: the embedded default with a 4-way head, and broken copies of it
    from transformers import VideoMAEForVideoClassification

    clf_model = VideoMAEForVideoClassification.from_pretrained(
        DEFAULT, num_labels=4, id2label=dict(enumerate(["down", "left", "right", "up"])),
        label2id={"down": 0, "left": 1, "right": 2, "up": 3})
    clf = root / "clf"
    clf_model.save_pretrained(clf)
    shutil.copy(DEFAULT / "preprocessor_config.json", clf)
    w["clf"] = clf
    clf_tensors = load_file(clf / "model.safetensors")
    for name in ("clf_noweights", "clf_truncated", "clf_pickle", "clf_headless", "clf_nan"):
        folder = root / name
        shutil.copytree(clf, folder)
        w[name] = folder
    (w["clf_noweights"] / "model.safetensors").unlink()
    weights = (clf / "model.safetensors").read_bytes()
    (w["clf_truncated"] / "model.safetensors").write_bytes(weights[:1000])
    (w["clf_pickle"] / "model.safetensors").unlink()
    torch.save({}, w["clf_pickle"] / "pytorch_model.bin")
    _save(w["clf_headless"], {k: v for k, v in clf_tensors.items() if not k.startswith("classifier.")})
    _save(w["clf_nan"], {**clf_tensors, "classifier.weight": torch.full_like(clf_tensors["classifier.weight"], float("nan"))})
    torn = root / "torn_study"
    torn.mkdir()
    (torn / "study_config.json").write_text('{"model": nul')
    w["torn_study"] = torn
    other = root / "other_study"
    other.mkdir()
    (other / "study_config.json").write_text(json.dumps({"model": None, "steps": 7}))
    w["other_study"] = other
    return w


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(world, tmp_path, capsys, case, argv, fragment):
    out = tmp_path / "out"
    names = {**{k: str(v) for k, v in world.items()}, "out": str(out)}
    argv = [re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), m.group(0)), a) for a in argv]
    before = _snapshot(world["existing"].parent)
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err and lines, err[-2000:]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines[-1]
    assert not out.exists() or not any(out.iterdir()) and not out.is_file(), "something was written"
    after = _snapshot(world["existing"].parent)
    assert after == before, sorted(set(after) ^ set(before)) or "a file of the table's world changed"
    assert not list(world["existing"].parent.glob("**/.*partial-*")) and not list(tmp_path.glob("**/.*partial-*"))
