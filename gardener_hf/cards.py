"""Model cards for pruned variants: metadata (`ModelCardData`) kept apart from the document (a Jinja
template shipped inside the package), plus the block-score bar plot.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import nn

from . import __version__
from .arch import get_arch
from .stats import cost_summary
from .surgery import CONFIG_KEY

logger = logging.getLogger(__name__)

PLOT_FILE = "block_scores.png"
TEMPLATE = "modelcard.md"


def _is_hub_id(source: str | None) -> bool:
    if not source or Path(source).exists():
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return "/" in source


def source_license(source: str | None, *, revision: str | None = None, token: str | bool | None = None) -> str | None:
    """The `license` of the source model's card (local README.md or the Hub), or None."""
    if not source:
        return None
    from .sources import resolve_file

    try:
        path = resolve_file(source, "README.md", revision=revision, token=token, required=False)
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


def plot_block_scores(record: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Bar plot of every block's score, kept blocks and removed blocks in different colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = record["scores"]
    blocks = _scored_blocks(record)
    kept = set(record["kept_blocks"])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(scores) + 1.5), 3.2), dpi=100)
    colors = ["#2a9d8f" if b in kept else "#c8c8c8" for b in blocks]
    ax.bar(range(len(scores)), scores, color=colors, edgecolor="#444444", linewidth=0.5)
    lo, hi = min(scores), max(scores)
    pad = (hi - lo) * 0.15 or abs(hi) * 0.01 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(range(len(scores)), [str(b) for b in blocks])
    ax.set_xlabel("block of the source model (0-based)")
    ax.set_ylabel(f"{record['criterion']} score")
    ax.set_title(title or f"{len(kept)} of {len(scores)} blocks kept (green); {record['prune_first']} scores removed first")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


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
) -> ModelCard:
    """Render the model card of a pruned model.

    Args:
        model: the pruned model (its `config.gardener` record drives the card).
        repo_id: where it will live (used in the loading snippet).
        command: the exact command that reproduces this variant.
        source_revision: revision of the source model, shown in the metadata when given.
        license: license to declare (usually the source's).
        training: present when the model was finetuned after pruning: `train_data`, `eval_data` (names),
            `num_train_videos`, `num_eval_videos`, `metrics` (top1 / top5 / mean_class_accuracy as fractions,
            or None without evaluation), `hyperparameters` (dict), `global_step`, and the file names
            `curve_file` / `confusion_file` of plots staged beside the card (or None). The metrics go
            into the model-index metadata as well.

    Returns:
        A `huggingface_hub.ModelCard`; `card.save(path)` writes README.md.
    """
    import transformers

    record = getattr(model.config, CONFIG_KEY)
    spec = get_arch(model)
    eval_results = _eval_results(training, pipeline_tag=spec.pipeline_tag.get(type(model).__name__))
    model_class = type(model).__name__
    pipeline_tag = spec.pipeline_tag.get(model_class)
    source = record.get("source_model")
    tags = ["pruned", "gardener", spec.model_type, "vision"] + (["video"] if spec.video else [])
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        base_model=source if _is_hub_id(source) else None,
        # The Hub knows adapter / merge / quantized / finetune; a pruned model is a derived set of weights.
        base_model_relation="finetune" if _is_hub_id(source) else None,
        tags=tags,
        eval_results=eval_results,
        model_name=repo_id.split("/")[-1] if eval_results else None,
    )
    cost = cost_summary(model, record["source_num_blocks"])
    kept = set(record["kept_blocks"])
    score_of = dict(zip(_scored_blocks(record), record["scores"], strict=True)) if record.get("scores") else {}
    ranks = _ranks(record)
    rows = [
        {
            "index": i,
            "score": f"{score_of[i]:.4f}" if i in score_of else "n/a",
            "rank": ranks.get(i, "n/a"),
            "status": "kept" if i in kept else "removed",
        }
        for i in range(record["source_num_blocks"])
    ]
    template = resources.files("gardener_hf").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    return ModelCard.from_template(
        data,
        template_str=template,
        repo_id=repo_id,
        repo_name=repo_id.split("/")[-1],
        source_name=f"[{source}](https://huggingface.co/{source})" if _is_hub_id(source) else f"`{source}`",
        source_is_hub=_is_hub_id(source),
        source_revision=source_revision,
        num_kept=len(kept),
        num_blocks=record["source_num_blocks"],
        criterion=record["criterion"],
        criterion_summary=_summary(record["criterion"]),
        prune_first=record.get("prune_first") or "n/a",
        finetuned=training is not None,
        training=_training_view(training),
        model_class=model_class,
        pipeline_tag=pipeline_tag,
        params=_fmt_int(cost["params"]),
        params_source=_fmt_int(cost["params_source"]),
        gflops=f"{cost['gflops']:.3g}",
        gflops_source=f"{cost['gflops_source']:.3g}",
        tokens=cost["tokens"],
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
    name = training.get("eval_data") or "evaluation set"
    results = []
    for key, metric_type, metric_name in (("top1", "accuracy", "top-1 accuracy"), ("top5", "top_5_accuracy", "top-5 accuracy")):
        if metrics.get(key) is None:
            continue
        results.append(
            EvalResult(
                task_type=pipeline_tag or "video-classification",
                dataset_type=name,
                dataset_name=name,
                dataset_split="validation",
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


def _summary(criterion: str) -> str:
    from .scoring import _REGISTRY

    cls = _REGISTRY.get(criterion)
    return cls.summary if cls else "blocks chosen by hand"


def _scored_blocks(record: dict[str, Any]) -> list[int]:
    """Source-model indices of the scored blocks (all of them unless the model was pruned before)."""
    return record.get("scored_blocks") or list(range(len(record["scores"])))


def _ranks(record: dict[str, Any]) -> dict[int, int]:
    """Source block index -> rank (1 = most important) among the scored blocks."""
    order = record.get("removal_order") or []
    return {block: len(order) - position for position, block in enumerate(order)}
