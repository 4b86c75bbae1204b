"""Fig. 3 of Worschech & Rosenow (ICLR 2025): scaling with the trainable input dimension N_l.

Left (catalog entry ``fig3_left``): linear network, L = N = 256, K = M = 1, σ_J = 0.01,
η = 0.05, β = 1; only the N_l leading eigen-directions are trained, and ε_g saturates at
ε_∞ ≈ ((1+σ_J²)/2N) Σ_{τ>N_l} λ_τ ∝ N_l^(−β) (docs/theory.md §4). Right (``fig3_real``): the same
with the empirical spectrum of a real image data set; the paper's data set is not bundled,
scikit-learn's 8×8 digits stand in for it (see the entry's description).

    python examples/fig3.py                       # results in scalex-results/fig3_*/
    python examples/fig3.py --images docs/images  # also the PNG shown in docs/reproduction.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import holoviews as hv
import numpy as np
import xarray as xr
from matplotlib.ticker import NullFormatter

from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import run_entry
from scalex.model.setup import Setup
from scalex.viz import plots as plot
from scalex.viz.scripts import script_parser, write_figure

ENTRIES = ("fig3_left", "fig3_real")


def saturation(ds: xr.Dataset) -> xr.Dataset:
    """ε_g at the last α against N_l, and the level the untrained groups hold (docs/theory.md §4).

    Untrained groups keep their initial errors, so ε_∞ = ½ Σ_{τ untrained} λ_τ e_τ(0): for
    the draw itself (``e`` at α = 0) and, with e_τ(0) ≈ (1+σ_J²) N_τ/N, on average over draws.
    """
    setup = Setup.from_attrs(ds.attrs)
    sp = setup.spectrum
    n_l = ds["trainable"].values
    untrained = np.cumsum(sp.multiplicities)[None, :] > n_l[:, None]  # (N_l, group)
    expected = 0.5 * (1 + setup.sigma_J**2) * (
        untrained * sp.eigenvalues * sp.multiplicities / setup.N).sum(1)
    e0 = ds["e"].isel(alpha=0).transpose("trainable", ..., "group").values
    draw = 0.5 * np.nansum(np.where(untrained.reshape(len(n_l), *[1] * (e0.ndim - 2), -1),
                                    e0 * sp.eigenvalues, 0.0), axis=-1)
    last = ds["eg"].isel(alpha=-1).transpose("trainable", ...).values
    if draw.ndim > 1:  # seeds
        draw, last = draw.mean(axis=1), last.mean(axis=1)
    return xr.Dataset(
        {"eg_final": ("trainable", last), "eg_saturation": ("trainable", expected),
         "eg_saturation_draw": ("trainable", draw)},
        coords={"trainable": n_l},
    )


def saturation_panel(name: str, sat: xr.Dataset) -> hv.Overlay:
    sat = sat.where(sat["eg_saturation"] > 0, drop=True)  # N_l = N saturates at 0
    x = hv.Dimension("trainable", label="trainable input dimension N_l")
    y = hv.Dimension("eg", label="generalisation error ε_g")
    n_l = sat["trainable"].values
    final = hv.Scatter((n_l, sat["eg_final"].values), x, y, label="ε_g at the last α")
    draw = hv.Curve((n_l, sat["eg_saturation_draw"].values), x, y,
                    label="½ Σ_{τ>N_l} λ_τ e_τ(0), this draw")
    expected = hv.Curve((n_l, sat["eg_saturation"].values), x, y,
                        label="((1+σ_J²)/2N) Σ_{τ>N_l} λ_τ, mean draw")
    for element, style in ((final, {"color": "#1f77b4"}), (draw, {"color": "#555555"}),
                           (expected, {"color": "#d62728"})):
        element.opts(backend="bokeh", **style).opts(backend="matplotlib", **style)
    draw.opts(backend="bokeh", line_dash="dotted").opts(backend="matplotlib", linestyle=":")
    expected.opts(backend="bokeh", line_dash="dashed").opts(backend="matplotlib",
                                                            linestyle="--")
    overlay = final.opts(backend="bokeh", size=8) * draw * expected
    ticks = [(float(n), str(int(n))) for n in n_l]  # the N_l values, not 2×10⁰
    overlay = overlay.opts(backend="bokeh", logx=True, logy=True, width=560, height=400,
                           title=f"{name}: saturation against N_l", legend_position="top_right",
                           xticks=ticks)
    return overlay.opts(backend="matplotlib", logx=True, logy=True, aspect=1.4, fig_size=160,
                        title=f"{name}: saturation against N_l", legend_position="top_right",
                        xticks=ticks, hooks=[no_minor_labels])


def no_minor_labels(plot, element) -> None:
    """matplotlib hook: only the N_l values label the log axis."""
    plot.handles["axis"].xaxis.set_minor_formatter(NullFormatter())


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, out=Path("scalex-results"), images=True, catalog=True)
    args = parser.parse_args(argv)

    plot.load_backends()  # the saturation panel sets options for both backends
    catalog = load_catalog(args.catalog)
    figure = []
    for name in ENTRIES:
        entry = catalog[name]
        print(f"\n{name}: {entry.summary_line()}")
        result = run_entry(entry, args.out / name, report=True)
        ds = result.dataset
        sat = saturation(ds)
        figure += [plot.learning_curves(ds, over="trainable", ylim=(1e-5, 1.0),
                                        title_text=f"{name}: ε_g(α), linear, N_l swept"),
                   saturation_panel(name, sat)]
        print(f"wall time (run and analyses): {result.wall_time_s:.1f} s")
        table = sat.to_dataframe()
        table["final/draw"] = table["eg_final"] / table["eg_saturation_draw"]
        print(table.to_string(float_format=lambda x: f"{x:.4g}"))
        inner = sat.where(sat["eg_saturation"] > 0, drop=True)
        for var in ("eg_saturation", "eg_final"):
            slope = np.polyfit(np.log(inner["trainable"]), np.log(inner[var]), 1)[0]
            print(f"slope of log {var} against log N_l (N_l < N): {slope:.3f}")
        for problem in result.problems:
            print(f"note: {problem}")
    layout = hv.Layout(figure).cols(2).opts(backend="bokeh", shared_axes=False)
    written = write_figure(layout, args.out, "fig3", args.images)
    print("\nwritten:", *map(str, written), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
