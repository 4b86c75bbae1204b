"""The per-member result store of a sweep (``sweep(..., store=path)``) and `open_store`.

This module is the NetCDF directory store; a path ending in ``.zarr`` is a zarr store
(`scalex.experiments.zarr_store`), which `open_store` opens too. Both share the manifest
record (`manifest_record`) and the run lock (`run_lock`).

Result store
    Every member is written, as soon as it finishes and by the worker that ran it, to its own
    NetCDF file ``<kind>-<setup hash>-s<seed>.nc`` (`member_path`; atomically: temporary file
    and rename; compressed as by `scalex.schema.to_netcdf`). A member that raised leaves a
    JSON marker ``<kind>-<setup hash>-s<seed>.failed.json`` (`write_marker`: the error, its
    traceback, the Setup and the seed) instead. A rerun skips every member whose file is
    present and valid, and retries the failed ones: an exception may be transient (memory, a
    lost worker), whereas a divergence is a deterministic result and is kept.
    ``manifest.json`` (`write_manifest`) records the sweep specification so that `open_store`
    can rebuild the combined Dataset lazily (dask-backed).

A member file is valid (`stored_ok`, `open_member`) if it opens and holds ``eg``, ``status``,
the Setup record and the *sweep key*: `sweep_key` hashes the kind, the α grid and the kind
options, everything besides Setup and seed that decides a result. A store whose manifest holds
another key raises `StoreMismatchError`. In `open_store` a member without a file has status
"missing", or the first line of its failure marker. libnetcdf/HDF5 are not thread-safe, so every
NetCDF access of a sweep holds `NETCDF_LOCK`.

Faults: a member is written by `write_member` (its NetCDF image built in memory, then put on
disk by the shared atomic writer), so a full disk is a plain ``OSError(ENOSPC)`` naming the
file, with no temporary left behind or open. A killed writer leaves only a temporary
``.<member>.nc.<random>.tmp``; `store_session` removes those when a sweep starts and no other
sweep is running into the store (`run_lock`: a shared ``flock`` on `LOCK` that every live sweep
holds).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex._version import __version__
from scalex.common.atomic import remove_stale_temporaries, write_bytes, write_text
from scalex.experiments.combine import (
    combine_members,
    jsonable,
    normalise_member,
    placeholder_member,
    sweep_spec,
)
from scalex.experiments.errors import StoreMismatchError
from scalex.experiments.grid import Member, grid_members
from scalex.experiments.locks import run_lock
from scalex.experiments.zarr_store import is_zarr_store, open_zarr_store
from scalex.model.setup import ATTR_KEY, Setup

MANIFEST = "manifest.json"

#: Every sweep running into a store holds a shared `flock` on this file for its duration.
LOCK = ".scalex-sweep.lock"


STORE_FORMAT = "scalex-sweep-store"


# libnetcdf/HDF5 are not thread-safe and xarray holds its locks only while it opens a file,
# so concurrent writes from worker threads crash; every NetCDF access of a sweep takes this.
NETCDF_LOCK = threading.Lock()


def member_path(store: str | os.PathLike[str], kind: str, setup: Setup, seed: int) -> Path:
    """The store file of one member: ``<store>/<kind>-<setup hash>-s<seed>.nc``."""
    return Path(store) / f"{kind}-{setup.hash}-s{int(seed)}.nc"


def write_member(ds: xr.Dataset, path: Path) -> None:
    """Write one member atomically: its NetCDF image is built in memory (under
    `NETCDF_LOCK`), then written with plain file I/O by `scalex.common.atomic.write_bytes`.

    So a full disk is ``OSError(ENOSPC, "<path>: no space left on device ...")`` with the
    temporary removed and closed; writing through netCDF4 directly, HDF5 would keep the
    deleted temporary open until the process exits (its final flush fails).
    """
    from scalex.schema import to_netcdf_bytes

    with NETCDF_LOCK:
        image = to_netcdf_bytes(ds)
    write_bytes(path, image)


def marker_path(path: Path) -> Path:
    return path.with_suffix(".failed.json")


def sweep_key(kind: str, alpha: NDArray[np.float64], kind_kwargs: Mapping[str, Any]) -> str:
    """Hash of what, besides Setup and seed, determines a member's result."""
    blob = json.dumps(
        {"kind": kind, "alpha": [float(a).hex() for a in alpha], "kwargs": jsonable(kind_kwargs)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def status_of(ds: xr.Dataset) -> str:
    return str(np.asarray(ds["status"].values).item())


def write_marker(path: Path, member: Member, kind: str, error: str) -> None:
    record = {
        "kind": kind,
        "seed": member.seed,
        "setup": member.setup.to_dict(),
        "setup_hash": member.setup.hash,
        "error": error,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(marker_path(path), record)




def open_member(path: Path, key: str, chunks: Any = None) -> xr.Dataset | None:
    """A stored member, or None if it is missing, unreadable or from another sweep spec.

    Valid means: a NetCDF file with the scalex Setup record, ``eg`` and ``status``, written
    for this sweep key. (Not full `scalex.schema.validate`: kinds may leave out q and r,
    e.g. ``simulate(record=("Q", "R"))``.)
    """
    if not path.exists():
        return None
    try:
        with NETCDF_LOCK:
            ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks)
    except Exception:  # truncated or foreign file: the member is recomputed
        return None
    if (ds.attrs.get("sweep_key") != key or ATTR_KEY not in ds.attrs
            or "eg" not in ds or "status" not in ds):
        ds.close()
        return None
    return ds


def stored_ok(path: Path, key: str) -> bool:
    """Whether a member file exists, is readable and belongs to this sweep spec.

    Reads only the header with netCDF4 (a few ms; `xarray.open_dataset` takes ~20 ms).
    """
    if not path.exists():
        return False
    import netCDF4

    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as nc:
            names = set(nc.ncattrs())
            return (ATTR_KEY in names and "sweep_key" in names
                    and nc.getncattr("sweep_key") == key
                    and "eg" in nc.variables and "status" in nc.variables)
    except Exception:  # truncated or foreign file: the member is recomputed
        return False


# ---------------------------------------------------------------------------------- store
def write_manifest(store: Path, record: Mapping[str, Any]) -> None:
    """Write ``manifest.json``: the record of `manifest_record` (the `sweep_spec` the combined
    Dataset's sweep attrs are made of, the kind options and the format version). Raises
    `StoreMismatchError` if the store holds a sweep with another key."""
    path = store / MANIFEST
    if path.exists():
        old = read_manifest(store)
        if old.get("key") != record["key"]:
            raise StoreMismatchError(
                f"store: {store} holds a {old.get('kind')!r} sweep with a different alpha grid, "
                f"kind or kind options; use a new store directory (or delete this one)"
            )
    write_json(path, dict(record))


def manifest_record(
    kind: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None,
    seeds: int | Iterable[int],
    alpha: NDArray[np.float64],
    kind_kwargs: Mapping[str, Any],
    key: str,
) -> dict[str, Any]:
    """The manifest of a store (``manifest.json``; a zarr store's ``scalex_manifest`` attr)."""
    return {
        "format": STORE_FORMAT,
        "version": 1,
        **sweep_spec(kind, base_setup, over, seeds, alpha, key),
        "kind_kwargs": jsonable(dict(kind_kwargs)),
        "scalex_version": __version__,
        "written": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def read_manifest(store: Path) -> dict[str, Any]:
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

    A zarr store (``<name>.zarr``) is opened by `scalex.experiments.zarr_store.open_zarr_store`:
    the stored, already padded arrays, one dask block per member. For a NetCDF directory: the
    sweep dims are rebuilt from ``manifest.json`` and the member Setups; a member whose
    file is missing gets NaN data and status "missing" (or its recorded "failed: ..." error).
    ``chunks`` is passed to `xarray.open_dataset` for each member file (default -1: one
    dask chunk per variable and member).
    """
    store = Path(path)
    if is_zarr_store(store) or (store / "zarr.json").exists():
        return open_zarr_store(store, chunks)
    manifest = read_manifest(store)
    kind = manifest["kind"]
    base = Setup.from_dict(manifest["base_setup"])
    alpha = np.asarray(manifest["alpha"], dtype=float)
    over = {k: v for k, v in manifest["over"]}
    members = grid_members(base, over, manifest["seeds"])
    datasets: dict[tuple[int, ...], xr.Dataset] = {}
    for m in members:
        file = member_path(store, kind, m.setup, m.seed)
        stored = open_member(file, manifest["key"], -1 if chunks is None else chunks)
        if stored is not None:
            datasets[m.index] = normalise_member(stored, alpha, m.setup.N)
            continue
        marker = marker_path(file)
        status = "missing"
        if marker.exists():
            try:
                status = json.loads(marker.read_text())["error"].splitlines()[0]
            except (json.JSONDecodeError, KeyError, IndexError):
                status = "failed: (unreadable failure marker)"
        datasets[m.index] = placeholder_member(m.setup, alpha, status)
    out = combine_members(datasets, members, kind, base, over, alpha, manifest["key"])
    out.attrs["sweep_store"] = str(store.resolve())
    return out


@contextlib.contextmanager
def store_session(store: Path) -> Iterator[int]:
    """Hold the store's run lock for a sweep; yield how many stale temporaries were removed.

    Writes are atomic (`scalex.common.atomic`): a killed writer leaves only its temporary
    ``.<member>.nc.<random>.tmp``, which `run_lock` removes when no other sweep runs into the
    store (the lock is the file `LOCK` in the store).
    """
    store.mkdir(parents=True, exist_ok=True)
    with run_lock(store / LOCK, lambda: remove_stale_temporaries(store)) as removed:
        yield removed


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as JSON (markers and the manifest)."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def export_netcdf(store: str | os.PathLike[str], path: str | os.PathLike[str],
                  attrs: Mapping[str, Any] | None = None) -> Path:
    """Write the combined Dataset of a sweep store (zarr or NetCDF directory) to one NetCDF
    file with `scalex.schema.to_netcdf` (streamed member by member from the store), with
    ``attrs`` added to its global attributes."""
    from scalex.schema import to_netcdf

    ds = open_store(store)
    ds.attrs.update(attrs or {})
    return to_netcdf(ds, path)
