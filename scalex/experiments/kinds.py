"""Sweep kinds: what one member of a sweep computes.

A kind is ``func(setup, alpha, seed, **kwargs) -> xarray.Dataset`` for ONE member, held in a
`Kind` together with the local scheduler it runs best on and the ``module:function`` it needs.
`get_kind` checks that function before any work starts (`KindUnavailableError` otherwise).
`KINDS` holds

* "ode": `scalex.engines.ode.solve_ode`; scheduler "auto", because the solver is GIL-bound
  Python;
* "simulate": `scalex.engines.simulate.simulate` for one seed, with its own dask scheduler
  set to "synchronous" so that parallelism stays at the member level; scheduler "threads",
  because the numba SGD kernel releases the GIL;
* "linear": `scalex.engines.linear.linear_theory`; scheduler "threads".

Inside a sweep, ode and simulate show no progress bar of their own. `register_kind` adds a
kind. Its function must be picklable (a module-level function of an importable module) for
the "processes" scheduler and for a distributed cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.common.schedulers import normalise_scheduler
from scalex.experiments.errors import KindUnavailableError
from scalex.experiments.execute import SCHEDULERS
from scalex.model.setup import Setup


# ---------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """A registered sweep kind: ``func(setup, alpha, seed, **kwargs) -> Dataset`` for ONE member.

    ``scheduler`` is the local dask scheduler the kind runs best on: "threads" for code that
    releases the GIL or is cheap, "processes" for GIL-bound Python, or "auto": time the second
    member (the first pays one-time warm-up), then use processes if the rest take long enough
    to pay for starting them by a clear margin, else run them one after another.
    ``requires`` names the ``module:function`` the kind needs; it is checked before any work
    starts.
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
    scheduler = normalise_scheduler(scheduler, extra=("auto",), allowed=SCHEDULERS[1:])
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
