"""Tests of scalex.plot: element structure (not pixels) and the written files.

The datasets are synthetic (`scalex.schema.make_dataset` with smooth made-up overlaps), shaped
like the outputs of the ODE (no seed), the simulation (a ``seed`` dim), the linear theory
(``eg`` and ``e`` only) and sweeps of them (``L``/``K``/``beta`` dims).
"""

from __future__ import annotations

import json
import re
import struct
import warnings

import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalex.model.setup import Setup
from scalex.schema import make_dataset
from scalex.viz import plots as plot
from scalex.viz import style as viz_style

ALPHA = np.concatenate([[0.0], np.geomspace(0.1, 1e3, 60)])


# ----------------------------------------------------------------------------- synthetic data
def _overlaps(setup: Setup, alpha: np.ndarray, escape: float, jitter: float = 0.0):
    """Made-up per-group overlaps: a symmetric plateau that specialises at α ≈ ``escape``."""
    K, M, L = setup.K, setup.M, setup.L
    t = np.stack([np.eye(M) / L for _ in range(L)])
    a = alpha[:, None, None, None]
    lam = setup.spectrum.eigenvalues[None, :, None, None]
    sym = np.full((K, M), 1.0 / M) / L
    spec = np.eye(K, M) / L
    onset = 1 - np.exp(-a * lam / 2.0)  # group τ learns on the time scale 1/λ_τ
    switch = 1.0 / (1.0 + np.exp(-3 * (np.log(a + 1e-12) - np.log(escape))))
    r = onset * ((1 - switch) * 0.6 * sym + switch * spec) * (1 + jitter)
    q = np.einsum("agin,agjn->agij", r, r) * L + 1e-4 / L * np.eye(K)
    return q, r, t


def ode_like(K: int = 2, L: int = 4, eta: float = 0.1, beta: float = 1.0) -> xr.Dataset:
    setup = Setup(K=K, M=K, N=64, L=L, eta=eta, beta=beta)
    q, r, t = _overlaps(setup, ALPHA, escape=30.0 / L)
    return make_dataset(setup, ALPHA, q, r, t, method="ode")


def sim_like(K: int = 2, L: int = 4, seeds: int = 3) -> xr.Dataset:
    setup = Setup(K=K, M=K, N=64, L=L)
    runs = []
    for s in range(seeds):
        q, r, t = _overlaps(setup, ALPHA, escape=30.0 / L * (1 + 0.2 * s), jitter=0.02 * s)
        runs.append(make_dataset(setup, ALPHA, q, r, t, method="sgd"))  # as scalex.simulate
    return xr.concat(runs, dim=xr.DataArray(np.arange(seeds), dims="seed", name="seed"),
                     data_vars="all", coords="minimal", compat="override",
                     combine_attrs="override")


def linear_like(L: int = 8, beta: float = 1.0) -> xr.Dataset:
    """eg and e(alpha, group) of the exact linear solution, no q/r (docs/theory.md §4)."""
    setup = Setup(K=1, M=1, N=64, L=L, beta=beta, activation="linear", eta=0.05)
    lam = setup.spectrum.eigenvalues
    e = np.exp(-2 * setup.eta * np.outer(ALPHA, lam)) / L
    eg = 0.5 * e @ lam
    ds = xr.Dataset(
        {"eg": ("alpha", eg, {"long_name": "generalisation error ε_g", "units": "1"}),
         "e": (("alpha", "group"), e, {"long_name": "mode error e_τ", "units": "1"})},
        coords={"alpha": ("alpha", ALPHA, {"long_name": "training time α", "units": "1"}),
                "group": np.arange(1, L + 1), "eigenvalue": ("group", lam)},
    )
    ds.attrs = {**setup.to_attrs(), "method": "linear"}
    return ds


def sweep_of(builder, dim: str, values, **kwargs) -> xr.Dataset:
    parts = [builder(**{dim: v}, **kwargs) for v in values]
    out = xr.concat(parts, dim=xr.DataArray(list(values), dims=dim, name=dim),
                    data_vars="all", coords="different", compat="equals", join="outer",
                    combine_attrs="drop_conflicts")
    out[dim].attrs.update(long_name={"L": "number of eigenvalue groups L",
                                     "K": "student hidden units K"}.get(dim, dim), units="1")
    out.attrs.update(parts[0].attrs)
    out.attrs["sweep_dims"] = dim
    return out


def sweep_LK(seeds: int = 0) -> xr.Dataset:
    """A two-dim sweep over L (overlay) and beta (slider), optionally with seeds."""
    def row(beta: float) -> xr.Dataset:
        if seeds:
            return sweep_of(lambda L: sim_like(L=L, seeds=seeds), "L", [1, 2, 4])
        return sweep_of(lambda L: ode_like(L=L, beta=beta), "L", [1, 2, 4])

    out = xr.concat([row(0.5), row(1.0)],
                    dim=xr.DataArray([0.5, 1.0], dims="beta", name="beta"),
                    data_vars="all", coords="different", compat="equals", join="outer",
                    combine_attrs="override")
    out.attrs["sweep_dims"] = "L beta"
    return out


def _plateau(ds: xr.Dataset, start: float = 2.0, end: float = 20.0) -> xr.Dataset:
    """A plateau Dataset shaped like scalex.analysis.plateau output (no seed dim)."""
    dims = [d for d in ds["eg"].dims if d != "alpha"]
    shape = [ds.sizes[d] for d in dims]
    coords = {d: ds[d].values for d in dims}
    return xr.Dataset(
        {"plateau_start": (dims, np.full(shape, start)),
         "plateau_end": (dims, np.full(shape, end)),
         "plateau_length": (dims, np.full(shape, end - start)),
         "has_plateau": (dims, np.ones(shape, bool))},
        coords=coords,
    )


# ----------------------------------------------------------------------------- helpers
def _elements(obj, kind):
    """Every element of exactly type ``kind`` (hv.Area subclasses hv.Curve, for one)."""
    return [el for el in obj.traverse(lambda x: x, [kind]) if type(el) is kind]


def _curves(obj):
    return _elements(obj, hv.Curve)


# ----------------------------------------------------------------------------- learning curves
def test_learning_curves_ode_single_curve_labels_and_log_axes():
    ds = ode_like()
    obj = plot.learning_curves(ds)
    assert isinstance(obj, hv.Overlay)
    curves = _curves(obj)
    assert len(curves) == 1
    curve = curves[0]
    assert curve.kdims[0].name == "alpha"
    assert curve.kdims[0].label == ds["alpha"].attrs["long_name"]
    assert curve.vdims[0].label == ds["eg"].attrs["long_name"]
    # α = 0 cannot sit on a log axis: dropped, every other point kept
    np.testing.assert_allclose(curve.dimension_values("alpha"), ALPHA[1:])
    np.testing.assert_allclose(curve.dimension_values("eg"), ds["eg"].values[1:])
    opts = hv.Store.lookup_options("bokeh", obj, "plot").kwargs
    assert opts["logx"] and opts["logy"]
    assert "K=2" in opts["title"] and "L=4" in opts["title"] and "ODE" in opts["title"]
    assert not _elements(obj, hv.Area)  # no seeds, no band


def test_learning_curves_units_enter_the_label():
    ds = ode_like()
    ds["alpha"].attrs["units"] = "steps/N"
    curve = _curves(plot.learning_curves(ds))[0]
    assert curve.kdims[0].unit == "steps/N"
    assert "steps/N" in curve.kdims[0].pprint_label
    # dimensionless "1" is not printed
    assert curve.vdims[0].unit is None


@pytest.mark.parametrize("band", ["minmax", "std"])
def test_learning_curves_seed_mean_and_band(band):
    ds = sim_like(seeds=4)
    obj = plot.learning_curves(ds, band=band)
    (curve,) = _curves(obj)
    (area,) = _elements(obj, hv.Area)
    eg = ds["eg"].values  # (seed, alpha)
    mean = eg.mean(0)
    np.testing.assert_allclose(curve.dimension_values(1), mean[1:])
    lo, hi = (eg.min(0), eg.max(0)) if band == "minmax" else (mean - eg.std(0), mean + eg.std(0))
    keep = lo > 0
    keep[0] = False
    np.testing.assert_allclose(area.dimension_values("eg"), lo[keep])
    np.testing.assert_allclose(area.dimension_values("eg_upper"), hi[keep])
    assert "4 seeds" in curve.label


def test_learning_curves_band_none_and_bad_band():
    ds = sim_like()
    assert not _elements(plot.learning_curves(ds, band=None), hv.Area)
    with pytest.raises(ValueError, match="band"):
        plot.learning_curves(ds, band="iqr")


def test_learning_curves_over_seed_draws_every_seed():
    ds = sim_like(seeds=3)
    curves = _curves(plot.learning_curves(ds, over="seed"))
    assert [c.label for c in curves] == ["seed=0", "seed=1", "seed=2"]


def test_learning_curves_sweep_overlay_and_colour_map():
    ds = sweep_of(ode_like, "L", [1, 2, 4, 8])
    obj = plot.learning_curves(ds)
    assert isinstance(obj, hv.Overlay)
    curves = _curves(obj)
    assert [c.label for c in curves] == ["L=1", "L=2", "L=4", "L=8"]
    colors = [hv.Store.lookup_options("bokeh", c, "style").kwargs["color"] for c in curves]
    assert len(set(colors)) == 4
    assert colors == viz_style.palette(4, "viridis")
    for c, L in zip(curves, [1, 2, 4, 8]):
        np.testing.assert_allclose(c.dimension_values(1), ds["eg"].sel(L=L).values[1:])
    # the swept L is not in the title, the fixed K is
    title = hv.Store.lookup_options("bokeh", obj, "plot").kwargs["title"]
    assert "L=" not in title and "K=2" in title


def test_learning_curves_two_sweep_dims_make_a_holomap():
    ds = sweep_LK()
    obj = plot.learning_curves(ds)
    assert isinstance(obj, hv.HoloMap)
    assert [d.name for d in obj.kdims] == ["beta"]
    assert sorted(obj.keys()) == [(0.5,), (1.0,)]
    for key in obj.keys():
        assert [c.label for c in _curves(obj[key])] == ["L=1", "L=2", "L=4"]
    swapped = plot.learning_curves(ds, over="beta")
    assert [d.name for d in swapped.kdims] == ["L"]
    assert [c.label for c in _curves(swapped[(2,)])] == ["β=0.5", "β=1"]


def test_learning_curves_sweep_with_seeds():
    ds = sweep_LK(seeds=2)
    obj = plot.learning_curves(ds)
    frame = obj[(1.0,)]
    assert len(_curves(frame)) == 3
    assert len(_elements(frame, hv.Area)) == 3


def test_learning_curves_linear_dataset():
    ds = linear_like()
    obj = plot.learning_curves(ds)
    (curve,) = _curves(obj)
    assert "linear" in hv.Store.lookup_options("bokeh", obj, "plot").kwargs["title"]
    np.testing.assert_allclose(curve.dimension_values(1), ds["eg"].values[1:])


def test_learning_curves_accepts_a_dataarray_and_accessor():
    ds = ode_like()
    assert len(_curves(plot.learning_curves(ds["eg"]))) == 1
    via_accessor = ds.scalex.plot.learning_curves()
    assert isinstance(via_accessor, hv.Overlay)


def test_learning_curves_errors_name_the_parameter():
    ds = ode_like()
    with pytest.raises(ValueError, match="variable"):
        plot.learning_curves(ds, variable="nope")
    with pytest.raises(ValueError, match="over"):
        plot.learning_curves(ds, over="L")
    with pytest.raises(ValueError, match="variable"):
        plot.learning_curves(ds, variable="t")


def test_ylim_reaches_both_backends():
    obj = plot.learning_curves(ode_like(), ylim=(1e-4, 1.0))
    for backend in ("bokeh", "matplotlib"):
        assert hv.Store.lookup_options(backend, obj, "plot").kwargs["ylim"] == (1e-4, 1.0)


def test_extend_keeps_plot_options():
    base = plot.learning_curves(ode_like(), ylim=(1e-4, 1.0))
    span = hv.VSpan(1.0, 10.0)
    bare = base * span
    assert not hv.Store.lookup_options("bokeh", bare, "plot").kwargs.get("logx")
    out = plot.extend(base, span)
    assert len(_elements(out, hv.VSpan)) == 1 and len(_curves(out)) == 1
    for backend in ("bokeh", "matplotlib"):
        options = hv.Store.lookup_options(backend, out, "plot").kwargs
        assert options["logx"] and options["logy"] and options["ylim"] == (1e-4, 1.0)
    hmap = plot.extend(plot.learning_curves(sweep_LK()), span)
    assert isinstance(hmap, hv.HoloMap)
    assert all(len(_elements(frame, hv.VSpan)) == 1 for frame in hmap)
    assert hv.Store.lookup_options("bokeh", hmap.last, "plot").kwargs["logx"]


def test_learning_curves_drops_diverged_points():
    ds = ode_like()
    eg = ds["eg"].values.copy()
    eg[30:] = np.inf
    ds["eg"].values = eg
    (curve,) = _curves(plot.learning_curves(ds))
    assert np.isfinite(curve.dimension_values(1)).all()
    assert len(curve) == 29


def test_mark_plateau_draws_span_and_lines_per_curve():
    ds = sweep_of(ode_like, "L", [1, 2])
    info = _plateau(ds, 3.0, 40.0)
    info["has_plateau"].loc[{"L": 2}] = False
    obj = plot.learning_curves(ds, mark_plateau=True, plateau=info)
    spans = _elements(obj, hv.VSpan)
    lines = _elements(obj, hv.VLine)
    assert len(spans) == 1  # L=2 has no plateau
    assert spans[0].data == [3.0, 40.0]
    assert sorted(line.data for line in lines) == [3.0, 40.0]


def test_mark_plateau_averages_seeds():
    ds = sim_like(seeds=2)
    info = xr.Dataset({"plateau_start": ("seed", [2.0, 4.0]), "plateau_end": ("seed", [10, 30.0]),
                       "has_plateau": ("seed", [True, True])}, coords={"seed": [0, 1]})
    spans = _elements(plot.learning_curves(ds, mark_plateau=True, plateau=info), hv.VSpan)
    assert spans[0].data == [3.0, 20.0]


def test_mark_plateau_uses_analysis(monkeypatch):
    """Without an explicit plateau the measurement of scalex.analysis.plateau is drawn."""
    import types

    seen = {}

    def fake_plateau(ds):
        seen["called"] = True
        return _plateau(ds, 5.0, 50.0)

    fake = types.ModuleType("scalex.analysis.measures")
    fake.plateau = fake_plateau
    monkeypatch.setitem(__import__("sys").modules, "scalex.analysis.measures", fake)
    import scalex

    monkeypatch.setattr(scalex, "analysis", fake, raising=False)
    spans = _elements(plot.learning_curves(ode_like(), mark_plateau=True), hv.VSpan)
    assert seen and spans[0].data == [5.0, 50.0]


# ----------------------------------------------------------------------------- compare
def test_compare_overlays_theory_dashed_on_simulation():
    sim, ode = sim_like(seeds=3), ode_like()
    obj = plot.compare(sim, ode)
    assert isinstance(obj, hv.Overlay)
    curves = _curves(obj)
    assert len(curves) == 2
    sim_curve, th_curve = curves
    assert "SGD" in sim_curve.label and "3 seeds" in sim_curve.label
    assert th_curve.label == "ODE"
    style = hv.Store.lookup_options("bokeh", th_curve, "style").kwargs
    assert style["line_dash"] == "dashed"
    mpl_style = hv.Store.lookup_options("matplotlib", th_curve, "style").kwargs
    assert mpl_style["linestyle"] == "--"
    np.testing.assert_allclose(th_curve.dimension_values(1), ode["eg"].values[1:])
    np.testing.assert_allclose(sim_curve.dimension_values(1), sim["eg"].values.mean(0)[1:])
    assert len(_elements(obj, hv.Area)) == 1


def test_compare_sweeps_select_matching_theory():
    sim = sweep_of(lambda L: sim_like(L=L, seeds=2), "L", [1, 4])
    theory = sweep_of(ode_like, "L", [1, 4])
    curves = _curves(plot.compare(sim, theory, labels=("SGD", "ODE")))
    assert [c.label for c in curves] == ["L=1 SGD (2 seeds)", "L=1 ODE", "L=4 SGD (2 seeds)",
                                         "L=4 ODE"]
    np.testing.assert_allclose(curves[3].dimension_values(1),
                               theory["eg"].sel(L=4).values[1:])


def test_compare_linear_theory_without_sweep_dim_on_a_sweep():
    sim = sweep_of(lambda L: sim_like(L=L, seeds=2), "L", [1, 4])
    curves = _curves(plot.compare(sim, linear_like()))
    assert sum("linear theory" in c.label for c in curves) == 2


def test_compare_rejects_theory_with_unmatched_dims():
    sim = sim_like()
    theory = sweep_of(ode_like, "eta", [0.1, 0.2])
    with pytest.raises(ValueError, match="ds_theory"):
        plot.compare(sim, theory)


# ----------------------------------------------------------------------------- local exponent
def _power_law_exponent(beta_values=(1.0,)):
    alpha = np.geomspace(1, 1e4, 40)
    rows = []
    for beta in beta_values:
        rows.append(np.full(alpha.shape, beta / (1 + beta)) + 0.1 / np.sqrt(alpha))
    da = xr.DataArray(np.array(rows), dims=["beta", "alpha"],
                      coords={"beta": list(beta_values), "alpha": alpha},
                      name="local_exponent",
                      attrs={"long_name": "local exponent −d ln ε_g/d ln α", "units": "1"})
    return da


def test_local_exponent_reference_line_is_beta_over_one_plus_beta():
    da = _power_law_exponent((1.0,)).squeeze("beta", drop=True)
    obj = plot.local_exponent(da, beta=0.75)
    (hline,) = _elements(obj, hv.HLine)
    assert hline.data == pytest.approx(0.75 / 1.75)
    (curve,) = _curves(obj)
    assert curve.vdims[0].label == da.attrs["long_name"]
    opts = hv.Store.lookup_options("bokeh", obj, "plot").kwargs
    assert opts["logx"] and not opts["logy"]


def test_local_exponent_one_reference_per_beta_and_attr_default():
    da = _power_law_exponent((0.5, 1.0, 3.0))
    obj = plot.local_exponent(da)
    lines = sorted(h.data for h in _elements(obj, hv.HLine))
    assert lines == pytest.approx([1 / 3, 1 / 2, 3 / 4])
    single = _power_law_exponent((1.0,)).squeeze("beta", drop=True).assign_attrs(beta=3.0)
    (hline,) = _elements(plot.local_exponent(single), hv.HLine)
    assert hline.data == pytest.approx(0.75)


def test_local_exponent_from_dataset_calls_analysis(monkeypatch):
    import sys
    import types

    ds = linear_like()
    fake = types.ModuleType("scalex.analysis.measures")

    def fake_local_exponent(d):
        eg = d["eg"].isel(alpha=slice(1, None))
        slope = -np.gradient(np.log(eg.values), np.log(eg["alpha"].values))
        return xr.DataArray(slope, dims="alpha", coords={"alpha": eg["alpha"].values},
                            name="local_exponent")

    fake.local_exponent = fake_local_exponent
    monkeypatch.setitem(sys.modules, "scalex.analysis.measures", fake)
    import scalex

    monkeypatch.setattr(scalex, "analysis", fake, raising=False)
    obj = plot.local_exponent(ds)
    (hline,) = _elements(obj, hv.HLine)
    assert hline.data == pytest.approx(0.5)  # β = 1
    assert len(_curves(obj)) == 1


@given(beta=st.floats(0.01, 100))
def test_predicted_exponent_between_zero_and_one(beta):
    value = plot.predicted_exponent(beta)
    assert 0 < value < 1
    assert value == pytest.approx(1 - 1 / (1 + beta))


def test_predicted_exponent_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        plot.predicted_exponent(0.0)


# ----------------------------------------------------------------------------- plateau length
def _plateau_summary(seeds: int = 3):
    L = np.array([1, 2, 4, 8, 16])
    K = np.array([2, 4])
    rng = np.random.default_rng(0)
    base = 400.0 * K[None, :] ** 2 / L[:, None]
    measured = base[..., None] * (1 + 0.1 * rng.standard_normal((L.size, K.size, seeds)))
    return xr.Dataset(
        {"plateau_length": (("L", "K", "seed"), measured,
                            {"long_name": "plateau length Δα", "units": "1"}),
         "plateau_length_predicted": (("L", "K"), base)},
        coords={"L": ("L", L, {"long_name": "number of eigenvalue groups L", "units": "1"}),
                "K": K, "seed": np.arange(seeds)},
        attrs={"sweep_dims": "L K"},
    )


def test_plateau_length_measured_and_predicted_over_K():
    summary = _plateau_summary()
    obj = plot.plateau_length(summary)
    assert isinstance(obj, hv.Overlay)
    scatters = _elements(obj, hv.Scatter)
    bars = _elements(obj, hv.ErrorBars)
    curves = _curves(obj)
    assert [s.label for s in scatters] == ["K=2 measured", "K=4 measured"]
    assert len(bars) == 2
    assert [c.label for c in curves] == ["K=2 predicted", "K=4 predicted"]
    m = summary["plateau_length"]
    np.testing.assert_allclose(scatters[1].dimension_values(1), m.sel(K=4).mean("seed").values)
    np.testing.assert_allclose(bars[1].dimension_values(2), m.sel(K=4).std("seed").values)
    np.testing.assert_allclose(curves[0].dimension_values(1),
                               summary["plateau_length_predicted"].sel(K=2).values)
    assert scatters[0].kdims[0].label == "number of eigenvalue groups L"
    opts = hv.Store.lookup_options("bokeh", obj, "plot").kwargs
    assert opts["logx"] and opts["logy"]


@pytest.mark.parametrize("backend", ["matplotlib", "bokeh"])
def test_axes_stay_labelled_when_the_first_member_has_no_plateau(backend):
    """holoviews labels the axes after the first element it draws; when that one is empty
    (K=2 without any plateau here) the labels must still be there."""
    summary = _plateau_summary()
    summary["plateau_length"] = summary["plateau_length"].where(summary.K != 2)
    fig = hv.render(plot.plateau_length(summary), backend=backend)
    if backend == "matplotlib":
        labels = (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel())
    else:
        labels = (fig.xaxis[0].axis_label, fig.yaxis[0].axis_label)
    assert labels[0] == "number of eigenvalue groups L"
    assert labels[1].startswith("plateau length")


def test_plateau_length_without_prediction_or_K():
    summary = _plateau_summary().sel(K=2, drop=True)
    summary.attrs["sweep_dims"] = "L"
    obj = plot.plateau_length(summary, predicted=None)
    assert not _curves(obj)
    assert [s.label for s in _elements(obj, hv.Scatter)] == ["measured"]
    with pytest.raises(ValueError, match="x"):
        plot.plateau_length(summary, x="eta")


def test_plateau_length_prediction_from_escape_theory(monkeypatch):
    """'escape' computes the prediction with scalex.theory.escape at each sweep point;
    'auto' never starts that computation by itself."""
    import sys
    import types

    ds = sweep_of(ode_like, "L", [1, 2, 4])
    calls = []

    def escape(setup, seed=0):
        calls.append((setup.L, seed))
        return {"plateau_length": 100.0 / setup.L}

    fake = types.ModuleType("scalex.analysis.escape")
    fake.escape = escape
    monkeypatch.setitem(sys.modules, "scalex.analysis.escape", fake)
    import scalex

    monkeypatch.setattr(scalex, "theory", fake, raising=False)
    ds.attrs["sweep_over"] = json.dumps({"L": [1, 2, 4]})  # as scalex.sweep records it
    measured = _plateau(ds).assign_attrs(ds.attrs)
    assert not _curves(plot.plateau_length(measured, over=None)) and not calls
    obj = plot.plateau_length(measured, over=None, predicted="escape")
    (curve,) = _curves(obj)
    np.testing.assert_allclose(curve.dimension_values(1), [100.0, 50.0, 25.0])
    assert sorted(calls) == [(1, 0), (2, 0), (4, 0)]


# ----------------------------------------------------------------------------- order parameters
def test_order_parameters_heatmaps_per_group_over_alpha():
    ds = ode_like(K=3, L=8)
    obj = plot.order_parameters(ds, alpha=[1.0, 100.0])
    assert isinstance(obj, hv.Layout)
    panels = list(obj)
    assert len(panels) == 6  # 3 groups × (q, r)
    for panel in panels:
        assert isinstance(panel, hv.HoloMap)
        assert isinstance(panel.last, hv.HeatMap)
        assert [d.name for d in panel.kdims] == ["alpha"]
    a_keys = sorted(panels[0].keys())
    assert a_keys == pytest.approx([ALPHA[np.argmin(abs(ALPHA - 1))],
                                    ALPHA[np.argmin(abs(ALPHA - 100))]])
    q_panel, r_panel = panels[0], panels[1]
    assert [d.name for d in q_panel.last.kdims] == ["student_j", "student_i"]
    assert [d.name for d in r_panel.last.kdims] == ["teacher_n", "student_i"]
    assert q_panel.last.vdims[0].label == ds["q"].attrs["long_name"]
    # values: the r of group 1 at the last α, cell (teacher 2, student 1)
    heat = r_panel[a_keys[-1]]
    got = heat.data.loc[(heat.data["teacher_n"] == 2) & (heat.data["student_i"] == 1), "r"]
    want = ds["r"].sel(group=1, alpha=a_keys[-1], student_i=1, teacher_n=2).item()
    assert float(got.iloc[0]) == pytest.approx(want)
    style = hv.Store.lookup_options("bokeh", heat, "plot").kwargs
    assert style["clim"][0] == -style["clim"][1]


def test_order_parameters_groups_default_and_choice():
    ds = ode_like(L=8)
    titles = [hv.Store.lookup_options("bokeh", p.last, "plot").kwargs["title"]
              for p in plot.order_parameters(ds)]
    groups = [t.split(",")[1].split()[0] for t in titles[::2]]
    assert groups[0] == "τ=1" and groups[-1] == "τ=8" and len(set(groups)) == 3
    assert len(list(plot.order_parameters(ds, groups=[2]))) == 2
    with pytest.raises(ValueError, match="groups"):
        plot.order_parameters(ds, groups=[9])
    with pytest.raises(ValueError, match="alpha"):
        plot.order_parameters(ds, alpha=-1.0)


def test_order_parameters_default_alphas_are_log_spaced():
    keys = sorted(next(iter(plot.order_parameters(ode_like()))).keys())
    assert len(keys) == 6
    ratios = np.diff(np.log(keys))
    assert ratios.min() > 0.5 * ratios.max()


def test_order_parameters_pick_one_seed_and_sweep_keys():
    sim = sim_like(seeds=3)
    panel = list(plot.order_parameters(sim, alpha=[500.0], seed=2))[1]
    heat = panel.last
    want = sim["r"].sel(seed=2, group=1).sel(alpha=500.0, method="nearest")
    np.testing.assert_allclose(np.sort(heat.dimension_values(2)), np.sort(want.values.ravel()))
    with pytest.raises(ValueError, match="seed"):
        plot.order_parameters(sim, seed=7)
    swept = sweep_of(ode_like, "eta", [0.1, 0.2])
    panel = next(iter(plot.order_parameters(swept, alpha=[1.0, 10.0])))
    assert [d.name for d in panel.kdims] == ["alpha", "eta"]
    assert len(panel) == 4


def test_order_parameters_linear_dataset_shows_mode_errors():
    ds = linear_like(L=8)
    obj = plot.order_parameters(ds, groups=[1, 8])
    curves = _curves(obj)
    assert [c.label for c in curves] == ["τ=1", "τ=8"]
    np.testing.assert_allclose(curves[1].dimension_values(1), ds["e"].sel(group=8).values[1:])
    with pytest.raises(ValueError, match="ds"):
        plot.order_parameters(ds.drop_vars("e"))


# ----------------------------------------------------------------------------- export
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return struct.unpack(">II", head[16:24])


def test_save_writes_html_and_png(tmp_path):
    ds = sweep_of(ode_like, "L", [1, 4])
    obj = plot.learning_curves(ds, title_text="Learning curves of a sweep")
    before = hv.Store.current_backend
    paths = plot.save(obj, tmp_path / "sub" / "curves")
    assert hv.Store.current_backend == before
    assert [p.name for p in paths] == ["curves.html", "curves.png"]
    html = paths[0].read_text()
    assert 50_000 < len(html) < 20_000_000
    assert "Learning curves of a sweep" in html
    assert "cdn.bokeh.org" not in html and "<script src=\"http" not in html  # inline, offline
    assert "L=1" in html and "L=4" in html
    width, height = _png_size(paths[1])
    assert 1200 <= width < 3000 and 600 < height < 3000  # print size
    assert 5_000 < paths[1].stat().st_size < 2_000_000
    assert not list(tmp_path.glob("sub/.*"))  # no temporary files left


def test_save_holomap_and_layout_formats(tmp_path):
    hmap = plot.learning_curves(sweep_LK())
    paths = plot.save(hmap, tmp_path / "hmap", formats=("png", "html", "svg"))
    assert [p.suffix for p in paths] == [".png", ".html", ".svg"]
    width, height = _png_size(paths[0])
    single_width, single_height = _png_size(
        plot.save(hmap.last, tmp_path / "one", formats="png")[0])
    # both frames side by side (one legend): much wider for its height than one frame
    assert width / height > 1.3 * single_width / single_height
    assert single_width >= 1200 and width >= 1200
    one_curve = plot.save(plot.learning_curves(ode_like()), tmp_path / "bare", formats="png")
    assert _png_size(one_curve[0])[0] >= 1200  # no legend, still print size
    assert "<svg" in paths[2].read_text()[:500]
    html = paths[1].read_text()
    assert "β=" in html or "beta" in html
    layout = plot.order_parameters(ode_like(K=3, L=2), alpha=[1.0, 100.0])
    for p in plot.save(layout, tmp_path / "overlaps"):
        assert p.stat().st_size > 5_000


def test_save_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="formats"):
        plot.save(plot.learning_curves(ode_like()), tmp_path / "x", formats=("jpeg",))
    assert not list(tmp_path.iterdir())


def test_save_png_uses_matplotlib_styles(tmp_path):
    """The PNG shows the per-curve colours (matplotlib options set, not just bokeh ones)."""
    from PIL import Image

    ds = sweep_of(ode_like, "L", [1, 8])
    (path,) = plot.save(plot.learning_curves(ds), tmp_path / "c", formats="png")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    for hex_color in viz_style.palette(2, "viridis"):
        rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(1) < 30).sum() > 50, hex_color


def test_plot_import_leaves_backend_alone():
    import subprocess
    import sys

    code = ("import holoviews as hv; b = hv.Store.current_backend; import scalex.viz.style as p; "
            "p.load_backends(); print(b == hv.Store.current_backend)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "True"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 12))
def test_colours_distinct(n):
    colors = viz_style.palette(n, "viridis")
    assert len(colors) == n and len(set(colors)) == n
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors)


def test_title_lists_fixed_parameters_only():
    attrs = Setup(K=3, M=3, N=512, L=8, beta=0.75, eta=0.05).to_attrs() | {"method": "ode"}
    text = plot.title(attrs)
    for part in ("ODE", "K=3", "M=3", "N=512", "L=8", "β=0.75", "η=0.05", "σ_J=0.01"):
        assert part in text
    assert "L=" not in plot.title(attrs, skip=["L"])
    assert "N_l=" in plot.title(Setup(L=4, N=64, trainable=32).to_attrs())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        json.dumps(text)


# ----------------------------------------------------------------------------- report (no browser)
def test_report_is_one_self_contained_file(tmp_path):
    sim = sim_like(seeds=2)
    sim.attrs["wall_time"] = 3.25
    summary = xr.Dataset({"plateau_length": ("seed", [10.0, 12.0])}, coords={"seed": [0, 1]})
    path = plot.report("fig-x", sim, [plot.learning_curves(sim), plot.compare(sim, ode_like())],
                       {"Summary": summary}, tmp_path / "deep" / "report.html",
                       description="Caption <with> markup", cost={"ODE wall time [s]": 0.5})
    assert path == tmp_path / "deep" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # nothing else written
    text = path.read_text()
    assert "cdn.holoviz.org/panel" not in text and "cdn.bokeh.org" not in text
    # the panes sit HTML-escaped in the embedded document: once by report, once by bokeh
    assert "Caption &amp;amp;lt;with&amp;amp;gt; markup" in text
    for needle in ("fig-x", "plateau_length", "sigma_J", "3.25", "ODE wall time [s]",
                   "SGD simulation"):
        assert needle in text, needle


def test_table_html_shapes():
    from scalex.viz.report import table_html

    ds = xr.Dataset({"a": (("L", "K"), [[1.0, 2.0], [3.0, np.nan]])},
                    coords={"L": [1, 2], "K": [3, 4]})
    out = table_html(ds)
    assert out.count("<tr>") == 1 + 4 and ">nan<" in out and ">L<" in out
    scalar = table_html(xr.Dataset({"x": 1.5, "y": "text"}))
    assert ">x<" in scalar and ">1.5<" in scalar and ">text<" in scalar
    long = table_html(xr.DataArray(np.arange(30.0), dims="i", name="v"), max_rows=10)
    assert long.count("<tr>") == 11 and "first 10 of 30 rows" in long
    assert "&lt;b&gt;" in table_html({"name": "<b>"})
    with pytest.raises(TypeError, match="tables"):
        table_html(object())
    frame = ds.to_dataframe()  # indexed by (L, K), as scalex.catalog.result_table returns
    assert ">L<" in table_html(frame) and table_html(frame).count("<tr>") == 5


def test_accessor_lists_plot_kinds():
    ds = ode_like()
    kinds = dir(ds.scalex.plot)
    for name in ("learning_curves", "compare", "local_exponent", "plateau_length",
                 "order_parameters", "save"):
        assert name in kinds


def test_saving_a_holomap_prints_nothing(tmp_path, capfd):
    """panel's progress bar over the embedded frames stays out of the caller's stdout."""
    hmap = plot.learning_curves(sweep_LK())
    assert isinstance(hmap, hv.HoloMap)
    plot.save(hmap, tmp_path / "hmap", formats=("html",))
    plot.report("entry", None, {"curves": hmap}, path=tmp_path / "report.html")
    out, err = capfd.readouterr()
    assert "it/s" not in out and "it/s" not in err
    assert out == ""


# ----------------------------------------------------------------------------- legends, ticks
def _mpl_figure(obj):
    """The matplotlib figure that `save` draws for ``obj`` (a HoloMap as a grid)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from scalex.viz.export import _static

    with viz_style.use_backend("matplotlib"):
        fig = hv.renderer("matplotlib").get_plot(_static(obj)).state
    FigureCanvasAgg(fig).draw()
    return fig


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _four_frames() -> xr.Dataset:
    """A sweep over L (overlay) and K (four slider frames), like fig5's learning curves."""
    ds = sweep_of(ode_like, "L", [1, 2, 4, 8]).expand_dims(K=[2, 3, 4, 6])
    return ds.assign_attrs(sweep_dims="L K", sweep_over=json.dumps({"L": [1, 2, 4, 8],
                                                                     "K=M": [2, 3, 4, 6]}))


LEGEND_CASES = {
    "sweep": lambda: plot.learning_curves(sweep_of(ode_like, "L", [1, 2, 4, 8])),
    "four frames": lambda: plot.learning_curves(_four_frames()),
    "compare": lambda: plot.compare(sim_like(seeds=2), ode_like()),
    "plateau length": lambda: plot.plateau_length(_plateau_summary()),
    "local exponent": lambda: plot.local_exponent(_power_law_exponent((0.5, 1.0))),
    "layout": lambda: plot.learning_curves(sweep_of(ode_like, "L", [1, 4]))
    + plot.plateau_length(_plateau_summary()),
}


@pytest.mark.parametrize("case", list(LEGEND_CASES))
def test_legends_stand_outside_the_data(case):
    """No legend box overlaps any axes in the PNG; bokeh puts them right of the frame."""
    from bokeh.models import Legend, Plot

    obj = LEGEND_CASES[case]()
    fig = _mpl_figure(obj)
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not [ax for ax in fig.axes if _overlap(box, ax.get_window_extent(renderer))]
    root = hv.render(obj, backend="bokeh")
    plots = list(root.select({"type": Plot}))
    assert plots
    for bokeh_plot in plots:
        assert not [r for r in bokeh_plot.center if isinstance(r, Legend)]
    assert any(isinstance(r, Legend) for p in plots for r in p.right)


def test_one_legend_for_a_grid_of_frames():
    fig = _mpl_figure(plot.learning_curves(_four_frames()))
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["L=1", "L=2", "L=4", "L=8"]
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["K=M=2", "K=M=3", "K=M=4", "K=M=6"]  # the swept fields, both


def _mantissa(value: float) -> float:
    return value / 10.0 ** np.floor(np.log10(value) + 1e-9)


@settings(max_examples=60, deadline=None)
@given(low=st.floats(-30, 30), span=st.floats(0.5, 16))
def test_log_ticks_label_every_range(low, span):
    """At least two labelled ticks on every range of half a decade or more: powers of ten
    (all of them) from two decades on, 1-2-5 from one decade, 1…9 below."""
    from scalex.viz import ticks

    lo, hi = 10.0**low, 10.0 ** (low + span)
    major = ticks.major_ticks(lo, hi)
    assert len(major) >= 2
    assert all(lo <= t <= hi for t in major) and major == sorted(major)
    mantissas = {round(_mantissa(t), 6) for t in major}
    if span > 2 + 1e-6:
        powers = [10.0**k for k in range(int(np.ceil(low - 1e-9)), int(np.floor(low + span
                                                                                + 1e-9)) + 1)]
        assert mantissas == {1.0}
        np.testing.assert_allclose(major, [p for p in powers if lo <= p <= hi])
    elif 1 + 1e-6 < span < 2 - 1e-6:
        assert mantissas <= {1.0, 2.0, 5.0}
    elif span < 1 - 1e-6:
        assert mantissas <= {float(m) for m in range(1, 10)}
    minor = ticks.minor_ticks(lo, hi)
    assert all(round(_mantissa(t), 6) in range(2, 10) for t in minor)


def _labelled(axis) -> list[float]:
    """The tick values that carry a visible label inside the view of a matplotlib axis."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
    return sorted(t.get_loc() for t in ticks
                  if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi)


def test_log_axis_of_less_than_two_decades_is_labelled():
    """plateau lengths from 400 to 6400: 1-2-5 labels in both backends (bokeh would draw
    linear ticks, matplotlib only the decade 10³)."""
    from bokeh.models import FixedTicker

    summary = _plateau_summary().sel(L=[1, 2, 4])
    obj = plot.plateau_length(summary)
    ax = next(ax for ax in _mpl_figure(obj).axes if ax.get_yscale() == "log")
    labelled = _labelled(ax.yaxis)
    assert len(labelled) >= 4
    assert {round(_mantissa(v), 6) for v in labelled} <= {1.0, 2.0, 5.0}
    assert [round(v) for v in _labelled(ax.xaxis)] == [1, 2, 4]  # the swept L
    fig = hv.render(obj, backend="bokeh")
    ticker = fig.yaxis[0].ticker
    assert isinstance(ticker, FixedTicker)
    lo, hi = fig.y_range.start, fig.y_range.end
    shown = [t for t in ticker.ticks if lo <= t <= hi]
    assert len(shown) >= 4 and {round(_mantissa(t), 6) for t in shown} <= {1.0, 2.0, 5.0}
    assert len([t for t in ticker.minor_ticks if lo <= t <= hi]) > len(shown)


def test_log_axis_of_many_decades_labels_powers_of_ten():
    from bokeh.models import LogTicker

    obj = plot.learning_curves(sweep_of(ode_like, "L", [1, 4]))
    ax = next(iter(_mpl_figure(obj).axes))
    for axis in (ax.xaxis, ax.yaxis):
        labelled = _labelled(axis)
        assert len(labelled) >= 3
        assert {round(_mantissa(v), 6) for v in labelled} == {1.0}
        assert len(axis.get_minorticklocs()) > 0
    fig = hv.render(obj, backend="bokeh")
    assert isinstance(fig.xaxis[0].ticker, LogTicker)  # bokeh's own decades


# ----------------------------------------------------------------------------- run and plot
def _swept_label_sweep() -> xr.Dataset:
    ds = sweep_of(ode_like, "L", [1, 2, 4])
    ds["L"].attrs = {"long_name": "swept Setup field L"}  # as scalex.sweep writes it
    return ds


def test_swept_setup_field_gets_a_descriptive_axis_label():
    ds = _swept_label_sweep()
    summary = _plateau(ds).assign_attrs(sweep_dims="L")  # its L coordinate has no attrs
    for data in (ds, summary):
        (scatter,) = _elements(plot.plateau_length(data, over=None), hv.Scatter)
        assert scatter.kdims[0].label == viz_style.FIELD_LABELS["L"]


def _write_run(folder, entry: str = "figx") -> tuple[xr.Dataset, xr.Dataset]:
    """A result and its summary (with predictions) written as run_entry names them."""
    from scalex.schema import to_netcdf

    ds = _swept_label_sweep()
    specs = [{"name": "plateau_length", "file": "plateau_length", "x": "L", "over": None},
             {"name": "learning_curves", "file": "learning_curves"}]
    ds.attrs.update(catalog_entry=entry, catalog_plots=json.dumps(specs), catalog_compare="",
                    sweep_over=json.dumps({"L": [1, 2, 4]}))
    summary = _plateau(ds, start=2.0, end=20.0)
    summary["plateau_length"] = summary["plateau_length"] * xr.DataArray([1.0, 0.5, 0.25],
                                                                         dims="L")
    summary["plateau_length_predicted"] = summary["plateau_length"] * 1.1
    summary.attrs.update(ds.attrs)
    to_netcdf(ds, folder / f"{entry}.nc")
    to_netcdf(summary, folder / f"{entry}-summary.nc")
    return ds, summary


def _drawn(obj) -> list[tuple]:
    """What a figure shows: every element's type, label, axis labels and data."""
    out = []
    for el in obj.traverse(lambda x: x, [hv.Element]):
        data = tuple(tuple(np.round(np.asarray(el.dimension_values(d), dtype=float), 12))
                     for d in el.dimensions() if el.dimension_values(d).dtype.kind in "fiu")
        out.append((type(el).__name__, el.label, tuple(d.pprint_label for d in el.dimensions()),
                    data))
    return out


def test_plot_from_the_files_draws_what_the_run_drew(tmp_path):
    """`scalex plot FILE` (stored_inputs + make_plots) and the run (make_plots on the data in
    memory) give the same figures, with the predicted plateau lengths."""
    from scalex.experiments.runner import make_plots
    from scalex.viz.figures import plot_specs, stored_inputs

    ds, summary = _write_run(tmp_path)
    problems: list[str] = []
    run = make_plots(plot_specs(ds.attrs), ds, tmp_path / "run", summary=summary,
                     problems=problems)
    stored = stored_inputs(tmp_path / "figx.nc", problems=problems)
    again = make_plots(stored.specs, stored.dataset, tmp_path / "again",
                       comparisons=stored.comparisons, summary=stored.summary,
                       problems=problems)
    assert problems == []
    assert sorted(again) == ["figx-learning_curves", "figx-plateau_length"]
    for file, (obj, _paths) in run.items():
        assert _drawn(again[f"figx-{file}"][0]) == _drawn(obj), file
    labels = [c.label for c in _curves(again["figx-plateau_length"][0])]
    assert labels == ["predicted"]
    # the summary file itself leads to the same result and summary
    from_summary = stored_inputs(tmp_path / "figx-summary.nc")
    assert "eg" in from_summary.dataset and from_summary.summary is not None


def test_plot_from_the_files_leaves_out_a_summary_of_another_grid(tmp_path):
    from scalex.schema import to_netcdf
    from scalex.viz.figures import stored_inputs

    _ds, summary = _write_run(tmp_path)
    to_netcdf(summary.isel(L=[0, 1]), tmp_path / "figx-summary.nc")  # from an earlier run
    problems: list[str] = []
    stored = stored_inputs(tmp_path / "figx.nc", problems=problems)
    assert stored.summary is None
    assert problems and "sweep grid" in problems[0]


def test_plateau_length_without_any_plateau_says_so(tmp_path):
    # A sweep where no member has a plateau: the frame says so and is drawn on a linear axis
    # (a log axis of nothing cannot be rendered), instead of failing at export.
    summary = xr.Dataset({"plateau_length": ("L", [np.nan, np.nan])}, coords={"L": [8, 16]})
    obj = plot.plateau_length(summary, x="L", over=None, predicted=None)
    assert "no member has a plateau" in str(obj.opts.get().kwargs.get("title", ""))
    paths = plot.save(obj, tmp_path / "none")
    assert all(p.stat().st_size > 0 for p in paths)
