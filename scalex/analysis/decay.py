"""Late-time decay of one learning curve: exponential or power law, equation (A7).

1-D numpy kernel of `scalex.analysis.measures.convergence` (conventions:
`scalex.analysis.slopes`; definitions and thresholds: docs/analysis.md; the decay theory
predicts: docs/theory.md §5.5). Reason codes are the `scalex.analysis.powerlaw.REASONS`. The
thresholds of the classification are one `DecayCriterion`, shared with
`scalex.analysis.measures.convergence`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from scalex.analysis.powerlaw import (
    FEW_POINTS,
    NO_DATA,
    NO_DECAY,
    NONFINITE,
    OK,
    UNDETERMINED,
    fit_points,
)
from scalex.analysis.slopes import Array, exponent_profile
from scalex.common.fits import line_fit
from scalex.common.keywords import KeywordGroup, positive, takes

__all__ = ["CONVERGENCE_CLASSES", "DecayCriterion", "convergence_1d"]

#: class codes of `convergence_1d` (index = code)
CONVERGENCE_CLASSES: tuple[str, ...] = ("undetermined", "exponential", "power_law")


@dataclass(frozen=True)
class DecayCriterion(KeywordGroup):
    """The thresholds of the late-time decay class (A7), with their defaults (docs/analysis.md).

    ``decades``: the length of the late window; ``window``: the decades of the local exponent
    (A1); ``exponential_ratio`` and ``power_law_ratio``: the growth ratios ρ from which on the
    decay counts as exponential and up to which as a power law; ``min_exponent``: the smallest
    mean exponent that counts as decay. `check` raises ValueError unless ``decades`` and
    ``window`` are finite and > 0 and ``power_law_ratio`` < ``exponential_ratio``.
    """

    decades: float = positive(0.5)
    window: float = positive(0.2)
    exponential_ratio: float = 0.5
    power_law_ratio: float = 0.15
    min_exponent: float = 0.05

    def check_together(self) -> None:
        """The two classes must not overlap: ``power_law_ratio`` < ``exponential_ratio``."""
        if not self.power_law_ratio < self.exponential_ratio:
            raise ValueError(f"power_law_ratio: must be < exponential_ratio="
                             f"{self.exponential_ratio}, got {self.power_law_ratio!r}")


@takes(criterion=DecayCriterion)
def convergence_1d(
    alpha: ArrayLike,
    eg: ArrayLike,
    alpha_min: float = np.nan,
    *,
    criterion: DecayCriterion,
    floor: float = 1e-10,
    min_points: int = 5,
) -> Array:
    """Classify the late-time decay of one curve, equation (A7).

    ``decades``, ``window``, ``exponential_ratio``, ``power_law_ratio`` and ``min_exponent``
    are keyword arguments: the fields of `DecayCriterion`, with its defaults.

    Late window: the last ``decades`` decades of valid data, starting no earlier than
    ``alpha_min`` (if given). There, the local exponent γ(α) = −d ln ε_g/d ln α (A1) is fitted
    by a line γ ≈ p + c α. For ε_g ∝ e^{−cα}, γ = cα exactly; for ε_g ∝ α^{−γ}, γ is constant.
    The growth ratio

        ρ = (γ_fit(α_hi) − γ_fit(α_lo)) / (γ_fit(α_hi) · (1 − α_lo/α_hi))

    is 1 for a pure exponential and 0 for a pure power law. Class "exponential" if
    ρ ≥ ``exponential_ratio``, "power_law" if |ρ| ≤ ``power_law_ratio``, else "undetermined";
    also undetermined if the mean γ < ``min_exponent`` (no decay) or there are too few points.
    Rate c: least squares of ln ε_g = a − c α on the window; exponent: least squares of
    ln ε_g = a − γ ln α.

    Returns
    -------
    ``[class_code, rate, exponent, alpha_lo, alpha_hi, ratio, reason_code]``.
    """
    out = np.array([0.0, np.nan, np.nan, np.nan, np.nan, np.nan, NO_DATA])
    prof = exponent_profile(alpha, eg, criterion.window, floor)
    if prof is None:
        return out
    alpha, eg, mask, g = prof
    hi = alpha[mask][-1]
    lo = hi / 10.0**criterion.decades
    if np.isfinite(alpha_min):
        lo = max(lo, float(alpha_min))
    out[3:5] = lo, hi
    sel = mask & (alpha >= lo) & (alpha <= hi) & np.isfinite(g)
    if sel.sum() < min_points or hi <= lo:
        out[6] = FEW_POINTS
        return out
    a_w, g_w = alpha[sel], g[sel]
    c, _, p, _ = line_fit(a_w, g_w)
    lo_w, hi_w = a_w[0], a_w[-1]
    g_hi = p + c * hi_w
    g_lo = p + c * lo_w
    if not (np.isfinite(c) and np.isfinite(p)):
        out[6] = NONFINITE
        return out
    if np.mean(g_w) < criterion.min_exponent or g_hi <= 0:
        out[6] = NO_DECAY
        return out
    ratio = (g_hi - g_lo) / (g_hi * (1.0 - lo_w / hi_w))
    out[5] = ratio
    if ratio >= criterion.exponential_ratio:
        rate = -line_fit(a_w, np.log(eg[sel])).slope
        out[0], out[1], out[6] = 1, rate, OK
    elif abs(ratio) <= criterion.power_law_ratio:
        out[0], out[2], out[6] = 2, fit_points(alpha, eg, sel)[0], OK
    else:
        out[6] = UNDETERMINED
    return out
