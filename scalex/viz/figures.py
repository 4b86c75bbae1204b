"""The figures of a catalog entry, drawn alike after a run and later from its files.

``scalex run ENTRY`` draws the entry's plots from the results in memory
(`scalex.experiments.runner.make_plots`); ``scalex plot FILE`` draws them again from the NetCDF
files the run wrote. Both hand every plot the same data through `figure`: the result, its
comparison kinds and the summary, which holds the measured plateaus and the escape-theory
predictions (docs/theory.md §5.3) that the plateau-length plot draws. `stored_inputs` finds
these next to a result file, as `scalex.experiments.runner.run_entry` names them:
``<entry>.nc``, ``<entry>-<kind>.nc`` per compared kind and ``<entry>-summary.nc``, with the
entry's plots from the ``catalog_plots`` attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from scalex.viz import plots
from scalex.viz.export import save
from scalex.viz.spec import PlotSpec

__all__ = ["StoredResult", "figure", "has_plot", "plot_inputs", "plot_specs", "save",
           "stored_inputs"]


#: plots drawn from the summary (measured plateaus, escape-theory predictions) when there is one
SUMMARY_PLOTS = ("plateau_length", "escape_scaling", "plateau_vs_split")


def has_plot(name: str) -> bool:
    """Whether `scalex.viz.plots` has a plot function ``name``."""
    return name in plots.__all__ and callable(getattr(plots, name, None))


def plot_inputs(name: str, ds: xr.Dataset, comparisons: Mapping[str, xr.Dataset],
                summary: xr.Dataset | None) -> tuple[Any, ...]:
    """The positional data of the plot ``name``: the result, and where the plot draws them,
    its first comparison kind (``compare``) or the summary (``plateau_length``: measured
    plateaus with the escape-theory predictions)."""
    if name == "compare":
        if not comparisons:
            raise ValueError("the 'compare' plot needs a 'compare' kind in the entry")
        return (ds, next(iter(comparisons.values())))
    if name in SUMMARY_PLOTS and summary is not None and "plateau_length" in summary:
        return (summary,)
    return (ds,)


def figure(spec: PlotSpec, ds: xr.Dataset, comparisons: Mapping[str, xr.Dataset] | None = None,
           summary: xr.Dataset | None = None) -> Any:
    """The holoviews object of one plot of an entry: ``scalex.viz.plots.<spec.name>`` of the
    data `plot_inputs` picks, with the options of the catalog."""
    if not has_plot(spec.name):
        raise ValueError(f"plot {spec.name!r}: scalex.viz.plots has no such function")
    func = getattr(plots, spec.name)
    return func(*plot_inputs(spec.name, ds, comparisons or {}, summary), **spec.options)


def plot_specs(attrs: Mapping[str, Any], prefix: str = "") -> list[PlotSpec]:
    """The plots an entry asks for, from a result's ``catalog_plots`` attribute (default: the
    learning curves); each file name is preceded by ``prefix``."""

    raw = json.loads(str(attrs.get("catalog_plots", "") or "[]"))
    specs = []
    for item in raw:
        options = dict(item)
        name = str(options.pop("name"))
        file = str(options.pop("file", name))
        specs.append(PlotSpec(name, f"{prefix}{file}", options))
    return specs or [PlotSpec("learning_curves", f"{prefix}learning_curves")]


@dataclass
class StoredResult:
    """What `figure` needs of a run, as read back from its files."""

    dataset: xr.Dataset
    specs: list[PlotSpec]
    comparisons: dict[str, xr.Dataset] = field(default_factory=dict)
    summary: xr.Dataset | None = None


def _read(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="netcdf4") as opened:
        return opened.load()


def _same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    """Whether ``b`` has the sweep coordinates of ``a`` (the summary of this run, not of an
    earlier run into the same folder)."""
    dims = str(a.attrs.get("sweep_dims", "")).split()
    return all(d in b.coords and np.array_equal(np.asarray(a[d].values),
                                                np.asarray(b[d].values)) for d in dims)


def stored_inputs(file: str | Path, ds: xr.Dataset | None = None,
                  problems: list[str] | None = None) -> StoredResult:
    """The result in ``file`` (``ds``, if already open) with its comparison kinds, summary and
    plots, read from the files beside it that `run_entry` wrote.

    ``file`` may also be the entry's summary file; the result ``<entry>.nc`` beside it is
    drawn then. A summary or comparison file that is missing, unreadable or of another sweep
    grid is left out, with a note in ``problems``. Output files are named
    ``<stem>-<plot file>`` after the given file, so they do not replace the run's own.
    """
    problems = problems if problems is not None else []
    file = Path(file)
    ds = _read(file) if ds is None else ds
    entry = str(ds.attrs.get("catalog_entry", "") or file.stem)
    folder = file.parent
    main = folder / f"{entry}.nc"
    summary: xr.Dataset | None = None
    if "eg" not in ds.data_vars and main.is_file() and main.resolve() != file.resolve():
        summary, ds = ds, _read(main)
    elif (folder / f"{entry}-summary.nc").is_file():
        try:
            summary = _read(folder / f"{entry}-summary.nc")
        except Exception as err:  # the plots that need no summary can still be drawn
            problems.append(f"{entry}-summary.nc not read ({type(err).__name__}: {err})")
    if summary is not None and not _same_grid(ds, summary):
        problems.append(f"{entry}-summary.nc left out: its sweep grid is not that of {file.name}")
        summary = None
    comparisons = {}
    for kind in str(ds.attrs.get("catalog_compare", "")).split():
        other = folder / f"{entry}-{kind}.nc"
        try:
            comparisons[kind] = _read(other)
        except Exception as err:
            problems.append(f"{other.name} not read ({type(err).__name__}: {err})")
    return StoredResult(ds, plot_specs(ds.attrs, prefix=f"{file.stem}-"), comparisons, summary)
