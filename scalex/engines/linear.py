r"""Exact learning curves of linear teacher–student SGD (docs/theory.md §4.1–4.4).

Reduction to one perceptron (eqs. (4.1)–(4.2))
    For g(x) = x the student output is σ = J_eff·ξ/√N with J_eff = Σ_i v_i J_i, the teacher
    ζ = B_eff·ξ/√N with B_eff = Σ_n w_n B_n, and every SGD update moves J_eff by
    (η/√N)(Σ_i v_i²) Δ ξ. So the network is a perceptron with the effective learning rate

        η_eff = η Σ_i v_i²            (= η for v_i = 1/√K).

    With D = J_eff − B_eff, the per-group error e_τ = D P_τ D / N is the contraction of the
    overlaps of docs/theory.md §2,

        e_τ = Σ_ij v_i v_j q^τ_ij − 2 Σ_in v_i w_n r^τ_in + Σ_nm w_n w_m t^τ_nm,

    and ε_g = ½ Σ_τ λ_τ e_τ.

Per-group ODE (docs/theory.md §3 contracted with v, w; s_ia = v_i c_a, E[F_i F_j] = 2 v_i v_j ε_g)
    For trained groups, eq. (4.3):

        de_τ/dα = −2 η_eff λ_τ e_τ + η_eff² λ_τ f_τ (Σ_σ λ_σ e_σ + s²),     f_τ = N_τ/N,   (L1)

    where s is the teacher output-noise std (the noise term η² λ_τ f_τ s² v_i v_j of dq^τ_ij
    contracted with v gives η_eff² λ_τ f_τ s²). Untrained groups keep e_τ(0). The sum over σ
    runs over all groups, so the frozen ones act as a constant forcing
    C = Σ_{σ untrained} λ_σ e_σ(0) + s².

Solution (eqs. (4.4)–(4.5))
    On the n trained groups (L1) reads de/dα = −2η_eff M e + b with
    M = diag(λ) − (η_eff/2)(λ⊙f) λᵀ, a diagonal plus a rank-one matrix. With y = e/√f it becomes
    symmetric: M ~ S = diag(λ) − ρ z zᵀ with z = λ⊙√f and ρ = η_eff/2. The eigenvalues ν of S
    solve the secular equation

        1 − ρ Σ_τ z_τ² / (λ_τ − ν) = 0,                                               (L2)

    one in each gap (λ_{τ+1}, λ_τ) and one below λ_n, and the eigenvectors are
    x ∝ (λ − ν)^{-1} z. `scalex.numerics.secular` solves (L2) to full relative precision near
    the poles. Groups with equal eigenvalues are merged; their differences decay at 2η_eff λ.
    Then

        e(α) = e* + √f ⊙ X exp(−2η_eff ν α) Xᵀ (e(0) − e*)/√f,
        e*_τ = (η_eff/2) f_τ C / (1 − h),     h = (η_eff/2) Σ_{trained} λ_τ f_τ.           (L3)

    The slowest root is positive iff h < 1, i.e. the stability bound (eq. (4.6))
    η Σ_i v_i² < 2 / Σ_{trained} f_τ λ_τ (`stability_bound`; `linear_theory` refuses η at or
    above it). Cost: O(n²) for the roots and vectors plus one O(n² A) matrix product for A
    times (blocked, so memory stays O(n·block)); no dense n×n exponential is ever formed.

Overlaps
    The linear student moves every J_i along the same vector: J_i(α) = J_i(0) + v_i G(α),
    G = (D(α) − D(0))/Σv². First-order overlaps u P_τ D(α)/N with a fixed vector u relax as
    e^{−η_eff λ_τ α} (the mean of the update, without fluctuation term). Hence with
    φ_τ = e^{−η_eff λ_τ α} (1 for frozen groups), V = Σ v², a^τ_i = Σ_k v_k q^τ_ik(0) −
    Σ_n w_n r^τ_in(0) and b^τ_n = Σ_k v_k r^τ_kn(0) − Σ_m w_m t^τ_mn:

        q^τ_ij(α) = q^τ_ij(0) + (φ_τ − 1)(v_j a^τ_i + v_i a^τ_j)/V
                    + v_i v_j (e_τ(α) − 2 φ_τ e_τ(0) + e_τ(0)) / V²                     (L4)
        r^τ_in(α) = r^τ_in(0) + (φ_τ − 1) v_i b^τ_n / V

    so `linear_theory` returns a full schema Dataset, exact for any K, M, v and w.

The scaling laws that follow from (L1) are in `scalex.engines.linear_asymptotics`; SGD driven
by real data vectors is in `scalex.engines.real_data`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from scalex.common.alpha import check_alpha
from scalex.model.setup import Setup
from scalex.numerics.secular import merge_equal, project, secular_eigensystem, vectors
from scalex.schema import make_dataset

__all__ = [
    "effective_learning_rate",
    "exact_errors",
    "initial_condition",
    "linear_theory",
    "stability_bound",
]

Array = NDArray[np.float64]
#: largest q, r output (float count) `linear_theory` builds before asking for overlaps=False.
MAX_OVERLAP_ELEMENTS = 250_000_000
#: eigenvectors built at once by `exact_errors` (memory 8·n·block bytes).
DEFAULT_BLOCK = 2048


def exact_errors(
    eigenvalues: ArrayLike,
    fractions: ArrayLike,
    e0: ArrayLike,
    eta: float,
    alpha: ArrayLike,
    *,
    trained: ArrayLike | None = None,
    noise: float = 0.0,
    block: int = DEFAULT_BLOCK,
) -> Array:
    """Exact e_τ(α) of the per-group linear ODE (L1), shape (A, L).

    de_τ/dα = −2ηλ_τ e_τ + η² λ_τ f_τ (Σ_σ λ_σ e_σ + s²) for trained τ, 0 otherwise; solved by
    (L3) with the secular eigensystem of the trained block (module docstring).

    Parameters
    ----------
    eigenvalues : (L,) λ_τ > 0 in non-increasing order; equal values are allowed (those groups
        move together, and their differences decay at their own rate).
    fractions : (L,) f_τ = N_τ/N > 0.
    e0 : (L,) initial e_τ(0).
    eta : the effective learning rate η_eff = η Σ_i v_i² (> 0, below the stability bound).
    alpha : (A,) times α ≥ 0.
    trained : optional (L,) bool mask of trained groups (default: all).
    noise : teacher output-noise std s ≥ 0.
    block : eigenvector columns built at once (memory ~ 8·L·block bytes).
    """
    lam = np.asarray(eigenvalues, dtype=float)
    frac = np.asarray(fractions, dtype=float)
    e0 = np.asarray(e0, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if lam.ndim != 1 or lam.size < 1 or frac.shape != lam.shape or e0.shape != lam.shape:
        raise ValueError("eigenvalues, fractions, e0: must be 1-D arrays of the same length")
    if np.any(lam <= 0) or np.any(np.diff(lam) > 0) or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues: must be finite, > 0 and non-increasing")
    if np.any(frac <= 0):
        raise ValueError("fractions: must be > 0")
    if alpha.ndim != 1 or not np.all(np.isfinite(alpha)) or np.any(alpha < 0):
        raise ValueError("alpha: must be a 1-D array of finite times >= 0")
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta: must be finite and > 0, got {eta!r}")
    if not noise >= 0:
        raise ValueError(f"noise: must be >= 0, got {noise!r}")
    mask = np.ones(lam.size, bool) if trained is None else np.asarray(trained, dtype=bool)
    out = np.broadcast_to(e0, (alpha.size, lam.size)).copy()
    if not mask.any():
        return out
    lt, ft, et = lam[mask], frac[mask], e0[mask]
    forcing = float(np.dot(lam[~mask], e0[~mask])) + noise**2
    h = 0.5 * eta * float(np.dot(lt, ft))
    if h >= 1.0:
        raise ValueError(
            f"eta: must be < {2.0 / float(np.dot(lt, ft)):.10g} (= 2/Σ_trained f_τ λ_τ) for "
            f"stable linear SGD, got {eta!r}"
        )

    # Groups with equal eigenvalues: solve for their sum, add the decaying differences.
    starts, run = merge_equal(lt)
    lm = lt[starts]
    fm = np.add.reduceat(ft, starts)
    em0 = np.add.reduceat(et, starts)
    estar = 0.5 * eta * fm * forcing / (1.0 - h)
    sqrt_f = np.sqrt(fm)
    nu, zhat, origin, offset = secular_eigensystem(lm, lm * sqrt_f, 0.5 * eta)
    d = np.ascontiguousarray(-lm)
    tau = np.ascontiguousarray(offset)
    n = lm.size
    norm, proj = project(d, zhat, origin, tau, (em0 - estar) / sqrt_f)
    # exp(−2η ν_k α) weighted by the projections, one BLAS product per block of vectors
    weights = np.exp(-2.0 * eta * np.outer(alpha, nu)) * proj  # (A, n)
    block = n if block is None else max(1, int(block))
    em = np.zeros((alpha.size, n))
    for k0 in range(0, n, block):
        k1 = min(n, k0 + block)
        em += weights[:, k0:k1] @ vectors(d, zhat, origin, tau, norm, k0, k1)
    em = em * sqrt_f + estar  # (A, n)
    if starts.size == lt.size:
        out[:, mask] = em
        return out
    share = ft / fm[run]
    own = np.exp(-2.0 * eta * np.outer(alpha, lt))
    out[:, mask] = share * em[:, run] + (et - share * em0[run]) * own
    return out


# =========================================================================== setup layer
def effective_learning_rate(setup: Setup) -> float:
    """η_eff = η Σ_i v_i², the learning rate of the equivalent perceptron (module docstring)."""
    v, _ = setup.second_layer
    return float(setup.eta * np.dot(v, v))


def stability_bound(setup: Setup) -> float:
    """The largest stable η of linear SGD, `Setup.eta_max_linear` (docs/theory.md eq. (4.6))."""
    return setup.eta_max_linear


def check_setup(setup: Setup, require_linear: bool = True) -> None:
    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    if setup.train_v:
        raise ValueError("train_v: the exact linear theory needs a fixed second layer; with a "
                         "trained v the dynamics are not linear in the order parameters (v "
                         "multiplies J), so there is no closed form; use solve_ode "
                         "(docs/theory.md §3.10)")
    if require_linear and setup.activation != "linear":
        raise ValueError(
            f"activation: the exact linear theory needs activation='linear', "
            f"got {setup.activation!r}"
        )
    v, _ = setup.second_layer
    if not np.any(v):
        raise ValueError("v: the linear theory needs at least one non-zero student weight")
    bound = stability_bound(setup)
    if not setup.eta < bound:
        raise ValueError(
            f"eta: must be < {bound:.10g} (= 2/(Σ_i v_i² · Σ_trained f_τ λ_τ)) for stable "
            f"linear SGD, got {setup.eta!r}"
        )


def initial_condition(
    setup: Setup, seed: int | None = None, *, overlaps: bool = True
) -> dict[str, Array]:
    """Initial per-group errors e_τ(0) and (with ``overlaps``) overlaps q^τ(0), r^τ(0), t^τ.

    ``seed=None``: the expectation over the weight draw, q^τ = σ_J² f_τ I, r^τ = 0,
    t^τ = f_τ I, so e_τ(0) = (σ_J² Σv² + Σw²) f_τ. ``seed=int``: the draw of
    `scalex.sample_weights` / `scalex.initial_overlaps` (the start of `scalex.simulate`).

    Returns a dict with ``e`` (L,) and, with ``overlaps``, ``q`` (L, K, K), ``r`` (L, K, M)
    and ``t`` (L, M, M).
    """
    v, w = setup.second_layer
    sp = setup.spectrum
    f = sp.fractions
    if seed is None:
        out = {"e": (setup.sigma_J**2 * float(v @ v) + float(w @ w)) * f}
        if overlaps:
            out["q"] = setup.sigma_J**2 * f[:, None, None] * np.eye(setup.K)
            out["r"] = np.zeros((f.size, setup.K, setup.M))
            out["t"] = f[:, None, None] * np.eye(setup.M)
        return out
    from scalex.model.weights import sample_weights
    from scalex.schema import initial_overlaps

    J, B = sample_weights(setup, seed)
    D = v @ J - w @ B  # J_eff − B_eff
    out = {"e": np.add.reduceat(D * D, sp.group_starts()) / setup.N}
    if overlaps:
        ds = initial_overlaps(setup, seed)
        out.update({name: np.asarray(ds[name].values, dtype=float) for name in ("q", "r", "t")})
        out["q"], out["r"] = out["q"][0], out["r"][0]
    return out


def linear_theory(
    setup: Setup,
    alpha: ArrayLike,
    *,
    seed: int | None = None,
    overlaps: bool = True,
    block: int = DEFAULT_BLOCK,
) -> xr.Dataset:
    """Exact learning curve of linear SGD (docs/theory.md §4; (L1)–(L4) of the module docstring).

    Parameters
    ----------
    setup : a linear-activation Setup (any K, M, v, w, spectrum, trainable, noise) with
        η below `stability_bound`.
    alpha : increasing times α ≥ 0.
    seed : None for the expected initial condition over the weight draw, or an int for the
        actual draw of that seed (as in `scalex.initial_overlaps` and `scalex.simulate`).
    overlaps : also return the per-group q^τ(α), r^τ(α) of (L4) and t^τ (schema variables,
        memory A·L·K·(K+M)); False gives a reduced dataset with ``eg`` and ``e`` only (cost
        and memory then independent of K and M).
    block : see `exact_errors`.

    Returns
    -------
    Dataset (method "linear") with ``eg(alpha)``, ``e(alpha, group)`` and, with ``overlaps``,
    ``q``, ``r``, ``t`` (then it passes `scalex.schema.validate`). Attrs record
    ``initial_condition`` ("expected" or "seed"), ``seed`` (-1 for expected), ``eta_eff``,
    ``stability_bound`` and ``overlaps`` (1/0).
    """
    check_setup(setup)
    a = check_alpha(alpha)
    sp = setup.spectrum
    K, M = setup.K, setup.M
    if overlaps:
        size = a.size * sp.L * K * (K + M) + sp.L * M * M
        if size > MAX_OVERLAP_ELEMENTS:
            raise ValueError(
                f"overlaps: q, r and t would hold {size:.3g} floats ({8 * size / 1e9:.1f} GB) "
                f"for {a.size} times, L={sp.L}, K={K}, M={M}; pass overlaps=False "
                "(eg and e only) or fewer times"
            )
    init = initial_condition(setup, seed, overlaps=overlaps)
    eta_eff = effective_learning_rate(setup)
    e = exact_errors(sp.eigenvalues, sp.fractions, init["e"], eta_eff, a,
                     trained=setup.trained_groups, noise=setup.noise, block=block)
    eg = 0.5 * e @ sp.eigenvalues
    attrs: dict[str, Any] = {
        "initial_condition": "expected" if seed is None else "seed",
        "seed": -1 if seed is None else int(seed),
        "eta_eff": eta_eff,
        "stability_bound": stability_bound(setup),
        "overlaps": int(overlaps),
    }
    extra = {"e": (("alpha", "group"), e, {
        "long_name": "per-group error e^τ = (J_eff − B_eff) P_τ (J_eff − B_eff) / N",
        "units": "1"})}
    if overlaps:
        q, r = _overlaps(setup, init, e, a, eta_eff)
        t = init["t"]
    else:  # zero-memory placeholders, dropped below
        q = np.broadcast_to(np.nan, (a.size, sp.L, K, K))
        r = np.broadcast_to(np.nan, (a.size, sp.L, K, M))
        t = np.broadcast_to(np.nan, (sp.L, M, M))
    ds = make_dataset(setup, a, q, r, t, method="linear", eg=eg, extra=extra, attrs=attrs)
    if not overlaps:
        ds = ds.drop_vars(["q", "r", "t"])
    return ds


def _overlaps(
    setup: Setup, init: dict[str, Array], e: Array, alpha: Array, eta_eff: float
) -> tuple[Array, Array]:
    """q^τ(α), r^τ(α) of (L4) from e_τ(α) and the initial overlaps."""
    v, w = setup.second_layer
    V = float(np.dot(v, v))
    q0, r0, t = init["q"], init["r"], init["t"]
    lam = setup.spectrum.eigenvalues
    rate = np.where(setup.trained_groups, eta_eff * lam, 0.0)
    phi = np.exp(-np.outer(alpha, rate))  # (A, L)
    a_ = np.einsum("gik,k->gi", q0, v) - np.einsum("gin,n->gi", r0, w)  # (L, K)
    b_ = np.einsum("gkn,k->gn", r0, v) - np.einsum("gmn,m->gn", t, w)  # (L, M)
    e0 = init["e"]
    cross = (v[None, :, None] * a_[:, None, :] + a_[:, :, None] * v[None, None, :]) / V
    q = (q0[None] + (phi - 1.0)[:, :, None, None] * cross[None]
         + ((e - 2.0 * phi * e0 + e0) / V**2)[:, :, None, None] * np.outer(v, v))
    r = r0[None] + (phi - 1.0)[:, :, None, None] * (v[None, :, None] * b_[:, None, :] / V)[None]
    return q, r


