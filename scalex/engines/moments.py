"""The Stein coefficients s_ia and second moments E_ij of the ODEs (docs/theory.md §3.3–§3.4).

Plain arrays in and out. erf runs through compiled kernels: `erf_moments` for a batch of
covariances, `erf_moments_parallel` for one covariance with the K(K+1)/2 entries of E in
parallel (large K); other activations go through `scalex.model.integrals`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numpy.typing import ArrayLike, NDArray

from scalex.model.integrals import J2, coefficients, stein_coefficients, update_second_moment

Array = NDArray[np.float64]

__all__ = ["PARALLEL_MOMENTS_MIN_K", "erf_moments", "erf_moments_parallel", "field_moments"]


@numba.njit(cache=True)
def erf_moments(C: Array, v: Array, c: Array, noise2: float) -> tuple[Array, Array]:
    """s_ia and E_ij for g = erf(·/√2) for a batch C (B, n, n) of covariances (docs/theory.md §3.3).

    Closed forms J2, I3, I4 of docs/theory.md §3.3; E uses I4(i,j,c,d) = I4(j,i,c,d) = I4(i,j,d,c),
    so it costs K(K+1)/2 · n(n+1)/2 arcsines. ``noise2`` = s² adds s² v_i v_j J2(i, j) to E.
    """
    B, n = C.shape[0], C.shape[1]
    K = v.shape[0]
    s = np.empty((B, K, n))
    E = np.empty((B, K, K))
    two_pi = 2.0 / np.pi
    four_pi2 = 4.0 / np.pi**2
    d = np.empty(n)
    lam1 = np.empty(n)
    for b in range(B):
        Cb = C[b]
        for a in range(n):
            d[a] = 1.0 + Cb[a, a]
        for i in range(K):
            acc = 0.0
            for a in range(n):
                j2 = two_pi / np.sqrt(d[i] * d[a] - Cb[i, a] ** 2)
                s[b, i, a] = v[i] * c[a] * j2
                # I3(i, i, a) = (2/π) C_ia / (d_i √(d_i d_a − C_ia²)), from g'' = −x g'.
                acc += c[a] * Cb[i, a] * j2 / d[i]
            s[b, i, i] -= v[i] * acc
        for i in range(K):
            for j in range(i, K):
                Cij = Cb[i, j]
                lam4 = d[i] * d[j] - Cij**2
                for a in range(n):
                    Cia, Cja = Cb[i, a], Cb[j, a]
                    lam1[a] = lam4 * d[a] - Cja**2 * d[i] - Cia**2 * d[j] + 2.0 * Cij * Cia * Cja
                total = 0.0
                for cc in range(n):
                    Cic, Cjc = Cb[i, cc], Cb[j, cc]
                    for dd in range(cc, n):
                        Cid, Cjd = Cb[i, dd], Cb[j, dd]
                        lam0 = (lam4 * Cb[cc, dd] - Cjc * Cjd * d[i] - Cic * Cid * d[j]
                                + Cij * Cic * Cjd + Cij * Cid * Cjc)
                        arg = min(1.0, max(-1.0, lam0 / np.sqrt(lam1[cc] * lam1[dd])))
                        weight = 1.0 if dd == cc else 2.0
                        total += weight * c[cc] * c[dd] * np.arcsin(arg)
                value = v[i] * v[j] * four_pi2 / np.sqrt(lam4) * total
                if noise2 != 0.0:
                    value += noise2 * v[i] * v[j] * two_pi / np.sqrt(lam4)
                E[b, i, j] = value
                E[b, j, i] = value
    return s, E


@numba.njit(cache=True, parallel=True)
def erf_moments_parallel(C: Array, v: Array, c: Array, noise2: float, pi: NDArray[np.intp],
                          pj: NDArray[np.intp]) -> tuple[Array, Array]:
    """`erf_moments` for one covariance C (n, n), the K(K+1)/2 pairs (i ≤ j) of E in parallel.

    Λ0(c, d) of eq. (3.10) is linear in C_cd, C_id, C_jd with coefficients that depend on c
    only; they and 1/√Λ1 are computed once per c, so the inner loop is three products and an
    arcsine. The operations differ in order from `erf_moments`, so the two agree to rounding,
    not bit for bit.
    """
    n = C.shape[0]
    K = v.shape[0]
    s = np.empty((K, n))
    E = np.empty((K, K))
    two_pi = 2.0 / np.pi
    four_pi2 = 4.0 / np.pi**2
    d = np.empty(n)
    for a in range(n):
        d[a] = 1.0 + C[a, a]
    for i in prange(K):
        acc = 0.0
        for a in range(n):
            j2 = two_pi / np.sqrt(d[i] * d[a] - C[i, a] ** 2)
            s[i, a] = v[i] * c[a] * j2
            acc += c[a] * C[i, a] * j2 / d[i]
        s[i, i] -= v[i] * acc
    for k in prange(pi.shape[0]):
        i, j = pi[k], pj[k]
        inv = np.empty(n)  # 1/√Λ1(c) of eq. (3.10)
        Cij = C[i, j]
        lam4 = d[i] * d[j] - Cij**2
        for a in range(n):
            Cia, Cja = C[i, a], C[j, a]
            inv[a] = 1.0 / np.sqrt(lam4 * d[a] - Cja**2 * d[i] - Cia**2 * d[j]
                                   + 2.0 * Cij * Cia * Cja)
        total = 0.0
        for cc in range(n):
            Cic, Cjc = C[i, cc], C[j, cc]
            # Λ0(c, d) = α_c C_cd − β_c C_jd − γ_c C_id with per-c coefficients
            a_c = lam4 * inv[cc]
            b_c = (Cjc * d[i] - Cij * Cic) * inv[cc]
            g_c = (Cic * d[j] - Cij * Cjc) * inv[cc]
            diag = min(1.0, max(-1.0, (a_c * C[cc, cc] - b_c * Cjc - g_c * Cic) * inv[cc]))
            row = 0.5 * c[cc] * np.arcsin(diag)
            for dd in range(cc + 1, n):
                arg = (a_c * C[cc, dd] - b_c * C[j, dd] - g_c * C[i, dd]) * inv[dd]
                row += c[dd] * np.arcsin(min(1.0, max(-1.0, arg)))
            total += 2.0 * c[cc] * row
        value = v[i] * v[j] * four_pi2 / np.sqrt(lam4) * total
        if noise2 != 0.0:
            value += noise2 * v[i] * v[j] * two_pi / np.sqrt(lam4)
        E[i, j] = value
        E[j, i] = value
    return s, E


#: From this many student units on, one covariance's moments are computed in parallel
#: (`erf_moments_parallel`); below, thread start-up costs more than it saves.
PARALLEL_MOMENTS_MIN_K = 8


def field_moments(
    C: ArrayLike,
    v: ArrayLike,
    w: ArrayLike,
    activation: str = "erf",
    noise: float = 0.0,
) -> tuple[Array, Array]:
    """s_ia = E[∂F_i/∂h_a] and the second moment E_ij of docs/theory.md §3, batched (leading axes).

    Returns ``(s, E)``, s of shape (..., K, K+M) and E_ij = E[F_i F_j] + s² v_i v_j J2(i, j)
    (shape (..., K, K); the last term is the teacher-noise part, s = ``noise``). The same numbers
    as `scalex.model.integrals.stein_coefficients` and
    `scalex.model.integrals.update_second_moment`; erf runs through a compiled kernel.
    """
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    w = np.asarray(w, dtype=float)
    K, n = v.shape[0], C.shape[-1]
    if activation == "erf":
        flat = np.ascontiguousarray(C.reshape((-1, n, n)))
        s, E = erf_moments(flat, v, coefficients(v, w), float(noise) ** 2)
        return s.reshape((*C.shape[:-2], K, n)), E.reshape((*C.shape[:-2], K, K))
    s = stein_coefficients(C, v, w, activation)
    E = update_second_moment(C, v, w, activation)
    if noise:
        E = E + noise**2 * np.outer(v, v) * J2(C, activation)[..., :K, :K]
    return s, E
