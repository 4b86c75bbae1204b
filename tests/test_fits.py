"""Tests of scalex.common.fits.line_fit, the one least-squares line of the package, and of the
numbers of its callers (power-law fits of learning curves and the bootstrap over seeds,
docs/analysis.md (A5)–(A7); the spectrum exponent, docs/theory.md §4.5 and §4.7).

Independent routes: ordinary least squares by the normal equations written out here, the
textbook least-squares code the callers used before (``np.linalg.lstsq``, ``np.polyfit``, a
bootstrap loop over ``rng.integers``), and the spread of the slope over noise realisations.

Tolerance of the comparisons with the normal equations: 1e-12 of the natural scale of each
number (a few thousand ulps; the two routes round differently, by ~n·eps of that scale):
s_b = (√S_yy + max|y|)/√S_xx for the slope (y rounds at its own magnitude, so a line that is
almost flat is covered), max|y| + s_b·max|x| for the intercept and
(max|y| + |a| + |b|·max|x|)/√S_xx for the slope's standard error (absolute, so that a
noiseless line, whose standard error is round-off, is covered).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scalex
from scalex import analysis
from scalex.analysis import estimators as est
from scalex.common.fits import LineFit, line_fit
from scalex.engines.linear_asymptotics import asymptotics
from scalex.model import spectrum
from scalex.model.spectrum import power_law

TOL = 1e-12


# --------------------------------------------------------------------------- references
def normal_equations(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """OLS y = a + b x from the normal equations (XᵀX) c = Xᵀy, X = [1, x − x̄]:
    (b, se_b, a, se_a) with cov(c) = s² (XᵀX)⁻¹, s² = Σ r² / (n − 2)."""
    xm = x.mean()
    X = np.column_stack([np.ones_like(x), x - xm])
    xtx = X.T @ X
    c = np.linalg.solve(xtx, X.T @ y)
    resid = y - X @ c
    s2 = float(resid @ resid) / (x.size - 2)
    cov = s2 * np.linalg.inv(xtx)
    b, se_b = c[1], np.sqrt(cov[1, 1])
    a = c[0] - b * xm
    se_a = np.sqrt(cov[0, 0] + xm**2 * cov[1, 1])  # a = c0 − b x̄, c0 and b uncorrelated
    return float(b), float(se_b), float(a), float(se_a)


def scales(x: np.ndarray, y: np.ndarray, b: float, a: float) -> tuple[float, float, float]:
    """The natural scales of slope, intercept and slope stderr (module docstring)."""
    sxx = float(np.sum((x - x.mean()) ** 2))
    syy = float(np.sum((y - y.mean()) ** 2))
    xmax, ymax = np.max(np.abs(x)), np.max(np.abs(y))
    sb = (np.sqrt(syy) + ymax) / np.sqrt(sxx)
    return sb, ymax + sb * xmax, (ymax + abs(a) + abs(b) * xmax) / np.sqrt(sxx)


def assert_matches_normal_equations(x: np.ndarray, y: np.ndarray, fit) -> None:
    b, se_b, a, se_a = normal_equations(x, y)
    sb, sa, sse = scales(x, y, b, a)
    xm2 = float(np.mean(x) ** 2 + np.mean((x - x.mean()) ** 2))  # se_a / se_b = √(Σx²/n)
    assert abs(fit[0] - b) <= TOL * sb
    assert abs(fit[1] - se_b) <= TOL * sse
    assert abs(fit[2] - a) <= TOL * sa
    assert abs(fit[3] - se_a) <= TOL * sse * np.sqrt(xm2)


# --------------------------------------------------------------------------- line_fit
@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(st.floats(-50, 50), min_size=3, max_size=40),
    a=st.floats(-100, 100), b=st.floats(-20, 20),
    noise=st.sampled_from([0.0, 1e-12, 1e-6, 1e-2, 1.0, 100.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_line_fit_matches_normal_equations(x, a, b, noise, seed):
    x = np.asarray(x)
    assume(np.ptp(x) > 1e-3 * max(1.0, np.max(np.abs(x))))
    y = a + b * x + noise * np.random.default_rng(seed).standard_normal(x.size)
    fit = line_fit(x, y)
    assert isinstance(fit, LineFit)
    assert_matches_normal_equations(x, y, fit)
    assert est.ols_line(x, y) == tuple(fit)  # the tuple interface is the same fit


def test_line_fit_of_a_noiseless_line_has_round_off_stderr():
    x = np.log(np.geomspace(1, 1e4, 300))
    fit = line_fit(x, 2.0 - 0.7 * x)
    assert fit.slope == pytest.approx(-0.7, abs=1e-14)
    assert fit.intercept == pytest.approx(2.0, abs=1e-13)
    assert fit.slope_stderr < 1e-14 and fit.intercept_stderr < 1e-13


def test_line_fit_degenerate_input_gives_nan_not_errors():
    assert np.all(np.isnan(line_fit([], [])))
    assert np.all(np.isnan(line_fit([1.0], [2.0])))
    assert np.all(np.isnan(line_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])))  # all x equal
    assert np.all(np.isnan(line_fit([0.0, 1.0, 2.0], [1.0, np.nan, 3.0])))
    assert np.all(np.isnan(line_fit([0.0, np.inf, 2.0], [1.0, 2.0, 3.0])))
    two = line_fit([1.0, 3.0], [0.0, 4.0])
    assert (two.slope, two.intercept) == pytest.approx((2.0, -2.0), abs=1e-15)
    assert np.isnan(two.slope_stderr) and np.isnan(two.intercept_stderr)
    flat = line_fit([0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0])
    assert tuple(flat) == pytest.approx((0.0, 0.0, 5.0, 0.0), abs=1e-15)
    with pytest.raises(ValueError, match="x, y"):
        line_fit([0.0, 1.0, 2.0], [1.0, 2.0])


def test_slope_stderr_is_the_spread_over_noise_realisations():
    """se_b estimates the standard deviation of b over independent noise draws: σ/√S_xx."""
    rng = np.random.default_rng(2024)
    x = np.log(np.geomspace(1.0, 1e3, 25))
    sigma, draws = 0.1, 3000
    fits = np.array([line_fit(x, 1.0 - 0.8 * x + sigma * rng.standard_normal(x.size))
                     for _ in range(draws)])
    sxx = np.sum((x - x.mean()) ** 2)
    truth_b = sigma / np.sqrt(sxx)
    truth_a = sigma * np.sqrt(1 / x.size + x.mean() ** 2 / sxx)
    # sample std of 3000 draws: relative error ~1/√6000 = 1.3 %; E[se²] = σ²/S_xx exactly
    assert fits[:, 0].std(ddof=1) == pytest.approx(truth_b, rel=0.06)
    assert np.sqrt(np.mean(fits[:, 1] ** 2)) == pytest.approx(truth_b, rel=0.03)
    assert fits[:, 2].std(ddof=1) == pytest.approx(truth_a, rel=0.06)
    assert np.sqrt(np.mean(fits[:, 3] ** 2)) == pytest.approx(truth_a, rel=0.03)
    assert fits[:, 0].mean() == pytest.approx(-0.8, abs=4 * truth_b / np.sqrt(draws))


# --------------------------------------------------------------------------- callers' numbers
def noisy_power_law(gamma: float, pref: float, noise: float, seed: int = 3):
    alpha = np.geomspace(1, 1e4, 300)
    rng = np.random.default_rng(seed)
    return alpha, pref * alpha**-gamma * np.exp(noise * rng.standard_normal(alpha.size))


def linear_theory(L: int, beta: float, alpha: np.ndarray) -> np.ndarray:
    """Small-η linear ε_g (docs/theory.md §4.5): finite-L power law with an exponential tail."""
    lam = power_law(L, beta).eigenvalues
    return (np.exp(-2 * 0.5 * np.outer(alpha, lam)) @ lam) / (2 * L)


def window_fit(alpha: np.ndarray, eg: np.ndarray, out: np.ndarray) -> None:
    """The γ, se_γ, A, se_A of a `fit_power_law_1d` row against the normal equations on the
    valid points of the window the row reports."""
    sel = est.valid_mask(alpha, eg) & (alpha >= out[4]) & (alpha <= out[5])
    assert sel.sum() == out[6]
    x, y = np.log(alpha[sel]), np.log(eg[sel])
    line = est.fit_points(alpha, eg, sel)
    assert_matches_normal_equations(x, y, (-line[0], line[1], np.log(line[2]),
                                           line[3] / line[2]))
    assert np.array_equal(out[:4], line, equal_nan=True)


@pytest.mark.parametrize("window", [(10.0, 1e3), None])
@pytest.mark.parametrize("gamma, noise", [(0.5, 0.0), (1.3, 0.01), (0.8, 0.05)])
def test_power_law_fit_is_the_least_squares_line(window, gamma, noise):
    alpha, eg = noisy_power_law(gamma, 0.7, noise)
    lo, hi = window or (np.nan, np.nan)
    out = est.fit_power_law_1d(alpha, eg, lo, hi)
    assert out[-1] in (est.OK, est.APPROX)
    window_fit(alpha, eg, out)
    # the xarray layer returns the same row
    da = xr.DataArray(eg, dims="alpha", coords={"alpha": alpha})
    res = analysis.fit_power_law(da, *(window or (None, None)))
    assert [float(res[k]) for k in est.FIT_FIELDS[:-1]] == pytest.approx(list(out[:-1]),
                                                                         rel=0, abs=0)


@pytest.mark.parametrize("L, beta", [(64, 0.5), (512, 1.0), (4096, 2.0)])
def test_approximate_window_fit_on_linear_theory_is_the_least_squares_line(L, beta):
    alpha = np.geomspace(1, 1e6, 400)
    eg = linear_theory(L, beta, alpha)
    out = est.fit_power_law_1d(alpha, eg)
    assert out[-1] in (est.OK, est.APPROX)
    window_fit(alpha, eg, out)


@pytest.mark.parametrize("rate", [1e-3, 1e-2, 0.1])
def test_convergence_rate_is_the_least_squares_line(rate):
    alpha = np.geomspace(1, 40 / rate, 400)
    rng = np.random.default_rng(5)
    eg = 2.0 * np.exp(-rate * alpha) * np.exp(0.01 * rng.standard_normal(alpha.size))
    out = est.convergence_1d(alpha, eg)
    assert est.CONVERGENCE_CLASSES[int(out[0])] == "exponential"
    g = -est.local_slope(alpha, eg)
    sel = (est.valid_mask(alpha, eg) & (alpha >= out[3]) & (alpha <= out[4])
           & np.isfinite(g))
    x, y = alpha[sel], np.log(eg[sel])
    b, _, a, _ = normal_equations(x, y)
    assert abs(-out[1] - b) <= TOL * scales(x, y, b, a)[0]


def test_convergence_exponent_is_the_least_squares_line():
    alpha, eg = noisy_power_law(0.9, 1.0, 0.01)
    out = est.convergence_1d(alpha, eg)
    assert est.CONVERGENCE_CLASSES[int(out[0])] == "power_law"
    g = -est.local_slope(alpha, eg)
    sel = (est.valid_mask(alpha, eg) & (alpha >= out[3]) & (alpha <= out[4])
           & np.isfinite(g))
    x, y = np.log(alpha[sel]), np.log(eg[sel])
    b, _, a, _ = normal_equations(x, y)
    assert abs(-out[2] - b) <= TOL * scales(x, y, b, a)[0]


def bootstrap_loop(alpha, eg, main, n_boot, ci, random_state):
    """The bootstrap of (A6) as a plain loop: the S seeds resampled n_boot times by
    ``rng.integers(0, S, (n_boot, S))``, failed resamples dropped, percentile interval."""
    rng = np.random.default_rng(random_state)
    picks = rng.integers(0, eg.shape[0], size=(n_boot, eg.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a resample
        boots = np.array([est.fit_power_law_1d(alpha, np.nanmean(eg[p], axis=0), main[4],
                                               main[5])[0] for p in picks])
    boots = boots[np.isfinite(boots)]
    q = 0.5 * (1 - ci)
    return np.quantile(boots, q), np.quantile(boots, 1 - q), boots.std(ddof=1), boots.size


@pytest.mark.parametrize("case", ["clean", "failing resamples"])
@pytest.mark.parametrize("random_state", [0, 7])
def test_bootstrap_interval_is_the_resampling_loop(case, random_state):
    rng = np.random.default_rng(11)
    alpha = np.geomspace(1, 1e3, 200)
    eg = 0.5 * alpha**-0.8 * np.exp(0.05 * rng.standard_normal((12, alpha.size))
                                    + 0.1 * rng.standard_normal((12, 1)) * np.log(alpha)
                                    / np.log(1e3))
    if case == "failing resamples":  # resamples of seeds 0 and 1 only: 3 valid points
        eg = eg[:3].copy()
        eg[:2, 2:199] = np.nan
    out = est.fit_bootstrap(alpha, eg, 1.0, 1e3, n_boot=200, ci=0.9,
                            random_state=random_state)
    lo, hi, std, kept = bootstrap_loop(alpha, eg, out, 200, 0.9, random_state)
    if case == "failing resamples":
        assert 2 <= kept < 200
    else:
        assert kept == 200
    assert out[-3:] == pytest.approx([lo, hi, std], rel=TOL, abs=0)
    again = est.fit_bootstrap(alpha, eg, 1.0, 1e3, n_boot=200, ci=0.9,
                              random_state=random_state)
    assert np.array_equal(out, again, equal_nan=True)  # deterministic in random_state


def lstsq_exponent(lam: np.ndarray, fit_range: tuple[int, int]) -> tuple[float, float]:
    """β and se from log λ_k = c − (1+β) log k by np.linalg.lstsq (the former route)."""
    kmin, kmax = fit_range
    x = np.log(np.arange(kmin, kmax + 1, dtype=float))
    y = np.log(lam[kmin - 1:kmax])
    A = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    cov = float(resid @ resid) / (x.size - 2) * np.linalg.inv(A.T @ A)
    return float(-coef[1] - 1.0), float(np.sqrt(cov[1, 1]))


@pytest.mark.parametrize("seed", range(3))
def test_spectrum_exponent_is_the_least_squares_line(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((800, 200)) * np.arange(1, 201) ** (-(1 + 0.7) / 2)
    for fit_range in (None, (2, 40)):
        emp = spectrum.from_data(X, fit_range=fit_range)
        beta, se = lstsq_exponent(emp.eigenvalues, emp.fit_range)
        kmin, kmax = emp.fit_range
        x = np.log(np.arange(kmin, kmax + 1.0))
        y = np.log(emp.eigenvalues[kmin - 1:kmax])
        sb, _, sse = scales(x, y, -(1 + beta), normal_equations(x, y)[2])
        assert abs(emp.beta - beta) <= TOL * sb
        assert abs(emp.beta_stderr - se) <= TOL * sse


def test_linear_asymptotics_exponent_is_the_least_squares_line():
    rng = np.random.default_rng(0)
    lam = np.sort(np.arange(1, 257.0) ** -1.6 * (1 + 0.05 * rng.standard_normal(256)))[::-1]
    setup = scalex.Setup(K=1, M=1, N=256, eigenvalues=lam, eta=0.01)
    sp = setup.spectrum
    x = np.log(np.cumsum(sp.multiplicities) / sp.N)
    ls = np.log(sp.eigenvalues)
    for lo, hi in ((1, sp.L), (10, 200), (1, 2)):
        beta = asymptotics(setup, fit_range=(lo, hi)).beta
        slope = np.polyfit(x[lo - 1:hi], ls[lo - 1:hi], 1)[0]
        sb = np.sqrt(np.sum((ls[lo - 1:hi] - ls[lo - 1:hi].mean()) ** 2)
                     / np.sum((x[lo - 1:hi] - x[lo - 1:hi].mean()) ** 2))
        assert abs(beta - (-slope - 1.0)) <= TOL * sb
