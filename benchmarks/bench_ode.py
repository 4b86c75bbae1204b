"""Speed and accuracy of `scalex.solve_ode` against baselines measured in the same run.

Cases
-----
A. Fig. 1 of the paper: K = M = 2, η = 0.1, β = 1, σ_J = 0.01, N = 1024, erf, seed 0,
   α ∈ [1e-2, 1e4] (400 log-spaced outputs), L = 1, 2, 4, …, 1024. Wall time per L, its growth
   against L = 1 (target: L = 1024 within 5×), right-hand-side / LU counts, and the maximal
   relative error of ε_g (where ε_g > 1e-4 max ε_g) against a tight reference (rtol 1e-10).
B. Naive fixed-step RK4, dt = 0.01, of the same right-hand side: its error and cost at L = 1
   (the full α range, or ``--rk4-alpha`` with linear extrapolation of the cost; a fixed step
   costs the same everywhere) and its per-step cost at larger L, extrapolated. The ratio is
   taken against `solve_ode` run at a tolerance that reaches RK4's accuracy (target ≥ 20×).
C. Alternatives on case A: scipy BDF/Radau with the same Jacobian as a sparse matrix (SuperLU),
   log time, and the explicit DOP853 (cost extrapolated from α ≤ ``--explicit-alpha`` once the
   step is stability-limited, when L is large).
D. Larger K: K = M = 10, L = 64 (arrowhead against DOP853, with errors against rtol 1e-9) and
   K = M = 40, L = N = 512, η = 0.01 (Fig. 6 size; cost per right-hand side and per unit α of
   DOP853, which ``auto`` picks there).

Usage: ``python benchmarks/bench_ode.py [--repeat 3] [--rk4-alpha 1e4] [--skip-large]``.
Timings are the best of ``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import numpy as np

from scalex.engines.ode import solve_ode
from scalex.engines.ode_system import AugmentedSystem
from scalex.model.setup import Setup
from scalex.numerics.threads import single_threaded_blas as _single_threaded_blas
from scalex.schema import initial_overlaps
from scalex.viz.scripts import best_of, script_parser

ALPHA = np.geomspace(1e-2, 1e4, 400)


def fig1(L: int, **changes) -> Setup:
    return Setup(**{"K": 2, "M": 2, "N": 1024, "L": L, "eta": 0.1, "beta": 1.0,
                    "sigma_J": 0.01, **changes})



def max_rel_error(eg: np.ndarray, ref: np.ndarray) -> float:
    keep = ref > 1e-4 * np.nanmax(ref)
    return float(np.nanmax(np.abs(eg[keep] - ref[keep]) / ref[keep]))


def plain_system(setup: Setup, seed: int = 0) -> AugmentedSystem:
    init = initial_overlaps(setup, seed)
    sp = setup.spectrum
    v, w = setup.second_layer
    return AugmentedSystem(init.q.values[0], init.r.values[0], init.t.values, sp.eigenvalues,
                           sp.fractions, v, w, setup.eta, setup.activation, setup.noise,
                           setup.trained_groups, augmented=False)


def rk4(system: AugmentedSystem, alpha_out: np.ndarray, dt: float = 0.01,
        max_steps: int | None = None) -> tuple[np.ndarray, int]:
    """Classical RK4 with the fixed step dt; an output between grid points gets one extra,
    shorter step from the last grid point (not carried on). Returns ε_g at the outputs reached
    and the number of full steps."""
    from scalex.model.integrals import generalization_error

    def step(z, h):
        k1 = f(z)
        k2 = f(z + 0.5 * h * k1)
        k3 = f(z + 0.5 * h * k2)
        k4 = f(z + h * k3)
        return z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    f = system.rhs
    z = system.initial_state()
    n_steps = int(np.ceil(alpha_out[-1] / dt - 1e-9))
    if max_steps is not None:
        n_steps = min(n_steps, max_steps)
    states, k_out = [], 0
    for n in range(n_steps + 1):
        a = n * dt
        while k_out < alpha_out.size and alpha_out[k_out] < a + dt * (1 - 1e-9):
            gap = alpha_out[k_out] - a
            states.append(z.copy() if gap < 1e-12 else step(z, gap))
            k_out += 1
        if n < n_steps:
            z = step(z, dt)
    if not states:
        return np.empty(0), n_steps
    q, r = system.overlaps(np.array(states).T)
    lam = system.eigenvalues
    Q, R = np.einsum("g,agij->aij", lam, q), np.einsum("g,agin->ain", lam, r)
    eg = generalization_error(Q, R, system.T, system.v, system.w)
    return eg, n_steps


def case_a(Ls, repeat):
    print("\n## A. Fig. 1 sweep (arrowhead BDF, rtol 1e-6, atol 1e-9)\n")
    print("| L | wall [s] | / L=1 | RHS evals | Jacobians | LU | max rel err ε_g |")
    print("|---|---|---|---|---|---|---|")
    rows, refs, t1 = {}, {}, None
    for L in Ls:
        setup = fig1(L)
        t, ds = best_of(lambda s=setup: solve_ode(s, ALPHA, progress=False), repeat)
        ref = solve_ode(setup, ALPHA, rtol=1e-10, atol=1e-14, progress=False).eg.values
        refs[L] = ref
        t1 = t if t1 is None else t1
        a = ds.attrs
        err = max_rel_error(ds.eg.values, ref)
        rows[L] = t
        print(f"| {L} | {t:.3f} | {t / t1:.2f} | {a['n_rhs_evaluations']} | "
              f"{a['n_jacobian_evaluations']} | {a['n_lu_decompositions']} | {err:.1e} |",
              flush=True)
    print(f"\nwhole sweep: {sum(rows.values()):.2f} s")
    return rows, refs


def case_b(refs, rows, repeat, rk4_alpha, Ls):
    print("\n## B. Naive RK4 (dt = 0.01) against solve_ode at equal accuracy\n")
    setup = fig1(1)
    system = plain_system(setup)
    out = ALPHA[ALPHA <= rk4_alpha * (1 + 1e-12)]
    with _single_threaded_blas():
        t0 = time.perf_counter()
        eg_rk4, n_steps = rk4(system, out)
        t_rk4_part = time.perf_counter() - t0
    t_rk4 = t_rk4_part * (ALPHA[-1] / out[-1])
    err_rk4 = max_rel_error(eg_rk4, refs[1][: out.size])
    note = "" if out[-1] >= ALPHA[-1] else f" (ran to α = {out[-1]:g}, cost extrapolated)"
    print(f"RK4 at L=1: {n_steps} steps in {t_rk4_part:.1f} s{note}; full-range cost "
          f"{t_rk4:.1f} s; max rel error on its range {err_rk4:.1e}")
    # solve_ode at the tolerance that matches RK4's accuracy on the same range.
    for rtol in (1e-6, 1e-7, 1e-8, 1e-9, 1e-10):
        t, ds = best_of(lambda r=rtol: solve_ode(setup, ALPHA, rtol=r, atol=r * 1e-3,
                                              progress=False), repeat)
        err = max_rel_error(ds.eg.values[: out.size], refs[1][: out.size])
        print(f"  solve_ode rtol {rtol:.0e}: {t:.3f} s, max rel error {err:.1e}, "
              f"RK4 / solve_ode = {t_rk4 / t:.0f}×")
        if err <= err_rk4:
            break
    print("\nRK4 per-step cost at larger L (2000 steps each; full run = 1e6 steps):")
    print("| L | RK4 step [ms] | est. full RK4 [s] | solve_ode (rtol 1e-6) [s] | ratio |")
    print("|---|---|---|---|---|")
    for L in Ls:
        sysL = plain_system(fig1(L))
        with _single_threaded_blas():
            t0 = time.perf_counter()
            rk4(sysL, np.array([20.0]), max_steps=2000)
            per_step = (time.perf_counter() - t0) / 2000
        full = per_step * 1e6
        print(f"| {L} | {per_step * 1e3:.3f} | {full:.0f} | {rows[L]:.3f} | "
              f"{full / rows[L]:.0f}× |", flush=True)


def case_c(refs, repeat, explicit_alpha, Ls):
    print("\n## C. Alternatives (rtol 1e-6) on case A\n")
    print("| L | method | wall [s] | RHS evals | LU | max rel err ε_g |")
    print("|---|---|---|---|---|---|")
    for L in sorted({Ls[0], Ls[len(Ls) // 2 + 1] if len(Ls) > 2 else Ls[-1], Ls[-1]}):
        setup = fig1(L)
        for label, kw in (("arrowhead", {}), ("arrowhead, log time", {"log_time": True}),
                          ("scipy BDF + SuperLU", {"method": "BDF"}),
                          ("scipy Radau + SuperLU", {"method": "Radau"})):
            rep = repeat if "Radau" not in label else 1
            t, ds = best_of(lambda s=setup, k=kw: solve_ode(s, ALPHA, progress=False, **k), rep)
            a = ds.attrs
            print(f"| {L} | {label} | {t:.3f} | {a['n_rhs_evaluations']} | "
                  f"{a['n_lu_decompositions']} | {max_rel_error(ds.eg.values, refs[L]):.1e} |",
                  flush=True)
        # Explicit: full run for small L, else extrapolate from α ≤ explicit_alpha.
        amax = ALPHA[-1] if L <= 64 else explicit_alpha
        grid = ALPHA[ALPHA <= amax]
        t, ds = best_of(lambda s=setup, g=grid: solve_ode(s, g, method="DOP853", progress=False), 1)
        if amax >= ALPHA[-1]:
            err = f"{max_rel_error(ds.eg.values, refs[L]):.1e}"
            print(f"| {L} | DOP853 | {t:.3f} | {ds.attrs['n_rhs_evaluations']} | 0 | {err} |")
        else:
            # Stability-limited step: cost ∝ α; measure the rate over the second half.
            half = grid[grid <= amax / 2]
            t_half, _ = best_of(lambda s=setup, g=half: solve_ode(s, g, method="DOP853",
                                                               progress=False), 1)
            rate = (t - t_half) / (amax - amax / 2)
            est = t + rate * (ALPHA[-1] - amax)
            print(f"| {L} | DOP853 (to α={amax:g}, extrapolated) | ~{est:.0f} | "
                  f"{ds.attrs['n_rhs_evaluations']} (to α={amax:g}) | 0 | – |", flush=True)


def case_d(repeat):
    print("\n## D. Larger K\n")
    alpha = np.geomspace(1e-2, 1e4, 100)
    setup = Setup(K=10, M=10, N=512, L=64, eta=0.1, beta=1.0, sigma_J=0.01)
    ref = solve_ode(setup, alpha, rtol=1e-9, atol=1e-12, progress=False).eg.values
    print("K = M = 10, L = 64, N = 512, η = 0.1, α ≤ 1e4 (reference: arrowhead rtol 1e-9)\n")
    print("| method | rtol | wall [s] | RHS evals | LU | max rel err ε_g |")
    print("|---|---|---|---|---|---|")
    for method, rtol in (("arrowhead", 1e-6), ("DOP853", 1e-6), ("DOP853", 1e-8)):
        t, ds = best_of(lambda m=method, r=rtol: solve_ode(setup, alpha, method=m, rtol=r,
                                                        atol=r * 1e-3, progress=False), 1)
        print(f"| {method} | {rtol:.0e} | {t:.1f} | {ds.attrs['n_rhs_evaluations']} | "
              f"{ds.attrs['n_lu_decompositions']} | {max_rel_error(ds.eg.values, ref):.1e} |",
              flush=True)

    setup = Setup(K=40, M=40, N=512, L=512, eta=0.01, beta=1.0, sigma_J=1e-6)
    system = plain_system(setup)
    z = system.initial_state()
    with _single_threaded_blas():
        t_rhs, _ = best_of(lambda: system.rhs(z), max(repeat, 3))
    alpha = np.linspace(0, 20, 5)
    t, ds = best_of(lambda: solve_ode(setup, alpha, progress=False), 1)
    nfev = ds.attrs["n_rhs_evaluations"]
    print(f"\nK = M = 40, L = N = 512, η = 0.01 (Fig. 6 size): "
          f"auto → {ds.attrs['ode_method']}; "
          f"one RHS {t_rhs * 1e3:.0f} ms; α ≤ 20 took {t:.1f} s, {nfev} RHS "
          f"({nfev / 20:.0f} per unit α) → ~{t / 20 * 1e3 / 60:.0f} min per 1000 α "
          f"(stability-limited step: ηλ_1 = {setup.eta * setup.spectrum.eigenvalues[0]:.2f})")


def main() -> None:
    parser = script_parser(__doc__, repeat=3)
    parser.add_argument("--rk4-alpha", type=float, default=1e4,
                        help="run the L=1 RK4 baseline to this α (cost extrapolated)")
    parser.add_argument("--explicit-alpha", type=float, default=100.0)
    parser.add_argument("--max-L", type=int, default=1024)
    parser.add_argument("--skip-large", action="store_true", help="skip case D")
    args = parser.parse_args()
    print(f"# bench_ode — {datetime.date.today()} — {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cores, numpy {np.__version__}")
    solve_ode(fig1(2), ALPHA[:5], progress=False)  # compile the numba kernels first
    Ls = [2**k for k in range(11) if 2**k <= args.max_L]
    rows, refs = case_a(Ls, args.repeat)
    case_b(refs, rows, args.repeat, args.rk4_alpha, Ls)
    case_c(refs, args.repeat, args.explicit_alpha, Ls)
    if not args.skip_large:
        case_d(args.repeat)


if __name__ == "__main__":
    main()
