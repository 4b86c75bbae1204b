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

import datetime as _dt
import hashlib
import itertools
import json
import os
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from ._version import __version__
from .schema import COORDS, DIMS, DivergenceWarning, annotate, base_attrs, to_netcdf
from .setup import ATTR_KEY, Setup

__all__ = [
    "KINDS",
    "Kind",
    "KindUnavailableError",
    "Member",
    "StoreMismatchError",
    "SweepWarning",
    "grid_members",
    "member_path",
    "member_setup",
    "open_store",
    "register_kind",
    "sweep",
]

MANIFEST = "manifest.json"
STORE_FORMAT = "scalex-sweep-store"
SCHEDULERS = ("auto", "threads", "processes", "synchronous")
#: Seconds it takes to start a local worker process and import scalex in it (measured on the
#: 2-core reference machine under load, benchmarks/sweep_results.md); "auto" uses processes
#: only when parallelism saves more than this.
PROCESS_STARTUP_S = 4.0
# Fields holding tuples describe a whole spectrum or second layer, not one axis value.
_UNSWEEPABLE = ("v", "w", "eigenvalues", "multiplicities")
# libnetcdf/HDF5 are not thread-safe and xarray holds its locks only while it opens a file,
# so concurrent writes from worker threads crash; every NetCDF access of a sweep takes this.
_NETCDF_LOCK = threading.Lock()
PADDING_NOTE = (
    "ragged dims (group, student_i, student_j, teacher_n, teacher_m) are NaN-padded to the "
    "largest member; a member's own sizes are the L, K, M of its Setup"
)


class KindUnavailableError(RuntimeError):
    """A sweep kind whose implementing module or function cannot be imported."""


class StoreMismatchError(ValueError):
    """A store directory that holds a sweep with another α grid, kind or kind options."""


class SweepWarning(RuntimeWarning):
    """Some members of a sweep failed (their data are NaN, their status says why)."""


# ---------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """A registered sweep kind: ``func(setup, alpha, seed, **kwargs) -> Dataset`` for ONE member.

    ``scheduler`` is the local dask scheduler the kind runs best on: "threads" for code that
    releases the GIL or is cheap, "processes" for GIL-bound Python, or "auto": time the first
    member, then use processes if the rest take long enough to pay for starting them, else
    run them one after another. ``requires`` names the ``module:function`` the kind needs;
    it is checked before any work starts.
    """

    name: str
    func: Callable[..., xr.Dataset]
    scheduler: str = "threads"
    requires: str | None = None

    def check_available(self) -> None:
        """Raise `KindUnavailableError` if the implementing function cannot be imported."""
        if self.requires is None:
            return
        module, _, attr = self.requires.partition(":")
        try:
            getattr(import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise KindUnavailableError(
                f"kind {self.name!r} needs {module}.{attr}, which is not available "
                f"({type(err).__name__}: {err})"
            ) from None


def _ode_member(setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any) -> xr.Dataset:
    from .ode import solve_ode

    kwargs.setdefault("progress", False)
    return solve_ode(setup, alpha, seed=seed, **kwargs)


def _simulate_member(
    setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any
) -> xr.Dataset:
    from .simulate import simulate

    kwargs.setdefault("progress", False)
    # The sweep already parallelises over members; nested dask would oversubscribe.
    kwargs.setdefault("scheduler", "synchronous")
    return simulate(setup, alpha, seeds=[seed], **kwargs)


def _linear_member(
    setup: Setup, alpha: NDArray[np.float64], seed: int, **kwargs: Any
) -> xr.Dataset:
    from .linear import linear_theory

    return linear_theory(setup, alpha, seed=seed, **kwargs)


#: name -> `Kind`. Add kinds with `register_kind`.
KINDS: dict[str, Kind] = {
    "ode": Kind("ode", _ode_member, "auto", "scalex.ode:solve_ode"),
    # The SGD kernel is numba nogil code: threads run it in parallel.
    "simulate": Kind("simulate", _simulate_member, "threads", "scalex.simulate:simulate"),
    "linear": Kind("linear", _linear_member, "threads", "scalex.linear:linear_theory"),
}


def register_kind(
    name: str,
    func: Callable[..., xr.Dataset],
    *,
    scheduler: str = "threads",
    overwrite: bool = False,
) -> Kind:
    """Register ``func(setup, alpha, seed, **kwargs) -> Dataset`` as sweep kind ``name``.

    The function computes ONE member and must be picklable for the "processes" scheduler and
    for a distributed cluster (a module-level function of an importable module).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: must be an identifier string, got {name!r}")
    if not callable(func):
        raise ValueError(f"func: must be callable, got {type(func).__name__}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: must be one of {SCHEDULERS}, got {scheduler!r}")
    if name in KINDS and not overwrite:
        raise ValueError(f"name: kind {name!r} is already registered (pass overwrite=True)")
    KINDS[name] = Kind(name, func, scheduler)
    return KINDS[name]


def _get_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {sorted(KINDS)}, got {kind!r}")
    spec = KINDS[kind]
    spec.check_available()
    return spec


# ---------------------------------------------------------------------------------- grid
class Member(NamedTuple):
    """One sweep member: its position in the grid, its Setup and its seed."""

    index: tuple[int, ...]
    setup: Setup
    seed: int


@dataclass(frozen=True)
class _Axis:
    dim: str
    fields: tuple[str, ...]
    values: tuple[Any, ...]


_SETUP_FIELDS = {f.name for f in fields(Setup)}


def _parse_over(over: Mapping[str, Sequence[Any]] | None) -> list[_Axis]:
    """Check ``over``; a key "K=M" sets several fields to the same value on one axis "K"."""
    axes: list[_Axis] = []
    seen: set[str] = set()
    for key, values in (over or {}).items():
        names = tuple(part.strip() for part in str(key).split("="))
        for name in names:
            if name not in _SETUP_FIELDS:
                raise ValueError(
                    f"over: {name!r} is not a Setup field; allowed: {sorted(_SETUP_FIELDS)}"
                )
            if name in _UNSWEEPABLE:
                raise ValueError(
                    f"over: {name!r} holds a sequence and cannot be a sweep axis; "
                    f"sweep one scalar field at a time"
                )
            if name in seen:
                raise ValueError(f"over: field {name!r} appears on more than one axis")
            seen.add(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"over[{key!r}]: must be a list of values, got {values!r}")
        vals = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
        if not vals:
            raise ValueError(f"over[{key!r}]: must hold at least one value")
        for v in vals:
            if v is None or not isinstance(v, (int, float, str)):
                raise ValueError(
                    f"over[{key!r}]: values must be numbers or strings, got {v!r}"
                )
        if len(set(vals)) != len(vals):
            raise ValueError(f"over[{key!r}]: values must be distinct, got {list(vals)}")
        axes.append(_Axis(names[0], names, vals))
    return axes


def _parse_seeds(seeds: int | Iterable[int]) -> tuple[int, ...]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(
                f"seeds: an integer n means seeds 0..n-1 and must be >= 1, got {seeds}")
        return tuple(range(int(seeds)))
    out = tuple(seeds)
    if not out:
        raise ValueError("seeds: must hold at least one seed")
    for s in out:
        if isinstance(s, bool) or not float(s).is_integer() or s < 0:
            raise ValueError(f"seeds: must be integers >= 0, got {s!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds: must be distinct, got {list(out)}")
    return tuple(int(s) for s in out)


def _parse_alpha(alpha: ArrayLike) -> NDArray[np.float64]:
    a = np.atleast_1d(np.asarray(alpha, dtype=float))
    if a.ndim != 1 or a.size < 1:
        raise ValueError("alpha: must be a non-empty 1-D sequence of times")
    if not np.all(np.isfinite(a)) or a[0] < 0 or np.any(np.diff(a) <= 0):
        raise ValueError("alpha: must be finite, >= 0 and strictly increasing")
    return a


def grid_members(
    base_setup: Setup, over: Mapping[str, Sequence[Any]] | None, seeds: int | Iterable[int]
) -> list[Member]:
    """Every member of the product grid ``over`` × ``seeds`` in C order (the last axis fastest).

    Raises ValueError naming the grid point whose Setup is invalid.
    """
    axes = _parse_over(over)
    seed_list = _parse_seeds(seeds)
    setups: dict[tuple[int, ...], Setup] = {}
    for idx in itertools.product(*(range(len(ax.values)) for ax in axes)):
        changes = {
            name: ax.values[i] for ax, i in zip(axes, idx, strict=True) for name in ax.fields
        }
        try:
            setups[idx] = base_setup.replace(**changes)
        except ValueError as err:
            point = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            raise ValueError(f"over: grid point ({point}) is not a valid Setup: {err}") from None
    return [
        Member((*idx, j), setup, seed)
        for idx, setup in setups.items()
        for j, seed in enumerate(seed_list)
    ]


def member_path(store: str | os.PathLike[str], kind: str, setup: Setup, seed: int) -> Path:
    """The store file of one member: ``<store>/<kind>-<setup hash>-s<seed>.nc``."""
    return Path(store) / f"{kind}-{setup.hash}-s{int(seed)}.nc"


def _marker_path(path: Path) -> Path:
    return path.with_suffix(".failed.json")


def member_setup(ds: xr.Dataset, **coords: Any) -> Setup:
    """The `Setup` of one sweep member, e.g. ``member_setup(ds, L=4, K=2)``.

    Every sweep dimension of ``ds`` (``attrs["sweep_dims"]``) must be given.
    """
    base = Setup.from_attrs(ds.attrs)
    over = json.loads(ds.attrs.get("sweep_over", "{}"))
    axes = _parse_over(over)
    missing = [ax.dim for ax in axes if ax.dim not in coords]
    if missing:
        raise ValueError(f"coords: missing sweep dimension(s) {missing}")
    changes = {name: coords[ax.dim] for ax in axes for name in ax.fields}
    changes = {k: v.item() if isinstance(v, np.generic) else v for k, v in changes.items()}
    return base.replace(**changes)


# ---------------------------------------------------------------------------------- members
class _Outcome(NamedTuple):
    status: str
    data: xr.Dataset | None
    error: str | None


def _sweep_key(kind: str, alpha: NDArray[np.float64], kind_kwargs: Mapping[str, Any]) -> str:
    """Hash of what, besides Setup and seed, determines a member's result."""
    blob = json.dumps(
        {"kind": kind, "alpha": [float(a).hex() for a in alpha], "kwargs": _jsonable(kind_kwargs)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _normalise(ds: xr.Dataset, alpha: NDArray[np.float64], N: int) -> xr.Dataset:
    """One member as the combiner expects it: no seed dim, a 0-d status, the requested α.

    A kind may report α rounded to whole SGD steps (n/N, `scalex.simulate`); within that
    rounding the requested grid is used, so members of different N share one α axis.
    """
    if "seed" in ds.dims:
        if ds.sizes["seed"] != 1:
            raise ValueError(f"kind returned {ds.sizes['seed']} seeds for one member")
        ds = ds.isel(seed=0, drop=True)
    if "seed" in ds.coords:
        ds = ds.drop_vars("seed")
    if "status" not in ds:
        ds["status"] = ((), np.array("ok", dtype=object))
    elif ds["status"].ndim:
        raise ValueError(f"kind returned status with dims {ds['status'].dims}")
    if "alpha" in ds.indexes:
        a = ds.indexes["alpha"].to_numpy()
        if a.shape == alpha.shape and np.all(np.abs(a - alpha) <= 0.5 / N + 1e-12 * alpha):
            ds = ds.assign_coords(alpha=alpha)
    return ds


def _status_of(ds: xr.Dataset) -> str:
    return str(np.asarray(ds["status"].values).item())


def _write_marker(path: Path, member: Member, kind: str, error: str) -> None:
    record = {
        "kind": kind,
        "seed": member.seed,
        "setup": member.setup.to_dict(),
        "setup_hash": member.setup.hash,
        "error": error,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json_atomic(_marker_path(path), record)


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run_member(
    func: Callable[..., xr.Dataset],
    kind: str,
    member: Member,
    alpha: NDArray[np.float64],
    kind_kwargs: Mapping[str, Any],
    store: str | None,
    key: str,
) -> _Outcome:
    """Compute one member (the body of one dask task) and, with a store, write it there."""
    path = member_path(store, kind, member.setup, member.seed) if store else None
    try:
        with warnings.catch_warnings():
            # Divergence is reported once for the whole sweep, through the status.
            warnings.simplefilter("ignore", DivergenceWarning)
            ds = func(member.setup, alpha, member.seed, **kind_kwargs)
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"kind {kind!r} returned {type(ds).__name__}, not an xarray.Dataset")
        ds = _normalise(ds, alpha, member.setup.N).load()
    except Exception as err:  # any error of one member is recorded; the grid goes on
        msg = f"failed: {type(err).__name__}: {err}".strip()
        if path is not None:
            _write_marker(path, member, kind, msg + "\n" + traceback.format_exc())
        return _Outcome("failed", None, msg)
    status = _status_of(ds)
    ds.attrs.update(seed=member.seed, sweep_kind=kind, sweep_key=key)
    if path is not None:
        with _NETCDF_LOCK:
            to_netcdf(ds, path)
        _marker_path(path).unlink(missing_ok=True)
        return _Outcome(status, None, None)
    return _Outcome(status, ds, None)


def _open_member(path: Path, key: str, chunks: Any = None) -> xr.Dataset | None:
    """A stored member, or None if it is missing, unreadable or from another sweep spec.

    Valid means: a NetCDF file with the scalex Setup record, ``eg`` and ``status``, written
    for this sweep key. (Not full `scalex.schema.validate`: kinds may leave out q and r,
    e.g. ``simulate(record=("Q", "R"))``.)
    """
    if not path.exists():
        return None
    try:
        with _NETCDF_LOCK:
            ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks)
    except Exception:  # truncated or foreign file: the member is recomputed
        return None
    if (ds.attrs.get("sweep_key") != key or ATTR_KEY not in ds.attrs
            or "eg" not in ds or "status" not in ds):
        ds.close()
        return None
    return ds


def _stored_ok(path: Path, key: str) -> bool:
    """Whether a member file exists, is readable and belongs to this sweep spec.

    Reads only the header with netCDF4 (a few ms; `xarray.open_dataset` takes ~20 ms).
    """
    if not path.exists():
        return False
    import netCDF4

    try:
        with _NETCDF_LOCK, netCDF4.Dataset(path) as nc:
            names = set(nc.ncattrs())
            return (ATTR_KEY in names and "sweep_key" in names
                    and nc.getncattr("sweep_key") == key
                    and "eg" in nc.variables and "status" in nc.variables)
    except Exception:  # truncated or foreign file: the member is recomputed
        return False


# ---------------------------------------------------------------------------------- running
def _progress_bar(total: int, progress: bool | None, desc: str):
    from tqdm.auto import tqdm

    # progress=None: show the bar only on an interactive terminal.
    disable = None if progress is None else not progress
    return tqdm(total=total, desc=desc, unit="member", disable=disable, leave=False)


def _run_local(
    calls: list[tuple[Member, tuple[Any, ...]]],
    scheduler: str,
    workers: int | None,
    batch_size: int | None,
    bar: Any,
) -> tuple[dict[tuple[int, ...], _Outcome], str]:
    """Run the members on the local dask scheduler; return the outcomes and the scheduler."""
    from concurrent.futures.process import BrokenProcessPool

    import dask
    from dask.callbacks import Callback

    outcomes: dict[tuple[int, ...], _Outcome] = {}
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
            outcomes[member.index] = _run_member(*args)
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
            tasks = [dask.delayed(_run_member, pure=False)(*args) for _m, args in chunk]
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
                    results.append(_run_member(*args))
                    bar.update(1)
            for (member, _args), outcome in zip(chunk, results, strict=True):
                outcomes[member.index] = outcome
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcomes, scheduler


def _run_distributed(
    calls: list[tuple[Member, tuple[Any, ...]]],
    client: Any,
    batch_size: int | None,
    bar: Any,
) -> dict[tuple[int, ...], _Outcome]:
    from distributed import Client, as_completed

    own = isinstance(client, str)
    if own:
        client = Client(client, set_as_default=False)
    outcomes: dict[tuple[int, ...], _Outcome] = {}
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
            fut = client.submit(_run_member, *args, key=key, pure=False, retries=0)
            by_key[fut.key] = member
            return fut

        done = as_completed([submit(item) for item in itertools.islice(pending, window)],
                            loop=client.loop)
        for fut in done:
            member = by_key.pop(fut.key)
            try:
                outcome = fut.result()
            except Exception as err:  # a lost worker, not an error of the kind itself
                outcome = _Outcome("failed", None, f"failed: {type(err).__name__}: {err}")
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
    spec = _get_kind(kind)
    if not isinstance(base_setup, Setup):
        raise ValueError(f"base_setup: must be a scalex.Setup, got {type(base_setup).__name__}")
    alpha_arr = _parse_alpha(alpha)
    members = grid_members(base_setup, over, seeds)
    if scheduler is None:
        scheduler = dask_config_scheduler() or spec.scheduler
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: must be one of {SCHEDULERS}, got {scheduler!r}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")

    key = _sweep_key(kind, alpha_arr, kind_kwargs)
    store_dir: str | None = None
    todo = members
    if store is not None:
        store_dir = str(Path(store).resolve())
        _write_manifest(Path(store_dir), kind, base_setup, over, seeds, alpha_arr, kind_kwargs, key)
        todo = [
            m for m in members if not _stored_ok(member_path(store_dir, kind, m.setup, m.seed), key)
        ]
    calls = [(m, (spec.func, kind, m, alpha_arr, dict(kind_kwargs), store_dir, key)) for m in todo]

    with _progress_bar(len(calls), progress, f"{kind} sweep") as bar:
        if client is None:
            outcomes, used = _run_local(calls, scheduler, workers, batch_size, bar)
        else:
            outcomes, used = _run_distributed(calls, client, batch_size, bar), "distributed"

    if store_dir is not None:
        result = open_store(store_dir)
    else:
        datasets = {
            m.index: outcomes[m.index].data
            if outcomes[m.index].data is not None
            else _placeholder(m.setup, alpha_arr, outcomes[m.index].error or "failed")
            for m in members
        }
        result = _combine(datasets, members, kind, base_setup, over, alpha_arr, key)
    result.attrs["sweep_scheduler"] = used  # "none": every member came from the store
    _warn_bad_members(result)
    return result


def dask_config_scheduler() -> str | None:
    """The local scheduler named in the dask config (e.g. by ``SCALEX_TEST_SCHEDULER``)."""
    import dask

    name = dask.config.get("scheduler", None)
    aliases = {"sync": "synchronous", "single-threaded": "synchronous", "threading": "threads",
               "multiprocessing": "processes"}
    name = aliases.get(name, name)
    return name if name in SCHEDULERS else None


def _warn_bad_members(ds: xr.Dataset) -> None:
    status = np.asarray(ds["status"].values).astype(str)
    failed = np.char.startswith(status, "failed")
    diverged = status == "diverged"
    missing = status == "missing"
    if failed.any() or missing.any():
        first = status[failed | missing][0]
        warnings.warn(
            f"{int(failed.sum())} failed and {int(missing.sum())} missing of {status.size} "
            f"sweep members (data NaN); first: {first}",
            SweepWarning,
            stacklevel=3,
        )
    if diverged.any():
        warnings.warn(
            f"{int(diverged.sum())} of {status.size} sweep members diverged (status 'diverged')",
            DivergenceWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------- combine
def _placeholder(setup: Setup, alpha: NDArray[np.float64], status: str) -> xr.Dataset:
    """NaN stand-in for a member without data, carrying its status and spectrum coords."""
    sp = setup.spectrum
    return xr.Dataset(
        {
            "eg": ("alpha", np.full(alpha.size, np.nan)),
            "status": ((), np.array(status, dtype=object)),
        },
        coords={
            "alpha": alpha,
            "group": np.arange(1, sp.L + 1),
            "eigenvalue": ("group", sp.eigenvalues),
            "multiplicity": ("group", sp.multiplicities),
        },
    )


def _pad_members(datasets: Mapping[Any, xr.Dataset]) -> dict[Any, xr.Dataset]:
    """NaN-pad every member to the largest size of each dim whose labels all members share
    as a prefix (group 1..L, student_i 1..K, ...).

    Padding at the end is a reindex, but `Dataset.pad` keeps dask graphs to one block per
    member where a lazy reindex makes thousands of tasks.
    """
    labels: dict[str, list[Any]] = {}
    for ds in datasets.values():
        for dim, index in ds.indexes.items():
            labels.setdefault(str(dim), []).append(index)
    target: dict[str, Any] = {}
    for dim, indexes in labels.items():
        longest = max(indexes, key=len)
        if all(longest[: len(ix)].equals(ix) for ix in indexes):
            target[dim] = longest
    out = {}
    for key, ds in datasets.items():
        widths = {d: (0, len(target[d]) - ds.sizes[d]) for d in target
                  if d in ds.dims and ds.sizes[d] < len(target[d])}
        if widths:
            ds = xr.Dataset(
                {n: _pad_variable(v, widths) for n, v in ds.data_vars.items()},
                coords={d: target[d] if d in widths else ds.indexes[d] for d in ds.indexes},
            )
        out[key] = ds
    return out


def _pad_variable(var: xr.DataArray, widths: Mapping[str, tuple[int, int]]) -> xr.Variable:
    """``var`` with NaN appended along the dims of ``widths`` (one block, also for dask)."""
    data = var.data
    dims = [d for d in widths if d in var.dims]
    if not dims:
        return var.variable
    dtype = float if data.dtype.kind in "fiub" else object
    is_dask = hasattr(data, "dask")
    if is_dask:
        import dask.array as dsa

    data = data.astype(dtype)
    for dim in dims:
        axis = var.get_axis_num(dim)
        shape = list(data.shape)
        shape[axis] = widths[dim][1]
        if is_dask:
            # dask.array.pad would split the padding into blocks of the input's chunk size.
            fill = dsa.full(shape, np.nan, dtype=dtype, chunks=-1)
            data = dsa.concatenate([data, fill], axis=axis).rechunk({axis: -1})
        else:
            data = np.concatenate([data, np.full(shape, np.nan, dtype=dtype)], axis=axis)
    return xr.Variable(var.dims, data, var.attrs)


def _constant_along(values: NDArray[Any], axis: int) -> bool:
    first = np.take(values, [0], axis=axis)
    if values.dtype.kind in "fc":
        same = (values == first) | (np.isnan(values) & np.isnan(first))
    else:
        same = values == first
    return bool(np.all(same))


def _combine(
    datasets: Mapping[tuple[int, ...], xr.Dataset],
    members: Sequence[Member],
    kind: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None,
    alpha: NDArray[np.float64],
    key: str,
) -> xr.Dataset:
    """Combine member Datasets into orthogonal sweep dims (see module docstring)."""
    axes = _parse_over(over)
    seeds = sorted({m.seed: m.index[-1] for m in members}.items(), key=lambda kv: kv[1])
    seed_values = [s for s, _ in seeds]
    member_dims = [ax.dim for ax in axes] + ["seed"]
    shape = (*(len(ax.values) for ax in axes), len(seed_values))

    # Per-member non-index coords (eigenvalue(group), ...) travel as data and are then
    # reduced to the sweep dims they actually vary along.
    aux: set[str] = set()
    prepared: dict[tuple[int, ...], xr.Dataset] = {}
    for idx, ds in datasets.items():
        names = [c for c in ds.coords if c not in ds.indexes]
        aux.update(names)
        prepared[idx] = ds.reset_coords(names).drop_attrs(deep=False)
    prepared = _pad_members(prepared)

    def nest(prefix: tuple[int, ...], depth: int) -> Any:
        if depth == len(shape):
            return prepared[prefix]
        return [nest((*prefix, i), depth + 1) for i in range(shape[depth])]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = xr.combine_nested(
            nest((), 0),
            concat_dim=member_dims,
            data_vars="all",
            coords="minimal",
            compat="equals",
            join="outer",
            fill_value=np.nan,
            combine_attrs="drop",
        )
    for name in sorted(aux):
        var = out[name]
        values = np.asarray(var.values)
        for dim in member_dims:
            if dim in var.dims and _constant_along(values, var.get_axis_num(dim)):
                var = var.isel({dim: 0}, drop=True)
                values = np.asarray(var.values)
        out = out.drop_vars(name).assign_coords({name: var.copy(data=values)})

    out = out.assign_coords({ax.dim: list(ax.values) for ax in axes})
    out = out.assign_coords(seed=seed_values)
    for ax in axes:
        for other in ax.fields[1:]:
            out = out.assign_coords({other: (ax.dim, list(ax.values))})
    hashes = np.empty(shape[:-1], dtype=object)
    for m in members:
        hashes[m.index[:-1]] = m.setup.hash
    out = out.assign_coords(setup_hash=([ax.dim for ax in axes], hashes))

    rest = [d for d in DIMS if d in out.dims] + [
        d for d in out.dims if d not in DIMS and d not in member_dims
    ]
    out = out.transpose(*member_dims, *rest)
    # Rebuild so that the Dataset lists its dims in the same order as its variables.
    order = [*member_dims, *rest]
    coord_names = sorted(out.coords, key=lambda c: (order.index(c) if c in order else len(order)))
    out = xr.Dataset(
        {name: out[name].variable for name in out.data_vars},
        coords={name: out[name].variable for name in coord_names},
    )
    for var in out.variables.values():
        var.encoding = {}  # a member file's int dtype cannot hold the NaN padding
    method = next(
        (ds.attrs.get("method") for ds in datasets.values() if ds.attrs.get("method")), kind
    )
    out.attrs = _sweep_attrs(kind, method, base_setup, over, axes, seed_values, alpha, key)
    _annotate_sweep(out, axes)
    return out


def _sweep_attrs(
    kind: str,
    method: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None,
    axes: Sequence[_Axis],
    seeds: Sequence[int],
    alpha: NDArray[np.float64],
    key: str,
) -> dict[str, Any]:
    dims = " ".join(ax.dim for ax in axes)
    attrs = base_attrs(base_setup, method, title=f"scalex {kind} sweep over {dims or 'seed'}")
    attrs.update(
        sweep_kind=kind,
        sweep_dims=dims,
        sweep_over=json.dumps({k: _jsonable(list(v)) for k, v in (over or {}).items()}),
        sweep_seeds=np.asarray(seeds, dtype=np.int64),
        sweep_key=key,
        n_alpha=int(alpha.size),
        padding=PADDING_NOTE,
    )
    return attrs


def _annotate_sweep(ds: xr.Dataset, axes: Sequence[_Axis]) -> None:
    annotate(ds)
    for ax in axes:
        for name in ax.fields:
            ds[name].attrs.setdefault("long_name", f"swept Setup field {name}")
    ds["seed"].attrs.setdefault("long_name", COORDS["seed"][0])
    ds["setup_hash"].attrs["long_name"] = "Setup.hash of the member (names its store file)"


# ---------------------------------------------------------------------------------- store
def _write_manifest(
    store: Path,
    kind: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None,
    seeds: int | Iterable[int],
    alpha: NDArray[np.float64],
    kind_kwargs: Mapping[str, Any],
    key: str,
) -> None:
    path = store / MANIFEST
    if path.exists():
        old = _read_manifest(store)
        if old.get("key") != key:
            raise StoreMismatchError(
                f"store: {store} holds a {old.get('kind')!r} sweep with a different alpha grid, "
                f"kind or kind options; use a new store directory (or delete this one)"
            )
    manifest = {
        "format": STORE_FORMAT,
        "version": 1,
        "kind": kind,
        "base_setup": base_setup.to_dict(),
        # Pairs, not a mapping: the axis order is the dim order and JSON keys get sorted.
        "over": [[k, _jsonable(list(v))] for k, v in (over or {}).items()],
        "seeds": list(_parse_seeds(seeds)),
        "alpha": [float(a) for a in alpha],
        "kind_kwargs": _jsonable(dict(kind_kwargs)),
        "key": key,
        "scalex_version": __version__,
        "written": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json_atomic(path, manifest)


def _read_manifest(store: Path) -> dict[str, Any]:
    path = store / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{store}: not a sweep store (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("format") != STORE_FORMAT:
        raise ValueError(f"{path}: not a scalex sweep manifest")
    return manifest


def open_store(path: str | os.PathLike[str], *, chunks: Any = None) -> xr.Dataset:
    """Open the combined Dataset of a sweep store lazily (every member dask-backed).

    The sweep dims are rebuilt from ``manifest.json`` and the member Setups; a member whose
    file is missing gets NaN data and status "missing" (or its recorded "failed: ..." error).
    ``chunks`` is passed to `xarray.open_dataset` for each member file (default -1: one
    dask chunk per variable and member).
    """
    store = Path(path)
    manifest = _read_manifest(store)
    kind = manifest["kind"]
    base = Setup.from_dict(manifest["base_setup"])
    alpha = np.asarray(manifest["alpha"], dtype=float)
    over = {k: v for k, v in manifest["over"]}
    members = grid_members(base, over, manifest["seeds"])
    datasets: dict[tuple[int, ...], xr.Dataset] = {}
    for m in members:
        file = member_path(store, kind, m.setup, m.seed)
        stored = _open_member(file, manifest["key"], -1 if chunks is None else chunks)
        if stored is not None:
            datasets[m.index] = _normalise(stored, alpha, m.setup.N)
            continue
        marker = _marker_path(file)
        status = "missing"
        if marker.exists():
            try:
                status = json.loads(marker.read_text())["error"].splitlines()[0]
            except (json.JSONDecodeError, KeyError, IndexError):
                status = "failed: (unreadable failure marker)"
        datasets[m.index] = _placeholder(m.setup, alpha, status)
    out = _combine(datasets, members, kind, base, over, alpha, manifest["key"])
    out.attrs["sweep_store"] = str(store.resolve())
    return out
