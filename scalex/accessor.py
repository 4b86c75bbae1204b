"""The ``ds.scalex`` accessor: a thin front that delegates to scalex functions.

Registered on both `xarray.Dataset` and `xarray.DataArray` (one shared base class, as
cf_xarray does). It holds no logic of its own: each method of `METHODS` calls the function of
the same name with the wrapped object as first argument.

``tree.scalex`` on an `xarray.DataTree` of one experiment by several routes (`scalex.compare`,
``<entry>-compare.nc``) applies the same analyses to every route and stacks them along a
``route`` dim (`scalex.experiments.compare.map_routes`), and draws the routes overlaid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

import xarray as xr

from scalex.model.setup import Setup

__all__ = ["METHODS", "DataTreeAccessor", "ScalexAccessor"]

#: the functions that ``ds.scalex`` and ``tree.scalex`` offer as methods: name -> module
#: (under ``scalex.``)
METHODS: dict[str, str] = {
    "hierarchy": "schema",
    "plateau": "analysis.measures",
    "local_exponent": "analysis.measures",
    "fit_power_law": "analysis.measures",
    "convergence": "analysis.measures",
    "summary": "analysis.measures",
}

_C = TypeVar("_C", bound=type)


def _with_methods(make: Callable[[str, str], Callable[..., Any]]) -> Callable[[_C], _C]:
    """A class decorator that adds ``make(module, name)`` as the method ``name`` for every
    entry of `METHODS`."""

    def decorate(cls: _C) -> _C:
        for name, module in METHODS.items():
            setattr(cls, name, make(module, name))
        return cls

    return decorate


def _delegate(module: str, name: str) -> Callable[..., Any]:
    def method(self, *args: Any, **kwargs: Any) -> Any:
        func = getattr(import_module(f"scalex.{module}"), name)
        return func(self._obj, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Delegates to :func:`scalex.{module}.{name}` with this object first."
    return method


class _PlotNamespace:
    """``ds.scalex.plot.<kind>(...)`` calls ``scalex.viz.plots.<kind>(ds, ...)``."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        func = getattr(import_module("scalex.viz.plots"), name)
        return lambda *args, **kwargs: func(self._obj, *args, **kwargs)

    def __dir__(self) -> list[str]:
        return list(getattr(import_module("scalex.viz.plots"), "__all__", []))


@_with_methods(_delegate)
class ScalexAccessor:
    """Shared base of the Dataset and DataArray accessors; its methods `METHODS` delegate."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    @property
    def setup(self) -> Setup:
        """The `Setup` of this result: for a sweep selected to one member
        (``ds.sel(L=4).scalex.setup``) that member's own Setup (`scalex.schema.member_setup`);
        raises ValueError naming the sweep dims if this still spans several members."""
        from scalex.schema import member_setup

        return member_setup(self._obj)

    @property
    def plot(self) -> _PlotNamespace:
        """Plots of this result (see `scalex.viz.plots`)."""
        return _PlotNamespace(self._obj)


@xr.register_dataset_accessor("scalex")
class DatasetAccessor(ScalexAccessor):
    """``ds.scalex``: scalex methods on a result Dataset."""

    def validate(self) -> xr.Dataset:
        """Check the schema (see `scalex.schema.validate`)."""
        from scalex.schema import validate

        return validate(self._obj)

    def to_netcdf(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Atomic NetCDF write (see `scalex.schema.to_netcdf`)."""
        from scalex.schema import to_netcdf

        return to_netcdf(self._obj, path, **kwargs)


@xr.register_dataarray_accessor("scalex")
class DataArrayAccessor(ScalexAccessor):
    """``da.scalex``: scalex methods on a DataArray such as ``ds.eg``."""


# ---------------------------------------------------------------------------------- DataTree
def _per_route(module: str, name: str) -> Callable[..., Any]:
    def method(self, *args: Any, **kwargs: Any) -> xr.Dataset:
        from scalex.experiments.compare import map_routes

        func = getattr(import_module(f"scalex.{module}"), name)
        return map_routes(self._obj, func, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = (f":func:`scalex.{module}.{name}` of every route, stacked along ``route`` "
                      "(`scalex.experiments.compare.map_routes`).")
    return method


class _TreePlotNamespace:
    """``tree.scalex.plot.compare()`` / ``.learning_curves()``: every route overlaid
    (`scalex.viz.routes.route_curves`)."""

    KINDS = ("compare", "learning_curves")

    def __init__(self, obj: xr.DataTree) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self.KINDS:
            raise AttributeError(
                f"{name}: a comparison tree draws {list(self.KINDS)}; plot one route with "
                f"tree[route].to_dataset().scalex.plot.{name}(...)")
        func = getattr(import_module("scalex.viz.plots"), name)
        return lambda *args, **kwargs: func(self._obj, *args, **kwargs)

    def __dir__(self) -> list[str]:
        return list(self.KINDS)


@xr.register_datatree_accessor("scalex")
@_with_methods(_per_route)
class DataTreeAccessor:
    """``tree.scalex``: a comparison tree, one node per route (`scalex.compare`); its methods
    `METHODS` apply to every route."""

    def __init__(self, obj: xr.DataTree) -> None:
        self._obj = obj

    @property
    def routes(self) -> list[str]:
        """The route nodes, in their order."""
        from scalex.experiments.compare import routes_of

        return routes_of(self._obj)

    @property
    def setup(self) -> Setup:
        """The `Setup` recorded at the root (for sweeps selected to one member, that member's;
        see `scalex.schema.member_setup`)."""
        from scalex.schema import member_setup

        return member_setup(self._obj.to_dataset())

    @property
    def plot(self) -> _TreePlotNamespace:
        """The routes overlaid (`scalex.viz.plots.compare` of the tree)."""
        return _TreePlotNamespace(self._obj)

    def validate(self) -> xr.DataTree:
        """Check every route node against the schema (`scalex.schema.validate`)."""
        from scalex.schema import SchemaError, validate

        for name in self.routes:
            try:
                validate(self._obj[name].to_dataset())
            except SchemaError as err:
                raise SchemaError(f"route {name!r}: {err}") from None
        return self._obj

    def to_netcdf(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Atomic NetCDF write, a group per route (`scalex.experiments.compare.to_netcdf`)."""
        from scalex.experiments.compare import to_netcdf

        return to_netcdf(self._obj, path, **kwargs)

    def to_zarr(self, path: str | os.PathLike[str]) -> Path:
        """Atomic zarr write, a group per route (`scalex.experiments.compare.to_zarr`)."""
        from scalex.experiments.compare import to_zarr

        return to_zarr(self._obj, path)
