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

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy.special import gamma as _gamma

from scalex.common.alpha import check_alpha
from scalex.engines.linear import check_setup, effective_learning_rate, initial_condition
from scalex.model.setup import Setup
from scalex.numerics.secular import merge_equal, secular_eigensystem

Array = NDArray[np.float64]


def decay_rates(setup: Setup) -> Array:
    """The relaxation rates 2 η_eff ν_k of the trained block (eigenvalues of −A), decreasing.

    ν_k are the roots of the secular equation (L2); the last one sets the final approach.
    Groups with equal eigenvalues contribute each extra copy as the plain rate 2 η_eff λ.
    """
    check_setup(setup, require_linear=False)
    sp = setup.spectrum
    mask = setup.trained_groups
    lt, ft = sp.eigenvalues[mask], sp.fractions[mask]
    eta = effective_learning_rate(setup)
    starts, _ = merge_equal(lt)
    lm, fm = lt[starts], np.add.reduceat(ft, starts)
    nu, *_ = secular_eigensystem(lm, lm * np.sqrt(fm), 0.5 * eta)
    dup = np.setdiff1d(np.arange(lt.size), starts)
    return np.sort(2.0 * eta * np.concatenate([nu, lt[dup]]))[::-1]


# =========================================================================== scaling laws
@dataclass(frozen=True)
class LinearAsymptotics:
    """Leading-order scaling laws of the linear learning curve (module docstring).

    Attributes
    ----------
    beta : spectrum exponent β (exact for a power-law Setup, fitted otherwise).
    exponent : β/(1+β), the decay exponent of ε_g in α.
    prefactor : A in ε_g ≈ A α^{−β/(1+β)}.
    offset : the finite-spectrum correction: inside the window ε_g ≈ A α^{−β/(1+β)} − offset,
        where offset = E0 a x_end^{−β} / (2β(1 − h)) is the part of the continuum integral
        beyond the last eigenvalue (x_end = 1 + f_L/2, midpoint rule). It matters for small β
        and assumes the power law holds down to the last eigenvalue.
    window : (1/(2η_eff λ_first), 1/(2η_eff λ_last)) over the trained groups of the fitted
        range (all trained groups for a power-law Setup): the laws need α well inside.
    saturation : the exact ε_g(α → ∞) (0 when all groups train and s = 0).
    saturation_coefficient : c in ε_∞ ≈ c N_l^{−β} (leading order in η and 1/N_l).
    amplitude : a in λ(x) ≈ a x^{−(1+β)}, x = coordinate rank / N.
    eta_eff : η Σ v².
    initial_error : E0 = σ_J² Σv² + Σw², the expected Σ_τ e_τ(0).
    N, L : input dimension and number of groups (for the finite-size corrections).
    """

    beta: float
    exponent: float
    prefactor: float
    offset: float
    window: tuple[float, float]
    saturation: float
    saturation_coefficient: float
    amplitude: float
    eta_eff: float
    initial_error: float
    N: int
    L: int

    def power_law(self, alpha: ArrayLike) -> Array:
        """A α^{−β/(1+β)}."""
        return self.prefactor * np.asarray(alpha, dtype=float) ** (-self.exponent)

    def curve(self, alpha: ArrayLike, finite_size: bool = False) -> Array:
        """max(A α^{−β/(1+β)}, ε_∞): the power law floored by the saturation level;
        ``finite_size`` subtracts ``offset`` from the power law first."""
        law = self.power_law(alpha) - (self.offset if finite_size else 0.0)
        return np.maximum(law, self.saturation)

    def saturation_law(self, n_trainable: ArrayLike, finite_size: bool = False) -> Array:
        """c N_l^{−β}, the leading-order saturation level for N_l trained coordinates.

        ``finite_size``: c ((N_l + m/2)^{−β} − (N + m/2)^{−β}) with m = N/L, the tail sum
        Σ_{τ>N_l} of a spectrum that ends at N (midpoint rule).
        """
        n = np.asarray(n_trainable, dtype=float)
        if not finite_size:
            return self.saturation_coefficient * n ** (-self.beta)
        half = 0.5 * self.N / self.L
        return self.saturation_coefficient * ((n + half) ** (-self.beta)
                                              - (self.N + half) ** (-self.beta))


def _spectral_fit(setup: Setup, beta: float | None, fit_range: tuple[int, int] | None):
    """(β, a) of λ(x) ≈ a x^{−(1+β)} with x_τ = (coordinates in groups 1..τ)/N."""
    sp = setup.spectrum
    x = np.cumsum(sp.multiplicities) / sp.N
    lam = sp.eigenvalues
    if setup.eigenvalues is None and beta is None and fit_range is None:
        return setup.beta, float(lam[0] * sp.L ** (-(1.0 + setup.beta)))
    lo, hi = (1, sp.L) if fit_range is None else fit_range
    if not (1 <= lo < hi <= sp.L):
        raise ValueError(f"fit_range: must satisfy 1 <= lo < hi <= L={sp.L}, got {fit_range}")
    xs, ls = np.log(x[lo - 1 : hi]), np.log(lam[lo - 1 : hi])
    if beta is None:
        slope, _ = np.polyfit(xs, ls, 1)
        beta = -slope - 1.0
        if not beta > 0:
            raise ValueError(
                f"fit_range: the fitted spectrum exponent β = {beta:.3g} is not > 0; pass beta "
                "or a fit_range where the spectrum decays faster than 1/x"
            )
    elif not beta > 0:
        raise ValueError(f"beta: must be > 0, got {beta!r}")
    log_a = float(np.mean(ls + (1.0 + beta) * xs))
    return float(beta), float(np.exp(log_a))


def asymptotics(
    setup: Setup, *, beta: float | None = None, fit_range: tuple[int, int] | None = None
) -> LinearAsymptotics:
    """Power-law exponent, prefactor, validity window and saturation level (THEORY §4).

    ε_g ≈ A α^{−β/(1+β)} with A = E0 a Γ(β/(1+β)) (2η_eff a)^{−β/(1+β)} / (2(1+β)(1−h)) in the
    window 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained), and ε_∞ (exact fixed point of (L1))
    ≈ (E0 a N^β / 2β) N_l^{−β} (module docstring). Uses the expected initial condition.
    The 1/(1−h) factor is reached only late in the window when h is not small.

    For a power-law Setup, β and a are exact; for explicit (e.g. empirical) eigenvalues β is
    fitted on the groups ``fit_range`` (1-based, inclusive; default all) unless given.
    The exponent is also the expected late-time exponent of erf networks (THEORY §5); the
    other numbers assume linear activation.
    """
    check_setup(setup, require_linear=False)
    b, a = _spectral_fit(setup, beta, fit_range)
    sp = setup.spectrum
    v, w = setup.second_layer
    eta = effective_learning_rate(setup)
    mask = setup.trained_groups
    lam, f = sp.eigenvalues, sp.fractions
    e0 = initial_condition(setup, None)["e"]
    E0 = float(setup.sigma_J**2 * np.dot(v, v) + np.dot(w, w))
    h = 0.5 * eta * float(np.dot(lam[mask], f[mask]))
    forcing = float(np.dot(lam[~mask], e0[~mask])) + setup.noise**2
    x = b / (1.0 + b)
    A = E0 * a * _gamma(x) * (2.0 * eta * a) ** (-x) / (2.0 * (1.0 + b) * (1.0 - h))
    x_end = 1.0 + 0.5 * f[-1]
    ranks = np.flatnonzero(mask) + 1
    if fit_range is not None:
        ranks = ranks[(ranks >= fit_range[0]) & (ranks <= fit_range[1])]
        if ranks.size == 0:
            ranks = np.flatnonzero(mask)[-1:] + 1
    return LinearAsymptotics(
        beta=b,
        exponent=x,
        prefactor=float(A),
        offset=float(E0 * a * x_end ** (-b) / (2.0 * b * (1.0 - h))),
        window=(float(1.0 / (2.0 * eta * lam[ranks[0] - 1])),
                float(1.0 / (2.0 * eta * lam[ranks[-1] - 1]))),
        saturation=0.5 * (forcing / (1.0 - h) - setup.noise**2),
        saturation_coefficient=0.5 * E0 * a * sp.N**b / b,
        amplitude=a,
        eta_eff=eta,
        initial_error=E0,
        N=sp.N,
        L=sp.L,
    )


def asymptotic_curve(
    setup: Setup,
    alpha: ArrayLike,
    *,
    saturation: bool = True,
    finite_size: bool = False,
    **kwargs: Any,
) -> xr.DataArray:
    """The asymptotic ε_g(α) on an α grid, for overlays.

    A α^{−β/(1+β)} (minus `LinearAsymptotics.offset` if ``finite_size``), floored by the
    saturation level ε_∞ if ``saturation``. ``kwargs`` (beta, fit_range) go to `asymptotics`.
    The attrs carry exponent, prefactor, offset, window and saturation.
    """
    asym = asymptotics(setup, **kwargs)
    a = check_alpha(alpha)
    law = asym.power_law(a) - (asym.offset if finite_size else 0.0)
    vals = np.maximum(law, asym.saturation) if saturation else law
    desc = "A α^(−β/(1+β))" + (" − offset" if finite_size else "")
    return xr.DataArray(
        vals, dims="alpha", coords={"alpha": a}, name="eg_asymptotic",
        attrs={"long_name": f"asymptotic generalisation error {desc}"
                            + (", floored by ε_∞" if saturation else ""),
               "units": "1", "exponent": asym.exponent, "prefactor": asym.prefactor,
               "offset": asym.offset, "beta": asym.beta, "window": np.asarray(asym.window),
               "saturation": asym.saturation},
    )
