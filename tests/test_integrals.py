"""Closed-form Gaussian integrals against Monte Carlo, finite differences and limits."""

import numpy as np
import pytest
from _support import network_error, random_cov, samples
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from scalex.model.integrals import (
    I2,
    I3,
    I4,
    J2,
    field_covariance,
    generalization_error,
    stein_coefficients,
    update_second_moment,
)

N_MC = 1_000_000
SQ2 = np.sqrt(2.0)


def g(x):
    return erf(x / SQ2)


def gp(x):
    return np.sqrt(2 / np.pi) * np.exp(-(x**2) / 2)


def mc_check(estimate_samples, exact, z=5.0):
    """Mean of samples (axis 0) equals exact within z standard errors (+ tiny absolute)."""
    mean = estimate_samples.mean(axis=0)
    se = estimate_samples.std(axis=0) / np.sqrt(estimate_samples.shape[0])
    worst = np.max(np.abs(mean - exact) / (se + 1e-12))
    assert np.all(np.abs(mean - exact) <= z * se + 1e-4), worst


@settings(max_examples=8)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 6), scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_I2_J2_against_monte_carlo(seed, n, scale):
    C = random_cov(seed, n, scale)
    h = samples(C, seed + 1, 200_000)
    G, Gp = g(h), gp(h)
    mc_check(np.einsum("sa,sb->sab", G, G), I2(C))
    mc_check(np.einsum("sa,sb->sab", Gp, Gp), J2(C))


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 5))
def test_I3_against_monte_carlo(seed, n):
    C = random_cov(seed, n)
    h = samples(C, seed + 7, 200_000)
    mc_check(np.einsum("sa,sb,sc->sabc", gp(h), h, g(h)), I3(C))


@settings(max_examples=3)
@given(seed=st.integers(0, 10_000))
def test_I4_against_monte_carlo_three_fields(seed):
    """The fast I4 check of the default run: 3 fields, 2·10^5 samples."""
    C = random_cov(seed, 3)
    h = samples(C, seed + 11, 200_000)
    mc_check(np.einsum("sa,sb,sc,sd->sabcd", gp(h), gp(h), g(h), g(h)), I4(C))


@pytest.mark.slow  # 13 s; test_I4_against_monte_carlo_three_fields covers the same code
def test_I4_against_monte_carlo_five_fields():
    """All 5^4 index tuples at once, with 10^6 samples (K + M = 5 fields)."""
    C = random_cov(3, 5)
    h = samples(C, 4, N_MC)
    Gp, G = gp(h), g(h)
    exact = I4(C)
    # Accumulate first and second moments in chunks to bound memory.
    m1 = np.zeros_like(exact)
    m2 = np.zeros_like(exact)
    for chunk in np.array_split(np.arange(N_MC), 20):
        x = np.einsum("sa,sb,sc,sd->sabcd", Gp[chunk], Gp[chunk], G[chunk], G[chunk])
        m1 += x.sum(0)
        m2 += (x**2).sum(0)
    mean = m1 / N_MC
    se = np.sqrt(m2 / N_MC - mean**2) / np.sqrt(N_MC)
    assert np.all(np.abs(mean - exact) <= 5 * se + 1e-5)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 6))
def test_I4_symmetries_and_subsets(seed, n):
    C = random_cov(seed, n)
    full = I4(C)
    np.testing.assert_allclose(full, np.swapaxes(full, 0, 1), atol=1e-13)
    np.testing.assert_allclose(full, np.swapaxes(full, 2, 3), atol=1e-13)
    a, c = [0, n - 1], [1, 2]
    np.testing.assert_allclose(I4(C, a, None, c, None), full[np.ix_(a, range(n), c, range(n))])


def test_I4_reduces_to_J2_times_I2_for_independent_pairs():
    """If (a,b) is independent of (c,d), I4 factorises into J2(a,b) I2(c,d)."""
    C = np.zeros((4, 4))
    C[:2, :2] = [[1.0, 0.3], [0.3, 0.7]]
    C[2:, 2:] = [[0.5, -0.2], [-0.2, 1.5]]
    i4 = I4(C, [0], [1], [2], [3])[0, 0, 0, 0]
    assert i4 == pytest.approx(J2(C)[0, 1] * I2(C)[2, 3], rel=1e-12)


def test_batched_matches_loop(rng):
    Cs = np.stack([random_cov(s, 4) for s in range(3)])
    for f in (I2, J2, I3, I4):
        batched = f(Cs)
        for k in range(3):
            np.testing.assert_allclose(batched[k], f(Cs[k]), rtol=1e-13)


def test_linear_counterparts():
    C = random_cov(1, 4)
    np.testing.assert_array_equal(I2(C, "linear"), C)
    np.testing.assert_array_equal(J2(C, "linear"), np.ones_like(C))
    np.testing.assert_array_equal(I3(C, activation="linear")[2], C)
    np.testing.assert_array_equal(I4(C, activation="linear")[1, 3], C)
    with pytest.raises(ValueError, match="activation"):
        I2(C, "tanh")


def test_small_field_limit_is_linear():
    """erf(x/√2) ≈ √(2/π) x for small x: I2 → (2/π) C as C → 0."""
    C = random_cov(2, 3) * 1e-6
    np.testing.assert_allclose(I2(C), 2 / np.pi * C, rtol=1e-5)


# 3 s each: two cases (both activations, K != M) in the default run, the rest marked slow
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("activation, K, M", [
    ("erf", 2, 3), ("linear", 3, 2),
    pytest.param("erf", 1, 1, marks=_SLOW), pytest.param("linear", 1, 1, marks=_SLOW),
    pytest.param("erf", 3, 2, marks=_SLOW), pytest.param("linear", 2, 3, marks=_SLOW),
])
def test_generalization_error_against_monte_carlo(activation, K, M, rng):
    """ε_g from the closed form against ½(ζ−σ)² averaged over Gaussian inputs."""
    N = 60
    lam = np.linspace(2.0, 0.2, N)
    J = rng.standard_normal((K, N)) * 0.8
    B = rng.standard_normal((M, N))
    v, w = rng.uniform(-1, 1, K), rng.uniform(0.2, 1.5, M)
    Q = J * lam @ J.T / N
    R = J * lam @ B.T / N
    T = B * lam @ B.T / N
    act = g if activation == "erf" else (lambda x: x)
    mean, se = network_error(J, B, v, w, lam, act, rng)
    exact = generalization_error(Q, R, T, v, w, activation)
    assert abs(exact - mean) < 5 * se


def test_generalization_error_batched_and_zero_at_teacher():
    r = np.random.default_rng(0)
    T = random_cov(5, 2)
    v = w = np.array([0.7, 0.7])
    # Student equal to teacher: Q = R = T gives ε_g = 0 exactly.
    assert generalization_error(T, T, T, v, w) == pytest.approx(0.0, abs=1e-15)
    Qs = np.stack([random_cov(s, 2) for s in range(4)])
    Rs = r.standard_normal((4, 2, 2)) * 0.1
    batched = generalization_error(Qs, Rs, T, v, w)
    assert batched.shape == (4,)
    for k in range(4):
        assert batched[k] == pytest.approx(generalization_error(Qs[k], Rs[k], T, v, w))


def _mc_fields(C, seed, n=400_000):
    return samples(C, seed, n)


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_stein_coefficients_against_monte_carlo(activation):
    """s_ia = E[∂F_i/∂h_a], checked through Stein's lemma: E[h_b F_i] = Σ_a C_ba s_ia."""
    K, M = 2, 2
    C = random_cov(11, K + M)
    v, w = np.array([0.8, -0.5]), np.array([0.6, 0.9])
    c = np.concatenate([-v, w])
    h = _mc_fields(C, 12)
    act, der = (g, gp) if activation == "erf" else ((lambda x: x), np.ones_like)
    delta = act(h) @ c
    F = v * der(h[:, :K]) * delta[:, None]  # (S, K)
    s = stein_coefficients(C, v, w, activation)
    exact = C @ s.T  # (K+M, K): E[h_b F_i]
    mc_check(np.einsum("sb,si->sbi", h, F), exact)


def test_stein_coefficients_against_finite_differences():
    """s_ia by numerical differentiation of the Gaussian expectation (quadrature-free route:
    ∂E[F_i]/∂μ_a for a mean shift μ equals E[∂F_i/∂h_a]); expectations by Gauss–Hermite."""
    C = np.array([[0.8, 0.3], [0.3, 1.2]])
    v, w = np.array([0.9]), np.array([1.1])
    x, wt = np.polynomial.hermite_e.hermegauss(80)
    wt = wt / wt.sum()
    Lc = np.linalg.cholesky(C)
    Z = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    W = np.outer(wt, wt).ravel()

    def EF(mu):
        h = Z @ Lc.T + mu
        return np.sum(W * v[0] * gp(h[:, 0]) * (w[0] * g(h[:, 1]) - v[0] * g(h[:, 0])))

    eps = 1e-5
    fd = [(EF(np.eye(2)[a] * eps) - EF(-np.eye(2)[a] * eps)) / (2 * eps) for a in range(2)]
    np.testing.assert_allclose(stein_coefficients(C, v, w)[0], fd, rtol=1e-6)


@pytest.mark.parametrize("K,M", [(2, 2), (3, 1)])
def test_update_second_moment_against_monte_carlo(K, M):
    C = random_cov(21, K + M)
    r = np.random.default_rng(3)
    v, w = r.uniform(0.3, 1, K), r.uniform(0.3, 1, M)
    h = _mc_fields(C, 22)
    delta = g(h) @ np.concatenate([-v, w])
    F = v * gp(h[:, :K]) * delta[:, None]
    mc_check(np.einsum("si,sj->sij", F, F), update_second_moment(C, v, w))
    # Blocked evaluation (tiny block) equals the one-shot evaluation.
    np.testing.assert_allclose(
        update_second_moment(C, v, w, max_block=1), update_second_moment(C, v, w), rtol=1e-14
    )


def test_linear_second_moment_is_twice_eg():
    C = random_cov(8, 4)
    Q, R, T = C[:2, :2], C[:2, 2:], C[2:, 2:]
    v, w = np.array([0.5, 0.5]), np.array([0.7, 0.7])
    eg = generalization_error(Q, R, T, v, w, "linear")
    np.testing.assert_allclose(update_second_moment(field_covariance(Q, R, T), v, w, "linear"),
                               2 * np.outer(v, v) * eg, rtol=1e-13)
