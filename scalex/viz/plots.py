"""The standard pictures of scaling-law results, with holoviews, and their export.

Every function takes a scalex result Dataset (schema in `scalex.schema`) and returns a
holoviews object that renders with both the bokeh backend (interactive HTML) and the
matplotlib backend (static PNG); `save` writes both. Axis labels come from the ``long_name`` and
``units`` attributes of the variables, titles from the `Setup` recorded in the attributes.

Dimensions of a result are read as follows: ``alpha`` is the time axis, ``seed`` is averaged
(mean with a band), one sweep dimension (``over``) is overlaid with a colour map, and every other
sweep dimension becomes a slider of a `holoviews.HoloMap` (static, so it exports to HTML).

Also reached as ``ds.scalex.plot.<name>(...)`` through the accessor.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.common.atomic import atomic_path

__all__ = [
    "compare",
    "dimension",
    "extend",
    "inline_assets",
    "learning_curves",
    "local_exponent",
    "order_parameters",
    "plateau_length",
    "predicted_exponent",
    "report",
    "save",
    "sweep_dims",
    "title",
]

#: dims that belong to one run; everything else except ``seed`` is a sweep dim
CORE_DIMS = ("alpha", "group", "student_i", "student_j", "teacher_n", "teacher_m")
BANDS = ("std", "minmax", None)
FORMATS = ("html", "png", "svg")

#: short names for legends and titles
SYMBOLS = {"beta": "β", "eta": "η", "sigma_J": "σ_J", "noise": "s", "trainable": "N_l",
           "alpha": "α", "seed": "seed"}
METHODS = {"ode": "ODE", "simulate": "SGD simulation", "sgd": "SGD simulation",
           "sgd_real_data": "SGD on real data", "linear": "linear theory",
           "initial": "initial condition"}

WIDTH, HEIGHT = 640, 420
THEORY_COLOR = "#d62728"


# ----------------------------------------------------------------------------- backends
_LOADED = False


def _load_backends() -> None:
    """Register the bokeh and matplotlib plotting backends without a notebook.

    Importing a holoviews plotting backend makes it the current one; the previous current
    backend is restored so that loading scalex.plot changes no global state.
    """
    global _LOADED
    if _LOADED:
        return
    current = hv.Store.current_backend
    for module in ("holoviews.plotting.bokeh", "holoviews.plotting.mpl"):
        importlib.import_module(module)

    hv.Store.set_current_backend(current)
    _LOADED = True


@contextlib.contextmanager
def _backend(name: str) -> Iterator[None]:
    """Make ``name`` the current holoviews backend for the block only."""
    _load_backends()
    previous = hv.Store.current_backend
    hv.Store.set_current_backend(name)
    try:
        yield
    finally:
        hv.Store.set_current_backend(previous)


def _style(obj: Any, **per_backend: Mapping[str, Any]) -> Any:
    """Apply options for each backend (``bokeh=...``, ``matplotlib=...``) to ``obj``."""
    _load_backends()
    for backend, options in per_backend.items():
        if options:
            obj = obj.opts(backend=backend, **options)
    return obj


_MPL_DASH = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-."}


def _line_style(color: str, width: float = 2.0, dash: str = "solid", alpha: float = 1.0,
                hover: bool = True) -> dict[str, dict[str, Any]]:
    bokeh: dict[str, Any] = {"color": color, "line_width": width, "line_dash": dash,
                             "alpha": alpha}
    if hover:
        bokeh["tools"] = ["hover"]
    return {"bokeh": bokeh,
            "matplotlib": {"color": color, "linewidth": 0.75 * width,
                           "linestyle": _MPL_DASH[dash], "alpha": alpha}}


def _fill_style(color: str, alpha: float = 0.2) -> dict[str, dict[str, Any]]:
    return {"bokeh": {"fill_color": color, "fill_alpha": alpha, "line_alpha": 0.0},
            "matplotlib": {"facecolor": color, "alpha": alpha, "linewidth": 0}}


def _frame_style(width: int, height: int, title: str, *, logx: bool = True, logy: bool = True,
                 legend: bool = True, ylim: tuple[float, float] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Plot-level options of one overlay, for both backends."""
    common: dict[str, Any] = {"logx": logx, "logy": logy, "show_grid": True, "title": title,
                              "show_legend": legend}
    if ylim is not None:
        common["ylim"] = tuple(ylim)
    # holoviews' matplotlib backend measures a log axis in natural-log units while matplotlib
    # uses decades, so on semi-log axes the requested aspect is off by ln 10
    aspect = width / height * (math.log(10) if logx and not logy else 1.0) / (
        math.log(10) if logy and not logx else 1.0)
    return {
        "bokeh": {**common, "width": width, "height": height, "legend_position": "right",
                  "fontscale": 1.1},
        "matplotlib": {**common, "aspect": aspect, "fig_size": 160,
                       "legend_position": "right"},
    }


# ----------------------------------------------------------------------------- labels
def dimension(obj: xr.DataArray | None, name: str) -> hv.Dimension:
    """A holoviews Dimension named ``name`` whose label and unit come from ``obj.attrs``.

    ``long_name`` becomes the axis label; ``units`` is appended unless it is "1"
    (dimensionless) or empty.
    """
    attrs = {} if obj is None else obj.attrs
    label = str(attrs.get("long_name", name))
    units = str(attrs.get("units", "")).strip()
    spec: dict[str, Any] = {"label": label}
    if units and units != "1":
        spec["unit"] = units
    return hv.Dimension(name, **spec)


def _short_label(label: str) -> str:
    """The symbol of a long name such as "student-teacher overlap r^τ_in = J_i P_τ B_n / N"."""
    head = label.split("=")[0].strip()
    return head.split()[-1] if "=" in label and head else label


def _symbol(name: str) -> str:
    return SYMBOLS.get(name, name)


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _key_label(dims: Sequence[str], key: Sequence[Any]) -> str:
    return ", ".join(f"{_symbol(d)}={_fmt(v)}" for d, v in zip(dims, key))


def title(attrs: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """A one-line title with the key parameters of the run recorded in ``attrs``.

    Parameters named in ``skip`` (typically the sweep dims) are left out.
    """
    skip = set(skip) | set(str(attrs.get("sweep_dims", "")).split())
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        # an axis "K=M" of scalex.sweep sets several fields
        skip |= {name.strip() for key in json.loads(attrs.get("sweep_over", "{}"))
                 for name in str(key).split("=")}
    method = METHODS.get(str(attrs.get("method", "")), str(attrs.get("method", "")))
    parts = []
    for key in ("K", "M", "N", "L"):
        if key in attrs and key not in skip:
            parts.append(f"{key}={_fmt(attrs[key])}")
    if "eigenvalues" in attrs:
        parts.append("explicit spectrum")
    elif "beta" in attrs and "beta" not in skip:
        parts.append(f"β={_fmt(attrs['beta'])}")
    for key in ("eta", "sigma_J"):
        if key in attrs and key not in skip:
            parts.append(f"{_symbol(key)}={_fmt(attrs[key])}")
    if "trainable" in attrs and "trainable" not in skip and "N" in attrs and (
        int(attrs["trainable"]) < int(attrs["N"])
    ):
        parts.append(f"N_l={_fmt(attrs['trainable'])}")
    if attrs.get("activation") == "linear":
        parts.append("linear g")
    head = f"{method}: " if method else ""
    return head + " ".join(parts)


def _colors(n: int, cmap: str) -> list[str]:
    """``n`` colours sampled from a matplotlib colour map (its pale top end left out)."""
    import matplotlib as mpl
    from matplotlib.colors import to_hex

    if n == 1:
        return ["#1f77b4"]
    colormap = mpl.colormaps[cmap]
    return [to_hex(colormap(x)) for x in np.linspace(0.0, 0.88, n)]


# ----------------------------------------------------------------------------- data access
def _as_dataarray(ds: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    if isinstance(ds, xr.DataArray):
        return ds
    if variable not in ds.data_vars:
        raise ValueError(
            f"variable: {variable!r} is not in the dataset; available: {sorted(ds.data_vars)}"
        )
    return ds[variable]


def _attrs(ds: xr.Dataset | xr.DataArray) -> dict[str, Any]:
    return dict(ds.attrs)


def sweep_dims(da: xr.DataArray | xr.Dataset, attrs: Mapping[str, Any] | None = None) -> list[str]:
    """The sweep dims of ``da``: every dim that is neither a core dim nor ``seed``.

    Ordered as ``attrs["sweep_dims"]`` lists them, then in the order of ``da.dims``.
    """
    dims = [d for d in da.dims if d not in CORE_DIMS and d != "seed"]
    listed = str((attrs or da.attrs).get("sweep_dims", "")).split()
    return [d for d in listed if d in dims] + [d for d in dims if d not in listed]


def _split_dims(da: xr.DataArray, attrs: Mapping[str, Any], over: str | None,
                aggregate: Sequence[str] = ("seed",)) -> tuple[str | None, list[str]]:
    """(overlay dim, slider dims) of ``da``; ``over=None`` picks the first sweep dim."""
    sweep = sweep_dims(da, attrs)
    if over is not None:
        if over not in da.dims:
            raise ValueError(
                f"over: {over!r} is not a dimension of the data; choose one of "
                f"{[d for d in da.dims if d not in CORE_DIMS]}"
            )
        if over in CORE_DIMS:
            raise ValueError(f"over: must be a sweep dim or 'seed', got the core dim {over!r}")
    elif sweep:
        over = sweep[0]
    sliders = [d for d in sweep if d != over]
    return over, sliders


class _Series:
    """One plotted curve: x, the (seed-)mean y, an optional band, and what it is."""

    def __init__(self, x: np.ndarray, y: np.ndarray, lo: np.ndarray | None,
                 hi: np.ndarray | None, n_seeds: int) -> None:
        self.x, self.y, self.lo, self.hi, self.n_seeds = x, y, lo, hi, n_seeds


def _reduce_seeds(da: xr.DataArray, band: str | None, xdim: str) -> _Series:
    """Mean over ``seed`` (if present) with a ±1 std or min–max band (THEORY §6 averages)."""
    if band not in BANDS:
        raise ValueError(f"band: must be one of {BANDS}, got {band!r}")
    x = np.asarray(da[xdim].values, dtype=float)
    if "seed" not in da.dims or da.sizes["seed"] == 1:
        y = da.squeeze("seed", drop=True) if "seed" in da.dims else da
        return _Series(x, np.asarray(y.transpose(xdim).values, dtype=float), None, None, 1)
    vals = np.asarray(da.transpose("seed", xdim).values, dtype=float)
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(vals, axis=0)
        if band == "std":
            std = np.nanstd(vals, axis=0)
            lo, hi = mean - std, mean + std
        elif band == "minmax":
            lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        else:
            lo = hi = None
    return _Series(x, mean, lo, hi, vals.shape[0])


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of diverged runs
        yield


def _valid(x: np.ndarray, *ys: np.ndarray | None, logx: bool, logy: bool) -> np.ndarray:
    """Mask of points that a (log-)axis can show: finite, and positive on log axes."""
    ok = np.isfinite(x)
    if logx:
        ok &= x > 0
    for y in ys:
        if y is None:
            continue
        ok &= np.isfinite(y)
        if logy:
            ok &= y > 0
    return ok


def _frames(da: xr.DataArray, over: str | None, sliders: Sequence[str]
            ) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, xr.DataArray]]]]:
    """Yield (slider key, [(over value, sub-array), ...]) for every frame."""
    values = [list(da[d].values) for d in sliders]
    for key in itertools.product(*values):
        sub = da.sel(dict(zip(sliders, key))) if sliders else da
        if over is None:
            yield key, [(None, sub)]
        else:
            yield key, [(v, sub.sel({over: v})) for v in sub[over].values]


def _holomap(frames: Mapping[tuple[Any, ...], Any], sliders: Sequence[str],
             da: xr.DataArray) -> Any:
    if not sliders:
        return frames[()]
    return hv.HoloMap(dict(frames), kdims=[dimension(da[d], d) for d in sliders])


# ----------------------------------------------------------------------------- learning curves
def _series_elements(series: _Series, xdim: hv.Dimension, ydim: hv.Dimension, color: str,
                     label: str, *, logx: bool, logy: bool, dash: str = "solid",
                     width: float = 2.0) -> list[Any]:
    """A Curve of the mean and, when there is a band, an Area under it."""
    out = []
    if series.lo is not None:
        ok = _valid(series.x, series.lo, series.hi, logx=logx, logy=logy)
        if ok.any():
            # a distinct label: holoviews resolves dimensions by label too
            upper = hv.Dimension(f"{ydim.name}_upper", label=f"{ydim.label} (band top)",
                                 unit=ydim.unit)
            area = hv.Area((series.x[ok], series.lo[ok], series.hi[ok]), kdims=[xdim],
                           vdims=[ydim, upper])
            out.append(_style(area, **_fill_style(color)))
    ok = _valid(series.x, series.y, logx=logx, logy=logy)
    curve = hv.Curve((series.x[ok], series.y[ok]), kdims=[xdim], vdims=[ydim], label=label)
    out.append(_style(curve, **_line_style(color, width=width, dash=dash)))
    return out


def _curve_label(over: str | None, value: Any, series: _Series, suffix: str = "") -> str:
    parts = []
    if over is not None:
        parts.append(f"{_symbol(over)}={_fmt(value)}")
    if suffix:
        parts.append(suffix)
    if series.n_seeds > 1:
        parts.append(f"({series.n_seeds} seeds)")
    return " ".join(parts) if parts else "ε_g"


def _plateau_marks(info: xr.Dataset | None, selection: Mapping[str, Any], color: str,
                   logx: bool) -> list[Any]:
    """A shaded span from plateau start to end and dashed lines at both ends."""
    if info is None:
        return []
    sel = {d: v for d, v in selection.items() if d in info.dims}
    point = info.sel(sel) if sel else info
    with _quiet_nan_warnings():
        if "seed" in point.dims:
            point = point.mean("seed", skipna=True)
        start = float(np.nanmean(np.asarray(point["plateau_start"].values, dtype=float)))
        end = float(np.nanmean(np.asarray(point["plateau_end"].values, dtype=float)))
    has = bool(np.any(np.asarray(point["has_plateau"].values))) if "has_plateau" in point \
        else True
    if not has or not (np.isfinite(start) and np.isfinite(end)) or end <= start:
        return []
    if logx and start <= 0:
        return []
    span = _style(hv.VSpan(start, end), bokeh={"color": color, "alpha": 0.08},
                  matplotlib={"facecolor": color, "alpha": 0.08, "linewidth": 0})
    lines = [_style(hv.VLine(a), **_line_style(color, 1.2, "dashed", 0.8, hover=False))
             for a in (start, end)]
    return [span, *lines]


def _plateau_info(ds: xr.Dataset | xr.DataArray, plateau: xr.Dataset | None) -> xr.Dataset:
    if plateau is not None:
        return plateau

    analysis = import_module("scalex.analysis.measures")  # lazy: plots import without it

    return analysis.plateau(ds)


def learning_curves(
    ds: xr.Dataset | xr.DataArray,
    over: str | None = None,
    *,
    variable: str = "eg",
    band: str | None = "minmax",
    mark_plateau: bool = False,
    plateau: xr.Dataset | None = None,
    cmap: str = "viridis",
    logx: bool = True,
    logy: bool = True,
    title_text: str | None = None,
    ylim: tuple[float, float] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """ε_g(α) on log–log axes, one curve per value of ``over``, a slider for other sweep dims.

    Parameters
    ----------
    ds : a scalex result (ODE, simulation, linear theory or a sweep of them), or its ``eg``.
    over : sweep dim to overlay with the colour map ``cmap``; default the first sweep dim.
        ``over="seed"`` draws every seed instead of their mean.
    variable : the variable to draw against α (default ``"eg"``).
    band : where a ``seed`` dim exists the mean is drawn with a band of ``"minmax"`` (default;
        it stays positive on a log axis) or ``"std"`` (±1 standard deviation), or ``None``.
    mark_plateau : shade the plateau from ``plateau_start`` to ``plateau_end`` and draw dashed
        lines there, as measured by ``scalex.analysis.plateau(ds)`` or given as ``plateau``.
    title_text : overrides the automatic title (the method and the fixed parameters).
    ylim : fixed y range, e.g. to keep an exponential decay from squashing power laws.

    Returns
    -------
    An `hv.Overlay` of `hv.Curve` (and `hv.Area` bands, `hv.VSpan`/`hv.VLine` plateau marks),
    or an `hv.HoloMap` of them keyed by the remaining sweep dims.
    """
    _load_backends()
    da = _as_dataarray(ds, variable)
    if "alpha" not in da.dims:
        raise ValueError(f"variable: {variable!r} has no 'alpha' dim (dims {da.dims})")
    attrs = _attrs(ds)
    over, sliders = _split_dims(da, attrs, over)
    info = _plateau_info(ds, plateau) if mark_plateau else None
    xdim, ydim = dimension(da["alpha"], "alpha"), dimension(da, variable)
    head = title_text or title(attrs, skip=[*sliders, *([over] if over else [])])
    frames = {}
    for key, members in _frames(da, over, sliders):
        colors = _colors(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            if over == "seed":
                series = _Series(np.asarray(sub["alpha"].values, dtype=float),
                                 np.asarray(sub.values, dtype=float), None, None, 1)
            else:
                series = _reduce_seeds(sub, band, "alpha")
            label = _curve_label(over, value, series)
            elements += _series_elements(series, xdim, ydim, color, label, logx=logx, logy=logy)
            selection = dict(zip(sliders, key))
            if over is not None and over != "seed":
                selection[over] = value
            elements += _plateau_marks(info, selection, color, logx)
        frame_title = head + (f" — {_key_label(sliders, key)}" if sliders else "")
        overlay = hv.Overlay(elements)
        frames[key] = _style(overlay, **_frame_style(width, height, frame_title, logx=logx,
                                                     logy=logy, ylim=ylim))
    return _holomap(frames, sliders, da)


# ----------------------------------------------------------------------------- compare
def _method_name(ds: xr.Dataset | xr.DataArray, fallback: str) -> str:
    return METHODS.get(str(ds.attrs.get("method", "")), fallback)


def compare(
    ds_sim: xr.Dataset | xr.DataArray,
    ds_theory: xr.Dataset | xr.DataArray,
    over: str | None = None,
    *,
    variable: str = "eg",
    band: str | None = "minmax",
    labels: tuple[str, str] | None = None,
    cmap: str = "viridis",
    logx: bool = True,
    logy: bool = True,
    title_text: str | None = None,
    ylim: tuple[float, float] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """Theory (dashed) over simulation (solid, seed mean with a band), e.g. ODE on SGD.

    Sweep dims are taken from ``ds_sim``; ``ds_theory`` is selected at the same values where
    it has the dim and drawn unchanged where it has not (one theory curve for all seeds).
    A ``seed`` dim of the theory (per-seed initial conditions) is averaged without a band.

    Returns an `hv.Overlay` (or `hv.HoloMap` over the remaining sweep dims) of `hv.Curve`
    elements, labelled with ``labels`` (default: the producing methods of the two datasets).
    """
    _load_backends()
    sim = _as_dataarray(ds_sim, variable)
    theory = _as_dataarray(ds_theory, variable)
    for name, da in (("ds_sim", sim), ("ds_theory", theory)):
        if "alpha" not in da.dims:
            raise ValueError(f"{name}: {variable!r} has no 'alpha' dim (dims {da.dims})")
    sim_label, theory_label = labels or (_method_name(ds_sim, "simulation"),
                                         _method_name(ds_theory, "theory"))
    attrs = _attrs(ds_sim)
    over, sliders = _split_dims(sim, attrs, over)
    xdim, ydim = dimension(sim["alpha"], "alpha"), dimension(sim, variable)
    head = title_text or f"{theory_label} vs {sim_label}: " + title(
        {k: v for k, v in attrs.items() if k != "method"},
        skip=[*sliders, *([over] if over else [])])
    frames = {}
    for key, members in _frames(sim, over, sliders):
        colors = _colors(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            selection = dict(zip(sliders, key))
            if over is not None:
                selection[over] = value
            series = _reduce_seeds(sub, band, "alpha")
            elements += _series_elements(series, xdim, ydim, color,
                                         _curve_label(over, value, series, sim_label),
                                         logx=logx, logy=logy)
            th = theory.sel({d: v for d, v in selection.items() if d in theory.dims})
            extra = [d for d in th.dims if d not in ("alpha", "seed")]
            if extra:
                raise ValueError(
                    f"ds_theory: dims {extra} are not sweep dims of ds_sim; select them first"
                )
            th_series = _reduce_seeds(th, None, "alpha")
            th_color = THEORY_COLOR if over is None else color
            th_label = f"{_symbol(over)}={_fmt(value)} {theory_label}" if over else theory_label
            elements += _series_elements(th_series, xdim, ydim, th_color, th_label, logx=logx,
                                         logy=logy, dash="dashed", width=2.5)
        frame_title = head + (f" — {_key_label(sliders, key)}" if sliders else "")
        frames[key] = _style(hv.Overlay(elements),
                             **_frame_style(width, height, frame_title, logx=logx, logy=logy,
                                          ylim=ylim))
    return _holomap(frames, sliders, sim)


# ----------------------------------------------------------------------------- local exponent
def predicted_exponent(beta: float) -> float:
    """β/(1+β): the decay exponent of ε_g ∝ α^(−β/(1+β)) (THEORY §4, linear activation)."""
    if not beta > 0:
        raise ValueError(f"beta: must be > 0, got {beta!r}")
    return beta / (1.0 + beta)


def _local_exponent_data(ds: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    """The local exponent of ``ds`` from `scalex.analysis.local_exponent`, or ``ds`` itself."""
    if isinstance(ds, xr.DataArray) and ds.name != "eg":
        return ds
    if isinstance(ds, xr.Dataset) and variable in ds.data_vars:
        return ds[variable]

    analysis = import_module("scalex.analysis.measures")  # lazy: plots import without it

    out = analysis.local_exponent(ds)
    if isinstance(out, xr.Dataset):
        out = out[variable] if variable in out.data_vars else next(iter(out.data_vars.values()))
    return out


def local_exponent(
    ds: xr.Dataset | xr.DataArray,
    over: str | None = None,
    *,
    beta: float | None = None,
    variable: str = "local_exponent",
    band: str | None = "minmax",
    cmap: str = "viridis",
    title_text: str | None = None,
    ylim: tuple[float, float] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """The local exponent −d ln ε_g / d ln α against α, with β/(1+β) as an `hv.HLine`.

    ``ds`` is a result Dataset (the exponent is computed by `scalex.analysis.local_exponent`),
    or a DataArray / Dataset that already holds ``variable``. ``beta`` defaults to the β of the
    run (``attrs["beta"]``, or the ``beta`` sweep coordinate, one reference line per β then).
    """
    _load_backends()
    da = _local_exponent_data(ds, variable)
    attrs = {**_attrs(ds), **{k: v for k, v in da.attrs.items() if k not in ("long_name",
                                                                            "units")}}
    if "long_name" not in da.attrs:
        da = da.assign_attrs(long_name="local exponent −d ln ε_g / d ln α", units="1")
    over, sliders = _split_dims(da, attrs, over)
    xdim, ydim = dimension(da["alpha"], "alpha"), dimension(da, "local_exponent")
    fixed = title(attrs, skip=[*sliders, *([over] if over else [])])
    head = title_text or "local exponent" + (f": {fixed}" if fixed else "") + \
        " (dashed: β/(1+β))"
    frames = {}
    for key, members in _frames(da, over, sliders):
        colors = _colors(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            series = _reduce_seeds(sub, band, "alpha")
            elements += _series_elements(series, xdim, ydim, color,
                                         _curve_label(over, value, series, "measured"),
                                         logx=True, logy=False)
            if over == "beta" and beta is None:
                elements.append(_reference(predicted_exponent(float(value)), color))
        if not (over == "beta" and beta is None):
            b = beta
            if b is None:
                selection = dict(zip(sliders, key))
                b = float(selection["beta"]) if "beta" in selection else attrs.get("beta")
            if b is not None and float(b) > 0:
                elements.append(_reference(predicted_exponent(float(b)), "black"))
        frame_title = head + (f" — {_key_label(sliders, key)}" if sliders else "")
        frames[key] = _style(hv.Overlay(elements),
                             **_frame_style(width, height, frame_title, logx=True, logy=False,
                                          ylim=ylim))
    return _holomap(frames, sliders, da)


def _reference(value: float, color: str) -> hv.HLine:
    line = hv.HLine(value, label=f"β/(1+β) = {value:.3g}")
    return _style(line, **_line_style(color, 1.5, "dashed", 0.9, hover=False))


# ----------------------------------------------------------------------------- plateau length
def _measured_plateau(data: xr.Dataset) -> xr.Dataset:
    if "plateau_length" in data.data_vars:
        return data

    analysis = import_module("scalex.analysis.measures")  # lazy: plots import without it

    return analysis.plateau(data)


def plateau_length(
    data: xr.Dataset,
    x: str = "L",
    over: str | None = "K",
    *,
    predicted: xr.DataArray | str | None = "auto",
    cmap: str = "viridis",
    logx: bool = True,
    logy: bool = True,
    title_text: str | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """Plateau length against ``x`` (default L), overlaid over ``over`` (default K), log axes.

    ``data`` is a sweep result (the plateau is measured by `scalex.analysis.plateau`) or a
    summary/plateau Dataset holding ``plateau_length`` (seed mean ± std as error bars).
    ``predicted`` is the escape-theory prediction (THEORY §5, plateau length ≈ ln(1/asymmetry)/μ)
    as a DataArray over the same dims, the name of a variable of ``data``, ``"auto"`` (the
    variable ``plateau_length_predicted`` if present, else none), ``"escape"`` (compute it now
    for every sweep point and seed with `scalex.catalog.escape_predictions`; this solves the
    escape theory once per member and can take long) or ``None``.
    Measured points are `hv.Scatter` with `hv.ErrorBars`; the prediction is a dashed `hv.Curve`.
    """
    _load_backends()
    measured = _measured_plateau(data)
    length = measured["plateau_length"]
    if x not in length.dims:
        raise ValueError(f"x: {x!r} is not a dimension of plateau_length (dims {length.dims})")
    if over is not None and over not in length.dims:
        over = None
    pred = _predicted_plateau(data, measured, predicted)
    attrs = {**_attrs(data)}
    sliders = [d for d in sweep_dims(length, attrs) if d not in (x, over)]
    xdim = dimension(length[x], x)
    ydim = dimension(length.assign_attrs(
        long_name=length.attrs.get("long_name", "plateau length"),
        units=length.attrs.get("units", "1")), "plateau_length")
    fixed = title({k: v for k, v in attrs.items() if k != "method"},
                  skip=[x, *sliders, *([over] if over else [])])
    head = title_text or "plateau length" + (f": {fixed}" if fixed else "")
    frames = {}
    for key, members in _frames(length, over, sliders):
        colors = _colors(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            series = _reduce_seeds(sub, "std", x)
            label = f"{_symbol(over)}={_fmt(value)} measured" if over else "measured"
            ok = _valid(series.x, series.y, logx=logx, logy=logy)
            points = hv.Scatter((series.x[ok], series.y[ok]), kdims=[xdim], vdims=[ydim],
                                label=label)
            elements.append(_style(points, bokeh={"color": color, "size": 8,
                                                  "tools": ["hover"]},
                                   matplotlib={"color": color, "s": 40}))
            if series.lo is not None:
                err = (series.hi - series.y)[ok]
                bars = hv.ErrorBars((series.x[ok], series.y[ok], err), kdims=[xdim],
                                    vdims=[ydim, "yerr"])
                elements.append(_style(bars, bokeh={"color": color},
                                       matplotlib={"color": color}))
            if pred is not None:
                selection = dict(zip(sliders, key))
                if over is not None:
                    selection[over] = value
                p = pred.sel({d: v for d, v in selection.items() if d in pred.dims})
                p_series = _reduce_seeds(p, None, x)
                p_label = f"{_symbol(over)}={_fmt(value)} predicted" if over else "predicted"
                elements += _series_elements(p_series, xdim, ydim,
                                             color if over else THEORY_COLOR, p_label,
                                             logx=logx, logy=logy, dash="dashed")
        frame_title = head + (f" — {_key_label(sliders, key)}" if sliders else "")
        style = _frame_style(width, height, frame_title, logx=logx, logy=logy)
        ticks = np.asarray(length[x].values)
        if ticks.size <= 12 and np.issubdtype(ticks.dtype, np.number):
            for options in style.values():  # the swept values themselves, not 2×10⁰
                options["xticks"] = [(float(t), _fmt(t)) for t in ticks]
            style["matplotlib"]["hooks"] = [_no_minor_labels]
        frames[key] = _style(hv.Overlay(elements), **style)
    return _holomap(frames, sliders, length)


def _no_minor_labels(plot: Any, element: Any) -> None:
    """matplotlib hook: no labels on the minor ticks of a log x axis with explicit ticks."""
    from matplotlib.ticker import NullFormatter

    plot.handles["axis"].xaxis.set_minor_formatter(NullFormatter())


def _predicted_plateau(data: xr.Dataset, measured: xr.Dataset,
                       predicted: xr.DataArray | str | None) -> xr.DataArray | None:
    if predicted is None or isinstance(predicted, xr.DataArray):
        return predicted
    if predicted == "escape":
        if "scalex_setup" not in data.attrs:
            raise ValueError("predicted: 'escape' needs a scalex result (its Setup attributes)")
        from scalex.experiments.catalog import escape_predictions  # per member: sweep point × seed

        return escape_predictions(data)
    name = "plateau_length_predicted" if predicted == "auto" else predicted
    for source in (measured, data):
        if name in source.data_vars:
            return source[name]
    if predicted == "auto":
        return None
    raise ValueError(f"predicted: no variable {predicted!r} in the data")


# ----------------------------------------------------------------------------- order parameters
def _pick_alphas(alpha: np.ndarray, requested: float | Sequence[float] | None, n: int = 6
                 ) -> list[float]:
    """Requested α snapped to the grid, or ``n`` roughly log-spaced grid points."""
    if requested is not None:
        wanted = np.atleast_1d(np.asarray(requested, dtype=float))
        if np.any(~np.isfinite(wanted)) or np.any(wanted < 0):
            raise ValueError(f"alpha: must be finite and >= 0, got {requested!r}")
        idx = [int(np.argmin(np.abs(alpha - a))) for a in wanted]
    else:
        positive = np.flatnonzero(alpha > 0)
        if positive.size <= n:
            idx = list(range(alpha.size))
        else:
            targets = np.geomspace(alpha[positive[0]], alpha[-1], n)
            idx = [int(np.argmin(np.abs(np.log(alpha[positive]) - np.log(a))))
                   for a in targets]
            idx = [int(positive[i]) for i in idx]
    return [float(alpha[i]) for i in sorted(set(idx))]


def _pick_groups(ds: xr.Dataset, groups: int | Sequence[int] | None) -> list[int]:
    available = [int(g) for g in ds["group"].values
                 if np.isfinite(ds["eigenvalue"].sel(group=g).values).any()]  # NaN: padding
    if groups is None or isinstance(groups, int):
        n = 3 if groups is None else groups
        if n < 1:
            raise ValueError(f"groups: a count must be >= 1, got {n}")
        if len(available) <= n:
            return available
        idx = np.unique(np.round(np.linspace(0, len(available) - 1, n)).astype(int))
        return [available[i] for i in idx]
    chosen = [int(g) for g in groups]
    missing = [g for g in chosen if g not in available]
    if missing:
        raise ValueError(f"groups: {missing} not among the groups 1..{max(available)}")
    return chosen


def order_parameters(
    ds: xr.Dataset,
    alpha: float | Sequence[float] | None = None,
    *,
    groups: int | Sequence[int] | None = None,
    seed: int | None = None,
    cmap: str = "RdBu_r",
    size: int = 300,
) -> hv.Layout:
    """Heatmaps of q^τ (student × student) and r^τ (student × teacher) per group (THEORY §2).

    One row per eigenvalue group τ (``groups``: labels, or a count spread over 1..L; default
    3), columns q and r; each panel is an `hv.HoloMap` of `hv.HeatMap` over ``alpha`` (the grid
    points nearest the requested α; default six log-spaced points) and any sweep dims. On the
    symmetric plateau every r^τ_in is alike; after escape r becomes one-to-one: specialisation.
    Colours are symmetric about 0 and fixed across α so the frames compare.

    With a ``seed`` dim one seed is shown (``seed``, default the first): hidden units of
    different draws specialise in different orders, so a seed mean would blur them.

    A linear-theory dataset without q/r gives instead the mode errors e_τ(α) of the chosen
    groups as an `hv.Overlay` of curves inside the Layout (THEORY §4).
    """
    _load_backends()
    if "q" not in ds.data_vars or "r" not in ds.data_vars:
        if "e" in ds.data_vars:
            return _mode_errors(ds, groups)
        raise ValueError("ds: has neither q/r overlaps nor mode errors e to draw")
    q, r = ds["q"], ds["r"]
    if "seed" in q.dims:
        chosen = ds["seed"].values[0] if seed is None else seed
        if chosen not in ds["seed"].values:
            raise ValueError(f"seed: {seed!r} not among {list(ds['seed'].values)}")
        q, r = q.sel(seed=chosen), r.sel(seed=chosen)
    alphas = _pick_alphas(np.asarray(ds["alpha"].values, dtype=float), alpha)
    chosen_groups = _pick_groups(ds, groups)
    sweep = sweep_dims(q, ds.attrs)
    keys = [dimension(ds["alpha"], "alpha"), *[dimension(ds[d], d) for d in sweep]]
    panels = []
    for g in chosen_groups:
        lam = ds["eigenvalue"].sel(group=g).values
        lam_txt = f"λ={_fmt(float(np.ravel(lam)[0]))}" if np.size(lam) == 1 else ""
        for var, other in ((q, "student_j"), (r, "teacher_n")):
            name = var.name
            sub = var.sel(group=g).sel(alpha=alphas, method="nearest")
            with _quiet_nan_warnings():
                limit = float(np.nanmax(np.abs(sub.values))) if sub.size else 1.0
            limit = limit if np.isfinite(limit) and limit > 0 else 1.0
            xdim = dimension(ds[other], other)
            ydim = dimension(ds["student_i"], "student_i")
            zdim = dimension(var, str(name))
            frames = {}
            values = [list(sub[d].values) for d in sweep]
            for a_val, *rest in itertools.product(list(sub["alpha"].values), *values):
                cell = sub.sel(alpha=a_val, **dict(zip(sweep, rest)))
                mat = np.asarray(cell.transpose("student_i", other).values, dtype=float)
                ii, jj = np.meshgrid(cell["student_i"].values, cell[other].values,
                                     indexing="ij")
                heat = hv.HeatMap((jj.ravel(), ii.ravel(), mat.ravel()), kdims=[xdim, ydim],
                                  vdims=[zdim])
                frames[(float(a_val), *rest)] = heat
            hmap = hv.HoloMap(frames, kdims=keys)
            panel_title = f"{name}^τ, τ={g} {lam_txt}".strip()
            common = {"cmap": cmap, "clim": (-limit, limit), "colorbar": True,
                      "clabel": _short_label(zdim.label), "invert_yaxis": True,
                      "title": panel_title}
            if sub.sizes["student_i"] <= 12 and sub.sizes[other] <= 12:
                common["xticks"] = [int(v) for v in sub[other].values]
                common["yticks"] = [int(v) for v in sub["student_i"].values]
            hmap = _style(hmap, bokeh={**common, "width": size + 80, "height": size,
                                       "tools": ["hover"]},
                          matplotlib={**common, "show_values": False, "sublabel_format": ""})
            panels.append(hmap)
    layout = hv.Layout(panels).cols(2)
    head = title(ds.attrs)
    return _style(layout, bokeh={"title": head},
                  matplotlib={"title": head, "sublabel_format": "", "fig_size": 120})


def _mode_errors(ds: xr.Dataset, groups: int | Sequence[int] | None) -> hv.Layout:
    """e_τ(α) of the linear theory for the chosen groups, one colour per group (THEORY §4)."""
    e = ds["e"]
    chosen = _pick_groups(ds, groups if groups is not None else 6)
    colors = _colors(len(chosen), "viridis")
    xdim, ydim = dimension(ds["alpha"], "alpha"), dimension(e, "e")
    sweep = sweep_dims(e, ds.attrs)
    frames = {}
    for key, _members in _frames(e, None, sweep):
        sub = e.sel(dict(zip(sweep, key))) if sweep else e
        elements: list[Any] = []
        for g, color in zip(chosen, colors):
            series = _reduce_seeds(sub.sel(group=g), None, "alpha")
            elements += _series_elements(series, xdim, ydim, color, f"τ={g}", logx=True,
                                         logy=True)
        frame_title = "mode errors e_τ: " + title(ds.attrs, skip=sweep)
        frames[key] = _style(hv.Overlay(elements), **_frame_style(WIDTH, HEIGHT, frame_title))
    return hv.Layout([_holomap(frames, sweep, e)])


# ----------------------------------------------------------------------------- composition
def extend(obj: hv.Overlay | hv.HoloMap, *elements: Any) -> hv.Overlay | hv.HoloMap:
    """``obj`` with ``elements`` (e.g. a reference curve or an hv.VSpan) drawn on top, keeping
    the plot options (log axes, title, limits, size) of ``obj`` in both backends, which a bare
    ``obj * element`` would drop. A HoloMap gets the elements in every frame."""
    _load_backends()
    if isinstance(obj, hv.HoloMap):
        return obj.clone({key: extend(frame, *elements) for key, frame in obj.data.items()})
    out = hv.Overlay([*(obj if isinstance(obj, hv.Overlay) else [obj]), *elements])
    for backend in ("bokeh", "matplotlib"):
        options = hv.Store.lookup_options(backend, obj, "plot").kwargs
        if options:
            out = out.opts(backend=backend, **options)
    return out


# ----------------------------------------------------------------------------- export
def _static(obj: Any, max_frames: int = 6) -> Any:
    """A matplotlib-friendly view: a HoloMap becomes a grid of its frames (if few) or its last
    frame; HoloMaps inside a Layout become their last frame."""
    if isinstance(obj, hv.HoloMap):
        if len(obj) <= max_frames and isinstance(obj.last, hv.Overlay):
            return _frames_grid(obj)
        return obj.last
    if isinstance(obj, hv.Layout):
        items = [item.last if isinstance(item, hv.HoloMap) else item for item in obj]
        # room between panels for their titles and outside legends, no "A", "B" labels,
        # panels of different quantities keep their own ranges
        options = {"vspace": 0.35, "hspace": 0.6, "fig_size": 180, "shared_axes": False,
                   **hv.Store.lookup_options("matplotlib", obj, "plot").kwargs,
                   "sublabel_format": ""}
        return hv.Layout(items).cols(obj._max_cols).opts(backend="matplotlib", **options)
    return obj


_PANEL_CDN = re.compile(r"https://cdn\.holoviz\.org/panel/[^/\"']+/dist/([A-Za-z0-9_./-]+)"
                        r"(?:\?v=[A-Za-z0-9._-]*)?")
_CSS_URL = re.compile(r"url\((['\"]?)([^)'\"]+)\1\)")
_MIME = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff"}


def _data_url(path: Path) -> str | None:
    """``path`` as a base64 data: URL (CSS with its own relative url(...) inlined too)."""
    mime = _MIME.get(path.suffix)
    if mime is None or not path.is_file():
        return None
    if path.suffix == ".css":
        def local(match: re.Match[str]) -> str:
            target = match.group(2)
            if target.startswith(("data:", "http:", "https:", "#")):
                return match.group(0)
            inner = _data_url((path.parent / target).resolve())
            return f"url('{inner}')" if inner else match.group(0)

        payload = _CSS_URL.sub(local, path.read_text(encoding="utf-8")).encode()
    else:
        payload = path.read_bytes()
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def inline_assets(text: str) -> str:
    """Replace the panel stylesheet and icon URLs that a saved page still points at on the CDN
    (panel links them even with inline resources) by data: URLs of the installed files, so
    the page needs no network."""
    import panel

    dist = Path(panel.__file__).parent / "dist"
    cache: dict[str, str | None] = {}

    def replace(match: re.Match[str]) -> str:
        rel = match.group(1)
        if rel not in cache:
            cache[rel] = _data_url(dist / rel)
        return cache[rel] or match.group(0)

    return _PANEL_CDN.sub(replace, text)


def _frames_grid(hmap: hv.HoloMap) -> hv.Layout:
    """The frames of a HoloMap of overlays side by side: the shared part of the frame titles
    goes to the top, each panel keeps its key, legends move inside the axes."""
    panels, heads = [], set()
    for key, frame in hmap.data.items():
        full = hv.Store.lookup_options("matplotlib", frame, "plot").kwargs.get("title", "")
        head, _, tail = str(full).partition(" — ")
        heads.add(head)
        label = tail or _key_label([d.name for d in hmap.kdims], key)
        panels.append(frame.opts(backend="matplotlib", clone=True, title=label,
                                 legend_position="best", fig_size=110))
    layout = hv.Layout(panels).cols(min(len(panels), 3))
    return layout.opts(backend="matplotlib", sublabel_format="",
                       title=heads.pop() if len(heads) == 1 else "")


def save(obj: Any, path_stem: str | os.PathLike[str],
         formats: Sequence[str] = ("html", "png"), *, title_text: str | None = None,
         dpi: int = 90) -> list[Path]:
    """Write ``obj`` as ``<path_stem>.html`` (bokeh, resources inline: works offline) and/or
    ``<path_stem>.png``/``.svg`` (matplotlib, no browser needed). Returns the written paths.

    A HoloMap keeps its sliders in HTML; in a static format it becomes a grid of its frames
    (up to six) or its last frame. The current holoviews backend is left as it was.
    """
    from bokeh.resources import INLINE

    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats: must be a non-empty selection of {FORMATS}, got {formats!r}")
    _load_backends()
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            if fmt == "html":
                with _backend("bokeh"), _quiet_progress():
                    hv.save(obj, tmp, backend="bokeh", resources=INLINE,
                            title=title_text or stem.name)
                tmp.write_text(inline_assets(tmp.read_text(encoding="utf-8")),
                               encoding="utf-8")
            else:
                with _backend("matplotlib"):
                    renderer = hv.renderer("matplotlib").instance(dpi=dpi, fig=fmt)
                    renderer.save(_static(obj), str(tmp.with_suffix("")), fmt=fmt)
                    _close_figures()
        written.append(path)
    return written


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence the progress bar that panel prints while it embeds the frames of a HoloMap."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        yield


def _close_figures() -> None:
    """Free the matplotlib figures the renderer leaves open (a sweep exports many)."""
    import matplotlib.pyplot as plt

    plt.close("all")


def report(*args: Any, **kwargs: Any) -> Path:
    """A self-contained ``report.html`` of one entry (see `scalex.report.report`)."""
    from scalex.viz.report import report as _report

    return _report(*args, **kwargs)
