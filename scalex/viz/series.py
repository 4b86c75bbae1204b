"""From result arrays to plotted series: dims, seed averages, frames and curve elements.

`sweep_dims` and `split_dims` sort the dims of a result into the overlay dim (``over``) and
the slider dims; everything but the core dims of one run and ``seed`` is a sweep dim.
`reduce_seeds` turns a ``seed`` dim into a `Series` (the mean, with a min–max or ±1 std band),
`valid` masks points a log axis cannot show, `frames_by_key` and `holomap` iterate the slider
frames and assemble them, `overlay_frames` draws every frame (one colour per member of the
overlay dim), and `series_elements` draws one `Series` as an `hv.Curve` with an `hv.Area`
band. `extend` adds elements on top of a finished plot and keeps its options in both
backends.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz.style import (
    BANDS,
    CORE_DIMS,
    dimension,
    fill_style,
    fmt,
    key_label,
    line_style,
    load_backends,
    palette,
    styled,
    symbol_of,
)


# ----------------------------------------------------------------------------- data access
def as_dataarray(ds: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    if isinstance(ds, xr.DataArray):
        return ds
    if variable not in ds.data_vars:
        raise ValueError(
            f"variable: {variable!r} is not in the dataset; available: {sorted(ds.data_vars)}"
        )
    return ds[variable]


def result_attrs(ds: xr.Dataset | xr.DataArray) -> dict[str, Any]:
    return dict(ds.attrs)


def sweep_dims(da: xr.DataArray | xr.Dataset, attrs: Mapping[str, Any] | None = None) -> list[str]:
    """The sweep dims of ``da``: every dim that is neither a core dim nor ``seed``.

    Ordered as ``attrs["sweep_dims"]`` lists them, then in the order of ``da.dims``.
    """
    dims = [d for d in da.dims if d not in CORE_DIMS and d != "seed"]
    listed = str((attrs or da.attrs).get("sweep_dims", "")).split()
    return [d for d in listed if d in dims] + [d for d in dims if d not in listed]


def split_dims(da: xr.DataArray, attrs: Mapping[str, Any], over: str | None,
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


class Series:
    """One plotted curve: x, the (seed-)mean y, an optional band, and what it is."""

    def __init__(self, x: np.ndarray, y: np.ndarray, lo: np.ndarray | None,
                 hi: np.ndarray | None, n_seeds: int) -> None:
        self.x, self.y, self.lo, self.hi, self.n_seeds = x, y, lo, hi, n_seeds


def reduce_seeds(da: xr.DataArray, band: str | None, xdim: str) -> Series:
    """Mean over ``seed`` (if present) with a ±1 std or min–max band (docs/theory.md §6)."""
    if band not in BANDS:
        raise ValueError(f"band: must be one of {BANDS}, got {band!r}")
    x = np.asarray(da[xdim].values, dtype=float)
    if "seed" not in da.dims or da.sizes["seed"] == 1:
        y = da.squeeze("seed", drop=True) if "seed" in da.dims else da
        return Series(x, np.asarray(y.transpose(xdim).values, dtype=float), None, None, 1)
    vals = np.asarray(da.transpose("seed", xdim).values, dtype=float)
    with np.errstate(invalid="ignore"), quiet_nan_warnings():
        mean = np.nanmean(vals, axis=0)
        if band == "std":
            std = np.nanstd(vals, axis=0)
            lo, hi = mean - std, mean + std
        elif band == "minmax":
            lo, hi = np.nanmin(vals, axis=0), np.nanmax(vals, axis=0)
        else:
            lo = hi = None
    return Series(x, mean, lo, hi, vals.shape[0])


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of diverged runs
        yield


def valid(x: np.ndarray, *ys: np.ndarray | None, logx: bool, logy: bool) -> np.ndarray:
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


def frames_by_key(da: xr.DataArray, over: str | None, sliders: Sequence[str]
            ) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, xr.DataArray]]]]:
    """Yield (slider key, [(over value, sub-array), ...]) for every frame."""
    values = [list(da[d].values) for d in sliders]
    for key in itertools.product(*values):
        sub = da.sel(dict(zip(sliders, key))) if sliders else da
        if over is None:
            yield key, [(None, sub)]
        else:
            yield key, [(v, sub.sel({over: v})) for v in sub[over].values]


def holomap(frames: Mapping[tuple[Any, ...], Any], sliders: Sequence[str],
             da: xr.DataArray) -> Any:
    if not sliders:
        return frames[()]
    return hv.HoloMap(dict(frames), kdims=[dimension(da[d], d) for d in sliders])


#: draws one member of a frame: (its data, its value of ``over``, its colour, its selection
#: {dim: value} over the slider dims and ``over``) -> holoviews elements
Draw = Callable[[xr.DataArray, Any, str, dict[str, Any]], list[Any]]


def overlay_frames(da: xr.DataArray, over: str | None, sliders: Sequence[str], draw: Draw, *,
                   head: str, cmap: str, options: Callable[[str], Mapping[str, Any]],
                   extra: Callable[[dict[str, Any]], list[Any]] | None = None,
                   attrs: Mapping[str, Any] | None = None) -> Any:
    """One `hv.Overlay` per frame (an `hv.HoloMap` over the ``sliders`` if there are any).

    A frame holds what ``draw`` returns for each of its members (the values of ``over``), in
    colours sampled from ``cmap``, then what ``extra`` returns for the frame's selection. It
    is titled ``head`` and its slider values (named as the sweep ``attrs`` name them), and
    styled by ``options(title)`` (per-backend options such as
    `scalex.viz.style.frame_style` builds).
    """
    frames = {}
    for key, members in frames_by_key(da, over, sliders):
        selection = dict(zip(sliders, key))
        elements: list[Any] = []
        for (value, sub), color in zip(members, palette(len(members), cmap)):
            at = {**selection, over: value} if over is not None else dict(selection)
            elements += draw(sub, value, color, at)
        if extra is not None:
            elements += extra(selection)
        frame_title = head + (f" — {key_label(sliders, key, attrs)}" if sliders else "")
        frames[key] = styled(hv.Overlay(elements),
                             **_with_axis_labels(options(frame_title), elements))
    return holomap(frames, sliders, da)


def _with_axis_labels(options: Mapping[str, Any], elements: Sequence[Any]
                      ) -> dict[str, dict[str, Any]]:
    """``options`` with the axis labels of the first element made explicit: holoviews takes
    them from the first element it draws, and leaves both axes unlabelled when that one has
    no data (a member without a plateau, say)."""
    first = next((e for e in elements if getattr(e, "kdims", None) and getattr(e, "vdims", None)),
                 None)
    if first is None:
        return {backend: dict(opts) for backend, opts in options.items()}
    labels = {"xlabel": first.kdims[0].pprint_label, "ylabel": first.vdims[0].pprint_label}
    return {backend: {**labels, **opts} for backend, opts in options.items()}


# ----------------------------------------------------------------------------- learning curves
def series_elements(series: Series, xdim: hv.Dimension, ydim: hv.Dimension, color: str,
                     label: str, *, logx: bool, logy: bool, dash: str = "solid",
                     width: float = 2.0) -> list[Any]:
    """A Curve of the mean and, when there is a band, an Area under it."""
    out = []
    if series.lo is not None:
        ok = valid(series.x, series.lo, series.hi, logx=logx, logy=logy)
        if ok.any():
            # a distinct label: holoviews resolves dimensions by label too
            upper = hv.Dimension(f"{ydim.name}_upper", label=f"{ydim.label} (band top)",
                                 unit=ydim.unit)
            area = hv.Area((series.x[ok], series.lo[ok], series.hi[ok]), kdims=[xdim],
                           vdims=[ydim, upper])
            out.append(styled(area, **fill_style(color)))
    ok = valid(series.x, series.y, logx=logx, logy=logy)
    curve = hv.Curve((series.x[ok], series.y[ok]), kdims=[xdim], vdims=[ydim], label=label)
    out.append(styled(curve, **line_style(color, width=width, dash=dash)))
    return out


def curve_label(over: str | None, value: Any, series: Series, suffix: str = "",
                attrs: Mapping[str, Any] | None = None) -> str:
    parts = []
    if over is not None:
        parts.append(f"{symbol_of(over, attrs)}={fmt(value)}")
    if suffix:
        parts.append(suffix)
    if series.n_seeds > 1:
        parts.append(f"({series.n_seeds} seeds)")
    return " ".join(parts) if parts else "ε_g"


# ----------------------------------------------------------------------------- composition
def extend(obj: hv.Overlay | hv.HoloMap, *elements: Any) -> hv.Overlay | hv.HoloMap:
    """``obj`` with ``elements`` (e.g. a reference curve or an hv.VSpan) drawn on top, keeping
    the plot options (log axes, title, limits, size) of ``obj`` in both backends, which a bare
    ``obj * element`` would drop. A HoloMap gets the elements in every frame."""
    load_backends()
    if isinstance(obj, hv.HoloMap):
        return obj.clone({key: extend(frame, *elements) for key, frame in obj.data.items()})
    out = hv.Overlay([*(obj if isinstance(obj, hv.Overlay) else [obj]), *elements])
    for backend in ("bokeh", "matplotlib"):
        options = hv.Store.lookup_options(backend, obj, "plot").kwargs
        if options:
            out = out.opts(backend=backend, **options)
    return out
