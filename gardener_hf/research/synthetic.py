"""Synthetic labelled and unlabelled videos, made offline: moving shapes and moving handwritten digits.

Two families, both deterministic for a given `numpy.random.Generator` state:

* **Moving shapes** (`moving_shape_clip`, `make_motion_dataset`): a bright square or disc moving
  left, right, up or down over a dark, noisy background. A single frame says nothing about the
  class, so a model can only solve it by looking across time: a quick, offline check that
  finetuning and pruning keep temporal modelling (the tests use it).
* **Moving digits** from scikit-learn's bundled handwritten digits (`sklearn.datasets.load_digits`
  ships 1,797 greyscale 8x8 digits inside the package, so nothing is downloaded). Each digit is
  upscaled (nearest neighbour, 2x = 16 px by default), optionally tinted with a random bright colour,
  and moved across a dark background; in `moving_digits_clip` one or more digits move at random
  speeds and bounce off the walls (a small Moving-MNIST). These clips feed masked-video pretraining
  on the fly (`moving_digits_batch`, no disk), and two labelled tasks made of the same kind of video
  feed finetuning and the study (`make_digit_dataset`, mp4 files in the UCF101 layout):

  * `"direction"`: one digit moves left, right, up or down (4 classes); optional static distractors;
  * `"moving-digit"`: one digit moves, the others stand still; the class is the moving digit (10 classes).

  The 1,797 digit images are split once, by a fixed permutation, into `"train"` (80%) and `"test"`
  (20%) subsets, so a pretraining or training set and a test set can be drawn from disjoint
  handwriting samples (`subset=`).

Example:
    >>> import numpy as np
    >>> from gardener_hf.research.synthetic import moving_digits_clip, moving_digits_batch
    >>> clip = moving_digits_clip(np.random.default_rng(0), num_frames=8, size=48)
    >>> clip.shape, clip.dtype
    ((8, 48, 48, 3), dtype('uint8'))
    >>> moving_digits_batch(np.random.default_rng(0), 4, num_frames=8, size=48).shape
    torch.Size([4, 8, 48, 48, 3])
"""

from __future__ import annotations

from typing import Any

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.io import write_video
from ..errors import GardenerError

logger = logging.getLogger(__name__)

DIRECTIONS = ("left", "right", "up", "down")
# direction -> unit step (dx, dy) in image coordinates (y grows downwards)
_STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TASKS = ("direction", "moving-digit")
SUBSETS = ("all", "train", "test")
_TRAIN_FRACTION = 0.8
_SPLIT_SEED = 0  # fixed forever: changing it would move digits between the train and test subsets
_GLYPH = 8  # side of a scikit-learn digit image

IntRange = int | tuple[int, int]
FloatRange = float | tuple[float, float]



# ----------------------------------------------------------------------------------------------------------------
# moving shapes


def _shape_mask(kind: str, side: int) -> np.ndarray:
    """Boolean [side, side] mask of a filled square or disc."""
    if kind == "square":
        return np.ones((side, side), dtype=bool)
    centre = (side - 1) / 2
    yy, xx = np.mgrid[:side, :side]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (side / 2) ** 2


def moving_shape_clip(direction: str, *, num_frames: int = 16, size: int = 64, rng: np.random.Generator) -> np.ndarray:
    """A bright shape moving steadily in `direction` over a dark, noisy background.

    The shape (square or disc, random colour, side about size/6 to size/4) moves a few pixels per
    frame at a random speed, from a random start chosen so that it stays fully in frame. The class is
    the direction of motion, so no single frame reveals it.

    Args:
        direction: one of `DIRECTIONS` ("left", "right", "up", "down").
        num_frames: number of frames T.
        size: frame height and width in pixels (at least 12).
        rng: source of randomness; the same generator state gives the same clip.

    Returns:
        uint8 array of shape [num_frames, size, size, 3] (RGB).

    Raises:
        ValueError: on an unknown direction, `num_frames < 1` or `size < 12`.

    Example:
        >>> clip = moving_shape_clip("left", num_frames=8, size=32, rng=np.random.default_rng(0))
        >>> clip.shape
        (8, 32, 32, 3)
    """
    if direction not in _STEPS:
        raise ValueError(f"unknown direction {direction!r}; use one of {DIRECTIONS}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if size < 12:
        raise ValueError(f"size must be >= 12 pixels so that a shape can move, got {size}")
    side = int(rng.integers(max(2, size // 6), size // 4 + 1))
    mask = _shape_mask(str(rng.choice(["square", "disc"])), side)
    colour = rng.integers(160, 256, size=3).astype(np.uint8)
    room = size - side  # largest offset that keeps the shape in frame
    speed = float(rng.uniform(1.0, 3.0))
    if num_frames > 1:
        speed = min(speed, room / (num_frames - 1))
    travel = speed * (num_frames - 1)
    dx, dy = _STEPS[direction]
    # along the motion axis start so that the whole path fits; across it anywhere
    start_along = float(rng.uniform(0.0, max(0.0, room - travel)))
    across = int(rng.integers(0, room + 1))
    # grey (luma-only) noise on a dark tint: yuv420p keeps chroma at quarter resolution, and colour
    # noise would dominate the codec error of these tiny clips
    tint = rng.integers(0, 30, size=3)
    background = (tint + rng.integers(0, 25, size=(size, size, 1))).astype(np.int16)
    flicker = rng.integers(-3, 4, size=(num_frames, size, size, 1))
    clip = np.clip(background[None] + flicker, 0, 255).astype(np.uint8)
    for t in range(num_frames):
        along = start_along + speed * t
        if dx + dy < 0:  # left / up: travel towards 0
            along = room - along
        x, y = (round(along), across) if dx else (across, round(along))
        clip[t, y : y + side, x : x + side][mask] = colour
    return clip


def make_motion_dataset(
    root: str | Path,
    *,
    videos_per_class: int = 4,
    num_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    ext: str = ".mp4",
    classes: Sequence[str] = DIRECTIONS,
) -> Path:
    """Write a UCF101-style folder of moving-shape clips: `root/<class>/<class>_<i:03d><ext>`.

    Each clip gets its own generator seeded by `(seed, direction, i)`, so the same seed always gives
    the same frames (the encoded bytes may differ between encoder versions), and asking for more
    videos per class keeps the earlier ones unchanged.

    Args:
        root: output folder (created if needed).
        videos_per_class: clips written for each class.
        num_frames: frames per clip.
        size: frame height and width in pixels (even for the libx264 suffixes).
        seed: base seed.
        ext: file suffix selecting the codec (see `write_video`).
        classes: subset of `DIRECTIONS` to write; the class name is the direction of motion.

    Returns:
        `root` as a `Path`.

    Raises:
        ValueError: on an unknown class, an empty or duplicated class list, `videos_per_class < 1`,
            or any argument `write_video` / `moving_shape_clip` rejects.

    Example:
        >>> make_motion_dataset("/tmp/motion", videos_per_class=2, size=32)  # doctest: +SKIP
        PosixPath('/tmp/motion')
    """
    unknown = [c for c in classes if c not in DIRECTIONS]
    if unknown:
        raise ValueError(f"classes must be directions of motion {DIRECTIONS}, got unknown {unknown}")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty list without duplicates, got {list(classes)}")
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if not ext.startswith("."):
        ext = "." + ext
    root = Path(root)
    for name in classes:
        for i in range(videos_per_class):
            rng = np.random.default_rng([seed, DIRECTIONS.index(name), i])
            clip = moving_shape_clip(name, num_frames=num_frames, size=size, rng=rng)
            write_video(root / name / f"{name}_{i:03d}{ext}", clip)
    logger.info("wrote %d videos in %d classes under %s", videos_per_class * len(classes), len(classes), root)
    return root


# ----------------------------------------------------------------------------------------------------------------
# digit images


@functools.cache
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GardenerError(
            "the digit videos use scikit-learn's bundled digits: pip install scikit-learn "
            "(it comes with gardener_hf's extras: 'gardener_hf[pretrain]' or 'gardener_hf[study]')"
        ) from None

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # 0..16 ink levels -> 0..1
    images.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


@functools.cache
def _subset_indices(subset: str) -> np.ndarray:
    images, _ = _all_digits()
    if subset == "all":
        idx = np.arange(len(images))
    else:
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(images))
        cut = round(_TRAIN_FRACTION * len(images))
        idx = np.sort(order[:cut] if subset == "train" else order[cut:])
    idx.setflags(write=False)
    return idx


def digit_images(subset: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn digits of one subset: images in [0, 1] and their classes.

    Args:
        subset: `"all"` (1,797 images), `"train"` (a fixed 80%) or `"test"` (the other 20%).

    Returns:
        `(images, labels)`: float32 `[N, 8, 8]` in [0, 1] and int64 `[N]` in 0..9 (read-only views).

    Raises:
        ValueError: on an unknown subset.

    Example:
        >>> images, labels = digit_images("test")
        >>> images.shape, int(labels.max())
        ((359, 8, 8), 9)
    """
    if subset not in SUBSETS:
        raise ValueError(f"unknown digit subset {subset!r}; use one of {SUBSETS}")
    images, labels = _all_digits()
    idx = _subset_indices(subset)
    return images[idx], labels[idx]


def _class_indices(subset: str) -> list[np.ndarray]:
    _, labels = digit_images(subset)
    return [np.flatnonzero(labels == c) for c in range(10)]


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _as_range(value: IntRange | FloatRange, name: str) -> tuple:
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    if lo > hi:
        raise ValueError(f"{name} must be a number or a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


def _bounce(x: np.ndarray, room: float) -> np.ndarray:
    """Fold a free 1-D trajectory into [0, room] as a ball bouncing off both walls."""
    if room <= 0:
        return np.zeros_like(x)
    m = np.mod(x, 2.0 * room)
    return room - np.abs(room - m)


def _sprite(rng: np.random.Generator, glyph: np.ndarray, scale: int, colour: bool) -> np.ndarray:
    """Upscaled uint8 [side, side, 3] digit: ink times a random bright colour (or white)."""
    big = np.kron(glyph, np.ones((scale, scale), dtype=np.float32))
    tint = rng.integers(128, 256, size=3).astype(np.float32) if colour else np.full(3, 255.0, dtype=np.float32)
    return np.rint(big[:, :, None] * tint).astype(np.uint8)


def _canvas(rng: np.random.Generator, num_frames: int, size: int, background: bool) -> np.ndarray:
    # a flat, dark, per-clip tint: flat so that background patches are exactly predictable under
    # VideoMAE's per-patch normalised loss (pixel noise there would only teach the model to give up)
    tint = rng.integers(0, 48, size=3).astype(np.uint8) if background else np.zeros(3, dtype=np.uint8)
    clip = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    clip[...] = tint
    return clip


def _paste(clip: np.ndarray, sprite: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> None:
    """Draw `sprite` at integer positions (xs[t], ys[t]) in every frame; overlapping ink takes the max."""
    side = sprite.shape[0]
    for t, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        region = clip[t, y : y + side, x : x + side]
        np.maximum(region, sprite, out=region)


def _ranges(num_frames: int, size: int, scale: IntRange, speed: FloatRange) -> tuple[int, int, float, float]:
    """Checked `(scale_lo, scale_hi, speed_lo, speed_hi)` for a clip generator."""
    s_lo, s_hi = _as_range(scale, "scale")
    v_lo, v_hi = _as_range(speed, "speed")
    _check_common(num_frames, size, s_hi)
    return s_lo, s_hi, v_lo, v_hi


def _random_sprite(rng: np.random.Generator, glyph: np.ndarray, s_lo: int, s_hi: int, colour: bool) -> np.ndarray:
    return _sprite(rng, glyph, int(rng.integers(s_lo, s_hi + 1)), colour)


def _paste_still(rng: np.random.Generator, clip: np.ndarray, sprite: np.ndarray) -> None:
    """Paste `sprite` at one random place in every frame."""
    num_frames, size = clip.shape[0], clip.shape[1]
    x, y = rng.integers(0, size - sprite.shape[0] + 1, size=2)
    _paste(clip, sprite, np.full(num_frames, x), np.full(num_frames, y))


def _bouncing_path(
    rng: np.random.Generator, room: int, num_frames: int, v_lo: float, v_hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Integer positions of a sprite that starts anywhere, moves at a random angle and speed, and bounces."""
    t = np.arange(num_frames, dtype=np.float64)
    x0, y0 = rng.uniform(0.0, room, size=2) if room > 0 else (0.0, 0.0)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    v = rng.uniform(v_lo, v_hi)
    xs = np.rint(_bounce(x0 + v * np.cos(angle) * t, room)).astype(np.int64)
    ys = np.rint(_bounce(y0 + v * np.sin(angle) * t, room)).astype(np.int64)
    return xs, ys


def _check_common(num_frames: int, size: int, scale_hi: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if scale_hi < 1:
        raise ValueError(f"scale must be >= 1, got {scale_hi}")
    if size < _GLYPH * scale_hi:
        raise ValueError(
            f"size {size} is smaller than the largest digit ({_GLYPH} x scale {scale_hi} = {_GLYPH * scale_hi} px);"
            f" use a larger size or a smaller scale"
        )


# ----------------------------------------------------------------------------------------------------------------
# unlabelled clips (pretraining)


def moving_digits_clip(
    rng: np.random.Generator,
    *,
    num_frames: int = 16,
    size: int = 32,
    num_digits: IntRange = (1, 2),
    scale: IntRange = 2,
    speed: FloatRange = (0.5, 3.0),
    colour: bool = True,
    background: bool = True,
    subset: str = "train",
) -> np.ndarray:
    """A clip of a few handwritten digits moving in straight lines and bouncing off the walls.

    Each digit gets a random image from `subset`, an integer upscale factor, a random start inside the
    frame, a random direction (uniform angle) and speed; its path is folded at the borders so it
    bounces. Digits are drawn over a flat dark background; where they overlap the brighter ink wins.

    Args:
        rng: source of randomness; the same generator state gives the same clip.
        num_frames: frames T.
        size: frame height and width in pixels (at least 8 x the largest scale).
        num_digits: number of digits, or an inclusive `(low, high)` range drawn per clip.
        scale: integer upscale of the 8x8 digits, or an inclusive range drawn per digit.
        speed: pixels per frame, or a `(low, high)` range drawn uniformly per digit.
        colour: tint each digit with a random bright RGB colour (white otherwise).
        background: a random dark tint (RGB 0..47) per clip instead of black.
        subset: digit images to draw from (`"all"`, `"train"`, `"test"`, see `digit_images`).

    Returns:
        uint8 array `[num_frames, size, size, 3]` (RGB).

    Raises:
        ValueError: on a bad range, `num_frames < 1`, a frame too small for the digits, or an
            unknown subset.

    Example:
        >>> clip = moving_digits_clip(np.random.default_rng(0), num_frames=4, size=32, scale=2)
        >>> clip.shape
        (4, 32, 32, 3)
    """
    n_lo, n_hi = _as_range(num_digits, "num_digits")
    if n_lo < 0:
        raise ValueError(f"num_digits must be >= 0, got {num_digits!r}")
    s_lo, s_hi, v_lo, v_hi = _ranges(num_frames, size, scale, speed)
    images, _ = digit_images(subset)
    clip = _canvas(rng, num_frames, size, background)
    for _ in range(int(rng.integers(n_lo, n_hi + 1))):
        sprite = _random_sprite(rng, images[int(rng.integers(len(images)))], s_lo, s_hi, colour)
        _paste(clip, sprite, *_bouncing_path(rng, size - sprite.shape[0], num_frames, v_lo, v_hi))
    return clip


def to_pixel_values(videos: torch.Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 `[B, T, H, W, 3]` (or `[T, H, W, 3]`) to normalised float32 `[B, T, 3, H, W]` VideoMAE input.

    Computes `(x / 255 - mean) / std` per channel, as `VideoMAEImageProcessor` does.

    Example:
        >>> to_pixel_values(np.zeros((2, 4, 8, 8, 3), np.uint8), [0.5] * 3, [0.5] * 3).shape
        torch.Size([2, 4, 3, 8, 8])
    """
    x = torch.as_tensor(videos)
    if x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[-1] != 3:
        raise ValueError(f"videos must have shape [B, T, H, W, 3] or [T, H, W, 3], got {tuple(x.shape)}")
    m = torch.as_tensor(mean, dtype=torch.float32)
    s = torch.as_tensor(std, dtype=torch.float32)
    x = (x.to(torch.float32) / 255.0 - m) / s
    return x.permute(0, 1, 4, 2, 3).contiguous()


def moving_digits_batch(
    rng: np.random.Generator,
    batch: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **clip_kwargs,
) -> torch.Tensor:
    """A batch of `moving_digits_clip` clips, generated in memory.

    The clips are exactly `[moving_digits_clip(rng, **clip_kwargs) for _ in range(batch)]`, so a batch
    is reproducible from the generator state alone.

    Args:
        rng: source of randomness.
        batch: number of clips B.
        mean, std: per-channel statistics. If both are given the batch comes back as normalised float32
            VideoMAE pixel values `[B, T, 3, H, W]` (see `to_pixel_values`).
        **clip_kwargs: `num_frames`, `size`, `num_digits`, `scale`, ... of `moving_digits_clip`.

    Returns:
        uint8 tensor `[B, T, H, W, 3]`, or float32 `[B, T, 3, H, W]` when `mean`/`std` are given.

    Example:
        >>> x = moving_digits_batch(np.random.default_rng(0), 2, num_frames=4, size=32, scale=2,
        ...                         mean=[0.1] * 3, std=[0.2] * 3)
        >>> x.shape, x.dtype
        (torch.Size([2, 4, 3, 32, 32]), torch.float32)
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (normalised float output) or neither (uint8 output)")
    videos = torch.from_numpy(np.stack([moving_digits_clip(rng, **clip_kwargs) for _ in range(batch)]))
    return videos if mean is None else to_pixel_values(videos, mean, std)


def clip_statistics(rng: np.random.Generator, num_clips: int = 256, **clip_kwargs) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (in [0, 1] units) of generated clips.

    Use these as the processor's `image_mean` / `image_std` for models trained on these clips: the
    dark, mostly empty frames are far from ImageNet statistics (mean about 0.45).

    Returns:
        `(mean, std)`: two lists of 3 floats.

    Example:
        >>> mean, std = clip_statistics(np.random.default_rng(0), 8, num_frames=4, size=32, scale=2)
        >>> len(mean), 0 < mean[0] < 0.5
        (3, True)
    """
    x = moving_digits_batch(rng, num_clips, **clip_kwargs).to(torch.float64) / 255.0
    x = x.reshape(-1, 3)
    return x.mean(0).tolist(), x.std(0).tolist()


# ----------------------------------------------------------------------------------------------------------------
# labelled clips (finetuning)


def digit_direction_clip(
    rng: np.random.Generator,
    *,
    label: int | None = None,
    num_frames: int = 16,
    size: int = 32,
    scale: IntRange = 2,
    speed: FloatRange = (1.0, 2.0),
    num_distractors: IntRange = 0,
    colour: bool = True,
    background: bool = True,
    subset: str = "all",
) -> tuple[np.ndarray, int]:
    """One digit moving steadily left, right, up or down; the class is the direction.

    The digit moves in a straight line that stays inside the frame (the speed is capped so the whole
    path fits; no bounce), so no single frame reveals the class. Static distractor digits, if any, are
    drawn first and the moving digit over them.

    Args:
        rng: source of randomness.
        label: index into `DIRECTIONS` ("left", "right", "up", "down"); random if None.
        num_frames, size, scale, colour, background, subset: as in `moving_digits_clip`.
        speed: pixels per frame (capped so the path fits), or a `(low, high)` range.
        num_distractors: static digits, or an inclusive range.

    Returns:
        `(clip, label)`: uint8 `[num_frames, size, size, 3]` and the direction index.

    Raises:
        ValueError: on a label outside 0..3, or any argument `moving_digits_clip` rejects.

    Example:
        >>> clip, label = digit_direction_clip(np.random.default_rng(0), label=2, num_frames=8, size=32, scale=2)
        >>> clip.shape, label
        ((8, 32, 32, 3), 2)
    """
    d_lo, d_hi = _as_range(num_distractors, "num_distractors")
    s_lo, s_hi, v_lo, v_hi = _ranges(num_frames, size, scale, speed)
    if label is None:
        label = int(rng.integers(len(DIRECTIONS)))
    if not 0 <= label < len(DIRECTIONS):
        raise ValueError(f"label must be a direction index 0..{len(DIRECTIONS) - 1} {DIRECTIONS}, got {label}")
    images, _ = digit_images(subset)
    clip = _canvas(rng, num_frames, size, background)
    for _ in range(int(rng.integers(d_lo, d_hi + 1))):
        _paste_still(rng, clip, _random_sprite(rng, images[int(rng.integers(len(images)))], s_lo, s_hi, colour))
    sprite = _random_sprite(rng, images[int(rng.integers(len(images)))], s_lo, s_hi, colour)
    room = size - sprite.shape[0]
    v = float(rng.uniform(v_lo, v_hi))
    if num_frames > 1:
        v = min(v, room / (num_frames - 1))
    travel = v * (num_frames - 1)
    start = rng.uniform(0.0, max(0.0, room - travel))
    across = int(rng.integers(0, room + 1))
    dx, dy = _STEPS[DIRECTIONS[label]]
    along = start + v * np.arange(num_frames)
    if dx + dy < 0:  # left / up travel towards 0
        along = room - along
    along = np.clip(np.rint(along), 0, room).astype(np.int64)
    fixed = np.full(num_frames, across)
    _paste(clip, sprite, along if dx else fixed, fixed if dx else along)
    return clip, label


def moving_digit_class_clip(
    rng: np.random.Generator,
    *,
    label: int | None = None,
    num_frames: int = 16,
    size: int = 32,
    num_static: IntRange = 1,
    scale: IntRange = 2,
    speed: FloatRange = (1.0, 3.0),
    colour: bool = True,
    background: bool = True,
    subset: str = "all",
) -> tuple[np.ndarray, int]:
    """One digit of class `label` moves (bouncing), digits of other classes stand still.

    The class is that of the moving digit, so a model has to find what moves and read it: a single
    frame is ambiguous whenever there is a static digit.

    Args:
        rng: source of randomness.
        label: the moving digit's class 0..9; random if None.
        num_static: static digits (of other classes), or an inclusive range (at 32 px one fits
            without much overlap; use 48 px or more for 2-3).
        speed: pixels per frame of the moving digit (keep the low end >= 1 so it visibly moves).
        num_frames, size, scale, colour, background, subset: as in `moving_digits_clip`.

    Returns:
        `(clip, label)`: uint8 `[num_frames, size, size, 3]` and the digit class.

    Example:
        >>> clip, label = moving_digit_class_clip(np.random.default_rng(0), label=7, num_frames=8, size=48)
        >>> clip.shape, label
        ((8, 48, 48, 3), 7)
    """
    n_lo, n_hi = _as_range(num_static, "num_static")
    s_lo, s_hi, v_lo, v_hi = _ranges(num_frames, size, scale, speed)
    if label is None:
        label = int(rng.integers(10))
    if not 0 <= label < 10:
        raise ValueError(f"label must be a digit class 0..9, got {label}")
    images, _ = digit_images(subset)
    by_class = _class_indices(subset)
    clip = _canvas(rng, num_frames, size, background)
    for _ in range(int(rng.integers(n_lo, n_hi + 1))):
        other = int(rng.choice([c for c in range(10) if c != label]))
        _paste_still(rng, clip, _random_sprite(rng, images[int(rng.choice(by_class[other]))], s_lo, s_hi, colour))
    sprite = _random_sprite(rng, images[int(rng.choice(by_class[label]))], s_lo, s_hi, colour)
    _paste(clip, sprite, *_bouncing_path(rng, size - sprite.shape[0], num_frames, v_lo, v_hi))
    return clip, label


_TASK_CLASSES = {"direction": DIRECTIONS, "moving-digit": DIGIT_NAMES}
_TASK_FN = {"direction": digit_direction_clip, "moving-digit": moving_digit_class_clip}


def task_clip_function(task: str):
    """The clip function of a labelled task (`digit_direction_clip` or `moving_digit_class_clip`)."""
    task_labels(task)  # validates the name
    return _TASK_FN[task]


def task_labels(task: str) -> tuple[str, ...]:
    """Class names of a labelled task, in label-index order (also the folder names)."""
    if task not in _TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    return _TASK_CLASSES[task]


def make_digit_dataset(
    root: str | Path,
    *,
    task: str = "direction",
    videos_per_class: int = 8,
    num_frames: int = 64,
    size: int = 32,
    seed: int = 0,
    subset: str = "all",
    ext: str = ".mp4",
    fps: int = 10,
    **clip_kwargs,
) -> Path:
    """Write a labelled moving-digits dataset in the UCF101 layout: `root/<class>/<class>_<i:03d><ext>`.

    Each clip gets its own generator seeded by `(seed, task, class, i)`, so the same seed always gives
    the same frames (the encoded bytes may differ between encoder versions) and asking for more videos
    per class keeps the earlier ones. Use different seeds and `subset="train"` / `"test"` for a train
    and a test folder whose digits are disjoint handwriting samples.

    Args:
        root: output folder (created if needed).
        task: `"direction"` (left/right/up/down) or `"moving-digit"` (zero..nine).
        videos_per_class: clips per class.
        num_frames: frames per video. A finetuning clip spans `model frames x frame stride` frames
            (16 x 4 = 64 for the embedded default with the default stride), hence the default;
            shorter videos repeat their last frame (finetuning warns), or finetune with `--frame-stride 1`.
        size: frame side in pixels (even, for the libx264 suffixes).
        seed: base seed.
        subset: digit images to draw from (`"all"`, `"train"`, `"test"`).
        ext: file suffix selecting the codec (see `gardener_hf.data.write_video`).
        fps: frame rate stored in the files.
        **clip_kwargs: passed to the task's clip function (`scale`, `speed`, `num_distractors`,
            `num_static`, `colour`, `background`).

    Returns:
        `root` as a `Path`.

    Raises:
        ValueError: on an unknown task, `videos_per_class < 1`, or anything the clip function or
            `write_video` rejects.

    Example:
        >>> make_digit_dataset("/tmp/digits-dir", task="direction", videos_per_class=2)  # doctest: +SKIP
        PosixPath('/tmp/digits-dir')
    """
    classes = task_labels(task)
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if not ext.startswith("."):
        ext = "." + ext
    root = Path(root)
    fn = task_clip_function(task)
    task_id = TASKS.index(task)
    for label, name in enumerate(classes):
        for i in range(videos_per_class):
            rng = np.random.default_rng([seed, task_id, label, i])
            clip, _ = fn(rng, label=label, num_frames=num_frames, size=size, subset=subset, **clip_kwargs)
            write_video(root / name / f"{name}_{i:03d}{ext}", clip, fps=fps)
    logger.info("wrote %d %s videos in %d classes under %s", videos_per_class * len(classes), task, len(classes), root)
    return root


def digit_calibration(model: Any, samples: int = 32, *, seed: int = 0, source: str | None = None,
                      revision: str | None = None, token: str | bool | None = None):
    """Calibration inputs for a video model: `samples` clips of moving handwritten digits, generated in memory.

    What `--calibration digits` gives: `moving_digits_clip` clips ("train" handwriting subset) at the
    model's clip length and size, prepared by the checkpoint's processor config (the `source`, default the
    model's `_name_or_path`), so the embedded default can be calibrated offline.

    Raises:
        GardenerError: an image model (it takes an image folder or a tensor file).
    """
    import torch

    from ..arch import get_arch
    from ..calibration import Calibration, check_shape, expected_shape
    from ..data import VideoTransform
    from ..data.calibration import processor_config
    from ..errors import GardenerError

    if not get_arch(model).video:
        raise GardenerError("calibration 'digits' generates video clips; an image model takes an image folder or a tensor file")
    num_frames, _, height, _ = expected_shape(model)
    transform = VideoTransform.from_processor(processor_config(model, source, revision, token), train=False)
    clips = moving_digits_batch(np.random.default_rng(seed), samples, num_frames=num_frames, size=height,
                                scale=max(1, height // 16), subset="train")
    pixels = check_shape(torch.stack([transform(clip.numpy()) for clip in clips]), model, "digits")
    return Calibration(pixels, f"{samples} generated moving-digit clips (seed {seed})", seed, "digits")
