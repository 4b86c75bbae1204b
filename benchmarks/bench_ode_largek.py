"""Large K: BDF with the field feedback implicit (docs/theory.md §3.9) and the exponential
integrator (§3.7) against DOP853 and SGD, same run.

Setup: Fig. 6 of the paper, K = M = 40, N = 512, η = 0.01, β = 1, σ_J = 1e-6, erf, seed 0.

A. Cost per unit α at L = 512:
   * ``solve_ode(method="feedback")`` and ``method="exponential"`` over α ∈ [0, ``--alpha``]
     (default 3000: the initial drop, the plateau and the start of specialisation);
   * ``solve_ode(method="DOP853")`` (the former automatic choice) over α ∈ [0, 2]; its step is
     stability-limited (~1/(ηλ_1|μ|)), so its cost per unit α is constant and extrapolates;
   * ``simulate`` with one seed over α ∈ [0, 20] (Q, R recorded), the finite-N route.
   Printed: seconds per unit α and the ratios to DOP853 and to SGD.
B. With ``--full``: the Fig. 6 ODE (method="feedback") to α = 1e5 for L ∈ {1, 8, 64, 512}
   (wall time each, right-hand sides, LU factorisations, ε_g at the end), against what 1-seed
   SGD would take for the same α range at the per-unit-α cost of A.

Usage: ``python benchmarks/bench_ode_largek.py [--alpha 3000] [--full] [--repeat 1]``.
"""

from __future__ import annotations

import time

import numpy as np

from scalex.engines.ode import solve_ode
from scalex.engines.simulate import simulate
from scalex.model.setup import Setup
from scalex.viz.scripts import best_of, script_parser


def fig6(L: int) -> Setup:
    return Setup(K=40, M=40, N=512, L=L, eta=0.01, beta=1.0, sigma_J=1e-6)


def ode_cost(setup: Setup, alpha_max: float, method: str) -> tuple[float, int, float]:
    """(seconds, right-hand sides, final ε_g) of one solve to ``alpha_max``."""
    alpha = np.concatenate([[0.0], np.geomspace(0.1, alpha_max, 60)])
    tick = time.perf_counter()
    ds = solve_ode(setup, alpha, method=method, progress=False)
    return (time.perf_counter() - tick, int(ds.attrs["n_rhs_evaluations"]),
            float(ds["eg"].values[-1]))


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--alpha", type=float, default=3000.0)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    setup = fig6(512)

    sgd_alpha = 20.0
    grid = np.linspace(0.0, sgd_alpha, 5)
    sgd = best_of(lambda: simulate(setup, grid, seeds=[0], record=("Q", "R"), progress=False),
                  args.repeat)[0] / sgd_alpha
    dop_alpha = 2.0
    dop = best_of(lambda: ode_cost(setup, dop_alpha, "DOP853"), args.repeat)[0] / dop_alpha
    print("A. K = M = 40, L = N = 512 (seconds per unit alpha)")
    print(f"   SGD, 1 seed (alpha <= {sgd_alpha:g})        {sgd:9.4f}")
    print(f"   DOP853 (alpha <= {dop_alpha:g})              {dop:9.4f}")
    for method in ("feedback", "exponential"):
        wall, nfev, eg = ode_cost(setup, args.alpha, method)
        per = wall / args.alpha
        print(f"   {method:11s} (alpha <= {args.alpha:g}) {per:9.4f}   ({wall:.1f} s, {nfev} rhs, "
              f"eg {eg:.4g});  DOP853/{method} = {dop / per:.1f}x, SGD/{method} = "
              f"{sgd / per:.2f}x")
    if not args.full:
        return
    print("B. Fig. 6 ODE (feedback) to alpha = 1e5")
    total = 0.0
    for L in (1, 8, 64, 512):
        wall, nfev, eg = ode_cost(fig6(L), 1e5, "feedback")
        total += wall
        print(f"   L = {L:4d}: {wall:8.1f} s, {nfev:6d} rhs, eg(1e5) = {eg:.4g};  "
              f"1-seed SGD to 1e5: {sgd * 1e5:8.0f} s ({sgd * 1e5 / wall:.1f}x the ODE)")
    print(f"   all four L: {total:.0f} s")


if __name__ == "__main__":
    main()
