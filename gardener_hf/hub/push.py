"""Staging pruned variants in folders and pushing them to the Hub in one commit each.

A variant is written into a temporary folder next to its destination and moved into place only
when complete, so an error never leaves a half-written variant behind. Tokens are passed straight to
huggingface_hub and are never printed, logged or written.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._io import atomic_folder
from ..checkpoint import hub_reachable, hub_unreachable_reason, validate_repo_id
from ..constants import CARD_FILE, PLOT_FILE
from ..errors import GardenerError, first_line, is_network_error
from ..plotting import plot_block_scores
from ..surgery import PruningRecord, save_pruned
from .cards import build_card, processor_input_size

logger = logging.getLogger(__name__)

DEFAULT_REPO_TEMPLATE = "{namespace}/{name}-gardener-keep{keep}"


def format_repo_id(template: str, *, namespace: str, source: str, keep: int, criterion: str) -> str:
    """Fill a repo-id template; fields: {namespace}, {name} (source repo name), {keep}, {criterion}."""
    name = Path(source.rstrip("/")).name if Path(source).exists() else source.rstrip("/").split("/")[-1]
    try:
        repo_id = template.format(namespace=namespace, name=name, keep=keep, criterion=criterion)
    except (KeyError, IndexError, ValueError) as err:
        raise GardenerError(
            f"repo id template {template!r} is invalid ({err}); fields: {{namespace}} {{name}} {{keep}} {{criterion}}"
        ) from None
    validate_repo_id(repo_id)
    return repo_id


@dataclass
class StagedVariant:
    """A complete variant folder ready to upload."""

    repo_id: str
    folder: Path
    keep: int


def stage_variant(
    model: nn.Module,
    destination: str | Path,
    *,
    repo_id: str,
    source: str,
    command: str,
    revision: str | None = None,
    token: str | bool | None = None,
    license: str | None = None,
    overwrite: bool = False,
    card_kwargs: dict[str, Any] | None = None,
    extra_files: dict[str, str | Path] | None = None,
    load_id: str | None = None,
) -> StagedVariant:
    """Write weights, config, pruning record, processor files, plot and card; move into place at the end.

    Args:
        model: the pruned model.
        destination: final folder; must not exist unless `overwrite`.
        repo_id: target repo id (shown in the card).
        source: source model id or folder (processor files are copied from it).
        command: command line that reproduces the variant (shown in the card).
        revision / token: used to fetch the source's processor files.
        license: license for the card metadata.
        overwrite: replace an existing destination.
        card_kwargs: extra arguments for `build_card` (e.g. `training`).
        extra_files: files to stage beside the card, {name in the repo: path} (e.g. training plots).
        load_id: what the card's loading snippet loads, when not `repo_id` (see `build_card`).

    Returns:
        The `StagedVariant`.
    """
    with atomic_folder(destination, overwrite=overwrite) as tmp:
        save_pruned(model, tmp, source=source, revision=revision, token=token)
        record = PruningRecord.from_model(model)
        plot_block_scores(record, tmp / PLOT_FILE)
        card_kwargs = {"input_size": processor_input_size(tmp), **(card_kwargs or {})}
        card = build_card(model, repo_id=repo_id, command=command, license=license, load_id=load_id, **card_kwargs)
        card.save(tmp / CARD_FILE)
        for name, path in (extra_files or {}).items():
            shutil.copyfile(path, tmp / name)
    return StagedVariant(repo_id=repo_id, folder=Path(destination), keep=record.num_kept)


def push_variant(
    staged: StagedVariant,
    *,
    token: str | None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
) -> str:
    """Create the repo (if needed) and upload the staged folder in one commit.

    Returns:
        The URL of the commit (or of the pull request when `create_pr`).
    """
    from huggingface_hub import HfApi

    if create_pr and revision and revision != "main":
        raise GardenerError("a pull request is opened against main: --create-pr cannot be combined with --revision")
    if not hub_reachable():
        raise GardenerError(f"push to {staged.repo_id} failed: {hub_unreachable_reason()}")
    api = HfApi(token=token)
    message = commit_message or f"Upload {staged.repo_id.split('/')[-1]} (gardener_hf, keep {staged.keep} blocks)"
    try:
        api.create_repo(staged.repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main" and not create_pr:
            api.create_branch(staged.repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(staged.folder),
            repo_id=staged.repo_id,
            repo_type="model",
            revision=revision,
            create_pr=create_pr,
            commit_message=message,
        )
    except Exception as err:  # HTTP statuses, a dropped connection, a timeout: upload_folder is one commit
        if not _hub_failure(err):
            raise
        raise GardenerError(f"push to {staged.repo_id} failed: {first_line(err)}") from None
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or info)


def _hub_failure(err: BaseException) -> bool:
    """An error of talking to the Hub (HTTP status, connection, timeout), not a bug."""
    from huggingface_hub.errors import HfHubHTTPError

    # RuntimeError: huggingface_hub's "Error while uploading 'x' to the Hub" after an LFS upload gave up
    return isinstance(err, (HfHubHTTPError, OSError, ValueError, RuntimeError)) or is_network_error(err)


def hub_namespace(token: str) -> str:
    """The user name the token belongs to (the default namespace of pushed repos)."""
    from huggingface_hub import HfApi

    if not hub_reachable():
        raise GardenerError(
            f"cannot look up the Hub user of this token: {hub_unreachable_reason()}. Give the target with "
            "--repo-id NAMESPACE/NAME (it is checked before anything is staged), or stage only with --dry-run"
        )
    try:
        return HfApi(token=token).whoami()["name"]
    except Exception as err:
        if not _hub_failure(err):
            raise
        raise GardenerError(f"could not identify the Hub user for this token: {first_line(err)}") from None
