"""The scalex Dataset schema, its validation, and atomic NetCDF input/output.

Every result of scalex (ODE, simulation, linear theory, sweeps) is an `xarray.Dataset` with

dims
    ``alpha`` (time α = SGD steps / N), ``group`` (eigenvalue group τ = 1..L),
    ``student_i``/``student_j`` (1..K), ``teacher_n``/``teacher_m`` (1..M), plus optional
    ``seed`` and sweep-parameter dims, which always come first.
coords
    ``eigenvalue(group)``, ``multiplicity(group)``.
data variables
    ``eg(alpha)`` ε_g, ``q(alpha, group, student_i, student_j)``,
    ``r(alpha, group, student_i, teacher_n)``, ``t(group, teacher_n, teacher_m)``, and
    ``status`` ("ok", "diverged" or "failed: ...").
attrs
    CF-1.10 (``Conventions``, ``title``, ``source``, ``history``), every `Setup` field, the
    exact Setup record ``scalex_setup`` (JSON), its ``setup_hash``, the producing ``method``,
    and the conventions in force (activation, time unit, normalisation).

Every variable and coordinate carries ``long_name`` and ``units`` (``"1"``: dimensionless,
counts and labels). `to_netcdf` and `to_netcdf_bytes` write NetCDF-4 files whose numeric
variables are zlib-compressed with the shuffle filter (`storage_encoding`), in chunks of whole
schema dims (`chunk_sizes`): a large sweep variable gets one member, or a run of α of one
member, per chunk, so NaN padding compresses to almost nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from scalex._version import __version__
from scalex.common.atomic import atomic_path
from scalex.model.axes import member, parse_over
from scalex.model.integrals import generalization_error
from scalex.model.setup import ATTR_KEY, Setup
from scalex.model.weights import group_overlaps, sample_weights

__all__ = [
    "DIMS",
    "RECORDABLE",
    "VARIABLES",
    "DivergenceWarning",
    "SchemaError",
    "StabilityWarning",
    "check_record",
    "chunk_sizes",
    "encodable",
    "initial_second_layer",
    "make_dataset",
    "open_dataset",
    "second_layer_extra",
    "setup_rows",
    "storage_encoding",
    "swept_fields",
    "to_netcdf",
    "to_netcdf_bytes",
    "validate",
    "weighted_extra",
    "weighted_overlaps",
]

DIMS = ("alpha", "group", "student_i", "student_j", "teacher_n", "teacher_m")

#: name -> (core dims, long_name, units)
VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "eg": (("alpha",), "generalisation error ε_g", "1"),
    "q": (("alpha", "group", "student_i", "student_j"),
          "student-student overlap q^τ_ij = J_i P_τ J_j / N", "1"),
    "r": (("alpha", "group", "student_i", "teacher_n"),
          "student-teacher overlap r^τ_in = J_i P_τ B_n / N", "1"),
    "t": (("group", "teacher_n", "teacher_m"),
          "teacher-teacher overlap t^τ_nm = B_n P_τ B_m / N", "1"),
    "status": ((), "run status (ok, diverged, failed: reason)", "1"),
}

COORDS: dict[str, tuple[str, str]] = {
    "alpha": ("training time α = SGD steps / N", "1"),
    "alpha_step": ("training time actually simulated, n/N with n = rint(alpha*N)", "1"),
    "step": ("SGD steps run for this alpha, n = rint(alpha*N)", "1"),
    "group": ("eigenvalue group τ", "1"),
    "eigenvalue": ("eigenvalue λ_τ of the input covariance", "1"),
    "multiplicity": ("number of input coordinates N_τ in group τ", "1"),
    "student_i": ("student hidden unit i", "1"),
    "student_j": ("student hidden unit j", "1"),
    "teacher_n": ("teacher hidden unit n", "1"),
    "teacher_m": ("teacher hidden unit m", "1"),
    "seed": ("random seed of the weight draw and the SGD inputs", "1"),
}

CONVENTIONS = {
    "activation_convention": ("erf: g(x) = erf(x/sqrt(2)); linear: g(x) = x; "
                              "relu: g(x) = max(0, x), g'(x) = 1 if x > 0 else 0"),
    "time_convention": "alpha = number of SGD steps / N",
    "spectrum_convention": (
        "lambda_tau = lambda_+ tau^-(1+beta); mean: tr(Sigma)/N = 1; top: lambda_1 = 1"
    ),
    "error_convention": "eg = E[(teacher - student)^2]/2 on noiseless labels",
    "order_parameter_convention": (
        "q^tau = J P_tau J^T / N, r^tau = J P_tau B^T / N, t^tau = B P_tau B^T / N"
    ),
}


class SchemaError(ValueError):
    """A Dataset or file that does not follow the scalex schema."""


class DivergenceWarning(RuntimeWarning):
    """A run whose order parameters blew up (η too large); its dataset has status "diverged"."""


class StabilityWarning(RuntimeWarning):
    """η far outside the stable range (docs/theory.md §4.4), even if nothing overflowed."""


#: Overlaps an engine can record: per-group q^τ, r^τ (schema variables) and the λ-weighted
#: Q = Σ_τ λ_τ q^τ, R = Σ_τ λ_τ r^τ (much smaller for large L).
RECORDABLE = ("q", "r", "Q", "R")


def check_record(record: str | Sequence[str]) -> tuple[str, ...]:
    """``record`` as a tuple in the order of `RECORDABLE`; unknown names raise ValueError."""
    rec = (record,) if isinstance(record, str) else tuple(record)
    unknown = [r for r in rec if r not in RECORDABLE]
    if unknown:
        raise ValueError(f"record: each entry must be one of {RECORDABLE}, got {unknown}")
    return tuple(r for r in RECORDABLE if r in rec)


def weighted_extra(Q: ArrayLike, R: ArrayLike) -> dict[str, tuple[tuple[str, ...], Any,
                                                                  dict[str, str]]]:
    """The ``extra`` entries of `make_dataset` for recorded Q (A, K, K) and R (A, K, M)."""
    return {
        "Q": (("alpha", "student_i", "student_j"), Q,
              {"long_name": "weighted overlap Q = Σ_τ λ_τ q^τ", "units": "1"}),
        "R": (("alpha", "student_i", "teacher_n"), R,
              {"long_name": "weighted overlap R = Σ_τ λ_τ r^τ", "units": "1"}),
    }


def second_layer_extra(v: ArrayLike) -> dict[str, tuple[tuple[str, ...], Any, dict[str, str]]]:
    """The ``extra`` entry of `make_dataset` for a trained second layer v (A, K)
    (``Setup.train_v``, docs/theory.md §3.10)."""
    return {"v": (("alpha", "student_i"), v,
                  {"long_name": "student second-layer weight v_i (trained)", "units": "1"})}


def initial_second_layer(init: xr.Dataset, K: int) -> NDArray[np.float64]:
    """The trained second layer v (K,) that ``init`` carries (its variable ``v``, at the first
    alpha), for a start with ``Setup.train_v``; ValueError unless finite with dims
    ('student_i',) of size K."""
    v = init["v"]
    if "alpha" in v.dims:
        v = v.isel(alpha=0)
    if v.dims != ("student_i",) or v.shape != (K,) or not np.all(np.isfinite(v.values)):
        raise ValueError(f"init: variable 'v' must be finite with dims ('student_i',) of size "
                         f"K={K} (after taking its first alpha), got {v.dims} {v.shape}")
    return np.asarray(v.values, dtype=float)


def weighted_overlaps(q: ArrayLike, r: ArrayLike, t: ArrayLike, eigenvalues: ArrayLike):
    """Q = Σ_τ λ_τ q^τ, R = Σ_τ λ_τ r^τ, T = Σ_τ λ_τ t^τ (group axis is -3)."""
    lam = np.asarray(eigenvalues, dtype=float)
    Q = np.einsum("...gij,g->...ij", np.asarray(q, dtype=float), lam)
    R = np.einsum("...gin,g->...in", np.asarray(r, dtype=float), lam)
    T = np.einsum("...gnm,g->...nm", np.asarray(t, dtype=float), lam)
    return Q, R, T


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_attrs(setup: Setup, method: str, title: str | None = None) -> dict[str, Any]:
    """CF global attributes plus every Setup field and the conventions."""
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.10",
        "title": title or f"scalex {method}: K={setup.K} M={setup.M} N={setup.N} L={setup.L} "
                           f"{setup.activation}",
        "institution": "",
        "source": f"scalex {__version__}",
        "history": f"{_now()} scalex {__version__}: {method}",
        "references": "Worschech & Rosenow, ICLR 2025 (arXiv:2410.09005); Saad & Solla 1995",
        "method": method,
    }
    attrs.update(CONVENTIONS)
    attrs.update(setup.to_attrs())
    return attrs


def make_dataset(
    setup: Setup,
    alpha: ArrayLike,
    q: ArrayLike,
    r: ArrayLike,
    t: ArrayLike,
    *,
    method: str,
    eg: ArrayLike | None = None,
    status: str = "ok",
    extra: Mapping[str, tuple[tuple[str, ...], ArrayLike, Mapping[str, Any]]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble one schema Dataset from plain arrays.

    ``q`` (A, L, K, K), ``r`` (A, L, K, M), ``t`` (L, M, M); ``eg`` (A,) defaults to the exact
    ε_g of the overlaps (at the trained second layer ``extra["v"]`` (A, K) if
    ``setup.train_v``, which then must be given). ``extra`` adds variables as
    ``name: (dims, values, attrs)``.
    """
    sp = setup.spectrum
    alpha = np.asarray(alpha, dtype=float)
    q, r, t = (np.asarray(x, dtype=float) for x in (q, r, t))
    if eg is None:
        Q, R, T = weighted_overlaps(q, r, t, sp.eigenvalues)
        v, w = setup.second_layer
        if setup.train_v:
            if extra is None or "v" not in extra:
                raise ValueError("extra: a Setup with train_v=True needs the trained second "
                                 "layer 'v' (alpha, student_i) to compute eg")
            v = np.asarray(extra["v"][1], dtype=float)
        eg = generalization_error(Q, R, T, v, w, setup.activation)
    coords = {
        "alpha": alpha,
        "group": np.arange(1, sp.L + 1),
        "eigenvalue": ("group", sp.eigenvalues),
        "multiplicity": ("group", sp.multiplicities),
        "student_i": np.arange(1, setup.K + 1),
        "student_j": np.arange(1, setup.K + 1),
        "teacher_n": np.arange(1, setup.M + 1),
        "teacher_m": np.arange(1, setup.M + 1),
    }
    values = {"eg": eg, "q": q, "r": r, "t": t, "status": np.array(status, dtype=object)}
    ds = xr.Dataset(
        {name: (VARIABLES[name][0], values[name]) for name in VARIABLES}, coords=coords
    )
    for name, (dims, vals, var_attrs) in (extra or {}).items():
        ds[name] = (dims, np.asarray(vals), dict(var_attrs))
    ds.attrs = base_attrs(setup, method)
    ds.attrs.update(attrs or {})
    return annotate(ds)


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Add ``long_name``/``units`` to every known variable and coordinate (in place).

    Dimensionless quantities, counts and labels have ``units = "1"`` (CF).
    """
    for name, (_dims, long_name, units) in VARIABLES.items():
        if name in ds:
            ds[name].attrs.setdefault("long_name", long_name)
            ds[name].attrs.setdefault("units", units)
    for name, (long_name, units) in COORDS.items():
        if name in ds.coords:
            ds[name].attrs.setdefault("long_name", long_name)
            ds[name].attrs.setdefault("units", units)
    return ds


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the scalex schema; raise `SchemaError` saying what is wrong.

    Returns ``ds`` so the call can be chained.
    """
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    problems: list[str] = []
    if ATTR_KEY not in ds.attrs:
        raise SchemaError(f"attrs: missing {ATTR_KEY!r}; this is not a scalex dataset")
    try:
        setup = Setup.from_attrs(ds.attrs)
    except (ValueError, TypeError) as err:
        raise SchemaError(f"attrs[{ATTR_KEY!r}]: does not describe a valid Setup ({err})") from err
    for key in ("Conventions", "source", "history", "method"):
        if key not in ds.attrs:
            problems.append(f"attrs: missing {key!r}")
    # Reduced datasets (linear theory without overlaps, simulations that record only the
    # λ-weighted Q, R) may leave out the per-group overlaps, but must carry a substitute.
    # A simulation lists what it recorded in attrs["recorded"].
    reduced = {"e", "Q", "R"} & set(ds.data_vars)
    recorded = ds.attrs.get("recorded")
    optional = {"q", "r"} - set(str(recorded).split()) if recorded is not None else set()
    for name in ("eg", "q", "r", "t"):
        if name not in ds.data_vars:
            if (name != "eg" and reduced) or name in optional:
                continue
            problems.append(f"variable {name!r}: missing")
            continue
        core = VARIABLES[name][0]
        dims = ds[name].dims
        if dims[len(dims) - len(core):] != core:
            problems.append(f"variable {name!r}: dims {dims} must end with {core}")
        for attr in ("long_name", "units"):
            if attr not in ds[name].attrs:
                problems.append(f"variable {name!r}: missing attribute {attr!r}")
    sweep_dims = str(ds.attrs.get("sweep_dims", "")).split()
    expected = {"group": setup.L, "student_i": setup.K, "teacher_n": setup.M}
    for dim, size in expected.items():
        if dim in ds.dims and ds.sizes[dim] != size and not sweep_dims:
            problems.append(f"dim {dim!r}: size {ds.sizes[dim]} does not match Setup ({size})")
    if "alpha" in ds.coords:
        a = np.asarray(ds["alpha"].values)
        if a.size and (np.any(np.diff(a) <= 0) or a[0] < 0):
            problems.append("coord 'alpha': must be >= 0 and strictly increasing")
    if problems:
        raise SchemaError("invalid scalex dataset:\n  - " + "\n  - ".join(problems))
    return ds


#: zlib level of `to_netcdf` and `to_netcdf_bytes` (with the byte shuffle filter). Level 1
#: stores fig. 1's combined sweep in 16 MB instead of 103 MB, written in 1-2 s; levels 4 and 9
#: save 2-4 % more space and take up to twice as long to write (benchmarks/bench_files.py).
COMPRESSION = 1
#: Variables smaller than this many bytes stay contiguous and uncompressed: the index of a
#: chunked variable costs more than compression saves there.
COMPRESS_MIN_BYTES = 8192
#: Largest stored chunk (`chunk_sizes`).
CHUNK_BYTES = 4 << 20

# Encoding entries that describe values, not storage: a copy of a dataset read from a file
# keeps them, whereas its chunking and filters are chosen anew for the written shape.
_VALUE_ENCODING = ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset",
                   "units", "calendar")


def chunk_sizes(shape: tuple[int, ...], itemsize: int,
                target: int = CHUNK_BYTES) -> tuple[int, ...]:
    """Chunk shape of a stored variable: whole trailing (schema) dims, outer dims split.

    Dims are taken whole from the innermost outwards while the chunk stays within ``target``
    bytes; the first dim that does not fit is split into equal parts. For a sweep's
    ``q(L, seed, alpha, group, i, j)`` a chunk is one member (or a run of α of it), so the NaN
    padding of a small member sits in its own chunks and compresses to almost nothing.
    """
    chunks = list(shape)
    inner = itemsize
    for axis in range(len(shape) - 1, -1, -1):
        if inner * shape[axis] <= target:
            inner *= shape[axis]
            continue
        fit = max(1, target // inner)
        parts = -(-shape[axis] // fit)
        chunks[axis] = -(-shape[axis] // parts)
        chunks[:axis] = [1] * axis
        break
    return tuple(max(1, c) for c in chunks)


def storage_encoding(var: xr.Variable, compression: int | None = COMPRESSION) -> dict[str, Any]:
    """The NetCDF storage of one variable: zlib ``compression`` level, shuffle and chunks.

    Empty (contiguous, uncompressed) for strings, scalars, variables below
    `COMPRESS_MIN_BYTES` and ``compression`` None or 0.
    """
    if (not compression or var.dtype.kind not in "fiub" or var.ndim == 0 or var.size == 0
            or var.nbytes < COMPRESS_MIN_BYTES):
        return {}
    return {"zlib": True, "complevel": int(compression), "shuffle": True,
            "chunksizes": chunk_sizes(var.shape, var.dtype.itemsize)}


def encodable(ds: xr.Dataset, compression: int | None = COMPRESSION) -> xr.Dataset:
    """A shallow copy NetCDF can store: attrs without None, bools as ints, the descriptions of
    `annotate`, and the storage encoding of `storage_encoding` on every variable."""
    out = ds.copy(deep=False)
    for obj in [out, *out.variables.values()]:
        fixed = {}
        for key, val in obj.attrs.items():
            if val is None:
                continue
            fixed[key] = int(val) if isinstance(val, (bool, np.bool_)) else val
        obj.attrs = fixed
    annotate(out)
    for var in out.variables.values():
        kept = {k: v for k, v in var.encoding.items() if k in _VALUE_ENCODING}
        var.encoding = {**kept, **storage_encoding(var, compression)}
    return out


def to_netcdf(ds: xr.Dataset, path: str | os.PathLike[str], *,
              compression: int | None = COMPRESSION, **kwargs: Any) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file in the same folder, then rename.

    Variables of at least `COMPRESS_MIN_BYTES` are stored zlib-compressed at level
    ``compression`` (None or 0: uncompressed) with the shuffle filter, in chunks of
    `chunk_sizes`; ``encoding={name: {...}}`` in ``kwargs`` replaces that for a variable.
    A failure leaves any previous file at ``path`` untouched and no partial file behind.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        encodable(ds, compression).to_netcdf(tmp, engine="netcdf4", **kwargs)
    return path


def to_netcdf_bytes(ds: xr.Dataset, *, compression: int | None = COMPRESSION,
                    **kwargs: Any) -> bytes:
    """The NetCDF-4 file image of ``ds`` (NetCDF-safe attrs, compressed as by `to_netcdf`),
    built in memory.

    For writers that must survive a full disk: written with `scalex.common.atomic.write_bytes`
    the failure is a plain ``OSError(ENOSPC)`` and no file stays open, whereas HDF5 keeps a
    file open (a deleted temporary) when its final flush fails.
    """
    return bytes(encodable(ds, compression).to_netcdf(None, engine="netcdf4", **kwargs))


def open_dataset(path: str | os.PathLike[str], *, chunks: Any = None, **kwargs: Any) -> xr.Dataset:
    """Open a scalex NetCDF result and validate it.

    Raises `FileNotFoundError` for a missing file and `SchemaError` (a `ValueError`) for a
    corrupt file or one that scalex did not write.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", chunks=chunks, **kwargs)
    except Exception as err:  # netCDF4 raises OSError, xarray ValueError for junk
        raise SchemaError(
            f"{path}: not a readable NetCDF file ({type(err).__name__}: {err})"
        ) from err
    try:
        return validate(ds)
    except SchemaError as err:
        ds.close()
        raise SchemaError(f"{path}: {err}") from err


def hierarchy(ds: xr.Dataset, l: int = 1, variable: str = "q") -> xr.DataArray:
    """The hierarchy view X^(l) = Σ_τ λ_τ^l x^τ of a per-group overlap (docs/theory.md eq. (2.3)).

    ``Q^(l) = J Σ^l Jᵀ / N`` for ``variable="q"`` (likewise ``"r"``, ``"t"``); l = 0 gives the
    plain overlap, l = 1 the field covariance entry. Works lazily on dask-backed data.
    """
    if variable not in ("q", "r", "t"):
        raise ValueError(f"variable: must be 'q', 'r' or 't', got {variable!r}")
    lam = ds["eigenvalue"]
    out = (ds[variable] * lam**l).sum("group", skipna=True)
    out.attrs = {"long_name": f"{variable.upper()}^({l}) = Σ_τ λ_τ^{l} {variable}^τ", "units": "1"}
    return out.rename(f"{variable.upper()}{l}")


def member_setup(ds: xr.Dataset | xr.DataArray, **coords: Any) -> Setup:
    """The `Setup` of one sweep member, e.g. ``member_setup(ds, L=4, K=2)``.

    A sweep's attrs hold its BASE Setup (``scalex_setup``) and the swept axes
    (``sweep_over``, ``sweep_dims``, ``sweep_fields``). Each sweep dimension's value comes
    from ``coords`` or, if not given there, from ``ds`` itself when it was selected down to
    one value (``ds.sel(L=4)``: a scalar coord, or a dim of size 1). Without sweep attrs this
    is the recorded Setup. Raises ValueError naming the sweep dims that still span several
    members.
    """
    base = Setup.from_attrs(ds.attrs)
    over = json.loads(ds.attrs.get("sweep_over", "{}") or "{}")
    axes = parse_over(over)
    values: dict[str, Any] = {}
    missing: list[str] = []
    for ax in axes:
        if ax.dim in coords:
            values[ax.dim] = coords[ax.dim]
        elif ax.dim in ds.coords and ds[ax.dim].size == 1:
            values[ax.dim] = np.asarray(ds[ax.dim].values).reshape(-1)[0]
        else:
            missing.append(ax.dim)
    if missing:
        sizes = {d: int(ds.sizes[d]) for d in missing if d in ds.sizes}
        raise ValueError(
            f"coords: missing sweep dimension(s) {missing}: this object spans several sweep "
            f"members (sizes {sizes}); select one value of each, e.g. "
            f"ds.sel({missing[0]}=...), or pass it to member_setup"
        )
    changes = {name: values[ax.dim] for ax in axes for name in ax.fields}
    changes = {k: v.item() if isinstance(v, np.generic) else v for k, v in changes.items()}
    return member(base, changes)


def initial_overlaps(setup: Setup, seed: int = 0) -> xr.Dataset:
    """Per-group initial order parameters q^τ, r^τ, t^τ of the draw of ``seed`` (docs/theory.md §2).

    q^τ_ij = J_i P_τ J_j / N,  r^τ_in = J_i P_τ B_n / N,  t^τ_nm = B_n P_τ B_m / N.

    Returns a schema Dataset with a single time point α = 0 and ``eg`` the exact ε_g there
    (and the initial second layer ``v`` if ``setup.train_v``, docs/theory.md §3.10).
    """
    J, B = sample_weights(setup, seed)
    starts = setup.spectrum.group_starts()
    q = group_overlaps(J, J, starts, setup.N)
    r = group_overlaps(J, B, starts, setup.N)
    t = group_overlaps(B, B, starts, setup.N)
    extra = second_layer_extra(setup.second_layer[0][None]) if setup.train_v else None
    return make_dataset(setup, np.zeros(1), q=q[None], r=r[None], t=t, method="initial",
                        extra=extra, attrs={"seed": int(seed)})


def swept_fields(attrs: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The Setup fields a sweep varies, with their values, from ``sweep_over``/``sweep_dims``.

    ``{"K=M": [2, 3]}`` gives both K and M. A sweep's ``scalex_setup`` is its *base* Setup, so
    these fields must be shown as swept, not with the base value.
    """
    try:
        over = json.loads(str(attrs.get("sweep_over", "") or "{}"))
    except ValueError:
        over = {}
    if not isinstance(over, Mapping):
        over = {}
    out: dict[str, list[Any]] = {}
    for key, values in over.items():
        for name in str(key).split("="):
            out[name.strip()] = list(values) if isinstance(values, list) else [values]
    for name in str(attrs.get("sweep_dims", "")).split():
        out.setdefault(name, [])
    return out


def setup_rows(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The Setup of a result as rows ``{field: value}``, swept fields as "swept over [...]".

    Empty if the attrs hold no Setup. Used by the report's and ``scalex info``'s Setup table.
    """
    from scalex.model.setup import Setup

    try:
        setup = Setup.from_attrs(attrs)
    except (ValueError, TypeError):
        return {}
    swept = swept_fields(attrs)
    rows: dict[str, Any] = {}
    for name, value in setup.to_dict().items():
        if name in swept:
            values = swept[name]
            rows[name] = f"swept over {values}" if values else "swept"
        else:
            rows[name] = value
    rows["N_l (trained coordinates)"] = ("swept (trainable)" if "trainable" in swept
                                         else setup.n_trainable)
    rows["setup hash" + (" (base Setup of the sweep)" if swept else "")] = setup.hash
    return rows
