"""Measurements on learning curves (plateaus, exponents, convergence) and the escape theory.

The xarray functions live in `scalex.analysis.measures`, their 1-D numpy kernels in
`scalex.analysis.estimators`, and the escape-time theory in `scalex.analysis.escape`.
"""

from scalex.analysis.measures import (
    convergence,
    fit_power_law,
    local_exponent,
    plateau,
    specialisation_spread,
    summary,
)

__all__ = ["convergence", "fit_power_law", "local_exponent", "plateau",
           "specialisation_spread", "summary"]
