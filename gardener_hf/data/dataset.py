"""Clip datasets for `transformers.Trainer`: `VideoClassificationDataset` and its collator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .io import count_frames, read_frames
from .sampling import sample_indices
from .sources import VideoItem
from .transforms import VideoTransform

logger = logging.getLogger(__name__)


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
