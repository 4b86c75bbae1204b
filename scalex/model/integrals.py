r"""Closed-form Gaussian integrals of the soft committee machine (docs/theory.md §3.3).

Convention: for ``activation="erf"`` the hidden-unit function is **g(x) = erf(x/√2)**
(not erf(x)), so g'(x) = √(2/π) e^{-x²/2} and g''(x) = −x g'(x). For ``"linear"``, g(x) = x.
For ``"relu"``, g(x) = max(0, x), g' = Θ, g'' = δ: closed forms for I2, J2, I3 and the Stein
coefficients, a fixed-rule one-dimensional integral for I4 (`scalex.model.relu`, with the
derivations and the measured I4 error).

All functions take one covariance matrix ``C`` of the jointly Gaussian fields
h = (x_1..x_K, y_1..y_M) — shape ``(..., n, n)`` with arbitrary leading batch axes — and return
the integral for every index tuple at once, with no Python loop over indices:

===========  ==============================  ======================  ==================
name         definition                      erf closed form         linear
===========  ==============================  ======================  ==================
I2(a,b)      E[g(a) g(b)]                    (2/π) asin(C_ab/√(d_a d_b))         C_ab
J2(a,b)      E[g'(a) g'(b)]                  (2/π) / √(d_a d_b − C_ab²)          1
I3(a,b,c)    E[g'(a) b g(c)]                 see `I3`                            C_bc
I4(a,b,c,d)  E[g'(a) g'(b) g(c) g(d)]        see `I4`                            C_cd
===========  ==============================  ======================  ==================

with d_a = 1 + C_aa. ReLU: I2 is the arc-cosine kernel √(C_aa C_bb)/(2π)(sin θ + (π − θ) cos θ),
θ = arccos(C_ab/√(C_aa C_bb)); J2 = (π − θ)/(2π); I3 = C_bc J2(a,c) + C_ab D(a,c) with
D(a,c) = E[δ(a) g(c)] = √(C_aa C_cc − C_ac²)/(2π C_aa).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "I2",
    "I3",
    "I4",
    "J2",
    "coefficients",
    "field_covariance",
    "generalization_error",
    "stein_coefficients",
    "update_second_moment",
]

TWO_OVER_PI = 2.0 / np.pi
Array = NDArray[np.float64]
ACTIVATIONS = ("erf", "linear", "relu")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: must be one of {ACTIVATIONS}, got {activation!r}")


def _relu() -> ModuleType:
    """`scalex.model.relu`, imported on first use (it loads numba)."""
    from scalex.model import relu

    return relu


def _idx(C: Array, idx: ArrayLike | None) -> NDArray[np.intp]:
    return np.arange(C.shape[-1]) if idx is None else np.asarray(idx, dtype=np.intp).ravel()


def _block(C: Array, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> Array:
    """C[..., rows, cols] as a (..., len(rows), len(cols)) array."""
    return C[..., rows[:, None], cols[None, :]]


def I2(C: ArrayLike, activation: str = "erf") -> Array:
    """I2(a,b) = E[g(a)g(b)] = (2/π) asin(C_ab / √((1+C_aa)(1+C_bb))) for erf, C_ab for linear.

    relu: the arc-cosine kernel `scalex.model.relu.I2`.
    """
    _check_activation(activation)
    C = np.asarray(C, dtype=float)
    if activation == "linear":
        return C.copy()
    if activation == "relu":
        return _relu().I2(C)
    d = 1.0 + np.diagonal(C, axis1=-2, axis2=-1)
    arg = C / np.sqrt(d[..., :, None] * d[..., None, :])
    return TWO_OVER_PI * np.arcsin(np.clip(arg, -1.0, 1.0))


def J2(C: ArrayLike, activation: str = "erf") -> Array:
    """J2(a,b) = E[g'(a)g'(b)] = (2/π) / √((1+C_aa)(1+C_bb) − C_ab²) for erf, 1 for linear.

    relu: P(a > 0, b > 0) = (π − arccos ρ_ab)/(2π).
    """
    _check_activation(activation)
    C = np.asarray(C, dtype=float)
    if activation == "linear":
        return np.ones_like(C)
    if activation == "relu":
        return _relu().J2(C)
    d = 1.0 + np.diagonal(C, axis1=-2, axis2=-1)
    return TWO_OVER_PI / np.sqrt(d[..., :, None] * d[..., None, :] - C**2)


def I3(
    C: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: str = "erf",
) -> Array:
    """I3(a,b,c) = E[g'(a) b g(c)], shape (..., na, nb, nc).

    erf: (2/π) (C_bc(1+C_aa) − C_ab C_ac) / ((1+C_aa) √Λ3),  Λ3 = (1+C_aa)(1+C_cc) − C_ac².
    linear: C_bc. relu: C_bc J2(a,c) + C_ab D(a,c) (`scalex.model.relu`). ``a``, ``b``, ``c``
    select field indices (default: all).
    """
    _check_activation(activation)
    C = np.asarray(C, dtype=float)
    ia, ib, ic = _idx(C, a), _idx(C, b), _idx(C, c)
    if activation == "relu":
        return _relu().I3(C, ia, ib, ic)
    Cbc = _block(C, ib, ic)[..., None, :, :]
    if activation == "linear":
        return np.broadcast_to(Cbc, (*C.shape[:-2], ia.size, ib.size, ic.size)).copy()
    da = 1.0 + C[..., ia, ia][..., :, None, None]
    dc = 1.0 + C[..., ic, ic][..., None, None, :]
    Cab = _block(C, ia, ib)[..., :, :, None]
    Cac = _block(C, ia, ic)[..., :, None, :]
    lam3 = da * dc - Cac**2
    return TWO_OVER_PI * (Cbc * da - Cab * Cac) / (da * np.sqrt(lam3))


def I4(
    C: ArrayLike,
    a: ArrayLike | None = None,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    d: ArrayLike | None = None,
    activation: str = "erf",
) -> Array:
    """I4(a,b,c,d) = E[g'(a)g'(b)g(c)g(d)], shape (..., na, nb, nc, nd).

    erf (Saad & Solla 1995): (4/π²) Λ4^{-1/2} asin(Λ0 / √(Λ1 Λ2)) with

        Λ4 = (1+C_aa)(1+C_bb) − C_ab²
        Λ0 = Λ4 C_cd − C_bc C_bd (1+C_aa) − C_ac C_ad (1+C_bb) + C_ab C_ac C_bd + C_ab C_ad C_bc
        Λ1 = Λ4 (1+C_cc) − C_bc² (1+C_aa) − C_ac² (1+C_bb) + 2 C_ab C_ac C_bc
        Λ2 = Λ4 (1+C_dd) − C_bd² (1+C_aa) − C_ad² (1+C_bb) + 2 C_ab C_ad C_bd

    linear: C_cd. relu: no closed form; a fixed 54-node path integral, measured error
    ≤ 5·10⁻¹² √(C_cc C_dd) for well-conditioned C, up to 2·10⁻⁸ where fields coincide to rounding
    (`scalex.model.relu`). The result is symmetric under a↔b and under c↔d.
    """
    _check_activation(activation)
    C = np.asarray(C, dtype=float)
    ia, ib, ic, id_ = (_idx(C, x) for x in (a, b, c, d))
    if activation == "relu":
        return _relu().I4(C, ia, ib, ic, id_)
    shape = (*C.shape[:-2], ia.size, ib.size, ic.size, id_.size)
    Ccd = _block(C, ic, id_)[..., None, None, :, :]
    if activation == "linear":
        return np.broadcast_to(Ccd, shape).copy()
    diag = np.diagonal(C, axis1=-2, axis2=-1)
    da = 1.0 + diag[..., ia][..., :, None, None, None]
    db = 1.0 + diag[..., ib][..., None, :, None, None]
    dc = 1.0 + diag[..., ic][..., None, None, :, None]
    dd = 1.0 + diag[..., id_][..., None, None, None, :]
    Cab = _block(C, ia, ib)[..., :, :, None, None]
    Cac = _block(C, ia, ic)[..., :, None, :, None]
    Cad = _block(C, ia, id_)[..., :, None, None, :]
    Cbc = _block(C, ib, ic)[..., None, :, :, None]
    Cbd = _block(C, ib, id_)[..., None, :, None, :]
    lam4 = da * db - Cab**2
    lam0 = (lam4 * Ccd - Cbc * Cbd * da - Cac * Cad * db
            + Cab * Cac * Cbd + Cab * Cad * Cbc)
    lam1 = lam4 * dc - Cbc**2 * da - Cac**2 * db + 2.0 * Cab * Cac * Cbc
    lam2 = lam4 * dd - Cbd**2 * da - Cad**2 * db + 2.0 * Cab * Cad * Cbd
    arg = np.clip(lam0 / np.sqrt(lam1 * lam2), -1.0, 1.0)
    return (4.0 / np.pi**2) / np.sqrt(lam4) * np.arcsin(arg)


# --------------------------------------------------------------------------- assembled forms
def field_covariance(Q: ArrayLike, R: ArrayLike, T: ArrayLike) -> Array:
    """C = [[Q, R], [Rᵀ, T]], the (K+M)×(K+M) field covariance, batched over leading axes."""
    Q, R, T = (np.asarray(x, dtype=float) for x in (Q, R, T))
    batch = np.broadcast_shapes(Q.shape[:-2], R.shape[:-2], T.shape[:-2])
    Q = np.broadcast_to(Q, batch + Q.shape[-2:])
    R = np.broadcast_to(R, batch + R.shape[-2:])
    T = np.broadcast_to(T, batch + T.shape[-2:])
    top = np.concatenate([Q, R], axis=-1)
    bottom = np.concatenate([np.swapaxes(R, -1, -2), T], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def coefficients(v: ArrayLike, w: ArrayLike) -> Array:
    """c = (−v, w): the coefficients of g(h) in Δ = ζ − σ. Leading axes broadcast, so a batch
    of trained v (..., K) goes with the fixed w (M,)."""
    v = np.asarray(v, dtype=float)
    w = np.asarray(w, dtype=float)
    if v.shape[:-1] != w.shape[:-1]:
        lead = np.broadcast_shapes(v.shape[:-1], w.shape[:-1])
        v = np.broadcast_to(v, lead + v.shape[-1:])
        w = np.broadcast_to(w, lead + w.shape[-1:])
    return np.concatenate([-v, w], axis=-1)


def generalization_error(
    Q: ArrayLike, R: ArrayLike, T: ArrayLike, v: ArrayLike, w: ArrayLike, activation: str = "erf"
) -> Array:
    """Exact ε_g = E_ξ[½(ζ − σ)²] = ½ cᵀ I2(C) c, c = (−v, w) (docs/theory.md eq. (3.11)).

    ``Q`` (..., K, K), ``R`` (..., K, M) and ``T`` (..., M, M) are the λ-weighted overlaps
    Q = Σ_τ λ_τ q^τ, R = Σ_τ λ_τ r^τ, T = Σ_τ λ_τ t^τ; leading axes broadcast. Teacher output
    noise is not included (it adds s²/2 to the test loss on noisy labels).
    """
    C = field_covariance(Q, R, T)
    c = coefficients(v, w)
    return 0.5 * np.einsum("...a,...ab,...b->...", c, I2(C, activation), c)


def stein_coefficients(
    C: ArrayLike, v: ArrayLike, w: ArrayLike, activation: str = "erf"
) -> Array:
    """s_ia = E[∂F_i/∂h_a] for F_i = v_i g'(x_i) Δ, shape (..., K, K+M) (docs/theory.md eq. (3.12)).

    s_ia = v_i c_a J2(i,a) + δ_ia v_i Σ_c c_c E[g''(x_i) g(h_c)]. erf: g'' = −x g' gives
    E[g''(x_i) g(h_c)] = −I3(i,i,c); linear: 0; relu: g'' = δ gives
    E[δ(x_i) g(h_c)] = √(C_ii C_cc − C_ic²)/(2π C_ii) (`scalex.model.relu.stein`).
    """
    _check_activation(activation)
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    c = coefficients(v, w)
    if activation == "relu":
        return _relu().stein(C, v, c)
    K = v.shape[-1]
    s = v[..., :, None] * c[..., None, :] * J2(C, activation)[..., :K, :]
    if activation == "erf":
        students = np.arange(K)
        # I3(i, i, c) for every student i: diagonal of the (a, b) axes.
        i3 = I3(C, students, students, None, activation)
        i3_diag = np.diagonal(i3, axis1=-3, axis2=-2)  # (..., n, K)
        s[..., students, students] -= v * np.einsum("...c,...ci->...i", c, i3_diag)
    return s


def update_second_moment(
    C: ArrayLike, v: ArrayLike, w: ArrayLike, activation: str = "erf", max_block: int = 2**21
) -> Array:
    """E[F_i F_j] = v_i v_j Σ_{c,d} c_c c_d I4(i,j,c,d), shape (..., K, K) (docs/theory.md (3.13)).

    For linear g this equals 2 v_i v_j ε_g. The I4 tensor is evaluated in blocks of student
    rows so that memory stays below ``max_block`` elements for large K. relu: compiled, with the
    symmetries i↔j and c↔d and no I4 tensor in memory (`scalex.model.relu.second_moment`).
    """
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    c = coefficients(v, w)
    K, n = v.shape[-1], C.shape[-1]
    batch = int(np.prod(C.shape[:-2], dtype=np.int64))
    if activation == "linear":
        two_eg = np.einsum("...a,...ab,...b->...", c, C, c)
        return v[..., :, None] * v[..., None, :] * two_eg[..., None, None]
    _check_activation(activation)
    if activation == "relu":
        return _relu().second_moment(C, v, c)
    rows = max(1, int(max_block // max(1, batch * K * n * n)))
    out = np.empty((*C.shape[:-2], K, K))
    for start in range(0, K, rows):
        i = np.arange(start, min(K, start + rows))
        i4 = I4(C, i, np.arange(K), None, None, activation)
        out[..., i, :] = np.einsum("...ijcd,...c,...d->...ij", i4, c, c)
    return v[..., :, None] * v[..., None, :] * out
