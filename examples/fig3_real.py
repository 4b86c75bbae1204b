"""Fig. 3 (right) with real data: scaling laws of linear SGD on an empirical image spectrum.

For a bundled real image data set (scikit-learn's 8×8 digits, or natural-image patches; see
`scalex.datasets`) this script

1. fits the spectrum exponent β̂ of the data covariance (`scalex.spectrum.from_data`);
2. predicts the exact learning curve ε_g(α) for Gaussian inputs with that spectrum
   (`scalex.linear.linear_theory`) and its power law α^{−β̂/(1+β̂)} (`asymptotics`);
3. runs linear SGD driven by the real data vectors themselves (`sgd_real_data`) and, if
   `scalex.simulate` is available, Gaussian-input SGD with the same spectrum, both averaged
   over seeds from the same initial weights as the theory;
4. trains only the N_l leading eigen-directions and compares the saturation level
   ε_∞(N_l) (exact theory, and real-data SGD at late times) with the law N_l^{−β̂}.

With N ≈ 64 and β̂ ≈ 0.35 the spectrum is far from its continuum limit: the raw curves
decay faster than α^{−β̂/(1+β̂)}, and the N_l law is steeper than N_l^{−β̂}. Adding back the
finite-spectrum offset of `LinearAsymptotics` (the continuum tail beyond rank N) recovers the
predicted exponents; see docs/linear.md.

    python examples/fig3_real.py                  # digits (about half a minute)
    python examples/fig3_real.py --data patches   # 8×8 natural-image patches
"""

from __future__ import annotations

import time

import numpy as np

from scalex.engines.linear import linear_theory
from scalex.engines.linear_asymptotics import asymptotics
from scalex.engines.real_data import sgd_real_data
from scalex.model.datasets import DATASETS, real_data
from scalex.viz.scripts import script_parser


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def seed_mean(ds, seeds) -> tuple[np.ndarray, np.ndarray]:
    eg = ds.eg.sel(seed=list(seeds))
    return eg.mean("seed").values, eg.std("seed", ddof=1).values / np.sqrt(len(seeds))


def run(name: str, eta: float | None, sigma_J: float, seeds: range) -> None:
    t0 = time.perf_counter()
    data = real_data(name) if name == "digits" else real_data(name, size=8, stride=4)
    emp = data.spectrum
    print(f"\n=== {name}: {data.inputs.shape[0]} samples, N = {data.N} non-null dimensions")
    print(f"beta_hat = {emp.beta:.3f} ± {emp.beta_stderr:.3f} (fit on ranks {emp.fit_range}); "
          f"predicted time exponent beta/(1+beta) = {emp.beta / (1 + emp.beta):.3f}")

    lam = data.eigenvalues
    if eta is None:
        # the N → ∞ theory needs small single-step kicks on the top mode: η λ_1 / N ≪ 1
        eta = min(0.5, 0.05 * data.N / lam[0])
    setup = data.setup(eta=eta, sigma_J=sigma_J)
    asym = asymptotics(setup, beta=emp.beta, fit_range=emp.fit_range)
    lo, hi = asym.window
    print(f"{setup}\neta lambda_1 / N = {eta * lam[0] / data.N:.3f}; stability bound eta < "
          f"{setup.eta_max_linear:.3g}; window of the fitted ranks {lo:.3g} < alpha < {hi:.3g}")

    # ---- learning curves: theory, real-data SGD, Gaussian SGD
    a_max = min(1e4, 30.0 / (2 * eta * lam[-1]))
    alpha = np.unique(np.rint(np.logspace(np.log10(lo) - 1, np.log10(a_max), 19) * setup.N))
    alpha = alpha[alpha > 0] / setup.N
    theory = np.mean([linear_theory(setup, alpha, seed=s, overlaps=False).eg.values
                      for s in seeds], axis=0)
    real = sgd_real_data(data.inputs, setup, alpha, seeds=seeds)
    real_mean, real_err = seed_mean(real, seeds)
    try:
        from scalex.engines.simulate import simulate

        gauss = simulate(setup, alpha, seeds=seeds, record=(), scheduler="sync",
                         progress=False)
        gauss_mean, gauss_err = seed_mean(gauss, seeds)
    except ImportError:
        gauss_mean = gauss_err = np.full(alpha.size, np.nan)
    print(f"\nlearning curve, {len(seeds)} seeds (theory from the same initial weights)")
    print(f"{'alpha':>9} {'theory':>10} {'A a^-x - off':>12} {'Gaussian SGD':>20} "
          f"{'real-data SGD':>20} {'real/theory':>11}")
    for i in range(alpha.size):
        print(f"{alpha[i]:9.3g} {theory[i]:10.4g} {asym.curve(alpha[i], True):12.4g} "
              f"{gauss_mean[i]:11.4g} ± {gauss_err[i]:<6.2g} "
              f"{real_mean[i]:11.4g} ± {real_err[i]:<6.2g} {real_mean[i] / theory[i]:11.3f}")
    window = (alpha >= lo) & (alpha <= hi)
    if window.sum() >= 3:
        aw = alpha[window]
        print(f"fitted exponent for {lo:.3g} < alpha < {hi:.3g}: theory "
              f"{-slope(aw, theory[window]):.3f} (with the finite-N offset added back: "
              f"{-slope(aw, theory[window] + asym.offset):.3f}), real-data SGD "
              f"{-slope(aw, real_mean[window]):.3f} "
              f"({-slope(aw, real_mean[window] + asym.offset):.3f}); "
              f"prediction beta/(1+beta) = {asym.exponent:.3f}")

    # ---- trainable dimension N_l: saturation levels
    n_l = np.array([n for n in (1, 2, 4, 8, 16, 32) if n < setup.N // 2])
    sat_theory, sat_real, sat_err = [], [], []
    for n in n_l:
        s_n = setup.replace(trainable=int(n))
        sat_theory.append(asymptotics(s_n, beta=emp.beta).saturation)
        late = np.array([40.0, 60.0]) / (2 * eta * lam[n - 1])
        late = np.unique(np.rint(late * setup.N)) / setup.N
        ds = sgd_real_data(data.inputs, s_n, late, seeds=seeds)
        m, e = seed_mean(ds, seeds)
        sat_real.append(m[-1])
        sat_err.append(e[-1])
    print("\nsaturation level vs trainable dimension N_l "
          "(law: c N_l^-beta; finite N: c((N_l+1/2)^-beta - (N+1/2)^-beta))")
    print(f"{'N_l':>5} {'theory eps_inf':>15} {'law':>10} {'law, finite N':>14} "
          f"{'real-data SGD':>20}")
    for i, n in enumerate(n_l):
        print(f"{n:5d} {sat_theory[i]:15.4g} {asym.saturation_law(n):10.4g} "
              f"{asym.saturation_law(n, finite_size=True):14.4g} "
              f"{sat_real[i]:11.4g} ± {sat_err[i]:<6.2g}")
    print(f"fitted N_l exponent: theory {slope(n_l, sat_theory):.3f}, real-data SGD "
          f"{slope(n_l, sat_real):.3f}, finite-N law "
          f"{slope(n_l, asym.saturation_law(n_l, finite_size=True)):.3f}, "
          f"prediction -beta_hat = {-emp.beta:.3f} ± {emp.beta_stderr:.3f}")
    print(f"({name}: {time.perf_counter() - t0:.1f} s)")


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--data", choices=[*DATASETS, "both"], default="digits")
    parser.add_argument("--eta", type=float, default=None,
                        help="learning rate (default: min(0.5, 0.05 N / lambda_1))")
    parser.add_argument("--sigma-J", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    names = DATASETS if args.data == "both" else (args.data,)
    for name in names:
        run(name, args.eta, args.sigma_J, range(args.seeds))


if __name__ == "__main__":
    main()
