"""Exact histograms of float16 bit codes, within a few times the cost of reading the weights once.

Gardener's `entropy` criterion casts every weight of a block to float16 and counts how often each
float16 value occurs. Materialising the cast (`x.half()`) and counting the codes with
`torch.bincount` writes and re-reads several copies of every weight; this module counts the codes
in a single pass instead.

Two backends compute the same counts, bit for bit:

* `"numba"`: a `nogil` kernel converts four float32 values at a time with LLVM's IEEE
  float32 -> float16 conversion (one F16C `vcvtps2ph` instruction on x86-64, as torch's own cast)
  and increments a 65536-entry uint32 histogram indexed directly by the code. Large inputs are cut
  into chunks that a few threads claim one at a time, each thread counting into its own histogram;
  the histograms are summed at the end. Used when numba is importable and the compiled kernels
  pass a self-check against torch on first use.
* `"torch"`: `x.half().view(torch.int16)` then `torch.bincount`; the reference, and the fallback.

`BACKEND` names the active one. The numba kernels are compiled with `cache=True` (into
`__pycache__`, or numba's user cache directory where that is read-only; without a cache if neither
works). The first call in a process pays for importing numba and starting its JIT: about 0.5 s
with a warm cache, about 1 s when the kernels must be compiled (measured on a 2-core AMD EPYC VM).
Scoring one VideoMAE-B encoder (85M float32 weights) then takes about 0.03 s there, 2-3x the time
of summing the weights once, against 0.14 s for the torch backend
(`benchmarks/scoring_speed.py`).

Example:
    >>> import torch
    >>> counts = f16_code_counts([torch.tensor([1.0, 1.0, -0.0, 2.0])])
    >>> int(counts[0x3C00]), int(counts[0x8000]), int(counts[0x4000])
    (2, 1, 1)
    >>> round(entropy_from_counts(counts), 6)
    1.039721
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = ["BACKEND", "NUM_CODES", "NUM_THREADS", "entropy_from_counts", "f16_code_counts"]

NUM_CODES = 1 << 16
"""Number of float16 bit patterns, i.e. the length of a count vector."""

BACKEND: str = "numba" if importlib.util.find_spec("numba") is not None else "torch"
"""Active backend, `"numba"` or `"torch"`. Decided from whether numba is installed; it drops to
`"torch"` (with a warning) if numba fails to import or its kernel fails the first-use self-check.
Set `GARDENER_F16HIST_BACKEND=torch` to force the fallback. Assigning the attribute switches
backends at run time (the tests do)."""
if os.environ.get("GARDENER_F16HIST_BACKEND", "").strip().lower() == "torch":
    BACKEND = "torch"


def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    # Capped: each extra thread adds a histogram to zero and merge, and a few cores already draw
    # most of the memory bandwidth (only 1-2 threads have been measured).
    return max(1, min(n, 8))


NUM_THREADS: int = _default_threads()
"""Default number of threads for large inputs (CPUs available to the process, at most 8)."""

# Work is cut into chunks of about this many elements (2 MiB of float32, ~0.3 ms of counting),
# which the threads claim one at a time: a thread that starts late (woken slowly, or sharing its
# core with another library's spinning worker) simply claims fewer chunks instead of holding
# everyone up, as a static even split would.
_CHUNK = 1 << 19
# Below this many elements a call stays on the calling thread: handing work to another thread
# costs tens of microseconds, counting a million elements about half a millisecond.
_MIN_SPLIT = 1 << 20
# Per-thread histograms are uint32 (half the cache footprint of int64, measurably faster); they
# are flushed into int64 before they could overflow.
_U32_LIMIT = (1 << 32) - 1


# ----------------------------------------------------------------------------------------------
# Torch backend (reference and fallback)
# ----------------------------------------------------------------------------------------------


def _torch_counts(x: torch.Tensor) -> torch.Tensor:
    """Counts of `x.to(float16)` codes as an int64 tensor of length 65536 (on `x.device`)."""
    x = x.detach().reshape(-1)
    if x.dtype != torch.float16:
        x = x.to(torch.float16)
    # int16 -> int32 sign-extends; the mask turns the signed view back into the unsigned code.
    codes = x.view(torch.int16).to(torch.int32) & 0xFFFF
    return torch.bincount(codes, minlength=NUM_CODES)


# ----------------------------------------------------------------------------------------------
# Numba backend
# ----------------------------------------------------------------------------------------------

_kernels: dict[str, Any] | None = None
_kernels_lock = threading.Lock()
# The conversion intrinsics, set by `_build_kernels`. They are module globals rather than closure
# variables of the kernels on purpose: numba keys its on-disk cache on the pickled closure
# variables, which for intrinsic objects differ between processes, so closures would recompile
# (about a second) in every new process instead of loading from the cache.
_nb_f16_codes_x4: Any = None
_nb_f16_code: Any = None


def _build_kernels(cache: bool = True) -> dict[str, Any]:
    """Import numba and define the kernels (compiled on first call, cached on disk if `cache`)."""
    global _nb_f16_codes_x4, _nb_f16_code
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    def f16_codes_x4(typingctx, arr, idx):
        """The float16 codes of `arr[idx:idx+4]` packed into one uint64 (lowest index lowest).

        `fptrunc float -> half` is LLVM's IEEE round-to-nearest-even conversion. On x86-64 with
        F16C a 4-wide one is a single `vcvtps2ph` instruction, the same one torch's vectorised
        `.half()` uses, so subnormals, +-0, overflow to inf and NaN payloads (quietened,
        truncated) come out exactly as torch's (checked against torch on all 2**32 float32 bit
        patterns).

        It replaces an integer emulation of the cast on the float32 bits `b` (sign dropped):
        `((b - 0x38000000) + 0xFFF + ((b >> 13) & 1)) >> 13` rebiases the exponent (127 -> 15) and
        rounds the 23-bit mantissa to 10 bits, half to even (adding 0xFFF plus the lowest kept bit
        carries exactly when the dropped 13 bits exceed one half, or equal it with an odd kept
        part; a carry out of the mantissa correctly bumps the exponent). That formula is only
        valid in the float16 normal range, so it needs a range test per element and a slow path
        for subnormals, overflow and NaN. The hardware conversion needs neither: no branch, one
        instruction for four values. Bitcasting the four 16-bit codes to one 64-bit integer moves them to a general
        register with a single `vmovq` instead of one `vpextrw` each (about 20% faster per element).
        On targets without a native conversion LLVM may call a runtime helper instead; if that is
        missing or disagrees with torch, the first-use self-check falls back to torch.
        """
        if not (
            isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 1 and arr.layout == "C"
        ) or not isinstance(idx, types.Integer):
            return None
        sig = types.uint64(arr, idx)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, value=args[0])
            ptr = builder.gep(ary.data, [args[1]])
            vec_t = ir.VectorType(ir.FloatType(), 4)
            vec = builder.load(builder.bitcast(ptr, vec_t.as_pointer()), align=4, typ=vec_t)
            half = builder.fptrunc(vec, ir.VectorType(ir.HalfType(), 4))
            return builder.bitcast(half, ir.IntType(64))

        return sig, codegen

    def f16_code(typingctx, x):
        """The float16 code of one float32 (same conversion as `f16_codes_x4`), for the tail."""
        if x != types.float32:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

        return types.uint16(x), codegen

    _nb_f16_codes_x4 = intrinsic(f16_codes_x4)
    _nb_f16_code = intrinsic(f16_code)

    @njit(nogil=True, cache=cache, boundscheck=False)
    def count_f32(x, hist):
        # A single histogram indexed directly by the code. Interleaved sub-histograms (to break
        # store-to-load chains on repeated codes) measured slower on random weights and no faster
        # on all-zero input: doubling the footprint costs more L1 misses than the repeats do.
        # uint32 beats int64 for the same reason.
        n = x.shape[0]
        n4 = n - (n & 3)
        for i in range(0, n4, 4):
            w = _nb_f16_codes_x4(x, i)
            hist[w & 0xFFFF] += 1
            hist[(w >> 16) & 0xFFFF] += 1
            hist[(w >> 32) & 0xFFFF] += 1
            hist[w >> 48] += 1
        for i in range(n4, n):
            hist[_nb_f16_code(x[i])] += 1

    @njit(nogil=True, cache=cache, boundscheck=False)
    def count_u16(x, hist):
        for i in range(x.shape[0]):
            hist[x[i]] += 1

    @njit(nogil=True, cache=cache, boundscheck=False)
    def merge(hists, out):
        # out += hists.sum(0) and zero hists for the next call, one vectorised pass per row, with
        # none of numpy's uint64 temporaries.
        for k in range(hists.shape[0]):
            h = hists[k]
            for i in range(h.shape[0]):
                out[i] += h[i]
                h[i] = 0

    return {"f32": count_f32, "u16": count_u16, "merge": merge}


# Values whose conversion exercises every branch of float32 -> float16 rounding; the first use of
# the numba backend checks its kernel on them (and on random data) against torch.
_SELF_CHECK_BITS = np.array(
    [
        0x00000000, 0x80000000, 0x00000001, 0x33000000, 0x33000001, 0x337FFFFF, 0x33800000,
        0x33C00000, 0x34200000, 0x387FC000, 0x387FE000, 0x387FF000, 0x38800000, 0x38801000,
        0x38802000, 0x3F800000, 0x3F801000, 0x3F803000, 0x477FE000, 0x477FEFFF, 0x477FF000,
        0x47800000, 0x49742400, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
        0x7F800001, 0x7FFFFFFF, 0xC0200000, 0xB8800000,
    ],
    dtype=np.uint32,
)  # fmt: skip


def _self_check(kernels: dict[str, Any]) -> None:
    """Compile the kernels (or load them from the cache) and compare them with torch."""
    gen = torch.Generator().manual_seed(0)
    sample = torch.cat(
        [
            torch.from_numpy(_SELF_CHECK_BITS.view(np.float32)),
            (torch.rand(4099, generator=gen) - 0.5)
            * torch.exp2(torch.randint(-30, 18, (4099,), generator=gen).float()),
        ]
    )
    hists = np.zeros((2, NUM_CODES), np.uint32)
    kernels["f32"](sample.numpy(), hists[0])
    kernels["u16"](sample.half().view(torch.int16).numpy().view(np.uint16), hists[1])
    got = np.zeros(NUM_CODES, np.int64)
    kernels["merge"](hists, got)
    if not np.array_equal(got, 2 * _torch_counts(sample).numpy()) or hists.any():
        raise RuntimeError("numba float16 kernel disagrees with torch")


def _get_kernels() -> dict[str, Any] | None:
    """Compiled, self-checked numba kernels, or None (and BACKEND = "torch") if unusable."""
    global _kernels, BACKEND
    if _kernels is not None:
        return _kernels
    with _kernels_lock:
        if _kernels is not None:
            return _kernels
        error: Exception | None = None
        for cache in (True, False):  # without the on-disk cache if it cannot be used
            try:
                kernels = _build_kernels(cache)
                _self_check(kernels)
            except Exception as exc:
                error = exc
                continue
            _kernels = kernels
            return kernels
        warnings.warn(
            f"gardener_hf: numba float16 histogram unavailable ({error!r}); using the slower torch backend",
            RuntimeWarning,
            stacklevel=3,
        )
        BACKEND = "torch"
        return None


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
# Reused per-thread histograms (256 KiB each), so a call neither allocates nor zeroes them up front.
# Guarded by `_bufs_lock`; concurrent callers that find it taken use private buffers instead of
# waiting.
_bufs = np.zeros((0, NUM_CODES), np.uint32)
_bufs_lock = threading.Lock()


def _reset_after_fork() -> None:
    # A forked child inherits the pool object but not its threads: work submitted to it would wait
    # forever. Start afresh (locks too, in case another thread held one at the fork).
    global _pool, _pool_size, _pool_lock, _bufs_lock, _kernels_lock
    _pool, _pool_size = None, 0
    _pool_lock, _bufs_lock, _kernels_lock = threading.Lock(), threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gardener-f16hist")
            _pool_size = workers
        return _pool


def _chunks(segments: list[tuple[str, np.ndarray]], size: int) -> list[tuple[str, np.ndarray]]:
    """Cut every segment into views of at most `size` elements (the last piece of each shorter)."""
    out = []
    for kind, arr in segments:
        n = arr.shape[0]
        pieces = max(1, -(-n // size))
        for k in range(pieces):  # near-equal pieces, so no tiny leftover chunk
            out.append((kind, arr[n * k // pieces : n * (k + 1) // pieces]))
    return out


def _drain(
    kernels: dict[str, Any], chunks: list[tuple[str, np.ndarray]], claim: Iterator[int], hist: np.ndarray
) -> np.ndarray | None:
    """Count chunks claimed from `claim` into the zeroed uint32 `hist` until none are left.

    Returns the int64 counts spilled out of `hist` to keep it from overflowing, or None.
    """
    spill = None
    filled = 0
    for i in claim:  # next() on itertools.count is atomic under the GIL: each chunk is claimed once
        if i >= len(chunks):
            break
        kind, arr = chunks[i]
        if filled + arr.shape[0] > _U32_LIMIT:
            spill = hist.astype(np.int64) if spill is None else spill + hist
            hist.fill(0)
            filled = 0
        kernels[kind](arr, hist)
        filled += arr.shape[0]
    return spill


def _numba_counts(
    kernels: dict[str, Any], segments: list[tuple[str, np.ndarray]], out: np.ndarray, threads: int
) -> None:
    total = sum(a.shape[0] for _, a in segments)
    parts = max(1, min(threads, total // _MIN_SPLIT))
    # A chunk bigger than _U32_LIMIT could overflow a histogram on its own.
    chunks = _chunks(segments, _CHUNK if parts > 1 else _U32_LIMIT)
    parts = min(parts, len(chunks))
    claim = itertools.count()
    global _bufs
    # Per-thread histograms stay allocated and zeroed between calls (merge() re-zeroes them).
    owned = _bufs_lock.acquire(blocking=False)
    try:
        if owned:
            if _bufs.shape[0] < parts:
                _bufs = np.zeros((parts, NUM_CODES), np.uint32)
            hists = _bufs[:parts]
        else:
            hists = np.zeros((parts, NUM_CODES), np.uint32)
        if parts == 1:
            spills = [_drain(kernels, chunks, claim, hists[0])]
        else:
            # The calling thread counts too; the kernels release the GIL, so all run in parallel.
            pool = _get_pool(parts - 1)
            futures = [pool.submit(_drain, kernels, chunks, claim, hists[k]) for k in range(1, parts)]
            spills = [_drain(kernels, chunks, claim, hists[0])] + [f.result() for f in futures]
        kernels["merge"](hists, out)
        for spill in spills:
            if spill is not None:
                out += spill
    except BaseException:
        if owned:  # a worker may still be writing into the old buffers: abandon them
            _bufs = np.zeros((0, NUM_CODES), np.uint32)
        raise
    finally:
        if owned:
            _bufs_lock.release()


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def f16_code_counts(
    arrays: Iterable[torch.Tensor], out: np.ndarray | None = None, *, threads: int | None = None
) -> np.ndarray:
    """Count the float16 bit codes of every element of `arrays`.

    Entry `c` of the result is the number of elements `x` whose float16 cast has bit pattern `c`,
    i.e. `x.to(torch.float16).view(torch.int16) & 0xFFFF == c`: IEEE round-to-nearest-even,
    subnormals included, +0.0 (code 0x0000) and -0.0 (0x8000) distinct, finite values beyond
    +-65519.99.. counted as +-inf (0x7C00 / 0xFC00), NaNs under their quietened, truncated payload
    (the standard NaN is 0x7E00) exactly as torch casts them. The counts are exact and
    deterministic; they do not depend on the backend or the number of threads.

    Args:
        arrays: tensors of any shape, contiguous or not. float32, float16 and bfloat16 CPU tensors
            take the fast path (bfloat16 is upcast to float32 first, which is exact); any other
            dtype or device is counted with torch. numpy arrays are accepted too.
        out: optional int64 array of length 65536; the counts are added into it and it is returned.
        threads: threads to split large inputs across (default `NUM_THREADS`); inputs under about a
            million elements always run on the calling thread.

    Returns:
        int64 array of length 65536.

    Raises:
        ValueError: if `out` is not a writable int64 array of shape (65536,).
    """
    if out is None:
        out = np.zeros(NUM_CODES, np.int64)
    elif not (
        isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (NUM_CODES,) and out.flags.writeable
    ):
        raise ValueError(f"out must be a writable int64 numpy array of shape ({NUM_CODES},)")

    kernels = _get_kernels() if BACKEND == "numba" else None
    segments: list[tuple[str, np.ndarray]] = []
    for a in arrays:
        x = torch.as_tensor(a).detach()
        if x.numel() == 0:
            continue
        if kernels is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            out += _torch_counts(x).cpu().numpy()
            continue
        if x.dtype == torch.bfloat16:
            x = x.float()  # bfloat16 is a truncated float32: the upcast is exact
        x = x.contiguous().reshape(-1)
        if x.dtype == torch.float32:
            segments.append(("f32", x.numpy()))
        else:
            segments.append(("u16", x.view(torch.int16).numpy().view(np.uint16)))
    if segments:
        _numba_counts(kernels, segments, out, NUM_THREADS if threads is None else max(1, int(threads)))
    return out


_XLOGX: np.ndarray | None = None  # _XLOGX[k] = k * ln(k), built on first use


def _xlogx_table() -> np.ndarray:
    global _XLOGX
    if _XLOGX is None:
        k = np.arange(NUM_CODES, dtype=np.float64)
        k[0] = 1.0  # 0 * ln 0 = 0
        _XLOGX = k * np.log(k)
    return _XLOGX


def entropy_from_counts(counts: Any) -> float:
    """Shannon entropy, in nats, of the distribution given by `counts`.

    `H = -sum(p * ln p)` over the nonzero entries with `p = counts / N`, `N = counts.sum()`,
    evaluated in float64 as `ln N - sum(c * ln c) / N` (absolute error about 1e-15 nats).

    Args:
        counts: non-negative counts (any numeric array-like or tensor, any shape).

    Returns:
        The entropy; 0.0 when at most one entry is nonzero.

    Raises:
        ValueError: if a count is negative or not finite, or all counts are zero.

    Example:
        >>> round(entropy_from_counts([5, 5, 0, 5, 5, 5, 5, 5, 5]), 12) == round(float(np.log(8)), 12)
        True
    """
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    c = np.asarray(counts).reshape(-1)
    integer = c.dtype.kind in "iu"
    if not integer:
        c = c.astype(np.float64, copy=False)
        if not np.isfinite(c).all():
            raise ValueError("counts must be finite and non-negative")
    if c.size and c.min() < 0:
        raise ValueError("counts must be finite and non-negative")
    # Drop the empty bins first: a float16 code histogram is mostly empty.
    c = c[c > 0]
    if c.size == 0:
        raise ValueError("counts are all zero: the entropy of an empty distribution is undefined")
    if c.size == 1:
        return 0.0
    n = float(c.sum())
    if integer and c.max() < NUM_CODES:
        # Integer counts below 65536 (all of them, on weight histograms): c * ln c by table lookup,
        # 2-3x faster than evaluating the logarithms.
        s = float(_xlogx_table()[c].sum())
    else:
        f = c.astype(np.float64)
        s = float((f * np.log(f)).sum())
    return max(0.0, math.log(n) - s / n)  # the clamp only absorbs rounding
