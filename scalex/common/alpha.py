"""The time grid α (docs/theory.md §1): one validator for every entry point.

α = (SGD steps)/N. Every engine, sweep and catalog takes its requested record times through
`check_alpha`, so the same input is accepted or refused with the same message everywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["alpha_to_steps", "check_alpha", "log_grid"]


def check_alpha(alpha: ArrayLike, name: str = "alpha") -> NDArray[np.float64]:
    """``alpha`` as a float array: non-empty, 1-D, finite, >= 0 and strictly increasing.

    A scalar is taken as a grid of one time. The error names ``name`` and the first offending
    entry, e.g. ``alpha: must be strictly increasing; alpha[3]=0.5 and alpha[4]=0.5``.
    """
    try:
        a = np.array(alpha, dtype=float, ndmin=1)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a 1-D sequence of numbers, got {alpha!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: must be a non-empty 1-D sequence of times, got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a) | (a < 0))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{name}: times must be finite and >= 0, got {name}[{k}]={a[k]!r}")
    bad = np.flatnonzero(np.diff(a) <= 0)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{name}: must be strictly increasing; {name}[{k}]={a[k]:.6g} and "
                         f"{name}[{k + 1}]={a[k + 1]:.6g}")
    return a


def alpha_to_steps(alpha: ArrayLike, N: int) -> NDArray[np.int64]:
    """The SGD step n = rint(α·N) of every requested time, one per entry of ``alpha``.

    Times closer than 1/N round to the same step, so the result is non-decreasing but may
    repeat; the caller records each distinct step once and reports it under every α that
    asked for it.
    """
    return np.rint(check_alpha(alpha) * N).astype(np.int64)


def log_grid(start: float, stop: float, num: int, *, zero: bool = False) -> NDArray[np.float64]:
    """``num`` log-spaced times from ``start`` > 0 to ``stop``, with α = 0 prepended if ``zero``."""
    if not (np.isfinite(start) and start > 0):
        raise ValueError(f"start: must be finite and > 0 for a log grid, got {start!r}")
    if not (np.isfinite(stop) and stop > start):
        raise ValueError(f"stop: must be finite and > start={start:g}, got {stop!r}")
    if int(num) != num or num < 2:
        raise ValueError(f"num: must be an integer >= 2, got {num!r}")
    a = np.geomspace(start, stop, int(num))
    return np.concatenate([[0.0], a]) if zero else a
