"""Exceptions raised by gardener_hf.

Every error a user can cause derives from `GardenerError`, so the command line can print one clear
line for it instead of a traceback.
"""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def is_network_error(err: BaseException) -> bool:
    """Whether `err` comes from the network layer (httpx, requests, a refused or timed-out connection)."""
    module = type(err).__module__.split(".")[0]
    return module in ("httpx", "httpcore", "httpx2", "requests", "urllib3") or isinstance(err, (ConnectionError, TimeoutError))


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
