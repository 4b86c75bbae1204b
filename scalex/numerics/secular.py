r"""Exact learning curves of linear teacher–student SGD and their scaling laws (THEORY §4).

Reduction to one perceptron
    For g(x) = x the student output is σ = J_eff·ξ/√N with J_eff = Σ_i v_i J_i, the teacher
    ζ = B_eff·ξ/√N with B_eff = Σ_n w_n B_n, and every SGD update moves J_eff by
    (η/√N)(Σ_i v_i²) Δ ξ. So the network is a perceptron with the effective learning rate

        η_eff = η Σ_i v_i²            (= η for v_i = 1/√K).

    With D = J_eff − B_eff, the per-group error e_τ = D P_τ D / N is the contraction of the
    overlaps of THEORY §2,

        e_τ = Σ_ij v_i v_j q^τ_ij − 2 Σ_in v_i w_n r^τ_in + Σ_nm w_n w_m t^τ_nm,

    and ε_g = ½ Σ_τ λ_τ e_τ.

Per-group ODE (THEORY §3 contracted with v, w; s_ia = v_i c_a, E[F_i F_j] = 2 v_i v_j ε_g)
    For trained groups

        de_τ/dα = −2 η_eff λ_τ e_τ + η_eff² λ_τ f_τ (Σ_σ λ_σ e_σ + s²),     f_τ = N_τ/N,   (L1)

    where s is the teacher output-noise std (the noise term η² λ_τ f_τ s² v_i v_j of dq^τ_ij
    contracted with v gives η_eff² λ_τ f_τ s²). Untrained groups keep e_τ(0). The sum over σ
    runs over all groups, so the frozen ones act as a constant forcing
    C = Σ_{σ untrained} λ_σ e_σ(0) + s².

Solution
    On the n trained groups (L1) reads de/dα = −2η_eff M e + b with
    M = diag(λ) − (η_eff/2)(λ⊙f) λᵀ, a diagonal plus a rank-one matrix. With y = e/√f it becomes
    symmetric: M ~ S = diag(λ) − ρ z zᵀ with z = λ⊙√f and ρ = η_eff/2. The eigenvalues ν of S
    solve the secular equation

        1 − ρ Σ_τ z_τ² / (λ_τ − ν) = 0,                                               (L2)

    one in each gap (λ_{τ+1}, λ_τ) and one below λ_n, and the eigenvectors are
    x ∝ (λ − ν)^{-1} z. Each root is stored as an offset from its nearest pole, so that
    λ_τ − ν is exact to rounding even when a root is within 1e-20 of a pole; the eigenvectors
    use Löwner's reconstructed ẑ (Gu & Eisenstat 1994), which makes them orthogonal to
    working precision. Then

        e(α) = e* + √f ⊙ X exp(−2η_eff ν α) Xᵀ (e(0) − e*)/√f,
        e*_τ = (η_eff/2) f_τ C / (1 − h),     h = (η_eff/2) Σ_{trained} λ_τ f_τ.           (L3)

    The slowest root is positive iff h < 1, i.e. the stability bound
    η Σ_i v_i² < 2 / Σ_{trained} f_τ λ_τ. Cost: O(n²) for the roots and vectors plus one
    O(n² A) matrix product for A times (blocked, so memory stays O(n·block)); no dense
    n×n exponential is ever formed.

Overlaps
    The linear student moves every J_i along the same vector: J_i(α) = J_i(0) + v_i G(α),
    G = (D(α) − D(0))/Σv². First-order overlaps u P_τ D(α)/N with a fixed vector u relax as
    e^{−η_eff λ_τ α} (the mean of the update, without fluctuation term). Hence with
    φ_τ = e^{−η_eff λ_τ α} (1 for frozen groups), V = Σ v², a^τ_i = Σ_k v_k q^τ_ik(0) −
    Σ_n w_n r^τ_in(0) and b^τ_n = Σ_k v_k r^τ_kn(0) − Σ_m w_m t^τ_mn:

        q^τ_ij(α) = q^τ_ij(0) + (φ_τ − 1)(v_j a^τ_i + v_i a^τ_j)/V
                    + v_i v_j (e_τ(α) − 2 φ_τ e_τ(0) + e_τ(0)) / V²                     (L4)
        r^τ_in(α) = r^τ_in(0) + (φ_τ − 1) v_i b^τ_n / V

    so `linear_theory` returns a full schema Dataset, exact for any K, M, v and w.

Scaling laws (`asymptotics`)
    For small η, e_τ(0) ≈ E0 f_τ with E0 = σ_J² Σv² + Σw², and a spectrum
    λ(x) ≈ a x^{-(1+β)} in the coordinate rank x = (number of coordinates with eigenvalue
    ≥ λ)/N (for L equal groups a = λ_1 L^{-(1+β)}), the sum ½ E0 Σ_τ f_τ λ_τ e^{−2η_eff λ_τ α}
    becomes an integral over x:

        ε_g ≈ A α^{−β/(1+β)},   A = E0 a Γ(β/(1+β)) (2 η_eff a)^{−β/(1+β)} / (2(1+β)(1 − h)),

    valid for 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained). The factor 1/(1 − h) is the
    resummed η² term of (L1) (the slowly varying Σ λ e is fed back with weight h).
    Training only N_l coordinates, ε_g saturates at the exact fixed point of (L1),
    ε_∞ = ½ (C/(1 − h) − s²) ≈ ½ E0 Σ_{untrained} f_τ λ_τ ≈ (E0 a N^β / 2β) N_l^{−β}.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numba
import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

EPS = float(np.finfo(float).eps)


# =========================================================================== numba kernels
@njit(cache=True)
def _secular_root(d, z2, rho, k, total):  # pragma: no cover - compiled
    """Root k of 1 + ρ Σ_j z_j²/(d_j − μ) = 0 for strictly increasing d, ρ > 0, z ≠ 0.

    μ_k ∈ (d_k, d_{k+1}) for k < n−1 and μ_{n−1} ∈ (d_{n−1}, d_{n−1} + ρ Σ z²). The root is
    returned as (o, τ): the index o of its nearest pole and the offset τ with μ_k = d_o + τ, so
    that d_j − μ_k = (d_j − d_o) − τ keeps full relative accuracy near the poles. Iteration:
    the two-pole rational model of the function fitted to its value and slope at the current
    point (Bunch–Nielsen–Sorensen / Li), safeguarded by a shrinking bracket. ``total`` = Σ z².
    """
    n = d.size
    last = k == n - 1
    o = k
    lo = 0.0
    hi = rho * total
    if not last:
        half = 0.5 * (d[k + 1] - d[k])
        fmid = 1.0
        for j in range(n):
            fmid += rho * z2[j] / ((d[j] - d[k]) - half)
        hi = half
        if fmid < 0.0:
            o = k + 1
            lo = -half
            hi = 0.0
    left = d[k] - d[o]  # offsets of the poles bounding the bracket
    right = d[k + 1] - d[o] if not last else 0.0
    t = 0.5 * (lo + hi)
    for _ in range(200):
        psi = 0.0
        dpsi = 0.0
        phi = 0.0
        dphi = 0.0
        for j in range(k + 1):
            inv = 1.0 / ((d[j] - d[o]) - t)
            term = z2[j] * inv
            psi += term
            dpsi += term * inv
        for j in range(k + 1, n):
            inv = 1.0 / ((d[j] - d[o]) - t)
            term = z2[j] * inv
            phi += term
            dphi += term * inv
        f = 1.0 + rho * (psi + phi)
        if f == 0.0:
            break
        if f < 0.0:
            lo = t
        else:
            hi = t
        if abs(f) <= 16.0 * EPS * (1.0 + rho * (phi - psi)):
            break
        # two-pole model g(s) = c0 + b1/(dl − s) + b2/(dr − s) matching f and f' at t
        dl = left - t
        b1 = rho * dpsi * dl * dl
        if last:
            c0 = f - b1 / dl
            s = dl * f / c0 if c0 > 0.0 else np.nan
        else:
            dr = right - t
            b2 = rho * dphi * dr * dr
            c0 = f - b1 / dl - b2 / dr
            # c0 s² + bq s + cq = 0 with cq = dl·dr·f; take the root inside (dl, dr)
            bq = -(c0 * (dl + dr) + b1 + b2)
            cq = dl * dr * f
            if c0 == 0.0:
                s = -cq / bq
            else:
                disc = bq * bq - 4.0 * c0 * cq
                if disc < 0.0:
                    s = np.nan
                else:
                    sq = math.sqrt(disc)
                    big = -0.5 * (bq + sq) if bq >= 0.0 else -0.5 * (bq - sq)
                    s1 = big / c0
                    s2 = cq / big if big != 0.0 else np.nan
                    s = s2 if dl < s2 < dr else s1
        new = t + s
        if not (lo < new < hi):
            new = 0.5 * (lo + hi)
        if abs(new - t) <= 2.0 * EPS * abs(new):
            t = new
            break
        t = new
    return o, t


@njit(cache=True)
def _lowner_one(d, z, rho, origin, tau, i):  # pragma: no cover - compiled
    """Löwner's ẑ_i: the z for which the computed roots are exact (Gu & Eisenstat 1994).

    ẑ_i² = (μ_n − d_i)/ρ · Π_{k<i} (μ_k − d_i)/(d_k − d_i) · Π_{i≤k<n} (μ_k − d_i)/(d_{k+1} − d_i),
    every ratio in (0, 1], with μ_k − d_i formed from the pole offsets; sign(ẑ) = sign(z).
    """
    n = d.size
    prod = ((d[origin[n - 1]] - d[i]) + tau[n - 1]) / rho
    for k in range(i):
        prod *= ((d[origin[k]] - d[i]) + tau[k]) / (d[k] - d[i])
    for k in range(i, n - 1):
        prod *= ((d[origin[k]] - d[i]) + tau[k]) / (d[k + 1] - d[i])
    return math.copysign(math.sqrt(prod), z[i])


@njit(cache=True)
def _project_one(d, zh, origin, tau, y, k):  # pragma: no cover - compiled
    """Norm of column k of X_jk = ẑ_j/(d_j − μ_k) and the projection (Xᵀ y)_k / norm."""
    s2 = 0.0
    p = 0.0
    o = origin[k]
    for j in range(d.size):
        x = zh[j] / ((d[j] - d[o]) - tau[k])
        s2 += x * x
        p += x * y[j]
    norm = math.sqrt(s2)
    return norm, p / norm


@njit(cache=True)
def _vector_row(d, zh, origin, tau, norm, k, out):  # pragma: no cover - compiled
    """Normalised eigenvector k written into the row ``out``."""
    o = origin[k]
    scale = 1.0 / norm[k]
    for j in range(d.size):
        out[j] = zh[j] * scale / ((d[j] - d[o]) - tau[k])


# The drivers exist twice: threads pay off only for large n, and on a busy machine a parallel
# region per small call costs more than the work (see PARALLEL_MIN).
@njit(cache=True, parallel=True)
def _modes(d, z, rho):  # pragma: no cover - compiled
    """Roots (origin, offset) of the secular equation and Löwner's ẑ; threads over roots."""
    n = d.size
    z2 = z * z
    total = z2.sum()
    origin = np.empty(n, dtype=np.int64)
    tau = np.empty(n)
    for k in prange(n):
        origin[k], tau[k] = _secular_root(d, z2, rho, np.int64(k), total)
    zh = np.empty(n)
    for i in prange(n):
        zh[i] = _lowner_one(d, z, rho, origin, tau, np.int64(i))
    return origin, tau, zh



@njit(cache=True, parallel=True)
def _project(d, zh, origin, tau, y):  # pragma: no cover - compiled
    """Column norms and projections (Xᵀ y)/norm of all eigenvectors; threads over columns."""
    n = d.size
    norm = np.empty(n)
    proj = np.empty(n)
    for k in prange(n):
        norm[k], proj[k] = _project_one(d, zh, origin, tau, y, np.int64(k))
    return norm, proj



@njit(cache=True, parallel=True)
def _vectors(d, zh, origin, tau, norm, k0, k1):  # pragma: no cover - compiled
    """Normalised eigenvectors k0..k1−1 as rows, shape (k1 − k0, n) (contiguous writes)."""
    out = np.empty((k1 - k0, d.size))
    for c in prange(k1 - k0):
        _vector_row(d, zh, origin, tau, norm, np.int64(k0 + c), out[c])
    return out



#: size n from which the kernels use all threads (below it, thread start-up costs more than it saves).
PARALLEL_MIN = 384


@contextlib.contextmanager
def _threads_for(n: int) -> Iterator[None]:
    """Run the parallel kernels on one thread for small n, on all of numba's threads otherwise."""
    if n >= PARALLEL_MIN:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def secular_modes(d: Array, z: Array, rho: float) -> tuple[NDArray[np.int64], Array, Array]:
    """Roots (origin, offset) of diag(d) + ρ z zᵀ and Löwner's ẑ (d increasing)."""
    with _threads_for(d.size):
        return _modes(d, z, rho)


def project(d: Array, zh: Array, origin: NDArray[np.int64], tau: Array, y: Array
            ) -> tuple[Array, Array]:
    """Norms of the unnormalised eigenvectors and the projections of ``y`` on the unit ones."""
    with _threads_for(d.size):
        return _project(d, zh, origin, tau, y)


def vectors(d: Array, zh: Array, origin: NDArray[np.int64], tau: Array, norm: Array,
            k0: int, k1: int) -> Array:
    """Unit eigenvectors k0..k1−1 as rows, shape (k1 − k0, n)."""
    with _threads_for(d.size):
        return _vectors(d, zh, origin, tau, norm, k0, k1)


# =========================================================================== array layer
def secular_eigensystem(
    diagonal: ArrayLike, z: ArrayLike, rho: float
) -> tuple[Array, Array, NDArray[np.int64], Array]:
    """Eigenvalues of S = diag(λ) − ρ z zᵀ by the secular equation (L2).

    Parameters
    ----------
    diagonal : (n,) strictly decreasing λ.
    z : (n,) non-zero entries.
    rho : ρ > 0.

    Returns
    -------
    (nu, zhat, origin, offset): the eigenvalues ν (decreasing; ν_k ∈ (λ_{k+1}, λ_k)), Löwner's
    ẑ, and for each root the index of its nearest pole and its offset, so that
    ν_k = λ[origin_k] − offset_k and λ_j − ν_k = (λ_j − λ[origin_k]) + offset_k exactly. The
    unit eigenvector of ν_k is ẑ / (λ − ν_k), normalised.
    """
    lam = np.ascontiguousarray(diagonal, dtype=float)
    zz = np.ascontiguousarray(z, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or zz.shape != lam.shape:
        raise ValueError("diagonal, z: must be 1-D arrays of the same non-zero length")
    if np.any(np.diff(lam) >= 0):
        raise ValueError("diagonal: must be strictly decreasing")
    if np.any(zz == 0) or not np.all(np.isfinite(zz)):
        raise ValueError("z: entries must be finite and non-zero")
    if not rho > 0:
        raise ValueError(f"rho: must be > 0, got {rho!r}")
    d = np.ascontiguousarray(-lam)  # standard form diag(d) + ρ z zᵀ, d increasing
    origin, tau, zhat = secular_modes(d, zz, float(rho))
    nu = lam[origin] - tau
    return nu, zhat, origin, tau


def merge_equal(lam: Array) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start index of each run of equal eigenvalues and the run index of every entry."""
    new = np.concatenate([[True], lam[1:] != lam[:-1]])
    starts = np.flatnonzero(new)
    return starts, np.cumsum(new) - 1
