"""A few unlabeled inputs for the calibrated criteria (`block-influence`, `angular`, `removal-drift`, `reconstruction`).

`load_calibration` turns what a user has into a `Calibration`: model-ready `pixel_values` and one line saying
where they came from (never a local path). It accepts

* a tensor file: `.pt` / `.pth` (read with `weights_only=True`), `.npy` (no pickles) or `.safetensors`, holding
  a `pixel_values` tensor (or a single tensor) already shaped for the model, so experts and tests feed exact
  inputs;
* a folder of images (image models) or of videos (video models), searched recursively; labels, when the folder
  has class subfolders, are ignored;
* a CSV / JSON / JSONL manifest of videos (the finetune data formats; labels ignored);
* `digits`: clips of moving handwritten digits generated in memory (scikit-learn's digits), so the embedded
  default can be calibrated offline.

Images and videos are prepared by the model's own processor config (resize, centre crop, normalise: the
`VideoTransform` of the finetune evaluation path), videos sampled uniformly to the model's clip length.
Samples are drawn with a fixed seed; asking for more samples than can be read is an error that says how many
were readable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .arch import get_arch
from .errors import DataError, GardenerError

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
    """

    pixel_values: torch.Tensor
    description: str
    seed: int = 0

    @property
    def num_samples(self) -> int:
        return int(self.pixel_values.shape[0])

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.num_samples, batch_size):
            yield self.pixel_values[start:start + batch_size]

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


def load_calibration(
    spec: str | Path | torch.Tensor | np.ndarray | Calibration,
    model: Any,
    *,
    source: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Calibration:
    """Read calibration inputs for `model`.

    Args:
        spec: a tensor / array / `Calibration`, a tensor file, an image or video folder, a manifest, or `digits`.
        model: the model they are for (its config gives the input shape, clip length and model type).
        source: the checkpoint whose processor config prepares images and videos (default: the model's
            `_name_or_path`).
        samples: how many samples to use (the first `samples` of a tensor; a seeded draw from a folder).
        seed: seed of the draw (and, in `digits`, of the generated clips).
        revision / token: of `source` on the Hub.

    Returns:
        A `Calibration` whose `pixel_values` the model takes.

    Raises:
        GardenerError: a path that does not exist or holds nothing usable, fewer readable samples than
            asked, or inputs of the wrong shape.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GardenerError(f"calibration samples must be a positive integer, got {samples!r}")
    if isinstance(spec, Calibration):
        pixels = check_shape(spec.pixel_values, model, "inputs")
        return Calibration(_first(pixels, samples, "the given inputs"), spec.description, spec.seed)
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        pixels = check_shape(torch.as_tensor(spec), model, "tensor")
        return Calibration(_first(pixels, samples, "the given tensor"), f"{min(samples, len(pixels))} given inputs", seed)
    text = str(spec)
    if text == DIGITS:
        return _digits(model, samples, seed, source, revision, token)
    path = Path(text)
    if not path.exists():
        raise GardenerError(f"calibration {path.name or text}: no such file or folder (pass a tensor file, an image or "
                            f"video folder, a CSV/JSON manifest, or 'digits')")
    if path.is_file() and path.suffix.lower() in TENSOR_EXTENSIONS:
        pixels = check_shape(_read_tensor(path), model, path.name)
        return Calibration(_first(pixels, samples, path.name), f"{min(samples, len(pixels))} inputs from {path.name}", seed)
    from .data import VideoTransform

    transform = VideoTransform.from_processor(_processor_config(model, source, revision, token), train=False)
    if get_arch(model).video:
        return _videos(path, model, transform, samples, seed)
    return _images(path, model, transform, samples, seed)


def _public(path: Path) -> str:
    """How descriptions name a folder or file: `data_name` (its name, with the parent for a split folder)."""
    from .data import data_name

    return data_name(str(path))


def _first(pixels: torch.Tensor, samples: int, where: str) -> torch.Tensor:
    if len(pixels) < samples:
        raise GardenerError(f"calibration: {where} holds {len(pixels)} samples, fewer than the {samples} asked for; "
                            f"pass --calibration-samples {len(pixels)} or more inputs")
    return pixels[:samples]


def _read_tensor(path: Path) -> torch.Tensor:
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


def _processor_config(model: Any, source: str | None, revision: str | None, token: str | bool | None) -> dict[str, Any]:
    """The source's processor config; the model's size with ImageNet statistics when it has none."""
    import json

    from .checkpoint import resolve_file
    from .constants import PROCESSOR_FILES

    source = source or getattr(model.config, "_name_or_path", "") or ""
    if source:
        for name in PROCESSOR_FILES[:2]:
            try:
                path = resolve_file(source, name, revision=revision, token=token, required=False)
            except GardenerError:
                path = None
            if path is not None:
                return json.loads(Path(path).read_text())
    height, width = expected_shape(model)[-2:]
    logger.warning("no processor config for the calibration inputs: resizing to %dx%d with ImageNet mean and std",
                   height, width)
    return {"size": {"shortest_edge": height}, "crop_size": {"height": height, "width": width},
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def _draw(paths: list[Path], seed: int) -> list[Path]:
    """Every path, in a seeded order: the first readable ones are used."""
    return [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]


def _images(path: Path, model: Any, transform: Any, samples: int, seed: int) -> Calibration:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise GardenerError(f"calibration {path.name}: an image model takes a folder of images or a tensor file")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise GardenerError(f"calibration {path.name}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    out, unreadable = [], 0
    for file in _draw(files, seed):
        if len(out) == samples:
            break
        try:
            with Image.open(file) as image:
                frame = np.asarray(image.convert("RGB"))[None]
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable += 1
            continue
        out.append(transform(frame)[0])
    _enough(out, samples, len(files), unreadable, path.name, "images")
    pixels = check_shape(torch.stack(out), model, path.name)
    return Calibration(pixels, f"{samples} images from {_public(path)} (seed {seed})", seed)


def _videos(path: Path, model: Any, transform: Any, samples: int, seed: int) -> Calibration:
    from .data import VIDEO_EXTENSIONS, read_frames, sample_indices
    from .data.io import count_frames
    from .data.sources import find_videos

    if path.is_dir() and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)  # a flat folder
        name = _public(path)
    else:
        try:
            items, _, _ = find_videos(str(path), split="train", progress=False)
        except (DataError, GardenerError) as err:
            raise GardenerError(f"calibration {path.name}: {err}") from None
        files = [Path(item.path) for item in items]
        name = _public(path)
    if not files:
        raise GardenerError(f"calibration {path.name}: no videos ({', '.join(VIDEO_EXTENSIONS)}) found")
    num_frames = expected_shape(model)[0]
    out, unreadable = [], 0
    for file in _draw(files, seed):
        if len(out) == samples:
            break
        try:
            total = count_frames(str(file))
            frames = read_frames(str(file), sample_indices(total, num_frames, mode="uniform"))
        except (DataError, ValueError, OSError):
            unreadable += 1
            continue
        out.append(transform(frames))
    _enough(out, samples, len(files), unreadable, path.name, "videos")
    pixels = check_shape(torch.stack(out), model, path.name)
    return Calibration(pixels, f"{samples} clips from {name} (seed {seed})", seed)


def _enough(out: list, samples: int, found: int, unreadable: int, where: str, kind: str) -> None:
    if len(out) < samples:
        raise GardenerError(
            f"calibration {where}: only {len(out)} of the {samples} {kind} asked for could be read ({found} found, "
            f"{unreadable} unreadable); pass --calibration-samples {max(len(out), 1)} or add {kind}"
        )


def _digits(model: Any, samples: int, seed: int, source: str | None, revision: str | None,
            token: str | bool | None) -> Calibration:
    """Clips of moving handwritten digits, generated in memory (video models only)."""
    if not get_arch(model).video:
        raise GardenerError("calibration 'digits' generates video clips; an image model takes an image folder or a tensor file")
    from .research.synthetic import moving_digits_batch

    num_frames, _, height, _ = expected_shape(model)
    config = _processor_config(model, source, revision, token)
    clips = moving_digits_batch(np.random.default_rng(seed), samples, num_frames=num_frames, size=height,
                                scale=max(1, height // 16), subset="train")
    from .data import VideoTransform

    transform = VideoTransform.from_processor(config, train=False)
    pixels = check_shape(torch.stack([transform(clip.numpy()) for clip in clips]), model, "digits")
    return Calibration(pixels, f"{samples} generated moving-digit clips (seed {seed})", seed)
