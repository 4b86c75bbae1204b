"""Combining the member Datasets of a sweep into one Dataset with orthogonal sweep dims.

`combine_members` concatenates the members (`xarray.combine_nested`) along the sweep
dimensions, in the order of ``over``, and ``seed``, followed by the schema dimensions. It adds
``setup_hash(*sweep dims)``, a coordinate for each further field of a linked axis ("K=M") and
the sweep attributes (``sweep_kind``, ``sweep_dims``, ``sweep_over``, ``sweep_seeds``,
``sweep_key``, ``padding``; made from `sweep_spec`, the record ``manifest.json`` also holds)
to those of the base `Setup`. Variables and coordinates keep the ``long_name``/``units`` of
the members. `normalise_member` brings a kind's output to member form: no seed dim, a 0-d
``status``, and the requested α grid where the kind reports α rounded to whole SGD steps.
`placeholder_member` is the NaN stand-in for a member without data, and `warn_bad_members`
issues the warnings of failed, missing and diverged members.

Ragged dimensions
    Members can differ in L, K and M. The ``group``, ``student_i/j`` and ``teacher_n/m``
    dimensions of the result are those of the largest member; a smaller member's values beyond
    its own size are NaN (``attrs["padding"]`` says so). The padding keeps a dask-backed member
    in one block; `scalex.schema.to_netcdf` stores a member per compressed chunk, so on disk
    the padding costs next to nothing (benchmarks/bench_files.py). Per-member coordinates
    become multi-dimensional over the sweep dimensions they depend on, e.g.
    ``eigenvalue(L, group)``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.common.seeds import check_seeds
from scalex.experiments.errors import SweepWarning
from scalex.experiments.grid import Member
from scalex.model.axes import Axis, parse_over
from scalex.model.setup import Setup
from scalex.schema import COORDS, DIMS, DivergenceWarning, annotate, base_attrs

PADDING_NOTE = (
    "ragged dims (group, student_i, student_j, teacher_n, teacher_m) are NaN-padded to the "
    "largest member; a member's own sizes are the L, K, M of its Setup. Files written by "
    "scalex store one member per compressed chunk, so the padding takes almost no space"
)


def normalise_member(ds: xr.Dataset, alpha: NDArray[np.float64], N: int) -> xr.Dataset:
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


def warn_bad_members(ds: xr.Dataset) -> None:
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
def placeholder_member(setup: Setup, alpha: NDArray[np.float64], status: str) -> xr.Dataset:
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


def constant_along(values: NDArray[Any], axis: int) -> bool:
    """Whether ``values`` are the same (NaN equal to NaN) at every position along ``axis``."""
    first = np.take(values, [0], axis=axis)
    if values.dtype.kind in "fc":
        same = (values == first) | (np.isnan(values) & np.isnan(first))
    else:
        same = values == first
    return bool(np.all(same))


class _SweepGrid(NamedTuple):
    """The layout of a sweep's members: its axes (`parse_over`), its seeds in the order of the
    members' last index, the member dims (the sweep dims, then ``seed``) and their sizes."""

    axes: list[Axis]
    seeds: list[int]
    dims: list[str]
    shape: tuple[int, ...]


def _sweep_grid(members: Sequence[Member], over: Mapping[str, Sequence[Any]] | None
                ) -> _SweepGrid:
    axes = parse_over(over)
    order = sorted({m.seed: m.index[-1] for m in members}.items(), key=lambda kv: kv[1])
    seeds = [s for s, _ in order]
    return _SweepGrid(axes, seeds, [ax.dim for ax in axes] + ["seed"],
                      (*(len(ax.values) for ax in axes), len(seeds)))


def combine_members(
    datasets: Mapping[tuple[int, ...], xr.Dataset],
    members: Sequence[Member],
    kind: str,
    base_setup: Setup,
    over: Mapping[str, Sequence[Any]] | None,
    alpha: NDArray[np.float64],
    key: str,
) -> xr.Dataset:
    """Combine member Datasets into orthogonal sweep dims (see module docstring)."""
    axes, seed_values, member_dims, shape = _sweep_grid(members, over)

    # Per-member non-index coords (eigenvalue(group), ...) travel as data and are then
    # reduced to the sweep dims they actually vary along.
    aux: set[str] = set()
    prepared: dict[tuple[int, ...], xr.Dataset] = {}
    var_attrs: dict[str, dict[str, Any]] = {}  # combine_nested drops the variables' attrs
    for idx, ds in datasets.items():
        names = [c for c in ds.coords if c not in ds.indexes]
        aux.update(names)
        prepared[idx] = ds.reset_coords(names).drop_attrs(deep=False)
        for name, var in ds.variables.items():
            if var.attrs and str(name) not in var_attrs:
                var_attrs[str(name)] = dict(var.attrs)
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
            if dim in var.dims and constant_along(values, var.get_axis_num(dim)):
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
    for name, attrs in var_attrs.items():
        if name in out.variables:
            for attr, value in attrs.items():
                out[name].attrs.setdefault(attr, value)
    method = next(
        (ds.attrs.get("method") for ds in datasets.values() if ds.attrs.get("method")), kind
    )
    spec = sweep_spec(kind, base_setup, over, seed_values, alpha, key)
    return _finish_sweep(out, spec, base_setup, method, axes)


def sweep_skeleton(members: Sequence[Member], kind: str, base_setup: Setup,
                   over: Mapping[str, Sequence[Any]] | None, alpha: NDArray[np.float64], key: str,
                   method: str) -> xr.Dataset:
    """The coordinates and attributes `combine_members` gives a sweep, made from the members'
    Setups alone (no member data): sweep dims, ``seed``, ``alpha``, ``group`` of the largest L,
    ``eigenvalue`` and ``multiplicity`` (NaN-padded, reduced to the sweep dims they vary
    along), linked fields and ``setup_hash``; ``status`` ("" for every member) carries the
    member dims. The template of a zarr store (`scalex.experiments.zarr_store`)."""
    axes, seed_values, member_dims, shape = _sweep_grid(members, over)
    setups = {m.index[:-1]: m.setup for m in members}
    G = max(s.L for s in setups.values())
    ragged = any(s.L != G for s in setups.values())
    eig = np.full((*shape[:-1], G), np.nan)
    mult = np.full((*shape[:-1], G), np.nan)
    hashes = np.empty(shape[:-1], dtype=object)
    for idx, setup in setups.items():
        eig[(*idx, slice(setup.L))] = setup.spectrum.eigenvalues
        mult[(*idx, slice(setup.L))] = setup.spectrum.multiplicities
        hashes[idx] = setup.hash
    coords: dict[str, Any] = {ax.dim: list(ax.values) for ax in axes}
    coords.update(seed=seed_values, alpha=alpha, group=np.arange(1, G + 1))
    for name, values in (("eigenvalue", eig), ("multiplicity", mult if ragged
                                                 else mult.astype(np.int64))):
        var = xr.Variable([ax.dim for ax in axes] + ["group"], values)
        for ax in axes:
            if constant_along(var.values, var.get_axis_num(ax.dim)):
                var = var.isel({ax.dim: 0})
        coords[name] = var
    for ax in axes:
        for other in ax.fields[1:]:
            coords[other] = (ax.dim, list(ax.values))
    coords["setup_hash"] = ([ax.dim for ax in axes], hashes)
    out = xr.Dataset({"status": (member_dims, np.full(shape, "", dtype=object))},
                     coords=coords)
    spec = sweep_spec(kind, base_setup, over, seed_values, alpha, key)
    return _finish_sweep(out, spec, base_setup, method, axes)


def sweep_spec(kind: str, base_setup: Setup, over: Mapping[str, Sequence[Any]] | None,
               seeds: int | Iterable[int], alpha: NDArray[np.float64], key: str) -> dict[str, Any]:
    """The JSON record of a sweep's specification: the core of the store's ``manifest.json``
    (`scalex.experiments.store.write_manifest`) and of the combined Dataset's sweep attrs.

    ``over`` is a list of ``[field, values]`` pairs (the axis order is the dim order, and JSON
    writers may sort a mapping's keys); ``seeds`` as `scalex.common.seeds.check_seeds` gives
    them.
    """
    return {
        "kind": kind,
        "base_setup": base_setup.to_dict(),
        "over": [[k, jsonable(list(v))] for k, v in (over or {}).items()],
        "seeds": list(check_seeds(seeds)),
        "alpha": [float(a) for a in alpha],
        "key": key,
    }


def _sweep_attrs(spec: Mapping[str, Any], base_setup: Setup, method: str,
                 axes: Sequence[Axis]) -> dict[str, Any]:
    """Global attrs of a combined sweep from its `sweep_spec`: the base Setup's and sweep_*."""
    kind = spec["kind"]
    dims = " ".join(ax.dim for ax in axes)
    attrs = base_attrs(base_setup, method, title=f"scalex {kind} sweep over {dims or 'seed'}")
    swept = " ".join(name for ax in axes for name in ax.fields)
    attrs.update(
        sweep_kind=kind,
        sweep_dims=dims,
        sweep_fields=swept,
        sweep_note=(
            f"scalex_setup, setup_hash and the Setup-field attributes describe the base Setup "
            f"of the sweep; the swept fields ({swept or 'none'}) vary along their coordinates. "
            "A member's own Setup: ds.sel(...).scalex.setup or scalex.schema.member_setup"
        ),
        sweep_over=json.dumps(dict(spec["over"])),
        sweep_seeds=json.dumps(spec["seeds"]),
        sweep_key=spec["key"],
        n_alpha=len(spec["alpha"]),
        padding=PADDING_NOTE,
    )
    return attrs


def _finish_sweep(ds: xr.Dataset, spec: Mapping[str, Any], base_setup: Setup, method: str,
                  axes: Sequence[Axis]) -> xr.Dataset:
    """``ds`` with the global attrs of its `sweep_spec` (`_sweep_attrs`) and the ``long_name``
    and ``units`` of the schema names and of the sweep's own coordinates."""
    ds.attrs = _sweep_attrs(spec, base_setup, method, axes)
    annotate(ds)
    for ax in axes:
        for name in ax.fields:
            ds[name].attrs.setdefault("long_name", f"swept Setup field {name}")
            ds[name].attrs.setdefault("units", "1")  # every Setup field is dimensionless
    ds["seed"].attrs.setdefault("long_name", COORDS["seed"][0])
    ds["setup_hash"].attrs["long_name"] = "Setup.hash of the member (names its store file)"
    ds["setup_hash"].attrs["units"] = "1"
    return ds


def jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)
