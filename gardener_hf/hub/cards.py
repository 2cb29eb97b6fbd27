"""Model cards for pruned variants: metadata (`ModelCardData`) kept apart from the document.

`GardenerModelCard` is a `huggingface_hub.ModelCard` whose default template is the Jinja file shipped
inside the package (`gardener_hf/templates/modelcard.md`); `build_card` fills it from a pruned model's
`PruningRecord`, its cost and, after a finetune, the evaluation results.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import nn

from .._version import __version__
from ..arch import get_arch
from ..checkpoint import is_hub_id, resolve_file
from ..plotting import plot_block_scores  # noqa: F401  (lived here in gardener_hf 0.1)
from ..constants import CARD_FILE, PLOT_FILE, PROCESSOR_FILES
from ..scoring import criterion_summary
from ..stats import cost_summary
from ..surgery import PruningRecord

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "modelcard.md"


class GardenerModelCard(ModelCard):
    """The model card of a pruned variant: `ModelCard` with gardener_hf's template as its default."""

    default_template_path = TEMPLATE


def source_license(source: str | None, *, revision: str | None = None, token: str | bool | None = None) -> str | None:
    """The `license` of the source model's card (local README.md or the Hub), or None."""
    if not source:
        return None
    try:
        path = resolve_file(source, CARD_FILE, revision=revision, token=token, required=False)
    except Exception as err:  # a missing card must never stop a push
        logger.info("no model card for %s: %s", source, err)
        return None
    if path is None:
        return None
    try:
        return ModelCard.load(path).data.license
    except Exception as err:
        logger.info("unreadable model card for %s: %s", source, err)
        return None


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def build_card(
    model: nn.Module,
    *,
    repo_id: str,
    command: str,
    source_revision: str | None = None,
    license: str | None = None,
    training: dict[str, Any] | None = None,
    load_id: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> ModelCard:
    """Render the model card of a pruned model.

    Args:
        model: the pruned model (its `config.gardener` record drives the card).
        repo_id: where it will live.
        load_id: what the loading snippet loads (default `repo_id`); the staged folder's name when the
            target repo is not known yet (a dry run without a namespace).
        command: the exact command that reproduces this variant.
        source_revision: revision of the source model, shown in the metadata when given.
        license: license to declare (usually the source's).
        training: present when the model was finetuned after pruning: `train_data`, `eval_data` (names),
            `num_train_videos`, `num_eval_videos`, `metrics` (top1 / top5 / mean_class_accuracy as fractions,
            or None without evaluation), `hyperparameters` (dict), `global_step`, and the file names
            `curve_file` / `confusion_file` of plots staged beside the card (or None). The metrics go
            into the model-index metadata as well.
        input_size: (height, width) the costs are counted at; default: the processor's crop (see
            `processor_input_size`) is passed by `stage_variant`, else the config's resolution.

    Returns:
        A `GardenerModelCard`; `card.save(path)` writes README.md.
    """
    import transformers

    record = PruningRecord.from_model(model)
    if record is None:
        raise ValueError("build_card: the model has no gardener pruning record (prune it first)")
    spec = get_arch(model)
    eval_results = _eval_results(training, pipeline_tag=spec.pipeline_tag.get(type(model).__name__))
    model_class = type(model).__name__
    pipeline_tag = spec.pipeline_tag.get(model_class)
    source = record.source_model
    source_is_hub = is_hub_id(source)
    tags = ["pruned", "gardener", spec.model_type, "vision"] + (["video"] if spec.video else [])
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        base_model=source if source_is_hub else None,
        # The Hub knows adapter / merge / quantized / finetune; a pruned model is a derived set of weights.
        base_model_relation="finetune" if source_is_hub else None,
        tags=tags,
        eval_results=eval_results,
        model_name=repo_id.split("/")[-1] if eval_results else None,
    )
    cost = cost_summary(model, record.source_num_blocks, input_size)
    kept = set(record.kept_blocks)
    score_of = record.score_of()
    ranks = record.ranks()
    rows = [
        {
            "index": i,
            "score": f"{score_of[i]:.4f}" if i in score_of else "n/a",
            "rank": ranks.get(i, "n/a"),
            "status": "kept" if i in kept else "removed",
        }
        for i in range(record.source_num_blocks)
    ]
    return GardenerModelCard.from_template(
        data,
        repo_id=repo_id,
        load_id=load_id or repo_id,
        load_is_folder=load_id is not None and load_id != repo_id,
        repo_name=repo_id.split("/")[-1],
        source_name=f"[{source}](https://huggingface.co/{source})" if source_is_hub else f"`{source}`",
        source_is_hub=source_is_hub,
        source_revision=source_revision,
        num_kept=len(kept),
        num_blocks=record.source_num_blocks,
        criterion=record.criterion,
        criterion_summary=criterion_summary(record.criterion) or "blocks chosen by hand",
        calibration=record.params.get("calibration"),
        protected=record.params.get("protected"),
        prune_first=record.prune_first or "n/a",
        finetuned=training is not None,
        training=_training_view(training),
        model_class=model_class,
        pipeline_tag=pipeline_tag,
        params=_fmt_int(cost["params"]),
        params_source=_fmt_int(cost["params_source"]),
        gflops=f"{cost['gflops']:.3g}",
        gflops_source=f"{cost['gflops_source']:.3g}",
        tokens=cost["tokens"],
        input_desc=cost["input"],
        plot_file=PLOT_FILE,
        blocks=rows,
        command=command,
        gardener_version=__version__,
        transformers_version=transformers.__version__,
    )


def _eval_results(training: dict[str, Any] | None, *, pipeline_tag: str | None) -> list[EvalResult] | None:
    """model-index entries (top-1 / top-5 accuracy in %) for a finetuned variant."""
    metrics = (training or {}).get("metrics")
    if not metrics:
        return None
    name = training.get("eval_dataset") or training.get("eval_data") or "evaluation set"
    split = training.get("eval_split") or "validation"
    results = []
    for key, metric_type, metric_name in (("top1", "accuracy", "top-1 accuracy"), ("top5", "top_5_accuracy", "top-5 accuracy")):
        if metrics.get(key) is None:
            continue
        results.append(
            EvalResult(
                task_type=pipeline_tag or "video-classification",
                dataset_type=name,
                dataset_name=name,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=metric_name,
                metric_value=round(100 * metrics[key], 2),
            )
        )
    return results


def _training_view(training: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the template shows of a finetune: percentages and a flat hyperparameter table."""
    if training is None:
        return None
    metrics = training.get("metrics") or {}
    view = dict(training)
    view["results"] = [
        (label, f"{100 * metrics[key]:.2f}")
        for key, label in (("top1", "top-1 accuracy (%)"), ("top5", "top-5 accuracy (%)"), ("mean_class_accuracy", "mean per-class accuracy (%)"))
        if metrics.get(key) is not None
    ]
    view["hyperparameters"] = [(k, v) for k, v in (training.get("hyperparameters") or {}).items() if v is not None]
    return view


def processor_input_size(folder: str | Path) -> tuple[int, int] | None:
    """(height, width) a checkpoint's processor feeds the model: its crop, else its fixed resize; None if unknown.

    DINOv2 configs say `image_size` 518 (the size of their position grid) while their processors crop 224;
    the card counts FLOPs at what the model is given.
    """
    import json

    for name in PROCESSOR_FILES:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        for nested in ("image_processor", "video_processor"):  # processor_config.json nests them
            if isinstance(data.get(nested), dict):
                data = data[nested]
                break
        for key, active in (("crop_size", data.get("do_center_crop", True)), ("size", data.get("do_resize", True))):
            size = data.get(key)
            if active and isinstance(size, dict) and isinstance(size.get("height"), int) and isinstance(size.get("width"), int):
                return size["height"], size["width"]
    return None
