"""Sweep throughput: parallel efficiency of a 64-member ODE sweep, and per-member overhead.

Run:  python benchmarks/bench_sweep.py [--quick] [--rounds R] [--only-auto] [--only-store]
      [--only-formats]

0. Start-up cost of local worker processes: a 2-member processes sweep of tiny ODEs minus the
   same sweep run serially (this is what `scalex.experiments.execute.PROCESS_STARTUP_S` stands for).
1. A 64-member ODE sweep (K = M = 4, N = 1024, L = 64..512 × 16 seeds, 0.2–1.5 s per member)
   serially (the "synchronous" scheduler: the baseline, measured in the same run) and on 2
   local workers: dask threads, dask processes, "auto" (the default for "ode"), and a
   `distributed.LocalCluster` of 2 single-threaded worker processes. Prints each wall time and
   its speed-up over serial (target ≥ 1.6× on 2 cores).
2. Per-member overhead of the sweep machinery with a trivial kind (the initial overlaps of a
   tiny Setup): a plain loop of direct calls is the baseline; the sweep without a store, with a
   NetCDF store (one file per member, then reopening them lazily), with a zarr store (one
   region per member, then opening it), a rerun on a complete store, and through a
   LocalCluster without a store and with each store.
3. The default scheduler on a short sweep: an 8-member ODE sweep (fig. 1's K = M = 2,
   N = 1024, L = 1..128) with ``scheduler="auto"`` and serially, each in a fresh Python process
   (the first member there pays the one-time warm-up, as in a user's script). Prints both wall
   times of the sweep call, their ratio measured in the same run, and what "auto" chose.
   ``--only-auto`` runs this section alone.
4. The two store formats on fig. 1's members (the catalog entry ``fig1``: ODE, K = M = 2,
   N = 1024, L = 1..1024, 142 α points). The 11 members are computed once and replayed by a
   kind that returns them, so the sweeps differ only in their store: none (baseline), the
   NetCDF directory, zarr with the per-group q, r (``per_group=True``) and zarr with ε_g, Q, R
   only (the default). Prints the sweep call's wall time (members written, lazy result) and
   the ``.load()`` of its result, the store's overhead per member against the baseline, the
   member writes alone (as a sweep task does them), and the store's size on disk against the
   members' bytes in memory.
   ``--only-store`` runs sections 2 and 4 alone, ``--only-formats`` section 4.

The machine is shared, so figures are noisy. The configurations are run in interleaved rounds
(every configuration once per round, so a slow spell hits all of them) and the best of the
rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import numpy as np

import scalex
from scalex.experiments.kinds import register_kind
from scalex.experiments.sweep import sweep


def trivial(setup, alpha, seed):
    """The cheapest member: overlaps at α = 0 repeated on the grid."""
    from scalex.schema import initial_overlaps, make_dataset

    ds = initial_overlaps(setup, seed)
    a = np.asarray(alpha)
    q = np.repeat(ds.q.values, a.size, axis=0)
    r = np.repeat(ds.r.values, a.size, axis=0)
    return make_dataset(setup, a, q, r, ds.t.values, method="trivial")


def interleaved(configs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each configuration over ``rounds`` interleaved rounds."""
    best = {name: np.inf for name in configs}
    for _ in range(rounds):
        for name, fn in configs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 ODE members instead of 64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only-auto", action="store_true", help="only section 3")
    parser.add_argument("--only-store", action="store_true", help="only sections 2 and 4")
    parser.add_argument("--only-formats", action="store_true", help="only section 4")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    register_kind("trivial", trivial, overwrite=True)
    print(f"# scalex {scalex.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")

    from distributed import Client, LocalCluster

    if args.only_auto:
        auto_vs_serial(args.rounds)
        return
    if args.only_formats:
        store_formats(args.rounds)
        return
    if args.only_store:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            overhead(client, args.rounds)
        store_formats(args.rounds)
        return

    # ---------------------------------------------------------------- 0. start-up
    tiny_ode = scalex.Setup(K=2, M=2, N=16)
    a0 = np.array([0.0, 0.1])
    sweep("ode", tiny_ode, {"L": [1, 2]}, alpha=a0, scheduler="synchronous", progress=False)
    start = interleaved({
        "serial": lambda: sweep("ode", tiny_ode, {"L": [1, 2]}, alpha=a0,
                                scheduler="synchronous", progress=False),
        "processes": lambda: sweep("ode", tiny_ode, {"L": [1, 2]}, alpha=a0,
                                   scheduler="processes", workers=2, progress=False),
    }, args.rounds)
    print(f"\n## Start-up of 2 local worker processes: "
          f"{start['processes'] - start['serial']:.2f} s")

    # ---------------------------------------------------------------- 1. ODE sweep
    n_seeds = 4 if args.quick else 16
    base = scalex.Setup(K=4, M=4, N=1024, eta=0.1, beta=1.0, sigma_J=0.01)
    over = {"L": [64, 128, 256, 512]}
    alpha = np.concatenate([[0.0], np.logspace(-2, 5, 71)])
    n = len(over["L"]) * n_seeds
    run = dict(seeds=n_seeds, alpha=alpha, progress=False)
    chosen: list[str] = []

    def auto() -> None:
        chosen.append(sweep("ode", base, over, scheduler="auto", workers=2, **run)
                      .attrs["sweep_scheduler"])

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        sweep("ode", base, {"L": [64]}, alpha=alpha, client=client, progress=False)  # warm-up
        ode = interleaved({
            "serial (synchronous, baseline)":
                lambda: sweep("ode", base, over, scheduler="synchronous", **run),
            "local threads, 2 workers":
                lambda: sweep("ode", base, over, scheduler="threads", workers=2, **run),
            "local processes, 2 workers":
                lambda: sweep("ode", base, over, scheduler="processes", workers=2, **run),
            "local auto, 2 workers": auto,
            "distributed, 2 worker processes":
                lambda: sweep("ode", base, over, client=client, **run),
        }, args.rounds)
        serial = ode["serial (synchronous, baseline)"]
        print(f"\n## ODE sweep, {n} members (K=M=4, N=1024, L=64..512, {n_seeds} seeds)")
        print(f"{'configuration':<34} {'wall [s]':>9} {'speed-up':>9}")
        for name, t in ode.items():
            print(f"{name:<34} {t:9.2f} {serial / t:9.2f}")
        print(f"('auto' chose: {', '.join(chosen)})")

        overhead(client, args.rounds)

    store_formats(args.rounds)
    auto_vs_serial(args.rounds)


def overhead(client, rounds: int) -> None:
    """Section 2: per-member overhead of the sweep machinery and its stores."""
    m = 64
    tiny = scalex.Setup(K=2, M=2, N=8, L=2)
    seeds = list(range(m))
    a = np.linspace(0.0, 1.0, 5)
    complete = tempfile.mkdtemp()
    complete_zarr = os.path.join(tempfile.mkdtemp(), "store.zarr")
    for path in (complete, complete_zarr):
        sweep("trivial", tiny, seeds=seeds, alpha=a, progress=False, store=path,
              scheduler="synchronous")

    def stored(suffix: str = "", **kwargs) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                sweep("trivial", tiny, seeds=seeds, alpha=a, progress=False,
                      store=os.path.join(tmp, "store" + suffix), **kwargs).load()
        return run

    over_t = interleaved({
        "direct calls (baseline)": lambda: [trivial(tiny, a, s) for s in seeds],
        "sweep, synchronous, no store": lambda: sweep(
            "trivial", tiny, seeds=seeds, alpha=a, progress=False, scheduler="synchronous"),
        "sweep, threads, no store": lambda: sweep(
            "trivial", tiny, seeds=seeds, alpha=a, progress=False, scheduler="threads",
            workers=2),
        "sweep, synchronous, NetCDF store": stored(scheduler="synchronous"),
        "sweep, synchronous, zarr store": stored(".zarr", scheduler="synchronous"),
        "rerun on a complete NetCDF store": lambda: sweep(
            "trivial", tiny, seeds=seeds, alpha=a, progress=False, store=complete).load(),
        "rerun on a complete zarr store": lambda: sweep(
            "trivial", tiny, seeds=seeds, alpha=a, progress=False, store=complete_zarr).load(),
        "sweep, distributed, no store": lambda: sweep(
            "trivial", tiny, seeds=seeds, alpha=a, progress=False, client=client),
        "sweep, distributed, NetCDF store": stored(client=client),
        "sweep, distributed, zarr store": stored(".zarr", client=client),
    }, rounds)
    direct = over_t["direct calls (baseline)"]
    print(f"\n## Per-member overhead, trivial kind, {m} members")
    print(f"{'configuration':<34} {'ms/member':>9} {'overhead':>9}")
    for name, t in over_t.items():
        print(f"{name:<34} {1e3 * t / m:9.2f} {1e3 * (t - direct) / m:9.2f}")


_REPLAY: dict[tuple[str, int], object] = {}


def replay(setup, alpha, seed):
    """A member computed before (`store_formats`), returned as it was."""
    return _REPLAY[(setup.hash, seed)].copy()


def _disk_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _dirs, files in os.walk(path) for f in files)


def store_formats(rounds: int) -> None:
    """Section 4: NetCDF directory against zarr store on fig. 1's members."""
    from scalex.experiments.catalog import load_catalog
    from scalex.experiments.grid import grid_members
    from scalex.experiments.kinds import KINDS

    entry = load_catalog()["fig1"]
    alpha = entry.alpha_array
    members = grid_members(entry.setup, dict(entry.over), entry.seeds)
    t0 = time.perf_counter()
    for mem in members:
        _REPLAY[(mem.setup.hash, mem.seed)] = KINDS[entry.kind].func(mem.setup, alpha, mem.seed)
    print(f"\n## Store formats, fig1's {len(members)} members (computed once in "
          f"{time.perf_counter() - t0:.1f} s, then replayed)")
    register_kind("replay", replay, overwrite=True)
    run = dict(seeds=entry.seeds, alpha=alpha, progress=False, scheduler="synchronous")
    names = {"no store (baseline)": (None, {}),
             "NetCDF directory (q, r)": ("", {}),
             "zarr, per_group=True (q, r, Q, R)": (".zarr", {"per_group": True}),
             "zarr, default (Q, R; no q, r)": (".zarr", {})}
    # Best of the rounds of: the sweep call (members written), then .load() of its result.
    sweep_s = {name: np.inf for name in names}
    load_s = {name: np.inf for name in names}
    write_s = {name: np.inf for name in list(names)[1:]}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name, (sfx, kw) in names.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = None if sfx is None else os.path.join(tmp, "store" + sfx)
                t = time.perf_counter()
                ds = sweep("replay", entry.setup, dict(entry.over), store=path, **run, **kw)
                t1 = time.perf_counter()
                ds.load()
                t2 = time.perf_counter()
                sweep_s[name] = min(sweep_s[name], t1 - t)
                load_s[name] = min(load_s[name], t2 - t1)
                if path is not None:
                    sizes[name] = _disk_bytes(path)
                    write_s[name] = min(write_s[name], _writes(path, members, alpha))
    base = sweep_s["no store (baseline)"] + load_s["no store (baseline)"]
    member_bytes = sum(ds.nbytes for ds in _REPLAY.values())
    n = len(members)
    print(f"{'store':<34} {'sweep [s]':>9} {'load [s]':>8} {'ms/member':>9} "
          f"{'write ms/member':>15} {'size [MB]':>9}")
    for name in names:
        total = sweep_s[name] + load_s[name]
        write = write_s.get(name)
        size = sizes.get(name)
        print(f"{name:<34} {sweep_s[name]:9.2f} {load_s[name]:8.2f} "
              f"{1e3 * (total - base) / n:9.1f} "
              f"{'' if write is None else f'{1e3 * write / n:.1f}':>15} "
              f"{'' if size is None else f'{size / 1e6:.2f}':>9}")
    print(f"members in memory: {member_bytes / 1e6:.2f} MB (q, r, t, eg of their own sizes)")


def _writes(path: str, members, alpha) -> float:
    """Seconds to write the members again into the store at ``path``, as a sweep task does
    after computing one (the replayed member normalised, then written: `write_member` into a
    NetCDF directory, `ZarrTarget.prepare` and `ZarrTarget.write` into a zarr store)."""
    from scalex.experiments.combine import normalise_member
    from scalex.experiments.store import member_path, write_member

    data = [normalise_member(replay(m.setup, alpha, m.seed), alpha, m.setup.N).load()
            for m in members]
    target = _target(path) if path.endswith(".zarr") else None
    t = time.perf_counter()
    for mem, ds in zip(members, data, strict=True):
        ds.attrs.update(seed=mem.seed, sweep_kind="replay", sweep_key="k")
        if target is None:
            write_member(ds, member_path(path, "replay", mem.setup, mem.seed))
        else:
            target.write(mem.index, target.prepare(ds), "ok")
    return time.perf_counter() - t


def _target(path: str):
    from pathlib import Path

    from scalex.experiments.zarr_store import read_attrs, target_of

    return target_of(Path(path), read_attrs(Path(path)))


AUTO_SCRIPT = """
import json, sys, time, warnings
import numpy as np
import scalex
from scalex.experiments.sweep import sweep

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    base = scalex.Setup(K=2, M=2, N=1024, eta=0.1, beta=1.0, sigma_J=0.01)
    alpha = np.concatenate([[0.0], np.logspace(-2, 4, 61)])
    t0 = time.perf_counter()
    ds = sweep("ode", base, {"L": [1, 2, 4, 8, 16, 32, 64, 128]}, alpha=alpha,
               scheduler=sys.argv[1], workers=2, progress=False)
    print(json.dumps({"wall": time.perf_counter() - t0,
                      "chosen": ds.attrs["sweep_scheduler"]}))
"""


def auto_vs_serial(rounds: int) -> None:
    """Section 3: "auto" against serial on an 8-member ODE sweep, fresh process each."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "auto_vs_serial.py")
        with open(script, "w") as fh:
            fh.write(AUTO_SCRIPT)
        best = {"synchronous": np.inf, "auto": np.inf}
        chosen: list[str] = []
        for _ in range(max(rounds, 1)):
            for name in best:
                out = subprocess.run([sys.executable, script, name], capture_output=True,
                                     text=True, check=True, timeout=600)
                got = json.loads(out.stdout.strip().splitlines()[-1])
                best[name] = min(best[name], got["wall"])
                if name == "auto":
                    chosen.append(got["chosen"])
    ratio = best["auto"] / best["synchronous"]
    print("\n## Default scheduler, 8-member ODE sweep (K=M=2, N=1024, L=1..128), fresh process")
    print(f"{'configuration':<34} {'wall [s]':>9}")
    print(f"{'serial (synchronous, baseline)':<34} {best['synchronous']:9.2f}")
    print(f"{'auto (the default for ode)':<34} {best['auto']:9.2f}")
    print(f"auto / serial = {ratio:.2f}   ('auto' chose: {', '.join(chosen)})")


if __name__ == "__main__":
    sys.exit(main())
