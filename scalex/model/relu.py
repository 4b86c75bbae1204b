r"""Gaussian integrals of the ReLU soft committee machine (counterpart of docs/theory.md §3.3–3.4).

Convention: g(x) = max(0, x), so g'(x) = Θ(x) (Heaviside) and g'' = δ. The fields
h = (x_1..x_K, y_1..y_M) are jointly Gaussian with covariance ``C`` (shape ``(..., n, n)``);
every field must have positive variance (Θ is not defined on a field that is identically 0,
and D below grows like C_aa^{-1/2}). Write ρ_ab = C_ab / √(C_aa C_bb) and θ_ab = arccos ρ_ab.
The derivation and the conventions are summarised in docs/theory.md §3.8.

θ is computed as atan2(√(C_aa C_bb − C_ab²), C_ab), with the same square root (clamped at 0) as
D, and I2 as (√(C_aa C_bb − C_ab²) + (π − θ) C_ab)/(2π). Near a student that equals a teacher
(1 − ρ² → 0) the Stein coefficients contain √(1 − ρ²) terms that cancel in the ODE right-hand
side; both routes carry an error ~√(machine ε) there, but with one shared root the errors cancel
as the terms do. With arccos ρ and a separate root they did not, the right-hand side jittered at
~10⁻⁸ near the teacher, and BDF with atol = 1e-9 stalled there (docs/theory.md §3.8).

Closed forms
------------
* I2(a,b) = E[g(a) g(b)] = √(C_aa C_bb)/(2π) (sin θ + (π − θ) cos θ), the first-order
  arc-cosine kernel (Cho & Saul 2009); I2(a,a) = C_aa / 2.
* J2(a,b) = E[Θ(a) Θ(b)] = P(a > 0, b > 0) = (π − θ)/(2π) (Sheppard).
* D(a,c) = E[δ(a) g(c)] = p_a(0) E[g(c) | a = 0] = √(C_aa C_cc − C_ac²) / (2π C_aa): given
  a = 0, c is N(0, C_cc − C_ac²/C_aa), whose ReLU has mean σ/√(2π), and p_a(0) = 1/√(2π C_aa).
* I3(a,b,c) = E[Θ(a) b g(c)] = C_bc J2(a,c) + C_ab D(a,c): Stein's lemma on the factor b,
  E[b f(a,c)] = C_ab E[∂_a f] + C_bc E[∂_c f] with f = Θ(a) g(c), ∂_a f = δ(a) g(c),
  ∂_c f = Θ(a) Θ(c).
* Stein coefficients (docs/theory.md eq. (3.12)) for F_i = v_i Θ(x_i) Δ, Δ = Σ_c c_c g(h_c):
  ∂F_i/∂h_a = v_i c_a Θ(x_i) Θ(h_a) + δ_ia v_i δ(x_i) Δ, so

      s_ia = v_i c_a J2(i,a) + δ_ia v_i Σ_c c_c D(i,c).

  The delta term is the ReLU form of erf's −δ_ia v_i Σ_c c_c I3(i,i,c) (both are
  δ_ia v_i E[g''(x_i) Δ]); D(i,i) = 0. s_ia = ∂E[F_i(h + μ)]/∂μ_a at μ = 0 is smooth although
  g'' is a delta function, and Stein's lemma E[h_b F_i] = Σ_a C_ba s_ia holds with it.

I4 (no closed form)
-------------------
I4(a,b,c,d) = E[Θ(a) Θ(b) g(c) g(d)] contains the four-variate orthant probability, which is not
elementary. It is computed as a one-dimensional integral. Treat (X1, X2, X3, X4) = (a, b, c, d)
as four variables (even when indices coincide) with covariance S(t): the diagonal and S_34 fixed,
the five other entries S_12, S_13, S_14, S_23, S_24 multiplied by t. S(t) is a convex
combination of S and of a block-diagonal covariance, so it is a covariance for every t, and at
t = 0 X1 and X2 are independent of everything: F(0) = I2(c,d)/4. By the Gaussian heat identity
∂E[f]/∂S_kl = E[∂_k∂_l f] (k ≠ l),

    I4 = F(1) = I2(c,d)/4 + ∫₀¹ Σ_{kl ∈ {12,13,14,23,24}} S_kl E_t[∂_k∂_l f] dt,

f = Θ(X1)Θ(X2)g(X3)g(X4). Every derivative contains δ(X1) or δ(X2), which leaves an integral of
at most three fields that is elementary:

* (1,3), (1,4): p_1(0) E_t[Θ(X2)Θ(X3)g(X4) | X1 = 0] and the same with X3 ↔ X4, where
  T3(u,v,w) = E[Θ(u)Θ(v)g(w)] = Σ_wu p_u(0) P(v,w>0 | u=0) + Σ_wv p_v(0) P(u,w>0 | v=0)
  + Σ_ww p_w(0) P(u,v>0 | w=0) (Stein's lemma on w), with bivariate orthant probabilities
  P = 1/4 + asin(partial correlation)/(2π); T3(u,v,w) and T3(u,w,v) share their three arcsines.
* (2,3), (2,4): the same conditioned on X2 = 0.
* (1,2): p_12(0,0) I2 of (X3, X4) conditioned on X1 = X2 = 0.

Quadrature: with 1 − t = e^{−z}, features of a nearly singular S (a field pair with
1 − ρ² = ε² puts one at 1 − t ~ ε²) are O(1) wide in z at every scale ε. The fixed 54-node rule
is Gauss–Legendre on t ∈ [0, ½] (6 nodes), on z ∈ [ln 2, 6], [6, 14], [14, 26], [26, 44]
(14, 10, 10, 10 nodes) and on u = √(1 − t) ∈ [0, e^{−22}] (4 nodes; the integrand can grow like
(1 − t)^{−1/2} when X1 ≡ X2). Conditional covariances are formed from t and 1 − t separately so
that no precision is lost as t → 1, and every factor is clamped to its Cauchy–Schwarz range so
that a covariance singular up to rounding gives bounded values. It is the same rule for every
covariance, so the result is a smooth function of C.

Measured error against a 680-node rule (60 + 600 + 20 nodes, z up to 80), all 4⁴ index tuples:
random 4-field covariances (coincident indices, i.e. exactly singular tuples, included): max
5·10⁻¹² √(C_cc C_dd) over 4400 covariances; students near teachers or near each other (K = M = 2,
1 − ρ² from 1 down to rounding level): median 8·10⁻¹¹, 99th percentile 2.3·10⁻⁹, max 2.1·10⁻⁸
over 1467 covariances. The largest errors occur where 1 − ρ² ≈ 10⁻¹⁶: there I4 itself moves by
~√(machine ε) ≈ 10⁻⁸ under rounding-level changes of C (it contains √(1 − ρ²) terms), so no rule
does better. tests/test_relu.py checks 10⁻¹⁰ and 5·10⁻⁸ on fresh samples of the two families.
The path is one joint Gaussian for all (c, d) at fixed (a, b), so Σ_cd c_c c_d I4(a,b,c,d) is the
same rule applied to E_t[Θ(X1)Θ(X2)Δ²], which vanishes identically where Δ ≡ 0 (the teacher):
the error of E_ij is absolute, ≲ 10⁻⁹ in units of C, with a rounding floor ~10⁻¹¹.

Cost: 54 nodes × 7 inverse trigonometric functions per I4 entry; `second_moment` uses the
symmetries a ↔ b, c ↔ d (K(K+1)/2 · n(n+1)/2 entries) in compiled code.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from numpy.typing import ArrayLike, NDArray

__all__ = ["I2", "I3", "I4", "J2", "QUADRATURE", "D", "moments", "second_moment", "stein"]

Array = NDArray[np.float64]
TWO_PI = 2.0 * np.pi
SQRT_TWO_PI = math.sqrt(TWO_PI)


def _rule() -> tuple[Array, Array, Array]:
    """Nodes t, 1 − t and weights of the fixed I4 rule (module docstring)."""
    def gl(n: int, lo: float, hi: float) -> tuple[Array, Array]:
        x, w = np.polynomial.legendre.leggauss(n)
        return lo + 0.5 * (hi - lo) * (x + 1.0), 0.5 * (hi - lo) * w

    ts, oms, ws = [], [], []
    t, w = gl(6, 0.0, 0.5)
    ts.append(t), oms.append(1.0 - t), ws.append(w)
    panels = ((math.log(2.0), 6.0, 14), (6.0, 14.0, 10), (14.0, 26.0, 10), (26.0, 44.0, 10))
    for lo, hi, n in panels:
        z, w = gl(n, lo, hi)
        om = np.exp(-z)
        ts.append(1.0 - om), oms.append(om), ws.append(om * w)  # dt = e^{-z} dz
    u, w = gl(4, 0.0, math.exp(-22.0))
    ts.append(1.0 - u * u), oms.append(u * u), ws.append(2.0 * u * w)  # dt = 2u du
    return np.concatenate(ts), np.concatenate(oms), np.concatenate(ws)


#: (t, 1 − t, weight) of the fixed 54-node rule for the I4 path integral.
QUADRATURE = _rule()


# --------------------------------------------------------------------------- closed forms
def _diag(C: Array) -> Array:
    return np.diagonal(C, axis1=-2, axis2=-1)


def _sqrt_det(C: Array) -> tuple[Array, Array]:
    """(diagonal d, √max(d_a d_b − C_ab², 0)): the one square root shared by I2, J2 and D."""
    d = _diag(C)
    return d, np.sqrt(np.maximum(d[..., :, None] * d[..., None, :] - C**2, 0.0))


def _theta(C: Array, root: Array) -> Array:
    """θ_ab = arccos ρ_ab, as atan2(√(C_aa C_bb − C_ab²), C_ab) (module docstring)."""
    return np.arctan2(root, C)


def I2(C: ArrayLike) -> Array:
    """E[g(a) g(b)] = (√(C_aa C_bb − C_ab²) + (π − θ) C_ab)/(2π), shape (..., n, n)."""
    C = np.asarray(C, dtype=float)
    _, root = _sqrt_det(C)
    return (root + (np.pi - _theta(C, root)) * C) / TWO_PI


def J2(C: ArrayLike) -> Array:
    """E[Θ(a) Θ(b)] = (π − θ_ab)/(2π), shape (..., n, n)."""
    C = np.asarray(C, dtype=float)
    _, root = _sqrt_det(C)
    return (np.pi - _theta(C, root)) / TWO_PI


def D(C: ArrayLike) -> Array:
    """D(a,c) = E[δ(a) g(c)] = √(C_aa C_cc − C_ac²)/(2π C_aa), shape (..., n, n); D(a,a) = 0."""
    C = np.asarray(C, dtype=float)
    d, root = _sqrt_det(C)
    return root / (TWO_PI * d[..., :, None])


def I3(C: ArrayLike, ia: NDArray[np.intp], ib: NDArray[np.intp],
       ic: NDArray[np.intp]) -> Array:
    """E[Θ(a) b g(c)] = C_bc J2(a,c) + C_ab D(a,c), shape (..., na, nb, nc)."""
    C = np.asarray(C, dtype=float)
    j2 = J2(C)[..., ia[:, None], ic[None, :]][..., :, None, :]
    dd = D(C)[..., ia[:, None], ic[None, :]][..., :, None, :]
    Cbc = C[..., ib[:, None], ic[None, :]][..., None, :, :]
    Cab = C[..., ia[:, None], ib[None, :]][..., :, :, None]
    return Cbc * j2 + Cab * dd


# --------------------------------------------------------------------------- I4 kernels
_jit = numba.njit(cache=True, error_model="numpy")


@_jit
def _asin_partial(num: float, dx: float, dy: float) -> float:  # pragma: no cover - compiled
    """asin(num/√(dx dy)), clipped; 0 where the conditional variance vanishes (see _t3_pair)."""
    den = dx * dy
    if den <= 0.0:
        return 0.0
    return math.asin(min(1.0, max(-1.0, num / math.sqrt(den))))


@_jit
def _slope(cxy: float, vx: float, vy: float) -> float:  # pragma: no cover - compiled
    """Cov(x,y)/√Var(x) = ρ √Var(y), clamped to |·| ≤ √Var(y) against rounding (0 if Var x = 0)."""
    if vx <= 0.0:
        return 0.0
    bound = math.sqrt(max(vy, 0.0))
    return min(bound, max(-bound, cxy / math.sqrt(vx)))


@_jit
def _arccos1(caa: float, cbb: float, cab: float) -> float:  # pragma: no cover - compiled
    """E[g(a) g(b)], the degree-1 arc-cosine kernel."""
    n2 = caa * cbb
    if n2 <= 0.0:
        return 0.0
    nrm = math.sqrt(n2)
    r = min(1.0, max(-1.0, cab / nrm))
    return nrm / (2.0 * math.pi) * (math.sqrt(1.0 - r * r) + (math.pi - math.acos(r)) * r)


@_jit
def _t3_pair(uu: float, vv: float, ww: float, uv: float, uw: float,
             vw: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """(E[Θ(u)Θ(v)g(w)], E[Θ(u)Θ(w)g(v)]) for zero-mean (u, v, w) with this covariance.

    A vanishing conditional variance (two fields identical) sets the partial correlation to 0:
    the two terms that contain it then sum to the exact limit. Every factor is clamped to its
    Cauchy–Schwarz range, so a covariance that is singular up to rounding stays bounded.
    """
    duv = uu * vv - uv * uv
    duw = uu * ww - uw * uw
    dvw = vv * ww - vw * vw
    inv = 1.0 / (2.0 * math.pi)
    p_u = 0.25 + inv * _asin_partial(vw * uu - uv * uw, duv, duw)  # P(v, w > 0 | u = 0)
    p_v = 0.25 + inv * _asin_partial(uw * vv - uv * vw, duv, dvw)  # P(u, w > 0 | v = 0)
    p_w = 0.25 + inv * _asin_partial(uv * ww - uw * vw, duw, dvw)  # P(u, v > 0 | w = 0)
    g_w = _slope(uw, uu, ww) * p_u + _slope(vw, vv, ww) * p_v + math.sqrt(max(ww, 0.0)) * p_w
    g_v = _slope(uv, uu, vv) * p_u + math.sqrt(max(vv, 0.0)) * p_v + _slope(vw, ww, vv) * p_w
    return g_w / SQRT_TWO_PI, g_v / SQRT_TWO_PI


@_jit
def _given_zero(duu: float, dvv: float, dww: float, duv: float, duw: float, dvw: float,
                su: float, sv: float, sw: float, var: float, t: float, om: float,
                omt2: float) -> tuple[float, float, float, float, float, float]:  # pragma: no cover
    """Covariance (uu, vv, ww, uv, uw, vw) of (u, v, w) given X = 0 on the path at t.

    X has variance ``var`` and covariances (su, sv, sw) with (u, v, w) at t = 1; d.. are var
    times the conditional covariances at t = 1, and ``om`` = 1 − t, ``omt2`` = 1 − t².
    """
    cuu = (duu + omt2 * su * su) / var
    cvv = (dvv + omt2 * sv * sv) / var
    cww = (dww + omt2 * sw * sw) / var
    cvw = (dvw + omt2 * sv * sw) / var
    cuv = t * (duv + om * su * sv) / var
    cuw = t * (duw + om * su * sw) / var
    return cuu, cvv, cww, cuv, cuw, cvw


@_jit
def _i4(s11: float, s22: float, s33: float, s44: float, s12: float, s13: float, s14: float,
        s23: float, s24: float, s34: float, T: Array, OM: Array,
        W: Array) -> float:  # pragma: no cover - compiled
    """E[Θ(X1)Θ(X2)g(X3)g(X4)] by the path integral of the module docstring."""
    # Conditional covariances at t = 1, times s11 (given X1 = 0) or s22 (given X2 = 0).
    a22 = s11 * s22 - s12 * s12
    a33, a44 = s11 * s33 - s13 * s13, s11 * s44 - s14 * s14
    a23, a24, a34 = s11 * s23 - s12 * s13, s11 * s24 - s12 * s14, s11 * s34 - s13 * s14
    b33, b44 = s22 * s33 - s23 * s23, s22 * s44 - s24 * s24
    b13, b14, b34 = s22 * s13 - s12 * s23, s22 * s14 - s12 * s24, s22 * s34 - s23 * s24
    k1 = 1.0 / math.sqrt(2.0 * math.pi * s11)
    k2 = 1.0 / math.sqrt(2.0 * math.pi * s22)
    total = 0.0
    for q in range(T.shape[0]):
        t, om = T[q], OM[q]
        omt2 = om * (2.0 - om)  # 1 − t²
        # given X1 = 0: (u, v, w) = (X2, X3, X4)
        c22, c33, c44, c23, c24, c34 = _given_zero(a22, a33, a44, a23, a24, a34, s12, s13, s14,
                                                   s11, t, om, omt2)
        g4, g3 = _t3_pair(c22, c33, c44, c23, c24, c34)
        f = k1 * (s13 * g4 + s14 * g3)
        # given X2 = 0: (u, v, w) = (X1, X3, X4)
        g4, g3 = _t3_pair(*_given_zero(a22, b33, b44, b13, b14, b34, s12, s23, s24, s22, t, om,
                                       omt2))
        f += k2 * (s23 * g4 + s24 * g3)
        # given X1 = X2 = 0
        if c22 > 0.0:  # conditioning only lowers variances: clamp rounding to [0, c33], [0, c44]
            g33 = min(max((c22 * c33 - c23 * c23) / c22, 0.0), max(c33, 0.0))
            g44 = min(max((c22 * c44 - c24 * c24) / c22, 0.0), max(c44, 0.0))
            g34 = (c22 * c34 - c23 * c24) / c22
            f += s12 / (2.0 * math.pi * math.sqrt(s11 * c22)) * _arccos1(g33, g44, g34)
        total += W[q] * f
    return 0.25 * _arccos1(s33, s44, s34) + total


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _i4_many(S: Array, T: Array, OM: Array, W: Array) -> Array:  # pragma: no cover - compiled
    """`_i4` for every row of S (m, 10) = (s11, s22, s33, s44, s12, s13, s14, s23, s24, s34)."""
    out = np.empty(S.shape[0])
    for k in prange(S.shape[0]):
        r = S[k]
        out[k] = _i4(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], T, OM, W)
    return out


def I4(C: ArrayLike, ia: NDArray[np.intp], ib: NDArray[np.intp], ic: NDArray[np.intp],
       id_: NDArray[np.intp]) -> Array:
    """E[Θ(a)Θ(b)g(c)g(d)] for all index tuples, shape (..., na, nb, nc, nd).

    One compiled loop over all entries (no symmetry used); error as in the module docstring.
    """
    C = np.asarray(C, dtype=float)
    grids = np.meshgrid(ia, ib, ic, id_, indexing="ij")
    pairs = ((0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    S = np.stack([C[..., grids[k], grids[m]] for k, m in pairs], axis=-1)
    flat = np.ascontiguousarray(S.reshape(-1, 10))
    return _i4_many(flat, *QUADRATURE).reshape(S.shape[:-1])


# --------------------------------------------------------------------------- ODE moments
@_jit
def _e_entry(C: Array, i: int, j: int, c: Array, T: Array, OM: Array,
             W: Array) -> float:  # pragma: no cover - compiled
    """Σ_{c,d} c_c c_d I4(i,j,c,d), using I4(i,j,c,d) = I4(i,j,d,c)."""
    n = C.shape[0]
    total = 0.0
    for a in range(n):
        for b in range(a, n):
            weight = 1.0 if a == b else 2.0
            total += weight * c[a] * c[b] * _i4(
                C[i, i], C[j, j], C[a, a], C[b, b], C[i, j], C[i, a], C[i, b], C[j, a], C[j, b],
                C[a, b], T, OM, W)
    return total


@_jit
def _pair_job(C: Array, v: Array, c: Array, T: Array, OM: Array, W: Array, out: Array,
              job: int) -> None:  # pragma: no cover - compiled
    """Entry job = b·K(K+1)/2 + p of E: covariance b, p-th pair (i ≤ j) in row-major order."""
    K = v.shape[0]
    npair = K * (K + 1) // 2
    b, p = job // npair, job % npair
    i = 0
    while p >= K - i:
        p -= K - i
        i += 1
    j = i + p
    value = v[i] * v[j] * _e_entry(C[b], i, j, c, T, OM, W)
    out[b, i, j] = value
    out[b, j, i] = value


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _second_moment_kernel(C: Array, v: Array, c: Array, T: Array, OM: Array,
                          W: Array) -> Array:  # pragma: no cover - compiled
    out = np.empty((C.shape[0], v.shape[0], v.shape[0]))
    for job in prange(C.shape[0] * (v.shape[0] * (v.shape[0] + 1) // 2)):
        _pair_job(C, v, c, T, OM, W, out, job)
    return out



def second_moment(C: ArrayLike, v: ArrayLike, c: ArrayLike) -> Array:
    """E[F_i F_j] = v_i v_j Σ_{c,d} c_c c_d I4(i,j,c,d), shape (..., K, K) (docs/theory.md (3.13)).

    ``v`` has shape (K,), ``c`` = (−v, w) as from `scalex.model.integrals.coefficients`; leading
    axes of ``C`` are a batch. Compiled, with the symmetries i ↔ j and c ↔ d (K(K+1)/2 ·
    n(n+1)/2 I4 entries per covariance), in parallel over the entries of E (numba threads;
    even at K = M = 2 this is faster than a serial loop, the 54-node quadrature of each entry
    outweighing the thread start).
    """
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    K, n = v.shape[-1], C.shape[-1]
    flat = np.ascontiguousarray(C.reshape(-1, n, n))
    out = _second_moment_kernel(flat, v, np.asarray(c, dtype=float), *QUADRATURE)
    return out.reshape((*C.shape[:-2], K, K))


def stein(C: ArrayLike, v: ArrayLike, c: ArrayLike) -> Array:
    """s_ia = v_i c_a J2(i,a) + δ_ia v_i Σ_c c_c D(i,c), shape (..., K, n) (module docstring)."""
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    c = np.asarray(c, dtype=float)
    K = v.shape[-1]
    s = v[..., :, None] * c[..., None, :] * J2(C)[..., :K, :]
    students = np.arange(K)
    s[..., students, students] += v * np.einsum("...c,...ic->...i", c, D(C)[..., :K, :])
    return s


def moments(C: ArrayLike, v: ArrayLike, w: ArrayLike, noise: float = 0.0) -> tuple[Array, Array]:
    """(s, E) of docs/theory.md (3.12) and (3.6) for ReLU: E_ij = E[F_iF_j] + s² v_i v_j J2(i,j).

    What the ODE right-hand side needs per covariance; leading axes of ``C`` are a batch.
    """
    v = np.asarray(v, dtype=float)
    c = np.concatenate([-v, np.asarray(w, dtype=float)])
    K = v.shape[0]
    s = stein(C, v, c)
    E = second_moment(C, v, c)
    if noise:
        E = E + noise**2 * np.outer(v, v) * J2(C)[..., :K, :K]
    return s, E
