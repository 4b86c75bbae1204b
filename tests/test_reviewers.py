"""The reviewers' checks of the paper catalog (docs/reproduction.md, "Reviewers' checks").

* The entries ``reviewers_k_ne_m`` and ``escape_vs_M2_over_L`` parse with their settings, and
  a reduced version of each (fewer members, a shorter α range) runs through `run_entry` to its
  dataset variables and plot files.
* The overlaps of `scalex.viz.overlap_curves` from the recorded R, Q against the same sums
  formed from the per-group r, q, t (two routes).
* The near-degenerate spectra of `scalex.model.spectrum` (docs/theory.md §1): ε = 0 gives the
  L = 4 groups back exactly, and the ODE on the 2L split groups gives the L = 4 learning curve
  at ε = 0 (a different code path: eight groups instead of four) and converges to it as ε → 0.
* The two-exponent fit of `scalex.analysis.scaling_fit` (docs/theory.md §5.4) on synthetic
  data with known exponents: against the normal equations of the three-parameter least squares
  (independent route), recovery within the stated standard errors, and those errors against
  the spread of the estimates over noise draws.
"""

from __future__ import annotations

import copy

import holoviews as hv
import numpy as np
import pytest
import xarray as xr

from scalex.analysis.scaling_fit import (
    collapse_fit,
    fit_two_exponents,
    scaling_exponents,
    scaling_points,
)
from scalex.engines.ode import solve_ode
from scalex.experiments.catalog import CatalogError, load_catalog, parse_catalog
from scalex.experiments.grid import grid_members
from scalex.experiments.runner import run_entry
from scalex.model.setup import Setup
from scalex.model.spectrum import (
    Spectrum,
    merge_equal,
    near_degenerate,
    power_law,
    split_groups,
)
from scalex.schema import member_setup
from scalex.viz import figures
from scalex.viz.overlap_curves import overlaps
from scalex.viz.plateau_scaling import escape_scaling, plateau_vs_split

PAPER = load_catalog()
NAMES = ("reviewers_k_ne_m", "reviewers_near_degenerate", "escape_vs_M2_over_L")


# ---------------------------------------------------------------------------------- entries
def test_entries_parse_with_the_requested_settings():
    for name in NAMES:
        entry = PAPER[name]
        assert entry.kind == "ode" and entry.cost and entry.description
        s = entry.setup
        assert (s.N, s.eta, s.beta, s.sigma_J, s.activation) == (1024, 0.1, 1.0, 0.01, "erf")
        assert all(figures.has_plot(p.name) for p in entry.plots)
    k = PAPER["reviewers_k_ne_m"]
    assert k.setup.M == 2 and k.over["K"] == (3, 4) and len(k.over["L"]) >= 3
    assert {"overlap_curves", "learning_curves"} <= {p.name for p in k.plots}
    n = PAPER["reviewers_near_degenerate"]
    assert list(n.over) == ["K=M", "L", "split"] and n.over["L"] == (4, 8)
    assert n.over["split"] == (0, 1e-3, 1e-2, 1e-1)
    assert "plateau_vs_split" in {p.name for p in n.plots}
    e = PAPER["escape_vs_M2_over_L"]
    assert list(e.over) == ["K=M", "L"]
    assert {2, 3, 4} <= set(e.over["K=M"]) and set(e.over["L"]) == {1, 2, 4, 8, 16}
    assert [p.options.get("variable", "plateau_end") for p in e.plots
            if p.name == "escape_scaling"] == ["plateau_end", "plateau_length"]


def _reduced(name: str, tmp_path, **changes) -> object:
    """The paper entry ``name`` with ``changes`` to its raw fields, validated again."""
    raw = copy.deepcopy(dict(PAPER[name].raw))
    raw.update(changes)
    return parse_catalog({"entries": {name: raw}}, str(tmp_path / "reduced.yaml"))[name]


def _files(out, entry) -> None:
    for plot in entry.plots:
        for suffix in (".png", ".html"):
            path = out / f"{plot.file}{suffix}"
            assert path.is_file() and path.stat().st_size > 0, path


def test_reduced_k_ne_m_runs_to_its_variables_and_plots(tmp_path):
    entry = _reduced("reviewers_k_ne_m", tmp_path, over={"K": [3], "L": [4, 16]},
                     alpha={"start": 1e-1, "stop": 1e4, "num": 61, "zero": True})
    out = tmp_path / "out"
    result = run_entry(entry, out, progress=False, escape_timeout=None)
    assert not [p for p in result.problems if "plot" in p], result.problems
    ds = result.dataset
    assert {"eg", "q", "r", "Q", "R"} <= set(ds.data_vars)
    assert ds.sizes["student_i"] == 3 and ds.sizes["teacher_n"] == 2
    summary = result.summary
    assert {"plateau_length", "plateau_length_predicted", "specialisation_alpha"} <= set(
        summary.data_vars)
    at4 = summary.sel(L=4, K=3).isel(seed=0)
    assert bool(at4["has_plateau"]) and not bool(summary.sel(L=16, K=3).isel(seed=0)[
        "has_plateau"])  # a plateau at L = 4, none at L = 16 (docs/reproduction.md)
    assert at4["plateau_length_predicted"] == pytest.approx(float(at4["plateau_length"]),
                                                            rel=0.25)
    _files(out, entry)


def test_reduced_escape_scaling_runs_to_its_fit_and_plots(tmp_path):
    entry = _reduced("escape_vs_M2_over_L", tmp_path, over={"K=M": [2, 3], "L": [1, 2]},
                     alpha={"start": 1e-1, "stop": 1e4, "num": 61, "zero": True})
    out = tmp_path / "out"
    result = run_entry(entry, out, progress=False)
    assert not [p for p in result.problems if "plot" in p], result.problems
    assert {"eg", "q", "r"} <= set(result.dataset.data_vars)
    summary = result.summary
    assert "M" in summary.coords and bool(summary["has_plateau"].all())
    fit = scaling_exponents(summary, "plateau_end")
    assert fit.n_points == 4 and fit.exponents[0] > 1 and fit.exponents[1] < 0
    _files(out, entry)


def test_reduced_near_degenerate_runs_to_its_variables_and_plots(tmp_path):
    entry = _reduced("reviewers_near_degenerate", tmp_path,
                     over={"K=M": [3], "L": [4, 8], "split": [0, 0.1]},
                     alpha={"start": 1e-1, "stop": 1e4, "num": 61, "zero": True})
    out = tmp_path / "out"
    result = run_entry(entry, out, progress=False)
    assert not [p for p in result.problems if "plot" in p], result.problems
    ds = result.dataset
    assert ds["eg"].dims[:4] == ("K", "L", "split", "seed") and ds.sizes["group"] == 16
    # every member's Setup, rebuilt from the result, is the split power law itself
    for L in (4, 8):
        for eps in (0.0, 0.1):
            sp = near_degenerate(L, 1.0, eps, 1024)
            setup = member_setup(ds, K=3, L=L, split=eps)
            np.testing.assert_allclose(setup.spectrum.eigenvalues, sp.eigenvalues, rtol=1e-14)
            assert setup.multiplicities == tuple(sp.multiplicities) and setup.K == setup.M == 3
    lengths = result.summary["plateau_length"].sel(K=3).isel(seed=0)
    assert bool(np.isfinite(lengths).all())
    assert float(lengths.sel(L=4, split=0.1)) == pytest.approx(float(lengths.sel(L=4, split=0)),
                                                               rel=0.1)
    _files(out, entry)


def test_split_axis_members_and_refusals(tmp_path):
    base = Setup(K=2, M=2, N=64, L=4)
    members = grid_members(base, {"split": [0, 0.05]}, [0])
    unsplit = members[0].setup.spectrum
    assert unsplit.L == 8 and merge_equal(unsplit).L == 4
    np.testing.assert_allclose(merge_equal(unsplit).eigenvalues, base.spectrum.eigenvalues,
                               rtol=1e-15)
    assert members[1].setup.spectrum.eigenvalues[0] == pytest.approx(
        1.05 * base.spectrum.eigenvalues[0], rel=1e-14)
    raw = copy.deepcopy(dict(PAPER["reviewers_near_degenerate"].raw))
    with pytest.raises(CatalogError, match=r"field 'over.split'.*too large"):
        parse_catalog({"entries": {"x": {**raw, "over": {"L": [4], "split": [0.3]}}}})
    explicit = {**raw, "setup": {"N": 4, "eigenvalues": [2.0, 1.0]}, "over": {"split": [0.1]}}
    with pytest.raises(CatalogError, match="power-law spectrum"):
        parse_catalog({"entries": {"x": explicit}})
    with pytest.raises(CatalogError, match="cannot be linked"):
        parse_catalog({"entries": {"x": {**raw, "over": {"L=split": [4]}}}})


def test_escape_scaling_needs_four_members():
    summary = xr.Dataset(
        {"plateau_end": (("K", "L"), [[100.0, np.nan], [np.nan, np.nan]])},
        coords={"K": [2, 3], "L": [1, 2], "M": ("K", [2, 3])})
    with pytest.raises(ValueError, match="at least 4"):
        escape_scaling(summary)


# ---------------------------------------------------------------------------------- overlaps
def test_overlaps_from_recorded_and_per_group_overlaps_agree():
    setup = Setup(K=3, M=2, N=64, L=4, eta=0.1, sigma_J=0.01)
    ds = solve_ode(setup, np.array([0.0, 10.0, 300.0]), seed=1, record=("q", "r", "Q", "R"),
                   progress=False)
    recorded = overlaps(ds)
    per_group = overlaps(ds.drop_vars(["Q", "R"]))
    xr.testing.assert_allclose(recorded, per_group, rtol=1e-12, atol=0)
    # a cosine: written out for one pair, with T_nn = Σ_τ λ_τ t^τ_nn
    lam = ds["eigenvalue"].values
    r = float((lam * ds["r"].isel(alpha=2, student_i=1, teacher_n=0).values).sum())
    q = float((lam * ds["q"].isel(alpha=2, student_i=1, student_j=1).values).sum())
    t = float((lam * ds["t"].isel(teacher_n=0, teacher_m=0).values).sum())
    assert float(recorded.isel(alpha=2, student_i=1, teacher_n=0)) == pytest.approx(
        r / np.sqrt(q * t), rel=1e-12)
    assert np.all(np.abs(recorded.values) <= 1 + 1e-12)  # Cauchy–Schwarz
    xr.testing.assert_allclose(overlaps(ds, normalise=False), ds["R"], rtol=0, atol=0)


# ---------------------------------------------------------------------------------- near-degenerate
def test_split_at_zero_gives_the_l4_groups_back():
    base = power_law(4, 1.0, 1024)
    split = split_groups(base, 0.0)
    assert split.L == 8 and split.N == base.N
    np.testing.assert_array_equal(split.eigenvalues[0::2], split.eigenvalues[1::2])
    merged = merge_equal(split)
    np.testing.assert_array_equal(merged.eigenvalues, base.eigenvalues)
    np.testing.assert_array_equal(merged.multiplicities, base.multiplicities)
    # the same N diagonal entries of Σ, so the same inputs
    np.testing.assert_array_equal(split.diagonal(), base.diagonal())


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 0.1, 0.25])
def test_split_pairs_keep_the_trace_and_the_order(eps):
    base = power_law(4, 1.0, 1024)
    split = near_degenerate(4, 1.0, eps, 1024)
    lam = split.eigenvalues
    np.testing.assert_allclose(lam[0::2], base.eigenvalues * (1 + eps), rtol=1e-15)
    np.testing.assert_allclose(lam[1::2], base.eigenvalues * (1 - eps), rtol=1e-15)
    assert split.trace_per_dim == pytest.approx(base.trace_per_dim, rel=1e-14)
    assert np.all(np.diff(lam) < 0)
    assert merge_equal(split).L == 8  # no equal neighbours left to merge


def test_split_refusals():
    base = power_law(4, 1.0, 1024)
    with pytest.raises(ValueError, match="cross"):
        split_groups(base, 0.3)  # λ_3(1 − ε) < λ_4(1 + ε): (3/4)² > (1 − ε)/(1 + ε)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        split_groups(base, -0.1)
    with pytest.raises(ValueError, match="even"):
        split_groups(Spectrum(np.array([2.0, 1.0]), np.array([3, 4])), 0.1)


def _split_setup(eps: float, **fields) -> Setup:
    sp = near_degenerate(4, 1.0, eps, 256)
    return Setup(N=256, eigenvalues=tuple(sp.eigenvalues),
                 multiplicities=tuple(sp.multiplicities), **fields)


def test_ode_on_split_groups_converges_to_the_l4_curve():
    fields = dict(K=2, M=2, eta=0.1, sigma_J=0.01)
    alpha = np.concatenate([[0.0], np.geomspace(0.1, 3e3, 41)])
    options = dict(seed=0, progress=False, rtol=1e-9, atol=1e-12)
    reference = solve_ode(Setup(N=256, L=4, **fields), alpha, **options)["eg"].values

    def distance(eps: float) -> float:
        eg = solve_ode(_split_setup(eps, **fields), alpha, **options)["eg"].values
        return float(np.max(np.abs(eg / reference - 1)))

    # ε = 0: eight groups in pairs of equal λ carry the same dynamics as the four merged
    # ones (the per-group equations add up), within the integrator tolerance
    assert distance(0.0) < 1e-6
    far, mid, near = distance(0.1), distance(1e-2), distance(1e-3)
    assert near < mid < far
    assert near < 0.05 * far  # ε → 0: the curve approaches the L = 4 one


def test_plateau_vs_split_draws_the_unsplit_values_as_references():
    lengths = np.array([[[1207.1, 1187.1], [1207.1, 1207.2], [1207.1, 1187.1]],
                        [[531.1, 531.0], [531.3, 531.4], [537.5, 537.6]]])  # (L, split, seed)
    summary = xr.Dataset({"plateau_length": (("L", "split", "seed"), lengths)},
                         coords={"L": [4, 8], "split": [0.0, 1e-2, 1e-1], "seed": [0, 1]},
                         attrs={"sweep_dims": "L split"})
    overlay = plateau_vs_split(summary)
    lines = [e for e in overlay if isinstance(e, hv.HLine)]
    points = [e for e in overlay if isinstance(e, hv.Scatter)]
    assert [line.data for line in lines] == pytest.approx(lengths[:, 0].mean(axis=-1))
    for scatter, mean in zip(points, lengths.mean(axis=-1)):
        np.testing.assert_allclose(scatter.dimension_values(0), [1e-2, 1e-1])  # ε > 0: log x
        np.testing.assert_allclose(scatter.dimension_values(1), mean[1:])
    with pytest.raises(ValueError, match="unsplit value 0"):
        plateau_vs_split(summary.sel(split=[1e-2, 1e-1]))


# ---------------------------------------------------------------------------------- fits
def _normal_equations(x1, x2, y):
    """log y = c + a log x₁ + b log x₂ by (XᵀX)β = Xᵀy; (a, b, c) and their standard errors."""
    X = np.column_stack([np.ones(y.size), np.log(x1), np.log(x2)])
    beta = np.linalg.solve(X.T @ X, X.T @ np.log(y))
    resid = np.log(y) - X @ beta
    cov = float(resid @ resid) / (y.size - 3) * np.linalg.inv(X.T @ X)
    return beta, np.sqrt(np.diag(cov))


def _synthetic(rng, a=2.0, b=-1.0, c=5.0, noise=0.05):
    M, L = np.meshgrid([2.0, 3.0, 4.0, 6.0, 8.0], [1.0, 2.0, 4.0, 8.0, 16.0], indexing="ij")
    y = np.exp(c + a * np.log(M) + b * np.log(L) + noise * rng.standard_normal(M.shape))
    return M.ravel(), L.ravel(), y.ravel()


def test_two_exponent_fit_against_the_normal_equations(rng):
    x1, x2, y = _synthetic(rng)
    y[[3, 11]] = np.nan  # members without a plateau are left out
    fit = fit_two_exponents(x1, x2, y)
    ok = np.isfinite(y)
    (c, a, b), (sc, sa, sb) = _normal_equations(x1[ok], x2[ok], y[ok])
    assert fit.n_points == 23
    np.testing.assert_allclose(fit.exponents, (a, b), rtol=1e-10)
    np.testing.assert_allclose(fit.stderr, (sa, sb), rtol=1e-10)
    assert fit.log_prefactor == pytest.approx(c, rel=1e-10)
    assert fit.log_prefactor_stderr == pytest.approx(sc, rel=1e-10)


def test_two_exponent_fit_recovers_known_exponents_within_its_errors(rng):
    x1, x2, y = _synthetic(rng, a=2.0, b=-1.0)
    fit = fit_two_exponents(x1, x2, y)
    for got, err, true in zip(fit.exponents, fit.stderr, (2.0, -1.0)):
        assert 0 < err < 0.1 and abs(got - true) < 3 * err
    # noiseless: exact, with errors at round-off
    exact = fit_two_exponents(x1, x2, np.exp(1.5) * x1**1.7 / x2**0.8)
    np.testing.assert_allclose(exact.exponents, (1.7, -0.8), rtol=1e-12)
    assert max(exact.stderr) < 1e-12 and exact.prefactor == pytest.approx(np.exp(1.5))
    # the one-variable check: the slope against x₁²/x₂ is 1 for y ∝ x₁²/x₂
    assert collapse_fit(x1**2 / x2, 3.0 * x1**2 / x2).slope == pytest.approx(1.0, rel=1e-12)


def test_two_exponent_fit_errors_match_the_spread_over_noise_draws(rng):
    draws = [fit_two_exponents(*_synthetic(rng, noise=0.1)) for _ in range(400)]
    est = np.array([d.exponents for d in draws])
    err = np.array([d.stderr for d in draws])
    # the spread of the estimates is the stated standard error (to ~10 % with 400 draws)
    np.testing.assert_allclose(est.std(axis=0), err.mean(axis=0), rtol=0.15)
    inside = np.mean(np.abs(est - (2.0, -1.0)) < err, axis=0)
    assert np.all((0.6 < inside) & (inside < 0.76))  # ~68 % within one standard error


def test_two_exponent_fit_needs_both_parameters_to_vary():
    x1 = np.array([2.0, 3.0, 4.0, 6.0])
    same = fit_two_exponents(x1, np.full(4, 4.0), x1**2)
    assert np.isnan(same.exponents).all()
    tied = fit_two_exponents(x1, x1**2, x1**2)  # log x₂ = 2 log x₁: not separable
    assert np.isnan(tied.exponents).all()
    with pytest.raises(ValueError, match="one shape"):
        fit_two_exponents(x1, x1, x1[:3])


def test_scaling_points_broadcast_sweep_coordinates_and_seeds():
    values = np.arange(12.0).reshape(2, 3, 2) + 1
    summary = xr.Dataset({"plateau_end": (("K", "L", "seed"), values)},
                         coords={"K": [2, 3], "L": [1, 2, 4], "seed": [0, 1],
                                 "M": ("K", [2, 3])})
    x1, x2, y = scaling_points(summary)
    assert y.size == 12
    assert list(zip(x1[:4], x2[:4], y[:4])) == [(2, 1, 1), (2, 1, 2), (2, 2, 3), (2, 2, 4)]
    with pytest.raises(ValueError, match="not coordinates"):
        scaling_points(summary, dims=("N", "L"))
