"""Labelled images or videos in memory, as a training and a validation split: `load_labelled`.

For the study's linear probes and short finetunes, which fit on tensors rather than on a `DataLoader`. The data
come in the finetune formats (see `sources.find_videos`):

* a folder in UCF101 layout, `root/<class>/<file>`;
* a folder of split folders, `root/train/<class>/...` and `root/validation/<class>/...` (any of
  `sources.EVAL_SPLITS` for the held-out one);
* a manifest: `.csv` with columns `path,label`, or `.json` / `.jsonl` objects with `path` and `label`.

Image models read image files (`gardener_hf.calibration.IMAGE_EXTENSIONS`), video models video files
(`sources.VIDEO_EXTENSIONS`, probed by `find_videos`). Each is prepared like a calibration input: the model's
processor config resizes, centre-crops and normalises it (`VideoTransform`, the finetune evaluation transform), a
video is sampled uniformly to the model's clip length. The validation split is the folder's own, a separate
`eval_data`, or a seeded class-stratified share (`val_fraction`) of the data. Only a Hub `source`'s processor config
may be fetched (as calibration does); the data are read from disk.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..arch import get_arch
from ..calibration import IMAGE_EXTENSIONS, check_shape, expected_shape
from ..errors import DataError, GardenerError
from .calibration import _as_rgb, processor_config
from .io import count_frames, read_frames
from .sampling import sample_indices
from .sources import (
    _MANIFEST_SUFFIXES,
    SPLIT_NAMES,
    VIDEO_EXTENSIONS,
    _from_folder,
    _from_manifest,
    _is_video,
    _list_names,
    _visible_dirs,
    data_name,
    eval_split,
    find_videos,
)
from .transforms import VideoTransform

logger = logging.getLogger(__name__)

_TRAIN_SPLITS = ("train", "training")
_NO_VALIDATION = ("pass --eval-data (held-out data in the same format) or --val-fraction (e.g. 0.2: a seeded, "
                  "class-stratified share of the data), or give a folder of split folders "
                  "(root/train/<class>/..., root/validation/<class>/...)")


@dataclass
class LabelledSplit:
    """One split of labelled data, ready for the model.

    Attributes:
        pixel_values: float32, normalised as the model's processor does: `[N, 3, H, W]` (image models) or
            `[N, T, 3, H, W]` (video models).
        labels: int64 `[N]`, indexes into `label_names`.
        label_names: the class names, shared by both splits (the training split's classes).
        description: where the samples came from, e.g. `digits/train: 2,500 images in 10 classes`; never a
            full local path, so safe to publish.
    """

    pixel_values: torch.Tensor
    labels: torch.Tensor
    label_names: list[str]
    description: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class _Kind:
    """What a model reads: its file suffixes and how messages name the files."""

    noun: str
    extensions: tuple[str, ...]
    other_noun: str
    other_extensions: tuple[str, ...]

    @classmethod
    def of(cls, video: bool) -> _Kind:
        if video:
            return cls("video", VIDEO_EXTENSIONS, "image", IMAGE_EXTENSIONS)
        return cls("image", IMAGE_EXTENSIONS, "video", VIDEO_EXTENSIONS)

    def mismatch(self, model: Any, found: str) -> DataError:
        """The error for data of the other kind, saying what was found."""
        article = "a" if self.noun == "video" else "an"
        return DataError(f"{found}, but {type(model).__name__} is {article} {self.noun} model: give it {self.noun}s "
                         f"({', '.join(self.extensions)})")


@dataclass(frozen=True)
class _Part:
    """A split to read: a folder or manifest, the split subfolder of a folder of splits, its public name."""

    path: Path
    split: str | None
    name: str


def load_labelled(
    model: Any,
    data: str | os.PathLike,
    *,
    eval_data: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    source: str | None = None,
    revision: str | None = None,
    size: int | None = None,
    max_per_split: int | None = None,
    progress: bool = True,
) -> tuple[LabelledSplit, LabelledSplit]:
    """Read labelled images (image models) or videos (video models) into memory, as train and validation splits.

    The validation split is, in this order: the held-out split of a folder of split folders (`validation`,
    then `val`, `test`, ...; as finetune picks it), `eval_data`, or a class-stratified share `val_fraction` of
    `data` drawn with `seed` (each class keeps at least one sample on both sides). The label names are the
    training split's classes (sorted subfolder names, or sorted manifest labels); the validation split may
    lack some of them (a warning names them), not add any.

    Args:
        model: the loaded model (its architecture says images or videos; its config the input shape and
            clip length).
        data: a folder (classes, or split folders) or a `.csv` / `.json` / `.jsonl` manifest.
        eval_data: the validation data, in the same formats (a folder of split folders gives its held-out split).
        val_fraction: share of `data` to hold out for validation, `0 < val_fraction < 1`.
        seed: seed of the `val_fraction` split and of the `max_per_split` subsets.
        source: the checkpoint (Hub id or folder) whose processor config prepares the inputs (default: the
            model's `_name_or_path`).
        revision: of `source` on the Hub (a Hub `source`'s processor config comes from the HF cache, or is
            downloaded as for calibration; a folder is read as it is).
        size: resize and crop to `size` x `size` instead of the processor's crop size (for models that
            interpolate their position embeddings, e.g. DINOv2), keeping the processor's resize-to-crop ratio.
        max_per_split: at most this many samples per split: a seeded, class-balanced subset (classes in turn).
        progress: show progress bars while reading.

    Returns:
        `(train, validation)` splits.

    Raises:
        DataError: a missing or unsupported path; no files; fewer than two classes; no validation split, or two
            (a folder's own and `eval_data` / `val_fraction`); a validation class that the training data lacks;
            a class whose every file is unreadable; data of the wrong kind (videos for an image model or
            images for a video model); malformed options; inputs the model cannot take.

    Example:
        >>> train, val = load_labelled(model, "digits", val_fraction=0.2, progress=False)  # doctest: +SKIP
        >>> train.description  # doctest: +SKIP
        'digits (80% train, seed 0): 2,000 images in 10 classes'
    """
    _check_options(val_fraction, size, max_per_split, seed)
    kind = _Kind.of(bool(get_arch(model).video))
    train_part, val_part = _plan(_existing(data), None if eval_data is None else _existing(eval_data), val_fraction)
    train_items, names = _items(train_part, kind, model, None, progress)
    if len(names) < 2:
        raise DataError(f"{train_part.name} has {len(names)} class ({', '.join(names)}): a classifier needs at least "
                        "2 (one subfolder, or one manifest label, per class)")
    if val_part is None:
        share = float(val_fraction)  # _plan gives no validation part only with a val_fraction
        base = train_part.name
        train_idx, val_idx = _stratified(train_items, names, share, seed, base, kind)
        val_items = [train_items[i] for i in val_idx]
        train_items = [train_items[i] for i in train_idx]
        train_part = _Part(train_part.path, train_part.split, f"{base} ({100 * (1 - share):g}% train, seed {seed})")
        val_part = _Part(train_part.path, train_part.split, f"{base} ({100 * share:g}% validation, seed {seed})")
    else:
        val_items, _ = _items(val_part, kind, model, names, progress)
    missing = sorted(set(range(len(names))) - {label for _, label in val_items})
    if missing:
        logger.warning("%s has no %ss of the training class(es) %s; validation accuracy covers the other classes",
                       val_part.name, kind.noun, [names[i] for i in missing])
    transform = VideoTransform.from_processor(_sized(processor_config(model, source, revision), size), train=False)
    if kind.noun == "video":
        num_frames = int(expected_shape(model)[0])

        def reader(path: str) -> torch.Tensor:
            return transform(read_frames(path, sample_indices(count_frames(path), num_frames, mode="uniform")))
    else:

        def reader(path: str) -> torch.Tensor:
            return _read_image(path, transform)

    splits = []
    for part, items in ((train_part, train_items), (val_part, val_items)):
        pixels, labels = _read(items, reader, names, part.name, kind, max_per_split, seed, progress)
        pixels = _checked(pixels, model, size, part.name)
        capped = max_per_split is not None and max_per_split < len(items)
        classes = len(set(labels.tolist()))
        description = (f"{part.name}: {len(labels):,}{f' of {len(items):,}' if capped else ''} "
                       f"{kind.noun}{'s' if len(labels) != 1 else ''} in {classes} class{'es' if classes != 1 else ''}"
                       + (f" (class-balanced, seed {seed})" if capped else ""))
        splits.append(LabelledSplit(pixels, labels, list(names), description))
        logger.info("%s", description)
    return splits[0], splits[1]


# -- options and splits


def _check_options(val_fraction: Any, size: Any, max_per_split: Any, seed: Any) -> None:
    """DataError for malformed options, before any file is read."""
    if val_fraction is not None and (isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float))
                                     or not 0 < val_fraction < 1):
        raise DataError(f"val_fraction must be a number between 0 and 1 (exclusive), got {val_fraction!r}")
    for name, value in (("size", size), ("max_per_split", max_per_split)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an integer, got {seed!r}")


def _existing(data: Any) -> Path:
    """The data as an existing path, or DataError."""
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"unsupported data source of type {type(data).__name__}; pass a folder or a "
                        f"{'/'.join(_MANIFEST_SUFFIXES)} manifest")
    path = Path(data)
    if not path.exists():
        raise DataError(f"data source {path} does not exist")
    if path.is_file() and path.suffix.lower() not in _MANIFEST_SUFFIXES:
        raise DataError(f"unsupported data source {path.name}: expected a folder or a "
                        f"{'/'.join(_MANIFEST_SUFFIXES)} manifest")
    return path


def _public(path: Path) -> str:
    """A public name (`data_name`) for a folder or file, `.` named by the folder's own name."""
    return data_name(str(path.resolve()))


def _split_dirs(path: Path) -> dict[str, str]:
    """`{lower-case name: name}` of the split folders when `path` is a folder of split folders, else `{}`."""
    if not path.is_dir():
        return {}
    subdirs = _visible_dirs(path)
    if not subdirs or not all(d.name.lower() in SPLIT_NAMES for d in subdirs):
        return {}
    return {d.name.lower(): d.name for d in subdirs}


def _held_out(path: Path, splits: dict[str, str]) -> str | None:
    """The held-out split folder of a folder of splits (as finetune picks it), or None."""
    split = eval_split(path)
    return split if split.lower() in splits and split.lower() not in _TRAIN_SPLITS else None


def _plan(data: Path, eval_path: Path | None, val_fraction: float | None) -> tuple[_Part, _Part | None]:
    """The training part and the validation part (None: split `val_fraction` off the training part)."""
    splits = _split_dirs(data)
    if splits:
        train = next((splits[name] for name in _TRAIN_SPLITS if name in splits), None)
        if train is None:
            raise DataError(f"{_public(data)} holds split folders {sorted(splits.values())} but no train/ split; "
                            "add root/train/<class>/...")
        train_part = _Part(data, train, _public(data / train))
        held = _held_out(data, splits)
        if held is not None:
            if eval_path is not None or val_fraction is not None:
                given = "--eval-data" if eval_path is not None else "--val-fraction"
                raise DataError(f"ambiguous validation split: {_public(data)} has its own ({_public(data / held)}) "
                                f"and {given} gives another; drop {given}, or pass {_public(data / train)} as the data")
            return train_part, _Part(data, held, _public(data / held))
    else:
        train_part = _Part(data, None, _public(data))
    if eval_path is not None:
        if val_fraction is not None:
            raise DataError("ambiguous validation split: both --eval-data and --val-fraction give one; pass only one")
        eval_splits = _split_dirs(eval_path)
        if not eval_splits:
            return train_part, _Part(eval_path, None, _public(eval_path))
        held = _held_out(eval_path, eval_splits)
        if held is None:
            raise DataError(f"the eval data {_public(eval_path)} holds split folders {sorted(eval_splits.values())} "
                            "but no validation or test split")
        return train_part, _Part(eval_path, held, _public(eval_path / held))
    if val_fraction is not None:
        return train_part, None
    raise DataError(f"no validation split for {train_part.name}: {_NO_VALIDATION}")


def _stratified(items: list[tuple[str, int]], names: list[str], share: float, seed: int, where: str, kind: _Kind
                ) -> tuple[list[int], list[int]]:
    """Indices of a seeded class-stratified split: `share` of each class (at least 1, at most all but 1) held out."""
    rng = np.random.default_rng(seed)
    by_class = _by_class(items)
    single = [names[label] for label, indices in by_class.items() if len(indices) < 2]
    if single:
        raise DataError(f"class(es) {_list_names(single)} of {where} have a single {kind.noun}: --val-fraction needs "
                        "at least 2 per class (one on each side)")
    train, val = [], []
    for indices in by_class.values():
        held = min(max(math.floor(share * len(indices) + 0.5), 1), len(indices) - 1)
        order = rng.permutation(len(indices))
        val += [indices[j] for j in order[:held]]
        train += [indices[j] for j in order[held:]]
    return sorted(train), sorted(val)


def _by_class(items: list[tuple[str, int]]) -> dict[int, list[int]]:
    """Item indices per label, labels in increasing order."""
    out: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(items):
        out.setdefault(label, []).append(i)
    return dict(sorted(out.items()))


# -- finding files


def _items(part: _Part, kind: _Kind, model: Any, labels: list[str] | None, progress: bool
           ) -> tuple[list[tuple[str, int]], list[str]]:
    """`(path, label index)` of one part's files and the label names (`labels`, or the part's own classes)."""
    pairs, natural = _pairs(part, kind, model)
    if labels is not None:
        unknown = sorted({name for _, name in pairs} - set(labels))
        if unknown:
            raise DataError(f"{part.name} has class(es) {_list_names(unknown)} that the training data lacks "
                            f"(it has {_list_names(labels, 10)}); the validation data must use the training classes")
    if kind.noun == "video":  # probe every video; unreadable ones are skipped with a warning
        found, names, _ = find_videos(str(part.path), labels=labels, split=part.split or "train", progress=progress)
        return [(item.path, item.label) for item in found], names
    names = list(labels) if labels is not None else natural
    label2id = {name: i for i, name in enumerate(names)}
    return [(path, label2id[name]) for path, name in pairs], names


def _pairs(part: _Part, kind: _Kind, model: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """`(path, label name)` of a folder's or manifest's files and the natural label order; DataError for data of
    the wrong kind."""
    if part.path.is_dir():
        try:
            pairs, natural, root = _from_folder(part.path, part.split or "train", kind.extensions, kind.noun)
        except DataError:
            root = part.path / part.split if part.split else part.path
            others = [p for p in root.rglob("*") if _is_video(p, kind.other_extensions)]
            if others and not any(_is_video(p, kind.extensions) for p in root.rglob("*")):
                found = sorted({p.suffix.lower() for p in others})
                raise kind.mismatch(model, f"{part.name} holds {len(others)} {kind.other_noun} file(s) "
                                           f"({', '.join(found)}) and no {kind.noun}s") from None
            raise
        return pairs, natural
    pairs = _from_manifest(part.path)
    if not pairs:
        raise DataError(f"{part.name} lists no {kind.noun}s")
    others = [Path(path).name for path, _ in pairs if Path(path).suffix.lower() in kind.other_extensions]
    if others:
        raise kind.mismatch(model, f"{part.name} lists {len(others)} {kind.other_noun} file(s) "
                                   f"({_list_names(others)})")
    return pairs, sorted({name for _, name in pairs})


# -- reading


def _sized(config: dict[str, Any], size: int | None) -> dict[str, Any]:
    """The processor config, resizing and cropping to `size` x `size` when a size is given.

    The processor's resize-to-crop ratio is kept (DINOv2's 256 -> 224 at 112 px: 128 -> 112); a processor that
    resizes straight to its input size (ViT's `{"height", "width"}`) resizes to `size` x `size`.
    """
    if size is None:
        return config
    base = VideoTransform.from_processor(config, train=False)
    scale = size / min(base.crop_size)
    out = {**config, "do_resize": True, "do_center_crop": True, "crop_size": {"height": size, "width": size}}
    if base.resize_to is not None:
        height, width = base.resize_to
        out["size"] = {"height": max(size, round(height * scale)), "width": max(size, round(width * scale))}
    else:
        out["size"] = {"shortest_edge": max(size, round((base.short_side or min(base.crop_size)) * scale))}
    return out


def _read_image(path: str, transform: VideoTransform) -> torch.Tensor:
    """One image file as a `[3, H, W]` tensor, prepared by `transform` (as a one-frame clip)."""
    from PIL import Image

    with Image.open(path) as image:
        frame = np.array(_as_rgb(image))[None]  # a writable copy: torch warns about read-only arrays
    return transform(frame)[0]


def _unreadable_errors() -> tuple[type[BaseException], ...]:
    """What reading a bad file raises: decoders' errors (PIL also raises SyntaxError on some broken files)."""
    from PIL import Image

    return DataError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError


def _read(items: list[tuple[str, int]], reader: Callable[[str], torch.Tensor], names: list[str], where: str,
          kind: _Kind, cap: int | None, seed: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read `items` (all, or a class-balanced `cap` of them), skipping unreadable files.

    Returns:
        `(pixel_values, labels)`, in the items' order, or in turns over the classes with a cap.

    Raises:
        DataError: if some class's every tried file is unreadable, or the cap is below the number of classes.
    """
    by_class = _by_class(items)
    if cap is not None and cap < len(by_class):
        raise DataError(f"max_per_split={cap} is fewer than the {len(by_class)} classes of {where}; each class "
                        "needs at least one sample")
    capped = cap is not None and cap < len(items)
    if capped:
        rng = np.random.default_rng(seed)
        queues = [deque(indices[j] for j in rng.permutation(len(indices))) for indices in by_class.values()]
    else:
        queues = [deque(range(len(items)))]
    limit = min(cap, len(items)) if capped else len(items)
    errors = _unreadable_errors()
    out: torch.Tensor | None = None
    labels: list[int] = []
    tried: set[int] = set()
    skipped: list[tuple[str, str]] = []
    with tqdm(total=limit, desc=f"Reading {kind.noun}s ({where})", unit=kind.noun, disable=not progress) as bar:
        while len(labels) < limit and any(queues):
            for queue in queues:  # one turn: a readable file of each class (every file without a cap)
                while queue and len(labels) < limit:
                    index = queue.popleft()
                    path, label = items[index]
                    tried.add(label)
                    try:
                        pixels = reader(path)
                    except errors as err:
                        skipped.append((path, str(err).splitlines()[0] if str(err) else type(err).__name__))
                        continue
                    if out is None:
                        out = torch.empty((limit, *pixels.shape), dtype=torch.float32)
                    out[len(labels)] = pixels
                    labels.append(label)
                    bar.update()
                    if capped:
                        break
    if skipped:
        logger.warning("skipping %d unreadable %s%s in %s: %s", len(skipped), kind.noun,
                       "s" if len(skipped) > 1 else "", where, _list_names(Path(p).name for p, _ in skipped))
    lost = sorted(tried - set(labels))
    if lost:
        raise DataError(f"every {kind.noun} of class(es) {_list_names([names[i] for i in lost])} in {where} is "
                        "unreadable; see the warning above")
    assert out is not None  # items are never empty and a class with none readable raised above
    if len(labels) < limit:
        out = out[: len(labels)].clone()
    return out, torch.tensor(labels, dtype=torch.int64)


def _checked(pixels: torch.Tensor, model: Any, size: int | None, where: str) -> torch.Tensor:
    """The pixels if the model takes them (with `size`, only their height and width differ), else DataError."""
    if size is None:
        try:
            return check_shape(pixels, model, where)
        except GardenerError as err:
            message = str(err).removeprefix("calibration ")
            if "has shape" in message:
                message += "; the processor config does not match the model (or pass size to override its crop)"
            raise DataError(message) from None
    want = tuple(expected_shape(model)[:-2])
    if tuple(pixels.shape[1:-2]) != want or not bool(torch.isfinite(pixels).all()):
        raise DataError(f"{where}: pixel_values has shape {list(pixels.shape)}, but {type(model).__name__} takes "
                        f"[N, {', '.join(map(str, want))}, H, W]")
    patch = getattr(model.config, "patch_size", None)
    if isinstance(patch, int) and size % patch:
        logger.warning("size %d is not a multiple of the patch size %d: the model drops the border pixels", size, patch)
    return pixels
