"""Dataset schema, NetCDF round trip, atomic writes and rejection of invalid input."""

import os
from unittest import mock

import numpy as np
import pytest
import xarray as xr

import scalex
from scalex.model.setup import Setup
from scalex.schema import (
    SchemaError,
    initial_overlaps,
    make_dataset,
    open_dataset,
    to_netcdf,
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
