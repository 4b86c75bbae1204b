"""Parameter sweeps: many ODE solves, simulations or linear-theory runs as one Dataset.

`sweep` is the public entry point. It runs one *kind* on every *member* of the product grid
``over`` × ``seeds`` (one `Setup` × one seed) and combines the members into one Dataset whose
sweep parameters are plain orthogonal dimensions (no stacked MultiIndex), in the order given,
then ``seed``, then the schema dimensions. A kind is a function
``kind(setup, alpha, seed, **kind_kwargs) -> xarray.Dataset``: "ode", "simulate", "linear" or
one added with `scalex.experiments.kinds.register_kind`. With ``store=path`` every member is
kept on disk as it finishes and a rerun resumes; the result is then the lazy `open_store` of
that store. A path ending in ``.zarr`` is a zarr store (one zarr group: a template written
once, then one region per member, written by its worker with no lock; on a cluster the
ecosystem's pattern), any other path a directory of one NetCDF file per member.

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
  `scalex.experiments.zarr_store`: the zarr store, its template and member regions;
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
    run_member,
)
from scalex.experiments.grid import Member, grid_members
from scalex.experiments.kinds import get_kind
from scalex.experiments.store import (
    manifest_record,
    member_path,
    open_store,
    store_session,
    stored_ok,
    sweep_key,
    write_manifest,
)
from scalex.experiments.zarr_store import (
    ZarrTarget,
    check_store,
    create_template,
    finished,
    is_zarr_store,
    read_status,
    zarr_session,
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
    per_group: bool | None = None,
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
    store : the result store; resumes a previous run (see module docstring). A path ending
        in ``.zarr`` is a zarr store (`scalex.experiments.zarr_store`: one zarr group whose
        template is written once, then one region per member, written by the worker that ran
        it without a lock); any other path a directory of one NetCDF file per member
        (`scalex.experiments.store`).
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
    per_group : whether a zarr store keeps the per-group overlaps q^τ, r^τ (default False:
        it keeps ε_g, the λ-weighted Q and R, t and the kind's other variables). The NetCDF
        store and a sweep without store keep the members whole: there only None or True.
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

    zarr = store is not None and is_zarr_store(store)
    if per_group is not None and not isinstance(per_group, bool):
        raise ValueError(f"per_group: must be True, False or None, got {per_group!r}")
    if per_group is False and not zarr:
        raise ValueError("per_group: only a zarr store (store='<name>.zarr') can leave out "
                         "the per-group q and r")

    key = sweep_key(kind, alpha_arr, kind_kwargs)
    run_id = uuid.uuid4().hex
    store_dir: str | None = None
    todo = members
    session: Any = _NoStore()
    target: ZarrTarget | None = None
    if store is not None:
        store_dir = str(Path(store).resolve())
        session = zarr_session(Path(store_dir)) if zarr else store_session(Path(store_dir))
    outcomes: dict[tuple[int, ...], Outcome] = {}
    used = "none"
    with session:
        manifest = manifest_record(kind, base_setup, over, seeds, alpha_arr, kind_kwargs, key)
        if zarr:
            assert store_dir is not None
            target = check_store(Path(store_dir), manifest, per_group)
            if target is not None:
                status = read_status(Path(store_dir))
                todo = [m for m in members if not finished(status[m.index])]
        elif store_dir is not None:
            write_manifest(Path(store_dir), manifest)
            todo = [m for m in members
                    if not stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)]
        try:
            with Progress(len(todo), f"{kind} sweep", "member", enabled=progress) as bar:
                rest = todo
                if zarr and target is None:
                    assert store_dir is not None
                    target, rest = _zarr_template(Path(store_dir), spec.func, members, todo,
                                                  alpha_arr, kind_kwargs, manifest,
                                                  bool(per_group), run_id, outcomes, bar)
                    used = "synchronous" if outcomes else used
                where = target if zarr else store_dir
                calls = [(m, (spec.func, kind, m, alpha_arr, dict(kind_kwargs), where, key,
                              run_id)) for m in rest]
                if not calls:
                    pass
                elif client is None:
                    done, used = run_local(calls, scheduler, workers, batch_size, bar)
                    outcomes.update(done)
                else:
                    outcomes.update(run_distributed(calls, client, batch_size, bar,
                                                    float(scheduler_timeout)))
                    used = "distributed"
        except OSError as err:
            if not is_disk_full(err) or store_dir is None:
                raise
            if zarr:
                done_n = (int(finished(read_status(Path(store_dir))).sum())
                          if target is not None else 0)
            else:
                done_n = sum(stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)
                             for m in members)
            raise OSError(
                err.errno,
                f"sweep: stopped, the disk of the store is full: {err.strerror or err}. "
                f"{done_n} of {len(members)} members are finished and kept in {store_dir}; "
                f"free some space and rerun the same sweep to resume",
            ) from err

    _reemit_warnings(outcomes, todo, over)
    if store_dir is not None and (target is not None or not zarr):
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


def _zarr_template(
    store: Path,
    func: Any,
    members: Sequence[Member],
    todo: Sequence[Member],
    alpha: Any,
    kind_kwargs: Mapping[str, Any],
    manifest: Mapping[str, Any],
    per_group: bool,
    run_id: str,
    outcomes: dict[tuple[int, ...], Outcome],
    bar: Any,
) -> tuple[ZarrTarget | None, list[Member]]:
    """Run members in this process until one finishes, write the zarr store's template from
    it, then its region and the failures before it; return the target and the members left.

    If every member fails, no template is written (the next run tries again).
    """
    kind = manifest["kind"]
    for i, member in enumerate(todo):
        outcome = run_member(func, kind, member, alpha, dict(kind_kwargs), None,
                             manifest["key"], run_id)
        outcomes[member.index] = outcome
        bar.update(1)
        if outcome.data is None:
            continue
        target = create_template(store, outcome.data, members, manifest, per_group)
        for m in todo[: i + 1]:
            got = outcomes[m.index]
            if got.data is not None:
                target.write(m.index, target.prepare(got.data), got.status)
                outcomes[m.index] = got._replace(data=None)
            else:
                target.write(m.index, {}, got.error or "failed", got.trace)
        return target, list(todo[i + 1:])
    return None, []


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

