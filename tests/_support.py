"""Small helpers shared by several test modules (imported as ``_support``, tests/ on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms; fail the test after ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def network_error(J: np.ndarray, B: np.ndarray, v: np.ndarray, w: np.ndarray, lam: np.ndarray,
                  g: Callable[[np.ndarray], np.ndarray],
                  rng: np.random.Generator) -> tuple[float, float]:
    """Monte Carlo ½(ζ − σ)² of an explicit student (J, v) and teacher (B, w) with activation g
    on 10⁶ Gaussian inputs of covariance diag(λ): (mean, standard error)."""
    N = J.shape[1]
    total, total2, n = 0.0, 0.0, 0
    for _ in range(10):
        xi = rng.standard_normal((100_000, N)) * np.sqrt(lam)
        err = 0.5 * (g(xi @ B.T / np.sqrt(N)) @ w - g(xi @ J.T / np.sqrt(N)) @ v) ** 2
        total += err.sum()
        total2 += (err**2).sum()
        n += err.size
    mean = total / n
    return mean, float(np.sqrt(total2 / n - mean**2) / np.sqrt(n))


def random_cov(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    """A random valid n × n covariance with diagonal entries uniform in [0.2, 2]·scale."""
    r = np.random.default_rng(seed)
    A = r.standard_normal((n, n + 2))
    C = A @ A.T / (n + 2)
    d = r.uniform(0.2, 2.0, n) * scale
    return C * np.sqrt(np.outer(d, d) / np.outer(np.diag(C), np.diag(C)))


def samples(C: np.ndarray, seed: int, n: int) -> np.ndarray:
    """n Gaussian samples (n, len(C)) of covariance C."""
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(C)), C, size=n)
