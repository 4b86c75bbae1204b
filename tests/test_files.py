"""The NetCDF files of a catalog run: self-describing, compressed, and read back unchanged.

Runs small versions of the paper's ``fig1`` (ODE, ragged L, summary and escape analyses) and
``fig2_left`` (linear theory with an ODE comparison) through `run_entry`, then walks every
variable of every NetCDF file written: results, comparisons, summaries and store members.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import scalex
from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import RunResult, run_entry
from scalex.experiments.sweep import sweep
from scalex.schema import COMPRESS_MIN_BYTES, COMPRESSION, to_netcdf

PAPER = load_catalog()

#: attributes that describe one variable and so must not sit among a file's global attrs
PER_VARIABLE = {"long_name", "standard_name", "units", "_FillValue", "missing_value",
                "valid_range", "valid_min", "valid_max", "coordinates", "flag_values",
                "flag_meanings", "scale_factor", "add_offset"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunResult]:
    out = tmp_path_factory.mktemp("runs")
    fig1 = dataclasses.replace(PAPER["fig1"], over={"L": (1, 4)})
    left = PAPER["fig2_left"]
    fig2 = dataclasses.replace(left, setup=left.setup.replace(N=16, L=16),
                               alpha=left.alpha[::4])
    return {e.name: run_entry(e, out / e.name, plots=False, progress=False,
                              escape_timeout=None)
            for e in (fig1, fig2)}


def _files(runs: dict[str, RunResult]) -> list[Path]:
    return sorted(p for r in runs.values() for p in r.out_dir.rglob("*.nc"))


def test_runs_wrote_every_kind_of_file(runs):
    names = {p.name for p in _files(runs)}
    assert {"fig1.nc", "fig1-summary.nc", "fig2_left.nc", "fig2_left-ode.nc",
            "fig2_left-summary.nc"} <= names
    members = [p for p in _files(runs) if p.parent.name.startswith("store-")]
    assert len(members) == 2 + 1 + 1  # fig1: L = 1, 4; fig2_left: linear and ode
    assert not any(runs[n].problems for n in runs), [r.problems for r in runs.values()]


def test_every_variable_has_long_name_and_units(runs):
    for path in _files(runs):
        with netCDF4.Dataset(path) as nc:
            for name, var in nc.variables.items():
                attrs = set(var.ncattrs())
                assert {"long_name", "units"} <= attrs, (path.name, name, attrs)
                assert str(var.getncattr("long_name")).strip(), (path.name, name)
            leaked = PER_VARIABLE & set(nc.ncattrs())
            assert not leaked, (path.name, leaked)
            assert nc.getncattr("Conventions").startswith("CF-")


def test_summary_variables_are_described_by_their_meaning(runs):
    summary = xr.open_dataset(runs["fig1"].files["summary"])
    for name in ("plateau_length", "exponent", "convergence", "plateau_length_predicted"):
        assert summary[name].attrs["long_name"] != name.replace("_", " "), name
    assert "escape theory" in summary["plateau_length_predicted"].attrs["long_name"]
    assert summary["L"].attrs["long_name"] == "swept Setup field L"


def test_large_variables_are_compressed(runs):
    compressed: set[str] = set()
    for path in _files(runs):
        with netCDF4.Dataset(path) as nc:
            for name, var in nc.variables.items():
                filters = var.filters() or {}
                numeric = np.dtype(var.dtype).kind in "fiub" if var.dtype is not str else False
                nbytes = int(np.prod(var.shape)) * (np.dtype(var.dtype).itemsize if numeric else 0)
                if numeric and var.ndim and nbytes >= COMPRESS_MIN_BYTES:
                    assert filters.get("zlib") and filters.get("shuffle"), (path.name, name)
                    assert filters.get("complevel") == COMPRESSION, (path.name, name)
                    assert var.chunking() != "contiguous"
                    compressed.add(f"{path.name}:{name}")
                elif not filters.get("zlib"):
                    assert var.chunking() == "contiguous" or var.ndim == 0 or not numeric
    assert {"fig1.nc:q", "fig1.nc:r"} <= compressed


def test_round_trip_through_open_dataset_is_unchanged(runs):
    for run in runs.values():
        # Same code path both ways (write, read): exact equality, attrs included.
        saved = scalex.open_dataset(run.files["result"]).load()
        xr.testing.assert_identical(saved, run.dataset)
        for kind, ds in run.comparisons.items():
            xr.testing.assert_identical(scalex.open_dataset(run.files[kind]).load(), ds)
        summary = xr.open_dataset(run.files["summary"], engine="netcdf4").load()
        xr.testing.assert_identical(summary, run.summary)


def test_padding_costs_almost_nothing_on_disk(tmp_path):
    """A ragged sweep (L = 1 and 256) against its two members written on their own."""
    base = scalex.Setup(K=1, M=1, N=256, activation="linear", eta=0.5)
    alpha = np.concatenate([[0.0], np.logspace(-2, 2, 40)])
    both = sweep("linear", base, {"L": [1, 256]}, alpha=alpha, scheduler="synchronous",
                 progress=False)
    alone = [sweep("linear", base, {"L": [L]}, alpha=alpha, scheduler="synchronous",
                   progress=False) for L in (1, 256)]
    sizes = [to_netcdf(ds, tmp_path / f"{i}.nc").stat().st_size
             for i, ds in enumerate([both, *alone])]
    # The L = 1 member is padded to 256 groups in q, r, e and t: raw bytes of the padding.
    member = both.sel(L=1)
    padding = sum(int(np.isnan(member[v].values).sum()) * 8
                  for v in ("q", "r", "t", "e") if v in member)
    assert padding > 100_000
    assert sizes[0] <= sizes[1] + sizes[2] + 0.02 * padding, (sizes, padding)
