"""load_labelled: labelled images and videos in memory, train and validation splits, and its errors.

Expected pixel values are worked out here from the files' known contents (constant images, a resize and crop
built by hand), not through load_labelled's own code path.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, save_with_processor

from gardener_hf.data import LabelledSplit, VideoTransform, load_labelled, read_frames, write_video
from gardener_hf.errors import DataError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# DINOv2's processor style: resize the short side, then centre-crop (256 -> 224 on the Hub; 40 -> 32 here).
DINO_PROCESSOR = {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True,
                  "image_mean": list(MEAN), "image_std": list(STD)}


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    """A tiny DINOv2 (32x32 inputs, patch 8) saved with a resize-and-crop processor config."""
    model = make_model("Dinov2Model")
    folder = tmp_path_factory.mktemp("dino")
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(DINO_PROCESSOR))
    return model, str(folder)


@pytest.fixture(scope="module")
def videomae(tmp_path_factory):
    """A tiny VideoMAE (4 frames of 32x32) with its processor (shortest edge 32, crop 32, mean = std = 0.5)."""
    model = make_model("VideoMAEForVideoClassification")
    return model, str(save_with_processor(model, tmp_path_factory.mktemp("videomae")))


def constant(path: Path, value: int, shape: tuple[int, int] = (40, 50)) -> Path:
    """A PNG of one grey `value` (so every pixel's normalised value is known whatever the resize)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*shape, 3), value, dtype=np.uint8)).save(path)
    return path


def normalised(value: int, mean=MEAN, std=STD) -> torch.Tensor:
    """[3, 1, 1]: a grey value after the processor's rescale and per-channel normalisation."""
    return torch.tensor([(value / 255 - m) / s for m, s in zip(mean, std, strict=True)]).view(3, 1, 1)


def grey_values(split: LabelledSplit, mean=MEAN, std=STD) -> list[int]:
    """The grey value each sample of a split of constant images was made from."""
    first = split.pixel_values[:, 0, 0, 0] if split.pixel_values.ndim == 4 else split.pixel_values[:, 0, 0, 0, 0]
    return [round(float((v * std[0] + mean[0]) * 255)) for v in first]


def pets(root: Path, train: dict[str, int], validation: dict[str, int] | None = None) -> Path:
    """`root/train/<class>/<i>.png` (and `root/validation/...`): `n` constant images per class, distinct values."""
    value = 10
    for split, counts in (("train", train), ("validation", validation or {})):
        for name, n in counts.items():
            for i in range(n):
                constant(root / split / name / f"{i}.png", value)
                value += 5
    return root


def videos(root: Path, counts: dict[str, int], frames: int = 6) -> Path:
    """`root/<class>/<class>_<i>.mp4`: 32x32 clips whose frame t is grey `base + 20 t` (base distinct per clip)."""
    base = 0
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            clip = np.stack([np.full((32, 32, 3), base + 20 * t, dtype=np.uint8) for t in range(frames)])
            write_video(root / name / f"{name}_{i}.mp4", clip)
            base += 8
    return root


# ---------------------------------------------------------------------------------------------------- images


def test_a_split_image_folder_gives_its_train_and_validation_splits_prepared_by_the_processor(tmp_path, dino):
    from PIL import Image

    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 3, "dog": 3}, {"cat": 2, "dog": 2})
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)  # resized to 40x53, centre-cropped to 32x32
    Image.fromarray(photo).save(root / "train" / "cat" / "z.png")
    train, val = load_labelled(model, root, source=src, progress=False)

    assert train.pixel_values.shape == (7, 3, 32, 32) and val.pixel_values.shape == (4, 3, 32, 32)
    assert train.pixel_values.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1] and val.labels.tolist() == [0, 0, 1, 1]
    assert train.label_names == val.label_names == ["cat", "dog"]
    assert train.description == "pets/train: 7 images in 2 classes"
    assert val.description == "pets/validation: 4 images in 2 classes"
    assert str(tmp_path) not in train.description + val.description
    # files in sorted order: cat/0, cat/1, cat/2, cat/z (the photo), dog/0 ...; values 10, 15, ... as written
    for pixels, value in zip(train.pixel_values[[0, 1, 2, 4, 5, 6]], (10, 15, 20, 25, 30, 35), strict=True):
        assert torch.allclose(pixels, normalised(value).expand(3, 32, 32), atol=1e-5)
    assert grey_values(val) == [40, 45, 50, 55]
    by_hand = VideoTransform(crop_size=(32, 32), short_side=40, mean=MEAN, std=STD)(photo[None])[0]
    assert torch.equal(train.pixel_values[3], by_hand)


def write_manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def test_a_manifest_with_val_fraction_is_split_by_class_with_the_seed(tmp_path):
    model = make_model("ViTModel")  # processor: resize to 32x32, mean = std = 0.5
    src = str(save_with_processor(model, tmp_path / "vit"))
    rows, label_of = [], {}
    for k in range(15):  # classes listed unsorted: b, a, c, b, a, ...
        name = "bac"[k % 3]
        constant(tmp_path / "imgs" / f"{k}.png", 10 + 5 * k)
        rows.append((f"imgs/{k}.png", name))  # relative to the manifest's folder
        label_of[10 + 5 * k] = name
    manifest = write_manifest(tmp_path / "clips.csv", rows)
    half = (0.5,) * 3

    train, val = load_labelled(model, manifest, val_fraction=0.4, source=src, progress=False)
    assert train.label_names == val.label_names == ["a", "b", "c"]
    assert train.description == "clips.csv (60% train, seed 0): 9 images in 3 classes"
    assert val.description == "clips.csv (40% validation, seed 0): 6 images in 3 classes"
    assert torch.bincount(train.labels).tolist() == [3, 3, 3] and torch.bincount(val.labels).tolist() == [2, 2, 2]
    train_values, val_values = grey_values(train, half, half), grey_values(val, half, half)
    assert not set(train_values) & set(val_values) and sorted(train_values + val_values) == sorted(label_of)
    for split, values in ((train, train_values), (val, val_values)):
        assert [split.label_names[i] for i in split.labels.tolist()] == [label_of[v] for v in values]

    again_train, again_val = load_labelled(model, manifest, val_fraction=0.4, source=src, progress=False)
    assert torch.equal(again_train.pixel_values, train.pixel_values) and torch.equal(again_val.labels, val.labels)
    _, other = load_labelled(model, manifest, val_fraction=0.4, seed=1, source=src, progress=False)
    assert sorted(grey_values(other, half, half)) != sorted(val_values)


def test_eval_data_is_the_validation_split_in_any_of_the_formats(tmp_path, dino):
    model, src = dino
    train_root = pets(tmp_path / "set", {"cat": 2, "dog": 2}) / "train"
    held = tmp_path / "held.jsonl"
    held.write_text("\n".join(json.dumps({"path": f"h{i}.png", "label": name})
                              for i, name in enumerate(["dog", "cat", "dog"])) + "\n")
    for i, value in enumerate((200, 210, 220)):
        constant(tmp_path / f"h{i}.png", value)
    train, val = load_labelled(model, train_root, eval_data=held, source=src, progress=False)
    assert train.description == "set/train: 4 images in 2 classes"
    assert val.description == "held.jsonl: 3 images in 2 classes"
    assert val.labels.tolist() == [1, 0, 1] and grey_values(val) == [200, 210, 220]

    other = pets(tmp_path / "other", {"cat": 1}, {"cat": 1, "dog": 2})  # a folder of splits: its validation split
    _, val = load_labelled(model, train_root, eval_data=other, source=src, progress=False)
    assert val.description == "other/validation: 3 images in 2 classes" and val.labels.tolist() == [0, 1, 1]
    with pytest.raises(DataError, match="ambiguous validation split: both --eval-data and --val-fraction"):
        load_labelled(model, train_root, eval_data=held, val_fraction=0.5, source=src, progress=False)


def test_size_resizes_and_crops_to_it_keeping_the_processors_ratio(tmp_path, dino):
    from PIL import Image

    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 1, "dog": 1}, {"cat": 1, "dog": 1})
    photo = np.random.default_rng(1).integers(0, 256, (45, 60, 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "train" / "cat" / "z.png")
    train, val = load_labelled(model, root, source=src, size=16, progress=False)
    assert train.pixel_values.shape == (3, 3, 16, 16) and val.pixel_values.shape == (2, 3, 16, 16)
    # 40 -> 32 becomes 20 -> 16: the short side resized to 20 (45x60 -> 20x26), a centre crop of 16x16
    by_hand = VideoTransform(crop_size=(16, 16), short_side=20, mean=MEAN, std=STD)(photo[None])[0]
    assert torch.equal(train.pixel_values[1], by_hand)
    assert torch.allclose(train.pixel_values[0], normalised(10).expand(3, 16, 16), atol=1e-5)
    model_out = model(pixel_values=train.pixel_values).last_hidden_state  # DINOv2 interpolates its grid
    assert model_out.shape == (3, 1 + 4, 32)
    # a processor that resizes straight to its input size resizes straight to `size`
    vit_style = tmp_path / "vit-style"
    model.save_pretrained(vit_style)
    (vit_style / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 32, "width": 32},
                                                                   "image_mean": list(MEAN), "image_std": list(STD)}))
    train, _ = load_labelled(model, root, source=str(vit_style), size=16, progress=False)
    squeezed = VideoTransform(crop_size=(16, 16), short_side=16, resize_to=(16, 16), mean=MEAN, std=STD)(photo[None])[0]
    assert train.pixel_values.shape == (3, 3, 16, 16) and torch.equal(train.pixel_values[1], squeezed)


def test_max_per_split_takes_a_seeded_class_balanced_subset(tmp_path, dino):
    model, src = dino
    root = pets(tmp_path / "pets", {"a": 4, "b": 4, "c": 4}, {"a": 2, "b": 2, "c": 2})
    train, val = load_labelled(model, root, source=src, max_per_split=5, progress=False)
    assert len(train) == len(val) == 5
    assert sorted(torch.bincount(train.labels, minlength=3).tolist()) == [1, 2, 2]
    assert sorted(torch.bincount(val.labels, minlength=3).tolist()) == [1, 2, 2]
    assert train.description == "pets/train: 5 of 12 images in 3 classes (class-balanced, seed 0)"
    full, _ = load_labelled(model, root, source=src, progress=False)
    written = grey_values(full)
    assert set(grey_values(train)) <= set(written) and len(set(grey_values(train))) == 5
    labels_of = dict(zip(written, full.labels.tolist(), strict=True))
    assert [labels_of[v] for v in grey_values(train)] == train.labels.tolist()
    again, _ = load_labelled(model, root, source=src, max_per_split=5, progress=False)
    assert torch.equal(again.pixel_values, train.pixel_values) and torch.equal(again.labels, train.labels)
    other, _ = load_labelled(model, root, source=src, max_per_split=5, seed=3, progress=False)
    assert set(grey_values(other)) != set(grey_values(train))
    everything, _ = load_labelled(model, root, source=src, max_per_split=50, progress=False)
    assert everything.description == "pets/train: 12 images in 3 classes"
    assert torch.equal(everything.labels, full.labels)
    with pytest.raises(DataError, match="max_per_split=2 is fewer than the 3 classes of pets/train"):
        load_labelled(model, root, source=src, max_per_split=2, progress=False)


# ---------------------------------------------------------------------------------------------------- videos


def test_a_split_video_folder_is_sampled_uniformly_to_the_models_clip_length(tmp_path, videomae):
    model, src = videomae
    root = tmp_path / "moves"
    videos(root / "train", {"left": 2, "right": 2})
    videos(root / "validation", {"left": 1, "right": 1}, frames=8)
    train, val = load_labelled(model, root, source=src, progress=False)
    assert train.pixel_values.shape == (4, 4, 3, 32, 32) and val.pixel_values.shape == (2, 4, 3, 32, 32)
    assert train.labels.tolist() == [0, 0, 1, 1] and val.labels.tolist() == [0, 1]
    assert train.label_names == ["left", "right"]
    assert train.description == "moves/train: 4 videos in 2 classes"
    assert val.description == "moves/validation: 2 videos in 2 classes"
    # uniform sampling of 4 frames: 0, 2, 3, 5 of 6 and 0, 2, 5, 7 of 8; no resize (32x32), (x / 255 - 0.5) / 0.5
    for split, folder, picks in ((train, root / "train" / "right" / "right_1.mp4", [0, 2, 3, 5]),
                                 (val, root / "validation" / "right" / "right_0.mp4", [0, 2, 5, 7])):
        frames = read_frames(str(folder), picks)
        want = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1
        assert torch.allclose(split.pixel_values[-1], want, atol=1e-5)
    grey = (split.pixel_values[-1, :, 0, 16, 16] + 1) / 2 * 255  # the clip's frames are 20 grey levels apart
    assert torch.allclose(grey, torch.tensor([8.0 + 20 * t for t in (0, 2, 5, 7)]), atol=3)


def test_video_manifest_with_val_fraction(tmp_path, videomae):
    model, src = videomae
    videos(tmp_path / "clips", {"up": 2, "down": 3}, frames=4)
    rows = [(str(p), p.parent.name) for p in sorted((tmp_path / "clips").rglob("*.mp4"))]
    manifest = tmp_path / "clips.json"
    manifest.write_text(json.dumps([{"path": p, "label": name} for p, name in rows]))
    train, val = load_labelled(model, manifest, val_fraction=0.5, source=src, progress=False)
    assert train.label_names == ["down", "up"] and train.pixel_values.shape[1:] == (4, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [1, 1] and torch.bincount(val.labels).tolist() == [2, 1]
    assert val.description == "clips.json (50% validation, seed 0): 3 videos in 2 classes"


# ---------------------------------------------------------------------------------------------------- errors


def test_no_validation_split_names_the_remedies(tmp_path, dino):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 2, "dog": 2}) / "train"
    with pytest.raises(DataError, match=r"no validation split for pets/train: pass --eval-data .* or --val-fraction "
                                        r".*root/train/<class>/\.\.\., root/validation/<class>/\.\.\."):
        load_labelled(model, root, source=src, progress=False)
    with pytest.raises(DataError, match="no validation split for pets/train"):  # a folder of splits with train/ only
        load_labelled(model, root.parent, source=src, progress=False)
    train, val = load_labelled(model, root.parent, val_fraction=0.5, source=src, progress=False)
    assert len(train) == len(val) == 2
    assert val.description == "pets/train (50% validation, seed 0): 2 images in 2 classes"


def test_val_fraction_or_eval_data_beside_a_folders_own_validation_split_is_ambiguous(tmp_path, dino):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 2, "dog": 2}, {"cat": 1, "dog": 1})
    with pytest.raises(DataError, match=r"ambiguous validation split: pets has its own \(pets/validation\) and "
                                        r"--val-fraction gives another"):
        load_labelled(model, root, val_fraction=0.5, source=src, progress=False)
    with pytest.raises(DataError, match="and --eval-data gives another"):
        load_labelled(model, root, eval_data=root / "validation", source=src, progress=False)


def test_one_class_is_refused(tmp_path, dino):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 3}, {"cat": 1})
    with pytest.raises(DataError, match=r"pets/train has 1 class \(cat\): a classifier needs at least 2"):
        load_labelled(model, root, source=src, progress=False)


def test_a_validation_class_the_training_data_lacks_is_named(tmp_path, dino):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 1, "dog": 1}, {"cat": 1, "zebra": 1})
    with pytest.raises(DataError, match=r"pets/validation has class\(es\) zebra that the training data lacks"):
        load_labelled(model, root, source=src, progress=False)


def test_a_training_class_missing_from_validation_is_a_warning(tmp_path, dino, caplog):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 1, "dog": 1, "owl": 1}, {"cat": 2})
    with caplog.at_level(logging.WARNING, logger="gardener_hf.data.labelled"):
        _, val = load_labelled(model, root, source=src, progress=False)
    assert val.labels.tolist() == [0, 0] and val.label_names == ["cat", "dog", "owl"]
    assert val.description == "pets/validation: 2 images in 1 class"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [("pets/validation has no images of the training class(es) ['dog', 'owl']; validation "
                         "accuracy covers the other classes")]


def test_unreadable_images_are_skipped_with_one_warning_and_a_class_of_them_is_an_error(tmp_path, dino, caplog):
    model, src = dino
    root = pets(tmp_path / "pets", {"cat": 2, "dog": 2}, {"cat": 1, "dog": 1})
    (root / "train" / "cat" / "broken.png").write_bytes(b"not an image")
    (root / "train" / "dog" / "cut.png").write_bytes(constant(tmp_path / "x.png", 9).read_bytes()[:40])
    with caplog.at_level(logging.WARNING, logger="gardener_hf.data.labelled"):
        train, _ = load_labelled(model, root, source=src, progress=False)
    assert train.labels.tolist() == [0, 0, 1, 1] and grey_values(train) == [10, 15, 20, 25]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["skipping 2 unreadable images in pets/train: broken.png, cut.png"]
    for path in (root / "validation" / "dog").iterdir():
        path.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"every image of class\(es\) dog in pets/validation is unreadable"):
        load_labelled(model, root, source=src, progress=False)


def test_data_of_the_wrong_kind_says_what_it_found(tmp_path, dino, videomae):
    image_model, image_src = dino
    video_model, video_src = videomae
    root = pets(tmp_path / "pets", {"cat": 2, "dog": 2}, {"cat": 1, "dog": 1})
    with pytest.raises(DataError, match=r"pets/train holds 4 image file\(s\) \(\.png\) and no videos, but "
                                        r"VideoMAEForVideoClassification is a video model: give it videos \(\.avi"):
        load_labelled(video_model, root, source=video_src, progress=False)
    clips = videos(tmp_path / "clips", {"up": 1, "down": 1}, frames=2)
    with pytest.raises(DataError, match=r"clips holds 2 video file\(s\) \(\.mp4\) and no images, but Dinov2Model is "
                                        r"an image model: give it images \(\.jpg"):
        load_labelled(image_model, clips, val_fraction=0.5, source=image_src, progress=False)
    manifest = write_manifest(tmp_path / "mixed.csv", [("clips/up/up_0.mp4", "up"), ("pets/train/cat/0.png", "cat")])
    with pytest.raises(DataError, match=r"mixed.csv lists 1 video file\(s\) \(up_0.mp4\), but Dinov2Model"):
        load_labelled(image_model, manifest, val_fraction=0.5, source=image_src, progress=False)
    with pytest.raises(DataError, match=r"mixed.csv lists 1 image file\(s\) \(0.png\), but VideoMAE"):
        load_labelled(video_model, manifest, val_fraction=0.5, source=video_src, progress=False)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"data": "missing"}, "data source .*missing does not exist"),
    ({"data": "notes.txt"}, "unsupported data source notes.txt: expected a folder or a .csv/.json/.jsonl manifest"),
    ({"val_fraction": 1.0}, r"val_fraction must be a number between 0 and 1 \(exclusive\), got 1.0"),
    ({"size": 0}, "size must be a positive integer, got 0"),
    ({"max_per_split": 2.5}, "max_per_split must be a positive integer, got 2.5"),
    ({"val_fraction": 0.5, "data": "single"}, r"class\(es\) owl of single have a single image: --val-fraction needs"),
])
def test_bad_paths_and_options_are_one_line_errors(tmp_path, dino, kwargs, message):
    model, src = dino
    (tmp_path / "notes.txt").write_text("hi")
    pets(tmp_path / "tmp", {"cat": 2, "owl": 1})
    (tmp_path / "tmp" / "train").rename(tmp_path / "single")
    args = {"data": "single", "val_fraction": 0.5, **kwargs}
    args["data"] = tmp_path / args["data"]
    with pytest.raises(DataError, match=message) as err:
        load_labelled(model, args.pop("data"), source=src, progress=False, **args)
    assert "\n" not in str(err.value)
