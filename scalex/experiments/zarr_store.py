"""The zarr result store of a sweep: ``sweep(..., store="<name>.zarr")`` and its `open_store`.

A store path ending in ``.zarr`` (`is_zarr_store`) is one zarr (format 3) group holding the
combined sweep Dataset, so that ``xarray.open_zarr(path)`` reads it too. It follows the pattern
xarray documents for distributed writes:

Template
    written once, metadata only (``Dataset.to_zarr(compute=False)``), when the first member has
    finished in the sweep's own process (`create_template`): it fixes the variables, their dims
    and sizes (the largest L, K, M of the grid), the coordinates from the members' Setups and
    the sweep attributes (as `scalex.experiments.combine.combine_members` makes them:
    `sweep_skeleton`), the sweep's manifest (``attrs["scalex_manifest"]``, the record of a
    NetCDF store's ``manifest.json``) and the layout (``attrs["scalex_layout"]``). It is built
    in a sibling temporary directory and renamed into place, so a store has a whole template
    or none.
Regions
    every member owns whole chunks at its grid position. The worker that computed it writes its
    values, NaN-padded to the template's sizes, straight into them (`ZarrTarget.write`), without
    a lock: no two members share a chunk, and zarr writes each chunk file atomically (temporary
    and rename). Its bookkeeping follows the data, in this order: ``status`` ("ok", "diverged",
    "failed: <Error>: <message>"), ``error`` (the traceback of a failed member, the failure
    marker of a NetCDF store) and ``written`` (Unix time of the write). A member whose status
    is set and does not start with "failed" is finished (`finished`): a rerun skips it, retries
    the failed ones, and redoes a member killed before its status was written ("missing").
Variables
    ε_g, the λ-weighted overlaps Q = Σ_τ λ_τ q^τ and R = Σ_τ λ_τ r^τ (docs/theory.md §2,
    eq. (2.2); computed from q and r when the kind did not record them, `store_view`), t and
    the kind's other variables are always stored; the per-group q^τ, r^τ only with
    ``per_group=True``.
    Numbers are float64, compressed (`compressor`) one member per chunk, so NaN padding costs
    next to nothing. Member coordinates besides the spectrum's (a simulation's ``step(alpha)``)
    are stored per member and reduced on reading to the sweep dims they vary along.
Grid
    one store holds one grid (kind, α grid, kind options, base Setup, axes and seeds); another
    raises `StoreMismatchError`. (A NetCDF directory store can be extended instead.)
Run lock
    a sweep holds the shared ``flock`` of `scalex.experiments.store.run_lock` on the sibling
    file ``.<name>.zarr.lock`` (zarr warns about foreign files inside a group). A sweep that
    finds no other one running removes what killed writers left: zarr's ``*.partial`` chunk
    temporaries and template directories ``.<name>.zarr.<random>.tmp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from scalex.experiments.combine import constant_along, sweep_skeleton
from scalex.experiments.errors import StoreMismatchError
from scalex.experiments.grid import Member
from scalex.model.setup import Setup

SUFFIX = ".zarr"
FORMAT = "scalex-sweep-zarr"
MANIFEST_ATTR = "scalex_manifest"
LAYOUT_ATTR = "scalex_layout"
BOOKKEEPING = ("status", "error", "written")
#: The parts of a manifest that fix a zarr store's grid (besides its key).
GRID_FIELDS = ("kind", "base_setup", "over", "seeds", "alpha")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

_STRING = np.dtypes.StringDType()
_WEIGHTED = {"Q": "weighted overlap Q = Σ_τ λ_τ q^τ", "R": "weighted overlap R = Σ_τ λ_τ r^τ"}
_ATTRS = {
    "status": {"long_name": "run status (ok, diverged, failed: reason; '' not yet written)",
               "units": "1"},
    "error": {"long_name": "error and traceback of a failed member", "units": "1"},
    "written": {"long_name": "time the member was written to the store (Unix time, UTC)",
                "units": "s"},
}


def compressor() -> Any:
    """The codec of the numeric variables: Blosc zstd level 3 with the bit shuffle. On fig. 1's
    largest member (float64 ODE overlaps, 4.7 MB of q) it keeps 67 % of the bytes in ~15 ms,
    where the byte shuffle keeps 89 %, and zlib level 1 with the byte shuffle (the NetCDF
    store's) 84 % in ~150 ms (benchmarks/sweep_results.md)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a zarr store (it ends in ``.zarr``)."""
    return Path(path).suffix == SUFFIX


def lock_file(store: Path) -> Path:
    return store.parent / f".{store.name}.lock"


def remove_stale(store: Path) -> int:
    """Remove zarr's chunk temporaries and template directories left by killed writers."""
    removed = 0
    for tmp in store.parent.glob(f".{store.name}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed += 1
    if store.is_dir():
        for tmp in store.rglob("*.partial"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def zarr_session(store: Path) -> Iterator[int]:
    """The run lock of a sweep into a zarr store (`scalex.experiments.store.run_lock`)."""
    from scalex.experiments.locks import run_lock

    store.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(lock_file(store), lambda: remove_stale(store)) as removed:
        yield removed


# ---------------------------------------------------------------------------------- members
def store_view(ds: xr.Dataset, per_group: bool) -> dict[str, xr.Variable]:
    """A member's variables (data and non-index coordinates) as the store keeps them: with Q
    and R of docs/theory.md eq. (2.2) (computed from q, r, t and the eigenvalues with
    `scalex.schema.weighted_overlaps` if the kind did not record them), without the per-group
    q and r unless ``per_group``."""
    from scalex.schema import weighted_overlaps

    out = {str(n): v for n, v in ds.variables.items() if n not in ds.indexes}
    if {"q", "r", "t"} <= set(ds.data_vars) and not {"Q", "R"} & set(ds.data_vars) \
            and "eigenvalue" in ds.coords:
        q, r = out["q"], out["r"]
        Q, R, _ = weighted_overlaps(q.values, r.values, out["t"].values,
                                    out["eigenvalue"].values)
        for name, source, values in (("Q", q, Q), ("R", r, R)):
            dims = [d for d in source.dims if d != "group"]
            out[name] = xr.Variable(dims, values, {"long_name": _WEIGHTED[name], "units": "1"})
    if not per_group:
        out.pop("q", None)
        out.pop("r", None)
    return out


@dataclass(frozen=True)
class VarSpec:
    """One variable written per member: its own dims and sizes (after the member dims)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    text: bool = False


def finished(status: Any) -> np.ndarray:
    """Which members are finished: status set and not "failed..." (element-wise)."""
    s = np.asarray(status, dtype=object).astype(str)
    return (s != "") & (s != "missing") & ~np.char.startswith(s, "failed")


_ARRAYS: dict[tuple[str, str], dict[str, Any]] = {}
_ARRAYS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ZarrTarget:
    """Where and how the members of a sweep go into a zarr store (sent to every worker)."""

    path: str
    token: str
    member_dims: tuple[str, ...]
    variables: tuple[VarSpec, ...]
    per_group: bool

    def prepare(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        """The arrays of one member, padded to the template's sizes (raises ValueError if the
        member does not fit the template, which is then the member's failure)."""
        view = store_view(ds, self.per_group)
        names = {spec.name for spec in self.variables}
        extra = sorted(n for n in view if n in ds.data_vars and n != "status" and n not in names)
        if extra:
            raise ValueError(f"store: variables {extra} are not in the template of {self.path}")
        out: dict[str, np.ndarray] = {}
        for spec in self.variables:
            if spec.name not in view:
                continue
            var = view[spec.name]
            if sorted(map(str, var.dims)) != sorted(spec.dims):
                raise ValueError(f"store: {spec.name} has dims {var.dims}, the template "
                                 f"{spec.dims}")
            values = np.asarray(var.transpose(*spec.dims).values)
            if spec.text:
                out[spec.name] = values.astype(_STRING)
                continue
            if any(n > m for n, m in zip(values.shape, spec.shape, strict=True)):
                raise ValueError(f"store: {spec.name} of shape {values.shape} is larger than "
                                 f"the template's {spec.shape}")
            padded = np.full(spec.shape, np.nan)
            padded[tuple(slice(n) for n in values.shape)] = values
            out[spec.name] = padded
        return out

    def write(self, index: tuple[int, ...], arrays: Mapping[str, np.ndarray], status: str,
              error: str = "") -> None:
        """Write a member's arrays into its region, then its status, error and time."""
        if arrays:
            self._put(index, arrays)
        self._put(index, {"status": np.array(status.splitlines()[0] if status else "",
                                             dtype=_STRING),
                          "error": np.array(error, dtype=_STRING),
                          "written": np.array(time.time())})

    def stored_status(self, index: tuple[int, ...]) -> str:
        """The status the store holds for a member ("" if none): a task that a cluster runs
        again after losing a worker (whose result it had not collected yet) finds its member
        finished and returns without recomputing it."""
        from zarr.core.sync import sync

        return str(np.asarray(sync(self._arrays()["status"].getitem(index))).item())

    def _put(self, index: tuple[int, ...], items: Mapping[str, np.ndarray]) -> None:
        from zarr.core.sync import sync

        try:
            arrays = self._arrays()
            sync(_set_all(arrays, index, items))
        except OSError as err:
            if err.errno in _DISK_FULL:
                raise OSError(err.errno, f"{self.path}: no space left on device while writing "
                                         f"a member; its region was not completed ({err})"
                              ) from err
            raise

    def _arrays(self) -> dict[str, Any]:
        """This store's zarr arrays, opened once per process (their metadata never changes)."""
        from zarr.core.sync import sync

        key = (self.path, self.token)
        with _ARRAYS_LOCK:
            if key not in _ARRAYS:
                names = [spec.name for spec in self.variables] + list(BOOKKEEPING)
                _ARRAYS[key] = sync(_open_all(self.path, names))
            return _ARRAYS[key]


async def _open_all(path: str, names: Sequence[str]) -> dict[str, Any]:
    from zarr.api.asynchronous import open_group

    group = await open_group(store=path, mode="r+", zarr_format=3)
    arrays = await asyncio.gather(*(group.getitem(name) for name in names))
    return dict(zip(names, arrays, strict=True))


async def _set_all(arrays: Mapping[str, Any], index: tuple[int, ...],
                   items: Mapping[str, np.ndarray]) -> None:
    await asyncio.gather(*(arrays[name].setitem(index, value) for name, value in items.items()))


# ---------------------------------------------------------------------------------- template
def read_attrs(store: Path) -> dict[str, Any] | None:
    """The root attributes of a store's template, or None if it has none yet."""
    if not (store / "zarr.json").exists():
        if store.exists() and (not store.is_dir() or any(store.iterdir())):
            raise ValueError(f"store: {store} exists and is not a scalex zarr store")
        return None
    import zarr

    attrs = dict(zarr.open_group(store, mode="r", zarr_format=3).attrs)
    if attrs.get("scalex_format") != FORMAT:
        raise ValueError(f"store: {store} is a zarr group but not a scalex sweep store")
    return attrs


def target_of(store: Path, attrs: Mapping[str, Any]) -> ZarrTarget:
    layout = json.loads(attrs[LAYOUT_ATTR])
    return ZarrTarget(str(store), layout["token"], tuple(layout["member_dims"]),
                      tuple(VarSpec(n, tuple(d), tuple(s), bool(t))
                            for n, d, s, t in layout["variables"]),
                      bool(layout["per_group"]))


def check_store(store: Path, manifest: Mapping[str, Any],
                per_group: bool | None) -> ZarrTarget | None:
    """The target of an existing store for this sweep, None if it has no template yet.

    Raises `StoreMismatchError` if the store holds another sweep (key or grid) and ValueError
    if ``per_group`` contradicts the store's."""
    attrs = read_attrs(store)
    if attrs is None:
        return None
    old = json.loads(attrs[MANIFEST_ATTR])
    if old.get("key") != manifest["key"]:
        raise StoreMismatchError(
            f"store: {store} holds a {old.get('kind')!r} sweep with a different alpha grid, "
            f"kind or kind options; use a new store (or delete this one)")
    new = json.loads(json.dumps({k: manifest[k] for k in GRID_FIELDS}))
    if any(old.get(k) != new[k] for k in GRID_FIELDS):
        changed = [k for k in GRID_FIELDS if old.get(k) != new[k]]
        raise StoreMismatchError(
            f"store: {store} holds a sweep over another grid ({', '.join(changed)} differ); "
            "a zarr store holds one grid: use a new store (or delete this one)")
    target = target_of(store, attrs)
    if per_group is not None and per_group != target.per_group:
        raise ValueError(f"per_group: {store} was made with per_group={target.per_group}")
    return target


def create_template(store: Path, probe: xr.Dataset, members: Sequence[Member],
                    manifest: Mapping[str, Any], per_group: bool) -> ZarrTarget:
    """Write the template of ``store`` (metadata and coordinates) from one finished member.

    Built in a sibling temporary directory and renamed into place; if another sweep got there
    first, its template is used (`check_store`)."""
    import dask.array as dsa

    from scalex.schema import chunk_sizes

    alpha = np.asarray(manifest["alpha"], dtype=float)
    over = dict(manifest["over"])
    base = Setup.from_dict(manifest["base_setup"])
    view = store_view(probe, per_group)
    skeleton = sweep_skeleton(members, manifest["kind"], base, over, alpha, manifest["key"],
                              probe.attrs.get("method", manifest["kind"]))
    member_dims = tuple(str(d) for d in skeleton["status"].dims)
    member_shape = tuple(skeleton.sizes[d] for d in member_dims)
    sizes = {str(d): n for d, n in skeleton.sizes.items()}
    coords = {str(n): skeleton[n].variable for n in skeleton.coords}
    K = max(m.setup.K for m in members)
    M = max(m.setup.M for m in members)
    for dim in {str(d) for var in view.values() for d in var.dims}:
        if dim in sizes:
            continue
        n = {"student_i": K, "student_j": K, "teacher_n": M, "teacher_m": M}.get(dim)
        if n is not None:
            sizes[dim] = n
            attrs = probe[dim].attrs if dim in probe.coords else {}
            coords[dim] = xr.Variable(dim, np.arange(1, n + 1), attrs)
        else:
            sizes[dim] = probe.sizes[dim]
            if dim in probe.indexes:
                coords[dim] = probe[dim].variable
    own_coords = [str(c) for c in probe.coords if c not in probe.indexes and c not in coords]
    specs: list[VarSpec] = []
    data: dict[str, xr.Variable] = {}
    encoding: dict[str, dict[str, Any]] = {}
    for name in [n for n in view if n not in probe.coords] + own_coords:
        if name == "status":
            continue
        var = view[name]
        dims = tuple(map(str, var.dims))
        spec = VarSpec(name, dims, tuple(sizes[d] for d in dims), var.dtype.kind in "OUST")
        specs.append(spec)
        data[name], encoding[name] = _lazy(member_dims, member_shape, spec, var.attrs,
                                           chunk_sizes, dsa)
    for name in BOOKKEEPING:
        spec = VarSpec(name, (), (), name != "written")
        data[name], encoding[name] = _lazy(member_dims, member_shape, spec, _ATTRS[name],
                                           chunk_sizes, dsa)
    token = uuid.uuid4().hex
    layout = {"token": token, "member_dims": member_dims, "per_group": per_group,
              "member_coords": own_coords,
              "variables": [[s.name, s.dims, s.shape, s.text] for s in specs]}
    template = xr.Dataset(data, coords=coords)
    template.attrs = {**skeleton.attrs, "scalex_format": FORMAT,
                      MANIFEST_ATTR: json.dumps(manifest), LAYOUT_ATTR: json.dumps(layout)}
    tmp = store.parent / f".{store.name}.{token}.tmp"
    try:
        template.to_zarr(tmp, mode="w-", compute=False, consolidated=False, zarr_format=3,
                         encoding=encoding)
        os.rename(tmp, store)  # replaces a missing or empty directory only
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        other = check_store(store, manifest, per_group)
        if other is None:
            raise
        return other
    return target_of(store, template.attrs)


def _lazy(member_dims: tuple[str, ...], member_shape: tuple[int, ...], spec: VarSpec,
          attrs: Mapping[str, Any], chunk_sizes: Any, dsa: Any
          ) -> tuple[xr.Variable, dict[str, Any]]:
    """A template variable (a lazy array: nothing is written) and its zarr encoding."""
    chunks = (1,) * len(member_dims) + (spec.shape if spec.text
                                        else chunk_sizes(spec.shape, 8))
    if spec.text:
        data = dsa.full(member_shape + spec.shape, "", dtype=_STRING, chunks=chunks)
        encoding: dict[str, Any] = {"chunks": chunks, "compressors": None}
    else:
        data = dsa.full(member_shape + spec.shape, np.nan, chunks=chunks)
        small = int(np.prod(spec.shape)) * 8 < 512
        encoding = {"chunks": chunks, "_FillValue": np.nan,
                    "compressors": None if small else (compressor(),)}
    return xr.Variable(member_dims + spec.dims, data, dict(attrs)), encoding


# ---------------------------------------------------------------------------------- reading
def read_status(store: Path) -> np.ndarray:
    """The status of every member (str array over the member dims; "" not yet written)."""
    import zarr

    group = zarr.open_group(store, mode="r", zarr_format=3)
    return np.asarray(group["status"][...], dtype=object).astype(str)


def open_zarr_store(store: Path, chunks: Any = None) -> xr.Dataset:
    """The combined Dataset of a zarr store, lazy: one dask block per member and variable
    (``chunks`` as in `xarray.open_zarr`; default: the stored chunks).

    A member without data has NaN data and status "missing", or its "failed: ..." status; the
    time each member was written is the coordinate ``written``."""
    attrs = read_attrs(store)
    if attrs is None:
        raise FileNotFoundError(f"{store}: not a sweep store (no member has finished yet)")
    target = target_of(store, attrs)
    layout = json.loads(attrs[LAYOUT_ATTR])
    ds = xr.open_zarr(store, consolidated=False, zarr_format=3,
                      chunks={} if chunks is None else chunks)
    dims = target.member_dims
    status = np.asarray(ds["status"].values, dtype=object)
    done = finished(status)
    status[status == ""] = "missing"
    ds = ds.drop_vars("error").assign(status=(dims, status, _ATTRS["status"]))
    ds["status"].attrs["long_name"] = "run status (ok, diverged, failed: reason, missing)"
    if not done.all():
        mask = xr.DataArray(done, dims=dims)
        for spec in target.variables:
            if not spec.text:
                ds[spec.name] = ds[spec.name].where(mask)
    for name in layout["member_coords"]:
        var = ds[name].variable.load()
        for dim in dims:
            if dim in var.dims and constant_along(var.values, var.get_axis_num(dim)):
                var = var.isel({dim: 0})
        ds = ds.drop_vars(name).assign_coords({name: var})
    ds = ds.set_coords("written")
    data = {spec.name for spec in target.variables}
    for name in [n for n in ds.coords if n not in ds.indexes and n not in data]:
        var = ds[name].variable.load()  # small: the spectrum, setup_hash, written
        if var.dtype == _STRING:
            var = var.astype(object)
        ds = ds.assign_coords({name: var})
    for var in ds.variables.values():
        var.encoding = {}
    ds.attrs = {k: v for k, v in attrs.items()
                if k not in (MANIFEST_ATTR, LAYOUT_ATTR, "scalex_format")}
    ds.attrs["sweep_store"] = str(store.resolve())
    return ds


