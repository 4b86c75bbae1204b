"""Power-law fits ε_g ≈ A α^(−γ) of one learning curve and the bootstrap over seeds, (A4)–(A6).

1-D numpy kernels of `scalex.analysis.measures.fit_power_law` (conventions:
`scalex.analysis.slopes`; definitions and thresholds: docs/analysis.md; the exponents theory
predicts: docs/theory.md §4.5 and §5.5). A curve that cannot be fitted gives NaN and a reason
code (`REASONS`), never an error. The thresholds of the window choice are one `FitCriterion`,
shared with `scalex.analysis.measures.fit_power_law`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scalex.analysis.slopes import Array, exponent_profile, true_runs
from scalex.common.fits import line_fit
from scalex.common.keywords import KeywordGroup, positive, takes

__all__ = [
    "FIT_FIELDS",
    "REASONS",
    "FitCriterion",
    "constant_window",
    "fit_bootstrap",
    "fit_points",
    "fit_power_law_1d",
    "least_varying_window",
    "mean_over_seeds",
]

#: reason codes of `fit_power_law_1d` and `scalex.analysis.decay.convergence_1d` (index = code)
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

FIT_FIELDS = ("exponent", "exponent_stderr", "prefactor", "prefactor_stderr", "alpha_min",
              "alpha_max", "n_points", "exponent_spread", "reason_code")


@dataclass(frozen=True)
class FitCriterion(KeywordGroup):
    """The thresholds of the automatic fit window (A4)–(A4'), with their defaults
    (docs/analysis.md).

    ``tol``: half-width of the band the local exponent stays in; ``window``: the decades of
    the local exponent (A1); ``min_decades``: the shortest window; ``min_exponent``: the
    smallest local exponent a window may hold (plateaus are skipped); ``max_spread``: the
    largest relative spread of the fallback window (`least_varying_window`). `check` raises
    ValueError unless ``tol``, ``window`` and ``min_decades`` are finite and > 0.
    """

    tol: float = positive(0.02)
    window: float = positive(0.2)
    min_decades: float = positive(0.5)
    min_exponent: float = 0.05
    max_spread: float = 0.3


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


def fit_points(alpha: Array, eg: Array, mask: NDArray[np.bool_]) -> Array:
    """Least squares of ln ε_g = ln A − γ ln α on the masked points, (A5): [γ, se_γ, A, se_A].

    The line fit is `scalex.common.fits.line_fit`; se_A = A · se(ln A) (delta method).
    """
    fit = line_fit(np.log(alpha[mask]), np.log(eg[mask]))
    pref = np.exp(fit.intercept)
    return np.array([-fit.slope, fit.slope_stderr, pref, pref * fit.intercept_stderr])


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


@takes(criterion=FitCriterion)
def fit_power_law_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    alpha_min: float = np.nan,
    alpha_max: float = np.nan,
    *,
    criterion: FitCriterion,
    floor: float = 1e-10,
    min_points: int = 4,
) -> Array:
    """Power-law fit ε_g ≈ A α^(−γ) on one curve, equations (A4)–(A5).

    ``tol``, ``window``, ``min_decades``, ``min_exponent`` and ``max_spread`` are keyword
    arguments: the fields of `FitCriterion`, with its defaults.

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
    tol, min_decades, min_exponent = criterion.tol, criterion.min_decades, criterion.min_exponent
    out = np.full(len(FIT_FIELDS), np.nan)
    prof = exponent_profile(alpha, eg, criterion.window, floor)
    if prof is None:
        out[6], out[-1] = 0, NO_DATA
        return out
    alpha, eg, mask, g = prof
    code = OK
    if np.isnan(alpha_min) and np.isnan(alpha_max):
        have = np.flatnonzero(np.isfinite(g))  # valid points with a local exponent
        win = constant_window(alpha[have], g[have], tol, min_exponent)
        if win is not None:
            win = (have[win[0]], have[win[1]])
        if win is None or np.log10(alpha[win[1]] / alpha[win[0]]) < min_decades:
            loose = least_varying_window(alpha[have], g[have], min_decades, min_exponent)
            if loose is None or loose[1] > criterion.max_spread:
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
    fit = fit_points(alpha, eg, sel)
    if not np.all(np.isfinite(fit[[0, 2]])):
        out[-1] = NONFINITE
        return out
    out[:4] = fit
    gw = g[sel & np.isfinite(g)]
    out[7] = gw.max() - gw.min() if gw.size else np.nan
    out[-1] = code
    return out


def mean_over_seeds(eg: Array) -> Array:
    """Mean over the first axis (seeds), skipping NaN; a column that is all NaN gives NaN."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as wanted
        return np.nanmean(eg, axis=0)


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
    of ``n_boot`` resamples (with replacement) of the S seeds, drawn by `scipy.stats.bootstrap`
    from ``numpy.random.default_rng(random_state)`` (deterministic). Returns the `FIT_FIELDS`
    of the mean-curve fit followed by [ci_low, ci_high, bootstrap std of γ]: the percentile
    interval and the standard deviation of the resampled γ. Resamples whose fit fails (NaN)
    are left out of both; fewer than two finite ones give NaN.
    """
    from scipy.stats import DegenerateDataWarning, bootstrap  # loads on first use

    alpha = np.asarray(alpha, dtype=float)
    eg = np.asarray(eg, dtype=float)
    extra = np.full(3, np.nan)
    if eg.ndim != 2 or eg.shape[0] == 0:
        return np.concatenate([fit_power_law_1d(alpha, np.full(alpha.shape, np.nan)), extra])
    main = fit_power_law_1d(alpha, mean_over_seeds(eg), alpha_min, alpha_max, **fit_kwargs)
    if main[-1] not in (OK, APPROX) or eg.shape[0] < 2 or n_boot < 2:
        return np.concatenate([main, extra])
    keep = {k: v for k, v in fit_kwargs.items() if k in ("floor", "min_points")}

    def exponent(picks: NDArray[np.intp]) -> float:
        """γ of the mean of the seeds ``picks``, in the window of the mean-curve fit."""
        return fit_power_law_1d(alpha, mean_over_seeds(eg[picks]), main[4], main[5], **keep)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # NaN resamples: see below
        res = bootstrap((np.arange(eg.shape[0]),), exponent, n_resamples=n_boot,
                        vectorized=False, confidence_level=ci, method="percentile",
                        random_state=np.random.default_rng(random_state))
    boots = np.asarray(res.bootstrap_distribution, dtype=float)
    if np.all(np.isfinite(boots)):
        extra[:] = res.confidence_interval.low, res.confidence_interval.high, res.standard_error
        return np.concatenate([main, extra])
    boots = boots[np.isfinite(boots)]
    if boots.size >= 2:
        q = 0.5 * (1.0 - ci)
        extra[:] = np.quantile(boots, q), np.quantile(boots, 1.0 - q), boots.std(ddof=1)
    return np.concatenate([main, extra])
