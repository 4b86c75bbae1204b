r"""Asymptotic scaling laws of the linear theory (docs/theory.md §4.5–4.6).

Power law (`asymptotics`, eq. (4.8))
    For small η, e_τ(0) ≈ E0 f_τ with E0 = σ_J² Σv² + Σw², and a spectrum
    λ(x) ≈ a x^{-(1+β)} in the coordinate rank x = (number of coordinates with eigenvalue
    ≥ λ)/N (for L equal groups a = λ_1 L^{-(1+β)}), the sum ½ E0 Σ_τ f_τ λ_τ e^{−2η_eff λ_τ α}
    becomes an integral over x:

        ε_g ≈ A α^{−β/(1+β)},   A = E0 a Γ(β/(1+β)) (2 η_eff a)^{−β/(1+β)} / (2(1+β)(1 − h)),

    valid for 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained). The factor 1/(1 − h) is the
    resummed η² term of (L1) of `scalex.engines.linear` (the slowly varying Σ λ e is fed back
    with weight h).

Finite-spectrum offset (eq. (4.9))
    The integral runs to x = ∞ but the spectrum ends at x = 1, so inside the window ε_g is
    lower by the constant `LinearAsymptotics.offset` = E0 a x_end^{−β} / (2β(1 − h)),
    x_end = 1 + f_L/2. It matters for β ≲ 1 (``finite_size=True`` in `asymptotic_curve`).

Saturation (eq. (4.10))
    Training only N_l coordinates, ε_g saturates at the exact fixed point of (L1),
    ε_∞ = ½ (C/(1 − h) − s²) ≈ ½ E0 Σ_{untrained} f_τ λ_τ ≈ (E0 a N^β / 2β) N_l^{−β}
    (`LinearAsymptotics.saturation_law`, with the finite-N tail if ``finite_size``).

For a power-law Setup β and a are exact; for explicit or empirical eigenvalues they are fitted
on the group ranks ``fit_range``. `decay_rates` gives the relaxation rates 2η_eff ν_k from the
roots of (L2); the smallest one sets the final approach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy.special import gamma as _gamma

from scalex.common.alpha import check_alpha
from scalex.common.fits import line_fit
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
        beta = -line_fit(xs, ls).slope - 1.0
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
    """Power-law exponent, prefactor, validity window, saturation level (docs/theory.md §4.5–4.6).

    ε_g ≈ A α^{−β/(1+β)} with A = E0 a Γ(β/(1+β)) (2η_eff a)^{−β/(1+β)} / (2(1+β)(1−h)) in the
    window 1/(2η_eff λ_1) ≪ α ≪ 1/(2η_eff λ_last trained), and ε_∞ (exact fixed point of (L1))
    ≈ (E0 a N^β / 2β) N_l^{−β} (module docstring). Uses the expected initial condition.
    The 1/(1−h) factor is reached only late in the window when h is not small.

    For a power-law Setup, β and a are exact; for explicit (e.g. empirical) eigenvalues β is
    fitted on the groups ``fit_range`` (1-based, inclusive; default all) unless given.
    The exponent is also the expected late-time exponent of erf networks (docs/theory.md §5.5); the
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
