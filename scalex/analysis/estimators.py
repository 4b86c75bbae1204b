"""Numerical kernels of `scalex.analysis.measures`: estimators on one learning curve (1-D numpy).

Every function here takes the time grid ``alpha`` (increasing) and a curve on it, knows nothing
of labels or dask, and never raises on bad data: a curve it cannot measure gives NaN and a
reason code (see `REASONS`). The definitions and thresholds are documented in docs/analysis.md;
the equation numbers (A1)–(A7) below refer to that page.

The kernels live in one module per job and are collected here:

* `scalex.analysis.slopes` — valid points and the local slope (A1);
* `scalex.analysis.plateaus` — the plateau and the specialisation time (A2)–(A3);
* `scalex.analysis.powerlaw` — power-law fits and the bootstrap over seeds (A4)–(A6);
* `scalex.analysis.decay` — the late-time decay class (A7).

The thresholds of each measurement are one frozen dataclass next to its kernel
(`PlateauCriterion`, `FitCriterion`, `DecayCriterion`): the kernels and the xarray functions
take its fields as keyword arguments (`scalex.common.keywords.takes`), with its defaults.

Their straight-line fits are `scalex.common.fits.line_fit`, the one least-squares line of the
package.

Conventions
-----------
* Only points with α > 0 and a finite ε_g above the floor ``floor · max ε_g`` enter the log-log
  analysis ("valid" points); the rest are skipped, so an ε_g that hits the round-off floor of an
  ODE solver (or goes slightly negative) does not produce spurious slopes.
* Windows are given in decades of α (log10 units).
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from scalex.analysis.decay import CONVERGENCE_CLASSES, DecayCriterion, convergence_1d
from scalex.analysis.plateaus import (
    P_FEW_POINTS,
    P_GAP,
    P_ISOLATED,
    P_NO_DATA,
    P_NONE,
    P_OK,
    PLATEAU_FIELDS,
    PLATEAU_REASONS,
    PlateauCriterion,
    check_plateau_options,
    crossing_alpha,
    plateau_1d,
)
from scalex.analysis.powerlaw import (
    APPROX,
    FEW_POINTS,
    FIT_FIELDS,
    NO_DATA,
    NO_DECAY,
    NO_WINDOW,
    NONFINITE,
    OK,
    OUTSIDE,
    REASONS,
    UNDETERMINED,
    FitCriterion,
    constant_window,
    fit_bootstrap,
    fit_points,
    fit_power_law_1d,
    least_varying_window,
    mean_over_seeds,
)
from scalex.analysis.slopes import (
    LN10,
    Array,
    exponent_profile,
    local_slope,
    true_runs,
    valid_mask,
)
from scalex.common.fits import line_fit

__all__ = [
    "APPROX",
    "CONVERGENCE_CLASSES",
    "FEW_POINTS",
    "FIT_FIELDS",
    "LN10",
    "NONFINITE",
    "NO_DATA",
    "NO_DECAY",
    "NO_WINDOW",
    "OK",
    "OUTSIDE",
    "PLATEAU_FIELDS",
    "PLATEAU_REASONS",
    "P_FEW_POINTS",
    "P_GAP",
    "P_ISOLATED",
    "P_NONE",
    "P_NO_DATA",
    "P_OK",
    "REASONS",
    "UNDETERMINED",
    "Array",
    "DecayCriterion",
    "FitCriterion",
    "PlateauCriterion",
    "check_plateau_options",
    "constant_window",
    "convergence_1d",
    "crossing_alpha",
    "exponent_profile",
    "fit_bootstrap",
    "fit_points",
    "fit_power_law_1d",
    "least_varying_window",
    "local_slope",
    "mean_over_seeds",
    "ols_line",
    "plateau_1d",
    "true_runs",
    "valid_mask",
]


def ols_line(x: ArrayLike, y: ArrayLike) -> tuple[float, float, float, float]:
    """Least-squares line y = a + b x as the tuple (b, se_b, a, se_a).

    The same numbers as `scalex.common.fits.line_fit`, in the order of this older interface;
    NaN if < 2 points (standard errors NaN with exactly 2).
    """
    fit = line_fit(x, y)
    return fit.slope, fit.slope_stderr, fit.intercept, fit.intercept_stderr
