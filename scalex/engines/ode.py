"""Per-eigenvalue-group order-parameter ODEs (THEORY §3), exact as N → ∞.

Two layers:

* kernels on plain arrays: `derivatives` (the right-hand side of THEORY §3 for all groups at
  once), `field_moments` (s_ia and E[F_i F_j] of a field covariance, compiled for erf),
  `group_rates` (the per-group contraction), the packed and augmented system `AugmentedSystem`
  with its arrowhead Jacobian `ArrowheadMatrix`, and `ArrowheadBDF`, scipy's BDF with a
  block-elimination linear solver;
* `solve_ode`, which integrates from the initial overlaps of a seed and returns a schema
  Dataset (`scalex.schema.make_dataset`).

Integrator design
-----------------
Per trained group τ the state is x_τ = (upper triangle of q^τ, r^τ): p = K(K+1)/2 + KM numbers
(q^τ is symmetric, so only its upper triangle is integrated; t^τ is constant). The groups see
each other only through the field covariance C, whose free entries y = (upper triangle of Q, R)
are m = p numbers. The right-hand side has the form

    f_τ = η λ_τ [A(s) x_τ + b_τ(s, E)],     s = s_ia(C), E = E[F_i F_j](C)   (THEORY §3)

with one p × p matrix A, linear in s, shared by all groups. The system is stiff: its fastest
rate is ~ηλ_1 ∝ L (mean normalisation), its slowest ~ηλ_L, and runs span six or more decades
of α. An explicit method needs O(ηλ_1 α_max) steps; an implicit one a number of steps set by
how the solution changes, nearly independent of L, but it needs the Jacobian. For the plain
state that Jacobian is block diagonal plus a rank-m coupling: dense. So the state is AUGMENTED
with y itself, dy/dα = Σ_σ λ_σ f_σ(x_σ, y), and every f_τ takes its fields from y. The exact
solution is unchanged (y − Σ_σ λ_σ x_σ is a linear invariant, which BDF preserves to round-off),
and the Jacobian becomes an arrowhead:

    ∂f_τ/∂x_τ = η λ_τ A          exact: f_τ is linear in x_τ at fixed y
    ∂f_τ/∂y   = D_τ              f_τ is linear in (s, E), so D_τ = rates(x_τ; ∂s/∂y_k, ∂E/∂y_k),
                                 with ∂s/∂y_k, ∂E/∂y_k by central differences (2m moments)
    ∂ẏ/∂x_σ   = λ_σ η λ_σ A      ∂ẏ/∂y = Σ_σ λ_σ D_σ

`ArrowheadBDF` solves the Newton systems (I − cJ)δ = b by block elimination: G inverses of
p × p blocks and one m × m Schur complement per factorisation, O(G p³); O(G p (p + m)) per
solve. The same Jacobian can go as a CSC matrix (nnz = G(p² + 2pm) + m²) to scipy's own BDF or
Radau (``method="BDF"``/``"Radau"``), which factorise it with SuperLU. Measured on the Fig. 1
setup (benchmarks/ode_results.md): block elimination takes the same steps as SuperLU-BDF and
was 2–3× faster at L = 1024; Radau needed twice the evaluations and complex LUs (8× slower);
integrating in u = ln(α + α₀) (``log_time=True``) saved ~5 % of the steps but made ε_g
5–10× less accurate at the same rtol, so plain α is the default. The cost grows from ~0.05 s
(L = 1) to ~0.25 s (L = 1024), and is ~600× below a fixed-step RK4 (dt = 0.01) of equal accuracy.

For very large K the G p² Jacobian entries do not fit (``MAX_JACOBIAN_NNZ``) and
``method="auto"`` uses the explicit DOP853 on the plain (non-augmented) state instead. Its
step is then stability-limited (~ηλ_1), so its cost grows ∝ α_max, and its errors are larger
than BDF's at the same rtol (use rtol ≲ 1e-8 there).

Accuracy: the error of the overlaps is ~rtol · |overlap|, so ε_g, a small difference of
overlaps late in training, has relative errors ~10–50 × rtol while ε_g > 1e-4 max ε_g and
larger below. A plateau exit amplifies errors of the small symmetry-breaking components
(~ rtol · |q| / asymmetry): near it the error reached ~500 × rtol for L = 1. Tighten rtol to time
escapes precisely.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import scipy.sparse as sparse
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import BDF, solve_ivp

from scalex.model.integrals import (
    J2,
    coefficients,
    field_covariance,
    stein_coefficients,
    update_second_moment,
)
from scalex.model.setup import Setup
from scalex.numerics.threads import single_threaded_blas as _single_threaded_blas

__all__ = [
    "DIVERGENCE_BOUND",
    "METHODS",
    "ArrowheadBDF",
    "ArrowheadMatrix",
    "AugmentedSystem",
    "derivatives",
    "field_moments",
    "group_rates",
    "solve_ode",
]

Array = NDArray[np.float64]

#: |Q_ij| or |R_in| beyond which a run counts as diverged.
DIVERGENCE_BOUND = 1e6
#: Largest arrowhead Jacobian (stored entries) for which ``method="auto"`` stays implicit
#: (the block elimination keeps ~4/3 of this many doubles).
MAX_JACOBIAN_NNZ = 15_000_000
#: Largest p for which the right-hand side applies the packed p × p map A (one BLAS product
#: over all groups) instead of per-group K × (K+M) products.
PACKED_MAP_MAX_P = 64
#: Largest p for which `ArrowheadMatrix.factorize` inverts the blocks in a compiled loop.
SMALL_BLOCK_P = 16
#: Methods that integrate the augmented state with the structured Jacobian.
IMPLICIT = ("arrowhead", "BDF", "Radau", "LSODA")
EXPLICIT = ("RK45", "DOP853", "RK23")
METHODS = ("auto", *IMPLICIT, *EXPLICIT)


# --------------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _erf_moments(C: Array, v: Array, c: Array, noise2: float) -> tuple[Array, Array]:
    """s_ia and E_ij for g = erf(·/√2) for a batch C (B, n, n) of covariances (THEORY §3).

    Closed forms J2, I3, I4 of THEORY §3; E uses I4(i,j,c,d) = I4(j,i,c,d) = I4(i,j,d,c), so it
    costs K(K+1)/2 · n(n+1)/2 arcsines. ``noise2`` = s² adds s² v_i v_j J2(i, j) to E.
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


def field_moments(
    C: ArrayLike,
    v: ArrayLike,
    w: ArrayLike,
    activation: str = "erf",
    noise: float = 0.0,
) -> tuple[Array, Array]:
    """s_ia = E[∂F_i/∂h_a] and the update second moment of THEORY §3, batched over leading axes.

    Returns ``(s, E)``, s of shape (..., K, K+M) and E_ij = E[F_i F_j] + s² v_i v_j J2(i, j)
    (shape (..., K, K); the last term is the teacher-noise part, s = ``noise``). The same numbers
    as `scalex.integrals.stein_coefficients` and `scalex.integrals.update_second_moment`; erf
    runs through a compiled kernel.
    """
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    w = np.asarray(w, dtype=float)
    K, n = v.shape[0], C.shape[-1]
    if activation == "erf":
        flat = np.ascontiguousarray(C.reshape((-1, n, n)))
        s, E = _erf_moments(flat, v, coefficients(v, w), float(noise) ** 2)
        return s.reshape((*C.shape[:-2], K, n)), E.reshape((*C.shape[:-2], K, K))
    s = stein_coefficients(C, v, w, activation)
    E = update_second_moment(C, v, w, activation)
    if noise:
        E = E + noise**2 * np.outer(v, v) * J2(C, activation)[..., :K, :K]
    return s, E


def group_rates(
    q: Array,
    r: Array,
    t: Array | None,
    s: Array,
    E: Array | None,
    lam: ArrayLike,
    frac: ArrayLike,
    eta: float,
) -> tuple[Array, Array]:
    """dq^τ/dα and dr^τ/dα of THEORY §3 from given s and E (the per-group part).

        dq^τ = η λ_τ (q^τ s_Qᵀ + s_Q q^τ + r^τ s_Rᵀ + s_R r^τᵀ) + η² λ_τ f_τ E
        dr^τ = η λ_τ (s_Q r^τ + s_R t^τ)

    where s = [s_Q, s_R] splits the Stein coefficients into student and teacher columns: the
    first line is Σ_a G^τ_ja s_ia + (i ↔ j), the second Σ_a H^τ_na s_ia. Linear in (q, r, t) at
    fixed (s, E) and linear in (s, E) at fixed overlaps; ``t=None`` or ``E=None`` drop those
    terms. Leading axes broadcast (the group axis is -3 of q, r, t; ``lam``, ``frac`` are
    indexed like it).
    """
    K = q.shape[-1]
    sQ, sR = s[..., :K], s[..., K:]
    Gs = q @ np.swapaxes(sQ, -1, -2) + r @ np.swapaxes(sR, -1, -2)
    scale = eta * np.asarray(lam)[..., None, None]
    dq = scale * (Gs + np.swapaxes(Gs, -1, -2))
    Hs = sQ @ r
    if t is not None:
        Hs = Hs + sR @ t
    dr = scale * Hs
    if E is not None:
        dq = dq + (eta**2 * np.asarray(lam) * np.asarray(frac))[..., None, None] * E
    return dq, dr


def derivatives(
    q: ArrayLike,
    r: ArrayLike,
    t: ArrayLike,
    eigenvalues: ArrayLike,
    fractions: ArrayLike,
    v: ArrayLike,
    w: ArrayLike,
    eta: float,
    activation: str = "erf",
    noise: float = 0.0,
    trained: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """dq^τ/dα and dr^τ/dα of THEORY §3 for all groups at once.

    With C = [[Q, R], [Rᵀ, T]] (Q = Σ_τ λ_τ q^τ, ...), s_ia = E[∂F_i/∂h_a] and
    G^τ = [q^τ, r^τ] (K × (K+M)), H^τ = [r^τᵀ, t^τ] (M × (K+M)):

        dq^τ_ij/dα = η λ_τ (Σ_a G^τ_ja s_ia + Σ_a G^τ_ia s_ja)
                     + η² λ_τ f_τ (E[F_i F_j] + s² v_i v_j J2(i,j))
        dr^τ_in/dα = η λ_τ Σ_a H^τ_na s_ia

    with f_τ = N_τ/N and s the teacher-noise std. Groups with ``trained[τ] = False`` do not move.

    Parameters
    ----------
    q, r, t : (L, K, K), (L, K, M), (L, M, M) per-group overlaps.
    eigenvalues, fractions : (L,) λ_τ and N_τ/N.
    v, w : (K,), (M,) second-layer weights.
    trained : optional (L,) bool mask.

    Returns
    -------
    (dq, dr) with the shapes of q and r; dq is exactly symmetric.
    """
    q = np.asarray(q, dtype=float)
    r = np.asarray(r, dtype=float)
    t = np.asarray(t, dtype=float)
    lam = np.asarray(eigenvalues, dtype=float)
    frac = np.asarray(fractions, dtype=float)

    Q = np.einsum("g,gij->ij", lam, q)
    R = np.einsum("g,gin->in", lam, r)
    T = np.einsum("g,gnm->nm", lam, t)
    s, E = field_moments(field_covariance(Q, R, T), v, w, activation, noise)
    dq, dr = group_rates(q, r, t, s, E, lam, frac, eta)
    if trained is not None:
        mask = np.asarray(trained, dtype=bool)[:, None, None]
        dq = np.where(mask, dq, 0.0)
        dr = np.where(mask, dr, 0.0)
    return dq, dr


# --------------------------------------------------------------------------- packed system
@dataclass
class AugmentedSystem:
    """The ODEs of THEORY §3 on a packed state, with the Jacobian of the module docstring.

    State ``z = (x_1, …, x_G, y)`` for the G trained groups, x_τ = (q^τ[triu], r^τ.ravel()),
    and, if ``augmented``, y = (Q[triu], R.ravel()); otherwise z = x and the fields are summed
    from x. Frozen groups enter only through their constant share of C.
    """

    q0: Array  # (L, K, K) initial overlaps of all groups
    r0: Array  # (L, K, M)
    t: Array  # (L, M, M)
    eigenvalues: Array
    fractions: Array
    v: Array
    w: Array
    eta: float
    activation: str = "erf"
    noise: float = 0.0
    trained: NDArray[np.bool_] | None = None
    augmented: bool = True
    fd_step: float = 1e-6
    counts: dict[str, int] = field(default_factory=lambda: {"moments": 0})

    def __post_init__(self) -> None:
        self.q0, self.r0, self.t = (np.asarray(x, dtype=float) for x in (self.q0, self.r0, self.t))
        self.eigenvalues = np.asarray(self.eigenvalues, dtype=float)
        self.fractions = np.asarray(self.fractions, dtype=float)
        self.v = np.asarray(self.v, dtype=float)
        self.w = np.asarray(self.w, dtype=float)
        L, K, M = self.r0.shape
        self.L, self.K, self.M = L, K, M
        mask = np.ones(L, bool) if self.trained is None else np.asarray(self.trained, bool)
        self.trained = mask
        self.iu = np.triu_indices(K)
        self.nq = K * (K + 1) // 2
        self.p = self.m = self.nq + K * M
        self.G = int(mask.sum())
        self.n = self.G * self.p + (self.m if self.augmented else 0)
        self.lam = self.eigenvalues[mask]
        self.frac = self.fractions[mask]
        self.t_tr = self.t[mask]
        self._t_flat = self.t_tr.transpose(1, 0, 2).reshape(M, -1)  # (M, G·M): rows m, cols (τ, n)
        lam, frozen = self.eigenvalues, ~mask
        self.T = np.einsum("g,gnm->nm", lam, self.t)
        self.y_frozen = self.pack(np.einsum("g,gij->ij", lam[frozen], self.q0[frozen]),
                                  np.einsum("g,gin->in", lam[frozen], self.r0[frozen]))
        n = K + M
        self._c = coefficients(self.v, self.w)
        self._C_base = field_covariance(np.zeros((K, K)), np.zeros((K, M)), self.T)
        # Flat positions in C of each packed field entry: (i, j) and its mirror (j, i).
        rows = np.concatenate([self.iu[0], np.repeat(np.arange(K), M)])
        cols = np.concatenate([self.iu[1], K + np.tile(np.arange(M), K)])
        self._C_pos = (rows * n + cols, cols * n + rows)
        self._A_basis: Array | None = None
        if self.p <= PACKED_MAP_MAX_P:
            # A(s) is linear in s: keep its images of the unit s-matrices, (K(K+M), p²).
            unit_s = np.eye(K * n).reshape(-1, K, n)
            self._A_basis = np.array([self._linear_map_direct(u).ravel() for u in unit_s])
        self._pattern: tuple[NDArray[np.intp], NDArray[np.int32], NDArray[np.int32]] | None = None

    # ---------------------------------------------------------------- packing
    def pack(self, q: Array, r: Array) -> Array:
        """(…, K, K), (…, K, M) → (…, p), the upper triangle of q first."""
        return np.concatenate([q[..., self.iu[0], self.iu[1]],
                               r.reshape((*r.shape[:-2], self.K * self.M))], axis=-1)

    def unpack(self, x: Array) -> tuple[Array, Array]:
        """Inverse of `pack`; q comes back exactly symmetric."""
        K, M = self.K, self.M
        q = np.empty((*x.shape[:-1], K, K))
        q[..., self.iu[0], self.iu[1]] = x[..., : self.nq]
        q[..., self.iu[1], self.iu[0]] = x[..., : self.nq]
        return q, x[..., self.nq:].reshape((*x.shape[:-1], K, M))

    def initial_state(self) -> Array:
        """z at the start, from the stored initial overlaps."""
        x = self.pack(self.q0[self.trained], self.r0[self.trained])
        if not self.augmented:
            return x.ravel()
        return np.concatenate([x.ravel(), self.y_frozen + self.lam @ x])

    def split(self, z: Array) -> tuple[Array, Array]:
        """State (n, …) → per-group x (G, p, …) and fields y (m, …)."""
        Gp = self.G * self.p
        x = z[:Gp].reshape((self.G, self.p, *z.shape[1:]))
        if self.augmented:
            return x, z[Gp:]
        y_frozen = self.y_frozen.reshape((self.m,) + (1,) * (z.ndim - 1))
        return x, y_frozen + np.einsum("g,gp...->p...", self.lam, x)

    def overlaps(self, z: Array) -> tuple[Array, Array]:
        """Per-group (q, r) of all L groups for states z (n, A): (A, L, K, K), (A, L, K, M)."""
        x, _ = self.split(z)
        A = z.shape[1]
        q = np.broadcast_to(self.q0, (A, *self.q0.shape)).copy()
        r = np.broadcast_to(self.r0, (A, *self.r0.shape)).copy()
        q[:, self.trained], r[:, self.trained] = self.unpack(np.moveaxis(x, -1, 0))
        return q, r

    def covariance(self, y: Array) -> Array:
        """C = [[Q, R], [Rᵀ, T]] from packed fields y (…, m)."""
        C = np.empty((*y.shape[:-1], *self._C_base.shape))
        C[...] = self._C_base
        flat = C.reshape((*y.shape[:-1], -1))
        flat[..., self._C_pos[0]] = y
        flat[..., self._C_pos[1]] = y
        return C

    def moments(self, y: Array) -> tuple[Array, Array]:
        """(s, E) of `field_moments` at fields y (…, m)."""
        self.counts["moments"] += int(np.prod(y.shape[:-1], dtype=np.int64))
        C = self.covariance(y)
        if self.activation != "erf":
            return field_moments(C, self.v, self.w, self.activation, self.noise)
        n = self.K + self.M
        s, E = _erf_moments(C.reshape(-1, n, n), self.v, self._c, self.noise**2)
        return s.reshape(y.shape[:-1] + s.shape[1:]), E.reshape(y.shape[:-1] + E.shape[1:])

    # ---------------------------------------------------------------- right-hand side
    def rates(self, x: Array, s: Array, E: Array | None, t: bool = True) -> Array:
        """Packed f_τ for x (…, G, p) at given (s, E): `group_rates` on the packed layout."""
        q, r = self.unpack(x)
        dq, dr = group_rates(q, r, self.t_tr if t else None, s, E, self.lam, self.frac, self.eta)
        return self.pack(dq, dr)

    def all_rates(self, x: Array, s: Array, E: Array) -> Array:
        """Packed f_τ (…, G, p) for x (G, p) and (s, E) with leading batch axes (…, K, ·)."""
        if self._A_basis is None:
            return self.rates(x, s[..., None, :, :], E[..., None, :, :])
        K, M, G = self.K, self.M, self.G
        batch = s.shape[:-2]
        # f_τ = η λ_τ (A x_τ + b_τ), b_τ = (η f_τ E[triu], s_R t^τ): a few BLAS products
        # over all groups instead of G tiny matrix products.
        lin = x @ np.swapaxes(self.linear_map(s), -1, -2)
        lin[..., : self.nq] += (self.eta * self.frac)[:, None] * E[..., None, *self.iu]
        sRt = (s[..., K:] @ self._t_flat).reshape((*batch, K, G, M))
        lin[..., self.nq:] += np.moveaxis(sRt, -3, -2).reshape((*batch, G, K * M))
        return (self.eta * self.lam)[:, None] * lin

    def rhs(self, z: Array) -> Array:
        """dz/dα (THEORY §3); for the augmented state dy/dα = Σ_τ λ_τ f_τ."""
        x, y = self.split(z)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, E = self.moments(y)
            f = self.all_rates(x, s, E)
        if not self.augmented:
            return f.ravel()
        return np.concatenate([f.ravel(), self.lam @ f])

    # ---------------------------------------------------------------- Jacobian
    def _linear_map_direct(self, s: Array) -> Array:
        q, r = self.unpack(np.eye(self.p))
        dq, dr = group_rates(q, r, None, s, None, np.ones(1), np.ones(1), 1.0)
        return self.pack(dq, dr).T

    def linear_map(self, s: Array) -> Array:
        """A (…, p, p), the map x_τ ↦ (f_τ/(η λ_τ) − b_τ); linear in s, batched over s."""
        if self._A_basis is not None:
            flat = s.reshape((*s.shape[:-2], -1)) @ self._A_basis
            return flat.reshape((*s.shape[:-2], self.p, self.p))
        maps = [self._linear_map_direct(si) for si in s.reshape((-1, *s.shape[-2:]))]
        return np.array(maps).reshape((*s.shape[:-2], self.p, self.p))

    def border(self, x: Array, y: Array) -> Array:
        """D_τ = ∂f_τ/∂y (G, p, m) by central differences of (s, E) in y."""
        h = self.fd_step * np.maximum(1.0, np.abs(y))
        shifts = np.diag(h)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, E = self.moments(np.concatenate([y + shifts, y - shifts]))
        ds = (s[: self.m] - s[self.m:]) / (2 * h)[:, None, None]
        dE = (E[: self.m] - E[self.m:]) / (2 * h)[:, None, None]
        # f_τ is linear in (s, E): its derivative along y_k is the rate at (∂s/∂y_k, ∂E/∂y_k).
        return np.moveaxis(self.all_rates(x, ds, dE), 0, -1)

    def jacobian_blocks(self, z: Array) -> tuple[Array, Array]:
        """(A, D): the shared linear map and the border blocks at state z."""
        x, y = self.split(z)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, _ = self.moments(y)
        return self.linear_map(s), self.border(x, y)

    def arrowhead(self, z: Array, scale: float = 1.0) -> ArrowheadMatrix:
        """scale · ∂(dz/dα)/∂z as an `ArrowheadMatrix` (augmented state only).

        ∂f_τ/∂x_τ = β_τ A with β_τ = scale · η λ_τ, ∂ẏ/∂x_τ = λ_τ β_τ A, ∂f_τ/∂y = D_τ and
        ∂ẏ/∂y = Σ_τ λ_τ D_τ (module docstring).
        """
        if not self.augmented:
            raise ValueError("augmented: the structured Jacobian needs the augmented state")
        A, D = self.jacobian_blocks(z)
        D = scale * D
        return ArrowheadMatrix(A, scale * self.eta * self.lam, self.lam, D,
                               np.einsum("g,gpm->pm", self.lam, D))

    def _sparsity(self) -> tuple[NDArray[np.intp], NDArray[np.int32], NDArray[np.int32]]:
        """CSC (order, indices, indptr) of the arrowhead pattern; data order as in `jacobian`."""
        if self._pattern is None:
            G, p, m, Gp = self.G, self.p, self.m, self.G * self.p
            g = np.arange(G)[:, None, None] * p
            ip, jp = np.arange(p)[:, None], np.arange(p)[None, :]
            im, jm = np.arange(m)[:, None], np.arange(m)[None, :]
            blocks = [(g + ip, g + jp),            # ∂f_τ/∂x_τ  (G, p, p)
                      (g + ip, Gp + jm),           # ∂f_τ/∂y    (G, p, m)
                      (Gp + im + 0 * g, g + jp),   # ∂ẏ/∂x_τ    (G, m, p)
                      (Gp + im, Gp + jm)]          # ∂ẏ/∂y      (m, m)
            rows = np.concatenate([np.broadcast_arrays(r, c)[0].ravel() for r, c in blocks])
            cols = np.concatenate([np.broadcast_arrays(r, c)[1].ravel() for r, c in blocks])
            order = np.lexsort((rows, cols))
            indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=self.n))])
            self._pattern = (order, rows[order].astype(np.int32), indptr.astype(np.int32))
        return self._pattern

    def jacobian(self, z: Array, scale: float = 1.0) -> sparse.csc_matrix:
        """scale · ∂(dz/dα)/∂z as a CSC matrix with the arrowhead pattern (augmented state only)."""
        J = self.arrowhead(z, scale)
        B = J.beta[:, None, None] * J.A
        U = J.lam[:, None, None] * B
        data = np.concatenate([B.ravel(), J.D.ravel(), U.ravel(), J.E.ravel()])
        order, indices, indptr = self._sparsity()
        return sparse.csc_matrix((data[order], indices, indptr), shape=(self.n, self.n))

    def jacobian_nnz(self) -> int:
        """Stored entries of the arrowhead Jacobian, G(p² + 2pm) + m²."""
        return self.G * (self.p**2 + 2 * self.p * self.m) + self.m**2


# --------------------------------------------------------------------------- structured BDF
class ArrowheadMatrix:
    """shift · I + coef · J for the arrowhead Jacobian of `AugmentedSystem`,

        J = [[blockdiag(β_τ A), D], [(λ_τ β_τ A)_τ, E]],

    with A (p, p) shared by all groups, β, λ (G,), D (G, p, m) and E (m, m). Supports the
    arithmetic that scipy's BDF applies to its Jacobian (``c * J``, ``I - c * J``) and `factorize`.
    """

    __array_ufunc__ = None  # make numpy scalars defer to __rmul__

    def __init__(self, A: Array, beta: Array, lam: Array, D: Array, E: Array,
                 shift: float = 0.0, coef: float = 1.0) -> None:
        self.A, self.beta, self.lam, self.D, self.E = A, beta, lam, D, E
        self.shift, self.coef = shift, coef
        G, p, m = D.shape
        if A.shape != (p, p) or E.shape != (m, m) or m != p or beta.shape != lam.shape != (G,):
            raise ValueError("ArrowheadMatrix: needs A (p, p), beta and lam (G,), D (G, p, p) "
                             "and E (p, p)")
        self.shape = (G * p + m, G * p + m)

    def _with(self, shift: float, coef: float) -> ArrowheadMatrix:
        return ArrowheadMatrix(self.A, self.beta, self.lam, self.D, self.E, shift, coef)

    def __mul__(self, c: float) -> ArrowheadMatrix:
        return self._with(self.shift * c, self.coef * c)

    __rmul__ = __mul__

    def toarray(self) -> Array:
        """Dense form (for tests and small systems)."""
        G, p, _ = self.D.shape
        out = np.zeros(self.shape)
        for g in range(G):
            sl = slice(g * p, (g + 1) * p)
            out[sl, sl] = self.beta[g] * self.A
            out[sl, G * p:] = self.D[g]
            out[G * p:, sl] = self.lam[g] * self.beta[g] * self.A
        out[G * p:, G * p:] = self.E
        return self.shift * np.eye(self.shape[0]) + self.coef * out

    def factorize(self) -> ArrowheadLU:
        """Block elimination of σI + cJ.

        P_τ = (σI + cβ_τ A)⁻¹ per group; since the bottom blocks are λ_τ β_τ A, the Schur
        complement is S = σI + cE − c² A Σ_τ λ_τ β_τ P_τ D_τ (one sum, then one product with A).
        """
        sigma, c = self.shift, self.coef
        p, m = self.A.shape[0], self.E.shape[0]
        weights = self.lam * self.beta
        if p <= SMALL_BLOCK_P and np.all(np.isfinite(self.A)) and np.all(np.isfinite(self.D)):
            # Many tiny blocks: one compiled pass beats batched LAPACK calls.
            P, PD, WPD, ok = _small_block_factor(self.A, c * self.beta, self.D, sigma, weights)
            if not ok:  # a (numerically) singular block: take the careful route
                P = _inverse(sigma * np.eye(p) + (c * self.beta)[:, None, None] * self.A)
                PD = P @ self.D
                WPD = np.einsum("g,gpm->pm", weights, PD)
        else:
            blocks = (c * self.beta)[:, None, None] * self.A
            blocks[:, np.arange(p), np.arange(p)] += sigma
            P = _inverse(blocks)
            PD = P @ self.D
            WPD = np.einsum("g,gpm->pm", weights, PD)
        S = c * self.E - (c * c) * (self.A @ WPD)
        S[np.arange(m), np.arange(m)] += sigma
        return ArrowheadLU(P, PD, weights, c * self.A, _inverse(S), c)


@numba.njit(cache=True)
def _small_block_factor(A: Array, cbeta: Array, D: Array, sigma: float, w: Array
                        ) -> tuple[Array, Array, Array, bool]:
    """P_τ = (σI + cβ_τ A)⁻¹ by Gauss–Jordan with partial pivoting, P_τ D_τ and Σ_τ w_τ P_τ D_τ.

    ``ok`` is False if a pivot is tiny relative to its block (then the caller falls back).
    """
    G, p, m = D.shape
    P = np.empty((G, p, p))
    PD = np.empty((G, p, m))
    WPD = np.zeros((p, m))
    work = np.empty((p, 2 * p))
    for g in range(G):
        scale = 0.0
        for i in range(p):
            for j in range(p):
                work[i, j] = cbeta[g] * A[i, j] + (sigma if i == j else 0.0)
                work[i, p + j] = 1.0 if i == j else 0.0
                scale = max(scale, abs(work[i, j]))
        for col in range(p):
            piv = col
            for i in range(col + 1, p):
                if abs(work[i, col]) > abs(work[piv, col]):
                    piv = i
            if abs(work[piv, col]) <= 1e-13 * scale:
                return P, PD, WPD, False
            if piv != col:
                for j in range(2 * p):
                    work[col, j], work[piv, j] = work[piv, j], work[col, j]
            inv = 1.0 / work[col, col]
            for j in range(2 * p):
                work[col, j] *= inv
            for i in range(p):
                if i != col:
                    f = work[i, col]
                    if f != 0.0:
                        for j in range(2 * p):
                            work[i, j] -= f * work[col, j]
        for i in range(p):
            for j in range(p):
                P[g, i, j] = work[i, p + j]
        for i in range(p):
            for k in range(m):
                acc = 0.0
                for j in range(p):
                    acc += P[g, i, j] * D[g, j, k]
                PD[g, i, k] = acc
                WPD[i, k] += w[g] * acc
    return P, PD, WPD, True


def _inverse(M: Array) -> Array:
    """Batched inverse; a singular Newton matrix (rare) gets its pseudo-inverse instead, and a
    non-finite one (a blown-up state) NaNs, which make BDF reject the step rather than raise."""
    if not np.all(np.isfinite(M)):
        return np.full_like(M, np.nan)
    try:
        return np.linalg.inv(M)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(M)


class _ArrowheadIdentity:
    """The identity of scipy's BDF, so that ``I - c * J`` stays an `ArrowheadMatrix`."""

    def __sub__(self, other: ArrowheadMatrix) -> ArrowheadMatrix:
        return other._with(1.0 - other.shift, -other.coef)


@numba.njit(cache=True)
def _arrowhead_solve(P: Array, PD: Array, w: Array, cA: Array, S_inv: Array, c: float,
                     b: Array) -> Array:
    """Back-substitution of `ArrowheadMatrix.factorize`.

    u_τ = P_τ b_τ,  y = S⁻¹ (b_y − cA Σ_τ w_τ u_τ)  (w_τ = λ_τ β_τ),  x_τ = u_τ − c P_τ D_τ y.
    """
    G, p, m = PD.shape
    out = np.empty_like(b)
    acc_u = np.zeros(p)
    for g in range(G):
        o = g * p
        for k in range(p):
            acc = 0.0
            for j in range(p):
                acc += P[g, k, j] * b[o + j]
            out[o + k] = acc
            acc_u[k] += w[g] * acc
    y = S_inv @ (b[G * p:] - cA @ acc_u)
    for g in range(G):
        o = g * p
        for k in range(p):
            acc = 0.0
            for i in range(m):
                acc += PD[g, k, i] * y[i]
            out[o + k] -= c * acc
    out[G * p:] = y
    return out


@dataclass
class ArrowheadLU:
    """Factors of an `ArrowheadMatrix`; `solve` costs O(G p (p + m) + m²)."""

    P: Array
    PD: Array
    w: Array
    cA: Array
    S_inv: Array
    coef: float

    def solve(self, b: Array) -> Array:
        """The solution x of (σI + cJ) x = b."""
        return _arrowhead_solve(self.P, self.PD, self.w, self.cA, self.S_inv, float(self.coef),
                                np.ascontiguousarray(b, dtype=float))


class ArrowheadBDF(BDF):
    """scipy's BDF whose Newton matrices I − cJ are solved by arrowhead block elimination.

    ``jac(t, y)`` must return an `ArrowheadMatrix`. Only the Newton linear algebra differs from
    `scipy.integrate.BDF` (same steps, orders and error control): one factorisation costs
    O(G p³ + G p² m + m³) and one solve O(G p (p + m) + m²), both linear in the number of groups.
    """

    def __init__(self, fun, t0, y0, t_bound, jac=None, **kwargs) -> None:
        if not callable(jac):
            raise ValueError("jac: ArrowheadBDF needs a callable returning an ArrowheadMatrix")
        super().__init__(fun, t0, y0, t_bound, jac=jac, **kwargs)
        self.J = self._first_jac

        def lu(A: ArrowheadMatrix) -> ArrowheadLU:
            self.nlu += 1
            return A.factorize()

        self.lu = lu
        self.solve_lu = lambda LU, b: LU.solve(b)
        self.I = _ArrowheadIdentity()

    def _validate_jac(self, jac, sparsity):
        J = jac(self.t, self.y)
        self.njev += 1
        if not isinstance(J, ArrowheadMatrix) or J.shape != (self.n, self.n):
            raise ValueError("jac: must return an ArrowheadMatrix of the state's size")
        self._first_jac = J

        def jac_wrapped(t, y):
            self.njev += 1
            return jac(t, y)

        # An empty sparse stand-in, so that BDF.__init__ builds a sparse (not a dense n × n)
        # identity; __init__ then puts the real Jacobian, identity and solvers in place.
        return jac_wrapped, sparse.csc_matrix((self.n, self.n))


# --------------------------------------------------------------------------- driver
def _check_alpha(alpha: ArrayLike) -> Array:
    try:
        a = np.array(alpha, dtype=float, ndmin=1)
    except (TypeError, ValueError):
        raise ValueError(f"alpha: must be a 1-D array of numbers, got {alpha!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError("alpha: must be a non-empty 1-D array")
    if not np.all(np.isfinite(a)) or a[0] < 0 or np.any(np.diff(a) <= 0):
        raise ValueError("alpha: must be finite, >= 0 and strictly increasing")
    return a


def _initial(setup: Setup, init: xr.Dataset | None, seed: int) -> tuple[Array, Array, Array, float]:
    """(q, r, t, α_start) from ``init`` or from the weight draw of ``seed``."""
    if init is None:
        from scalex.model.weights import initial_overlaps

        init = initial_overlaps(setup, seed)
    if not isinstance(init, xr.Dataset) or not {"q", "r", "t"} <= set(init.data_vars):
        raise ValueError("init: must be a Dataset with variables q, r and t")
    start = 0.0
    q, r, t = init["q"], init["r"], init["t"]
    if "alpha" in q.dims:
        q, r = q.isel(alpha=0), r.isel(alpha=0)
        start = float(init["alpha"][0])
    for name, da, dims in (("q", q, ("group", "student_i", "student_j")),
                           ("r", r, ("group", "student_i", "teacher_n")),
                           ("t", t, ("group", "teacher_n", "teacher_m"))):
        if da.dims != dims:
            raise ValueError(f"init: variable {name!r} must have dims {dims} (after taking its "
                             f"first alpha), got {da.dims}")
    L, K, M = setup.L, setup.K, setup.M
    if q.shape != (L, K, K) or r.shape != (L, K, M) or t.shape != (L, M, M):
        raise ValueError(f"init: overlap shapes {q.shape}, {r.shape}, {t.shape} do not match "
                         f"the setup (L={L}, K={K}, M={M})")
    q0, r0, t0 = (np.asarray(x.values, dtype=float) for x in (q, r, t))
    if not all(np.all(np.isfinite(x)) for x in (q0, r0, t0)):
        raise ValueError("init: overlaps must be finite")
    if start < 0 or not np.isfinite(start):
        raise ValueError(f"init: its first alpha must be finite and >= 0, got {start}")
    return q0, r0, t0, start


def _resolve_method(method: str, system: AugmentedSystem) -> str:
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return "arrowhead" if system.jacobian_nnz() <= MAX_JACOBIAN_NNZ else "DOP853"
    return method


class _Progress:
    """tqdm bar over decades of α; with ``enabled=None`` only on a terminal, and after 5 s."""

    def __init__(self, lo: float, hi: float, enabled: bool | None) -> None:
        self.bar = None
        if enabled is False or (enabled is None and not sys.stderr.isatty()):
            return
        from tqdm.auto import tqdm

        self.lo = math.log10(lo)
        self.bar = tqdm(total=round(max(math.log10(hi) - self.lo, 0.01), 2), unit="decade",
                        desc="scalex ode", delay=0.0 if enabled else 5.0, leave=False)
        self.done = 0.0

    def __call__(self, alpha: float) -> None:
        if self.bar is None or alpha <= 0:
            return
        pos = round(min(math.log10(alpha) - self.lo, self.bar.total), 2)
        if pos >= self.done + 0.05:
            # update(), not refresh(), so that tqdm's display delay is honoured.
            self.bar.update(pos - self.done)
            self.done = pos

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def solve_ode(
    setup: Setup,
    alpha: ArrayLike,
    *,
    seed: int = 0,
    init: xr.Dataset | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    method: str = "auto",
    progress: bool | None = None,
    log_time: bool = False,
) -> xr.Dataset:
    """Integrate the order-parameter ODEs of THEORY §3 from α = 0 and sample them on ``alpha``.

    Parameters
    ----------
    setup : the experiment (`Setup`).
    alpha : output grid, >= 0 and strictly increasing (α = 0 may be included).
    seed : weight draw of the initial overlaps (same seed → same start as `scalex.simulate`).
    init : Dataset with q, r, t: the initial overlaps at its first ``alpha``, which is then the
        start time; default `scalex.initial_overlaps(setup, seed)`.
    rtol, atol : integrator tolerances on the overlaps (atol absolute, per entry). See the
        module docstring for the resulting accuracy of ε_g.
    method : "auto" ("arrowhead", or "DOP853" when the Jacobian exceeds ``MAX_JACOBIAN_NNZ``
        entries); "arrowhead" (`ArrowheadBDF`); or a `scipy.integrate.solve_ivp` method:
        "BDF", "Radau" (with the same Jacobian as a sparse matrix), "LSODA" (dense Jacobian
        for n ≤ 3000 unknowns, else its own estimate), "RK45", "DOP853", "RK23" (plain state).
    progress : None shows a tqdm bar over α decades on a terminal once the solve has run 5 s;
        True always; False never.
    log_time : integrate in u = ln(α + α₀), α₀ = 0.1/(η λ_1), instead of α.

    Returns
    -------
    A schema Dataset (`scalex.schema.make_dataset`, ``method="ode"``) whose attrs also hold
    ``ode_method``, ``rtol``, ``atol``, ``seed``, the numbers of right-hand-side, Jacobian and
    LU evaluations, and ``wall_time_s``. If the overlaps blow up (|Q| or |R| >
    `DIVERGENCE_BOUND`, non-finite values, or a failing integrator while they are large), the
    rest of the grid is NaN, ``status`` is "diverged" and a `scalex.schema.DivergenceWarning`
    is issued; any other integrator failure gives status "failed: <reason>" and a RuntimeWarning.
    Neither raises.
    """
    from scalex.schema import DivergenceWarning, make_dataset

    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    alpha = _check_alpha(alpha)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
            raise ValueError(f"{name}: must be finite and > 0, got {tol!r}")
    if progress not in (None, True, False):
        raise ValueError(f"progress: must be None, True or False, got {progress!r}")
    q0, r0, t, start = _initial(setup, init, seed)
    if alpha[0] < start:
        raise ValueError(f"alpha: must start at or after the initial time {start:g} of init")
    sp = setup.spectrum
    v, w = setup.second_layer
    kwargs = dict(eigenvalues=sp.eigenvalues, fractions=sp.fractions, v=v, w=w, eta=setup.eta,
                  activation=setup.activation, noise=setup.noise, trained=setup.trained_groups)
    system = AugmentedSystem(q0, r0, t, **kwargs)
    chosen = _resolve_method(method, system)
    if chosen in EXPLICIT:
        system = AugmentedSystem(q0, r0, t, augmented=False, **kwargs)

    A = alpha.size
    q_out = np.full((A, setup.L, setup.K, setup.K), np.nan)
    r_out = np.full((A, setup.L, setup.K, setup.M), np.nan)
    status, message = "ok", ""
    stats = {"nfev": 0, "njev": 0, "nlu": 0}
    tick = time.perf_counter()
    if system.G == 0 or alpha[-1] == start:
        q_out[:], r_out[:] = q0, r0  # nothing moves, or nothing to integrate
    else:
        positive = alpha[alpha > 0]
        bar = _Progress(max(float(positive[0]) / 10, 1e-12), float(alpha[-1]), progress)
        # Time variable u: α itself, or ln(α + α₀).
        alpha0 = 0.1 / (setup.eta * float(np.max(sp.eigenvalues))) if log_time else 0.0

        def to_u(a: ArrayLike) -> Array:
            a = np.array(a, dtype=float)
            return np.log(a + alpha0) if log_time else a

        def to_alpha(u: float) -> float:
            return math.exp(u) - alpha0 if log_time else u

        def dadu(u: float) -> float:
            return math.exp(u) if log_time else 1.0

        def fun(u: float, z: Array) -> Array:
            bar(to_alpha(u))
            return system.rhs(z) * dadu(u)

        def blowup(u: float, z: Array) -> float:
            _, y = system.split(z)
            big = float(np.max(np.abs(y))) if np.all(np.isfinite(y)) else np.inf
            return DIVERGENCE_BOUND - min(big, 1e300)

        blowup.terminal = True  # type: ignore[attr-defined]
        ivp_kwargs: dict[str, Any] = {}
        solver: str | type = chosen
        if chosen == "arrowhead":
            solver = ArrowheadBDF
            ivp_kwargs["jac"] = lambda u, z: system.arrowhead(z, scale=dadu(u))
        elif chosen in ("BDF", "Radau"):
            ivp_kwargs["jac"] = lambda u, z: system.jacobian(z, scale=dadu(u))
        elif chosen == "LSODA" and system.n <= 3000:
            ivp_kwargs["jac"] = lambda u, z: system.arrowhead(z, scale=dadu(u)).toarray()
        u0, u_eval = float(to_u(start)), to_u(alpha)
        u_eval[0] = max(u_eval[0], u0)  # round-off of the log map at α = start
        z0 = system.initial_state()
        with warnings.catch_warnings(), _single_threaded_blas():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                sol = solve_ivp(fun, (u0, float(u_eval[-1])), z0, method=solver, t_eval=u_eval,
                                rtol=rtol, atol=atol, events=blowup, **ivp_kwargs)
            finally:
                bar.close()
        done = sol.y.shape[1]
        if done:
            q_out[:done], r_out[:done] = system.overlaps(sol.y)
        stats = {"nfev": int(sol.nfev), "njev": int(sol.njev), "nlu": int(sol.nlu)}
        if sol.status != 0 or not np.all(np.isfinite(sol.y)):
            status, message = _failure(sol, system, z0, to_alpha)
            bad = ~(np.all(np.isfinite(q_out.reshape(A, -1)), axis=1)
                    & np.all(np.isfinite(r_out.reshape(A, -1)), axis=1))
            q_out[bad], r_out[bad] = np.nan, np.nan
            category = DivergenceWarning if status == "diverged" else RuntimeWarning
            warnings.warn(f"scalex.solve_ode: {setup!r}: {message}; the rest of the grid is NaN",
                          category, stacklevel=2)
    attrs = {
        "seed": int(seed),
        "ode_method": chosen,
        "rtol": float(rtol),
        "atol": float(atol),
        "log_time": int(log_time),
        "augmented_state": int(system.augmented),
        "n_rhs_evaluations": stats["nfev"],
        "n_jacobian_evaluations": stats["njev"],
        "n_lu_decompositions": stats["nlu"],
        "n_moment_evaluations": system.counts["moments"],
        "wall_time_s": float(time.perf_counter() - tick),
    }
    if message:
        attrs["solver_message"] = message
    return make_dataset(setup, alpha, q_out, r_out, t, method="ode", status=status, attrs=attrs)


def _failure(sol: Any, system: AugmentedSystem, z0: Array,
             to_alpha: Callable[[float], float]) -> tuple[str, str]:
    """(status, message) of an integration that stopped early."""
    if sol.t_events is not None and len(sol.t_events[0]):
        where = to_alpha(float(sol.t_events[0][0]))
        return "diverged", f"overlaps exceeded {DIVERGENCE_BOUND:g} at alpha ≈ {where:.4g}"
    where = to_alpha(float(sol.t[-1])) if sol.t.size else float("nan")
    _, y_last = system.split(sol.y[:, -1] if sol.y.shape[1] else z0)
    if not np.all(np.isfinite(sol.y)) or not np.all(np.isfinite(y_last)) or (
            np.max(np.abs(y_last)) > 1e3):
        return "diverged", f"overlaps blew up after alpha ≈ {where:.4g} ({sol.message})"
    status = f"failed: {sol.message} (after alpha ≈ {where:.4g})"
    return status, status
