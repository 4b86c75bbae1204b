"""The xarray plumbing of `scalex.analysis.measures`: one 1-D kernel applied to every member.

A *member* is one learning curve: one combination of the dims other than the time axis
(``seed``, sweep parameters such as ``L`` or ``K``). `curve` takes ε_g out of a Dataset or a
DataArray, `per_member` maps a numpy kernel of `scalex.analysis.estimators` over the members
with ``xr.apply_ufunc(..., dask="parallelized")`` (lazy on dask input) and unpacks its packed
result into named variables, and `finish` records the thresholds and the variable metadata.
Definitions of the measurements: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["DIM", "SEED", "baseline_attr", "curve", "finish", "one_chunk", "per_member"]

DIM = "alpha"
SEED = "seed"


def one_chunk(da: xr.DataArray, *dims: Hashable) -> xr.DataArray:
    """``da`` with each of ``dims`` in one dask chunk (unchanged if not dask-backed)."""
    if da.chunks is not None:
        return da.chunk({d: -1 for d in dims})
    return da


def curve(obj: xr.Dataset | xr.DataArray, dim: str, baseline: Any = 0.0) -> xr.DataArray:
    """ε_g − baseline of a Dataset (``eg``) or of the DataArray itself, ``dim`` in one chunk."""
    if isinstance(obj, xr.Dataset):
        if "eg" not in obj:
            raise ValueError("ds: a Dataset must have an 'eg' variable (the learning curve)")
        da = obj["eg"]
    elif isinstance(obj, xr.DataArray):
        da = obj
    else:
        raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    if dim not in da.dims:
        raise ValueError(f"dim: {dim!r} is not a dimension of the curve (dims {da.dims})")
    if isinstance(baseline, xr.DataArray):
        if dim in baseline.dims:
            raise ValueError(f"baseline: must not depend on {dim!r} (one value per member)")
        da = da - baseline
    elif not (np.isscalar(baseline) and np.isfinite(baseline)):
        raise ValueError(f"baseline: must be a finite number or a DataArray, got {baseline!r}")
    elif baseline:
        da = da - baseline
    return one_chunk(da, dim)


def baseline_attr(baseline: Any) -> float | str:
    """How a baseline ε_∞ is recorded in the attributes (NetCDF-safe)."""
    return "per member" if isinstance(baseline, xr.DataArray) else float(baseline)


def _decode(codes: xr.DataArray, table: tuple[str, ...]) -> xr.DataArray:
    """Map integer codes (stored as float) to strings, lazily under dask."""
    lookup = np.asarray(table)
    width = max(len(s) for s in table)

    def kernel(c: np.ndarray) -> np.ndarray:
        return lookup[np.asarray(c, dtype=float).astype(int)]

    return xr.apply_ufunc(kernel, codes, dask="parallelized",
                          output_dtypes=[np.dtype(f"<U{width}")])


def per_member(
    kernel: Callable[..., np.ndarray],
    eg: xr.DataArray,
    names: Sequence[str],
    *,
    dim: str,
    others: Sequence[xr.DataArray] = (),
    core: Sequence[Hashable] | None = None,
    codes: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> xr.Dataset:
    """``kernel(alpha, eg, *others)`` on every member, unpacked into the variables ``names``.

    The kernel gets the 1-D time grid ``eg[dim]``, the member's curve (its ``core`` dims, by
    default just ``dim``; e.g. ``(seed, dim)`` for a bootstrap over seeds) and the member's
    slice of each of ``others`` along ``dim``, and returns a float array of ``len(names)``.
    ``codes`` maps a name holding integer codes to (new name, table of strings): the codes are
    replaced by the strings, appended after the other variables. Coordinates along the core
    dims are dropped. Lazy on dask input.
    """
    core = [dim] if core is None else list(core)
    packed = xr.apply_ufunc(
        kernel, eg[dim], eg, *others,
        input_core_dims=[[dim], core, *([dim] for _ in others)], output_core_dims=[["stat"]],
        vectorize=True, dask="parallelized", output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"stat": len(names)}},
    )
    out = xr.Dataset({name: packed.isel(stat=i, drop=True) for i, name in enumerate(names)})
    for code, (name, table) in (codes or {}).items():
        out[name] = _decode(out[code], table)
    out = out.drop_vars(list(codes or ()))
    return out.drop_vars([c for c in out.coords if set(core) & set(out[c].dims)])


def finish(
    out: xr.Dataset,
    src: xr.Dataset | xr.DataArray,
    analysis: str,
    params: Mapping[str, Any],
    meta: Mapping[str, tuple[str, str]],
) -> xr.Dataset:
    """``out`` with the attrs of ``src``, the analysis name and its thresholds ``params`` (as
    ``<analysis>_<key>``, NetCDF-safe), and ``long_name``/``units`` from ``meta`` per variable.
    """
    attrs = dict(src.attrs)
    attrs["analysis"] = analysis
    for key, val in params.items():
        if val is None:
            val = "none"
        elif isinstance(val, bool):
            val = int(val)
        attrs[f"{analysis}_{key}"] = val
    out.attrs = attrs
    for name, (long_name, units) in meta.items():
        if name in out.data_vars:
            out[name].attrs.update(long_name=long_name, units=units)
    return out
