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

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray
from scipy.special import gamma as _gamma

from scalex.model.setup import Setup
from scalex.schema import make_dataset

__all__ = [
    "LinearAsymptotics",
    "asymptotic_curve",
    "asymptotics",
    "decay_rates",
    "effective_learning_rate",
    "exact_errors",
    "initial_condition",
    "linear_theory",
    "secular_eigensystem",
    "sgd_real_data",
    "stability_bound",
]

Array = NDArray[np.float64]
EPS = float(np.finfo(float).eps)
#: largest q, r output (float count) `linear_theory` builds before asking for overlaps=False.
MAX_OVERLAP_ELEMENTS = 250_000_000
#: eigenvectors built at once by `exact_errors` (memory 8·n·block bytes).
DEFAULT_BLOCK = 2048


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
def _modes_par(d, z, rho):  # pragma: no cover - compiled
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


@njit(cache=True)
def _modes_seq(d, z, rho):  # pragma: no cover - compiled
    """Serial twin of `_modes_par`."""
    n = d.size
    z2 = z * z
    total = z2.sum()
    origin = np.empty(n, dtype=np.int64)
    tau = np.empty(n)
    for k in range(n):
        origin[k], tau[k] = _secular_root(d, z2, rho, np.int64(k), total)
    zh = np.empty(n)
    for i in range(n):
        zh[i] = _lowner_one(d, z, rho, origin, tau, np.int64(i))
    return origin, tau, zh


@njit(cache=True, parallel=True)
def _project_par(d, zh, origin, tau, y):  # pragma: no cover - compiled
    """Column norms and projections (Xᵀ y)/norm of all eigenvectors; threads over columns."""
    n = d.size
    norm = np.empty(n)
    proj = np.empty(n)
    for k in prange(n):
        norm[k], proj[k] = _project_one(d, zh, origin, tau, y, np.int64(k))
    return norm, proj


@njit(cache=True)
def _project_seq(d, zh, origin, tau, y):  # pragma: no cover - compiled
    """Serial twin of `_project_par`."""
    n = d.size
    norm = np.empty(n)
    proj = np.empty(n)
    for k in range(n):
        norm[k], proj[k] = _project_one(d, zh, origin, tau, y, np.int64(k))
    return norm, proj


@njit(cache=True, parallel=True)
def _vectors_par(d, zh, origin, tau, norm, k0, k1):  # pragma: no cover - compiled
    """Normalised eigenvectors k0..k1−1 as rows, shape (k1 − k0, n) (contiguous writes)."""
    out = np.empty((k1 - k0, d.size))
    for c in prange(k1 - k0):
        _vector_row(d, zh, origin, tau, norm, np.int64(k0 + c), out[c])
    return out


@njit(cache=True)
def _vectors_seq(d, zh, origin, tau, norm, k0, k1):  # pragma: no cover - compiled
    """Serial twin of `_vectors_par`."""
    out = np.empty((k1 - k0, d.size))
    for c in range(k1 - k0):
        _vector_row(d, zh, origin, tau, norm, np.int64(k0 + c), out[c])
    return out


#: size n of the trained block from which the kernels use threads.
PARALLEL_MIN = 384


@njit(cache=True)
def _sgd_linear(J, B, X, idx, eps, v, w, eta, noise, n_trainable):  # pragma: no cover
    """Linear K = M = 1 SGD on given input rows: J ← J + (η/√N) v Δ ξ, ξ = X[idx[t]].

    Δ = w B·ξ/√N + s ε_t − v J·ξ/√N; only the first ``n_trainable`` coordinates move.
    """
    N = J.size
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for t in range(idx.size):
        row = idx[t]
        field = 0.0
        for k in range(N):
            field += (w * B[k] - v * J[k]) * X[row, k]
        delta = field * inv_sqrt_n + noise * eps[t]
        step = eta * inv_sqrt_n * v * delta
        for k in range(n_trainable):
            J[k] += step * X[row, k]


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
    modes = _modes_par if lam.size >= PARALLEL_MIN else _modes_seq
    origin, tau, zhat = modes(d, zz, float(rho))
    nu = lam[origin] - tau
    return nu, zhat, origin, tau


def _merge_equal(lam: Array) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start index of each run of equal eigenvalues and the run index of every entry."""
    new = np.concatenate([[True], lam[1:] != lam[:-1]])
    starts = np.flatnonzero(new)
    return starts, np.cumsum(new) - 1


def exact_errors(
    eigenvalues: ArrayLike,
    fractions: ArrayLike,
    e0: ArrayLike,
    eta: float,
    alpha: ArrayLike,
    *,
    trained: ArrayLike | None = None,
    noise: float = 0.0,
    block: int = DEFAULT_BLOCK,
) -> Array:
    """Exact e_τ(α) of the per-group linear ODE (L1), shape (A, L).

    de_τ/dα = −2ηλ_τ e_τ + η² λ_τ f_τ (Σ_σ λ_σ e_σ + s²) for trained τ, 0 otherwise; solved by
    (L3) with the secular eigensystem of the trained block (module docstring).

    Parameters
    ----------
    eigenvalues : (L,) λ_τ > 0 in non-increasing order; equal values are allowed (those groups
        move together, and their differences decay at their own rate).
    fractions : (L,) f_τ = N_τ/N > 0.
    e0 : (L,) initial e_τ(0).
    eta : the effective learning rate η_eff = η Σ_i v_i² (> 0, below the stability bound).
    alpha : (A,) times α ≥ 0.
    trained : optional (L,) bool mask of trained groups (default: all).
    noise : teacher output-noise std s ≥ 0.
    block : eigenvector columns built at once (memory ~ 8·L·block bytes).
    """
    lam = np.asarray(eigenvalues, dtype=float)
    frac = np.asarray(fractions, dtype=float)
    e0 = np.asarray(e0, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or frac.shape != lam.shape or e0.shape != lam.shape:
        raise ValueError("eigenvalues, fractions, e0: must be 1-D arrays of the same length")
    if np.any(lam <= 0) or np.any(np.diff(lam) > 0) or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues: must be finite, > 0 and non-increasing")
    if np.any(frac <= 0):
        raise ValueError("fractions: must be > 0")
    if alpha.ndim != 1 or not np.all(np.isfinite(alpha)) or np.any(alpha < 0):
        raise ValueError("alpha: must be a 1-D array of finite times >= 0")
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta: must be finite and > 0, got {eta!r}")
    if not noise >= 0:
        raise ValueError(f"noise: must be >= 0, got {noise!r}")
    mask = np.ones(lam.size, bool) if trained is None else np.asarray(trained, dtype=bool)
    out = np.broadcast_to(e0, (alpha.size, lam.size)).copy()
    if not mask.any():
        return out
    lt, ft, et = lam[mask], frac[mask], e0[mask]
    forcing = float(np.dot(lam[~mask], e0[~mask])) + noise**2
    h = 0.5 * eta * float(np.dot(lt, ft))
    if h >= 1.0:
        raise ValueError(
            f"eta: must be < {2.0 / float(np.dot(lt, ft)):.10g} (= 2/Σ_trained f_τ λ_τ) for "
            f"stable linear SGD, got {eta!r}"
        )

    # Groups with equal eigenvalues: solve for their sum, add the decaying differences.
    starts, run = _merge_equal(lt)
    lm = lt[starts]
    fm = np.add.reduceat(ft, starts)
    em0 = np.add.reduceat(et, starts)
    estar = 0.5 * eta * fm * forcing / (1.0 - h)
    sqrt_f = np.sqrt(fm)
    nu, zhat, origin, offset = secular_eigensystem(lm, lm * sqrt_f, 0.5 * eta)
    d = np.ascontiguousarray(-lm)
    tau = np.ascontiguousarray(offset)
    n = lm.size
    par = n >= PARALLEL_MIN
    project, vectors = (_project_par, _vectors_par) if par else (_project_seq, _vectors_seq)
    norm, proj = project(d, zhat, origin, tau, (em0 - estar) / sqrt_f)
    # exp(−2η ν_k α) weighted by the projections, one BLAS product per block of vectors
    weights = np.exp(-2.0 * eta * np.outer(alpha, nu)) * proj  # (A, n)
    block = n if block is None else max(1, int(block))
    em = np.zeros((alpha.size, n))
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        em += weights[:, k0:k1] @ vectors(d, zhat, origin, tau, norm, k0, k1)
    em = em * sqrt_f + estar  # (A, n)
    if starts.size == lt.size:
        out[:, mask] = em
        return out
    share = ft / fm[run]
    own = np.exp(-2.0 * eta * np.outer(alpha, lt))
    out[:, mask] = share * em[:, run] + (et - share * em0[run]) * own
    return out


# =========================================================================== setup layer
def effective_learning_rate(setup: Setup) -> float:
    """η_eff = η Σ_i v_i², the learning rate of the equivalent perceptron (module docstring)."""
    v, _ = setup.second_layer
    return float(setup.eta * np.dot(v, v))


def stability_bound(setup: Setup) -> float:
    """The largest stable η: η Σ_i v_i² < 2 / Σ_{trained} f_τ λ_τ (THEORY §4, from (L2))."""
    v, _ = setup.second_layer
    sp = setup.spectrum
    mask = setup.trained_groups
    return 2.0 / (float(np.dot(v, v)) * float(np.dot(sp.fractions[mask], sp.eigenvalues[mask])))


def _check_setup(setup: Setup, require_linear: bool = True) -> None:
    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    if require_linear and setup.activation != "linear":
        raise ValueError(
            f"activation: the exact linear theory needs activation='linear', "
            f"got {setup.activation!r}"
        )
    v, _ = setup.second_layer
    if not np.any(v):
        raise ValueError("v: the linear theory needs at least one non-zero student weight")
    bound = stability_bound(setup)
    if not setup.eta < bound:
        raise ValueError(
            f"eta: must be < {bound:.10g} (= 2/(Σ_i v_i² · Σ_trained f_τ λ_τ)) for stable "
            f"linear SGD, got {setup.eta!r}"
        )


def initial_condition(
    setup: Setup, seed: int | None = None, *, overlaps: bool = True
) -> dict[str, Array]:
    """Initial per-group errors e_τ(0) and (with ``overlaps``) overlaps q^τ(0), r^τ(0), t^τ.

    ``seed=None``: the expectation over the weight draw, q^τ = σ_J² f_τ I, r^τ = 0,
    t^τ = f_τ I, so e_τ(0) = (σ_J² Σv² + Σw²) f_τ. ``seed=int``: the draw of
    `scalex.sample_weights` / `scalex.initial_overlaps` (the start of `scalex.simulate`).

    Returns a dict with ``e`` (L,) and, with ``overlaps``, ``q`` (L, K, K), ``r`` (L, K, M)
    and ``t`` (L, M, M).
    """
    v, w = setup.second_layer
    sp = setup.spectrum
    f = sp.fractions
    if seed is None:
        out = {"e": (setup.sigma_J**2 * float(v @ v) + float(w @ w)) * f}
        if overlaps:
            out["q"] = setup.sigma_J**2 * f[:, None, None] * np.eye(setup.K)
            out["r"] = np.zeros((f.size, setup.K, setup.M))
            out["t"] = f[:, None, None] * np.eye(setup.M)
        return out
    from scalex.model.weights import initial_overlaps, sample_weights

    J, B = sample_weights(setup, seed)
    D = v @ J - w @ B  # J_eff − B_eff
    out = {"e": np.add.reduceat(D * D, sp.group_starts()) / setup.N}
    if overlaps:
        ds = initial_overlaps(setup, seed)
        out.update({name: np.asarray(ds[name].values, dtype=float) for name in ("q", "r", "t")})
        out["q"], out["r"] = out["q"][0], out["r"][0]
    return out


def _check_alpha(alpha: ArrayLike) -> Array:
    a = np.atleast_1d(np.asarray(alpha, dtype=float))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alpha: must be a non-empty 1-D sequence of times, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(np.diff(a) <= 0):
        raise ValueError("alpha: times must be finite, >= 0 and strictly increasing")
    return a


def linear_theory(
    setup: Setup,
    alpha: ArrayLike,
    *,
    seed: int | None = None,
    overlaps: bool = True,
    block: int = DEFAULT_BLOCK,
) -> xr.Dataset:
    """Exact learning curve of linear SGD (THEORY §4; (L1)–(L4) of the module docstring).

    Parameters
    ----------
    setup : a linear-activation Setup (any K, M, v, w, spectrum, trainable, noise) with
        η below `stability_bound`.
    alpha : increasing times α ≥ 0.
    seed : None for the expected initial condition over the weight draw, or an int for the
        actual draw of that seed (as in `scalex.initial_overlaps` and `scalex.simulate`).
    overlaps : also return the per-group q^τ(α), r^τ(α) of (L4) and t^τ (schema variables,
        memory A·L·K·(K+M)); False gives a reduced dataset with ``eg`` and ``e`` only (cost
        and memory then independent of K and M).
    block : see `exact_errors`.

    Returns
    -------
    Dataset (method "linear") with ``eg(alpha)``, ``e(alpha, group)`` and, with ``overlaps``,
    ``q``, ``r``, ``t`` (then it passes `scalex.schema.validate`). Attrs record
    ``initial_condition`` ("expected" or "seed"), ``seed`` (-1 for expected), ``eta_eff``,
    ``stability_bound`` and ``overlaps`` (1/0).
    """
    _check_setup(setup)
    a = _check_alpha(alpha)
    sp = setup.spectrum
    K, M = setup.K, setup.M
    if overlaps:
        size = a.size * sp.L * K * (K + M) + sp.L * M * M
        if size > MAX_OVERLAP_ELEMENTS:
            raise ValueError(
                f"overlaps: q, r and t would hold {size:.3g} floats ({8 * size / 1e9:.1f} GB) "
                f"for {a.size} times, L={sp.L}, K={K}, M={M}; pass overlaps=False "
                "(eg and e only) or fewer times"
            )
    init = initial_condition(setup, seed, overlaps=overlaps)
    eta_eff = effective_learning_rate(setup)
    e = exact_errors(sp.eigenvalues, sp.fractions, init["e"], eta_eff, a,
                     trained=setup.trained_groups, noise=setup.noise, block=block)
    eg = 0.5 * e @ sp.eigenvalues
    attrs: dict[str, Any] = {
        "initial_condition": "expected" if seed is None else "seed",
        "seed": -1 if seed is None else int(seed),
        "eta_eff": eta_eff,
        "stability_bound": stability_bound(setup),
        "overlaps": int(overlaps),
    }
    extra = {"e": (("alpha", "group"), e, {
        "long_name": "per-group error e^τ = (J_eff − B_eff) P_τ (J_eff − B_eff) / N",
        "units": "1"})}
    if overlaps:
        q, r = _overlaps(setup, init, e, a, eta_eff)
        t = init["t"]
    else:  # zero-memory placeholders, dropped below
        q = np.broadcast_to(np.nan, (a.size, sp.L, K, K))
        r = np.broadcast_to(np.nan, (a.size, sp.L, K, M))
        t = np.broadcast_to(np.nan, (sp.L, M, M))
    ds = make_dataset(setup, a, q, r, t, method="linear", eg=eg, extra=extra, attrs=attrs)
    if not overlaps:
        ds = ds.drop_vars(["q", "r", "t"])
    return ds


def _overlaps(
    setup: Setup, init: dict[str, Array], e: Array, alpha: Array, eta_eff: float
) -> tuple[Array, Array]:
    """q^τ(α), r^τ(α) of (L4) from e_τ(α) and the initial overlaps."""
    v, w = setup.second_layer
    V = float(np.dot(v, v))
    q0, r0, t = init["q"], init["r"], init["t"]
    lam = setup.spectrum.eigenvalues
    rate = np.where(setup.trained_groups, eta_eff * lam, 0.0)
    phi = np.exp(-np.outer(alpha, rate))  # (A, L)
    a_ = np.einsum("gik,k->gi", q0, v) - np.einsum("gin,n->gi", r0, w)  # (L, K)
    b_ = np.einsum("gkn,k->gn", r0, v) - np.einsum("gmn,m->gn", t, w)  # (L, M)
    e0 = init["e"]
    cross = (v[None, :, None] * a_[:, None, :] + a_[:, :, None] * v[None, None, :]) / V
    q = (q0[None] + (phi - 1.0)[:, :, None, None] * cross[None]
         + ((e - 2.0 * phi * e0 + e0) / V**2)[:, :, None, None] * np.outer(v, v))
    r = r0[None] + (phi - 1.0)[:, :, None, None] * (v[None, :, None] * b_[:, None, :] / V)[None]
    return q, r


def decay_rates(setup: Setup) -> Array:
    """The relaxation rates 2 η_eff ν_k of the trained block (eigenvalues of −A), decreasing.

    ν_k are the roots of the secular equation (L2); the last one sets the final approach.
    Groups with equal eigenvalues contribute each extra copy as the plain rate 2 η_eff λ.
    """
    _check_setup(setup, require_linear=False)
    sp = setup.spectrum
    mask = setup.trained_groups
    lt, ft = sp.eigenvalues[mask], sp.fractions[mask]
    eta = effective_learning_rate(setup)
    starts, _ = _merge_equal(lt)
    lm, fm = lt[starts], np.add.reduceat(ft, starts)
    nu, *_ = secular_eigensystem(lm, lm * np.sqrt(fm), 0.5 * eta)
    dup = np.setdiff1d(np.arange(lt.size), starts)
    return np.sort(2.0 * eta * np.concatenate([nu, lt[dup]]))[::-1]


# =========================================================================== scaling laws
@dataclass(frozen=True)
class LinearAsymptotics:
    """Leading-order scaling laws of the linear learning curve (module docstring).

    Attributes
    ----------
    beta : spectrum exponent β (exact for a power-law Setup, fitted otherwise).
    exponent : β/(1+β), the decay exponent of ε_g in α.
    prefactor : A in ε_g ≈ A α^{−β/(1+β)}.
    offset : the finite-spectrum correction: inside the window ε_g ≈ A α^{−β/(1+β)} − offset,
        where offset = E0 a x_end^{−β} / (2β(1 − h)) is the part of the continuum integral
        beyond the last eigenvalue (x_end = 1 + f_L/2, midpoint rule). It matters for small β
        and assumes the power law holds down to the last eigenvalue.
    window : (1/(2η_eff λ_first), 1/(2η_eff λ_last)) over the trained groups of the fitted
        range (all trained groups for a power-law Setup): the laws need α well inside.
    saturation : the exact ε_g(α → ∞) (0 when all groups train and s = 0).
    saturation_coefficient : c in ε_∞ ≈ c N_l^{−β} (leading order in η and 1/N_l).
    amplitude : a in λ(x) ≈ a x^{−(1+β)}, x = coordinate rank / N.
    eta_eff : η Σ v².
    initial_error : E0 = σ_J² Σv² + Σw², the expected Σ_τ e_τ(0).
    N, L : input dimension and number of groups (for the finite-size corrections).
    """

    beta: float
    exponent: float
    prefactor: float
    offset: float
    window: tuple[float, float]
    saturation: float
    saturation_coefficient: float
    amplitude: float
    eta_eff: float
    initial_error: float
    N: int
    L: int

    def power_law(self, alpha: ArrayLike) -> Array:
        """A α^{−β/(1+β)}."""
        return self.prefactor * np.asarray(alpha, dtype=float) ** (-self.exponent)

    def curve(self, alpha: ArrayLike, finite_size: bool = False) -> Array:
        """max(A α^{−β/(1+β)}, ε_∞): the power law floored by the saturation level;
        ``finite_size`` subtracts ``offset`` from the power law first."""
        law = self.power_law(alpha) - (self.offset if finite_size else 0.0)
        return np.maximum(law, self.saturation)

    def saturation_law(self, n_trainable: ArrayLike, finite_size: bool = False) -> Array:
        """c N_l^{−β}, the leading-order saturation level for N_l trained coordinates.

        ``finite_size``: c ((N_l + m/2)^{−β} − (N + m/2)^{−β}) with m = N/L, the tail sum
        Σ_{τ>N_l} of a spectrum that ends at N (midpoint rule).
        """
        n = np.asarray(n_trainable, dtype=float)
        if not finite_size:
            return self.saturation_coefficient * n ** (-self.beta)
        half = 0.5 * self.N / self.L
        return self.saturation_coefficient * ((n + half) ** (-self.beta)
                                              - (self.N + half) ** (-self.beta))


def _spectral_fit(setup: Setup, beta: float | None, fit_range: tuple[int, int] | None):
    """(β, a) of λ(x) ≈ a x^{−(1+β)} with x_τ = (coordinates in groups 1..τ)/N."""
    sp = setup.spectrum
    x = np.cumsum(sp.multiplicities) / sp.N
    lam = sp.eigenvalues
    if setup.eigenvalues is None and beta is None and fit_range is None:
        return setup.beta, float(lam[0] * sp.L ** (-(1.0 + setup.beta)))
    lo, hi = (1, sp.L) if fit_range is None else fit_range
    if not (1 <= lo < hi <= sp.L):
        raise ValueError(f"fit_range: must satisfy 1 <= lo < hi <= L={sp.L}, got {fit_range}")
    xs, ls = np.log(x[lo - 1 : hi]), np.log(lam[lo - 1 : hi])
    if beta is None:
        slope, _ = np.polyfit(xs, ls, 1)
        beta = -slope - 1.0
        if not beta > 0:
            raise ValueError(
                f"fit_range: the fitted spectrum exponent β = {beta:.3g} is not > 0; pass beta "
                "or a fit_range where the spectrum decays faster than 1/x"
            )
    elif not beta > 0:
        raise ValueError(f"beta: must be > 0, got {beta!r}")
    log_a = float(np.mean(ls + (1.0 + beta) * xs))
    return float(beta), float(np.exp(log_a))


def asymptotics(
    setup: Setup, *, beta: float | None = None, fit_range: tuple[int, int] | None = None
) -> LinearAsymptotics:
    """Power-law exponent, prefactor, validity window and saturation level (THEORY §4).

    ε_g ≈ A α^{−β/(1+β)} with A = E0 a Γ(β/(1+β)) (2η_eff a)^{−β/(1+β)} / (2(1+β)(1−h)) in the
    window 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained), and ε_∞ (exact fixed point of (L1))
    ≈ (E0 a N^β / 2β) N_l^{−β} (module docstring). Uses the expected initial condition.
    The 1/(1−h) factor is reached only late in the window when h is not small.

    For a power-law Setup, β and a are exact; for explicit (e.g. empirical) eigenvalues β is
    fitted on the groups ``fit_range`` (1-based, inclusive; default all) unless given.
    The exponent is also the expected late-time exponent of erf networks (THEORY §5); the
    other numbers assume linear activation.
    """
    _check_setup(setup, require_linear=False)
    b, a = _spectral_fit(setup, beta, fit_range)
    sp = setup.spectrum
    v, w = setup.second_layer
    eta = effective_learning_rate(setup)
    mask = setup.trained_groups
    lam, f = sp.eigenvalues, sp.fractions
    e0 = initial_condition(setup, None)["e"]
    E0 = float(setup.sigma_J**2 * np.dot(v, v) + np.dot(w, w))
    h = 0.5 * eta * float(np.dot(lam[mask], f[mask]))
    forcing = float(np.dot(lam[~mask], e0[~mask])) + setup.noise**2
    x = b / (1.0 + b)
    A = E0 * a * _gamma(x) * (2.0 * eta * a) ** (-x) / (2.0 * (1.0 + b) * (1.0 - h))
    x_end = 1.0 + 0.5 * f[-1]
    ranks = np.flatnonzero(mask) + 1
    if fit_range is not None:
        ranks = ranks[(ranks >= fit_range[0]) & (ranks <= fit_range[1])]
        if ranks.size == 0:
            ranks = np.flatnonzero(mask)[-1:] + 1
    return LinearAsymptotics(
        beta=b,
        exponent=x,
        prefactor=float(A),
        offset=float(E0 * a * x_end ** (-b) / (2.0 * b * (1.0 - h))),
        window=(float(1.0 / (2.0 * eta * lam[ranks[0] - 1])),
                float(1.0 / (2.0 * eta * lam[ranks[-1] - 1]))),
        saturation=0.5 * (forcing / (1.0 - h) - setup.noise**2),
        saturation_coefficient=0.5 * E0 * a * sp.N**b / b,
        amplitude=a,
        eta_eff=eta,
        initial_error=E0,
        N=sp.N,
        L=sp.L,
    )


def asymptotic_curve(
    setup: Setup,
    alpha: ArrayLike,
    *,
    saturation: bool = True,
    finite_size: bool = False,
    **kwargs: Any,
) -> xr.DataArray:
    """The asymptotic ε_g(α) on an α grid, for overlays.

    A α^{−β/(1+β)} (minus `LinearAsymptotics.offset` if ``finite_size``), floored by the
    saturation level ε_∞ if ``saturation``. ``kwargs`` (beta, fit_range) go to `asymptotics`.
    The attrs carry exponent, prefactor, offset, window and saturation.
    """
    asym = asymptotics(setup, **kwargs)
    a = _check_alpha(alpha)
    law = asym.power_law(a) - (asym.offset if finite_size else 0.0)
    vals = np.maximum(law, asym.saturation) if saturation else law
    desc = "A α^(−β/(1+β))" + (" − offset" if finite_size else "")
    return xr.DataArray(
        vals, dims="alpha", coords={"alpha": a}, name="eg_asymptotic",
        attrs={"long_name": f"asymptotic generalisation error {desc}"
                            + (", floored by ε_∞" if saturation else ""),
               "units": "1", "exponent": asym.exponent, "prefactor": asym.prefactor,
               "offset": asym.offset, "beta": asym.beta, "window": np.asarray(asym.window),
               "saturation": asym.saturation},
    )


# =========================================================================== real-data SGD
def sgd_real_data(
    inputs: ArrayLike,
    setup: Setup,
    alpha: ArrayLike,
    *,
    seeds: Any = range(4),
    block: int = 1 << 16,
) -> xr.Dataset:
    """Linear K = M = 1 online SGD driven by given input vectors (e.g. real data).

    Every step draws one row of ``inputs`` uniformly with replacement (data stream of
    `scalex.weights.rng_streams`; then the label noise ε if s > 0) and applies the update of
    THEORY §1 with g(x) = x. The rows must be in the eigenbasis of their covariance with column
    variances equal to ``setup.spectrum`` (see `scalex.datasets.EigenData`), so that the exact
    error over the empirical distribution is ε_g = ½ Σ_k λ_k (v J_k − w B_k)²/N. Initial weights
    are `scalex.sample_weights(setup, seed)`, so `linear_theory(setup, alpha, seed=seed)`
    starts from the same point; what differs is only the non-Gaussian input distribution and
    finite N.

    Returns a schema Dataset (method "sgd_real_data") with dims (seed, alpha, ...).
    """
    from scalex.model.weights import rng_streams, sample_weights

    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    if setup.K != 1 or setup.M != 1 or setup.activation != "linear":
        raise ValueError("setup: sgd_real_data needs K = M = 1 and activation='linear'")
    X = np.ascontiguousarray(inputs, dtype=float)
    if X.ndim != 2 or X.shape[1] != setup.N or X.shape[0] < 2:
        raise ValueError(
            f"inputs: must be a (samples, N={setup.N}) array with >= 2 rows, got {X.shape}"
        )
    steps = np.rint(_check_alpha(alpha) * setup.N).astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise ValueError(
            f"alpha: times must be distinct after rounding to steps of 1/N = {1 / setup.N:.3g}"
        )
    seed_list = [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds: must be distinct integers >= 0, got {seed_list}")
    sp = setup.spectrum
    lam = sp.diagonal()
    v, w = (float(x[0]) for x in setup.second_layer)
    N, A, L = setup.N, steps.size, sp.L
    starts = sp.group_starts()
    dsets = []
    for seed in seed_list:
        J, B = (x[0].copy() for x in sample_weights(setup, seed))
        t = np.add.reduceat(B * B, starts)[:, None, None] / N
        q = np.empty((A, L, 1, 1))
        r = np.empty((A, L, 1, 1))
        eg = np.empty(A)
        data = rng_streams(seed)[2]
        done = 0
        for a_i, target in enumerate(steps):
            while done < target:
                n = int(min(block, target - done))
                idx = data.integers(0, X.shape[0], size=n)
                eps = data.standard_normal(n) if setup.noise else np.zeros(n)
                _sgd_linear(J, B, X, idx, eps, v, w, setup.eta, setup.noise, setup.n_trainable)
                done += n
            q[a_i, :, 0, 0] = np.add.reduceat(J * J, starts) / N
            r[a_i, :, 0, 0] = np.add.reduceat(J * B, starts) / N
            eg[a_i] = 0.5 * float(np.dot(lam, (v * J - w * B) ** 2)) / N
        dsets.append(make_dataset(setup, steps / N, q, r, t, method="sgd_real_data", eg=eg,
                                  attrs={"n_samples": X.shape[0]}))
    out = xr.concat(dsets, dim="seed", data_vars="all", coords="minimal", compat="override",
                    join="override", combine_attrs="override")
    out = out.assign_coords(seed=("seed", seed_list), step=("alpha", steps))
    out["seed"].attrs.update(long_name="random seed of the weight draw and the SGD inputs",
                             units="1")
    out["t"] = out["t"].transpose("seed", ...)
    return out
