"""Synthetic videos for tests and demos, written with PyAV.

`make_motion_dataset` writes a tiny UCF101-style folder of "moving shape" clips whose class is the
direction of motion. A single frame says nothing about the class, so a model can only solve it by
looking across time: a quick, offline check that finetuning and pruning keep temporal modelling.

Example:
    >>> from gardener_hf.video import make_motion_dataset
    >>> root = make_motion_dataset("/tmp/motion", videos_per_class=2, size=32)  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['down', 'left', 'right', 'up']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

DIRECTIONS = ("left", "right", "up", "down")

# suffix -> (codec, encoder options, needs even width/height). Quality is set high (crf 10, qscale 2)
# because the clips are tiny and a blurred 5-pixel shape would make the roundtrip tests meaningless.
_CODECS: dict[str, tuple[str, dict[str, str], bool]] = {
    ".mp4": ("libx264", {"crf": "10", "preset": "fast"}, True),
    ".mkv": ("libx264", {"crf": "10", "preset": "fast"}, True),
    ".mov": ("libx264", {"crf": "10", "preset": "fast"}, True),
    ".avi": ("mpeg4", {}, False),
    ".webm": ("libvpx-vp9", {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}, False),
}
_MPEG4_QSCALE = 2  # 1 (best) .. 31; mpeg4 ignores crf and needs the fixed-quantiser mode instead

# direction -> unit step (dx, dy) in image coordinates (y grows downwards)
_STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate a clip for `write_video` and return it as a C-contiguous uint8 array.

    Raises:
        ValueError: if `frames` is not a non-empty uint8 array of shape [T, H, W, 3].
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 RGB, got dtype {frames.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape [T, H, W, 3] with T >= 1, got {tuple(frames.shape)}")
    return np.ascontiguousarray(frames)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Encode an RGB clip to a video file, picking the codec from the file suffix.

    `.mp4`, `.mkv` and `.mov` use libx264, `.avi` uses mpeg4 and `.webm` uses libvpx-vp9, all in
    yuv420p at high quality. Parent folders are created.

    Args:
        path: output file; its suffix (case-insensitive) selects the codec.
        frames: uint8 array of shape [T, H, W, 3] in RGB order.
        fps: frame rate stored in the file.

    Returns:
        The path written, as a `Path`.

    Raises:
        ValueError: on an unsupported suffix, a malformed `frames` array, a non-positive `fps`, or
            odd width/height for libx264 (yuv420p needs even sizes).

    Example:
        >>> clip = np.zeros((8, 32, 32, 3), dtype=np.uint8)
        >>> write_video("/tmp/black.mp4", clip)  # doctest: +SKIP
        PosixPath('/tmp/black.mp4')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CODECS:
        raise ValueError(f"cannot write {path.name!r}: unsupported suffix {suffix!r}; use one of {sorted(_CODECS)}")
    frames = _check_frames(frames)
    if int(fps) < 1:
        raise ValueError(f"fps must be a positive integer, got {fps}")
    codec, options, needs_even = _CODECS[suffix]
    _, height, width, _ = frames.shape
    if needs_even and (height % 2 or width % 2):
        raise ValueError(f"{suffix} ({codec}, yuv420p) needs an even width and height, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(fps), options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "mpeg4":
            stream.codec_context.qscale = _MPEG4_QSCALE
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush delayed frames
    return path


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
