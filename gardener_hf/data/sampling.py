"""Which frames of a video make a clip: `sample_indices` for the start, uniform and random modes."""

from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("start", "uniform", "random")


def sample_indices(
    num_available: int,
    num_frames: int,
    *,
    stride: int = 4,
    mode: str = "start",
    clip: int = 0,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Frame indices of one clip of `num_frames` frames taken every `stride` frames.

    The clip spans `num_frames * stride` frames. Modes:

    * `"start"`: the clip starts at frame 0 (the paper's recipe: 16 frames, stride 4, from the start);
    * `"uniform"`: `num_frames` indices spread evenly over the whole video (ignores `stride`);
    * `"random"`: a random start in `[0, max(0, n - span)]` drawn from `rng` (training).

    With `num_clips > 1` (multi-clip evaluation) `"start"` and `"random"` use evenly spaced starts
    instead: clip k starts at `round(k * (n - span) / (num_clips - 1))` (0 when n <= span), and
    `"uniform"` clips interleave: clip k is the grid shifted by k / num_clips of its spacing, the
    first clip starting at 0 and the last ending at n - 1. Indices past the end are clamped
    to `n - 1`.

    Args:
        num_available: frames in the video (n).
        num_frames: frames in the clip.
        stride: step between sampled frames.
        mode: one of `SAMPLING_MODES`.
        clip: which clip (0-based) when `num_clips > 1`.
        num_clips: clips taken from the video.
        rng: generator for `mode="random"` with one clip.

    Returns:
        `num_frames` indices in `[0, n - 1]`, non-decreasing.

    Raises:
        ValueError: on `num_available`, `num_frames`, `stride` or `num_clips` below 1, `clip` out of
            range, an unknown mode, or `mode="random"` with one clip and no `rng`.

    Example:
        >>> sample_indices(100, 4, stride=4)
        [0, 4, 8, 12]
        >>> sample_indices(10, 4, stride=4)
        [0, 4, 8, 9]
        >>> sample_indices(100, 2, stride=4, num_clips=3, clip=2)
        [92, 96]
    """
    for name, value in (("num_available", num_available), ("num_frames", num_frames), ("stride", stride),
                        ("num_clips", num_clips)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {mode!r}; use one of {SAMPLING_MODES}")
    if not 0 <= clip < num_clips:
        raise ValueError(f"clip must be in [0, {num_clips - 1}] for num_clips={num_clips}, got {clip}")
    n = num_available
    if mode == "uniform":
        positions = _uniform_positions(n, num_frames, clip, num_clips)
        return [min(n - 1, int(p)) for p in np.round(positions)]
    slack = max(0, n - num_frames * stride)
    if num_clips > 1:
        start = round(clip * slack / (num_clips - 1))
    elif mode == "random":
        if rng is None:
            raise ValueError("mode='random' needs rng (a np.random.Generator) so that runs are reproducible")
        start = int(rng.integers(0, slack + 1))
    else:
        start = 0
    return [min(n - 1, start + k * stride) for k in range(num_frames)]


def _uniform_positions(n: int, num_frames: int, clip: int, num_clips: int) -> np.ndarray:
    """Evenly spaced positions; the clips interleave, clip 0 starting at 0 and the last ending at n-1."""
    # one spacing `gap` for every clip: (num_frames - 1 + (num_clips - 1) / num_clips) * gap = n - 1
    span_in_gaps = (num_frames - 1) + (num_clips - 1) / num_clips
    gap = (n - 1) / span_in_gaps if span_in_gaps else 0.0
    return (np.arange(num_frames) + clip / num_clips) * gap
