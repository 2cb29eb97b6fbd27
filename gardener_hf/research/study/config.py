"""What a study is: its configuration (saved as study_config.json), the paper's numbers, and its command line."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ...constants import EMBEDDED_DEFAULT
from ...errors import GardenerError
from ..synthetic import TASKS, task_clip_function

#: criteria scored for the agreement table, in report order
CRITERIA = ("entropy", "entropy-exact", "entropy-hist", "l1", "l1-reverse", "l2", "l2-reverse", "std", "kurtosis", "mi")
#: criteria scored from calibration clips of the task's training split (never the validation clips)
CALIBRATED = ("block-influence", "angular", "removal-drift", "reconstruction")
#: how many calibration clips
CALIBRATION_CLIPS = 32
#: K for the histogram-entropy rank comparison
HIST_BINS = (16, 64, 256, 1024, 4096)
#: sweep methods: name -> criterion of its order ("oracle", "random", "drop-last" and "label-free" are special:
#: "drop-last" removes the deepest blocks first, the data-free baseline any criterion must beat; "label-free" is
#: the calibrated criterion that agrees best with the oracle)
METHODS = {"gardener": "entropy", "oracle": None, "l1": "l1", "l1-reverse": "l1-reverse", "random": None,
           "drop-last": None, "label-free": None}
#: how a block's importance is measured: finetune the pruned model (the paper's), or freeze it and fit a linear
#: probe / a k-nearest-neighbour classifier on its features (cheap and low-noise; how SSL ViTs are usually evaluated)
ORACLES = ("finetune", "linear-probe", "knn")
#: oracles that measure frozen features: one forward pass per plan serves every seed; their sweeps are cheap, so
#: each calibrated criterion gets its own sweep line instead of only the best one
FEATURE_ORACLES = ("linear-probe", "knn")
#: the linear probe: scikit-learn's logistic regression on standardised features, L2 strength 1/C
PROBE_C = 0.1
PROBE_MAX_ITER = 2000
#: neighbours of the kNN oracle (cosine similarity, majority vote)
KNN_K = 20

# The paper's numbers (docs/method.md §3 and §5): UCF101 top-1 (%) of VideoMAE-B K400-FT.
PAPER_UNPRUNED = 91.78
PAPER_SINGLE_REMOVAL = (46.73, 90.58, 86.14, 74.65, 88.32, 87.43, 88.51, 88.02, 90.79, 90.30, 91.09, 91.29)
PAPER_REMOVAL_ORDER = (12, 10, 11, 9, 7, 8, 5, 3, 6, 4, 2, 1)  # entropy, 1-based, lowest first
PAPER_SWEEP = {
    "gardener": (91.29, 85.54, 82.97, 79.90, 73.56, 68.81),
    "oracle": (91.29, 86.63, 84.26, 78.91, 76.44, 68.81),
    "l1": (46.73, 68.81, 72.18, 69.80, 69.01, 59.01),
    "random": (84.49, 76.45, 76.21, 73.70, 72.46, 62.05),
}
PAPER_REMOVALS = (1, 3, 5, 7, 9, 11)

# study_config.json keys of gardener_hf 0.1 studies -> field names
_LEGACY_KEYS = {"lr": "learning_rate", "val_clips": "eval_clips"}
#: command-line flags whose spelling differs from the field (kept as they were)
FLAGS = {"learning_rate": "--lr", "eval_clips": "--val-clips", "oracles": "--oracle"}


@dataclass
class StudyConfig:
    """Everything that determines the study's numbers (saved as study_config.json)."""

    model: str | None = None  # None: the embedded default
    revision: str | None = None
    # one digit moving (bouncing) per clip, the class is the digit; see the module docstring for why
    task: str = "moving-digit"
    clip_options: dict[str, Any] = field(default_factory=lambda: {"num_static": 0})  # for the task's clip function
    train_clips: int = 2048
    eval_clips: int = 1024
    data_seed: int = 0
    steps: int = 150
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    seeds: int = 3
    removals: tuple[int, ...] = PAPER_REMOVALS
    scratch: bool = True  # also finetune a randomly initialised copy: does pretraining matter at all?
    oracles: tuple[str, ...] = ("finetune",)
    # the user's labelled data (gardener_hf.data.load_labelled); None: the generated task
    data: str | None = None
    eval_data: str | None = None
    val_fraction: float | None = None
    max_per_split: int | None = None
    image_size: int | None = None  # input side in pixels (models that interpolate position embeddings); None: the processor's
    probe_fraction: float = 0.5  # stratified share of the training split each seed's probe (and kNN) is fitted on

    def __post_init__(self) -> None:
        self.removals = tuple(int(r) for r in self.removals)
        if isinstance(self.oracles, str):
            self.oracles = (self.oracles,)
        self.oracles = tuple(dict.fromkeys(self.oracles))
        unknown = [o for o in self.oracles if o not in ORACLES]
        if unknown or not self.oracles:
            raise GardenerError(f"oracles {list(unknown) or '[]'}: use one or more of {', '.join(ORACLES)}")
        if self.data is None and (self.eval_data is not None or self.val_fraction is not None):
            raise GardenerError("eval_data and val_fraction need data (the labelled training set they complete or split)")
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise GardenerError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 < self.probe_fraction <= 1:
            raise GardenerError(f"probe_fraction must be in (0, 1], got {self.probe_fraction}")
        for name in ("max_per_split", "image_size"):
            if getattr(self, name) is not None and getattr(self, name) < 2:
                raise GardenerError(f"{name} must be >= 2, got {getattr(self, name)}")
        if self.task not in TASKS:
            raise GardenerError(f"task {self.task!r}: use one of {TASKS}")
        for name in ("train_clips", "eval_clips", "steps", "batch_size", "seeds"):
            if getattr(self, name) < 1:
                raise GardenerError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise GardenerError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise GardenerError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        import inspect

        accepted = set(inspect.signature(task_clip_function(self.task)).parameters) - {"rng", "label", "num_frames", "size", "subset"}
        unknown = sorted(set(self.clip_options) - accepted)
        if unknown:
            raise GardenerError(f"clip_options {unknown}: the {self.task} task takes {', '.join(sorted(accepted))}")
        if not self.removals or any(r < 1 for r in self.removals) or len(set(self.removals)) != len(self.removals):
            raise GardenerError(f"removals must be distinct block counts >= 1, got {list(self.removals)}")

    def model_id(self) -> str:
        """The checkpoint to load: `model`, or the embedded default's folder."""
        return self.model if self.model is not None else EMBEDDED_DEFAULT

    @property
    def feature_oracles(self) -> tuple[str, ...]:
        """The oracles of `oracles` that measure frozen features."""
        return tuple(o for o in self.oracles if o in FEATURE_ORACLES)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["removals"] = list(self.removals)
        data["oracles"] = list(self.oracles)
        return data

    def identity(self) -> dict[str, Any]:
        """What a run's numbers depend on: `to_dict()` without `oracles` (adding an oracle to a study reuses its runs)."""
        data = self.to_dict()
        data.pop("oracles")
        return data

    @staticmethod
    def renamed(data: dict[str, Any]) -> dict[str, Any]:
        """`data` with the keys of studies saved before the rename (`lr`, `val_clips`) in today's spelling."""
        return {_LEGACY_KEYS.get(k, k): v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """Read a saved config back; keys of studies made before the rename (`lr`, `val_clips`) are accepted."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in cls.renamed(data).items() if k in names}
        if "oracles" in values:
            values["oracles"] = tuple(values["oracles"])
        return cls(**values)


def study_command(config: StudyConfig, output_dir: str | Path) -> str:
    """The scripts/reproduce.py command line that runs `config` into `output_dir` (defaults left out)."""
    default = StudyConfig()
    parts = ["python", "scripts/reproduce.py", *([config.model] if config.model else []), "--output-dir", str(output_dir)]
    for f in fields(StudyConfig):
        value = getattr(config, f.name)
        if f.name == "model" or value == getattr(default, f.name):
            continue
        flag = FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
        if f.name == "scratch":
            parts.append("--no-scratch")
        elif f.name in ("removals", "oracles"):
            parts += [flag, ",".join(map(str, value))]
        elif f.name == "clip_options":
            parts += [flag, json.dumps(value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
