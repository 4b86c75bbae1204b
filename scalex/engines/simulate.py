"""Direct simulation of online SGD at finite N (docs/theory.md §1): the ground truth for the ODEs.

`simulate` runs one seed per `dask.delayed` task and returns a schema Dataset with a ``seed``
dimension. Each seed is driven by `run_seed` (plain arrays in, arrays out), whose inner loop is
a numba kernel of `scalex.engines.sgd_kernel` (weights as (K, N) rows, or transposed for
K ≥ ``TRANSPOSED_MIN_K``; both give bit-identical results).

Record steps
    A requested time α is recorded after n = rint(α·N) SGD steps (nearest integer, halves to
    even; `scalex.common.alpha.alpha_to_steps`). The ``alpha`` coordinate holds the requested
    times, all of them and in order; the coordinates ``alpha_step`` = n/N (the time actually
    simulated) and ``step`` = n sit beside it. Requested times that round to the same step (a
    log grid finer than the resolution 1/N at early α) run that step once and report it under
    each of them. A grid that is not strictly increasing raises `ValueError`.

Warnings
    Seeds run as dask tasks, possibly in worker threads, where warnings cannot be caught
    safely (`warnings.catch_warnings` swaps process-global state and races between threads).
    So a task never touches the warnings filters: a seed reports its own divergence as data,
    floating-point warnings are silenced with the thread-local `numpy.errstate`, and any other
    warning issued inside a task is collected per task (`run_captured`) and re-issued by
    `compute_tasks` in the calling thread, in task order.

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
    records are NaN, its ``status`` is "diverged", and `simulate` warns with
    `scalex.schema.DivergenceWarning`. The other seeds are not affected.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf as _erf

from scalex.common.alpha import alpha_to_steps, check_alpha
from scalex.common.capture import capture_warnings
from scalex.common.progress import Progress
from scalex.common.schedulers import ALIASES, normalise_scheduler
from scalex.common.seeds import check_seeds
from scalex.engines.ode import stability_report
from scalex.engines.sgd_kernel import TRANSPOSED_MIN_K, scratch, sgd_steps, sgd_steps_transposed
from scalex.model.integrals import generalization_error
from scalex.model.setup import Setup, as_setup
from scalex.model.weights import group_overlaps, rng_streams, sample_weights
from scalex.numerics.threads import single_threaded_blas
from scalex.schema import (
    DivergenceWarning,
    StabilityWarning,
    annotate,
    make_dataset,
    weighted_overlaps,
)

__all__ = [
    "DIVERGENCE_THRESHOLD",
    "RECORDABLE",
    "SGDRun",
    "compute_tasks",
    "default_block",
    "monte_carlo_error",
    "record_steps",
    "run_captured",
    "run_seed",
    "simulate",
    "single_threaded_blas",
    "test_stream",
]

#: max_i q_ii above which a run counts as diverged.
DIVERGENCE_THRESHOLD = 1e6
#: Variables `simulate` can record: per-group q^τ, r^τ, and the λ-weighted Q = Σ λ_τ q^τ, R.
RECORDABLE = ("q", "r", "Q", "R")
DTYPES = ("float64", "float32")
#: Bytes of normals per block by default: the block then stays in a core's L2 cache.
BLOCK_BYTES = 2**19
TEST_CHUNK = 1024
#: canonical schedulers (`scalex.common.schedulers`) that run tasks in this process
IN_PROCESS = ("synchronous", "threads")
# Rough cost model for the progress-bar decision: s per normal drawn, s per K·N multiply-add.
_COST_DRAW, _COST_KN = 9e-9, 4e-10

Array = NDArray[np.float64]


# --------------------------------------------------------------------------- validation
def record_steps(alpha: ArrayLike, N: int) -> NDArray[np.int64]:
    """The distinct SGD steps n = rint(α·N) to run for the record times α, increasing.

    Several α may share a step (`alpha_to_steps`); it is run once (module docstring).
    """
    return np.unique(alpha_to_steps(alpha, N))


def _check_record(record: str | Sequence[str]) -> tuple[str, ...]:
    rec = (record,) if isinstance(record, str) else tuple(record)
    unknown = [r for r in rec if r not in RECORDABLE]
    if unknown:
        raise ValueError(f"record: each entry must be one of {RECORDABLE}, got {unknown}")
    return tuple(r for r in RECORDABLE if r in rec)


def _check_int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {value!r}")
    return int(value)


def default_block(N: int, dtype: str = "float64") -> int:
    """Steps per block so that a block of inputs takes about `BLOCK_BYTES` (16 to 4096)."""
    return int(np.clip(BLOCK_BYTES // ((N + 1) * np.dtype(dtype).itemsize), 16, 4096))


# --------------------------------------------------------------------------- array layer
def test_stream(seed: int) -> np.random.Generator:
    """The generator of the Monte Carlo test inputs of ``seed``: SeedSequence(seed).spawn(4)[3]."""
    return np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(4)[3])


test_stream.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _g(x: Array, activation: str) -> Array:
    return _erf(x / np.sqrt(2.0)) if activation == "erf" else x


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
    docstring); ``student()`` returns J (K, N) as float64. Used by `run_seed`; exposed for
    benchmarks and tests.
    """

    def __init__(self, setup: Setup, J: Array, B: Array, dtype: str = "float64") -> None:
        dt = np.dtype(dtype)
        K, N = J.shape
        self.setup, self.N, self.dtype = setup, N, dt
        self.v, self.w = setup.second_layer
        self.erf = setup.activation == "erf"
        sqrt_lam = np.sqrt(setup.spectrum.diagonal())
        self.sqrt_lam = sqrt_lam.astype(dt)
        # y = B·ξ/√N = z·(B ⊙ √λ)/√N: fold the fixed factors into the teacher once.
        self.B_scaled = np.ascontiguousarray((B * sqrt_lam / np.sqrt(N)).T.astype(dt))
        self.transposed = K >= TRANSPOSED_MIN_K
        # Weights as (K, N) rows, or (N, K) for many units: faster, and the same numbers.
        self.W = np.ascontiguousarray(J.T.astype(dt) if self.transposed else J.astype(dt))
        self.buffers = scratch(K, N, dt)
        if self.transposed:
            self.buffers = (*self.buffers, np.empty((4, K)))
        self.kernel = sgd_steps_transposed if self.transposed else sgd_steps

    def advance(self, z: NDArray[np.floating]) -> int:
        """Run ``len(z)`` steps; return how many completed (fewer: a field was not finite)."""
        s = self.setup
        y = z[:, :self.N] @ self.B_scaled
        return int(self.kernel(self.W, z, y, self.sqrt_lam, self.v, self.w, s.eta, s.noise,
                               s.n_trainable, self.erf, *self.buffers))

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
    ``Q`` (A, K, K) and ``R`` (A, K, M) (likewise), ``t`` (L, M, M), ``eg`` (A,) exact ε_g,
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


def _seed_dataset(setup: Setup, alpha: NDArray[np.float64], seed: int,
                  **kwargs: Any) -> tuple[xr.Dataset, list[WarningRecord]]:
    """`run_seed` wrapped into a schema Dataset on the requested ``alpha`` (one dask task),
    and the warnings of this seed as data (module docstring)."""
    wanted = alpha_to_steps(alpha, setup.N)
    steps, where = np.unique(wanted, return_inverse=True)
    with single_threaded_blas(), np.errstate(all="ignore"):
        res = run_seed(setup, steps, seed, **kwargs)
    for name in ("q", "r", "Q", "R", "eg", "eg_test", "eg_test_stderr"):
        if res[name] is not None:  # each distinct step, under every α that asked for it
            res[name] = res[name][where]
    notes: list[WarningRecord] = []
    if res["status"] == "diverged":
        notes.append((DivergenceWarning, (
            f"simulate: seed {seed} diverged by step {res['steps_done']} (alpha ≈ "
            f"{res['steps_done'] / setup.N:.4g}; eta={setup.eta:g}, linear stability bound "
            f"{setup.eta_max_linear:.4g}); its later records are NaN")))
    A, L, K, M = alpha.size, setup.L, setup.K, setup.M
    # Unrecorded per-group overlaps: a zero-memory placeholder, dropped below.
    q = res["q"] if res["q"] is not None else np.broadcast_to(np.nan, (A, L, K, K))
    r = res["r"] if res["r"] is not None else np.broadcast_to(np.nan, (A, L, K, M))
    exact_eg = None if (res["q"] is not None and res["r"] is not None) else res["eg"]
    extra: dict[str, tuple[tuple[str, ...], Any, dict[str, str]]] = {
        "wall_time": ((), res["wall_time"], {"long_name": "wall time of this seed", "units": "s"}),
    }
    if res["Q"] is not None:
        extra["Q"] = (("alpha", "student_i", "student_j"), res["Q"],
                      {"long_name": "weighted overlap Q = Σ_τ λ_τ q^τ", "units": "1"})
    if res["R"] is not None:
        extra["R"] = (("alpha", "student_i", "teacher_n"), res["R"],
                      {"long_name": "weighted overlap R = Σ_τ λ_τ r^τ", "units": "1"})
    if res["eg_test"] is not None:
        extra["eg_test"] = (("alpha",), res["eg_test"], {
            "long_name": "Monte Carlo test error on fresh noiseless inputs", "units": "1"})
        extra["eg_test_stderr"] = (("alpha",), res["eg_test_stderr"], {
            "long_name": "standard error of eg_test", "units": "1"})
    ds = make_dataset(setup, alpha, q, r, res["t"], method="sgd", eg=exact_eg,
                      status=res["status"], extra=extra)
    ds = ds.drop_vars([n for n in ("q", "r") if res[n] is None])
    return step_coords(ds, wanted, setup.N), notes


def step_coords(ds: xr.Dataset, steps: NDArray[np.int64], N: int) -> xr.Dataset:
    """Add ``step(alpha)`` = n and ``alpha_step(alpha)`` = n/N beside the requested α."""
    ds = ds.assign_coords(step=("alpha", steps), alpha_step=("alpha", steps / N))
    return annotate(ds)  # long_name and units of both from scalex.schema.COORDS


# --------------------------------------------------------------------------- warnings of tasks
#: A warning as data: (category, message).
WarningRecord = tuple[type[Warning], str]


class _Captured:
    """A task's result and the warnings issued inside it, as (category, message, file, line)."""

    def __init__(self, result: Any, caught: list[tuple[type[Warning], str, str, int]]) -> None:
        self.result, self.caught = result, caught


def run_captured(func: Callable[..., Any], *args: Any, **kwargs: Any) -> _Captured:
    """Run a task body, collecting the warnings it issues in its own thread (no filter change).

    The warnings are collected by `scalex.common.capture.capture_warnings`. A body returning
    ``(result, [(category, message), ...])`` reports warnings as data instead. `compute_tasks`
    re-issues both in the calling thread.
    """
    with capture_warnings() as caught:
        result = func(*args, **kwargs)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], list):
        result, notes = result
        caught = [(cat, msg, __file__, 0) for cat, msg in notes] + caught
    return _Captured(result, caught)


def _reissue(results: list[Any]) -> list[Any]:
    """Unwrap `_Captured` results, re-issuing their warnings here (the calling thread)."""
    out = []
    for res in results:
        if isinstance(res, _Captured):
            for category, message, filename, lineno in res.caught:
                if lineno:
                    warnings.warn_explicit(message, category, filename, lineno)
                else:
                    warnings.warn(message, category, stacklevel=4)
            res = res.result
        out.append(res)
    return out


# --------------------------------------------------------------------------- dask plumbing
def compute_tasks(tasks: Sequence[Any], scheduler: Any = None) -> list[Any]:
    """Compute dask ``tasks`` (e.g. `dask.delayed` objects) and return their results in order.

    ``scheduler``: None (dask's default: an active `distributed.Client`, else the configured
    scheduler, else local threads); a scheduler name ("sync"/"synchronous"/"single-threaded",
    "threads", "processes", or "distributed" for the current Client); a `distributed.Client`;
    or a scheduler address such as "tcp://127.0.0.1:8786", to which a Client is connected for
    this call and closed afterwards.

    Tasks built on `run_captured` return their result with the warnings issued inside them;
    these are re-issued here, in the calling thread, in task order (module docstring).
    """
    tasks = list(tasks)
    if not tasks:
        return []
    if scheduler is None:
        return _reissue(list(dask.compute(*tasks)))
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            return _reissue(list(dask.compute(*tasks, scheduler=client)))
    if isinstance(scheduler, str):
        if _canonical(scheduler) is None:
            raise ValueError(
                f"scheduler: must be one of {list(ALIASES)}, a distributed.Client or a "
                f"scheduler address 'tcp://host:port', got {scheduler!r}"
            )
        return _reissue(list(dask.compute(*tasks, scheduler=_canonical(scheduler))))
    if hasattr(scheduler, "get") and hasattr(scheduler, "submit"):  # distributed.Client
        return _reissue(list(dask.compute(*tasks, scheduler=scheduler)))
    raise ValueError(
        f"scheduler: must be a scheduler name, a distributed.Client or an address, "
        f"got {type(scheduler).__name__}"
    )


def _canonical(scheduler: Any) -> str | None:
    """The canonical name of a scheduler name (`scalex.common.schedulers`), else None."""
    try:
        return normalise_scheduler(scheduler)
    except ValueError:
        return None


def _in_process(scheduler: Any) -> bool:
    """Whether tasks run in threads of this process, so a shared progress bar can follow them."""
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None) or "threads"
    return _canonical(scheduler) in IN_PROCESS


# --------------------------------------------------------------------------- public front
def simulate(
    setup: Setup | Mapping[str, Any],
    alpha: ArrayLike,
    *,
    seeds: Iterable[int] = range(4),
    record: str | Sequence[str] = ("q", "r"),
    eg_test: int = 0,
    block: int | None = None,
    dtype: str = "float64",
    scheduler: Any = None,
    progress: bool | None = None,
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
) -> xr.Dataset:
    """Simulate online SGD of docs/theory.md §1 at finite N for several seeds.

    Parameters
    ----------
    setup : the experiment (a `Setup` or a mapping of its fields).
    alpha : record times α (increasing, may start at 0). The ``alpha`` coordinate keeps them;
        each is run to the step n = rint(α·N), reported as ``alpha_step`` = n/N (module
        docstring).
    seeds : distinct integer seeds; seed s starts from ``sample_weights(setup, s)``.
    record : which overlaps to store, a subset of ``RECORDABLE``: per-group "q", "r" (the
        schema variables) and/or the λ-weighted "Q", "R" (much smaller for large L). ε_g is
        always the exact `generalization_error` of the full overlaps. Without "q" and "r" the
        result lacks those schema variables.
    eg_test : if > 0, also a Monte Carlo test error ``eg_test`` on this many fresh inputs from
        `test_stream` (the same inputs at every record), with ``eg_test_stderr``.
    block : maximal number of steps per kernel call; memory is O((K+M)·N + block·N). None:
        `default_block` (about 512 kB of inputs, which keeps them in cache).
    dtype : "float64" or "float32" (weights, inputs and their stream; overlaps are float64).
        float32 rounds the initial weights, so its α = 0 record differs from
        `scalex.schema.initial_overlaps` by that rounding.
    scheduler : see `compute_tasks`; one task per seed.
    progress : show a progress bar; None shows one only for a long run on a terminal.
    divergence_threshold : a seed with max_i q_ii above this counts as diverged.

    Returns
    -------
    A schema Dataset with dims ``(seed, alpha, ...)``, ``status(seed)``, ``wall_time(seed)``,
    coordinates ``step(alpha)`` and ``alpha_step(alpha)``, and attrs ``block_size``,
    ``dtype``, ``wall_time_s``, ``eta_max_linear``, ``eta_over_eta_max_linear``. A diverged
    seed gives one `scalex.schema.DivergenceWarning` naming it; η far outside the stable range
    a `scalex.schema.StabilityWarning` (`scalex.engines.ode.stability_report`). Both are
    issued in the calling thread, whatever the scheduler.
    """
    try:
        setup = as_setup(setup)
    except TypeError as err:
        raise ValueError(f"setup: {err}") from None
    steps = record_steps(alpha, setup.N)
    alpha = check_alpha(alpha)
    seed_list = list(check_seeds(seeds))
    rec = _check_record(record)
    eg_test = _check_int(eg_test, "eg_test", 0)
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {DTYPES}, got {dtype!r}")
    block = default_block(setup.N, dtype) if block is None else _check_int(block, "block", 1)
    if not divergence_threshold > 0:
        raise ValueError(f"divergence_threshold: must be > 0, got {divergence_threshold!r}")

    total = int(steps[-1]) * len(seed_list)
    if progress is None:
        cost = total * setup.N * (_COST_DRAW + _COST_KN * (setup.K + setup.M / 4))
        progress = cost / min(len(seed_list), os.cpu_count() or 1) > 5.0 and sys.stderr.isatty()
    bar = (Progress(total, "scalex simulate", "step", enabled=True, unit_scale=True)
           if progress and _in_process(scheduler) else None)
    kwargs = dict(record=rec, eg_test=eg_test, block=block, dtype=dtype,
                  divergence_threshold=float(divergence_threshold),
                  callback=bar.update if bar else None)
    stability, unstable = stability_report(setup, "simulate")
    if unstable:
        warnings.warn(f"{unstable} ({setup!r})", StabilityWarning, stacklevel=2)
    tasks = [
        dask.delayed(run_captured, pure=False)(_seed_dataset, setup, alpha, s, **kwargs)
        for s in seed_list
    ]
    t0 = time.perf_counter()
    try:
        if progress and _canonical(scheduler) == "processes":
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                results = compute_tasks(tasks, scheduler)
        else:
            results = compute_tasks(tasks, scheduler)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0

    ds = xr.concat(results, dim="seed", data_vars="all", coords="minimal",
                   compat="override", join="override", combine_attrs="override")
    ds = ds.assign_coords(seed=("seed", seed_list))
    ds["seed"].attrs.update(long_name="random seed of the weight draw and the SGD inputs",
                            units="1")
    ds["t"] = ds["t"].transpose("seed", ...)
    ds.attrs.update(block_size=block, dtype=dtype, wall_time_s=wall, recorded=" ".join(rec),
                    divergence_threshold=float(divergence_threshold), eg_test_samples=eg_test,
                    record_rounding="step n = rint(alpha*N) for each requested alpha; "
                                    "alpha_step coordinate = n/N",
                    **stability,
                    rng_layout="data: SeedSequence(seed).spawn(3)[2], standard_normal((block, "
                               "N+1)) per block, columns z then label noise; test: "
                               "SeedSequence(seed).spawn(4)[3]")
    return ds
