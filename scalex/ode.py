"""Per-eigenvalue-group order-parameter ODEs (THEORY §3), exact as N → ∞.

Kernel layer: `derivatives` evaluates the right-hand side on plain arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .integrals import J2, field_covariance, stein_coefficients, update_second_moment

__all__ = ["derivatives"]

Array = NDArray[np.float64]


def derivatives(
    q: ArrayLike,
    r: ArrayLike,
    t: ArrayLike,
    eigenvalues: ArrayLike,
    fractions: ArrayLike,
    v: ArrayLike,
    w: ArrayLike,
    eta: float,
    activation: str = "erf",
    noise: float = 0.0,
    trained: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """dq^τ/dα and dr^τ/dα of THEORY §3 for all groups at once.

    With C = [[Q, R], [Rᵀ, T]] (Q = Σ_τ λ_τ q^τ, ...), s_ia = E[∂F_i/∂h_a] and
    G^τ = [q^τ, r^τ] (K × (K+M)), H^τ = [r^τᵀ, t^τ] (M × (K+M)):

        dq^τ_ij/dα = η λ_τ (Σ_a G^τ_ja s_ia + Σ_a G^τ_ia s_ja)
                     + η² λ_τ f_τ (E[F_i F_j] + s² v_i v_j J2(i,j))
        dr^τ_in/dα = η λ_τ Σ_a H^τ_na s_ia

    with f_τ = N_τ/N and s the teacher-noise std. Groups with ``trained[τ] = False`` do not move.

    Parameters
    ----------
    q, r, t : (L, K, K), (L, K, M), (L, M, M) per-group overlaps.
    eigenvalues, fractions : (L,) λ_τ and N_τ/N.
    v, w : (K,), (M,) second-layer weights.
    trained : optional (L,) bool mask.

    Returns
    -------
    (dq, dr) with the shapes of q and r; dq is exactly symmetric.
    """
    q = np.asarray(q, dtype=float)
    r = np.asarray(r, dtype=float)
    t = np.asarray(t, dtype=float)
    lam = np.asarray(eigenvalues, dtype=float)
    frac = np.asarray(fractions, dtype=float)
    v = np.asarray(v, dtype=float)
    K = q.shape[-1]

    Q = np.einsum("g,gij->ij", lam, q)
    R = np.einsum("g,gin->in", lam, r)
    T = np.einsum("g,gnm->nm", lam, t)
    C = field_covariance(Q, R, T)
    s = stein_coefficients(C, v, w, activation)  # (K, K+M)
    second = update_second_moment(C, v, w, activation)  # (K, K)
    if noise:
        second = second + noise**2 * np.outer(v, v) * J2(C, activation)[:K, :K]

    # Σ_a G^τ_ja s_ia = (q^τ s_Q^T + r^τ s_R^T)_{ji}, split s into student/teacher columns.
    sQ, sR = s[:, :K], s[:, K:]
    Gs = np.einsum("gja,ia->gji", q, sQ) + np.einsum("gjn,in->gji", r, sR)
    first = Gs + np.swapaxes(Gs, -1, -2)
    dq = eta * lam[:, None, None] * first + (eta**2 * lam * frac)[:, None, None] * second
    # Σ_a H^τ_na s_ia = (r^τᵀ)_{n·} s_Q^T + t^τ_{n·} s_R^T
    Hs = np.einsum("gjn,ij->gin", r, sQ) + np.einsum("gnm,im->gin", t, sR)
    dr = eta * lam[:, None, None] * Hs
    if trained is not None:
        mask = np.asarray(trained, dtype=bool)[:, None, None]
        dq = np.where(mask, dq, 0.0)
        dr = np.where(mask, dr, 0.0)
    return dq, dr
