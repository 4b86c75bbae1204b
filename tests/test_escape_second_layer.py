"""The escape theory with a trained second layer (docs/theory.md §5.6) against independent routes.

* The symmetric fixed point (â, b̂, ĉ, v̄*) is stationary in the ODE engine
  (`scalex.engines.ode_system.SecondLayerSystem`, a separate implementation of eq. (3.22)).
* Symmetry: v has no component in the (K−1)(M−1)-dimensional representation that carries the
  escape mode, so μ with a trained v equals μ of the *fixed*-v theory (the structured route,
  other code) at v = v̄*, and so do q*, r*.
* The linearisation (dense, on V0 ⊕ V1 with the v block) has the spectrum of the ODE engine's
  Jacobian at the fixed point, by central differences of its right-hand side.
* μ is the growth rate of an asymmetry (in q, r and v) in `solve_ode`.
* The predicted plateau against the one measured on `solve_ode` with ``train_v``, from the same
  weight draw, at the Fig. 1 settings and at other initial v and η_v.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import scalex
from scalex import analysis
from scalex.analysis.escape import SymmetricSystem, escape, escape_rate, symmetric_fixed_point
from scalex.analysis.escape_routes import DenseRoute
from scalex.engines.ode_system import SecondLayerSystem
from scalex.schema import make_dataset, second_layer_extra

FIG1 = dict(N=1024, beta=1.0, eta=0.1, sigma_J=0.01)  # docs/theory.md §5, Fig. 1


def trained(L: int, K: int = 2, M: int | None = None, **changes) -> scalex.Setup:
    return scalex.Setup(**{**FIG1, "K": K, "M": M or K, "L": L, "train_v": True, **changes})


def init_dataset(setup: scalex.Setup, x: np.ndarray, system: SymmetricSystem):
    """An ODE start at flat state x (q, r and v) with the isotropic teacher t^τ = f_τ I."""
    q, r = system.unpack(x)
    v = system.second_layer(x)
    return make_dataset(setup, [0.0], q[None], r[None], system.t, method="initial",
                        extra=second_layer_extra(v[None]))


def states(ds, system: SymmetricSystem) -> np.ndarray:
    return np.stack([system.pack(q, r, v)
                     for q, r, v in zip(ds.q.values, ds.r.values, ds.v.values)])


CASES = [(1, 1, 2), (2, 2, 1), (2, 2, 4), (3, 3, 2), (3, 2, 2), (2, 3, 2)]


# --------------------------------------------------------------------------- fixed point
@pytest.mark.parametrize("K, M, L", CASES)
def test_fixed_point_is_stationary_in_the_ode_engine(K, M, L):
    setup = trained(L, K, M, v=[0.6] * K)  # v̄* is 0.47–0.81 here (1 for K = M = 1)
    system = SymmetricSystem(setup)
    x, residual = symmetric_fixed_point(setup, system=system)
    assert residual < 1e-12
    v = system.second_layer(x)
    assert np.ptp(v) == 0 and abs(v[0] - setup.second_layer[0][0]) > 1e-3  # v moved, equally
    # solve_ode integrates SecondLayerSystem, which shares no code with SymmetricSystem.rhs
    # beyond the moments; from x* nothing moves (tolerances 1e-12 over 100 time units)
    ds = scalex.solve_ode(setup, [0.0, 100.0, 1000.0], init=init_dataset(setup, x, system),
                          rtol=1e-12, atol=1e-14)
    drift = np.abs(states(ds, system) - x).max()
    assert drift < 1e-9


@pytest.mark.parametrize("K, M, L", CASES[1:])
def test_escape_rate_and_fixed_point_equal_the_fixed_v_theory_at_v_star(K, M, L):
    """μ(train_v) = μ(fixed v = v̄*): the escape mode lies in the representation ρ_K ⊗ ρ_M
    (the standard representations), where v, which carries only the trivial and ρ_K ⊗ 1, has
    no component; the blocks of J there are those of the fixed-v Jacobian at v̄*. Both sides
    come from different code (dense finite differences with v in the state; the structured
    S_K × S_M blocks and the three-unknown root), so they agree to finite-difference accuracy."""
    setup = trained(L, K, M)
    system = SymmetricSystem(setup)
    x, _ = symmetric_fixed_point(setup, system=system)
    v_star = float(system.second_layer(x)[0])
    fixed = scalex.Setup(**{**FIG1, "K": K, "M": M, "L": L, "v": [v_star] * K})
    x_fixed, _ = symmetric_fixed_point(fixed)
    np.testing.assert_allclose(x[:-K], x_fixed, rtol=0, atol=1e-12)
    mu = DenseRoute(system, x).mu
    assert mu > 0
    assert mu == pytest.approx(escape_rate(fixed, method="structured"), rel=1e-7)
    assert escape_rate(setup) == mu  # "auto" takes the dense route with train_v


@pytest.mark.parametrize("K, M, L", [(2, 2, 2), (3, 2, 1)])
def test_linearisation_has_the_spectrum_of_the_ode_engine_jacobian(K, M, L):
    """ev0 ∪ ev1 of the dense route (J restricted to V0 and V1) is the whole spectrum of the
    ODE engine's Jacobian at x*, which here is formed in the plain coordinates by central
    differences of `SecondLayerSystem.rhs` (its own packing of q, r, v)."""
    setup = trained(L, K, M, eta_v=0.05)
    system = SymmetricSystem(setup)
    x, _ = symmetric_fixed_point(setup, system=system)
    route = DenseRoute(system, x)
    q, r = system.unpack(x)
    sp = setup.spectrum
    engine = SecondLayerSystem(q, r, system.t, sp.eigenvalues, sp.fractions,
                               system.second_layer(x), system.w, setup.eta, eta_v=0.05)
    z = engine.initial_state()
    np.testing.assert_allclose(z, x, rtol=0, atol=0)  # the same layout: triu(q), r, then v
    h = 1e-6
    J = np.column_stack([(engine.rhs(z + h * e) - engine.rhs(z - h * e)) / (2 * h)
                         for e in np.eye(z.size)])
    ours = np.concatenate([route.ev0, route.ev1])
    theirs = np.linalg.eigvals(J)
    assert ours.size == theirs.size
    # pair them by the closest match (no sort order to break ties differently on another BLAS)
    rows, cols = linear_sum_assignment(np.abs(ours[:, None] - theirs[None, :]))
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours[rows], theirs[cols], rtol=0, atol=1e-7 * scale)
    assert route.mu == pytest.approx(max(ev.real for ev in route.ev1))


def test_escape_rate_is_growth_rate_of_asymmetry_in_ode():
    """An asymmetry in q, r and v next to x* grows at μ in `solve_ode` with train_v."""
    setup = trained(2, 3, 3, eta_v=0.2)
    system = SymmetricSystem(setup)
    xstar, _ = symmetric_fixed_point(setup, system=system)
    mu = escape_rate(setup)
    dx = system.vector(np.random.default_rng(1).standard_normal(system.dim(1)), 1)
    assert np.abs(dx[-setup.K:]).max() > 0.1 * np.abs(dx).max()  # v is perturbed too
    x0 = xstar + 1e-8 * dx / np.linalg.norm(dx)
    alpha = np.linspace(0, 10 / mu, 201)
    ds = scalex.solve_ode(setup, alpha, init=init_dataset(setup, x0, system), rtol=1e-10,
                          atol=1e-16)
    X = states(ds, system)
    asym = np.linalg.norm(X - system.symmetrize(X), axis=1)
    late = alpha > 4 / mu
    rate = np.polyfit(alpha[late], np.log(asym[late]), 1)[0]
    assert rate == pytest.approx(mu, rel=0.02)
    assert asym[-1] < 1e-3  # still linear


# --------------------------------------------------------------------------- plateau length
PLATEAU_CASES = [
    dict(K=2, L=1), dict(K=2, L=4), dict(K=3, L=2), dict(K=3, L=8),
    dict(K=2, L=1, v=[0.4, 0.4], eta_v=0.03),  # v far below v̄* = 0.694, trained slowly
    dict(K=2, L=4, v=[1.2, 1.2]),  # v above v̄*: still drifting on the plateau
    dict(K=3, L=4, v=[0.3, 0.3, 0.3]),
]


@pytest.mark.parametrize("case", PLATEAU_CASES, ids=lambda c: "-".join(
    f"{k}{v if not isinstance(v, list) else v[0]}" for k, v in c.items()))
def test_predicted_plateau_matches_ode_with_trained_v(case):
    """Seed 0: the predicted plateau length is within 20 % of the measured one (measured
    ratios 0.84–1.13, docs/theory.md §5.6) and its start within 8 % (measured: ≤ 3.6 %; the
    α grid has 2.3 % steps)."""
    setup = trained(**case)
    ds = scalex.solve_ode(setup, np.geomspace(1e-2, 1e4, 600), seed=0, rtol=1e-8, atol=1e-11)
    measured = analysis.plateau(ds)
    predicted = escape(setup, seed=0)
    assert bool(measured.has_plateau) and predicted.has_plateau
    assert predicted.plateau_length / float(measured.plateau_length) == pytest.approx(1, abs=0.2)
    assert predicted.plateau_start == pytest.approx(float(measured.plateau_start), rel=0.08)


def test_no_plateau_predicted_where_none_is_measured():
    setup = trained(16, 2)
    ds = scalex.solve_ode(setup, np.geomspace(1e-2, 1e4, 600), seed=0, rtol=1e-8, atol=1e-11)
    assert not bool(analysis.plateau(ds).has_plateau)
    assert not escape(setup, seed=0).has_plateau


# --------------------------------------------------------------------------- interface
def test_result_records_the_trained_second_layer():
    setup = trained(2)
    result = escape(setup, seed=0)
    assert result.method == "dense"
    v_star = result.second_layer
    assert v_star.shape == (2,) and np.ptp(v_star) == 0
    assert f"v̄*={v_star[0]:.4g}" in repr(result)
    ds = result.to_dataset()
    np.testing.assert_allclose(ds["v_fixed"].values, v_star, rtol=0, atol=0)
    assert ds.attrs["train_v"] == 1 and ds.attrs["escape_route"] == "dense"
    fixed = escape(scalex.Setup(**{**FIG1, "K": 2, "M": 2, "L": 2}), seed=0)
    assert "v̄*" not in repr(fixed) and fixed.method == "structured"


def test_init_with_v_sets_the_start():
    """``init`` carries v: the Setup's own start gives the seed's result; another v another
    symmetric trajectory (the plateau is reached later from a small v)."""
    setup = trained(2)
    start = scalex.initial_overlaps(setup, 0)
    v0 = setup.second_layer[0]
    same = start.assign(v=(("student_i",), v0))
    by_seed = escape(setup, seed=0)
    by_init = escape(setup, init=same)
    assert by_init.plateau_length == by_seed.plateau_length
    small = escape(setup, init=start.assign(v=(("student_i",), 0.5 * v0)))
    assert small.plateau_start > 1.2 * by_seed.plateau_start
    with pytest.raises(ValueError, match=r"^init: variable 'v' must be finite with dims "
                                         r"\('student_i',\) of size K=2"):
        escape(setup, init=start.assign(v=(("teacher_x",), np.ones(3))))


def test_structured_route_refuses_a_trained_second_layer():
    with pytest.raises(ValueError, match=r"^method: 'structured' assumes a fixed second layer"):
        escape_rate(trained(2), method="structured")
    with pytest.raises(ValueError, match=r"^method: must be 'auto', 'structured' or 'dense'"):
        escape(trained(2), method="fast")
