"""Finding checkpoint files (local folder or Hub repo) and streaming blocks out of safetensors.

Only safetensors weights are read: pickled `pytorch_model.bin` files can run code on load, so a repo
that has nothing else is refused with an explanation.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from .arch import ROLES, ArchSpec, get_arch
from .errors import GardenerError, WeightsError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"


def is_local(model_id: str | os.PathLike[str]) -> bool:
    return Path(model_id).is_dir()


def validate_model_id(model_id: str) -> None:
    """Raise `GardenerError` unless `model_id` is an existing folder or a well-formed Hub repo id."""
    if is_local(model_id):
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    looks_like_path = os.sep in str(model_id).strip("/") and str(model_id).count("/") > 1
    try:
        if looks_like_path or str(model_id).startswith((".", "/", "~")):
            raise HFValidationError("not a folder")
        validate_repo_id(str(model_id))
    except HFValidationError:
        raise GardenerError(
            f"{model_id!r} is neither an existing folder nor a valid Hub repo id (expected 'namespace/name')"
        ) from None


def resolve_file(
    model_id: str,
    filename: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    required: bool = True,
) -> Path | None:
    """Local path of `filename` in a folder or Hub repo (downloaded into the HF cache).

    Returns None when the file does not exist and `required` is False.

    Raises:
        GardenerError: bad id, missing repo/revision, missing required file, or Hub unreachable.
    """
    validate_model_id(model_id)
    if is_local(model_id):
        path = Path(model_id) / filename
        if path.is_file():
            return path
        if required:
            raise WeightsError(f"{filename} not found in folder {model_id}")
        return None

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(model_id, filename, revision=revision, token=token))
    except GatedRepoError:
        raise GardenerError(f"{model_id} is gated: accept its terms on the Hub and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise GardenerError(
            f"repo {model_id} not found on the Hub (or it is private: log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise GardenerError(f"revision {revision!r} not found in {model_id}") from None
    except EntryNotFoundError:
        if required:
            raise WeightsError(f"{filename} not found in {model_id} at revision {revision or 'main'}") from None
        return None
    except LocalEntryNotFoundError:
        raise GardenerError(
            f"could not download {filename} from {model_id}: the Hub is unreachable and the file is not in the "
            "local cache (check the network, HF_ENDPOINT, or HF_HUB_OFFLINE)"
        ) from None


def read_config(model_id: str, *, revision: str | None = None, token: str | bool | None = None) -> dict[str, Any]:
    path = resolve_file(model_id, "config.json", revision=revision, token=token)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"config.json of {model_id} is not valid JSON: {err}") from None


@dataclass
class SafetensorsCheckpoint:
    """A checkpoint's scored matrices, located by key, read lazily one block at a time.

    Attributes:
        model_id: where it came from.
        config: the parsed config.json.
        arch: its architecture entry.
        locations: `locations[block][role] = (file path, tensor key)`.
    """

    model_id: str
    config: dict[str, Any]
    arch: ArchSpec
    locations: list[dict[str, tuple[Path, str]]]

    @property
    def num_blocks(self) -> int:
        return len(self.locations)

    @classmethod
    def open(
        cls, model_id: str, *, revision: str | None = None, token: str | bool | None = None
    ) -> SafetensorsCheckpoint:
        """Locate the scored matrices of every block of a local or Hub checkpoint.

        Raises:
            UnsupportedModelError: model type not supported.
            WeightsError: no safetensors weights, corrupt files, or blocks with missing matrices.
        """
        config = read_config(model_id, revision=revision, token=token)
        arch = get_arch(config)
        index_path = resolve_file(model_id, SAFE_INDEX, revision=revision, token=token, required=False)
        if index_path is not None:
            try:
                weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
                raise WeightsError(f"{SAFE_INDEX} of {model_id} is corrupt: {err}") from None
            shard_names = sorted(set(weight_map.values()))
        else:
            shard_names = [SAFE_WEIGHTS]
        pattern = arch.key_pattern()
        found: dict[int, dict[str, tuple[Path, str]]] = defaultdict(dict)
        for shard in shard_names:
            path = resolve_file(model_id, shard, revision=revision, token=token, required=False)
            if path is None:
                if index_path is None and resolve_file(
                    model_id, "pytorch_model.bin", revision=revision, token=token, required=False
                ):
                    raise WeightsError(
                        f"{model_id} has only pickled pytorch_model.bin weights; gardener_hf reads safetensors only "
                        "(pickles can run code). Convert it, or use a revision with model.safetensors"
                    )
                raise WeightsError(f"{shard} not found in {model_id}")
            for key in _safetensors_keys(path):
                match = pattern.match(key)
                if match:
                    found[int(match.group(1))][arch.role_of(match.group(2))] = (path, key)
        expected = int(config.get("num_hidden_layers", len(found)))
        locations = []
        for block in range(expected):
            missing = [role for role in ROLES if role not in found.get(block, {})]
            if missing:
                raise WeightsError(
                    f"{model_id}: block {block} has no {', '.join(missing)} weight(s) in its safetensors files "
                    f"(config says {expected} blocks); the checkpoint is incomplete or corrupt"
                )
            locations.append({role: found[block][role] for role in ROLES})
        extra = sorted(set(found) - set(range(expected)))
        if extra:
            raise WeightsError(
                f"{model_id}: weights for block(s) {extra} exist but config.json says num_hidden_layers={expected}"
            )
        return cls(model_id=model_id, config=config, arch=arch, locations=locations)

    def iter_blocks(self) -> Iterator[list[torch.Tensor]]:
        """Yield each block's six matrices in `ROLES` order, holding one block at a time."""
        for block, roles in enumerate(self.locations):
            tensors = []
            by_file: dict[Path, list[str]] = defaultdict(list)
            for path, key in roles.values():
                by_file[path].append(key)
            loaded: dict[str, torch.Tensor] = {}
            for path, keys in by_file.items():
                try:
                    with safe_open(str(path), framework="pt") as handle:
                        for key in keys:
                            loaded[key] = handle.get_tensor(key)
                except (SafetensorError, OSError, RuntimeError) as err:
                    raise WeightsError(f"block {block}: cannot read {path.name}: {err}") from None
            for _, key in roles.values():
                tensors.append(loaded[key])
            yield tensors


def _safetensors_keys(path: Path) -> list[str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, RuntimeError) as err:
        raise WeightsError(f"{path.name} is not a readable safetensors file: {err}") from None
