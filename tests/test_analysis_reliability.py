"""Reliability of the plateau and power-law measurements (docs/analysis.md (A2), (A4)–(A7)).

* Missing points: one NaN inside a plateau must not change its length, and the result says
  why it is degraded (``plateau_reason``, ``plateau_n_missing``).
* Grid independence: the plateau ends are interpolated in log α, not snapped to the grid, and
  come with an uncertainty from the grid spacing.
* A finite-L curve with a power-law window and an exponential tail reports both: the exponent
  with its fit window, and the late-time class.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import scalex
from scalex import analysis
from scalex.analysis import estimators as est
from scalex.experiments.runner import display_table, result_table

FIG1 = dict(K=2, M=2, N=1024, beta=1.0, eta=0.1, sigma_J=0.01)


def _ode(L: int, n: int, top: float = 1e4) -> xr.Dataset:
    setup = scalex.Setup(L=L, **FIG1)
    return scalex.solve_ode(setup, np.geomspace(1e-2, top, n), seed=0, rtol=1e-8, atol=1e-11)


@pytest.fixture(scope="module")
def ode_grids():
    """K = M = 2, L = 4 (Fig. 1 settings) on a coarse, a medium and a fine α grid."""
    return {n: _ode(4, n) for n in (61, 121, 4000)}


def _values(p: xr.Dataset) -> dict[str, float]:
    return {k: float(p[k]) for k in ("plateau_start", "plateau_end", "plateau_length",
                                     "plateau_start_err", "plateau_end_err",
                                     "plateau_length_err")}


# --------------------------------------------------------------------------- missing points
@pytest.mark.parametrize("n", [121, 4000])
def test_one_nan_inside_the_plateau_does_not_change_it(ode_grids, n):
    """Before: one NaN at α ≈ 500 cut the L = 1 plateau from 1412 to 390, silently."""
    ds = ode_grids[n]
    clean = analysis.plateau(ds)
    assert str(clean.plateau_reason.values) == "ok" and int(clean.plateau_n_missing) == 0
    holed = ds.copy(deep=True)
    i = int(np.argmin(np.abs(ds.alpha.values - 0.5 * float(clean.plateau_end))))
    holed["eg"][i] = np.nan
    p = analysis.plateau(holed)
    a, b = _values(clean), _values(p)
    assert bool(p.has_plateau)
    assert abs(b["plateau_length"] - a["plateau_length"]) <= a["plateau_length_err"] + \
        b["plateau_length_err"]
    assert b["plateau_length"] == pytest.approx(a["plateau_length"], rel=0.02)
    assert int(p.plateau_n_missing) == 1
    assert str(p.plateau_reason.values).startswith("ok; isolated missing points")


def test_gap_of_missing_points_is_reported_as_degraded(ode_grids):
    ds = ode_grids[4000].copy(deep=True)
    clean = analysis.plateau(ode_grids[4000])
    mid = float(clean.plateau_start * clean.plateau_end) ** 0.5
    i = int(np.argmin(np.abs(ds.alpha.values - mid)))
    ds["eg"][i:i + 5] = np.nan
    p = analysis.plateau(ds)
    assert bool(p.has_plateau) and int(p.plateau_n_missing) == 5
    assert str(p.plateau_reason.values).startswith("degraded: a gap of several missing")
    assert float(p.plateau_length) == pytest.approx(float(clean.plateau_length), rel=0.02)


def test_reason_says_why_there_is_no_plateau():
    alpha = np.geomspace(1, 1e3, 200)
    curves = np.stack([np.full(200, np.nan), alpha**-0.7, np.full(200, 0.2)])
    p = analysis.plateau(xr.DataArray(curves, dims=("case", "alpha"),
                                      coords={"alpha": alpha}))
    reasons = p.plateau_reason.values.tolist()
    assert reasons[0].startswith("no valid points")
    assert reasons[1].startswith("no plateau") and reasons[2].startswith("no plateau")
    assert np.isnan(p.plateau_length_err).all()


# --------------------------------------------------------------------------- grid
def test_plateau_length_does_not_depend_on_the_grid(ode_grids):
    """Before: ends snapped to grid points (61 points: no plateau; 121: 417 vs 446 fine).

    After: two grids of different density agree within their reported uncertainties, and
    both lie within 3 % of the fine-grid (4000 points) reference."""
    ref = _values(analysis.plateau(ode_grids[4000]))
    coarse = _values(analysis.plateau(ode_grids[61]))
    medium = _values(analysis.plateau(ode_grids[121]))
    for key in ("plateau_start", "plateau_end", "plateau_length"):
        assert abs(coarse[key] - medium[key]) <= coarse[f"{key}_err"] + medium[f"{key}_err"]
        for got in (coarse, medium):
            assert got[key] == pytest.approx(ref[key], rel=0.03), key
            assert abs(got[key] - ref[key]) <= got[f"{key}_err"] + ref[f"{key}_err"], key
    assert 0 < ref["plateau_length_err"] < medium["plateau_length_err"] \
        < coarse["plateau_length_err"] < 0.15 * coarse["plateau_length"]


def test_plateau_ends_are_interpolated_between_grid_points(ode_grids):
    ds = ode_grids[121]
    p = analysis.plateau(ds)
    alpha = ds.alpha.values
    for key in ("plateau_start", "plateau_end"):
        assert np.min(np.abs(alpha - float(p[key]))) > 1e-6 * float(p[key])


def test_table_shows_length_with_error_and_exponent_with_window():
    """`scalex run`/`info`/report table: "407.1 ± 3.2", exponent next to its fit window."""
    summary = xr.Dataset(
        {"plateau_length": ("L", [407.1, np.nan]), "plateau_length_err": ("L", [3.21, np.nan]),
         "plateau_length_predicted": ("L", [413.3, np.nan]),
         "exponent": ("L", [0.412, 0.97]), "exponent_stderr": ("L", [0.003, 0.01]),
         "fit_alpha_min": ("L", [1.02, 700.0]), "fit_alpha_max": ("L", [40.3, 2800.0]),
         "convergence": ("L", ["exponential", "exponential"])},
        coords={"L": [4, 64]}, attrs={"sweep_dims": "L"})
    table = result_table(summary)
    assert {"plateau_length_err", "fit_alpha_min", "fit_alpha_max"} <= set(table.columns)
    shown = display_table(table)
    assert shown.loc[4, "plateau_length"] == "407.1 ± 3.2"
    assert shown.loc[64, "plateau_length"] == "—"
    columns = list(shown.columns)
    assert columns[columns.index("exponent") + 1] == "exponent window"
    assert shown.loc[64, "exponent window"] == "α 700–2.8e+03"
    assert shown.loc[4, "exponent"] == "0.412 ± 0.003"


# --------------------------------------------------------------------------- power law + tail
FIG2_LEFT = dict(K=1, M=1, N=128, L=128, eta=1.0, beta=1.0, sigma_J=1.0, activation="linear")
CLEAN = dict(K=1, M=1, N=512, L=512, eta=0.5, beta=2.0, sigma_J=0.01, activation="linear")


@pytest.mark.parametrize("params", [FIG2_LEFT, CLEAN], ids=["fig2_left", "beta2_L512"])
def test_finite_L_linear_theory_reports_power_law_window_and_exponential_tail(params):
    """Before: fig2_left was summarised as "exponential" with exponent NaN (no window of
    constant local exponent within ±0.02). After: the power-law exponent, its window and how
    constant the local exponent is there, and the late-time class, side by side."""
    setup = scalex.Setup(**params)
    alpha = np.concatenate([[0.0], np.geomspace(1e-3, 1e6, 181)])
    ds = scalex.linear_theory(setup, alpha, seed=0)
    s = analysis.summary(ds).squeeze()
    assert str(s.fit_reason.values).startswith("ok")
    gamma, lo, hi = float(s.exponent), float(s.fit_alpha_min), float(s.fit_alpha_max)
    assert 0.3 < gamma < 0.7
    assert np.log10(hi / lo) >= 0.5  # min_decades
    assert float(s.exponent_spread) <= 0.3 * gamma
    # the window's exponent is the local exponent there: an independent route
    g = analysis.local_exponent(ds).squeeze()
    inside = g.where((g.alpha >= lo) & (g.alpha <= hi), drop=True)
    assert float(inside.min()) - 1e-9 <= gamma <= float(inside.max()) + 1e-9
    # ... and the late-time decay of the finite-L curve is exponential, after the window
    assert str(s.convergence.values) == "exponential"
    assert hi < float(s.convergence_alpha_min)


def test_fit_window_search_bridges_missing_points():
    alpha = np.geomspace(1, 1e4, 400)
    eg = 2.0 * alpha**-0.6
    eg[200] = np.nan
    out = est.fit_power_law_1d(alpha, eg)
    assert out[-1] == est.OK
    assert np.log10(out[5] / out[4]) > 3.5  # one window over the NaN, not two halves
