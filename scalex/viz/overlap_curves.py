"""Student–teacher overlaps against α: the symmetric plateau and the specialisation after it.

`overlap_curves` draws, for one run or each point of a sweep, the λ-weighted overlaps
R_in = Σ_τ λ_τ r^τ_in (docs/theory.md §2) of every student unit i with every teacher unit n
against α, by default as the cosines R_in / √(Q_ii T_nn). On the symmetric plateau
(docs/theory.md §5.1) every student overlaps every teacher alike, so the curves lie together;
at the escape they split, and after it each teacher is taken up by its own student unit(s)
(specialisation), also when K ≠ M. The measured plateau (`scalex.analysis.measures.plateau`)
is shaded. Unlike the q^τ, r^τ heatmaps of `scalex.viz.overlaps.order_parameters`, which show
one α at a time, the whole course is one static picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz import style
from scalex.viz.series import frames_by_key, holomap, quiet_nan_warnings, sweep_dims, valid

#: line style of teacher unit n (1-based, cycled)
_DASHES = ("solid", "dashed", "dotted", "dashdot")


def _weighted(ds: xr.Dataset, total: str, per_group: str) -> xr.DataArray:
    """Σ_τ λ_τ x^τ: the recorded ``total`` (Q, R) or the sum over the groups of ``per_group``."""
    if total in ds.data_vars:
        return ds[total]
    if per_group not in ds.data_vars:
        raise ValueError(f"ds: needs {total!r} or the per-group {per_group!r} (record them)")
    return (ds["eigenvalue"] * ds[per_group]).sum("group", skipna=True)


def overlaps(ds: xr.Dataset, normalise: bool = True) -> xr.DataArray:
    """R_in(α), or the cosines R_in / √(Q_ii T_nn) with ``normalise`` (docs/theory.md §2)."""
    R = _weighted(ds, "R", "r")
    if not normalise:
        return R
    Q = _weighted(ds, "Q", "q")
    T = (ds["eigenvalue"] * ds["t"]).sum("group", skipna=True)
    q_ii = xr.apply_ufunc(np.diagonal, Q, input_core_dims=[["student_i", "student_j"]],
                          output_core_dims=[["student_i"]], kwargs={"axis1": -2, "axis2": -1})
    t_nn = xr.apply_ufunc(np.diagonal, T, input_core_dims=[["teacher_n", "teacher_m"]],
                          output_core_dims=[["teacher_n"]], kwargs={"axis1": -2, "axis2": -1})
    q_ii = q_ii.assign_coords(student_i=Q["student_i"].values)
    t_nn = t_nn.assign_coords(teacher_n=T["teacher_n"].values)
    with quiet_nan_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        out = R / np.sqrt(q_ii * t_nn)
    return out.assign_attrs(long_name="cosine R_in / √(Q_ii T_nn)", units="1")


def overlap_curves(
    ds: xr.Dataset,
    at: Mapping[str, Any] | None = None,
    *,
    normalise: bool = True,
    seed: int | None = None,
    mark_plateau: bool = True,
    cmap: str = "viridis",
    logx: bool = True,
    title_text: str | None = None,
    width: int = style.WIDTH,
    height: int = style.HEIGHT,
) -> hv.Overlay | hv.HoloMap:
    """R_in(α) of every student unit i (colour) and teacher unit n (line style).

    ``at`` selects sweep values (e.g. ``{"L": 4}``); the sweep dims left become frames (a
    slider; up to six are side by side in the PNG). With a ``seed`` dim one seed is drawn
    (``seed``, default the first): units of different draws specialise in different orders,
    so a seed mean would blur them. ``normalise`` draws the cosines R_in / √(Q_ii T_nn).
    Needs the overlaps: ``R`` (and ``Q``) as recorded by the ODE or the simulation, or the
    per-group ``r`` (and ``q``).
    """
    style.load_backends()
    if at:
        missing = [d for d in at if d not in ds.dims]
        if missing:
            raise ValueError(f"at: {missing} are not dims of the data (dims {list(ds.dims)})")
        ds = ds.sel(dict(at))
    if "seed" in ds.dims:
        chosen = ds["seed"].values[0] if seed is None else seed
        if chosen not in ds["seed"].values:
            raise ValueError(f"seed: {seed!r} not among {list(ds['seed'].values)}")
        ds = ds.sel(seed=chosen)
    da = overlaps(ds, normalise)
    info = None
    if mark_plateau:
        from scalex.analysis.measures import plateau

        info = plateau(ds)
    sliders = sweep_dims(da, ds.attrs)
    xdim = style.dimension(ds["alpha"], "alpha")
    ydim = style.dimension(da, "overlap")
    chosen = f", {style.key_label(list(at), list(at.values()), ds.attrs)}" if at else ""
    head = title_text or (f"overlaps{chosen}: " + style.title(ds.attrs, skip=sliders))
    frames = {}
    for key, [(_none, sub)] in frames_by_key(da, None, sliders):
        selection = dict(zip(sliders, key))
        elements: list[Any] = []
        students = [i for i in sub["student_i"].values
                    if np.isfinite(sub.sel(student_i=i).values).any()]  # NaN: K padding
        teachers = [n for n in sub["teacher_n"].values
                    if np.isfinite(sub.sel(teacher_n=n).values).any()]
        colors = style.palette(len(students), cmap)
        for i, color in zip(students, colors):
            for k, n in enumerate(teachers):
                curve = sub.sel(student_i=i, teacher_n=n)
                x = np.asarray(curve["alpha"].values, dtype=float)
                y = np.asarray(curve.values, dtype=float)
                ok = valid(x, y, logx=logx, logy=False)
                line = hv.Curve((x[ok], y[ok]), kdims=[xdim], vdims=[ydim],
                                label=f"i={int(i)}, n={int(n)}")
                elements.append(style.styled(line, **style.line_style(
                    color, 2.0, _DASHES[k % len(_DASHES)])))
        if info is not None:  # after the curves, which name the axes
            elements += _plateau_span(info.sel(selection) if selection else info, logx)
        text = head + (f" — {style.key_label(sliders, key, ds.attrs)}" if sliders else "")
        frames[key] = style.styled(hv.Overlay(elements), **style.frame_style(
            width, height, text, logx=logx, logy=False))
    return holomap(frames, sliders, da)


def _plateau_span(info: xr.Dataset, logx: bool) -> list[Any]:
    """The measured plateau of one member as a grey span (none if there is no plateau)."""
    start = float(np.asarray(info["plateau_start"].values, dtype=float))
    end = float(np.asarray(info["plateau_end"].values, dtype=float))
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start or (logx and start <= 0):
        return []
    return [style.styled(hv.VSpan(start, end), bokeh={"color": "gray", "alpha": 0.12},
                         matplotlib={"facecolor": "gray", "alpha": 0.12, "linewidth": 0})]
