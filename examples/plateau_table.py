"""Measured vs predicted plateau length, and the scaling of the escape rate μ.

Prints two markdown tables (used in docs/analysis.md):

1. For L ∈ {1, 2, 4, 8, 16} and K = M ∈ {2, 3, 4, 6} at the Fig. 1 settings (η = 0.1,
   β = 1, σ_J = 0.01, N = 1024, erf, seed 0): the plateau measured by
   `scalex.analysis.plateau` on the ODE solution, and the plateau predicted by
   `scalex.theory.escape` for the same draw.
2. The escape rate μ for L ∈ {1, ..., 64}, K = M ∈ {2, 3, 4, 6} and β ∈ {0.5, 1, 2}, with
   μ/λ_1 and K² μ/λ_1 (constant if τ_esc = 1/μ ∝ M²/λ_1 ∝ M²/L).

Usage: python examples/plateau_table.py [--table plateau|scaling|both] [--quick]
"""

from __future__ import annotations

import time

import numpy as np

import scalex
from scalex import analysis
from scalex.analysis.escape import escape, escape_rate
from scalex.viz.scripts import script_parser


def fmt(x: float, digits: int = 4) -> str:
    return "—" if not np.isfinite(x) else f"{x:.{digits}g}"


def plateau_table(Ls: list[int], Ks: list[int], seed: int = 0) -> str:
    rows = [
        "| K=M | L | μ | ε_g* | measured start | measured end | measured length | "
        "predicted start | predicted end | predicted length | predicted/measured | "
        "(1/μ) ln(1/A₀) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for K in Ks:
        for L in Ls:
            setup = scalex.Setup(K=K, M=K, N=1024, L=L, beta=1.0, eta=0.1, sigma_J=0.01)
            res = escape(setup, seed=seed)
            alpha_max = max(3 * res.naive_length, 1e3)
            alpha = np.geomspace(1e-2, alpha_max, 800)
            ds = scalex.solve_ode(setup, alpha, seed=seed, rtol=1e-8, atol=1e-11)
            m = analysis.plateau(ds)
            m_len = float(m.plateau_length)
            p_len = res.plateau_length if res.has_plateau else np.nan
            ratio = p_len / m_len if np.isfinite(m_len) and np.isfinite(p_len) else np.nan
            p_start = res.plateau_start if res.has_plateau else np.nan
            p_end = res.plateau_end if res.has_plateau else np.nan
            rows.append(
                f"| {K} | {L} | {res.escape_rate:.3e} | {res.plateau_height:.4f} | "
                f"{fmt(float(m.plateau_start))} | {fmt(float(m.plateau_end))} | {fmt(m_len)} | "
                f"{fmt(p_start)} | {fmt(p_end)} | {fmt(p_len)} | {fmt(ratio, 3)} | "
                f"{fmt(res.naive_length)} |"
            )
    return "\n".join(rows)


def scaling_table(Ls: list[int], Ks: list[int], betas: list[float], max_modes: int) -> str:
    """One table per β: rows L, columns K = M, entries "μ (K² μ/λ_1)"."""
    out = []
    for beta in betas:
        rows = [f"β = {beta:g}:", "",
                "| L | λ_1 | " + " | ".join(f"K=M={K}: μ (K²μ/λ_1)" for K in Ks) + " |",
                "|---|---|" + "---|" * len(Ks)]
        for L in Ls:
            lam1 = float(scalex.Setup(L=L, beta=beta).spectrum.eigenvalues[0])
            cells = []
            for K in Ks:
                p = K * (K + 1) // 2 + K * K
                if L * (p - 3) > max_modes:  # dense eigenproblem of this size: skipped
                    cells.append("—")
                    continue
                setup = scalex.Setup(K=K, M=K, N=1024, L=L, beta=beta, eta=0.1, sigma_J=0.01)
                mu = escape_rate(setup)
                cells.append(f"{mu:.3e} ({K**2 * mu / lam1:.4f})")
            rows.append(f"| {L} | {lam1:.3f} | " + " | ".join(cells) + " |")
        out.append("\n".join(rows))
    return "\n\n".join(out)


def main() -> None:
    parser = script_parser(__doc__, quick=True)
    parser.add_argument("--table", choices=["plateau", "scaling", "both"], default="both")
    args = parser.parse_args()
    Ks = [2] if args.quick else [2, 3, 4, 6]
    start = time.perf_counter()
    if args.table in ("plateau", "both"):
        print(plateau_table([1, 2, 4, 8, 16], Ks))
        print()
    if args.table in ("scaling", "both"):
        print(scaling_table([1, 2, 4, 8, 16, 32, 64], Ks,
                            [1.0] if args.quick else [0.5, 1.0, 2.0], max_modes=2000))
    print(f"\n(computed in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
