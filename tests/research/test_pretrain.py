"""Moving-digits clips and masked-video pretraining (scripts/pretrain.py) on tiny configurations."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from transformers import VideoMAEForPreTraining, VideoMAEImageProcessor

from gardener_hf.cli import pretrain as pretrain_cli
from gardener_hf.research import pretrain as pt
from gardener_hf import score_model
from gardener_hf.data import count_frames, find_videos, read_frames
from gardener_hf.research.synthetic import (
    DIRECTIONS,
    DIGIT_NAMES,
    digit_direction_clip,
    digit_images,
    make_digit_dataset,
    moving_digit_class_clip,
    moving_digits_batch,
    moving_digits_clip,
    to_pixel_values,
)

# 12 blocks (as the real default) but tiny: 16x16 frames of 8x8 patches (4 per frame), 4 frames
TINY = {"image_size": 16, "patch_size": 8, "num_frames": 4, "tubelet_size": 2, "hidden_size": 16, "num_heads": 2,
        "intermediate_size": 32, "decoder_layers": 1, "decoder_hidden_size": 16, "decoder_heads": 2,
        "decoder_intermediate_size": 32, "digit_scale": (1, 2), "num_digits": (1, 2), "mask_ratio": 0.75,
        "batch_size": 4, "eval_clips": 4, "log_every": 1, "learning_rate": 3e-3}


# ---------------------------------------------------------------------------------------------- clips


def test_digit_subsets_are_a_fixed_disjoint_split():
    images, _ = digit_images("all")
    train, test = digit_images("train"), digit_images("test")
    assert images.shape == (1797, 8, 8) and 0.0 <= images.min() and images.max() == 1.0
    assert len(train[0]) == 1438 and len(test[0]) == 359 and set(train[1].tolist()) == set(range(10))
    # every image is in exactly one subset
    rows = {im.tobytes() for im in images}
    assert {im.tobytes() for im in train[0]} | {im.tobytes() for im in test[0]} == rows
    with pytest.raises(ValueError, match="unknown digit subset"):
        digit_images("val")


def test_moving_digits_clip_is_deterministic_and_in_range():
    a = moving_digits_clip(np.random.default_rng(7), num_frames=6, size=32, scale=2)
    b = moving_digits_clip(np.random.default_rng(7), num_frames=6, size=32, scale=2)
    c = moving_digits_clip(np.random.default_rng(8), num_frames=6, size=32, scale=2)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.max() >= 128 and a.min() < 48  # bright ink over a dark background
    # the digits move: consecutive frames differ
    assert all((a[t] != a[t + 1]).any() for t in range(5))
    with pytest.raises(ValueError, match="smaller than the largest digit"):
        moving_digits_clip(np.random.default_rng(0), size=20, scale=3)
    with pytest.raises(ValueError, match="low <= high"):
        moving_digits_clip(np.random.default_rng(0), num_digits=(3, 1))


def test_moving_digits_stay_in_frame_and_bounce():
    # one white digit on black, fast: it must hit a wall in 40 frames and stay fully visible throughout
    clip = moving_digits_clip(np.random.default_rng(3), num_frames=40, size=32, num_digits=1, scale=2, speed=3.0,
                              background=False, colour=False)
    ink = [float(f[..., 0].sum()) for f in clip]
    assert max(ink) - min(ink) < 1e-6 * max(ink) + 1  # never clipped by a border
    ys, xs = zip(*[np.argwhere(f[..., 0] > 0).mean(0) for f in clip], strict=True)
    steps = np.sign(np.diff(xs)), np.sign(np.diff(ys))
    assert any(len(set(s[s != 0].tolist())) == 2 for s in steps)  # some coordinate reverses direction


def test_moving_digits_batch_equals_the_clips_and_normalises():
    batch = moving_digits_batch(np.random.default_rng(1), 3, num_frames=4, size=32, scale=2)
    rng = np.random.default_rng(1)
    clips = np.stack([moving_digits_clip(rng, num_frames=4, size=32, scale=2) for _ in range(3)])
    assert batch.dtype == torch.uint8 and torch.equal(batch, torch.from_numpy(clips))
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 0.2]
    x = moving_digits_batch(np.random.default_rng(1), 3, num_frames=4, size=32, scale=2, mean=mean, std=std)
    assert x.shape == (3, 4, 3, 32, 32) and x.dtype == torch.float32
    expected = (torch.from_numpy(clips[0, 2, 5, 9]).float() / 255 - torch.tensor(mean)) / torch.tensor(std)
    assert torch.allclose(x[0, 2, :, 5, 9], expected)
    assert torch.equal(to_pixel_values(clips[0], mean, std)[0], x[0])
    with pytest.raises(ValueError, match="both mean and std"):
        moving_digits_batch(np.random.default_rng(1), 2, mean=mean)


@pytest.mark.parametrize("label", range(4))
def test_direction_clip_moves_its_digit_in_the_labelled_direction(label):
    clip, got = digit_direction_clip(np.random.default_rng([5, label]), label=label, num_frames=8, size=48,
                                     background=False)
    assert got == label
    y0, x0 = np.argwhere(clip[0].max(-1) > 0).mean(0)
    y1, x1 = np.argwhere(clip[-1].max(-1) > 0).mean(0)
    dx, dy = x1 - x0, y1 - y0
    expected = {"left": (dx < -3 and abs(dy) < 1), "right": (dx > 3 and abs(dy) < 1),
                "up": (dy < -3 and abs(dx) < 1), "down": (dy > 3 and abs(dx) < 1)}
    assert expected[DIRECTIONS[label]], (DIRECTIONS[label], dx, dy)
    again, _ = digit_direction_clip(np.random.default_rng([5, label]), label=label, num_frames=8, size=48,
                                    background=False)
    assert np.array_equal(clip, again)


def test_moving_digit_clip_has_one_moving_and_some_static_digits():
    clip, label = moving_digit_class_clip(np.random.default_rng(2), label=4, num_frames=8, size=48, num_static=2,
                                          background=False, speed=2.0)
    assert label == 4 and clip.shape == (8, 48, 48, 3)
    lit = clip.max(-1) > 0
    always = lit.all(0).sum()  # pixels lit in every frame: the static digits (and overlaps)
    assert always > 20 and (lit.any(0).sum() > always + 20)
    with pytest.raises(ValueError, match="digit class"):
        moving_digit_class_clip(np.random.default_rng(2), label=10)


def test_make_digit_dataset_writes_a_readable_ucf101_folder(tmp_path):
    root = make_digit_dataset(tmp_path / "dir", task="direction", videos_per_class=1, num_frames=4, size=32, scale=2)
    items, labels, _ = find_videos(root, progress=False)
    assert sorted(labels) == sorted(DIRECTIONS) and len(items) == 4
    assert count_frames(items[0].path) == 4 and read_frames(items[0].path, [0, 3]).shape == (2, 32, 32, 3)
    root2 = make_digit_dataset(tmp_path / "cls", task="moving-digit", videos_per_class=1, num_frames=4, size=48)
    assert sorted(p.name for p in root2.iterdir()) == sorted(DIGIT_NAMES)
    with pytest.raises(ValueError, match="unknown task"):
        make_digit_dataset(tmp_path / "x", task="colour")


# ---------------------------------------------------------------------------------------------- masks


def test_tube_masks_hide_the_same_patches_in_every_time_slice():
    kw = {"num_frames": 16, "tubelet_size": 2, "image_size": 48, "patch_size": 8, "mask_ratio": 0.9}
    mask = pt.tube_mask(np.random.default_rng(0), 5, **kw)
    assert mask.dtype == torch.bool and mask.shape == (5, 8 * 36)
    assert mask.sum(1).tolist() == [8 * 32] * 5  # int(0.9 * 36) = 32 per slice, for every sample
    slices = mask.view(5, 8, 36)
    assert torch.equal(slices, slices[:, :1].expand(-1, 8, -1))  # the same spatial mask at every time
    assert not torch.equal(slices[0, 0], slices[1, 0])  # but different clips get different masks
    assert torch.equal(mask, pt.tube_mask(np.random.default_rng(0), 5, **kw))


def test_schedule_warms_up_then_decays_to_the_floor():
    lrs = [pt.lr_at(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert lrs[9] == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-4)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:10]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert pt.lr_at(100, 100, 10, 1e-3, 1e-5) == pytest.approx(1e-5)


def test_bad_configuration_is_refused(capsys):
    assert pretrain_cli.main(["--output-dir", "unused", "--image-size", "30", "--patch-size", "8"]) == 2
    assert "multiple of --patch-size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one patch"):
        pt.PretrainConfig(**{**TINY, "mask_ratio": 0.1})


# ---------------------------------------------------------------------------------------------- training


def test_steps_on_one_batch_reduce_the_loss():
    cfg = pt.PretrainConfig(steps=12, **TINY)
    model = pt.build_model(cfg).train()
    optimizer = pt.make_optimizer(model, cfg)
    pixels, mask = pt.make_batch(np.random.default_rng(0), cfg, 4, [0.15] * 3, [0.18] * 3, "train")
    losses = [pt.train_step(model, optimizer, pixels, mask, 1e-2, 1.0) for _ in range(12)]
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    assert sum(b < a for a, b in itertools.pairwise(losses)) >= 9  # a steady descent, not one lucky step


def test_pretrain_saves_a_plain_checkpoint_that_reloads_identically(tmp_path):
    cfg = pt.PretrainConfig(steps=4, seed=3, eval_every=2, **TINY)
    model, log = pt.pretrain(cfg, tmp_path / "run")
    out = tmp_path / "run"
    assert log["steps"] == 4 and log["clips_seen"] == 16 and len(log["curve"]["loss"]) == 4
    assert all(np.isfinite(log["curve"]["loss"])) and log["evals"]["step"] == [0, 2, 4]
    saved = json.loads((out / "pretrain_log.json").read_text())
    assert saved["seed"] == 3 and saved["versions"]["torch"] == torch.__version__
    assert (out / "pretrain_loss.png").read_bytes()[:4] == b"\x89PNG"

    reloaded = VideoMAEForPreTraining.from_pretrained(out).eval()
    config = reloaded.config
    assert config.num_hidden_layers == 12 and config.norm_pix_loss and not config.use_mean_pooling
    model.eval()
    pixels, mask = pt.make_batch(np.random.default_rng(9), cfg, 2, [0.15] * 3, [0.18] * 3, "test")
    with torch.no_grad():
        a, b = model(pixel_values=pixels, bool_masked_pos=mask), reloaded(pixel_values=pixels, bool_masked_pos=mask)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)

    scores = score_model(reloaded, "entropy", progress=False)
    assert scores.num_blocks == 12 and scores.scores == pytest.approx(log["block_scores"]["final"]["entropy"]["scores"])
    processor = VideoMAEImageProcessor.from_pretrained(out)
    assert processor.crop_size == {"height": 16, "width": 16} and processor.size == {"shortest_edge": 16}
    assert list(processor.image_mean) == log["processor"]["image_mean"] and 0.05 < processor.image_mean[0] < 0.4


def test_pretrain_is_deterministic_for_a_seed(tmp_path):
    cfg = pt.PretrainConfig(steps=3, seed=1, eval_every=3, **TINY)
    first, log1 = pt.pretrain(cfg, tmp_path / "a")
    second, log2 = pt.pretrain(cfg, tmp_path / "b")
    assert log1["curve"]["loss"] == log2["curve"]["loss"]
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_batches_do_not_depend_on_the_number_of_workers():
    cfg = pt.PretrainConfig(steps=3, **TINY)
    dataset = pt.DigitBatches(cfg, 3, [0.15] * 3, [0.18] * 3)
    serial = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0))
    parallel = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2))
    assert len(serial) == len(parallel) == 3
    for (p1, m1), (p2, m2) in zip(serial, parallel, strict=True):
        assert torch.equal(p1, p2) and torch.equal(m1, m2)
