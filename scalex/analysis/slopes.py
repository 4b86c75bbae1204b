"""Valid points and the local log-log slope of one learning curve, equation (A1).

The conventions of all 1-D kernels (docs/analysis.md; summary in `scalex.analysis.estimators`):
only points with α > 0 and a finite ε_g above ``floor · max ε_g`` are "valid" and enter the
log-log analysis; windows are in decades of α. Also the argument checks shared by the kernels'
callers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scalex.common.keywords import must_be_fraction, must_be_positive

__all__ = [
    "LN10",
    "ExponentProfile",
    "check_floor",
    "check_positive",
    "exponent_profile",
    "local_slope",
    "true_runs",
    "valid_mask",
]

Array = NDArray[np.float64]
LN10 = float(np.log(10.0))


def check_positive(**values: float) -> None:
    """Raise ValueError naming the first value that is not finite and > 0."""
    for name, val in values.items():
        must_be_positive(name, val)


def check_floor(floor: float) -> None:
    """Raise ValueError unless the relative floor of `valid_mask` is in [0, 1)."""
    must_be_fraction("floor", floor)


def valid_mask(alpha: ArrayLike, eg: ArrayLike, floor: float = 1e-10) -> NDArray[np.bool_]:
    """Points usable in log-log: α > 0, ε_g finite and > floor · max(ε_g)."""
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    finite = np.isfinite(eg) & np.isfinite(alpha) & (alpha > 0)
    if not finite.any():
        return finite
    top = np.max(eg[finite])
    return finite & (eg > max(floor * top, np.finfo(float).tiny))


def local_slope(
    alpha: ArrayLike, eg: ArrayLike, window: float = 0.2, floor: float = 1e-10,
    min_points: int = 3,
) -> Array:
    """Running log-log slope d ln ε_g / d ln α, equation (A1).

    At every valid point α_i a straight line is fitted by least squares to (ln α_j, ln ε_g,j)
    over the valid points with |log10 α_j − log10 α_i| ≤ window/2. Near the ends of the data
    the window is truncated; a point whose window holds fewer than ``min_points`` points or
    spans less than 3/8 of the window gets NaN, as do invalid points. Cost O(n) (running sums).
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.full(alpha.shape, np.nan)
    mask = valid_mask(alpha, eg, floor)
    idx = np.flatnonzero(mask)
    if idx.size < min_points:
        return out
    x = np.log(alpha[idx])
    y = np.log(eg[idx])
    if np.any(np.diff(x) <= 0):  # grid must increase; otherwise refuse quietly
        return out
    half = 0.5 * window * LN10
    lo = np.searchsorted(x, x - half, side="left")
    hi = np.searchsorted(x, x + half, side="right")
    # centre on the global mean so the running sums do not cancel catastrophically
    xc, yc = x - x.mean(), y - y.mean()
    terms = (np.ones_like(xc), xc, yc, xc * xc, xc * yc)
    cs = [np.concatenate([[0.0], np.cumsum(v)]) for v in terms]
    n, sx, sy, sxx, sxy = (c[hi] - c[lo] for c in cs)
    den = n * sxx - sx * sx
    span = x[hi - 1] - x[lo]
    ok = (n >= min_points) & (span >= 0.75 * half) & (den > 0)
    slope = np.where(ok, (n * sxy - sx * sy) / np.where(ok, den, 1.0), np.nan)
    out[idx] = slope
    return out


class ExponentProfile(NamedTuple):
    """One curve prepared for the power-law and decay kernels (see `exponent_profile`)."""

    alpha: Array
    eg: Array
    valid: NDArray[np.bool_]
    exponent: Array


def exponent_profile(
    alpha: ArrayLike, eg: ArrayLike, window: float, floor: float
) -> ExponentProfile | None:
    """α and ε_g as float arrays, their valid points and the local exponent −(A1) on them.

    The common start of the kernels that read a window off the local exponent γ(α) =
    −d ln ε_g / d ln α (`scalex.analysis.powerlaw.fit_power_law_1d`, (A4);
    `scalex.analysis.decay.convergence_1d`, (A7)). None when no point is valid.
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    mask = valid_mask(alpha, eg, floor)
    if not mask.any():
        return None
    return ExponentProfile(alpha, eg, mask, -local_slope(alpha, eg, window, floor))


def true_runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Maximal runs [i0, i1] (inclusive) of True in a boolean array."""
    f = np.concatenate([[False], flags, [False]]).astype(np.int8)
    d = np.diff(f)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))
