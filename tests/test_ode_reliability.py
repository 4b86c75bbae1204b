"""Reliability of `solve_ode`: divergence before the first output, the accuracy and sign of
ε_g late in training (against the exact secular solution of docs/theory.md §4.3), the check of
scipy's BDF internals behind `ArrowheadBDF` with its fallback, and the stability warning."""

import warnings

import numpy as np
import pytest
from scipy.integrate import BDF

from scalex.engines import ode as ode_module
from scalex.engines.linear import linear_theory
from scalex.engines.ode import solve_ode
from scalex.model.setup import Setup
from scalex.schema import DivergenceWarning, StabilityWarning, validate


# --------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("method", ["auto", "DOP853"])
def test_divergence_before_the_first_requested_alpha(method):
    """η = 50 ≫ η_max = 2 blows up at α ≈ 3e-3, before the first output α = 1: the whole grid
    is NaN, status "diverged", a DivergenceWarning (it used to raise AttributeError)."""
    setup = Setup(K=1, M=1, N=64, L=4, activation="linear", eta=50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the stability warning, tested below
        warnings.simplefilter("error", DivergenceWarning)
        with pytest.raises(DivergenceWarning, match="exceeded"):
            solve_ode(setup, np.geomspace(1, 100, 5), method=method, progress=False)
    with pytest.warns(DivergenceWarning, match="exceeded"), \
            pytest.warns(StabilityWarning, match="eta=50 is 25 x the linear stability bound"):
        ds = solve_ode(setup, np.geomspace(1, 100, 5), method=method, progress=False)
    validate(ds)
    assert ds.status.item() == "diverged"
    assert np.all(np.isnan(ds.eg.values)) and np.all(np.isnan(ds.q.values))
    assert np.all(np.isnan(ds.r.values)) and np.all(np.isfinite(ds.t.values))


# --------------------------------------------------------------------------- ε_g accuracy
LINEAR_CASES = {
    "brief": dict(K=1, M=1, N=1024, L=16, beta=1.0, eta=0.5),
    "L1": dict(K=1, M=1, N=1024, L=1, eta=0.5),
    "wide": dict(K=1, M=1, N=1024, L=256, beta=0.5, eta=0.5),
    "general": dict(K=2, M=3, N=240, L=12, beta=1.5, eta=0.3, v=(0.9, -0.6),
                    w=(1.0, 0.5, -0.7), sigma_J=0.3),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_eg_matches_secular_solution_late_in_training(case):
    """Default tolerances: ε_g ≥ 0 everywhere and within 1e-3 relative of the exact solution
    (secular equation, an independent route) wherever ε_g ≥ 1e-12. Before the error
    coordinates the brief case gave ε_g = −5.8e-12 and relative errors up to 7 (3.6e-2 at
    ε_g ≈ 1e-8); now ≤ 2.1e-4 in all these cases."""
    setup = Setup(activation="linear", **LINEAR_CASES[case])
    alpha = np.concatenate([[0.0], np.geomspace(1e-2, 1e4 if case != "brief" else 600, 200)])
    ds = solve_ode(setup, alpha, progress=False)
    exact = linear_theory(setup, alpha, seed=0, overlaps=False).eg.values
    eg = ds.eg.values
    assert ds.status.item() == "ok"
    assert np.all(eg >= 0), eg.min()
    keep = exact >= 1e-12
    assert keep.sum() > 50 and exact[keep].min() < 1e-10  # the late, small-ε_g regime is in
    rel = np.abs(eg[keep] - exact[keep]) / exact[keep]
    assert rel.max() <= 1e-3, (rel.max(), exact[keep][rel.argmax()])
    assert ds.attrs["eg_route"].startswith("error coordinates")


def test_erf_eg_is_never_negative():
    """erf, η = 3: ε_g falls to ~1e-15, where c^T I2 c of the integrated overlaps came out
    −1.2e-15 before; it is now clipped at 0 as round-off (counted in attrs)."""
    setup = Setup(K=2, M=2, N=1024, L=1, eta=3.0)
    ds = solve_ode(setup, np.geomspace(0.01, 1e4, 30), progress=False)
    eg = ds.eg.values
    assert ds.status.item() == "ok"
    assert np.all(eg >= 0) and eg[-1] < 1e-12
    assert ds.attrs["eg_clipped"] >= 1


# --------------------------------------------------------------------------- scipy internals
class _ExtraParameterBDF(BDF):
    """A BDF whose _validate_jac takes another parameter (as a future scipy might)."""

    def _validate_jac(self, jac, sparsity, dtype=None):
        return super()._validate_jac(jac, sparsity)


class _PrivateLUBDF(BDF):
    """A BDF that keeps its LU solver under another name (as a future scipy might)."""

    def __init__(self, fun, t0, y0, t_bound, rtol=1e-3, atol=1e-6, jac=None, **kwargs):
        super().__init__(fun, t0, y0, t_bound, rtol=rtol, atol=atol, jac=jac, **kwargs)
        self._lu_factor = self.lu
        del self.lu


def _arrowhead_on(base):
    from scalex.numerics.arrowhead import ArrowheadBDF

    return type(f"ArrowheadOn{base.__name__}", (ArrowheadBDF, base), {})


def test_bdf_internals_check_passes_on_the_installed_scipy():
    from scalex.numerics.arrowhead import ArrowheadBDF, bdf_internals_problem

    assert bdf_internals_problem() is None
    assert bdf_internals_problem(ArrowheadBDF) is None


@pytest.mark.parametrize("base, reason", [(_ExtraParameterBDF, "_validate_jac has parameters"),
                                          (_PrivateLUBDF, "lacks the attribute")])
def test_arrowhead_falls_back_to_bdf_when_scipy_internals_differ(monkeypatch, base, reason):
    """The real check inspects the BDF the arrowhead solver extends; when it fails, solve_ode
    says why and runs method="BDF" instead (same results as asking for BDF)."""
    from scalex.numerics.arrowhead import ArrowheadUnavailableWarning, bdf_internals_problem

    broken = _arrowhead_on(base)
    assert reason in bdf_internals_problem(broken)
    setup = Setup(K=2, M=2, N=64, L=4, eta=0.3)
    alpha = np.geomspace(1e-2, 100, 20)
    monkeypatch.setattr(ode_module, "ArrowheadBDF", broken)
    with pytest.warns(ArrowheadUnavailableWarning, match=reason) as caught:
        ds = solve_ode(setup, alpha, progress=False)
    assert "falling back to method='BDF'" in str(caught[0].message)
    assert ds.attrs["ode_method"] == "BDF" and ds.status.item() == "ok"
    plain = solve_ode(setup, alpha, method="BDF", progress=False)
    np.testing.assert_array_equal(ds.eg.values, plain.eg.values)  # the same path, run twice


# --------------------------------------------------------------------------- stability
def test_far_outside_the_stable_range_warns_and_records_it():
    """erf, η = 50 = 25 × the linear bound: bounded, status "ok", but said to be unstable."""
    from scalex.schema import StabilityWarning

    setup = Setup(K=2, M=2, N=1024, L=1, eta=50.0)
    with pytest.warns(StabilityWarning, match=r"eta=50 .*eta_max_linear=2\b"):
        ds = solve_ode(setup, np.geomspace(0.01, 100, 10), progress=False)
    assert ds.status.item() == "ok"
    assert ds.attrs["eta_max_linear"] == pytest.approx(2.0)
    assert ds.attrs["eta_over_eta_max_linear"] == pytest.approx(25.0)
    assert "far outside" in ds.attrs["stability_warning"]
    # Inside the measured erf range (2 × the linear bound, which still converges): no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = solve_ode(setup.replace(eta=4.0), np.geomspace(0.01, 100, 10), progress=False)
    assert "stability_warning" not in ok.attrs
    assert ok.attrs["eta_max_linear"] == pytest.approx(2.0)
