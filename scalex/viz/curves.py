"""Learning-curve plots: ε_g(α) of one result or a sweep, and theory against simulation.

Both also take a comparison `xarray.DataTree` (`scalex.compare`, ``<entry>-compare.nc``) and
then draw every route of it (`scalex.viz.routes.route_curves`).

`learning_curves` draws a variable (default ``eg``) on log–log axes, one colour per value of
the overlay dim, a seed mean with a band, sliders for the other sweep dims, and optionally the
measured plateau (`scalex.analysis.plateau`) as a shaded span and a theory as a dashed curve
over each. `compare` is the latter: a theory (e.g. the ODE or the linear theory) over a
simulation (solid, seed mean with a band) on the grid of the simulation. Both take the frame
options of `scalex.viz.routes.CurveFrame` (colour map, log axes, title, y range, size).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.common.keywords import takes
from scalex.viz import style
from scalex.viz.routes import CurveFrame, route_curves
from scalex.viz.series import (
    Series,
    as_dataarray,
    curve_label,
    overlay_frames,
    quiet_nan_warnings,
    reduce_seeds,
    result_attrs,
    series_elements,
    split_dims,
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
    span = style.styled(hv.VSpan(start, end), bokeh={"color": color, "alpha": 0.08},
                        matplotlib={"facecolor": color, "alpha": 0.08, "linewidth": 0})
    lines = [style.styled(hv.VLine(a), **style.line_style(color, 1.2, "dashed", 0.8,
                                                          hover=False))
             for a in (start, end)]
    return [span, *lines]


def _plateau_info(ds: xr.Dataset | xr.DataArray, plateau: xr.Dataset | None) -> xr.Dataset:
    if plateau is not None:
        return plateau

    analysis = import_module("scalex.analysis.measures")  # lazy: plots import without it

    return analysis.plateau(ds)


@takes(frame=CurveFrame)
def learning_curves(
    ds: xr.Dataset | xr.DataArray | xr.DataTree,
    over: str | None = None,
    *,
    variable: str = "eg",
    band: str | None = "minmax",
    mark_plateau: bool = False,
    plateau: xr.Dataset | None = None,
    ds_theory: xr.Dataset | xr.DataArray | None = None,
    labels: tuple[str, str] | None = None,
    frame: CurveFrame,
) -> hv.Overlay | hv.HoloMap:
    """ε_g(α) on log–log axes, one curve per value of ``over``, a slider for other sweep dims.

    Parameters
    ----------
    ds : a scalex result (ODE, simulation, linear theory or a sweep of them), or its ``eg``;
        or a comparison DataTree, whose routes are overlaid in distinct line styles
        (`scalex.viz.routes.route_curves`; ``mark_plateau``, ``plateau``, ``ds_theory`` and
        ``labels`` do not apply then).
    over : sweep dim to overlay with the colour map ``cmap``; default the first sweep dim.
        ``over="seed"`` draws every seed instead of their mean.
    variable : the variable to draw against α (default ``"eg"``).
    band : where a ``seed`` dim exists the mean is drawn with a band of ``"minmax"`` (default;
        it stays positive on a log axis) or ``"std"`` (±1 standard deviation), or ``None``.
    mark_plateau : shade the plateau from ``plateau_start`` to ``plateau_end`` and draw dashed
        lines there, as measured by ``scalex.analysis.plateau(ds)`` or given as ``plateau``.
    ds_theory : a theory to draw dashed over each curve, selected at the same sweep values
        where it has the dim and drawn unchanged where it has not (see `compare`).
    labels : (data, theory) names in the legend with ``ds_theory``; default the producing
        methods of the two datasets.
    cmap, logx, logy, title_text, ylim, width, height : the frame (`CurveFrame`; defaults
        there); ``title_text`` replaces the title made of the method and the fixed parameters.

    Returns
    -------
    An `hv.Overlay` of `hv.Curve` (and `hv.Area` bands, `hv.VSpan`/`hv.VLine` plateau marks),
    or an `hv.HoloMap` of them keyed by the remaining sweep dims.
    """
    if isinstance(ds, xr.DataTree):
        if mark_plateau or plateau is not None or ds_theory is not None or labels is not None:
            raise ValueError("ds: a comparison DataTree draws its own routes; mark_plateau, "
                             "plateau, ds_theory and labels apply to a Dataset")
        return route_curves(ds, over, variable=variable, band=band, **frame.keywords())
    style.load_backends()
    da = _alpha_data(ds, variable)
    theory = None if ds_theory is None else _alpha_data(ds_theory, variable)
    attrs = result_attrs(ds)
    over, sliders = split_dims(da, attrs, over)
    info = _plateau_info(ds, plateau) if mark_plateau else None
    xdim, ydim = style.dimension(da["alpha"], "alpha"), style.dimension(da, variable)
    skip = [*sliders, *([over] if over else [])]
    data_label = theory_label = ""
    if ds_theory is None:
        head = frame.title_text or style.title(attrs, skip=skip)
    else:
        data_label, theory_label = labels or (_method_name(ds, "simulation"),
                                              _method_name(ds_theory, "theory"))
        head = frame.title_text or f"{theory_label} vs {data_label}: " + style.title(
            {k: v for k, v in attrs.items() if k != "method"}, skip=skip)

    def draw(sub: xr.DataArray, value: Any, color: str, at: dict[str, Any]) -> list[Any]:
        if over == "seed":
            series = Series(np.asarray(sub["alpha"].values, dtype=float),
                            np.asarray(sub.values, dtype=float), None, None, 1)
        else:
            series = reduce_seeds(sub, band, "alpha")
        elements = series_elements(series, xdim, ydim, color,
                                   curve_label(over, value, series, data_label, attrs),
                                   logx=frame.logx, logy=frame.logy)
        elements += _plateau_marks(info, {d: v for d, v in at.items() if d != "seed"}, color,
                                   frame.logx)
        if theory is not None:
            name = f"{style.symbol_of(over, attrs)}={style.fmt(value)} " if over else ""
            elements += _theory_curve(theory, at, color if over else style.THEORY_COLOR,
                                      name + theory_label, xdim, ydim, logx=frame.logx,
                                      logy=frame.logy)
        return elements

    # one bare curve needs no legend; members, seeds or a theory do
    legend = over is not None or theory is not None or da.sizes.get("seed", 1) > 1
    return overlay_frames(da, over, sliders, draw, head=head, cmap=frame.cmap, attrs=attrs,
                          options=lambda text: frame.options(text, legend=legend))


def _alpha_data(ds: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    da = as_dataarray(ds, variable)
    if "alpha" not in da.dims:
        raise ValueError(f"variable: {variable!r} has no 'alpha' dim (dims {da.dims})")
    return da


def _theory_curve(theory: xr.DataArray, at: dict[str, Any], color: str, label: str,
                  xdim: hv.Dimension, ydim: hv.Dimension, *, logx: bool, logy: bool
                  ) -> list[Any]:
    """The theory at the member ``at`` of the data, averaged over its seeds, dashed."""
    th = theory.sel({d: v for d, v in at.items() if d in theory.dims})
    extra = [d for d in th.dims if d not in ("alpha", "seed")]
    if extra:
        raise ValueError(f"ds_theory: dims {extra} are not sweep dims of the data; "
                         "select them first")
    return series_elements(reduce_seeds(th, None, "alpha"), xdim, ydim, color, label,
                           logx=logx, logy=logy, dash="dashed", width=2.5)


# ----------------------------------------------------------------------------- compare
def _method_name(ds: xr.Dataset | xr.DataArray, fallback: str) -> str:
    return style.METHODS.get(str(ds.attrs.get("method", "")), fallback)


def compare(
    ds_sim: xr.Dataset | xr.DataArray | xr.DataTree,
    ds_theory: xr.Dataset | xr.DataArray | None = None,
    over: str | None = None,
    **options: Any,
) -> hv.Overlay | hv.HoloMap:
    """Theory (dashed) over simulation (solid, seed mean with a band), e.g. ODE on SGD.

    ``compare(tree)`` of a comparison DataTree (`scalex.compare`) draws all its routes, one
    line style each (`scalex.viz.routes.route_curves`, which takes ``routes``, ``variable``,
    ``band``, ``cmap``, ``logx``, ``logy``, ``title_text``, ``ylim``, ``width``, ``height``).

    Sweep dims are taken from ``ds_sim``; ``ds_theory`` is selected at the same values where
    it has the dim and drawn unchanged where it has not (one theory curve for all seeds).
    A ``seed`` dim of the theory (per-seed initial conditions) is averaged without a band.
    ``options`` are those of `learning_curves` (``variable``, ``band``, ``labels`` — default
    the producing methods of the two datasets —, ``cmap``, ``logx``, ``logy``,
    ``title_text``, ``ylim``, ``width``, ``height``, ``mark_plateau``, ``plateau``).

    Returns an `hv.Overlay` (or `hv.HoloMap` over the remaining sweep dims) of `hv.Curve`
    elements.
    """
    if isinstance(ds_sim, xr.DataTree):
        if ds_theory is not None:
            raise ValueError("ds_theory: a comparison DataTree holds its theories as routes; "
                             "pass the tree alone (over by keyword: compare(tree, over='L'))")
        return route_curves(ds_sim, over, **options)
    if ds_theory is None:
        raise ValueError("ds_theory: required unless ds_sim is a comparison DataTree")
    return learning_curves(ds_sim, over, ds_theory=ds_theory, **options)
