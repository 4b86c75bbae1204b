"""`SymmetricSystem`: the per-group ODE of a soft committee machine on flat vectors, with its
S_K × S_M symmetry structure (docs/theory.md §5.1, §5.6).

The escape theory (`scalex.analysis.escape`) linearises this system at its symmetric fixed
point. With ``Setup(train_v=True)`` the state carries the student's second layer v as well
(docs/theory.md §3.10, eq. (3.22)), and the symmetric subspace gains its mean.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scalex.engines.ode_system import derivatives
from scalex.model.integrals import I2, coefficients, field_covariance, generalization_error
from scalex.model.setup import Setup

__all__ = ["SymmetricSystem"]

Array = NDArray[np.float64]


def _complement(h0: Array) -> Array:
    """Orthonormal basis (p, p − p0) of the complement of the orthonormal columns ``h0``."""
    p = h0.shape[0]
    full, _ = np.linalg.qr(np.concatenate([h0, np.eye(p)], axis=1))
    return full[:, h0.shape[1]:p]


class SymmetricSystem:
    """The per-group ODE of a Setup on flat vectors, with its S_K × S_M symmetry structure.

    State x: per group τ the upper triangle of q^τ then r^τ (row-major), groups in order:
    p = K(K+1)/2 + KM numbers per group, L p in all. With ``setup.train_v`` the K weights of
    the student's second layer follow (docs/theory.md §5.6), so n = L p + K; otherwise n = L p
    and v is the Setup's fixed v. The teacher is isotropic, t^τ = f_τ I (docs/theory.md eq.
    (2.4) at N → ∞). Frozen groups have zero right-hand side.

    The symmetric subspace V0 is spanned, group by group, by the normalised indicators of the
    orbits (diagonal of q, off-diagonal of q, r), and with a trained second layer by the
    normalised all-ones vector of v; V1, the symmetry-breaking subspace, is its orthogonal
    complement (there the zero-sum deviations of v). Both are products I_L ⊗ (per-group
    basis), with the v block alongside, so coordinates cost O(n).
    """

    def __init__(self, setup: Setup) -> None:
        v, w = setup.second_layer
        if not (np.allclose(v, v[0]) and np.allclose(w, w[0])):
            raise ValueError("setup: the escape theory needs equal second-layer weights v and "
                             "equal w (soft committee machine), so that the symmetric subspace "
                             "is invariant")
        if setup.activation != "erf":
            raise ValueError(f"activation: the symmetric plateau needs 'erf', got "
                             f"{setup.activation!r}")
        self.setup = setup
        sp = setup.spectrum
        self.K, self.M, self.L = setup.K, setup.M, sp.L
        self.lam, self.frac = sp.eigenvalues, sp.fractions
        self.v, self.w = v, w
        self.eta_v = setup.learning_rate_v if setup.train_v else 0.0
        self.trained = setup.trained_groups
        self.t = self.frac[:, None, None] * np.eye(self.M)[None]
        self.iu = np.triu_indices(self.K)
        self.nq = len(self.iu[0])
        self.p = self.nq + self.K * self.M
        #: length of the trailing second-layer block: K with ``train_v``, else 0
        self.nv = self.K if setup.train_v else 0
        self.n = self.L * self.p + self.nv
        # Per-group orbits of S_K × S_M: diagonal of q, off-diagonal of q, entries of r.
        kind = np.concatenate([np.where(self.iu[0] == self.iu[1], 0, 1),
                               np.full(self.K * self.M, 2)])
        ind = np.stack([kind == k for k in range(3) if np.any(kind == k)], axis=1).astype(float)
        #: (p, p0) orthonormal orbit indicators: V0 restricted to one group
        self.h0 = ind / np.sqrt(ind.sum(0))
        self._h1: Array | None = None
        #: second-layer bases: its mean (K, 1) in V0, the zero-sum deviations (K, K − 1) in V1
        ones = np.full((self.nv, 1 if self.nv else 0), 1.0 / np.sqrt(max(self.nv, 1)))
        self._u = (ones, _complement(ones) if self.nv else np.zeros((0, 0)))

    @property
    def h1(self) -> Array:
        """(p, p − p0) orthonormal basis of the complement of V0 within one group (built on
        first use: a QR of a p × p matrix, seconds at K = 40)."""
        if self._h1 is None:
            self._h1 = _complement(self.h0)
        return self._h1

    # ---------------------------------------------------------------- subspaces
    # V0 = I_L ⊗ h0 (⊕ u0) and V1 = I_L ⊗ h1 (⊕ u1): the symmetry acts within each group.
    def coords(self, x: Array, part: int) -> Array:
        """Coordinates of flat state(s) (..., n) in the basis of V0 (part=0) or V1 (part=1)."""
        h = self.h0 if part == 0 else self.h1
        x = np.asarray(x, dtype=float)
        lead = x.shape[:-1]
        z = (x[..., :self.L * self.p].reshape(*lead, self.L, self.p) @ h).reshape(*lead, -1)
        if self.nv:
            z = np.concatenate([z, x[..., self.L * self.p:] @ self._u[part]], axis=-1)
        return z

    def vector(self, z: Array, part: int) -> Array:
        """Flat state(s) from coordinates in V0 (part=0) or V1 (part=1)."""
        h = self.h0 if part == 0 else self.h1
        z = np.asarray(z, dtype=float)
        lead = z.shape[:-1]
        m = self.L * h.shape[1]
        x = (z[..., :m].reshape(*lead, self.L, h.shape[1]) @ h.T).reshape(*lead, -1)
        if self.nv:
            x = np.concatenate([x, z[..., m:] @ self._u[part].T], axis=-1)
        return x

    def dim(self, part: int) -> int:
        """Dimension of V0 (part=0) or V1 (part=1)."""
        return self.L * (self.h0 if part == 0 else self.h1).shape[1] + self._u[part].shape[1]

    def grouped(self, z: Array) -> Array:
        """V0 coordinates (flat) in the layout the routes of (E3)–(E5) take: (L, p0), one row
        per group; flat when the mean of a trained v rides along (only the dense route, which
        takes any layout, runs then)."""
        z = np.asarray(z, dtype=float)
        return z if self.nv else z.reshape(self.L, -1)

    # ---------------------------------------------------------------- packing
    def pack(self, q: Array, r: Array, v: Array | None = None) -> Array:
        """(L, K, K), (L, K, M) [and the trained (K,) v, default the Setup's] → flat state."""
        q = np.asarray(q, dtype=float)
        r = np.asarray(r, dtype=float)
        x = np.concatenate([q[:, self.iu[0], self.iu[1]], r.reshape(self.L, -1)], axis=1).ravel()
        if self.nv:
            x = np.concatenate([x, self.v if v is None else np.asarray(v, dtype=float)])
        return x

    def unpack(self, x: Array) -> tuple[Array, Array]:
        """Flat state(s) (..., n) → q (..., L, K, K), r (..., L, K, M)."""
        x = np.asarray(x, dtype=float)
        lead = x.shape[:-1]
        x = x[..., :self.L * self.p].reshape(*lead, self.L, self.p)
        q = np.zeros((*lead, self.L, self.K, self.K))
        q[..., self.iu[0], self.iu[1]] = x[..., :self.nq]
        q[..., self.iu[1], self.iu[0]] = x[..., :self.nq]
        r = x[..., self.nq:].reshape(*lead, self.L, self.K, self.M)
        return q, r

    def second_layer(self, x: Array) -> Array:
        """v (..., K) of flat state(s) (..., n): the trained block, or the Setup's fixed v."""
        x = np.asarray(x, dtype=float)
        if self.nv:
            return x[..., self.L * self.p:]
        return np.broadcast_to(self.v, (*x.shape[:-1], self.K))

    def symmetrize(self, x: Array) -> Array:
        """Orthogonal projection on V0 (average over the S_K × S_M orbits)."""
        return self.vector(self.coords(x, 0), 0)

    # ---------------------------------------------------------------- dynamics
    def rhs(self, x: Array) -> Array:
        """dx/dα of docs/theory.md §3.2 with the isotropic teacher, by `derivatives`; with a
        trained second layer also dv_i/dα = η_v Σ_a c_a I2(i, a), eq. (3.22)."""
        q, r = self.unpack(x)
        v = self.second_layer(x)
        s = self.setup
        dq, dr = derivatives(q, r, self.t, self.lam, self.frac, v, self.w, s.eta,
                             s.activation, s.noise, self.trained)
        dx = self.pack(dq, dr, np.zeros(self.nv))
        if self.nv:
            C = field_covariance(*self._weighted(q, r))
            dx[self.L * self.p:] = self.eta_v * (I2(C, s.activation)[:self.K]
                                                 @ coefficients(v, self.w))
        return dx

    def jvp(self, x: Array, d: Array, step: float = 1e-6) -> Array:
        """Directional derivative J(x) d by central differences along d/|d|."""
        nd = float(np.linalg.norm(d))
        if nd == 0:
            return np.zeros_like(d)
        u = d / nd
        return (self.rhs(x + step * u) - self.rhs(x - step * u)) * (nd / (2 * step))

    def jacobian(self, x: Array, part: int, step: float = 1e-7) -> Array:
        """J(x) restricted to V0 (part=0) or V1 (part=1), in that basis (central differences).

        The restriction is exact at symmetric x: J commutes with S_K × S_M there, so V0 and
        V1 are invariant. One column per basis vector, each two right-hand sides.
        """
        m = self.dim(part)
        cols = np.empty((m, m))
        for j in range(m):
            e = np.zeros(m)
            e[j] = 1.0
            cols[:, j] = self.coords(self.jvp(x, self.vector(e, part), step), part)
        return cols

    def _weighted(self, q: Array, r: Array) -> tuple[Array, Array, Array]:
        """Q = Σ λ_τ q^τ, R = Σ λ_τ r^τ, T = Σ λ_τ t^τ (leading axes of q, r kept)."""
        Q = np.einsum("g,...gij->...ij", self.lam, q)
        R = np.einsum("g,...gin->...in", self.lam, r)
        T = np.einsum("g,gnm->nm", self.lam, self.t)
        return Q, R, T

    def eg(self, x: Array) -> Array:
        """ε_g of flat state(s) (..., n) with the isotropic teacher (docs/theory.md eq. (3.11)),
        at each state's v."""
        q, r = self.unpack(x)
        return generalization_error(*self._weighted(q, r), self.second_layer(x), self.w,
                                    self.setup.activation)

    def symmetric_state(self, a: Array, b: Array, c: Array, v: float | None = None) -> Array:
        """Flat state with q^τ_ii = a_τ, q^τ_ij = b_τ (i ≠ j), r^τ_in = c_τ [and v_i = v]."""
        eye = np.eye(self.K)
        q = b[:, None, None] + (a - b)[:, None, None] * eye
        r = np.broadcast_to(c[:, None, None], (self.L, self.K, self.M))
        return self.pack(q, r, None if v is None else np.full(self.K, float(v)))
