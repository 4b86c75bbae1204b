"""Benchmark of the exact linear theory (`scalex.linear`) against dense baselines.

Prints wall times (best of ``--repeat``) and ratios against baselines measured in the same run:

* dense ``scipy.linalg.expm``: e(α) = expm(A α) e(0) for every α (the textbook route), at
  L = 512 (and a smaller L for reference);
* dense ``numpy.linalg.eigh`` of the symmetrised n×n matrix S plus the same matrix product.

and the accuracy of the secular route against both (max relative difference of e_τ(α) over
entries above 1e-200).

    python benchmarks/bench_linear.py            # ~1-2 minutes on 2 cores
    python benchmarks/bench_linear.py --quick    # smaller sizes

On a shared machine, multi-threaded BLAS and numba threads fight over the cores and timings
scatter by factors of 10; ``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1`` gives stable numbers.
"""

from __future__ import annotations

import os
import time
from functools import partial

import numpy as np
from scipy.linalg import expm

from scalex.engines.linear import exact_errors, linear_theory
from scalex.model.setup import Setup
from scalex.viz.scripts import best_of, script_parser


def problem(L: int, beta: float = 1.0, eta: float = 0.01):
    setup = Setup(K=1, M=1, N=L, L=L, beta=beta, eta=eta, sigma_J=0.01, activation="linear")
    sp = setup.spectrum
    e0 = (1 + setup.sigma_J**2) * sp.fractions
    return setup, sp.eigenvalues, sp.fractions, e0


def dense_expm(lam, frac, e0, eta, alpha):
    A = -2 * eta * np.diag(lam) + eta**2 * np.outer(lam * frac, lam)
    return np.array([expm(A * a) @ e0 for a in alpha])


def dense_eigh(lam, frac, e0, eta, alpha):
    sq = np.sqrt(frac)
    z = lam * sq
    nu, X = np.linalg.eigh(np.diag(lam) - 0.5 * eta * np.outer(z, z))
    c = X.T @ (e0 / sq)
    return (np.exp(-2 * eta * np.outer(alpha, nu)) * c) @ X.T * sq


def max_rel(a, b):
    mask = np.abs(b) > 1e-200
    return float(np.max(np.abs(a - b)[mask] / np.abs(b)[mask]))


def main() -> None:
    parser = script_parser(__doc__, repeat=3, quick=True)
    parser.add_argument("--full", action="store_true", help="also dense eigh at L = 4096")
    args = parser.parse_args()
    n_alpha = 500
    eta = 0.01
    alpha = np.logspace(-2, 6, n_alpha)
    subset = alpha[::25]  # expm is timed on 20 of the 500 times and scaled by 25

    # warm-up: numba compilation / cache load is not part of the timings
    for L in (16, 1024):
        _, lam, frac, e0 = problem(L)
        exact_errors(lam, frac, e0, eta, alpha[:3])

    threads = {k: os.environ.get(k, "unset") for k in
               ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    print(f"# scalex.linear benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cpus, "
          f"{threads}")
    print(f"# {n_alpha} log-spaced alpha in [1e-2, 1e6], power law beta=1, eta={eta}; "
          "times are best of --repeat; expm is extrapolated from 20 alpha")
    print(f"{'L':>6} {'secular (s)':>12} {'dense eigh (s)':>15} {'ratio':>7} "
          f"{'dense expm (s)':>15} {'ratio':>7} {'err vs eigh':>12} {'err vs expm':>12}")
    sizes = (128, 512) if not args.quick else (128, 256)
    for L in sizes:
        _, lam, frac, e0 = problem(L)
        t_sec, e_sec = best_of(partial(exact_errors, lam, frac, e0, eta, alpha), args.repeat)
        t_eigh, e_eigh = best_of(partial(dense_eigh, lam, frac, e0, eta, alpha), args.repeat)
        t_expm, e_expm = best_of(partial(dense_expm, lam, frac, e0, eta, subset), 1)
        t_expm *= alpha.size / subset.size
        print(f"{L:6d} {t_sec:12.4f} {t_eigh:15.4f} {t_eigh / t_sec:7.1f} {t_expm:15.2f} "
              f"{t_expm / t_sec:7.0f} {max_rel(e_sec, e_eigh):12.2e} "
              f"{max_rel(e_sec[::25], e_expm):12.2e}")

    big = [1024, 2048, 4096] if not args.quick else [1024]
    for L in big:
        _, lam, frac, e0 = problem(L)
        t_sec, e_sec = best_of(partial(exact_errors, lam, frac, e0, eta, alpha), args.repeat)
        if L < 4096 or args.full:
            t_eigh, e_eigh = best_of(partial(dense_eigh, lam, frac, e0, eta, alpha), 1)
            extra = f"{t_eigh:15.4f} {t_eigh / t_sec:7.1f}"
            err = f"{max_rel(e_sec, e_eigh):12.2e}"
        else:
            extra, err = f"{'-':>15} {'-':>7}", f"{'-':>12}"
        print(f"{L:6d} {t_sec:12.4f} {extra} {'-':>15} {'-':>7} {err} {'-':>12}")

    L = big[-1]
    setup, lam, frac, e0 = problem(L)
    t_kernel, _ = best_of(partial(exact_errors, lam, frac, e0, eta, alpha), args.repeat)
    t_full, _ = best_of(partial(linear_theory, setup, alpha), args.repeat)
    t_red, _ = best_of(partial(linear_theory, setup, alpha, overlaps=False), args.repeat)
    print(f"\n# linear_theory at N = L = {L}, {n_alpha} alpha (K = M = 1)")
    print(f"exact_errors kernel            {t_kernel:7.3f} s   (ratio 1)")
    print(f"linear_theory(overlaps=False)  {t_red:7.3f} s   (ratio {t_red / t_kernel:.2f})")
    print(f"linear_theory (q, r, e, eg)    {t_full:7.3f} s   (ratio {t_full / t_kernel:.2f})")


if __name__ == "__main__":
    main()
