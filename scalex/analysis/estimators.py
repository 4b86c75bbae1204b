"""Numerical kernels of `scalex.analysis`: estimators on one learning curve (plain 1-D numpy).

Every function here takes the time grid ``alpha`` (increasing) and a curve on it, knows nothing
of labels or dask, and never raises on bad data: a curve it cannot measure gives NaN and a
reason code (see `REASONS`). The definitions and thresholds are documented in docs/analysis.md;
the equation numbers (A1)–(A6) below refer to that page.

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
    "REASONS",
    "constant_window",
    "convergence_1d",
    "crossing_alpha",
    "fit_bootstrap",
    "fit_power_law_1d",
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
)
OK, NO_DATA, FEW_POINTS, NO_WINDOW, OUTSIDE, NONFINITE, UNDETERMINED, NO_DECAY = range(8)

#: class codes of `convergence_1d` (index = code)
CONVERGENCE_CLASSES: tuple[str, ...] = ("undetermined", "exponential", "power_law")

PLATEAU_FIELDS = ("plateau_height", "plateau_start", "plateau_end", "plateau_length",
                  "has_plateau", "plateau_spread")
FIT_FIELDS = ("exponent", "exponent_stderr", "prefactor", "prefactor_stderr", "alpha_min",
              "alpha_max", "n_points", "reason_code")


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

    Returns
    -------
    ``[height, start, end, end − start, found, spread]`` (see `PLATEAU_FIELDS`): NaN (and
    found = 0) without a plateau. ``spread`` is the median of the given specialisation spread
    over the plateau (NaN if not given).
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.array([np.nan, np.nan, np.nan, np.nan, 0.0, np.nan])
    slope = local_slope(alpha, eg, window, floor)
    good = np.isfinite(slope)
    if good.sum() < 2:
        return out
    first = eg[np.flatnonzero(good)[0]]
    logx = np.log10(np.where(alpha > 0, alpha, np.nan))
    best, best_span = None, -np.inf
    for i0, i1 in true_runs(good & (np.abs(slope) < flatness)):
        span = logx[i1] - logx[i0]
        if span < min_decades or span <= best_span:
            continue
        height = float(np.median(eg[i0:i1 + 1]))
        after = eg[i1 + 1:][good[i1 + 1:]]
        if height > first / contrast or after.size == 0 or after.min() > height / contrast:
            continue
        best, best_span = (i0, i1, height), span
    if best is None:
        return out
    i0, i1, height = best
    out[:5] = height, alpha[i0], alpha[i1], alpha[i1] - alpha[i0], 1.0
    if spread is not None:
        sp = np.asarray(spread, dtype=float)[i0:i1 + 1]
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
    floor: float = 1e-10,
    min_points: int = 4,
) -> Array:
    """Power-law fit ε_g ≈ A α^(−γ) on one curve, equations (A4)–(A5).

    With both ``alpha_min`` and ``alpha_max`` NaN the window is chosen by `constant_window` on
    the local exponent −(A1); a single NaN bound defaults to the end of the valid data. The fit
    is ordinary least squares of ln ε_g on ln α over the valid points in the window; standard
    errors are the OLS ones (A's by the delta method).

    Returns
    -------
    ``[γ, se_γ, A, se_A, alpha_min, alpha_max, n_points, reason_code]`` (`FIT_FIELDS`),
    NaN with a nonzero reason code when the fit fails; never raises.
    """
    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    out = np.full(len(FIT_FIELDS), np.nan)
    mask = valid_mask(alpha, eg, floor)
    if not mask.any():
        out[-2:] = 0, NO_DATA
        return out
    if np.isnan(alpha_min) and np.isnan(alpha_max):
        g = -local_slope(alpha, eg, window, floor)
        win = constant_window(alpha, g, tol, min_exponent)
        if win is None or np.log10(alpha[win[1]] / alpha[win[0]]) < min_decades:
            out[-2:] = 0, NO_WINDOW
            return out
        lo, hi = alpha[win[0]], alpha[win[1]]
    else:
        lo = alpha[mask][0] if np.isnan(alpha_min) else float(alpha_min)
        hi = alpha[mask][-1] if np.isnan(alpha_max) else float(alpha_max)
    out[4:6] = lo, hi
    sel = mask & (alpha >= lo) & (alpha <= hi)
    n = int(sel.sum())
    out[6] = n
    if hi <= lo or (n == 0 and (hi < alpha[mask][0] or lo > alpha[mask][-1])):
        out[7] = OUTSIDE
        return out
    if n < min_points:
        out[7] = FEW_POINTS
        return out
    fit = _fit_points(alpha, eg, sel)
    if not np.all(np.isfinite(fit[[0, 2]])):
        out[7] = NONFINITE
        return out
    out[:4] = fit
    out[7] = OK
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
    if main[-1] != OK or eg.shape[0] < 2 or n_boot < 2:
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
