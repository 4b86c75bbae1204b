"""The order-parameter ODEs (docs/theory.md §3), exact as N → ∞, and their augmented system.

Two layers:

* kernels on plain arrays: `derivatives` (the right-hand side (3.4)–(3.6) for all groups at
  once), `field_moments` (s_ia of (3.12) and E_ij of (3.6) for a field covariance, compiled
  for erf) and `group_rates` (the per-group contraction at given s and E);
* `AugmentedSystem`: the packed, augmented state with its right-hand side and its arrowhead
  Jacobian (`AugmentedSystem.arrowhead`, or `AugmentedSystem.jacobian` in CSC form), which
  `scalex.engines.ode.solve_ode` integrates.

Integrator design (docs/theory.md §3.6)
---------------------------------------
Per trained group τ the state is x_τ = (upper triangle of q^τ, r^τ): p = K(K+1)/2 + KM numbers
(q^τ is symmetric, so only its upper triangle is integrated; t^τ is constant, and frozen groups
enter only through their constant share of C). For linear g, x_τ also ends with the group's
error E^τ and y with Σ_τ λ_τ E^τ (error coordinates, `AugmentedSystem`). The groups see each
other only through the field covariance C, whose free entries y = (upper triangle of Q, R)
are m = p numbers. The right-hand side has the form of eq. (3.15),

    f_τ = η λ_τ [A(s) x_τ + b_τ(s, E)],     s = s_ia(C), E = E_ij(C),   b_τ = (η f_τ E, s_R t^τ)

with one p × p matrix A, linear in s, shared by all groups (for p ≤ `PACKED_MAP_MAX_P` one BLAS
product advances all groups). The system is stiff: its fastest rate is ~ηλ_1 ∝ L (mean
normalisation), its slowest ~ηλ_L, and runs span six or more decades of α. An explicit method
needs O(ηλ_1 α_max) steps; an implicit one a number of steps set by how the solution changes,
nearly independent of L, but it needs the Jacobian. For the plain state that Jacobian is block
diagonal plus a rank-m coupling: dense. So the state is AUGMENTED with y itself,
dy/dα = Σ_σ λ_σ f_σ(x_σ, y), and every f_τ takes its fields from y. The exact solution is
unchanged (y − Σ_σ λ_σ x_σ is a linear invariant, which BDF preserves to round-off), and the
Jacobian becomes the arrowhead of eq. (3.16):

    ∂f_τ/∂x_τ = η λ_τ A          exact: f_τ is linear in x_τ at fixed y
    ∂f_τ/∂y   = D_τ              f_τ is linear in (s, E), so D_τ = rates(x_τ; ∂s/∂y_k, ∂E/∂y_k),
                                 with ∂s/∂y_k, ∂E/∂y_k by central differences (2m moments)
    ∂ẏ/∂x_σ   = λ_σ η λ_σ A      ∂ẏ/∂y = Σ_σ λ_σ D_σ

It has G(p² + 2pm) + m² stored entries (`AugmentedSystem.jacobian_nnz`). As an
`scalex.numerics.arrowhead.ArrowheadMatrix` it is solved by block elimination; as a CSC matrix
it goes to scipy's own BDF or Radau, which factorise it with SuperLU. With ``augmented=False``
the state is the plain z = x, for the explicit methods. `SecondLayerSystem` appends a trained
second layer v to the plain state (docs/theory.md §3.10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sparse
from numpy.typing import ArrayLike, NDArray

from scalex.engines.moments import (
    PARALLEL_MOMENTS_MIN_K,
    erf_moments,
    erf_moments_parallel,
    field_moments,
)
from scalex.model.integrals import I2, coefficients, field_covariance
from scalex.numerics.arrowhead import ArrowheadMatrix

Array = NDArray[np.float64]


#: Largest p for which the right-hand side applies the packed p × p map A (one BLAS product
#: over all groups) instead of per-group K × (K+M) products.
PACKED_MAP_MAX_P = 64


# --------------------------------------------------------------------------- kernels
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
    """dq^τ/dα and dr^τ/dα of docs/theory.md §3.2 from given s and E (the per-group part).

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
    """dq^τ/dα and dr^τ/dα of docs/theory.md §3.2 for all groups at once.

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
    """The ODEs of docs/theory.md §3 on a packed state, with the Jacobian of the module docstring.

    State ``z = (x_1, …, x_G, y)`` for the G trained groups, x_τ = (q^τ[triu], r^τ.ravel()),
    and, if ``augmented``, y = (Q[triu], R.ravel()); otherwise z = x and the fields are summed
    from x. Frozen groups enter only through their constant share of C.

    Error coordinates (``error_coordinates``, default on for linear g): x_τ additionally ends
    with the per-group error E^τ = vᵀq^τv − 2vᵀr^τw + wᵀt^τw (docs/theory.md §4, eq. (4.2)) and
    y with ε = Σ_τ λ_τ E^τ = 2ε_g. Late in training ε_g is a small difference of O(1)
    overlaps, so tolerances on the overlaps do not control it; integrated as its own
    coordinate, with the cancellation-free rate of eq. (4.3),

        dE^τ/dα = η λ_τ [−2 (vᵀ s c / cᵀc) E^τ + η f_τ vᵀ 𝓔 v],   𝓔 = v vᵀ (ε + s²),

    (vᵀ s c / cᵀc = Σv² for linear g, where s_ia = v_i c_a), ε_g = ε/2 gets its own tolerance
    and relative accuracy. The overlap rates then take 𝓔 from ε as well (eq. (3.14)). The
    rate is linear in E^τ with the coefficient linear in s, so the arrowhead structure (shared
    A, border D) is unchanged with p = m one larger.
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
    error_coordinates: bool | None = None
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
        full = np.empty((K, K), dtype=np.intp)
        full[self.iu] = full.T[self.iu] = np.arange(len(self.iu[0]))
        self._full_index = full.ravel()
        self.nq = K * (K + 1) // 2
        if self.error_coordinates is None:
            self.error_coordinates = self.activation == "linear"
        if self.error_coordinates and self.activation != "linear":
            raise ValueError("error_coordinates: closed error equations exist only for "
                             f"activation='linear', got {self.activation!r}")
        self.ne = int(bool(self.error_coordinates))
        self.nf = self.nq + K * M  # field entries of x_τ and y
        self.p = self.m = self.nf + self.ne
        self.G = int(mask.sum())
        self.n = self.G * self.p + (self.m if self.augmented else 0)
        self.lam = self.eigenvalues[mask]
        self.frac = self.fractions[mask]
        self.t_tr = self.t[mask]
        self._t_flat = self.t_tr.transpose(1, 0, 2).reshape(M, -1)  # (M, G·M): rows m, cols (τ, n)
        lam, frozen = self.eigenvalues, ~mask
        self.T = np.einsum("g,gnm->nm", lam, self.t)
        self._c = coefficients(self.v, self.w)
        self.e0 = self.group_errors(self.q0, self.r0)  # E^τ at the start, all groups
        self.y_frozen = self.pack(np.einsum("g,gij->ij", lam[frozen], self.q0[frozen]),
                                  np.einsum("g,gin->in", lam[frozen], self.r0[frozen]),
                                  lam[frozen] @ self.e0[frozen])
        n = K + M
        self._C_base = field_covariance(np.zeros((K, K)), np.zeros((K, M)), self.T)
        # Flat positions in C of each packed field entry: (i, j) and its mirror (j, i).
        rows = np.concatenate([self.iu[0], np.repeat(np.arange(K), M)])
        cols = np.concatenate([self.iu[1], K + np.tile(np.arange(M), K)])
        self._C_pos = (rows * n + cols, cols * n + rows)
        self._c_shape = (K, n)
        self._cc = float(self._c @ self._c)
        self._A_basis: Array | None = None
        if self.p <= PACKED_MAP_MAX_P:
            # A(s) is linear in s: keep its images of the unit s-matrices, (K(K+M), p²).
            unit_s = np.eye(K * n).reshape(-1, K, n)
            self._A_basis = np.array([self._linear_map_direct(u).ravel() for u in unit_s])
        self._pattern: tuple[NDArray[np.intp], NDArray[np.int32], NDArray[np.int32]] | None = None

    # ---------------------------------------------------------------- packing
    def pack(self, q: Array, r: Array, e: Array | float | None = None) -> Array:
        """(…, K, K), (…, K, M) [, (…) errors] → (…, p), the upper triangle of q first.

        With error coordinates, ``e`` (E^τ, or its rate) is the last entry; None gives 0.
        """
        parts = [q[..., self.iu[0], self.iu[1]], r.reshape((*r.shape[:-2], self.K * self.M))]
        if self.ne:
            lead = parts[0].shape[:-1]
            parts.append(np.broadcast_to(0.0 if e is None else e, lead)[..., None])
        return np.concatenate(parts, axis=-1)

    def unpack(self, x: Array) -> tuple[Array, Array]:
        """Inverse of `pack` for the overlaps (error coordinates dropped); q exactly symmetric."""
        K, M = self.K, self.M
        # one gather: full position (i, j) reads packed entry _full_index[i·K + j]
        q = np.take(x, self._full_index, axis=-1).reshape((*x.shape[:-1], K, K))
        return q, x[..., self.nq:self.nf].reshape((*x.shape[:-1], K, M))

    def group_errors(self, q: Array, r: Array) -> Array:
        """E^τ = cᵀ C^τ c = vᵀq^τv − 2vᵀr^τw + wᵀt^τw per group (docs/theory.md §4, eq. (4.2))."""
        v, w = self.v, self.w
        return (np.einsum("i,...ij,j->...", v, q, v) - 2 * np.einsum("i,...in,n->...", v, r, w)
                + np.einsum("n,gnm,m->g", w, self.t, w))

    def error_index(self) -> NDArray[np.intp]:
        """Positions of the error coordinates in z (empty without them)."""
        if not self.ne:
            return np.zeros(0, dtype=np.intp)
        idx = np.arange(self.G) * self.p + self.p - 1
        return np.append(idx, self.n - 1) if self.augmented else idx

    def generalization_error(self, z: Array) -> Array:
        """ε_g = ½ Σ_τ λ_τ E^τ (docs/theory.md §4, eq. (4.2)) from the error coordinates of the
        states z (n, A), frozen groups at their start. Each E^τ = |P_τ D|²/N ≥ 0 exactly;
        negative integrated values (round-off below the tolerance) are clipped to 0, so
        ε_g ≥ 0."""
        if not self.ne:
            raise ValueError("error_coordinates: this system carries no error coordinates")
        x, _ = self.split(z)
        return 0.5 * (self.y_frozen[-1] + self.lam @ np.maximum(x[:, -1], 0.0))

    def initial_state(self) -> Array:
        """z at the start, from the stored initial overlaps."""
        tr = self.trained
        x = self.pack(self.q0[tr], self.r0[tr], self.e0[tr])
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
        """C = [[Q, R], [Rᵀ, T]] from packed fields y (…, m) (an error entry is ignored)."""
        y = y[..., :self.nf]
        C = np.empty((*y.shape[:-1], *self._C_base.shape))
        C[...] = self._C_base
        flat = C.reshape((*y.shape[:-1], -1))
        flat[..., self._C_pos[0]] = y
        flat[..., self._C_pos[1]] = y
        return C

    def moments(self, y: Array) -> tuple[Array, Array]:
        """(s, E) of `field_moments` at fields y (…, m).

        With error coordinates (linear g) E = v vᵀ (ε + s²) with ε = y[-1] = 2ε_g
        (docs/theory.md §3.5, eq. (3.14)), instead of cᵀCc from the fields, and s_ia = v_i c_a.
        """
        self.counts["moments"] += int(np.prod(y.shape[:-1], dtype=np.int64))
        if self.ne:
            lead = y.shape[:-1]
            s = np.broadcast_to(self.v[:, None] * self._c[None, :], (*lead, *self._c_shape))
            E = np.multiply.outer(y[..., -1] + self.noise**2, np.outer(self.v, self.v))
            return np.array(s), E
        C = self.covariance(y)
        if self.activation != "erf":
            return field_moments(C, self.v, self.w, self.activation, self.noise)
        n = self.K + self.M
        if C.ndim == 2 and self.K >= PARALLEL_MOMENTS_MIN_K:
            return erf_moments_parallel(C, self.v, self._c, self.noise**2, *self.iu)
        s, E = erf_moments(C.reshape(-1, n, n), self.v, self._c, self.noise**2)
        return s.reshape(y.shape[:-1] + s.shape[1:]), E.reshape(y.shape[:-1] + E.shape[1:])

    # ---------------------------------------------------------------- right-hand side
    def error_drift(self, s: Array) -> Array:
        """The coefficient −2 vᵀ s c / cᵀc of E^τ in dE^τ/(η λ_τ dα) (class docstring), linear
        in s; −2 Σv² for linear g."""
        if self._cc == 0.0:
            return np.zeros(s.shape[:-2])
        return -2.0 * np.einsum("i,...ia,a->...", self.v, s, self._c) / self._cc

    def rates(self, x: Array, s: Array, E: Array | None, t: bool = True) -> Array:
        """Packed f_τ for x (…, G, p) at given (s, E): `group_rates` on the packed layout,
        plus dE^τ/dα with error coordinates (class docstring)."""
        q, r = self.unpack(x)
        dq, dr = group_rates(q, r, self.t_tr if t else None, s, E, self.lam, self.frac, self.eta)
        de = None
        if self.ne:
            de = self.error_drift(s) * x[..., -1]
            if E is not None:
                de = de + self.eta * self.frac * np.einsum("i,...ij,j->...", self.v, E, self.v)
            de = self.eta * self.lam * de
        return self.pack(dq, dr, de)

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
        lin[..., self.nq:self.nf] += np.moveaxis(sRt, -3, -2).reshape((*batch, G, K * M))
        if self.ne:  # b_τ of the error coordinate: η f_τ vᵀ E v
            vEv = np.einsum("i,...ij,j->...", self.v, E, self.v)
            lin[..., -1] += vEv[..., None] * (self.eta * self.frac)
        return (self.eta * self.lam)[:, None] * lin

    def rhs(self, z: Array) -> Array:
        """dz/dα (docs/theory.md eq. (3.15)); for the augmented state dy/dα = Σ_τ λ_τ f_τ."""
        x, y = self.split(z)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, E = self.moments(y)
            f = self.all_rates(x, s, E)
        if not self.augmented:
            return f.ravel()
        return np.concatenate([f.ravel(), self.lam @ f])

    # ---------------------------------------------------------------- Jacobian
    def _linear_map_direct(self, s: Array) -> Array:
        eye = np.eye(self.p)
        q, r = self.unpack(eye)
        dq, dr = group_rates(q, r, None, s, None, np.ones(1), np.ones(1), 1.0)
        de = self.error_drift(s) * eye[:, -1] if self.ne else None
        return self.pack(dq, dr, de).T

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


# --------------------------------------------------------------------------- trained v
@dataclass
class SecondLayerSystem(AugmentedSystem):
    """The ODEs with a trained student second layer (docs/theory.md §3.10, eq. (3.22)).

    State z = (x_1, …, x_G, v): the plain state of `AugmentedSystem` (no augmented fields, no
    error coordinates) followed by the K weights v, which start at ``v``. Every right-hand side
    takes s and E at the current v, and

        dv_i/dα = η_v E[g(x_i)(ζ − σ)] = η_v Σ_a c_a I2(i, a),   c = (−v, w).

    There is no structured Jacobian: integrate with an explicit method, or with BDF, Radau or
    LSODA and their finite-difference Jacobians (`scalex.engines.ode.solve_ode`).
    """

    eta_v: float = 0.0

    def __post_init__(self) -> None:
        self.augmented, self.error_coordinates = False, False
        super().__post_init__()
        self.v0 = self.v.copy()
        self.n += self.K

    def second_layer(self, z: Array) -> Array:
        """v of states z (n, …): (K, …)."""
        return z[self.G * self.p:]

    def initial_state(self) -> Array:
        """z at the start: the plain state of the initial overlaps, then v."""
        return np.concatenate([super().initial_state(), self.v0])

    def rhs(self, z: Array) -> Array:
        """dz/dα: (3.4)–(3.6) at the current v, then dv/dα of eq. (3.22)."""
        x, y = self.split(z)
        self.v = np.array(self.second_layer(z), dtype=float)
        self._c = coefficients(self.v, self.w)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, E = self.moments(y)
            f = self.all_rates(x, s, E)
            dv = self.eta_v * (I2(self.covariance(y), self.activation)[:self.K] @ self._c)
        return np.concatenate([f.ravel(), dv])
