"""The ``scalex`` command line: run catalog entries and inspect their results.

::

    scalex list [--catalog FILE]
    scalex run ENTRY [--catalog FILE] [--out DIR] [--scheduler ADDR] [--workers N]
                     [--no-plots] [--report] [--quiet]
    scalex info FILE
    scalex plot FILE [--out DIR]

A thin front to `scalex.experiments.catalog`, `scalex.experiments.runner` and
`scalex.viz.plots`. The default catalog is ``$SCALEX_CATALOG``, else the paper catalog shipped
with scalex (`scalex.experiments.catalog.default_catalog_path`), so ``scalex list`` works
from any folder, in a wheel install too. User errors (an unknown entry, a bad catalog, a
missing file, a kind whose module is not installed) print one message to stderr and exit with
a non-zero code, without a traceback. Exit codes: 0 success, 1 runtime failure (e.g. a
missing module), 2 usage error (bad arguments, unknown entry, bad catalog, missing file).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

USAGE_ERROR = 2
RUNTIME_ERROR = 1
CATALOG_HELP = ("catalog YAML (default: $SCALEX_CATALOG, else the paper catalog shipped with "
                "scalex, catalogs/paper.yaml)")


class _UserError(Exception):
    """An error to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UserError(f"{self.prog}: {message}\n{self.format_usage().strip()}")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``scalex``."""
    parser = _Parser(
        prog="scalex",
        description="Neural scaling laws of two-layer networks: run the experiments of a "
                    "catalog and inspect their NetCDF results.",
    )
    from scalex._version import __version__

    parser.add_argument("--version", action="version", version=f"scalex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list the entries of a catalog with their estimated cost")
    p.add_argument("--catalog", metavar="FILE", help=CATALOG_HELP)

    p = sub.add_parser("run", help="run a catalog entry and write its results")
    p.add_argument("entry", metavar="ENTRY", help="entry name (see `scalex list`)")
    p.add_argument("--catalog", metavar="FILE", help=CATALOG_HELP)
    p.add_argument("--out", metavar="DIR", help="output folder (default: scalex-results/ENTRY)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="dask.distributed scheduler address, e.g. tcp://127.0.0.1:8786 "
                        "(default: local processes/threads)")
    p.add_argument("--workers", metavar="N", type=int, help="local workers (default: all cores)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--report", action="store_true", help="also write report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("info", help="summarise a NetCDF result: parameters, plateau, exponents")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("plot", help="draw the plots of a NetCDF result")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", metavar="DIR", help="output folder (default: beside FILE)")
    return parser


# ---------------------------------------------------------------------------------- commands
def _load(path: str | None) -> Any:
    from scalex.experiments.catalog import CatalogError, load_catalog

    try:
        return load_catalog(path)
    except FileNotFoundError as err:
        raise _UserError(str(err)) from None
    except CatalogError as err:
        raise _UserError(str(err)) from None


def _cmd_list(args: argparse.Namespace) -> int:
    catalog = _load(args.catalog)
    width = max(len(name) for name in catalog)
    print(f"{catalog.path}:")
    for name, entry in catalog.items():
        print(f"  {name:<{width}}  {entry.summary_line()}")
    return 0


def _format_table(table: Any) -> str:
    """The summary table with "value ± error" and each exponent's fit window (`display_table`)."""
    import pandas as pd

    from scalex.experiments.runner import display_table

    if table is None or len(table) == 0:
        return "(no rows)"
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        return display_table(table).to_string(float_format=lambda x: f"{x:.4g}")


def _failed_members(ds: Any) -> list[str]:
    """One line per failed member: its sweep coordinates and seed, and the reason."""
    import numpy as np

    if "status" not in ds:
        return []
    status = ds["status"].astype(str)
    lines = []
    for index in np.ndindex(*status.shape):
        text = " ".join(str(status.values[index]).split())
        if text in ("ok", "diverged"):
            continue
        where = ", ".join(f"{d}={ds[d].values[i]}" if d in ds.coords else f"{d}[{i}]"
                          for d, i in zip(status.dims, index, strict=True))
        lines.append(f"{where or 'the member'}: {text}")
    return lines


def _prepare_out(out: str | None, entry_name: str) -> None:
    """Fail early, in one line, when the output folder cannot be created or written."""
    import os
    import tempfile

    folder = Path(out) if out is not None else Path("scalex-results") / entry_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".scalex-write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        if isinstance(err, FileExistsError) or (folder.exists() and not folder.is_dir()):
            reason = "exists and is not a directory"
        elif os.access(folder.parent if not folder.exists() else folder, os.W_OK) is False:
            reason = f"{reason} (no write permission)"
        raise _UserError(f"--out {folder}: cannot write the results there: {reason}",
                         RUNTIME_ERROR) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from scalex.experiments.errors import KindUnavailableError, StoreMismatchError
    from scalex.experiments.runner import run_entry

    catalog = _load(args.catalog)
    if args.entry not in catalog:
        raise _UserError(
            f"unknown entry {args.entry!r} in {catalog.path}; available: {', '.join(catalog)}"
        )
    if args.workers is not None and args.workers < 1:
        raise _UserError(f"--workers: must be >= 1, got {args.workers}")
    entry = catalog[args.entry]
    _guard_spawn()
    _prepare_out(args.out, entry.name)
    print(f"scalex run {entry.name}: {entry.kind}, {entry.n_members} member(s)"
          + (f", expected {entry.cost}" if entry.cost else ""), flush=True)
    try:
        result = run_entry(
            entry, args.out, client=args.scheduler, workers=args.workers,
            plots=not args.no_plots, report=args.report,
            progress=False if args.quiet else None,
        )
    except KindUnavailableError as err:
        raise _UserError(f"cannot run {entry.name!r}: {err}", RUNTIME_ERROR) from None
    except StoreMismatchError as err:
        raise _UserError(f"{err}; the entry changed since that run? (pass --out DIR)") from None
    except OSError as err:
        if args.scheduler and "connect" in str(err).lower():
            raise _UserError(f"--scheduler {args.scheduler}: {err}", RUNTIME_ERROR) from None
        name = getattr(err, "filename", None)
        if name is None:
            raise
        raise _UserError(f"{name}: cannot write the results: {err.strerror or err}",
                         RUNTIME_ERROR) from None
    ds = result.dataset
    status = ds["status"].astype(str).values.ravel()
    print(f"{status.size} member(s): {(status == 'ok').sum()} ok, "
          f"{(status == 'diverged').sum()} diverged, "
          f"{status.size - (status == 'ok').sum() - (status == 'diverged').sum()} failed; "
          f"{result.wall_time_s:.1f} s")
    if result.table is not None:
        seeds = ds.sizes.get("seed", 1)
        print(f"\nSummary{' (mean over ' + str(seeds) + ' seeds)' if seeds > 1 else ''}:")
        print(_format_table(result.table))
    if result.problems:
        print("\nNotes:")
        for text in result.problems:
            print(f"  - {text}")
    print(f"\nResults in {result.out_dir}/:")
    width = max(len(label) for label in result.files)
    for label, path in result.files.items():
        print(f"  {label:<{width}}  {path}")
    failed = _failed_members(ds)
    if failed:
        print(f"scalex: error: {len(failed)} of {status.size} member(s) of {entry.name!r} "
              "failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return RUNTIME_ERROR
    return 0


def _open(path: str) -> Any:
    import xarray as xr

    file = Path(path)
    if file.is_dir():
        raise _UserError(_describe_directory(file))
    if not file.is_file():
        raise _UserError(f"{file}: no such file")
    try:
        return xr.open_dataset(file, engine="netcdf4").load()
    except Exception as err:  # whatever the reader says, the user's file is the problem
        raise _UserError(
            f"{file}: not a readable NetCDF file ({type(err).__name__}: {err})") from None


def _describe_directory(folder: Path) -> str:
    """What a folder given as FILE holds: its NetCDF results and sweep stores."""
    if (folder / "manifest.json").is_file():
        members = sorted(p.name for p in folder.glob("*.nc"))
        return (f"{folder}: is a directory, a sweep store (manifest.json) with "
                f"{len(members)} member file(s); `scalex info` takes the combined result "
                f"(the .nc file next to the store, e.g. {folder.parent}/*.nc)")
    results = sorted(str(p) for p in folder.glob("*.nc"))
    stores = sorted(f"{p.parent}/ (sweep store)" for p in folder.glob("*/manifest.json"))
    found = results + stores
    listing = ("; results inside: " + ", ".join(found)) if found else \
        "; no results inside (*.nc files or sweep stores with manifest.json)"
    return f"{folder}: is a directory, not a NetCDF file{listing}"


def _setup_line(ds: Any) -> list[str]:
    """``scalex info``'s Setup lines: fixed fields, then each swept field with its values."""
    from scalex.schema import setup_rows, swept_fields

    rows = setup_rows(ds.attrs)
    swept = swept_fields(ds.attrs)
    fixed = ", ".join(f"{k}={v!r}" for k, v in rows.items()
                      if k not in swept and v is not None and not k.startswith(("N_l", "setup ")))
    lines = [f"  setup     {fixed}"]
    lines += [f"            {k}: {rows[k]}" for k in swept if k in rows]
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    ds = _open(args.file)
    if "scalex_setup" not in ds.attrs:
        raise _UserError(f"{args.file}: not a scalex result (no 'scalex_setup' attribute)")
    print(f"{args.file}: {ds.attrs.get('title', '')}")
    entry = ds.attrs.get("catalog_entry")
    print(f"  method    {ds.attrs.get('method', '?')}"
          + (f" (catalog entry {entry})" if entry else ""))
    for line in _setup_line(ds):
        print(line)
    dims = str(ds.attrs.get("sweep_dims", "")).split()
    for d in dims:
        print(f"  sweep     {d} = {', '.join(str(v) for v in ds[d].values)}")
    if "seed" in ds.dims:
        print(f"  seeds     {', '.join(str(int(s)) for s in ds['seed'].values)}")
    if "alpha" in ds.dims:
        a = ds["alpha"].values
        print(f"  alpha     {a.size} points, {a[0]:.4g} .. {a[-1]:.4g}")
    if "status" in ds:
        values, counts = np.unique(ds["status"].astype(str).values, return_counts=True)
        print("  status    " + ", ".join(f"{c}× {v}" for v, c in zip(values, counts, strict=True)))
    from scalex.experiments.runner import TABLE_COLUMNS, result_table, summarise_entry

    if "eg" not in ds:  # an analysis file: show what it holds
        if any(name in ds for name in TABLE_COLUMNS):
            print("\nPlateau and exponents" + (" (seed mean)" if ds.sizes.get("seed", 1) > 1
                                                else "") + ":")
            print(_format_table(result_table(ds)))
        return 0

    problems: list[str] = []
    summary = summarise_entry(ds, ["summary"], problems)
    if summary is not None:
        print("\nPlateau and exponents" + (" (seed mean)" if ds.sizes.get("seed", 1) > 1 else "")
              + ":")
        print(_format_table(result_table(summary, ds)))
    for text in problems:
        print(f"note: {text}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from scalex.experiments.runner import make_plots
    from scalex.viz.figures import stored_inputs

    ds = _open(args.file)
    file = Path(args.file)
    out = Path(args.out) if args.out else file.parent
    problems: list[str] = []
    # the result with its summary (measured plateaus, escape-theory predictions) and
    # comparison kinds, as the run wrote them: the figures of the run, drawn again
    stored = stored_inputs(file, ds, problems)
    made = make_plots(stored.specs, stored.dataset, out, comparisons=stored.comparisons,
                      summary=stored.summary, problems=problems)
    for _obj, paths in made.values():
        for p in paths:
            print(p)
    for text in problems:
        print(f"note: {text}", file=sys.stderr)
    if not made:
        raise _UserError(f"{args.file}: no plot could be drawn", RUNTIME_ERROR)
    return 0


def _guard_spawn() -> None:
    """Use fork for local worker processes under ``python -m scalex``.

    Spawned workers re-import the main module; scalex/__main__.py calls `main` at import
    time, so each worker would run the CLI again. Fork does not re-import it.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "scalex.__main__" and sys.platform.startswith("linux"):
        import dask

        dask.config.set({"multiprocessing.context": "fork"})


COMMANDS = {"list": _cmd_list, "run": _cmd_run, "info": _cmd_info, "plot": _cmd_plot}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scalex`` command; returns the exit code."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help and --version
            return int(exit_.code or 0)
        if args.command is None:
            parser.print_help()
            return USAGE_ERROR
        return COMMANDS[args.command](args)
    except _UserError as err:
        print(f"scalex: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("scalex: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
