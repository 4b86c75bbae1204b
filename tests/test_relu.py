"""ReLU Gaussian integrals against Monte Carlo, an independent quadrature, identities and SGD."""

import numpy as np
import pytest
from _support import network_error, random_cov, samples
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.special import ndtr, owens_t

from scalex.model import relu
from scalex.model.integrals import (
    I2,
    I3,
    I4,
    J2,
    coefficients,
    generalization_error,
    stein_coefficients,
    update_second_moment,
)

SQ2PI = np.sqrt(2 * np.pi)


def g(x):
    return np.maximum(x, 0.0)


def gp(x):
    return (x > 0).astype(float)


def near_singular_cov(seed, K=2, M=2, N=40):
    """Overlaps of students close to teachers or to each other, 1 − ρ² down to ~1e-18."""
    r = np.random.default_rng(seed)
    B = r.standard_normal((M, N))
    kind = seed % 3
    A = (np.eye(K, M) if kind == 0 else np.full((K, M), r.uniform(0.1, 1.0)) if kind == 1
         else r.standard_normal((K, M)))
    eps = 10.0 ** r.uniform(-9, 0, size=(K, 1))
    W = np.vstack([A @ B + eps * r.standard_normal((K, N)), B])
    return W @ W.T / N


def mc_moments(make, n, chunks=20):
    """Mean and standard error of make(idx) (shape (S, ...)) over n samples, in chunks."""
    m1 = m2 = 0.0
    for idx in np.array_split(np.arange(n), chunks):
        x = make(idx)
        m1 = m1 + x.sum(0)
        m2 = m2 + (x**2).sum(0)
    mean = m1 / n
    return mean, np.sqrt(np.maximum(m2 / n - mean**2, 0.0) / n)


def assert_mc(mean, se, exact, z=5.0):
    worst = np.max(np.abs(mean - exact) / (se + 1e-15))
    assert np.all(np.abs(mean - exact) <= z * se + 1e-6), worst


def full(C):
    return np.arange(C.shape[-1])


# --------------------------------------------------------------------------- Monte Carlo
@settings(max_examples=8)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 6), scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_I2_J2_against_monte_carlo(seed, n, scale):
    C = random_cov(seed, n, scale)
    h = samples(C, seed + 1, 200_000)
    G, Gp = g(h), gp(h)
    assert_mc(*mc_moments(lambda i: np.einsum("sa,sb->sab", G[i], G[i]), len(h)), I2(C, "relu"))
    assert_mc(*mc_moments(lambda i: np.einsum("sa,sb->sab", Gp[i], Gp[i]), len(h)),
              J2(C, "relu"))


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 5))
def test_I3_against_monte_carlo(seed, n):
    C = random_cov(seed, n)
    h = samples(C, seed + 7, 300_000)
    make = lambda i: np.einsum("sa,sb,sc->sabc", gp(h[i]), h[i], g(h[i]))  # noqa: E731
    assert_mc(*mc_moments(make, len(h)), I3(C, activation="relu"))


@settings(max_examples=2)
@given(seed=st.integers(0, 10_000))
def test_I4_against_monte_carlo_four_fields(seed):
    """All 4^4 index tuples (coincident indices included) with 5·10^5 samples."""
    C = random_cov(seed, 4)
    h = samples(C, seed + 11, 500_000)
    Gp, G = gp(h), g(h)
    make = lambda i: np.einsum("sa,sb,sc,sd->sabcd", Gp[i], Gp[i], G[i], G[i])  # noqa: E731
    assert_mc(*mc_moments(make, len(h)), I4(C, activation="relu"))


@pytest.mark.slow  # 25 s; the four-field and near-singular tests cover the same code
def test_I4_against_monte_carlo_five_fields():
    """All 5^4 index tuples with 10^6 samples (K + M = 5 fields)."""
    C = random_cov(3, 5)
    h = samples(C, 4, 1_000_000)
    Gp, G = gp(h), g(h)
    make = lambda i: np.einsum("sa,sb,sc,sd->sabcd", Gp[i], Gp[i], G[i], G[i])  # noqa: E731
    assert_mc(*mc_moments(make, len(h), chunks=50), I4(C, activation="relu"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_I4_against_monte_carlo_near_singular(seed):
    """Students close to the teachers (seed 0), to each other (1), or generic (2)."""
    C = near_singular_cov(seed)
    h = samples(C, seed + 5, 400_000)
    Gp, G = gp(h), g(h)
    make = lambda i: np.einsum("sa,sb,sc,sd->sabcd", Gp[i], Gp[i], G[i], G[i])  # noqa: E731
    assert_mc(*mc_moments(make, len(h)), I4(C, activation="relu"))


# --------------------------------------------------------------------------- I4 quadrature
def _bvn(h, k, rho):
    """P(X < h, Y < k) for standard normals of correlation ρ, via Owen's T."""
    s = np.sqrt(1 - rho**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ah = np.where(h != 0, (k - rho * h) / (h * s), 0.0)
        ak = np.where(k != 0, (h - rho * k) / (k * s), 0.0)
    beta = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    return 0.5 * (ndtr(h) + ndtr(k)) - owens_t(h, ah) - owens_t(k, ak) - beta


def _i4_by_conditioning(S, nr=80, nphi=60):
    """E[Θ(a)Θ(b)g(c)g(d)] for 4 distinct fields: integrate c d P(a,b > 0 | c,d) over c,d > 0
    in whitened polar coordinates (Gauss–Legendre in r ∈ [0, 12] and in the angle)."""
    Scd, Sab, X = S[2:, 2:], S[:2, :2], S[:2, 2:]
    L = np.linalg.cholesky(Scd)
    cond = Sab - X @ np.linalg.solve(Scd, X.T)
    sa, sb = np.sqrt(np.diag(cond))
    rho = cond[0, 1] / (sa * sb)
    lo = np.arctan2(-L[1, 0], L[1, 1])
    x, wx = np.polynomial.legendre.leggauss(nphi)
    phi, wphi = lo + (np.pi / 2 - lo) * (x + 1) / 2, (np.pi / 2 - lo) / 2 * wx
    x, wr = np.polynomial.legendre.leggauss(nr)
    r, wr = 6 * (x + 1), 6 * wr
    R, P = np.meshgrid(r, phi, indexing="ij")
    cd = np.stack([R * np.cos(P), R * np.sin(P)], -1) @ L.T  # (nr, nphi, 2)
    mu = cd @ np.linalg.solve(Scd, X.T)  # conditional means of (a, b)
    prob = _bvn(mu[..., 0] / sa, mu[..., 1] / sb, rho)
    f = cd[..., 0] * cd[..., 1] * prob * np.exp(-R**2 / 2) / (2 * np.pi) * R
    return np.einsum("i,j,ij->", wr, wphi, f)


@pytest.mark.parametrize("seed", range(6))
def test_I4_against_independent_quadrature(seed):
    """Four distinct, well-conditioned fields: an independent route to ~1e-12."""
    S = random_cov(seed, 4)
    got = relu.I4(S, *(np.array([k]) for k in range(4)))[0, 0, 0, 0]
    assert got == pytest.approx(_i4_by_conditioning(S), abs=1e-9 * np.sqrt(S[2, 2] * S[3, 3]))


def _fine_rule():
    """680-node version of the rule in scalex.model.relu (same integrand, finer quadrature)."""
    def gl(n, lo, hi):
        x, w = np.polynomial.legendre.leggauss(n)
        return lo + (hi - lo) * (x + 1) / 2, (hi - lo) * w / 2
    t, wt = gl(60, 0.0, 0.5)
    z, wz = gl(600, np.log(2), 80.0)
    u, wu = gl(20, 0.0, np.exp(-40.0))
    return (np.concatenate([t, 1 - np.exp(-z), 1 - u * u]),
            np.concatenate([1 - t, np.exp(-z), u * u]),
            np.concatenate([wt, np.exp(-z) * wz, 2 * u * wu]))


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000))
def test_I4_quadrature_error_bound(seed):
    """The 54-node rule against a 680-node rule: 1e-10 √(C_cc C_dd) for random covariances,
    5e-8 for students close to teachers or to each other (1 − ρ² down to rounding level, where
    I4 itself is only defined to ~√(machine ε))."""
    near = seed % 2 == 1
    C = near_singular_cov(seed) if near else random_cov(seed, 4)
    n = len(C)
    grids = np.meshgrid(*[np.arange(n)] * 4, indexing="ij")
    pairs = ((0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    S = np.ascontiguousarray(np.stack([C[grids[k], grids[m]] for k, m in pairs], -1)
                             .reshape(-1, 10))
    err = relu._i4_many(S, *relu.QUADRATURE) - relu._i4_many(S, *_fine_rule())
    assert np.max(np.abs(err) / np.sqrt(S[:, 2] * S[:, 3])) < (5e-8 if near else 1e-10)


@pytest.mark.parametrize("make", [lambda s: random_cov(s, 4), near_singular_cov])
@pytest.mark.parametrize("seed", range(4))
def test_I4_coincident_indices_closed_forms(make, seed):
    """I4(a,b,a,b) = I2(a,b); I4(a,b,a,a) = C_aa J2(a,b) + C_ab D(b,a); I4(a,a,a,a) = C_aa/2."""
    C = make(seed)
    i4 = I4(C, activation="relu")
    i2, j2, dd = relu.I2(C), relu.J2(C), relu.D(C)
    d = np.diag(C)
    scale = np.sqrt(np.outer(d, d))
    n = len(C)
    ab = i4[np.arange(n)[:, None], np.arange(n)[None, :],
            np.arange(n)[:, None], np.arange(n)[None, :]]
    np.testing.assert_allclose(ab, i2, atol=1e-8 * scale.max())
    aba = np.einsum("abaa->ab", i4)
    np.testing.assert_allclose(aba, d[:, None] * j2 + C * dd.T, atol=1e-8 * scale.max())
    np.testing.assert_allclose(np.einsum("aaaa->a", i4), d / 2, rtol=1e-10)


def test_I4_symmetries_subsets_and_homogeneity():
    C = random_cov(4, 5)
    full4 = I4(C, activation="relu")
    np.testing.assert_allclose(full4, np.swapaxes(full4, 0, 1), atol=1e-14)
    np.testing.assert_allclose(full4, np.swapaxes(full4, 2, 3), atol=1e-14)
    a, c = [0, 4], [1, 2]
    np.testing.assert_array_equal(I4(C, a, None, c, None, "relu"),
                                  full4[np.ix_(a, range(5), c, range(5))])
    # g is positively homogeneous: I4 and I2 scale like C, J2 and D do not change.
    np.testing.assert_allclose(I4(3.0 * C, activation="relu"), 3.0 * full4, rtol=1e-11)
    np.testing.assert_allclose(J2(3.0 * C, "relu"), J2(C, "relu"), rtol=1e-13)


def test_I4_factorises_for_independent_pairs():
    C = np.zeros((4, 4))
    C[:2, :2] = [[1.0, 0.3], [0.3, 0.7]]
    C[2:, 2:] = [[0.5, -0.2], [-0.2, 1.5]]
    i4 = I4(C, [0], [1], [2], [3], "relu")[0, 0, 0, 0]
    assert i4 == pytest.approx(J2(C, "relu")[0, 1] * I2(C, "relu")[2, 3], rel=1e-13)


def test_closed_form_limits():
    C = np.array([[2.0, 2.0, -2.0], [2.0, 2.0, -2.0], [-2.0, -2.0, 2.0]])  # a = b = −c
    np.testing.assert_allclose(relu.I2(C), [[1, 1, 0], [1, 1, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(relu.J2(C), [[.5, .5, 0], [.5, .5, 0], [0, 0, .5]], atol=1e-15)
    assert np.all(relu.D(C) == 0.0)  # fields determined by one another: no conditional spread
    # Independent fields: E[Θ(a)Θ(b)] = 1/4, E[g(a)g(b)] = E[g(a)]E[g(b)], D(a,c) = E[g(c)] p_a(0).
    C = np.diag([1.0, 4.0])
    assert relu.J2(C)[0, 1] == pytest.approx(0.25)
    assert relu.I2(C)[0, 1] == pytest.approx(1 / SQ2PI * 2 / SQ2PI)
    assert relu.D(C)[0, 1] == pytest.approx(2 / SQ2PI / SQ2PI)


def test_batched_matches_loop():
    Cs = np.stack([random_cov(s, 4) for s in range(3)])
    for f in (I2, J2, I3, I4):
        batched = f(Cs, activation="relu")
        for k in range(3):
            np.testing.assert_allclose(batched[k], f(Cs[k], activation="relu"), rtol=1e-13)


# --------------------------------------------------------------------------- ODE moments
@pytest.mark.parametrize("K,M", [(2, 2), (3, 1)])
def test_stein_coefficients_against_monte_carlo(K, M):
    """Stein's lemma with the delta term: E[h_b F_i] = Σ_a C_ba s_ia, F_i = v_i Θ(x_i) Δ."""
    C = random_cov(11 + K, K + M)
    r = np.random.default_rng(K)
    v, w = r.uniform(-1, 1, K), r.uniform(0.3, 1.2, M)
    h = samples(C, 12, 1_000_000)
    delta = g(h) @ coefficients(v, w)
    F = v * gp(h[:, :K]) * delta[:, None]
    s = stein_coefficients(C, v, w, "relu")
    assert_mc(*mc_moments(lambda i: np.einsum("sb,si->sbi", h[i], F[i]), len(h)), C @ s.T)


def test_stein_coefficients_against_finite_differences():
    """s_ia = ∂E[F_i(h + μ)]/∂μ_a, with E[F] by a 1-D integral over x of the exact conditional
    ReLU mean of y (K = M = 1): independent of Stein's lemma and of the delta term."""
    C = np.array([[0.8, 0.3], [0.3, 1.2]])
    v, w = 0.9, 1.1
    cond_var = C[1, 1] - C[0, 1] ** 2 / C[0, 0]
    sd = np.sqrt(cond_var)

    def EF(mu):
        def integrand(x):  # x = student field without shift; density N(0, C_00)
            m = C[0, 1] / C[0, 0] * x + mu[1]
            relu_mean = m * ndtr(m / sd) + sd * np.exp(-(m**2) / (2 * cond_var)) / SQ2PI
            dens = np.exp(-(x**2) / (2 * C[0, 0])) / np.sqrt(2 * np.pi * C[0, 0])
            return v * (w * relu_mean - v * (x + mu[0])) * dens
        return quad(integrand, -mu[0], np.inf, epsabs=1e-14, epsrel=1e-13)[0]

    eps = 1e-4
    fd = [(EF(np.eye(2)[a] * eps) - EF(-np.eye(2)[a] * eps)) / (2 * eps) for a in range(2)]
    s = stein_coefficients(C, np.array([v]), np.array([w]), "relu")[0]
    np.testing.assert_allclose(s, fd, rtol=1e-7)


@pytest.mark.parametrize("K,M", [(2, 2), (3, 1)])
def test_update_second_moment_against_monte_carlo(K, M):
    C = random_cov(21 + K, K + M)
    r = np.random.default_rng(3)
    v, w = r.uniform(0.3, 1, K), r.uniform(0.3, 1, M)
    h = samples(C, 22, 1_000_000)
    F = v * gp(h[:, :K]) * (g(h) @ coefficients(v, w))[:, None]
    assert_mc(*mc_moments(lambda i: np.einsum("si,sj->sij", F[i], F[i]), len(h)),
              update_second_moment(C, v, w, "relu"))


def test_update_second_moment_equals_contracted_I4():
    """The compiled, symmetry-using kernel against the full I4 tensor contracted with c c."""
    r = np.random.default_rng(5)
    for C, K in ((random_cov(31, 5), 3), (near_singular_cov(3), 2)):
        v, w = r.uniform(-1, 1, K), r.uniform(0.2, 1, len(C) - K)
        c = coefficients(v, w)
        i4 = I4(C, np.arange(K), np.arange(K), None, None, "relu")
        expect = np.outer(v, v) * np.einsum("ijcd,c,d->ij", i4, c, c)
        np.testing.assert_allclose(update_second_moment(C, v, w, "relu"), expect,
                                   rtol=1e-12, atol=1e-15)
    Cs = np.stack([random_cov(s, 4) for s in range(3)])
    v, w = np.array([0.5, -0.7]), np.array([1.0, 0.4])
    batched = update_second_moment(Cs, v, w, "relu")
    for k in range(3):
        np.testing.assert_array_equal(batched[k], update_second_moment(Cs[k], v, w, "relu"))


def test_second_moment_kernel_matches_the_i4_tensor():
    # The compiled E (symmetries i ↔ j, c ↔ d, threads over the entries) against the plain
    # contraction v_i v_j Σ_cd c_c c_d I4(i,j,c,d) of the full I4 tensor: the same quadrature
    # summed in another order, so equal to a few ulps of the largest term.
    C = np.stack([random_cov(s, 6) for s in range(2)])
    v = np.array([0.5, -0.3, 0.8])
    c = coefficients(v, np.array([1.0, 0.4, 0.7]))
    K, n = 3, 6
    i4 = relu.I4(C, np.arange(K), np.arange(K), np.arange(n), np.arange(n))
    terms = np.einsum("bijcd,c,d->bijcd", i4, c, c)
    want = v[:, None] * v[None, :] * terms.sum(axis=(-1, -2))
    got = relu.second_moment(C, v, c)
    scale = (np.abs(v[:, None] * v[None, :]) * np.abs(terms).sum(axis=(-1, -2))).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=64 * np.finfo(float).eps * scale)


def test_moments_vanish_at_the_teacher():
    """Student = teacher (singular C): Δ ≡ 0, so E[F_iF_j] = 0 and ε_g = 0 up to rounding."""
    T = random_cov(9, 2)
    C = np.block([[T, T], [T, T]])
    v = w = np.array([0.8, 1.3])
    assert np.abs(update_second_moment(C, v, w, "relu")).max() < 1e-12
    assert generalization_error(T, T, T, v, w, "relu") == pytest.approx(0.0, abs=1e-15)
    s, E = relu.moments(C, v, w, noise=0.5)
    np.testing.assert_allclose(E, 0.25 * np.outer(v, v) * relu.J2(T), atol=1e-12)
    assert np.all(np.isfinite(s))


def test_field_moments_dispatches_relu():
    """The ODE's moment function gives the same numbers through `scalex.model.integrals`."""
    from scalex.engines.ode_system import field_moments

    C = random_cov(40, 4)
    v, w = np.array([0.6, -0.4]), np.array([1.0, 0.8])
    s, E = field_moments(C, v, w, "relu", noise=0.3)
    s2, E2 = relu.moments(C, v, w, noise=0.3)
    np.testing.assert_allclose(s, s2, rtol=1e-14)
    np.testing.assert_allclose(E, E2, rtol=1e-14)


# --------------------------------------------------------------------------- ε_g against SGD nets
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("K, M", [(2, 3), pytest.param(1, 1, marks=_SLOW),
                                  pytest.param(3, 2, marks=_SLOW)])
def test_generalization_error_against_direct_simulation(K, M, rng):
    """ε_g = ½ cᵀ I2 c against ½(ζ − σ)² of an explicit student and teacher on Gaussian inputs."""
    N = 60
    lam = np.linspace(2.0, 0.2, N)
    J = rng.standard_normal((K, N)) * 0.8
    B = rng.standard_normal((M, N))
    v, w = rng.uniform(-1, 1, K), rng.uniform(0.2, 1.5, M)
    Q, R, T = J * lam @ J.T / N, J * lam @ B.T / N, B * lam @ B.T / N
    mean, se = network_error(J, B, v, w, lam, g, rng)
    assert abs(generalization_error(Q, R, T, v, w, "relu") - mean) < 5 * se
