"""Learning curves of one experiment by several routes: a comparison `xarray.DataTree`.

`route_curves` draws ε_g(α) of every route node of a tree made by `scalex.compare` (or read
from ``<entry>-compare.nc``) in one frame: one line style per route (solid, dashed, dotted,
dash-dot, in the tree's order), a seed mean with a band where a route has several seeds, and
the legend right of the axes. Without a sweep dim each route has its own colour; with one,
the colour marks the overlay dim (as in `scalex.viz.curves.learning_curves`) and the line
style the route. Other sweep dims become sliders. `CurveFrame` holds the options of the frame
that both curve plots take (colour map, log axes, title, y range, size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import holoviews as hv
import xarray as xr

from scalex.common.keywords import KeywordGroup, takes
from scalex.viz import style
from scalex.viz.series import (
    curve_label,
    overlay_frames,
    reduce_seeds,
    series_elements,
    split_dims,
)

__all__ = ["DASHES", "ROUTE_COLORS", "CurveFrame", "route_curves", "route_data"]

#: line style of the n-th route
DASHES = ("solid", "dashed", "dotted", "dashdot")
#: colour of the n-th route when no sweep dim is overlaid (matplotlib's tab10)
ROUTE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclass(frozen=True)
class CurveFrame(KeywordGroup):
    """The frame of a learning-curve plot: keyword arguments of `route_curves` and of
    `scalex.viz.curves.learning_curves`.

    ``cmap``: colour map of the overlay dim; ``logx``, ``logy``: log axes; ``title_text``:
    overrides the automatic title; ``ylim``: fixed y range (e.g. to keep an exponential decay
    from squashing power laws); ``width``, ``height``: size in pixels.
    """

    cmap: str = "viridis"
    logx: bool = True
    logy: bool = True
    title_text: str | None = None
    ylim: tuple[float, float] | None = None
    width: int = style.WIDTH
    height: int = style.HEIGHT

    def options(self, text: str, legend: bool) -> Any:
        """The options of one frame titled ``text`` (`scalex.viz.style.frame_style`)."""
        return style.frame_style(self.width, self.height, text, logx=self.logx, logy=self.logy,
                                 ylim=self.ylim, legend=legend)


def route_data(tree: xr.DataTree, variable: str = "eg",
               routes: Sequence[str] | None = None) -> dict[str, xr.DataArray]:
    """``{route: variable}`` of the route nodes of ``tree`` (inherited coordinates included)."""
    if not isinstance(tree, xr.DataTree):
        raise ValueError(f"tree: must be an xarray.DataTree, got {type(tree).__name__}")
    names = list(tree.children) if routes is None else list(routes)
    if not names:
        raise ValueError("tree: has no route nodes")
    out = {}
    for name in names:
        if name not in tree.children:
            raise ValueError(f"routes: {name!r} is not a node of the tree; nodes: "
                             f"{list(tree.children)}")
        ds = tree[name].to_dataset()
        if variable not in ds.data_vars:
            raise ValueError(f"variable: {variable!r} is not in route {name!r}; available: "
                             f"{sorted(map(str, ds.data_vars))}")
        da = ds[variable]
        if "alpha" not in da.dims:
            raise ValueError(f"variable: {variable!r} has no 'alpha' dim (dims {da.dims})")
        out[name] = da
    return out


@takes(frame=CurveFrame)
def route_curves(
    tree: xr.DataTree,
    over: str | None = None,
    *,
    routes: Sequence[str] | None = None,
    variable: str = "eg",
    band: str | None = "minmax",
    frame: CurveFrame,
) -> hv.Overlay | hv.HoloMap:
    """The learning curves of every route of a comparison tree, overlaid.

    Parameters
    ----------
    tree : a DataTree with one node per route (`scalex.compare`,
        `scalex.experiments.compare.comparison_tree`).
    over : sweep dim to overlay in the colours of ``cmap`` (default the first sweep dim of
        the first route); the routes are told apart by line style then.
    routes : the nodes to draw, in this order (default all children).
    variable, band : as in `learning_curves`; ``band`` applies to every route with several
        seeds.
    cmap, logx, logy, title_text, ylim, width, height : the frame (`CurveFrame`);
        ``title_text`` replaces the title made of the routes and the fixed parameters.

    Returns
    -------
    An `hv.Overlay` of `hv.Curve` (and `hv.Area` bands), or an `hv.HoloMap` of them over the
    remaining sweep dims.
    """
    style.load_backends()
    data = route_data(tree, variable, routes)
    names = list(data)
    first = data[names[0]]
    attrs = dict(tree.attrs)
    over, sliders = split_dims(first, attrs, over)
    xdim, ydim = style.dimension(first["alpha"], "alpha"), style.dimension(first, variable)
    labels = {name: style.METHODS.get(name, name) for name in names}
    fixed = {k: v for k, v in attrs.items() if k != "method"}
    skip = [*sliders, *([over] if over else [])]
    head = frame.title_text or ", ".join(labels.values()) + ": " + style.title(fixed, skip=skip)

    def draw(_sub: xr.DataArray, value: Any, color: str, at: dict[str, Any]) -> list[Any]:
        elements: list[Any] = []
        for i, name in enumerate(names):
            da = data[name]
            sel = {d: v for d, v in at.items() if d in da.dims}
            missing = [d for d in da.dims if d not in ("alpha", "seed") and d not in sel]
            if missing:
                raise ValueError(f"routes: route {name!r} has dims {missing} that route "
                                 f"{names[0]!r} does not sweep; select them first")
            series = reduce_seeds(da.sel(sel) if sel else da, band, "alpha")
            line = color if over is not None else ROUTE_COLORS[i % len(ROUTE_COLORS)]
            elements += series_elements(
                series, xdim, ydim, line, curve_label(over, value, series, labels[name], attrs),
                logx=frame.logx, logy=frame.logy, dash=DASHES[i % len(DASHES)],
                width=2.0 if i == 0 else 2.5)
        return elements

    return overlay_frames(first, over, sliders, draw, head=head, cmap=frame.cmap, attrs=attrs,
                          options=lambda text: frame.options(text, legend=True))
