"""One experiment by several routes: an `xarray.DataTree` with one node per route.

`compare` runs the routes of one `Setup` — the exact ODE (docs/theory.md §3), online SGD
(§1) and the closed-form linear theory (§4) — on one α grid and one list of seeds, and returns
them as a DataTree::

    /                 shared index coordinates (alpha, group, student_i, ..., seed) and the
    │                 setup attrs of `scalex.schema.base_attrs` (method "compare", ``routes``)
    ├── ode           the route's schema Dataset (its data, its own coordinates and attrs)
    ├── simulate
    └── linear

Each route runs as a `scalex.experiments.sweep.sweep` of its kind with no swept field, so a
node is exactly what the catalog writes for that kind (``<entry>-<kind>.nc``): dims
``(seed, alpha, ...)``, ``status(seed)``, a failed seed recorded in ``status`` rather than
raised. The deterministic routes are solved from the weight draw of every seed, so all nodes
share the ``seed`` coordinate and are compared draw by draw; ``tree["ode"].to_dataset()`` is
the full Dataset again (the root's index coordinates are inherited) and passes
`scalex.schema.validate`.

`comparison_tree` builds such a tree from any datasets on one grid (`run_entry` writes the
routes of a catalog entry as ``<entry>-compare.nc`` with it); `to_netcdf` and `to_zarr` write
a tree atomically, one group per route, compressed as `scalex.schema.to_netcdf` compresses a
Dataset; `open_datatree` reads it back and validates every route; `map_routes` applies a
per-Dataset analysis to every route and stacks the results along a ``route`` dim.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from scalex.common.alpha import check_alpha
from scalex.common.atomic import atomic_path
from scalex.common.seeds import check_seeds
from scalex.model.setup import Setup

__all__ = ["ROUTES", "compare", "comparison_tree", "map_routes", "open_datatree", "routes_of",
           "to_netcdf", "to_zarr", "write_routes"]

#: the default routes, in drawing order: exact ODE, online SGD, exact linear theory
ROUTES = ("ode", "simulate", "linear")
#: ``method`` attr of the root of a comparison tree
METHOD = "compare"


# ---------------------------------------------------------------------------------- running
def compare(
    setup: Setup,
    alpha: ArrayLike,
    routes: Sequence[str] = ROUTES,
    *,
    seeds: int | Iterable[int] = range(4),
    progress: bool | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    **route_options: Mapping[str, Any],
) -> xr.DataTree:
    """Run ``setup`` by every route of ``routes`` on the grid ``alpha`` and the same ``seeds``.

    Parameters
    ----------
    setup : the experiment.
    alpha : the α grid of every route (for SGD, each α runs to step rint(α·N); a grid of
        multiples of 1/N compares all routes at exactly the same times).
    routes : sweep kinds (`scalex.experiments.kinds.KINDS`): "ode" (`scalex.solve_ode`),
        "simulate" (`scalex.simulate`), "linear" (`scalex.linear_theory`) or a registered one.
        "linear" is the exact theory of the *linear* network: it needs
        ``activation="linear"`` and η below the linear stability bound, and is refused
        otherwise (ValueError naming the field) — for the linear theory beside an erf network
        compare ``setup.replace(activation="linear")`` separately.
    seeds : the weight draws (an integer n means 0..n-1); SGD runs each, and the ODE and the
        linear theory start from each draw's initial overlaps.
    progress, scheduler, workers, client : how the sweeps run (`scalex.sweep`).
    **route_options : per route, the keyword arguments of its function, e.g.
        ``ode={"rtol": 1e-8}``, ``simulate={"record": "Q", "seeds": range(16)}``. A
        ``seeds`` entry replaces ``seeds`` for that route only (the ``seed`` coordinate then
        stays in the nodes instead of the root). Unknown options are refused before any run.

    Returns
    -------
    `xarray.DataTree` with one child per route, named after it, in the order of ``routes``
    (`comparison_tree`); each child's attrs also hold ``route_options`` (JSON).
    """
    from scalex.experiments.sweep import sweep

    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    alpha_arr = check_alpha(alpha)
    names = _check_routes(routes)
    seed_list = check_seeds(seeds)
    plans: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
    for key in route_options:
        if key not in names:
            raise ValueError(f"{key}: not a route of this comparison (routes {list(names)}); "
                             "options are given per route, e.g. ode={'rtol': 1e-8}")
    for name in names:
        options = route_options.get(name) or {}
        if not isinstance(options, Mapping):
            raise ValueError(f"{name}: route options must be a mapping of keyword arguments, "
                             f"got {options!r}")
        options = dict(options)
        own = check_seeds(options.pop("seeds"), f"{name}.seeds") if "seeds" in options \
            else seed_list
        _check_options(name, options)
        plans[name] = (own, options)
    if "linear" in names:
        _check_linear(setup)
    datasets = {}
    run = dict(progress=progress, scheduler=scheduler, workers=workers, client=client)
    for name, (own, options) in plans.items():
        ds = sweep(name, setup, None, own, alpha_arr, **run, **options).load()
        ds.attrs["route_options"] = json.dumps(options, sort_keys=True, default=_jsonable)
        datasets[name] = ds
    return comparison_tree(datasets, setup=setup)


def _check_routes(routes: Sequence[str]) -> tuple[str, ...]:
    from scalex.experiments.kinds import KINDS

    names = (routes,) if isinstance(routes, str) else tuple(routes)
    if not names:
        raise ValueError("routes: must name at least one route")
    for name in names:
        if name not in KINDS:
            raise ValueError(f"routes: each must be one of {sorted(KINDS)}, got {name!r}")
        KINDS[name].check_available()
    if len(set(names)) != len(names):
        raise ValueError(f"routes: must be distinct, got {list(names)}")
    return names


def _check_options(route: str, options: Mapping[str, Any]) -> None:
    """Refuse an option ``route`` does not take before anything runs (a member would fail)."""
    from scalex.experiments.kind_options import SWEEP_OPTIONS, check_kind_options
    from scalex.experiments.validation import Problem

    for key in options:
        if key in SWEEP_OPTIONS or key in ("seed", "setup", "alpha"):
            raise ValueError(f"{route}.{key}: set by compare for every route, not per route")
    try:
        check_kind_options(options, route)
    except Problem as err:
        where = ".".join(str(a) for a in (route, *err.at))
        raise ValueError(f"{where}: {err}") from None


def _check_linear(setup: Setup) -> None:
    """The linear route's conditions (docs/theory.md §4), checked before any route runs."""
    from scalex.engines.linear import check_setup

    if setup.activation != "linear":
        raise ValueError(
            f"activation: the route 'linear' (exact linear theory, docs/theory.md §4) needs "
            f"activation='linear', got {setup.activation!r}; leave 'linear' out of routes, or "
            "compare setup.replace(activation='linear') on its own")
    check_setup(setup)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (range, tuple, set, np.ndarray)):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


# ---------------------------------------------------------------------------------- the tree
def _same(a: Any, b: Any) -> bool:
    """Equal attribute values (numbers, strings or arrays of them) of the same kind."""
    try:
        x, y = np.asarray(a), np.asarray(b)
        return (x.dtype.kind == y.dtype.kind and x.shape == y.shape
                and bool(np.array_equal(x, y)))
    except (TypeError, ValueError):
        return False


def _shared_attrs(datasets: Sequence[xr.Dataset]) -> dict[str, Any]:
    first, *rest = datasets
    return {k: v for k, v in first.attrs.items()
            if all(k in ds.attrs and _same(v, ds.attrs[k]) for ds in rest)}


def _shared_indexes(datasets: Sequence[xr.Dataset]) -> list[str]:
    """Index coordinates present and identical (values and attrs) in every dataset."""
    first, *rest = datasets
    return [str(name) for name in first.indexes
            if all(name in ds.indexes and ds[name].variable.identical(first[name].variable)
                   for ds in rest)]


def comparison_tree(
    datasets: Mapping[str, xr.Dataset],
    *,
    setup: Setup | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataTree:
    """A DataTree of ``datasets`` (``{route: Dataset}``), one child per entry, in that order.

    The root holds the index coordinates that every dataset has identically (``alpha``,
    ``group``, ``student_i``, ..., ``seed`` where the routes share them); the children inherit
    them and keep everything else. The root's attrs are those every dataset carries alike,
    then the CF and Setup attrs of `scalex.schema.base_attrs` for ``setup`` (default: the
    Setup recorded in the first dataset; for sweeps, the base Setup) with ``method``
    "compare", ``routes`` (the children, space-separated) and ``attrs``.
    ``tree[route].to_dataset()`` is the dataset again.
    """
    from scalex.schema import base_attrs

    if not datasets:
        raise ValueError("datasets: must hold at least one route")
    for name, ds in datasets.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"datasets: route names must be non-empty strings without '/', "
                             f"got {name!r}")
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"datasets[{name!r}]: must be an xarray.Dataset, "
                             f"got {type(ds).__name__}")
    parts = list(datasets.values())
    shared = _shared_indexes(parts)
    root = xr.Dataset(coords={name: parts[0][name].variable for name in shared})
    setup = setup if setup is not None else Setup.from_attrs(parts[0].attrs)
    base = base_attrs(setup, METHOD, title=f"scalex compare ({', '.join(datasets)}): "
                                           f"K={setup.K} M={setup.M} N={setup.N} L={setup.L} "
                                           f"{setup.activation}")
    shared_attrs = {k: v for k, v in _shared_attrs(parts).items() if k not in base}
    root.attrs = {**base, **shared_attrs, "routes": " ".join(datasets), **(attrs or {})}
    children = {name: ds.drop_vars(shared) for name, ds in datasets.items()}
    return xr.DataTree.from_dict({"/": root, **children})


def routes_of(tree: xr.DataTree) -> list[str]:
    """The route nodes of a comparison tree, in their order."""
    if not isinstance(tree, xr.DataTree):
        raise ValueError(f"tree: must be an xarray.DataTree, got {type(tree).__name__}")
    names = list(tree.children)
    if not names:
        raise ValueError("tree: has no route nodes")
    return names


def map_routes(tree: xr.DataTree, func: Callable[..., Any], *args: Any,
               **kwargs: Any) -> xr.Dataset:
    """``func(route_dataset, *args, **kwargs)`` for every route, stacked along ``route``.

    E.g. ``map_routes(tree, scalex.analysis.measures.plateau)``: the plateau of every route,
    dims ``(route, seed)``. Results over different seeds are aligned (NaN where a route lacks
    a seed). A DataArray result becomes a Dataset named after it.
    """
    names = routes_of(tree)
    parts = []
    for name in names:
        out = func(tree[name].to_dataset(), *args, **kwargs)
        if isinstance(out, xr.DataArray):
            out = out.to_dataset(name=out.name or "value")
        if not isinstance(out, xr.Dataset):
            raise ValueError(f"func: must return a Dataset or DataArray, got "
                             f"{type(out).__name__} for route {name!r}")
        parts.append(out)
    index = xr.DataArray(np.array(names, dtype=str), dims="route", name="route")
    out = xr.concat(parts, dim=index, join="outer", coords="minimal", compat="override",
                    combine_attrs="drop_conflicts")
    out["route"].attrs.update(long_name="route to the learning curve (node of the tree)",
                              units="1")
    return out


# ---------------------------------------------------------------------------------- files
def _nodes(tree: xr.DataTree) -> dict[str, xr.Dataset]:
    return {node.path: node.to_dataset(inherit=False) for node in tree.subtree}


def _netcdf_ready(tree: xr.DataTree, compression: int | None
                      ) -> tuple[xr.DataTree, dict[str, dict[str, Any]]]:
    from scalex.schema import encodable

    nodes = {path: encodable(ds, compression) for path, ds in _nodes(tree).items()}
    encoding = {path: {str(n): dict(v.encoding) for n, v in ds.variables.items()}
                for path, ds in nodes.items()}
    return xr.DataTree.from_dict(nodes), encoding


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike[str], *,
              compression: int | None = None) -> Path:
    """Write ``tree`` to one NetCDF-4 file, a group per node, atomically (temporary + rename).

    Each group is stored as `scalex.schema.to_netcdf` stores a Dataset: NetCDF-safe attrs,
    variables of at least `scalex.schema.COMPRESS_MIN_BYTES` zlib-compressed at level
    ``compression`` (None: `scalex.schema.COMPRESSION`; 0: uncompressed) with the shuffle
    filter, in chunks of `scalex.schema.chunk_sizes`. A failure leaves any previous file at
    ``path`` untouched.
    """
    from scalex.schema import COMPRESSION

    routes_of(tree)
    tree, encoding = _netcdf_ready(tree, COMPRESSION if compression is None
                                       else compression)
    path = Path(path)
    with atomic_path(path) as tmp:
        tree.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    return path


def _zarr_node(ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """A node as zarr stores it, and its encoding: Blosc zstd
    (`scalex.experiments.zarr_store.compressor`) in `scalex.schema.chunk_sizes` chunks for
    the numeric variables that `scalex.schema.storage_encoding` would compress; text as
    variable-length strings (zarr format 3 specifies those, not fixed-width ones)."""
    from scalex.experiments.zarr_store import compressor
    from scalex.schema import storage_encoding

    variables = {}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "US":
            kept = {k: v for k, v in var.encoding.items() if k != "dtype"}
            var = var.astype(object)
            var.encoding = kept
        variables[name] = var
        netcdf = storage_encoding(var)
        encoding[str(name)] = ({"compressors": (compressor(),), "chunks": netcdf["chunksizes"]}
                               if netcdf else {})
    out = xr.Dataset({n: v for n, v in variables.items() if n not in ds.coords},
                     coords={n: v for n, v in variables.items() if n in ds.coords},
                     attrs=ds.attrs)
    return out, encoding


def to_zarr(tree: xr.DataTree, path: str | os.PathLike[str]) -> Path:
    """Write ``tree`` as one zarr (format 3) store, a group per node (needs the ``zarr`` extra).

    Built in a sibling temporary directory ``.<name>.<random>.tmp`` and renamed into place, so
    the store is whole or absent; an existing store at ``path`` is replaced (moved aside
    first, removed after the rename).
    """
    try:
        import zarr  # noqa: F401
    except ImportError as err:
        raise ImportError(f"to_zarr needs the zarr package (pip install 'scalex[zarr]'): "
                          f"{err}") from None
    from scalex.schema import encodable

    routes_of(tree)
    nodes = {path: _zarr_node(encodable(ds, 0)) for path, ds in _nodes(tree).items()}
    encoding = {path: enc for path, (_ds, enc) in nodes.items()}
    tree = xr.DataTree.from_dict({path: ds for path, (ds, _enc) in nodes.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    tmp = path.parent / f".{path.name}.{token}.tmp"
    old = path.parent / f".{path.name}.{token}.old.tmp"
    try:
        tree.to_zarr(tmp, mode="w-", consolidated=False, zarr_format=3, encoding=encoding)
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def open_datatree(path: str | os.PathLike[str], *, chunks: Any = None) -> xr.DataTree:
    """Read a comparison tree written by `to_netcdf` (a file) or `to_zarr` (a directory).

    With ``chunks`` None the tree is loaded into memory and the file closed; otherwise it is
    dask-backed (``chunks`` as in `xarray.open_datatree`). Every route node is checked with
    `scalex.schema.validate`. Raises `FileNotFoundError` for a missing path and
    `scalex.schema.SchemaError` (a ValueError) for a file that is not a comparison tree.
    """
    from scalex.schema import SchemaError, validate

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    zarr = path.is_dir()
    kwargs: dict[str, Any] = ({"engine": "zarr", "consolidated": False, "zarr_format": 3}
                              if zarr else {"engine": "netcdf4"})
    try:
        tree = xr.open_datatree(path, chunks=chunks, **kwargs)
    except Exception as err:  # netCDF4 and zarr raise their own errors for junk
        raise SchemaError(f"{path}: not a readable {'zarr' if zarr else 'NetCDF'} tree "
                          f"({type(err).__name__}: {err})") from err
    if chunks is None:
        loaded = tree.load()
        tree.close()
        tree = loaded
    try:
        if tree.attrs.get("method") != METHOD or not tree.children:
            raise SchemaError(f"root: method is {tree.attrs.get('method')!r}, not {METHOD!r} "
                              "with route groups; open a single result with "
                              "scalex.open_dataset")
        for name in tree.children:
            try:
                validate(tree[name].to_dataset())
            except SchemaError as err:
                raise SchemaError(f"route {name!r}: {err}") from None
    except SchemaError as err:
        with contextlib.suppress(Exception):
            tree.close()
        raise SchemaError(f"{path}: {err}") from err
    return tree


def write_routes(path: str | os.PathLike[str], datasets: Mapping[str, xr.Dataset],
                 problems: list[str]) -> Path | None:
    """`to_netcdf` of the `comparison_tree` of ``datasets``, for `run_entry`.

    A tree that cannot be formed or written is noted in ``problems`` and None returned (the
    datasets are written on their own already); a full disk (OSError) is raised.
    """
    try:
        return to_netcdf(comparison_tree(datasets), path)
    except OSError:
        raise
    except Exception as err:
        problems.append(f"{Path(path).name} not written: {type(err).__name__}: {err}")
        return None
