"""Synthetic videos, PyAV decoding, frame sampling, dataset discovery, transforms and clip datasets."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import datasets
import numpy as np
import pytest
import torch
import transformers

from gardener_hf.data import (
    DataReport,
    VideoClassificationDataset,
    VideoItem,
    VideoTransform,
    collate_videos,
    count_frames,
    find_videos,
    read_frames,
    sample_indices,
)
from gardener_hf.errors import DataError, GardenerError
from gardener_hf.data import write_video
from gardener_hf.research.synthetic import DIRECTIONS, make_motion_dataset, moving_shape_clip

SIZE, FRAMES = 32, 12
CLASSES = sorted(DIRECTIONS)  # ['down', 'left', 'right', 'up']
HALF = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """Two 12-frame 32x32 mp4 clips per direction, generated once per module."""
    root = make_motion_dataset(tmp_path_factory.mktemp("motion"), videos_per_class=2, num_frames=FRAMES, size=SIZE)
    return root


@pytest.fixture(scope="module")
def motion_items(motion):
    return find_videos(motion, progress=False)


def eval_transform(**kw) -> VideoTransform:
    return VideoTransform(crop_size=(SIZE, SIZE), short_side=SIZE, mean=HALF, std=HALF, **kw)


def bright_centroids(clip: np.ndarray) -> np.ndarray:
    """[T, 2] (y, x) centroid of the bright shape in each frame."""
    out = []
    for frame in clip:
        ys, xs = np.nonzero(frame.max(-1) > 120)
        out.append((ys.mean(), xs.mean()))
    return np.array(out)


def corrupt_copy(motion, dst):
    """A copy of two classes plus a random-bytes .mp4 and a truncated real .mp4 in class 'left'."""
    for name in ("left", "right"):
        shutil.copytree(motion / name, dst / name)
    (dst / "left" / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    good = (motion / "left" / "left_000.mp4").read_bytes()
    (dst / "left" / "truncated.mp4").write_bytes(good[: len(good) // 2])
    return dst


# ------------------------------------------------------------------------------------------------ video.py


def test_make_motion_dataset_layout(motion):
    assert sorted(p.name for p in motion.iterdir()) == CLASSES
    for name in DIRECTIONS:
        assert sorted(p.name for p in (motion / name).iterdir()) == [f"{name}_000.mp4", f"{name}_001.mp4"]
    frames = read_frames(str(motion / "up" / "up_001.mp4"), range(FRAMES))
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8


def test_make_motion_dataset_is_deterministic(tmp_path):
    kw = dict(videos_per_class=1, num_frames=6, size=SIZE, classes=("left",))
    a = make_motion_dataset(tmp_path / "a", seed=3, **kw)
    b = make_motion_dataset(tmp_path / "b", seed=3, **kw)
    c = make_motion_dataset(tmp_path / "c", seed=4, **kw)
    files = [root / "left" / "left_000.mp4" for root in (a, b, c)]
    assert files[0].read_bytes() == files[1].read_bytes(), "the encoder wrote different bytes for the same frames"
    read = [read_frames(str(f), range(6)) for f in files]
    np.testing.assert_array_equal(read[0], read[1])
    np.testing.assert_array_equal(read[0], read_frames(str(files[0]), range(6)))  # decoding is repeatable
    assert np.abs(read[0].astype(int) - read[2]).mean() > 5
    clip = moving_shape_clip("up", num_frames=6, size=SIZE, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(clip, moving_shape_clip("up", num_frames=6, size=SIZE, rng=np.random.default_rng(7)))


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_moving_shape_moves_steadily_in_its_direction(direction):
    clip = moving_shape_clip(direction, num_frames=16, size=64, rng=np.random.default_rng(1))
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    steps = np.diff(bright_centroids(clip), axis=0)  # (dy, dx) per frame
    axis, sign = {"left": (1, -1), "right": (1, 1), "up": (0, -1), "down": (0, 1)}[direction]
    assert np.all(sign * steps[:, axis] >= 0.5) and np.all(sign * steps[:, axis] <= 3.5)
    np.testing.assert_allclose(steps[:, 1 - axis], 0, atol=1e-9)  # no motion across the direction


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="suffix"):
        write_video(tmp_path / "x.gif", np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="direction"):
        moving_shape_clip("sideways", rng=np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".webm", ".mkv"])
def test_read_frames_roundtrip(tmp_path, ext):
    clip = moving_shape_clip("right", num_frames=10, size=SIZE, rng=np.random.default_rng(2))
    path = str(write_video(tmp_path / "sub" / f"clip{ext}", clip))
    decoded = read_frames(path, range(10))
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - clip).mean() < 6  # measured about 2-3 at this quality
    # the moving shape survives compression: same centroid track within a pixel
    np.testing.assert_allclose(bright_centroids(decoded), bright_centroids(clip), atol=1.0)
    np.testing.assert_array_equal(read_frames(path, [7, 0, 7]), decoded[[7, 0, 7]])
    assert count_frames(path) == 10  # .webm/.mkv carry no frame count: counted by decoding


def test_read_frames_clamps_past_the_end(motion):
    path = str(motion / "down" / "down_000.mp4")
    full = read_frames(path, range(FRAMES))
    tail = read_frames(path, [FRAMES - 2, FRAMES - 1, FRAMES, 100])
    np.testing.assert_array_equal(tail, full[[FRAMES - 2, FRAMES - 1, FRAMES - 1, FRAMES - 1]])
    assert not np.array_equal(full[0], full[-1])


def test_read_frames_errors(tmp_path):
    with pytest.raises(DataError, match="missing.mp4: file not found"):
        read_frames(str(tmp_path / "missing.mp4"), [0])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    with pytest.raises(DataError, match="bad.mp4"):
        read_frames(str(bad), [0])
    with pytest.raises(DataError, match="bad.mp4"):
        count_frames(str(bad))
    with pytest.raises(ValueError, match="empty"):
        read_frames(str(bad), [])
    with pytest.raises(ValueError, match=">= 0"):
        read_frames(str(bad), [-1])


# ------------------------------------------------------------------------------------------------ sampling


def test_sample_indices_start():
    assert sample_indices(100, 4, stride=4) == [0, 4, 8, 12]
    assert sample_indices(10, 4, stride=4) == [0, 4, 8, 9]  # clamped to n - 1
    assert sample_indices(1, 3, stride=2) == [0, 0, 0]
    assert sample_indices(64, 16) == list(range(0, 64, 4))  # the paper's 16 x 4 recipe fills 64 frames


def test_sample_indices_uniform():
    assert sample_indices(100, 5, mode="uniform", stride=99) == [0, 25, 50, 74, 99]
    assert sample_indices(3, 5, mode="uniform") == [0, 0, 1, 2, 2]
    clips = [sample_indices(46, 5, mode="uniform", clip=k, num_clips=2) for k in range(2)]
    assert clips == [[0, 10, 20, 30, 40], [5, 15, 25, 35, 45]]  # interleaved, one spacing
    assert [sample_indices(21, 1, mode="uniform", clip=k, num_clips=3) for k in range(3)] == [[0], [10], [20]]


def test_sample_indices_random_is_reproducible_and_in_range():
    draws = [sample_indices(50, 4, stride=3, mode="random", rng=np.random.default_rng(s)) for s in range(30)]
    starts = {d[0] for d in draws}
    assert min(starts) >= 0 and max(starts) <= 50 - 12 and len(starts) > 5
    assert all(d == [d[0] + 3 * k for k in range(4)] for d in draws)
    assert draws[4] == sample_indices(50, 4, stride=3, mode="random", rng=np.random.default_rng(4))
    assert sample_indices(8, 4, stride=3, mode="random", rng=np.random.default_rng(0)) == [0, 3, 6, 7]


@pytest.mark.parametrize("mode", ["start", "random"])
def test_sample_indices_multi_clip_even_starts(mode):
    starts = [sample_indices(100, 4, stride=4, mode=mode, clip=k, num_clips=3)[0] for k in range(3)]
    assert starts == [0, 42, 84]  # round(k * (100 - 16) / 2)
    assert sample_indices(100, 4, stride=4, mode=mode, clip=2, num_clips=3) == [84, 88, 92, 96]
    assert [sample_indices(10, 4, mode=mode, clip=k, num_clips=2)[0] for k in range(2)] == [0, 0]  # n <= span


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_frames=0), dict(stride=0), dict(mode="middle"), dict(num_available=0), dict(clip=2, num_clips=2),
     dict(num_clips=0), dict(mode="random")],
)
def test_sample_indices_bad_args(kwargs):
    args = dict(num_available=10, num_frames=4) | kwargs
    with pytest.raises(ValueError):
        sample_indices(args.pop("num_available"), args.pop("num_frames"), **args)


# ------------------------------------------------------------------------------------------------ find_videos


def test_find_videos_folder(motion, motion_items):
    items, labels, report = motion_items
    assert labels == CLASSES
    assert [(item.path, item.label) for item in items] == [
        (str(motion / name / f"{name}_{i:03d}.mp4"), c) for c, name in enumerate(CLASSES) for i in range(2)
    ]
    assert (report.total, report.used, report.skipped) == (8, 8, [])
    assert report.summary() == "8 videos"
    assert find_videos(motion, progress=False)[0] == items  # deterministic


def test_find_videos_reads_split_subfolder(motion, tmp_path):
    shutil.copytree(motion / "up", tmp_path / "test" / "up")
    shutil.copytree(motion / "down", tmp_path / "train" / "down")
    items, labels, _ = find_videos(tmp_path, split="test", progress=False)
    assert labels == ["up"] and [item.label for item in items] == [0, 0]
    with pytest.raises(DataError, match="'val'"):
        find_videos(tmp_path, split="val", progress=False)


def manifest_rows(motion):
    return [(f"{name}/{name}_{i:03d}.mp4", name) for name in ("up", "left") for i in range(2)]


def test_find_videos_csv(motion):
    path = motion / "train.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(manifest_rows(motion))
    items, labels, report = find_videos(path, progress=False)
    assert labels == ["left", "up"]
    assert [(item.path, item.label) for item in items] == [
        (str(motion / p), labels.index(name)) for p, name in manifest_rows(motion)
    ]
    assert report.total == 4
    path.unlink()  # keep the folder source clean for the other tests


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_find_videos_json(tmp_path, motion, suffix):
    rows = [{"path": str(motion / p), "label": ["left", "up"].index(name) + 10} for p, name in manifest_rows(motion)]
    path = tmp_path / f"data{suffix}"
    text = json.dumps(rows) if suffix == ".json" else "\n".join(json.dumps(r) for r in rows) + "\n\n"
    path.write_text(text)
    items, labels, _ = find_videos(path, progress=False)
    assert labels == ["10", "11"]  # ints become strings, sorted
    assert [item.label for item in items] == [1, 1, 0, 0]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "file,label\na.mp4,x\n", r"lacks column\(s\) \['path'\]"),
        ("m.json", json.dumps([{"path": "a.mp4"}]), r"entry 0: missing key\(s\) \['label'\]"),
        ("m.jsonl", '{"path": "a.mp4", "label": "x"}\n{"label": "y"}\n', r"line 2: missing key\(s\) \['path'\]"),
        ("m.json", json.dumps({"path": "a.mp4"}), "JSON list"),
        ("m.csv", "path,label\n", "no videos"),
    ],
)
def test_find_videos_bad_manifest(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        find_videos(tmp_path / name, progress=False)


def test_find_videos_hf_dataset_with_class_labels(motion_items):
    items, _, _ = motion_items
    names = ["up", "down", "left", "right"]  # ClassLabel order is kept, not sorted
    paths = [item.path for item in items]
    ds = datasets.Dataset.from_dict({"clip": paths, "label": [names.index(CLASSES[i.label]) for i in items]})
    ds = ds.cast_column("clip", datasets.Video()).cast_column("label", datasets.ClassLabel(names=names))
    found, labels, report = find_videos(datasets.DatasetDict({"validation": ds}), split="validation", progress=False)
    assert labels == names and report.total == 8
    assert [(i.path, labels[i.label]) for i in found] == [(i.path, CLASSES[i.label]) for i in items]
    with pytest.raises(DataError, match="no split 'train'"):
        find_videos(datasets.DatasetDict({"validation": ds}), progress=False)


def test_find_videos_hf_dataset_from_bytes(motion_items):
    items, _, _ = motion_items
    rows = [{"bytes": open(i.path, "rb").read(), "path": None} for i in items[:3]]
    ds = datasets.Dataset.from_dict({"video": rows, "label": ["a", "b", "a"]}).cast_column("video", datasets.Video())
    found, labels, _ = find_videos(ds, progress=False)
    assert labels == ["a", "b"] and [i.label for i in found] == [0, 1, 0]
    for original, cached in zip(items[:3], found, strict=True):
        assert cached.path != original.path
        np.testing.assert_array_equal(read_frames(cached.path, [0, 5]), read_frames(original.path, [0, 5]))


def test_find_videos_hf_dataset_without_video_column():
    ds = datasets.Dataset.from_dict({"name": ["a.mp4"], "label": ["x"]})
    with pytest.raises(DataError, match="no Video column"):
        find_videos(ds, progress=False)
    with pytest.raises(DataError, match="no label column 'target'"):
        find_videos(ds, video_column="name", label_column="target", progress=False)


def test_eval_labels_map_to_training_labels(motion, tmp_path):
    shutil.copytree(motion / "up", tmp_path / "up")
    shutil.copytree(motion / "left", tmp_path / "left")
    items, labels, _ = find_videos(tmp_path, labels=CLASSES, progress=False)
    assert labels == CLASSES
    assert [CLASSES[i.label] for i in items] == ["left", "left", "up", "up"]
    with pytest.raises(DataError, match=r"\['up'\] that are not among the known labels \['left', 'right'\]"):
        find_videos(tmp_path, labels=["left", "right"], progress=False)


def test_find_videos_empty_sources(tmp_path):
    with pytest.raises(DataError, match="no class subfolders"):
        find_videos(tmp_path, progress=False)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "a.MP4").write_bytes(b"")  # suffixes are case-insensitive
    with pytest.raises(DataError, match="cats"):
        find_videos(tmp_path, progress=False)
    (tmp_path / "dogs" / "a.MP4").unlink()
    with pytest.raises(DataError, match="no videos"):
        find_videos(tmp_path, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        find_videos(tmp_path / "nope", progress=False)


def test_find_videos_skips_unreadable_files(motion, tmp_path, caplog):
    root = corrupt_copy(motion, tmp_path)
    with caplog.at_level(logging.WARNING, logger="gardener_hf.data"):
        items, labels, report = find_videos(root, progress=False)
    assert labels == ["left", "right"]
    assert [p.rsplit("/", 1)[-1] for p, _ in report.skipped] == ["garbage.mp4", "truncated.mp4"]
    assert (report.total, report.used, len(items)) == (6, 4, 4)
    assert report.summary() == "4 videos, 2 skipped (unreadable): garbage.mp4, truncated.mp4"
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "garbage.mp4" in warned and "truncated.mp4" in warned
    with pytest.raises(DataError, match="garbage.mp4"):
        find_videos(root, strict=True, progress=False)


def test_find_videos_class_with_only_unreadable_files(tmp_path, motion):
    shutil.copytree(motion / "left", tmp_path / "left")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.avi").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"\['broken'\]"):
        find_videos(tmp_path, progress=False)


def test_data_report_summary_lists_at_most_five():
    report = DataReport(total=10, skipped=[(f"/d/{i}.mp4", "bad") for i in range(7)])
    assert report.used == 3
    assert report.summary() == "3 videos, 7 skipped (unreadable): 0.mp4, 1.mp4, 2.mp4, 3.mp4, 4.mp4 and 2 more"
    assert issubclass(DataError, GardenerError)


# ------------------------------------------------------------------------------------------------ transforms


def test_eval_transform_normalises_constant_clip_exactly():
    colour = np.array([10, 128, 250], dtype=np.uint8)
    clip = np.broadcast_to(colour, (3, 48, 64, 3)).copy()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = VideoTransform(crop_size=(32, 24), short_side=40, mean=mean, std=std)(clip)
    assert out.shape == (3, 3, 32, 24) and out.dtype == torch.float32 and out.is_contiguous()
    expected = (torch.tensor(colour / 255.0) - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(out, expected.float().view(1, 3, 1, 1).expand_as(out), atol=1e-6, rtol=0)


def test_eval_transform_centre_crops_without_resizing_at_target_size():
    clip = np.random.default_rng(0).integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    out = VideoTransform(crop_size=(32, 32), short_side=40, mean=HALF, std=HALF)(clip)
    expected = torch.from_numpy(clip[:, 4:36, 9:41]).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_eval_transform_resizes_short_side():
    # a horizontal ramp resized 48x64 -> 40x53 then centre-cropped: still a ramp, left half darker
    ramp = np.broadcast_to(np.linspace(0, 255, 64).astype(np.uint8)[None, None, :, None], (2, 48, 64, 3)).copy()
    out = VideoTransform(crop_size=(40, 40), short_side=40, mean=(0, 0, 0), std=(1, 1, 1))(ramp)
    row = out[0, 0, 20]
    assert out.shape == (2, 3, 40, 40) and bool((row.diff() >= 0).all())
    assert abs(float(row[20]) - 0.5) < 0.05  # the centre of the crop is the centre of the ramp


def test_train_transform_applies_one_crop_and_flip_to_every_frame():
    base = np.random.default_rng(0).integers(0, 200, (48, 48, 3), dtype=np.uint8)
    base[:, :24] //= 4  # a dark left half tells flips apart
    clip = np.stack([base + t for t in range(4)])  # frames differ only by a constant brightness step
    transform = VideoTransform(crop_size=(32, 32), short_side=48, mean=(0, 0, 0), std=(1, 1, 1), train=True,
                               scale_range=(1.0, 1.0))
    outs = [transform(clip, np.random.default_rng(seed)) for seed in range(12)]
    for out in outs:
        assert out.shape == (4, 3, 32, 32)
        for t in range(4):  # the same crop/flip everywhere: frame t is frame 0 plus t/255
            torch.testing.assert_close(out[t] - out[0], torch.full_like(out[0], t / 255), atol=1e-5, rtol=0)
    flipped = {bool(out[0, :, :, :8].mean() > out[0, :, :, -8:].mean()) for out in outs}
    assert flipped == {True, False}
    assert len({tuple(out[0, 0, 0, :4].tolist()) for out in outs}) > 3  # crops vary with the rng
    torch.testing.assert_close(transform(clip, np.random.default_rng(3)), outs[3], atol=0, rtol=0)


def test_train_transform_scale_jitter_keeps_output_size():
    clip = np.zeros((2, 30, 45, 3), np.uint8)
    transform = eval_transform(train=True, scale_range=(1.0, 1.5))
    assert {tuple(transform(clip, np.random.default_rng(s)).shape) for s in range(5)} == {(2, 3, SIZE, SIZE)}


def test_transform_from_processor_matches_processor(tmp_path):
    processor = transformers.VideoMAEImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                                    image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])
    transform = VideoTransform.from_processor(processor, train=False)
    assert (transform.crop_size, transform.short_side, transform.train) == ((32, 32), 40, False)
    assert transform.mean == (0.4, 0.5, 0.6) and transform.std == (0.2, 0.25, 0.3)
    clip = moving_shape_clip("left", num_frames=4, size=64, rng=np.random.default_rng(0))[:, :48]
    reference = processor(list(clip), return_tensors="pt")["pixel_values"][0]
    assert (reference - transform(clip)).abs().max() < 2 / 255 / 0.2 + 1e-6  # one uint8 level of rounding
    processor.save_pretrained(tmp_path)
    from_folder = VideoTransform.from_processor(tmp_path, train=True, hflip=False)
    assert (from_folder.crop_size, from_folder.short_side, from_folder.train, from_folder.hflip) == ((32, 32), 40,
                                                                                                      True, False)


def test_transform_from_processor_dict_variants():
    t = VideoTransform.from_processor({"size": {"height": 36, "width": 48}, "crop_size": {"height": 32, "width": 32},
                                       "do_normalize": False, "image_mean": [0.4] * 3}, train=False)
    assert (t.resize_to, t.crop_size, t.mean, t.std) == ((36, 48), (32, 32), (0, 0, 0), (1, 1, 1))
    out = t(np.full((2, 10, 10, 3), 51, np.uint8))
    assert out.shape == (2, 3, 32, 32) and torch.allclose(out, torch.tensor(0.2))
    t = VideoTransform.from_processor({"size": 40, "do_center_crop": False}, train=False)
    assert (t.short_side, t.crop_size) == (40, (40, 40))
    with pytest.raises(DataError, match="shortest_edge"):
        VideoTransform.from_processor({"size": {"longest_edge": 3}, "crop_size": 2}, train=False)


# ------------------------------------------------------------------------------------------------ dataset


def test_dataset_items_shapes_and_labels(motion_items):
    items, labels, _ = motion_items
    ds = VideoClassificationDataset(items, labels, eval_transform(), num_frames=4, stride=3)
    assert len(ds) == 8 and ds.items == items and ds.labels == CLASSES
    assert ds.id2label == dict(enumerate(CLASSES)) and ds.label2id["up"] == 3
    sample = ds[5]
    assert sample["pixel_values"].shape == (4, 3, SIZE, SIZE) and sample["labels"] == items[5].label == 2
    expected = torch.from_numpy(read_frames(items[5].path, [0, 3, 6, 9])).permute(0, 3, 1, 2) / 255 * 2 - 1
    torch.testing.assert_close(sample["pixel_values"], expected, atol=1e-6, rtol=0)
    multi = VideoClassificationDataset(items, labels, eval_transform(), num_frames=4, stride=2, num_clips=3)[5]
    assert multi["pixel_values"].shape == (3, 4, 3, SIZE, SIZE)
    frames = read_frames(items[5].path, [4, 6])  # clip 1 of 3 starts at round((12 - 8) / 2) = 2
    expected = torch.from_numpy(frames).permute(0, 3, 1, 2) / 255 * 2 - 1
    torch.testing.assert_close(multi["pixel_values"][1, 1:3], expected, atol=1e-6, rtol=0)


def train_dataset(items, labels, **kw):
    transform = eval_transform(train=True, scale_range=(1.0, 1.5))
    return VideoClassificationDataset(items, labels, transform, num_frames=4, stride=2, sampling="random", **kw)


def test_dataset_draws_are_reproducible_and_change_with_epoch(motion_items):
    items, labels, _ = motion_items
    a, b = train_dataset(items, labels, seed=1), train_dataset(items, labels, seed=1)
    first = a[2]["pixel_values"]
    torch.testing.assert_close(b[2]["pixel_values"], first, atol=0, rtol=0)
    a.set_epoch(1)
    assert a.epoch == 1 and not torch.equal(a[2]["pixel_values"], first)
    a.set_epoch(0)
    torch.testing.assert_close(a[2]["pixel_values"], first, atol=0, rtol=0)
    assert not torch.equal(train_dataset(items, labels, seed=2)[2]["pixel_values"], first)


def test_dataloader_workers_give_the_same_batches(motion_items):
    items, labels, _ = motion_items
    ds = train_dataset(items, labels, seed=0)
    reference = [collate_videos([ds[i] for i in range(j, j + 4)]) for j in (0, 4)]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_videos,
                                         persistent_workers=True)
    batches = list(loader)
    assert [b["pixel_values"].shape for b in batches] == [(4, 4, 3, SIZE, SIZE)] * 2
    assert batches[0]["labels"].dtype == torch.long and batches[1]["labels"].tolist() == [2, 2, 3, 3]
    for got, want in zip(batches, reference, strict=True):
        torch.testing.assert_close(got["pixel_values"], want["pixel_values"], atol=0, rtol=0)
    ds.set_epoch(1)  # reaches the persistent workers through shared memory
    epoch1 = list(loader)
    fresh = train_dataset(items, labels, seed=0)
    fresh.set_epoch(1)
    torch.testing.assert_close(epoch1[0]["pixel_values"], collate_videos([fresh[i] for i in range(4)])["pixel_values"],
                               atol=0, rtol=0)
    assert not torch.equal(epoch1[0]["pixel_values"], batches[0]["pixel_values"])


def test_dataset_replaces_undecodable_item(motion_items, tmp_path, caplog):
    items, labels, _ = motion_items
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01" * 500)
    mixed = [VideoItem(str(bad), 0), items[4], items[6]]
    ds = VideoClassificationDataset(mixed, labels, eval_transform(), num_frames=4)
    with caplog.at_level(logging.WARNING, logger="gardener_hf.data"):
        sample = ds[0]
    assert sample["labels"] == items[4].label == 2
    torch.testing.assert_close(sample["pixel_values"], ds[1]["pixel_values"], atol=0, rtol=0)
    assert any("corrupt.mp4" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    strict = VideoClassificationDataset(mixed, labels, eval_transform(), num_frames=4, strict=True)
    with pytest.raises(DataError, match="corrupt.mp4"):
        strict[0]
    with pytest.raises(DataError, match="none of the 1 videos"):
        VideoClassificationDataset([VideoItem(str(bad), 0)], labels, eval_transform())[0]


def test_dataset_and_collate_reject_bad_input(motion_items):
    items, labels, _ = motion_items
    with pytest.raises(DataError, match="label outside"):
        VideoClassificationDataset([VideoItem(items[0].path, 9)], labels, eval_transform())
    with pytest.raises(ValueError, match="sampling mode"):
        VideoClassificationDataset(items, labels, eval_transform(), sampling="middle")
    with pytest.raises(ValueError, match="empty"):
        collate_videos([])
    with pytest.raises(ValueError, match="different shapes"):
        collate_videos([{"pixel_values": torch.zeros(2), "labels": 0}, {"pixel_values": torch.zeros(3), "labels": 1}])
