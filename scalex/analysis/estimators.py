"""Numerical kernels of `scalex.analysis.measures`: estimators on one learning curve (1-D numpy).

Every function here takes the time grid ``alpha`` (increasing) and a curve on it, knows nothing
of labels or dask, and never raises on bad data: a curve it cannot measure gives NaN and a
reason code (see `REASONS`). The definitions and thresholds are documented in docs/analysis.md;
the equation numbers (A1)–(A7) below refer to that page.

Conventions
-----------
* Only points with α > 0 and a finite ε_g above the floor ``floor · max ε_g`` enter the log-log
  analysis ("valid" points); the rest are skipped, so an ε_g that hits the round-off floor of an
  ODE solver (or goes slightly negative) does not produce spurious slopes.
* Windows are given in decades of α (log10 units).
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CONVERGENCE_CLASSES",
    "FIT_FIELDS",
    "PLATEAU_FIELDS",
    "PLATEAU_REASONS",
    "REASONS",
    "constant_window",
    "convergence_1d",
    "crossing_alpha",
    "fit_bootstrap",
    "fit_power_law_1d",
    "least_varying_window",
    "local_slope",
    "ols_line",
    "plateau_1d",
    "valid_mask",
]

Array = NDArray[np.float64]
LN10 = float(np.log(10.0))

#: reason codes of `fit_power_law_1d` and `convergence_1d` (index = code)
REASONS: tuple[str, ...] = (
    "ok",
    "no valid points (alpha > 0, finite eg above the floor)",
    "too few valid points in the fit window",
    "no window of constant local exponent (within tol) spanning min_decades",
    "fit window lies outside the data",
    "non-finite fit result",
    "local exponent neither constant nor growing linearly (undetermined)",
    "curve does not decay in the late window (local exponent below min_exponent)",
    "ok, approximate: no window of constant local exponent within tol; fitted where it "
    "varies least (see exponent_spread)",
)
OK, NO_DATA, FEW_POINTS, NO_WINDOW, OUTSIDE, NONFINITE, UNDETERMINED, NO_DECAY, APPROX = range(9)

#: class codes of `convergence_1d` (index = code)
CONVERGENCE_CLASSES: tuple[str, ...] = ("undetermined", "exponential", "power_law")

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
FIT_FIELDS = ("exponent", "exponent_stderr", "prefactor", "prefactor_stderr", "alpha_min",
              "alpha_max", "n_points", "exponent_spread", "reason_code")


# --------------------------------------------------------------------------- basic pieces
def valid_mask(alpha: ArrayLike, eg: ArrayLike, floor: float = 1e-10) -> NDArray[np.bool_]:
    """Points usable in log-log: α > 0, ε_g finite and > floor · max(ε_g)."""
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    finite = np.isfinite(eg) & np.isfinite(alpha) & (alpha > 0)
    if not finite.any():
        return finite
    top = np.max(eg[finite])
    return finite & (eg > max(floor * top, np.finfo(float).tiny))


def ols_line(x: Array, y: Array) -> tuple[float, float, float, float]:
    """Least-squares line y = a + b x: returns (b, se_b, a, se_a); NaN if < 3 points."""
    n = x.size
    if n < 2:
        return (np.nan,) * 4
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if sxx <= 0:
        return (np.nan,) * 4
    b = float(dx @ (y - ym)) / sxx
    a = ym - b * xm
    if n < 3:
        return b, np.nan, a, np.nan
    resid = y - a - b * x
    s2 = float(resid @ resid) / (n - 2)
    se_b = np.sqrt(s2 / sxx)
    se_a = np.sqrt(s2 * (1.0 / n + xm**2 / sxx))
    return b, float(se_b), float(a), float(se_a)


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


def true_runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Maximal runs [i0, i1] (inclusive) of True in a boolean array."""
    f = np.concatenate([[False], flags, [False]]).astype(np.int8)
    d = np.diff(f)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


# --------------------------------------------------------------------------- plateau
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
    u: Array, ly: Array, *, flatness: float, min_decades: float, window: float,
    contrast: float, floor: float,
) -> tuple[float, float, float, float, float] | int:
    """The plateau (A2) of ln ε_g = ``ly`` on u = log10 α (valid, increasing points).

    Returns (u_start, u_end, du_start, du_end, height) or a `PLATEAU_REASONS` code.
    """
    s = local_slope(10.0**u, np.exp(ly), window, floor)
    keep = np.isfinite(s)
    if keep.sum() < 2:
        return P_FEW_POINTS
    u, y, s = u[keep], np.exp(ly[keep]), s[keep]
    first = y[0]
    best, best_span = None, -np.inf
    for i0, i1 in true_runs(np.abs(s) < flatness):
        span = u[i1] - u[i0]
        if span < min_decades or span <= best_span:
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


def plateau_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    spread: ArrayLike | None = None,
    *,
    flatness: float = 0.1,
    min_decades: float = 0.25,
    window: float = 0.2,
    contrast: float = 2.0,
    floor: float = 1e-10,
) -> Array:
    """The plateau of one learning curve, equation (A2).

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
    opts = dict(flatness=flatness, min_decades=min_decades, window=window, contrast=contrast,
                floor=0.0)
    step = window / 50.0
    if np.max(np.diff(u)) > 1.001 * step:  # coarse grid or gaps: resample in log-log
        from scipy.interpolate import CubicSpline

        uf = np.linspace(u[0], u[-1], int(np.ceil((u[-1] - u[0]) / step)) + 1)
        found = _flat_run(uf, CubicSpline(u, ly)(uf), **opts)
        linear = _flat_run(uf, np.interp(uf, u, ly), **opts)
        if not isinstance(found, int):
            if isinstance(linear, int):  # the two interpolations disagree on the plateau
                extra = (found[1] - found[0], found[1] - found[0])
            else:
                extra = (abs(found[0] - linear[0]), abs(found[1] - linear[1]))
            found = (found[0], found[1], found[2] + extra[0], found[3] + extra[1], found[4])
    else:
        found = _flat_run(u, ly, **opts)
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


# --------------------------------------------------------------------------- power-law fits
def constant_window(
    alpha: ArrayLike, exponent: ArrayLike, tol: float, min_exponent: float = 0.05
) -> tuple[int, int] | None:
    """Widest run [i, j] (in decades) where the local exponent stays within a band of ±tol, (A4).

    Considers only consecutive points with a finite local exponent ≥ ``min_exponent`` (so a
    plateau or the initial flat part, exponent ≈ 0, is never chosen), and returns the pair of
    indices with the largest log α_j − log α_i such that max − min of the exponent over
    [i, j] ≤ 2 tol. Two-pointer sweep with monotone queues: O(n).
    """
    alpha = np.asarray(alpha, dtype=float)
    g = np.asarray(exponent, dtype=float)
    ok = np.isfinite(g) & (g >= min_exponent) & (alpha > 0)
    logx = np.log10(np.where(alpha > 0, alpha, 1.0))
    best, best_span = None, 0.0
    for s, e in true_runs(ok):
        maxq: list[int] = []
        minq: list[int] = []
        mh = nh = 0  # heads of the queues (kept as lists with moving heads)
        i = s
        for j in range(s, e + 1):
            while len(maxq) > mh and g[maxq[-1]] <= g[j]:
                maxq.pop()
            maxq.append(j)
            while len(minq) > nh and g[minq[-1]] >= g[j]:
                minq.pop()
            minq.append(j)
            while g[maxq[mh]] - g[minq[nh]] > 2 * tol:
                i += 1
                if maxq[mh] < i:
                    mh += 1
                if minq[nh] < i:
                    nh += 1
            span = logx[j] - logx[i]
            if j > i and span > best_span:
                best, best_span = (i, j), span
    return best


def _fit_points(alpha: Array, eg: Array, mask: NDArray[np.bool_]) -> Array:
    """OLS of ln ε_g = ln A − γ ln α on the masked points: [γ, se_γ, A, se_A]."""
    x = np.log(alpha[mask])
    y = np.log(eg[mask])
    b, se_b, a, se_a = ols_line(x, y)
    pref = np.exp(a)
    return np.array([-b, se_b, pref, pref * se_a])


def least_varying_window(
    alpha: ArrayLike, exponent: ArrayLike, min_decades: float, min_exponent: float = 0.05
) -> tuple[tuple[int, int], float] | None:
    """The window of ``min_decades`` decades where the local exponent varies least, (A4').

    Among runs of consecutive points with a finite local exponent ≥ ``min_exponent``, every
    window [i, j] with j the first point ≥ ``min_decades`` decades after i is scored by the
    relative spread (max − min)/mean of the exponent over it; the window with the smallest
    score is returned with that score (None if no run spans ``min_decades``). It is the
    fallback of `fit_power_law_1d` when no window is constant within ±tol: a drifting power
    law (finite-L corrections) has a small score, an exponential tail (γ = cα) a score ≈ 1.
    """
    alpha = np.asarray(alpha, dtype=float)
    g = np.asarray(exponent, dtype=float)
    ok = np.isfinite(g) & (g >= min_exponent) & (alpha > 0)
    logx = np.log10(np.where(alpha > 0, alpha, 1.0))
    best, best_score = None, np.inf
    for s, e in true_runs(ok):
        ends = np.searchsorted(logx[s:e + 1], logx[s:e + 1] + min_decades, side="left") + s
        for i, j in enumerate(ends, start=s):
            if j > e:
                break
            seg = g[i:j + 1]
            score = (seg.max() - seg.min()) / seg.mean()
            if score < best_score:
                best, best_score = (i, j), float(score)
    return None if best is None else (best, best_score)


def fit_power_law_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    alpha_min: float = np.nan,
    alpha_max: float = np.nan,
    *,
    tol: float = 0.02,
    window: float = 0.2,
    min_decades: float = 0.5,
    min_exponent: float = 0.05,
    max_spread: float = 0.3,
    floor: float = 1e-10,
    min_points: int = 4,
) -> Array:
    """Power-law fit ε_g ≈ A α^(−γ) on one curve, equations (A4)–(A5).

    With both ``alpha_min`` and ``alpha_max`` NaN the window is chosen by `constant_window` on
    the local exponent −(A1), computed on the valid points only (missing points do not cut a
    window in two). If no window of ≥ ``min_decades`` decades is constant within ±``tol``
    (a power law drifting with finite-size corrections, followed by an exponential tail), the
    window of ``min_decades`` decades where the exponent varies least (`least_varying_window`)
    is used if its relative spread is ≤ ``max_spread``, with reason code APPROX. A single NaN
    bound defaults to the end of the valid data. The fit is ordinary least squares of ln ε_g
    on ln α over the valid points in the window; standard errors are the OLS ones (A's by the
    delta method).

    Returns
    -------
    ``[γ, se_γ, A, se_A, alpha_min, alpha_max, n_points, spread, reason_code]``
    (`FIT_FIELDS`; ``spread`` = max − min of the local exponent over the window), NaN with a
    reason code other than OK/APPROX when the fit fails; never raises.
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.full(len(FIT_FIELDS), np.nan)
    mask = valid_mask(alpha, eg, floor)
    if not mask.any():
        out[6], out[-1] = 0, NO_DATA
        return out
    g = -local_slope(alpha, eg, window, floor)
    code = OK
    if np.isnan(alpha_min) and np.isnan(alpha_max):
        have = np.flatnonzero(np.isfinite(g))  # valid points with a local exponent
        win = constant_window(alpha[have], g[have], tol, min_exponent)
        if win is not None:
            win = (have[win[0]], have[win[1]])
        if win is None or np.log10(alpha[win[1]] / alpha[win[0]]) < min_decades:
            loose = least_varying_window(alpha[have], g[have], min_decades, min_exponent)
            if loose is None or loose[1] > max_spread:
                out[6], out[-1] = 0, NO_WINDOW
                return out
            win, code = (have[loose[0][0]], have[loose[0][1]]), APPROX
        lo, hi = alpha[win[0]], alpha[win[1]]
    else:
        lo = alpha[mask][0] if np.isnan(alpha_min) else float(alpha_min)
        hi = alpha[mask][-1] if np.isnan(alpha_max) else float(alpha_max)
    out[4:6] = lo, hi
    sel = mask & (alpha >= lo) & (alpha <= hi)
    n = int(sel.sum())
    out[6] = n
    if hi <= lo or (n == 0 and (hi < alpha[mask][0] or lo > alpha[mask][-1])):
        out[-1] = OUTSIDE
        return out
    if n < min_points:
        out[-1] = FEW_POINTS
        return out
    fit = _fit_points(alpha, eg, sel)
    if not np.all(np.isfinite(fit[[0, 2]])):
        out[-1] = NONFINITE
        return out
    out[:4] = fit
    gw = g[sel & np.isfinite(g)]
    out[7] = gw.max() - gw.min() if gw.size else np.nan
    out[-1] = code
    return out


def fit_bootstrap(
    alpha: ArrayLike,
    eg: ArrayLike,
    alpha_min: float = np.nan,
    alpha_max: float = np.nan,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    random_state: int = 0,
    **fit_kwargs: float,
) -> Array:
    """Fit the seed-mean curve and bootstrap over seeds, equation (A6).

    ``eg`` is (S, A): S independent repetitions. The point estimate is `fit_power_law_1d` of
    the mean curve; the window it used is then kept fixed, and the fit is repeated on the mean
    of ``n_boot`` resamples (with replacement) of the S seeds. Returns the `FIT_FIELDS` of the
    mean-curve fit followed by [ci_low, ci_high, bootstrap std of γ].
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    extra = np.full(3, np.nan)
    if eg.ndim != 2 or eg.shape[0] == 0:
        return np.concatenate([fit_power_law_1d(alpha, np.full(alpha.shape, np.nan)), extra])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as wanted
        mean = np.nanmean(eg, axis=0)
    main = fit_power_law_1d(alpha, mean, alpha_min, alpha_max, **fit_kwargs)
    if main[-1] not in (OK, APPROX) or eg.shape[0] < 2 or n_boot < 2:
        return np.concatenate([main, extra])
    rng = np.random.default_rng(random_state)
    picks = rng.integers(0, eg.shape[0], size=(n_boot, eg.shape[0]))
    keep = {k: v for k, v in fit_kwargs.items() if k in ("floor", "min_points")}
    boots = np.array([
        fit_power_law_1d(alpha, np.nanmean(eg[p], axis=0), main[4], main[5], **keep)[0]
        for p in picks
    ])
    boots = boots[np.isfinite(boots)]
    if boots.size >= 2:
        q = 0.5 * (1.0 - ci)
        extra[:] = np.quantile(boots, q), np.quantile(boots, 1.0 - q), boots.std(ddof=1)
    return np.concatenate([main, extra])


# --------------------------------------------------------------------------- late-time decay
def convergence_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    alpha_min: float = np.nan,
    *,
    decades: float = 0.5,
    window: float = 0.2,
    exponential_ratio: float = 0.5,
    power_law_ratio: float = 0.15,
    min_exponent: float = 0.05,
    floor: float = 1e-10,
    min_points: int = 5,
) -> Array:
    """Classify the late-time decay of one curve, equation (A7).

    Late window: the last ``decades`` decades of valid data, starting no earlier than
    ``alpha_min`` (if given). There, the local exponent γ(α) = −d ln ε_g/d ln α (A1) is fitted
    by a line γ ≈ p + c α. For ε_g ∝ e^{−cα}, γ = cα exactly; for ε_g ∝ α^{−γ}, γ is constant.
    The growth ratio

        ρ = (γ_fit(α_hi) − γ_fit(α_lo)) / (γ_fit(α_hi) · (1 − α_lo/α_hi))

    is 1 for a pure exponential and 0 for a pure power law. Class "exponential" if
    ρ ≥ ``exponential_ratio``, "power_law" if |ρ| ≤ ``power_law_ratio``, else "undetermined";
    also undetermined if the mean γ < ``min_exponent`` (no decay) or there are too few points.
    Rate c: least squares of ln ε_g = a − c α on the window; exponent: least squares of
    ln ε_g = a − γ ln α.

    Returns
    -------
    ``[class_code, rate, exponent, alpha_lo, alpha_hi, ratio, reason_code]``.
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.array([0.0, np.nan, np.nan, np.nan, np.nan, np.nan, NO_DATA])
    mask = valid_mask(alpha, eg, floor)
    if not mask.any():
        return out
    g = -local_slope(alpha, eg, window, floor)
    hi = alpha[mask][-1]
    lo = hi / 10.0**decades
    if np.isfinite(alpha_min):
        lo = max(lo, float(alpha_min))
    out[3:5] = lo, hi
    sel = mask & (alpha >= lo) & (alpha <= hi) & np.isfinite(g)
    if sel.sum() < min_points or hi <= lo:
        out[6] = FEW_POINTS
        return out
    a_w, g_w = alpha[sel], g[sel]
    c, _, p, _ = ols_line(a_w, g_w)
    lo_w, hi_w = a_w[0], a_w[-1]
    g_hi = p + c * hi_w
    g_lo = p + c * lo_w
    if not (np.isfinite(c) and np.isfinite(p)):
        out[6] = NONFINITE
        return out
    if np.mean(g_w) < min_exponent or g_hi <= 0:
        out[6] = NO_DECAY
        return out
    ratio = (g_hi - g_lo) / (g_hi * (1.0 - lo_w / hi_w))
    out[5] = ratio
    if ratio >= exponential_ratio:
        rate = -ols_line(a_w, np.log(eg[sel]))[0]
        out[0], out[1], out[6] = 1, rate, OK
    elif abs(ratio) <= power_law_ratio:
        out[0], out[2], out[6] = 2, _fit_points(alpha, eg, sel)[0], OK
    else:
        out[6] = UNDETERMINED
    return out
