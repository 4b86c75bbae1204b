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

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr
from numpy.typing import ArrayLike

from scalex.common.alpha import check_alpha
from scalex.common.progress import Progress
from scalex.experiments.combine import combine_members, placeholder_member, warn_bad_members
from scalex.experiments.execute import (
    SCHEDULERS,
    dask_config_scheduler,
    run_distributed,
    run_local,
)
from scalex.experiments.grid import grid_members
from scalex.experiments.kinds import get_kind
from scalex.experiments.store import (
    member_path,
    open_store,
    stored_ok,
    sweep_key,
    write_manifest,
)
from scalex.model.setup import Setup

__all__ = ["sweep"]


def sweep(
    kind: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None = None,
    seeds: int | Iterable[int] = (0,),
    alpha: ArrayLike = (0.0, 1.0),
    *,
    client: Any = None,
    store: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    **kind_kwargs: Any,
) -> xr.Dataset:
    """Run ``kind`` on every member of the grid ``over`` × ``seeds`` and combine the results.

    Parameters
    ----------
    kind : a key of `KINDS`: "ode" (`scalex.ode.solve_ode`), "simulate"
        (`scalex.simulate.simulate`), "linear" (`scalex.linear.linear_theory`) or a kind added
        with `register_kind`.
    base_setup : the Setup every member starts from.
    over : ``{field: values}`` for any scalar Setup field (L, K, M, N, beta, eta, sigma_J,
        trainable, ...); the full product grid is run. A key ``"K=M"`` sets both fields to each
        value on one axis named "K".
    seeds : the seeds of each grid point; an integer n means 0..n-1.
    alpha : the α grid every member reports on.
    client : None for the local dask scheduler, or a `distributed.Client` or a scheduler
        address ("tcp://127.0.0.1:8786").
    store : a directory for the result store; resumes a previous run (see module docstring).
    batch_size : at most this many members in flight on a cluster (default 2 per worker
        thread); locally, members are computed in batches of this size (default: all).
    progress : show a tqdm bar over members (None: only on a terminal).
    scheduler : local dask scheduler: "threads", "processes", "synchronous" or "auto" (time
        the first member, then use processes if they pay off, else run serially). Default:
        the dask config ``scheduler`` if set, else the kind's choice ("auto" for "ode",
        "threads" otherwise).
    workers : number of local workers (default: all cores).
    **kind_kwargs : passed to the kind, e.g. solver options of the ODE.

    Returns
    -------
    Dataset with dims (*sweep dims, seed, *schema dims), ``status(*sweep dims, seed)``,
    ``setup_hash(*sweep dims)`` and attrs ``sweep_dims``, ``sweep_kind``, ``sweep_over`` (JSON),
    ``padding``, ``sweep_scheduler`` (what ran the members of this call) and the base Setup's
    attributes. With a store it is the lazy, dask-backed `open_store` of that store.
    """
    spec = get_kind(kind)
    if not isinstance(base_setup, Setup):
        raise ValueError(f"base_setup: must be a scalex.Setup, got {type(base_setup).__name__}")
    alpha_arr = check_alpha(alpha)
    members = grid_members(base_setup, over, seeds)
    if scheduler is None:
        scheduler = dask_config_scheduler() or spec.scheduler
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: must be one of {SCHEDULERS}, got {scheduler!r}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")

    key = sweep_key(kind, alpha_arr, kind_kwargs)
    store_dir: str | None = None
    todo = members
    if store is not None:
        store_dir = str(Path(store).resolve())
        write_manifest(Path(store_dir), kind, base_setup, over, seeds, alpha_arr, kind_kwargs, key)
        todo = [
            m for m in members if not stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)
        ]
    calls = [(m, (spec.func, kind, m, alpha_arr, dict(kind_kwargs), store_dir, key)) for m in todo]

    with Progress(len(calls), f"{kind} sweep", "member", enabled=progress) as bar:
        if client is None:
            outcomes, used = run_local(calls, scheduler, workers, batch_size, bar)
        else:
            outcomes, used = run_distributed(calls, client, batch_size, bar), "distributed"

    if store_dir is not None:
        result = open_store(store_dir)
    else:
        datasets = {
            m.index: outcomes[m.index].data
            if outcomes[m.index].data is not None
            else placeholder_member(m.setup, alpha_arr, outcomes[m.index].error or "failed")
            for m in members
        }
        result = combine_members(datasets, members, kind, base_setup, over, alpha_arr, key)
    result.attrs["sweep_scheduler"] = used  # "none": every member came from the store
    warn_bad_members(result)
    return result


