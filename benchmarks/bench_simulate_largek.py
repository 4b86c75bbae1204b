"""Per-step cost of `scalex.simulate` at K = M = 40 against the limit of the machine.

Setup: K = M = 40, N = L = 512 (one input dimension per group), β = 1, η = 0.01, erf, one
seed, one core (BLAS limited to one thread), float64, the default block (127 steps).

actual
    The block loop of `simulate` itself: `run_seed` (the per-seed driver of `simulate`) with a
    callback that stamps the time after every block, so each block's time covers its draw,
    teacher product, kernel, divergence check and loop overhead.
limit
    The unavoidable work per step, run as one minimal block loop: the N + 1 Gaussian normals
    of a step, drawn with the same generator (`scalex.model.weights.rng_streams`) into blocks
    of the same size (`default_block`); the teacher fields of a block as one BLAS product
    z·(B ⊙ √λ)ᵀ/√N, as in `simulate` (M·N multiply-adds per step: a product the teacher
    needs whatever the method, so counting it is fair); and the two K×N products of the
    student, x = J·ξ and J += c ξᵀ (K·N multiply-adds each), by the faster of a minimal numba
    loop (``fastmath=True``, so LLVM may vectorise the sums) and numba's BLAS ``np.dot`` for
    the fields. The activations g, g' and the error signal are not counted.

Both are timed block by block over ``--repeat`` long runs and reported per step as the
fastest block, the best run (the mean over its blocks, best of ``--repeat``) and the median
block: on a shared machine, other jobs slow some blocks down, and the fastest block is the
cost of the loop itself. The ratio limit/actual is the fraction of the machine's limit that
`simulate` reaches (target ≥ 0.5, stretch ≥ 0.8). Beside it: a breakdown (draw, teacher
product, student products, simulate's compute) timed the same way, and the whole call,
``simulate(setup, [0, α])`` minus ``simulate(setup, [0, α/8])`` per step (the records and the
Dataset cancel), in wall and CPU time, best of ``--repeat``. The weights of the limit's
products sit on a cache line, as simulate's do (`scalex.engines.sgd_kernel.aligned_empty`).

Usage: ``python benchmarks/bench_simulate_largek.py [--alpha 40] [--repeat 5]``.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from numba import njit

from scalex.engines.sgd_kernel import aligned_empty
from scalex.engines.simulate import SGDRun, default_block, run_seed, simulate
from scalex.model.setup import Setup
from scalex.model.weights import rng_streams, sample_weights
from scalex.numerics.threads import single_threaded_blas
from scalex.viz.scripts import best_of, script_parser

SETUP = Setup(K=40, M=40, N=512, L=512, beta=1.0, eta=0.01, activation="erf")
#: coefficient of the stand-in update J += TINY·x ξᵀ: keeps J bounded over a long run
TINY = 1e-9


@njit(cache=True, nogil=True, fastmath=True)
def _products_loops(J, z, sqrt_lam, xi, x):  # pragma: no cover - compiled
    """The student's two K×N products for each row of ``z``, as plain vectorised loops."""
    K, N = J.shape
    for t in range(z.shape[0]):
        for k in range(N):
            xi[k] = sqrt_lam[k] * z[t, k]
        for i in range(K):
            s = 0.0
            for k in range(N):
                s += J[i, k] * xi[k]
            x[i] = s
        for i in range(K):
            ci = TINY * x[i]
            for k in range(N):
                J[i, k] += ci * xi[k]


@njit(cache=True, nogil=True, fastmath=True)
def _products_blas(J, z, sqrt_lam, xi, x):  # pragma: no cover - compiled
    """The same, with the fields from BLAS gemv (numba's ``np.dot``)."""
    K, N = J.shape
    for t in range(z.shape[0]):
        for k in range(N):
            xi[k] = sqrt_lam[k] * z[t, k]
        x[:] = np.dot(J, xi)
        for i in range(K):
            ci = TINY * x[i]
            for k in range(N):
                J[i, k] += ci * xi[k]


PRODUCTS = {"loops": _products_loops, "blas": _products_blas}
#: statistics of the block times: the fastest block, the best run's mean, the median block
STATS = {"min": "fastest block", "run": "best run", "median": "median block"}


def block_times(step: Callable[[int], None], n_steps: int, block: int) -> np.ndarray:
    """Seconds per step of each block of ``step(n)`` over ``n_steps`` steps."""
    times = []
    done = 0
    while done < n_steps:
        n = min(block, n_steps - done)
        t0 = time.perf_counter()
        step(n)
        times.append((time.perf_counter() - t0) / n)
        done += n
    return np.array(times)


def limit_loop(setup: Setup, block: int, products: Callable[..., None] | None,
               draw: bool = True, teacher: bool = True) -> Callable[[int], None]:
    """One block of the unavoidable work (module docstring); parts can be left out."""
    N = setup.N
    rng = rng_streams(0)[2]
    J0, B = sample_weights(setup, 0)
    J = aligned_empty(J0.shape)  # on a cache line, as simulate's weights
    J[...] = J0
    sqrt_lam = np.sqrt(setup.spectrum.diagonal())
    B_scaled = np.ascontiguousarray((B * sqrt_lam / np.sqrt(N)).T)
    buf = np.random.default_rng(1).standard_normal((block, N + 1))
    xi, x = aligned_empty(N), aligned_empty(setup.K)

    def step(n: int) -> None:
        z = buf[:n]
        if draw:
            rng.standard_normal(out=z)
        if teacher:
            z[:, :N] @ B_scaled
        if products is not None:
            products(J, z, sqrt_lam, xi, x)

    return step


def kernel_loop(setup: Setup, block: int) -> Callable[[int], None]:
    """One block of `SGDRun.advance` (teacher product and kernel) on fixed inputs."""
    run = SGDRun(setup, *sample_weights(setup, 0))
    z = np.random.default_rng(1).standard_normal((block, setup.N + 1))
    return lambda n: run.advance(z[:n])


def actual_block_times(setup: Setup, n_steps: int, block: int) -> np.ndarray:
    """Seconds per step of each block of `run_seed`, from a callback after every block."""
    stamps: list[float] = []
    run_seed(setup, np.array([n_steps]), 0, block=block,
             callback=lambda n: stamps.append(time.perf_counter()))
    return np.diff(stamps) / block  # the first block (start-up) is left out


def whole_call(setup: Setup, n_long: int, n_short: int, repeat: int) -> dict[str, float]:
    """Per-step wall and CPU time of whole `simulate` calls (long minus short run)."""
    def call(n: int) -> float:
        t0 = time.thread_time()
        simulate(setup, [0, n / setup.N], seeds=[0], scheduler="sync", progress=False)
        return time.thread_time() - t0

    runs: dict[int, list[tuple[float, float]]] = {n_long: [], n_short: []}
    for _ in range(repeat):
        for n in runs:
            runs[n].append(best_of(lambda m=n: call(m), 1))
    best = {n: np.min(np.array(r), axis=0) for n, r in runs.items()}  # (wall, CPU)
    per_step = (best[n_long] - best[n_short]) / (n_long - n_short)
    return {"wall": float(per_step[0]), "cpu": float(per_step[1])}


def measure(setup: Setup, alpha: float, repeat: int) -> dict[str, dict[str, float]]:
    """`STATS` of the per-step block times of each contender, ``repeat`` runs interleaved."""
    N = setup.N
    block = default_block(N)
    n = block * max(8, round(alpha * N / block))
    loops: dict[str, Callable[[], np.ndarray]] = {
        "actual": lambda: actual_block_times(setup, n, block),
        "kernel": lambda: block_times(kernel_loop(setup, block), n, block),
        "draw": lambda: block_times(limit_loop(setup, block, None, teacher=False), n, block),
        "teacher": lambda: block_times(limit_loop(setup, block, None, draw=False), n, block),
    }
    for name, func in PRODUCTS.items():
        loops[f"limit_{name}"] = lambda f=func: block_times(limit_loop(setup, block, f), n, block)
        loops[f"products_{name}"] = lambda f=func: block_times(
            limit_loop(setup, block, f, draw=False, teacher=False), n, block)
    run_seed(setup, np.array([2 * block]), 0)  # compile / load the numba caches
    for func in PRODUCTS.values():
        block_times(limit_loop(setup, block, func), 2 * block, block)
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in loops}
    with single_threaded_blas():
        for _ in range(repeat):
            for name, func in loops.items():
                pooled[name].append(func())
        whole = whole_call(setup, n, n // 8, repeat)
    out = {name: {"min": float(np.min(np.concatenate(t))),
                  "run": float(min(np.mean(run) for run in t)),
                  "median": float(np.median(np.concatenate(t)))} for name, t in pooled.items()}
    for stat in STATS:
        for part in ("limit", "products"):
            out.setdefault(part, {})[stat] = min(out[f"{part}_{p}"][stat] for p in PRODUCTS)
    out["whole"] = whole
    out["sizes"] = {"block": block, "steps": n}
    return out


def main() -> None:
    parser = script_parser(__doc__, repeat=5)
    parser.add_argument("--alpha", type=float, default=40.0, help="α of each timed run")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    r = measure(SETUP, args.alpha, args.repeat)
    load1 = os.getloadavg()[0]
    us = 1e6
    print(f"# bench_simulate_largek  {datetime.date.today()}  "
          f"{platform.processor() or platform.machine()}  cores={os.cpu_count()}  "
          f"load {load0:.2f} -> {load1:.2f}")
    print(f"# {SETUP!r}; block {r['sizes']['block']}; {r['sizes']['steps']} steps per run; "
          f"{args.repeat} runs")
    print("\n| µs per step | fastest block | best run | median block |\n|---|---|---|---|")
    rows = [
        ("**actual**: simulate's block loop (run_seed)", "actual"),
        ("**limit**: draw + teacher product + student products", "limit"),
        ("limit, student products as loops", "limit_loops"),
        ("limit, fields by BLAS gemv", "limit_blas"),
        ("draw only (same generator and blocks)", "draw"),
        ("teacher block product only", "teacher"),
        ("student products only (faster of the two)", "products"),
        ("simulate's compute: SGDRun.advance on fixed inputs", "kernel"),
    ]
    for label, key in rows:
        print("| " + " | ".join([label] + [f"{r[key][stat] * us:.2f}" for stat in STATS]) + " |")
    print()
    for stat, label in STATS.items():
        print(f"ratio limit/actual, {label}: **{r['limit'][stat] / r['actual'][stat]:.2f}** "
              f"(target ≥ 0.5, stretch ≥ 0.8)")
    w = r["whole"]
    print(f"\nwhole simulate call, per step (long − short run, best of {args.repeat}): "
          f"{w['wall'] * us:.2f} µs wall, {w['cpu'] * us:.2f} µs CPU")


if __name__ == "__main__":
    main()
