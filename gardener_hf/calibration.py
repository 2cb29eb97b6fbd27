"""A few unlabeled inputs for the calibrated criteria (`block-influence`, `angular`, `removal-drift`, `reconstruction`).

A `Calibration` is model-ready `pixel_values` and one line saying where they came from (never a local path).
This core module makes one from a tensor, or from a tensor file: `.pt` / `.pth` (read with
`weights_only=True`), `.npy` (no pickles) or `.safetensors`, holding a `pixel_values` tensor (or a single
tensor) already shaped for the model, so experts and tests feed exact inputs. Folders of images or videos and
manifests are read by `gardener_hf.data.load_calibration` (the model's own processor prepares them); generated
moving-digit clips come from `gardener_hf.research.synthetic.digit_calibration`. The command line's
`--calibration` takes all of these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arch import get_arch
from .errors import GardenerError

logger = logging.getLogger(__name__)

#: default number of calibration samples
DEFAULT_SAMPLES = 32
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
TENSOR_EXTENSIONS = (".pt", ".pth", ".npy", ".safetensors")
DIGITS = "digits"


@dataclass
class Calibration:
    """Model-ready calibration inputs.

    Attributes:
        pixel_values: `[N, C, H, W]` for image models, `[N, T, C, H, W]` for video models, float32.
        description: where they came from, e.g. `32 clips from ucf101/train (seed 0)`; safe to publish.
        seed: the seed samples were drawn (and masks generated) with.
        spec: what to pass to `--calibration` to get them again (a folder's public name, `digits`), if known.
    """

    pixel_values: torch.Tensor
    description: str
    seed: int = 0
    spec: str | None = None

    @property
    def num_samples(self) -> int:
        return int(self.pixel_values.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """What the pruning record and the card say about the calibration."""
        return {"calibration": self.description, "calibration_samples": self.num_samples, "calibration_seed": self.seed}


def expected_shape(model: Any) -> tuple[int | None, ...]:
    """The per-sample input shape the model takes: `(C, H, W)` or `(T, C, H, W)` (None: any size)."""
    config = model.config
    spec = get_arch(config)
    size = getattr(config, spec.size_key)
    height, width = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    channels = getattr(config, "num_channels", None) or getattr(config, "in_chans", 3)
    if spec.frames_key:
        return getattr(config, spec.frames_key), channels, height, width
    return channels, height, width


def input_name(model: Any) -> str:
    """The forward argument that takes pixels (`pixel_values`; V-JEPA 2: `pixel_values_videos`)."""
    return "pixel_values_videos" if get_arch(model).model_type == "vjepa2" else "pixel_values"


def check_shape(pixel_values: torch.Tensor, model: Any, where: str) -> torch.Tensor:
    """Refuse calibration inputs the model cannot take, naming the shape it needs."""
    want = expected_shape(model)
    shape = tuple(pixel_values.shape)
    spec = get_arch(model)
    resizable = spec.model_type in ("dinov2", "dinov2_with_registers", "dinov3_vit")  # interpolate their grids
    ok = len(shape) == len(want) + 1 and shape[0] >= 1
    if ok:
        for got, need, axis in zip(shape[1:], want, range(len(want)), strict=True):
            spatial = axis >= len(want) - 2
            if spatial and resizable:
                ok &= got % int(model.config.patch_size) == 0
            else:
                ok &= got == need
    if not ok:
        dims = "[N, T, C, H, W]" if len(want) == 4 else "[N, C, H, W]"
        raise GardenerError(
            f"calibration {where}: pixel_values has shape {list(shape)}, but {type(model).__name__} takes {dims} = "
            f"[N, {', '.join(map(str, want))}]" + (" (H and W: multiples of the patch size)" if resizable else "")
        )
    if not pixel_values.is_floating_point():
        raise GardenerError(f"calibration {where}: pixel_values must be floating point (normalised), got {pixel_values.dtype}")
    if not bool(torch.isfinite(pixel_values).all()):
        raise GardenerError(f"calibration {where}: pixel_values holds NaN or inf")
    return pixel_values.to(torch.float32)


def resolve_calibration(
    spec: Any, model: Any, *, samples: int | None = None, seed: int = 0
) -> Calibration:
    """A `Calibration` for `model` from a `Calibration`, a tensor or array, a tensor file, or a function of the model.

    Args:
        spec: the inputs (see the module docstring); a callable is called with `model` and must return one of
            the others.
        model: the model they are for (its config gives the input shape).
        samples: how many to use (the first `samples`); None: all of them.
        seed: recorded with them (it also seeds the masks of `reconstruction`).

    Raises:
        GardenerError: a path that does not exist or is not a tensor file, too few samples, or inputs of the
            wrong shape.
    """
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise GardenerError(f"calibration samples must be a positive integer, got {samples!r}")
    if callable(spec) and not isinstance(spec, (torch.Tensor, np.ndarray)):
        spec = spec(model)
    if isinstance(spec, Calibration):
        pixels = check_shape(spec.pixel_values, model, "inputs")
        kept = _first(pixels, samples or len(pixels), "the given inputs")
        description = spec.description
        if len(kept) != len(pixels) and description.startswith(f"{len(pixels)} "):  # "32 clips ..." -> "8 clips ..."
            description = f"{len(kept)} " + description[len(f"{len(pixels)} "):]
        return Calibration(kept, description, spec.seed, spec.spec)
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        pixels = check_shape(torch.as_tensor(spec), model, "tensor")
        kept = _first(pixels, samples or len(pixels), "the given tensor")
        return Calibration(kept, f"{len(kept)} given inputs", seed)
    path = Path(str(spec))
    if not path.exists():
        raise GardenerError(f"calibration {path.name or spec}: no such file or folder (pass a tensor file, an image or "
                            "video folder, a CSV/JSON manifest, or 'digits' on the command line; in Python, "
                            "research.synthetic.digit_calibration(model) generates those clips)")
    if not (path.is_file() and path.suffix.lower() in TENSOR_EXTENSIONS):
        raise GardenerError(f"calibration {path.name}: folders and manifests are read by "
                            "gardener_hf.data.load_calibration(path, model); here pass a tensor or a tensor file")
    pixels = check_shape(read_tensor_file(path), model, path.name)
    kept = _first(pixels, samples or len(pixels), path.name)
    return Calibration(kept, f"{len(kept)} inputs from {path.name}", seed, path.name)


def _first(pixels: torch.Tensor, samples: int, where: str) -> torch.Tensor:
    if len(pixels) < samples:
        raise GardenerError(f"calibration: {where} holds {len(pixels)} samples, fewer than the {samples} asked for; "
                            f"pass --calibration-samples {len(pixels)} or more inputs")
    return pixels[:samples]


def read_tensor_file(path: Path) -> torch.Tensor:
    """The `pixel_values` tensor of a `.pt` / `.pth` / `.npy` / `.safetensors` file (no pickles executed)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data: Any = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- every reader has its own errors; one line names the file
        raise GardenerError(f"calibration {path.name}: cannot read it as a tensor file: {str(err).splitlines()[0]}") from None
    if isinstance(data, dict):
        for key in ("pixel_values", "pixel_values_videos"):
            if key in data:
                return torch.as_tensor(data[key])
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise GardenerError(f"calibration {path.name}: holds {sorted(data)}; name the inputs 'pixel_values'")
        return tensors[0]
    if not isinstance(data, torch.Tensor):
        raise GardenerError(f"calibration {path.name}: holds a {type(data).__name__}, not a tensor")
    return data
