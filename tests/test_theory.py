"""Tests of the escape-time theory scalex.theory against the ODE it linearises.

Independent routes: the fixed point is reached by integrating the full ODE (`solve_ode`) from
a symmetric start; the escape rate μ is the measured growth rate of a small asymmetry in
`solve_ode`; the degeneracy of μ follows from representation theory; the predicted plateau
length is compared with the plateau `scalex.analysis.plateau` measures on ODE curves.
"""

from __future__ import annotations

import numpy as np
import pytest

import scalex
from scalex import analysis
from scalex.analysis.escape import (
    EscapeResult,
    SymmetricSystem,
    escape,
    escape_rate,
    symmetric_fixed_point,
)
from scalex.schema import make_dataset

FIG1 = dict(K=2, M=2, N=1024, beta=1.0, eta=0.1, sigma_J=0.01)  # docs/theory.md §5, Fig. 1


def fig1(L: int, **changes) -> scalex.Setup:
    return scalex.Setup(**{**FIG1, "L": L, **changes})


def init_dataset(setup: scalex.Setup, x: np.ndarray, system: SymmetricSystem):
    """An ODE start at flat state x with the isotropic teacher t^τ = f_τ I."""
    q, r = system.unpack(x)
    return make_dataset(setup, [0.0], q[None], r[None], system.t, method="initial")


@pytest.fixture(scope="module")
def measured():
    """ODE plateau of seed 0 at the Fig. 1 settings for L = 1, 2, 4, 8, 16."""
    alpha = np.geomspace(1e-2, 1e4, 600)
    out = {}
    for L in (1, 2, 4, 8, 16):
        ds = scalex.solve_ode(fig1(L), alpha, seed=0, rtol=1e-8, atol=1e-11)
        out[L] = analysis.plateau(ds)
    return out


@pytest.fixture(scope="module")
def predicted():
    return {L: escape(fig1(L), seed=0) for L in (1, 2, 4, 8, 16)}


# --------------------------------------------------------------------------- fixed point
@pytest.mark.parametrize("K, L", [(1, 2), (2, 1), (2, 4), (3, 2)])
def test_fixed_point_is_stationary_and_proportional_to_fractions(K, L):
    setup = fig1(L, K=K, M=K)
    system = SymmetricSystem(setup)
    x, residual = symmetric_fixed_point(setup, system=system)
    assert residual < 1e-12
    np.testing.assert_allclose(system.symmetrize(x), x, atol=1e-15)  # symmetric
    q, r = system.unpack(x)
    f = system.frac
    for x_g in (q, r):
        scaled = x_g / f[:, None, None]
        np.testing.assert_allclose(scaled, np.broadcast_to(scaled[0], scaled.shape), rtol=1e-10)


def test_plateau_height_does_not_depend_on_L():
    """With tr Σ/N = 1 the fixed point's field covariance, hence ε_g*, is that of L = 1."""
    heights = [escape(fig1(L), seed=0).plateau_height for L in (1, 2, 8)]
    np.testing.assert_allclose(heights, heights[0], rtol=1e-9)


@pytest.mark.parametrize("L", [1, 2])
def test_ode_from_symmetric_start_converges_to_fixed_point(L):
    setup = fig1(L)
    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    s2, f = setup.sigma_J**2, system.frac
    start = system.symmetric_state(s2 * f, 0 * f, 0 * f)  # the N → ∞ start, exactly symmetric
    ds = scalex.solve_ode(setup, [0.0, 4000.0], init=init_dataset(setup, start, system),
                          rtol=1e-10, atol=1e-13)
    x_end = system.pack(ds.q.values[-1], ds.r.values[-1])
    # r and ε_g converge; q_ii − q_ij (identical students) relaxes only marginally slowly
    _, r_end = system.unpack(x_end)
    _, r_star = system.unpack(xstar)
    np.testing.assert_allclose(r_end, r_star, rtol=1e-4)
    assert float(ds.eg[-1]) == pytest.approx(float(system.eg(xstar)), rel=1e-4)


# --------------------------------------------------------------------------- linearisation
def test_jacobian_commutes_with_permutations():
    setup = fig1(2, K=3, M=3)
    system = SymmetricSystem(setup)
    x, _ = symmetric_fixed_point(setup, system=system)
    n = system.n
    J = np.stack([system.jvp(x, e, 1e-7) for e in np.eye(n)], axis=1)
    q_id, r_id = system.unpack(np.arange(n, dtype=float))
    for perm_s, perm_t in [((1, 0, 2), (0, 1, 2)), ((0, 1, 2), (2, 0, 1)), ((2, 0, 1), (1, 2, 0))]:
        ps, pt = list(perm_s), list(perm_t)
        moved = system.pack(q_id[:, ps][:, :, ps], r_id[:, ps][:, :, pt]).astype(int)
        P = np.eye(n)[moved]
        np.testing.assert_allclose(P @ J, J @ P, atol=1e-8)
    # hence V0 and V1 are invariant: J maps V1 into V1
    v1 = system.vector(np.random.default_rng(0).standard_normal(system.dim(1)), 1)
    assert np.abs(system.coords(J @ v1, 0)).max() < 1e-8 * np.abs(J @ v1).max()


@pytest.mark.parametrize("K", [2, 3, 4])
def test_escape_mode_degeneracy_is_irrep_dimension(K):
    """The escape mode lies in the (K−1)(M−1)-dim irrep of S_K × S_M (zero row and column
    sums of δr), so μ is (K−1)² times degenerate for K = M."""
    res = escape(fig1(1, K=K, M=K), seed=0)
    assert res.escape_multiplicity == (K - 1) ** 2


@pytest.mark.parametrize("L, K", [(1, 2), (4, 2), (2, 3)])
def test_escape_rate_is_growth_rate_of_asymmetry_in_ode(L, K):
    """Start the ODE next to x* with a small asymmetry and measure how fast it grows."""
    setup = fig1(L, K=K, M=K)
    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    mu = escape_rate(setup)
    rng = np.random.default_rng(1)
    dx = system.vector(rng.standard_normal(system.dim(1)), 1)
    x0 = xstar + 1e-8 * dx / np.linalg.norm(dx)
    alpha = np.linspace(0, 10 / mu, 201)
    ds = scalex.solve_ode(setup, alpha, init=init_dataset(setup, x0, system), rtol=1e-10,
                          atol=1e-16)
    states = np.stack([system.pack(q, r) for q, r in zip(ds.q.values, ds.r.values)])
    asym = np.linalg.norm(states - np.array([system.symmetrize(s) for s in states]), axis=1)
    late = alpha > 4 / mu  # stable modes (rates ≥ 30 μ here) have died out
    rate = np.polyfit(alpha[late], np.log(asym[late]), 1)[0]
    assert rate == pytest.approx(mu, rel=0.02)
    assert asym[-1] < 1e-3  # still linear


def test_escape_rate_scaling_with_L_and_K():
    """μ grows with L (nearly ∝ λ_1) and falls with K = M (close to 1/M², docs/theory.md §5)."""
    mus = [escape_rate(fig1(L)) for L in (1, 2, 4, 8)]
    assert np.all(np.diff(mus) > 0)
    lam1 = [fig1(L).spectrum.eigenvalues[0] for L in (1, 2, 4, 8)]
    ratio = np.array(mus) / np.array(lam1)
    assert ratio.max() / ratio.min() < 1.5
    mu_k = {K: escape_rate(fig1(1, K=K, M=K)) for K in (2, 4)}
    assert 3.0 < mu_k[2] / mu_k[4] < 5.0  # 1/M² would give 4


# --------------------------------------------------------------------------- plateau length
@pytest.mark.parametrize("L", [1, 2, 4])
def test_predicted_plateau_length_matches_ode(L, measured, predicted):
    """Predicted vs measured plateau length, Fig. 1 settings: the measured ratios are
    0.982 (L=1), 0.951 (L=2), 0.933 (L=4); the tolerance is 20 %."""
    m, p = measured[L], predicted[L]
    assert bool(m.has_plateau) and p.has_plateau
    ratio = p.plateau_length / float(m.plateau_length)
    assert abs(ratio - 1) < 0.2
    assert p.plateau_start == pytest.approx(float(m.plateau_start), rel=0.1)


@pytest.mark.parametrize("L", [8, 16])
def test_no_plateau_predicted_where_none_is_measured(L, measured, predicted):
    assert not bool(measured[L].has_plateau)
    assert not predicted[L].has_plateau
    assert np.isnan(predicted[L].plateau_length)


def test_naive_estimate_overshoots(measured, predicted):
    """(1/μ) ln(1/A_0) ignores the approach and the exit threshold: documented, not used."""
    for L in (1, 2, 4):
        assert predicted[L].naive_length > 1.3 * float(measured[L].plateau_length)


def test_frozen_groups_plateau_with_baseline():
    """Trainable subset (docs/theory.md §1): frozen groups stay at their initial overlaps."""
    setup = fig1(4, trainable=512)
    alpha = np.geomspace(1e-2, 1e4, 600)
    ds = scalex.solve_ode(setup, alpha, seed=0, rtol=1e-8, atol=1e-11)
    eps_inf = float(ds.eg[-1])
    m = analysis.plateau(ds, baseline=eps_inf)
    p = escape(setup, seed=0, baseline=eps_inf)
    assert bool(m.has_plateau) and p.has_plateau
    assert p.plateau_length == pytest.approx(float(m.plateau_length), rel=0.1)


# --------------------------------------------------------------------------- API
def test_init_equals_seed_and_typical_draw():
    setup = fig1(2)
    a = escape(setup, seed=3)
    b = escape(setup, init=scalex.initial_overlaps(setup, 3))
    assert a.plateau_length == pytest.approx(b.plateau_length, rel=1e-9)
    assert a.initial_asymmetry == pytest.approx(b.initial_asymmetry, rel=1e-12)
    typical = escape(setup, n_draws=2)
    assert typical.asymmetry_source.startswith("rms")
    assert np.isfinite(typical.plateau_length)


def test_result_repr_and_dataset(predicted):
    res = predicted[2]
    assert isinstance(res, EscapeResult)
    text = repr(res)
    assert "μ=" in text and "L=2" in text
    ds = res.to_dataset()
    assert float(ds.escape_rate) == res.escape_rate
    assert ds.q_fixed.dims == ("group", "student_i", "student_j")
    assert scalex.Setup.from_attrs(ds.attrs) == res.setup
    assert ds.attrs["escape_flatness"] == 0.1
    assert res.escape_time == pytest.approx(1 / res.escape_rate)
    # the predicted curve is the symmetric one plus the growing mode, on the plateau
    on = (ds.alpha > res.plateau_start) & (ds.alpha < res.plateau_end)
    np.testing.assert_allclose(ds.eg_predicted.where(on, drop=True),
                               res.plateau_height, rtol=0.1)


def test_invalid_input_raises():
    with pytest.raises(ValueError, match="second-layer"):
        escape(fig1(1, v=(1.0, 0.5)))
    with pytest.raises(ValueError, match="activation"):
        escape(fig1(1, activation="linear"))
    with pytest.raises(ValueError, match="seed"):
        escape(fig1(1), seed=0, init=scalex.initial_overlaps(fig1(1), 0))
    with pytest.raises(ValueError, match="n_draws"):
        escape(fig1(1), n_draws=0)
    with pytest.raises(ValueError, match="flatness"):
        escape(fig1(1), flatness=-1)


def test_no_symmetry_breaking_subspace_for_single_units():
    res = escape(fig1(2, K=1, M=1), seed=0)
    assert np.isnan(res.escape_rate) and not res.has_plateau
