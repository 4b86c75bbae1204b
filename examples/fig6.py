"""Fig. 6 of Worschech & Rosenow (ICLR 2025): exponential convergence for L = 1, a power law
for L = N.

After the plateau, an erf soft committee machine converges exponentially when the input is
isotropic (L = 1) and as a power law with exponent ≈ β/(1+β) when the spectrum has L = N
distinct eigenvalues (docs/theory.md §5). The paper: K = M = 40, N = L = 512, η = 0.01,
σ_J = 1e-6, 10 seeds. Catalog entry ``fig6`` runs a CPU-feasible version (K = M = 4, N = L = 256,
η = 0.2, σ_J = 0.01, 3 seeds, online SGD); ``--entry fig6_full`` runs the paper's size by the
exact ODE (L = 1, 8, 64, 512; about 6 min on 2 cores, docs/theory.md §3.9), and
``--entry fig6_full_sgd`` by online SGD with 10 seeds (L = 1, 512; about 25 min).

    python examples/fig6.py                       # results in scalex-results/fig6/
    python examples/fig6.py --images docs/images  # also the PNG shown in docs/reproduction.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import holoviews as hv

from scalex.analysis.measures import fit_power_law
from scalex.experiments.catalog import load_catalog
from scalex.experiments.runner import run_entry
from scalex.schema import member_setup
from scalex.viz import plots as plot
from scalex.viz.scripts import script_parser, write_figure


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, images=True, catalog=True)
    parser.add_argument("--entry", default="fig6", choices=("fig6", "fig6_full", "fig6_full_sgd"))
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: scalex-results/<entry>)")
    parser.add_argument("--late-start", type=float, default=100.0,
                        help="start of the late-time window of the power-law fit (after the "
                             "plateau); it ends at 1/(2ηλ_L) or the last α")
    args = parser.parse_args(argv)
    out = args.out or Path("scalex-results") / args.entry

    entry = load_catalog(args.catalog)[args.entry]
    print(f"{args.entry}: {entry.summary_line()}")
    result = run_entry(entry, out, report=True)
    ds = result.dataset
    beta = float(ds.attrs["beta"])
    seeds = ds.sizes.get("seed", 1)
    how = (f"SGD, {seeds} seeds, mean ± std" if ds.attrs.get("method") == "sgd"
           else str(ds.attrs.get("method", "")).upper())
    layout = hv.Layout([
        plot.learning_curves(ds, over="L", band="std", ylim=(1e-6, 1.0),
                             title_text=f"ε_g(α), erf, K=M={ds.attrs['K']}, N={ds.attrs['N']} "
                                        f"({how})"),
        plot.local_exponent(ds, over="L", ylim=(0.0, 2.0),
                            title_text=f"local exponent; dashed: β/(1+β) = "
                                       f"{beta / (1 + beta):.3g}"),
    ]).cols(2).opts(backend="bokeh", shared_axes=False)
    written = write_figure(layout, out, args.entry, args.images)

    print(f"\nwall time (run and analyses): {result.wall_time_s:.1f} s")
    print(f"predicted late-time exponent for L = N: β/(1+β) = {beta / (1 + beta):.3f}")
    for L in ds["L"].values:
        # the power law can hold only up to 1/(2ηλ_L), where the slowest mode is learnt
        lam_last = float(member_setup(ds, L=L).spectrum.eigenvalues[-1])
        end = min(float(ds["alpha"].values[-1]), 1 / (2 * float(ds.attrs["eta"]) * lam_last))
        late = (args.late_start, end if end > 10 * args.late_start
                else float(ds["alpha"].values[-1]))  # L = 1: no such window, fit to the end
        fit = fit_power_law(ds.sel(L=L), *late, bootstrap=200 if ds.sizes.get("seed", 1) > 1
                            else 0)
        ci = (f", 95% bootstrap interval over seeds [{float(fit.exponent_ci_low):.3f}, "
              f"{float(fit.exponent_ci_high):.3f}]" if "exponent_ci_low" in fit else "")
        print(f"L={L}: power-law fit on α ∈ [{late[0]:g}, {late[1]:g}]: exponent "
              f"{float(fit.exponent):.3f} ± {float(fit.exponent_stderr):.3f}{ci} "
              f"({fit.reason.item()})")
    if result.table is not None:
        print(result.table.to_string(float_format=lambda x: f"{x:.4g}"))
    for problem in result.problems:
        print(f"note: {problem}")
    print("\nwritten:", *map(str, written), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
