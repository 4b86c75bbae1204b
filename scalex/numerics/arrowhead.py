"""Physics-free arrowhead linear algebra and scipy's BDF with block elimination.

The matrices here have the form

    J = [[blockdiag(β_τ A), D], [(λ_τ β_τ A)_τ, E]]

with one p × p block A shared by G diagonal blocks (scaled by β_τ), a border D (G, p, m),
bottom blocks λ_τ β_τ A and a corner E (m, m). `ArrowheadMatrix` stores σI + cJ in this form.
`ShiftedOperator` is the arithmetic of σI + cJ that scipy's BDF needs, shared with the other
structured Jacobians (`scalex.analysis.escape_blocks.BlockLowRank`). It is the Jacobian of the
augmented ODE system (`scalex.engines.ode_system`, docs/theory.md
eq. (3.16)), but nothing in this module depends on the physics.

`ArrowheadMatrix.factorize` solves by block elimination: G inverses P_τ = (σI + cβ_τ A)⁻¹ of
p × p blocks and one m × m Schur complement S = σI + cE − c² A Σ_τ λ_τ β_τ P_τ D_τ. That is
O(G p³ + G p² m + m³) per factorisation and O(G p (p + m) + m²) per solve (`ArrowheadLU`),
linear in the number G of groups. Blocks with p ≤ `SMALL_BLOCK_P` are inverted in one compiled
Gauss–Jordan pass. A (numerically) singular block falls back to LAPACK and, if needed, to the
pseudo-inverse. A non-finite matrix (a blown-up state) gives NaN factors, so that BDF rejects
the step instead of raising. `ArrowheadBDF` is `scipy.integrate.BDF` with its Newton systems
(I − cJ)δ = b solved this way: the same steps, orders and error control as scipy's BDF.

scipy internals
---------------
`ArrowheadBDF` reuses scipy's BDF step (orders, error control, Newton iteration) and replaces
only its linear algebra. For that it overrides the private ``BDF._validate_jac(jac,
sparsity)`` and, after ``BDF.__init__``, the attributes ``lu``, ``solve_lu``, ``I`` and ``J``
that ``BDF._step_impl`` uses as ``self.lu(self.I - c * J)`` and ``self.solve_lu(LU, b)``. These
are private and may change in any scipy release, so `bdf_internals_problem` checks them on
first use (names, signatures, the attributes a fresh BDF sets, the uses in ``_step_impl``, and
a small arrowhead problem solved against the matrix exponential). `scalex.solve_ode` falls
back to ``method="BDF"`` (same Jacobian as a sparse matrix, SuperLU) with an
`ArrowheadUnavailableWarning` saying what failed.
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass
from typing import Self

import numba
import numpy as np
import scipy
import scipy.sparse as sparse
from numpy.typing import NDArray
from scipy.integrate import BDF, solve_ivp

Array = NDArray[np.float64]

#: Largest p for which `ArrowheadMatrix.factorize` inverts the blocks in a compiled loop.
SMALL_BLOCK_P = 16


# --------------------------------------------------------------------------- structured BDF
class ShiftedOperator:
    """shift · I + coef · J for a structured J that is never formed as a matrix.

    The arithmetic that scipy's BDF applies to its Jacobian, ``c * J`` and ``I - c * J`` (with
    `_ArrowheadIdentity`), changes only the two scalars, so it is done here once; a subclass
    holds J, sets ``shift`` and ``coef`` and solves with ``factorize``.
    """

    __array_ufunc__ = None  # make numpy scalars defer to __rmul__
    shift: float
    coef: float

    def _with(self, shift: float, coef: float) -> Self:
        """The same J (its arrays shared, not copied) with other scalars."""
        out = copy.copy(self)
        out.shift, out.coef = shift, coef
        return out

    def __mul__(self, c: float) -> Self:
        return self._with(self.shift * c, self.coef * c)

    __rmul__ = __mul__


class ArrowheadMatrix(ShiftedOperator):
    """shift · I + coef · J for the arrowhead Jacobian of `AugmentedSystem`,

        J = [[blockdiag(β_τ A), D], [(λ_τ β_τ A)_τ, E]],

    with A (p, p) shared by all groups, β, λ (G,), D (G, p, m) and E (m, m). Supports the
    arithmetic that scipy's BDF applies to its Jacobian (`ShiftedOperator`) and `factorize`.
    """

    def __init__(self, A: Array, beta: Array, lam: Array, D: Array, E: Array,
                 shift: float = 0.0, coef: float = 1.0) -> None:
        self.A, self.beta, self.lam, self.D, self.E = A, beta, lam, D, E
        self.shift, self.coef = shift, coef
        G, p, m = D.shape
        if A.shape != (p, p) or E.shape != (m, m) or m != p or beta.shape != lam.shape != (G,):
            raise ValueError("ArrowheadMatrix: needs A (p, p), beta and lam (G,), D (G, p, p) "
                             "and E (p, p)")
        self.shape = (G * p + m, G * p + m)

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
    """The identity of scipy's BDF, so that ``I - c * J`` stays a `ShiftedOperator` (an
    `ArrowheadMatrix`, say)."""

    def __sub__(self, other: ShiftedOperator) -> ShiftedOperator:
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

    ``jac(t, y)`` must return an `ArrowheadMatrix`, or another structured matrix with the same
    protocol (``shape``, ``_with(shift, coef)`` for σI + cJ, ``factorize()`` returning an object
    with ``solve(b)``; e.g. `scalex.engines.ode_feedback.FeedbackJacobian`). Only the Newton
    linear algebra differs from
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
        if not callable(getattr(J, "factorize", None)) or J.shape != (self.n, self.n):
            raise ValueError("jac: must return an ArrowheadMatrix (or another structured "
                             "matrix with factorize() and _with()) of the state's size")
        self._first_jac = J

        def jac_wrapped(t, y):
            self.njev += 1
            return jac(t, y)

        # An empty sparse stand-in, so that BDF.__init__ builds a sparse (not a dense n × n)
        # identity; __init__ then puts the real Jacobian, identity and solvers in place.
        return jac_wrapped, sparse.csc_matrix((self.n, self.n))


# --------------------------------------------------------------------------- scipy check
class ArrowheadUnavailableWarning(RuntimeWarning):
    """scipy's BDF internals differ from what `ArrowheadBDF` relies on; plain BDF is used."""


#: What `ArrowheadBDF` relies on in the BDF class it extends (module docstring).
_VALIDATE_JAC_PARAMS = ("self", "jac", "sparsity")
_INIT_PARAMS = ("fun", "t0", "y0", "t_bound", "rtol", "atol", "jac")
_INSTANCE_ATTRS = ("lu", "solve_lu", "I", "J", "jac", "nlu", "njev", "n")
_STEP_USES = ("self.lu(", "self.solve_lu", "self.I", "self.jac(")


def _extended_bdf(cls: type) -> type:
    """The BDF implementation that `cls` (ArrowheadBDF or a subclass) extends: the class after
    `ArrowheadBDF` in its method resolution order."""
    if not (isinstance(cls, type) and issubclass(cls, ArrowheadBDF)):
        raise TypeError(f"cls: must be ArrowheadBDF or a subclass, got {cls!r}")
    mro = cls.__mro__
    return mro[mro.index(ArrowheadBDF) + 1]


def _probe(cls: type) -> str | None:
    """Solve z' = Jz for a small arrowhead J (G = 2, p = m = 2) with ``cls`` and compare with
    expm; None if it used its own LU (nlu > 0) and agrees to 1e-5."""
    from scipy.linalg import expm

    A = np.array([[-1.0, 0.3], [0.0, -0.5]])
    J = ArrowheadMatrix(A, np.array([1.0, 3.0]), np.array([1.0, 0.5]),
                        0.1 * np.ones((2, 2, 2)), np.array([[-1.0, 0.2], [0.0, -2.0]]))
    dense = J.toarray()
    z0 = np.linspace(1.0, 2.0, 6)
    sol = solve_ivp(lambda t, z: dense @ z, (0.0, 2.0), z0, method=cls, rtol=1e-9, atol=1e-12,
                    jac=lambda t, z: J)
    if sol.status != 0:
        return f"a test problem failed: {sol.message}"
    if not sol.nlu:
        return "a test problem never factorised through ArrowheadBDF's LU"
    err = float(np.max(np.abs(sol.y[:, -1] - expm(2.0 * dense) @ z0)))
    if not err < 1e-5:
        return f"a test problem was solved wrongly (error {err:.2g})"
    return None


@functools.cache
def bdf_internals_problem(cls: type | None = None) -> str | None:
    """Why `ArrowheadBDF` (or the subclass ``cls``) cannot run on the installed scipy, or None.

    Inspects the BDF class it extends (module docstring): ``_validate_jac`` with parameters
    (self, jac, sparsity), ``__init__`` taking fun, t0, y0, t_bound, rtol, atol, jac,
    ``_step_impl`` calling self.lu, self.solve_lu, self.I and self.jac, and a fresh instance
    carrying lu, solve_lu, I, J, jac, nlu, njev, n; then solves a small arrowhead problem.
    Cached per class.
    """
    cls = ArrowheadBDF if cls is None else cls
    base = _extended_bdf(cls)
    name = f"{base.__module__}.{base.__qualname__}"
    try:
        validate = getattr(base, "_validate_jac", None)
        if not callable(validate):
            return f"{name} has no method _validate_jac"
        params = tuple(inspect.signature(validate).parameters)
        if params != _VALIDATE_JAC_PARAMS:
            return (f"{name}._validate_jac has parameters ({', '.join(params)}), expected "
                    f"({', '.join(_VALIDATE_JAC_PARAMS)})")
        init = tuple(inspect.signature(base.__init__).parameters)
        missing = [p for p in _INIT_PARAMS if p not in init]
        if missing:
            return f"{name}.__init__ lacks the parameter(s) {missing}"
        step = getattr(base, "_step_impl", None)
        if not callable(step):
            return f"{name} has no method _step_impl"
        try:
            source = inspect.getsource(step)
        except (OSError, TypeError):
            source = None  # no source shipped: the probe below still checks the behaviour
        if source is not None:
            absent = [u for u in _STEP_USES if u not in source]
            if absent:
                return f"{name}._step_impl no longer uses {absent}"
        plain = base(lambda t, y: -y, 0.0, np.ones(2), 1.0,
                     jac=lambda t, y: sparse.csc_matrix(-np.eye(2)))
        absent = [a for a in _INSTANCE_ATTRS if not hasattr(plain, a)]
        if absent:
            return f"a {name} instance lacks the attribute(s) {absent}"
        if not (callable(plain.lu) and callable(plain.solve_lu) and callable(plain.jac)):
            return f"{name} instance attributes lu, solve_lu, jac are not callables"
        return _probe(cls)
    except Exception as err:  # any other incompatibility: report it, never crash the caller
        return f"{name} failed the check ({type(err).__name__}: {err})"


def bdf_internals_message(problem: str) -> str:
    """The warning text for a failed `bdf_internals_problem`."""
    return (f"ArrowheadBDF cannot use the BDF internals of scipy {scipy.__version__}: {problem}; "
            f"falling back to method='BDF' (same results, slower for many groups)")
