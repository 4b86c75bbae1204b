"""Spectra: normalisation, ordering, user spectra and the empirical fit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalex.model import spectrum


@given(L=st.integers(1, 300), beta=st.floats(0.05, 4), norm=st.sampled_from(["mean", "top"]))
def test_power_law_normalisation_and_order(L, beta, norm):
    sp = spectrum.power_law(L, beta, N=2 * L, norm=norm)
    lam = sp.eigenvalues
    assert np.all(np.diff(lam) < 0) or L == 1
    if norm == "mean":
        assert lam.mean() == pytest.approx(1.0)
    else:
        assert lam[0] == pytest.approx(1.0)
    # The exponent: λ_τ / λ_1 = τ^{-(1+β)}
    tau = np.arange(1, L + 1)
    np.testing.assert_allclose(lam / lam[0], tau ** (-(1 + beta)), rtol=1e-12)
    assert sp.N == 2 * L and sp.multiplicities.sum() == 2 * L


def test_L1_mean_is_isotropic():
    assert spectrum.power_law(1, 1.0, N=10).eigenvalues == pytest.approx([1.0])


def test_top_eigenvalue_grows_like_L_for_mean_norm():
    lam1 = [spectrum.power_law(L, 1.0).eigenvalues[0] for L in (256, 512, 1024)]
    # λ_1 = L / Σ τ^{-2} → L / ζ(2)
    assert lam1[2] / lam1[1] == pytest.approx(2.0, rel=1e-3)
    assert lam1[2] == pytest.approx(1024 / (np.pi**2 / 6), rel=1e-3)


def test_bad_spectra():
    with pytest.raises(ValueError, match="L"):
        spectrum.power_law(3, 1.0, N=10)
    with pytest.raises(ValueError, match="beta"):
        spectrum.power_law(3, -1.0)
    with pytest.raises(ValueError, match="decreasing"):
        spectrum.Spectrum(np.array([1.0, 2.0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="> 0"):
        spectrum.Spectrum(np.array([1.0, 0.0]), np.array([1, 1]))


def test_group_helpers():
    sp = spectrum.Spectrum(np.array([3.0, 2.0, 1.0]), np.array([1, 2, 3]))
    np.testing.assert_array_equal(sp.group_starts(), [0, 1, 3])
    np.testing.assert_array_equal(sp.diagonal(), [3, 2, 2, 1, 1, 1])
    assert sp.trace_per_dim == pytest.approx(10 / 6)
    assert "L=3" in repr(sp)


@settings(max_examples=5)
@given(beta=st.floats(0.2, 2.0), seed=st.integers(0, 1000))
def test_from_data_recovers_beta(beta, seed):
    """Synthetic Gaussian data with covariance eigenvalues k^{-(1+β)} in a random basis."""
    rng = np.random.default_rng(seed)
    d, n = 120, 8_000
    lam = np.arange(1, d + 1, dtype=float) ** (-(1 + beta))
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (rng.standard_normal((n, d)) * np.sqrt(lam)) @ basis.T + 3.0
    emp = spectrum.from_data(X, fit_range=(2, 40))
    assert abs(emp.beta - beta) < max(4 * emp.beta_stderr, 0.05)
    assert emp.beta_stderr > 0
    sp = emp.spectrum()
    assert sp.trace_per_dim == pytest.approx(1.0)
    assert "beta=" in repr(emp)


def test_from_data_default_window_and_errors():
    rng = np.random.default_rng(1)
    lam = np.arange(1, 65, dtype=float) ** -1.5
    X = rng.standard_normal((5000, 64)) * np.sqrt(lam)
    emp = spectrum.from_data(X)
    assert abs(emp.beta - 0.5) < 0.1
    with pytest.raises(ValueError, match="X"):
        spectrum.from_data(np.ones(5))
    with pytest.raises(ValueError, match="fit_range"):
        spectrum.from_data(X, fit_range=(10, 5))
