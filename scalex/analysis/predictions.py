"""Escape-theory predictions of the plateau length for every member of a sweep.

`escape_predictions` evaluates `scalex.analysis.escape.escape` (docs/theory.md §5.3) for each
sweep point and seed of a result Dataset, rebuilding each member's `Setup` from the Dataset
(`scalex.schema.member_setup`). It returns ``plateau_length_predicted(*sweep dims, seed)``.
Members where the theory does not apply (it raises: unequal second-layer weights, linear
activation, ...) are NaN, and ``where`` (e.g. ``summary["has_plateau"]``) skips members without
a measured plateau (each prediction takes ~0.2–2 s at any L and K, docs/analysis.md,
"Performance"). With a ``timeout`` the predictions run in a pool of spawned
worker processes that is terminated at the deadline, because a running Python call cannot be
interrupted inside its thread; unfinished members are NaN and a note goes to ``problems``.
`ESCAPE_TIMEOUT_S` is the budget `scalex.experiments.runner.run_entry` uses by default.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.model.setup import Setup
from scalex.schema import member_setup

#: time budget (s) of the escape-theory predictions of one `run_entry`; the CLI must finish
ESCAPE_TIMEOUT_S = 30.0


def _escape_length(result: Any) -> float:
    """The predicted plateau length out of a `scalex.analysis.escape.escape` result."""
    if isinstance(result, (int, float, np.floating, np.integer)):
        return float(result)
    for name in ("plateau_length", "length", "alpha_escape", "tau_esc"):
        if isinstance(result, Mapping) and name in result:
            return float(np.asarray(result[name]))
        if isinstance(result, xr.Dataset) and name in result.data_vars:
            return float(result[name].values)
        if hasattr(result, name):
            return float(getattr(result, name))
    raise TypeError(f"no plateau length in the escape result ({type(result).__name__})")


def _escape_one(setup: Setup, seed: int) -> float:
    """Predicted plateau length of one member; NaN where the theory does not apply."""
    theory = import_module("scalex.analysis.escape")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _escape_length(theory.escape(setup, seed=seed))
    except Exception:  # no plateau to escape from (K != M, linear, ...)
        return float("nan")


def escape_predictions(
    ds: xr.Dataset,
    *,
    timeout: float | None = None,
    workers: int | None = None,
    problems: list[str] | None = None,
    where: xr.DataArray | None = None,
) -> xr.DataArray:
    """Predicted plateau length (docs/theory.md §5.3) of every member (sweep dims × seed) of ``ds``.

    Members where the theory does not apply (it raises) are NaN. ``where`` (a boolean array over
    sweep dims and seed, such as ``summary["has_plateau"]``) limits the predictions to the
    members where it is True; the others are NaN without being computed (no plateau is
    measured there, so there is nothing to compare with). With ``timeout`` (seconds for all
    members together) the predictions run in ``workers`` worker processes that are stopped at
    the deadline; unfinished members are NaN and a note goes to ``problems``.
    """

    dims = str(ds.attrs.get("sweep_dims", "")).split()
    seeds = [int(s) for s in ds["seed"].values] if "seed" in ds.dims else [0]
    shape = [ds.sizes[d] for d in dims] + [len(seeds)]
    jobs = []
    for index in np.ndindex(*shape[:-1]):
        coords = {d: ds[d].values[i] for d, i in zip(dims, index, strict=True)}
        setup = member_setup(ds, **coords)
        for k, seed in enumerate(seeds):
            point = {**coords, "seed": seed} if where is not None and "seed" in where.dims \
                else coords
            if where is not None and not bool(where.sel(point)):
                continue
            jobs.append(((*index, k), setup, seed))
    out = np.full(shape, np.nan)
    if not jobs:
        timeout = None
    if timeout is None:
        for index, setup, seed in jobs:
            out[index] = _escape_one(setup, seed)
    else:
        late = _escape_in_processes(jobs, out, timeout, workers)
        if late and problems is not None:
            problems.append(f"analysis 'escape': {late} of {len(jobs)} predictions did not "
                            f"finish within {timeout:g} s and are NaN")
    return xr.DataArray(
        out,
        dims=[*dims, "seed"],
        coords={**{d: ds[d].values for d in dims}, "seed": seeds},
        name="plateau_length_predicted",
        attrs={"long_name": "predicted plateau length (escape theory, docs/theory.md §5)",
               "units": "1"},
    )


def _escape_in_processes(
    jobs: Sequence[tuple[tuple[int, ...], Setup, int]],
    out: NDArray[np.float64],
    timeout: float,
    workers: int | None,
) -> int:
    """Fill ``out`` from worker processes until ``timeout``; return the number left NaN."""
    import multiprocessing

    import dask

    # A running Python call cannot be interrupted in its thread; a process can be stopped.
    ctx = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
    deadline = time.monotonic() + timeout
    pool = ctx.Pool(min(workers or os.cpu_count() or 1, len(jobs)))
    try:
        pending = {index: pool.apply_async(_escape_one, (setup, seed))
                   for index, setup, seed in jobs}
        for result in pending.values():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            result.wait(left)
        for index, result in pending.items():
            if result.ready():
                out[index] = result.get()
        return sum(not r.ready() for r in pending.values())
    finally:
        pool.terminate()
        pool.join()
