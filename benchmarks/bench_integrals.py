"""Cost of one moment evaluation (s and E for one field covariance), ReLU against erf.

What the ODE right-hand side needs per step (docs/theory.md §3.2): the Stein coefficients s_ia
(3.12) and the second moment E_ij (3.6) for one (K+M) × (K+M) covariance C. Both activations
are timed in the same run on the same C, at K = M ∈ {2, 8}, through

* ``engine``: `scalex.engines.ode_system.field_moments` (erf: the compiled closed-form kernel;
  relu: `scalex.model.integrals`, whose E is the compiled 54-node path integral of
  `scalex.model.relu`);
* ``library``: `scalex.model.integrals.stein_coefficients` + `update_second_moment` (erf: numpy
  closed forms over the full I4 tensor).

ReLU's E runs on numba's threads over its entries; ``--threads 1`` gives the single-thread
figure.
Usage: ``python benchmarks/bench_integrals.py [--repeat 20] [--threads 1]``.
Timings are the best of ``--repeat`` calls (the machine may be shared).
"""

from __future__ import annotations

import numba
import numpy as np

from scalex.engines.ode_system import field_moments
from scalex.model.integrals import stein_coefficients, update_second_moment
from scalex.viz.scripts import best_of, script_parser


def covariance(K: int, M: int, seed: int = 0, N: int = 400) -> np.ndarray:
    """Field covariance of a student part-way to its teacher (generic, well conditioned)."""
    r = np.random.default_rng(seed)
    B = r.standard_normal((M, N))
    J = 0.6 * r.standard_normal((K, M)) @ B / np.sqrt(M) + 0.5 * r.standard_normal((K, N))
    W = np.vstack([J, B])
    return W @ W.T / N


def moments(route: str, C: np.ndarray, v: np.ndarray, w: np.ndarray, activation: str) -> object:
    """One moment evaluation through ``route`` (module docstring)."""
    if route == "engine":
        return field_moments(C, v, w, activation, 0.1)
    return stein_coefficients(C, v, w, activation), update_second_moment(C, v, w, activation)


def timed(route: str, K: int, activation: str, repeat: int) -> float:
    C = covariance(K, K)
    v, w = np.ones(K), np.ones(K)
    moments(route, C, v, w, activation)  # compile / warm up
    return best_of(lambda: moments(route, C, v, w, activation), repeat)[0]


def main() -> None:
    parser = script_parser(__doc__, repeat=20)
    parser.add_argument("--threads", type=int, default=None,
                        help=f"numba threads (default: all, {numba.config.NUMBA_NUM_THREADS})")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"numba threads: {numba.get_num_threads()}, best of {args.repeat}")
    print(f"{'K=M':>4} {'route':>8} {'erf [ms]':>10} {'relu [ms]':>10} {'relu/erf':>9}")
    for K in (2, 8):
        for route in ("engine", "library"):
            erf = timed(route, K, "erf", args.repeat)
            rel = timed(route, K, "relu", args.repeat)
            print(f"{K:>4} {route:>8} {1e3 * erf:>10.4f} {1e3 * rel:>10.3f} {rel / erf:>9.0f}")

if __name__ == "__main__":
    main()
