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

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sparse
from numpy.typing import NDArray
from scipy.integrate import BDF

Array = NDArray[np.float64]

#: Largest p for which `ArrowheadMatrix.factorize` inverts the blocks in a compiled loop.
SMALL_BLOCK_P = 16


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
