"""Parameter sweeps: many ODE solves, simulations or linear-theory runs as one Dataset.

`sweep` is the public entry point. It runs one *kind* on every *member* of the product grid
``over`` × ``seeds`` (one `Setup` × one seed) and combines the members into one Dataset whose
sweep parameters are plain orthogonal dimensions (no stacked MultiIndex), in the order given,
then ``seed``, then the schema dimensions. A kind is a function
``kind(setup, alpha, seed, **kind_kwargs) -> xarray.Dataset``: "ode", "simulate", "linear" or
one added with `scalex.experiments.kinds.register_kind`. With ``store=path`` every member is
kept on disk as it finishes and a rerun resumes; the result is then the lazy `open_store` of
that store.

Failures
    A member that raises is recorded with ``status = "failed: <Error>: <message>"`` and NaN
    data; a member that diverges keeps the kind's own ``status = "diverged"``. The rest of the
    grid completes either way. A `scalex.experiments.errors.SweepWarning` counts the failed
    (and, from a store, missing) members, a `scalex.schema.DivergenceWarning` the diverged ones.
    Warnings that members raise (on any scheduler) reach the caller once per distinct message,
    naming the first member; ``warnings.filters`` is never changed.

Faults
    Ctrl-C stops local worker processes at once; they also exit if the sweep's process is
    killed. A full disk stops the sweep with ``OSError(ENOSPC)`` naming the file, a cluster
    scheduler unreachable for ``scheduler_timeout`` s with `SchedulerLostError`; with a store,
    finished members are kept, and a rerun resumes (and removes the temporaries of killed
    writes when no other sweep is running into the store).

The details live next to their code:

* `scalex.model.axes`: sweep axes (``"K=M"`` links two fields); `scalex.experiments.grid`:
  the members;
* `scalex.experiments.kinds`: the registered kinds;
* `scalex.experiments.execute`: local and distributed execution, the choice of scheduler;
* `scalex.experiments.store`: the result store, resume, failure markers, ``manifest.json``;
* `scalex.experiments.combine`: combining members, NaN padding of ragged L, K, M;
* `scalex.experiments.errors`: the exceptions and warnings of sweeps.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr
from numpy.typing import ArrayLike

from scalex.common.alpha import check_alpha
from scalex.common.progress import Progress
from scalex.common.schedulers import normalise_scheduler
from scalex.experiments.combine import combine_members, placeholder_member, warn_bad_members
from scalex.experiments.execute import (
    Outcome,
    dask_config_scheduler,
    is_disk_full,
    run_distributed,
    run_local,
)
from scalex.experiments.grid import Member, grid_members
from scalex.experiments.kinds import get_kind
from scalex.experiments.store import (
    member_path,
    open_store,
    store_session,
    stored_ok,
    sweep_key,
    write_manifest,
)
from scalex.model.axes import parse_over
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
    scheduler_timeout: float = 60.0,
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
    client : None for the local dask scheduler, or a `distributed.Client`, a cluster object
        (anything with ``.scheduler_address``, e.g. `distributed.LocalCluster`) or a
        scheduler address ("tcp://127.0.0.1:8786").
    store : a directory for the result store; resumes a previous run (see module docstring).
    batch_size : at most this many members in flight on a cluster (default 2 per worker
        thread); locally, members are computed in batches of this size (default: all).
    progress : show a tqdm bar over members (None: only on a terminal).
    scheduler : "auto", or a name of `scalex.common.schedulers` ("synchronous"/"sync",
        "threads", "processes", or "distributed": the active default `distributed.Client`).
        "auto" runs two members serially, times the second, then uses processes if they pay
        off by a clear margin, else runs the rest serially. Default: the dask config
        ``scheduler`` if it names a local one, else the kind's choice ("auto" for "ode",
        "threads" otherwise).
    workers : number of local workers (default: all cores).
    scheduler_timeout : seconds a cluster's scheduler may be unreachable before the sweep
        raises `SchedulerLostError` (> 0; default 60).
    **kind_kwargs : passed to the kind, e.g. solver options of the ODE.

    Returns
    -------
    Dataset with dims (*sweep dims, seed, *schema dims), ``status(*sweep dims, seed)``,
    ``setup_hash(*sweep dims)`` and attrs ``sweep_dims``, ``sweep_kind``, ``sweep_over`` (JSON),
    ``sweep_fields`` (the swept Setup fields), ``padding``, ``sweep_scheduler`` (what ran the
    members of this call) and the BASE Setup's attributes: ``ds.sel(...).scalex.setup`` gives
    a selected member's own Setup. With a store it is the lazy, dask-backed `open_store` of
    that store.

    Raises
    ------
    OSError (ENOSPC) : the store's disk is full; names the file, finished members are kept.
    SchedulerLostError : the cluster's scheduler was unreachable for ``scheduler_timeout``.
    """
    spec = get_kind(kind)
    if not isinstance(base_setup, Setup):
        raise ValueError(f"base_setup: must be a scalex.Setup, got {type(base_setup).__name__}")
    alpha_arr = check_alpha(alpha)
    members = grid_members(base_setup, over, seeds)
    if scheduler is None:
        scheduler = dask_config_scheduler() or spec.scheduler
    scheduler = normalise_scheduler(scheduler, extra=("auto",))
    if scheduler == "distributed" and client is None:
        client = _default_client()
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    if isinstance(scheduler_timeout, bool) or not float(scheduler_timeout) > 0:
        raise ValueError(f"scheduler_timeout: must be a number of seconds > 0, "
                         f"got {scheduler_timeout!r}")

    key = sweep_key(kind, alpha_arr, kind_kwargs)
    run_id = uuid.uuid4().hex
    store_dir: str | None = None
    todo = members
    session: Any = _NoStore()
    if store is not None:
        store_dir = str(Path(store).resolve())
        session = store_session(Path(store_dir))
    with session:
        if store_dir is not None:
            write_manifest(Path(store_dir), kind, base_setup, over, seeds, alpha_arr,
                           kind_kwargs, key)
            todo = [m for m in members
                    if not stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)]
        calls = [(m, (spec.func, kind, m, alpha_arr, dict(kind_kwargs), store_dir, key, run_id))
                 for m in todo]
        try:
            with Progress(len(calls), f"{kind} sweep", "member", enabled=progress) as bar:
                if client is None:
                    outcomes, used = run_local(calls, scheduler, workers, batch_size, bar)
                else:
                    outcomes = run_distributed(calls, client, batch_size, bar,
                                               float(scheduler_timeout))
                    used = "distributed"
        except OSError as err:
            if not is_disk_full(err) or store_dir is None:
                raise
            done = sum(stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)
                       for m in members)
            raise OSError(
                err.errno,
                f"sweep: stopped, the disk of the store is full: {err.strerror or err}. "
                f"{done} of {len(members)} members are finished and kept in {store_dir}; "
                f"free some space and rerun the same sweep to resume",
            ) from err

    _reemit_warnings(outcomes, todo, over)
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


class _NoStore:
    def __enter__(self) -> int:
        return 0

    def __exit__(self, *exc: object) -> None:
        return None


def _default_client() -> Any:
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError) as err:
        raise ValueError(
            "scheduler: 'distributed' needs an active distributed.Client (or pass client=)"
            f"; {err}"
        ) from None


def _reemit_warnings(
    outcomes: Mapping[tuple[int, ...], Outcome],
    members: Sequence[Member],
    over: Mapping[str, Sequence[Any]] | None,
) -> None:
    """Warn the caller once per distinct (category, message) that members raised."""
    axes = parse_over(over)
    seen: dict[tuple[type[Warning], str], list[Member]] = {}
    for m in members:
        outcome = outcomes.get(m.index)
        for category, message in (outcome.warnings if outcome is not None else ()):
            seen.setdefault((category, message), []).append(m)
    for (category, message), who in seen.items():
        first = who[0]
        label = ", ".join([*(f"{ax.dim}={ax.values[i]!r}" for ax, i in
                             zip(axes, first.index, strict=False)), f"seed={first.seed}"])
        more = f" and {len(who) - 1} more" if len(who) > 1 else ""
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning
        warnings.warn(f"sweep member ({label}){more}: {message}", category, stacklevel=3)

