"""scalex: neural scaling laws of two-layer teacher–student networks on power-law data.

Exact per-eigenvalue-group order-parameter ODEs, fast online-SGD simulation, the exact linear
theory, and analysis of plateaus and power laws, all as labelled xarray Datasets.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers ds.scalex)
from . import integrals, spectrum
from ._version import __version__
from .integrals import generalization_error
from .schema import open_dataset, to_netcdf, validate
from .setup import Setup
from .simulate import simulate
from .sweep import open_store, sweep
from .weights import initial_overlaps, sample_weights

__all__ = [
    "Setup",
    "__version__",
    "escape",
    "generalization_error",
    "initial_overlaps",
    "integrals",
    "linear_theory",
    "open_dataset",
    "open_store",
    "sample_weights",
    "simulate",
    "solve_ode",
    "spectrum",
    "sweep",
    "to_netcdf",
    "validate",
]

# Heavier pieces are imported on first use so `import scalex` stays fast. `simulate` and
# `sweep` are imported eagerly: they share their names with their modules, and importing a
# submodule later would rebind the package attribute from the function to the module.
_LAZY = {
    "solve_ode": ("ode", "solve_ode"),
    "linear_theory": ("linear", "linear_theory"),
    "escape": ("theory", "escape"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(f"scalex.{module}"), attr)
    if name in ("ode", "linear", "analysis", "theory", "catalog", "plot", "datasets",
                "schema", "weights", "cli"):
        return import_module(f"scalex.{name}")
    raise AttributeError(f"module 'scalex' has no attribute {name!r}")
