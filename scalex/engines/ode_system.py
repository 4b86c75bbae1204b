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

from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sparse
from numpy.typing import ArrayLike, NDArray

from scalex.model.integrals import (
    J2,
    coefficients,
    field_covariance,
    stein_coefficients,
    update_second_moment,
)
from scalex.numerics.arrowhead import ArrowheadMatrix

Array = NDArray[np.float64]


#: Largest p for which the right-hand side applies the packed p × p map A (one BLAS product
#: over all groups) instead of per-group K × (K+M) products.
PACKED_MAP_MAX_P = 64


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
