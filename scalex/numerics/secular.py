"""Physics-free secular-equation solver for S = diag(λ) − ρ z zᵀ (Löwner vectors).

For strictly decreasing λ, non-zero z and ρ > 0, the eigenvalues ν of S solve

    1 − ρ Σ_j z_j² / (λ_j − ν) = 0,

one in each gap (λ_{j+1}, λ_j) and one below the smallest λ, and the unit eigenvector of ν_k
is ẑ / (λ − ν_k), normalised. The linear theory uses this as (L2) of `scalex.engines.linear`
(docs/theory.md eq. (4.4)), but nothing here depends on the physics. The numba kernels work on
the standard form diag(d) + ρ z zᵀ with d = −λ increasing:

* every root is kept as (index of its nearest pole, offset), so that λ_j − ν_k is exact to
  rounding even when a root lies within 1e-20 of a pole;
* each root comes from a two-pole rational model fitted to the value and slope of the function
  (Bunch–Nielsen–Sorensen / Li), inside a shrinking bracket;
* Löwner's ẑ (Gu & Eisenstat 1994), the z for which the computed roots are exact, makes the
  eigenvectors orthogonal to working precision;
* `project` (projections on the unit eigenvectors) and `vectors` (blocks of them) never need
  the n × n matrix at once. The kernels are threaded over roots and columns for
  n ≥ `PARALLEL_MIN`.

`secular_eigensystem` is the array-level entry point. `merge_equal` finds runs of equal λ,
which callers merge first, since the solver needs distinct poles.
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



#: size n from which the kernels use all threads (below it, starting threads costs more
#: than it saves).
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
