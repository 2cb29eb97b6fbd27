"""Prune a checkpoint into one or more variants, optionally finetune each, stage them with cards, push them.

`prune_and_publish` is what `gardener push` / `scripts/push_pruned.py` do, as one Python call: the
source is loaded and scored once, every variant is planned and its repo id checked before anything is
staged, each variant is staged atomically, and each is uploaded in one commit. Only the main process
of an `accelerate launch` stages and pushes.
"""

from __future__ import annotations

import copy
import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._io import check_destination
from ..checkpoint import load_model, public_name, read_config, validate_model_id
from ..constants import EMBEDDED_DEFAULT, EMBEDDED_NAME
from ..calibration import TENSOR_EXTENSIONS
from ..data import data_name, load_calibration
from ..errors import DataError, GardenerError
from ..scoring import get_scorer, score_model
from ..surgery import PrunePlan, apply_plan, make_plan
from .cards import source_license
from .push import DEFAULT_REPO_TEMPLATE, StagedVariant, format_repo_id, hub_namespace, push_variant, stage_variant

logger = logging.getLogger(__name__)

#: namespace of repo ids when nothing is pushed (no token, or a dry run)
LOCAL_NAMESPACE = "local"


@dataclass
class PublishedVariant:
    """One variant `prune_and_publish` staged, and where it went."""

    staged: StagedVariant
    plan: PrunePlan
    url: str | None = None  # the commit (or pull request) URL; None when only staged


def _is_main_process() -> bool:
    # RANK is set by `accelerate launch` / torchrun; a process other than rank 0 never stages or pushes.
    return os.environ.get("RANK", "0") == "0"


def plan_flag(plan: PrunePlan, *, keep: int | None, remove: Sequence[int] | None, remove_ratio: float | None) -> str:
    """The `--keep K` / `--remove ...` / `--remove-ratio R` options that make `plan` again."""
    if keep is not None:
        return f"--keep {plan.num_kept}"
    if remove is not None:
        return "--remove " + " ".join(map(str, remove))
    return f"--remove-ratio {remove_ratio}"


#: option names whose values are credentials: never written into a card, a report or a log
SECRET_WORDS = ("token", "password", "secret", "key", "credential")


def is_secret_option(option: str) -> bool:
    """Whether a command-line option carries a credential (`--hub-token`, `--hub_token`, `--api-key`...)."""
    name = option.lstrip("-").split("=", 1)[0].lower().replace("_", "-")
    return any(word in name for word in SECRET_WORDS)


def public_options(options: Sequence[str]) -> list[str]:
    """Command-line options as a card may show them: credentials dropped, local paths named by their folder.

    Each option takes at most one value (as `gardener push` passes finetune options through).

    Example:
        >>> public_options(["--hub-token", "hf_x", "--num-train-epochs", "3", "--logging-dir=/home/me/logs"])
        ['--num-train-epochs', '3', '--logging-dir=logs']
    """
    out: list[str] = []
    skip_value = False
    for item in options:
        if skip_value:
            skip_value = False
            if not item.startswith("--"):
                continue
        if item.startswith("--") and is_secret_option(item):
            skip_value = "=" not in item
            continue
        if item.startswith("--") and "=" in item:
            flag, value = item.split("=", 1)
            out.append(f"{flag}={_public_value(value)}")
        else:
            out.append(item if item.startswith("--") else _public_value(item))
    return out


def _public_value(value: str) -> str:
    return Path(value).name if os.path.isabs(value) else value


def default_command(
    source: str | None,
    *,
    revision: str | None,
    criterion: str,
    params: dict[str, Any],
    train_data: Any = None,
    eval_data: Any = None,
    output_dir: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
) -> str:
    """The `gardener push` command that rebuilds a variant, with `{plan}` where its plan options go.

    Sources and data are named as `public_name` / `data_name` name them (a local folder by its
    name, to be run from the folder that holds it); `options` pass through `public_options`.
    """
    parts = ["gardener push"] + ([shlex.quote(public_name(source))] if source else [])
    if revision:
        parts += ["--source-revision", shlex.quote(revision)]
    parts += ["{plan}", "--criterion", criterion]
    for name in ("bins", "seed"):
        if params.get(name) is not None:
            parts += [f"--{name}", str(params[name])]
    if params.get("calibration") is not None:  # a folder or file by its name, as data are named
        calibration = params["calibration"]
        parts += ["--calibration", shlex.quote(getattr(calibration, "spec", None) or data_name(calibration))]
    if params.get("calibration_samples") is not None:
        parts += ["--calibration-samples", str(params["calibration_samples"])]
    if params.get("protect"):
        parts += ["--protect", ",".join(str(b) for b in params["protect"])]
    for flag, value in (("--train-dir", train_data), ("--eval-dir", eval_data)):
        if isinstance(value, (str, os.PathLike)):
            parts += [flag, shlex.quote(data_name(value))]
    if output_dir is not None and train_data is not None:
        parts += ["--output-dir", shlex.quote(Path(output_dir).name or str(output_dir))]
    parts += [shlex.quote(o) for o in public_options(options)]
    return " ".join(parts)


def prune_and_publish(
    source: str | None = None,
    *,
    keep: Sequence[int] | None = None,
    remove: Sequence[int] | None = None,
    remove_ratio: float | None = None,
    criterion: str = "entropy",
    criterion_params: dict[str, Any] | None = None,
    calibration: Any = None,
    calibration_samples: int | None = None,
    protect: Sequence[int] | None = None,
    repo_id: str | None = None,
    output_dir: str | Path | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    private: bool = False,
    revision: str | None = None,
    push_revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    model_class: str | None = None,
    finetune: Any = None,
    command: str | None = None,
    progress: bool = True,
) -> list[PublishedVariant]:
    """Prune `source` into variants, (optionally) finetune them, stage each with a card, and push each.

    Args:
        source: Hub repo id or local folder; None: the embedded default.
        keep: one variant per value: keep the K best blocks. Exactly one of `keep`, `remove`,
            `remove_ratio` is given.
        remove: one variant without these 0-based blocks.
        remove_ratio: one variant without round(ratio x blocks) blocks.
        criterion / criterion_params: block score and its parameters (`bins`, `seed`).
        calibration / calibration_samples: inputs for a calibrated criterion (see `scoring.score_model`).
        protect: blocks every variant keeps whatever the criterion says.
        repo_id: target repo id, or a template with `{namespace}` `{name}` `{keep}` `{criterion}`
            (default `{namespace}/{name}-gardener-keep{keep}`; namespace = the token's user).
        output_dir: where variants are staged, one subfolder each (None: a temporary folder).
        dry_run: stage only (needs `output_dir`); also the case when there is no token.
        overwrite: replace existing staged folders.
        private / push_revision / create_pr: how to push (private repo, branch, pull request).
        revision: revision of `source` on the Hub.
        token: Hub token (None: `HF_TOKEN` or the cached login; without one nothing is pushed).
        model_class: transformers class to load `source` with (default: as saved).
        finetune: a `training.FinetuneSettings` to finetune every variant before staging; its
            `training_args.output_dir` is replaced by `output_dir/NAME-run` per variant.
        command: the Reproduce command shown in each card, `{plan}` standing for the variant's plan
            options (default: `default_command(...)`).
        progress: progress bars.

    Returns:
        One `PublishedVariant` per staged variant (`url` set when pushed); empty on processes other
        than the main one.

    Raises:
        GardenerError: bad arguments, an existing staged folder without `overwrite`, an unloadable
            source, or a failed push. Nothing half-written is left behind.
    """
    from huggingface_hub import get_token

    source_id = source or EMBEDDED_DEFAULT
    if source is None:
        logger.info("no model given: using the embedded default %s", EMBEDDED_NAME)
    if dry_run and output_dir is None:
        raise GardenerError("a dry run stages variants on disk only: give an output folder (--output-dir DIR)")
    if keep is not None and len(set(keep)) != len(keep):
        raise GardenerError(f"keep {list(keep)}: a value is given twice (one variant per distinct value)")
    keeps: list[int | None] = list(keep) if keep is not None else [None]
    template = repo_id or DEFAULT_REPO_TEMPLATE
    if len(keeps) > 1 and "{keep}" not in template:
        raise GardenerError("several keep values need a repo id template containing {keep}")
    params = dict(criterion_params or {})
    token = token or get_token()
    staging_only = dry_run or not token
    if not dry_run and not token:
        logger.warning(
            "no Hub token found: staging only. Log in with `hf auth login` (or set HF_TOKEN), then run again to push."
        )
    # Validate what can be validated before the model is loaded.
    validate_model_id(source_id)
    get_scorer(criterion, **params)
    namespace = LOCAL_NAMESPACE
    if "{namespace}" in template and not staging_only:
        namespace = hub_namespace(token)
    format_repo_id(template, namespace=namespace, source=source_id, keep=1, criterion=criterion)
    # without a login and a {namespace} template, the repo ids name no real repo: cards load the folder
    target_known = "{namespace}" not in template or namespace != LOCAL_NAMESPACE
    if create_pr and push_revision and push_revision != "main":
        raise GardenerError("a pull request is opened against main: --create-pr cannot be combined with --revision")
    if finetune is not None and output_dir is None:
        raise GardenerError("finetuning needs an output folder (--output-dir): training runs and checkpoints are kept there")
    if finetune is not None:  # the data must be there before anything is loaded, trained or written
        finetune.clips.validate()
        for data in (finetune.train_data, finetune.eval_data):
            if isinstance(data, (str, os.PathLike)) and not Path(data).exists():
                raise DataError(f"data source {data} does not exist")

    root = Path(output_dir) if output_dir is not None else None
    if root is not None:  # refuse an existing variant before anything is loaded or scored
        num_blocks = read_config(source_id, revision=revision, token=token).get("num_hidden_layers")
        for kept in _kept_counts(keeps, remove, remove_ratio, num_blocks):
            rid = format_repo_id(template, namespace=namespace, source=source_id, keep=kept, criterion=criterion)
            check_destination(root / rid.split("/")[-1], overwrite)
    model = load_model(source_id, revision=revision, token=token, model_class=model_class)
    if calibration is not None and torch.cuda.is_available():
        model.cuda()  # calibrated criteria run the model; the staged tensors are the same
    calibration_name = getattr(calibration, "spec", None) or (
        data_name(str(Path(calibration).resolve())) if isinstance(calibration, (str, os.PathLike)) else None)
    if calibration is not None and calibration_name is None:
        logger.warning("the calibration inputs have no name: the card's Reproduce command cannot name them")
    if isinstance(calibration, (str, os.PathLike)) and not str(calibration).lower().endswith(TENSOR_EXTENSIONS):
        spec, seed = calibration, int(params.get("seed") or 0)
        calibration = lambda m: load_calibration(spec, m, samples=calibration_samples, seed=seed,  # noqa: E731
                                                 revision=revision, token=token)
    scores = score_model(model, criterion, progress=progress, calibration=calibration,
                         calibration_samples=calibration_samples, **params)
    scores.source = source or EMBEDDED_NAME
    license = source_license(source_id, revision=revision, token=token)
    calibration_options = {"calibration": calibration_name, "calibration_samples": calibration_samples,
                           "protect": protect}
    command = command or default_command(
        source, revision=revision, criterion=criterion, params={**params, **calibration_options},
        train_data=getattr(finetune, "train_data", None), eval_data=getattr(finetune, "eval_data", None),
        output_dir=output_dir,
    )
    plans = [make_plan(scores, keep=k, remove=remove, remove_ratio=remove_ratio, protect=protect) for k in keeps]
    repo_ids = [
        format_repo_id(template, namespace=namespace, source=source_id, keep=p.num_kept, criterion=criterion) for p in plans
    ]
    published: list[PublishedVariant] = []
    with tempfile.TemporaryDirectory(prefix="gardener-stage-") as scratch:
        root = Path(output_dir) if output_dir is not None else Path(scratch)
        for rid in repo_ids:  # refuse before staging any variant, so a refusal leaves nothing behind
            check_destination(root / rid.split("/")[-1], overwrite)
        for plan, rid in zip(plans, repo_ids, strict=True):
            folder = root / rid.split("/")[-1]
            variant = copy.deepcopy(model)
            apply_plan(variant, plan)
            card_kwargs, extra_files, is_main = None, None, _is_main_process()
            if finetune is not None:
                variant, card_kwargs, extra_files, is_main = _finetune(variant, source_id, finetune, folder, revision, token)
            if not is_main:
                continue
            staged = stage_variant(
                variant, folder, repo_id=rid, source=source_id,
                command=command.replace("{plan}", plan_flag(plan, keep=keep, remove=remove, remove_ratio=remove_ratio)),
                revision=revision, token=token, license=license, overwrite=overwrite,
                card_kwargs=card_kwargs, extra_files=extra_files,
                load_id=None if target_known else folder.name,
            )
            logger.info("%s: %s", rid, plan.describe())
            published.append(PublishedVariant(staged, plan))
            del variant
        if staging_only:
            if output_dir is None:
                raise GardenerError("nothing was pushed (no Hub token) and no --output-dir was given, so nothing was kept")
            return published
        for item in published:
            try:
                item.url = push_variant(
                    item.staged, token=token, private=private, revision=push_revision, create_pr=create_pr
                )
            except GardenerError as err:
                if output_dir is None:  # keep what was staged: move it out of the temporary folder
                    item.staged.folder = _keep(item.staged.folder, Path.cwd())
                raise GardenerError(
                    f"{err}. Nothing of it reached the Hub (one commit per variant). The staged variant is kept in "
                    f"{item.staged.folder}; upload it with: hf upload {item.staged.repo_id} {item.staged.folder} ."
                ) from None
    return published


def _kept_counts(keeps, remove, remove_ratio, num_blocks) -> list[int]:
    """How many blocks each variant keeps, known before scoring (make_plan checks the values later)."""
    if remove is not None or remove_ratio is not None:
        if not isinstance(num_blocks, int):
            return []
        if remove is not None:
            return [num_blocks - len(set(remove))]
        return [max(num_blocks - round(remove_ratio * num_blocks), 1)] if isinstance(remove_ratio, (int, float)) else []
    return [k for k in keeps if isinstance(k, int)]


def _keep(folder: Path, where: Path) -> Path:
    """Move a staged folder out of a temporary folder into `where`, under a name that is free."""
    target, n = where / folder.name, 1
    while target.exists():
        target, n = where / f"{folder.name}-{n}", n + 1
    shutil.move(str(folder), target)
    return target


def _finetune(variant, source: str, settings, folder: Path, revision: str | None, token: str | None):
    """Finetune one variant in `folder-run/`: (finetuned model, card kwargs, plot files, is main process)."""
    from ..training.finetuning import finetune_variant, with_output_dir

    run_dir = folder.with_name(folder.name + "-run")
    result, training = finetune_variant(variant, source, with_output_dir(settings, run_dir), revision=revision, token=token)
    extra = {name: result.output_dir / name for name in (training["curve_file"], training["confusion_file"]) if name}
    is_main = result.is_main_process and _is_main_process()
    return result.model, {"training": training}, extra, is_main
