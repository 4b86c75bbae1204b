"""Measurements on learning curves: plateaus, local exponents, power-law fits, late-time decay.

This is the xarray layer over the 1-D kernels of `scalex.analysis.estimators`. Every function
accepts a scalex Dataset (it uses ``eg``, and ``q``/``r``/``t`` when present) or a DataArray of
ε_g, with any extra dims (``seed``, sweep parameters such as ``L`` or ``K``) in any order: the
time axis is found by name (``dim="alpha"``). Each member (one curve) is measured independently
with ``xr.apply_ufunc(..., dask="parallelized")``, so dask-backed input stays lazy and the
result is computed only on ``.compute()``. Thresholds are recorded in the attributes of the
result. `scalex.analysis` re-exports the functions, and most are methods of ``ds.scalex``.

Definitions, equations (A1)–(A7) and default thresholds: docs/analysis.md. The thresholds of
`plateau`, `fit_power_law` and `convergence` are the fields of `PlateauCriterion`,
`FitCriterion` and `DecayCriterion`, which hold their defaults and checks for the functions
here and their kernels alike.

* `local_exponent` — running slope −d ln ε_g / d ln α by local regression (A1).
* `plateau` — the symmetric plateau: height, start, end, length, plus the specialisation time
  from the spread of the student–teacher overlaps (A2)–(A3); `specialisation_spread` gives
  that spread itself.
* `fit_power_law` — ε_g ≈ A α^(−γ) on a given or automatically chosen window, with a bootstrap
  over seeds (A4)–(A6).
* `convergence` — late-time decay: "exponential", "power_law" or "undetermined" (A7).
* `summary` — all of the above, one row per member.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from scalex.analysis import estimators as est
from scalex.analysis.decay import DecayCriterion
from scalex.analysis.members import DIM, SEED, baseline_attr, curve, finish, one_chunk, per_member
from scalex.analysis.plateaus import PlateauCriterion
from scalex.analysis.powerlaw import FitCriterion
from scalex.analysis.slopes import check_floor, check_positive
from scalex.common.keywords import takes

__all__ = [
    "VARIABLES",
    "convergence",
    "fit_power_law",
    "local_exponent",
    "plateau",
    "specialisation_spread",
    "summary",
]


#: the variables of `plateau`, `fit_power_law` and `convergence` that hold strings (no units);
#: every other one is a number in the dimensionless units "1" of α and ε_g (`scalex.schema`)
_TEXT = ("plateau_reason", "reason", "convergence", "convergence_reason")
#: ``long_name`` of the variables of `plateau`, `fit_power_law` and `convergence`
_LONG_NAMES: dict[str, str] = {
    "plateau_height": "plateau height: median ε_g on the plateau",
    "plateau_start": "α where the plateau starts",
    "plateau_end": "α where the plateau ends",
    "plateau_length": "plateau length (end − start) in α",
    "has_plateau": "a plateau was found",
    "plateau_spread": "median specialisation spread on the plateau",
    "plateau_start_err": "uncertainty of plateau_start from the α grid spacing",
    "plateau_end_err": "uncertainty of plateau_end from the α grid spacing",
    "plateau_length_err": "uncertainty of plateau_length (start_err + end_err)",
    "plateau_n_missing": "missing (non-finite) ε_g points inside the plateau",
    "plateau_reason": "ok, or why the plateau is missing or degraded",
    "specialisation_alpha": "α after which the overlap spread exceeds the threshold",
    "exponent": "power-law exponent γ of ε_g ≈ A α^(−γ)",
    "exponent_stderr": "least-squares standard error of γ",
    "prefactor": "prefactor A of ε_g ≈ A α^(−γ)",
    "prefactor_stderr": "standard error of A (delta method)",
    "alpha_min": "lower end of the fit window",
    "alpha_max": "upper end of the fit window",
    "n_points": "number of points in the fit",
    "exponent_spread": "max − min of the local exponent over the fit window",
    "reason": "fit status: ok, or why it failed",
    "exponent_ci_low": "bootstrap lower confidence limit of γ (resampling seeds)",
    "exponent_ci_high": "bootstrap upper confidence limit of γ (resampling seeds)",
    "exponent_bootstrap_std": "bootstrap standard deviation of γ",
    "convergence": "late-time decay class: exponential, power_law or undetermined",
    "convergence_rate": "rate c of ε_g ∝ exp(−c α) (exponential class)",
    "convergence_exponent": "exponent γ of ε_g ∝ α^(−γ) (power-law class)",
    "convergence_alpha_min": "lower end of the late window",
    "convergence_alpha_max": "upper end of the late window",
    "convergence_ratio": "growth ratio ρ of the local exponent (1 exp., 0 power law)",
    "convergence_reason": "ok, or why the class is undetermined",
}
#: ``long_name`` and ``units`` of the variables of `plateau`, `fit_power_law` and `convergence`
VARIABLES: dict[str, tuple[str, str]] = {
    name: (long_name, "" if name in _TEXT else "1") for name, long_name in _LONG_NAMES.items()
}


# --------------------------------------------------------------------------- local exponent
def local_exponent(
    ds: xr.Dataset | xr.DataArray,
    *,
    window: float = 0.2,
    baseline: float | xr.DataArray = 0.0,
    floor: float = 1e-10,
    dim: str = DIM,
) -> xr.DataArray:
    """Running exponent γ(α) = −d ln ε_g / d ln α, equation (A1) of docs/analysis.md.

    At each α a straight line is fitted by least squares to ln ε_g against ln α over the
    points within ``window`` decades centred there (truncated at the ends of the data), so the
    estimate does not depend on the grid spacing and averages out noise. Points with α ≤ 0 or
    ε_g ≤ ``floor`` · max ε_g (round-off) are NaN. With a ``baseline`` ε_∞ (a number, or a
    DataArray with one value per member) the exponent is that of the excess ε_g − ε_∞.
    Lazy on dask-backed input.

    Returns
    -------
    DataArray ``local_exponent`` with the dims of ε_g.
    """
    check_positive(window=window)
    check_floor(floor)
    eg = curve(ds, dim, baseline)
    out = xr.apply_ufunc(
        lambda a, y: -est.local_slope(a, y, window, floor),
        eg[dim], eg,
        input_core_dims=[[dim], [dim]], output_core_dims=[[dim]],
        vectorize=True, dask="parallelized", output_dtypes=[float],
    )
    out = out.transpose(*eg.dims).rename("local_exponent")
    out.attrs = {"long_name": "local exponent −d ln ε_g / d ln α", "units": "1",
                 "window_decades": window, "floor": floor, "baseline": baseline_attr(baseline)}
    return out


# --------------------------------------------------------------------------- plateau
def specialisation_spread(ds: xr.Dataset, dim: str = DIM) -> xr.DataArray:
    """Spread of the student–teacher overlaps across student units, equation (A3).

    With the weighted overlaps R_in = Σ_τ λ_τ r^τ_in, Q_ii = Σ_τ λ_τ q^τ_ii, T_nn = Σ_τ λ_τ
    t^τ_nn (docs/theory.md §2) and the normalised overlaps ρ_in = R_in / √(Q_ii T_nn),

        spread(α) = max_n ( max_i ρ_in − min_i ρ_in ).

    It is ≈ 0 on the symmetric plateau (every student unit overlaps every teacher unit
    equally) and ≈ 1 once the students have specialised (ρ_in → δ_{i,π(n)}). Lazy.
    """
    lam = ds["eigenvalue"]
    R = (ds["r"] * lam).sum("group", skipna=True)
    qdiag = ds["q"].where(ds["student_i"] == ds["student_j"]).sum("student_j", skipna=True)
    Q = (qdiag * lam).sum("group", skipna=True)
    tdiag = ds["t"].where(ds["teacher_n"] == ds["teacher_m"]).sum("teacher_m", skipna=True)
    T = (tdiag * lam).sum("group", skipna=True)
    norm = Q * T
    rho = R / np.sqrt(norm.where(norm > 0))  # σ_J = 0 at α = 0 has Q = 0: NaN, not inf
    spread = (rho.max("student_i") - rho.min("student_i")).max("teacher_n")
    spread = spread.transpose(*[d for d in ds["eg"].dims if d in spread.dims])
    spread.attrs = {"long_name": "specialisation spread max_n (max_i − min_i) R_in/√(Q_ii T_nn)",
                    "units": "1"}
    return spread.rename("specialisation_spread")


@takes(criterion=PlateauCriterion)
def plateau(
    ds: xr.Dataset | xr.DataArray,
    *,
    criterion: PlateauCriterion,
    spread_threshold: float = 0.5,
    baseline: float | xr.DataArray = 0.0,
    floor: float = 1e-10,
    dim: str = DIM,
) -> xr.Dataset:
    """The plateau of each learning curve, equations (A2)–(A3) of docs/analysis.md.

    The plateau is the longest run of α where the local slope obeys |d ln ε_g/d ln α| <
    ``flatness`` (slope by (A1) over ``window`` decades) that spans ≥ ``min_decades`` decades,
    lies at least a factor ``contrast`` below the initial ε_g (after the initial drop) and is
    left again: ε_g later falls below height/``contrast``. Height is the median ε_g over it.

    On datasets with ``r`` (ODE, simulation) it also reports the specialisation time
    ``specialisation_alpha``: the α after which the overlap spread (`specialisation_spread`)
    stays above ``spread_threshold``, and ``plateau_spread``, the median spread on the plateau
    (≈ 0 when the plateau is the symmetric phase). Both are NaN without ``r``.

    A curve without a plateau gives ``has_plateau = False`` and NaN, never an error.
    ``flatness``, ``min_decades``, ``window`` and ``contrast`` are the fields of
    `PlateauCriterion` (defaults there).

    A curve that saturates at ε_∞ > 0 (frozen input groups, ``trainable``; label noise) may
    leave its plateau by less than the factor ``contrast``: pass ``baseline`` = ε_∞ (a number
    or one value per member) to measure the plateau of the excess ε_g − ε_∞.

    Returns
    -------
    Dataset with ``plateau_height``, ``plateau_start``, ``plateau_end``, ``plateau_length``
    (= end − start, in α), ``has_plateau``, ``plateau_spread`` and ``specialisation_alpha``,
    one value per member (the dims of ε_g without ``dim``). Lazy on dask-backed input.
    """
    criterion.check()
    check_positive(spread_threshold=spread_threshold)
    check_floor(floor)
    eg = curve(ds, dim, baseline)
    has_r = isinstance(ds, xr.Dataset) and all(v in ds for v in ("q", "r", "t", "eigenvalue"))
    spread = (one_chunk(specialisation_spread(ds, dim), dim) if has_r
              else xr.full_like(eg, np.nan))
    kwargs = dict(criterion.keywords(), floor=floor)
    out = per_member(lambda a, y, s: est.plateau_1d(a, y, s, **kwargs), eg,
                     est.PLATEAU_FIELDS, dim=dim, others=[spread],
                     codes={"reason_code": ("plateau_reason", est.PLATEAU_REASONS)})
    out["has_plateau"] = out["has_plateau"] > 0.5
    out["specialisation_alpha"] = xr.apply_ufunc(
        lambda a, s: est.crossing_alpha(a, s, spread_threshold),
        spread[dim], spread,
        input_core_dims=[[dim], [dim]], vectorize=True, dask="parallelized",
        output_dtypes=[float],
    )
    out["plateau_height"] = out["plateau_height"] + baseline  # report ε_g, not the excess
    return finish(out, ds, "plateau", dict(kwargs, spread_threshold=spread_threshold,
                                           has_overlaps=has_r,
                                           baseline=baseline_attr(baseline)), VARIABLES)


# --------------------------------------------------------------------------- power-law fits
_BOOT_FIELDS = ("exponent_ci_low", "exponent_ci_high", "exponent_bootstrap_std")


@takes(criterion=FitCriterion)
def fit_power_law(
    ds: xr.Dataset | xr.DataArray,
    alpha_min: float | None = None,
    alpha_max: float | None = None,
    *,
    criterion: FitCriterion,
    bootstrap: int = 0,
    ci: float = 0.95,
    seed_mean: bool | None = None,
    random_state: int = 0,
    baseline: float | xr.DataArray = 0.0,
    floor: float = 1e-10,
    dim: str = DIM,
) -> xr.Dataset:
    """Fit ε_g ≈ A α^(−γ), equations (A4)–(A6) of docs/analysis.md.

    Window: [``alpha_min``, ``alpha_max``] if given (a missing bound defaults to the end of the
    data); with neither, the widest window (in decades) where the local exponent (A1, over
    ``window`` decades) stays within a band of ±``tol``, with exponent ≥ ``min_exponent`` (so
    plateaus are skipped) and spanning ≥ ``min_decades``. If there is none (a power law that
    drifts, e.g. with finite-L corrections, before an exponential tail), the ``min_decades``
    window where the local exponent varies least is fitted if its relative spread
    (max − min)/mean is ≤ ``max_spread``; ``reason`` then says "ok, approximate" and
    ``exponent_spread`` (max − min of the local exponent over the window, always reported)
    how far from a pure power law the window is. The fit is least squares of ln ε_g on ln α;
    standard errors are the least-squares ones. ``tol``, ``window``, ``min_decades``,
    ``min_exponent`` and ``max_spread`` are the fields of `FitCriterion` (defaults there).

    Seeds: with a ``seed`` dim and ``seed_mean`` (default: True when the dim exists), the
    seed-mean curve is fitted and, if ``bootstrap`` > 0, the fit is repeated on the means of
    ``bootstrap`` resamples of the seeds (same window), giving the ``ci`` confidence interval
    ``exponent_ci_low``/``exponent_ci_high`` and ``exponent_bootstrap_std``. With
    ``seed_mean=False`` every seed is fitted on its own.

    A failing fit gives NaN and a ``reason`` string, never an error. With a ``baseline`` ε_∞
    the excess ε_g − ε_∞ ≈ A α^(−γ) is fitted.

    Returns
    -------
    Dataset with ``exponent``, ``exponent_stderr``, ``prefactor``, ``prefactor_stderr``,
    ``alpha_min``, ``alpha_max`` (the window used), ``n_points`` and ``reason`` per member
    (plus the bootstrap variables). Lazy on dask-backed input.
    """
    criterion.check()
    check_floor(floor)
    if not 0 < ci < 1:
        raise ValueError(f"ci: must be in (0, 1), got {ci!r}")
    if isinstance(bootstrap, bool) or int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap: must be an integer >= 0, got {bootstrap!r}")
    for name, val in (("alpha_min", alpha_min), ("alpha_max", alpha_max)):
        if val is not None and not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name}: must be None or finite and > 0, got {val!r}")
    if alpha_min is not None and alpha_max is not None and alpha_max <= alpha_min:
        raise ValueError(f"alpha_max: must exceed alpha_min={alpha_min}, got {alpha_max}")
    eg = curve(ds, dim, baseline)
    has_seed = SEED in eg.dims
    if seed_mean is None:
        seed_mean = has_seed
    if seed_mean and not has_seed:
        raise ValueError(f"seed_mean: the curve has no {SEED!r} dim (dims {eg.dims})")
    if bootstrap and not seed_mean:
        raise ValueError(f"bootstrap: needs seed_mean=True and a {SEED!r} dim to resample")
    lo = np.nan if alpha_min is None else float(alpha_min)
    hi = np.nan if alpha_max is None else float(alpha_max)
    kwargs = dict(criterion.keywords(), floor=floor)
    names = est.FIT_FIELDS
    codes = {"reason_code": ("reason", est.REASONS)}
    if seed_mean:
        names = (*names, *_BOOT_FIELDS)
        out = per_member(
            lambda a, y: est.fit_bootstrap(a, y, lo, hi, n_boot=int(bootstrap), ci=ci,
                                           random_state=random_state, **kwargs),
            one_chunk(eg, SEED, dim), names, dim=dim, core=(SEED, dim), codes=codes)
        if not bootstrap:
            out = out.drop_vars(list(_BOOT_FIELDS))
    else:
        out = per_member(lambda a, y: est.fit_power_law_1d(a, y, lo, hi, **kwargs), eg, names,
                         dim=dim, codes=codes)
    return finish(out, ds, "fit_power_law", dict(
        kwargs, alpha_min=alpha_min, alpha_max=alpha_max, bootstrap=int(bootstrap), ci=ci,
        seed_mean=seed_mean, random_state=random_state, baseline=baseline_attr(baseline)),
        VARIABLES)


# --------------------------------------------------------------------------- late-time decay
@takes(criterion=DecayCriterion)
def convergence(
    ds: xr.Dataset | xr.DataArray,
    alpha_min: float | None = None,
    *,
    criterion: DecayCriterion,
    baseline: float | xr.DataArray = 0.0,
    floor: float = 1e-10,
    dim: str = DIM,
) -> xr.Dataset:
    """Classify the late-time decay of each curve, equation (A7) of docs/analysis.md.

    In the late window (the last ``decades`` decades of valid data, not before ``alpha_min``)
    the local exponent γ(α) (A1) is fitted by a line in α. Exponential decay ε_g ∝ e^{−cα}
    has γ = cα (growing linearly), a power law ε_g ∝ α^{−γ} a constant γ. The growth ratio
    ρ (1 for a pure exponential, 0 for a pure power law) decides: "exponential" if
    ρ ≥ ``exponential_ratio``, "power_law" if |ρ| ≤ ``power_law_ratio``, else "undetermined"
    (also when ε_g does not decay, or too few points). With a ``baseline`` ε_∞ the decay of
    the excess ε_g − ε_∞ is classified. ``decades``, ``window``, ``exponential_ratio``,
    ``power_law_ratio`` and ``min_exponent`` are the fields of `DecayCriterion` (defaults
    there).

    Returns
    -------
    Dataset with ``convergence`` (class string), ``convergence_rate`` (c, for exponential),
    ``convergence_exponent`` (γ, for power law), ``convergence_alpha_min``/``_max`` (window),
    ``convergence_ratio`` (ρ) and ``convergence_reason``. Lazy on dask-backed input.
    """
    criterion.check()
    check_floor(floor)
    if alpha_min is not None and not (np.isfinite(alpha_min) and alpha_min >= 0):
        raise ValueError(f"alpha_min: must be None or finite and >= 0, got {alpha_min!r}")
    eg = curve(ds, dim, baseline)
    lo = np.nan if alpha_min is None else float(alpha_min)
    kwargs = dict(criterion.keywords(), floor=floor)
    names = ("class_code", "convergence_rate", "convergence_exponent", "convergence_alpha_min",
             "convergence_alpha_max", "convergence_ratio", "reason_code")
    out = per_member(lambda a, y: est.convergence_1d(a, y, lo, **kwargs), eg, names, dim=dim,
                     codes={"class_code": ("convergence", est.CONVERGENCE_CLASSES),
                            "reason_code": ("convergence_reason", est.REASONS)})
    return finish(out, ds, "convergence", dict(kwargs, alpha_min=alpha_min,
                                               baseline=baseline_attr(baseline)), VARIABLES)


# --------------------------------------------------------------------------- summary
def summary(
    ds: xr.Dataset | xr.DataArray,
    *,
    seed_mean: bool = False,
    baseline: float | xr.DataArray = 0.0,
    plateau_kwargs: dict[str, Any] | None = None,
    fit_kwargs: dict[str, Any] | None = None,
    convergence_kwargs: dict[str, Any] | None = None,
    dim: str = DIM,
) -> xr.Dataset:
    """`plateau`, `fit_power_law` and `convergence` merged: one row per member.

    Every member (each combination of the non-``alpha`` dims, seeds included) gets one value
    of each variable; the power-law fit variables are prefixed ``fit_`` where their names are
    generic (``fit_alpha_min``, ``fit_alpha_max``, ``fit_reason``, ``fit_n_points``). With
    ``seed_mean=True`` the curves are first averaged over ``seed`` (and the plateau is that of
    the mean curve). ``baseline`` (ε_∞, see `plateau`) goes to all three; ``*_kwargs`` are
    passed on to the three functions. Lazy on dask input.
    """
    src = ds
    if seed_mean:
        eg = curve(ds, dim)
        if SEED not in eg.dims:
            raise ValueError(f"seed_mean: the curve has no {SEED!r} dim (dims {eg.dims})")
        src = eg.mean(SEED, keep_attrs=True)
        src.attrs = dict(ds.attrs)
    pl = plateau(src, dim=dim, baseline=baseline, **(plateau_kwargs or {}))
    fit = fit_power_law(src, dim=dim, seed_mean=False, baseline=baseline, **(fit_kwargs or {}))
    fit = fit.rename({k: f"fit_{k}" for k in ("alpha_min", "alpha_max", "reason", "n_points")})
    conv = convergence(src, dim=dim, baseline=baseline, **(convergence_kwargs or {}))
    out = xr.merge([pl, fit, conv], compat="no_conflicts", combine_attrs="drop")
    attrs = dict(pl.attrs)
    for part in (fit, conv):
        attrs.update({k: v for k, v in part.attrs.items() if k not in attrs})
    attrs["analysis"] = "summary"
    out.attrs = attrs
    return out
