"""BDF with the field feedback implicit, for large K (docs/theory.md §3.9).

The Newton matrices of an implicit method are σI + cJ with J = ∂f/∂z on the plain state
z = (x_1, …, x_G). With C = Σ_τ λ_τ x_τ (+ frozen groups) and f_τ = κ_τ [A(s) x_τ + b_τ(s, E)],
κ_τ = η λ_τ (docs/theory.md eq. (3.15)),

    J = blockdiag(κ_τ A) + F Λᵀ,      F_τ ψ = κ_τ [A(δs) x_τ + b_τ(δs, δE)],  δs = (∂s/∂C) ψ,

block diagonal plus a coupling of rank m = K(K+1)/2 + KM through the fields. The arrowhead route
(`scalex.numerics.arrowhead`) stores that coupling densely (G·p·m numbers, 3·10⁹ at
K = M = 40, L = 512) and needs 2m moment evaluations per Jacobian. Here nothing of size G·p·m
is formed:

* J̃ keeps the feedback through the Stein coefficients s and drops it through E, whose
  coefficient η²λ_τ f_τ is smaller by η f_τ (measured: 0.1 % of the border at K = 8, L = 512).
  So BDF runs as a W-method with a near-exact Jacobian; its Newton iteration absorbs the rest.
  s alone costs O(K(K+M)) (`scalex.engines.moments.stein_only`), so J̃ costs no moments.
* In the eigenbasis S = U diag(μ) Uᵀ of s_Q (symmetric) the block σ + cκ_τ A is triangular:
  r̃ ↦ (σ + cκ_τ μ_i) r̃, and q̃ ↦ (σ + cκ_τ (μ_i + μ_j)) q̃ + cκ_τ (r̃ s̃_Rᵀ + s̃_R r̃ᵀ).
  P_τ = (σ + cD_τ)⁻¹ is applied elementwise (`_Solver.block_solve`).
* Woodbury: with ψ = Σ_τ λ_τ k_τ, (σI + cJ̃) k = b becomes

      (I + c Op) ψ = Σ_τ λ_τ P_τ b_τ,   Op ψ = Σ_τ λ_τ P_τ F_τ ψ,   k_τ = P_τ (b_τ − c F_τ ψ),

  an m × m system. Op is linear in δs and applied without the groups: the group sums are
  folded once per factorisation into K³- and K²M-sized tensors (`_Solver`, eq. (3.20)). δs of
  every unit field direction is computed once per Jacobian (exactly for erf), so I + c·Op is
  assembled by batched products and LU-factorised.

One factorisation costs O(G K²(K+M) + m K³ + m³), one solve O(G K(K+M) + m²). The BDF steps,
orders and error control are scipy's (`scalex.numerics.arrowhead.ArrowheadBDF` with this
Jacobian).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lu_factor, lu_solve

from scalex.engines.moments import erf_stein_directional, stein_only
from scalex.engines.ode_system import AugmentedSystem
from scalex.model.integrals import coefficients
from scalex.numerics.arrowhead import ShiftedOperator

Array = NDArray[np.float64]

__all__ = ["FeedbackJacobian"]

#: Unit directions rotated per batch in `_Linearisation.stein_columns`.
COLUMN_BLOCK = 128
#: Relative size of the central-difference step of δs = (∂s/∂C) ψ.
FD_STEP = 1e-6


def _left(A: Array, X: Array) -> Array:
    """A @ X[b] for a batch X (B, p, q), as one GEMM."""
    return np.tensordot(A, X, axes=(1, 1)).transpose(1, 0, 2)


def _sandwich(A: Array, X: Array, B: Array) -> Array:
    """A @ X[b] @ B for a batch X (B, p, q), as two GEMMs."""
    return _left(A, (X.reshape(-1, X.shape[2]) @ B).reshape(X.shape[0], X.shape[1], -1))


def _to_frame(U: Array, q: Array, r: Array) -> tuple[Array, Array]:
    """Per-group (G, K, K), (G, K, M) overlaps → the frame layout (K, G, ·): Uᵀ q U, Uᵀ r."""
    G, K, M = r.shape
    qt = (U.T @ q.transpose(1, 0, 2).reshape(K, G * K)).reshape(K * G, K) @ U
    return qt.reshape(K, G, K), (U.T @ r.transpose(1, 0, 2).reshape(K, G * M)).reshape(K, G, M)


def _from_frame(U: Array, qt: Array, rt: Array) -> tuple[Array, Array]:
    """Inverse of `_to_frame`; q made exactly symmetric."""
    K, G, M = rt.shape
    q = ((U @ qt.reshape(K, G * K)).reshape(K * G, K) @ U.T).reshape(K, G, K).transpose(1, 0, 2)
    r = (U @ rt.reshape(K, G * M)).reshape(K, G, M).transpose(1, 0, 2)
    return 0.5 * (q + q.transpose(0, 2, 1)), r


class _Linearisation:
    """What J̃ needs at one state: the frame (U, μ), the overlaps in it and s̃_R.

    Layout as in `scalex.engines.ode_exponential`: student index first, q̃ (K, G, K) with
    q̃[i, g, j] = (Uᵀ q^g U)_ij, r̃ (K, G, M), so products over all groups are single GEMMs.
    """

    def __init__(self, system: AugmentedSystem, z: Array, scale: float) -> None:
        if system.augmented or system.ne:
            raise ValueError("system: FeedbackJacobian needs the plain state without error "
                             "coordinates (augmented=False, a non-linear activation)")
        self.system = sys = system
        K, M, G = sys.K, sys.M, sys.G
        x, y = sys.split(np.asarray(z, dtype=float))
        q, r = sys.unpack(x)
        self.C = sys.covariance(y)
        self.c = coefficients(sys.v, sys.w)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s = self.stein(self.C)
        self.finite = bool(np.all(np.isfinite(s)) and np.all(np.isfinite(x)))
        if not self.finite:
            s = np.zeros_like(s)
        mu, U = np.linalg.eigh(0.5 * (s[:, :K] + s[:, :K].T))
        self.mu, self.U = mu, U
        self.sR = U.T @ s[:, K:]
        self.kappa = scale * sys.eta * sys.lam
        self.lam = sys.lam
        self.q, self.r = _to_frame(U, q, r)
        tt = np.ascontiguousarray(sys.t_tr.transpose(1, 0, 2))  # (M, G, M)
        self.t_cols = tt.reshape(M, G * M)
        self.t_flat = sys.t_tr.reshape(G, M * M)
        # θ[m, g, j] = (t^g s̃_Rᵀ)_mj and ρ[k, g, j] = (r̃^g s̃_Rᵀ)_kj
        self.t_sR = (tt.reshape(M * G, M) @ self.sR.T).reshape(M, G, K)
        self.r_sR = (self.r.reshape(K * G, M) @ self.sR.T).reshape(K, G, K)
        self.shape = (sys.n, sys.n)
        self._columns: tuple[Array, Array] | None = None

    def stein(self, C: Array) -> Array:
        sys = self.system
        return stein_only(C, sys.v, sys.w, sys.activation)

    def delta_s(self, dQ: Array, dR: Array) -> tuple[Array, Array]:
        """(δS̃, δs̃_R) = (∂s/∂C) applied to field directions (…, K, K), (…, K, M) given in the
        frame: exact for erf (`scalex.engines.moments.erf_stein_directional`), else by central
        differences of s with a step of relative size `FD_STEP`."""
        sys, U, K, M = self.system, self.U, self.system.K, self.system.M
        dQ, dR = np.asarray(dQ, dtype=float), np.asarray(dR, dtype=float)
        batch = dQ.shape[:-2]
        dQ, dR = dQ.reshape(-1, K, K), dR.reshape(-1, K, M)
        size = np.maximum(np.max(np.abs(dQ), axis=(1, 2)), np.max(np.abs(dR), axis=(1, 2)))
        dS, dsR = np.zeros_like(dQ), np.zeros_like(dR)
        live = size > 0
        if self.finite and np.any(live):
            rows = np.concatenate([_sandwich(U, dQ[live], U.T), _left(U, dR[live])],
                                  axis=2)  # δC[:K, :]
            if sys.activation == "erf":
                ds = erf_stein_directional(self.C, rows, sys.v, self.c)
            else:  # central differences of s, step of relative size FD_STEP
                dC = np.zeros((rows.shape[0], *self.C.shape))
                dC[:, :K, :] = rows
                dC[:, K:, :K] = rows[:, :, K:].transpose(0, 2, 1)
                eps = (FD_STEP * max(1.0, float(np.max(np.abs(self.C)))) / size[live])
                eps = eps[:, None, None]
                ds = (self.stein(self.C + eps * dC) - self.stein(self.C - eps * dC)) / (2 * eps)
            dS[live], dsR[live] = self._to_frame_s(ds)
        return dS.reshape(*batch, K, K), dsR.reshape(*batch, K, M)

    def _to_frame_s(self, ds: Array) -> tuple[Array, Array]:
        """δs (B, K, K+M) in the original basis → (δS̃ symmetrised, δs̃_R) in the frame."""
        K, U = self.system.K, self.U
        rot = _sandwich(U.T, ds[:, :, :K], U)
        return 0.5 * (rot + rot.transpose(0, 2, 1)), _left(U.T, ds[:, :, K:])

    def stein_columns(self) -> tuple[Array, Array]:
        """δs of every unit field direction ψ_k (the packed entries of (Q̃, R̃), as in
        `AugmentedSystem.pack`): (m, K, K) and (m, K, M); computed once per state.

        For erf the rows δC[:K] of the unit directions are written from U directly
        (u_i u_jᵀ + u_j u_iᵀ for Q̃_ij, u_i e_nᵀ for R̃_in) and rotated back in blocks of
        `COLUMN_BLOCK`, which keeps the batched products in cache."""
        if self._columns is not None:
            return self._columns
        sys, U = self.system, self.U
        K, M = sys.K, sys.M
        if sys.activation != "erf" or not self.finite:
            self._columns = self.delta_s(*sys.unpack(np.eye(sys.nf)))
            return self._columns
        i, j = sys.iu
        rows = np.zeros((sys.nf, K, K + M))
        outer = U[:, i].T[:, :, None] * U[:, j].T[:, None, :]  # (nq, K, K): u_i u_jᵀ
        rows[:sys.nq, :, :K] = outer + np.where((i != j)[:, None, None],
                                                outer.transpose(0, 2, 1), 0.0)
        unit_r = rows[sys.nq:, :, K:].reshape(K, M, K, M)  # direction (i, n): u_i in column n
        for n in range(M):
            unit_r[:, n, :, n] = U.T
        dS, dsR = np.empty((sys.nf, K, K)), np.empty((sys.nf, K, M))
        for start in range(0, sys.nf, COLUMN_BLOCK):
            block = slice(start, start + COLUMN_BLOCK)
            ds = erf_stein_directional(self.C, rows[block], sys.v, self.c)
            dS[block], dsR[block] = self._to_frame_s(ds)
        self._columns = (dS, dsR)
        return self._columns

    def feedback(self, dS: Array, dsR: Array) -> tuple[Array, Array]:
        """F_τ ψ for all groups at (δS̃, δs̃_R): κ_τ (q δS + δS q + r δs_Rᵀ + δs_R rᵀ) and
        κ_τ (δS r + δs_R t), in the frame's layout."""
        K, G, M = self.q.shape[0], self.q.shape[1], self.r.shape[2]
        Gs = (self.q.reshape(K * G, K) @ dS + self.r.reshape(K * G, M) @ dsR.T).reshape(K, G, K)
        fq = self.kappa[None, :, None] * (Gs + Gs.transpose(2, 1, 0))
        fr = (dS @ self.r.reshape(K, G * M) + dsR @ self.t_cols).reshape(K, G, M)
        return fq, fr * self.kappa[None, :, None]


class _Solver:
    """(σI + cJ̃)⁻¹ at one linearisation (module docstring).

    With d1[i, g] = σ + cκ_g μ_i, d2[i, g, j] = σ + cκ_g (μ_i + μ_j), a1 = λκ/d1, a2 = λκ/d2 and
    W = a2 · cκ/d1, the field operator is, for δs = (δS, δs_R) of ψ (docs/theory.md eq. (3.20)):

        (Op ψ)_R[i, n] = Σ_k δS_ik X_r[i,k,n] + Σ_m δs_R[i,m] X_t[i,m,n]
        (Op ψ)_Q       = (A − T) + (A − T)ᵀ,
        A_ij = Σ_k Y_q[i,j,k] δS_kj + Σ_n Y_r[i,j,n] δs_R[j,n],
        T_ij = Σ_k δS_ik Z_r[i,j,k] + Σ_m δs_R[i,m] Z_t[i,j,m],

    X_r[i,k,n] = Σ_g a1[i,g] r^g_kn, X_t[i,m,n] = Σ_g a1[i,g] t^g_mn,
    Y_q[i,j,k] = Σ_g a2[i,g,j] q^g_ik, Y_r[i,j,n] = Σ_g a2[i,g,j] r^g_in,
    Z_r[i,j,k] = Σ_g W[i,g,j] (r^g s_Rᵀ)_kj, Z_t[i,j,m] = Σ_g W[i,g,j] (t^g s_Rᵀ)_mj.

    Op is linear in δs, and δs of every unit direction is cached per state
    (`_Linearisation.stein_columns`), so the m × m matrix I + c·Op is assembled by a few
    batched products and LU-factorised: the field system is solved exactly.
    """

    def __init__(self, lin: _Linearisation, shift: float, coef: float) -> None:
        self.lin, self.shift, self.coef = lin, shift, coef
        mu, kappa, lam = lin.mu, lin.kappa, lin.lam
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self.d1 = shift + coef * mu[:, None] * kappa[None, :]  # (K, G)
            self.d2 = shift + coef * (mu[:, None, None] + mu[None, None, :]) * kappa[None, :, None]
            a1 = (lam * kappa)[None, :] / self.d1
            a2 = (lam * kappa)[None, :, None] / self.d2  # (K, G, K)
            W = a2 * (coef * kappa)[None, :, None] / self.d1[:, :, None]
        K, G, M = lin.r.shape
        r_flat = lin.r.transpose(1, 0, 2).reshape(G, K * M)
        self.X_r = (a1 @ r_flat).reshape(K, K, M)
        self.X_t = (a1 @ lin.t_flat).reshape(K, M, M)
        a2_ij = a2.transpose(0, 2, 1)  # (i, j, g)
        self.Y_q = np.matmul(a2_ij, lin.q)  # (i, j, k)
        self.Y_r = np.matmul(a2_ij, lin.r)  # (i, j, n)
        W_j = W.transpose(2, 0, 1)  # (j, i, g)
        self.Z_r = np.matmul(W_j, lin.r_sR.transpose(2, 1, 0)).transpose(1, 0, 2)
        self.Z_t = np.matmul(W_j, lin.t_sR.transpose(2, 1, 0)).transpose(1, 0, 2)
        self.lu: tuple[Array, Array] | None = None
        if lin.finite:
            sys = lin.system
            oq, orr = self.field_operator(*lin.stein_columns())
            op = sys.pack(oq, orr)  # (m, m): row k is Op ψ_k
            matrix = np.eye(sys.nf) + coef * op.T
            if np.all(np.isfinite(matrix)):
                self.lu = lu_factor(matrix, check_finite=False)

    def block_solve(self, bq: Array, br: Array) -> tuple[Array, Array]:
        """P_τ b_τ = (σ + cκ_τ A)⁻¹ b_τ for all groups (frame layout; the r part first)."""
        lin, c = self.lin, self.coef
        K, G, M = br.shape
        rh = br / self.d1[:, :, None]
        X = (rh.reshape(K * G, M) @ lin.sR.T).reshape(K, G, K)  # (r̂ s̃_Rᵀ)[i, g, j]
        qh = (bq - (c * lin.kappa)[None, :, None] * (X + X.transpose(2, 1, 0))) / self.d2
        return qh, rh

    def field_operator(self, dS: Array, dsR: Array) -> tuple[Array, Array]:
        """Op ψ from δs = (δS, δs_R) of shapes (B, K, K), (B, K, M), by the folded tensors."""
        out_r = (np.matmul(dS.transpose(1, 0, 2), self.X_r)
                 + np.matmul(dsR.transpose(1, 0, 2), self.X_t)).transpose(1, 0, 2)
        A = (np.matmul(self.Y_q.transpose(1, 0, 2), dS.transpose(2, 1, 0))
             + np.matmul(self.Y_r.transpose(1, 0, 2), dsR.transpose(1, 2, 0)))  # (j, i, B)
        T = (np.matmul(self.Z_r, dS.transpose(1, 2, 0))
             + np.matmul(self.Z_t, dsR.transpose(1, 2, 0)))  # (i, j, B)
        D = A.transpose(2, 1, 0) - T.transpose(2, 0, 1)
        return D + D.transpose(0, 2, 1), out_r

    def field_operator_direct(self, dS: Array, dsR: Array) -> tuple[Array, Array]:
        """Op ψ = Σ_τ λ_τ P_τ F_τ ψ for one δs, summed over the groups (reference for tests)."""
        lin = self.lin
        qh, rh = self.block_solve(*lin.feedback(dS, dsR))
        return qh.transpose(0, 2, 1) @ lin.lam, rh.transpose(0, 2, 1) @ lin.lam

    def solve(self, b: Array) -> Array:
        lin = self.lin
        sys, U = lin.system, lin.U
        G = sys.G
        if self.lu is None:
            return np.full_like(b, np.nan)
        bq, br = _to_frame(U, *sys.unpack(np.asarray(b, dtype=float).reshape(G, sys.p)))
        uq, ur = self.block_solve(bq, br)
        rhs = sys.pack(uq.transpose(0, 2, 1) @ lin.lam, ur.transpose(0, 2, 1) @ lin.lam)
        psi = lu_solve(self.lu, rhs, check_finite=False)
        cq, cr = lin.stein_columns()
        fq, fr = lin.feedback(np.tensordot(psi, cq, axes=1), np.tensordot(psi, cr, axes=1))
        c = self.coef
        kq, kr = self.block_solve(bq - c * fq, br - c * fr)
        return sys.pack(*_from_frame(U, kq, kr)).ravel()


class FeedbackJacobian(ShiftedOperator):
    """σI + cJ̃ at one state, J̃ the Jacobian of the module docstring (the field feedback
    through s kept, through E dropped), in the form scipy's BDF uses (``c * J`` and
    ``I - c * J`` by `scalex.numerics.arrowhead.ShiftedOperator`, `factorize` and ``.solve``).

    Build it with `FeedbackJacobian.at`; ``scale`` multiplies J (log-time integration).
    """

    def __init__(self, lin: _Linearisation, shift: float = 0.0, coef: float = 1.0) -> None:
        self.lin, self.shift, self.coef = lin, shift, coef
        self.shape = lin.shape

    def __repr__(self) -> str:
        sys = self.lin.system
        return (f"FeedbackJacobian({self.shift:g}·I + {self.coef:g}·J̃; G={sys.G}, K={sys.K}, "
                f"M={sys.M}, field system m={sys.nf})")

    @classmethod
    def at(cls, system: AugmentedSystem, z: Array, scale: float = 1.0) -> FeedbackJacobian:
        """J̃ at the plain state z of ``system`` (augmented=False, no error coordinates)."""
        return cls(_Linearisation(system, z, scale))

    def factorize(self) -> _Solver:
        """The solver of (σI + cJ̃) k = b: folds the group sums into the tensors of `_Solver`."""
        return _Solver(self.lin, self.shift, self.coef)

    def matvec(self, k: Array) -> Array:
        """(σI + cJ̃) k, by the same pieces (for tests and diagnostics)."""
        lin = self.lin
        sys, U = lin.system, lin.U
        K, M, G = sys.K, sys.M, sys.G
        kq, kr = _to_frame(U, *sys.unpack(np.asarray(k, dtype=float).reshape(G, sys.p)))
        psi_q, psi_r = kq.transpose(0, 2, 1) @ lin.lam, kr.transpose(0, 2, 1) @ lin.lam
        fq, fr = lin.feedback(*lin.delta_s(psi_q, psi_r))
        kap = lin.kappa[None, :, None]
        mu = lin.mu
        X = (kr.reshape(K * G, M) @ lin.sR.T).reshape(K, G, K)
        dq = kap * ((mu[:, None, None] + mu[None, None, :]) * kq + X + X.transpose(2, 1, 0))
        dr = kap * mu[:, None, None] * kr
        oq = self.shift * kq + self.coef * (dq + fq)
        orr = self.shift * kr + self.coef * (dr + fr)
        return sys.pack(*_from_frame(U, oq, orr)).ravel()
