"""Dataset schema, NetCDF round trip, atomic writes and rejection of invalid input."""

import os
from unittest import mock

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import scalex
from scalex.model.setup import Setup
from scalex.schema import (
    COMPRESS_MIN_BYTES,
    COMPRESSION,
    SchemaError,
    chunk_sizes,
    initial_overlaps,
    make_dataset,
    open_dataset,
    to_netcdf,
    to_netcdf_bytes,
    validate,
)


@pytest.fixture
def ds():
    s = Setup(K=2, M=3, N=16, L=4, v=(0.5, -0.25), noise=0.1, trainable=8)
    alpha = np.array([0.0, 0.5, 2.0])
    base = initial_overlaps(s, 0)
    q = np.repeat(base.q.values, 3, axis=0)
    r = np.repeat(base.r.values, 3, axis=0)
    return make_dataset(s, alpha, q, r, base.t.values, method="test", status="ok")


def test_structure_and_metadata(ds):
    assert ds.q.dims == ("alpha", "group", "student_i", "student_j")
    assert ds.r.dims == ("alpha", "group", "student_i", "teacher_n")
    assert ds.t.dims == ("group", "teacher_n", "teacher_m")
    assert ds.eigenvalue.dims == ("group",)
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.attrs["source"] == f"scalex {scalex.__version__}"
    for name in ("eg", "q", "r", "t", "alpha", "eigenvalue"):
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs
    assert ds.attrs["activation_convention"].startswith("erf: g(x) = erf(x/sqrt(2))")
    assert ds.scalex.setup == Setup.from_attrs(ds.attrs)
    validate(ds)


def test_netcdf_round_trip_is_lossless(ds, tmp_path):
    path = ds.scalex.to_netcdf(tmp_path / "a.nc")
    back = open_dataset(path)
    xr.testing.assert_identical(back.load(), ds)
    assert back.scalex.setup == ds.scalex.setup
    # lazily with dask
    lazy = open_dataset(path, chunks={})
    assert lazy.q.chunks is not None


def test_atomic_write_leaves_no_partial_file(ds, tmp_path):
    path = tmp_path / "b.nc"
    to_netcdf(ds, path)
    before = path.read_bytes()
    with mock.patch.object(xr.Dataset, "to_netcdf", side_effect=OSError("disk full")):
        with pytest.raises(OSError, match="disk full"):
            to_netcdf(ds, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["b.nc"]


def test_corrupt_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(SchemaError, match="not a readable NetCDF"):
        open_dataset(junk)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(foreign)
    with pytest.raises(SchemaError, match="not a scalex dataset"):
        open_dataset(foreign)
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "missing.nc")


def test_validate_messages(ds):
    bad = ds.drop_vars("r")
    with pytest.raises(SchemaError, match="variable 'r': missing"):
        validate(bad)
    bad = ds.assign_coords(alpha=[0.0, 2.0, 1.0])
    with pytest.raises(SchemaError, match="strictly increasing"):
        validate(bad)
    bad = ds.copy()
    bad["eg"].attrs = {}
    with pytest.raises(SchemaError, match="long_name"):
        validate(bad)
    bad = ds.isel(group=slice(0, 2))
    with pytest.raises(SchemaError, match="group"):
        validate(bad)


def test_eg_is_exact_from_overlaps(ds):
    from scalex.schema import weighted_overlaps

    s = ds.scalex.setup
    Q, R, T = weighted_overlaps(ds.q.values, ds.r.values, ds.t.values, s.spectrum.eigenvalues)
    v, w = s.second_layer
    np.testing.assert_allclose(ds.eg.values, scalex.generalization_error(Q, R, T, v, w))


def test_hierarchy_view(ds):
    lam = ds.eigenvalue.values
    for l in (0, 1, 3):
        expected = np.einsum("g,agij->aij", lam**l, ds.q.values)
        np.testing.assert_allclose(ds.scalex.hierarchy(l).values, expected)
    with pytest.raises(ValueError, match="variable"):
        ds.scalex.hierarchy(1, variable="x")


def test_reduced_datasets_validate(ds):
    # A simulation that recorded no per-group overlaps says so in attrs["recorded"].
    reduced = ds.drop_vars(["q", "r"])
    with pytest.raises(SchemaError, match="'q': missing"):
        validate(reduced)
    reduced.attrs["recorded"] = ""
    validate(reduced)
    reduced.attrs["recorded"] = "q"
    with pytest.raises(SchemaError, match="'q': missing"):
        validate(reduced)


# ---------------------------------------------------------------------------------- storage
@pytest.fixture
def big():
    """A schema dataset whose q and r are above COMPRESS_MIN_BYTES."""
    s = Setup(K=2, M=2, N=256, L=64)
    alpha = np.linspace(0.0, 10.0, 50)
    base = initial_overlaps(s, 0)
    decay = np.exp(-alpha[:, None] * s.spectrum.eigenvalues[None, :])[..., None, None]
    return make_dataset(s, alpha, base.q.values * decay, base.r.values * decay, base.t.values,
                        method="test")


def _filters(path):
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        return {name: (var.filters() or {}, var.chunking()) for name, var in nc.variables.items()}


def test_large_variables_are_compressed_and_read_back_exactly(big, tmp_path):
    path = to_netcdf(big, tmp_path / "big.nc")
    stored = _filters(path)
    for name, var in big.variables.items():
        filters, chunking = stored[name]
        large = var.dtype.kind in "fiub" and var.ndim and var.nbytes >= COMPRESS_MIN_BYTES
        assert bool(filters.get("zlib")) == bool(large), name
        if large:
            assert filters["shuffle"] and filters["complevel"] == COMPRESSION
            assert list(chunking) == list(chunk_sizes(var.shape, var.dtype.itemsize))
        else:
            assert chunking == "contiguous", name
    assert stored["q"][0].get("zlib") and stored["r"][0].get("zlib")
    xr.testing.assert_identical(open_dataset(path).load(), big)
    plain = to_netcdf(big, tmp_path / "plain.nc", compression=None)
    assert not any(f.get("zlib") for f, _c in _filters(plain).values())
    assert path.stat().st_size < plain.stat().st_size
    xr.testing.assert_identical(open_dataset(plain).load(), big)
    # In memory, as the sweep store writes its members: the same storage.
    image = tmp_path / "image.nc"
    image.write_bytes(to_netcdf_bytes(big))
    assert _filters(image)["q"] == stored["q"]
    # An explicit encoding replaces the default for its variable.
    own = to_netcdf(big, tmp_path / "own.nc", encoding={"q": {"zlib": True, "complevel": 6}})
    assert _filters(own)["q"][0]["complevel"] == 6 and _filters(own)["r"] == stored["r"]


def test_rewriting_a_read_file_chooses_storage_for_the_new_shape(big, tmp_path):
    path = to_netcdf(big, tmp_path / "big.nc")
    with open_dataset(path) as ds:
        part = ds.isel(alpha=slice(0, 7), group=slice(0, 5))
        out = to_netcdf(part, tmp_path / "part.nc")
    back = xr.open_dataset(out).load()
    xr.testing.assert_identical(back.drop_attrs(), big.isel(alpha=slice(0, 7),
                                                            group=slice(0, 5)).drop_attrs())
    assert not _filters(out)["q"][0].get("zlib")  # now below COMPRESS_MIN_BYTES


@given(shape=st.lists(st.integers(1, 300), min_size=1, max_size=6),
       itemsize=st.sampled_from([1, 4, 8]), target=st.integers(1, 1 << 16))
def test_chunk_sizes_take_inner_dims_whole_and_fit_the_target(shape, itemsize, target):
    chunks = chunk_sizes(tuple(shape), itemsize, target)
    assert len(chunks) == len(shape)
    assert all(1 <= c <= n for c, n in zip(chunks, shape, strict=True))
    assert np.prod(chunks) * itemsize <= max(target, itemsize)
    split = [i for i, (c, n) in enumerate(zip(chunks, shape, strict=True)) if c < n]
    if not split:
        assert np.prod(shape) * itemsize <= target or all(n == 1 for n in shape)
        return
    axis = split[-1]  # dims inside the split one are whole, dims outside it are 1
    assert split == [i for i in range(axis + 1) if shape[i] > 1]
    assert all(c == 1 for c in chunks[:axis])
    # as few chunks along the split dim as the target allows
    fit = max(1, target // (int(np.prod(shape[axis + 1:])) * itemsize))
    assert -(-shape[axis] // chunks[axis]) == -(-shape[axis] // fit)
