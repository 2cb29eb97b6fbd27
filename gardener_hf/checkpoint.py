"""Checkpoints: Hub ids and folders, their files, loading models safely, and streaming blocks out of safetensors.

Everything that reads a source checkpoint goes through here: the one Hub-id validator, file
resolution (local folder or Hub repo), `load_model` for any supported class, `load_classifier` /
`load_processor` for finetuning VideoMAE, and `SafetensorsCheckpoint`, which scores a checkpoint
without building the model. Only safetensors weights are read: pickled `pytorch_model.bin` files can
run code on load, so a repo that has nothing else is refused with an explanation.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from .arch import ROLES, ArchSpec, get_arch
from .constants import CONFIG_FILE, EMBEDDED_DEFAULT, EMBEDDED_NAME, PROCESSOR_FILES, SAFE_INDEX, SAFE_WEIGHTS
from .errors import GardenerError, UnsupportedModelError, WeightsError

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Hub ids


def is_local(model_id: str | os.PathLike[str]) -> bool:
    """Whether `model_id` names an existing local folder (which then wins over a Hub id)."""
    return Path(model_id).is_dir()


def _hub_id_problem(text: str) -> str | None:
    """Why `text` is not a `namespace/name` Hub repo id, or None when it is one."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    try:
        hf_validate(text)
    except HFValidationError as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else "not a repo id"
    if text.count("/") != 1:
        return "expected 'namespace/name'"
    return None


def is_hub_id(source: str | None) -> bool:
    """True for a well-formed `namespace/name` Hub repo id that is not also a local path (nor the embedded default)."""
    return bool(source) and source != EMBEDDED_NAME and not Path(source).exists() and _hub_id_problem(source) is None


def public_name(source: str | os.PathLike[str] | None) -> str | None:
    """How records, cards and reports name a checkpoint: never by a local path.

    A Hub id stays as it is, the embedded default is `gardener_hf/default_model`, and a local folder
    is named by its own folder name (a user's home or temp path never reaches anything uploaded).

    Example:
        >>> public_name("MCG-NJU/videomae-base"), public_name("/home/me/runs/keep4")
        ('MCG-NJU/videomae-base', 'keep4')
    """
    if source is None:
        return None
    text = str(source)
    path = Path(text)
    if path.exists():
        if path.resolve() == Path(EMBEDDED_DEFAULT).resolve():
            return EMBEDDED_NAME
        return path.resolve().name or text
    if text == EMBEDDED_NAME or _hub_id_problem(text) is None:
        return text
    return path.name or text


def validate_repo_id(repo_id: str) -> None:
    """Raise `GardenerError` unless `repo_id` is a well-formed `namespace/name` Hub id (a target repo)."""
    problem = _hub_id_problem(repo_id)
    if problem is not None:
        raise GardenerError(f"malformed repo id {repo_id!r}: {problem}")


def validate_model_id(model_id: str) -> None:
    """Raise `GardenerError` unless `model_id` is an existing folder or a well-formed Hub repo id."""
    if is_local(model_id):
        return
    text = str(model_id)
    # A Hub id never starts like a path; "a/b/c" with os.sep inside is a folder that does not exist.
    looks_like_path = text.startswith((".", "/", "~")) or (os.sep in text.strip("/") and text.count("/") > 1)
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    try:
        if looks_like_path:
            raise HFValidationError("not a folder")
        hf_validate(text)  # a bare "name" is a valid (legacy, canonical) model id
    except HFValidationError:
        raise GardenerError(
            f"{model_id!r} is neither an existing folder nor a valid Hub repo id (expected 'namespace/name')"
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# files


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

    offline = not hub_reachable()
    try:
        return Path(hf_hub_download(model_id, filename, revision=revision, token=token, local_files_only=offline))
    except GatedRepoError:
        raise GardenerError(f"{model_id} is gated: accept its terms on the Hub and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise GardenerError(
            f"repo {model_id} not found on the Hub (or it is private: log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise GardenerError(f"revision {revision!r} not found in {model_id}") from None
    except LocalEntryNotFoundError:  # before EntryNotFoundError: in huggingface_hub 2.x it is a subclass of it
        if not required:  # an optional file that cannot be had now (not cached, no network)
            return None
        raise GardenerError(
            f"cannot download {filename} of {model_id}: {hub_unreachable_reason()}, and the file is not in the "
            "local cache. Check the network (or HF_ENDPOINT); with HF_HUB_OFFLINE=1 only the cache is used"
        ) from None
    except EntryNotFoundError:
        if required:
            raise WeightsError(f"{filename} not found in {model_id} at revision {revision or 'main'}") from None
        return None


def offline_kwargs(model_id: str) -> dict[str, Any]:
    """`{"local_files_only": True}` for a Hub id while the Hub cannot be reached: `from_pretrained` then reads
    the cache at once instead of retrying the network for half a minute."""
    return {} if is_local(model_id) or hub_reachable() else {"local_files_only": True}


_REACHABLE: dict[str, str | None] = {}  # endpoint -> why it cannot be reached (None: reachable)


def hub_unreachable_reason() -> str:
    """Why the Hub cannot be reached, in words (after `hub_reachable()` said False)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return f"the Hub at {constants.ENDPOINT} cannot be reached ({_REACHABLE.get(constants.ENDPOINT) or 'no answer'})"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection within `timeout` seconds (checked once per process).

    huggingface_hub retries a dead network for about 25 seconds and then reports a missing file; this
    check takes at most `timeout` and lets callers fall back to the local cache or say the real cause.
    Behind a proxy (HTTPS_PROXY, ...) the check is skipped and the Hub is assumed reachable.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = constants.ENDPOINT
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    if endpoint not in _REACHABLE:
        url = urlparse(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=timeout).close()
            _REACHABLE[endpoint] = None
        except OSError as err:
            _REACHABLE[endpoint] = err.strerror or type(err).__name__
            logger.info("the Hub at %s cannot be reached (%s): using the local cache only", endpoint, _REACHABLE[endpoint])
    return _REACHABLE[endpoint] is None


def read_config(model_id: str, *, revision: str | None = None, token: str | bool | None = None) -> dict[str, Any]:
    """config.json of a checkpoint as a dict (no weights loaded)."""
    path = resolve_file(model_id, CONFIG_FILE, revision=revision, token=token)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"config.json of {model_id} is not valid JSON: {err}") from None


def copy_processor_files(
    model_id: str, output_dir: str | Path, *, revision: str | None = None, token: str | bool | None = None
) -> list[str]:
    """Copy the source's processor configs (if any) into `output_dir`; returns the names copied."""
    validate_model_id(model_id)
    copied = []
    for name in PROCESSOR_FILES:
        path = resolve_file(model_id, name, revision=revision, token=token, required=False)
        if path is not None:
            shutil.copyfile(path, Path(output_dir) / name)
            copied.append(name)
    return copied


# ----------------------------------------------------------------------------------------------------------------
# streaming blocks


@dataclass
class SafetensorsCheckpoint:
    """A checkpoint's scored matrices, located by key, read lazily one block at a time.

    Attributes:
        model_id: where it came from.
        config: the parsed config.json.
        arch: its architecture entry.
        locations: `locations[block][role]` = the `(file path, tensor key)` of each part of that matrix (one
            part, or a gated MLP's gate and up halves, concatenated in that order).
        revision: the revision read: the one asked for, or the Hub's safetensors conversion of it.
    """

    model_id: str
    config: dict[str, Any]
    arch: ArchSpec
    locations: list[dict[str, list[tuple[Path, str]]]]  # block -> role -> the (file, key) of each part
    revision: str | None = None  # the revision the weights were read at (a conversion PR's ref, when used)
    keys: frozenset[str] = frozenset()  # every tensor name in the checkpoint's files

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
                if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                    raise TypeError("weight_map must map tensor names to shard file names")
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
                raise WeightsError(f"{SAFE_INDEX} of {model_id} is corrupt: {err}") from None
            shard_names = sorted(set(weight_map.values()))
        else:
            shard_names = [SAFE_WEIGHTS]
        pattern = arch.key_pattern()
        found: dict[int, dict[str, tuple[Path, str]]] = defaultdict(dict)  # block -> {path in block: (file, key)}
        all_keys: set[str] = set()
        for shard in shard_names:
            path = resolve_file(model_id, shard, revision=revision, token=token, required=False)
            if path is None:
                if index_path is None and resolve_file(
                    model_id, "pytorch_model.bin", revision=revision, token=token, required=False
                ):
                    converted = None if is_local(model_id) else safetensors_conversion(model_id, token=token)
                    if converted is not None:
                        logger.warning("%s has only pickled weights at %s: using the Hub's safetensors conversion %s",
                                       model_id, revision or "main", converted)
                        return cls.open(model_id, revision=converted, token=token)
                    raise WeightsError(_pickle_only_fix(model_id))
                raise WeightsError(f"{shard} not found in {model_id}")
            for key in _safetensors_keys(path):
                all_keys.add(key)
                match = pattern.match(key)
                if match:
                    found[int(match.group(1))][match.group(2)] = (path, key)
        expected = int(config.get("num_hidden_layers", len(found)))
        locations = []
        for block in range(expected):
            present = set(found.get(block, {}))
            spellings = {role: arch.key_spelling(role, present) for role in ROLES}
            missing = [role for role, spelling in spellings.items() if spelling is None]
            if missing:
                raise WeightsError(
                    f"{model_id}: block {block} has no {', '.join(missing)} weight(s) in its safetensors files "
                    f"(config says {expected} blocks); the checkpoint is incomplete or corrupt"
                )
            locations.append({role: [found[block][part] for part in spellings[role]] for role in ROLES})
        extra = sorted(set(found) - set(range(expected)))
        if extra:
            raise WeightsError(
                f"{model_id}: weights for block(s) {extra} exist but config.json says num_hidden_layers={expected}"
            )
        return cls(model_id=model_id, config=config, arch=arch, locations=locations, revision=revision,
                   keys=frozenset(all_keys))

    def iter_blocks(self) -> Iterator[list[torch.Tensor]]:
        """Yield each block's six matrices in `ROLES` order, holding one block at a time."""
        for block, roles in enumerate(self.locations):
            tensors = []
            by_file: dict[Path, list[str]] = defaultdict(list)
            for parts in roles.values():
                for path, key in parts:
                    by_file[path].append(key)
            loaded: dict[str, torch.Tensor] = {}
            for path, keys in by_file.items():
                try:
                    with safe_open(str(path), framework="pt") as handle:
                        for key in keys:
                            loaded[key] = handle.get_tensor(key)
                except (SafetensorError, OSError, RuntimeError) as err:
                    raise WeightsError(f"block {block}: cannot read {path.name}: {err}") from None
            for parts in roles.values():  # a matrix stored in parts (a gated MLP's gate and up) is concatenated
                pieces = [loaded[key] for _, key in parts]
                tensors.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0))
            yield tensors


#: the Hub's bot that converts pickled weights to safetensors in a pull request
CONVERSION_BOT = "SFconvertbot"


def safetensors_conversion(model_id: str, *, token: str | bool | None = None) -> str | None:
    """The ref (`refs/pr/N`) of the Hub's own safetensors conversion of a pickle-only repo, if one is open."""
    if not hub_reachable():
        return None
    from huggingface_hub import HfApi

    try:
        prs = HfApi().get_repo_discussions(model_id, author=CONVERSION_BOT, discussion_type="pull_request",
                                           discussion_status="open", token=token)
        for pr in prs:
            if pr.author == CONVERSION_BOT and "safetensors" in pr.title.lower():
                return f"refs/pr/{pr.num}"
    except Exception as err:  # no answer about PRs: refuse below as if there were none
        logger.info("could not list the pull requests of %s: %s", model_id, str(err).splitlines()[0] if str(err) else err)
    return None


def _pickle_only_fix(model_id: str) -> str:
    why = f"{public_name(model_id)} has only pickled pytorch_model.bin weights; gardener_hf reads safetensors only (pickles can run code)"
    if is_local(model_id):
        return (f"{why}. If you trust the file, convert it once: load it with transformers and save it again with "
                "save_pretrained(folder) (safetensors is the default), then use that folder")
    return (f"{why}, and the Hub has no safetensors conversion of it. Open one with "
            "https://huggingface.co/spaces/safetensors/convert (its pull request is then used automatically), "
            "or pass --revision of a commit that has model.safetensors")


def _safetensors_keys(path: Path) -> list[str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, RuntimeError) as err:
        raise WeightsError(f"{path.name} is not a readable safetensors file: {err}") from None


# ----------------------------------------------------------------------------------------------------------------
# loading models


def model_class_for(config: dict[str, Any], model_class: str | None = None) -> type[nn.Module]:
    """The transformers class to load a checkpoint with: `model_class`, else the one it was saved as.

    Raises:
        UnsupportedModelError: the class is not in the architecture table.
    """
    import transformers

    spec = get_arch(config)
    if model_class is None:
        architectures = config.get("architectures") or []
        if architectures:
            model_class = architectures[0]
        else:
            model_class = next(c for c in spec.classes if c.endswith("Model"))
    if model_class not in spec.classes:
        raise UnsupportedModelError(
            f"model class {model_class} is not supported for model type {spec.model_type!r}; "
            f"supported: {', '.join(spec.classes)}"
        )
    return getattr(transformers, model_class)


def load_model(
    model_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    model_class: str | None = None,
    dtype: str | torch.dtype = "auto",
) -> nn.Module:
    """Load a supported checkpoint from the Hub or a folder, safetensors only, no remote code.

    Args:
        model_id: Hub repo id or local folder.
        revision: Hub revision.
        token: Hub token (None: cached login).
        model_class: transformers class name; default: the class the checkpoint was saved as.
        dtype: `"auto"` keeps the stored precision, so scores match `score_pretrained`.

    Returns:
        The model, in eval mode.

    Raises:
        GardenerError: bad id, unsupported model, missing or unreadable weights.
    """
    config = read_config(model_id, revision=revision, token=token)
    cls = model_class_for(config, model_class)
    # Locate the weights first so a missing/pickle-only checkpoint gets our message, not a traceback;
    # a pickle-only Hub repo with a conversion pull request is read at that pull request's ref.
    ckpt = SafetensorsCheckpoint.open(model_id, revision=revision, token=token)
    revision = ckpt.revision
    try:
        model, info = cls.from_pretrained(
            model_id, revision=revision, token=token, use_safetensors=True, dtype=dtype, output_loading_info=True,
            **offline_kwargs(model_id), **_optional_parts(cls, config, ckpt.keys),
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise GardenerError(f"could not load {model_id}: {str(err).splitlines()[0]}") from None
    if info.get("missing_keys"):
        logger.warning("%s: weights not in the checkpoint were initialised: %s", model_id, sorted(info["missing_keys"]))
    model.eval()
    return model


def _optional_parts(cls: type[nn.Module], config: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """Constructor switches for optional parts the checkpoint has no weights for.

    A `ViTModel` (or `DeiTModel`, `BeitModel`, ...) loaded from a checkpoint without a pooler would
    otherwise build one at random, and `save_pretrained` would write those random weights into the
    pruned repo as if they were the source's. A pooler without weights of its own (BEiT's, without mean
    pooling) is kept: it changes the outputs, not the files.
    """
    import inspect

    if "add_pooling_layer" not in inspect.signature(cls.__init__).parameters:
        return {}
    if any(k.split(".")[0] == "pooler" or ".pooler." in f".{k}" for k in keys):
        return {}
    from transformers import AutoConfig

    data = {k: v for k, v in config.items() if k != "model_type"}
    try:
        with torch.device("meta"):
            twin = cls(AutoConfig.for_model(config["model_type"], **data))
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as err:  # from_pretrained says why
        logger.debug("could not build %s on the meta device: %s", cls.__name__, err)
        return {"add_pooling_layer": False}
    pooler_params = [n for n, _ in twin.named_parameters() if n.split(".")[0] == "pooler" or ".pooler." in f".{n}"]
    return {"add_pooling_layer": False} if pooler_params else {}


def require_finite(model: nn.Module, model_id: str) -> None:
    """Refuse a model with NaN or infinite weights: training or evaluating it would only give garbage.

    Raises:
        WeightsError: naming how many tensors are affected and the first of them.
    """
    bad = [name for name, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise WeightsError(
            f"{public_name(model_id)} has non-finite weights (NaN or inf) in {len(bad)} tensor(s), e.g. {bad[0]}; "
            "the checkpoint is corrupt or diverged: use another checkpoint or revision"
        )


def require_videomae(model_id: str, config_dict: dict[str, Any]) -> None:
    """Refuse a checkpoint that is not a VideoMAE (finetuning and evaluation support VideoMAE only)."""
    if config_dict.get("model_type") != "videomae":
        raise GardenerError(f"{model_id} is a {config_dict.get('model_type')!r} model; finetuning supports VideoMAE checkpoints")


def load_classifier(
    model_id: str,
    labels: Sequence[str],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    mean_pooling: bool = True,
) -> nn.Module:
    """A `VideoMAEForVideoClassification` with a new head for `labels`.

    Works from any VideoMAE checkpoint: a pretraining one (decoder weights are not loaded), a bare
    encoder, or a classifier (its head is replaced when the labels differ). With `mean_pooling` the
    classifier reads the mean of all tokens through a freshly initialised `fc_norm`, as VideoMAE's
    own finetuning does; the pretraining checkpoints on the Hub were converted with
    `use_mean_pooling=False`, whose first-token readout has no class token behind it.

    Raises:
        GardenerError: not a VideoMAE checkpoint, or unloadable.
    """
    import transformers
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    config_dict = read_config(model_id, revision=revision, token=token)
    require_videomae(model_id, config_dict)
    revision = SafetensorsCheckpoint.open(model_id, revision=revision, token=token).revision  # pickle-only: see open()
    id2label = dict(enumerate(labels))
    overrides: dict[str, Any] = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}
    if mean_pooling:
        overrides["use_mean_pooling"] = True
    config = VideoMAEConfig.from_dict(config_dict, **overrides)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # we report what is new in one line below
    try:
        model, info = VideoMAEForVideoClassification.from_pretrained(
            model_id,
            config=config,
            revision=revision,
            token=token,
            use_safetensors=True,
            dtype=torch.float32,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **offline_kwargs(model_id),
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise GardenerError(f"could not load {model_id}: {str(err).splitlines()[0]}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    new = sorted({k.split(".")[0] for k in info.get("missing_keys", [])} | {k[0].split(".")[0] for k in info.get("mismatched_keys", [])})
    if new:  # nothing is new when the checkpoint already has this head
        logger.info("new, randomly initialised: %s (%d labels)", ", ".join(new), len(labels))
    encoder_missing = [k for k in info.get("missing_keys", []) if k.startswith("videomae.encoder")]
    if encoder_missing:
        raise GardenerError(f"{model_id}: encoder weights missing from the checkpoint: {encoder_missing[:3]}")
    return model


def load_processor(model_id: str, config: Any, *, revision: str | None = None, token: str | bool | None = None):
    """The checkpoint's VideoMAE image processor; VideoMAE's defaults at the model's size when it has none."""
    from transformers import VideoMAEImageProcessor

    if resolve_file(model_id, PROCESSOR_FILES[0], revision=revision, token=token, required=False):
        processor = VideoMAEImageProcessor.from_pretrained(model_id, revision=revision, token=token, **offline_kwargs(model_id))
    else:
        logger.warning("%s has no preprocessor_config.json: using VideoMAE's defaults at %dpx", model_id, config.image_size)
        processor = VideoMAEImageProcessor(
            size={"shortest_edge": config.image_size}, crop_size={"height": config.image_size, "width": config.image_size}
        )
    crop = processor.crop_size
    height, width = crop.get("height"), crop.get("width")
    if (height, width) != (config.image_size, config.image_size):
        raise GardenerError(
            f"{model_id}: the processor crops frames to {height}x{width} but the model takes "
            f"{config.image_size}x{config.image_size}; fix crop_size in preprocessor_config.json"
        )
    return processor
