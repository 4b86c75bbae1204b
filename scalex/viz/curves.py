"""Learning-curve plots: ε_g(α) of one result or a sweep, and theory against simulation.

`learning_curves` draws a variable (default ``eg``) on log–log axes, one colour per value of
the overlay dim, a seed mean with a band, sliders for the other sweep dims, and optionally the
measured plateau (`scalex.analysis.plateau`) as a shaded span. `compare` draws a theory (dashed,
e.g. the ODE or the linear theory) over a simulation (solid, seed mean with a band) on the grid
of the simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz.series import (
    Series,
    as_dataarray,
    curve_label,
    frames_by_key,
    holomap,
    quiet_nan_warnings,
    reduce_seeds,
    result_attrs,
    series_elements,
    split_dims,
)
from scalex.viz.style import (
    HEIGHT,
    METHODS,
    THEORY_COLOR,
    WIDTH,
    dimension,
    fmt,
    frame_style,
    key_label,
    line_style,
    load_backends,
    palette,
    styled,
    symbol_of,
    title,
)


def _plateau_marks(info: xr.Dataset | None, selection: Mapping[str, Any], color: str,
                   logx: bool) -> list[Any]:
    """A shaded span from plateau start to end and dashed lines at both ends."""
    if info is None:
        return []
    sel = {d: v for d, v in selection.items() if d in info.dims}
    point = info.sel(sel) if sel else info
    with quiet_nan_warnings():
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
    span = styled(hv.VSpan(start, end), bokeh={"color": color, "alpha": 0.08},
                  matplotlib={"facecolor": color, "alpha": 0.08, "linewidth": 0})
    lines = [styled(hv.VLine(a), **line_style(color, 1.2, "dashed", 0.8, hover=False))
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
    load_backends()
    da = as_dataarray(ds, variable)
    if "alpha" not in da.dims:
        raise ValueError(f"variable: {variable!r} has no 'alpha' dim (dims {da.dims})")
    attrs = result_attrs(ds)
    over, sliders = split_dims(da, attrs, over)
    info = _plateau_info(ds, plateau) if mark_plateau else None
    xdim, ydim = dimension(da["alpha"], "alpha"), dimension(da, variable)
    head = title_text or title(attrs, skip=[*sliders, *([over] if over else [])])
    frames = {}
    for key, members in frames_by_key(da, over, sliders):
        colors = palette(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            if over == "seed":
                series = Series(np.asarray(sub["alpha"].values, dtype=float),
                                 np.asarray(sub.values, dtype=float), None, None, 1)
            else:
                series = reduce_seeds(sub, band, "alpha")
            label = curve_label(over, value, series)
            elements += series_elements(series, xdim, ydim, color, label, logx=logx, logy=logy)
            selection = dict(zip(sliders, key))
            if over is not None and over != "seed":
                selection[over] = value
            elements += _plateau_marks(info, selection, color, logx)
        frame_title = head + (f" — {key_label(sliders, key)}" if sliders else "")
        overlay = hv.Overlay(elements)
        frames[key] = styled(overlay, **frame_style(width, height, frame_title, logx=logx,
                                                     logy=logy, ylim=ylim))
    return holomap(frames, sliders, da)


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
    load_backends()
    sim = as_dataarray(ds_sim, variable)
    theory = as_dataarray(ds_theory, variable)
    for name, da in (("ds_sim", sim), ("ds_theory", theory)):
        if "alpha" not in da.dims:
            raise ValueError(f"{name}: {variable!r} has no 'alpha' dim (dims {da.dims})")
    sim_label, theory_label = labels or (_method_name(ds_sim, "simulation"),
                                         _method_name(ds_theory, "theory"))
    attrs = result_attrs(ds_sim)
    over, sliders = split_dims(sim, attrs, over)
    xdim, ydim = dimension(sim["alpha"], "alpha"), dimension(sim, variable)
    head = title_text or f"{theory_label} vs {sim_label}: " + title(
        {k: v for k, v in attrs.items() if k != "method"},
        skip=[*sliders, *([over] if over else [])])
    frames = {}
    for key, members in frames_by_key(sim, over, sliders):
        colors = palette(len(members), cmap)
        elements: list[Any] = []
        for (value, sub), color in zip(members, colors):
            selection = dict(zip(sliders, key))
            if over is not None:
                selection[over] = value
            series = reduce_seeds(sub, band, "alpha")
            elements += series_elements(series, xdim, ydim, color,
                                         curve_label(over, value, series, sim_label),
                                         logx=logx, logy=logy)
            th = theory.sel({d: v for d, v in selection.items() if d in theory.dims})
            extra = [d for d in th.dims if d not in ("alpha", "seed")]
            if extra:
                raise ValueError(
                    f"ds_theory: dims {extra} are not sweep dims of ds_sim; select them first"
                )
            th_series = reduce_seeds(th, None, "alpha")
            th_color = THEORY_COLOR if over is None else color
            th_label = f"{symbol_of(over)}={fmt(value)} {theory_label}" if over else theory_label
            elements += series_elements(th_series, xdim, ydim, th_color, th_label, logx=logx,
                                         logy=logy, dash="dashed", width=2.5)
        frame_title = head + (f" — {key_label(sliders, key)}" if sliders else "")
        frames[key] = styled(hv.Overlay(elements),
                             **frame_style(width, height, frame_title, logx=logx, logy=logy,
                                          ylim=ylim))
    return holomap(frames, sliders, sim)
