"""Labelled ticks on logarithmic axes, the same rule in matplotlib and bokeh.

Which ticks of a log axis carry a label depends on how many decades it spans: two or more,
the powers of ten (every one that fits); one to two, also 2 and 5 times a power of ten; half
a decade to one, every integer multiple 1…9 of a power of ten (at least two of them fit);
less, linear steps. Minor ticks sit at 2…9 times each power of ten. Labels read 10³ and
2×10³, or 1000 and 2000 on an axis of less than two decades within `PLAIN`.
Without this, bokeh draws an axis of less than two decades with linear ticks (5000, 10000,
15000) and matplotlib labels only the one or two powers of ten inside it.

`log_hooks` returns the holoviews hooks that apply the rule to the chosen axes of a plot;
`major_ticks` and `minor_ticks` are the rule itself, for a range of data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["label_mantissas", "log_hooks", "major_ticks", "minor_ticks"]

#: below this many decades the axis gets linear ticks (integer multiples may not fit twice)
MIN_DECADES = 0.5
#: an axis of less than two decades inside this range is labelled with plain numbers
PLAIN = (1e-3, 1e5)


def decades(lo: float, hi: float) -> float:
    """log10(hi/lo) of a positive range, 0 where the range is not positive and finite."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= 0:
        return 0.0
    return abs(math.log10(hi / lo))


def label_mantissas(n_decades: float) -> tuple[int, ...]:
    """The mantissas m of the labelled ticks m·10^k on an axis spanning ``n_decades``."""
    if n_decades >= 2:
        return (1,)
    if n_decades >= 1:
        return (1, 2, 5)
    return tuple(range(1, 10))


def _multiples(lo: float, hi: float, mantissas: tuple[int, ...], pad: float) -> list[float]:
    """Every m·10^k with m in ``mantissas`` in [lo/pad, hi·pad]."""
    lo, hi = sorted((lo, hi))
    first, last = math.floor(math.log10(lo / pad)), math.ceil(math.log10(hi * pad))
    return [float(m * 10.0**k) for k in range(first, last + 1) for m in mantissas
            if lo / pad <= m * 10.0**k <= hi * pad]


def major_ticks(lo: float, hi: float, pad: float = 1.0) -> list[float]:
    """The labelled ticks of a log axis from ``lo`` to ``hi`` (widened by the factor ``pad``)."""
    return _multiples(lo, hi, label_mantissas(decades(lo, hi)), pad)


def minor_ticks(lo: float, hi: float, pad: float = 1.0) -> list[float]:
    """2…9 times each power of ten from ``lo`` to ``hi`` (widened by the factor ``pad``)."""
    return _multiples(lo, hi, tuple(range(2, 10)), pad)


# ----------------------------------------------------------------------------- matplotlib
def _mpl_formatter() -> Any:
    from matplotlib.ticker import Formatter

    class LogLabels(Formatter):  # type: ignore[misc]
        """Labels m·10^k where m is a mantissa `label_mantissas` allows for the view."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            lo, hi = self.axis.get_view_interval()
            n = decades(lo, hi)
            if not x > 0:
                return ""
            if n < MIN_DECADES:
                return f"{x:g}"
            exponent = math.floor(math.log10(x) + 1e-9)
            mantissa = x / 10.0**exponent
            m = round(mantissa)
            if abs(mantissa - m) > 1e-6 or m not in label_mantissas(n):
                return ""
            if n < 2 and PLAIN[0] <= min(lo, hi) and max(lo, hi) < PLAIN[1]:
                return f"{x:g}"  # 500, 1000, 2000 read better than 5×10², 10³, 2×10³
            if m == 1:
                return rf"$\mathdefault{{10^{{{exponent}}}}}$"
            return rf"$\mathdefault{{{m}\times10^{{{exponent}}}}}$"

    return LogLabels()


def _mpl_log_axis(axis: Any) -> None:
    from matplotlib.ticker import LogLocator

    axis.set_major_locator(LogLocator(base=10.0))
    axis.set_minor_locator(LogLocator(base=10.0, subs="auto"))
    axis.set_major_formatter(_mpl_formatter())
    axis.set_minor_formatter(_mpl_formatter())


def _mpl_hook(x: bool, y: bool) -> Callable[[Any, Any], None]:
    def log_ticks(plot: Any, element: Any) -> None:
        ax = plot.handles["axis"]
        for axis, wanted in ((ax.xaxis, x), (ax.yaxis, y)):
            if wanted and axis.get_scale() == "log":
                _mpl_log_axis(axis)

    return log_ticks


# ----------------------------------------------------------------------------- bokeh
def _bokeh_log_axis(axis: Any, lo: float, hi: float) -> None:
    """Fixed ticks by `major_ticks` where the axis spans less than two decades (bokeh's own
    LogTicker falls back to linear ticks there); widened a hundredfold for panning."""
    from bokeh.models import FixedTicker

    n = decades(lo, hi)
    if not MIN_DECADES <= n < 2:
        return
    axis.ticker = FixedTicker(ticks=major_ticks(lo, hi, pad=100.0),
                              minor_ticks=minor_ticks(lo, hi, pad=100.0))


def _bokeh_hook(x: bool, y: bool) -> Callable[[Any, Any], None]:
    def log_ticks(plot: Any, element: Any) -> None:
        from bokeh.models import LogAxis

        fig = plot.state
        for wanted, axes, rng in ((x, fig.xaxis, plot.handles.get("x_range")),
                                  (y, fig.yaxis, plot.handles.get("y_range"))):
            if not wanted or rng is None:
                continue
            lo, hi = getattr(rng, "start", None), getattr(rng, "end", None)
            if lo is None or hi is None:
                continue
            for axis in axes:
                if isinstance(axis, LogAxis):
                    _bokeh_log_axis(axis, float(lo), float(hi))

    return log_ticks


def log_hooks(x: bool = True, y: bool = True) -> dict[str, list[Callable[[Any, Any], None]]]:
    """holoviews ``hooks`` options, per backend, that label the log x and/or y axis."""
    return {"matplotlib": [_mpl_hook(x, y)], "bokeh": [_bokeh_hook(x, y)]}
