"""Calibrated criteria (block-influence, angular, removal-drift, reconstruction), their inputs, and --protect.

Each criterion is checked against a computation written here: hooks of the test's own, blocks deleted from a
copy of the model by hand, the model's own loss; none of it goes through gardener_hf's code path.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import make_inputs, make_model, save_with_processor
from torch import nn

from gardener_hf import make_plan, score_model
from gardener_hf.calibrated import _fixed_masks
from gardener_hf.calibration import Calibration
from gardener_hf.cli import main
from gardener_hf.data import load_calibration
from gardener_hf.errors import GardenerError, PlanError
from gardener_hf.research.synthetic import digit_calibration

BLOCKS = re.compile(r"^(?:[a-z0-9_]+\.)?(?:encoder\.layer|layers|model\.layer)$")


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The encoder's block list, found by its attribute path (not by gardener_hf.arch)."""
    return next(m for name, m in model.named_modules() if BLOCKS.match(name) and isinstance(m, nn.ModuleList))


def pixels_for(model: nn.Module, n: int = 6, seed: int = 0) -> torch.Tensor:
    batches = [next(v for k, v in make_inputs(model, seed=seed + i).items() if k.startswith("pixel_values"))
               for i in range(math.ceil(n / 2))]
    return torch.cat(batches)[:n]


def forward(model: nn.Module, pixels: torch.Tensor, seed: int = 0):
    key = "pixel_values_videos" if model.config.model_type == "vjepa2" else "pixel_values"
    with torch.no_grad():
        return model(**{key: pixels}, **_fixed_masks(model, pixels, seed))


def reference_tokenwise(model: nn.Module, pixels: torch.Tensor, fn) -> list[float]:
    sums, counts = {}, {}
    handles = []
    for i, block in enumerate(blocks_of(model)):
        def hook(module, args, output, i=i):
            out = output[0] if isinstance(output, tuple) else output
            cos = nn.functional.cosine_similarity(args[0].double(), out.double(), dim=-1).clamp(-1, 1)
            sums[i] = sums.get(i, 0.0) + float(fn(cos).sum())
            counts[i] = counts.get(i, 0) + cos.numel()
        handles.append(block.register_forward_hook(hook))
    forward(model, pixels)
    for h in handles:
        h.remove()
    return [sums[i] / counts[i] for i in range(len(sums))]


def last_block_output(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    seen = {}
    handle = blocks_of(model)[-1].register_forward_hook(
        lambda m, a, o: seen.__setitem__("out", o[0] if isinstance(o, tuple) else o))
    forward(model, pixels)
    handle.remove()
    return seen["out"]


def without_block(model: nn.Module, i: int) -> nn.Module:
    other = copy.deepcopy(model)
    blocks = blocks_of(other)
    del blocks[i]
    other.config.num_hidden_layers -= 1
    return other


NAMES = ["VideoMAEForVideoClassification", "ViTForImageClassification", "Dinov2Model+swiglu", "DINOv3ViTModel",
         "BeitForImageClassification", "Data2VecVisionModel", "VJEPA2Model", "DeiTForImageClassificationWithTeacher"]


@pytest.mark.parametrize("name", NAMES)
def test_block_influence_and_angular_match_hooks_of_the_tests_own(name):
    model = make_model(name)
    pixels = pixels_for(model)
    for criterion, fn in (("block-influence", lambda c: 1 - c), ("angular", lambda c: torch.arccos(c) / math.pi)):
        got = score_model(model, criterion, calibration=pixels, calibration_samples=6, batch_size=4, progress=False)
        np.testing.assert_allclose(got.scores, reference_tokenwise(model, pixels, fn), rtol=1e-4, atol=1e-6)
        assert got.prune_first == "lowest" and got.params["calibration_samples"] == 6


@pytest.mark.parametrize("name", ["VideoMAEModel", "ViTModel", "DINOv3ViTModel", "BeitModel", "VJEPA2ForVideoClassification"])
def test_removal_drift_matches_models_with_the_block_deleted(name):
    model = make_model(name)
    pixels = pixels_for(model, 4)
    full = last_block_output(model, pixels)
    want = []
    for i in range(len(blocks_of(model))):
        if i == len(blocks_of(model)) - 1:  # without the last block, the final states are its input
            seen: dict[str, torch.Tensor] = {}
            handle = blocks_of(model)[-1].register_forward_pre_hook(lambda m, a, seen=seen: seen.__setitem__("x", a[0]))
            forward(model, pixels)
            handle.remove()
            drifted = seen["x"]
        else:
            drifted = last_block_output(without_block(model, i), pixels)
        want.append(float((1 - nn.functional.cosine_similarity(drifted.double(), full.double(), dim=-1)).mean()))
    got = score_model(model, "removal-drift", calibration=pixels, calibration_samples=4, batch_size=4, progress=False)
    np.testing.assert_allclose(got.scores, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["VideoMAEForPreTraining", "ViTMAEForPreTraining", "DeiTForMaskedImageModeling"])
def test_reconstruction_is_the_models_own_loss_increase(name):
    model = make_model(name)
    pixels = pixels_for(model, 4)
    full = float(forward(model, pixels).loss)
    want = [float(forward(without_block(model, i), pixels).loss) - full for i in range(len(blocks_of(model)))]
    got = score_model(model, "reconstruction", calibration=pixels, calibration_samples=4, batch_size=4, progress=False)
    np.testing.assert_allclose(got.scores, want, rtol=1e-4, atol=1e-6)


def test_scores_are_deterministic_and_do_not_depend_on_the_batch_size():
    model = make_model("VideoMAEForPreTraining")
    pixels = pixels_for(model, 6)
    for criterion in ("block-influence", "removal-drift", "reconstruction"):
        a = score_model(model, criterion, calibration=pixels, calibration_samples=6, batch_size=2, progress=False)
        b = score_model(model, criterion, calibration=pixels, calibration_samples=6, batch_size=2, progress=False)
        c = score_model(model, criterion, calibration=pixels, calibration_samples=6, batch_size=6, progress=False)
        assert a.scores == b.scores
        np.testing.assert_allclose(a.scores, c.scores, rtol=1e-4, atol=1e-7)
    assert model.training is False


def test_no_calibration_is_one_line_that_says_what_to_pass():
    model = make_model("ViTModel")
    with pytest.raises(GardenerError, match=r"pass --calibration PATH .*images or videos.*'digits'"):
        score_model(model, "block-influence", progress=False)


def test_reconstruction_refuses_heads_without_their_own_loss():
    for name, extra in (("ViTForImageClassification", ""), ("BeitForMaskedImageModeling", "DALL-E tokenizer")):
        model = make_model(name)
        with pytest.raises(GardenerError, match=rf"needs a pretraining checkpoint with its decoder.*{extra}"):
            score_model(model, "reconstruction", calibration=pixels_for(model, 2), calibration_samples=2, progress=False)


def test_wrong_tensor_shapes_are_refused_naming_the_shape_needed(tmp_path):
    model = make_model("VideoMAEModel")  # 4 frames of 3x32x32
    torch.save({"pixel_values": torch.randn(4, 3, 32, 32)}, tmp_path / "images.pt")
    with pytest.raises(GardenerError, match=r"images.pt: pixel_values has shape \[4, 3, 32, 32\], but VideoMAEModel "
                                            r"takes \[N, T, C, H, W\] = \[N, 4, 3, 32, 32\]"):
        load_calibration(tmp_path / "images.pt", model, samples=4)
    with pytest.raises(GardenerError, match="holds 2 samples, fewer than the 4 asked for"):
        load_calibration(torch.randn(2, 4, 3, 32, 32), model, samples=4)
    with pytest.raises(GardenerError, match="NaN or inf"):
        load_calibration(torch.full((4, 4, 3, 32, 32), float("nan")), model, samples=4)
    with pytest.raises(GardenerError, match="no such file or folder"):
        load_calibration(tmp_path / "missing", model)


@pytest.mark.parametrize("suffix", [".pt", ".npy", ".safetensors"])
def test_tensor_files_give_exactly_their_inputs(tmp_path, suffix):
    from safetensors.torch import save_file

    model = make_model("ViTModel")
    x = torch.randn(5, 3, 32, 32)
    path = tmp_path / f"calib{suffix}"
    if suffix == ".pt":
        torch.save(x, path)
    elif suffix == ".npy":
        np.save(path, x.numpy())
    else:
        save_file({"pixel_values": x}, str(path))
    cal = load_calibration(path, model, samples=4)
    assert torch.equal(cal.pixel_values, x[:4]) and cal.description == f"4 inputs from calib{suffix}"


def test_image_folder_is_read_with_the_models_processor_and_too_few_readable_is_an_error(tmp_path):
    from PIL import Image

    model = make_model("ViTModel")
    src = save_with_processor(model, tmp_path / "model")
    folder = tmp_path / "photos" / "cats"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    cal = load_calibration(tmp_path / "photos", model, source=str(src), samples=3, seed=1)
    assert cal.pixel_values.shape == (3, 3, 32, 32) and cal.description == "3 images from photos (seed 1)"
    assert str(tmp_path) not in cal.description
    with pytest.raises(GardenerError, match=r"only 3 of the 4 images asked for could be read \(4 found, 1 unreadable\)"):
        load_calibration(tmp_path / "photos", model, source=str(src), samples=4)


def test_video_folders_flat_or_by_class_and_generated_digits(tmp_path, videos):
    model = make_model("VideoMAEForVideoClassification")  # 4 frames of 32x32
    src = save_with_processor(model, tmp_path / "model")
    by_class = load_calibration(videos["train"], model, source=str(src), samples=5)
    assert by_class.pixel_values.shape == (5, 4, 3, 32, 32) and by_class.description.startswith("5 clips from ")
    flat = tmp_path / "flat"
    flat.mkdir()
    for clip in sorted((videos["train"] / "left").iterdir())[:2]:
        (flat / clip.name).write_bytes(clip.read_bytes())
    assert load_calibration(flat, model, source=str(src), samples=2).pixel_values.shape == (2, 4, 3, 32, 32)
    digits = digit_calibration(model, 3, seed=2, source=str(src))
    again = digit_calibration(model, 3, seed=2, source=str(src))
    assert torch.equal(digits.pixel_values, again.pixel_values) and "moving-digit" in digits.description
    with pytest.raises(GardenerError, match="generates video clips"):
        digit_calibration(make_model("ViTModel"))


def test_cli_calibration_digits_and_folders_reach_the_record(tmp_path, videos, capsys):
    model = make_model("VideoMAEForPreTraining")
    src = save_with_processor(model, tmp_path / "m")
    from gardener_hf.data import data_name

    for spec, named in (("digits", "generated moving-digit clips"), (str(videos["train"]), "clips from ")):
        out = tmp_path / f"out-{len(named)}"
        assert main(["push", str(src), "--criterion", "removal-drift", "--calibration", spec, "--calibration-samples",
                     "3", "--keep", "3", "--dry-run", "--output-dir", str(out), "-q"]) == 0, capsys.readouterr().err
        record = json.loads(next(out.glob("*/gardener_pruning.json")).read_text())
        assert named in record["params"]["calibration"] and record["params"]["calibration_samples"] == 3
        card = next(out.glob("*/README.md")).read_text()
        assert f"--calibration {'digits' if spec == 'digits' else data_name(spec)} --calibration-samples 3" in card
        assert str(tmp_path) not in card


def test_protected_blocks_stay_whatever_the_criterion_says():
    model = make_model("ViTModel")
    scores = score_model(model, "l2", progress=False)  # block weights grow with depth: l2 removes 0 first
    assert scores.removal_order()[0] == 0
    plan = make_plan(scores, keep=2, protect=[0])
    assert 0 in plan.kept and plan.params["protected"] == [0] and plan.removal_order[-1] == 0
    with pytest.raises(PlanError, match="fewer than the 2 protected"):
        make_plan(scores, keep=1, protect=[0, 5])
    with pytest.raises(PlanError, match="names protected block"):
        make_plan(scores, remove=[0, 1], protect=[0])
    with pytest.raises(PlanError, match="below 6"):
        make_plan(scores, keep=3, protect=[6])


def test_cli_score_json_carries_calibration_and_protection(tmp_path, capsys):
    model = make_model("ViTModel")
    src = save_with_processor(model, tmp_path / "m")
    torch.save({"pixel_values": pixels_for(model, 4)}, tmp_path / "calib.pt")
    assert main(["score", str(src), "--criterion", "angular", "--calibration", str(tmp_path / "calib.pt"),
                 "--calibration-samples", "4", "--protect", "0,5", "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["criterion"] == "angular" and doc["protected"] == [0, 5]
    assert doc["params"]["calibration"] == "4 inputs from calib.pt" and doc["params"]["calibration_samples"] == 4
    assert doc["removal_order"][-2:] == sorted([0, 5], key=lambda b: doc["ranks"][b], reverse=True)
    assert main(["score", str(src), "--criterion", "removal-drift", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --calibration PATH" in err[0]


def test_prune_with_calibration_records_it(tmp_path, capsys):
    model = make_model("ViTMAEForPreTraining")
    src = save_with_processor(model, tmp_path / "m")
    torch.save(pixels_for(model, 4), tmp_path / "calib.pt")
    out = tmp_path / "out"
    assert main(["prune", str(src), "--criterion", "reconstruction", "--calibration", str(tmp_path / "calib.pt"),
                 "--calibration-samples", "4", "--keep", "3", "--protect", "5", "--output-dir", str(out), "-q"]) == 0
    record = json.loads((out / "gardener_pruning.json").read_text())
    assert record["criterion"] == "reconstruction" and 5 in record["kept_blocks"]
    assert record["params"]["calibration"] == "4 inputs from calib.pt" and record["params"]["protected"] == [5]
    assert str(tmp_path) not in (out / "gardener_pruning.json").read_text()


def test_calibration_object_is_used_as_given():
    model = make_model("ViTModel")
    cal = Calibration(pixels_for(model, 4), "4 frames of my own", seed=3)
    scores = score_model(model, "block-influence", calibration=cal, calibration_samples=4, progress=False)
    assert scores.params == {"calibration": "4 frames of my own", "calibration_samples": 4, "calibration_seed": 3}


def test_half_precision_models_score_in_their_own_precision():
    for name in ("VideoMAEForPreTraining", "BeitModel"):
        model = make_model(name).half()
        pixels = pixels_for(model, 2)  # float32, as calibration inputs are
        for criterion in ("block-influence", "removal-drift") + (("reconstruction",) if name.startswith("Video") else ()):
            scores = score_model(model, criterion, calibration=pixels, progress=False)
            assert all(math.isfinite(v) for v in scores.scores), (name, criterion)
        assert next(model.parameters()).dtype == torch.float16


def test_submodule_modes_and_the_block_list_are_restored():
    model = make_model("ViTMAEForPreTraining").train()
    blocks_of(model)[2].eval()
    modes = [m.training for m in model.modules()]
    score_model(model, "reconstruction", calibration=pixels_for(model, 2), progress=False)
    assert [m.training for m in model.modules()] == modes and len(blocks_of(model)) == 6


def test_a_split_image_folder_calibrates_on_its_training_split_and_counts_are_described(tmp_path):
    from PIL import Image

    model = make_model("ViTModel")
    src = save_with_processor(model, tmp_path / "model")
    for split, value in (("train", 10), ("validation", 250)):
        (tmp_path / "data" / split).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(tmp_path / "data" / split / f"{i}.png")
    cal = load_calibration(tmp_path / "data", model, source=str(src), samples=4)
    want = (10 / 255 - 0.5) / 0.5  # the processor's rescale and normalisation of the training images' value
    assert torch.allclose(cal.pixel_values, torch.full_like(cal.pixel_values, want), atol=1e-5)
    assert cal.description == "4 images from data/train (seed 0)"
    scores = score_model(model, "angular", calibration=cal, calibration_samples=2, progress=False)
    assert scores.params["calibration"] == "2 images from data/train (seed 0)" and scores.params["calibration_samples"] == 2
    torch.save(pixels_for(model, 3), tmp_path / "three.pt")  # fewer than the default 32, none asked for: all three
    assert load_calibration(tmp_path / "three.pt", model).num_samples == 3


def test_sixteen_bit_greyscale_images_keep_their_values(tmp_path):
    from PIL import Image

    model = make_model("ViTModel")
    src = save_with_processor(model, tmp_path / "model")
    (tmp_path / "scans").mkdir()
    Image.fromarray(np.full((32, 32), 32768, dtype=np.uint16)).save(tmp_path / "scans" / "a.png")  # mid grey
    assert Image.open(tmp_path / "scans" / "a.png").mode.startswith("I")
    cal = load_calibration(tmp_path / "scans", model, source=str(src), samples=1)
    want = (128 / 255 - 0.5) / 0.5
    assert torch.allclose(cal.pixel_values, torch.full_like(cal.pixel_values, want), atol=1e-5)


def test_a_processor_config_json_is_read_for_its_image_processor(tmp_path):
    from PIL import Image

    model = make_model("ViTModel")
    model.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "processor_config.json").write_text(json.dumps({"image_processor": {
        "size": {"height": 32, "width": 32}, "image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}}))
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((32, 32, 3), 51, dtype=np.uint8)).save(tmp_path / "imgs" / "a.png")
    cal = load_calibration(tmp_path / "imgs", model, source=str(tmp_path / "model"), samples=1)
    assert torch.allclose(cal.pixel_values, torch.full_like(cal.pixel_values, 51 / 255), atol=1e-6)
