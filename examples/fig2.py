"""Fig. 2 of Worschech & Rosenow (ICLR 2025): linear networks follow ε_g ∝ α^(−β/(1+β)).

Left (catalog entry ``fig2_left``): K = M = 1, N = 128, σ_J² = 1, η = 1, β = 1; the exact
linear theory (docs/theory.md §4) against the linear-activation ODE on the same grid, and the local
exponent against β/(1+β). Right (``fig2_right``): N = L = 1024, β = 0.75, η = 0.01,
σ_J = 0.01; online SGD averaged over 15 seeds against the exact theory from the same draws.

    python examples/fig2.py                       # both panels (the right one takes minutes)
    python examples/fig2.py --only fig2_left      # the quick left panel only
    python examples/fig2.py --images docs/images  # also the PNG shown in docs/reproduction.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import holoviews as hv
import numpy as np
import xarray as xr

from scalex.analysis.measures import fit_power_law
from scalex.engines.linear_asymptotics import asymptotics
from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import run_entry
from scalex.model.setup import Setup
from scalex.viz import plots as plot
from scalex.viz.scripts import script_parser, write_figure

ENTRIES = ("fig2_left", "fig2_right")


def fit_window(setup: Setup) -> tuple[float, float]:
    """A window well inside 1/(2ηλ_1) ≪ α ≪ 1/(2ηλ_L), where the power law holds
    (docs/theory.md §4): a decade in from each end when the window spans more than three decades."""
    lo, hi = asymptotics(setup).window
    return (10 * lo, hi / 10) if hi / lo > 1e3 else (lo, hi)


def measured_exponent(ds: xr.Dataset, window: tuple[float, float]) -> xr.Dataset:
    """Least-squares exponent of the (seed-mean) curve in ``window``; bootstrap over seeds."""
    return fit_power_law(ds, *window, bootstrap=200 if ds.sizes.get("seed", 1) > 1 else 0)


def finite_size_exponent(setup: Setup, window: tuple[float, float]) -> float:
    """Slope of A α^(−β/(1+β)) − offset (the leading law with the finite-spectrum correction
    of `scalex.linear.asymptotics`) on ``window``: what a fit there should find."""
    alpha = np.geomspace(*window, 200)
    law = asymptotics(setup).curve(alpha, finite_size=True)
    return -float(np.polyfit(np.log(alpha), np.log(law), 1)[0])


def panels(name: str, result, window: tuple[float, float]) -> list:
    """Theory over its independent check, and the local exponent with β/(1+β)."""
    ds = result.dataset
    other = next(iter(result.comparisons.values()), None)
    out = []
    if name == "fig2_left" and other is not None:
        left = plot.compare(other, ds, labels=("ODE (linear g)", "exact linear theory"),
                            title_text="Fig. 2 left: N=128, β=1, η=1, σ_J²=1")
        # the second analytic form: the leading-order power law of docs/theory.md §4
        alpha = ds["alpha"].values[ds["alpha"].values > 0]
        law = asymptotics(Setup.from_attrs(ds.attrs)).power_law(alpha)
        xdim, ydim = plot.dimension(ds["alpha"], "alpha"), plot.dimension(ds["eg"], "eg")
        curve = hv.Curve((alpha, law), xdim, ydim, label="A α^(−β/(1+β))")
        curve = curve.opts(backend="bokeh", color="black", line_dash="dotted").opts(
            backend="matplotlib", color="black", linestyle=":")
        out.append(plot.extend(left, curve).opts(backend="bokeh", ylim=(1e-8, 3.0)).opts(
            backend="matplotlib", ylim=(1e-8, 3.0)))
    elif other is not None:
        out.append(plot.compare(ds, other, labels=("SGD", "linear theory"),
                                title_text="Fig. 2 right: N=L=1024, β=0.75, η=0.01"))
    exponent = plot.local_exponent(ds, over=None, ylim=(0.0, 1.5),
                                   title_text=f"{name}: local exponent; dashed: β/(1+β), "
                                              "shaded: fit window")
    span = hv.VSpan(*window).opts(backend="bokeh", color="gray", alpha=0.15).opts(
        backend="matplotlib", facecolor="gray", alpha=0.15)
    out.append(plot.extend(exponent, span))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, out=Path("scalex-results"), images=True, catalog=True)
    parser.add_argument("--only", choices=ENTRIES, default=None, help="run one panel only")
    args = parser.parse_args(argv)

    plot.load_backends()  # the fit-window span sets options for both backends
    catalog = load_catalog(args.catalog)
    figure = []
    for name in [args.only] if args.only else ENTRIES:
        entry = catalog[name]
        print(f"\n{name}: {entry.summary_line()}")
        result = run_entry(entry, args.out / name, report=True)
        window = fit_window(entry.setup)
        figure += panels(name, result, window)
        print(f"wall time (run, comparison and analyses): {result.wall_time_s:.1f} s")
        beta = entry.setup.beta
        print(f"fit window α ∈ [{window[0]:.3g}, {window[1]:.3g}]; "
              f"predicted exponent β/(1+β) = {beta / (1 + beta):.4f}, with the finite-"
              f"spectrum correction {finite_size_exponent(entry.setup, window):.4f}")
        for label, data in [(entry.kind, result.dataset), *result.comparisons.items()]:
            fit = measured_exponent(data, window)
            ci = ""
            if "exponent_ci_low" in fit:
                ci = (f", 95% bootstrap interval over seeds [{float(fit.exponent_ci_low):.4f}, "
                      f"{float(fit.exponent_ci_high):.4f}]")
            print(f"  {label}: exponent {float(fit.exponent):.4f} ± "
                  f"{float(fit.exponent_stderr):.4f} (least squares){ci}")
        if result.table is not None:
            print(result.table.to_string(float_format=lambda x: f"{x:.4g}"))
        for problem in result.problems:
            print(f"note: {problem}")
    layout = hv.Layout(figure).cols(2).opts(backend="bokeh", shared_axes=False)
    written = write_figure(layout, args.out, "fig2", args.images)
    print("\nwritten:", *map(str, written), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
