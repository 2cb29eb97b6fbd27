"""Finding labelled videos: UCF101-style folders, CSV / JSON manifests and `datasets` datasets.

Three kinds of source give the same `(items, label_names, report)` triple (see `find_videos`):

* a folder in UCF101 layout, `root/<class>/<video>`;
* a manifest, `.csv` (columns `path,label`) or `.json` / `.jsonl` (objects with `path` and `label`);
* a `datasets.Dataset` (or `DatasetDict`) with a `Video` column and a label column.

Every video is opened once up front, so corrupt files are reported (or, with `strict=True`, rejected)
before training starts rather than crashing a DataLoader worker hours later. Decoding never goes
through `datasets` (its video decoding needs torchcodec); PyAV reads the files directly.
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

from tqdm.auto import tqdm

from ..errors import DataError
from .io import probe

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")
_MANIFEST_SUFFIXES = (".csv", ".json", ".jsonl")
# Evaluation splits in order of preference; with the training ones, the names that mark a folder of splits
# (a folder whose subfolders are all split names holds splits, not classes: datasets' videofolder layout).
EVAL_SPLITS = ("validation", "val", "valid", "test", "testing", "eval", "dev")
SPLIT_NAMES = frozenset((*EVAL_SPLITS, "train", "training"))
_MAX_LISTED = 5  # file names quoted in one-line messages before "... and N more"


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
    #: set by training.check_clip_length: how many checked videos are shorter than a clip spans
    clip_check: dict[str, Any] | None = None

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
        reason = probe(path)
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


def _is_video(path: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> bool:
    """Whether `path` is a visible file with one of `extensions` (case-insensitive); videos by default."""
    return path.suffix.lower() in extensions and not path.name.startswith(".") and path.is_file()


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def data_name(source: Any) -> str:
    """A short public name for a data source: a folder or file's own name, with its parent for a split
    folder ("ucf101/test", not "test"); never the full local path. A `datasets.Dataset` is "dataset".

    Example:
        >>> data_name("/home/me/ucf101/test"), data_name("/data/clips.csv")
        ('ucf101/test', 'clips.csv')
    """
    if not isinstance(source, (str, os.PathLike)):
        return "dataset"
    path = Path(source)
    if path.name.lower() in SPLIT_NAMES and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


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


def _from_folder(root: Path, split: str, extensions: Sequence[str] = VIDEO_EXTENSIONS, kind: str = "video"
                 ) -> tuple[list[tuple[str, str]], list[str], str]:
    """Pairs from a UCF101-style folder: one subfolder per class.

    Args:
        root: the folder (or a folder of split folders, read from its `split` subfolder).
        split: split subfolder to read when `root` holds splits.
        extensions: file suffixes to collect (lower case); videos by default.
        kind: what the files are, for messages ("video", "image").
    """
    root = _split_folder(root, split)
    class_dirs = _visible_dirs(root)
    loose = [p for p in root.iterdir() if _is_video(p, extensions)]
    if not class_dirs:
        hint = f" ({len(loose)} {kind}s lie directly in it)" if loose else ""
        raise DataError(f"no class subfolders in {root}{hint}; expected {root}/<class>/<{kind}> "
                        f"with suffixes {tuple(extensions)}, or pass a .csv/.json manifest")
    if loose:
        logger.warning("ignoring %d %ss directly in %s: only %ss inside class subfolders are used",
                       len(loose), kind, root, kind)
    pairs: list[tuple[str, str]] = []
    empty: list[str] = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if _is_video(p, extensions))
        if not files:
            empty.append(class_dir.name)
        pairs.extend((str(p), class_dir.name) for p in files)
    if len(empty) == len(class_dirs):
        raise DataError(f"no {kind}s in {root}: its subfolders {_list_names(empty)} hold no files with suffixes "
                        f"{tuple(extensions)}")
    if empty:
        raise DataError(f"class folder(s) {_list_names(empty)} in {root} hold no {kind}s (suffixes "
                        f"{tuple(extensions)}); add {kind}s or remove the folder(s)")
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
    try:
        return _csv_rows(path)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None


def _csv_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise DataError(f"{path} lacks column(s) {missing}; found {columns}. Expected a header line 'path,label'")
        return [(f"line {i}", {k.strip(): v for k, v in row.items() if k}) for i, row in enumerate(reader, start=2)]


def _read_json(path: Path, *, lines: bool) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a JSON list or a JSON-lines manifest as `(where, row)`, checking their keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
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
