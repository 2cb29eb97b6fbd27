"""Reading and writing video files with PyAV (its wheels bundle FFmpeg).

`read_frames` decodes only the frames a clip needs; `count_frames` counts them; `write_video` encodes
an RGB clip with the codec its suffix implies. Errors name the file (`DataError`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import DataError

def _open_error(path: str, err: Exception) -> DataError:
    """A DataError naming `path`, for an exception raised while opening or decoding it."""
    if isinstance(err, FileNotFoundError):
        return DataError(f"cannot read video {path}: file not found")
    return DataError(f"cannot decode video {path}: {type(err).__name__}: {err}")


# Colour conversion (swscale) on one thread: its default splits a frame into slices, one per CPU, and a
# CI run once decoded the lower half of a frame with different values than a run before it. The
# conversion is cheap next to decoding, which keeps its own frame threads.
_SWS_THREADS = 1


def read_frames(path: str, indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at `indices` (0-based, in any order, repeats allowed) of a video.

    Frames are decoded sequentially and only up to `max(indices)`, so reading the start of a long
    video is cheap. Indices past the last frame are clamped to it: a short video repeats its last
    frame. Every frame is converted to the size of the first one.

    Args:
        path: video file readable by PyAV.
        indices: non-negative frame indices.

    Returns:
        uint8 array of shape [len(indices), H, W, 3] in RGB order.

    Raises:
        ValueError: if `indices` is empty or holds a negative index.
        DataError: naming the file, if it cannot be opened, has no video stream or no decodable frame.

    Example:
        >>> read_frames("clip.mp4", [0, 4, 8]).shape  # doctest: +SKIP
        (3, 64, 64, 3)
    """
    wanted = [int(i) for i in indices]
    if not wanted:
        raise ValueError("indices must not be empty")
    if min(wanted) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(wanted)}")
    wanted_set, last = set(wanted), max(wanted)
    kept: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"  # frame threads: ~2x faster on real videos, harmless on tiny ones
            count, frame, size = 0, None, None
            for frame in container.decode(stream):
                size = size or {"width": frame.width, "height": frame.height}
                if count in wanted_set:
                    kept[count] = frame.to_ndarray(format="rgb24", threads=_SWS_THREADS, **size)
                count += 1
                if count > last:
                    break
            if count == 0:
                raise DataError(f"cannot decode video {path}: no decodable frame")
            if count - 1 not in kept and last >= count:  # clamp: the last decoded frame stands in
                kept[count - 1] = frame.to_ndarray(format="rgb24", threads=_SWS_THREADS, **size)
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError, EOFError) as err:
        raise _open_error(path, err) from err
    return np.stack([kept[min(i, count - 1)] for i in wanted])


def count_frames(path: str) -> int:
    """Number of frames of a video: the container's count when it has one, else by decoding.

    WebM and Matroska files usually carry no frame count, so for them the whole video is decoded.

    Args:
        path: video file readable by PyAV.

    Returns:
        The number of frames (>= 1).

    Raises:
        DataError: naming the file, if it cannot be read or holds no decodable frame.
    """
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            if stream.frames and stream.frames > 0:
                return int(stream.frames)
            stream.thread_type = "AUTO"
            count = sum(1 for _ in container.decode(stream))
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError, EOFError) as err:
        raise _open_error(path, err) from err
    if count == 0:
        raise DataError(f"cannot decode video {path}: no decodable frame")
    return count


def _video_stream(container: Any, path: str) -> Any:
    """The first video stream of an open container, or DataError naming `path`."""
    if not container.streams.video:
        raise DataError(f"cannot decode video {path}: no video stream")
    return container.streams.video[0]


def probe(path: str) -> str | None:
    """Return why `path` is not a readable video, or None if its first frame decodes.

    Any exception counts as unreadable: FFmpeg's demuxers raise a zoo of types on garbage input.
    """
    if not os.path.isfile(path):
        return "file not found"
    try:
        with av.open(path) as container:
            stream = _video_stream(container, path)
            for _ in container.decode(stream):
                return None
    except DataError as err:
        return str(err).rsplit(": ", 1)[-1]
    except Exception as err:  # noqa: BLE001 - see docstring
        return f"{type(err).__name__}: {err}"
    return "no decodable frame"


# suffix -> (codec, encoder options, needs even width/height). Quality is set high (crf 10, qscale 2)
# because the clips are tiny and a blurred 5-pixel shape would make the roundtrip tests meaningless.
_CODECS: dict[str, tuple[str, dict[str, str], bool]] = {
    ".mp4": ("libx264", {"crf": "10", "preset": "fast", "threads": "1"}, True),
    ".mkv": ("libx264", {"crf": "10", "preset": "fast", "threads": "1"}, True),
    ".mov": ("libx264", {"crf": "10", "preset": "fast", "threads": "1"}, True),
    ".avi": ("mpeg4", {}, False),
    ".webm": ("libvpx-vp9", {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}, False),
}
_MPEG4_QSCALE = 2  # 1 (best) .. 31; mpeg4 ignores crf and needs the fixed-quantiser mode instead

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
    yuv420p at high quality, on one encoder thread so the bytes do not depend on the machine's CPU
    count. Parent folders are created.

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
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(rgb.reformat(format="yuv420p", threads=_SWS_THREADS)))
        container.mux(stream.encode())  # flush delayed frames
    return path
