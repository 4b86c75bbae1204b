"""Running one catalog entry end to end: `run_entry`, which ``scalex run ENTRY`` calls.

`run_entry` writes into one output folder (default ``./scalex-results/<entry>``):

1. the sweep of the entry's main kind, resumable in ``store-<kind>/``
   (`scalex.experiments.sweep.sweep`), combined into ``<entry>.nc``;
2. one sweep per ``compare`` kind on the same grid: ``store-<kind>/`` and ``<entry>-<kind>.nc``,
   and all kinds together as ``<entry>-compare.nc``, an `xarray.DataTree` with one group per
   kind (`scalex.experiments.compare.comparison_tree`);
3. the ``analyses`` (`summarise_entry`): ``summary`` (`scalex.analysis.measures.summary`) and
   ``escape`` (`scalex.analysis.predictions.escape_predictions`, within ``escape_timeout``
   seconds), merged into ``<entry>-summary.nc``;
4. the ``plots`` (`make_plots`, `scalex.viz.plots`), each as ``<file>.html`` and ``.png``;
5. with ``report``, one self-contained ``report.html`` (`scalex.viz.report.report`);
6. ``catalog.yaml``, an intake catalog of the NetCDF files
   (`scalex.experiments.intake.write_intake_catalog`).

`result_table` turns the summary into the table the CLI prints: one row per sweep point,
numbers averaged over seeds, labels by their most frequent value, and the count of members
whose status is not "ok". A failed plot, analysis, report or member does not stop the run: it
is listed in `RunResult.problems`, together with the warnings scalex itself issued.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.analysis.predictions import ESCAPE_TIMEOUT_S, escape_predictions
from scalex.experiments.catalog import Entry, PlotSpec
from scalex.experiments.compare import write_routes
from scalex.experiments.intake import write_intake_catalog
from scalex.experiments.kinds import KINDS
from scalex.experiments.sweep import sweep


# ---------------------------------------------------------------------------------- running
@dataclass
class RunResult:
    """What `run_entry` produced: datasets, the printed table, written files and problems."""

    entry: Entry
    out_dir: Path
    dataset: xr.Dataset
    comparisons: dict[str, xr.Dataset] = field(default_factory=dict)
    summary: xr.Dataset | None = None
    table: Any = None
    files: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0


#: summary variables shown in tables, in this order (when present)
TABLE_COLUMNS = ("plateau_length", "plateau_length_err", "plateau_length_predicted",
                 "plateau_height", "exponent", "exponent_stderr", "fit_alpha_min",
                 "fit_alpha_max", "convergence", "convergence_rate", "convergence_exponent")


def _number(x: Any) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.4g}"


def display_table(table: Any) -> Any:
    """`result_table` for people: a value with its uncertainty, an exponent with its window.

    ``plateau_length`` and ``plateau_length_err`` become one column "407.1 ± 3.2" (the error
    from the α grid, docs/analysis.md (A2)); ``exponent`` and ``exponent_stderr`` become
    "0.412 ± 0.003", followed by ``exponent window`` "α 1.02–40.3" from ``fit_alpha_min`` and
    ``fit_alpha_max``, so an exponent that jumps because its fit window moved says so.
    Other columns are kept as they are.
    """
    import pandas as pd

    if table is None or len(table) == 0:
        return table
    out = pd.DataFrame(index=table.index)
    pairs = {"plateau_length": "plateau_length_err", "exponent": "exponent_stderr"}
    skip = set(pairs.values()) | {"fit_alpha_min", "fit_alpha_max"}
    for column in table.columns:
        if column in skip:
            continue
        values = table[column]
        err = pairs.get(column)
        if err in table.columns:
            out[column] = [_number(v) if not np.isfinite(e) or not np.isfinite(v)
                           else f"{v:.4g} ± {e:.2g}" for v, e in zip(values, table[err])]
        else:
            out[column] = values
        if column == "exponent" and {"fit_alpha_min", "fit_alpha_max"} <= set(table.columns):
            out["exponent window"] = [
                "—" if not (np.isfinite(a) and np.isfinite(b)) else f"α {a:.3g}–{b:.3g}"
                for a, b in zip(table["fit_alpha_min"], table["fit_alpha_max"])]
    return out


def _mode(values: NDArray[Any], axis: int) -> NDArray[Any]:
    """Most frequent entry along ``axis`` (for categorical summary variables over seeds)."""
    moved = np.moveaxis(values, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=object)
    for index in np.ndindex(*out.shape):
        labels, counts = np.unique(moved[index].astype(str), return_counts=True)
        out[index] = labels[np.argmax(counts)]
    return out


def result_table(
    summary: xr.Dataset, ds: xr.Dataset | None = None, columns: Sequence[str] | None = None
) -> Any:
    """A pandas DataFrame of per-member measures: one row per sweep point, seeds averaged.

    ``columns`` default to those of `TABLE_COLUMNS` present in ``summary`` (else every
    numeric variable over sweep dims and seed). Numbers are averaged over ``seed`` (NaN
    skipped), labels such as ``convergence`` take their most frequent value. With ``ds``, a
    column ``not_ok`` counts the members whose status is not "ok".
    """
    import pandas as pd

    listed = str(summary.attrs.get("sweep_dims", "")
                 or (ds.attrs.get("sweep_dims", "") if ds is not None else ""))
    dims = [d for d in listed.split() if d in summary.dims]
    allowed = {*dims, "seed"}
    usable = [n for n in summary.data_vars if set(summary[n].dims) <= allowed]
    if columns is None:
        columns = [n for n in TABLE_COLUMNS if n in usable] or [
            n for n in usable if summary[n].dtype.kind in "fiu"]
    table: dict[str, xr.DataArray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN means
        for n in columns:
            da = summary[n]
            if "seed" in da.dims and da.dtype.kind in "fiub":
                da = da.astype(float).mean("seed", skipna=True)
            elif "seed" in da.dims:
                da = xr.apply_ufunc(_mode, da, input_core_dims=[["seed"]],
                                    kwargs={"axis": -1})
            table[str(n)] = da.reset_coords(drop=True)
        if ds is not None and "status" in ds:
            bad = ds["status"].astype(str) != "ok"
            table["not_ok"] = (bad.sum("seed") if "seed" in bad.dims
                               else bad.astype(int)).reset_coords(drop=True)
    if not table:
        return pd.DataFrame()
    if dims:
        frame = xr.Dataset(table).transpose(*dims).to_dataframe()
        return frame[[c for c in table if c in frame.columns]]
    return pd.DataFrame({k: [v.values.item()] for k, v in table.items()})


@contextlib.contextmanager
def _collect_warnings(problems: list[str]) -> Iterator[None]:
    """Turn the warnings scalex itself issues into notes; drop third-party noise."""
    from scalex.experiments.errors import SweepWarning
    from scalex.schema import DivergenceWarning

    scalex_dir = str(Path(__file__).resolve().parents[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        ours = issubclass(w.category, (SweepWarning, DivergenceWarning)) or (
            str(w.filename).startswith(scalex_dir)
            and not issubclass(w.category, (DeprecationWarning, FutureWarning)))
        text = f"{w.category.__name__}: {w.message}"
        if ours and text not in problems:
            problems.append(text)


def make_plots(
    plots: Sequence[PlotSpec],
    ds: xr.Dataset,
    out_dir: Path,
    *,
    comparisons: Mapping[str, xr.Dataset] | None = None,
    summary: xr.Dataset | None = None,
    problems: list[str] | None = None,
) -> dict[str, tuple[Any, list[Path]]]:
    """Draw and save each plot as ``out_dir/<file>.html`` and ``.png``; failures are reported
    in ``problems`` and skipped.

    Each plot is `scalex.viz.figures.figure` of the result, its comparisons and its summary:
    ``scalex plot FILE`` reads these back (`scalex.viz.figures.stored_inputs`) and draws
    the same figures."""
    problems = problems if problems is not None else []
    try:
        from scalex.viz import figures
    except Exception as err:  # a broken plotting stack must not lose the results
        problems.append(
            f"plots skipped: scalex.viz.plots cannot be imported ({type(err).__name__}: {err})")
        return {}
    made: dict[str, tuple[Any, list[Path]]] = {}
    for spec in plots:
        if not figures.has_plot(spec.name):
            problems.append(f"plot {spec.name!r} skipped: scalex.viz.plots has no such function")
            continue
        try:
            with _collect_warnings(problems):
                obj = figures.figure(spec, ds, comparisons, summary)
                paths = figures.save(obj, out_dir / spec.file, formats=("html", "png"))
        except Exception as err:  # one broken plot must not stop the others
            problems.append(f"plot {spec.name!r} failed: {type(err).__name__}: {err}")
            continue
        made[spec.file] = (obj, paths)
    return made


def summarise_entry(
    ds: xr.Dataset,
    analyses: Sequence[str],
    problems: list[str],
    escape_timeout: float | None = None,
    workers: int | None = None,
    summary_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> xr.Dataset | None:
    """The entry's analyses merged into one Dataset (None without any); ``summary_options``
    ({plateau|fit|convergence: {...}}) go to `scalex.analysis.measures.summary`."""
    parts: list[xr.Dataset | xr.DataArray] = []
    options = {f"{part}_kwargs": dict(opts) for part, opts in (summary_options or {}).items()}
    # An analysis that breaks must not lose the results it was asked to analyse.
    if "summary" in analyses:
        try:
            from scalex.analysis.measures import summary

            with _collect_warnings(problems):
                parts.append(summary(ds, **options))
        except ImportError as err:
            problems.append(f"analysis 'summary' skipped: scalex.analysis is not available ({err})")
        except Exception as err:
            problems.append(f"analysis 'summary' failed: {type(err).__name__}: {err}")
    if "escape" in analyses:
        # Predict only where a plateau was measured, when the summary says so.
        where = next((p["has_plateau"] for p in parts if "has_plateau" in p), None)
        try:
            parts.append(escape_predictions(ds, timeout=escape_timeout, workers=workers,
                                            problems=problems, where=where))
        except ImportError as err:
            problems.append("analysis 'escape' skipped: scalex.analysis.escape is not "
                            f"available ({err})")
        except Exception as err:
            problems.append(f"analysis 'escape' failed: {type(err).__name__}: {err}")
    if not parts:
        return None
    # A DataArray part (the escape predictions) keeps its attrs on its variable: merged as it
    # is, its long_name and units would become the file's global attributes.
    datasets = [p.to_dataset(name=p.name or "prediction") if isinstance(p, xr.DataArray) else p
                for p in parts]
    out = xr.merge(datasets, compat="override", join="outer", combine_attrs="drop_conflicts")
    out.attrs.setdefault("sweep_dims", ds.attrs.get("sweep_dims", ""))
    return describe_summary(out, ds)


def describe_summary(summary: xr.Dataset, ds: xr.Dataset) -> xr.Dataset:
    """Give every variable of ``summary`` a ``long_name`` and ``units`` (in place).

    Attrs already present are kept. Coordinates take those of the same coordinate of the
    analysed ``ds``; data variables those of `scalex.analysis.measures.VARIABLES` (``fit_x``
    as ``x``), which `scalex.analysis.measures.summary` does not keep through its merge. A
    variable known to neither is named after itself. Labels and numbers alike are
    dimensionless: ``units = "1"`` where none or an empty one is given.
    """
    try:
        from scalex.analysis.measures import VARIABLES as known
    except ImportError:  # scalex.analysis not available: the summary is empty anyway
        known = {}
    for name, var in summary.variables.items():
        key = str(name)
        long_name, units = key.replace("_", " "), "1"
        if name in ds.coords:
            long_name = ds[name].attrs.get("long_name", long_name)
            units = ds[name].attrs.get("units", units)
        elif key in known or key.removeprefix("fit_") in known:
            long_name, units = known.get(key) or known[key.removeprefix("fit_")]
        var.attrs.setdefault("long_name", long_name)
        if not var.attrs.get("units"):  # also an empty one: labels are dimensionless too
            var.attrs["units"] = units or "1"
    return summary


def run_entry(
    entry: Entry,
    out: str | os.PathLike[str] | None = None,
    *,
    client: Any = None,
    workers: int | None = None,
    plots: bool = True,
    report: bool = False,
    progress: bool | None = None,
    escape_timeout: float | None = ESCAPE_TIMEOUT_S,
) -> RunResult:
    """Run one catalog entry into ``out`` (default ``./scalex-results/<entry>``).

    Writes ``store-<kind>/`` (the resumable member store), ``<entry>.nc`` (the combined result),
    ``<entry>-<kind>.nc`` for each ``compare`` kind and ``<entry>-compare.nc`` (every kind, a
    DataTree group each), ``<entry>-summary.nc`` (analyses), the
    plots, ``report.html`` if ``report``, and ``catalog.yaml`` (intake). Problems that do not
    invalidate the results (a failed plot, a failed member) are listed in ``problems``.
    ``escape_timeout`` bounds the time (seconds) of the escape predictions, which run in
    worker processes; None runs them in this process without a limit.
    """
    from scalex.schema import to_netcdf

    out_dir = Path(out) if out is not None else Path("scalex-results") / entry.name
    for kind in [entry.kind, *(k for k, _ in entry.compare)]:
        KINDS[kind].check_available()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(entry, out_dir, xr.Dataset())
    tick = time.perf_counter()
    common = dict(client=client, workers=workers, progress=progress)
    with _collect_warnings(result.problems):
        ds = entry.run(store=out_dir / f"store-{entry.kind}", **common).load()
    ds.attrs.update(_entry_attrs(entry))
    result.dataset = ds
    result.files["result"] = to_netcdf(ds, out_dir / f"{entry.name}.nc")
    for kind, options in entry.compare:
        with _collect_warnings(result.problems):
            other = sweep(kind, entry.setup, dict(entry.over), entry.seeds, entry.alpha_array,
                          store=out_dir / f"store-{kind}", **common, **options).load()
        other.attrs.update(_entry_attrs(entry))
        result.comparisons[kind] = other
        result.files[kind] = to_netcdf(other, out_dir / f"{entry.name}-{kind}.nc")
    if result.comparisons:  # every kind on this grid as one DataTree, a group per kind
        tree = write_routes(out_dir / f"{entry.name}-compare.nc",
                            {entry.kind: ds, **result.comparisons}, result.problems)
        if tree is not None:
            result.files["compare tree"] = tree
    result.summary = summarise_entry(ds, entry.analyses, result.problems, escape_timeout, workers,
                                     entry.summary_options)
    if result.summary is not None:
        result.summary.attrs.update(_entry_attrs(entry))
        result.files["summary"] = to_netcdf(result.summary, out_dir / f"{entry.name}-summary.nc")
        result.table = result_table(result.summary, ds)
    result.wall_time_s = time.perf_counter() - tick
    made = {}
    if plots and entry.plots:
        made = make_plots(entry.plots, ds, out_dir, comparisons=result.comparisons,
                          summary=result.summary, problems=result.problems)
        for file, (_obj, paths) in made.items():
            for p in paths:
                result.files[f"plot {file}{p.suffix}"] = p
    if report:
        try:
            from scalex.viz.report import report as write_report

            tables: dict[str, Any] = {}
            if result.summary is not None:
                tables["Summary (seed mean)"] = display_table(result.table)
            result.files["report"] = write_report(
                entry.name, ds, {f: obj for f, (obj, _p) in made.items()}, tables,
                out_dir / "report.html", description=entry.description,
                cost={"wall time [s]": round(result.wall_time_s, 2),
                      "members": entry.n_members, "estimate": entry.cost or ""},
            )
        except Exception as err:  # the results are written already; report the problem
            result.problems.append(f"report failed: {type(err).__name__}: {err}")
    sources = {entry.name: (result.files["result"], entry.description)}
    for kind in result.comparisons:
        sources[f"{entry.name}-{kind}"] = (result.files[kind],
                                           f"{kind} on the grid of {entry.name}")
    if "summary" in result.files:
        sources[f"{entry.name}-summary"] = (result.files["summary"],
                                            f"analyses {list(entry.analyses)} of {entry.name}")
    result.files["intake catalog"] = write_intake_catalog(out_dir / "catalog.yaml", sources)
    return result


def _entry_attrs(entry: Entry) -> dict[str, Any]:
    return {
        "catalog_entry": entry.name,
        "catalog_file": entry.source,
        "catalog_description": entry.description,
        "catalog_plots": json.dumps(
            [{"name": p.name, "file": p.file, **p.options} for p in entry.plots]
        ),
        "catalog_compare": " ".join(k for k, _ in entry.compare),
    }
