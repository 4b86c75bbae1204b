"""Shared look of scalex plots: holoviews backends, per-backend options, labels and colours.

`load_backends` registers the bokeh and matplotlib backends without a notebook and without
changing the current one, and `use_backend` switches for one block. `styled` applies options
per backend, and `line_style`, `fill_style` and `frame_style` build them for both at once
(`frame_style` corrects the aspect of semi-log matplotlib axes). `dimension` makes axis labels
from ``long_name`` and ``units``, and `title` a one-line title from the run's `Setup`
attributes, leaving out swept fields. `palette` samples a colour map. The constants
(`CORE_DIMS`, `SYMBOLS`, `METHODS`, `THEORY_COLOR`, `WIDTH` × `HEIGHT`) fix the dims of one run,
the short symbols, the method names, the colour of theory curves and the frame size.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.viz.ticks import log_hooks

#: dims that belong to one run; everything else except ``seed`` is a sweep dim
CORE_DIMS = ("alpha", "group", "student_i", "student_j", "teacher_n", "teacher_m")


BANDS = ("std", "minmax", None)


#: short names for legends and titles
SYMBOLS = {"beta": "β", "eta": "η", "sigma_J": "σ_J", "noise": "s", "trainable": "N_l",
           "alpha": "α", "seed": "seed"}


METHODS = {"ode": "ODE", "simulate": "SGD simulation", "sgd": "SGD simulation",
           "sgd_real_data": "SGD on real data", "linear": "linear theory",
           "initial": "initial condition"}


#: axis labels of the Setup fields a sweep varies (docs/theory.md §1), where the data name
#: them only generically ("swept Setup field L") or not at all
FIELD_LABELS = {"K": "student hidden units K", "M": "teacher hidden units M",
                "N": "input dimension N", "L": "number of distinct eigenvalues L",
                "beta": "spectrum exponent β", "eta": "learning rate η",
                "sigma_J": "initial weight std σ_J", "noise": "teacher output noise s",
                "trainable": "trained input coordinates N_l"}


THEORY_COLOR = "#d62728"
#: default frame size (screen pixels) of every plot
WIDTH, HEIGHT = 640, 420


# ----------------------------------------------------------------------------- backends
_LOADED = False


def load_backends() -> None:
    """Register the bokeh and matplotlib plotting backends without a notebook.

    Importing a holoviews plotting backend makes it the current one; the previous current
    backend is restored so that loading scalex.viz changes no global state.
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
def use_backend(name: str) -> Iterator[None]:
    """Make ``name`` the current holoviews backend for the block only."""
    load_backends()
    previous = hv.Store.current_backend
    hv.Store.set_current_backend(name)
    try:
        yield
    finally:
        hv.Store.set_current_backend(previous)


def styled(obj: Any, **per_backend: Mapping[str, Any]) -> Any:
    """Apply options for each backend (``bokeh=...``, ``matplotlib=...``) to ``obj``."""
    load_backends()
    for backend, options in per_backend.items():
        if options:
            obj = obj.opts(backend=backend, **options)
    return obj


_MPL_DASH = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-."}


def line_style(color: str, width: float = 2.0, dash: str = "solid", alpha: float = 1.0,
                hover: bool = True) -> dict[str, dict[str, Any]]:
    bokeh: dict[str, Any] = {"color": color, "line_width": width, "line_dash": dash,
                             "alpha": alpha}
    if hover:
        bokeh["tools"] = ["hover"]
    return {"bokeh": bokeh,
            "matplotlib": {"color": color, "linewidth": 0.75 * width,
                           "linestyle": _MPL_DASH[dash], "alpha": alpha}}


def fill_style(color: str, alpha: float = 0.2) -> dict[str, dict[str, Any]]:
    return {"bokeh": {"fill_color": color, "fill_alpha": alpha, "line_alpha": 0.0},
            "matplotlib": {"facecolor": color, "alpha": alpha, "linewidth": 0}}


def frame_style(width: int, height: int, title: str, *, logx: bool = True, logy: bool = True,
                 legend: bool = True, ylim: tuple[float, float] | None = None,
                 xticks: Sequence[float] | None = None) -> dict[str, dict[str, Any]]:
    """Plot-level options of one overlay, for both backends.

    The legend stands right of the axes, outside the data; log axes get labelled decades
    and minor ticks (`scalex.viz.ticks`). ``xticks`` puts labelled ticks at these values
    (e.g. the swept values) instead.
    """
    common: dict[str, Any] = {"logx": logx, "logy": logy, "show_grid": True,
                              "title": wrap_title(title), "show_legend": legend}
    if ylim is not None:
        common["ylim"] = tuple(ylim)
    if xticks is not None:
        common["xticks"] = [(float(t), fmt(t)) for t in xticks]
    hooks = log_hooks(x=logx and xticks is None, y=logy)
    if xticks is not None and logx:
        hooks["matplotlib"].append(no_minor_labels)
    # holoviews' matplotlib backend measures a log axis in natural-log units while matplotlib
    # uses decades, so on semi-log axes the requested aspect is off by ln 10
    aspect = width / height * (math.log(10) if logx and not logy else 1.0) / (
        math.log(10) if logy and not logx else 1.0)
    return {
        "bokeh": {**common, "width": width, "height": height, "legend_position": "right",
                  "fontscale": 1.1, "hooks": hooks["bokeh"]},
        "matplotlib": {**common, "aspect": aspect, "fig_size": 160,
                       "legend_position": "right", "hooks": hooks["matplotlib"]},
    }


# ----------------------------------------------------------------------------- labels
#: characters in one line of a title; a longer one is wrapped to fit the frame
TITLE_CHARS = 60


def wrap_title(text: str, chars: int = TITLE_CHARS) -> str:
    """``text`` broken into lines of at most ``chars`` characters; the key of a slider frame
    after " — " stays on the last line (`scalex.viz.export` splits titles there)."""
    head, sep, tail = text.partition(" — ")
    return "\n".join(textwrap.wrap(head, chars) or [head]) + sep + tail


def dimension(obj: xr.DataArray | None, name: str) -> hv.Dimension:
    """A holoviews Dimension named ``name`` whose label and unit come from ``obj.attrs``.

    ``long_name`` becomes the axis label; ``units`` is appended unless it is "1"
    (dimensionless) or empty. A swept Setup field without a specific ``long_name`` is
    labelled by `FIELD_LABELS`, so that a sweep and its summary read alike.
    """
    attrs = {} if obj is None else obj.attrs
    label = str(attrs.get("long_name", ""))
    if name in FIELD_LABELS and (not label or label.startswith("swept Setup field")):
        label = FIELD_LABELS[name]
    label = label or name
    units = str(attrs.get("units", "")).strip()
    spec: dict[str, Any] = {"label": label}
    if units and units != "1":
        spec["unit"] = units
    return hv.Dimension(name, **spec)


def short_label(label: str) -> str:
    """The symbol of a long name such as "student-teacher overlap r^τ_in = J_i P_τ B_n / N"."""
    head = label.split("=")[0].strip()
    return head.split()[-1] if "=" in label and head else label


def sweep_axes(attrs: Mapping[str, Any] | None) -> list[list[str]]:
    """The fields of each sweep axis of ``attrs["sweep_over"]``: ``{"K=M": ...}`` gives
    ``[["K", "M"]]``, an axis that sets several fields along one dim."""
    try:
        over = json.loads(str((attrs or {}).get("sweep_over", "") or "{}"))
    except ValueError:
        return []
    if not isinstance(over, Mapping):
        return []
    return [[name.strip() for name in str(key).split("=")] for key in over]


def symbol_of(name: str, attrs: Mapping[str, Any] | None = None) -> str:
    """The short symbol of a dim; a sweep axis over several fields (``attrs["sweep_over"]``
    key "K=M") gives all of them, "K=M"."""
    for fields in sweep_axes(attrs):
        if len(fields) > 1 and name in fields:
            return "=".join(SYMBOLS.get(f, f) for f in fields)
    return SYMBOLS.get(name, name)


def fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def key_label(dims: Sequence[str], key: Sequence[Any],
              attrs: Mapping[str, Any] | None = None) -> str:
    return ", ".join(f"{symbol_of(d, attrs)}={fmt(v)}" for d, v in zip(dims, key))


def title(attrs: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """A one-line title with the key parameters of the run recorded in ``attrs``.

    Parameters named in ``skip`` (typically the sweep dims) are left out.
    """
    skip = set(skip) | set(str(attrs.get("sweep_dims", "")).split())
    skip |= {name for fields in sweep_axes(attrs) for name in fields}
    method = METHODS.get(str(attrs.get("method", "")), str(attrs.get("method", "")))
    parts = []
    for key in ("K", "M", "N", "L"):
        if key in attrs and key not in skip:
            parts.append(f"{key}={fmt(attrs[key])}")
    if "eigenvalues" in attrs:
        parts.append("explicit spectrum")
    elif "beta" in attrs and "beta" not in skip:
        parts.append(f"β={fmt(attrs['beta'])}")
    for key in ("eta", "sigma_J"):
        if key in attrs and key not in skip:
            parts.append(f"{symbol_of(key)}={fmt(attrs[key])}")
    if "trainable" in attrs and "trainable" not in skip and "N" in attrs and (
        int(attrs["trainable"]) < int(attrs["N"])
    ):
        parts.append(f"N_l={fmt(attrs['trainable'])}")
    if attrs.get("activation") == "linear":
        parts.append("linear g")
    head = f"{method}: " if method else ""
    return head + " ".join(parts)


def palette(n: int, cmap: str) -> list[str]:
    """``n`` colours sampled from a matplotlib colour map (its pale top end left out)."""
    import matplotlib as mpl
    from matplotlib.colors import to_hex

    if n == 1:
        return ["#1f77b4"]
    colormap = mpl.colormaps[cmap]
    return [to_hex(colormap(x)) for x in np.linspace(0.0, 0.88, n)]


def no_minor_labels(plot: Any, element: Any) -> None:
    """matplotlib hook: no labels on the minor ticks of a log x axis with explicit ticks."""
    from matplotlib.ticker import NullFormatter

    plot.handles["axis"].xaxis.set_minor_formatter(NullFormatter())
