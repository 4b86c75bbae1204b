"""Sweep kinds for the fault tests (tests/test_faults.py).

A module of its own so that spawned pool workers, `dask worker` subprocesses and the test's
script subprocesses import the same functions by name (``PYTHONPATH=tests``). They are cheap
stand-ins for real members: the seed's initial overlaps decaying as exp(-α λ_τ), with a delay,
warnings, a one-time warm-up or a failure added.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from scalex.experiments.kinds import register_kind
from scalex.model.setup import Setup
from scalex.schema import DivergenceWarning, initial_overlaps, make_dataset


def fake(setup: Setup, alpha, seed: int) -> xr.Dataset:
    """The seed's initial overlaps, decaying as exp(-α λ_τ)."""
    start = initial_overlaps(setup, seed)
    a = np.asarray(alpha)
    decay = np.exp(-a[:, None] * setup.spectrum.eigenvalues[None, :])[..., None, None]
    return make_dataset(setup, a, start.q.values * decay, start.r.values * decay,
                        start.t.values, method="fake")


def slow(setup: Setup, alpha, seed: int, delay: float = 0.5) -> xr.Dataset:
    """`fake` after ``delay`` seconds (a member long enough to interrupt)."""
    time.sleep(delay)
    return fake(setup, alpha, seed)


def failing(setup: Setup, alpha, seed: int) -> xr.Dataset:
    """`fake`, but seed 1 raises (leaves a failure marker in a store)."""
    if seed == 1:
        raise RuntimeError(f"injected failure seed={seed}")
    return fake(setup, alpha, seed)


def warning(setup: Setup, alpha, seed: int) -> xr.Dataset:
    """`fake`, warning on the way: a UserWarning from every member, a DivergenceWarning from
    seed 1. Members overlap in time on threads (the sleeps), as real ones do."""
    warnings.warn(f"member note L={setup.L} seed={seed}", UserWarning, stacklevel=1)
    time.sleep(0.01 * (1 + seed % 3))
    if seed == 1:
        warnings.warn("blew up", DivergenceWarning, stacklevel=1)
    time.sleep(0.01 * (1 + (seed + 1) % 3))
    return fake(setup, alpha, seed)


def logged(setup: Setup, alpha, seed: int, log: str = "", delay: float = 0.0,
           hang_seed: int = -1) -> xr.Dataset:
    """`fake` that appends "<pid> <setup hash> <seed>" to the file ``log`` (one line per
    computation, from any process), after ``delay`` seconds. The member with seed
    ``hang_seed`` hangs for 120 s the first time (until ``<log>.hung`` exists, which it
    creates with its pid): a member certainly in flight, for a test to kill its worker."""
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()} {setup.hash} {seed}\n")
    hung = Path(f"{log}.hung")
    if seed == hang_seed and not hung.exists():
        hung.write_text(str(os.getpid()))
        time.sleep(120)
    time.sleep(delay)
    return fake(setup, alpha, seed)


def linear_logged(setup: Setup, alpha, seed: int, log: str = "") -> xr.Dataset:
    """`scalex.engines.linear.linear_theory` of the seed's draw, logged as by `logged`."""
    from scalex.engines.linear import linear_theory

    with open(log, "a") as fh:
        fh.write(f"{os.getpid()} {setup.hash} {seed}\n")
    return linear_theory(setup, alpha, seed=seed)


_WARM: dict[str, bool] = {}


def warmup(setup: Setup, alpha, seed: int, delay: float = 2.0) -> xr.Dataset:
    """`fake` whose first call in a process takes ``delay`` seconds longer (like the first
    call of numba/scipy code: imports, compilation), later calls are fast."""
    if not _WARM.get("done"):
        time.sleep(delay)
        _WARM["done"] = True
    return fake(setup, alpha, seed)


def register() -> None:
    for name, func in (("f_fake", fake), ("f_slow", slow), ("f_failing", failing),
                       ("f_warning", warning), ("f_warmup", warmup), ("f_logged", logged),
                       ("f_linear_logged", linear_logged)):
        register_kind(name, func, overwrite=True)
