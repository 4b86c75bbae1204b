"""Numba kernels of one-pass SGD for the soft committee machine (docs/theory.md §1).

Plain arrays in, weights updated in place; no labels, no random numbers. The driver
(`scalex.engines.sgd_run.SGDRun`) draws the inputs and computes the teacher fields of a whole
block with one matrix product (the teacher is fixed), so the kernels only do what must be
sequential: the K student fields and the K weight updates of every step.

Two memory layouts of the student weights give bit-identical results:

- `sgd_steps` holds J as (K, N) rows: each field is a dot product over N. Fastest for few
  hidden units.
- `sgd_steps_transposed` holds Jᵀ as (N, K): the loops over units are innermost and
  contiguous, so they run in SIMD lanes, and one pass over the weights per step does both the
  update of the previous step and the fields of this one. Fastest for many hidden units
  (K ≥ ``TRANSPOSED_MIN_K``).

Both compile with ``fastmath=False``, so the floating-point operations happen in the order
written (no reassociation, no fused multiply-add): every field is summed as four interleaved
partial sums over k ≡ 0, 1, 2, 3 (mod 4), each in increasing k, combined as
(s0 + s1) + (s2 + s3). Runs are reproducible bit for bit.

The activation is one integer code for all kernels (`ACTIVATION_CODES`): 0 linear, g(x) = x,
g' = 1; 1 erf, g(x) = erf(x/√2), g' = √(2/π) e^{−x²/2}; 2 relu, g(x) = max(0, x),
g'(x) = Θ(x) with Θ(0) = 0 (docs/theory.md §3.8). Codes 0 and 1 equal False and True, so a
boolean "is erf" flag selects linear or erf as well.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

__all__ = ["ACTIVATION_CODES", "CACHE_LINE", "TRANSPOSED_MIN_K", "activation_code",
           "aligned_empty", "scratch", "sgd_steps", "sgd_steps_transposed"]

#: From this many student units on, the transposed layout is faster (measured on 2 cores at
#: N = 256 to 2048: from K = 12 to 16 on).
TRANSPOSED_MIN_K = 16
#: Bytes of a cache line: the alignment of the weights and buffers (`aligned_empty`).
CACHE_LINE = 64

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)

#: The kernels' integer code of each `scalex.model.setup.Setup` activation (module docstring).
ACTIVATION_CODES = {"linear": 0, "erf": 1, "relu": 2}
LINEAR, ERF, RELU = 0, 1, 2


def activation_code(activation: str) -> int:
    """The kernel code of ``activation`` ("linear" 0, "erf" 1, "relu" 2)."""
    try:
        return ACTIVATION_CODES[activation]
    except KeyError:
        raise ValueError(f"activation: must be one of {tuple(ACTIVATION_CODES)}, "
                         f"got {activation!r}") from None


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
def _g(u, act):  # pragma: no cover - compiled
    """g(u) for activation code ``act`` (module docstring)."""
    if act == ERF:
        return math.erf(u * INV_SQRT2)
    if act == RELU:
        return u if u > 0.0 else 0.0
    return u


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _gprime(u, act):  # pragma: no cover - compiled
    """g'(u) for activation code ``act``; Θ(0) = 0 for relu (module docstring)."""
    if act == ERF:
        return SQRT_2_OVER_PI * math.exp(-0.5 * u * u)
    if act == RELU:
        return 1.0 if u > 0.0 else 0.0
    return 1.0


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _coefficients(x, y, eps, v, w, eta, noise, scale, act, c, eta_v):  # pragma: no cover
    """c_i = (η/√N) v_i g'(x_i) Δ with Δ = Σ_n w_n g(y_n) + s·ε − Σ_i v_i g(x_i).

    With ``eta_v`` > 0 (a trained second layer, docs/theory.md §3.10) v is then updated in
    place, v_i ← v_i + (η_v/N) g(x_i) Δ, after c: both use the same step's x, Δ and old v.
    """
    student = 0.0
    for i in range(x.shape[0]):
        student += v[i] * _g(x[i], act)
    teacher = 0.0
    for n in range(w.shape[0]):
        teacher += w[n] * _g(y[n], act)
    delta = teacher + noise * eps - student
    for i in range(x.shape[0]):
        c[i] = eta * scale * v[i] * _gprime(x[i], act) * delta
    if eta_v > 0.0:
        rate = eta_v * scale * scale * delta
        for i in range(x.shape[0]):
            v[i] += rate * _g(x[i], act)


@njit(cache=True, nogil=True, fastmath=False)
def sgd_steps(J, z, y, sqrt_lam, v, w, eta, noise, n_trainable, act, xi, x, c,
              eta_v=0.0):  # pragma: no cover
    """Run ``len(z)`` online-SGD steps of docs/theory.md §1 on the student weights ``J`` in place.

    Step t, with ξ = √λ ⊙ z_t (eigenbasis of Σ):

        x_i = J_i·ξ/√N,  Δ = Σ_n w_n g(y_n) + s·ε_t − Σ_i v_i g(x_i),
        J_ik ← J_ik + (η/√N) v_i g'(x_i) Δ ξ_k   for k < N_l only,
        v_i ← v_i + (η_v/N) g(x_i) Δ              if η_v > 0 (docs/theory.md §3.10).

    Both updates use the step's fields and error and the v before the step. g and g' are
    those of the activation code ``act`` (module docstring).

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
    act : activation code, 0 linear, 1 erf, 2 relu (`activation_code`; False and True are
        accepted as 0 and 1).
    xi, x, c : scratch buffers from `scratch`.
    eta_v : learning rate η_v of the second layer; 0 (the default) keeps ``v`` fixed, > 0
        updates ``v`` in place (then pass a private copy).

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
        _coefficients(x, y[t], z[t, N], v, w, eta, noise, scale, act, c, eta_v)
        for i in range(K):
            Ji = J[i]
            ci = c[i]
            for k in range(n_trainable):
                Ji[k] += ci * xi[k]
    return z.shape[0]


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _update_row(r, c, u):  # pragma: no cover - compiled
    """r_i ← r_i + c_i u: row k of the weight update, over all units."""
    for i in range(r.shape[0]):
        r[i] += c[i] * u


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _field_row(r, xk, p):  # pragma: no cover - compiled
    """p_i ← p_i + r_i x_k: the term of row k in the partial sums of every field."""
    for i in range(r.shape[0]):
        p[i] += r[i] * xk


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _field_pair(ra, rb, xa, xb, p):  # pragma: no cover - compiled
    """`_field_row` for rows k and k + 4 (the same partial sum), in that order."""
    for i in range(ra.shape[0]):
        p[i] = (p[i] + ra[i] * xa) + rb[i] * xb


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _update_field_pair(ra, rb, c, ua, ub, xa, xb, p):  # pragma: no cover - compiled
    """Rows k and k + 4: the previous step's update, then their terms in this step's fields."""
    for i in range(ra.shape[0]):
        ra[i] += c[i] * ua
        rb[i] += c[i] * ub
        p[i] = (p[i] + ra[i] * xa) + rb[i] * xb  # the stored weights (float32 runs: rounded)


@njit(cache=True, nogil=True, fastmath=False)
def sgd_steps_transposed(JT, z, y, sqrt_lam, v, w, eta, noise, n_trainable, act, xi, x, c,
                         partial, eta_v=0.0):  # pragma: no cover
    """`sgd_steps` with the weights held transposed, ``JT`` (N, K); bit-identical results.

    ``partial`` is a (4, K) float64 buffer for the four partial sums of each field; ``eta_v`` as
    in `sgd_steps` (v moves at once, the pending J update keeps the c of its own step).

    One pass over the weights per step: weight row k receives the update of the previous step
    and at once adds its term to this step's fields (the last step's update is applied before
    returning). The loops over units are innermost and contiguous, so they run in SIMD lanes;
    rows k and k + 4, which feed the same partial sum, share a loop, so the partial sums are
    loaded and stored half as often. Every weight and field gets the operations of `sgd_steps`
    in the same order. On divergence at step t, ``JT`` holds the weights before step t.
    """
    N, K = JT.shape
    scale = 1.0 / math.sqrt(N)
    m4 = N - N % 4
    m8 = N - N % 8
    mt = min(m8, n_trainable - n_trainable % 8)  # rows in whole groups of 8, all trainable
    p0 = partial[0]
    p1 = partial[1]
    p2 = partial[2]
    p3 = partial[3]
    cur = xi
    prev = np.empty_like(xi)  # the previous step's inputs, for its pending update
    T = z.shape[0]
    for t in range(T):
        for k in range(N):
            cur[k] = sqrt_lam[k] * z[t, k]
        partial[:, :] = 0.0
        k0 = 0
        if t > 0:  # the update of step t - 1, fused with the fields of step t
            for k in range(0, mt, 8):
                _update_field_pair(JT[k], JT[k + 4], c, prev[k], prev[k + 4], cur[k],
                                   cur[k + 4], p0)
                _update_field_pair(JT[k + 1], JT[k + 5], c, prev[k + 1], prev[k + 5],
                                   cur[k + 1], cur[k + 5], p1)
                _update_field_pair(JT[k + 2], JT[k + 6], c, prev[k + 2], prev[k + 6],
                                   cur[k + 2], cur[k + 6], p2)
                _update_field_pair(JT[k + 3], JT[k + 7], c, prev[k + 3], prev[k + 7],
                                   cur[k + 3], cur[k + 7], p3)
            for k in range(mt, n_trainable):
                _update_row(JT[k], c, prev[k])
            k0 = mt
        for k in range(k0, m8, 8):
            _field_pair(JT[k], JT[k + 4], cur[k], cur[k + 4], p0)
            _field_pair(JT[k + 1], JT[k + 5], cur[k + 1], cur[k + 5], p1)
            _field_pair(JT[k + 2], JT[k + 6], cur[k + 2], cur[k + 6], p2)
            _field_pair(JT[k + 3], JT[k + 7], cur[k + 3], cur[k + 7], p3)
        for k in range(max(k0, m8), m4, 4):
            _field_row(JT[k], cur[k], p0)
            _field_row(JT[k + 1], cur[k + 1], p1)
            _field_row(JT[k + 2], cur[k + 2], p2)
            _field_row(JT[k + 3], cur[k + 3], p3)
        for k in range(m4, N):
            _field_row(JT[k], cur[k], p0)
        for i in range(K):
            x[i] = ((p0[i] + p1[i]) + (p2[i] + p3[i])) * scale
            if not math.isfinite(x[i]):
                return t
        _coefficients(x, y[t], z[t, N], v, w, eta, noise, scale, act, c, eta_v)
        cur, prev = prev, cur
    if T > 0:
        for k in range(n_trainable):
            _update_row(JT[k], c, prev[k])
    return T


def aligned_empty(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data start on a `CACHE_LINE` boundary.

    numpy's allocations are only 16-byte aligned; with the weights or buffers off a cache line,
    every SIMD load and store of the kernels' inner loops straddles two lines, and the
    transposed kernel ran 1.3 to 1.8 times slower (K = 32 to 40, N = 512 to 1024).
    """
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + nbytes].view(dt).reshape(shape)


def scratch(K: int, N: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (xi, x, c) scratch buffers of `sgd_steps`: (N,) in ``dtype``, (K,) and (K,) float64,
    aligned to a cache line."""
    return aligned_empty(N, dtype), aligned_empty(K), aligned_empty(K)
