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

__all__ = [
    "PARALLEL_MOMENTS_MIN_K",
    "erf_moments",
    "erf_moments_parallel",
    "erf_stein",
    "erf_stein_directional",
    "field_moments",
    "stein_only",
]


@numba.njit(cache=True, inline="always")
def _stein_row(C: Array, d: Array, v: Array, c: Array, i: int,
               out: Array) -> None:  # pragma: no cover - compiled
    """out[a] = s_ia of eq. (3.12) for g = erf(·/√2): v_i c_a J2(i, a) − δ_ia v_i Σ_c c_c I3(i,i,c),
    with I3(i, i, a) = (2/π) C_ia / (d_i √(d_i d_a − C_ia²)) (from g'' = −x g'), d = 1 + diag C."""
    two_pi = 2.0 / np.pi
    acc = 0.0
    for a in range(C.shape[0]):
        j2 = two_pi / np.sqrt(d[i] * d[a] - C[i, a] ** 2)
        out[a] = v[i] * c[a] * j2
        acc += c[a] * C[i, a] * j2 / d[i]
    out[i] -= v[i] * acc


@numba.njit(cache=True, inline="always")
def _pair_moment(C: Array, d: Array, v: Array, c: Array, noise2: float, i: int,
                 j: int) -> float:  # pragma: no cover - compiled
    """E_ij = v_i v_j Σ_{c,d} c_c c_d I4(i, j, c, d) + s² v_i v_j J2(i, j) (eqs. (3.10), (3.13)).

    I4(i,j,c,d) = I4(i,j,d,c) halves the sum; Λ0(c, d) is linear in C_cd, C_id, C_jd with
    coefficients that depend on c only, so they and 1/√Λ1(c) are computed once per c and the
    inner loop is three products and an arcsine: K(K+1)/2 · n(n+1)/2 arcsines in all.
    """
    n = C.shape[0]
    inv = np.empty(n)  # 1/√Λ1(c)
    Cij = C[i, j]
    lam4 = d[i] * d[j] - Cij**2
    for a in range(n):
        Cia, Cja = C[i, a], C[j, a]
        inv[a] = 1.0 / np.sqrt(lam4 * d[a] - Cja**2 * d[i] - Cia**2 * d[j]
                               + 2.0 * Cij * Cia * Cja)
    total = 0.0
    for cc in range(n):
        Cic, Cjc = C[i, cc], C[j, cc]
        a_c = lam4 * inv[cc]
        b_c = (Cjc * d[i] - Cij * Cic) * inv[cc]
        g_c = (Cic * d[j] - Cij * Cjc) * inv[cc]
        diag = min(1.0, max(-1.0, (a_c * C[cc, cc] - b_c * Cjc - g_c * Cic) * inv[cc]))
        row = 0.5 * c[cc] * np.arcsin(diag)
        for dd in range(cc + 1, n):
            arg = (a_c * C[cc, dd] - b_c * C[j, dd] - g_c * C[i, dd]) * inv[dd]
            row += c[dd] * np.arcsin(min(1.0, max(-1.0, arg)))
        total += 2.0 * c[cc] * row
    value = v[i] * v[j] * (4.0 / np.pi**2) / np.sqrt(lam4) * total
    if noise2 != 0.0:
        value += noise2 * v[i] * v[j] * (2.0 / np.pi) / np.sqrt(lam4)
    return value


@numba.njit(cache=True)
def erf_moments(C: Array, v: Array, c: Array, noise2: float) -> tuple[Array, Array]:
    """s_ia and E_ij for g = erf(·/√2) for a batch C (B, n, n) of covariances (docs/theory.md §3.3).

    Closed forms J2, I3, I4 of docs/theory.md §3.3 (`_stein_row`, `_pair_moment`).
    ``noise2`` = s² adds s² v_i v_j J2(i, j) to E.
    """
    B, n = C.shape[0], C.shape[1]
    K = v.shape[0]
    s = np.empty((B, K, n))
    E = np.empty((B, K, K))
    d = np.empty(n)
    for b in range(B):
        Cb = C[b]
        for a in range(n):
            d[a] = 1.0 + Cb[a, a]
        for i in range(K):
            _stein_row(Cb, d, v, c, i, s[b, i])
        for i in range(K):
            for j in range(i, K):
                E[b, i, j] = E[b, j, i] = _pair_moment(Cb, d, v, c, noise2, i, j)
    return s, E


@numba.njit(cache=True)
def erf_stein(C: Array, v: Array, c: Array) -> Array:  # pragma: no cover - compiled
    """s_ia alone (no E) for a batch C (B, n, n), g = erf(·/√2): O(K n) per covariance."""
    B, n = C.shape[0], C.shape[1]
    K = v.shape[0]
    s = np.empty((B, K, n))
    d = np.empty(n)
    for b in range(B):
        for a in range(n):
            d[a] = 1.0 + C[b, a, a]
        for i in range(K):
            _stein_row(C[b], d, v, c, i, s[b, i])
    return s


@numba.njit(cache=True, parallel=True)
def erf_stein_directional(C: Array, dC: Array, v: Array,
                          c: Array) -> Array:  # pragma: no cover - compiled
    """δs_ia = Σ_ab (∂s_ia/∂C_ab) δC_ab for g = erf(·/√2), exactly, for a batch of directions.

    ``C`` (n, n) is the field covariance; ``dC`` (B, K, n) holds the student rows of symmetric
    directions δC whose teacher block is zero (so δd_a = δC_aa for students, 0 for teachers).
    Differentiates `_stein_row`: with D_ia = d_i d_a − C_ia², J2_ia = (2/π) D_ia^(−1/2),
    δJ2_ia = −J2_ia (δd_i d_a + d_i δd_a − 2 C_ia δC_ia) / (2 D_ia), and
    δs_ia = v_i c_a δJ2_ia − δ_ia v_i Σ_c c_c (δC_ic J2_ic + C_ic δJ2_ic − C_ic J2_ic δd_i/d_i)/d_i.
    """
    B, K, n = dC.shape
    two_pi = 2.0 / np.pi
    out = np.empty((B, K, n))
    d = np.empty(n)
    for a in range(n):
        d[a] = 1.0 + C[a, a]
    for b in prange(B):
        for i in range(K):
            ddi = dC[b, i, i]
            acc = 0.0
            for a in range(n):
                dda = dC[b, a, a] if a < K else 0.0
                D = d[i] * d[a] - C[i, a] ** 2
                j2 = two_pi / np.sqrt(D)
                dj2 = -0.5 * j2 * (ddi * d[a] + d[i] * dda - 2.0 * C[i, a] * dC[b, i, a]) / D
                out[b, i, a] = v[i] * c[a] * dj2
                acc += c[a] * (dC[b, i, a] * j2 + C[i, a] * dj2 - C[i, a] * j2 * ddi / d[i])
            out[b, i, i] -= v[i] * acc / d[i]
    return out


@numba.njit(cache=True, parallel=True)
def erf_moments_parallel(C: Array, v: Array, c: Array, noise2: float, pi: NDArray[np.intp],
                         pj: NDArray[np.intp]) -> tuple[Array, Array]:
    """`erf_moments` for one covariance C (n, n), the K(K+1)/2 pairs (i ≤ j) of E in parallel.

    The same per-entry functions as `erf_moments`; each entry is one thread's sequential sum.
    """
    n = C.shape[0]
    K = v.shape[0]
    s = np.empty((K, n))
    E = np.empty((K, K))
    d = np.empty(n)
    for a in range(n):
        d[a] = 1.0 + C[a, a]
    for i in prange(K):
        _stein_row(C, d, v, c, i, s[i])
    for k in prange(pi.shape[0]):
        i, j = pi[k], pj[k]
        value = _pair_moment(C, d, v, c, noise2, i, j)
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


def stein_only(C: ArrayLike, v: ArrayLike, w: ArrayLike, activation: str = "erf") -> Array:
    """The Stein coefficients s_ia of `field_moments` without E, batched: O(K(K+M)) each, so
    a fraction of a full moment evaluation (whose E costs O(K²(K+M)²))."""
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    if activation != "erf":
        return stein_coefficients(C, v, w, activation)
    n = C.shape[-1]
    flat = np.ascontiguousarray(C.reshape((-1, n, n)))
    s = erf_stein(flat, v, coefficients(v, w))
    return s.reshape((*C.shape[:-2], v.shape[0], n))
