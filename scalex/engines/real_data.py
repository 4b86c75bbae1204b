"""Linear SGD driven by real data vectors instead of Gaussian inputs (docs/theory.md §4.7).

`sgd_real_data` runs linear K = M = 1 online SGD (eq. (1.6) with g(x) = x) in which every step
draws one row of a data matrix uniformly with replacement, from the data stream of the seed
(docs/theory.md §7). The rows must be in the eigenbasis of their covariance, with column
variances equal to the Setup's spectrum, as `scalex.model.datasets.EigenData` prepares them.
The exact error over the empirical distribution, ε_g = ½ Σ_k λ_k (v J_k − w B_k)²/N, is
recorded together with the per-group q^τ, r^τ and t^τ in a schema Dataset with a ``seed`` dim.
The weights start from the same draw as ``linear_theory(setup, alpha, seed=seed)``
(`scalex.engines.linear`), so the two differ only by the non-Gaussian inputs and finite N. The
inner loop is a numba kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr
from numba import njit
from numpy.typing import ArrayLike

from scalex.common.alpha import alpha_to_steps, check_alpha
from scalex.common.seeds import check_seeds
from scalex.model.setup import Setup
from scalex.schema import annotate, make_dataset


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
    `scalex.model.weights.rng_streams`; then the label noise ε if s > 0) and applies the update
    (1.6) of docs/theory.md with g(x) = x. The rows must be in the eigenbasis of their covariance
    with column variances equal to ``setup.spectrum`` (see `scalex.model.datasets.EigenData`),
    so that the exact error over the empirical distribution is
    ε_g = ½ Σ_k λ_k (v J_k − w B_k)²/N. Initial weights
    are `scalex.sample_weights(setup, seed)`, so `linear_theory(setup, alpha, seed=seed)`
    starts from the same point; what differs is only the non-Gaussian input distribution and
    finite N.

    Returns a schema Dataset (method "sgd_real_data") with dims (seed, alpha, ...): ``alpha``
    holds the requested times, ``step(alpha)`` the steps n = rint(α·N) run for them and
    ``alpha_step(alpha)`` = n/N; times sharing a step report that step's state.
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
    alpha = check_alpha(alpha)
    # One meaning everywhere (as `scalex.engines.simulate`): α runs to step n = rint(α·N);
    # times sharing a step report the same state, each distinct step is run once.
    steps = alpha_to_steps(alpha, setup.N)
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
        dsets.append(make_dataset(setup, alpha, q, r, t, method="sgd_real_data", eg=eg,
                                  attrs={"n_samples": X.shape[0]}))
    out = xr.concat(dsets, dim="seed", data_vars="all", coords="minimal", compat="override",
                    join="override", combine_attrs="override")
    out = annotate(out.assign_coords(seed=("seed", seed_list), step=("alpha", steps),
                                     alpha_step=("alpha", steps / N)))
    out["seed"].attrs.update(long_name="random seed of the weight draw and the SGD inputs",
                             units="1")
    out["t"] = out["t"].transpose("seed", ...)
    return out
