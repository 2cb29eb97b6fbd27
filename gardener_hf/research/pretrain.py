"""Masked-autoencoder pretraining of a small 12-block VideoMAE on synthetic moving handwritten digits.

    gardener pretrain --output-dir runs/digits-mae                 # default: 20-minute budget
    python scripts/pretrain.py --output-dir runs/digits-mae --steps 6000    # fixed length (reproducible)

Default model: 12 blocks, hidden 64 (4 heads, MLP 256), decoder 2 x 64, 16 frames of 32x32, patch 8,
tubelet 2: 128 tokens a clip, 16 of them visible at 90% tube masking; 0.75M parameters (3.0 MB of
float32 safetensors, encoder 0.62M). On an idle 2-core CPU that trains about 170-190 clips/s at batch
32 (0.18 s/step), so 6000 steps take about 18-19 minutes. On a busy machine, `--threads 1` can be
much faster than two OpenMP threads fighting over one free core.

Clips come from `gardener_hf.research.synthetic.moving_digits_batch` (scikit-learn's bundled 8x8 digits, upscaled,
bouncing; generated on the fly, nothing on disk). Training follows VideoMAE: tube masking (one random
spatial mask per clip, repeated over every temporal slice; 90% by default), the model's own
normalised-pixel MSE on the masked tubelets (`config.norm_pix_loss=True`), AdamW (betas 0.9/0.95,
weight decay 0.05 on matrices only), linear warmup then cosine decay.

Length: `--steps N` fixes the schedule, and with `--seed` the run is deterministic for the same
number of threads on the same machine (the clips and masks of batch k depend only on the seed and k,
not on `--num-workers`). Without `--steps`, `--minutes M` times a few throw-away steps first and sets
`steps` so that training plus the periodic evaluations fit in M minutes; the chosen number is printed
and logged, so `--steps` reproduces the run.

Output (`--output-dir`): `VideoMAEForPreTraining.save_pretrained` (config.json + model.safetensors,
loadable with plain transformers), a `VideoMAEImageProcessor` config (size and crop = the image size;
mean/std measured on generated clips, see below), `pretrain_log.json` (loss curves, clips seen, wall
time, clips/s, block-score curves, config, seed, versions) and `pretrain_loss.png`.

Mean/std: the per-channel statistics of the generated clips (about 0.156 / 0.18: dark frames,
bright digits), measured on 256 clips from a fixed seed, rounded to 4 decimals. The reconstruction
target does not depend on them: VideoMAEForPreTraining un-normalises with ImageNet constants before
computing the target, but with `norm_pix_loss` every tubelet is then standardised per channel, which
cancels any per-channel affine map (up to its 1e-6 epsilon). They matter for the encoder's input and
for finetuning, which reads them from the processor.

`use_mean_pooling=False`, as in the Hub's converted VideoMAE pretraining checkpoints: the encoder ends
with a LayerNorm, as in the original VideoMAE pretraining encoder. Finetuning with
`scripts/finetune.py` switches mean pooling on (with a fresh fc_norm) by default.

Block scores: the spread across blocks of `gardener_hf.score_model(model, "entropy")` and `"kurtosis"`
is logged at initialisation and at every evaluation. At initialisation every block is drawn from the
same distribution, so the scores are nearly equal; pretraining has to make them differ before
Gardener's ranking means anything.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from .._io import atomic_folder
from .._version import __version__ as _gardener_version
from ..plotting import pyplot
from ..scoring import score_model
from .synthetic import SUBSETS, clip_statistics, moving_digits_batch

logger = logging.getLogger(__name__)

# rng streams: numpy generators are seeded with [seed, STREAM, ...] so the streams never overlap
_TRAIN, _VAL, _STATS, _CALIB = 1, 2, 3, 4


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (saved in pretrain_log.json)."""

    seed: int = field(default=0, metadata={"help": "seeds the model init, the clips and the masks"})
    steps: int | None = field(default=None,
                              metadata={"help": "optimizer steps (fixes the schedule); overrides --minutes"})
    minutes: float = field(default=20.0,
                           metadata={"help": "wall-clock budget used to pick --steps when it is not given"})
    batch_size: int = field(default=32, metadata={"help": "clips per step"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    min_learning_rate: float = field(default=1e-5, metadata={"help": "learning rate at the end of the cosine decay"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of the steps spent in linear warmup"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (matrices only)"})
    clip_grad: float = field(default=1.0, metadata={"help": "gradient-norm clipping; 0 turns it off"})
    mask_ratio: float = field(default=0.9, metadata={"help": "fraction of spatial patches masked (tube masking)"})
    num_frames: int = field(default=16, metadata={"help": "frames per clip"})
    image_size: int = field(default=32, metadata={"help": "frame side in pixels"})
    patch_size: int = field(default=8, metadata={"help": "spatial patch side"})
    tubelet_size: int = field(default=2, metadata={"help": "frames per tubelet"})
    num_hidden_layers: int = field(default=12, metadata={"help": "encoder blocks"})
    hidden_size: int = field(default=64, metadata={"help": "encoder width"})
    num_heads: int = field(default=4, metadata={"help": "encoder attention heads"})
    intermediate_size: int = field(default=256, metadata={"help": "encoder MLP width"})
    decoder_layers: int = field(default=2, metadata={"help": "decoder blocks"})
    decoder_hidden_size: int = field(default=64, metadata={"help": "decoder width"})
    decoder_heads: int = field(default=4, metadata={"help": "decoder attention heads"})
    decoder_intermediate_size: int = field(default=256, metadata={"help": "decoder MLP width"})
    num_digits: tuple[int, int] = field(default=(1, 2), metadata={"help": "digits per clip (inclusive range)"})
    digit_scale: tuple[int, int] = field(default=(2, 2),
                                         metadata={"help": "upscale of the 8x8 digits (inclusive range)"})
    digit_speed: tuple[float, float] = field(default=(0.5, 3.0), metadata={"help": "pixels per frame (range)"})
    digit_subset: str = field(default="train", metadata={"help": "digit images for training clips: all, train, test"})
    eval_clips: int = field(default=128, metadata={"help": "fixed held-out clips (test-subset digits) for the val loss"})
    eval_every: int | None = field(default=None,
                                   metadata={"help": "steps between val loss + block scores; default steps/20"})
    log_every: int = field(default=25, metadata={"help": "steps between printed train losses"})
    num_workers: int = field(default=0,
                             metadata={"help": "DataLoader processes generating clips (0: in the main process)"})
    threads: int | None = field(default=None, metadata={"help": "torch intra-op threads; default: torch's choice"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_frames", "image_size", "patch_size", "tubelet_size", "num_hidden_layers",
                     "hidden_size", "num_heads", "intermediate_size", "decoder_layers", "decoder_hidden_size",
                     "decoder_heads", "decoder_intermediate_size", "eval_clips", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.steps is None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0 (or give steps), got {self.minutes}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"num_frames {self.num_frames} must be a multiple of tubelet_size {self.tubelet_size}")
        if self.hidden_size % self.num_heads or self.decoder_hidden_size % self.decoder_heads:
            raise ValueError("hidden_size / decoder_hidden_size must be multiples of their number of heads")
        per_frame = (self.image_size // self.patch_size) ** 2
        masked = int(self.mask_ratio * per_frame)
        if not 0 < masked < per_frame:
            raise ValueError(
                f"mask_ratio {self.mask_ratio} masks {masked} of {per_frame} patches per frame; "
                "at least one patch must be masked and one visible"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.digit_subset not in SUBSETS:
            raise ValueError(f"digit_subset must be one of {', '.join(SUBSETS)}, got {self.digit_subset!r}")
        self.num_digits, self.digit_scale = tuple(self.num_digits), tuple(self.digit_scale)
        self.digit_speed = tuple(self.digit_speed)
        for name in ("num_digits", "digit_scale", "digit_speed"):
            low, high = getattr(self, name)
            if not low <= high or low < 0:
                raise ValueError(f"{name} {low} {high}: expected LOW <= HIGH, both >= 0")
        for name in ("learning_rate", "min_learning_rate"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    @property
    def clip_kwargs(self) -> dict:
        return {"num_frames": self.num_frames, "size": self.image_size, "num_digits": self.num_digits,
                "scale": self.digit_scale, "speed": self.digit_speed}

    @property
    def eval_subset(self) -> str:
        return "test" if self.digit_subset == "train" else self.digit_subset


# ----------------------------------------------------------------------------------------------------------------
# masks, model, data


def tube_mask(
    rng: np.random.Generator,
    batch: int,
    *,
    num_frames: int,
    tubelet_size: int,
    image_size: int,
    patch_size: int,
    mask_ratio: float,
) -> torch.Tensor:
    """VideoMAE tube masks: one random spatial mask per clip, the same in every temporal slice.

    Each clip masks exactly `int(mask_ratio * patches_per_frame)` spatial patches (VideoMAE's
    TubeMaskingGenerator rounds down the same way), so every sample has the same number of masked
    tokens, as `VideoMAEForPreTraining` requires. Token order follows the patch embedding's flatten:
    index = t * patches_per_frame + patch.

    Returns:
        bool tensor `[batch, (num_frames // tubelet_size) * patches_per_frame]`, True = masked.

    Example:
        >>> m = tube_mask(np.random.default_rng(0), 2, num_frames=4, tubelet_size=2, image_size=32,
        ...               patch_size=8, mask_ratio=0.9)
        >>> m.shape, m.sum(1).tolist()
        (torch.Size([2, 32]), [28, 28])
    """
    per_frame = (image_size // patch_size) ** 2
    slices = num_frames // tubelet_size
    masked = int(mask_ratio * per_frame)
    order = np.argsort(rng.random((batch, per_frame)), axis=1)
    spatial = np.zeros((batch, per_frame), dtype=bool)
    np.put_along_axis(spatial, order[:, :masked], True, axis=1)
    return torch.from_numpy(np.tile(spatial, (1, slices)))


def build_model(cfg: PretrainConfig) -> VideoMAEForPreTraining:
    """A freshly initialised VideoMAEForPreTraining for `cfg` (seeded with `cfg.seed`)."""
    config = VideoMAEConfig(
        image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3, num_frames=cfg.num_frames,
        tubelet_size=cfg.tubelet_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        decoder_num_hidden_layers=cfg.decoder_layers, decoder_hidden_size=cfg.decoder_hidden_size,
        decoder_num_attention_heads=cfg.decoder_heads, decoder_intermediate_size=cfg.decoder_intermediate_size,
        norm_pix_loss=True, use_mean_pooling=False, qv_bias=True,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(cfg.seed)
    return VideoMAEForPreTraining(config)


def make_batch(rng: np.random.Generator, cfg: PretrainConfig, batch: int, mean, std, subset: str):
    """One `(pixel_values, bool_masked_pos)` batch drawn from `rng`."""
    pixels = moving_digits_batch(rng, batch, mean=mean, std=std, subset=subset, **cfg.clip_kwargs)
    mask = tube_mask(rng, batch, num_frames=cfg.num_frames, tubelet_size=cfg.tubelet_size,
                     image_size=cfg.image_size, patch_size=cfg.patch_size, mask_ratio=cfg.mask_ratio)
    return pixels, mask


class DigitBatches(torch.utils.data.IterableDataset):
    """Training batches; batch k is drawn from its own generator `[seed, _TRAIN, k]`.

    Seeding per batch index makes the stream identical for any number of DataLoader workers: worker w
    makes batches w, w + W, ... and the DataLoader hands them out round-robin, i.e. in index order.
    """

    def __init__(self, cfg: PretrainConfig, steps: int, mean, std):
        self.cfg, self.steps, self.mean, self.std = cfg, steps, mean, std

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for k in range(start, self.steps, step):
            rng = np.random.default_rng([self.cfg.seed, _TRAIN, k])
            yield make_batch(rng, self.cfg, self.cfg.batch_size, self.mean, self.std, self.cfg.digit_subset)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # generation is numpy; leave the cores to the training process


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float) -> float:
    """Linear warmup to `peak` over `warmup` steps, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices only.

    No decay on biases, LayerNorms and the mask token (1-D or [1,1,C] parameters), as in VideoMAE.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.squeeze().dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.squeeze().dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(decay_groups(model, cfg.weight_decay), lr=cfg.learning_rate, betas=(0.9, 0.95))


def train_step(model, optimizer, pixels, mask, lr: float, clip_grad: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = model(pixel_values=pixels, bool_masked_pos=mask).loss
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def val_loss(model, batches) -> float:
    model.eval()
    total = sum(float(model(pixel_values=p, bool_masked_pos=m).loss) * len(p) for p, m in batches)
    model.train()
    return total / sum(len(p) for p, _ in batches)


def block_spread(model: torch.nn.Module) -> dict:
    """Entropy and kurtosis of every encoder block, with their spread (std and max - min) across blocks."""
    out = {}
    for criterion in ("entropy", "kurtosis"):
        scores = [float(s) for s in score_model(model, criterion, progress=False).scores]
        out[criterion] = {"scores": scores, "std": float(np.std(scores)), "range": float(max(scores) - min(scores)),
                          "mean": float(np.mean(scores))}
    return out


# ----------------------------------------------------------------------------------------------------------------
# the run


def _calibrate_steps(model, cfg: PretrainConfig, mean, std, val_batches) -> tuple[int, dict]:
    """Pick `steps` so that training plus evaluations fit `cfg.minutes`, timing throw-away steps on a copy."""
    probe = copy.deepcopy(model)
    optimizer = make_optimizer(probe, cfg)
    rng = np.random.default_rng([cfg.seed, _CALIB])
    warm, timed = 2, 6
    for i in range(warm + timed):
        if i == warm:
            t0 = time.perf_counter()
        pixels, mask = make_batch(rng, cfg, cfg.batch_size, mean, std, cfg.digit_subset)
        train_step(probe, optimizer, pixels, mask, cfg.learning_rate * 0.1, cfg.clip_grad)
    step_s = (time.perf_counter() - t0) / timed
    t0 = time.perf_counter()
    val_loss(probe, val_batches)
    block_spread(probe)
    eval_s = time.perf_counter() - t0
    del probe, optimizer
    budget = 0.95 * cfg.minutes * 60.0  # a margin for the save and for timing noise on a shared machine
    evals = 20  # eval_every defaults to steps / 20
    steps = max(1, int((budget - (evals + 1) * eval_s) / step_s))
    return steps, {"step_seconds": step_s, "eval_seconds": eval_s, "budget_seconds": cfg.minutes * 60.0}


def pretrain(cfg: PretrainConfig, output_dir: str | Path) -> tuple[VideoMAEForPreTraining, dict]:
    """Run masked-video pretraining and write the checkpoint, processor, log and plot to `output_dir`.

    Returns:
        `(model, log)`: the trained model and the log written to `pretrain_log.json`.
    """
    output_dir = Path(output_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    mean, std = clip_statistics(np.random.default_rng([cfg.seed, _STATS]), 256, subset=cfg.digit_subset,
                                **cfg.clip_kwargs)
    mean, std = [round(m, 4) for m in mean], [round(s, 4) for s in std]
    model = build_model(cfg).train()
    val_rng = np.random.default_rng([cfg.seed, _VAL])
    val_batches = []
    for start in range(0, cfg.eval_clips, cfg.batch_size):
        val_batches.append(make_batch(val_rng, cfg, min(cfg.batch_size, cfg.eval_clips - start), mean, std,
                                      cfg.eval_subset))

    calibration = None
    steps = cfg.steps
    if steps is None:
        steps, calibration = _calibrate_steps(model, cfg, mean, std, val_batches)
        logger.info("budget %.1f min: %.3f s/step, %.2f s/eval -> --steps %d", cfg.minutes,
                    calibration["step_seconds"], calibration["eval_seconds"], steps)
    eval_every = cfg.eval_every or max(1, steps // 20)
    warmup = max(1, round(cfg.warmup_ratio * steps))
    num_params = sum(p.numel() for p in model.parameters())
    encoder_params = sum(p.numel() for p in model.videomae.parameters())
    logger.info("VideoMAEForPreTraining: %.2fM parameters (encoder %.2fM), %d tokens per clip, %d visible",
                num_params / 1e6, encoder_params / 1e6, val_batches[0][1].shape[1],
                int((~val_batches[0][1][0]).sum()))

    optimizer = make_optimizer(model, cfg)
    curve = {"step": [], "loss": [], "lr": []}
    evals = {"step": [], "clips_seen": [], "val_loss": [], "entropy": [], "kurtosis": [], "train_seconds": []}

    def evaluate(step: int, train_seconds: float) -> None:
        spread = block_spread(model)
        evals["step"].append(step)
        evals["clips_seen"].append(step * cfg.batch_size)
        evals["val_loss"].append(val_loss(model, val_batches))
        evals["entropy"].append(spread["entropy"]["scores"])
        evals["kurtosis"].append(spread["kurtosis"]["scores"])
        evals["train_seconds"].append(train_seconds)
        logger.info("step %5d  val loss %.4f  entropy spread %.4f (std %.4f)  kurtosis spread %.3f (std %.3f)",
                    step, evals["val_loss"][-1], spread["entropy"]["range"], spread["entropy"]["std"],
                    spread["kurtosis"]["range"], spread["kurtosis"]["std"])

    initial = block_spread(model)
    evaluate(0, 0.0)
    loader = torch.utils.data.DataLoader(
        DigitBatches(cfg, steps, mean, std), batch_size=None, num_workers=cfg.num_workers,
        worker_init_fn=_worker_init if cfg.num_workers else None, prefetch_factor=4 if cfg.num_workers else None,
    )
    train_seconds, ema = 0.0, None
    tick = time.perf_counter()
    for step, (pixels, mask) in enumerate(loader):
        lr = lr_at(step, steps, warmup, cfg.learning_rate, cfg.min_learning_rate)
        loss = train_step(model, optimizer, pixels, mask, lr, cfg.clip_grad)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at step {step}; lower the learning rate (now {cfg.learning_rate}) or raise the warmup ratio"
            )
        curve["step"].append(step + 1)
        curve["loss"].append(loss)
        curve["lr"].append(lr)
        ema = loss if ema is None else 0.95 * ema + 0.05 * loss
        done = step + 1
        if done % cfg.log_every == 0 or done == steps:
            now = time.perf_counter()
            logger.info("step %5d/%d  loss %.4f (ema %.4f)  lr %.2e  %.1f clips/s", done, steps, loss, ema, lr,
                        done * cfg.batch_size / (train_seconds + now - tick))
        if done % eval_every == 0 or done == steps:
            train_seconds += time.perf_counter() - tick
            evaluate(done, train_seconds)
            tick = time.perf_counter()
    final = block_spread(model)

    log = {
        "seed": cfg.seed,
        "steps": steps,
        "clips_seen": steps * cfg.batch_size,
        "train_seconds": train_seconds,
        "clips_per_second": steps * cfg.batch_size / train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "final_train_loss_ema": ema,
        "final_val_loss": evals["val_loss"][-1],
        "pretrain_config": asdict(cfg),
        "calibration": calibration,
        "model_config": model.config.to_dict(),
        "parameters": {"total": num_params, "encoder": encoder_params},
        "processor": {"image_mean": mean, "image_std": std,
                      "statistics": "per-channel mean/std of 256 generated training clips"},
        "block_scores": {"init": initial, "final": final},
        "curve": curve,
        "evals": evals,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "gardener_hf": _gardener_version},
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    save_outputs(model, log, output_dir)
    return model, log


def save_outputs(model: VideoMAEForPreTraining, log: dict, output_dir: Path) -> None:
    """Write the checkpoint, the processor config, pretrain_log.json and pretrain_loss.png.

    The folder is written whole or not at all: built beside `output_dir`, then moved into its place.
    """
    # Imported here: without torchvision, importing the image processor class logs a warning.
    from transformers import VideoMAEImageProcessor

    size = model.config.image_size
    with atomic_folder(output_dir, overwrite=True) as tmp:
        if (output_dir / "README.md").is_file():  # a model card written by hand (the embedded default's) stays
            (tmp / "README.md").write_bytes((output_dir / "README.md").read_bytes())
        model.save_pretrained(tmp)
        VideoMAEImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True,
            image_mean=log["processor"]["image_mean"], image_std=log["processor"]["image_std"],
        ).save_pretrained(tmp)
        (tmp / "pretrain_log.json").write_text(json.dumps(log, indent=1) + "\n")
        plot_log(log, tmp / "pretrain_loss.png")


def plot_log(log: dict, path: Path) -> None:
    """pretrain_loss.png: the loss curves, and every block's entropy and kurtosis over training."""
    plt = pyplot()

    batch = log["pretrain_config"]["batch_size"]
    curve, evals = log["curve"], log["evals"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    clips = np.asarray(curve["step"]) * batch
    loss = np.asarray(curve["loss"])
    window = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    axes[0].plot(clips, loss, color="0.8", lw=0.5, label="train (per step)")
    axes[0].plot(clips[window - 1 :], smooth, color="C0", label=f"train (mean of {window})")
    axes[0].plot(evals["clips_seen"], evals["val_loss"], "o-", color="C3", ms=3, label="held-out")
    axes[0].set(xlabel="clips seen", ylabel="normalised-pixel MSE (masked tubelets)", title="reconstruction loss")
    axes[0].legend()
    for ax, key, unit in ((axes[1], "entropy", "nats"), (axes[2], "kurtosis", "excess kurtosis")):
        values = np.asarray(evals[key])
        colours = plt.cm.viridis(np.linspace(0, 1, values.shape[1]))
        for b in range(values.shape[1]):
            ax.plot(evals["clips_seen"], values[:, b], color=colours[b], label=f"block {b}")
        ax.set(xlabel="clips seen", ylabel=unit, title=f"block {key}")
    axes[2].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
