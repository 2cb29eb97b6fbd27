"""The study's runs: one run per (oracle, blocks removed, seed), done once, in parallel, resumable.

Two kinds of oracle measure a pruned model. `finetune` (the paper's) finetunes it: a plain PyTorch loop
(AdamW, warmup + cosine, the paper's peak learning rate 1e-3) over inputs held in memory, not
`transformers.Trainer` over files: the study runs about a hundred short finetunes, and on a CPU file decoding
would dominate them. `linear-probe` and `knn` freeze it and classify its features (the [CLS] token where the
model has one, else the mean of all tokens): one forward pass over the data serves every seed, and each seed
fits on its own stratified share (`probe_fraction`) of the training split. On a CPU each run uses one
thread, so results do not depend on how many run at a time.

Runs spread over processes too: under `torchrun` or `accelerate launch` (WORLD_SIZE > 1) each rank takes
every WORLD_SIZE-th job, appends what it finishes to its own `runs.rank<R>.jsonl`, and at the end of each
phase rank 0 merges those into `runs.jsonl` (a gloo barrier between). A rank uses GPU `LOCAL_RANK` when
there is one.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch import nn
from tqdm.auto import tqdm

from ...arch import base_model, get_arch
from ...checkpoint import load_classifier, load_model, read_config
from ...errors import GardenerError
from ...scoring import score_model
from ...surgery import apply_plan, make_plan
from ..pretrain import decay_groups
from ..synthetic import task_clip_function, task_labels, to_pixel_values
from .config import CRITERIA, KNN_K, PROBE_C, PROBE_MAX_ITER, StudyConfig

logger = logging.getLogger(__name__)

# rng streams: generators are seeded with [data_seed or seed, STREAM, ...]
_TRAIN_DATA, _EVAL_DATA, _ORDER, _CALIBRATION_DATA, _PROBE_SUBSET = 11, 12, 13, 14, 15


@dataclass
class StudyData:
    """The labelled inputs of a study, held in memory: uint8 channels-last (generated; normalised per batch) or
    model-ready float `pixel_values` (the user's data, prepared by the model's processor)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    labels: tuple[str, ...]
    description: str
    video: bool
    mean: list[float]
    std: list[float]

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model input for a batch of `train_x` / `eval_x`."""
        if x.dtype != torch.uint8:
            return x
        if self.video:
            return to_pixel_values(x, self.mean, self.std)
        return to_pixel_values(x[:, None], self.mean, self.std)[:, 0]  # images as one-frame clips


@dataclass
class _Context:
    """What every run in a process shares: the data, the pretrained model and (finetune oracle) its classifier."""

    config: StudyConfig
    data: StudyData
    model: nn.Module  # the checkpoint as saved, float32, eval mode: the feature oracles prune copies of it
    classifier: nn.Module | None  # pretrained encoder + new head, for the finetune oracle
    device: torch.device

    # the names the finetune loop used before user data existed
    @property
    def base(self) -> nn.Module:
        assert self.classifier is not None
        return self.classifier


def make_clips(task: str, count: int, *, seed: int, stream: int, subset: str, num_frames: int, size: int, **options):
    """`count` labelled clips of a digit task, classes balanced in turn; uint8 `[N, T, H, W, 3]` and labels."""
    num_classes = len(task_labels(task))
    fn = task_clip_function(task)
    clips = np.empty((count, num_frames, size, size, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, stream, i])
        clips[i], labels[i] = fn(rng, label=i % num_classes, num_frames=num_frames, size=size, subset=subset, **options)
    return torch.from_numpy(clips), torch.from_numpy(labels)


def _input_size(config: StudyConfig, model: nn.Module) -> tuple[int, int]:
    """(frames, side) of the study's inputs: the model's (1 frame for an image model), side `image_size` if set."""
    from ...calibration import expected_shape

    shape = expected_shape(model)
    frames = shape[0] if len(shape) == 4 else 1
    return int(frames), int(config.image_size or shape[-1])


def load_data(config: StudyConfig, model: nn.Module, *, progress: bool = False) -> StudyData:
    """The study's labelled data: the user's (`config.data`) or the generated task's clips (frame 0 for an image model)."""
    video = get_arch(model).video
    if config.data is not None:
        from ...data.labelled import load_labelled

        train, evaluation = load_labelled(
            model, config.data, eval_data=config.eval_data, val_fraction=config.val_fraction, seed=config.data_seed,
            source=config.model_id(), revision=config.revision, size=config.image_size,
            max_per_split=config.max_per_split, progress=progress,
        )
        return StudyData(train.pixel_values, train.labels, evaluation.pixel_values, evaluation.labels,
                         tuple(train.label_names), f"{train.description}; {evaluation.description}", video, [], [])
    from ...data.calibration import IMAGENET_MEAN, IMAGENET_STD, processor_config

    processor = processor_config(model, config.model_id(), config.revision)
    mean = list(processor.get("image_mean", IMAGENET_MEAN))
    std = list(processor.get("image_std", IMAGENET_STD))
    frames, size = _input_size(config, model)
    made = {}
    for split, stream, count, subset in (("train", _TRAIN_DATA, config.train_clips, "train"),
                                         ("eval", _EVAL_DATA, config.eval_clips, "test")):
        x, y = make_clips(config.task, count, seed=config.data_seed, stream=stream, subset=subset, num_frames=frames,
                          size=size, **config.clip_options)
        made[split] = (x if video else x[:, 0].contiguous(), y)
    kind = "clips" if video else "images (frame 0 of each clip)"
    description = (f"{config.train_clips} training and {config.eval_clips} validation {kind} of the generated "
                   f"{config.task} task")
    return StudyData(*made["train"], *made["eval"], task_labels(config.task), description, video, mean, std)


def _classifier(config: StudyConfig, labels: Sequence[str]) -> nn.Module:
    """The pretrained encoder with a new classification head for `labels` (VideoMAE: mean of all tokens)."""
    model_id = config.model_id()
    saved = read_config(model_id, revision=config.revision)
    if saved.get("model_type") == "videomae":
        return load_classifier(model_id, labels, revision=config.revision)
    spec = get_arch(saved)
    heads = [c for c in spec.classes if spec.pipeline_tag.get(c, "").endswith("classification")]
    if not heads:
        raise GardenerError(f"the finetune oracle needs a classification head, and transformers has none for "
                            f"{spec.model_type}; use --oracle linear-probe or knn")
    cls = getattr(transformers, heads[0])
    id2label = dict(enumerate(labels))
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialised: classifier" is the point
    try:
        model = cls.from_pretrained(model_id, revision=config.revision, use_safetensors=True, dtype=torch.float32,
                                    num_labels=len(labels), id2label=id2label,
                                    label2id={v: k for k, v in id2label.items()}, ignore_mismatched_sizes=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return model


def device_for_rank() -> torch.device:
    """This process's device: GPU `LOCAL_RANK` (modulo the GPUs there are) when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def build_context(config: StudyConfig, *, progress: bool = False, device: torch.device | str | None = None) -> _Context:
    """Load the checkpoint (and, for the finetune oracle, its classifier) and the labelled data."""
    model = load_model(config.model_id(), revision=config.revision, dtype=torch.float32).eval()
    data = load_data(config, model, progress=progress)
    if len(data.labels) < 2:
        raise GardenerError(f"the study needs at least 2 classes; the data has {len(data.labels)}")
    classifier = _classifier(config, data.labels) if "finetune" in config.oracles else None
    ctx = _Context(config, data, model, classifier, torch.device(device) if device is not None else device_for_rank())
    _check_input(ctx)
    return ctx


def _check_input(ctx: _Context) -> None:
    """One validation input through the model, so a size it cannot take fails now, in one line."""
    from ...calibration import input_name

    try:
        with torch.no_grad():
            base_model(ctx.model)(**{input_name(ctx.model): ctx.data.pixels(ctx.data.eval_x[:1])})
    except (RuntimeError, ValueError) as err:
        hint = " (image_size: only models that interpolate position embeddings take another size)" \
            if ctx.config.image_size else ""
        raise GardenerError(f"the model cannot take the study's inputs of shape "
                            f"{tuple(ctx.data.pixels(ctx.data.eval_x[:1]).shape)}{hint}: {str(err).splitlines()[0]}") from None


def _reinit(module: nn.Module, std: float) -> None:
    """transformers' default initialisation (VideoMAE has no own): normal(0, std) Linear, zero bias, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# Not pretrain.lr_at: that one rounds differently in the last bits (pi * (x / d) against pi * x / d), and
# the committed study's runs were made with this one.
def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _pixels(ctx: _Context, x: torch.Tensor) -> torch.Tensor:
    return ctx.data.pixels(x).to(ctx.device)


@torch.no_grad()
def _evaluate(model: nn.Module, ctx: _Context, batch: int = 256) -> tuple[float, float]:
    from ...calibration import input_name

    model.eval()
    data, name = ctx.data, input_name(model)
    correct, loss = 0, 0.0
    for i in range(0, len(data.eval_x), batch):
        logits = model(**{name: _pixels(ctx, data.eval_x[i : i + batch])}).logits.float().cpu()
        y = data.eval_y[i : i + batch]
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
    model.train()
    return correct / len(data.eval_x), loss / len(data.eval_x)


def finetune_run(ctx: _Context, removed: Sequence[int], seed: int, *, scratch: bool = False) -> dict[str, Any]:
    """Finetune the context's classifier with `removed` blocks deleted; deterministic in (removed, seed).

    The head (and fc_norm) is re-initialised from `seed`, so runs that differ only in `seed` differ in
    head initialisation and data order. With `scratch`, the encoder is re-initialised too (the
    "no pretraining" reference).

    Returns:
        A JSON-able dict: accuracy, val_loss, train_loss (mean of the last 10 steps), seconds,
        num_blocks, and, for the unpruned model, the finetuned encoder's block scores by criterion.
    """
    from ...calibration import input_name

    cfg, data = ctx.config, ctx.data
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = copy.deepcopy(ctx.base)
    std = model.config.initializer_range
    if scratch:
        _reinit(model, std)
    else:
        _reinit(model.classifier, std)
        if getattr(model, "fc_norm", None) is not None:
            _reinit(model.fc_norm, std)
    num_blocks = model.config.num_hidden_layers
    if removed:
        apply_plan(model, make_plan(num_blocks=num_blocks, remove=list(removed)))
    model.to(ctx.device)
    optimizer = torch.optim.AdamW(decay_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    rng = np.random.default_rng([seed, _ORDER])
    order = np.empty(0, dtype=np.int64)
    warmup = round(cfg.warmup_ratio * cfg.steps)
    losses = []
    name = input_name(model)
    model.train()
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:  # epochs of fresh permutations; a short tail joins the next epoch
            order = np.concatenate([order, rng.permutation(len(data.train_x))])
        idx, order = torch.from_numpy(order[: cfg.batch_size]), order[cfg.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg.steps, warmup, cfg.learning_rate)
        loss = model(**{name: _pixels(ctx, data.train_x[idx])}, labels=data.train_y[idx].to(ctx.device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    accuracy, eval_loss = _evaluate(model, ctx)
    result = {
        "removed": sorted(int(b) for b in removed),
        "seed": int(seed),
        "scratch": bool(scratch),
        "num_blocks": num_blocks - len(removed),
        "accuracy": accuracy,
        "val_loss": eval_loss,  # the key of every committed run record; kept
        "train_loss": float(np.mean(losses[-10:])),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if not removed and not scratch:
        model.cpu()
        result["finetuned_scores"] = {c: score_model(model, c, progress=False).scores for c in CRITERIA}
    return result


# ----------------------------------------------------------------------------------------------------------------
# the feature oracles: linear probe and kNN on frozen features


@torch.no_grad()
def features(model: nn.Module, data: StudyData, x: torch.Tensor, *, device: torch.device | str = "cpu",
             batch: int = 64) -> np.ndarray:
    """Frozen features `[N, D]` (float64): the [CLS] token of the encoder's output where the model has one (the
    final layer norm applied where the model has one), else the mean of all its tokens."""
    from ...calibration import input_name

    base = base_model(model)
    spec = get_arch(model)
    cls_token = spec.num_prefix_tokens(model.config) >= 1
    name = input_name(model)
    masked = spec.model_type == "vit_mae"  # ViTMAEModel hides a random 75% of the patches on every call
    ratio = getattr(base.config, "mask_ratio", None)
    out = []
    try:
        if masked:
            base.config.mask_ratio = 0.0  # keep every patch ...
        for i in range(0, len(x), batch):
            pixels = data.pixels(x[i : i + batch]).to(device)
            extra = {}
            if masked:  # ... in order
                patches = (pixels.shape[-1] // base.config.patch_size) * (pixels.shape[-2] // base.config.patch_size)
                extra["noise"] = torch.arange(patches, dtype=torch.float32, device=device).expand(len(pixels), -1)
            hidden = base(**{name: pixels}, **extra).last_hidden_state
            out.append((hidden[:, 0] if cls_token else hidden.mean(1)).double().cpu())
    finally:
        if masked:
            base.config.mask_ratio = ratio
    return torch.cat(out).numpy()


def probe_subset(labels: torch.Tensor | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, stratified `fraction` of `labels`: that share of each class (at least one)."""
    y = np.asarray(labels)
    rng = np.random.default_rng([seed, _PROBE_SUBSET])
    chosen = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        take = max(1, math.ceil(fraction * len(members) - 1e-9))
        chosen.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(chosen))


def probe_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Top-1 of a logistic regression (L-BFGS, C = `PROBE_C`) fitted on standardised `train` features."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    scaler = StandardScaler().fit(train)
    clf = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings(), threadpool_limits(1):  # one BLAS thread, like the rest of a run
        warnings.simplefilter("error", ConvergenceWarning)  # "trained to convergence" is part of the oracle
        try:
            clf.fit(scaler.transform(train), y_train)
        except ConvergenceWarning:
            raise GardenerError(f"the linear probe did not converge in {PROBE_MAX_ITER} iterations") from None
    return float((clf.predict(scaler.transform(test)) == y_test).mean())


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = KNN_K) -> float:
    """Top-1 of a k-nearest-neighbour vote (cosine similarity; a tie goes to the nearest of the tied classes)."""
    a = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    b = test / np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-12)
    from threadpoolctl import threadpool_limits

    k = min(k, len(a))
    correct = 0
    for i in range(0, len(b), 512):
        with threadpool_limits(1):
            sims = b[i : i + 512] @ a.T
        nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        for row, y in zip(y_train[nearest], y_test[i : i + 512], strict=True):
            counts = np.bincount(row)
            tied = np.flatnonzero(counts == counts.max())
            winner = next(int(c) for c in row if c in tied)  # the nearest neighbour of a tied class
            correct += winner == y
    return correct / len(b)


_FEATURE_ORACLE = {"linear-probe": probe_accuracy, "knn": knn_accuracy}


def feature_run(ctx: _Context, removed: Sequence[int], *, scratch: bool = False,
                seeds: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Every feature oracle of the study, every seed, on the encoder with `removed` blocks deleted.

    One pass over the data; seed `s` fits on `probe_subset(train labels, probe_fraction, s)` and is scored on
    the whole validation split. With `scratch`, the model's Linear and LayerNorm layers are re-initialised
    (seed 0) first: how well random features of the same architecture do.
    """
    cfg, data = ctx.config, ctx.data
    t0 = time.perf_counter()
    model = copy.deepcopy(ctx.model)
    num_blocks = model.config.num_hidden_layers
    if scratch:
        torch.manual_seed(0)
        _reinit(model, model.config.initializer_range)
    if removed:
        apply_plan(model, make_plan(num_blocks=num_blocks, remove=list(removed)))
    model.to(ctx.device).eval()
    train_f = features(model, data, data.train_x, device=ctx.device)
    eval_f = features(model, data, data.eval_x, device=ctx.device)
    del model
    y_train, y_eval = data.train_y.numpy(), data.eval_y.numpy()
    seeds = list(range(cfg.seeds) if seeds is None else seeds)
    share = (time.perf_counter() - t0) / (len(seeds) * len(cfg.feature_oracles))
    records = []
    for seed in seeds:
        idx = probe_subset(y_train, cfg.probe_fraction, seed)
        for oracle in cfg.feature_oracles:
            t1 = time.perf_counter()
            accuracy = _FEATURE_ORACLE[oracle](train_f[idx], y_train[idx], eval_f, y_eval)
            records.append({
                "oracle": oracle, "removed": sorted(int(b) for b in removed), "seed": int(seed), "scratch": bool(scratch),
                "num_blocks": num_blocks - len(removed), "accuracy": accuracy,
                "seconds": round(share + time.perf_counter() - t1, 2),
            })
    return records


# ----------------------------------------------------------------------------------------------------------------
# running many runs: once each, in parallel (processes here, ranks under torchrun; several machines need
# --output-dir on a shared filesystem), resumable

Spec = tuple  # (removed blocks, seed, scratch) for the finetune oracle, or (oracle, removed blocks, seed, scratch)


def _spec(spec: Spec) -> tuple[str, tuple[int, ...], int, bool]:
    """A spec in its long form `(oracle, removed, seed, scratch)`."""
    if len(spec) == 3:
        return ("finetune", tuple(spec[0]), int(spec[1]), bool(spec[2]))
    return (spec[0], tuple(spec[1]), int(spec[2]), bool(spec[3]))


def run_key(removed: Iterable[int], seed: int, scratch: bool = False, oracle: str = "finetune") -> str:
    """Identity of a run: `"r3-11@0"` (finetuned, blocks 3 and 11 removed, seed 0), `"r@0"`, `"scratch@0"`;
    other oracles prefix their name: `"linear-probe:r3-11@0"`."""
    key = f"scratch@{seed}" if scratch else "r" + "-".join(str(b) for b in sorted(removed)) + f"@{seed}"
    return key if oracle == "finetune" else f"{oracle}:{key}"


def record_key(run: dict[str, Any]) -> str:
    """`run_key` of a run record (records without an `oracle` are finetune runs)."""
    return run_key(run["removed"], run["seed"], run["scratch"], run.get("oracle", "finetune"))


_CTX: _Context | None = None


def _worker_init(config: dict[str, Any], verbosity: int, level: int, device: str) -> None:
    global _CTX
    torch.set_num_threads(1)
    _mirror_logging(verbosity, level)
    _CTX = build_context(StudyConfig.from_dict(config), device=device)


def _run_job(ctx: _Context, job: tuple) -> list[dict[str, Any]]:
    """One job: `("finetune", removed, seed, scratch)` or `("features", removed, scratch, seeds)`."""
    if job[0] == "finetune":
        return [finetune_run(ctx, job[1], job[2], scratch=job[3])]
    return feature_run(ctx, job[1], scratch=job[2], seeds=job[3])


def _worker_run(job: tuple) -> list[dict[str, Any]]:
    assert _CTX is not None
    return _run_job(_CTX, job)


def _mirror_logging(verbosity: int, level: int) -> None:
    """A spawned worker logs as its parent does (transformers' verbosity, gardener_hf's level), without progress bars."""
    transformers.logging.set_verbosity(verbosity)
    transformers.logging.disable_progress_bar()
    logging.getLogger("gardener_hf").setLevel(level)


def _read_records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
            record_key(run)
            out.append(run)
        except (json.JSONDecodeError, KeyError, TypeError):
            # a line cut short by a kill mid-write: the run is simply done again
            logger.warning("%s:%d: unreadable run record skipped", path.name, line_no)
    return out


class RunStore:
    """Finished runs by key, backed by an append-only JSON-lines file (one line per run).

    With a `rank` (a multi-process study), new runs go to `runs.rank<rank>.jsonl` beside it until rank 0
    `merge`s them; a store reads those files too, so a killed multi-process study loses no finished run.
    """

    def __init__(self, path: Path, rank: int | None = None) -> None:
        self.path = Path(path)
        self.rank = rank
        self.runs: dict[str, dict[str, Any]] = {}
        self.reload()

    def _rank_files(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.stem}.rank*.jsonl"))

    def reload(self) -> None:
        """Read the file (and any rank files) again."""
        self.runs = {}
        for path in [self.path, *self._rank_files()]:
            if path.exists():
                for run in _read_records(path):
                    self.runs.setdefault(record_key(run), run)

    def __contains__(self, key: str) -> bool:
        return key in self.runs

    def get(self, removed: Iterable[int], seed: int, scratch: bool = False, oracle: str = "finetune") -> dict[str, Any]:
        return self.runs[run_key(removed, seed, scratch, oracle)]

    def add(self, run: dict[str, Any]) -> None:
        key = record_key(run)
        if key in self.runs:
            return
        self.runs[key] = run
        path = self.path if self.rank is None else self.path.with_name(f"{self.path.stem}.rank{self.rank}.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps(run) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def merge(self) -> None:
        """Append the rank files' runs the main file lacks to it, then delete the rank files (rank 0's job)."""
        have = {record_key(r) for r in _read_records(self.path)} if self.path.exists() else set()
        rank_files = self._rank_files()
        with open(self.path, "a") as f:
            for path in rank_files:
                for run in _read_records(path):
                    if record_key(run) not in have:
                        have.add(record_key(run))
                        f.write(json.dumps(run) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for path in rank_files:
            path.unlink()


def distributed() -> tuple[int, int]:
    """`(rank, world size)` of this process: from the launcher's environment (torchrun, accelerate launch)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def barrier() -> None:
    """Wait for every rank (a gloo process group, set up on first use); nothing to do in one process."""
    if distributed()[1] == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        # a phase may take hours on one rank while another waits: a generous timeout
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))
    dist.barrier()


def _jobs(specs: Sequence[Spec], store: RunStore) -> list[tuple]:
    """The jobs that make every spec not in `store`: one per finetune run, one per (plan, scratch) of the feature
    oracles (it measures every seed asked for that plan)."""
    jobs: list[tuple] = []
    features: dict[tuple[tuple[int, ...], bool], set[int]] = {}
    for oracle, removed, seed, scratch in map(_spec, specs):
        if run_key(removed, seed, scratch, oracle) in store:
            continue
        if oracle == "finetune":
            job = ("finetune", tuple(sorted(removed)), seed, scratch)
            if job not in jobs:
                jobs.append(job)
        else:
            features.setdefault((tuple(sorted(removed)), scratch), set()).add(seed)
    jobs += [("features", removed, scratch, tuple(sorted(seeds))) for (removed, scratch), seeds in features.items()]
    return jobs


def run_all(specs: Sequence[Spec], store: RunStore, config: StudyConfig, *, jobs: int, desc: str, progress: bool = True,
            device: torch.device | str | None = None) -> None:
    """Run every spec not yet in `store`, `jobs` at a time (each on one CPU thread), recording each as it ends.

    In a multi-process study every rank calls this with the same specs and takes its share of the jobs; on
    return every rank's `store` holds every run.
    """
    rank, world = distributed()
    todo = _jobs(specs, store)
    mine = todo[rank::world]
    wanted = {run_key(*_spec(s)[1:], _spec(s)[0]) for s in specs}
    done = len(wanted & set(store.runs))
    if todo:
        logger.info("%s: %d jobs for %d runs (%d already done), %d at a time%s", desc, len(todo), len(wanted) - done, done,
                    jobs, f" in each of {world} processes" if world > 1 else "")
    else:
        logger.info("%s: all %d runs already done", desc, done)
    bar = tqdm(total=len(mine), desc=desc, unit="job", disable=not progress or not mine or rank != 0)
    device = torch.device(device) if device is not None else device_for_rank()
    try:
        if mine and jobs == 1:
            global _CTX
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                if _CTX is None or _CTX.config != config or _CTX.device != device:
                    _CTX = build_context(config, device=device)
                for job in mine:
                    for run in _run_job(_CTX, job):
                        store.add(run)
                    bar.update()
            finally:
                torch.set_num_threads(threads)
        elif mine:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(jobs, len(mine)), mp_context=ctx, initializer=_worker_init,
                                     initargs=(config.to_dict(), transformers.logging.get_verbosity(),
                                               logging.getLogger("gardener_hf").getEffectiveLevel(), str(device))) as pool:
                futures = [pool.submit(_worker_run, job) for job in mine]
                try:
                    for future in as_completed(futures):
                        for run in future.result():
                            store.add(run)
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # fail now, not after every queued job
                    raise
    finally:
        bar.close()
    if world > 1:
        barrier()  # every rank has written its share
        if rank == 0:
            store.merge()
        barrier()  # the merged file is complete
        store.reload()
    missing = sorted(wanted - set(store.runs))
    if missing:  # ranks that planned different jobs (different scores or files): say so rather than fail later
        raise GardenerError(f"{desc}: {len(missing)} runs are missing after the jobs ran ({', '.join(missing[:3])}...); "
                            "every process must see the same study folder and checkpoint")
