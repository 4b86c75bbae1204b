"""One seed of online SGD on plain arrays (docs/theory.md §1): the driver behind `simulate`.

`run_seed` takes a `Setup`, the record steps and a seed and returns plain arrays; `SGDRun`
holds the weights of one run in the layout of its numba kernel (`scalex.engines.sgd_kernel`:
(K, N) rows, or transposed for K ≥ ``TRANSPOSED_MIN_K``; both give bit-identical results).
`scalex.engines.simulate` wraps seeds into dask tasks and a schema Dataset.

Random-number layout (bit-for-bit reproducible for a given seed, dtype and machine)
    ``SeedSequence(seed).spawn(3)`` gives the teacher, student and data streams of
    `scalex.model.weights.rng_streams`; the initial weights are
    `scalex.model.weights.sample_weights` (the start of `scalex.schema.initial_overlaps`).

    *Data stream.* Steps are run in blocks of at most ``block`` steps; a block also ends at a
    record step. For a block of n steps the data generator draws
    ``standard_normal((n, N + 1), dtype)``: row t is step t, columns 0..N-1 hold z (the input is
    ξ = √λ ⊙ z, in the eigenbasis of Σ) and column N the label noise ε. ε is drawn even when the
    noise s is 0, so every step consumes exactly N + 1 normals in order, and the inputs of a
    seed do not depend on the block size, the record grid, or s. (The trajectory agrees across
    block sizes to rounding: the teacher fields of a block come from one BLAS product.)
    float32 runs draw float32 normals, a different stream.

    *Test stream.* ``SeedSequence(seed).spawn(4)[3]``: a fresh SeedSequence spawns children with
    spawn keys (0,), (1,), ..., so the first three children of ``spawn(4)`` are exactly the
    teacher, student and data streams above and the fourth is independent of them. The
    Monte Carlo test error at every record uses the same ``eg_test`` inputs from this stream,
    drawn in chunks of ``standard_normal((chunk, N))``.

Divergence
    After every block the kernel's early exit (a non-finite field) and max_i q_ii =
    max_i |J_i|²/N > ``divergence_threshold`` are checked. A diverged seed stops; its later
    records are NaN and its status is "diverged". The other seeds are not affected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf as _erf

from scalex.engines.sgd_kernel import (
    TRANSPOSED_MIN_K,
    activation_code,
    aligned_empty,
    scratch,
    sgd_steps,
    sgd_steps_transposed,
)
from scalex.model.integrals import generalization_error
from scalex.model.setup import Setup
from scalex.model.weights import group_overlaps, rng_streams, sample_weights
from scalex.schema import weighted_overlaps

__all__ = [
    "BLOCK_BYTES",
    "DIVERGENCE_THRESHOLD",
    "DTYPES",
    "TEST_CHUNK",
    "SGDRun",
    "default_block",
    "monte_carlo_error",
    "run_seed",
    "test_stream",
]

#: max_i q_ii above which a run counts as diverged.
DIVERGENCE_THRESHOLD = 1e6
DTYPES = ("float64", "float32")
#: Bytes of normals per block by default: the block then stays in a core's L2 cache.
BLOCK_BYTES = 2**19
TEST_CHUNK = 1024

Array = NDArray[np.float64]


def default_block(N: int, dtype: str = "float64") -> int:
    """Steps per block so that a block of inputs takes about `BLOCK_BYTES` (16 to 4096)."""
    return int(np.clip(BLOCK_BYTES // ((N + 1) * np.dtype(dtype).itemsize), 16, 4096))


def test_stream(seed: int) -> np.random.Generator:
    """The generator of the Monte Carlo test inputs of ``seed``: SeedSequence(seed).spawn(4)[3]."""
    return np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(4)[3])


test_stream.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _g(x: Array, activation: str) -> Array:
    """g(x) of ``activation``: erf(x/√2), max(0, x) (relu) or x (docs/theory.md §7)."""
    if activation == "erf":
        return _erf(x / np.sqrt(2.0))
    if activation == "relu":
        return np.maximum(x, 0.0)
    return x


def monte_carlo_error(
    J: Array,
    B: Array,
    sqrt_lam: Array,
    v: Array,
    w: Array,
    activation: str,
    rng: np.random.Generator,
    n_samples: int,
    chunk: int = TEST_CHUNK,
) -> tuple[float, float]:
    """Monte Carlo ε_g = E_ξ[½(ζ − σ)²] (noiseless, docs/theory.md (1.7)) and its standard error.

    ``n_samples`` inputs ξ = √λ ⊙ z are drawn as ``rng.standard_normal((chunk, N))`` blocks.
    """
    N = J.shape[1]
    total = total_sq = 0.0
    done = 0
    while done < n_samples:
        n = min(chunk, n_samples - done)
        xi = rng.standard_normal((n, N)) * sqrt_lam
        x = xi @ J.T / np.sqrt(N)
        y = xi @ B.T / np.sqrt(N)
        loss = 0.5 * (_g(y, activation) @ w - _g(x, activation) @ v) ** 2
        total += float(loss.sum())
        total_sq += float((loss**2).sum())
        done += n
    mean = total / n_samples
    var = max(total_sq / n_samples - mean**2, 0.0) * n_samples / max(n_samples - 1, 1)
    return mean, float(np.sqrt(var / n_samples))


class SGDRun:
    """The state of one SGD run on plain arrays: weights in the kernel's layout and buffers.

    ``advance(z)`` runs one block of steps on the normals ``z`` (n, N+1) (layout in the module
    docstring); ``student()`` returns J (K, N) as float64. With ``setup.train_v`` the second
    layer ``v`` is updated in place at every step (docs/theory.md §3.10). Used by `run_seed`;
    exposed for benchmarks and tests.
    """

    def __init__(self, setup: Setup, J: Array, B: Array, dtype: str = "float64") -> None:
        dt = np.dtype(dtype)
        K, N = J.shape
        self.setup, self.N, self.dtype = setup, N, dt
        self.v, self.w = setup.second_layer  # fresh arrays: a trained v moves in place
        self.eta_v = setup.learning_rate_v if setup.train_v else 0.0
        self.act = activation_code(setup.activation)  # the kernels' activation code
        sqrt_lam = np.sqrt(setup.spectrum.diagonal())
        self.sqrt_lam = sqrt_lam.astype(dt)
        # y = B·ξ/√N = z·(B ⊙ √λ)/√N: fold the fixed factors into the teacher once.
        self.B_scaled = np.ascontiguousarray((B * sqrt_lam / np.sqrt(N)).T.astype(dt))
        self.transposed = K >= TRANSPOSED_MIN_K
        # Weights as (K, N) rows, or (N, K) for many units: faster, and the same numbers.
        # Aligned to a cache line, as the buffers (`scalex.engines.sgd_kernel.aligned_empty`).
        self.W = aligned_empty((N, K) if self.transposed else (K, N), dt)
        self.W[...] = J.T if self.transposed else J
        self.buffers = scratch(K, N, dt)
        if self.transposed:
            self.buffers = (*self.buffers, aligned_empty((4, K)))
        self.kernel = sgd_steps_transposed if self.transposed else sgd_steps

    def advance(self, z: NDArray[np.floating]) -> int:
        """Run ``len(z)`` steps; return how many completed (fewer: a field was not finite)."""
        s = self.setup
        y = z[:, :self.N] @ self.B_scaled
        return int(self.kernel(self.W, z, y, self.sqrt_lam, self.v, self.w, s.eta, s.noise,
                               s.n_trainable, self.act, *self.buffers, self.eta_v))

    def max_self_overlap(self) -> float:
        """max_i q_ii = max_i |J_i|²/N (NaN-propagating), the divergence monitor."""
        sq = np.einsum("ab,ab->b" if self.transposed else "ab,ab->a", self.W, self.W,
                       dtype=np.float64)
        return float(np.max(sq)) / self.N

    def student(self) -> Array:
        """A float64 copy of the current J (K, N)."""
        return np.array(self.W.T if self.transposed else self.W, dtype=np.float64, order="C")


def run_seed(
    setup: Setup,
    steps: NDArray[np.int64],
    seed: int,
    *,
    record: tuple[str, ...] = ("q", "r"),
    eg_test: int = 0,
    block: int | None = None,
    dtype: str = "float64",
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
    callback: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Simulate one seed and return plain arrays at the record ``steps`` (increasing ints).

    Returns a dict with ``q`` (A, L, K, K) and ``r`` (A, L, K, M) (None unless recorded),
    ``Q`` (A, K, K) and ``R`` (A, K, M) (likewise), ``t`` (L, M, M), ``v`` (A, K) the second
    layer (None unless ``setup.train_v``), ``eg`` (A,) exact ε_g at the current v,
    ``eg_test``/``eg_test_stderr`` (A,) (None unless ``eg_test`` > 0), ``status``,
    ``steps_done`` and ``wall_time`` (s). ``callback(n)`` is called after every block of n
    steps.
    """
    t0 = time.perf_counter()
    K, M, N = setup.K, setup.M, setup.N
    sp = setup.spectrum
    lam, starts = sp.eigenvalues, sp.group_starts()
    v, w = setup.second_layer
    dt = np.dtype(dtype)
    block = default_block(N, dtype) if block is None else block
    J0, B = sample_weights(setup, seed)
    _, _, data = rng_streams(seed)
    run = SGDRun(setup, J0, B, dtype)
    z_buf = np.empty((min(block, max(int(steps[-1]), 1)), N + 1), dtype=dt)

    A = steps.size
    t = group_overlaps(B, B, starts, N)
    out: dict[str, Any] = {
        "q": np.full((A, sp.L, K, K), np.nan) if "q" in record else None,
        "r": np.full((A, sp.L, K, M), np.nan) if "r" in record else None,
        "Q": np.full((A, K, K), np.nan) if "Q" in record else None,
        "R": np.full((A, K, M), np.nan) if "R" in record else None,
        "v": np.full((A, K), np.nan) if setup.train_v else None,
        "eg": np.full(A, np.nan),
        "eg_test": np.full(A, np.nan) if eg_test else None,
        "eg_test_stderr": np.full(A, np.nan) if eg_test else None,
        "t": t,
    }
    status = "ok"
    n_done = 0
    for a, target in enumerate(steps):
        while n_done < target:
            n = min(block, int(target) - n_done)
            z = z_buf[:n]
            data.standard_normal(out=z, dtype=dt)
            completed = run.advance(z)
            n_done += completed
            if callback is not None:
                callback(n)
            if completed < n or not run.max_self_overlap() <= divergence_threshold:
                status = "diverged"
                break
        if status != "ok":
            break
        J = run.student()
        q = group_overlaps(J, J, starts, N)
        r = group_overlaps(J, B, starts, N)
        Q, R, T = weighted_overlaps(q, r, t, lam)
        if setup.train_v:
            v = run.v.copy()
            out["v"][a] = v
        out["eg"][a] = generalization_error(Q, R, T, v, w, setup.activation)
        for name, val in (("q", q), ("r", r), ("Q", Q), ("R", R)):
            if out[name] is not None:
                out[name][a] = val
        if eg_test:
            out["eg_test"][a], out["eg_test_stderr"][a] = monte_carlo_error(
                J, B, np.sqrt(sp.diagonal()), v, w, setup.activation, test_stream(seed),
                eg_test)
    out["status"] = status
    out["steps_done"] = n_done
    out["wall_time"] = time.perf_counter() - t0
    return out

