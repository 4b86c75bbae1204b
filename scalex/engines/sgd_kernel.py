"""Numba kernels of one-pass SGD for the soft committee machine (docs/theory.md §1).

Plain arrays in, weights updated in place; no labels, no random numbers. The driver in
`scalex.engines.simulate` draws the inputs and computes the teacher fields of a whole block
with one matrix product (the teacher is fixed), so the kernels only do what must be
sequential: the K student fields and the K weight updates of every step.

Two memory layouts of the student weights give bit-identical results:

- `sgd_steps` holds J as (K, N) rows: each field is a dot product over N. Fastest for few
  hidden units.
- `sgd_steps_transposed` holds Jᵀ as (N, K): the loops over units are innermost and
  contiguous, so they run in SIMD lanes. Fastest for many hidden units (K ≳ 32).

Both compile with ``fastmath=False``, so the floating-point operations happen in the order
written: every field is summed as four interleaved partial sums over k ≡ 0, 1, 2, 3 (mod 4),
combined as (s0 + s1) + (s2 + s3). Runs are reproducible bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["TRANSPOSED_MIN_K", "scratch", "sgd_steps", "sgd_steps_transposed"]

#: From this many student units on, the transposed layout is faster (measured, 2 cores).
TRANSPOSED_MIN_K = 32

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _dot(a, b, n):  # pragma: no cover - compiled
    """Σ_k a_k b_k over k < n as four interleaved partial sums (see module docstring)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - n % 4
    for k in range(0, m, 4):
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
    for k in range(m, n):
        s0 += a[k] * b[k]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _coefficients(x, y, eps, v, w, eta, noise, scale, erf, c):  # pragma: no cover - compiled
    """c_i = (η/√N) v_i g'(x_i) Δ with Δ = Σ_n w_n g(y_n) + s·ε − Σ_i v_i g(x_i)."""
    student = 0.0
    for i in range(x.shape[0]):
        student += v[i] * (math.erf(x[i] * INV_SQRT2) if erf else x[i])
    teacher = 0.0
    for n in range(w.shape[0]):
        teacher += w[n] * (math.erf(y[n] * INV_SQRT2) if erf else y[n])
    delta = teacher + noise * eps - student
    for i in range(x.shape[0]):
        gprime = SQRT_2_OVER_PI * math.exp(-0.5 * x[i] * x[i]) if erf else 1.0
        c[i] = eta * scale * v[i] * gprime * delta


@njit(cache=True, nogil=True, fastmath=False)
def sgd_steps(J, z, y, sqrt_lam, v, w, eta, noise, n_trainable, erf, xi, x, c):  # pragma: no cover
    """Run ``len(z)`` online-SGD steps of docs/theory.md §1 on the student weights ``J`` in place.

    Step t, with ξ = √λ ⊙ z_t (eigenbasis of Σ):

        x_i = J_i·ξ/√N,  Δ = Σ_n w_n g(y_n) + s·ε_t − Σ_i v_i g(x_i),
        J_ik ← J_ik + (η/√N) v_i g'(x_i) Δ ξ_k   for k < N_l only.

    g(x) = erf(x/√2), g'(x) = √(2/π) e^{−x²/2} if ``erf`` else g(x) = x, g' = 1.

    Parameters
    ----------
    J : (K, N) C-contiguous student weights (float64 or float32), updated in place.
    z : (n, N+1) standard normals; row t holds z_t in columns 0..N-1 and the label noise ε_t
        in column N.
    y : (n, M) teacher fields y_n = B_n·ξ/√N of the same steps.
    sqrt_lam : (N,) √λ of every coordinate, in the dtype of ``J``.
    v, w : (K,), (M,) second-layer weights (float64).
    eta, noise : learning rate η and label-noise std s.
    n_trainable : N_l; coordinates k ≥ N_l keep their values but still enter x_i.
    erf : True for the erf activation, False for linear.
    xi, x, c : scratch buffers from `scratch`.

    Returns
    -------
    The number of steps completed: ``len(z)``, or t < len(z) if a student field of step t
    was not finite (divergence; ``J`` is then left as it was before step t).
    """
    K, N = J.shape
    scale = 1.0 / math.sqrt(N)
    for t in range(z.shape[0]):
        for k in range(N):
            xi[k] = sqrt_lam[k] * z[t, k]
        for i in range(K):
            x[i] = _dot(J[i], xi, N) * scale
            if not math.isfinite(x[i]):
                return t
        _coefficients(x, y[t], z[t, N], v, w, eta, noise, scale, erf, c)
        for i in range(K):
            Ji = J[i]
            ci = c[i]
            for k in range(n_trainable):
                Ji[k] += ci * xi[k]
    return z.shape[0]


@njit(cache=True, nogil=True, fastmath=False)
def sgd_steps_transposed(JT, z, y, sqrt_lam, v, w, eta, noise, n_trainable, erf, xi, x, c,
                         partial):  # pragma: no cover
    """`sgd_steps` with the weights held transposed, ``JT`` (N, K); bit-identical results.

    ``partial`` is a (4, K) float64 scratch buffer for the four partial sums of each field.
    """
    N, K = JT.shape
    scale = 1.0 / math.sqrt(N)
    m = N - N % 4
    for t in range(z.shape[0]):
        for k in range(N):
            xi[k] = sqrt_lam[k] * z[t, k]
        partial[:, :] = 0.0
        for k in range(0, m, 4):
            x0 = xi[k]
            x1 = xi[k + 1]
            x2 = xi[k + 2]
            x3 = xi[k + 3]
            for i in range(K):
                partial[0, i] += JT[k, i] * x0
                partial[1, i] += JT[k + 1, i] * x1
                partial[2, i] += JT[k + 2, i] * x2
                partial[3, i] += JT[k + 3, i] * x3
        for k in range(m, N):
            xk = xi[k]
            for i in range(K):
                partial[0, i] += JT[k, i] * xk
        for i in range(K):
            x[i] = ((partial[0, i] + partial[1, i]) + (partial[2, i] + partial[3, i])) * scale
            if not math.isfinite(x[i]):
                return t
        _coefficients(x, y[t], z[t, N], v, w, eta, noise, scale, erf, c)
        for k in range(n_trainable):
            xk = xi[k]
            for i in range(K):
                JT[k, i] += c[i] * xk
    return z.shape[0]


def scratch(K: int, N: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (xi, x, c) scratch buffers of `sgd_steps`: (N,) in ``dtype``, (K,) and (K,) float64."""
    return np.empty(N, dtype=dtype), np.empty(K), np.empty(K)
