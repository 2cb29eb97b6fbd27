"""The study on an image model and on the user's own data, the feature oracles, and a study spread over processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NUM_BLOCKS, make_model, save_with_processor

from gardener_hf.errors import GardenerError
from gardener_hf.research import study as st

REPO = Path(__file__).resolve().parents[2]


def _image_folder(root: Path, classes: dict[str, int], splits: dict[str, int], seed: int = 0) -> Path:
    """`root/<split>/<class>/<i>.png`: 12x12 RGB images, grey level by class plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        for name, level in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(level + rng.normal(0, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory) -> Path:
    return save_with_processor(make_model("Dinov2Model"), tmp_path_factory.mktemp("models") / "dino")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return _image_folder(tmp_path_factory.mktemp("data") / "shades", {"dark": 40, "mid": 128, "bright": 215},
                         {"train": 6, "validation": 4})


# ---------------------------------------------------------------------------------------------- the feature oracles


def test_probe_and_knn_read_separable_features_and_not_shuffled_labels():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 16))
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.normal(0, 0.5, (len(y), 16))
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    assert st.probe_accuracy(x[train], y[train], x[test], y[test]) == 1.0
    assert st.knn_accuracy(x[train], y[train], x[test], y[test], k=5) == 1.0
    shuffled = rng.permutation(y)
    assert st.probe_accuracy(x[train], shuffled[train], x[test], shuffled[test]) < 0.6
    # a tied vote goes to the class of the nearest neighbour among the tied classes
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert st.knn_accuracy(a, np.array([0, 1]), np.array([[0.2, 1.0]]), np.array([1]), k=2) == 1.0
    assert st.knn_accuracy(a, np.array([0, 1]), np.array([[1.0, 0.2]]), np.array([1]), k=2) == 0.0


def test_probe_subset_is_class_balanced_seeded_and_differs_by_seed():
    y = np.repeat(np.arange(3), [10, 4, 1])
    a, b, c = st.probe_subset(y, 0.5, 0), st.probe_subset(y, 0.5, 0), st.probe_subset(y, 0.5, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [5, 2, 1]  # at least one of a class with one member
    assert np.array_equal(st.probe_subset(y, 1.0, 3), np.arange(len(y)))


def test_features_are_the_cls_token_or_the_mean_of_all_tokens(dino_dir):
    config = st.StudyConfig(model=str(dino_dir), oracles=("knn",), train_clips=10, eval_clips=10, seeds=1)
    ctx = st.build_context(config)
    assert not ctx.data.video and ctx.data.train_x.shape == (10, 32, 32, 3)  # frame 0 of the generated clips
    x = ctx.data.eval_x[:3]
    with torch.no_grad():
        hidden = ctx.model(pixel_values=ctx.data.pixels(x)).last_hidden_state
    assert np.allclose(st.features(ctx.model, ctx.data, x), hidden[:, 0].double().numpy())
    video = st.build_context(st.StudyConfig(oracles=("knn",), train_clips=10, eval_clips=10, seeds=1))
    x = video.data.eval_x[:2]
    with torch.no_grad():
        hidden = video.model.videomae(pixel_values=video.data.pixels(x)).last_hidden_state
    assert np.allclose(st.features(video.model, video.data, x), hidden.mean(1).double().numpy())  # VideoMAE: no [CLS]


def test_feature_run_prunes_a_copy_and_scores_every_oracle_and_seed(dino_dir, images):
    config = st.StudyConfig(model=str(dino_dir), data=str(images), oracles=("linear-probe", "knn"), seeds=3,
                            removals=(1,), probe_fraction=0.5)
    ctx = st.build_context(config)
    records = st.feature_run(ctx, (0, 4))
    assert [(r["oracle"], r["seed"]) for r in records] == [(o, s) for s in range(3) for o in ("linear-probe", "knn")]
    assert {r["num_blocks"] for r in records} == {NUM_BLOCKS - 2} and all(r["removed"] == [0, 4] for r in records)
    assert all((r["accuracy"] * 12).is_integer() for r in records)  # 12 validation images
    assert len(ctx.model.encoder.layer) == NUM_BLOCKS  # the shared model is untouched
    again = st.feature_run(ctx, (0, 4))
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in records]


# ---------------------------------------------------------------------------------------------- whole studies


def test_image_study_on_a_user_folder_with_the_feature_oracles(tmp_path, dino_dir, images):
    config = st.StudyConfig(model=str(dino_dir), data=str(images), oracles=("linear-probe", "knn"), seeds=2,
                            removals=(1, 3), scratch=True)
    results = st.run_study(config, tmp_path / "study", jobs=1, progress=False)
    assert results["data"] == "shades/train: 18 images in 3 classes; shades/validation: 12 images in 3 classes"
    assert results["num_classes"] == 3 and results["chance"] == pytest.approx(1 / 3)
    probe = results["oracles"]["linear-probe"]
    assert set(probe["single_removal"]) == {str(b) for b in range(NUM_BLOCKS)} and probe["scratch"]["n"] == 2
    assert {"gardener", "oracle", "random", "block-influence", "angular", "removal-drift"} <= set(probe["sweep"])
    assert "reconstruction" not in results["scores"]  # a Dinov2Model has no decoder
    assert results["calibration"] == "18 unlabeled inputs drawn from the training split of shades (seed 0)"
    runs = [json.loads(line) for line in (tmp_path / "study" / "runs.jsonl").read_text().splitlines()]
    assert {r["oracle"] for r in runs} == {"linear-probe", "knn"} and len(runs) == results["runs"]["count"]
    report = (tmp_path / "study" / "REPORT.md").read_text()
    assert "- Data: shades/train: 18 images" in report and "## The knn oracle" in report
    assert "## Open question 1" not in report  # no finetuning, so no finetuned scores
    # the user's data is part of the study's identity
    other = _image_folder(tmp_path / "other", {"a": 30, "b": 220}, {"train": 3, "validation": 2})
    with pytest.raises(GardenerError, match="different settings.*data"):
        st.run_study(st.StudyConfig(**{**config.to_dict(), "data": str(other), "oracles": ("knn",)}), tmp_path / "study",
                     jobs=1, progress=False)


def test_image_study_with_the_finetune_oracle_and_a_validation_fraction(tmp_path, dino_dir, images):
    config = st.StudyConfig(model=str(dino_dir), data=str(images / "train"), val_fraction=0.5, seeds=1, removals=(1,),
                            steps=2, batch_size=4, scratch=False, oracles=("finetune", "linear-probe"))
    ctx = st.build_context(config)
    assert type(ctx.classifier).__name__ == "Dinov2ForImageClassification" and ctx.classifier.config.num_labels == 3
    assert len(ctx.data.train_y) == len(ctx.data.eval_y) == 9
    results = st.run_study(config, tmp_path / "study", jobs=1, progress=False)
    finetune = results["oracles"]["finetune"]
    assert [finetune["single_removal"][str(b)]["n"] for b in range(NUM_BLOCKS)] == [1] * NUM_BLOCKS
    assert all((v * 9).is_integer() for b in range(NUM_BLOCKS) for v in finetune["single_removal"][str(b)]["values"])
    assert set(results["oracle_agreement"]) == {"finetune vs linear-probe"}
    assert "ssl_vs_finetuned" in results["oracles"]["finetune"]


def test_video_study_on_user_videos(tmp_path, videos):
    config = st.StudyConfig(data=str(videos["train"]), eval_data=str(videos["eval"]), oracles=("linear-probe",), seeds=2,
                            removals=(1,), scratch=False)
    ctx = st.build_context(config)
    assert ctx.data.video and tuple(ctx.data.train_x.shape) == (12, 16, 3, 32, 32)
    results = st.run_study(config, tmp_path / "study", jobs=1, progress=False)
    assert results["num_classes"] == 4 and "reconstruction" in results["scores"]  # the embedded default has its decoder


def test_bad_user_data_is_refused_before_anything_is_written(tmp_path, dino_dir):
    unseen = _image_folder(tmp_path / "unseen", {"a": 30, "b": 220}, {"train": 3})
    _image_folder(tmp_path / "unseen", {"c": 128}, {"validation": 2})
    one = _image_folder(tmp_path / "one", {"a": 30}, {"train": 3, "validation": 2})
    nosplit = _image_folder(tmp_path / "nosplit", {"a": 30, "b": 220}, {"train": 3})
    cases = [(unseen, "that the training data lacks"), (one, "needs at least 2"), (nosplit, "no validation split")]
    for data, message in cases:
        out = tmp_path / f"out-{data.name}"
        with pytest.raises(GardenerError, match=message):
            st.run_study(st.StudyConfig(model=str(dino_dir), data=str(data), oracles=("knn",), seeds=1, removals=(1,)),
                         out, jobs=1, progress=False)
        assert not out.exists()


# ---------------------------------------------------------------------------------------------- several processes


def test_two_processes_give_the_results_of_one(tmp_path):
    """torchrun and accelerate launch, 2 CPU processes each."""
    args = ["--train-clips", "16", "--val-clips", "8", "--steps", "2", "--batch-size", "4", "--seeds", "2",
            "--removals", "1,11", "--no-scratch", "--oracle", "finetune,linear-probe", "--jobs", "1", "--quiet"]
    one = subprocess.run([sys.executable, "-m", "gardener_hf", "study", "--output-dir", str(tmp_path / "one"), *args],
                         check=False, capture_output=True, text=True, cwd=REPO)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "gardener_hf", "study", "--output-dir", str(tmp_path / "two"), *args],
                         check=False, capture_output=True, text=True, cwd=REPO)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("report:") == 1  # rank 0 speaks for the study

    def results(name):
        r = json.loads((tmp_path / name / "results.json").read_text())
        for key in ("environment", "wall_seconds_this_call", "command"):
            r.pop(key)
        r["runs"].pop("cpu_seconds")
        return r

    def runs(name):
        out = {}
        for line in (tmp_path / name / "runs.jsonl").read_text().splitlines():
            run = json.loads(line)
            run.pop("seconds")
            out[st.run_key(run["removed"], run["seed"], run["scratch"], run.get("oracle", "finetune"))] = run
        return out

    # accelerate launch --multi_gpu is torchrun underneath; without GPUs its processes run on the CPU
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    accelerate = subprocess.run([*launch, "-m", "gardener_hf", "study", "--output-dir", str(tmp_path / "accelerate"), *args],
                                check=False, capture_output=True, text=True, cwd=REPO)
    assert accelerate.returncode == 0, accelerate.stderr[-2000:]
    for name in ("two", "accelerate"):
        assert results("one") == results(name), name
        assert runs("one") == runs(name) and len(runs(name)) == results(name)["runs"]["count"]
        assert not list((tmp_path / name).glob("runs.rank*.jsonl"))  # merged into runs.jsonl
        assert json.loads((tmp_path / name / "results.json").read_text())["environment"]["processes"] == 2


def test_a_killed_rank_loses_no_finished_run(tmp_path):
    path = tmp_path / "runs.jsonl"
    rank1 = st.RunStore(path, rank=1)
    rank1.add({"oracle": "knn", "removed": [2], "seed": 0, "scratch": False, "accuracy": 0.5, "seconds": 1.0})
    assert not path.exists() and (tmp_path / "runs.rank1.jsonl").exists()
    resumed = st.RunStore(path)  # a later call reads the rank file left behind
    assert "knn:r2@0" in resumed
    resumed.add({"removed": [], "seed": 0, "scratch": False, "accuracy": 0.7, "seconds": 1.0})
    resumed.merge()
    assert not (tmp_path / "runs.rank1.jsonl").exists()
    assert set(st.RunStore(path).runs) == {"knn:r2@0", "r@0"} and len(path.read_text().splitlines()) == 2


def test_vit_mae_features_see_every_patch_in_order():
    from gardener_hf.research.study.runs import StudyData

    model = make_model("ViTMAEModel")
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    data = StudyData(x, torch.zeros(3), x, torch.zeros(3), ("a", "b"), "", False, [0.5] * 3, [0.5] * 3)
    a, b = st.features(model, data, x), st.features(model, data, x)
    assert np.array_equal(a, b) and model.config.mask_ratio == 0.75  # no random masking, and the config is restored
    model.config.mask_ratio = 0.0
    with torch.no_grad():
        hidden = model(pixel_values=data.pixels(x), noise=torch.arange(4.0).expand(3, -1)).last_hidden_state
    assert hidden.shape[1] == 5 and np.allclose(a, hidden[:, 0].double().numpy())


def test_overwrite_keeps_the_old_study_when_the_new_input_is_bad(tmp_path, dino_dir):
    from gardener_hf.cli import main

    out = tmp_path / "study"
    out.mkdir()
    (out / "runs.jsonl").write_text('{"removed": [], "seed": 0, "scratch": false, "accuracy": 0.5, "seconds": 1}\n')
    (out / "study_config.json").write_text("{}")
    nosplit = _image_folder(tmp_path / "nosplit", {"a": 30, "b": 220}, {"train": 3})
    assert main(["study", str(dino_dir), "--data", str(nosplit), "--overwrite", "--output-dir", str(out), "--quiet"]) == 2
    assert (out / "runs.jsonl").read_text().count("\n") == 1 and (out / "study_config.json").read_text() == "{}"


@pytest.mark.skipif(not Path("/usr/share/doc/opencv-doc/examples/data/digits.png").is_file(),
                    reason="OpenCV's digits.png is absent: apt-get install opencv-doc")
def test_export_opencv_digits_writes_a_split_folder_the_study_reads(tmp_path):
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("export_digits", REPO / "scripts" / "export_opencv_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.export(tmp_path / "digits", validation_fraction=0.2, seed=1)
    assert counts == {"train": 4000, "validation": 1000}
    sheet = np.asarray(Image.open(module.SHEET).convert("L"))
    cell = np.asarray(Image.open(next((tmp_path / "digits" / "validation" / "7").iterdir())))
    index = int(next((tmp_path / "digits" / "validation" / "7").iterdir()).stem)
    row, col = divmod(index, 100)
    assert 35 <= row < 40 and np.array_equal(cell, sheet[row * 20 : row * 20 + 20, col * 20 : col * 20 + 20])  # digit 7
    train = {p.stem for p in (tmp_path / "digits" / "train").rglob("*.png")}
    validation = {p.stem for p in (tmp_path / "digits" / "validation").rglob("*.png")}
    assert not train & validation and len(train | validation) == 5000
    assert module.main(["--output", str(tmp_path / "digits")]) == 2  # not empty: refused
