"""The plateau of one learning curve and the specialisation time, equations (A2)–(A3).

1-D numpy kernels of `scalex.analysis.measures.plateau` (conventions: `scalex.analysis.slopes`;
definitions and thresholds: docs/analysis.md; the symmetric plateau itself: docs/theory.md §5).
A curve without a plateau gives NaN and a reason code (`PLATEAU_REASONS`), never an error.
The thresholds of the criterion are one `PlateauCriterion`, shared with
`scalex.analysis.measures.plateau` and the escape theory (`scalex.analysis.escape.escape`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from scalex.analysis.slopes import Array, local_slope, true_runs, valid_mask
from scalex.common.keywords import KeywordGroup, above, positive, takes

__all__ = [
    "PLATEAU_FIELDS",
    "PLATEAU_REASONS",
    "PlateauCriterion",
    "check_plateau_options",
    "crossing_alpha",
    "plateau_1d",
]

PLATEAU_FIELDS = ("plateau_height", "plateau_start", "plateau_end", "plateau_length",
                  "has_plateau", "plateau_spread", "plateau_start_err", "plateau_end_err",
                  "plateau_length_err", "plateau_n_missing", "reason_code")

#: reason codes of `plateau_1d` (index = code)
PLATEAU_REASONS: tuple[str, ...] = (
    "ok",
    "ok; isolated missing points inside the plateau were skipped (interpolated in log alpha)",
    "degraded: a gap of several missing points lies inside the plateau; measured on the valid "
    "points around it",
    "no valid points (alpha > 0, finite eg above the floor)",
    "too few valid points for the local slope",
    "no plateau: no flat run spanning min_decades after the initial drop that is left again",
)
P_OK, P_ISOLATED, P_GAP, P_NO_DATA, P_FEW_POINTS, P_NONE = range(6)


@dataclass(frozen=True)
class PlateauCriterion(KeywordGroup):
    """The thresholds of the plateau criterion (A2), with their defaults (docs/analysis.md).

    ``flatness``: largest |d ln ε_g / d ln α| on the plateau; ``min_decades``: its shortest
    span in decades of α; ``window``: the decades of the local slope (A1); ``contrast``: the
    factor by which the plateau lies below the initial ε_g and is left again. `check` raises
    ValueError naming the first bad one (> 0 each, ``contrast`` > 1).
    """

    flatness: float = positive(0.1)
    min_decades: float = positive(0.25)
    window: float = positive(0.2)
    contrast: float = above(2.0, 1)


def check_plateau_options(
    *, flatness: float, min_decades: float, window: float, contrast: float
) -> None:
    """Raise ValueError naming the first bad threshold of the plateau criterion (A2)
    (`PlateauCriterion.check`)."""
    PlateauCriterion(flatness=flatness, min_decades=min_decades, window=window,
                     contrast=contrast).check()


def _flat_crossing(
    u: Array, s: Array, inside: int, outside: int, flatness: float
) -> tuple[float, float]:
    """Where |slope| crosses ``flatness`` between two valid points, in u = log10 α, (A2).

    ``inside`` is the last flat point of the run, ``outside`` its non-flat neighbour among the
    valid points (−1 or len(u) when the run touches the end of the data). Linear
    interpolation of |slope| in u; returns (u of the crossing, its uncertainty in u). The
    uncertainty is from the grid: the larger of a quarter of the bracketing interval and the
    difference between the linear and the quadratic (three-point) interpolation, so it grows
    with the spacing of the grid and across gaps of missing points.
    """
    n = u.size
    if outside < 0 or outside >= n:  # the run reaches the end of the data: no bracket
        return float(u[inside]), 0.0
    a, b = abs(s[outside]), abs(s[inside])
    frac = (a - flatness) / (a - b) if a != b else 0.5
    frac = min(max(frac, 0.0), 1.0)
    root = u[outside] + frac * (u[inside] - u[outside])
    err = 0.25 * abs(u[inside] - u[outside])
    third = inside + (inside - outside)  # the next point on the far side of ``inside``
    if 0 <= third < n:
        xs = u[[outside, inside, third]]
        ys = np.abs(s[[outside, inside, third]]) - flatness
        coef = np.polyfit(xs - root, ys, 2)
        roots = np.roots(coef) if coef[0] != 0 else np.roots(coef[1:])
        roots = roots[np.isreal(roots)].real + root
        lo, hi = sorted((u[outside], u[inside]))
        roots = roots[(roots >= lo) & (roots <= hi)]
        if roots.size:
            err = max(err, float(np.min(np.abs(roots - root))))
    return float(root), float(err)


def _flat_run(
    u: Array, ly: Array, criterion: PlateauCriterion
) -> tuple[float, float, float, float, float] | int:
    """The plateau (A2) of ln ε_g = ``ly`` on u = log10 α (valid, increasing points).

    Returns (u_start, u_end, du_start, du_end, height) or a `PLATEAU_REASONS` code.
    """
    flatness, contrast = criterion.flatness, criterion.contrast
    s = local_slope(10.0**u, np.exp(ly), criterion.window, 0.0)  # points are valid already
    keep = np.isfinite(s)
    if keep.sum() < 2:
        return P_FEW_POINTS
    u, y, s = u[keep], np.exp(ly[keep]), s[keep]
    first = y[0]
    best, best_span = None, -np.inf
    for i0, i1 in true_runs(np.abs(s) < flatness):
        span = u[i1] - u[i0]
        if span < criterion.min_decades or span <= best_span:
            continue
        height = float(np.median(y[i0:i1 + 1]))
        after = y[i1 + 1:]
        if height > first / contrast or after.size == 0 or after.min() > height / contrast:
            continue
        best, best_span = (i0, i1, height), span
    if best is None:
        return P_NONE
    i0, i1, height = best
    u0, du0 = _flat_crossing(u, s, i0, i0 - 1, flatness)
    u1, du1 = _flat_crossing(u, s, i1, i1 + 1, flatness)
    return u0, u1, du0, du1, height


@takes(criterion=PlateauCriterion)
def plateau_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    spread: ArrayLike | None = None,
    *,
    criterion: PlateauCriterion,
    floor: float = 1e-10,
) -> Array:
    """The plateau of one learning curve, equation (A2).

    ``flatness``, ``min_decades``, ``window`` and ``contrast`` are keyword arguments: the
    fields of `PlateauCriterion`, with its defaults.

    A plateau is a maximal run of consecutive valid points where the local slope (A1) obeys
    |d ln ε_g / d ln α| < ``flatness``, such that

    * its height h (median ε_g over the run) is at most ε_g(first valid point) / ``contrast``
      (it lies after the initial drop),
    * ε_g falls below h / ``contrast`` somewhere after the run (it is left again), and
    * it spans at least ``min_decades`` decades of α.

    Of several candidates the longest in decades wins.

    Grid independence: the start and end are where |slope| crosses ``flatness``, interpolated
    linearly in log α between grid points (`_flat_crossing`), so they do not snap to the grid.
    Where the valid points are sparser than ``window``/50 decades (a coarse grid, or a gap of
    missing points), ln ε_g is first resampled on a uniform grid of that spacing in log α by a
    cubic spline through the valid points; the same measurement with linear instead of cubic
    interpolation gives the uncertainty from the grid (the difference, O(h²) in the spacing
    h), added to the crossing's own interpolation uncertainty. ``*_err`` are these
    uncertainties in α; the length's is their sum.

    Missing points (NaN/inf ε_g at α > 0) are skipped, i.e. interpolated over in log-log
    space from the valid points around them, so an isolated NaN inside a plateau neither
    cuts it in two nor moves its ends. The reason code says whether missing points lay inside
    the plateau (``n_missing`` counts them).

    Returns
    -------
    The `PLATEAU_FIELDS`: ``[height, start, end, end − start, found, spread, start_err,
    end_err, length_err, n_missing, reason_code]``; NaN (found = 0) without a plateau, with
    the reason in `PLATEAU_REASONS`. ``height`` is the median of the measured ε_g between
    start and end; ``spread`` the median of the given specialisation spread there (NaN if
    not given).
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.full(len(PLATEAU_FIELDS), np.nan)
    out[4], out[9] = 0.0, 0.0
    mask = valid_mask(alpha, eg, floor)
    if not mask.any():
        out[10] = P_NO_DATA
        return out
    u = np.log10(alpha[mask])
    ly = np.log(eg[mask])
    if u.size < 4 or np.any(np.diff(u) <= 0):
        out[10] = P_FEW_POINTS
        return out
    step = criterion.window / 50.0
    if np.max(np.diff(u)) > 1.001 * step:  # coarse grid or gaps: resample in log-log
        from scipy.interpolate import CubicSpline

        uf = np.linspace(u[0], u[-1], int(np.ceil((u[-1] - u[0]) / step)) + 1)
        found = _flat_run(uf, CubicSpline(u, ly)(uf), criterion)
        linear = _flat_run(uf, np.interp(uf, u, ly), criterion)
        if not isinstance(found, int):
            if isinstance(linear, int):  # the two interpolations disagree on the plateau
                extra = (found[1] - found[0], found[1] - found[0])
            else:
                extra = (abs(found[0] - linear[0]), abs(found[1] - linear[1]))
            found = (found[0], found[1], found[2] + extra[0], found[3] + extra[1], found[4])
    else:
        found = _flat_run(u, ly, criterion)
    if isinstance(found, int):
        out[10] = found
        return out
    u0, u1, du0, du1, height = found
    start, end = 10.0**u0, 10.0**u1
    start_err = start * (10.0**du0 - 1.0)
    end_err = end * (10.0**du1 - 1.0)
    on = mask & (alpha >= start) & (alpha <= end)
    if on.any():
        height = float(np.median(eg[on]))
    missing = (alpha > start) & (alpha < end) & ~np.isfinite(eg)
    n_missing = int(missing.sum())
    reason = P_OK
    if n_missing:
        reason = P_ISOLATED if max(e - b for b, e in true_runs(missing)) == 0 else P_GAP
    out[:5] = height, start, end, end - start, 1.0
    out[6:11] = start_err, end_err, start_err + end_err, n_missing, reason
    if spread is not None:
        sp = np.asarray(spread, dtype=float)[(alpha >= start) & (alpha <= end)]
        sp = sp[np.isfinite(sp)]
        if sp.size:
            out[5] = np.median(sp)
    return out


def crossing_alpha(alpha: ArrayLike, values: ArrayLike, threshold: float) -> float:
    """First α after which ``values`` stays ≥ ``threshold`` (the last upward crossing), (A3).

    Linear interpolation between the two grid points around the crossing. NaN if the last
    finite value is below the threshold; α of the first finite point if it never falls below.
    """
    alpha = np.asarray(alpha, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(y) & np.isfinite(alpha)
    a, y = alpha[ok], y[ok]
    if y.size == 0 or y[-1] < threshold:
        return np.nan
    below = np.flatnonzero(y < threshold)
    if below.size == 0:
        return float(a[0])
    i = below[-1]
    y0, y1 = y[i], y[i + 1]
    frac = (threshold - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(a[i] + frac * (a[i + 1] - a[i]))
