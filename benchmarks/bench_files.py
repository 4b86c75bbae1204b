"""Size and write time of scalex's NetCDF files: fig. 1's combined sweep, plain and compressed.

Runs the paper catalog's ``fig1`` sweep (ODE, K = M = 2, N = 1024, L = 1 … 1024, 142 α; one
member per L, the smaller ones NaN-padded to L = 1024), then writes the combined Dataset with
`scalex.schema.to_netcdf`:

* uncompressed (``compression=None``, what scalex wrote before: the baseline of this run);
* zlib level 1 with the shuffle filter, one member per chunk (the default), and levels 4, 9;

and prints each file's size, the best write time of ``--repeat`` and the time to read it back
with `scalex.open_dataset` (``.load()``), with ratios against the baseline. Then the cost of
the padding: the combined compressed file against every member written on its own at its own
size (no padding), and the raw bytes of the data against those of the padding.

    python benchmarks/bench_files.py               # ~30 s
    python benchmarks/bench_files.py --quick       # L = 1 … 256
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

import scalex
from scalex.experiments.catalog import load_catalog
from scalex.schema import open_dataset, to_netcdf
from scalex.viz.scripts import best_of, script_parser

LEVELS: tuple[int | None, ...] = (None, 1, 4, 9)


def member_alone(ds: xr.Dataset, L: int) -> xr.Dataset:
    """The member L of the combined fig. 1 sweep, cut back to its own L groups."""
    return ds.sel(L=[L]).isel(group=slice(L))


def main() -> None:
    parser = script_parser(__doc__, repeat=3, quick=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"# scalex {scalex.__version__}, Python {platform.python_version()}, "
          f"xarray {xr.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")

    entry = load_catalog()["fig1"]
    if args.quick:
        entry = dataclasses.replace(entry, over={"L": tuple(v for v in entry.over["L"]
                                                             if v <= 256)})
    tick = time.perf_counter()
    ds = entry.run(progress=False).load()
    print(f"\nfig1 sweep ({entry.n_members} members, L = {list(entry.over['L'])}, "
          f"{ds.sizes['alpha']} alpha): {time.perf_counter() - tick:.1f} s; "
          f"in memory {ds.nbytes / 1e6:.1f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = []
        for level in LEVELS:
            path = out / f"fig1-{level}.nc"
            write, _ = best_of(lambda p=path, c=level: to_netcdf(ds, p, compression=c),
                               args.repeat)
            read, back = best_of(lambda p=path: open_dataset(p).load(), args.repeat)
            xr.testing.assert_identical(back, ds)  # lossless, whatever the level
            rows.append((level, path.stat().st_size, write, read))

        size0, write0, read0 = rows[0][1:]
        print("\n| storage | size (MB) | smaller by | write (s) | ratio | read (s) | ratio |")
        print("|---|---|---|---|---|---|---|")
        for level, size, write, read in rows:
            name = "uncompressed (baseline)" if level is None else f"zlib {level} + shuffle"
            print(f"| {name} | {size / 1e6:.2f} | {size0 / size:.2f}x | {write:.2f} | "
                  f"{write / write0:.2f} | {read:.2f} | {read / read0:.2f} |")

        combined = rows[1][1]
        alone = 0
        for L in entry.over["L"]:
            alone += to_netcdf(member_alone(ds, L), out / f"L{L}.nc").stat().st_size
        values = sum(ds[v].nbytes for v in ("q", "r", "t"))
        padding = sum(int(np.isnan(ds[v].values).sum()) * 8 for v in ("q", "r", "t"))
        print(f"\nPadding: q, r, t hold {values / 1e6:.1f} MB raw, {padding / 1e6:.1f} MB of it "
              f"NaN padding. Combined file (zlib 1) {combined / 1e6:.2f} MB against "
              f"{alone / 1e6:.2f} MB for the {entry.n_members} members written on their own "
              f"without padding: the padding costs {(combined - alone) / 1e6:+.3f} MB "
              f"({(combined - alone) / padding:+.2%} of its raw size).")


if __name__ == "__main__":
    main()
