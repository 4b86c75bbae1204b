"""Fig. 1 of Worschech & Rosenow (ICLR 2025): the plateau shortens as L grows.

Erf soft committee machine, K = M = 2, η = 0.1, β = 1, σ_J = 0.01, N = 1024, L varied
(docs/theory.md §5). Runs the catalog entry ``fig1`` (the ODE of docs/theory.md §3 from the
initial overlaps of seed 0), then draws the learning curves with the measured plateau shaded,
next to the plateau length against L, measured and predicted by the escape theory.

    python examples/fig1.py                       # results in scalex-results/fig1/
    python examples/fig1.py --images docs/images  # also the PNG shown in docs/reproduction.md
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import holoviews as hv
import xarray as xr

from scalex.analysis.predictions import escape_predictions
from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import run_entry
from scalex.viz import plots as plot
from scalex.viz.scripts import script_parser, write_figure

ENTRY = "fig1"


def figure(ds: xr.Dataset, summary: xr.Dataset | None) -> hv.Layout:
    """Learning curves over L with the plateau marked, and plateau length against L."""
    has_plateau = summary is not None and "plateau_start" in summary
    # below 1e-6 the curves only show the exponential convergence of small L
    panels = [plot.learning_curves(ds, over="L", mark_plateau=has_plateau,
                                   plateau=summary if has_plateau else None, ylim=(1e-6, 1.0),
                                   title_text="Fig. 1: ε_g(α), erf, K=M=2, N=1024 (ODE)")]
    if summary is not None and "plateau_length" in summary:
        panels.append(plot.plateau_length(summary, x="L", over=None,
                                          title_text="plateau length against L"))
    return hv.Layout(panels).cols(1).opts(backend="bokeh", shared_axes=False)


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, out=Path("scalex-results") / ENTRY, images=True,
                           catalog=True)
    args = parser.parse_args(argv)

    entry = load_catalog(args.catalog)[ENTRY]
    print(f"{ENTRY}: {entry.summary_line()}")
    # the escape theory is evaluated below only where a plateau is measured
    entry = dataclasses.replace(entry, analyses=tuple(a for a in entry.analyses
                                                      if a != "escape"))
    result = run_entry(entry, args.out, report=True)
    ds, summary = result.dataset, result.summary
    tick = time.perf_counter()
    if summary is not None and "has_plateau" in summary:
        summary["plateau_length_predicted"] = escape_predictions(
            ds, where=summary["has_plateau"])
        table = summary[["plateau_start", "plateau_end", "plateau_length",
                         "plateau_length_predicted", "plateau_height"]].mean("seed")
        table["predicted/measured"] = (table["plateau_length_predicted"]
                                       / table["plateau_length"])
        table = table.reset_coords(drop=True)
        print(table.to_dataframe().dropna(subset=["plateau_length"]).to_string(
            float_format=lambda x: f"{x:.4g}"))
    escape_time = time.perf_counter() - tick
    fig = figure(ds, summary)
    written = write_figure(fig, args.out, ENTRY, args.images)

    print(f"\nwall time: run and summary {result.wall_time_s:.1f} s, "
          f"escape theory {escape_time:.1f} s")
    if result.table is not None:
        print("\nper L (seed mean):")
        print(result.table.to_string(float_format=lambda x: f"{x:.4g}"))
    for problem in result.problems:
        print(f"note: {problem}")
    print("\nwritten:", *[str(p) for p in [*result.files.values(), *written]], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
