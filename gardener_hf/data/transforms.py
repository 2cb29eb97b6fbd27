"""Resize, crop, flip and normalise decoded clips the way a VideoMAE image processor does (`VideoTransform`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

logger = logging.getLogger(__name__)


def _pair(value: Any, name: str) -> tuple[int, int]:
    """`(h, w)` from an int or a pair of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    """Per-channel `(r, g, b)` from a float or three floats."""
    triple = (value,) * 3 if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(triple) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel), got {value!r}")
    return tuple(float(v) for v in triple)


@dataclass
class VideoTransform:
    """Resize, crop, flip and normalise a decoded clip, the way VideoMAE's processor does.

    Eval: the short side is resized to `short_side` (bilinear, antialiased), then centre-cropped to
    `crop_size`. Train: the short side is resized to `short_side * U(scale_range)`, randomly cropped
    and, if `hflip`, flipped with probability 0.5; one crop and flip for the whole clip, so motion is
    preserved. Pixel values become `(x * rescale_factor - mean) / std`.

    Args:
        crop_size: output `(height, width)`.
        short_side: target short side before cropping; None keeps the decoded size.
        mean: per-channel mean subtracted after rescaling.
        std: per-channel standard deviation divided by.
        train: random (training) instead of deterministic (eval) resizing and cropping.
        scale_range: range of the random short-side scale factor in training.
        hflip: random horizontal flips in training.
        resize_to: resize to exactly `(height, width)` instead of by the short side (processors
            whose `size` is `{"height", "width"}`); scaled by `scale_range` in training.
        rescale_factor: multiplies the uint8 values before normalisation (1/255).

    Raises:
        ValueError: on malformed sizes, a zero std or an invalid `scale_range`.

    Example:
        >>> t = VideoTransform(crop_size=(32, 32), short_side=40, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> t(np.zeros((4, 48, 64, 3), dtype=np.uint8)).shape
        torch.Size([4, 3, 32, 32])
    """

    crop_size: tuple[int, int]
    short_side: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: bool = False
    scale_range: tuple[float, float] = (1.0, 1.25)
    hflip: bool = True
    resize_to: tuple[int, int] | None = None
    rescale_factor: float = 1 / 255

    def __post_init__(self) -> None:
        self.crop_size = _pair(self.crop_size, "crop_size")
        if self.short_side is not None and (int(self.short_side) != self.short_side or self.short_side < 1):
            raise ValueError(f"short_side must be a positive int or None, got {self.short_side!r}")
        if self.resize_to is not None:
            self.resize_to = _pair(self.resize_to, "resize_to")
        self.mean, self.std = _triple(self.mean, "mean"), _triple(self.std, "std")
        if any(s == 0 for s in self.std):
            raise ValueError(f"std must not contain zeros, got {self.std}")
        low, high = (float(v) for v in self.scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        self.scale_range = (low, high)

    @classmethod
    def from_processor(cls, processor: Any, *, train: bool, hflip: bool = True) -> VideoTransform:
        """Build the transform matching a VideoMAE image processor.

        Args:
            processor: a `transformers` image processor (e.g. `VideoMAEImageProcessor`), its
                `to_dict()`, or a folder / file holding `preprocessor_config.json`.
            train: training (random) or eval (deterministic) transform.
            hflip: random horizontal flips in training.

        Returns:
            The transform. `size={"shortest_edge": S}` resizes the short side to S;
            `size={"height", "width"}` resizes to exactly that; `do_resize=False` keeps the decoded
            size; `do_center_crop=False` crops to the resized size (SxS for shortest_edge, with a
            warning: batches need one size); `do_normalize=False` / `do_rescale=False` skip those steps.

        Raises:
            DataError: if the config file is missing or its sizes are malformed.
            TypeError: if `processor` is none of the accepted kinds.

        Example:
            >>> from transformers import VideoMAEImageProcessor  # doctest: +SKIP
            >>> VideoTransform.from_processor(VideoMAEImageProcessor(), train=False).crop_size  # doctest: +SKIP
            (224, 224)
        """
        config = _processor_config(processor)
        try:
            short_side, resize_to = _resize_from_config(config)
            crop_size = _crop_from_config(config, short_side, resize_to)
        except (TypeError, ValueError, KeyError) as err:
            raise DataError(f"malformed image processor sizes (size={config.get('size')!r}, "
                            f"crop_size={config.get('crop_size')!r}): {err}") from err
        if config.get("do_normalize", True):
            mean, std = config.get("image_mean", (0.5,) * 3), config.get("image_std", (0.5,) * 3)
        else:
            mean, std = (0.0,) * 3, (1.0,) * 3
        rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        return cls(crop_size=crop_size, short_side=short_side, mean=mean, std=std, train=train, hflip=hflip,
                   resize_to=resize_to, rescale_factor=rescale)

    def __call__(self, frames: np.ndarray | torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Transform one clip.

        Args:
            frames: uint8 [T, H, W, 3] RGB clip (numpy array or CPU tensor).
            rng: randomness for the train transform; a fresh unseeded generator when None.

        Returns:
            float32 tensor [T, 3, crop_h, crop_w].

        Raises:
            ValueError: if `frames` is not a uint8 [T, H, W, 3] clip.
        """
        clip = _as_clip_tensor(frames)  # uint8 [T, 3, H, W], channels-last memory like the decoder's output
        if self.train and rng is None:
            rng = np.random.default_rng()
        scale = float(rng.uniform(*self.scale_range)) if self.train else 1.0
        target = self._resized_size(clip.shape[-2], clip.shape[-1], scale)
        if target != tuple(clip.shape[-2:]):
            # uint8 bilinear+antialias has a fast CPU kernel (about 8x the float one) and matches PIL
            clip = F.interpolate(clip, size=target, mode="bilinear", antialias=True, align_corners=False)
        clip = _pad_to(clip, self.crop_size)
        clip = self._crop(clip, rng)
        if self.train and self.hflip and rng.random() < 0.5:
            clip = clip.flip(-1)
        out = clip.to(torch.float32, memory_format=torch.contiguous_format)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return out.mul_(self.rescale_factor).sub_(mean).div_(std)

    def _resized_size(self, height: int, width: int, scale: float) -> tuple[int, int]:
        """Size after resizing, following transformers' shortest-edge rule (long side truncated)."""
        if self.resize_to is not None:
            return round(self.resize_to[0] * scale), round(self.resize_to[1] * scale)
        short, long = min(height, width), max(height, width)
        new_short = round((self.short_side or short) * scale)
        if new_short == short:
            return height, width
        new_long = int(new_short * long / short)
        return (new_short, new_long) if height <= width else (new_long, new_short)

    def _crop(self, clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        """Centre (eval) or random (train) crop of `crop_size`, the same for every frame."""
        height, width = clip.shape[-2:]
        crop_h, crop_w = self.crop_size
        if self.train:
            top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        else:
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
        return clip[..., top : top + crop_h, left : left + crop_w]


def _as_clip_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [T, H, W, 3] array or tensor -> uint8 tensor view [T, 3, H, W]."""
    clip = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.asarray(frames))
    if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"frames must be a uint8 [T, H, W, 3] clip, got {clip.dtype} {tuple(clip.shape)}")
    return clip.permute(0, 3, 1, 2)


def _pad_to(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad a clip symmetrically up to at least `size` (as transformers' centre crop does)."""
    pad_h, pad_w = max(0, size[0] - clip.shape[-2]), max(0, size[1] - clip.shape[-1])
    if not pad_h and not pad_w:
        return clip
    return F.pad(clip, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


def _processor_config(processor: Any) -> dict[str, Any]:
    """The processor settings as a plain dict, from an object, a dict or a folder/file path."""
    if isinstance(processor, Mapping):
        return dict(processor)
    if isinstance(processor, (str, os.PathLike)):
        path = Path(processor)
        if path.is_dir():
            path = path / "preprocessor_config.json"
        if not path.is_file():
            raise DataError(f"no image processor config at {path}; expected a folder with preprocessor_config.json")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from err
    if hasattr(processor, "to_dict"):
        return processor.to_dict()
    raise TypeError(f"expected an image processor, a dict or a path, got {type(processor).__name__}")


def _resize_from_config(config: Mapping[str, Any]) -> tuple[int | None, tuple[int, int] | None]:
    """`(short_side, resize_to)` from a processor's `size` / `do_resize`."""
    if not config.get("do_resize", True):
        return None, None
    size = config.get("size")
    if isinstance(size, int):  # legacy configs: an int is the shortest edge for VideoMAE
        return size, None
    if isinstance(size, Mapping) and size.get("shortest_edge"):
        return int(size["shortest_edge"]), None
    if isinstance(size, Mapping) and size.get("height") and size.get("width"):
        resize_to = _pair((size["height"], size["width"]), "size")
        return min(resize_to), resize_to
    raise ValueError("size needs 'shortest_edge' or 'height' and 'width'")


def _crop_from_config(config: Mapping[str, Any], short_side: int | None, resize_to: tuple[int, int] | None
                      ) -> tuple[int, int]:
    """Output size from `crop_size` / `do_center_crop`, falling back to the resized size.

    A processor that names no crop at all (ViT's, DINOv2's `size={"height", "width"}`) does not crop.
    """
    if config.get("do_center_crop", config.get("crop_size") is not None):
        if config.get("crop_size") is None:
            raise ValueError("do_center_crop is set but crop_size is missing")
        crop = config["crop_size"]
        return _pair(crop if isinstance(crop, int) else (crop["height"], crop["width"]), "crop_size")
    if resize_to is not None:
        return resize_to
    if short_side is not None:
        logger.warning("do_center_crop=False with a shortest-edge resize gives frames of varying size; "
                       "centre-cropping to %dx%d so that clips can be batched", short_side, short_side)
        return short_side, short_side
    raise ValueError("with do_resize=False and do_center_crop=False the output size is unknown")
