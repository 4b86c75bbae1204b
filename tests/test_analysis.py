"""Tests of scalex.analysis and its kernels scalex._estimators.

Every estimator is checked against a curve whose answer is known independently: synthetic
curves built from a prescribed slope profile (plateau, power-law and exponential pieces),
closed-form derivatives, the small-η closed form of the linear theory (docs/theory.md §4), and ODE
learning curves whose plateau behaviour docs/theory.md §5 states.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback
from hypothesis import given, settings
from hypothesis import strategies as st

import scalex
from scalex import analysis
from scalex.analysis import estimators as est
from scalex.model.spectrum import power_law


# --------------------------------------------------------------------------- helpers
class raise_if_dask_computes(Callback):  # named like cf_xarray's helper
    """A dask callback that fails the test if anything is computed inside the block."""

    def _start(self, dsk):
        raise RuntimeError("dask computed inside a block that must stay lazy")


def synthetic_plateau(
    *, start: float, end: float, height: float, drop: float = 1.5, tail: str = "power",
    tail_slope: float = 1.0, u0: float = -2.0, tail_decades: float = 1.5, ppd: int = 100,
    noise: float = 0.0, rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ε = h (start/α)^drop before ``start``, h on [start, end], then a tail after ``end``.

    tail "power": h (α/end)^(−tail_slope); "exp": h exp(−c (α − end)) with c·end =
    tail_slope (the local exponent just after the kink). Multiplicative log-normal noise.
    """
    alpha = np.logspace(u0, np.log10(end) + tail_decades, int((np.log10(end) + tail_decades
                                                               - u0) * ppd) + 1)
    eg = np.full_like(alpha, height)
    before = alpha < start
    eg[before] = height * (start / alpha[before]) ** drop
    after = alpha > end
    if tail == "power":
        eg[after] = height * (alpha[after] / end) ** (-tail_slope)
    else:
        c = tail_slope / end
        eg[after] = height * np.exp(-c * (alpha[after] - end))
    if noise:
        eg = eg * np.exp(noise * rng.standard_normal(alpha.size))
    return alpha, eg


def linear_closed_form(L: int, beta: float, eta: float, alpha: np.ndarray) -> np.ndarray:
    """Small-η linear theory ε_g ≈ (1/2L) Σ_τ λ_τ exp(−2ηλ_τ α) (docs/theory.md §4, σ_J → 0)."""
    lam = power_law(L, beta).eigenvalues
    eg = np.zeros_like(alpha)
    for chunk in np.array_split(lam, max(1, L // 2000)):
        eg += np.exp(-2 * eta * np.outer(alpha, chunk)) @ chunk
    return eg / (2 * L)


def ode_curve(L: int, seed: int = 0, K: int = 2, n: int = 300, alpha_max: float = 1e4):
    setup = scalex.Setup(K=K, M=K, N=1024, L=L, beta=1.0, eta=0.1, sigma_J=0.01)
    alpha = np.geomspace(1e-2, alpha_max, n)
    return scalex.solve_ode(setup, alpha, seed=seed, rtol=1e-8, atol=1e-11)


@pytest.fixture(scope="module")
def ode_by_L():
    return {L: ode_curve(L) for L in (1, 2, 4, 8, 16)}


@pytest.fixture(scope="module")
def seeds_dataset():
    """L = 2 ODE curves for three seeds, stacked along ``seed`` (full schema, with r)."""
    parts = [ode_curve(2, seed=s, n=200).expand_dims(seed=[s]) for s in range(3)]
    ds = xr.concat([p.drop_vars("status") for p in parts], dim="seed", data_vars="all",
                   coords="minimal", compat="override", combine_attrs="override")
    assert np.isfinite(ds.t).all()
    return ds


# --------------------------------------------------------------------------- local exponent
@given(gamma=st.floats(0.1, 3.0), grid=st.sampled_from(["log", "linear", "random"]),
       window=st.floats(0.1, 0.5))
def test_local_exponent_of_power_law_is_exact_on_any_grid(gamma, grid, window):
    rng = np.random.default_rng(1)
    if grid == "log":
        alpha = np.geomspace(1.0, 1e4, 400)
    elif grid == "linear":
        alpha = np.linspace(1.0, 1e4, 4000)
    else:
        alpha = np.sort(10 ** rng.uniform(0, 4, 600))
    # floor=0: at γ = 3 the curve spans 12 decades, below the default floor 1e-10 · max
    g = est.local_slope(alpha, 3.0 * alpha**-gamma, window, floor=0.0)
    ok = np.isfinite(g)
    assert ok.sum() > 0.8 * alpha.size
    np.testing.assert_allclose(-g[ok], gamma, atol=1e-9)


def test_local_exponent_of_exponential_is_c_alpha():
    """ε = e^{−cα}: −d ln ε/d ln α = cα exactly; the window regression bias is O(h²)."""
    c = 0.01
    alpha = np.geomspace(10, 2000, 500)  # ε stays above the default floor 1e-10 · max ε
    da = xr.DataArray(np.exp(-c * alpha), dims="alpha", coords={"alpha": alpha})
    g = analysis.local_exponent(da, window=0.2)
    inner = (alpha > 13) & (alpha < 1500)
    np.testing.assert_allclose(g.values[inner], c * alpha[inner], rtol=0.01)
    assert g.attrs["window_decades"] == 0.2


def test_local_exponent_skips_invalid_points():
    alpha = np.concatenate([[0.0], np.geomspace(0.1, 100, 200)])
    eg = np.concatenate([[1.0], alpha[1:] ** -0.5])  # α = 0 cannot enter a log-log slope
    eg[50] = -1e-14  # round-off below zero
    eg[60] = np.nan
    g = est.local_slope(alpha, eg)
    assert np.isnan(g[[0, 50, 60]]).all()
    np.testing.assert_allclose(g[100:150], -0.5, atol=1e-9)


def test_local_exponent_keeps_dims_and_order(ode_by_L):
    da = xr.concat([ode_by_L[L].eg for L in (1, 2)], dim=xr.DataArray([1, 2], dims="L"))
    da = da.transpose("alpha", "L")  # alpha first: functions must use names, not positions
    g = analysis.local_exponent(da)
    assert g.dims == ("alpha", "L")
    ref = -est.local_slope(da.alpha.values, da.sel(L=2).values, 0.2)
    np.testing.assert_allclose(g.sel(L=2).values, ref)


# --------------------------------------------------------------------------- plateau
@given(
    u_start=st.floats(0.5, 1.5), width=st.floats(0.6, 2.0), height=st.floats(1e-3, 0.1),
    drop=st.floats(0.5, 2.0), tail=st.sampled_from(["power", "exp"]),
    tail_slope=st.floats(0.7, 3.0), noise=st.sampled_from([0.0, 0.002, 0.01]),
)
def test_plateau_recovers_synthetic_plateau(u_start, width, height, drop, tail, tail_slope,
                                            noise):
    rng = np.random.default_rng(7)
    start, end = 10**u_start, 10 ** (u_start + width)
    alpha, eg = synthetic_plateau(start=start, end=end, height=height, drop=drop, tail=tail,
                                  tail_slope=tail_slope, noise=noise, rng=rng)
    window = 0.2
    out = est.plateau_1d(alpha, eg, window=window)
    height_est, s, e, length, found = out[:5]
    assert found == 1
    # outside ±window/2 of a kink the regression slope is exact, so the flat run ends there
    tol = window / 2 + 2 / 100
    assert abs(np.log10(s / start)) <= tol
    assert abs(np.log10(e / end)) <= tol
    assert length == pytest.approx(e - s)
    assert height_est == pytest.approx(height, rel=0.002 + 3 * noise)


def test_plateau_dataset_api_and_nan_without_plateau():
    alpha = np.geomspace(0.01, 1e4, 500)
    with_plateau = synthetic_plateau(start=10, end=1000, height=0.01, u0=-2,
                                     tail_decades=1.0, ppd=500 / 6)[1]
    with_plateau = np.interp(np.log(alpha), np.log(np.geomspace(0.01, 1e4, with_plateau.size)),
                             with_plateau)
    curves = np.stack([with_plateau, 0.3 * alpha**-0.7, np.full_like(alpha, np.nan),
                       np.full_like(alpha, 0.2)])
    da = xr.DataArray(curves, dims=("case", "alpha"),
                      coords={"case": ["plateau", "power", "nan", "constant"], "alpha": alpha})
    out = analysis.plateau(da)
    assert out["has_plateau"].values.tolist() == [True, False, False, False]
    for var in ("plateau_height", "plateau_start", "plateau_end", "plateau_length"):
        assert np.isnan(out[var].values[1:]).all()
        assert out[var].attrs["units"] == "1"
    assert out.attrs["plateau_flatness"] == 0.1
    assert out.attrs["plateau_min_decades"] == 0.25
    assert np.isnan(out["specialisation_alpha"]).all()  # a bare DataArray has no overlaps


def test_plateau_that_never_ends_is_not_a_plateau():
    """A curve that saturates (ε_g flat up to the end) fails the 'left again' criterion."""
    alpha, eg = synthetic_plateau(start=10, end=1e4, height=0.01, tail_decades=0.0)
    assert est.plateau_1d(alpha, eg)[4] == 0
    # ... and the initial flat part before the drop is never taken for the plateau
    eg2 = 0.1 / (1 + alpha / 5.0) ** 1.0 + 0.0  # flat at 0.1, then a power law: no plateau
    assert est.plateau_1d(alpha, eg2)[4] == 0


def test_baseline_reveals_plateau_of_a_saturating_curve():
    """ε_g = ε_∞ + (plateau curve): only the excess over ε_∞ shows the plateau's exit."""
    alpha, excess = synthetic_plateau(start=10, end=300, height=0.01, tail_decades=2.0)
    offsets = xr.DataArray([0.02, 0.05], dims="member")
    da = xr.DataArray(excess, dims="alpha", coords={"alpha": alpha}) + offsets
    assert not analysis.plateau(da).has_plateau.any()
    out = analysis.plateau(da, baseline=offsets)
    assert out.has_plateau.all()
    np.testing.assert_allclose(out.plateau_height, 0.01 + offsets, rtol=1e-6)
    assert out.attrs["plateau_baseline"] == "per member"
    fit = analysis.fit_power_law(da.isel(member=0), 3e3, 3e4, baseline=0.02)
    assert float(fit.exponent) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="baseline"):
        analysis.plateau(da, baseline=da)


@pytest.mark.parametrize("bad", [np.array([]), np.array([1.0]), np.array([np.nan, np.nan])])
def test_plateau_kernels_never_raise_on_degenerate_input(bad):
    alpha = np.arange(1, bad.size + 1, dtype=float)
    out = est.plateau_1d(alpha, bad)
    assert out[4] == 0 and np.isnan(out[0])
    crossing = est.crossing_alpha(alpha, bad, 0.5)
    assert np.isnan(crossing) if not np.isfinite(bad).any() else crossing == alpha[0]
    assert est.fit_power_law_1d(alpha, bad)[-1] != est.OK
    assert est.convergence_1d(alpha, bad)[-1] != est.OK


def test_ode_plateau_shortens_with_L_and_vanishes(ode_by_L):
    """docs/theory.md §5 / Fig. 1: K = M = 2, η = 0.1, β = 1, σ_J = 0.01, N = 1024."""
    res = {L: analysis.plateau(ds) for L, ds in ode_by_L.items()}
    found = {L: bool(r.has_plateau) for L, r in res.items()}
    assert found == {1: True, 2: True, 4: True, 8: False, 16: False}
    lengths = [float(res[L].plateau_length) for L in (1, 2, 4)]
    assert lengths[0] > lengths[1] > lengths[2] > 0
    for L in (1, 2, 4):
        r = res[L]
        # the plateau is the symmetric phase: overlaps equal across students on it, and the
        # students specialise only after it ends
        assert float(r.plateau_spread) < 0.05
        assert float(r.plateau_end) < float(r.specialisation_alpha) < 2 * float(r.plateau_end)
        # its height: the symmetric fixed point's ε_g* ≈ 0.0059, set by the N → ∞ teacher
        assert float(r.plateau_height) == pytest.approx(0.0059, rel=0.05)
    # without a plateau the students still specialise, earlier
    assert np.isfinite(float(res[16].specialisation_alpha))


def test_specialisation_spread_against_direct_computation(ode_by_L):
    ds = ode_by_L[2]
    spread = analysis.specialisation_spread(ds)
    lam = ds.eigenvalue.values
    R = np.einsum("g,agin->ain", lam, ds.r.values)
    Q = np.einsum("g,agii->ai", lam, ds.q.values)
    T = np.einsum("g,gnn->n", lam, ds.t.values)
    rho = R / np.sqrt(Q[:, :, None] * T[None, None, :])
    direct = np.max(rho.max(axis=1) - rho.min(axis=1), axis=-1)
    np.testing.assert_allclose(spread.values, direct, rtol=1e-12)
    assert spread.values[-1] > 0.9  # specialised: R_in → δ


# --------------------------------------------------------------------------- power-law fits
@given(gamma=st.floats(0.2, 2.0), pref=st.floats(0.01, 10.0), noise=st.floats(0.0, 0.02))
def test_fit_power_law_given_window(gamma, pref, noise):
    rng = np.random.default_rng(3)
    alpha = np.geomspace(1, 1e4, 300)
    eg = pref * alpha**-gamma * np.exp(noise * rng.standard_normal(alpha.size))
    da = xr.DataArray(eg, dims="alpha", coords={"alpha": alpha})
    out = analysis.fit_power_law(da, 10, 1000)
    assert str(out.reason.values) == "ok"
    se = float(out.exponent_stderr)
    assert abs(float(out.exponent) - gamma) <= 5 * se + 1e-9
    assert float(out.prefactor) == pytest.approx(pref, rel=10 * noise + 1e-9)
    assert (float(out.alpha_min), float(out.alpha_max)) == (10, 1000)
    expected_n = int(np.sum((alpha >= 10) & (alpha <= 1000)))
    assert int(out.n_points) == expected_n
    if noise == 0:
        assert se < 1e-10


@given(tail=st.floats(0.3, 2.0), start=st.floats(0.5, 1.5), drop=st.floats(0.2, 2.0))
def test_fit_power_law_auto_window_finds_the_tail(tail, start, drop):
    """A drop, a plateau and a 2.5-decade power-law tail: the widest window of constant
    local exponent is the tail (the plateau, exponent 0, is excluded by min_exponent)."""
    alpha, eg = synthetic_plateau(start=10**start, end=10 ** (start + 1), height=0.01,
                                  drop=drop, u0=start - 1, tail_slope=tail, tail_decades=2.5)
    out = est.fit_power_law_1d(alpha, eg, tol=0.01)
    assert out[-1] == est.OK
    assert out[0] == pytest.approx(tail, abs=1e-6)
    assert out[4] >= 10 ** (start + 1)  # window starts after the plateau
    assert np.log10(out[5] / out[4]) >= 2.0


@settings(max_examples=6)
@given(beta=st.floats(0.7, 3.0))
def test_fit_power_law_recovers_linear_theory_exponent(beta):
    """Small-η linear theory: ε_g ∝ α^(−β/(1+β)) in its scaling window (docs/theory.md §4)."""
    alpha = np.geomspace(1e-2, 1e12, 600)
    eg = linear_closed_form(20000, beta, 0.05, alpha)
    out = analysis.fit_power_law(xr.DataArray(eg, dims="alpha", coords={"alpha": alpha}),
                                 tol=0.005)
    assert str(out.reason.values) == "ok"
    assert float(out.exponent) == pytest.approx(beta / (1 + beta), abs=0.01)


def test_fit_power_law_failures_give_nan_and_reason():
    alpha = np.geomspace(1, 1e3, 100)
    curves = np.stack([np.full(100, np.nan), np.exp(-alpha), np.full(100, 0.1), alpha**-1.0])
    da = xr.DataArray(curves, dims=("case", "alpha"), coords={"alpha": alpha})
    auto = analysis.fit_power_law(da)
    reasons = auto.reason.values.tolist()
    assert reasons[0].startswith("no valid points")
    assert reasons[2].startswith("no window of constant local exponent")
    assert reasons[3] == "ok"
    assert np.isnan(auto.exponent.values[:3]).all()
    outside = analysis.fit_power_law(da.isel(case=3), 1e5, 1e6)
    assert str(outside.reason.values) == "fit window lies outside the data"
    few = analysis.fit_power_law(da.isel(case=3), 10.0, 10.5)
    assert str(few.reason.values).startswith("too few valid points")
    assert np.isnan(float(few.exponent))


def test_bootstrap_over_seeds_covers_true_exponent():
    rng = np.random.default_rng(11)
    alpha = np.geomspace(1, 1e3, 200)
    gamma = 0.8
    seeds = 0.5 * alpha**-gamma * np.exp(0.05 * rng.standard_normal((12, alpha.size))
                                         + 0.1 * rng.standard_normal((12, 1)) * np.log(alpha)
                                         / np.log(1e3))
    da = xr.DataArray(seeds, dims=("seed", "alpha"), coords={"seed": np.arange(12),
                                                              "alpha": alpha})
    out = analysis.fit_power_law(da, 1, 1e3, bootstrap=300)
    assert "seed" not in out.dims
    lo, hi = float(out.exponent_ci_low), float(out.exponent_ci_high)
    assert lo < gamma < hi
    assert lo < float(out.exponent) < hi
    # independent route: the seed-mean exponent scatters like (per-seed std)/√S
    per_seed = analysis.fit_power_law(da, 1, 1e3, seed_mean=False)
    expected = float(per_seed.exponent.std(ddof=1)) / np.sqrt(12)
    assert float(out.exponent_bootstrap_std) == pytest.approx(expected, rel=0.4)
    # the same seed gives the same interval; seed_mean=False fits every seed
    again = analysis.fit_power_law(da, 1, 1e3, bootstrap=300)
    assert float(again.exponent_ci_low) == lo
    assert per_seed.exponent.dims == ("seed",)
    assert per_seed.exponent.std() > 0.01


# --------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("rate", [1e-3, 1e-2, 0.1])
def test_convergence_exponential(rate):
    alpha = np.geomspace(1, 40 / rate, 400)
    out = est.convergence_1d(alpha, 2.0 * np.exp(-rate * alpha))
    assert est.CONVERGENCE_CLASSES[int(out[0])] == "exponential"
    assert out[1] == pytest.approx(rate, rel=1e-6)


@given(gamma=st.floats(0.2, 3.0), noise=st.sampled_from([0.0, 0.01]))
def test_convergence_power_law(gamma, noise):
    rng = np.random.default_rng(5)
    alpha = np.geomspace(1, 1e5, 500)
    eg = alpha**-gamma * np.exp(noise * rng.standard_normal(alpha.size))
    out = est.convergence_1d(alpha, eg)
    assert est.CONVERGENCE_CLASSES[int(out[0])] == "power_law"
    assert out[2] == pytest.approx(gamma, abs=0.02)


def test_convergence_on_ode_and_linear_theory(ode_by_L):
    ode = analysis.convergence(ode_by_L[1])
    assert str(ode.convergence.values) == "exponential"  # L = 1: exponential (docs/theory.md §5)
    assert float(ode.convergence_rate) > 0
    # β = 2, L = 20000: the scaling window 1/(2ηλ_1) ≪ α ≪ 1/(2ηλ_L) spans ~10 decades
    alpha = np.geomspace(1e-2, 1e6, 400)
    lin = analysis.convergence(
        xr.DataArray(linear_closed_form(20000, 2.0, 0.05, alpha), dims="alpha",
                     coords={"alpha": alpha}))
    assert str(lin.convergence.values) == "power_law"
    assert float(lin.convergence_exponent) == pytest.approx(2 / 3, abs=0.01)
    flat = analysis.convergence(xr.DataArray(np.full(400, 0.3), dims="alpha",
                                             coords={"alpha": alpha}))
    assert str(flat.convergence.values) == "undetermined"
    assert str(flat.convergence_reason.values).startswith("curve does not decay")


# --------------------------------------------------------------------------- summary, accessor
def test_summary_one_row_per_member(seeds_dataset):
    s = analysis.summary(seeds_dataset)
    assert set(s.dims) == {"seed"}
    for name in ("plateau_length", "has_plateau", "specialisation_alpha", "exponent",
                 "fit_reason", "fit_alpha_min", "convergence", "convergence_rate"):
        assert s[name].dims == ("seed",), name
    assert s.has_plateau.all()
    assert np.isfinite(s.specialisation_alpha).all()
    df = s.to_dataframe()
    assert len(df) == 3
    mean = analysis.summary(seeds_dataset, seed_mean=True)
    assert "seed" not in mean.dims


def test_accessor_delegates_on_dataset_and_dataarray(seeds_dataset):
    ds = seeds_dataset.isel(seed=0)
    a = ds.scalex.plateau()
    b = analysis.plateau(ds)
    xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(ds.eg.scalex.local_exponent(), analysis.local_exponent(ds))
    assert "exponent" in ds.eg.scalex.fit_power_law(20, 200)
    assert "convergence" in ds.scalex.convergence()
    assert "plateau_length" in ds.scalex.summary()


def test_invalid_parameters_name_themselves(seeds_dataset):
    ds = seeds_dataset
    with pytest.raises(ValueError, match="flatness"):
        analysis.plateau(ds, flatness=0)
    with pytest.raises(ValueError, match="contrast"):
        analysis.plateau(ds, contrast=1.0)
    with pytest.raises(ValueError, match="window"):
        analysis.local_exponent(ds, window=-1)
    with pytest.raises(ValueError, match="bootstrap"):
        analysis.fit_power_law(ds, bootstrap=-3)
    with pytest.raises(ValueError, match="bootstrap"):
        analysis.fit_power_law(ds.isel(seed=0), bootstrap=10)
    with pytest.raises(ValueError, match="alpha_max"):
        analysis.fit_power_law(ds, 10, 5)
    with pytest.raises(ValueError, match="dim"):
        analysis.plateau(ds.eg.rename(alpha="time"))
    with pytest.raises(ValueError, match="'eg'"):
        analysis.plateau(ds.drop_vars("eg"))
    with pytest.raises(ValueError, match="power_law_ratio"):
        analysis.convergence(ds, power_law_ratio=0.9)


# --------------------------------------------------------------------------- dask
def _lazy(ds: xr.Dataset) -> xr.Dataset:
    return ds.chunk({"seed": 1, "alpha": 50})


@pytest.mark.parametrize("func, kwargs", [
    (analysis.plateau, {}),
    (analysis.local_exponent, {}),
    (analysis.fit_power_law, {"bootstrap": 20}),
    (analysis.fit_power_law, {"seed_mean": False}),
    (analysis.convergence, {}),
    (analysis.summary, {}),
])
def test_lazy_on_dask_and_equal_to_numpy(seeds_dataset, func, kwargs):
    lazy = _lazy(seeds_dataset)
    with raise_if_dask_computes():
        out = func(lazy, **kwargs)
    variables = out.data_vars.values() if isinstance(out, xr.Dataset) else [out]
    assert all(isinstance(v.data, dsa.Array) for v in variables)
    with dask.config.set(scheduler="synchronous"):
        computed = out.compute()
    ref = func(seeds_dataset, **kwargs)
    xr.testing.assert_allclose(computed, ref)


def test_raise_if_dask_computes_can_fail(seeds_dataset):
    """The guard itself must catch a compute, or the laziness tests prove nothing."""
    with pytest.raises(RuntimeError, match="lazy"), raise_if_dask_computes():
        _lazy(seeds_dataset).eg.mean().compute()
