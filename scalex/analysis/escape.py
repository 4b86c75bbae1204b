"""Escape theory of the symmetric plateau (docs/theory.md §5; docs/analysis.md, "Escape theory").

For a soft committee machine (equal second-layer weights v and w) the per-group ODEs of
docs/theory.md §3.2 leave the *symmetric subspace* invariant: with an isotropic teacher
t^τ = f_τ I (its N → ∞ value, f_τ = N_τ/N), states with

    q^τ_ij = a_τ (i = j),  b_τ (i ≠ j),     r^τ_in = c_τ

stay of that form (eq. (5.1)). Their invariance group is S_K × S_M (permuting student units and
teacher units). The plateau is the quasi-stationary state of this subspace; the O(σ_J/√N)
asymmetry of a real weight draw grows out of it along the unstable direction of the linearised
dynamics. `SymmetricSystem` (`scalex.analysis.escape_system`) evaluates the right-hand side
with `scalex.engines.ode_system.derivatives` and the isotropic teacher.

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
   (E2), eq. (5.5), `escape_rate`. By the structured route (``method="structured"``,
   `scalex.analysis.escape_blocks`) J is never formed: by eq. (5.3) and Schur's lemma it is,
   on each irreducible representation of S_K × S_M (`scalex.analysis.escape_symmetry`), a
   matrix of L × L blocks of size ≤ 3 built from two shared blocks Â, B̂ read off a few
   right-hand sides; its rightmost eigenvalue comes from the secular equation (5.4) when the
   block is too large for a dense eigenproblem. ``method="dense"`` builds J|V1 and J|V0 column
   by column by central differences and diagonalises them (cost O((L p)³); small L only).
   ``method="auto"`` (default) is the structured route, or the dense one with a trained v.
3. The plateau-length prediction (E3)–(E5), eqs. (5.7)–(5.8), `escape`: the symmetric
   trajectory from the symmetrised draw gives ε_sym(α) and the time α_s at which it becomes
   flat (the plateau start). The draw's asymmetry δx(0) is carried to α_s by the linearised
   (variational) equation along that trajectory and projected on the unstable eigenspace:
   amplitude A_s (structured: both by BDF with structured Jacobians, the variational equation
   through its adjoint, for the representation of the unstable mode only; dense: LSODA, and
   explicit RK45 in V1 coordinates). Beyond α_s,

       ε_pred(α) = ε_sym(α) + κ A_s² e^{2μ(α − α_s)},

   with κ the second-order change of ε_g along the unstable direction including the adiabatic
   response of the symmetric modes. The predicted plateau is then measured on ε_pred with the
   *same* flatness criterion (A2) as `scalex.analysis.plateau`. The textbook estimate
   (1/μ) ln(1/A_0) of eq. (5.6), with A_0 the projection of the draw at α = 0, is reported as
   ``naive_length``.

4. A trained second layer (``Setup(train_v=True)``, docs/theory.md §5.6): the state carries
   v, V0 its mean and V1 its zero-sum deviations (`SymmetricSystem`). The fixed point is the
   four-unknown root (â, b̂, ĉ, v̄*) with dv̄/dα = 0 as well; (E2)–(E5) go the dense route
   (``method="auto"``). The escape mode lies in a representation v has no part in, so μ is
   the fixed-v rate at v = v̄*; what the trained v changes is the plateau it escapes from and
   the symmetric trajectory that leads there.

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
from scalex.analysis.escape_blocks import (
    DENSE_BLOCK_MAX,
    MAX_RHS,
    IntegrationBudgetError,
    SymmetricBlocks,
)
from scalex.analysis.escape_result import EscapeResult
from scalex.analysis.escape_routes import DenseRoute, StructuredRoute
from scalex.analysis.escape_system import SymmetricSystem
from scalex.analysis.plateaus import PlateauCriterion
from scalex.common.keywords import takes
from scalex.model.setup import Setup

__all__ = ["EscapeResult", "SymmetricSystem", "escape", "escape_rate", "symmetric_fixed_point"]

Array = NDArray[np.float64]


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
    if sys_.nv:
        return _fixed_point_trained_v(setup, sys_)
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


def _fixed_point_trained_v(setup: Setup, sys_: SymmetricSystem) -> tuple[Array, float]:
    """(E1) with a trained second layer (docs/theory.md §5.6): the root of the four equations
    G(â, b̂, ĉ; v̄) = 0 and dv̄/dα = 0, v_i = v̄ for all i.

    The trained groups are again x^τ = f_τ (â, b̂, ĉ): at such states C and hence dv/dα do not
    depend on how the λ_τ f_τ are spread over the groups, and group τ moves as λ_τ f_τ G. So
    y = (â, b̂, ĉ, v̄) follows the isotropic (L = 1) flow with eigenvalue Λ = Σ_τ λ_τ f_τ
    (trained τ), dŷ/dα = (Λ G(y), dv̄/dα); it is integrated from (σ_J², 0, 0, v(0)) and the end
    polished by a root finder. G is read off group τ0's right-hand side (the first trained
    group), divided by λ_τ0 f_τ0.
    """
    f, tr, lam = sys_.frac, sys_.trained, sys_.lam
    s2 = setup.sigma_J**2
    K, L, p = sys_.K, sys_.L, sys_.p
    g0 = int(np.flatnonzero(tr)[0])
    weight = float(np.sum(lam * f * tr))
    # orbit means of one group's packed entries: coordinates in h0 divided by √(orbit size)
    sizes = np.sqrt((sys_.h0 > 0).sum(axis=0))
    kept = [0, 1, 2] if K > 1 else [0, 2]

    def state(y: Array) -> Array:
        a = np.where(tr, f * y[0], f * s2)
        b = np.where(tr, f * y[1], 0.0)
        c = np.where(tr, f * y[2], 0.0)
        return sys_.symmetric_state(a, b, c, y[3])

    def flow(y: Array) -> Array:
        dx = sys_.rhs(state(y))
        group = dx[g0 * p:(g0 + 1) * p] @ sys_.h0 / sizes / (lam[g0] * f[g0])
        out = np.zeros(4)
        out[kept] = weight * group
        out[3] = dx[L * p:].mean()
        return out

    y0 = np.array([s2, 0.0, 0.0, float(sys_.v.mean())])
    horizon = 400.0 / min(setup.eta, sys_.eta_v)
    sol = solve_ivp(lambda _a, y: flow(y), (0.0, horizon), y0, method="LSODA", rtol=1e-10,
                    atol=1e-13)
    y = sol.y[:, -1]
    idx = [*kept, 3]
    polished = root(lambda z: flow(np.insert(z, 1, 0.0) if K == 1 else z)[idx], y[idx],
                    tol=1e-14).x
    candidate = np.insert(polished, 1, 0.0) if K == 1 else polished
    if np.all(np.isfinite(candidate)) and np.max(np.abs(flow(candidate))) < np.max(
            np.abs(flow(y))):
        y = candidate
    x = state(y)
    return x, float(np.max(np.abs(sys_.rhs(x))))


# --------------------------------------------------------------------------- main entry
Method = Literal["auto", "structured", "dense"]


def _route(setup: Setup, sys_: SymmetricSystem, xstar: Array, method: str,
           dense_max: int, max_rhs: int | None = MAX_RHS) -> Any:
    """The linearisation at x* by the chosen route (`StructuredRoute` or `DenseRoute`);
    "auto" is the structured one, or the dense one with a trained second layer."""
    if method == "auto":
        method = "dense" if sys_.nv else "structured"
    if method == "structured":
        if sys_.nv:
            raise ValueError("method: 'structured' assumes a fixed second layer; with "
                             "train_v=True use 'dense' or 'auto' (docs/theory.md §5.6)")
        return StructuredRoute(setup, xstar, dense_max, max_rhs)
    if method == "dense":
        return DenseRoute(sys_, xstar)
    raise ValueError(f"method: must be 'auto', 'structured' or 'dense', got {method!r}")


def escape_rate(setup: Setup, *, method: Method = "auto",
                dense_max: int = DENSE_BLOCK_MAX) -> float:
    """μ alone: the largest real part of the Jacobian's eigenvalues on V1 (E2)."""
    sys_ = SymmetricSystem(setup)
    x, _ = symmetric_fixed_point(setup, system=sys_)
    return _route(setup, sys_, x, method, dense_max).mu


def _draws(setup: Setup, sys_: SymmetricSystem, seed: int | None, init: xr.Dataset | None,
           n_draws: int) -> tuple[Array, str]:
    """Flat initial states of the draw(s): (D, n) and a description."""
    from scalex.schema import initial_overlaps, initial_second_layer

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
        v = initial_second_layer(init, sys_.K) if sys_.nv and "v" in init.data_vars else None
        return sys_.pack(q, r, v)[None], "init"
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
    method: Method = "auto",
    dense_max: int = DENSE_BLOCK_MAX,
    max_rhs: int | None = MAX_RHS,
) -> EscapeResult:
    """Escape-time theory of the symmetric plateau, equations (E1)–(E5) of docs/analysis.md.

    Parameters
    ----------
    setup : a soft committee machine (equal v, equal w; erf activation), with a fixed or a
        trained (``train_v``, docs/theory.md §5.6) student second layer.
    seed : the weight draw whose asymmetry sets the plateau length (`scalex.initial_overlaps`).
    init : instead of ``seed``, a Dataset with the initial ``q``, ``r`` (first α is used), and
        with ``train_v`` optionally ``v`` (default the Setup's initial v).
    flatness, min_decades, window, contrast : the plateau criterion (A2) of
        `scalex.analysis.plateau`, applied to the predicted curve (the fields of
        `scalex.analysis.plateaus.PlateauCriterion`, defaults there).
    baseline : ε_∞ subtracted before the criterion, as in `scalex.analysis.plateau` (for
        curves that saturate, e.g. with frozen groups).
    n_draws : with neither ``seed`` nor ``init``, the amplitude is the rms over the draws of
        seeds 0..n_draws−1 (a typical draw).
    alpha_max : end of the predicted curve (default: 3 (1/μ) ln(1/A_0), at least 100/η).
    points_per_decade : resolution of the predicted curve.
    method : "structured" (docs/theory.md eq. (5.3), any L and K; fixed second layer only),
        "dense" (the Jacobian by central differences column by column, O((L p + K)³): small
        L only), or "auto" (default): structured, or dense with ``train_v``.
    dense_max : structured route: irreducible blocks with at most this many rows get their
        full spectrum (dense eig); larger ones only their rightmost real eigenvalue.
    max_rhs : structured route: the budget of right-hand sides of each integration (the
        symmetric trajectory, the adjoint); typical runs take 100–1500. Past it a
        RuntimeError says where the integration stood, instead of a run that crawls for
        hours near the edge of the theory. None: no budget.

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
    if method not in ("auto", "structured", "dense"):
        raise ValueError(f"method: must be 'auto', 'structured' or 'dense', got {method!r}")
    if max_rhs is not None and (int(max_rhs) != max_rhs or max_rhs < 1):
        raise ValueError(f"max_rhs: must be an integer >= 1 or None, got {max_rhs!r}")
    sys_ = SymmetricSystem(setup)
    thresholds = dict(criterion.keywords(), baseline=baseline)

    # (E1) fixed point, (E2) spectra
    xstar, residual = symmetric_fixed_point(setup, system=sys_)
    eg_star = float(sys_.eg(xstar))
    route = _route(setup, sys_, xstar, method, dense_max, max_rhs)
    q_star, r_star = sys_.unpack(xstar)
    nan = float("nan")
    common: dict[str, Any] = dict(
        setup=setup, plateau_height=eg_star, fixed_point_residual=residual,
        thresholds=thresholds, fixed_point=(q_star, r_star, sys_.t.copy()),
        second_layer=np.array(sys_.second_layer(xstar)),
        antisymmetric_eigenvalues=route.ev1, symmetric_eigenvalues=route.ev0,
        antisymmetric_multiplicities=route.mult1, method=route.name,
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
    y0 = sys_.grouped(sys_.coords(xs0.mean(axis=0), 0))
    hi = alpha_max or max(3.0 * naive, 100.0 / setup.eta)
    lo = 1e-3 / (setup.eta * sys_.lam[0])
    alpha = np.geomspace(lo, hi, int(np.ceil(np.log10(hi / lo) * points_per_decade)) + 1)
    try:
        eg_sym, traj = route.symmetric_trajectory(y0, hi, alpha)
    except IntegrationBudgetError as err:
        raise RuntimeError(
            f"max_rhs: the symmetric trajectory (E3) needed {err} on its way to α = {hi:.4g}, "
            f"3 (1/μ) ln(1/A_0) with μ = {mu:.3g}: the plateau is about as long as the theory "
            f"can follow here. Raise max_rhs (or None) to wait for it, or end the curve "
            f"earlier with alpha_max") from err
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
    try:
        unstable = route.carry_unstable(dX0, traj, y0, a_s)
    except IntegrationBudgetError as err:
        raise RuntimeError(f"max_rhs: the variational equation (E4) needed {err} on its way "
                           f"back from α_s = {a_s:.4g}; raise max_rhs (or None)") from err

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
        response = route.slaved(0.5 * sys_.grouped(sys_.coords(bee, 0)), 2 * mu)
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
        # left again, as `scalex.analysis.plateau` asks: the curve goes on and is not flat,
        # or leaves second order; a curve that ends flat (alpha_max too small) has no end
        after = slice(i1 + 1, None)
        if not (np.isfinite(slope[after]).any() or np.isnan(eg_pred[after]).any()):
            start = end = nan
    length = end - start
    found = bool(np.isfinite(length) and np.log10(end / start) >= criterion.min_decades)
    if not found:  # as in `scalex.analysis.plateau`: no plateau, no numbers
        start = end = length = nan
    return EscapeResult(plateau_start=start, plateau_end=end, plateau_length=length,
                        has_plateau=found, plateau_asymmetry=As, kappa=kappa,
                        eg_predicted=eg_pred, **no_plateau, **common)
