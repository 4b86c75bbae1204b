"""Running sweep members: locally on dask (serial, threads, worker processes) or on a cluster.

One member is one call of `run_member` (the body of one dask task). Around it this module
guarantees what a long sweep needs when things go wrong:

Warnings
    Warnings a member raises are recorded per member without touching ``warnings.filters``
    (`capture_warnings`, thread-safe), returned with the member's `Outcome` and re-emitted to
    the caller by `scalex.sweep` — also from worker threads, processes and cluster workers.
Local worker processes
    are started with `_init_worker`: they ignore SIGINT (the parent stops them), and exit as
    soon as their parent is gone (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, plus a watchdog
    thread polling the parent as a portable fallback). An interrupt (Ctrl-C) or any error in
    the parent kills them at once instead of waiting for the members in flight: what they
    were writing is an atomic temporary, which the next run into the store removes.
"auto"
    runs the first two members serially and times the SECOND (the first one pays one-time
    imports, compilation and caches). Worker processes are started only when the projected
    saving on the rest exceeds `PARALLEL_MARGIN` × `PROCESS_STARTUP_S`; otherwise the rest
    runs serially, so "auto" is never much slower than serial on a short sweep.
Distributed
    ``client`` may be a `distributed.Client`, a cluster object (anything with
    ``.scheduler_address``, e.g. `distributed.LocalCluster`) or an address string. Members are
    submitted in a bounded window; the scheduler is watched, and if it cannot be reached for
    ``scheduler_timeout`` seconds `SchedulerLostError` is raised (the store keeps every member
    that was written).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.common.capture import WarningRecord, capture_warnings
from scalex.common.schedulers import normalise_scheduler
from scalex.experiments.combine import normalise_member
from scalex.experiments.errors import SchedulerLostError, SweepWarning
from scalex.experiments.grid import Member
from scalex.experiments.store import (
    marker_path,
    member_path,
    status_of,
    write_marker,
    write_member,
)
from scalex.experiments.zarr_store import ZarrTarget, finished

#: The local schedulers `scalex.sweep` runs members on ("auto" chooses one of the others).
SCHEDULERS = ("auto", "synchronous", "threads", "processes")

#: Seconds it takes to start a local worker process and import scalex in it (measured on the
#: 2-core reference machine under load, benchmarks/sweep_results.md).
PROCESS_STARTUP_S = 4.0

#: "auto" starts processes only when they save more than this many times `PROCESS_STARTUP_S`:
#: the projection from one member is rough, and a wrong "processes" costs more than a wrong
#: "synchronous" on a short sweep.
PARALLEL_MARGIN = 2.0

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

#: run ids of interrupted in-process runs: their members still running on threads neither
#: start nor write anything more.
_CANCELLED: set[str] = set()


# ---------------------------------------------------------------------------------- members
def _as_notes(caught: list[WarningRecord]) -> tuple[tuple[type[Warning], str], ...]:
    """A member's warnings as (category, message), the form its `Outcome` carries."""
    return tuple((category, message) for category, message, _, _ in caught)


class Outcome(NamedTuple):
    status: str
    data: xr.Dataset | None
    error: str | None
    warnings: tuple[tuple[type[Warning], str], ...] = ()
    trace: str = ""  # the traceback of a failed member


def run_member(
    func: Callable[..., xr.Dataset],
    kind: str,
    member: Member,
    alpha: NDArray[np.float64],
    kind_kwargs: Mapping[str, Any],
    store: str | ZarrTarget | None,
    key: str,
    run_id: str = "",
) -> Outcome:
    """Compute one member (the body of one dask task) and, with a store, write it there.

    ``store`` is a NetCDF store directory (one file per member) or the `ZarrTarget` of a zarr
    store (the member's region; a member the zarr store already holds as finished is not
    computed again, e.g. when a cluster reruns the task of a lost worker). An exception of the
    kind is recorded (a failure marker, or the member's status and error in a zarr store); a
    full disk is not a member's failure and propagates as ``OSError(ENOSPC)`` naming the store.
    """
    if run_id in _CANCELLED:
        return Outcome("cancelled", None, "cancelled")
    zarr = store if isinstance(store, ZarrTarget) else None
    path = (member_path(store, kind, member.setup, member.seed)
            if store is not None and zarr is None else None)
    if zarr is not None:
        done = zarr.stored_status(member.index)
        if finished(done):  # a task run again after a lost worker: its member is stored
            return Outcome(done, None, None)
    arrays: dict[str, Any] = {}
    with capture_warnings() as caught:
        try:
            ds = func(member.setup, alpha, member.seed, **kind_kwargs)
            if not isinstance(ds, xr.Dataset):
                raise TypeError(
                    f"kind {kind!r} returned {type(ds).__name__}, not an xarray.Dataset")
            ds = normalise_member(ds, alpha, member.setup.N).load()
            if zarr is not None:
                arrays = zarr.prepare(ds)
        except Exception as err:  # any error of one member is recorded; the grid goes on
            msg = f"failed: {type(err).__name__}: {err}".strip()
            trace = traceback.format_exc()
            if run_id not in _CANCELLED:
                if path is not None:
                    write_marker(path, member, kind, msg + "\n" + trace)
                elif zarr is not None:
                    zarr.write(member.index, {}, msg, trace)
            return Outcome("failed", None, msg, _as_notes(caught), trace)
    status = status_of(ds)
    ds.attrs.update(seed=member.seed, sweep_kind=kind, sweep_key=key)
    if zarr is not None or path is not None:
        if run_id in _CANCELLED:
            return Outcome("cancelled", None, "cancelled", _as_notes(caught))
        if zarr is not None:
            zarr.write(member.index, arrays, status)
        elif path is not None:
            write_member(ds, path)
            marker_path(path).unlink(missing_ok=True)
        return Outcome(status, None, None, _as_notes(caught))
    return Outcome(status, ds, None, _as_notes(caught))


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL


# ---------------------------------------------------------------------------------- processes
def _init_worker(parent: int) -> None:
    """Initializer of a local worker process: die with the parent, leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    start_ppid = os.getppid()
    if not _alive(parent):  # the parent died before the prctl above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, start_ppid), daemon=True,
                     name="scalex-parent-watchdog").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent: int, start_ppid: int, interval: float = 0.5) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != start_ppid or not _alive(parent):
            os._exit(1)


def _start_pool(n_workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import dask

    ctx = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
    return ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


def _kill_pool(pool: Any) -> None:
    """Stop a process pool now: cancel what is queued and kill the workers."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            proc.kill()
    for proc in procs:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            proc.join(2.0)


# ---------------------------------------------------------------------------------- local
def _choose_auto(
    calls: list[tuple[Member, tuple[Any, ...]]],
    n_workers: int,
    outcomes: dict[tuple[int, ...], Outcome],
    bar: Any,
) -> tuple[str, list[tuple[Member, tuple[Any, ...]]]]:
    """Run the first two members serially, time the second, and pick the rest's scheduler."""
    if len(calls) <= 2 or n_workers == 1:
        return "synchronous", calls
    took = np.inf
    for member, args in calls[:2]:
        tick = time.perf_counter()
        outcomes[member.index] = run_member(*args)
        took = min(took, time.perf_counter() - tick)  # the first one includes the warm-up
        bar.update(1)
    rest = calls[2:]
    serial = took * len(rest)
    saved = serial - serial / min(n_workers, len(rest))
    # GIL-bound members run slower in threads than one after another (measured).
    chosen = "processes" if saved > PARALLEL_MARGIN * PROCESS_STARTUP_S else "synchronous"
    return chosen, rest


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
    run_id = str(calls[0][1][-1])
    try:
        if scheduler == "auto":
            scheduler, calls = _choose_auto(calls, n_workers, outcomes, bar)
        batch = batch_size or len(calls) or 1
        pool = None
        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if scheduler != "synchronous":
            kwargs["num_workers"] = n_workers
        if scheduler == "processes":
            # One pool for all batches: spawning workers (and importing scalex) costs seconds.
            pool = _start_pool(n_workers)
            # One member per submission: dask's default (6) leaves workers idle at the end.
            kwargs.update(pool=pool, chunksize=1)

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
                    _kill_pool(pool)
                    pool = None
                    kwargs = {"scheduler": "synchronous"}
                    scheduler = "synchronous"
                    results = []
                    for _m, args in chunk:
                        results.append(run_member(*args))
                        bar.update(1)
                for (member, _args), outcome in zip(chunk, results, strict=True):
                    outcomes[member.index] = outcome
        except BaseException:
            # Ctrl-C, a full disk, ...: stop now, not after the members in flight.
            if pool is not None:
                _kill_pool(pool)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
    except BaseException:
        _CANCELLED.add(run_id)  # members still on threads neither start nor write
        raise
    return outcomes, scheduler


# ---------------------------------------------------------------------------------- cluster
def resolve_client(client: Any, timeout: float) -> tuple[Any, bool]:
    """A `distributed.Client` for ``client``, and whether this call owns (must close) it."""
    from distributed import Client

    if isinstance(client, Client):
        return client, False
    if isinstance(client, str):
        return Client(client, set_as_default=False, timeout=timeout), True
    if isinstance(getattr(client, "scheduler_address", None), str):  # LocalCluster, ...
        return Client(client, set_as_default=False, timeout=timeout), True
    raise ValueError(
        "client: must be a distributed.Client, a cluster object with .scheduler_address "
        f"(e.g. distributed.LocalCluster) or an address 'tcp://host:port', "
        f"got {type(client).__name__}"
    )


def _reachable(client: Any, timeout: float) -> bool:
    """Whether the scheduler answers an identity request within ``timeout`` seconds."""
    if client.status != "running":
        return False
    try:
        client.sync(client.scheduler.identity, callback_timeout=timeout)
    except Exception:  # timeout, closed comm, refused connection: not reachable now
        return False
    return True


def run_distributed(
    calls: list[tuple[Member, tuple[Any, ...]]],
    client: Any,
    batch_size: int | None,
    bar: Any,
    scheduler_timeout: float = 60.0,
) -> dict[tuple[int, ...], Outcome]:
    """Run the members on a dask cluster in a bounded window of futures.

    Raises `SchedulerLostError` if the scheduler cannot be reached for ``scheduler_timeout``
    seconds, and re-raises a member's full-disk OSError.
    """
    client, own = resolve_client(client, scheduler_timeout)
    address = getattr(client, "scheduler", None) and client.scheduler.address
    outcomes: dict[tuple[int, ...], Outcome] = {}
    live: dict[Any, Member] = {}
    heartbeat = max(0.2, min(5.0, scheduler_timeout / 3))
    try:
        threads = sum(client.nthreads().values()) or 1
        window = batch_size or 2 * threads
        pending = iter(calls)

        def submit(item: tuple[Member, tuple[Any, ...]]) -> None:
            member, args = item
            key = f"scalex-{args[1]}-{member.setup.hash}-s{member.seed}-{args[6]}-" + "-".join(
                map(str, member.index)
            )
            live[client.submit(run_member, *args, key=key, pure=False, retries=0)] = member

        for item in itertools.islice(pending, window):
            submit(item)
        contact = time.monotonic()  # the last time the scheduler was known to be alive
        while live:
            done = [fut for fut in live if fut.done()]
            now = time.monotonic()
            if client.status == "running":
                if done or (now - contact >= heartbeat and _reachable(client, heartbeat)):
                    contact = time.monotonic()
            if time.monotonic() - contact > scheduler_timeout:
                raise SchedulerLostError(
                    f"sweep: lost the dask scheduler at {address}: no contact for "
                    f"{time.monotonic() - contact:.1f} s (scheduler_timeout="
                    f"{scheduler_timeout:g} s); {len(outcomes)} of {len(calls)} members "
                    "finished in this run (with a store they are kept there: rerun the same "
                    "sweep to resume)"
                )
            if client.status != "running" or not done:
                # Results of a disconnected client are not to be trusted yet.
                time.sleep(0.05)
                continue
            for fut in done:
                member = live.pop(fut)
                try:
                    outcome = fut.result()
                except OSError as err:
                    if is_disk_full(err):
                        raise
                    outcome = Outcome("failed", None, f"failed: {type(err).__name__}: {err}")
                except (Exception, asyncio.CancelledError) as err:  # a lost worker, ...
                    outcome = Outcome("failed", None, f"failed: {type(err).__name__}: {err}")
                fut.release()
                outcomes[member.index] = outcome
                bar.update(1)
                nxt = next(pending, None)
                if nxt is not None:
                    submit(nxt)
    finally:
        live.clear()
        if own:
            with contextlib.suppress(Exception):
                client.close(timeout=min(scheduler_timeout, 10.0))
    return outcomes


def dask_config_scheduler() -> str | None:
    """The local scheduler named in the dask config (e.g. by ``SCALEX_TEST_SCHEDULER``)."""
    import dask

    name = dask.config.get("scheduler", None)
    try:
        return normalise_scheduler(name, allowed=SCHEDULERS[1:])
    except ValueError:  # unset, a distributed default client, or foreign: the kind decides
        return None
