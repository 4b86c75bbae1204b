"""`scalex.compare`: one experiment by the ODE, SGD and the linear theory as an xarray DataTree.

The physics check is independent of all three routes: for linear SGD with K = M = 1 the
per-group error e_τ = (J − B) P_τ (J − B)ᵀ / N averaged over the data stream obeys an exact
linear recursion per step (Gaussian fourth moments, docs/theory.md §4.1),

    e_τ ← (1 − 2ηλ_τ/N + 2η²λ_τ²/N²) e_τ + (η²/N) λ_τ f_τ Σ_σ λ_σ e_σ,

whose continuum limit n = αN is the ODE (L1). Iterated from each seed's initial weights it gives
the finite-N expectation of the simulation and, against the continuum routes, the finite-N bias.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import holoviews as hv
import netCDF4
import numpy as np
import pytest
import xarray as xr

import scalex
from scalex.analysis.measures import plateau
from scalex.experiments.catalog import load_catalog
from scalex.experiments.compare import (
    comparison_tree,
    map_routes,
    open_datatree,
    to_netcdf,
    to_zarr,
)
from scalex.experiments.runner import run_entry
from scalex.experiments.sweep import sweep
from scalex.schema import COMPRESSION, SchemaError, validate
from scalex.viz import plots

SETUP = scalex.Setup(K=1, M=1, N=64, L=8, activation="linear", eta=0.5)
#: record times on whole SGD steps, so that every route is read at exactly the same α
STEPS = np.concatenate([[0], np.unique(np.rint(np.geomspace(1, 64 * 50, 18)))]).astype(int)
ALPHA = STEPS / SETUP.N
SEEDS = 12


def _expected_sgd(setup: scalex.Setup, seed: int, steps: np.ndarray) -> np.ndarray:
    """ε_g after each number of ``steps`` of linear SGD, averaged over the data stream exactly
    (module docstring), from the weights of ``seed``."""
    lam, f = setup.spectrum.eigenvalues, setup.spectrum.fractions
    eta, N = setup.eta, setup.N
    step = (np.diag(1 - 2 * eta * lam / N + 2 * (eta * lam / N) ** 2)
            + eta**2 / N * np.outer(lam * f, lam))
    J, B = scalex.sample_weights(setup, seed)
    D = (J - B)[0]
    e = np.add.reduceat(D * D, setup.spectrum.group_starts()) / N
    out, done = [], 0
    for n in steps:
        e = np.linalg.matrix_power(step, int(n) - done) @ e
        done = int(n)
        out.append(0.5 * lam @ e)
    return np.array(out)


@pytest.fixture(scope="module")
def tree() -> xr.DataTree:
    return scalex.compare(SETUP, ALPHA, seeds=SEEDS, ode={"rtol": 1e-8}, progress=False,
                          scheduler="synchronous")


# ---------------------------------------------------------------------------------- physics
def test_three_routes_agree_within_sgd_noise_and_finite_n_bias(tree):
    eg = {name: tree[name].to_dataset()["eg"].transpose("seed", "alpha").values
          for name in ("ode", "simulate", "linear")}
    expected = np.array([_expected_sgd(SETUP, s, STEPS) for s in range(SEEDS)])
    # The same weight draws: at α = 0 every route is the same number.
    np.testing.assert_allclose(eg["ode"][:, 0], eg["simulate"][:, 0], rtol=1e-12)
    np.testing.assert_allclose(eg["linear"][:, 0], eg["simulate"][:, 0], rtol=1e-12)
    np.testing.assert_allclose(expected[:, 0], eg["simulate"][:, 0], rtol=1e-12)
    # Two exact N → ∞ routes, integrated and in closed form.
    np.testing.assert_allclose(eg["ode"], eg["linear"], rtol=1e-6)
    late = slice(1, None)
    for theory in ("ode", "linear"):
        diff = (eg["simulate"] - eg[theory])[:, late]  # paired by seed: the draw cancels
        mean = diff.mean(0)
        sem = diff.std(0, ddof=1) / np.sqrt(SEEDS)
        bias = (expected - eg[theory])[:, late].mean(0)  # finite-N bias, exact
        assert np.all(sem > 0)
        # SGD against its exact finite-N expectation: seed noise only.
        z = (mean - bias) / sem
        assert np.all(np.abs(z) < 5), z
        # SGD against the continuum routes: seed noise plus the finite-N bias, which is small.
        assert np.all(np.abs(mean) <= 5 * sem + np.abs(bias)), (mean, sem, bias)
        assert np.all(np.abs(bias) < 0.05 * eg[theory][:, late].mean(0)), bias


# ---------------------------------------------------------------------------------- structure
def test_tree_has_one_node_per_route_on_shared_coordinates(tree):
    assert list(tree.children) == ["ode", "simulate", "linear"]
    root = tree.to_dataset()
    for name in ("alpha", "seed", "group", "student_i", "student_j", "teacher_n", "teacher_m"):
        assert name in root.indexes, name
    np.testing.assert_array_equal(root["alpha"].values, ALPHA)
    np.testing.assert_array_equal(root["seed"].values, np.arange(SEEDS))
    assert tree.attrs["method"] == "compare" and tree.attrs["routes"] == "ode simulate linear"
    assert tree.attrs["Conventions"].startswith("CF-")
    assert scalex.Setup.from_attrs(tree.attrs) == SETUP
    for name in tree.children:
        local = tree[name].to_dataset(inherit=False)
        assert "alpha" not in local.indexes and "seed" not in local.indexes  # inherited
        ds = validate(tree[name].to_dataset())
        assert ds.scalex.setup == SETUP
        assert ds["status"].dims == ("seed",) and set(ds["status"].values) == {"ok"}
    assert json.loads(tree["ode"].attrs["route_options"]) == {"rtol": 1e-8}
    assert tree["simulate"].attrs["method"] == "sgd"
    assert "step" in tree["simulate"].to_dataset().coords  # a route keeps its own coords


def test_comparison_tree_gives_back_the_datasets():
    a = sweep("linear", SETUP, None, [0, 1], ALPHA[:6], progress=False)
    b = sweep("simulate", SETUP, None, [1, 2], ALPHA[:6], progress=False)
    tree = comparison_tree({"linear": a, "simulate": b})
    assert "seed" not in tree.indexes  # the seeds differ: each node keeps its own
    xr.testing.assert_identical(tree["linear"].to_dataset(), a)
    xr.testing.assert_identical(tree["simulate"].to_dataset(), b)


def test_route_seeds_replace_the_shared_seeds():
    tree = scalex.compare(SETUP, ALPHA[:5], routes=("linear", "simulate"), seeds=2,
                          simulate={"seeds": range(3)}, progress=False)
    assert list(tree.children) == ["linear", "simulate"]
    assert "seed" not in tree.to_dataset().indexes
    assert tree["simulate"].to_dataset().sizes["seed"] == 3
    assert tree["linear"].to_dataset().sizes["seed"] == 2


@pytest.mark.parametrize(("call", "message"), [
    (dict(setup=SETUP.replace(activation="erf")), "^activation: the route 'linear'"),
    (dict(setup=SETUP.replace(eta=3.0), routes=("linear",)), "^eta: must be <"),
    (dict(routes=("ode", "nope")), "^routes: each must be one of"),
    (dict(routes=("ode", "ode")), "^routes: must be distinct"),
    (dict(routes=()), "^routes: must name at least one route"),
    (dict(ode={"rtoll": 1e-8}), "^ode.rtoll: "),
    (dict(ode={"rtol": "small"}), "^ode.rtol: "),
    (dict(ode={"seed": 3}), "^ode.seed: set by compare"),
    (dict(routes=("ode",), linear={}), "^linear: not a route of this comparison"),
    (dict(simulate=[1, 2]), "^simulate: route options must be a mapping"),
    (dict(seeds=[0, 0]), "^seeds: must be distinct"),
    (dict(setup={"K": 1}), "^setup: must be a scalex.Setup"),
])
def test_compare_refuses_bad_input_before_running(call, message, monkeypatch):
    import scalex.experiments.sweep as sweep_module

    def no_sweep(*args, **kwargs):
        raise AssertionError("a route ran although the input is invalid")

    monkeypatch.setattr(sweep_module, "sweep", no_sweep)
    kwargs = {"setup": SETUP, **call}
    with pytest.raises(ValueError, match=message):
        scalex.compare(kwargs.pop("setup"), ALPHA, **kwargs)


# ---------------------------------------------------------------------------------- files
def test_netcdf_groups_round_trip_exactly(tree, tmp_path):
    path = to_netcdf(tree, tmp_path / "cmp.nc")
    # Same code path both ways (write, read): exact equality, attrs included.
    xr.testing.assert_identical(open_datatree(path), tree)
    with netCDF4.Dataset(path) as nc:
        assert list(nc.groups) == ["ode", "simulate", "linear"]
        assert nc.getncattr("method") == "compare"
        q = nc.groups["ode"].variables["q"]
        assert q.filters()["zlib"] and q.filters()["shuffle"]  # as scalex.to_netcdf stores
        assert q.filters()["complevel"] == COMPRESSION
        assert nc.groups["ode"].variables["status"].filters() in (None, {}) or \
            not nc.groups["ode"].variables["status"].filters().get("zlib")
    lazy = open_datatree(path, chunks={})
    assert lazy["ode"]["q"].chunks is not None
    xr.testing.assert_identical(lazy.load(), tree)
    lazy.close()


def test_netcdf_write_is_atomic(tree, tmp_path):
    path = to_netcdf(tree, tmp_path / "cmp.nc")
    before = path.read_bytes()
    bad = tree.copy()
    bad["ode"].attrs["unstorable"] = {"a": 1}  # NetCDF cannot store a dict
    with pytest.raises(TypeError, match="illegal data type for attribute"):
        to_netcdf(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.nc"]  # no temporary left


def test_open_datatree_refuses_what_is_not_a_comparison(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_datatree(tmp_path / "missing.nc")
    single = scalex.to_netcdf(scalex.linear_theory(SETUP, ALPHA), tmp_path / "one.nc")
    with pytest.raises(SchemaError, match="not 'compare'"):
        open_datatree(single)
    (tmp_path / "junk.nc").write_bytes(b"not a file")
    with pytest.raises(SchemaError, match="not a readable NetCDF tree"):
        open_datatree(tmp_path / "junk.nc")


def test_zarr_groups_round_trip_exactly(tree, tmp_path):
    zarr = pytest.importorskip("zarr",
                               reason="zarr is an optional extra (pip install 'scalex[zarr]')")
    path = to_zarr(tree, tmp_path / "cmp.zarr")
    path = tree.scalex.to_zarr(path)  # replaces the store
    xr.testing.assert_identical(open_datatree(path), tree)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.zarr"]
    # A tree read from NetCDF (fixed-width strings) stores only specified zarr types.
    from_netcdf = open_datatree(to_netcdf(tree, tmp_path / "cmp.nc"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", zarr.errors.UnstableSpecificationWarning)
        again = to_zarr(from_netcdf, tmp_path / "again.zarr")
    xr.testing.assert_identical(open_datatree(again), tree)


# ---------------------------------------------------------------------------------- catalog
def test_catalog_run_writes_the_comparison_tree(tmp_path):
    left = load_catalog()["fig2_left"]
    entry = dataclasses.replace(left, setup=left.setup.replace(N=16, L=16),
                                alpha=left.alpha[::4])
    result = run_entry(entry, tmp_path, plots=False, progress=False, escape_timeout=None)
    assert not result.problems, result.problems
    path = result.files["compare tree"]
    assert path.name == "fig2_left-compare.nc"
    assert (tmp_path / "fig2_left-ode.nc").is_file()  # the per-kind file stays
    tree = open_datatree(path)
    assert list(tree.children) == ["linear", "ode"]
    xr.testing.assert_identical(tree["linear"].to_dataset(), result.dataset)
    xr.testing.assert_identical(tree["ode"].to_dataset(), result.comparisons["ode"])
    assert tree.attrs["catalog_entry"] == "fig2_left"


# ---------------------------------------------------------------------------------- accessor
def test_accessor_analyses_every_route(tree):
    assert tree.scalex.routes == ["ode", "simulate", "linear"]
    assert tree.scalex.setup == SETUP
    assert tree.scalex.validate() is tree
    out = tree.scalex.plateau()
    assert out.sizes["route"] == 3 and list(out["route"].values) == tree.scalex.routes
    assert out["plateau_height"].dims == ("route", "seed")
    for name in tree.children:  # the same function on each node: exactly its result
        alone = plateau(tree[name].to_dataset())
        xr.testing.assert_equal(out["plateau_length"].sel(route=name, drop=True),
                                alone["plateau_length"])
    xr.testing.assert_identical(out, map_routes(tree, plateau))
    exponent = tree.scalex.local_exponent()
    assert set(exponent.dims) >= {"route", "seed", "alpha"}


def test_accessor_netcdf_write(tree, tmp_path):
    xr.testing.assert_identical(open_datatree(tree.scalex.to_netcdf(tmp_path / "t.nc")), tree)


# ---------------------------------------------------------------------------------- plots
def _curves(obj):
    return [el for el in obj.traverse(lambda x: x, [hv.Curve]) if type(el) is hv.Curve]


def _dash(curve):
    return hv.Store.lookup_options("bokeh", curve, "style").kwargs["line_dash"]


def test_plot_compare_overlays_routes_in_distinct_line_styles(tree, tmp_path):
    obj = tree.scalex.plot.compare()
    assert isinstance(obj, hv.Overlay)
    curves = _curves(obj)
    assert [c.label for c in curves] == [f"ODE ({SEEDS} seeds)", f"SGD simulation ({SEEDS} seeds)",
                                         f"linear theory ({SEEDS} seeds)"]
    assert [_dash(c) for c in curves] == ["solid", "dashed", "dotted"]
    colors = {hv.Store.lookup_options("bokeh", c, "style").kwargs["color"] for c in curves}
    assert len(colors) == 3
    sgd = tree["simulate"].to_dataset()["eg"].mean("seed").values
    np.testing.assert_allclose(curves[1].dimension_values(1), sgd[1:])  # α = 0 off a log axis
    options = hv.Store.lookup_options("bokeh", obj, "plot").kwargs
    assert options["legend_position"] == "right" and options["show_legend"]
    assert "ODE, SGD simulation, linear theory" in options["title"].replace("\n", " ")
    paths = plots.save(obj, tmp_path / "routes", formats=("png",))
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # learning_curves of a tree is the same picture
    again = _curves(plots.learning_curves(tree))
    assert [c.label for c in again] == [c.label for c in curves]


def test_plot_of_a_swept_tree_colours_members_and_styles_routes():
    small = SETUP.replace(N=16, L=1)
    over = {"L": [1, 2]}
    nodes = {kind: sweep(kind, small, over, [0], ALPHA[:6], progress=False)
             for kind in ("linear", "ode")}
    tree = comparison_tree(nodes)
    curves = _curves(plots.compare(tree, over="L"))
    assert [c.label for c in curves] == ["L=1 linear theory", "L=1 ODE", "L=2 linear theory",
                                         "L=2 ODE"]
    assert [_dash(c) for c in curves] == ["solid", "dashed"] * 2
    color = [hv.Store.lookup_options("bokeh", c, "style").kwargs["color"] for c in curves]
    assert color[0] == color[1] != color[2] == color[3]


def test_plot_errors_name_the_parameter(tree):
    with pytest.raises(ValueError, match=r"^ds_theory: a comparison DataTree"):
        plots.compare(tree, tree["ode"].to_dataset())
    with pytest.raises(ValueError, match=r"^routes: 'sgd' is not a node"):
        plots.compare(tree, routes=["sgd"])
    with pytest.raises(ValueError, match=r"^ds: a comparison DataTree draws its own routes"):
        plots.learning_curves(tree, mark_plateau=True)
    with pytest.raises(AttributeError, match="plot one route"):
        tree.scalex.plot.order_parameters  # noqa: B018
