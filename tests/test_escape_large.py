"""The structured escape theory (scalex.analysis.escape_blocks, escape_symmetry) against
independent routes.

* The class-reduced moments (`UnitClasses`) against the compiled kernel on the whole system.
* The symmetry-adapted coordinates (`irreps`): an orthogonal decomposition of the packed state
  that the finite-difference Jacobian respects (Schur's lemma).
* The blocks Â_ρ, B̂_ρ of eq. (5.3) against the Jacobian projected on the representatives, by
  central differences of the full right-hand side.
* The whole prediction, ``method="structured"`` against ``method="dense"`` (the Jacobian column
  by column, dense eig, LSODA and explicit RK45): μ, multiplicity, spectra, the unstable
  projection, the predicted plateau, A_s and κ; also with every block on the secular equation.
* Large L: the run completes and μ equals the growth rate of an asymmetry in `solve_ode`.
"""

from __future__ import annotations

import numpy as np
import pytest

import scalex
from scalex.analysis import escape_blocks
from scalex.analysis.escape import SymmetricSystem, escape, escape_rate, symmetric_fixed_point
from scalex.analysis.escape_blocks import BlockLowRank, SymmetricBlocks
from scalex.analysis.escape_routes import DenseRoute, StructuredRoute
from scalex.analysis.escape_symmetry import UnitClasses, irreps
from scalex.engines.ode_system import field_moments
from scalex.model.integrals import I2, coefficients
from scalex.schema import make_dataset

FIG1 = dict(K=2, M=2, N=1024, beta=1.0, eta=0.1, sigma_J=0.01)  # docs/theory.md §5, Fig. 1


def fig1(L: int, **changes) -> scalex.Setup:
    return scalex.Setup(**{**FIG1, "L": L, **changes})


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("K, M, singles", [(12, 9, ((), ())), (5, 13, ((0, 1, 2, 3), (0, 1))),
                                           (4, 3, ((0, 1), (0,))), (3, 6, ((), (0, 1)))])
def test_unit_classes_reproduce_the_whole_system(K, M, singles):
    """Moments and ε_g of a class-invariant covariance from ≤ 4 (2) units per class."""
    rng = np.random.default_rng(K + M)
    uc = UnitClasses(K, M, *singles)
    uc.trivial = False  # the weighted route even where the kernel would be used
    label = np.empty(K + M, dtype=int)
    for k, members in enumerate(uc.classes):
        label[members] = k
    n_cls = len(uc.classes)
    off = rng.uniform(0.02, 0.2, (n_cls, n_cls))
    C = (off + off.T)[label][:, label] / 2
    C[np.arange(K + M), np.arange(K + M)] = rng.uniform(0.5, 1.5, n_cls)[label]
    v, w = np.full(K, 0.7), np.full(M, 1.3)
    s_ref, E_ref = field_moments(C, v, w, "erf", 0.3)
    s, E = uc.moments(C, v, w, 0.3)
    np.testing.assert_allclose(s, s_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(E, E_ref, rtol=1e-12, atol=1e-14)
    c = coefficients(v, w)
    assert uc.generalization_error(C, v, w) == pytest.approx(0.5 * c @ I2(C) @ c, rel=1e-12)


@pytest.mark.parametrize("K, M", [(1, 1), (1, 3), (2, 2), (3, 2), (4, 4), (6, 3)])
def test_irreps_decompose_the_packed_state(K, M):
    p = K * (K + 1) // 2 + K * M
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, p))
    parts = []
    for ir in irreps(K, M):
        part = ir.synthesis(ir.analysis(X))
        np.testing.assert_allclose(ir.synthesis(ir.analysis(part)), part, atol=1e-12)
        reps = ir.representatives()
        np.testing.assert_allclose(reps @ reps.T, np.eye(ir.m), atol=1e-12)
        parts.append(part)
    np.testing.assert_allclose(sum(parts), X, atol=1e-12)  # complete
    for i, a in enumerate(parts):  # and orthogonal
        for b in parts[i + 1:]:
            assert abs(np.sum(a * b)) < 1e-10


@pytest.mark.parametrize("K, M, L", [(2, 2, 2), (4, 4, 1), (3, 2, 2)])
def test_blocks_are_the_projected_jacobian(K, M, L):
    """⟨rep_c' of group τ, J rep_c of group σ⟩ by central differences of the full right-hand
    side equals β_τ (δ_τσ Â + f_τ λ_σ B̂) (eq. (5.3)), and J maps the representatives into
    their span (Schur's lemma)."""
    setup = fig1(L, K=K, M=M)
    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    blocks = SymmetricBlocks(setup)
    ystar = blocks.triv.analysis(xstar.reshape(L, -1))[..., 0]
    p = system.p
    for ir in blocks.irreps:
        spec = blocks.spectrum(ir, ystar)
        reps = ir.representatives()
        J = np.zeros((L * ir.m, L * ir.m))
        for sigma in range(L):
            for c, rep in enumerate(reps):
                d = np.zeros((L, p))
                d[sigma] = rep
                out = system.jvp(xstar, d.ravel(), 1e-6).reshape(L, p)
                J[:, sigma * ir.m + c] = (out @ reps.T).ravel()
                rest = out - (out @ reps.T) @ reps
                assert np.abs(rest).max() <= 1e-7 * max(np.abs(out).max(), 1e-12)
        np.testing.assert_allclose(blocks.dense(spec.A, spec.B), J, atol=1e-8 * np.abs(J).max())


def test_block_low_rank_solves_like_its_dense_matrix():
    rng = np.random.default_rng(3)
    G, p, r, ncols = 5, 3, 2, 4
    A = rng.standard_normal((p, p))
    beta = rng.uniform(0.1, 2.0, G)
    U, V = rng.standard_normal((G * p, r)), rng.standard_normal((G * p, r))
    M = (0.3 * BlockLowRank(A, beta, U, V, ncols))._with(1.0, -0.3)  # I − 0.3 J, as in BDF
    b = rng.standard_normal(G * p * ncols)
    dense = np.kron(M.toarray(), np.eye(ncols))
    np.testing.assert_allclose(M.factorize().solve(b), np.linalg.solve(dense, b), rtol=1e-10)


# --------------------------------------------------------------------------- structured = dense
@pytest.fixture(scope="module")
def pairs():
    """escape(..., seed=0) by both routes, Fig. 1 settings, K = M ∈ {2, 3}, L ∈ {1, 2, 4, 8}."""
    out = {}
    for K in (2, 3):
        for L in (1, 2, 4, 8):
            setup = fig1(L, K=K, M=K)
            out[K, L] = (escape(setup, seed=0), escape(setup, seed=0, method="dense"),
                         escape(setup, seed=0, dense_max=0))
    return out


def expanded(values: np.ndarray, mult: np.ndarray) -> np.ndarray:
    ev = np.repeat(values, mult)
    return ev[np.lexsort((ev.imag, ev.real))]


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("L", [1, 2, 4, 8])
def test_structured_route_reproduces_the_dense_route(K, L, pairs):
    """Tolerances (largest measured difference in brackets): μ 1e-7 (1.1e-8; finite
    differences), A_0 and the plateau 1e-6 (2e-9, 1e-8), A_s 1e-4 and κ 1e-5 (1.5e-5, 1.6e-7:
    explicit RK45 at rtol 1e-7 against the adjoint by BDF at 1e-6), ε_sym 2e-5 (5e-6: LSODA
    at rtol 1e-9 against BDF at 1e-7)."""
    new, old, secular = pairs[K, L]
    assert new.escape_rate == pytest.approx(old.escape_rate, rel=1e-7)
    assert new.escape_multiplicity == old.escape_multiplicity == (K - 1) ** 2
    # spectra: the same multisets once each block eigenvalue is repeated d_ρ times
    assert new.antisymmetric_multiplicities.sum() == old.antisymmetric_eigenvalues.size
    np.testing.assert_allclose(expanded(new.antisymmetric_eigenvalues,
                                        new.antisymmetric_multiplicities),
                               expanded(old.antisymmetric_eigenvalues,
                                        old.antisymmetric_multiplicities), atol=1e-9)
    np.testing.assert_allclose(np.sort_complex(new.symmetric_eigenvalues),
                               np.sort_complex(old.symmetric_eigenvalues), atol=1e-9)
    assert new.initial_asymmetry == pytest.approx(old.initial_asymmetry, rel=1e-6)
    assert new.naive_length == pytest.approx(old.naive_length, rel=1e-6)
    assert new.has_plateau == old.has_plateau
    for name in ("plateau_start", "plateau_end", "plateau_length"):
        a, b = getattr(new, name), getattr(old, name)
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-6), name
    assert new.plateau_asymmetry == pytest.approx(old.plateau_asymmetry, rel=1e-4)
    assert new.kappa == pytest.approx(old.kappa, rel=1e-5)
    ok = np.isfinite(old.eg_symmetric)
    np.testing.assert_allclose(new.eg_symmetric[ok], old.eg_symmetric[ok], rtol=2e-5)
    # every block on the secular equation (rightmost eigenvalue and eigenvectors only)
    assert secular.escape_rate == pytest.approx(new.escape_rate, rel=1e-10)
    assert secular.escape_multiplicity == new.escape_multiplicity
    assert secular.initial_asymmetry == pytest.approx(new.initial_asymmetry, rel=1e-8)
    a, b = secular.plateau_length, new.plateau_length
    assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-8)


@pytest.mark.parametrize("kwargs", [dict(K=2, M=2, L=4), dict(K=3, M=2, L=4),
                                    dict(K=2, M=2, L=4, trainable=512)])
def test_unstable_eigenvectors_agree(kwargs):
    """The spectral projection on the unstable eigenspace of a random asymmetry (all groups,
    frozen ones included): structured (secular and dense blocks) against the dense J|V1."""
    setup = fig1(**kwargs)
    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    dX = system.vector(np.random.default_rng(5).standard_normal((3, system.dim(1))), 1)
    ref = DenseRoute(system, xstar).unstable_part(dX)
    for dense_max in (0, 10**6):
        got = StructuredRoute(setup, xstar, dense_max).unstable_part(dX)
        np.testing.assert_allclose(got, ref, atol=1e-7 * np.abs(ref).max())


def test_reduced_moments_route_matches_dense_route():
    """K + M > 16: the moments come from representative units (`UnitClasses`); K ≠ M."""
    setup = fig1(1, K=5, M=12)
    new, old = escape(setup, seed=0), escape(setup, seed=0, method="dense")
    assert new.escape_rate == pytest.approx(old.escape_rate, rel=1e-7)
    assert new.escape_multiplicity == old.escape_multiplicity == 4 * 11
    assert new.plateau_length == pytest.approx(old.plateau_length, rel=1e-6)
    assert new.plateau_asymmetry == pytest.approx(old.plateau_asymmetry, rel=1e-4)


def test_blocks_unresolved_by_the_secular_equation_go_dense(monkeypatch):
    """If no root is found above the poles, the block is diagonalised densely instead."""
    setup = fig1(4, K=3, M=3)
    ref = escape(setup, seed=0, dense_max=0)
    monkeypatch.setattr(SymmetricBlocks, "_secular_root", lambda self, A, B, bound: np.nan)
    res = escape(setup, seed=0, dense_max=0)
    assert res.escape_rate == pytest.approx(ref.escape_rate, rel=1e-12)
    assert res.escape_multiplicity == ref.escape_multiplicity == 4
    assert res.plateau_length == pytest.approx(ref.plateau_length, rel=1e-8)


def test_fallback_to_scipy_bdf(monkeypatch):
    """Without the BDF internals the same Jacobians go to scipy's BDF as sparse matrices."""
    setup = fig1(4)
    ref = escape(setup, seed=0)
    monkeypatch.setattr(escape_blocks, "bdf_internals_problem", lambda cls=None: "probe")
    with pytest.warns(RuntimeWarning, match="probe"):
        res = escape(setup, seed=0)
    assert res.plateau_length == pytest.approx(ref.plateau_length, rel=1e-5)
    assert res.plateau_asymmetry == pytest.approx(ref.plateau_asymmetry, rel=1e-4)


def test_options_are_checked():
    with pytest.raises(ValueError, match="contrast: must be > 1"):
        escape(fig1(1), contrast=1.0)
    with pytest.raises(ValueError, match="window"):
        escape(fig1(1), window=0.0)
    with pytest.raises(ValueError, match="method"):
        escape(fig1(1), method="sparse")
    with pytest.raises(ValueError, match="method"):
        escape_rate(fig1(1), method="sparse")


# --------------------------------------------------------------------------- large L
@pytest.mark.parametrize("L", [256, 1024])
def test_large_L_runs_and_mu_is_the_growth_rate_in_the_ode(L):
    """The prediction completes (no plateau: as measured for L ≥ 8 at these settings), and μ
    equals the growth rate of a 1e-8 asymmetry next to x* in `solve_ode` (rates of the
    other V1 modes are ≤ μ/2 or decay; fitted on α > 8/μ)."""
    setup = fig1(L, N=max(1024, L))
    res = escape(setup, seed=0)
    assert np.isfinite(res.escape_rate) and res.escape_multiplicity == 1
    assert not res.has_plateau
    assert np.isfinite(res.eg_symmetric).all()

    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    dx = system.vector(np.random.default_rng(1).standard_normal(system.dim(1)), 1)
    q, r = system.unpack(xstar + 1e-8 * dx / np.linalg.norm(dx))
    init = make_dataset(setup, [0.0], q[None], r[None], system.t, method="initial")
    mu = res.escape_rate
    alpha = np.linspace(0, 12 / mu, 241)
    ds = scalex.solve_ode(setup, alpha, init=init, rtol=1e-10, atol=1e-16)
    states = np.stack([system.pack(a, b) for a, b in zip(ds.q.values, ds.r.values)])
    asym = np.linalg.norm(states - system.symmetrize(states), axis=1)
    late = alpha > 8 / mu
    rate = np.polyfit(alpha[late], np.log(asym[late]), 1)[0]
    assert rate == pytest.approx(mu, rel=2e-3)
    assert asym[-1] < 1e-3  # still linear


# --------------------------------------------------------------------------- bounded cost
def test_a_crawling_trajectory_stops_with_an_error_that_says_where():
    """K = M = 40, L = 1, σ_J = 1e-6 (μ ≈ 1e-6): the symmetric trajectory is cheap to α = 1e7,
    then BDF's step falls from ~1e6 to ~2e3 near α ≈ 1.1e7, on the way to 3 (1/μ) ln(1/A_0)
    ≈ 4e7. It used to crawl for hours; past the budget it stops (here after ~2 s) and the
    error names the parameter and the α reached."""
    setup = scalex.Setup(K=40, M=40, N=512, L=1, beta=1.0, eta=0.01, sigma_J=1e-6)
    message = (r"^max_rhs: the symmetric trajectory \(E3\) needed more than 2000 right-hand "
               r"sides by α = \d\.\d+e\+0[67]")
    with pytest.raises(RuntimeError, match=message):
        escape(setup, seed=0, max_rhs=2000)


def test_budget_covers_every_structured_integration_and_is_checked():
    setup = fig1(2)
    with pytest.raises(RuntimeError, match=r"^max_rhs: the symmetric trajectory \(E3\) needed "
                                           r"more than 20 right-hand sides by α = "):
        escape(setup, seed=0, max_rhs=20)
    assert escape(setup, seed=0, max_rhs=None).plateau_length == escape(
        setup, seed=0).plateau_length  # a typical run stays far below the default
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match=r"^max_rhs: must be an integer >= 1 or None"):
            escape(setup, seed=0, max_rhs=bad)


def test_a_predicted_curve_that_ends_flat_has_no_plateau():
    """As `scalex.analysis.plateau` asks, the plateau must be left again: with alpha_max
    inside the plateau its end is unknown."""
    setup = fig1(1)
    full = escape(setup, seed=0)
    assert full.has_plateau and full.plateau_end > 1000
    cut = escape(setup, seed=0, alpha_max=1000)
    assert not cut.has_plateau and np.isnan(cut.plateau_length)
    assert np.isfinite(cut.eg_predicted[-1])  # the curve itself is there, and flat
