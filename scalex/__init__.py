"""scalex: neural scaling laws of two-layer teacher–student networks on power-law data.

Exact per-eigenvalue-group order-parameter ODEs, fast online-SGD simulation, the exact linear
theory, and analysis of plateaus and power laws, all as labelled xarray Datasets.

The package is laid out by job (docs/theory.md gives the physics):

* ``scalex.model``: the experiment description (`Setup`), spectra, Gaussian integrals, weights;
* ``scalex.engines``: three routes to one result schema (ODE, SGD simulation, linear theory);
* ``scalex.analysis``: plateau and exponent estimators, the escape-time theory;
* ``scalex.experiments``: sweeps, the result store, experiment catalogs;
* ``scalex.viz``: holoviews plots and the HTML report;
* ``scalex.numerics`` and ``scalex.common``: physics-free numerics and shared helpers.

Everything below is imported on first use, so ``import scalex`` stays light; only the
``ds.scalex`` accessor is registered eagerly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from scalex import accessor as _accessor  # noqa: F401  (registers ds.scalex)
from scalex._version import __version__ as __version__

if TYPE_CHECKING:  # pragma: no cover
    from scalex.analysis.escape import escape  # noqa: F401
    from scalex.engines.linear import linear_theory  # noqa: F401
    from scalex.engines.ode import solve_ode  # noqa: F401
    from scalex.engines.simulate import simulate  # noqa: F401
    from scalex.experiments.compare import compare  # noqa: F401
    from scalex.experiments.store import open_store  # noqa: F401
    from scalex.experiments.sweep import sweep  # noqa: F401
    from scalex.model import integrals, spectrum  # noqa: F401
    from scalex.model.integrals import generalization_error  # noqa: F401
    from scalex.model.setup import Setup  # noqa: F401
    from scalex.model.weights import sample_weights  # noqa: F401
    from scalex.schema import (  # noqa: F401
        initial_overlaps,
        open_dataset,
        to_netcdf,
        validate,
    )

# public name -> (module, attribute); attribute None means the module itself
_PUBLIC: dict[str, tuple[str, str | None]] = {
    "Setup": ("scalex.model.setup", "Setup"),
    "solve_ode": ("scalex.engines.ode", "solve_ode"),
    "simulate": ("scalex.engines.simulate", "simulate"),
    "linear_theory": ("scalex.engines.linear", "linear_theory"),
    "escape": ("scalex.analysis.escape", "escape"),
    "sweep": ("scalex.experiments.sweep", "sweep"),
    "compare": ("scalex.experiments.compare", "compare"),
    "open_store": ("scalex.experiments.store", "open_store"),
    "open_dataset": ("scalex.schema", "open_dataset"),
    "to_netcdf": ("scalex.schema", "to_netcdf"),
    "validate": ("scalex.schema", "validate"),
    "generalization_error": ("scalex.model.integrals", "generalization_error"),
    "initial_overlaps": ("scalex.schema", "initial_overlaps"),
    "sample_weights": ("scalex.model.weights", "sample_weights"),
    "integrals": ("scalex.model.integrals", None),
    "spectrum": ("scalex.model.spectrum", None),
    "datasets": ("scalex.model.datasets", None),
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str) -> Any:
    try:
        module, attr = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'scalex' has no attribute {name!r}") from None
    obj = import_module(module) if attr is None else getattr(import_module(module), attr)
    globals()[name] = obj  # cache: later accesses skip __getattr__
    return obj


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
