"""Video classification data: finding labelled videos, decoding them with PyAV, and clip datasets.

Modules: `sources` (folders, CSV/JSON manifests, `datasets` datasets -> labelled items), `io` (PyAV
decoding and encoding), `sampling` (which frames make a clip), `transforms` (the VideoMAE
processor's resize / crop / normalise), `dataset` (the `torch` dataset and collator), `labelled` (labelled
images or videos in memory, train and validation splits). Everything is
re-exported here, so `from gardener_hf.data import ...` is all a user needs.

Example:
    >>> from gardener_hf.data import VideoClassificationDataset, VideoTransform, find_videos
    >>> items, labels, report = find_videos("ucf101/train")  # doctest: +SKIP
    >>> transform = VideoTransform.from_processor(processor, train=True)  # doctest: +SKIP
    >>> dataset = VideoClassificationDataset(items, labels, transform)  # doctest: +SKIP
    >>> dataset[0]["pixel_values"].shape  # doctest: +SKIP
    torch.Size([16, 3, 224, 224])
"""

from .calibration import load_calibration
from .dataset import VideoClassificationDataset, collate_videos
from .io import count_frames, probe, read_frames, write_video
from .labelled import LabelledSplit, load_labelled
from .sampling import SAMPLING_MODES, sample_indices
from .sources import EVAL_SPLITS, SPLIT_NAMES, VIDEO_EXTENSIONS, DataReport, VideoItem, data_name, eval_split, find_videos
from .transforms import VideoTransform

__all__ = [
    "EVAL_SPLITS",
    "SAMPLING_MODES",
    "SPLIT_NAMES",
    "VIDEO_EXTENSIONS",
    "DataReport",
    "LabelledSplit",
    "VideoClassificationDataset",
    "VideoItem",
    "VideoTransform",
    "collate_videos",
    "count_frames",
    "data_name",
    "eval_split",
    "find_videos",
    "load_calibration",
    "load_labelled",
    "probe",
    "read_frames",
    "sample_indices",
    "write_video",
]
