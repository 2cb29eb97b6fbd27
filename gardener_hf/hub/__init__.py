"""Publishing pruned variants: model cards, atomic staging, one-commit pushes, and the whole flow.

Modules: `cards` (`GardenerModelCard`, `build_card`), `push` (staging a variant folder, pushing it
in one commit), `publish` (`prune_and_publish`: what `gardener push` does, as one Python call).
"""

from ..checkpoint import validate_repo_id
from .cards import GardenerModelCard, build_card, source_license
from .publish import PublishedVariant, default_command, prune_and_publish
from .push import DEFAULT_REPO_TEMPLATE, StagedVariant, format_repo_id, hub_namespace, push_variant, stage_variant

__all__ = [
    "DEFAULT_REPO_TEMPLATE",
    "GardenerModelCard",
    "PublishedVariant",
    "StagedVariant",
    "build_card",
    "default_command",
    "format_repo_id",
    "hub_namespace",
    "prune_and_publish",
    "push_variant",
    "source_license",
    "stage_variant",
    "validate_repo_id",
]
