"""float16 code histograms: bit-exact against torch's cast on both backends, and the entropy."""

from __future__ import annotations

import math
import platform
import threading

import numpy as np
import pytest
import torch

from gardener_hf import _f16hist as F
from gardener_hf._f16hist import NUM_CODES, entropy_from_counts, f16_code_counts


def reference(tensors) -> np.ndarray:
    """The definition: cast with torch, reinterpret as unsigned 16-bit codes, count."""
    out = np.zeros(NUM_CODES, np.int64)
    for x in tensors:
        codes = x.detach().reshape(-1).to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF
        out += torch.bincount(codes, minlength=NUM_CODES).numpy()
    return out


def from_bits(bits) -> torch.Tensor:
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32).copy())


EDGES = torch.tensor(
    [
        0.0, -0.0, 1e-8, -1e-8, 2**-25, -(2**-25), 2**-25 * (1 + 2**-20), 2**-24, 2**-24 * 1.5,
        2**-24 * 2.5, 2**-24 * 3.5, 5.96e-8, 8.9e-8, 3e-41, -3e-41, 6e-5, 6.1e-5, -6.1e-5,
        2**-14 * (1 - 2**-11), 2**-14 * (1 - 2**-12), -(2**-14) * (1 - 2**-12), 2**-14 * (1 - 2**-13),
        2**-14, 2**-14 * (1 + 2**-11), 2**-14 * (1 + 2**-12), 1.0, 1 + 2**-11, 1 + 3 * 2**-11, -2.5,
        65504.0, 65519.0, 65519.996, 65520.0, -65520.0, 1e6, -1e6, 3.4e38, float("inf"), -float("inf"),
        float("nan"), -float("nan"),
    ],
    dtype=torch.float32,
)  # fmt: skip
# NaNs with payloads: torch's vectorised cast (F16C on x86-64) keeps the sign, sets the quiet bit and
# truncates the payload; a scalar software cast would give 0x7E00 / 0xFE00 for all of them.
PAYLOAD_NANS = [0x7F800001, 0x7FFFFFFF, 0xFFFFE000, 0x7FA00000, 0x7FBFFFFF, 0xFF802000]


def wide(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g) - 0.5) * torch.exp2(torch.randint(-30, 18, (n,), generator=g).float())


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.02


@pytest.fixture(params=["numba", "torch"])
def backend(request, monkeypatch):
    if request.param == "numba" and (F.BACKEND != "numba" or F._get_kernels() is None):
        pytest.skip("numba backend not available")
    monkeypatch.setattr(F, "BACKEND", request.param)
    return request.param


def test_randn_wide_and_edges_exact(backend):
    inputs = [randn(301, 97), wide(40_003), EDGES, from_bits(PAYLOAD_NANS)]
    for x in inputs:
        assert np.array_equal(f16_code_counts([x]), reference([x]))
    assert np.array_equal(f16_code_counts(inputs), reference(inputs))


def test_bit_patterns_sample_exact(backend):
    # Every 4099th float32 bit pattern (about a million values): all exponents, both signs, NaNs.
    x = from_bits(np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32))
    assert np.array_equal(f16_code_counts([x]), reference([x]))


def test_edge_codes_spelled_out(backend):
    # Ties round to even: 2**-25 (between codes 0 and 1) -> 0, 1.5 * 2**-24 -> 2, 2.5 * 2**-24 -> 2,
    # 2**-14 - 2**-25 (between the largest subnormal 0x3FF and 2**-14) -> 0x400.
    expected = [  # a list, not a dict: 0.0 and -0.0 are equal keys
        (0.0, 0x0000), (-0.0, 0x8000), (2**-25, 0x0000), (-(2**-25), 0x8000), (2**-24 * 1.5, 0x0002),
        (2**-24 * 2.5, 0x0002), (2**-14 * (1 - 2**-10), 0x03FF), (2**-14 * (1 - 2**-11), 0x0400),
        (2**-14 * (1 - 2**-12), 0x0400),
        (65504.0, 0x7BFF), (65519.0, 0x7BFF), (65520.0, 0x7C00), (-1e6, 0xFC00), (float("inf"), 0x7C00),
        (float("nan"), 0x7E00),
    ]  # fmt: skip
    for value, code in expected:
        counts = f16_code_counts([torch.tensor([value] * 5, dtype=torch.float32)])
        assert counts[code] == 5 and counts.sum() == 5, (value, hex(code))
    for bits in PAYLOAD_NANS:
        x = from_bits([bits] * 3)
        torch_code = int(x.half().view(torch.int16)[0]) & 0xFFFF
        assert f16_code_counts([x])[torch_code] == 3, hex(bits)
        if platform.machine().lower() in ("x86_64", "amd64"):
            assert torch_code == ((bits >> 16) & 0x8000) | 0x7E00 | ((bits >> 13) & 0x3FF), hex(bits)


def test_half_bfloat16_float64_and_layouts(backend):
    base = torch.cat([wide(5_001), EDGES])
    half = base.half()
    bf16 = base.bfloat16()
    m = randn(64, 48)
    tensors = [
        half, bf16, base.double(),
        m.t(), m[:, ::3], m[::2], randn(4, 5, 6).permute(2, 0, 1), half[1::2], bf16.reshape(-1, 2).t(),
        torch.zeros(0), torch.tensor(1.5), randn(7, 7).requires_grad_(),
    ]  # fmt: skip
    assert not m.t().is_contiguous()
    for x in tensors:
        assert np.array_equal(f16_code_counts([x]), reference([x])), (x.dtype, tuple(x.shape))
    assert np.array_equal(f16_code_counts(tensors), reference(tensors))
    assert np.array_equal(f16_code_counts([m.numpy()]), reference([m]))  # numpy input


def test_threaded_chunks_and_overflow_spill(backend, monkeypatch):
    # Shrink the limits so that tiny inputs take every path: many chunks claimed by several
    # threads, uint32 histograms spilled into int64 early.
    monkeypatch.setattr(F, "_MIN_SPLIT", 100)
    monkeypatch.setattr(F, "_CHUNK", 257)
    monkeypatch.setattr(F, "_U32_LIMIT", 1000)
    tensors = [randn(33, 31), wide(2_999).half(), EDGES, randn(10, 1).t(), wide(4_000, seed=1).bfloat16()]
    expected = reference(tensors)
    for threads in (1, 2, 3, 7):
        assert np.array_equal(f16_code_counts(tensors, threads=threads), expected), threads


def test_chunks_cover_everything_once():
    segments = [("f32", np.arange(n, dtype=np.float32)) for n in (5, 0, 17, 1, 40)]
    for size in (1, 2, 7, 100):
        chunks = F._chunks(segments, size)
        assert all(0 < a.size <= size for _, a in chunks if a.size) and len(chunks) >= len(segments)
        flat = np.concatenate([a for _, a in chunks])
        assert np.array_equal(flat, np.concatenate([a for _, a in segments]))


def test_out_accumulates_and_is_validated(backend):
    x, y = randn(50, 50), wide(999)
    out = f16_code_counts([x])
    assert f16_code_counts([y], out=out) is out
    assert np.array_equal(out, reference([x, y]))
    with pytest.raises(ValueError, match="int64"):
        f16_code_counts([x], out=np.zeros(NUM_CODES, np.int32))
    with pytest.raises(ValueError, match="int64"):
        f16_code_counts([x], out=np.zeros(10, np.int64))


def test_concurrent_callers(backend, monkeypatch):
    monkeypatch.setattr(F, "_MIN_SPLIT", 1000)
    inputs = [[randn(100, 90, seed=s), wide(3_000, seed=s)] for s in range(6)]
    expected = [reference(t) for t in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = f16_code_counts(inputs[i], threads=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(results[i], expected[i]) for i in range(len(inputs)))


def test_falls_back_to_torch_when_numba_kernel_unusable(monkeypatch):
    def broken(*args):
        raise RuntimeError("no kernel here")

    monkeypatch.setattr(F, "_build_kernels", broken)
    monkeypatch.setattr(F, "_kernels", None)
    monkeypatch.setattr(F, "BACKEND", "numba")
    x = wide(1_000)
    with pytest.warns(RuntimeWarning, match="torch backend"):
        counts = f16_code_counts([x])
    assert F.BACKEND == "torch"
    assert np.array_equal(counts, reference([x]))


def test_entropy_from_counts():
    assert entropy_from_counts([3] * 8 + [0] * 100) == pytest.approx(math.log(8), abs=1e-15)
    assert entropy_from_counts(np.array([0, 7, 0])) == 0.0
    assert entropy_from_counts(torch.tensor([1.0, 1.0, 2.0])) == pytest.approx(1.5 * math.log(2), abs=1e-15)
    counts = np.zeros(NUM_CODES, np.int64)
    counts[[1, 5, 0x8000]] = [1, 2, 1]
    assert entropy_from_counts(counts) == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), abs=1e-15)
    # Counts beyond the x*ln(x) lookup table, mixed with small ones; float and integer paths agree.
    big = np.array([3, 70_000, 0, 1, 2**40, 65_535, 65_536], np.int64)
    p = big[big > 0] / big.sum()
    assert entropy_from_counts(big) == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-14)
    assert entropy_from_counts(big) == pytest.approx(entropy_from_counts(big.astype(np.float64)), abs=1e-14)
    for bad in ([1, -1], [0, 0], [1.0, float("nan")], []):
        with pytest.raises(ValueError):
            entropy_from_counts(bad)


def test_entropy_deterministic_and_backend_independent(monkeypatch):
    mats = [randn(128, 96, seed=3), randn(96, 384, seed=4)]
    h = entropy_from_counts(f16_code_counts(mats))
    monkeypatch.setattr(F, "BACKEND", "torch")
    assert entropy_from_counts(f16_code_counts(mats)) == h
    values = torch.cat([m.reshape(-1) for m in mats]).half().view(torch.int16).numpy()
    _, c = np.unique(values, return_counts=True)
    p = c / c.sum()
    assert h == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)
