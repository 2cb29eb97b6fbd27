"""Calibration inputs from images and videos on disk: `load_calibration`.

Accepts everything `gardener_hf.calibration.resolve_calibration` does (tensors, tensor files), plus

* a folder of images (image models) or of videos (video models), searched recursively; labels, when the folder
  has class subfolders, are ignored (a folder with `train`/`validation` splits gives its `train` split);
* a CSV / JSON / JSONL manifest of videos (the finetune data formats; labels ignored).

Images and videos are prepared by the model's own processor config (resize, centre crop, normalise: the
`VideoTransform` of the finetune evaluation path), videos sampled uniformly to the model's clip length.
Samples are drawn with a fixed seed; asking for more samples than can be read is an error that says how many
were readable.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..arch import get_arch
from ..calibration import (
    DEFAULT_SAMPLES,
    IMAGE_EXTENSIONS,
    TENSOR_EXTENSIONS,
    Calibration,
    check_shape,
    expected_shape,
    resolve_calibration,
)
from ..errors import DataError, GardenerError
from .io import count_frames, read_frames
from .sampling import sample_indices
from .sources import VIDEO_EXTENSIONS, data_name, find_videos
from .transforms import VideoTransform

logger = logging.getLogger(__name__)

#: what transformers' image processors default to when a processor config names no statistics
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def load_calibration(
    spec: Any,
    model: Any,
    *,
    source: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Calibration:
    """Read calibration inputs for `model` from a folder, a manifest, a tensor file or a tensor.

    Args:
        spec: what to read (see the module docstring).
        model: the model they are for (its config gives the input shape, clip length and model type).
        source: the checkpoint whose processor config prepares images and videos (default: the model's
            `_name_or_path`).
        samples: how many samples to use: a seeded draw of `samples` (default `DEFAULT_SAMPLES`) from a folder;
            the first `samples` (default: all) of a tensor.
        seed: seed of the draw.
        revision / token: of `source` on the Hub.

    Raises:
        GardenerError: a path that does not exist or holds nothing usable, fewer readable samples than asked,
            or inputs of the wrong shape.
    """
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise GardenerError(f"calibration samples must be a positive integer, got {samples!r}")
    path = Path(str(spec)) if isinstance(spec, (str, Path)) else None
    if path is None or (path.is_file() and path.suffix.lower() in TENSOR_EXTENSIONS) or not path.exists():
        return resolve_calibration(spec, model, samples=samples, seed=seed)
    samples = samples or DEFAULT_SAMPLES
    if path.is_dir() and (path / "train").is_dir():  # a folder with splits: calibrate on its training split
        path = path / "train"
    transform = VideoTransform.from_processor(processor_config(model, source, revision, token), train=False)
    if get_arch(model).video:
        return _videos(path, model, transform, samples, seed)
    return _images(path, model, transform, samples, seed)


def _public(path: Path) -> str:
    """How descriptions name a folder or file: `data_name` (its name, with the parent for a split folder; `.` by
    the folder's own name), never the full path."""
    return data_name(str(path.resolve()))


def processor_config(model: Any, source: str | None, revision: str | None = None,
                     token: str | bool | None = None) -> dict[str, Any]:
    """The source's processor config; the model's size with ImageNet statistics when it has none."""
    from ..checkpoint import resolve_file
    from ..constants import PROCESSOR_FILES

    source = source or getattr(model.config, "_name_or_path", "") or ""
    if source:
        for name in PROCESSOR_FILES:
            try:
                path = resolve_file(source, name, revision=revision, token=token, required=False)
            except GardenerError:
                path = None
            if path is None:
                continue
            config = json.loads(Path(path).read_text())
            for nested in ("image_processor", "video_processor"):  # processor_config.json nests them
                if isinstance(config.get(nested), dict):
                    return config[nested]
            return config
    height, width = expected_shape(model)[-2:]
    logger.warning("no processor config for the calibration inputs: resizing to %dx%d with ImageNet mean and std",
                   height, width)
    return {"size": {"shortest_edge": height}, "crop_size": {"height": height, "width": width},
            "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}


def _draw(paths: list[Path], seed: int) -> list[Path]:
    """Every path, in a seeded order: the first readable ones are used."""
    return [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]


def _as_rgb(image: Any) -> Any:
    """An RGB PIL image; 16-bit and 32-bit integer greyscale scaled to 8 bits first (PIL's convert clips them white)."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))
    return image.convert("RGB")


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
                frame = np.asarray(_as_rgb(image))[None]
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable += 1
            continue
        out.append(transform(frame)[0])
    _enough(out, samples, len(files), unreadable, path.name, "images")
    pixels = check_shape(torch.stack(out), model, path.name)
    return Calibration(pixels, f"{samples} images from {_public(path)} (seed {seed})", seed, _public(path))


def _videos(path: Path, model: Any, transform: Any, samples: int, seed: int) -> Calibration:
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
    return Calibration(pixels, f"{samples} clips from {name} (seed {seed})", seed, name)


def _enough(out: list, samples: int, found: int, unreadable: int, where: str, kind: str) -> None:
    if len(out) < samples:
        raise GardenerError(
            f"calibration {where}: only {len(out)} of the {samples} {kind} asked for could be read ({found} found, "
            f"{unreadable} unreadable); pass --calibration-samples {max(len(out), 1)} or add {kind}"
        )
