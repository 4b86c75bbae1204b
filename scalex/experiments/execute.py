"""Parameter sweeps: many ODE solves, simulations or linear-theory runs as one Dataset.

A sweep is the product grid of ``over`` (values of `Setup` fields) times ``seeds``. Each
*member* (one `Setup` × one seed) is one dask task that calls a *kind* — a function
``kind(setup, alpha, seed, **kind_kwargs) -> xarray.Dataset`` registered in `KINDS` — and the
members are combined into one Dataset with the sweep parameters as plain orthogonal dimensions
(no stacked MultiIndex), in the order given, then ``seed``, then the schema dimensions.

Ragged dimensions
    Members can differ in L, K and M. The ``group``, ``student_i/j`` and ``teacher_n/m``
    dimensions of the result are those of the largest member; a smaller member's values beyond
    its own size are NaN (``attrs["padding"]`` says so). Per-member coordinates become
    multi-dimensional over the sweep dimensions they depend on, e.g. ``eigenvalue(L, group)``.

Failures
    A member that raises is recorded with ``status = "failed: <Error>: <message>"`` and NaN
    data; a member that diverges keeps the kind's own ``status = "diverged"``. The rest of the
    grid completes either way, and a warning counts the failed and diverged members.

Result store (``store=path``)
    Every member is written, as soon as it finishes and by the worker that ran it, to its own
    NetCDF file ``<kind>-<setup hash>-s<seed>.nc`` (atomically: temporary file and rename). A
    member that raised leaves a JSON marker ``<kind>-<setup hash>-s<seed>.failed.json`` with
    the error instead. A rerun skips every member whose file is present and valid, and retries
    the failed ones: an exception may be transient (memory, a lost worker), whereas a
    divergence is a deterministic result and is kept. ``manifest.json`` records the sweep
    specification so that `open_store` can rebuild the combined Dataset lazily (dask-backed).

Schedulers
    ``client=None`` runs on the local dask scheduler. The ODE solver is Python-level scipy code
    that holds the GIL, so threads do not overlap (they are even slower than a serial loop),
    while starting worker processes costs a few seconds (benchmarks/sweep_results.md): "ode"
    therefore uses "auto", which times the first member and starts processes only when the
    rest of the grid is long enough to pay for them, and otherwise runs serially.
    "simulate" (numba kernels that release the GIL), "linear" and registered kinds use
    threads. Worker processes are spawned, so a script that runs a sweep needs the usual
    ``if __name__ == "__main__":`` guard. ``client`` may be a
    `distributed.Client` or a scheduler address; members are then submitted in a bounded
    window (about two per worker thread) with `distributed.as_completed`, so the scheduler
    never holds the whole grid. With a store, the workers write the member files
    themselves, so on a multi-machine cluster the store must be on a shared file system.
"""

from __future__ import annotations

import itertools
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.experiments.combine import normalise_member
from scalex.experiments.errors import SweepWarning
from scalex.experiments.grid import Member
from scalex.experiments.store import (
    NETCDF_LOCK,
    marker_path,
    member_path,
    status_of,
    write_marker,
)
from scalex.schema import DivergenceWarning, to_netcdf

SCHEDULERS = ("auto", "threads", "processes", "synchronous")


#: Seconds it takes to start a local worker process and import scalex in it (measured on the
#: 2-core reference machine under load, benchmarks/sweep_results.md); "auto" uses processes
#: only when parallelism saves more than this.
PROCESS_STARTUP_S = 4.0


# ---------------------------------------------------------------------------------- members
class Outcome(NamedTuple):
    status: str
    data: xr.Dataset | None
    error: str | None


def run_member(
    func: Callable[..., xr.Dataset],
    kind: str,
    member: Member,
    alpha: NDArray[np.float64],
    kind_kwargs: Mapping[str, Any],
    store: str | None,
    key: str,
) -> Outcome:
    """Compute one member (the body of one dask task) and, with a store, write it there."""
    path = member_path(store, kind, member.setup, member.seed) if store else None
    try:
        with warnings.catch_warnings():
            # Divergence is reported once for the whole sweep, through the status.
            warnings.simplefilter("ignore", DivergenceWarning)
            ds = func(member.setup, alpha, member.seed, **kind_kwargs)
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"kind {kind!r} returned {type(ds).__name__}, not an xarray.Dataset")
        ds = normalise_member(ds, alpha, member.setup.N).load()
    except Exception as err:  # any error of one member is recorded; the grid goes on
        msg = f"failed: {type(err).__name__}: {err}".strip()
        if path is not None:
            write_marker(path, member, kind, msg + "\n" + traceback.format_exc())
        return Outcome("failed", None, msg)
    status = status_of(ds)
    ds.attrs.update(seed=member.seed, sweep_kind=kind, sweep_key=key)
    if path is not None:
        with NETCDF_LOCK:
            to_netcdf(ds, path)
        marker_path(path).unlink(missing_ok=True)
        return Outcome(status, None, None)
    return Outcome(status, ds, None)


# ---------------------------------------------------------------------------------- running
def run_local(
    calls: list[tuple[Member, tuple[Any, ...]]],
    scheduler: str,
    workers: int | None,
    batch_size: int | None,
    bar: Any,
) -> tuple[dict[tuple[int, ...], Outcome], str]:
    """Run the members on the local dask scheduler; return the outcomes and the scheduler."""
    from concurrent.futures.process import BrokenProcessPool

    import dask
    from dask.callbacks import Callback

    outcomes: dict[tuple[int, ...], Outcome] = {}
    if not calls:
        return outcomes, "none"
    n_workers = workers or os.cpu_count() or 1
    if scheduler == "auto":
        if len(calls) == 1 or n_workers == 1:
            scheduler = "synchronous"
        else:
            # Time one member here; start worker processes only if they will pay off.
            member, args = calls[0]
            tick = time.perf_counter()
            outcomes[member.index] = run_member(*args)
            bar.update(1)
            calls = calls[1:]
            rest = (time.perf_counter() - tick) * len(calls)
            saved = rest - rest / min(n_workers, len(calls))
            # GIL-bound members run slower in threads than one after another (measured).
            scheduler = "processes" if saved > PROCESS_STARTUP_S else "synchronous"
    batch = batch_size or len(calls)
    pool = None
    kwargs: dict[str, Any] = {"scheduler": scheduler}
    if scheduler != "synchronous":
        kwargs["num_workers"] = n_workers
    if scheduler == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # One pool for all batches: spawning workers (and importing scalex) costs seconds.
        ctx = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
        pool = ProcessPoolExecutor(n_workers, mp_context=ctx)
        kwargs["pool"] = pool

    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            bar.update(1)

    try:
        for start in range(0, len(calls), batch):
            chunk = calls[start : start + batch]
            tasks = [dask.delayed(run_member, pure=False)(*args) for _m, args in chunk]
            try:
                with _Tick():
                    results = dask.compute(*tasks, **kwargs)
            except BrokenProcessPool:
                # Spawned workers import the main module; a script without the main guard
                # kills them. Finish in this process rather than fail the whole sweep.
                warnings.warn(
                    "sweep: local worker processes could not start (a script that runs a "
                    "sweep needs `if __name__ == \"__main__\":`); running the rest serially",
                    SweepWarning, stacklevel=4,
                )
                kwargs = {"scheduler": "synchronous"}
                scheduler = "synchronous"
                results = []
                for _m, args in chunk:
                    results.append(run_member(*args))
                    bar.update(1)
            for (member, _args), outcome in zip(chunk, results, strict=True):
                outcomes[member.index] = outcome
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcomes, scheduler


def run_distributed(
    calls: list[tuple[Member, tuple[Any, ...]]],
    client: Any,
    batch_size: int | None,
    bar: Any,
) -> dict[tuple[int, ...], Outcome]:
    from distributed import Client, as_completed

    own = isinstance(client, str)
    if own:
        client = Client(client, set_as_default=False)
    outcomes: dict[tuple[int, ...], Outcome] = {}
    try:
        threads = sum(client.nthreads().values()) or 1
        window = batch_size or 2 * threads
        pending = iter(calls)
        by_key: dict[str, Member] = {}

        def submit(item: tuple[Member, tuple[Any, ...]]) -> Any:
            member, args = item
            key = f"scalex-{args[1]}-{member.setup.hash}-s{member.seed}-{args[6]}-" + "-".join(
                map(str, member.index)
            )
            fut = client.submit(run_member, *args, key=key, pure=False, retries=0)
            by_key[fut.key] = member
            return fut

        done = as_completed([submit(item) for item in itertools.islice(pending, window)],
                            loop=client.loop)
        for fut in done:
            member = by_key.pop(fut.key)
            try:
                outcome = fut.result()
            except Exception as err:  # a lost worker, not an error of the kind itself
                outcome = Outcome("failed", None, f"failed: {type(err).__name__}: {err}")
            fut.release()
            outcomes[member.index] = outcome
            bar.update(1)
            nxt = next(pending, None)
            if nxt is not None:
                done.add(submit(nxt))
    finally:
        if own:
            client.close()
    return outcomes


def dask_config_scheduler() -> str | None:
    """The local scheduler named in the dask config (e.g. by ``SCALEX_TEST_SCHEDULER``)."""
    import dask

    name = dask.config.get("scheduler", None)
    aliases = {"sync": "synchronous", "single-threaded": "synchronous", "threading": "threads",
               "multiprocessing": "processes"}
    name = aliases.get(name, name)
    return name if name in SCHEDULERS else None
