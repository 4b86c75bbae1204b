"""The straight-line least-squares fit used by every layer (log-log power laws and others).

`line_fit` fits y = a + b x by ordinary least squares. The power-law fits of the package are
this fit on logarithms: ε_g ≈ A α^(−γ) on a learning curve (`scalex.analysis`, docs/analysis.md
(A5)), λ_k ∝ k^(−(1+β)) on a covariance spectrum (`scalex.model.spectrum`, docs/theory.md §4.7)
and λ(x) ≈ a x^(−(1+β)) in the linear asymptotics (`scalex.engines.linear_asymptotics`,
docs/theory.md §4.5).

Slope and intercept are those of `scipy.stats.linregress`. The standard errors are the OLS ones
from the residual sum of squares, s² = Σ r_i² / (n − 2), se_b = √(s²/S_xx),
se_a = √(s² (1/n + x̄²/S_xx)). They are not taken from ``linregress``, whose
se_b = √((1 − r²) S_yy / S_xx / (n − 2)) loses its digits as |r| → 1, where 1 − r² is
round-off: on a noiseless power law it gives 0 or, one ulp of 1 − r² later, ~2e-10 (the
residuals give ~1e-16), with log-normal noise of 1e-10 it gives 1e-9 for a true 6e-12, and
for a constant y NaN (the residuals give 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["LineFit", "line_fit"]


class LineFit(NamedTuple):
    """Result of `line_fit`: y ≈ intercept + slope · x with the OLS standard errors."""

    slope: float
    slope_stderr: float
    intercept: float
    intercept_stderr: float


_NAN = LineFit(np.nan, np.nan, np.nan, np.nan)


def line_fit(x: ArrayLike, y: ArrayLike) -> LineFit:
    """Ordinary least-squares line y = a + b x through the points (x_i, y_i).

    Returns `LineFit` (b, se_b, a, se_a). All NaN with fewer than 2 points, with a non-finite
    value, or when all x are equal; the standard errors are NaN with exactly 2 points (no
    degrees of freedom left). Never raises on such data; raises ValueError if ``x`` and ``y``
    are not 1-D arrays of one length.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x, y: must be 1-D arrays of one length, got shapes {x.shape}, "
                         f"{y.shape}")
    n = x.size
    if n < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or x.max() == x.min():
        return _NAN
    from scipy.stats import linregress  # scipy loads on first use (import cost of scalex)

    fit = linregress(x, y)
    b, a = float(fit.slope), float(fit.intercept)
    if n == 2:
        return LineFit(b, np.nan, a, np.nan)
    xm = float(x.mean())
    dx = x - xm
    sxx = float(dx @ dx)
    resid = y - a - b * x
    s2 = float(resid @ resid) / (n - 2)
    return LineFit(b, float(np.sqrt(s2 / sxx)), a, float(np.sqrt(s2 * (1.0 / n + xm**2 / sxx))))
