"""The exponential integrator of docs/theory.md §3.7 against independent routes.

* φ functions against arbitrary-precision values (mpmath);
* the rates evaluated in the eigenbasis against `AugmentedSystem.rhs` rotated;
* the solution, and that of method="feedback" (docs/theory.md §3.9), against the explicit
  reference path (DOP853 at tight tolerances) on short α windows, for K = M ∈ {2, 8, 40} and
  L ∈ {1, 64, 512}, and against the exact linear-network
  solution (`linear_theory`, the secular-equation route of docs/theory.md §4.3);
* the parallel moment kernel against the serial one.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scalex
from scalex.engines.moments import erf_moments, erf_moments_parallel
from scalex.engines.ode_exponential import ExponentialRK, _Eigen, _Frame, phi_functions
from scalex.engines.ode_system import AugmentedSystem
from scalex.model.integrals import coefficients
from scalex.schema import initial_overlaps


def _phi_exact(z: float, k: int) -> float:
    mpmath.mp.dps = 50
    x = mpmath.mpf(z)
    if abs(x) < 1:  # the series, exact to 50 digits (no cancellation for tiny z)
        return float(sum(x**j / mpmath.factorial(j + k) for j in range(60)))
    head = sum(x**j / mpmath.factorial(j) for j in range(k))
    return float((mpmath.exp(x) - head) / x**k)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(-1e4, 50), st.floats(-0.2, 0.2), st.sampled_from([0.0, 0.1, -0.1])))
def test_phi_functions_match_arbitrary_precision(z):
    # Three regimes meet here: the series (|z| < 0.1), the expm1 recurrence, and large |z|.
    got = phi_functions(np.array([z]))
    for k in (1, 2, 3):
        want = _phi_exact(z, k)
        assert got[k - 1][0] == pytest.approx(want, rel=5e-14, abs=1e-300), (z, k)


def _system(K: int, L: int, activation: str = "erf", **kw) -> tuple[scalex.Setup, AugmentedSystem]:
    setup = scalex.Setup(K=K, M=K, L=L, N=max(L, 64), eta=kw.pop("eta", 0.05), beta=1.0,
                         sigma_J=kw.pop("sigma_J", 0.01), activation=activation, **kw)
    init = initial_overlaps(setup, 0).isel(alpha=0)
    sp = setup.spectrum
    v, w = setup.second_layer
    system = AugmentedSystem(init.q.values, init.r.values, init.t.values,
                             eigenvalues=sp.eigenvalues, fractions=sp.fractions, v=v, w=w,
                             eta=setup.eta, activation=activation, noise=setup.noise,
                             trained=setup.trained_groups, augmented=False)
    return setup, system


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_rates_in_eigenbasis_are_the_rotated_right_hand_side(activation):
    # Covariance of (3.17) under q → UᵀqU, r → Uᵀr: the solver's own rates, rotated back,
    # must equal the packed right-hand side computed in the original basis.
    _, system = _system(5, 8, activation, eta=0.2)
    rng = np.random.default_rng(3)
    z = system.initial_state() + 0.05 * rng.standard_normal(system.n)
    x, _ = system.split(z)
    q, r = system.unpack(x)
    q = 0.5 * (q + np.swapaxes(q, -1, -2))
    z = system.pack(q, r, x[:, -1] if system.ne else None).ravel()
    solver = ExponentialRK(lambda t, y: y, 0.0, z, 1.0, system=system)
    frame = solver._frame  # the eigenbasis of S at z
    X = solver._X
    F, _ = solver._rates(frame, X)
    np.testing.assert_allclose(solver.to_state(frame, X), z, rtol=0, atol=1e-13)
    np.testing.assert_allclose(solver.to_state(frame, F), system.rhs(z), rtol=1e-10,
                               atol=1e-13)
    # S is diagonal in the frame: its rates are κ(μ_i + μ_j) with μ the eigenvalues of S.
    assert isinstance(frame, _Frame) and isinstance(X, _Eigen)


def _eg(setup, alpha, method, **kw):
    ds = scalex.solve_ode(setup, alpha, method=method, progress=False, **kw)
    assert ds.attrs["ode_method"] == method
    return ds["eg"].values


# Short windows: K = 40 is costly for the explicit reference (its step is stability-limited).
CASES = [(K, L) for K in (2, 8, 40) for L in (1, 64, 512)]
WINDOW = {2: 200.0, 8: 15.0, 40: 2.0}


@pytest.mark.parametrize("K,L", CASES)
def test_large_k_methods_match_explicit_reference(K, L):
    # Both large-K routes (the exponential integrator, and BDF with the field feedback
    # implicit, docs/theory.md §3.9) against one explicit reference at tight tolerances.
    setup = scalex.Setup(K=K, M=K, L=L, N=512, eta=0.01 if K == 40 else 0.05, beta=1.0,
                         sigma_J=1e-6 if K == 40 else 0.01)
    alpha = np.concatenate([[0.0], np.geomspace(0.05, WINDOW[K], 12)])
    ref = _eg(setup, alpha, "DOP853", rtol=1e-11, atol=1e-14)
    assert ref[-1] < 0.98 * ref[0]  # the window is not trivial: ε_g moved ≫ the tolerance
    # BDF's ε_g error in the first transient at K = 40, σ_J = 1e-6 is ~1000 × rtol (measured
    # 8e-4, 1.2e-4, 1.1e-5 at rtol 1e-6, 1e-7, 1e-8; ~30 × rtol at K = 8), so it gets 1e-8.
    for method, rtol in (("exponential", 1e-7), ("feedback", 1e-8)):
        got = _eg(setup, alpha, method, rtol=rtol, atol=rtol * 1e-3)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref, rtol=1e-4, err_msg=method)


def test_exponential_matches_exact_linear_solution():
    # Linear g: the exact solution of docs/theory.md §4.3 is an independent route; the
    # integrator carries the error coordinates E^τ with their own diagonal rate.
    setup = scalex.Setup(K=1, M=1, L=64, N=256, eta=0.1, beta=1.2, activation="linear")
    alpha = np.concatenate([[0.0], np.geomspace(0.1, 1e4, 30)])
    got = _eg(setup, alpha, "exponential", rtol=1e-8, atol=1e-12)
    exact = scalex.linear_theory(setup, alpha, seed=0)["eg"].values
    np.testing.assert_allclose(got, exact, rtol=2e-5)
    assert exact[-1] < 1e-3 * exact[0]  # the window covers the power-law decay


def test_auto_chooses_feedback_at_large_K():
    setup = scalex.Setup(K=40, M=40, L=512, N=512, eta=0.01, beta=1.0, sigma_J=1e-6)
    ds = scalex.solve_ode(setup, [0.0, 0.2], progress=False)
    assert ds.attrs["ode_method"] == "feedback"
    assert ds["status"].item() == "ok"


def test_exponential_rejects_log_time():
    setup = scalex.Setup(K=2, M=2, L=4, N=64)
    with pytest.raises(ValueError, match="log_time"):
        scalex.solve_ode(setup, [0.0, 1.0], method="exponential", log_time=True)


def test_parallel_moments_match_serial_kernel():
    # The same per-entry functions, serially over a batch or in parallel over the entries of
    # one covariance: equal up to how the compiler contracts each loop nest (a few ulps).
    rng = np.random.default_rng(7)
    K, M = 12, 9
    A = rng.standard_normal((K + M, K + M)) / np.sqrt(K + M)
    C = A @ A.T
    v, w = rng.uniform(0.5, 1.5, K), rng.uniform(0.5, 1.5, M)
    c = coefficients(v, w)
    s1, E1 = erf_moments(C[None], v, c, 0.04)
    s2, E2 = erf_moments_parallel(C, v, c, 0.04, *np.triu_indices(K))
    np.testing.assert_allclose(s2, s1[0], rtol=4 * np.finfo(float).eps, atol=0)
    np.testing.assert_allclose(E2, E1[0], rtol=16 * np.finfo(float).eps, atol=0)


def test_record_weighted_overlaps_only():
    # record=("Q", "R") stores the λ-weighted sums instead of the per-group overlaps; the
    # integration is the same code path, so ε_g is identical and Q equals Σ_τ λ_τ q^τ of the
    # full record (summed in another order: a few ulps).
    setup = scalex.Setup(K=2, M=2, L=8, N=64, eta=0.1, sigma_J=0.01)
    alpha = [0.0, 1.0, 10.0, 100.0]
    full = scalex.solve_ode(setup, alpha, progress=False)
    weighted = scalex.solve_ode(setup, alpha, record=("Q", "R"), progress=False)
    assert "q" not in weighted and "r" not in weighted
    assert weighted.attrs["recorded"] == "Q R"
    np.testing.assert_array_equal(weighted["eg"].values, full["eg"].values)
    lam = full["eigenvalue"]
    np.testing.assert_allclose(weighted["Q"].values, (lam * full["q"]).sum("group").values,
                               rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(weighted["R"].values, (lam * full["r"]).sum("group").values,
                               rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="record"):
        scalex.solve_ode(setup, alpha, record=("Q", "x"))
