"""An exponential integrator for the order-parameter ODEs at large K (docs/theory.md §3.7).

At fixed field covariance C, every group's equations are linear in its own overlaps with one
shared coefficient matrix (docs/theory.md eq. (3.15)):

    dq^τ/dα = κ_τ (S q^τ + q^τ S + r^τ s_Rᵀ + s_R r^τᵀ) + η κ_τ f_τ E,     κ_τ = η λ_τ,
    dr^τ/dα = κ_τ (S r^τ + s_R t^τ),

with S = s_Q, the student block of the Stein coefficients s_ia(C), which is SYMMETRIC
(s_ij = −v_i v_j J2(i, j) off the diagonal). In the eigenbasis S = U diag(μ) Uᵀ the stiff part
is diagonal: q̃ = Uᵀ q U decays at κ_τ (μ_i + μ_j) and r̃ = Uᵀ r at κ_τ μ_i. These rates span
ηλ_1 |μ| … ηλ_L |μ|, six decades at L = 512, β = 1, which is what makes explicit methods crawl;
an implicit one would need the Jacobian, whose border blocks hold G·p·m ≈ 3·10⁹ numbers at
K = M = 40, L = 512.

`ExponentialRK` integrates that diagonal part exactly and the rest — the r → q coupling, the
η² term, and the change of S and E with C — explicitly, with the second-order exponential
Runge–Kutta scheme ETD2RK (Cox & Matthews 2002). With Λ the diagonal rates in the basis of
step n, f̃ the full right-hand side in that basis and N = f̃ − Λ x̃:

    a       = x̃_n + h φ1(hΛ) f̃(x_n)
    x̃_{n+1} = a + h φ2(hΛ) [N(a) − N(x_n)],       φ1(z) = (eᶻ − 1)/z,  φ2(z) = (eᶻ − 1 − z)/z²

The second term is the local error estimate of the first-order stage (exponential Euler); the
step is accepted when its RMS norm, scaled by atol + rtol·|x|, is ≤ 1 (step-size exponent ½,
local extrapolation). The basis is recomputed every step (one K × K `eigh`). Each step costs two
right-hand sides; the one at x_{n+1} is reused by the next step. Fixed points of the frozen
system are reproduced exactly, so quasi-static fast groups (the large-λ ones once the
plateau or the specialised state is reached) do not limit the step: it follows how fast C
changes. Between steps the solution is the method's own continuous extension (the formula
above at θh, θ ∈ [0, 1]).

Error coordinates (linear g) are kept in the state untransformed, with their own diagonal rate
κ_τ · (−2 vᵀ s c / cᵀc).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import DenseOutput, OdeSolver

from scalex.engines.ode_system import AugmentedSystem

Array = NDArray[np.float64]

__all__ = ["ExponentialRK", "phi_functions"]

#: |z| below which the φ functions use their Taylor series.
_SERIES = 0.5
_TERMS = 16
_FACT = np.array([float(math.factorial(k)) for k in range(_TERMS + 4)])


@numba.njit(cache=True, inline="always")
def _phi3(x: float) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """(φ1, φ2, φ3)(x): series below |x| = 0.5 (as many terms as x needs), else expm1."""
    if abs(x) < _SERIES:
        terms = 6 if abs(x) < 1e-3 else (10 if abs(x) < 0.05 else _TERMS)
        p1 = 1.0 / _FACT[terms]
        p2 = 1.0 / _FACT[terms + 1]
        p3 = 1.0 / _FACT[terms + 2]
        for j in range(terms - 1, -1, -1):
            p1 = p1 * x + 1.0 / _FACT[j + 1]
            p2 = p2 * x + 1.0 / _FACT[j + 2]
            p3 = p3 * x + 1.0 / _FACT[j + 3]
        return p1, p2, p3
    p1 = math.expm1(x) / x
    p2 = (p1 - 1.0) / x
    return p1, p2, (p2 - 0.5) / x


@numba.njit(cache=True)
def _phi123(z: Array, out: Array) -> None:  # pragma: no cover - compiled
    """out[k, i] = φ_{k+1}(z_i), k < 3 (see `phi_functions`)."""
    for i in range(z.size):
        out[0, i], out[1, i], out[2, i] = _phi3(z[i])


@numba.njit(cache=True)
def _phi_pairs(mu: Array, kappa: Array, h: float, out: Array) -> None:  # pragma: no cover
    """out[k, i, g, j] = φ_{k+1}(h κ_g (μ_i + μ_j)), computed for i ≤ j and mirrored."""
    K, G = mu.shape[0], kappa.shape[0]
    for i in range(K):
        for j in range(i, K):
            nu = h * (mu[i] + mu[j])
            for g in range(G):
                a, b, c = _phi3(kappa[g] * nu)
                out[0, i, g, j] = a
                out[1, i, g, j] = b
                out[2, i, g, j] = c
                out[0, j, g, i] = a
                out[1, j, g, i] = b
                out[2, j, g, i] = c


@numba.njit(cache=True)
def _assemble_dq(Gs: Array, kappa: Array, c: Array, Et: Array,
                 out: Array) -> None:  # pragma: no cover - compiled
    """out[i, g, j] = κ_g (Gs[i, g, j] + Gs[j, g, i]) + c_g Ẽ_ij (eq. (3.17) in the frame)."""
    K, G = Gs.shape[0], Gs.shape[1]
    for i in range(K):
        for j in range(i, K):
            e = Et[i, j]
            for g in range(G):
                v = kappa[g] * (Gs[i, g, j] + Gs[j, g, i]) + c[g] * e
                out[i, g, j] = v
                out[j, g, i] = v


def phi_functions(z: ArrayLike) -> list[Array]:
    """[φ1(z), φ2(z), φ3(z)] elementwise, φ_k(z) = Σ_{j≥0} z^j/(j+k)!, without cancellation.

    φ1 = (eᶻ − 1)/z, φ2 = (eᶻ − 1 − z)/z², φ3 = (eᶻ − 1 − z − z²/2)/z³: by expm1 and the
    recurrence φ_{k+1} = (φ_k − 1/k!)/z for |z| ≥ 0.5 (relative error ≲ 1e-15), by the series
    below, truncated after z⁵, z⁹ or z¹⁵ for |z| < 1e-3, < 0.05, < 0.5 (truncation < 1e-17
    relative).
    """
    z = np.asarray(z, dtype=float)
    out = np.empty((3, z.size))
    _phi123(np.ascontiguousarray(z).ravel(), out)
    return [o.reshape(z.shape) for o in out]


class _Eigen:
    """The state in the frame's eigenbasis, student index first: q̃ (K, G, K) with
    q̃[i, g, j] = (Uᵀq^g U)_ij, r̃ (K, G, M) with r̃[i, g, n] = (Uᵀr^g)_in [, E^τ (G,)].

    In this layout every product with a K × K matrix from either side, and the field sums, are
    single matrix products over all groups without copies."""

    __slots__ = ("e", "q", "r")

    def __init__(self, q: Array, r: Array, e: Array | None) -> None:
        self.q, self.r, self.e = q, r, e

    def parts(self) -> list[Array]:
        return [self.q, self.r] + ([self.e] if self.e is not None else [])

    @classmethod
    def of(cls, parts: list[Array]) -> _Eigen:
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else None)

    def rotated(self, V: Array) -> _Eigen:
        """(Vᵀ q̃ V, Vᵀ r̃): the same state in the basis U V."""
        K, G, M = self.r.shape
        right = (self.q.reshape(K * G, K) @ V).reshape(K, G * K)
        return _Eigen((V.T @ right).reshape(K, G, K),
                      (V.T @ self.r.reshape(K, G * M)).reshape(K, G, M), self.e)


class _Frame:
    """One step's frame: the eigenbasis U of S (symmetric part of s_Q) and the diagonal rates Λ.

    Λ of q̃_ij is κ_τ(μ_i + μ_j), of r̃_in κ_τ μ_i (stored (K, G, 1), broadcast over n), of E^τ
    κ_τ · (−2 vᵀ s c / cᵀc); κ_τ = η λ_τ.
    """

    def __init__(self, system: AugmentedSystem, s: Array | None, U: Array | None = None) -> None:
        K = system.K
        self.kappa = system.eta * system.lam
        if s is None:  # the identity frame of the initial state (no rates needed)
            self.U, self.mu, self.rates = np.eye(K) if U is None else U, None, []
            return
        S = s[:, :K]
        self.mu, self.U = np.linalg.eigh(0.5 * (S + S.T))
        kappa, mu = self.kappa, self.mu
        self.rates = [(mu[:, None, None] + mu[None, None, :]) * kappa[None, :, None],
                      (mu[:, None] * kappa[None, :])[:, :, None]]
        if system.ne:
            self.rates.append(kappa * system.error_drift(s))
        self._phis: dict[float, list[list[Array]]] = {}

    def phis(self, h: float) -> list[list[Array]]:
        """[φ1, φ2, φ3](hΛ) for each part (q̃, r̃[, E]); the last two step sizes are cached."""
        if h in self._phis:
            return self._phis[h]
        assert self.mu is not None
        K, G = self.mu.shape[0], self.kappa.shape[0]
        pq = np.empty((3, K, G, K))
        _phi_pairs(self.mu, self.kappa, h, pq)
        out = [list(pq), phi_functions(h * self.rates[1])]
        if len(self.rates) > 2:
            out.append(phi_functions(h * self.rates[2]))
        if len(self._phis) >= 2:
            self._phis.pop(next(iter(self._phis)))
        self._phis[h] = out
        return out

    def rotate(self, other: _Frame, X: _Eigen) -> _Eigen:
        """X, given in the basis of ``other``, expressed in this frame's basis."""
        return X.rotated(other.U.T @ self.U)


class _Stage:
    """A step's continuous extension: with forcing N(t) = N_x + t n1 + t² n2 / 2 fitted to
    the stages, x̃(τ) = x̃ + τ φ1(τΛ) f̃_x + τ² φ2(τΛ) n1 + τ³ φ3(τΛ) n2, τ = θh, which at
    θ = 1 is the step's result."""

    def __init__(self, solver: ExponentialRK, frame: _Frame, h: float, x: list[Array],
                 f: list[Array], n1: list[Array], n2: list[Array]) -> None:
        self.solver, self.frame, self.h = solver, frame, h
        self.x, self.f, self.n1, self.n2 = x, f, n1, n2

    def at(self, theta: float) -> Array:
        tau = theta * self.h
        out = [x + tau * p1 * f + tau**2 * p2 * n1 + tau**3 * p3 * n2
               for (p1, p2, p3), x, f, n1, n2
               in zip(self.frame.phis(tau), self.x, self.f, self.n1, self.n2)]
        return self.solver.to_state(self.frame, _Eigen.of(out))


class _ExponentialDense(DenseOutput):
    def __init__(self, t_old: float, t: float, stage: _Stage) -> None:
        super().__init__(t_old, t)
        self.stage = stage

    def _call_impl(self, t: Array) -> Array:
        t = np.asarray(t, dtype=float)
        cols = [self.stage.at((ti - self.t_old) / (self.t - self.t_old))
                for ti in np.atleast_1d(t)]
        out = np.stack(cols, axis=-1)
        return out[:, 0] if t.ndim == 0 else out


class ExponentialRK(OdeSolver):
    """Krogstad's ETDRK4 with the per-group stiff part exact (module docstring), for `solve_ivp`.

    Pass ``method=ExponentialRK`` and ``system=`` the plain (not augmented)
    `scalex.engines.ode_system.AugmentedSystem`; ``fun`` is not called (the solver evaluates
    the rates in the eigenbasis itself). ``on_step(t)`` is called after each accepted step.
    Forward integration only. Counts: ``nfev`` right-hand sides (moment evaluations).
    """

    def __init__(self, fun: Callable[..., Array], t0: float, y0: Array, t_bound: float,
                 vectorized: bool = False, *, system: AugmentedSystem, rtol: float = 1e-6,
                 atol: float | Array = 1e-9, first_step: float | None = None,
                 max_step: float = np.inf, on_step: Callable[[float], None] | None = None,
                 **extraneous: Any) -> None:
        super().__init__(fun, t0, y0, t_bound, vectorized, support_complex=False)
        if self.direction < 0:
            raise ValueError("ExponentialRK: integrates forward in alpha only")
        if system.augmented:
            raise ValueError("system: ExponentialRK needs the plain state (augmented=False)")
        self.system = sys = system
        self.rtol, self.atol = float(rtol), np.asarray(atol, dtype=float)
        self.max_step = float(max_step)
        self.on_step = on_step
        self.njev = self.nlu = 0
        M, G = sys.M, sys.G
        # teacher overlaps t^g_nm as (M, G·M): s_R t for all groups is one product
        self._t_cols = np.ascontiguousarray(sys.t_tr.transpose(1, 0, 2)).reshape(M, G * M)
        self._kappa = sys.eta * sys.lam
        self._c = sys.eta * self._kappa * sys.frac  # coefficient of Ẽ in dq̃
        x, _ = sys.split(np.asarray(y0, dtype=float))
        q, r = sys.unpack(x)
        start = _Frame(sys, None)
        X = _Eigen(np.ascontiguousarray(q.transpose(1, 0, 2)),
                   np.ascontiguousarray(r.transpose(1, 0, 2)),
                   x[:, -1].copy() if sys.ne else None)
        F, s = self._rates(start, X)
        self._frame = _Frame(sys, s)
        self._X, self._F = self._frame.rotate(start, X), self._frame.rotate(start, F)
        if first_step is None:
            scale = self.atol + self.rtol * np.abs(self.y)
            f0 = self.to_state(self._frame, self._F)
            rate = float(np.max(np.abs(f0) / scale)) if self.y.size else 0.0
            first_step = 0.01 / rate if rate > 0 else 1.0
        self.h = min(float(first_step), self.max_step, abs(t_bound - t0) or 1.0)
        self._stage: _Stage | None = None

    # ------------------------------------------------------------ state ↔ frame
    def to_state(self, frame: _Frame, X: _Eigen) -> Array:
        """Packed state z (original basis) of X given in ``frame``."""
        sys = self.system
        Y = X.rotated(frame.U.T)  # U q̃ Uᵀ, U r̃
        return sys.pack(Y.q.transpose(1, 0, 2), Y.r.transpose(1, 0, 2), X.e).ravel()

    def _rates(self, frame: _Frame, X: _Eigen) -> tuple[_Eigen, Array]:
        """(f̃ in the frame, s): the rates of docs/theory.md eq. (3.17) computed in the
        eigenbasis (they are covariant under q → Uᵀ q U, r → Uᵀ r, s_Q → Uᵀ s_Q U,
        s_R → Uᵀ s_R, E → Uᵀ E U); the moments come from C in the original basis."""
        sys, U = self.system, frame.U
        K, M, G = sys.K, sys.M, sys.G
        lam = sys.lam
        Qt = X.q.transpose(0, 2, 1).reshape(K * K, G) @ lam
        Rt = X.r.transpose(0, 2, 1).reshape(K * M, G) @ lam
        eg = None if X.e is None else lam @ X.e
        y = sys.pack(U @ Qt.reshape(K, K) @ U.T, U @ Rt.reshape(K, M), eg) + sys.y_frozen
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            s, E = sys.moments(y)
        self.nfev += 1
        sQ, sR = U.T @ s[:, :K] @ U, U.T @ s[:, K:]
        Et = U.T @ E @ U
        Et = 0.5 * (Et + Et.T)
        # Gs_g = q̃_g s̃_Qᵀ + r̃_g s̃_Rᵀ for all g: (K·G, ·) products in the (K, G, ·) layout.
        Gs = (X.q.reshape(K * G, K) @ sQ.T + X.r.reshape(K * G, M) @ sR.T).reshape(K, G, K)
        dq = np.empty_like(Gs)
        _assemble_dq(Gs, self._kappa, self._c, Et, dq)
        dr = (sQ @ X.r.reshape(K, G * M) + sR @ self._t_cols).reshape(K, G, M)
        dr *= self._kappa[None, :, None]
        de = None
        if X.e is not None:
            vEv = float(sys.v @ E @ sys.v)
            de = self._kappa * (sys.error_drift(s) * X.e + sys.eta * sys.frac * vEv)
        return _Eigen(dq, dr, de), s

    # ------------------------------------------------------------ stepping
    def _step_impl(self) -> tuple[bool, str | None]:
        t, frame = self.t, self._frame
        x, f, lam = self._X.parts(), self._F.parts(), frame.rates

        def defect(k: list[Array]) -> tuple[list[Array], Array]:
            """N(k) − N(x) = f̃(k) − f̃(x) − Λ (k − x̃), and s at k."""
            fk, s = self._rates(frame, _Eigen.of(k))
            return [a - b - li * (ki - xi)
                    for a, b, li, ki, xi in zip(fk.parts(), f, lam, k, x)], s

        while True:
            h = min(self.h, self.max_step, self.t_bound - t)
            if h <= 10 * np.spacing(t):
                return False, "step size too small"
            half, full = frame.phis(h / 2), frame.phis(h)
            a = [xi + (h / 2) * ph[0] * fi for ph, xi, fi in zip(half, x, f)]
            Da, _ = defect(a)
            b = [ai + h * ph[1] * d for ph, ai, d in zip(half, a, Da)]
            Db, _ = defect(b)
            lead = [xi + h * ph[0] * fi for ph, xi, fi in zip(full, x, f)]
            c = [li + 2 * h * ph[1] * d for ph, li, d in zip(full, lead, Db)]
            Dc, _ = defect(c)
            n1 = [(2 * (da + db) - dc) / h for da, db, dc in zip(Da, Db, Dc)]
            n2 = [4 * (dc - da - db) / h**2 for da, db, dc in zip(Da, Db, Dc)]
            new = [li + h**2 * ph[1] * m1 + h**3 * ph[2] * m2
                   for ph, li, m1, m2 in zip(full, lead, n1, n2)]
            # The embedded ETD2 solution x̃ + hφ1 f̃ + hφ2 (N(c) − N(x)) differs by
            # h (2φ2 − 4φ3)(D_a + D_b − D_c) = O(h³): the error estimate.
            diff = [h * (2 * ph[1] - 4 * ph[2]) * (da + db - dc)
                    for ph, da, db, dc in zip(full, Da, Db, Dc)]
            z_new = self.to_state(frame, _Eigen.of(new))
            error = self.to_state(frame, _Eigen.of(diff))
            finite = bool(np.all(np.isfinite(z_new)))
            scale = self.atol + self.rtol * np.maximum(np.abs(self.y), np.abs(z_new))
            err = float(np.sqrt(np.mean((error / scale) ** 2))) if finite else np.inf
            if err <= 1.0:
                break
            self.h = h * (max(0.2, 0.9 * err ** (-1 / 3)) if np.isfinite(err) else 0.2)
        X_new = _Eigen.of(new)
        F_new, s_new = self._rates(frame, X_new)
        self._stage = _Stage(self, frame, h, x, f, n1, n2)
        nxt = _Frame(self.system, s_new)
        self._X, self._F, self._frame = nxt.rotate(frame, X_new), nxt.rotate(frame, F_new), nxt
        self.t_old, self.t, self.y = t, t + h, z_new
        growth = 5.0 if err == 0 else min(5.0, 0.9 * err ** (-1 / 3))
        self.h = h * max(1.0, growth) if err < 0.5 else h * min(1.0, growth)
        if self.on_step is not None:
            self.on_step(self.t)
        return True, None

    def _dense_output_impl(self) -> DenseOutput:
        assert self._stage is not None
        return _ExponentialDense(self.t_old, self.t, self._stage)
