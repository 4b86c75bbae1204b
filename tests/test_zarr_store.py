"""The zarr sweep store: a template, then one region per member with no lock, resume after a
killed worker or an interrupted process, failures, Q and R, the NetCDF export.

The cluster tests use a real `distributed.LocalCluster` of 2 worker processes, and kill what
they kill for real (SIGKILL); every wait is bounded (pytest-timeout plus deadlines).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import _fault_kinds
import numpy as np
import psutil
import pytest
import xarray as xr
from _support import wait_for

import scalex
from scalex.experiments import store as store_mod
from scalex.experiments.errors import StoreMismatchError, SweepWarning
from scalex.experiments.grid import grid_members
from scalex.experiments.kinds import register_kind
from scalex.experiments.store import export_netcdf, open_store
from scalex.experiments.sweep import sweep
from scalex.experiments.zarr_store import finished, read_status

TESTS = Path(__file__).resolve().parent
BASE = scalex.Setup(K=2, M=2, N=16, L=1, eta=0.1)
LIN = scalex.Setup(K=2, M=2, N=16, L=1, activation="linear", eta=0.5)
ALPHA = np.array([0.0, 0.25, 1.0, 4.0])

_fault_kinds.register()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _n_finished(store: Path) -> int:
    if not (store / "zarr.json").exists():
        return 0
    return int(finished(read_status(store)).sum())


def _calls(log: Path) -> Counter:
    """How often each member (setup hash, seed) was computed, from the kind's log."""
    if not log.exists():
        return Counter()
    return Counter(tuple(line.split()[1:]) for line in log.read_text().splitlines())


def _written(store: Path) -> np.ndarray:
    return xr.open_zarr(store, consolidated=False)["written"].values


def _member_keys(over, seeds) -> list[tuple[str, str]]:
    return [(m.setup.hash, str(m.seed)) for m in grid_members(BASE, over, seeds)]


def _assert_same_values(got: xr.Dataset, ref: xr.Dataset) -> None:
    """Every variable of ``ref`` is in ``got`` with the same dims and exactly equal values."""
    for name, var in ref.variables.items():
        assert got[name].dims == var.dims, name
        a, b = np.asarray(got[name].values), np.asarray(var.values)
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=str(name))
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), name


# ------------------------------------------------------------------ 1. cluster, no lock
@pytest.mark.timeout(180)
def test_cluster_sweep_writes_one_zarr_store_equal_to_the_netcdf_store(tmp_path):
    import distributed

    over = {"L": [1, 2, 4, 8], "K=M": [1, 2]}  # ragged in group and in the unit dims
    log = tmp_path / "calls.log"
    run = dict(seeds=8, alpha=ALPHA, progress=False, log=str(log))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            workers = set(client.run(os.getpid).values())
        got = sweep("f_linear_logged", LIN, over, client=cluster, per_group=True,
                    store=tmp_path / "sweep.zarr", **run)
        lines = log.read_text().splitlines()
        # The same members through the NetCDF store (on the same cluster, for time).
        ref = sweep("f_linear_logged", LIN, over, store=tmp_path / "netcdf", client=cluster,
                    **run)
    assert got.attrs["sweep_scheduler"] == "distributed"
    writers = {int(line.split()[0]) for line in lines}
    assert len(lines) == 64
    # The template's member ran in this process, the other 63 on both worker processes.
    assert writers == workers | {os.getpid()}, (writers, workers)
    assert got["q"].chunks is not None and all(
        set(c) == {1} for c in got["q"].chunks[:3])  # one dask block per member
    assert [p.name for p in (tmp_path / "sweep.zarr").glob("*.nc")] == []

    assert (got["status"] == "ok").all()
    _assert_same_values(got.load(), ref.load())  # q, r, t, eg, e, status, coords
    # Q and R: the λ-weighted sums of q and r, here summed over the groups by xarray.
    lam = ref["eigenvalue"]
    np.testing.assert_allclose(got["Q"], (ref["q"] * lam).sum("group", min_count=1),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["R"], (ref["r"] * lam).sum("group", min_count=1),
                               rtol=1e-12, atol=1e-15)


def test_zarr_writes_take_no_lock_where_netcdf_writes_do(tmp_path, monkeypatch):
    class Counting:
        def __init__(self) -> None:
            self.n = 0
            self.lock = threading.Lock()

        def __enter__(self):
            self.n += 1
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    lock = Counting()
    monkeypatch.setattr(store_mod, "NETCDF_LOCK", lock)
    run = dict(seeds=8, alpha=ALPHA, progress=False, scheduler="threads", workers=2)
    got = sweep("f_fake", BASE, {"L": [1, 2]}, store=tmp_path / "s.zarr", **run).load()
    assert lock.n == 0
    ref = sweep("f_fake", BASE, {"L": [1, 2]}, store=tmp_path / "nc", **run).load()
    assert lock.n >= 16  # the NetCDF store: one locked write and read per member
    _assert_same_values(got, ref.drop_vars(["q", "r"]))
    assert "q" not in got and "r" not in got  # per-group overlaps only when asked


# ------------------------------------------------------------------ 2. killed worker
@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("ignore::scalex.experiments.errors.SweepWarning")  # the lost ones
def test_killed_worker_then_resume_redoes_no_finished_member(tmp_path):
    import dask
    import distributed

    store = tmp_path / "sweep.zarr"
    log = tmp_path / "calls.log"
    over = {"L": [1, 2]}
    run = dict(seeds=32, alpha=ALPHA, progress=False, store=store, log=str(log),
               delay=0.05, hang_seed=20)
    keys = _member_keys(over, 32)
    result: dict[str, object] = {}
    # A worker lost while running a task fails that task at once (no silent retry).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:

        def first() -> None:
            try:
                result["ds"] = sweep("f_logged", BASE, over, client=cluster, **run)
            except BaseException as err:
                result["error"] = err

        thread = threading.Thread(target=first, daemon=True)
        thread.start()
        hung = Path(f"{log}.hung")
        wait_for(hung.exists, 90, "the member that hangs")
        wait_for(lambda: _n_finished(store) >= 8, 90, "8 finished members")
        victim = int(hung.read_text())
        os.kill(victim, signal.SIGKILL)
        thread.join(90)
        assert not thread.is_alive(), "the sweep did not finish after its worker was killed"
    assert "error" not in result, result.get("error")
    first_calls = _calls(log)
    assert set(first_calls.values()) == {1}  # no member ran twice in the first run
    status = read_status(store)
    done = finished(status)
    members = grid_members(BASE, over, 32)
    lost = [m for m in members if not done[m.index]]
    # Lost: the member running on the killed worker, and any the scheduler had queued there.
    assert 20 in [m.seed for m in lost] and len(lost) <= 4, [m.seed for m in lost]
    assert all(status[m.index] == "" for m in lost)
    assert all(result["ds"]["status"].sel(L=m.setup.L, seed=m.seed).item() == "missing"
               for m in lost)
    assert {(m.setup.hash, str(m.seed)) for m in members if done[m.index]} <= set(first_calls)
    before = _written(store)

    again = sweep("f_logged", BASE, over, scheduler="threads", workers=2, **run)
    second = _calls(log) - first_calls
    assert second == Counter({(m.setup.hash, str(m.seed)): 1 for m in lost})  # only those
    assert set(first_calls) | set(second) == set(keys)
    after = _written(store)
    np.testing.assert_array_equal(after[done], before[done])  # finished: not rewritten
    assert all(after[m.index] > before[done].max() for m in lost)
    assert (again["status"] == "ok").all()
    ref = sweep("f_fake", BASE, over, seeds=32, alpha=ALPHA, progress=False, scheduler="sync")
    _assert_same_values(again.load(), ref[["eg", "t"]])


# ------------------------------------------------------------------ 3. interrupted process
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import scalex, _fault_kinds
    from scalex.experiments.sweep import sweep

    if __name__ == "__main__":
        _fault_kinds.register()
        sweep("f_logged", scalex.Setup(K=2, M=2, N=16, L=1, eta=0.1), {"L": [1, 2]}, seeds=20,
              alpha=np.array([0.0, 0.25, 1.0, 4.0]), store=sys.argv[1], scheduler="processes",
              workers=2, progress=False, log=sys.argv[2], delay=0.3)
""")


@pytest.mark.timeout(180)
def test_interrupted_process_resumes_without_redoing_finished_members(tmp_path):
    store = tmp_path / "sweep.zarr"
    log = tmp_path / "calls.log"
    script = tmp_path / "run_sweep.py"
    script.write_text(SCRIPT)
    children: list[psutil.Process] = []
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(store), str(log)],
                                env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: _n_finished(store) >= 6, 90, "6 finished members")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"pool workers outlived their killed parent: {alive}"
    finally:
        for p in children:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if proc.poll() is None:
            proc.kill()
    over = {"L": [1, 2]}
    members = grid_members(BASE, over, 20)
    done = finished(read_status(store))
    assert 6 <= done.sum() < 40
    first_calls = _calls(log)
    before = _written(store)
    with pytest.warns(SweepWarning, match="missing"):
        from scalex.experiments.combine import warn_bad_members

        partial = open_store(store)
        warn_bad_members(partial)
    assert int((partial["status"] == "ok").sum()) == done.sum()
    assert int(partial["eg"].isnull().all("alpha").sum()) == 40 - done.sum()

    again = sweep("f_logged", BASE, over, seeds=20, alpha=ALPHA, store=store,
                  progress=False, scheduler="threads", workers=4, log=str(log), delay=0.3)
    second = _calls(log) - first_calls
    redo = {(m.setup.hash, str(m.seed)) for m in members if not done[m.index]}
    assert set(second) == redo and set(second.values()) == {1}
    after = _written(store)
    np.testing.assert_array_equal(after[done], before[done])
    assert (again["status"] == "ok").all()
    assert list(store.rglob("*.partial")) == []  # killed writers' chunk temporaries
    ref = sweep("f_fake", BASE, over, seeds=20, alpha=ALPHA, progress=False, scheduler="sync")
    _assert_same_values(again.load(), ref[["eg", "t"]])


# ------------------------------------------------------------------ 4. store semantics
CALLS: list[tuple[int, int]] = []
FAIL: set[tuple[int, int]] = set()


def counting(setup, alpha, seed):
    CALLS.append((setup.L, seed))
    if (setup.L, seed) in FAIL:
        raise RuntimeError(f"injected failure L={setup.L} seed={seed}")
    return _fault_kinds.fake(setup, alpha, seed)


def stepped(setup, alpha, seed):
    """`fake` with a member coordinate of its own, as a simulation's step(alpha)."""
    ds = _fault_kinds.fake(setup, alpha, seed)
    return ds.assign_coords(step=("alpha", np.rint(np.asarray(alpha) * setup.N).astype(int)))


register_kind("z_counting", counting, overwrite=True)
register_kind("z_stepped", stepped, overwrite=True)


def test_failures_are_recorded_and_retried_and_finished_members_are_not(tmp_path):
    CALLS.clear()
    FAIL.clear()
    FAIL.update({(1, 0), (2, 1)})  # the first member fails: the template comes from another
    store = tmp_path / "s.zarr"
    run = dict(seeds=2, alpha=ALPHA, progress=False, scheduler="sync", store=store)
    with pytest.warns(SweepWarning, match="2 failed"):
        first = sweep("z_counting", BASE, {"L": [1, 2, 4]}, **run)
    assert len(CALLS) == 6
    assert first["status"].sel(L=2, seed=1).item() == ("failed: RuntimeError: injected "
                                                         "failure L=2 seed=1")
    assert first["status"].sel(L=1, seed=0).item().startswith("failed: RuntimeError")
    assert first["eg"].sel(L=2, seed=1).isnull().all()
    errors = xr.open_zarr(store, consolidated=False)["error"]
    assert "Traceback" in str(errors.sel(L=2, seed=1).values)
    assert str(errors.sel(L=2, seed=0).values) == ""
    FAIL.clear()
    CALLS.clear()
    second = sweep("z_counting", BASE, {"L": [1, 2, 4]}, **run)
    assert sorted(CALLS) == [(1, 0), (2, 1)]
    assert (second["status"] == "ok").all()
    CALLS.clear()
    third = sweep("z_counting", BASE, {"L": [1, 2, 4]}, **run)
    assert CALLS == [] and third.attrs["sweep_scheduler"] == "none"
    ref = sweep("z_counting", BASE, {"L": [1, 2, 4]}, seeds=2, alpha=ALPHA, progress=False,
                scheduler="sync", store=tmp_path / "nc")
    _assert_same_values(third.load(), ref.drop_vars(["q", "r"]))


def test_every_member_failing_writes_no_template_and_the_next_run_does(tmp_path):
    CALLS.clear()
    FAIL.clear()
    FAIL.update({(1, 0), (1, 1)})
    store = tmp_path / "s.zarr"
    run = dict(seeds=2, alpha=ALPHA, progress=False, scheduler="sync", store=store)
    with pytest.warns(SweepWarning, match="2 failed"):
        first = sweep("z_counting", BASE, **run)
    assert not store.exists()
    assert first["status"].sel(seed=1).item().startswith("failed: RuntimeError")
    FAIL.clear()
    assert (sweep("z_counting", BASE, **run)["status"] == "ok").all()


def test_open_store_is_lazy_without_padding_and_reduces_member_coords(tmp_path):
    over = {"L": [1, 4], "N": [16, 32]}
    run = dict(seeds=2, alpha=ALPHA, progress=False, scheduler="sync")
    sweep("z_stepped", BASE, over, store=tmp_path / "s.zarr", per_group=True, **run)
    lazy = open_store(tmp_path / "s.zarr")
    assert lazy["q"].chunks is not None
    assert lazy["q"].data.numblocks == (2, 2, 2, 1, 1, 1, 1)  # one block per member
    # Stored padded: reading builds no padding task (open, getitem, and nothing else).
    layers = {name.split("-")[0] for name in lazy["q"].data.dask.layers}
    assert not layers & {"concatenate", "full", "full_like", "pad"}, layers
    assert lazy["step"].dims == ("N", "alpha")  # varies with N only
    ref = sweep("z_stepped", BASE, over, **run)
    _assert_same_values(lazy.load(), ref)


def test_store_rejects_another_spec_or_grid_and_per_group_on_netcdf(tmp_path):
    store = tmp_path / "s.zarr"
    sweep("f_fake", BASE, {"L": [1]}, alpha=ALPHA, store=store, progress=False)
    with pytest.raises(StoreMismatchError, match="different alpha grid"):
        sweep("f_fake", BASE, {"L": [1]}, alpha=ALPHA[:3], store=store, progress=False)
    with pytest.raises(StoreMismatchError, match=r"another grid \(over, seeds differ\)"):
        sweep("f_fake", BASE, {"L": [1, 2]}, seeds=2, alpha=ALPHA, store=store, progress=False)
    with pytest.raises(ValueError, match=r"per_group: .* made with per_group=False"):
        sweep("f_fake", BASE, {"L": [1]}, alpha=ALPHA, store=store, per_group=True,
              progress=False)
    with pytest.raises(ValueError, match="only a zarr store"):
        sweep("f_fake", BASE, alpha=ALPHA, store=tmp_path / "nc", per_group=False)
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "x.txt").write_text("not a store")
    with pytest.raises(ValueError, match="not a scalex zarr store"):
        sweep("f_fake", BASE, alpha=ALPHA, store=tmp_path / "junk.zarr", progress=False)


def test_export_netcdf_writes_the_combined_dataset(tmp_path):
    store = tmp_path / "s.zarr"
    ds = sweep("f_fake", BASE, {"L": [1, 2]}, seeds=2, alpha=ALPHA, store=store,
               progress=False, scheduler="sync")
    path = export_netcdf(store, tmp_path / "fig.nc", attrs={"catalog_entry": "test"})
    with xr.open_dataset(path) as back:
        _assert_same_values(back, ds.load().drop_vars("written"))
        assert back.attrs["catalog_entry"] == "test"
        assert back.attrs["sweep_key"] == ds.attrs["sweep_key"]
        assert json.loads(back.attrs["sweep_over"]) == {"L": [1, 2]}
        for name, var in back.variables.items():
            assert var.attrs.get("long_name") and "units" in var.attrs, name
        assert back.sel(L=2).scalex.setup == BASE.replace(L=2)


def test_a_task_run_again_for_a_finished_member_does_not_recompute_it(tmp_path):
    # What a cluster does when it loses a worker holding a finished task's uncollected result.
    from scalex.experiments.execute import run_member
    from scalex.experiments.kinds import KINDS
    from scalex.experiments.zarr_store import read_attrs, target_of

    store = tmp_path / "s.zarr"
    log = tmp_path / "calls.log"
    sweep("f_logged", BASE, {"L": [1, 2]}, seeds=2, alpha=ALPHA, store=store, progress=False,
          scheduler="sync", log=str(log))
    target = target_of(store, read_attrs(store))
    before = _written(store)
    member = grid_members(BASE, {"L": [1, 2]}, 2)[3]
    out = run_member(KINDS["f_logged"].func, "f_logged", member, ALPHA, {"log": str(log)},
                     target, "key")
    assert out.status == "ok" and out.error is None
    assert sum(_calls(log).values()) == 4  # not computed again ...
    np.testing.assert_array_equal(_written(store), before)  # ... nor written
