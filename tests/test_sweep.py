"""Sweeps: member-by-member identity with direct calls, orthogonal padded dims, failures, the
resumable store, and the distributed path."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import scalex
from scalex.experiments.errors import KindUnavailableError, SweepWarning
from scalex.experiments.grid import grid_members
from scalex.experiments.kinds import KINDS, Kind, register_kind
from scalex.experiments.store import member_path, open_store
from scalex.experiments.sweep import sweep
from scalex.schema import DivergenceWarning, initial_overlaps, make_dataset, member_setup

ALPHA = np.array([0.0, 0.25, 1.0, 4.0])
BASE = scalex.Setup(K=2, M=2, N=16, L=1, eta=0.1)

CALLS: list[tuple[str, int]] = []
FAIL: set[tuple[str, int]] = set()
_LOCK = threading.Lock()


def fake(setup, alpha, seed, rate=1.0):
    """A cheap deterministic kind: the seed's initial overlaps, decaying as exp(-rate α λ_τ)."""
    start = initial_overlaps(setup, seed)
    a = np.asarray(alpha)
    decay = np.exp(-rate * a[:, None] * setup.spectrum.eigenvalues[None, :])[..., None, None]
    return make_dataset(setup, a, start.q.values * decay, start.r.values * decay,
                        start.t.values, method="fake", attrs={"seed": seed})


def counting(setup, alpha, seed):
    """`fake`, counting its calls and raising for the members listed in FAIL."""
    with _LOCK:
        CALLS.append((setup.hash, seed))
    if (setup.hash, seed) in FAIL:
        raise RuntimeError(f"injected failure L={setup.L} seed={seed}")
    return fake(setup, alpha, seed)


def diverging(setup, alpha, seed):
    ds = fake(setup, alpha, seed)
    if setup.L == 2:
        ds["eg"][2:] = np.nan
        ds["status"] = ((), np.array("diverged", dtype=object))
        warnings.warn("blew up", DivergenceWarning, stacklevel=1)
    return ds


def rounded(setup, alpha, seed):
    """Like a simulation: reports α rounded to whole steps n/N."""
    ds = fake(setup, alpha, seed)
    return ds.assign_coords(alpha=np.rint(np.asarray(alpha) * setup.N) / setup.N)


for _name, _func in (("fake", fake), ("counting", counting), ("diverging", diverging),
                     ("rounded", rounded)):
    register_kind(_name, _func, overwrite=True)


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FAIL.clear()
    yield
    CALLS.clear()
    FAIL.clear()


def _quiet(**kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("scheduler", "synchronous")
    return kwargs


def _member(ds: xr.Dataset, setup: scalex.Setup, **sel) -> xr.Dataset:
    """One member of a sweep, cut back to its own sizes."""
    out = ds.sel(sel).isel(group=slice(setup.L), student_i=slice(setup.K),
                           student_j=slice(setup.K), teacher_n=slice(setup.M),
                           teacher_m=slice(setup.M))
    return out


# ---------------------------------------------------------------------------------- identity
def test_members_equal_direct_calls_and_padding_is_nan():
    over = {"L": [1, 2, 4], "K=M": [2, 3]}
    ds = sweep("fake", BASE, over, seeds=[0, 5], alpha=ALPHA, **_quiet())
    assert [d for d in ds.dims][:3] == ["L", "K", "seed"]
    assert ds.sizes["group"] == 4 and ds.sizes["student_i"] == 3 and ds.sizes["teacher_n"] == 3
    for L in (1, 2, 4):
        for K in (2, 3):
            setup = BASE.replace(L=L, K=K, M=K)
            for seed in (0, 5):
                direct = fake(setup, ALPHA, seed)
                got = _member(ds, setup, L=L, K=K, seed=seed)
                for name in ("eg", "q", "r", "t"):
                    np.testing.assert_array_equal(got[name].values, direct[name].values)
                assert str(got["status"].values) == "ok"
                member = ds.sel(L=L, K=K, seed=seed)
                # Padding beyond the member's own sizes is NaN, inside it is not.
                assert np.isnan(member.q.values[:, L:]).all()
                assert np.isnan(member.q.values[:, :, K:]).all()
                assert np.isnan(member.r.values[..., K:]).all()
                assert np.isnan(member.t.values[:, K:]).all()
                assert not np.isnan(member.q.values[:, :L, :K, :K]).any()
            np.testing.assert_array_equal(
                ds["eigenvalue"].sel(L=L).values[:L], setup.spectrum.eigenvalues)
            assert ds["setup_hash"].sel(L=L, K=K).item() == setup.hash


def test_dims_are_plain_orthogonal_and_documented():
    ds = sweep("fake", BASE, {"L": [1, 2], "K=M": [2, 3]}, seeds=2, alpha=ALPHA, **_quiet())
    for name, index in ds.indexes.items():
        assert type(index).__name__ == "Index", name  # no MultiIndex
    assert ds["q"].dims == ("L", "K", "seed", "alpha", "group", "student_i", "student_j")
    assert ds["t"].dims == ("L", "K", "seed", "group", "teacher_n", "teacher_m")
    assert ds["status"].dims == ("L", "K", "seed")
    assert ds["eigenvalue"].dims == ("L", "group")  # depends on L only, not on K or seed
    assert ds["M"].dims == ("K",) and list(ds["M"].values) == [2, 3]
    assert ds.attrs["sweep_dims"] == "L K"
    assert "NaN" in ds.attrs["padding"]
    assert scalex.Setup.from_attrs(ds.attrs) == BASE
    assert json.loads(ds.attrs["sweep_over"]) == {"L": [1, 2], "K=M": [2, 3]}
    scalex.validate(ds)
    assert member_setup(ds, L=2, K=3) == BASE.replace(L=2, K=3, M=3)
    with pytest.raises(ValueError, match="missing sweep dimension"):
        member_setup(ds, L=2)


def test_order_of_over_sets_dim_order():
    ds = sweep("fake", BASE, {"K=M": [2, 3], "L": [1, 2]}, alpha=ALPHA, **_quiet())
    assert ds["q"].dims[:3] == ("K", "L", "seed")
    assert ds.attrs["sweep_dims"] == "K L"


def described(setup, alpha, seed):
    """`fake` with an extra variable of its own description."""
    ds = fake(setup, alpha, seed)
    ds["gap"] = ("alpha", np.asarray(alpha) * setup.L, {"long_name": "a test gap", "units": "m"})
    return ds


register_kind("described", described, overwrite=True)


def test_every_variable_keeps_or_gets_long_name_and_units(tmp_path):
    for ds in (sweep("described", BASE, {"L": [1, 2], "K=M": [2, 3]}, seeds=2, alpha=ALPHA,
                     **_quiet()),
               sweep("described", BASE, {"L": [1, 2]}, alpha=ALPHA, store=tmp_path,
                     **_quiet())):
        for name, var in ds.variables.items():
            assert var.attrs.get("long_name") and "units" in var.attrs, name
        assert ds["gap"].attrs == {"long_name": "a test gap", "units": "m"}  # the member's
        assert ds["setup_hash"].attrs["units"] == "1" and ds["L"].attrs["units"] == "1"
        assert not {"long_name", "units"} & set(ds.attrs)


def test_attrs_and_manifest_record_the_same_spec(tmp_path):
    over = {"K=M": [2, 3], "L": [1, 2]}
    ds = sweep("fake", BASE, over, seeds=[4, 1], alpha=ALPHA, store=tmp_path, **_quiet())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["over"] == [["K=M", [2, 3]], ["L", [1, 2]]]  # in the order of the dims
    assert json.loads(ds.attrs["sweep_over"]) == dict(manifest["over"]) == over
    assert json.loads(ds.attrs["sweep_seeds"]) == manifest["seeds"] == [4, 1]
    assert list(ds["seed"].values) == [4, 1]
    assert ds.attrs["sweep_key"] == manifest["key"]
    assert ds.attrs["sweep_kind"] == manifest["kind"] == "fake"
    assert ds.attrs["n_alpha"] == len(manifest["alpha"]) == ALPHA.size
    np.testing.assert_array_equal(manifest["alpha"], ALPHA)
    assert scalex.Setup.from_dict(manifest["base_setup"]) == scalex.Setup.from_attrs(ds.attrs)
    direct = sweep("fake", BASE, over, seeds=[4, 1], alpha=ALPHA, **_quiet())
    for key in ("sweep_over", "sweep_seeds", "sweep_key", "sweep_kind", "scalex_setup"):
        assert direct.attrs[key] == ds.attrs[key], key


@settings(max_examples=8)
@given(
    Ls=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=3, unique=True),
    Ks=st.lists(st.integers(1, 3), min_size=1, max_size=2, unique=True),
    seeds=st.lists(st.integers(0, 50), min_size=1, max_size=2, unique=True),
)
def test_property_shape_and_values(Ls, Ks, seeds):
    ds = sweep("fake", BASE, {"L": Ls, "K": Ks}, seeds=seeds, alpha=ALPHA, **_quiet())
    assert ds["eg"].shape == (len(Ls), len(Ks), len(seeds), ALPHA.size)
    assert ds.sizes["group"] == max(Ls) and ds.sizes["student_i"] == max(Ks)
    for i, L in enumerate(Ls):
        for j, K in enumerate(Ks):
            for k, seed in enumerate(seeds):
                direct = fake(BASE.replace(L=L, K=K), ALPHA, seed)
                np.testing.assert_array_equal(ds["eg"].values[i, j, k], direct["eg"].values)


def test_real_kinds_match_direct_calls():
    from scalex.engines.linear import linear_theory
    from scalex.engines.ode import solve_ode

    lin = BASE.replace(K=1, M=1, activation="linear", eta=0.5)
    ds = sweep("linear", lin, {"L": [1, 4]}, seeds=[0, 1], alpha=ALPHA, **_quiet())
    for L in (1, 4):
        for seed in (0, 1):
            direct = linear_theory(lin.replace(L=L), ALPHA, seed=seed)
            got = _member(ds, lin.replace(L=L), L=L, seed=seed)
            np.testing.assert_allclose(got["eg"].values, direct["eg"].values, rtol=0, atol=0)
            np.testing.assert_allclose(got["e"].values, direct["e"].values, rtol=0, atol=0)
    ode = sweep("ode", BASE, {"L": [1, 2]}, seeds=[3], alpha=ALPHA, **_quiet())
    for L in (1, 2):
        direct = solve_ode(BASE.replace(L=L), ALPHA, seed=3, progress=False)
        got = _member(ode, BASE.replace(L=L), L=L, seed=3)
        np.testing.assert_allclose(got["q"].values, direct["q"].values, rtol=1e-12, atol=0)
        assert ode.attrs["method"] == "ode"


def test_threads_and_auto_give_the_same_result():
    ref = sweep("fake", BASE, {"L": [1, 2, 4]}, seeds=3, alpha=ALPHA, **_quiet())
    for sched in ("threads", "auto"):
        got = sweep("fake", BASE, {"L": [1, 2, 4]}, seeds=3, alpha=ALPHA,
                    **_quiet(scheduler=sched, workers=2))
        xr.testing.assert_identical(got.drop_attrs(), ref.drop_attrs())


def test_processes_scheduler_runs_ode():
    """Spawned worker processes (the 'auto' choice for long ODE sweeps) give the same result."""
    ref = sweep("ode", BASE, {"L": [1, 2]}, alpha=ALPHA, **_quiet())
    got = sweep("ode", BASE, {"L": [1, 2]}, alpha=ALPHA, **_quiet(scheduler="processes",
                                                                   workers=2))
    xr.testing.assert_allclose(got.drop_attrs(), ref.drop_attrs(), rtol=1e-12, atol=0)


def test_simulation_alpha_rounding_keeps_the_requested_grid():
    alpha = np.array([0.0, 0.1, 0.33, 1.0])  # not multiples of 1/N = 1/16
    ds = sweep("rounded", BASE, {"N": [16, 32]}, alpha=alpha, **_quiet())
    np.testing.assert_array_equal(ds["alpha"].values, alpha)
    assert not ds["eg"].isnull().any()


# ---------------------------------------------------------------------------------- failures
def test_failed_member_is_recorded_and_the_rest_complete():
    bad = BASE.replace(L=2)
    FAIL.add((bad.hash, 1))
    with pytest.warns(SweepWarning, match="1 failed"):
        ds = sweep("counting", BASE, {"L": [1, 2]}, seeds=2, alpha=ALPHA, **_quiet())
    status = ds["status"].sel(L=2, seed=1).item()
    assert status.startswith("failed: RuntimeError: injected failure L=2 seed=1")
    assert ds["eg"].sel(L=2, seed=1).isnull().all()
    assert ds["q"].sel(L=2, seed=1).isnull().all()
    ok = ds["status"].where(ds["status"] == "ok").count().item()
    assert ok == 3
    assert not ds["eg"].sel(L=2, seed=0).isnull().any()


def test_divergence_keeps_status_and_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = sweep("diverging", BASE, {"L": [1, 2]}, alpha=ALPHA, **_quiet())
    texts = [str(w.message) for w in caught if w.category is DivergenceWarning]
    # The member's own warning, naming the member, then the count for the whole sweep.
    assert texts == ["sweep member (L=2, seed=0): blew up",
                     "1 of 2 sweep members diverged (status 'diverged')"]
    assert ds["status"].sel(L=2, seed=0).item() == "diverged"
    assert ds["eg"].sel(L=2, seed=0)[2:].isnull().all()
    assert ds["status"].sel(L=1, seed=0).item() == "ok"


# ---------------------------------------------------------------------------------- store
def test_store_resumes_only_missing_and_failed_members(tmp_path):
    store = tmp_path / "store"
    over = {"L": [1, 2, 4]}
    FAIL.add((BASE.replace(L=2).hash, 0))
    with pytest.warns(SweepWarning):
        first = sweep("counting", BASE, over, seeds=2, alpha=ALPHA, store=store, **_quiet())
    assert len(CALLS) == 6
    files = sorted(p.name for p in store.iterdir())
    assert "manifest.json" in files
    assert sum(f.endswith(".nc") for f in files) == 5
    marker = member_path(store, "counting", BASE.replace(L=2), 0).with_suffix(".failed.json")
    assert "injected failure" in json.loads(marker.read_text())["error"]
    assert first["status"].sel(L=2, seed=0).item().startswith("failed: RuntimeError")

    # Interruption: one member's file is lost, another is truncated mid-write.
    member_path(store, "counting", BASE.replace(L=4), 1).unlink()
    member_path(store, "counting", BASE.replace(L=1), 1).write_bytes(b"CDF\x01 truncated")
    FAIL.clear()
    CALLS.clear()
    second = sweep("counting", BASE, over, seeds=2, alpha=ALPHA, store=store, **_quiet())
    rerun = {(h, s) for h, s in CALLS}
    assert rerun == {(BASE.replace(L=2).hash, 0), (BASE.replace(L=4).hash, 1),
                     (BASE.replace(L=1).hash, 1)}
    assert not marker.exists()
    assert (second["status"] == "ok").all()

    CALLS.clear()
    third = sweep("counting", BASE, over, seeds=2, alpha=ALPHA, store=store, **_quiet())
    assert CALLS == []  # complete: nothing runs
    ref = sweep("fake", BASE, over, seeds=2, alpha=ALPHA, **_quiet())
    xr.testing.assert_identical(third.load().drop_attrs(), ref.drop_attrs())


def test_open_store_is_lazy_and_matches(tmp_path):
    over = {"L": [1, 2], "K=M": [2, 3]}
    sweep("fake", BASE, over, seeds=2, alpha=ALPHA, store=tmp_path, **_quiet())
    lazy = open_store(tmp_path)
    assert lazy["q"].chunks is not None  # dask-backed
    assert lazy["q"].data.numblocks[3:] == (1, 1, 1, 1)  # one block per member
    ref = sweep("fake", BASE, over, seeds=2, alpha=ALPHA, **_quiet())
    xr.testing.assert_identical(lazy.load().drop_attrs(), ref.drop_attrs())
    assert lazy.attrs["sweep_dims"] == "L K"
    # A member that never ran shows as missing.
    member_path(tmp_path, "fake", BASE.replace(L=2, K=3, M=3), 0).unlink()
    with pytest.warns(SweepWarning, match="1 missing"):
        from scalex.experiments.combine import warn_bad_members

        partial = open_store(tmp_path)
        warn_bad_members(partial)
    assert partial["status"].sel(L=2, K=3, seed=0).item() == "missing"


def test_store_rejects_a_different_spec(tmp_path):
    sweep("fake", BASE, {"L": [1]}, alpha=ALPHA, store=tmp_path, **_quiet())
    with pytest.raises(ValueError, match="different alpha grid"):
        sweep("fake", BASE, {"L": [1]}, alpha=ALPHA[:3], store=tmp_path, **_quiet())
    with pytest.raises(ValueError, match="different alpha grid"):
        sweep("fake", BASE, {"L": [1]}, alpha=ALPHA, store=tmp_path, rate=2.0, **_quiet())
    # More seeds or grid points on the same spec extend the store.
    CALLS.clear()
    ext = sweep("fake", BASE, {"L": [1, 2]}, seeds=2, alpha=ALPHA, store=tmp_path, **_quiet())
    assert ext["eg"].shape[:2] == (2, 2)
    with pytest.raises(FileNotFoundError, match="not a sweep store"):
        open_store(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------- cluster
def test_distributed_cluster_matches_local(tmp_path):
    import distributed
    over = {"L": [1, 2, 4], "K=M": [1, 2]}
    local = sweep("fake", BASE, over, seeds=2, alpha=ALPHA, **_quiet())
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        by_address = sweep("fake", BASE, over, seeds=2, alpha=ALPHA,
                           client=cluster.scheduler_address, batch_size=3, progress=False)
        xr.testing.assert_identical(by_address.drop_attrs(), local.drop_attrs())
        with distributed.Client(cluster) as client:
            FAIL.add((BASE.replace(L=4, K=1, M=1).hash, 1))
            with pytest.warns(SweepWarning):
                stored = sweep("counting", BASE, over, seeds=2, alpha=ALPHA, client=client,
                               store=tmp_path, progress=False)
            assert len(CALLS) == 12
            assert stored["status"].sel(L=4, K=1, seed=1).item().startswith("failed")
            FAIL.clear()
            CALLS.clear()
            stored = sweep("counting", BASE, over, seeds=2, alpha=ALPHA, client=client,
                           store=tmp_path, progress=False)
            assert len(CALLS) == 1
    xr.testing.assert_identical(stored.load().drop_attrs(), local.drop_attrs())


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kind="nope"), "kind: must be one of"),
        (dict(over={"LL": [1]}), "'LL' is not a Setup field"),
        (dict(over={"v": [1]}), "cannot be a sweep axis"),
        (dict(over={"L": [1, 1]}), "must be distinct"),
        (dict(over={"L": []}), "at least one value"),
        (dict(over={"L": 3}), "must be a list"),
        (dict(over={"L": [None]}), "numbers or strings"),
        (dict(over={"K=K": [1]}), "more than one axis"),
        (dict(over={"L": [1, 3]}), r"grid point \(L=3\) is not a valid Setup: L: must divide"),
        (dict(seeds=0), "seeds: an integer n"),
        (dict(seeds=[-1]), "seeds: every seed must be an integer >= 0"),
        (dict(seeds=[1, 1]), "seeds: must be distinct"),
        (dict(alpha=[1.0, 0.5]), "alpha: must be strictly increasing"),
        (dict(scheduler="gpu"), "scheduler: must be one of"),
        (dict(workers=0), "workers: must be an integer >= 1"),
        (dict(batch_size=0), "batch_size: must be an integer >= 1"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = dict(kind="fake", base_setup=BASE, over={"L": [1]}, alpha=ALPHA, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sweep(**args)


def test_unavailable_kind_is_reported_before_any_work(monkeypatch):
    monkeypatch.setitem(KINDS, "ghost", Kind("ghost", fake, "threads", "scalex.nonexistent:run"))
    with pytest.raises(KindUnavailableError, match=r"needs scalex\.nonexistent\.run"):
        sweep("ghost", BASE, alpha=ALPHA)
    with pytest.raises(ValueError, match="already registered"):
        register_kind("fake", fake)


def test_grid_members_order():
    members = grid_members(BASE, {"L": [1, 2], "K": [1, 2, 3]}, [7, 8])
    assert len(members) == 12
    assert members[0].index == (0, 0, 0) and members[1].index == (0, 0, 1)
    assert members[1].seed == 8 and members[2].setup == BASE.replace(L=1, K=2)
    assert Path(member_path("/x", "ode", BASE, 3)).name == f"ode-{BASE.hash}-s3.nc"
