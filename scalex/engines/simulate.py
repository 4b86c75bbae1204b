"""Direct simulation of online SGD at finite N (docs/theory.md §1): the ground truth for the ODEs.

`simulate` runs one seed per `dask.delayed` task and returns a schema Dataset with a ``seed``
dimension. The work is split by job:

- `scalex.engines.sgd_run`: one seed on plain arrays (`run_seed`, `SGDRun`), its
  random-number layout and divergence check; its inner loop is a numba kernel of
  `scalex.engines.sgd_kernel`;
- `scalex.engines.simulate_tasks`: the seeds as dask tasks on any scheduler
  (`compute_tasks`) and the warnings issued inside them (`run_captured`);
- this module: the arguments, one seed's arrays as a schema Dataset (`step_coords`), and the
  front `simulate`. Every public name of the other two is importable from here as well.

Record steps
    A requested time α is recorded after n = rint(α·N) SGD steps (nearest integer, halves to
    even; `scalex.common.alpha.alpha_to_steps`). The ``alpha`` coordinate holds the requested
    times, all of them and in order; the coordinates ``alpha_step`` = n/N (the time actually
    simulated) and ``step`` = n sit beside it. Requested times that round to the same step (a
    log grid finer than the resolution 1/N at early α) run that step once and report it under
    each of them. A grid that is not strictly increasing raises `ValueError`.

Warnings
    A diverged seed (`scalex.engines.sgd_run`, "Divergence") has status "diverged", NaN later
    records, and `simulate` warns with `scalex.schema.DivergenceWarning`. Warnings of seeds
    are issued in the calling thread, whatever the scheduler (`scalex.engines.simulate_tasks`).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from scalex.common.alpha import alpha_to_steps, check_alpha
from scalex.common.progress import Progress
from scalex.common.seeds import check_seeds
from scalex.engines.ode import stability_report
from scalex.engines.sgd_run import (
    BLOCK_BYTES,
    DIVERGENCE_THRESHOLD,
    DTYPES,
    TEST_CHUNK,
    Array,
    SGDRun,
    default_block,
    monte_carlo_error,
    run_seed,
    test_stream,
)
from scalex.engines.simulate_tasks import (
    IN_PROCESS,
    WarningRecord,
    canonical_scheduler,
    compute_tasks,
    run_captured,
    runs_in_process,
)
from scalex.model.setup import Setup, as_setup
from scalex.numerics.threads import single_threaded_blas
from scalex.schema import (
    RECORDABLE,
    DivergenceWarning,
    StabilityWarning,
    annotate,
    check_record,
    make_dataset,
    second_layer_extra,
    weighted_extra,
)

# The names of `scalex.engines.sgd_run` and `scalex.engines.simulate_tasks` that were public
# here before those modules existed are still listed (and importable) here.
__all__ = [
    "BLOCK_BYTES",
    "DIVERGENCE_THRESHOLD",
    "DTYPES",
    "IN_PROCESS",
    "RECORDABLE",
    "TEST_CHUNK",
    "Array",
    "SGDRun",
    "WarningRecord",
    "compute_tasks",
    "default_block",
    "monte_carlo_error",
    "record_steps",
    "run_captured",
    "run_seed",
    "simulate",
    "single_threaded_blas",
    "step_coords",
    "test_stream",
]

# Rough cost model for the progress-bar decision: s per normal drawn, s per K·N multiply-add.
_COST_DRAW, _COST_KN = 9e-9, 4e-10


# --------------------------------------------------------------------------- validation
def record_steps(alpha: ArrayLike, N: int) -> NDArray[np.int64]:
    """The distinct SGD steps n = rint(α·N) to run for the record times α, increasing.

    Several α may share a step (`alpha_to_steps`); it is run once (module docstring).
    """
    return np.unique(alpha_to_steps(alpha, N))


def _check_int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- dataset assembly
def _seed_dataset(setup: Setup, alpha: NDArray[np.float64], seed: int,
                  **kwargs: Any) -> tuple[xr.Dataset, list[WarningRecord]]:
    """`run_seed` wrapped into a schema Dataset on the requested ``alpha`` (one dask task),
    and the warnings of this seed as data (module docstring)."""
    wanted = alpha_to_steps(alpha, setup.N)
    steps, where = np.unique(wanted, return_inverse=True)
    with single_threaded_blas(), np.errstate(all="ignore"):
        res = run_seed(setup, steps, seed, **kwargs)
    for name in ("q", "r", "Q", "R", "v", "eg", "eg_test", "eg_test_stderr"):
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
    weighted = weighted_extra(res["Q"], res["R"])
    extra.update({k: weighted[k] for k in ("Q", "R") if res[k] is not None})
    if res["v"] is not None:
        extra.update(second_layer_extra(res["v"]))
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
    the second layer ``v(seed, alpha, student_i)`` if ``setup.train_v`` (docs/theory.md §3.10),
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
    rec = check_record(record)
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
           if progress and runs_in_process(scheduler) else None)
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
        if progress and canonical_scheduler(scheduler) == "processes":
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
