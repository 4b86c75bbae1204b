"""The ``ds.scalex`` accessor: a thin front that delegates to scalex functions.

Registered on both `xarray.Dataset` and `xarray.DataArray` (one shared base class, as
cf_xarray does). It holds no logic of its own: each method calls the function of the same name
with the wrapped object as first argument.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import Any

import xarray as xr

from scalex.model.setup import Setup

__all__ = ["ScalexAccessor"]


def _delegate(module: str, name: str, doc_from: str | None = None):
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


class ScalexAccessor:
    """Shared base of the Dataset and DataArray accessors."""

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

    hierarchy = _delegate("schema", "hierarchy")
    plateau = _delegate("analysis.measures", "plateau")
    local_exponent = _delegate("analysis.measures", "local_exponent")
    fit_power_law = _delegate("analysis.measures", "fit_power_law")
    convergence = _delegate("analysis.measures", "convergence")
    summary = _delegate("analysis.measures", "summary")


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
