r"""Exact learning curves of linear teacher–student SGD and their scaling laws (THEORY §4).

Reduction to one perceptron
    For g(x) = x the student output is σ = J_eff·ξ/√N with J_eff = Σ_i v_i J_i, the teacher
    ζ = B_eff·ξ/√N with B_eff = Σ_n w_n B_n, and every SGD update moves J_eff by
    (η/√N)(Σ_i v_i²) Δ ξ. So the network is a perceptron with the effective learning rate

        η_eff = η Σ_i v_i²            (= η for v_i = 1/√K).

    With D = J_eff − B_eff, the per-group error e_τ = D P_τ D / N is the contraction of the
    overlaps of THEORY §2,

        e_τ = Σ_ij v_i v_j q^τ_ij − 2 Σ_in v_i w_n r^τ_in + Σ_nm w_n w_m t^τ_nm,

    and ε_g = ½ Σ_τ λ_τ e_τ.

Per-group ODE (THEORY §3 contracted with v, w; s_ia = v_i c_a, E[F_i F_j] = 2 v_i v_j ε_g)
    For trained groups

        de_τ/dα = −2 η_eff λ_τ e_τ + η_eff² λ_τ f_τ (Σ_σ λ_σ e_σ + s²),     f_τ = N_τ/N,   (L1)

    where s is the teacher output-noise std (the noise term η² λ_τ f_τ s² v_i v_j of dq^τ_ij
    contracted with v gives η_eff² λ_τ f_τ s²). Untrained groups keep e_τ(0). The sum over σ
    runs over all groups, so the frozen ones act as a constant forcing
    C = Σ_{σ untrained} λ_σ e_σ(0) + s².

Solution
    On the n trained groups (L1) reads de/dα = −2η_eff M e + b with
    M = diag(λ) − (η_eff/2)(λ⊙f) λᵀ, a diagonal plus a rank-one matrix. With y = e/√f it becomes
    symmetric: M ~ S = diag(λ) − ρ z zᵀ with z = λ⊙√f and ρ = η_eff/2. The eigenvalues ν of S
    solve the secular equation

        1 − ρ Σ_τ z_τ² / (λ_τ − ν) = 0,                                               (L2)

    one in each gap (λ_{τ+1}, λ_τ) and one below λ_n, and the eigenvectors are
    x ∝ (λ − ν)^{-1} z. Each root is stored as an offset from its nearest pole, so that
    λ_τ − ν is exact to rounding even when a root is within 1e-20 of a pole; the eigenvectors
    use Löwner's reconstructed ẑ (Gu & Eisenstat 1994), which makes them orthogonal to
    working precision. Then

        e(α) = e* + √f ⊙ X exp(−2η_eff ν α) Xᵀ (e(0) − e*)/√f,
        e*_τ = (η_eff/2) f_τ C / (1 − h),     h = (η_eff/2) Σ_{trained} λ_τ f_τ.           (L3)

    The slowest root is positive iff h < 1, i.e. the stability bound
    η Σ_i v_i² < 2 / Σ_{trained} f_τ λ_τ. Cost: O(n²) for the roots and vectors plus one
    O(n² A) matrix product for A times (blocked, so memory stays O(n·block)); no dense
    n×n exponential is ever formed.

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

Scaling laws (`asymptotics`)
    For small η, e_τ(0) ≈ E0 f_τ with E0 = σ_J² Σv² + Σw², and a spectrum
    λ(x) ≈ a x^{-(1+β)} in the coordinate rank x = (number of coordinates with eigenvalue
    ≥ λ)/N (for L equal groups a = λ_1 L^{-(1+β)}), the sum ½ E0 Σ_τ f_τ λ_τ e^{−2η_eff λ_τ α}
    becomes an integral over x:

        ε_g ≈ A α^{−β/(1+β)},   A = E0 a Γ(β/(1+β)) (2 η_eff a)^{−β/(1+β)} / (2(1+β)(1 − h)),

    valid for 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained). The factor 1/(1 − h) is the
    resummed η² term of (L1) (the slowly varying Σ λ e is fed back with weight h).
    Training only N_l coordinates, ε_g saturates at the exact fixed point of (L1),
    ε_∞ = ½ (C/(1 − h) − s²) ≈ ½ E0 Σ_{untrained} f_τ λ_τ ≈ (E0 a N^β / 2β) N_l^{−β}.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr
from numba import njit
from numpy.typing import ArrayLike

from scalex.common.alpha import alpha_to_steps
from scalex.common.seeds import check_seeds
from scalex.model.setup import Setup
from scalex.schema import make_dataset


@njit(cache=True)
def _sgd_linear(J, B, X, idx, eps, v, w, eta, noise, n_trainable):  # pragma: no cover
    """Linear K = M = 1 SGD on given input rows: J ← J + (η/√N) v Δ ξ, ξ = X[idx[t]].

    Δ = w B·ξ/√N + s ε_t − v J·ξ/√N; only the first ``n_trainable`` coordinates move.
    """
    N = J.size
    inv_sqrt_n = 1.0 / math.sqrt(N)
    for t in range(idx.size):
        row = idx[t]
        field = 0.0
        for k in range(N):
            field += (w * B[k] - v * J[k]) * X[row, k]
        delta = field * inv_sqrt_n + noise * eps[t]
        step = eta * inv_sqrt_n * v * delta
        for k in range(n_trainable):
            J[k] += step * X[row, k]


# =========================================================================== real-data SGD
def sgd_real_data(
    inputs: ArrayLike,
    setup: Setup,
    alpha: ArrayLike,
    *,
    seeds: Any = range(4),
    block: int = 1 << 16,
) -> xr.Dataset:
    """Linear K = M = 1 online SGD driven by given input vectors (e.g. real data).

    Every step draws one row of ``inputs`` uniformly with replacement (data stream of
    `scalex.weights.rng_streams`; then the label noise ε if s > 0) and applies the update of
    THEORY §1 with g(x) = x. The rows must be in the eigenbasis of their covariance with column
    variances equal to ``setup.spectrum`` (see `scalex.datasets.EigenData`), so that the exact
    error over the empirical distribution is ε_g = ½ Σ_k λ_k (v J_k − w B_k)²/N. Initial weights
    are `scalex.sample_weights(setup, seed)`, so `linear_theory(setup, alpha, seed=seed)`
    starts from the same point; what differs is only the non-Gaussian input distribution and
    finite N.

    Returns a schema Dataset (method "sgd_real_data") with dims (seed, alpha, ...).
    """
    from scalex.model.weights import rng_streams, sample_weights

    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    if setup.K != 1 or setup.M != 1 or setup.activation != "linear":
        raise ValueError("setup: sgd_real_data needs K = M = 1 and activation='linear'")
    X = np.ascontiguousarray(inputs, dtype=float)
    if X.ndim != 2 or X.shape[1] != setup.N or X.shape[0] < 2:
        raise ValueError(
            f"inputs: must be a (samples, N={setup.N}) array with >= 2 rows, got {X.shape}"
        )
    steps = alpha_to_steps(alpha, setup.N)
    if np.any(np.diff(steps) <= 0):
        raise ValueError(
            f"alpha: times must be distinct after rounding to steps of 1/N = {1 / setup.N:.3g}"
        )
    seed_list = list(check_seeds(seeds))
    sp = setup.spectrum
    lam = sp.diagonal()
    v, w = (float(x[0]) for x in setup.second_layer)
    N, A, L = setup.N, steps.size, sp.L
    starts = sp.group_starts()
    dsets = []
    for seed in seed_list:
        J, B = (x[0].copy() for x in sample_weights(setup, seed))
        t = np.add.reduceat(B * B, starts)[:, None, None] / N
        q = np.empty((A, L, 1, 1))
        r = np.empty((A, L, 1, 1))
        eg = np.empty(A)
        data = rng_streams(seed)[2]
        done = 0
        for a_i, target in enumerate(steps):
            while done < target:
                n = int(min(block, target - done))
                idx = data.integers(0, X.shape[0], size=n)
                eps = data.standard_normal(n) if setup.noise else np.zeros(n)
                _sgd_linear(J, B, X, idx, eps, v, w, setup.eta, setup.noise, setup.n_trainable)
                done += n
            q[a_i, :, 0, 0] = np.add.reduceat(J * J, starts) / N
            r[a_i, :, 0, 0] = np.add.reduceat(J * B, starts) / N
            eg[a_i] = 0.5 * float(np.dot(lam, (v * J - w * B) ** 2)) / N
        dsets.append(make_dataset(setup, steps / N, q, r, t, method="sgd_real_data", eg=eg,
                                  attrs={"n_samples": X.shape[0]}))
    out = xr.concat(dsets, dim="seed", data_vars="all", coords="minimal", compat="override",
                    join="override", combine_attrs="override")
    out = out.assign_coords(seed=("seed", seed_list), step=("alpha", steps))
    out["seed"].attrs.update(long_name="random seed of the weight draw and the SGD inputs",
                             units="1")
    out["t"] = out["t"].transpose("seed", ...)
    return out
