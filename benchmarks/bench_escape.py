"""Cost of the escape theory `scalex.escape(setup, seed=0)`: structured route against the dense one.

Cases
-----
A. Fig. 1 settings (K = M = 2, η = 0.1, β = 1, σ_J = 0.01, N = max(1024, L), erf, seed 0),
   L ∈ {16, 32, 256, 1024} (``--L``): wall time of ``method="structured"`` (default) and of
   ``method="dense"`` (the Jacobian on V1 and V0 column by column by central differences, dense
   eig, LSODA and explicit RK45), the latter in a child process stopped after
   ``--dense-timeout`` seconds (and not run for larger L once stopped). Where both finish: the
   relative differences of μ and of the predicted plateau length.
B. Fig. 6 size (K = M = 40, η = 0.01, β = 1, σ_J = 1e-6, N = L = 512), structured route only
   (the dense route would diagonalise a 1.2·10⁶-dimensional J|V1), split into the draw
   (`scalex.initial_overlaps`) and the rest. Skipped with ``--skip-large``.
C. A trained second layer (case A with ``train_v=True``, docs/theory.md §5.6; the dense route),
   L ∈ {1, 4, 16, 32} (``--trained-L``), against the baseline of measuring the plateau
   instead: `solve_ode` with train_v on α ∈ [1e-2, 1e4] (600 points, rtol 1e-8) and
   `scalex.analysis.plateau`, timed in the same run. Also the predicted/measured lengths.

Usage: ``python benchmarks/bench_escape.py [--repeat 1] [--dense-timeout 120] [--skip-large]
[--trained-L 1 4 16 32]``.
Timings are the best of ``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import time
from typing import Any

import numpy as np

from scalex.analysis.escape import escape
from scalex.analysis.measures import plateau
from scalex.engines.ode import solve_ode
from scalex.model.setup import Setup
from scalex.schema import initial_overlaps
from scalex.viz.scripts import best_of, script_parser


def fig1(L: int) -> Setup:
    return Setup(K=2, M=2, N=max(1024, L), L=L, beta=1.0, eta=0.1, sigma_J=0.01)


def fig6(L: int) -> Setup:
    return Setup(K=40, M=40, N=512, L=L, beta=1.0, eta=0.01, sigma_J=1e-6)


def summary(res: Any) -> dict[str, float]:
    return {"mu": res.escape_rate, "length": res.plateau_length,
            "found": float(res.has_plateau), "A_s": res.plateau_asymmetry}


def _timed(setup: Setup, method: str, queue: Any) -> None:
    escape(fig1(1), seed=0, method=method)  # imports and compiled kernels out of the timing
    tick = time.perf_counter()
    res = escape(setup, seed=0, method=method)
    queue.put((time.perf_counter() - tick, summary(res)))


def run_with_timeout(setup: Setup, method: str, timeout: float
                     ) -> tuple[float, dict[str, float]] | None:
    """(seconds, summary) of one escape in a child process, or None after ``timeout``."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_timed, args=(setup, method, queue))
    child.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:  # queue.Empty: still running at the deadline
        return None
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


def fmt(x: float, spec: str = ".4g") -> str:
    return "—" if not np.isfinite(x) else format(x, spec)


def main() -> None:
    parser = script_parser(__doc__, repeat=1)
    parser.add_argument("--L", type=int, nargs="+", default=[16, 32, 256, 1024])
    parser.add_argument("--dense-timeout", type=float, default=120.0)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--trained-L", type=int, nargs="*", default=[1, 4, 16, 32])
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{datetime.date.today().isoformat()}")
    escape(fig1(1), seed=0)  # imports and compiled kernels out of the timings

    print("\nA. Fig. 1 settings, K = M = 2, seed 0 (seconds)\n")
    print("| L | structured | dense | dense / structured | μ | predicted length | "
          "rel. diff μ | rel. diff length |")
    print("|---|---|---|---|---|---|---|---|")
    stopped = False
    for L in sorted(args.L):
        setup = fig1(L)
        new_s, res = best_of(lambda s=setup: escape(s, seed=0), args.repeat)
        new = summary(res)
        old = None if stopped else run_with_timeout(setup, "dense", args.dense_timeout)
        if old is None:
            cells = [f"> {args.dense_timeout:g} (stopped)" if not stopped else
                     "not run (stopped at a smaller L)", "—", "—", "—"]
            stopped = True
        else:
            old_s, ref = old
            d_mu = abs(new["mu"] - ref["mu"]) / abs(ref["mu"])
            d_len = (abs(new["length"] - ref["length"]) / ref["length"]
                     if np.isfinite(ref["length"]) else float("nan"))
            cells = [f"{old_s:.2f}", f"{old_s / new_s:.1f}×", fmt(d_mu, ".1e"),
                     fmt(d_len, ".1e")]
        print(f"| {L} | {new_s:.2f} | {cells[0]} | {cells[1]} | {new['mu']:.4g} | "
              f"{fmt(new['length'])} | {cells[2]} | {cells[3]} |", flush=True)

    if args.trained_L:
        trained(args.trained_L, args.repeat)
    if args.skip_large:
        return
    print("\nB. K = M = 40, L = N = 512, η = 0.01, σ_J = 1e-6, seed 0 (structured)\n")
    setup = fig6(512)
    draw_s = best_of(lambda: initial_overlaps(setup, 0), args.repeat)[0]
    total_s, res = best_of(lambda: escape(setup, seed=0), args.repeat)
    print(f"escape: {total_s:.2f} s in all, of which the draw (initial_overlaps) {draw_s:.2f} s")
    print(f"μ = {res.escape_rate:.4g} (×{res.escape_multiplicity}), ε_g* = "
          f"{res.plateau_height:.4g}, predicted plateau {fmt(res.plateau_start)}–"
          f"{fmt(res.plateau_end)} (length {fmt(res.plateau_length)}), "
          f"A_0 = {res.initial_asymmetry:.3g}, A_s = {res.plateau_asymmetry:.3g}")


def trained(Ls: list[int], repeat: int) -> None:
    """Case C: the escape theory with a trained second layer against measuring the plateau."""
    print("\nC. Trained second layer (train_v, η_v = η), K = M = 2, Fig. 1 settings, seed 0 "
          "(seconds)\n")
    print("| L | escape (dense) | ODE + plateau | ODE / escape | predicted length | "
          "measured length |")
    print("|---|---|---|---|---|---|")
    alpha = np.geomspace(1e-2, 1e4, 600)
    for L in sorted(Ls):
        setup = Setup(K=2, M=2, N=1024, L=L, beta=1.0, eta=0.1, sigma_J=0.01, train_v=True)
        esc_s, res = best_of(lambda s=setup: escape(s, seed=0), repeat)
        ode_s, measured = best_of(lambda s=setup: plateau(
            solve_ode(s, alpha, seed=0, rtol=1e-8, atol=1e-11, progress=False)), repeat)
        print(f"| {L} | {esc_s:.2f} | {ode_s:.2f} | {ode_s / esc_s:.2f}× | "
              f"{fmt(res.plateau_length)} | {fmt(float(measured.plateau_length))} |",
              flush=True)


if __name__ == "__main__":
    main()
