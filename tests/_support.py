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
