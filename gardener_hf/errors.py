"""Exceptions raised by gardener_hf.

Every error a user can cause derives from `GardenerError`, so the command line can print one clear
line for it instead of a traceback.
"""


class GardenerError(Exception):
    """Base class for errors caused by bad input (arguments, models, weights, repo ids)."""


class UnsupportedModelError(GardenerError):
    """The model type or class has no entry in the architecture table."""


class WeightsError(GardenerError):
    """Weights are missing, corrupt, or not finite."""


class PlanError(GardenerError):
    """The requested pruning (keep / remove / ratio) does not fit the model."""


class DataError(GardenerError):
    """A dataset is empty, malformed, or holds a video that cannot be read (in strict mode)."""
