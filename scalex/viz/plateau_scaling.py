"""Plateau scaling checks: the escape time against M²/L, and the plateau of split eigenvalues.

`escape_scaling` draws a measured escape time of a sweep summary (by default the plateau end
of `scalex.analysis.measures.plateau`; or the plateau length) against M^p L^q for the
predicted powers (p, q) = (2, −1) of docs/theory.md §5.4 (eq. 5.9), on log–log axes: one
colour per M, a point per L. A solid line is the prediction τ ∝ M²/L with its prefactor fitted;
dashed lines, one per M, are the free fit τ ≈ C M^a L^b of
`scalex.analysis.scaling_fit.scaling_exponents`, whose exponents (± standard errors) and the
slope of the collapse (1 for τ ∝ M²/L) stand in the title.

`plateau_vs_split` draws the plateau length of near-degenerate spectra, every eigenvalue
group split into λ(1 ± ε) (`scalex.model.spectrum.split_groups`), against ε, with the unsplit
values (ε = 0, e.g. of L = 4 and L = 8) as dashed reference lines.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.analysis.scaling_fit import collapse_fit, scaling_exponents, scaling_points
from scalex.viz import style
from scalex.viz.series import overlay_frames, reduce_seeds, result_attrs, sweep_dims, valid


def _with_variable(data: xr.Dataset, variable: str) -> xr.Dataset:
    """``data`` holding ``variable``: a result's plateaus are measured first
    (`scalex.analysis.measures.plateau`); ValueError naming what is there otherwise."""
    style.load_backends()
    if variable not in data.data_vars and "eg" in data.data_vars:
        from scalex.analysis.measures import plateau

        data = plateau(data)
    if variable not in data.data_vars:
        raise ValueError(f"variable: {variable!r} is not in the data; available: "
                         f"{sorted(map(str, data.data_vars))}")
    return data


def _symbol(name: str, attrs: dict[str, Any]) -> str:
    """The symbol of a sweep coordinate; of a linked axis "K=M", the last field (M)."""
    return style.symbol_of(name, attrs).split("=")[-1]


def escape_scaling(
    data: xr.Dataset,
    variable: str = "plateau_end",
    dims: tuple[str, str] = ("M", "L"),
    powers: tuple[float, float] = (2.0, -1.0),
    *,
    cmap: str = "viridis",
    title_text: str | None = None,
    width: int = style.WIDTH,
    height: int = style.HEIGHT,
) -> hv.Overlay:
    """``variable`` of a summary against x = dims[0]^powers[0] · dims[1]^powers[1] (log–log),
    the predicted escape-time scaling M²/L by default (docs/theory.md §5.4, eq. 5.9).

    ``data`` is a sweep summary (or a result, whose plateaus are measured first by
    `scalex.analysis.measures.plateau`) with the coordinates ``dims``; every seed is a point.
    Members without a value (no plateau) are left out. Raises ValueError if fewer than four
    members have one (no exponents with errors can be fitted).
    """
    data = _with_variable(data, variable)
    attrs = result_attrs(data)
    x1, x2, y = scaling_points(data, variable, dims)
    fit = scaling_exponents(data, variable, dims)
    if fit.n_points < 4 or not np.all(np.isfinite(fit.exponents)):
        raise ValueError(f"{variable}: {fit.n_points} member(s) with a value; the exponents "
                         f"of {dims} need at least 4 spread over both")
    p, q = powers
    x = x1**p * x2**q
    collapse = collapse_fit(x, y)
    s1, s2 = _symbol(dims[0], attrs), _symbol(dims[1], attrs)
    law = f"{s1}^{p:g}·{s2}^{q:g}".replace("^1·", "·").replace("-", "−")
    if (p, q) == (2.0, -1.0):
        law = f"{s1}²/{s2}"
    xdim = hv.Dimension("x", label=law)
    ydim = style.dimension(data[variable], variable)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    # the prediction y = c·x, c fitted in log space over the same points
    c = float(np.exp(np.mean(np.log(y[ok]) - np.log(x[ok]))))
    span = np.array([x[ok].min(), x[ok].max()]) * np.array([0.7, 1.4])
    elements: list[Any] = [style.styled(
        hv.Curve((span, c * span), kdims=[xdim], vdims=[ydim], label=f"∝ {law}, prefactor fitted"),
        **style.line_style("black", 1.5, "solid", 0.7, hover=False))]
    values = np.unique(x1[ok])
    for i, (value, color) in enumerate(zip(values, style.palette(len(values), cmap))):
        mine = ok & (x1 == value)
        points = hv.Scatter((x[mine], y[mine], x2[mine]), kdims=[xdim],
                            vdims=[ydim, hv.Dimension(str(dims[1]), label=s2)],
                            label=f"{s1}={style.fmt(value)}")
        elements.append(style.styled(points, bokeh={"color": color, "size": 9,
                                                    "tools": ["hover"]},
                                     matplotlib={"color": color, "s": 45}))
        grid = np.geomspace(x2[mine].min(), x2[mine].max(), 20)
        label = f"fit C·{s1}^a·{s2}^b" if i == len(values) - 1 else ""  # one legend entry
        elements.append(style.styled(
            hv.Curve((value**p * grid**q, fit.predict(value, grid)), kdims=[xdim],
                     vdims=[ydim], label=label),
            **style.line_style(color, 1.5, "dashed", 0.9, hover=False)))
    head = title_text or (
        f"{variable.replace('_', ' ')}: fit {fit.text([s1, s2])}; slope against {law} "
        f"{collapse.slope:.3g} ± {collapse.slope_stderr:.2g} ({fit.n_points} members)")
    return style.styled(hv.Overlay(elements), **style.frame_style(width, height, head))


def plateau_vs_split(
    data: xr.Dataset,
    x: str = "split",
    over: str | None = "L",
    variable: str = "plateau_length",
    *,
    cmap: str = "viridis",
    title_text: str | None = None,
    width: int = style.WIDTH,
    height: int = style.HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """``variable`` (default the plateau length) against the relative splitting ε (``x``) of
    near-degenerate eigenvalues (`scalex.model.spectrum.split_groups`), one colour per value of
    ``over`` (default L), with the unsplit value (ε = 0) of each as a dashed horizontal line.

    ``data`` is a sweep summary (or a result, whose plateaus are measured first) over ``x``,
    ``over`` and possibly further sweep dims (sliders); seeds are averaged (± std as error
    bars). With L = 4 and L = 8 the lines are the references between which a split L = 4
    spectrum could interpolate (docs/theory.md §5.4).
    """
    data = _with_variable(data, variable)
    da = data[variable]
    if x not in da.dims:
        raise ValueError(f"x: {x!r} is not a dimension of {variable} (dims {da.dims})")
    if over is not None and over not in da.dims:
        over = None
    attrs = result_attrs(data)
    sliders = [d for d in sweep_dims(da, attrs) if d not in (x, over)]
    eps = np.asarray(da[x].values, dtype=float)
    if not np.any(eps == 0):
        raise ValueError(f"{x}: needs the unsplit value 0 as the reference, got {eps.tolist()}")
    xdim = hv.Dimension(x, label=f"relative splitting ε of each eigenvalue ({x})")
    ydim = style.dimension(da.assign_attrs(long_name=da.attrs.get("long_name", variable)),
                           variable)
    fixed = style.title({k: v for k, v in attrs.items() if k != "method"},
                        skip=[x, *sliders, *([over] if over else [])])
    head = title_text or f"{variable.replace('_', ' ')} against the splitting ε" + (
        f": {fixed}" if fixed else "") + " (dashed: ε = 0)"

    def draw(sub: xr.DataArray, value: Any, color: str, at: dict[str, Any]) -> list[Any]:
        series = reduce_seeds(sub, "std", x)
        name = f"{style.symbol_of(over, attrs)}={style.fmt(value)}" if over else variable
        ok = valid(series.x, series.y, logx=True, logy=False)
        points = hv.Scatter((series.x[ok], series.y[ok]), kdims=[xdim], vdims=[ydim],
                            label=f"{name}, split")
        out = [style.styled(points, bokeh={"color": color, "size": 9, "tools": ["hover"]},
                            matplotlib={"color": color, "s": 45})]
        if series.lo is not None and ok.any():
            bars = hv.ErrorBars((series.x[ok], series.y[ok], (series.hi - series.y)[ok]),
                                kdims=[xdim], vdims=[ydim, "yerr"])
            out.append(style.styled(bars, bokeh={"color": color}, matplotlib={"color": color}))
        unsplit = series.y[series.x == 0]
        if unsplit.size and np.isfinite(unsplit[0]):
            line = hv.HLine(float(unsplit[0]), label=f"{name}, ε = 0")
            out.append(style.styled(line, **style.line_style(color, 1.5, "dashed", 0.9,
                                                             hover=False)))
        return out

    return overlay_frames(
        da, over, sliders, draw, head=head, cmap=cmap, attrs=attrs,
        options=lambda text: style.frame_style(width, height, text, logx=True, logy=False))
