"""Scaling plots: local exponents against β/(1+β), and plateau lengths against L.

`local_exponent` draws −d ln ε_g / d ln α (`scalex.analysis.local_exponent`) with the
reference line `predicted_exponent` = β/(1+β) of docs/theory.md eq. (4.8). `plateau_length`
draws measured plateau lengths (`scalex.analysis.plateau`, seed mean ± std) against a sweep
dim, with the escape-theory prediction of docs/theory.md §5.3 as a dashed curve: taken from
the data (``plateau_length_predicted``) or computed by
`scalex.analysis.predictions.escape_predictions`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz import style
from scalex.viz.series import (
    curve_label,
    overlay_frames,
    reduce_seeds,
    result_attrs,
    series_elements,
    split_dims,
    sweep_dims,
    valid,
)


# ----------------------------------------------------------------------------- local exponent
def predicted_exponent(beta: float) -> float:
    """β/(1+β): the decay exponent of ε_g ∝ α^(−β/(1+β)) (docs/theory.md (4.8), linear g)."""
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
    width: int = style.WIDTH,
    height: int = style.HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """The local exponent −d ln ε_g / d ln α against α, with β/(1+β) as an `hv.HLine`.

    ``ds`` is a result Dataset (the exponent is computed by `scalex.analysis.local_exponent`),
    or a DataArray / Dataset that already holds ``variable``. ``beta`` defaults to the β of the
    run (``attrs["beta"]``, or the ``beta`` sweep coordinate, one reference line per β then).
    """
    style.load_backends()
    da = _local_exponent_data(ds, variable)
    attrs = {**result_attrs(ds), **{k: v for k, v in da.attrs.items() if k not in ("long_name",
                                                                            "units")}}
    if "long_name" not in da.attrs:
        da = da.assign_attrs(long_name="local exponent −d ln ε_g / d ln α", units="1")
    over, sliders = split_dims(da, attrs, over)
    xdim, ydim = style.dimension(da["alpha"], "alpha"), style.dimension(da, "local_exponent")
    fixed = style.title(attrs, skip=[*sliders, *([over] if over else [])])
    head = title_text or "local exponent" + (f": {fixed}" if fixed else "") + \
        " (dashed: β/(1+β))"
    per_member = over == "beta" and beta is None  # one reference line per β

    def draw(sub: xr.DataArray, value: Any, color: str, at: dict[str, Any]) -> list[Any]:
        series = reduce_seeds(sub, band, "alpha")
        elements = series_elements(series, xdim, ydim, color,
                                   curve_label(over, value, series, "measured", attrs),
                                   logx=True, logy=False)
        if per_member:
            elements.append(_reference(predicted_exponent(float(value)), color))
        return elements

    def reference(selection: dict[str, Any]) -> list[Any]:
        b = beta
        if b is None:
            b = float(selection["beta"]) if "beta" in selection else attrs.get("beta")
        if per_member or b is None or not float(b) > 0:
            return []
        return [_reference(predicted_exponent(float(b)), "black")]

    legend = over is not None or da.sizes.get("seed", 1) > 1  # one bare curve needs none
    return overlay_frames(
        da, over, sliders, draw, head=head, cmap=cmap, extra=reference, attrs=attrs,
        options=lambda text: style.frame_style(width, height, text, logx=True, logy=False,
                                               ylim=ylim, legend=legend))


def _reference(value: float, color: str) -> hv.HLine:
    line = hv.HLine(value, label=f"β/(1+β) = {value:.3g}")
    return style.styled(line, **style.line_style(color, 1.5, "dashed", 0.9, hover=False))


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
    width: int = style.WIDTH,
    height: int = style.HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """Plateau length against ``x`` (default L), overlaid over ``over`` (default K), log axes.

    ``data`` is a sweep result (the plateau is measured by `scalex.analysis.plateau`) or a
    summary/plateau Dataset holding ``plateau_length`` (seed mean ± std as error bars).
    ``predicted`` is the escape-theory prediction (docs/theory.md §5.3, plateau length ≈
    ln(1/asymmetry)/μ) as a DataArray over the same dims, the name of a variable of ``data``,
    ``"auto"`` (the variable ``plateau_length_predicted`` if present, else none), ``"escape"``
    (compute it now for every sweep point and seed with
    `scalex.analysis.predictions.escape_predictions`; this solves the escape theory once per
    member and can take long) or ``None``.
    Measured points are `hv.Scatter` with `hv.ErrorBars`; the prediction is a dashed `hv.Curve`.
    """
    style.load_backends()
    measured = _measured_plateau(data)
    length = measured["plateau_length"]
    if x not in length.dims:
        raise ValueError(f"x: {x!r} is not a dimension of plateau_length (dims {length.dims})")
    if over is not None and over not in length.dims:
        over = None
    # No member with a plateau: an empty frame on linear axes that says so (a log axis
    # of nothing cannot be drawn).
    none = not bool((length > 0).any())
    logx, logy = logx and not none, logy and not none
    pred = _predicted_plateau(data, measured, predicted)
    attrs = {**result_attrs(data)}
    sliders = [d for d in sweep_dims(length, attrs) if d not in (x, over)]
    xdim = style.dimension(length[x], x)
    ydim = style.dimension(length.assign_attrs(
        long_name=length.attrs.get("long_name", "plateau length"),
        units=length.attrs.get("units", "1")), "plateau_length")
    fixed = style.title({k: v for k, v in attrs.items() if k != "method"},
                        skip=[x, *sliders, *([over] if over else [])])
    head = title_text or "plateau length" + (f": {fixed}" if fixed else "")
    if none:
        head += " (no member has a plateau, docs/analysis.md (A2))"

    def draw(sub: xr.DataArray, value: Any, color: str, at: dict[str, Any]) -> list[Any]:
        series = reduce_seeds(sub, "std", x)
        name = f"{style.symbol_of(over, attrs)}={style.fmt(value)} " if over else ""
        ok = valid(series.x, series.y, logx=logx, logy=logy)
        points = hv.Scatter((series.x[ok], series.y[ok]), kdims=[xdim], vdims=[ydim],
                            label=f"{name}measured")
        elements = [style.styled(points, bokeh={"color": color, "size": 8, "tools": ["hover"]},
                                 matplotlib={"color": color, "s": 40})]
        if series.lo is not None:
            err = (series.hi - series.y)[ok]
            bars = hv.ErrorBars((series.x[ok], series.y[ok], err), kdims=[xdim],
                                vdims=[ydim, "yerr"])
            elements.append(style.styled(bars, bokeh={"color": color},
                                         matplotlib={"color": color}))
        if pred is not None:
            p = reduce_seeds(pred.sel({d: v for d, v in at.items() if d in pred.dims}), None, x)
            elements += series_elements(p, xdim, ydim, color if over else style.THEORY_COLOR,
                                        f"{name}predicted", logx=logx, logy=logy,
                                        dash="dashed")
        return elements

    ticks = np.asarray(length[x].values)
    xticks = ticks if ticks.size <= 12 and np.issubdtype(ticks.dtype, np.number) else None
    return overlay_frames(  # ticks at the swept values themselves, not at 2×10⁰
        length, over, sliders, draw, head=head, cmap=cmap, attrs=attrs,
        options=lambda text: style.frame_style(width, height, text, logx=logx, logy=logy,
                                               xticks=xticks))


def _predicted_plateau(data: xr.Dataset, measured: xr.Dataset,
                       predicted: xr.DataArray | str | None) -> xr.DataArray | None:
    if predicted is None or isinstance(predicted, xr.DataArray):
        return predicted
    if predicted == "escape":
        if "scalex_setup" not in data.attrs:
            raise ValueError("predicted: 'escape' needs a scalex result (its Setup attributes)")
        from scalex.analysis.predictions import escape_predictions

        return escape_predictions(data)
    name = "plateau_length_predicted" if predicted == "auto" else predicted
    for source in (measured, data):
        if name in source.data_vars:
            return source[name]
    if predicted == "auto":
        return None
    raise ValueError(f"predicted: no variable {predicted!r} in the data")
