"""Plateau length against L and K = M (Worschech & Rosenow, ICLR 2025, Fig. 5 area).

Erf soft committee machines, N = 1024, η = 0.1, β = 1, σ_J = 0.01, seed 0, K = M and L
swept (catalog entry ``fig5_plateau``; the grid is chosen there, the paper's own values for
this figure are not known here). The ODE of docs/theory.md §3 gives the learning curves; the plateau
length is measured on them (`scalex.analysis.plateau`) and predicted by the escape theory
(`scalex.theory.escape`: the rate μ of the linearised flow off the symmetric plateau and the
initial asymmetry of the draw, docs/theory.md §5). Reviewers quote τ_esc ~ M²/L at large L and M.

    python examples/fig5.py                       # results in scalex-results/fig5_plateau/
    python examples/fig5.py --images docs/images  # also the PNG shown in docs/reproduction.md
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import holoviews as hv
import numpy as np

from scalex.analysis.predictions import escape_predictions
from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import run_entry
from scalex.viz import plots as plot
from scalex.viz.scripts import script_parser, write_figure

ENTRY = "fig5_plateau"


def power_law_slopes(summary, x: str = "L", over: str = "K") -> dict:
    """Least-squares slope of log plateau length against log ``x`` for each ``over`` value."""
    out = {}
    length = summary["plateau_length"]
    if "seed" in length.dims:
        length = length.mean("seed")
    for value in length[over].values:
        y = length.sel({over: value}).values
        xs = length[x].values
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2:
            out[int(value)] = float(np.polyfit(np.log(xs[ok]), np.log(y[ok]), 1)[0])
    return out


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
        table = summary[["plateau_length", "plateau_length_predicted", "plateau_height"]]
        table = table.reset_coords(drop=True).mean("seed")
        table["predicted/measured"] = (table["plateau_length_predicted"]
                                       / table["plateau_length"])
        print(table.to_dataframe().dropna(subset=["plateau_length"]).to_string(
            float_format=lambda x: f"{x:.4g}"))
    escape_time = time.perf_counter() - tick
    k_first = int(ds["K"].values[0])
    panels = [plot.learning_curves(ds.sel(K=k_first), over="L", ylim=(1e-6, 1.0),
                                   title_text=f"ε_g(α) at K=M={k_first} (ODE)")]
    if summary is not None and "plateau_length" in summary:
        panels.insert(0, plot.plateau_length(summary, x="L", over="K",
                                             title_text="plateau length: measured (points), "
                                                        "escape theory (dashed)"))
        pred = summary[["plateau_length_predicted"]].rename(
            plateau_length_predicted="plateau_length")
        for label, data in (("measured", summary), ("escape theory", pred)):
            for k, slope in power_law_slopes(data).items():
                print(f"K=M={k}: plateau length ∝ L^{slope:.2f} ({label}, least squares)")
            for L, slope in power_law_slopes(data, x="K", over="L").items():
                print(f"L={L}: plateau length ∝ K^{slope:.2f} ({label}, least squares)")
    layout = hv.Layout(panels).cols(2).opts(backend="bokeh", shared_axes=False)
    written = write_figure(layout, args.out, ENTRY, args.images)

    print(f"\nwall time: run and summary {result.wall_time_s:.1f} s, "
          f"escape theory {escape_time:.1f} s")
    if result.table is not None:
        print(result.table.to_string(float_format=lambda x: f"{x:.4g}"))
    for problem in result.problems:
        print(f"note: {problem}")
    print("\nwritten:", *map(str, written), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
