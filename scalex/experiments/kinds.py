"""Parameter sweeps: many ODE solves, simulations or linear-theory runs as one Dataset.

A sweep is the product grid of ``over`` (values of `Setup` fields) times ``seeds``. Each
*member* (one `Setup` × one seed) is one dask task that calls a *kind* — a function
``kind(setup, alpha, seed, **kind_kwargs) -> xarray.Dataset`` registered in `KINDS` — and the
members are combined into one Dataset with the sweep parameters as plain orthogonal dimensions
(no stacked MultiIndex), in the order given, then ``seed``, then the schema dimensions.

Ragged dimensions
    Members can differ in L, K and M. The ``group``, ``student_i/j`` and ``teacher_n/m``
    dimensions of the result are those of the largest member; a smaller member's values beyond
    its own size are NaN (``attrs["padding"]`` says so). Per-member coordinates become
    multi-dimensional over the sweep dimensions they depend on, e.g. ``eigenvalue(L, group)``.

Failures
    A member that raises is recorded with ``status = "failed: <Error>: <message>"`` and NaN
    data; a member that diverges keeps the kind's own ``status = "diverged"``. The rest of the
    grid completes either way, and a warning counts the failed and diverged members.

Result store (``store=path``)
    Every member is written, as soon as it finishes and by the worker that ran it, to its own
    NetCDF file ``<kind>-<setup hash>-s<seed>.nc`` (atomically: temporary file and rename). A
    member that raised leaves a JSON marker ``<kind>-<setup hash>-s<seed>.failed.json`` with
    the error instead. A rerun skips every member whose file is present and valid, and retries
    the failed ones: an exception may be transient (memory, a lost worker), whereas a
    divergence is a deterministic result and is kept. ``manifest.json`` records the sweep
    specification so that `open_store` can rebuild the combined Dataset lazily (dask-backed).

Schedulers
    ``client=None`` runs on the local dask scheduler. The ODE solver is Python-level scipy code
    that holds the GIL, so threads do not overlap (they are even slower than a serial loop),
    while starting worker processes costs a few seconds (benchmarks/sweep_results.md): "ode"
    therefore uses "auto", which times the first member and starts processes only when the
    rest of the grid is long enough to pay for them, and otherwise runs serially.
    "simulate" (numba kernels that release the GIL), "linear" and registered kinds use
    threads. Worker processes are spawned, so a script that runs a sweep needs the usual
    ``if __name__ == "__main__":`` guard. ``client`` may be a
    `distributed.Client` or a scheduler address; members are then submitted in a bounded
    window (about two per worker thread) with `distributed.as_completed`, so the scheduler
    never holds the whole grid. With a store, the workers write the member files
    themselves, so on a multi-machine cluster the store must be on a shared file system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.experiments.errors import KindUnavailableError
from scalex.experiments.execute import SCHEDULERS
from scalex.model.setup import Setup


# ---------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """A registered sweep kind: ``func(setup, alpha, seed, **kwargs) -> Dataset`` for ONE member.

    ``scheduler`` is the local dask scheduler the kind runs best on: "threads" for code that
    releases the GIL or is cheap, "processes" for GIL-bound Python, or "auto": time the first
    member, then use processes if the rest take long enough to pay for starting them, else
    run them one after another. ``requires`` names the ``module:function`` the kind needs;
    it is checked before any work starts.
    """

    name: str
    func: Callable[..., xr.Dataset]
    scheduler: str = "threads"
    requires: str | None = None

    def check_available(self) -> None:
        """Raise `KindUnavailableError` if the implementing function cannot be imported."""
        if self.requires is None:
            return
        module, _, attr = self.requires.partition(":")
        try:
            getattr(import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise KindUnavailableError(
                f"kind {self.name!r} needs {module}.{attr}, which is not available "
                f"({type(err).__name__}: {err})"
            ) from None


def _ode_member(setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any) -> xr.Dataset:
    from scalex.engines.ode import solve_ode

    kwargs.setdefault("progress", False)
    return solve_ode(setup, alpha, seed=seed, **kwargs)


def _simulate_member(
    setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any
) -> xr.Dataset:
    from scalex.engines.simulate import simulate

    kwargs.setdefault("progress", False)
    # The sweep already parallelises over members; nested dask would oversubscribe.
    kwargs.setdefault("scheduler", "synchronous")
    return simulate(setup, alpha, seeds=[seed], **kwargs)


def _linear_member(
    setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any
) -> xr.Dataset:
    from scalex.engines.linear import linear_theory

    return linear_theory(setup, alpha, seed=seed, **kwargs)


#: name -> `Kind`. Add kinds with `register_kind`.
KINDS: dict[str, Kind] = {
    "ode": Kind("ode", _ode_member, "auto", "scalex.engines.ode:solve_ode"),
    # The SGD kernel is numba nogil code: threads run it in parallel.
    "simulate": Kind("simulate", _simulate_member, "threads", "scalex.engines.simulate:simulate"),
    "linear": Kind("linear", _linear_member, "threads", "scalex.engines.linear:linear_theory"),
}


def register_kind(
    name: str,
    func: Callable[..., xr.Dataset],
    *,
    scheduler: str = "threads",
    overwrite: bool = False,
) -> Kind:
    """Register ``func(setup, alpha, seed, **kwargs) -> Dataset`` as sweep kind ``name``.

    The function computes ONE member and must be picklable for the "processes" scheduler and
    for a distributed cluster (a module-level function of an importable module).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: must be an identifier string, got {name!r}")
    if not callable(func):
        raise ValueError(f"func: must be callable, got {type(func).__name__}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: must be one of {SCHEDULERS}, got {scheduler!r}")
    if name in KINDS and not overwrite:
        raise ValueError(f"name: kind {name!r} is already registered (pass overwrite=True)")
    KINDS[name] = Kind(name, func, scheduler)
    return KINDS[name]


def get_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {sorted(KINDS)}, got {kind!r}")
    spec = KINDS[kind]
    spec.check_available()
    return spec
