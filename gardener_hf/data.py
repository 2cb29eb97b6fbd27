"""Video classification data: finding labelled videos, decoding them with PyAV, and clip datasets.

Three kinds of source give the same `(items, label_names, report)` triple (see `find_videos`):

* a folder in UCF101 layout, `root/<class>/<video>`;
* a manifest, `.csv` (columns `path,label`) or `.json` / `.jsonl` (objects with `path` and `label`);
* a `datasets.Dataset` (or `DatasetDict`) with a `Video` column and a label column.

Every video is opened once up front, so corrupt files are reported (or, with `strict=True`, rejected)
before training starts rather than crashing a DataLoader worker hours later. Decoding never goes
through `datasets` (its video decoding needs torchcodec); PyAV reads the files directly.

Example:
    >>> from gardener_hf.data import VideoClassificationDataset, VideoTransform, find_videos
    >>> items, labels, report = find_videos("ucf101/train")  # doctest: +SKIP
    >>> transform = VideoTransform.from_processor(processor, train=True)  # doctest: +SKIP
    >>> dataset = VideoClassificationDataset(items, labels, transform)  # doctest: +SKIP
    >>> dataset[0]["pixel_values"].shape  # doctest: +SKIP
    torch.Size([16, 3, 224, 224])
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import DataError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")
SAMPLING_MODES = ("start", "uniform", "random")
_MANIFEST_SUFFIXES = (".csv", ".json", ".jsonl")
# a folder whose subfolders are all split names holds splits, not classes (datasets' videofolder layout)
# Evaluation splits in order of preference; with the training ones, the names that mark a folder of splits.
EVAL_SPLITS = ("validation", "val", "valid", "test", "testing", "eval", "dev")
SPLIT_NAMES = frozenset((*EVAL_SPLITS, "train", "training"))
_MAX_LISTED = 5  # file names quoted in one-line messages before "... and N more"


# ----------------------------------------------------------------------------------------------------------------
# items and report


@dataclass(frozen=True)
class VideoItem:
    """One labelled video file.

    Args:
        path: path of the video file.
        label: index into the label names returned alongside the items.
    """

    path: str
    label: int


@dataclass
class DataReport:
    """What `find_videos` considered and what it had to leave out.

    Args:
        total: number of video files considered.
        skipped: `(path, reason)` for every file that could not be read.
    """

    total: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def used(self) -> int:
        """Number of videos kept (`total` minus the skipped ones)."""
        return self.total - len(self.skipped)

    def summary(self) -> str:
        """One line for logs and the CLI, e.g. `"12 videos, 1 skipped (unreadable): a.mp4"`."""
        text = f"{self.used} video{'s' if self.used != 1 else ''}"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (unreadable): " + _list_names(Path(p).name for p, _ in self.skipped)
        return text


def _list_names(names: Iterable[str], limit: int = _MAX_LISTED) -> str:
    """Join names with commas, cutting the list to `limit` entries plus "and N more"."""
    names = list(names)
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ----------------------------------------------------------------------------------------------------------------
# decoding


def _open_error(path: str, err: Exception) -> DataError:
    """A DataError naming `path`, for an exception raised while opening or decoding it."""
    if isinstance(err, FileNotFoundError):
        return DataError(f"cannot read video {path}: file not found")
    return DataError(f"cannot decode video {path}: {type(err).__name__}: {err}")


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
                    kept[count] = frame.to_ndarray(format="rgb24", **size)
                count += 1
                if count > last:
                    break
            if count == 0:
                raise DataError(f"cannot decode video {path}: no decodable frame")
            if count - 1 not in kept and last >= count:  # clamp: the last decoded frame stands in
                kept[count - 1] = frame.to_ndarray(format="rgb24", **size)
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


def _probe(path: str) -> str | None:
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


# ----------------------------------------------------------------------------------------------------------------
# frame sampling


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


# ----------------------------------------------------------------------------------------------------------------
# finding videos


def find_videos(
    source: Any,
    *,
    labels: Sequence[str] | None = None,
    strict: bool = False,
    split: str = "train",
    video_column: str | None = None,
    label_column: str = "label",
    progress: bool = True,
) -> tuple[list[VideoItem], list[str], DataReport]:
    """Collect labelled videos from a folder, a manifest file or a `datasets` dataset, and check them.

    Sources:

    * a folder in UCF101 layout, one subfolder per class (label names = sorted subfolder names;
      videos found recursively, by suffix in `VIDEO_EXTENSIONS`, case-insensitive, hidden files
      ignored). A folder whose subfolders are all split names (`train/`, `test/`, ...) is read from
      its `split` subfolder.
    * a `.csv` file with columns `path,label`, or a `.json` (list of `{"path", "label"}` objects) /
      `.jsonl` (one object per line) file. Relative paths are resolved against the file's folder.
      Label names = sorted unique labels.
    * a `datasets.Dataset`, or a `DatasetDict` (its `split` is used), with a `Video` column and a
      label column (`ClassLabel` names keep their order; other labels are sorted). Videos are read
      through their file path, or written from their bytes to a cache folder in the temp dir.

    Every file is probed (opened, first frame decoded). Unreadable files are skipped with a warning
    and listed in the report, or rejected with `strict=True`.

    Args:
        source: folder, manifest path, `datasets.Dataset` or `datasets.DatasetDict`.
        labels: label names to index into (e.g. the training labels when reading the eval set);
            by default they come from the source.
        strict: raise on the first unreadable file instead of skipping it.
        split: split of a `DatasetDict`, or split subfolder of a folder source.
        video_column: `Video` (or path string) column of a dataset; auto-detected when None.
        label_column: label column of a dataset.
        progress: show a progress bar while probing.

    Returns:
        `(items, label_names, report)`: the readable videos in a deterministic order, the label
        names their `label` indexes into, and what was considered and skipped.

    Raises:
        DataError: on a missing or unsupported source, an empty folder or class, missing manifest
            columns / dataset columns, a label not in `labels`, a class whose every file is unreadable,
            or (strict) any unreadable file.

    Example:
        >>> items, label_names, report = find_videos("ucf101/train", progress=False)  # doctest: +SKIP
        >>> report.summary()  # doctest: +SKIP
        '9537 videos'
    """
    pairs, natural_names, origin = _collect(source, split=split, video_column=video_column,
                                            label_column=label_column)
    if not pairs:
        raise DataError(f"no videos in {origin}")
    label_names = _label_names(pairs, natural_names, labels, origin)
    label2id = {name: i for i, name in enumerate(label_names)}
    report = DataReport(total=len(pairs))
    items: list[VideoItem] = []
    for path, name in tqdm(pairs, desc="Checking videos", unit="video", disable=not progress):
        reason = _probe(path)
        if reason is None:
            items.append(VideoItem(path, label2id[name]))
        elif strict:
            raise DataError(f"unreadable video {path}: {reason} (strict mode; turn it off to skip unreadable files)")
        else:
            logger.warning("skipping unreadable video %s: %s", path, reason)
            report.skipped.append((path, reason))
    _check_classes_readable(pairs, items, label_names, origin)
    logger.info("%s: %s in %d classes", origin, report.summary(), len(label_names))
    return items, label_names, report


def _label_names(pairs: list[tuple[str, str]], natural: list[str], labels: Sequence[str] | None,
                 origin: str) -> list[str]:
    """The label names items index into: `labels` if given (checked against the data), else `natural`."""
    if labels is None:
        return list(natural)
    known = [str(name) for name in labels]
    if len(set(known)) != len(known):
        raise DataError(f"labels must be unique, got duplicates in {known}")
    unknown = sorted({name for _, name in pairs} - set(known))
    if unknown:
        raise DataError(f"{origin} has labels {unknown} that are not among the known labels {known}; "
                        "evaluation data must use the training labels")
    return known


def _check_classes_readable(pairs: list[tuple[str, str]], items: list[VideoItem], label_names: list[str],
                            origin: str) -> None:
    """DataError if some class had files but none of them was readable."""
    present = {name for _, name in pairs}
    readable = {label_names[item.label] for item in items}
    lost = sorted(present - readable)
    if lost:
        raise DataError(f"every video of class(es) {lost} in {origin} is unreadable; see the warnings above")


def _collect(source: Any, *, split: str, video_column: str | None, label_column: str
             ) -> tuple[list[tuple[str, str]], list[str], str]:
    """Dispatch on the source type; return `(path, label name)` pairs, natural label order, a description."""
    datasets = sys.modules.get("datasets")  # a Dataset instance implies the module is already imported
    if datasets is not None and isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        return _from_hf_dataset(source, split=split, video_column=video_column, label_column=label_column)
    if datasets is not None and isinstance(source, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise DataError("streaming datasets are not supported; load the dataset without streaming=True")
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"unsupported data source of type {type(source).__name__}; pass a folder, a .csv/.json/.jsonl "
                        "file or a datasets.Dataset")
    path = Path(source)
    if path.is_dir():
        return _from_folder(path, split)
    if not path.exists():
        raise DataError(f"data source {path} does not exist")
    if path.suffix.lower() in _MANIFEST_SUFFIXES:
        pairs = _from_manifest(path)
        return pairs, sorted({name for _, name in pairs}), str(path)
    raise DataError(f"unsupported data source {path}: expected a folder or a {'/'.join(_MANIFEST_SUFFIXES)} file")


# -- folders


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def eval_split(source: Any) -> str:
    """The split to evaluate on when `source` is a folder of split folders (validation first, then test)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        names = {p.name.lower(): p.name for p in Path(source).iterdir() if p.is_dir()}
        for split in EVAL_SPLITS:
            if split in names:
                return names[split]
    return "test"


def _split_folder(root: Path, split: str) -> Path:
    """`root/split` when root holds split subfolders (train/, test/, ...), else root."""
    subdirs = _visible_dirs(root)
    if not subdirs or not all(d.name.lower() in SPLIT_NAMES for d in subdirs):
        return root
    chosen = root / split
    if not chosen.is_dir():
        raise DataError(f"{root} holds split folders {[d.name for d in subdirs]} but no {split!r}; "
                        "pick one with the split argument")
    logger.info("%s holds split folders; reading split %r", root, split)
    return chosen


def _from_folder(root: Path, split: str) -> tuple[list[tuple[str, str]], list[str], str]:
    """Pairs from a UCF101-style folder: one subfolder per class."""
    root = _split_folder(root, split)
    class_dirs = _visible_dirs(root)
    loose = [p for p in root.iterdir() if _is_video(p)]
    if not class_dirs:
        hint = f" ({len(loose)} videos lie directly in it)" if loose else ""
        raise DataError(f"no class subfolders in {root}{hint}; expected {root}/<class>/<video> "
                        f"with suffixes {VIDEO_EXTENSIONS}, or pass a .csv/.json manifest")
    if loose:
        logger.warning("ignoring %d videos directly in %s: only videos inside class subfolders are used",
                       len(loose), root)
    pairs: list[tuple[str, str]] = []
    empty: list[str] = []
    for class_dir in class_dirs:
        videos = sorted(p for p in class_dir.rglob("*") if _is_video(p))
        if not videos:
            empty.append(class_dir.name)
        pairs.extend((str(p), class_dir.name) for p in videos)
    if len(empty) == len(class_dirs):
        raise DataError(f"no videos in {root}: its subfolders {_list_names(empty)} hold no files with suffixes "
                        f"{VIDEO_EXTENSIONS}")
    if empty:
        raise DataError(f"class folder(s) {_list_names(empty)} in {root} hold no videos (suffixes {VIDEO_EXTENSIONS}); "
                        "add videos or remove the folder(s)")
    return pairs, [d.name for d in class_dirs], str(root)


# -- manifests


def _from_manifest(path: Path) -> list[tuple[str, str]]:
    """Pairs from a .csv / .json / .jsonl manifest, relative paths resolved against its folder."""
    suffix = path.suffix.lower()
    rows = _read_csv(path) if suffix == ".csv" else _read_json(path, lines=suffix == ".jsonl")
    pairs = []
    for number, row in rows:
        video, label = row["path"], row["label"]
        if not isinstance(video, str) or not video.strip():
            raise DataError(f"{path}, {number}: 'path' must be a non-empty string, got {video!r}")
        if isinstance(label, bool) or not isinstance(label, (str, int)) or str(label).strip() == "":
            raise DataError(f"{path}, {number}: 'label' must be a non-empty string or an integer, got {label!r}")
        video_path = Path(video.strip())
        pairs.append((str(video_path if video_path.is_absolute() else path.parent / video_path), str(label).strip()))
    return pairs


def _read_csv(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a CSV manifest as `(where, row)`, checking the `path` and `label` columns."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise DataError(f"{path} lacks column(s) {missing}; found {columns}. Expected a header line 'path,label'")
        return [(f"line {i}", {k.strip(): v for k, v in row.items() if k}) for i, row in enumerate(reader, start=2)]


def _read_json(path: Path, *, lines: bool) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a JSON list or a JSON-lines manifest as `(where, row)`, checking their keys."""
    text = path.read_text(encoding="utf-8")
    try:
        if lines:
            rows = [(f"line {i}", json.loads(line)) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:
            data = json.loads(text)
            if not isinstance(data, list):
                raise DataError(f"{path} must hold a JSON list of {{'path': ..., 'label': ...}} objects, "
                                f"got a {type(data).__name__}")
            rows = [(f"entry {i}", row) for i, row in enumerate(data)]
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON{' lines' if lines else ''}: {err}") from err
    for where, row in rows:
        if not isinstance(row, Mapping):
            raise DataError(f"{path}, {where}: expected an object with 'path' and 'label', got {row!r}")
        missing = [k for k in ("path", "label") if k not in row]
        if missing:
            raise DataError(f"{path}, {where}: missing key(s) {missing}; every entry needs 'path' and 'label'")
    return rows


# -- datasets


def _from_hf_dataset(ds: Any, *, split: str, video_column: str | None, label_column: str
                     ) -> tuple[list[tuple[str, str]], list[str], str]:
    """Pairs from a `datasets.Dataset` / `DatasetDict`, reading the Video column undecoded."""
    import datasets

    origin = "dataset"
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"the dataset has no split {split!r}; it has {list(ds)}")
        ds, origin = ds[split], f"dataset split {split!r}"
    column = _video_column(ds, video_column)
    if label_column not in ds.features:
        raise DataError(f"the dataset has no label column {label_column!r}; its columns are {list(ds.features)}")
    label_feature = ds.features[label_column]
    class_names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
    ds = ds.select_columns([column, label_column])
    if isinstance(ds.features[column], datasets.Video):
        ds = ds.cast_column(column, datasets.Video(decode=False))  # {"path", "bytes"}; decoding needs torchcodec
    pairs = []
    for row_number, row in enumerate(ds):
        path = _video_path(row[column], f"{origin}, row {row_number}")
        pairs.append((path, _row_label(row[label_column], class_names, f"{origin}, row {row_number}")))
    natural = class_names if class_names is not None else sorted({name for _, name in pairs})
    return pairs, natural, origin


def _video_column(ds: Any, video_column: str | None) -> str:
    """The video column: `video_column` if given and usable, else the only `Video` feature."""
    import datasets

    features = ds.features
    if video_column is not None:
        if video_column not in features:
            raise DataError(f"the dataset has no column {video_column!r}; its columns are {list(features)}")
        feature = features[video_column]
        is_path = isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
        if not (isinstance(feature, datasets.Video) or is_path):
            raise DataError(f"column {video_column!r} is {feature}, not a Video feature or a string of paths")
        return video_column
    found = [name for name, feature in features.items() if isinstance(feature, datasets.Video)]
    if not found:
        raise DataError(f"the dataset has no Video column (features: {dict(features)}); cast one with "
                        "ds.cast_column(name, datasets.Video()) or pass video_column")
    if len(found) > 1:
        raise DataError(f"the dataset has several Video columns {found}; choose one with video_column")
    return found[0]


def _video_path(value: Any, where: str) -> str:
    """A local file for one undecoded Video value (`{"path", "bytes"}`) or a path string."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: unexpected video value of type {type(value).__name__}")
    path, data = value.get("path"), value.get("bytes")
    if path and (data is None or os.path.isfile(path)):
        return str(path)
    if data:
        return str(_cache_bytes(data, Path(path).suffix if path else ""))
    raise DataError(f"{where}: the video has neither a path nor bytes")


def _cache_bytes(data: bytes, suffix: str) -> Path:
    """Write video bytes once to a content-addressed file in the temp dir and return its path."""
    folder = Path(tempfile.gettempdir()) / "gardener_hf_videos"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (hashlib.sha1(data).hexdigest() + (suffix or ".video"))
    if not target.is_file():
        # write then rename, so that concurrent processes never read a half-written file
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as handle:
            handle.write(data)
        os.replace(handle.name, target)
    return target


def _row_label(value: Any, class_names: list[str] | None, where: str) -> str:
    """Label name of one dataset row (ClassLabel index or a plain value)."""
    if value is None or (class_names is not None and not 0 <= value < len(class_names)):
        raise DataError(f"{where}: missing or out-of-range label {value!r}")
    return class_names[value] if class_names is not None else str(value)


# ----------------------------------------------------------------------------------------------------------------
# transforms


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
    """Output size from `crop_size` / `do_center_crop`, falling back to the resized size."""
    if config.get("do_center_crop", True):
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


# ----------------------------------------------------------------------------------------------------------------
# dataset


class VideoClassificationDataset(torch.utils.data.Dataset):
    """Clips of labelled videos for `transformers.Trainer` / a `DataLoader`.

    `dataset[i]` is `{"pixel_values": FloatTensor [T, 3, h, w], "labels": int}`, or pixel values
    `[num_clips, T, 3, h, w]` when `num_clips > 1`. Randomness (train transforms, `"random"`
    sampling) comes from a generator seeded by `(seed, epoch, i)`: any number of DataLoader workers
    gives the same clips, and `set_epoch` changes them from one epoch to the next (also in
    persistent workers: the epoch lives in shared memory).

    A video that fails to decode here raises with `strict=True`; otherwise it is logged once, and the
    next readable item is returned in its place.

    Args:
        items: the videos, e.g. from `find_videos`.
        labels: label names that `item.label` indexes into.
        transform: a `VideoTransform` (any callable `(frames, rng) -> tensor` with a `train` flag works).
        num_frames: frames per clip.
        stride: step between sampled frames.
        sampling: frame sampling mode, see `sample_indices`.
        num_clips: clips per video (multi-clip evaluation).
        strict: raise instead of substituting the next item when a video fails to decode.
        seed: base seed for the random draws (>= 0).

    Raises:
        DataError: if `items` is empty or an item's label is out of range.
        ValueError: on bad sampling arguments, duplicate labels or a negative seed.

    Example:
        >>> dataset = VideoClassificationDataset(items, labels, transform, num_frames=16)  # doctest: +SKIP
        >>> dataset[0]["pixel_values"].shape  # doctest: +SKIP
        torch.Size([16, 3, 224, 224])
    """

    def __init__(
        self,
        items: Sequence[VideoItem],
        labels: Sequence[str],
        transform: VideoTransform,
        *,
        num_frames: int = 16,
        stride: int = 4,
        sampling: str = "start",
        num_clips: int = 1,
        strict: bool = False,
        seed: int = 0,
    ) -> None:
        self._items = list(items)
        self._labels = [str(name) for name in labels]
        if not self._items:
            raise DataError("no videos to build a dataset from")
        if len(set(self._labels)) != len(self._labels):
            raise ValueError(f"labels must be unique, got {self._labels}")
        bad = [item for item in self._items if not 0 <= item.label < len(self._labels)]
        if bad:
            raise DataError(f"{len(bad)} item(s) have a label outside [0, {len(self._labels) - 1}], "
                            f"e.g. {bad[0].path} with label {bad[0].label}")
        sample_indices(1, num_frames, stride=stride, mode=sampling, num_clips=num_clips,
                       rng=np.random.default_rng(0))  # validates the arguments once, up front
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.transform = transform
        self.num_frames, self.stride, self.sampling, self.num_clips = num_frames, stride, sampling, num_clips
        self.strict, self.seed = strict, seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._frame_counts: dict[int, int] = {}
        self._unreadable: set[int] = set()

    @property
    def items(self) -> list[VideoItem]:
        """The videos, in index order."""
        return list(self._items)

    @property
    def labels(self) -> list[str]:
        """Label names, indexed by label id."""
        return list(self._labels)

    @property
    def id2label(self) -> dict[int, str]:
        """`{label id: name}`, as `PretrainedConfig.id2label` expects."""
        return dict(enumerate(self._labels))

    @property
    def label2id(self) -> dict[str, int]:
        """`{name: label id}`."""
        return {name: i for i, name in enumerate(self._labels)}

    @property
    def epoch(self) -> int:
        """The epoch the random draws are seeded with."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Draw different random clips / augmentations for `epoch` (reproducibly).

        Args:
            epoch: a non-negative epoch number.

        Raises:
            ValueError: if `epoch` is negative.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self._items)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} videos")
        index %= n
        for offset in range(n):
            j = (index + offset) % n
            if j in self._unreadable:
                continue
            try:
                return self._load(j)
            except DataError as err:
                if self.strict:
                    raise
                self._unreadable.add(j)
                logger.warning("%s; using another video in its place", err)
        raise DataError(f"none of the {n} videos of the dataset could be decoded; see the warnings above")

    def _needs_rng(self) -> bool:
        return bool(getattr(self.transform, "train", False)) or (self.sampling == "random" and self.num_clips == 1)

    def _rng(self, index: int) -> np.random.Generator:
        # seeded per item, not per worker: the same clips whatever the DataLoader's num_workers
        return np.random.default_rng([self.seed, self.epoch, index])

    def _num_available(self, index: int) -> int:
        if index not in self._frame_counts:
            self._frame_counts[index] = count_frames(self._items[index].path)
        return self._frame_counts[index]

    def _clip_indices(self, index: int, rng: np.random.Generator | None) -> list[list[int]]:
        if self.sampling == "start" and self.num_clips == 1:
            # no need to count frames: read_frames clamps past-the-end indices to the last frame
            return [[k * self.stride for k in range(self.num_frames)]]
        n = self._num_available(index)
        return [sample_indices(n, self.num_frames, stride=self.stride, mode=self.sampling, clip=c,
                               num_clips=self.num_clips, rng=rng) for c in range(self.num_clips)]

    def _load(self, index: int) -> dict[str, Any]:
        item = self._items[index]
        rng = self._rng(index) if self._needs_rng() else None
        clips = self._clip_indices(index, rng)
        needed = sorted({k for clip in clips for k in clip})  # decode the union once for all clips
        frames = read_frames(item.path, needed)
        row = {k: i for i, k in enumerate(needed)}
        tensors = [self.transform(frames[[row[k] for k in clip]], rng) for clip in clips]
        pixel_values = tensors[0] if self.num_clips == 1 else torch.stack(tensors)
        return {"pixel_values": pixel_values, "labels": item.label}


def collate_videos(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack dataset items into a batch for `Trainer` (`data_collator=collate_videos`).

    Args:
        batch: items from `VideoClassificationDataset.__getitem__`.

    Returns:
        `{"pixel_values": [B, ...] float tensor, "labels": [B] LongTensor}`.

    Raises:
        ValueError: on an empty batch or pixel values of different shapes.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(item["pixel_values"].shape) for item in batch}
    if len(shapes) > 1:
        raise ValueError(f"pixel_values of different shapes in one batch: {sorted(shapes)}")
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),
        "labels": torch.tensor([int(item["labels"]) for item in batch], dtype=torch.long),
    }
