"""Power laws in two sweep parameters: y ≈ C x₁^a x₂^b, e.g. the escape time against M and L.

docs/theory.md §5.4 (eq. 5.9) predicts the escape time from the symmetric plateau to scale as
τ_esc ∝ M²/L at large L and M. `fit_two_exponents` fits log y = log C + a log x₁ + b log x₂ by
ordinary least squares and gives a, b and log C with their standard errors; `scaling_exponents`
does so for a variable of a sweep summary (`scalex.analysis.measures.summary`: plateau ends or
lengths over the sweep dims, every seed a point of its own). `collapse_fit` is the one-variable
check: the slope of log y against log(x₁^p x₂^q) for the predicted powers (1 for y ∝ M²/L).

Both fits are `scalex.common.fits.line_fit`. The two-variable fit is the Frisch–Waugh–Lovell
form of the multiple regression: the coefficient of log x₁ is the slope of the residuals of
log y on log x₂ against the residuals of log x₁ on log x₂ (and likewise for b), and the
residuals of that line are those of the full fit. `line_fit`'s standard error counts n − 2
degrees of freedom; the full fit has three parameters, so it is scaled by √((n−2)/(n−3)),
which gives the usual OLS errors s²(XᵀX)⁻¹ with s² = RSS/(n − 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray

from scalex.common.fits import line_fit

__all__ = ["CollapseFit", "TwoExponentFit", "collapse_fit", "fit_two_exponents",
           "scaling_exponents", "scaling_points"]


@dataclass(frozen=True)
class TwoExponentFit:
    """y ≈ C x₁^a x₂^b: exponents (a, b), log C, their OLS standard errors, points used."""

    names: tuple[str, str]
    exponents: tuple[float, float]
    stderr: tuple[float, float]
    log_prefactor: float
    log_prefactor_stderr: float
    n_points: int

    @property
    def prefactor(self) -> float:
        """C of y ≈ C x₁^a x₂^b."""
        return float(np.exp(self.log_prefactor))

    def predict(self, x1: ArrayLike, x2: ArrayLike) -> NDArray[np.float64]:
        """C x₁^a x₂^b."""
        a, b = self.exponents
        return self.prefactor * np.asarray(x1, float) ** a * np.asarray(x2, float) ** b

    def text(self, symbols: Sequence[str] | None = None) -> str:
        """``"∝ M^(2.01 ± 0.05) L^(−0.86 ± 0.04)"``, with ``symbols`` for the names."""
        names = tuple(symbols) if symbols is not None else self.names
        return "∝ " + " ".join(f"{n}^({e:.3g} ± {s:.2g})".replace("-", "−") for n, e, s in
                               zip(names, self.exponents, self.stderr))


@dataclass(frozen=True)
class CollapseFit:
    """Slope (± standard error) of log y against log x for one combined variable x."""

    slope: float
    slope_stderr: float
    log_prefactor: float
    n_points: int


def fit_two_exponents(x1: ArrayLike, x2: ArrayLike, y: ArrayLike,
                      names: tuple[str, str] = ("x1", "x2")) -> TwoExponentFit:
    """Least-squares fit of log y = log C + a log x₁ + b log x₂ (docs/theory.md §5.4).

    Points where any of x₁, x₂, y is not finite and positive are left out. The exponents need
    both x₁ and x₂ to vary independently over the points left (at least four points for the
    standard errors); otherwise the result is NaN. Never raises on such data; raises
    ValueError for arrays of different shapes.
    """
    x1, x2, y = (np.asarray(v, dtype=float).ravel() for v in (x1, x2, y))
    if not x1.shape == x2.shape == y.shape:
        raise ValueError(f"x1, x2, y: must have one shape, got {x1.shape}, {x2.shape}, "
                         f"{y.shape}")
    ok = np.isfinite(x1) & np.isfinite(x2) & np.isfinite(y) & (x1 > 0) & (x2 > 0) & (y > 0)
    u, v, w = np.log(x1[ok]), np.log(x2[ok]), np.log(y[ok])
    n = int(w.size)
    nan = TwoExponentFit(names, (np.nan, np.nan), (np.nan, np.nan), np.nan, np.nan, n)
    if n < 3:
        return nan
    exps, errs = [], []
    for own, other in ((u, v), (v, u)):
        # Frisch–Waugh–Lovell: both on the other regressor first, then a line through the rest
        off_y, off_x = line_fit(other, w), line_fit(other, own)
        if not (np.isfinite(off_y.slope) and np.isfinite(off_x.slope)):
            return nan  # the other regressor is constant: the two exponents are not separable
        ry = w - off_y.intercept - off_y.slope * other
        rx = own - off_x.intercept - off_x.slope * other
        if np.ptp(rx) <= 1e-12 * max(1.0, float(np.abs(own).max())):
            return nan  # own regressor is a function of the other: collinear
        fit = line_fit(rx, ry)
        exps.append(fit.slope)
        errs.append(fit.slope_stderr * np.sqrt((n - 2) / (n - 3)) if n > 3 else np.nan)
    a, b = exps
    log_c = float(np.mean(w - a * u - b * v))
    resid = w - log_c - a * u - b * v
    if n > 3:
        s2 = float(resid @ resid) / (n - 3)
        design = np.column_stack([np.ones(n), u, v])
        cov = s2 * np.linalg.inv(design.T @ design)
        log_c_err = float(np.sqrt(cov[0, 0]))
    else:
        log_c_err = np.nan
    return TwoExponentFit(names, (float(a), float(b)), (float(errs[0]), float(errs[1])),
                          log_c, log_c_err, n)


def collapse_fit(x: ArrayLike, y: ArrayLike) -> CollapseFit:
    """Slope of log y against log x (x > 0, y > 0 only): 1 if y ∝ x."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    fit = line_fit(np.log(x[ok]), np.log(y[ok]))
    return CollapseFit(fit.slope, fit.slope_stderr, fit.intercept, int(ok.sum()))


def scaling_points(data: xr.Dataset | xr.DataArray, variable: str = "plateau_end",
                   dims: tuple[str, str] = ("M", "L")) -> tuple[NDArray[np.float64], ...]:
    """(x₁, x₂, y) of every member of ``data[variable]``: the coordinate values of ``dims``
    broadcast against the variable (all other dims, e.g. ``seed``, give points of their own)."""
    da = data if isinstance(data, xr.DataArray) else data[variable]
    missing = [d for d in dims if d not in da.coords]
    if missing:
        raise ValueError(f"dims: {missing} are not coordinates of {da.name!r} "
                         f"(coords {list(da.coords)})")
    y, c1, c2 = xr.broadcast(da, da[dims[0]], da[dims[1]])
    return (np.asarray(c1.values, float).ravel(), np.asarray(c2.values, float).ravel(),
            np.asarray(y.values, float).ravel())


def scaling_exponents(data: xr.Dataset | xr.DataArray, variable: str = "plateau_end",
                      dims: tuple[str, str] = ("M", "L")) -> TwoExponentFit:
    """`fit_two_exponents` of ``variable`` (e.g. the plateau end, the measured escape time)
    against the sweep coordinates ``dims`` of a summary; members without a value (no plateau:
    NaN) are left out."""
    x1, x2, y = scaling_points(data, variable, dims)
    return fit_two_exponents(x1, x2, y, names=(str(dims[0]), str(dims[1])))
