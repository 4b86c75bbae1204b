"""Order-parameter plots: heatmaps of q^τ and r^τ per eigenvalue group (docs/theory.md §2).

`order_parameters` shows q^τ (student × student) and r^τ (student × teacher) for a few groups
at a few α, with sliders over α and the sweep dims, so that the specialisation after the plateau
(r becoming one-to-one) can be watched. A linear-theory result without overlaps gives the mode
errors e_τ(α) of docs/theory.md eq. (4.2) instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz.series import (
    frames_by_key,
    holomap,
    quiet_nan_warnings,
    reduce_seeds,
    series_elements,
    sweep_dims,
)
from scalex.viz.style import (
    HEIGHT,
    WIDTH,
    dimension,
    fmt,
    frame_style,
    load_backends,
    palette,
    short_label,
    styled,
    title,
)


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
    """Heatmaps of q^τ (student × student), r^τ (student × teacher) per group (docs/theory.md §2).

    One row per eigenvalue group τ (``groups``: labels, or a count spread over 1..L; default
    3), columns q and r; each panel is an `hv.HoloMap` of `hv.HeatMap` over ``alpha`` (the grid
    points nearest the requested α; default six log-spaced points) and any sweep dims. On the
    symmetric plateau every r^τ_in is alike; after escape r becomes one-to-one: specialisation.
    Colours are symmetric about 0 and fixed across α so the frames compare.

    With a ``seed`` dim one seed is shown (``seed``, default the first): hidden units of
    different draws specialise in different orders, so a seed mean would blur them.

    A linear-theory dataset without q/r gives instead the mode errors e_τ(α) of the chosen
    groups as an `hv.Overlay` of curves inside the Layout (docs/theory.md §4.1).
    """
    load_backends()
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
        lam_txt = f"λ={fmt(float(np.ravel(lam)[0]))}" if np.size(lam) == 1 else ""
        for var, other in ((q, "student_j"), (r, "teacher_n")):
            name = var.name
            sub = var.sel(group=g).sel(alpha=alphas, method="nearest")
            for unit in ("student_i", other):  # hidden units that are NaN padding throughout
                sub = sub.dropna(unit, how="all")
            with quiet_nan_warnings():
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
                      "clabel": short_label(zdim.label), "invert_yaxis": True,
                      "title": panel_title}
            if sub.sizes["student_i"] <= 12 and sub.sizes[other] <= 12:
                common["xticks"] = [int(v) for v in sub[other].values]
                common["yticks"] = [int(v) for v in sub["student_i"].values]
            hmap = styled(hmap, bokeh={**common, "width": size + 80, "height": size,
                                       "tools": ["hover"]},
                          matplotlib={**common, "show_values": False, "sublabel_format": ""})
            panels.append(hmap)
    layout = hv.Layout(panels).cols(2)
    head = title(ds.attrs)
    return styled(layout, bokeh={"title": head},
                  matplotlib={"title": head, "sublabel_format": "", "fig_size": 120})


def _mode_errors(ds: xr.Dataset, groups: int | Sequence[int] | None) -> hv.Layout:
    """e_τ(α) of the linear theory for the chosen groups, one colour each (docs/theory.md §4.2)."""
    e = ds["e"]
    chosen = _pick_groups(ds, groups if groups is not None else 6)
    colors = palette(len(chosen), "viridis")
    xdim, ydim = dimension(ds["alpha"], "alpha"), dimension(e, "e")
    sweep = sweep_dims(e, ds.attrs)
    frames = {}
    for key, _members in frames_by_key(e, None, sweep):
        sub = e.sel(dict(zip(sweep, key))) if sweep else e
        elements: list[Any] = []
        for g, color in zip(chosen, colors):
            series = reduce_seeds(sub.sel(group=g), None, "alpha")
            elements += series_elements(series, xdim, ydim, color, f"τ={g}", logx=True,
                                         logy=True)
        frame_title = "mode errors e_τ: " + title(ds.attrs, skip=sweep)
        frames[key] = styled(hv.Overlay(elements), **frame_style(WIDTH, HEIGHT, frame_title))
    return hv.Layout([holomap(frames, sweep, e)])
