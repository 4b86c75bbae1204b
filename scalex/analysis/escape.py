"""Escape theory of the symmetric plateau (docs/theory.md §5; docs/analysis.md, "Escape theory").

For a soft committee machine (equal second-layer weights v and w) the per-group ODEs of
docs/theory.md §3.2 leave the *symmetric subspace* invariant: with an isotropic teacher
t^τ = f_τ I (its N → ∞ value, f_τ = N_τ/N), states with

    q^τ_ij = a_τ (i = j),  b_τ (i ≠ j),     r^τ_in = c_τ

stay of that form (eq. (5.1)). Their invariance group is S_K × S_M (permuting student units and
teacher units). The plateau is the quasi-stationary state of this subspace; the O(σ_J/√N)
asymmetry of a real weight draw grows out of it along the unstable direction of the linearised
dynamics. `SymmetricSystem` evaluates the right-hand side with
`scalex.engines.ode_system.derivatives` and the isotropic teacher.

What this module computes (equation numbers (E·) refer to docs/analysis.md, (5.·) to
docs/theory.md):

1. The symmetric fixed point (E1), eq. (5.2), `symmetric_fixed_point`. Every trained group is
   proportional to its fraction, q^τ = f_τ q̂, r^τ = f_τ r̂: with t^τ = f_τ I the right-hand side
   of group τ is λ_τ f_τ times one function G(q̂, r̂) of the shared field covariance, so the
   L-group fixed point is the three-unknown root G(â, b̂, ĉ) = 0, *exactly stationary in every
   group* (a residual is reported). Frozen groups (``trainable``) stay at their N → ∞ initial
   values σ_J² f_τ I, 0.
2. The Jacobian of the flattened per-group system (upper triangles of q^τ, all of r^τ) at the
   fixed point, split into the symmetric part V0 (orbit averages) and the symmetry-breaking
   part V1 (its complement; both are invariant because the Jacobian commutes with
   S_K × S_M). The escape rate μ is the largest real part of the eigenvalues of the V1 block
   (E2), eq. (5.5), `escape_rate`. By default (``method="structured"``,
   `scalex.analysis.escape_blocks`) J is never formed: by eq. (5.3) and Schur's lemma it is,
   on each irreducible representation of S_K × S_M (`scalex.analysis.escape_symmetry`), a
   matrix of L × L blocks of size ≤ 3 built from two shared blocks Â, B̂ read off a few
   right-hand sides; its rightmost eigenvalue comes from the secular equation (5.4) when the
   block is too large for a dense eigenproblem. ``method="dense"`` builds J|V1 and J|V0 column
   by column by central differences and diagonalises them (cost O((L p)³); small L only).
3. The plateau-length prediction (E3)–(E5), eqs. (5.7)–(5.8), `escape`: the symmetric
   trajectory from the symmetrised draw gives ε_sym(α) and the time α_s at which it becomes
   flat (the plateau start). The draw's asymmetry δx(0) is carried to α_s by the linearised
   (variational) equation along that trajectory and projected on the unstable eigenspace:
   amplitude A_s (structured: both by BDF with structured Jacobians, the variational equation
   through its adjoint, for the representation of the unstable mode only; dense: LSODA and
   explicit RK45). Beyond α_s,

       ε_pred(α) = ε_sym(α) + κ A_s² e^{2μ(α − α_s)},

   with κ the second-order change of ε_g along the unstable direction including the adiabatic
   response of the symmetric modes. The predicted plateau is then measured on ε_pred with the
   *same* flatness criterion (A2) as `scalex.analysis.plateau`. The textbook estimate
   (1/μ) ln(1/A_0) of eq. (5.6), with A_0 the projection of the draw at α = 0, is reported as
   ``naive_length``.

Findings documented in docs/analysis.md: the fixed point is exactly stationary for any L (and
its height ε_g* does not depend on L with the "mean" spectrum normalisation); what changes with
L is (i) μ, which grows nearly ∝ λ_1, and (ii) the slowest symmetric relaxation rate ~ηλ_L:
small-eigenvalue groups approach the fixed point only on time scales ∝ 1/(ηλ_L), so for large L
the symmetric trajectory is still drifting when the asymmetry has grown, and no flat plateau
forms — the quasi-stationary state is then a slowly learning symmetric state, not the fixed point.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from scipy.integrate import solve_ivp
from scipy.optimize import root

from scalex.analysis import estimators as est
from scalex.analysis.escape_blocks import DENSE_BLOCK_MAX, SymmetricBlocks
from scalex.analysis.escape_result import EscapeResult
from scalex.analysis.escape_routes import DenseRoute, StructuredRoute
from scalex.analysis.plateaus import PlateauCriterion
from scalex.common.keywords import takes
from scalex.engines.ode_system import derivatives
from scalex.model.integrals import generalization_error
from scalex.model.setup import Setup

__all__ = ["EscapeResult", "SymmetricSystem", "escape", "escape_rate", "symmetric_fixed_point"]

Array = NDArray[np.float64]


# --------------------------------------------------------------------------- the packed system
class SymmetricSystem:
    """The per-group ODE of a Setup on flat vectors, with its S_K × S_M symmetry structure.

    State x: per group τ the upper triangle of q^τ then r^τ (row-major), groups in order:
    p = K(K+1)/2 + KM numbers per group, n = L p in all. The teacher is isotropic,
    t^τ = f_τ I (docs/theory.md eq. (2.4) at N → ∞). Frozen groups have zero right-hand side.

    The symmetric subspace V0 is spanned, group by group, by the normalised indicators of the
    orbits (diagonal of q, off-diagonal of q, r); V1, the symmetry-breaking subspace, is its
    orthogonal complement. Both are products I_L ⊗ (per-group basis), so coordinates cost O(n).
    """

    def __init__(self, setup: Setup) -> None:
        if setup.train_v:
            raise ValueError("train_v: the escape theory linearises the ODE of q, r at a fixed "
                             "second layer; its symmetric fixed point and escape rate do not "
                             "include a trained v (docs/theory.md §3.10, §5)")
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
        self.trained = setup.trained_groups
        self.t = self.frac[:, None, None] * np.eye(self.M)[None]
        self.iu = np.triu_indices(self.K)
        self.nq = len(self.iu[0])
        self.p = self.nq + self.K * self.M
        self.n = self.L * self.p
        # Per-group orbits of S_K × S_M: diagonal of q, off-diagonal of q, entries of r.
        kind = np.concatenate([np.where(self.iu[0] == self.iu[1], 0, 1),
                               np.full(self.K * self.M, 2)])
        ind = np.stack([kind == k for k in range(3) if np.any(kind == k)], axis=1).astype(float)
        #: (p, p0) orthonormal orbit indicators: V0 restricted to one group
        self.h0 = ind / np.sqrt(ind.sum(0))
        self._h1: Array | None = None

    @property
    def h1(self) -> Array:
        """(p, p − p0) orthonormal basis of the complement of V0 within one group (built on
        first use: a QR of a p × p matrix, seconds at K = 40)."""
        if self._h1 is None:
            full, _ = np.linalg.qr(np.concatenate([self.h0, np.eye(self.p)], axis=1))
            self._h1 = full[:, self.h0.shape[1]:self.p]
        return self._h1

    # ---------------------------------------------------------------- subspaces
    # V0 = I_L ⊗ h0 and V1 = I_L ⊗ h1: the symmetry acts within each group.
    def coords(self, x: Array, part: int) -> Array:
        """Coordinates of flat state(s) (..., n) in the basis of V0 (part=0) or V1 (part=1)."""
        h = self.h0 if part == 0 else self.h1
        x = np.asarray(x, dtype=float)
        return (x.reshape(*x.shape[:-1], self.L, self.p) @ h).reshape(*x.shape[:-1], -1)

    def vector(self, z: Array, part: int) -> Array:
        """Flat state(s) from coordinates in V0 (part=0) or V1 (part=1)."""
        h = self.h0 if part == 0 else self.h1
        z = np.asarray(z, dtype=float)
        return (z.reshape(*z.shape[:-1], self.L, h.shape[1]) @ h.T).reshape(*z.shape[:-1], -1)

    def dim(self, part: int) -> int:
        """Dimension of V0 (part=0) or V1 (part=1)."""
        return self.L * (self.h0 if part == 0 else self.h1).shape[1]

    # ---------------------------------------------------------------- packing
    def pack(self, q: Array, r: Array) -> Array:
        """(L, K, K), (L, K, M) → flat state (length n)."""
        q = np.asarray(q, dtype=float)
        r = np.asarray(r, dtype=float)
        return np.concatenate([q[:, self.iu[0], self.iu[1]], r.reshape(self.L, -1)],
                              axis=1).ravel()

    def unpack(self, x: Array) -> tuple[Array, Array]:
        """Flat state(s) (..., n) → q (..., L, K, K), r (..., L, K, M)."""
        x = np.asarray(x, dtype=float)
        lead = x.shape[:-1]
        x = x.reshape(*lead, self.L, self.p)
        q = np.zeros((*lead, self.L, self.K, self.K))
        q[..., self.iu[0], self.iu[1]] = x[..., :self.nq]
        q[..., self.iu[1], self.iu[0]] = x[..., :self.nq]
        r = x[..., self.nq:].reshape(*lead, self.L, self.K, self.M)
        return q, r

    def symmetrize(self, x: Array) -> Array:
        """Orthogonal projection on V0 (average over the S_K × S_M orbits)."""
        return self.vector(self.coords(x, 0), 0)

    # ---------------------------------------------------------------- dynamics
    def rhs(self, x: Array) -> Array:
        """dx/dα of docs/theory.md §3.2 with the isotropic teacher, by `derivatives`."""
        q, r = self.unpack(x)
        s = self.setup
        dq, dr = derivatives(q, r, self.t, self.lam, self.frac, self.v, self.w, s.eta,
                             s.activation, s.noise, self.trained)
        return self.pack(dq, dr)

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

    def eg(self, x: Array) -> Array:
        """ε_g of flat state(s) (..., n) with the isotropic teacher (docs/theory.md eq. (3.11))."""
        q, r = self.unpack(x)
        Q = np.einsum("g,...gij->...ij", self.lam, q)
        R = np.einsum("g,...gin->...in", self.lam, r)
        T = np.einsum("g,gnm->nm", self.lam, self.t)
        return generalization_error(Q, R, T, self.v, self.w, self.setup.activation)

    def symmetric_state(self, a: Array, b: Array, c: Array) -> Array:
        """Flat state with q^τ_ii = a_τ, q^τ_ij = b_τ (i ≠ j), r^τ_in = c_τ."""
        eye = np.eye(self.K)
        q = b[:, None, None] + (a - b)[:, None, None] * eye
        r = np.broadcast_to(c[:, None, None], (self.L, self.K, self.M))
        return self.pack(q, r)


# --------------------------------------------------------------------------- fixed point
def symmetric_fixed_point(setup: Setup, *, system: SymmetricSystem | None = None
                          ) -> tuple[Array, float]:
    """The symmetric fixed point x* of the per-group ODE (E1), and its residual max|dx/dα|.

    Trained groups: x^τ = f_τ (â, b̂, ĉ) with G(â, b̂, ĉ) = 0, G the right-hand side of a
    trained group divided by λ_τ f_τ (the same function for every trained group when
    t^τ = f_τ I). Found by integrating dŷ/dα = G(ŷ) from the symmetric N → ∞ start
    (σ_J², 0, 0) and polishing with a root finder. Frozen groups: (σ_J² f_τ, 0, 0).
    """
    sys_ = system or SymmetricSystem(setup)
    f = sys_.frac
    tr = sys_.trained
    if not tr.any():
        raise ValueError("trainable: no eigenvalue group is trained")
    s2 = setup.sigma_J**2

    def state(y: Array) -> Array:
        a = np.where(tr, f * y[0], f * s2)
        b = np.where(tr, f * y[1], 0.0)
        c = np.where(tr, f * y[2], 0.0)
        return sys_.symmetric_state(a, b, c)

    # G from the V0 coordinates of one group and the fields (docs/theory.md §5.1): one moment
    # evaluation of a symmetric covariance, whatever K, M and L
    blocks = SymmetricBlocks(setup)
    K, M = sys_.K, sys_.M
    norms = np.sqrt([K, K * (K - 1) / 2, K * M])
    kept = [0, 1, 2] if K > 1 else [0, 2]  # the copies of V0 (no off-diagonal for K = 1)
    weight = float(np.sum(sys_.lam * f * tr))
    frozen = np.zeros(3)
    frozen[0] = s2 * float(np.sum(sys_.lam * f * ~tr))

    def G(y: Array) -> Array:
        fields = (weight * y + frozen)[kept] * norms[kept]
        A0, _, _, b0 = blocks.blocks(blocks.triv, fields, derivative=False)
        out = np.zeros(3)
        out[kept] = setup.eta * (A0 @ (y[kept] * norms[kept]) + b0) / norms[kept]
        return out

    y0 = np.array([s2, 0.0, 0.0])
    horizon = 400.0 / setup.eta
    sol = solve_ivp(lambda _a, y: G(y), (0.0, horizon), y0, method="LSODA", rtol=1e-10,
                    atol=1e-13)
    y = sol.y[:, -1]
    # Polish with a root finder; keep its answer whenever it lowers the residual (hybr may
    # report slow progress at the degenerate point a = b while having converged).
    if setup.K == 1:  # no off-diagonal entry: keep b fixed
        polished = root(lambda z: G(np.array([z[0], 0.0, z[1]]))[[0, 2]], y[[0, 2]], tol=1e-14)
        candidate = np.array([polished.x[0], 0.0, polished.x[1]])
    else:
        candidate = root(G, y, tol=1e-14).x
    if np.all(np.isfinite(candidate)) and np.max(np.abs(G(candidate))) < np.max(np.abs(G(y))):
        y = candidate
    x = state(y)
    return x, float(np.max(np.abs(sys_.rhs(x))))


# --------------------------------------------------------------------------- main entry
Method = Literal["structured", "dense"]


def _route(setup: Setup, sys_: SymmetricSystem, xstar: Array, method: str,
           dense_max: int) -> Any:
    """The linearisation at x* by the chosen route (`StructuredRoute` or `DenseRoute`)."""
    if method == "structured":
        return StructuredRoute(setup, xstar, dense_max)
    if method == "dense":
        return DenseRoute(sys_, xstar)
    raise ValueError(f"method: must be 'structured' or 'dense', got {method!r}")


def escape_rate(setup: Setup, *, method: Method = "structured",
                dense_max: int = DENSE_BLOCK_MAX) -> float:
    """μ alone: the largest real part of the Jacobian's eigenvalues on V1 (E2)."""
    sys_ = SymmetricSystem(setup)
    x, _ = symmetric_fixed_point(setup, system=sys_)
    return _route(setup, sys_, x, method, dense_max).mu


def _draws(setup: Setup, sys_: SymmetricSystem, seed: int | None, init: xr.Dataset | None,
           n_draws: int) -> tuple[Array, str]:
    """Flat initial states of the draw(s): (D, n) and a description."""
    from scalex.schema import initial_overlaps

    if init is not None:
        for name in ("q", "r"):
            if name not in init:
                raise ValueError(f"init: needs variable {name!r} (a scalex overlaps Dataset)")
        q = np.asarray(init["q"].isel(alpha=0).values if "alpha" in init["q"].dims
                       else init["q"].values, dtype=float)
        r = np.asarray(init["r"].isel(alpha=0).values if "alpha" in init["r"].dims
                       else init["r"].values, dtype=float)
        if q.shape != (sys_.L, sys_.K, sys_.K) or r.shape != (sys_.L, sys_.K, sys_.M):
            raise ValueError(f"init: q, r must have shapes (L, K, K), (L, K, M) = "
                             f"{(sys_.L, sys_.K, sys_.K)}, {(sys_.L, sys_.K, sys_.M)}; "
                             f"got {q.shape}, {r.shape}")
        return sys_.pack(q, r)[None], "init"
    seeds = [seed] if seed is not None else list(range(n_draws))
    xs = []
    for sd in seeds:
        ds0 = initial_overlaps(setup, sd)
        xs.append(sys_.pack(ds0["q"].values[0], ds0["r"].values[0]))
    src = f"seed {seed}" if seed is not None else f"rms over seeds 0..{n_draws - 1}"
    return np.stack(xs), src


def _first_flat(alpha: Array, eg: Array, criterion: PlateauCriterion) -> int | None:
    slope = est.local_slope(alpha, eg, criterion.window)
    good = np.isfinite(slope)
    if not good.any():
        return None
    first = eg[np.flatnonzero(good)[0]]
    idx = np.flatnonzero(good & (np.abs(slope) < criterion.flatness)
                         & (eg <= first / criterion.contrast))
    return int(idx[0]) if idx.size else None


@takes(criterion=PlateauCriterion)
def escape(
    setup: Setup,
    *,
    seed: int | None = None,
    init: xr.Dataset | None = None,
    criterion: PlateauCriterion,
    baseline: float = 0.0,
    n_draws: int = 4,
    alpha_max: float | None = None,
    points_per_decade: int = 200,
    method: Method = "structured",
    dense_max: int = DENSE_BLOCK_MAX,
) -> EscapeResult:
    """Escape-time theory of the symmetric plateau, equations (E1)–(E5) of docs/analysis.md.

    Parameters
    ----------
    setup : a soft committee machine (equal v, equal w; erf activation).
    seed : the weight draw whose asymmetry sets the plateau length (`scalex.initial_overlaps`).
    init : instead of ``seed``, a Dataset with the initial ``q``, ``r`` (first α is used).
    flatness, min_decades, window, contrast : the plateau criterion (A2) of
        `scalex.analysis.plateau`, applied to the predicted curve (the fields of
        `scalex.analysis.plateaus.PlateauCriterion`, defaults there).
    baseline : ε_∞ subtracted before the criterion, as in `scalex.analysis.plateau` (for
        curves that saturate, e.g. with frozen groups).
    n_draws : with neither ``seed`` nor ``init``, the amplitude is the rms over the draws of
        seeds 0..n_draws−1 (a typical draw).
    alpha_max : end of the predicted curve (default: 3 (1/μ) ln(1/A_0), at least 100/η).
    points_per_decade : resolution of the predicted curve.
    method : "structured" (default; docs/theory.md eq. (5.3), any L and K) or "dense" (the
        Jacobian by central differences column by column, O((L p)³): small L only).
    dense_max : structured route: irreducible blocks with at most this many rows get their
        full spectrum (dense eig); larger ones only their rightmost real eigenvalue.

    Returns
    -------
    `EscapeResult` with ε_g*, μ, the predicted plateau start (time to reach the plateau), end
    and length, the textbook estimate (1/μ) ln(1/A_0), the amplitudes and the spectra;
    ``.to_dataset()`` gives it as a Dataset.
    """
    if seed is not None and init is not None:
        raise ValueError("seed: give either seed or init, not both")
    criterion.check()
    if not (np.isfinite(baseline) and baseline >= 0):
        raise ValueError(f"baseline: must be finite and >= 0, got {baseline!r}")
    if int(n_draws) != n_draws or n_draws < 1:
        raise ValueError(f"n_draws: must be an integer >= 1, got {n_draws!r}")
    if int(points_per_decade) != points_per_decade or points_per_decade < 20:
        raise ValueError(f"points_per_decade: must be an integer >= 20, got {points_per_decade!r}")
    if method not in ("structured", "dense"):
        raise ValueError(f"method: must be 'structured' or 'dense', got {method!r}")
    sys_ = SymmetricSystem(setup)
    thresholds = dict(criterion.keywords(), baseline=baseline)

    # (E1) fixed point, (E2) spectra
    xstar, residual = symmetric_fixed_point(setup, system=sys_)
    eg_star = float(sys_.eg(xstar))
    route = _route(setup, sys_, xstar, method, dense_max)
    q_star, r_star = sys_.unpack(xstar)
    nan = float("nan")
    common: dict[str, Any] = dict(
        setup=setup, plateau_height=eg_star, fixed_point_residual=residual,
        thresholds=thresholds, fixed_point=(q_star, r_star, sys_.t.copy()),
        antisymmetric_eigenvalues=route.ev1, symmetric_eigenvalues=route.ev0,
        antisymmetric_multiplicities=route.mult1, method=method,
    )
    X0, source = _draws(setup, sys_, seed, init, n_draws)
    mu = route.mu
    if not mu > 0:
        return EscapeResult(
            escape_rate=mu, escape_multiplicity=0,
            plateau_start=nan, plateau_end=nan, plateau_length=nan, has_plateau=False,
            naive_length=nan, initial_asymmetry=nan, plateau_asymmetry=nan, kappa=nan,
            asymmetry_source=source, alpha=np.zeros(0), eg_symmetric=np.zeros(0),
            eg_predicted=np.zeros(0), **common)
    xs0 = sys_.symmetrize(X0)
    dX0 = X0 - xs0
    A0 = float(np.sqrt(np.mean(np.sum(route.unstable_part(dX0) ** 2, axis=1))))
    naive = float(np.log(1.0 / A0) / mu) if A0 > 0 else np.inf

    # (E3) symmetric trajectory in the reduced coordinates of V0, from the symmetrised draw
    y0 = sys_.coords(xs0.mean(axis=0), 0).reshape(sys_.L, -1)
    hi = alpha_max or max(3.0 * naive, 100.0 / setup.eta)
    lo = 1e-3 / (setup.eta * sys_.lam[0])
    alpha = np.geomspace(lo, hi, int(np.ceil(np.log10(hi / lo) * points_per_decade)) + 1)
    eg_sym, traj = route.symmetric_trajectory(y0, hi, alpha)
    i_s = _first_flat(alpha, eg_sym - baseline, criterion)
    no_plateau = dict(escape_rate=mu, escape_multiplicity=route.multiplicity,
                      naive_length=naive, initial_asymmetry=A0, asymmetry_source=source,
                      alpha=alpha, eg_symmetric=eg_sym)
    if i_s is None:
        return EscapeResult(plateau_start=nan, plateau_end=nan, plateau_length=nan,
                            has_plateau=False, plateau_asymmetry=nan, kappa=nan,
                            eg_predicted=np.full(alpha.shape, np.nan), **no_plateau, **common)
    a_s = float(alpha[i_s])

    # (E4) carry the draws' asymmetry to α_s by the variational equation, unstable part there
    unstable = route.carry_unstable(dX0, traj, y0, a_s)

    # (E5) second-order response of ε_g along each draw's unstable direction
    h = 1e-4
    F0 = sys_.rhs(xstar)
    kA2, A2 = [], []
    for u in unstable:
        amp = float(np.linalg.norm(u))
        if amp == 0:
            continue
        e = u / amp
        d2eg = (sys_.eg(xstar + h * e) + sys_.eg(xstar - h * e) - 2 * eg_star) / h**2
        bee = (sys_.rhs(xstar + h * e) + sys_.rhs(xstar - h * e) - 2 * F0) / h**2
        response = route.slaved(0.5 * sys_.coords(bee, 0).reshape(sys_.L, -1), 2 * mu)
        slaved = sys_.vector(response.ravel(), 0)
        norm = float(np.linalg.norm(slaved)) or 1.0  # a bounded step along w (large L: |w| ≫ 1)
        grad = (sys_.eg(xstar + h * slaved / norm) - sys_.eg(xstar - h * slaved / norm)
                ) * norm / (2 * h)
        kA2.append((0.5 * d2eg + grad) * amp**2)
        A2.append(amp**2)
    As = float(np.sqrt(np.mean(A2))) if A2 else 0.0
    kappa = float(np.mean(kA2) / np.mean(A2)) if A2 else nan
    growth = np.exp(np.minimum(2 * mu * (alpha - a_s), 700.0))
    with np.errstate(over="ignore", invalid="ignore"):  # A_s ≫ 1 at large L: no plateau
        deviation = (np.mean(kA2) if kA2 else 0.0) * growth
        # second order in the amplitude only while the deviation is small: NaN beyond
        eg_pred = np.where(np.abs(deviation) <= 0.5 * (eg_sym - baseline), eg_sym + deviation,
                           np.nan)

    # the plateau criterion (A2) on the predicted curve: the flat run through α_s
    slope = est.local_slope(alpha, eg_pred - baseline, criterion.window)
    flat = np.isfinite(slope) & (np.abs(slope) < criterion.flatness)
    run = [(i0, i1) for i0, i1 in est.true_runs(flat) if i0 <= i_s <= i1 or i0 >= i_s]
    if not run:
        start = end = nan
    else:
        i0, i1 = max(run, key=lambda ab: np.log(alpha[ab[1]] / alpha[ab[0]]))
        start, end = float(alpha[i0]), float(alpha[i1])
    length = end - start
    found = bool(np.isfinite(length) and np.log10(end / start) >= criterion.min_decades)
    if not found:  # as in `scalex.analysis.plateau`: no plateau, no numbers
        start = end = length = nan
    return EscapeResult(plateau_start=start, plateau_end=end, plateau_length=length,
                        has_plateau=found, plateau_asymmetry=As, kappa=kappa,
                        eg_predicted=eg_pred, **no_plateau, **common)
