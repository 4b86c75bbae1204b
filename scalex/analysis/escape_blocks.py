"""The structured linearisation of the symmetric plateau (docs/theory.md eqs. (5.3)–(5.5)).

`escape` needs four things from the Jacobian J of the per-group ODE near the symmetric
subspace: its spectrum on V1 and V0, the unstable eigenspace, the linearised dynamics along the
symmetric trajectory, and solves with 2μ − J|V0. Built as dense matrices they cost
O((L p)²) right-hand sides and O((L p)³) operations; here they cost O(L) per step and
nothing grows with K beyond O(K²(K+M)) array work.

Structure used (docs/theory.md §3.6, §5.2). At a symmetric state x (every x_τ in V0), with
fields Y = Σ_τ λ_τ x_τ, a trained group moves as ẋ_τ = ηλ_τ [A(s(Y)) x_τ + f_τ b(s, E)]
(t^τ = f_τ I), so

    ∂ẋ_τ/∂x_σ = β_τ (δ_τσ Â + λ_σ B_τ),    β_τ = ηλ_τ (0 for frozen groups),

with Â = A(s) and B_τ δ = A(ds[δ]) x_τ + f_τ b(ds[δ], dE[δ]) (ds, dE: the change of the
moments along the field direction δ). At the fixed point B_τ = f_τ B̂: eq. (5.3). J commutes with
S_K × S_M, so on each irreducible representation ρ (`scalex.analysis.escape_symmetry.Irrep`,
m_ρ ≤ 3 copies per group) it is the L m_ρ × L m_ρ matrix J_ρ with m_ρ × m_ρ blocks, repeated
identically on all d_ρ dimensions of ρ. Â_ρ is read from A applied to the m_ρ representative
vectors, B_ρ from the moments along them (central differences, `UnitClasses`: O(1) in K).

* Spectrum of J_ρ (`SymmetricBlocks.spectrum`): dense `eig` for L m_ρ ≤ `DENSE_BLOCK_MAX`;
  above, its rightmost real eigenvalue from the m_ρ × m_ρ secular equation (5.4),
  det[I − Σ_τ λ_τ g_τ (μ − β_τ Â)⁻¹ B̂] = 0 (g_τ = β_τ f_τ), smooth for μ above every pole
  β_τ λ(Â), with right eigenvector x_τ = (μ − β_τ Â)⁻¹ g_τ B̂ Y and left eigenvector
  w_σ = λ_σ (μ − β_σ Â)⁻ᵀ Ω, Y and Ω spanning the null spaces of the secular matrix and its
  transpose (`SymmetricBlocks.eigenvectors`).
* Symmetric trajectory (`SymmetricBlocks.trajectory`): the ODE restricted to V0 (p0 ≤ 3 numbers
  per group), augmented with the fields, by BDF with the arrowhead Jacobian
  (`scalex.numerics.arrowhead`, A = Â_triv, D_τ = β_τ B_τ).
* Variational equation (`SymmetricBlocks.adjoint`): along that trajectory the ρ-component of an
  asymmetry obeys ċ = J_ρ(α) c, J_ρ = blockdiag(β_τ Â_ρ) + U Vᵀ of rank m_ρ. Only its
  projection on the unstable left eigenvector at α_s is needed, so the adjoint ψ̇ = −J_ρᵀ ψ is
  integrated once, backwards from α_s, by BDF whose Newton systems are solved by Woodbury
  (`BlockLowRank`): one solve serves every draw and every dimension of ρ. Both integrations
  are implicit, so their steps are not limited by the fast rates ~ηλ_1.
* (2μ − J|V0)⁻¹ (`SymmetricBlocks.solve_v0`) by block elimination.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sparse
from numpy.typing import NDArray
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from scalex.analysis.escape_symmetry import Irrep, UnitClasses, irreps
from scalex.engines.ode_system import group_rates
from scalex.model.setup import Setup
from scalex.numerics.arrowhead import (
    ArrowheadBDF,
    ArrowheadMatrix,
    ShiftedOperator,
    bdf_internals_message,
    bdf_internals_problem,
)

__all__ = ["DENSE_BLOCK_MAX", "MAX_RHS", "BlockSpectrum", "IntegrationBudgetError",
           "SymmetricBlocks"]

Array = NDArray[np.float64]

#: Largest L·m_ρ for which the spectrum of an irreducible block is computed in full (dense eig).
DENSE_BLOCK_MAX = 256
#: Relative tolerance of the symmetric trajectory (E3). Near the fixed point the rates are
#: round-off (~1e-16 ηλ_1 relative): BDF's Newton test then caps the step at
#: ~rtol^1.5/(1e-16 ηλ_1), and a tighter rtol makes long plateaus (α ~ 1e7 at K = 40) crawl.
TRAJECTORY_RTOL = 1e-7
#: Relative tolerance of the variational equation (E4). The plateau length depends on the
#: carried amplitude A_s only through ln A_s / μ, so 1e-6 moves it by ~1e-6/μ in α.
CARRY_RTOL = 1e-6
#: Central-difference step of the moments along a unit field direction.
FD_STEP = 1e-6
#: Default budget of right-hand sides per integration (trajectory, adjoint). Typical runs take
#: 100–1500 (K = 2 … 40, L = 1 … 1024); a run near the edge of the theory may crawl for hours
#: instead (K = M = 40, L = 1, σ_J = 1e-6: the steps fall from 1e6 to 2e3 near α ≈ 1e7).
MAX_RHS = 20_000


class IntegrationBudgetError(RuntimeError):
    """An integration of the structured route needed more right-hand sides than its budget."""

    def __init__(self, alpha: float, max_rhs: int) -> None:
        super().__init__(f"more than {max_rhs} right-hand sides by α = {alpha:.4g}")
        self.alpha, self.max_rhs = float(alpha), int(max_rhs)


# --------------------------------------------------------------------------- structured BDF
class BlockLowRank(ShiftedOperator):
    """shift · I + coef · J for J = blockdiag(β_τ A) + U Vᵀ (A (p, p) shared by G blocks; U, V
    (G p, r)), acting on ``ncols`` columns that share J (state laid out (G, p, ncols)).

    Solved by Woodbury: with P = (σ + cβ_τ A)⁻¹ blockwise, x = P b − P U (I + c Vᵀ P U)⁻¹ c Vᵀ P b,
    O(G p³ + G p r²) per factorisation and O(G p (p + r) ncols) per solve.
    """

    def __init__(self, A: Array, beta: Array, U: Array, V: Array, ncols: int = 1,
                 shift: float = 0.0, coef: float = 1.0) -> None:
        self.A, self.beta, self.U, self.V, self.ncols = A, beta, U, V, ncols
        self.shift, self.coef = shift, coef
        n = beta.size * A.shape[0] * ncols
        self.shape = (n, n)

    def toarray(self) -> Array:
        """Dense form of one column's matrix (tests, fallback)."""
        single = (np.kron(np.diag(self.beta), self.A) + self.U @ self.V.T) * self.coef
        return single + self.shift * np.eye(single.shape[0])

    def factorize(self) -> _LowRankLU:
        G, p = self.beta.size, self.A.shape[0]
        blocks = (self.coef * self.beta)[:, None, None] * self.A
        blocks[:, np.arange(p), np.arange(p)] += self.shift
        P = np.linalg.inv(blocks)
        PU = (P @ self.U.reshape(G, p, -1)).reshape(G * p, -1)
        cap = np.eye(PU.shape[1]) + self.coef * (self.V.T @ PU)
        return _LowRankLU(P, PU, np.linalg.inv(cap), self.coef * self.V.T, self.ncols)


@dataclass
class _LowRankLU:
    P: Array
    PU: Array
    cap_inv: Array
    cVt: Array
    ncols: int

    def solve(self, b: Array) -> Array:
        G, p, _ = self.P.shape
        y = (self.P @ np.asarray(b, dtype=float).reshape(G, p, self.ncols)).reshape(G * p, -1)
        return (y - self.PU @ (self.cap_inv @ (self.cVt @ y))).ravel()


def _integrate(fun: Callable, jac: Callable, span: tuple[float, float], z0: Array,
               max_rhs: int | None = None, **options: Any) -> Any:
    """solve_ivp with `ArrowheadBDF` (jac returns an `ArrowheadMatrix` or a `BlockLowRank`,
    both solved through their ``factorize``), or scipy's BDF with the same Jacobian in CSC form
    when scipy's internals do not allow it. Past ``max_rhs`` right-hand sides it raises
    `IntegrationBudgetError`."""
    if max_rhs is not None:
        inner, calls = fun, [0]

        def fun(a: float, z: Array) -> Array:
            calls[0] += 1
            if calls[0] > max_rhs:
                raise IntegrationBudgetError(a, max_rhs)
            return inner(a, z)

    problem = bdf_internals_problem()
    if problem is not None:
        warnings.warn(bdf_internals_message(problem), RuntimeWarning, stacklevel=3)
    # scipy's BDF subtracts rows of its difference array before they are first written
    # (np.empty), which may warn on garbage that is overwritten right after; non-finite
    # trial states are rejected by its Newton iteration
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if problem is None:
            return solve_ivp(fun, span, z0, method=ArrowheadBDF, jac=jac, **options)
        return solve_ivp(fun, span, z0, method="BDF", jac=lambda a, z: _csc(jac(a, z)),
                         **options)


def _csc(J: ArrowheadMatrix | BlockLowRank) -> sparse.csc_matrix:
    """A structured Jacobian as a sparse matrix (for scipy's own BDF)."""
    if isinstance(J, BlockLowRank):
        return sparse.kron(sparse.csc_matrix(J.toarray()), sparse.identity(J.ncols),
                           format="csc")
    G, p, _ = J.D.shape
    blocks = [[sparse.block_diag([b * J.A for b in J.beta]),
               sparse.csr_matrix(J.D.reshape(G * p, p))],
              [sparse.csr_matrix(np.concatenate([w * J.A for w in J.lam * J.beta], axis=1)),
               sparse.csr_matrix(J.E)]]
    return (J.coef * sparse.bmat(blocks) + J.shift * sparse.identity(G * p + p)).tocsc()


# --------------------------------------------------------------------------- spectra
@dataclass
class BlockSpectrum:
    """Spectral data of one irreducible block J_ρ at the fixed point.

    ``eigenvalues``: all eigenvalues of J_ρ (``complete``) or its rightmost real one;
    ``pole_bound``: max Re of the poles β_τ λ(Â) (eigenvalues above it solve eq. (5.4));
    ``right``/``left``: eigenvector matrices (L m, k) and (k, L m) of the selected eigenvalues
    (set by `SymmetricBlocks.eigenvectors`), with left @ right = I.
    """

    irrep: Irrep
    eigenvalues: NDArray[np.complex128]
    complete: bool
    pole_bound: float
    A: Array
    B: Array
    right: NDArray[np.complex128] | None = None
    left: NDArray[np.complex128] | None = None

    @property
    def rightmost(self) -> float:
        return float(self.eigenvalues.real.max()) if self.eigenvalues.size else -np.inf


# --------------------------------------------------------------------------- the system
class SymmetricBlocks:
    """Structured Jacobian blocks of a soft committee machine's per-group ODE (module doc)."""

    def __init__(self, setup: Setup, max_rhs: int | None = MAX_RHS) -> None:
        v, w = setup.second_layer
        self.setup = setup
        #: budget of right-hand sides per integration (`IntegrationBudgetError`); None: none
        self.max_rhs = max_rhs
        sp = setup.spectrum
        self.K, self.M, self.L = setup.K, setup.M, sp.L
        self.lam, self.frac = sp.eigenvalues, sp.fractions
        self.v, self.w = np.asarray(v, float), np.asarray(w, float)
        self.eta, self.noise = setup.eta, setup.noise
        self.trained = np.asarray(setup.trained_groups, bool)
        self.beta = self.eta * self.lam * self.trained
        self.irreps = irreps(self.K, self.M)
        self.triv = self.irreps[0]
        self.p0 = self.triv.m
        self.h0 = self.triv.representatives()  # (p0, p): V0 of one group
        self.coarse = UnitClasses(self.K, self.M)  # symmetric covariances
        self.fine = UnitClasses(self.K, self.M, range(4), range(2))  # along representatives
        self.iu = np.triu_indices(self.K)
        self.T = float(self.lam @ self.frac) * np.eye(self.M)  # Σ_τ λ_τ t^τ, t^τ = f_τ I
        self._cache: dict[tuple[str, bool, bytes], Any] = {}

    # ---------------------------------------------------------------- elementary pieces
    def covariance(self, fields: Array) -> Array:
        """C of packed fields (…, p) = (upper triangle of Q, R)."""
        fields = np.asarray(fields, dtype=float)
        K, nq = self.K, len(self.iu[0])
        C = np.zeros((*fields.shape[:-1], K + self.M, K + self.M))
        C[..., self.iu[0], self.iu[1]] = fields[..., :nq]
        C[..., self.iu[1], self.iu[0]] = fields[..., :nq]
        R = fields[..., nq:].reshape(*fields.shape[:-1], K, self.M)
        C[..., :K, K:] = R
        C[..., K:, :K] = np.swapaxes(R, -1, -2)
        C[..., K:, K:] = self.T
        return C

    def moments(self, fields: Array, fine: bool = False) -> tuple[Array, Array]:
        """(s, E) at packed fields (p,), by `UnitClasses` (fine: along a representative)."""
        return (self.fine if fine else self.coarse).moments(self.covariance(fields), self.v,
                                                            self.w, self.noise)

    def linear(self, x: Array, s: Array) -> Array:
        """A(s) x for packed states x (k, p): the part of the rate linear in x_τ (eq. (3.15))."""
        q, r = self._unpack(x)
        one = np.ones(x.shape[0])
        dq, dr = group_rates(q, r, None, s[None], None, one, one, 1.0)
        return self._pack(dq, dr)

    def forcing(self, s: Array, E: Array) -> Array:
        """b/f_τ = (η E, s_R) packed: the rest of the rate over ηλ_τ f_τ when t^τ = f_τ I."""
        return self._pack((self.eta * E)[None], s[None, :, self.K:])[0]

    def _unpack(self, x: Array) -> tuple[Array, Array]:
        nq = len(self.iu[0])
        q = np.zeros((x.shape[0], self.K, self.K))
        q[:, self.iu[0], self.iu[1]] = x[:, :nq]
        q[:, self.iu[1], self.iu[0]] = x[:, :nq]
        return q, x[:, nq:].reshape(-1, self.K, self.M)

    def _pack(self, q: Array, r: Array) -> Array:
        return np.concatenate([q[:, self.iu[0], self.iu[1]], r.reshape(r.shape[0], -1)], axis=1)

    @staticmethod
    def _coef(ir: Irrep, x: Array) -> Array:
        """(k, m): coefficients of packed vectors x (k, p) along the representatives of ir."""
        return x @ ir.representatives().T

    def fields(self, y: Array) -> Array:
        """V0 coordinates of the fields, Σ_τ λ_τ y_τ, for V0 states y (…, L, p0)."""
        return np.einsum("g,...gk->...k", self.lam, y)

    # ---------------------------------------------------------------- blocks
    def blocks(self, ir: Irrep, Y: Array, derivative: bool = True
               ) -> tuple[Array, Array, Array, Array]:
        """(Â, W, V, b0) of representation ir at symmetric fields Y (V0 coordinates, p0).

        Â (m, m): A(s) on the copies. B_τ = Σ_k y_τk W[k] + f_τ V for a group in V0 state
        y_τ (W (p0, m, m), V (m, m); zeros without ``derivative``). b0 (p0,): the V0
        coordinates of b/f_τ (used for ir = triv).
        """
        key = (ir.name, derivative, np.asarray(Y, dtype=float).tobytes())
        if key in self._cache:
            return self._cache[key]
        base = Y @ self.h0
        s, E = self.moments(base)
        reps = ir.representatives()
        A = self._coef(ir, self.linear(reps, s)).T
        b0 = self._coef(self.triv, self.forcing(s, E)[None])[0]
        W = np.zeros((self.p0, ir.m, ir.m))
        V = np.zeros((ir.m, ir.m))
        if derivative:
            for c, rep in enumerate(reps):
                sp, Ep = self.moments(base + FD_STEP * rep, fine=True)
                sm, Em = self.moments(base - FD_STEP * rep, fine=True)
                ds, dE = (sp - sm) / (2 * FD_STEP), (Ep - Em) / (2 * FD_STEP)
                W[:, :, c] = self._coef(ir, self.linear(self.h0, ds))
                V[:, c] = self._coef(ir, self.forcing(ds, dE)[None])[0]
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = (A, W, V, b0)
        return A, W, V, b0

    def group_blocks(self, W: Array, V: Array, y: Array) -> Array:
        """B_τ (L, m, m) for the groups' V0 states y (L, p0)."""
        return np.einsum("gk,kab->gab", y, W) + self.frac[:, None, None] * V

    # ---------------------------------------------------------------- spectra at x*
    def spectrum(self, ir: Irrep, ystar: Array, dense_max: int = DENSE_BLOCK_MAX
                 ) -> BlockSpectrum:
        """Spectral data of J_ρ at the fixed point with V0 states ystar (L, p0); trained
        groups are x_τ = f_τ x̂ there (eq. (5.2)), so B_τ = f_τ B̂."""
        g0 = int(np.flatnonzero(self.trained)[0])
        xhat = ystar[g0] / self.frac[g0]
        A, W, V, _ = self.blocks(ir, self.fields(ystar))
        B = np.einsum("k,kab->ab", xhat, W) + V
        ev_A = np.linalg.eigvals(A)
        tr = self.trained
        poles = np.concatenate([np.outer(self.beta[tr], ev_A).real.ravel(),
                                [0.0] if not tr.all() else []])
        bound = float(poles.max()) if poles.size else -np.inf
        m = ir.m
        if self.L * m <= dense_max:
            ev = np.linalg.eigvals(self.dense(A, B))
            return BlockSpectrum(ir, ev[np.argsort(-ev.real)], True, bound, A, B)
        root = self._secular_root(A, B, bound)
        ev = np.array([root], dtype=complex) if np.isfinite(root) else np.zeros(0, complex)
        return BlockSpectrum(ir, ev, False, bound, A, B)

    def dense(self, A: Array, B: Array) -> Array:
        """J_ρ as a dense (L m, L m) matrix: β_τ (δ_τσ Â + f_τ λ_σ B̂), group-major."""
        g = self.beta * self.frac
        return np.kron(np.diag(self.beta), A) + np.kron(np.outer(g, self.lam), B)

    def _secular(self, A: Array, B: Array, mu: Array) -> Array:
        """The secular matrix I − Σ_τ λ_τ g_τ (μ − β_τ Â)⁻¹ B̂ for μ (n,): (n, m, m).

        In the eigenbasis Â = U diag(a) U⁻¹ the sum is U diag(Σ_τ w_τ/(μ − β_τ a_i)) U⁻¹
        (w_τ = λ_τ g_τ), O(n L m); an ill-conditioned U falls back to L inverses per μ.
        """
        tr = self.trained
        m = A.shape[0]
        eye = np.eye(m)
        beta = self.beta[tr]
        weights = (self.lam * self.beta * self.frac)[tr]
        a, U = np.linalg.eig(A)
        if np.linalg.cond(U) < 1e8:
            sums = np.einsum("g,ngi->ni", weights,
                             1.0 / (mu[:, None, None] - beta[None, :, None] * a[None, None, :]))
            S = np.real(np.einsum("ij,nj,jk->nik", U, sums, np.linalg.inv(U)))
        else:
            mats = mu[:, None, None, None] * eye - beta[None, :, None, None] * A
            S = np.einsum("g,ngab->nab", weights, np.linalg.inv(mats))
        return eye - S @ B

    def _secular_root(self, A: Array, B: Array, bound: float) -> float:
        """Rightmost real root of det(secular matrix) above ``bound``; NaN if there is none."""
        g = self.beta * self.frac
        top = (self.beta.max() * np.linalg.norm(A, 2)
               + np.linalg.norm(g) * np.linalg.norm(self.lam) * np.linalg.norm(B, 2))
        scale = max(top, abs(bound), 1e-300)
        offsets = np.geomspace(1e-12 * scale, 2 * top + scale, 600)
        mu = bound + offsets
        f = np.linalg.det(self._secular(A, B, mu))
        change = np.flatnonzero(np.sign(f[:-1]) != np.sign(f[1:]))
        if not change.size:
            return float("nan")
        i = change[-1]

        def det(x: float) -> float:
            return float(np.linalg.det(self._secular(A, B, np.array([x]))[0]))

        return float(brentq(det, mu[i], mu[i + 1], xtol=1e-15 * scale, rtol=1e-15))

    def eigenvectors(self, spec: BlockSpectrum, mu: float, tol: float) -> None:
        """Set ``spec.right``/``spec.left`` for the eigenvalues within ``tol`` of μ: from the
        secular equation for a simple real eigenvalue above the poles, else from dense eig."""
        sel = np.abs(spec.eigenvalues.real - mu) <= tol
        top = spec.eigenvalues[sel]
        if sel.sum() != 1 or top[0].imag != 0 or not mu > spec.pole_bound:
            # several eigenvalues at μ, a complex pair, or μ among the poles: dense
            ev, vec = np.linalg.eig(self.dense(spec.A, spec.B))
            sel = np.abs(ev.real - mu) <= tol
            spec.right = vec[:, sel]
            spec.left = np.linalg.inv(vec)[sel]
            return
        mu = float(top[0].real)
        A, B, m = spec.A, spec.B, spec.A.shape[0]
        S = self._secular(A, B, np.array([mu]))[0]
        Y = np.linalg.svd(S)[2][-1]  # null vector of S
        Om = np.linalg.svd(S.T)[2][-1]  # null vector of Sᵀ
        mats = mu * np.eye(m) - self.beta[:, None, None] * A
        g = self.beta * self.frac
        right = np.linalg.solve(mats, (g[:, None] * (B @ Y)[None, :])[..., None])[..., 0]
        left = self.lam[:, None] * np.linalg.solve(np.swapaxes(mats, 1, 2),
                                                   np.broadcast_to(Om, (self.L, m))[..., None]
                                                   )[..., 0]
        right, left = right.ravel(), left.ravel()
        left = left / (left @ right)
        spec.right, spec.left = right[:, None].astype(complex), left[None, :].astype(complex)

    @staticmethod
    def unstable(spec: BlockSpectrum, c: Array) -> Array:
        """Spectral projection of coefficients c (…, L m, d') on the selected eigenvectors."""
        return np.real(spec.right @ (spec.left @ c))

    # ---------------------------------------------------------------- symmetric trajectory
    def trajectory(self, y0: Array, span: tuple[float, float], alpha: Array, rtol: float,
                   atol: float) -> Any:
        """The ODE restricted to V0 from V0 states y0 (L, p0) (module docstring); solve_ivp
        result with ``y`` the trained groups' states on ``alpha`` and ``sol`` the dense output,
        both as (G p0 + p0) vectors: trained groups, then the fields Y."""
        tr = self.trained
        G, p0 = int(tr.sum()), self.p0
        frozen = self.fields(np.where(tr[:, None], 0.0, y0))
        beta, lam, f = self.beta[tr], self.lam[tr], self.frac[tr]

        def split(z: Array) -> tuple[Array, Array]:
            return z[: G * p0].reshape(G, p0), z[G * p0:]

        def fun(_a: float, z: Array) -> Array:
            y, Y = split(z)
            A, _, _, b0 = self.blocks(self.triv, Y, derivative=False)
            dy = beta[:, None] * (y @ A.T + f[:, None] * b0)
            return np.concatenate([dy.ravel(), lam @ dy])

        def jac(_a: float, z: Array) -> ArrowheadMatrix:
            y, Y = split(z)
            A, W, V, _ = self.blocks(self.triv, Y)
            D = beta[:, None, None] * (np.einsum("gk,kab->gab", y, W) + f[:, None, None] * V)
            return ArrowheadMatrix(A, beta, lam, D, np.einsum("g,gab->ab", lam, D))

        z0 = np.concatenate([y0[tr].ravel(), frozen + lam @ y0[tr]])
        return _integrate(fun, jac, span, z0, max_rhs=self.max_rhs, t_eval=alpha, rtol=rtol,
                          atol=atol, dense_output=True)

    def trajectory_states(self, traj: Any, alpha: float, y0: Array) -> Array:
        """V0 states (L, p0) of all groups on the trajectory at α (frozen groups from y0)."""
        tr = self.trained
        y = y0.copy()
        y[tr] = traj.sol(alpha)[: int(tr.sum()) * self.p0].reshape(-1, self.p0)
        return y

    # ---------------------------------------------------------------- variational equation
    def adjoint(self, ir: Irrep, left: NDArray[np.complex128], traj: Any, y0: Array,
                a_s: float, rtol: float, atol: float) -> NDArray[np.complex128]:
        """Rows ψ(0) (k, L m) with ψ(0)·c(0) = left·c(α_s) for every solution c of the
        variational equation ċ = J_ρ(α) c along the symmetric trajectory (E4).

        J_ρ(α) = blockdiag(β_τ Â_ρ) + U Vᵀ with U_σ = λ_σ I, V_τ = β_τ B_ρ,τ (module docstring),
        so the adjoint ψ̇ = −J_ρᵀ ψ, ψ(α_s) = leftᵀ, integrated from α_s back to 0, has the
        same structure: one solve for the k selected rows instead of one per asymmetry.
        """
        L, m = self.L, ir.m
        k = left.shape[0]
        complex_rows = bool(np.any(left.imag))
        rows = (np.concatenate([left.real, left.imag]) if complex_rows else left.real).T
        ncols = rows.shape[1]
        U = np.kron(self.lam[:, None], np.eye(m))  # (L m, m)

        def operators(a: float) -> tuple[Array, Array]:
            y = self.trajectory_states(traj, a, y0)
            A, W, V, _ = self.blocks(ir, self.fields(y))
            return A, (self.beta[:, None, None] * self.group_blocks(W, V, y)).reshape(L * m, m)

        def fun(a: float, z: Array) -> Array:
            A, Vb = operators(a)
            psi = z.reshape(L, m, ncols)
            out = self.beta[:, None, None] * (A.T @ psi)
            out += (U @ (Vb.T @ psi.reshape(L * m, ncols))).reshape(L, m, ncols)
            return -out.ravel()

        def jac(a: float, _z: Array) -> BlockLowRank:
            A, Vb = operators(a)
            return BlockLowRank(-A.T, self.beta, -U, Vb, ncols)

        sol = _integrate(fun, jac, (a_s, 0.0), rows.ravel(), max_rhs=self.max_rhs, rtol=rtol,
                         atol=atol)
        if sol.status != 0:
            raise RuntimeError(f"escape: the variational equation failed: {sol.message}")
        psi = sol.y[:, -1].reshape(L * m, ncols)
        return (psi[:, :k] + 1j * psi[:, k:] if complex_rows else psi.astype(complex)).T

    # ---------------------------------------------------------------- (σ − J|V0)⁻¹
    def solve_v0(self, spec: BlockSpectrum, sigma: float, r: Array) -> Array:
        """(σ − J|V0)⁻¹ r for r (L, p0) at the fixed point, by block elimination:
        w_τ = P_τ (r_τ + g_τ B̂ W), W = Σ λ_τ w_τ, P_τ = (σ − β_τ Â)⁻¹."""
        A, B = spec.A, spec.B
        m = A.shape[0]
        P = np.linalg.inv(sigma * np.eye(m) - self.beta[:, None, None] * A)
        g = self.beta * self.frac
        Pr = np.einsum("gab,gb->ga", P, r)
        lhs = np.eye(m) - np.einsum("g,gab->ab", self.lam * g, P) @ B
        W = np.linalg.solve(lhs, self.lam @ Pr)
        return Pr + g[:, None] * np.einsum("gab,b->ga", P, B @ W)
