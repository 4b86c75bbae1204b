"""The two routes of `scalex.analysis.escape.escape` through (E2)–(E5) (docs/theory.md §5.2–§5.3).

Both offer the same attributes (spectra ``ev1``, ``mult1``, ``ev0``; ``mu``, ``multiplicity``)
and methods (``unstable_part``, ``symmetric_trajectory``, ``carry_unstable``, ``slaved``) on
flat packed states (…, L p) laid out as by `scalex.analysis.escape.SymmetricSystem`.

* `StructuredRoute` (default, ``method="structured"``): `scalex.analysis.escape_blocks`, the
  Jacobian through its S_K × S_M blocks, any L and K.
* `DenseRoute` (``method="dense"``): the Jacobian restricted to V1 and V0 by central
  differences of the right-hand side (two per column, one column per basis vector of the
  subspace) and diagonalised densely; the symmetric trajectory by LSODA in V0 coordinates and
  the asymmetry by explicit RK45 through the variational equation in V1 coordinates, along
  the trajectory's dense output. Cost O((L p)³) and a step limited by ηλ_1: small L only,
  the reference the structured route is tested against, and the route of a trained v.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import solve_ivp

from scalex.analysis.escape_blocks import (
    CARRY_RTOL,
    DENSE_BLOCK_MAX,
    MAX_RHS,
    TRAJECTORY_RTOL,
    BlockSpectrum,
    SymmetricBlocks,
)
from scalex.model.setup import Setup

#: `scalex.analysis.escape.SymmetricSystem` (not imported: escape imports this module)
SymmetricSystem = Any

__all__ = ["DenseRoute", "StructuredRoute"]

Array = NDArray[np.float64]

#: Largest L·m_ρ of a block whose rightmost eigenvalue the secular equation cannot resolve (it
#: lies among the poles) that is then diagonalised densely instead.
UNRESOLVED_DENSE_MAX = 4096


class DenseRoute:
    """Dense linearisation at the fixed point ``xstar`` of ``system`` (module docstring)."""

    name = "dense"

    def __init__(self, system: SymmetricSystem, xstar: Array) -> None:
        self.system = sys_ = system
        J1 = sys_.jacobian(xstar, 1)
        self.J0 = sys_.jacobian(xstar, 0)
        ev1, W = np.linalg.eig(J1) if J1.size else (np.zeros(0, complex), np.zeros((0, 0)))
        ev0 = np.linalg.eigvals(self.J0)
        order = np.argsort(-ev1.real)
        self.ev1, self.W = ev1[order], W[:, order]
        self.mult1 = np.ones(self.ev1.size, dtype=np.int64)
        self.ev0 = ev0[np.argsort(-ev0.real)]
        self.mu = float(self.ev1[0].real) if self.ev1.size else float("nan")
        self.multiplicity = 0
        if self.mu > 0:
            # the degenerate copies of μ (one irreducible representation) agree to
            # finite-difference accuracy (~1e-9 absolute); the next eigenvalues are far below
            self.sel = np.abs(self.ev1.real - self.mu) <= 1e-4 * abs(self.mu) + 1e-10
            self.Winv = np.linalg.inv(self.W)
            self.multiplicity = int(self.sel.sum())

    def unstable_part(self, dX: Array) -> Array:
        """Components (D, n) of dX (D, n) in the unstable eigenspace (real for conjugate pairs)."""
        sys_ = self.system
        coef = self.Winv[self.sel] @ sys_.coords(dX, 1).T
        return sys_.vector((self.W[:, self.sel] @ coef).real.T, 1)

    def symmetric_trajectory(self, y0: Array, hi: float, alpha: Array) -> tuple[Array, Any]:
        """ε_sym on ``alpha`` (NaN past a failure) and the LSODA solution in V0 coordinates."""
        sys_ = self.system
        traj = solve_ivp(lambda _a, y: sys_.coords(sys_.rhs(sys_.vector(y, 0)), 0), (0.0, hi),
                         y0.ravel(), method="LSODA", t_eval=alpha, rtol=1e-9, atol=1e-12,
                         dense_output=True)
        eg = np.full(alpha.shape, np.nan)
        eg[: traj.y.shape[1]] = sys_.eg(sys_.vector(traj.y.T, 0))
        return eg, traj

    def carry_unstable(self, dX0: Array, traj: Any, y0: Array, a_s: float) -> Array:
        """Unstable parts at α_s of dX0 (D, n), carried by the variational equation
        d(δx)/dα = J(x_sym(α)) δx along the symmetric trajectory ``traj`` (its dense output).

        δx stays in V1 (J commutes with S_K × S_M at symmetric x), so it is carried in V1
        coordinates, each product J δx by one directional difference. Explicit RK45: BDF
        and LSODA with finite-difference Jacobians of J|V1 along the trajectory were far
        slower (K = 2, L = 32, trained v: RK45 in 6 s, both not done in 200 s).
        """
        sys_ = self.system
        D = dX0.shape[0]
        m = sys_.dim(1)
        c0 = sys_.coords(dX0, 1)
        scale = np.linalg.norm(c0, axis=1)
        scale[scale == 0] = 1.0
        del y0  # the trajectory's own start

        def fun(a: float, z: Array) -> Array:
            x = sys_.vector(traj.sol(a), 0)
            return np.concatenate([sys_.coords(sys_.jvp(x, sys_.vector(c, 1)), 1)
                                   for c in z.reshape(D, m)])

        carried = solve_ivp(fun, (0.0, a_s), (c0 / scale[:, None]).ravel(), method="RK45",
                            rtol=CARRY_RTOL, atol=CARRY_RTOL * 1e-4)
        cs = carried.y[:, -1].reshape(D, m) * scale[:, None]
        return self.unstable_part(sys_.vector(cs, 1))

    def slaved(self, r: Array, sigma: float) -> Array:
        """(σ − J|V0)⁻¹ r for V0 coordinates r (L, p0)."""
        rhs = np.asarray(r, dtype=float).ravel()
        return np.linalg.solve(sigma * np.eye(rhs.size) - self.J0, rhs).reshape(r.shape)


class StructuredRoute:
    """What `scalex.analysis.escape.escape` needs from the linearisation (module docstring),
    on flat packed states (…, L p) as `SymmetricSystem` lays them out.

    Blocks larger than ``dense_max`` rows give only their rightmost real eigenvalue, from the
    secular equation above the poles. A block without such a root whose poles reach the μ found
    elsewhere is diagonalised densely (up to `UNRESOLVED_DENSE_MAX` rows; beyond, an error).
    """

    name = "structured"

    def __init__(self, setup: Setup, xstar: Array, dense_max: int = DENSE_BLOCK_MAX,
                 max_rhs: int | None = MAX_RHS) -> None:
        b = self.blocks = SymmetricBlocks(setup, max_rhs)
        self.L, self.p = b.L, b.h0.shape[1]
        self.ystar = b.triv.analysis(xstar.reshape(self.L, self.p))[..., 0]
        self.v0 = b.spectrum(b.triv, self.ystar, dense_max)
        self.v1 = [b.spectrum(ir, self.ystar, dense_max) for ir in b.irreps[1:]]
        self.ev0 = self.v0.eigenvalues
        self._collect_spectra()
        # a large block without a root above its poles, with poles above the μ found so far,
        # may hide the rightmost eigenvalue among the poles: diagonalise it densely
        unsure = [i for i, sp in enumerate(self.v1) if not sp.complete
                  and sp.eigenvalues.size == 0 and not sp.pole_bound < self.mu]
        if unsure:
            if max(self.L * self.v1[i].irrep.m for i in unsure) > UNRESOLVED_DENSE_MAX:
                raise RuntimeError(
                    f"escape: the rightmost eigenvalue of the block(s) "
                    f"{[self.v1[i].irrep.name for i in unsure]} lies among the poles of the "
                    f"secular equation and the block is too large for a dense eigenproblem")
            for i in unsure:
                self.v1[i] = b.spectrum(self.v1[i].irrep, self.ystar, UNRESOLVED_DENSE_MAX)
            self._collect_spectra()
        self.multiplicity = 0
        self.selected: list[BlockSpectrum] = []
        if not self.mu > 0:
            return
        tol = 1e-4 * abs(self.mu) + 1e-10
        for sp in self.v1:
            if sp.rightmost >= self.mu - tol:
                b.eigenvectors(sp, self.mu, tol)
                self.selected.append(sp)
                self.multiplicity += sp.right.shape[1] * sp.irrep.dim

    def _collect_spectra(self) -> None:
        """ev1, mult1 and μ (the rightmost eigenvalue found; NaN without V1) from the blocks."""
        ev = [sp.eigenvalues for sp in self.v1]
        mult = [np.full(sp.eigenvalues.size, sp.irrep.dim) for sp in self.v1]
        ev1 = np.concatenate(ev) if ev else np.zeros(0, complex)
        order = np.argsort(-ev1.real, kind="stable")
        self.ev1 = ev1[order]
        self.mult1 = (np.concatenate(mult) if mult else np.zeros(0, int))[order]
        self.mu = float(self.ev1[0].real) if self.ev1.size else float("nan")

    def _parts(self, dX: Array, transform: Callable[[BlockSpectrum, Array], Array]) -> Array:
        """Σ over the selected blocks of synthesis(transform(block, coefficients of dX))."""
        D = dX.shape[0]
        out = np.zeros((D, self.L, self.p))
        for sp in self.selected:
            ir = sp.irrep
            c = ir.analysis(dX.reshape(D, self.L, self.p))  # (D, L, m, d')
            c = np.moveaxis(c, 0, -2).reshape(self.L * ir.m, D, ir.ambient)
            u = transform(sp, c.reshape(self.L * ir.m, -1)).reshape(self.L * ir.m, D, -1)
            out += ir.synthesis(np.moveaxis(u.reshape(self.L, ir.m, D, -1), 2, 0))
        return out.reshape(D, -1)

    def unstable_part(self, dX: Array) -> Array:
        """Components (D, n) of asymmetries dX (D, n) in the unstable eigenspace."""
        return self._parts(dX, self.blocks.unstable)

    def symmetric_trajectory(self, y0: Array, hi: float, alpha: Array) -> tuple[Array, Any]:
        """ε_sym on ``alpha`` (NaN past a failure) and the trajectory (E3)."""
        b = self.blocks
        traj = b.trajectory(y0, (0.0, hi), alpha, rtol=TRAJECTORY_RTOL, atol=1e-12)
        Y = traj.y[-b.p0:].T  # fields on alpha
        eg = np.full(alpha.shape, np.nan)
        for k in range(0, Y.shape[0], 64):
            C = b.covariance(Y[k:k + 64] @ b.h0)
            eg[k:k + C.shape[0]] = b.coarse.generalization_error(C, b.v, b.w)
        return eg, traj

    def carry_unstable(self, dX0: Array, traj: Any, y0: Array, a_s: float) -> Array:
        """Unstable parts (D, n) at α_s of the asymmetries dX0 (D, n) at α = 0 (E4): the
        spectral projection at α_s, right · (left · c(α_s)), with left · c(α_s) = ψ(0) · c(0)
        from the adjoint (`SymmetricBlocks.adjoint`)."""

        def carried(sp: BlockSpectrum, c: Array) -> Array:
            psi = self.blocks.adjoint(sp.irrep, sp.left, traj, y0, a_s, rtol=CARRY_RTOL,
                                      atol=CARRY_RTOL * 1e-3 * np.abs(sp.left).max())
            return np.real(sp.right @ (psi @ c))

        return self._parts(dX0, carried)

    def slaved(self, r: Array, sigma: float) -> Array:
        """(σ − J|V0)⁻¹ r for V0 coordinates r (L, p0)."""
        return self.blocks.solve_v0(self.v0, sigma, r)
