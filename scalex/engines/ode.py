"""`solve_ode`: the order-parameter ODEs (docs/theory.md §3) of one seed, as a schema Dataset.

The ODEs start from the per-group overlaps of the weight draw of ``seed``
(`scalex.schema.initial_overlaps`: the same start as `scalex.engines.simulate` and
``linear_theory(seed=...)``) or from a given ``init``, and are sampled on the requested α grid.
The integrated system (packed per-group state, fields augmented into the state, arrowhead
Jacobian) is `scalex.engines.ode_system.AugmentedSystem`, whose module docstring gives the
design; the Newton linear algebra of the default method is
`scalex.numerics.arrowhead.ArrowheadBDF`. BLAS runs single-threaded during a solve
(`scalex.numerics.threads`), and a progress bar over α decades appears once a solve has run 5 s.

Methods
    ``"auto"`` is ``"arrowhead"`` (BDF with block elimination) unless the Jacobian would exceed
    `MAX_JACOBIAN_NNZ` stored entries (very large K); then it is the explicit DOP853 on the plain
    state, whose step is stability-limited (~ηλ_1), so its cost grows ∝ α_max and its errors
    are larger than BDF's at the same rtol (use rtol ≲ 1e-8 there). Measured on the Fig. 1
    setup (benchmarks/ode_results.md): block elimination takes the same steps as SuperLU-BDF
    (``method="BDF"``) and was 2–3× faster at L = 1024; ``"Radau"`` needed twice the
    evaluations and complex LUs (8× slower); integrating in u = ln(α + α₀) (``log_time=True``)
    saved ~5 % of the steps but made ε_g 5–10× less accurate at the same rtol, so plain α is
    the default. The cost grows from ~0.05 s (L = 1) to ~0.25 s (L = 1024), and is ~600× below
    a fixed-step RK4 (dt = 0.01) of equal accuracy. If scipy's private BDF internals
    are not what `ArrowheadBDF` needs, ``"arrowhead"`` falls back to ``"BDF"`` with an
    `scalex.numerics.arrowhead.ArrowheadUnavailableWarning`.

Accuracy
    The error of the overlaps is ~rtol · |overlap|, so ε_g, a small difference of overlaps late
    in training, has relative errors ~10–50 × rtol while ε_g > 1e-4 max ε_g and larger below. A
    plateau exit amplifies errors of the small symmetry-breaking components
    (~ rtol · |q| / asymmetry): near it the error reached ~500 × rtol for L = 1. Tighten rtol to
    time escapes precisely.

Error coordinates (linear g)
    For linear activation the state also carries the per-group errors E^τ of docs/theory.md
    eq. (4.2), integrated with their own rate (`AugmentedSystem`), and ε_g = ½ Σ_τ λ_τ E^τ is
    read from them (attrs ``eg_route``). ε_g is then not a small difference of overlaps: it has
    its own absolute tolerance ``eg_atol`` (default `EG_ATOL`) besides rtol. For erf,
    ε_g = ½ cᵀ I2(C) c (eq. (3.11)) of the overlaps, negative round-off clipped to 0
    (attrs ``eg_clipped``).

Stability and divergence
    η is compared with the linear stability bound `Setup.eta_max_linear` (docs/theory.md
    eq. (4.6); exact for linear g, an estimate for erf) and the ratio is recorded in the attrs
    (`stability_report`). Above `FAR_OUTSIDE` times the bound a `scalex.schema.StabilityWarning`
    is issued, since SGD does not converge there even where erf keeps the overlaps bounded. A
    run whose |Q| or |R| exceeds `DIVERGENCE_BOUND`, or turns non-finite, stops there: the rest
    of the grid is NaN and ``status`` is "diverged". `solve_ode` never raises on a failing
    integration; its docstring lists the statuses and warnings.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp

from scalex.common.alpha import check_alpha
from scalex.common.progress import Progress
from scalex.engines.ode_exponential import ExponentialRK
from scalex.engines.ode_feedback import FeedbackJacobian
from scalex.engines.ode_system import AugmentedSystem, SecondLayerSystem
from scalex.model.integrals import generalization_error
from scalex.model.setup import Setup
from scalex.numerics.arrowhead import (
    ArrowheadBDF,
    ArrowheadUnavailableWarning,
    bdf_internals_message,
    bdf_internals_problem,
)
from scalex.numerics.threads import single_threaded_blas as _single_threaded_blas

Array = NDArray[np.float64]

#: |Q_ij| or |R_in| beyond which a run counts as diverged.
DIVERGENCE_BOUND = 1e6

#: Default absolute tolerance of the error coordinates E^τ (linear g, module docstring).
EG_ATOL = 1e-16

#: η above this multiple of the linear stability bound is reported as far outside the stable
#: range (erf networks were measured to still converge at 2×, not at 3×; linear ones diverge
#: above 1×).
FAR_OUTSIDE = 2.0


#: What a run far outside the stability bound does, by activation (`stability_report`).
_FAR_OUTSIDE_OUTCOME = {
    "erf": "an erf network stays bounded only because erf saturates",
    "linear": "a linear network diverges",
    "relu": "relu does not saturate, so expect divergence",
}

#: Largest arrowhead Jacobian (stored entries) for which ``method="auto"`` stays implicit
#: (the block elimination keeps ~4/3 of this many doubles).
MAX_JACOBIAN_NNZ = 15_000_000

__all__ = ["METHODS", "solve_ode", "stability_report"]


#: Methods available with a trained second layer (`SecondLayerSystem`, plain state with v; the
#: implicit ones with their finite-difference Jacobian). "auto" is "BDF" then.
SECOND_LAYER = ("BDF", "Radau", "LSODA", "RK45", "DOP853", "RK23")

#: Methods that integrate the augmented state with the structured Jacobian.
IMPLICIT = ("arrowhead", "BDF", "Radau", "LSODA")
EXPLICIT = ("RK45", "DOP853", "RK23")
#: Methods on the plain state with the per-group stiff part exact (`ExponentialRK`).
EXPONENTIAL = ("exponential",)
#: BDF on the plain state with the field feedback implicit (`FeedbackJacobian`).
FEEDBACK = ("feedback",)
METHODS = ("auto", *IMPLICIT, *FEEDBACK, *EXPONENTIAL, *EXPLICIT)


# --------------------------------------------------------------------------- driver
def _initial(setup: Setup, init: xr.Dataset | None, seed: int) -> tuple[Array, Array, Array, float]:
    """(q, r, t, α_start) from ``init`` or from the weight draw of ``seed``."""
    if init is None:
        from scalex.schema import initial_overlaps

        init = initial_overlaps(setup, seed)
    if not isinstance(init, xr.Dataset) or not {"q", "r", "t"} <= set(init.data_vars):
        raise ValueError("init: must be a Dataset with variables q, r and t")
    start = 0.0
    q, r, t = init["q"], init["r"], init["t"]
    if "alpha" in q.dims:
        q, r = q.isel(alpha=0), r.isel(alpha=0)
        start = float(init["alpha"][0])
    for name, da, dims in (("q", q, ("group", "student_i", "student_j")),
                           ("r", r, ("group", "student_i", "teacher_n")),
                           ("t", t, ("group", "teacher_n", "teacher_m"))):
        if da.dims != dims:
            raise ValueError(f"init: variable {name!r} must have dims {dims} (after taking its "
                             f"first alpha), got {da.dims}")
    L, K, M = setup.L, setup.K, setup.M
    if q.shape != (L, K, K) or r.shape != (L, K, M) or t.shape != (L, M, M):
        raise ValueError(f"init: overlap shapes {q.shape}, {r.shape}, {t.shape} do not match "
                         f"the setup (L={L}, K={K}, M={M})")
    q0, r0, t0 = (np.asarray(x.values, dtype=float) for x in (q, r, t))
    if not all(np.all(np.isfinite(x)) for x in (q0, r0, t0)):
        raise ValueError("init: overlaps must be finite")
    if start < 0 or not np.isfinite(start):
        raise ValueError(f"init: its first alpha must be finite and >= 0, got {start}")
    return q0, r0, t0, start


def stability_report(setup: Setup, engine: str) -> tuple[dict[str, Any], str | None]:
    """Attrs recording η against the linear stability bound, and a warning text if η is far
    outside the stable range (more than `FAR_OUTSIDE` × the bound).

    The bound is `Setup.eta_max_linear`, η Σ_i v_i² < 2 / Σ_{τ trained} f_τ λ_τ
    (docs/theory.md §4.4, eq. (4.6)): exact for linear g, an estimate for erf.
    """
    bound = float(setup.eta_max_linear)
    ratio = float(setup.eta) / bound
    attrs: dict[str, Any] = {"eta_max_linear": bound, "eta_over_eta_max_linear": ratio}
    if not ratio > FAR_OUTSIDE:
        return attrs, None
    message = (
        f"{engine}: eta={setup.eta:g} is {ratio:.3g} x the linear stability bound "
        f"eta_max_linear={bound:.4g} (eta*sum(v^2) < 2/sum_trained(f*lambda), docs/theory.md "
        f"§4.4), far outside the stable range (> {FAR_OUTSIDE:g} x): SGD does not converge "
        f"there; {_FAR_OUTSIDE_OUTCOME.get(setup.activation, 'expect divergence')}"
    )
    attrs["stability_warning"] = message
    return attrs, message


def _resolve_method(method: str, system: AugmentedSystem) -> str:
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    if isinstance(system, SecondLayerSystem):
        if method == "auto":
            return "BDF"
        if method not in SECOND_LAYER:
            raise ValueError(
                f"method: {method!r} is not available with train_v=True (its structured "
                f"Jacobian assumes a fixed second layer; docs/theory.md §3.10); use 'auto' or "
                f"one of {SECOND_LAYER}")
        return method
    relu = system.activation == "relu"
    if method == "auto":
        small = system.jacobian_nnz() <= MAX_JACOBIAN_NNZ
        if small:
            method = "arrowhead"
        elif system.ne:  # error coordinates (linear g): the feedback Jacobian has none
            method = "exponential"
        else:
            method = "feedback"
    if method in EXPONENTIAL and relu:
        raise ValueError(f"method: {method!r} is not available for activation='relu' (its "
                         f"moment kernels are erf-only); use 'auto', 'arrowhead' or another "
                         f"method of {METHODS}")
    if method in FEEDBACK and system.ne:
        raise ValueError(f"method: {method!r} needs a system without error coordinates "
                         f"(activation='linear' carries them); use 'exponential' or 'auto'")
    if method in ("arrowhead", *FEEDBACK):
        problem = bdf_internals_problem(ArrowheadBDF)
        if problem is not None:
            warnings.warn(f"scalex.solve_ode: {bdf_internals_message(problem)}",
                          ArrowheadUnavailableWarning, stacklevel=3)
            return "BDF" if method == "arrowhead" else ("DOP853" if relu else "exponential")
    return method


class _DecadeProgress:
    """Progress over decades of α, shown after 5 s of solving (docs: `scalex.common.progress`)."""

    def __init__(self, lo: float, hi: float, enabled: bool | None) -> None:
        self.lo = math.log10(lo)
        self.total = round(max(math.log10(hi) - self.lo, 0.01), 2)
        self.bar = Progress(self.total, "scalex ode", "decade", enabled=enabled, delay=5.0)
        self.done = 0.0

    def __call__(self, alpha: float) -> None:
        if not self.bar.enabled or alpha <= 0:
            return
        pos = round(min(math.log10(alpha) - self.lo, self.total), 2)
        if pos >= self.done + 0.05:
            self.bar.update(pos - self.done)
            self.done = pos

    def close(self) -> None:
        self.bar.close()


def solve_ode(
    setup: Setup,
    alpha: ArrayLike,
    *,
    seed: int = 0,
    init: xr.Dataset | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    eg_atol: float = EG_ATOL,
    method: str = "auto",
    progress: bool | None = None,
    log_time: bool = False,
    record: str | Sequence[str] = ("q", "r"),
) -> xr.Dataset:
    """Integrate the ODEs of docs/theory.md §3 from the initial overlaps, sampled on ``alpha``.

    Parameters
    ----------
    setup : the experiment (`Setup`).
    alpha : output grid, >= 0 and strictly increasing (α = 0 may be included).
    seed : weight draw of the initial overlaps (same seed → same start as `scalex.simulate`).
    init : Dataset with q, r, t: the initial overlaps at its first ``alpha``, which is then the
        start time; default `scalex.initial_overlaps(setup, seed)`.
    rtol, atol : integrator tolerances on the overlaps (atol absolute, per entry). See the
        module docstring for the resulting accuracy of ε_g.
    eg_atol : absolute tolerance of the error coordinates E^τ (linear g only; rtol applies
        too). Its default resolves ε_g relatively down to ~1e-12.
    method : "auto": "arrowhead" while its Jacobian has at most ``MAX_JACOBIAN_NNZ`` entries,
        else "feedback" ("exponential" for linear g, whose error coordinates it lacks).
        "arrowhead": `ArrowheadBDF` on the augmented state (docs/theory.md §3.6).
        "feedback": `ArrowheadBDF` on the plain state with `FeedbackJacobian`, the per-group
        blocks exact in the eigenbasis of s_Q and the field feedback through s implicit
        (docs/theory.md §3.9); for large K (at K = M = 40, L = 512 it is 30–40x faster per unit
        α than "exponential" once the plateau is left).
        Both fall back ("arrowhead" to "BDF", "feedback" to "exponential", or "DOP853" for relu)
        with an `ArrowheadUnavailableWarning` if scipy's BDF internals are not what they need
        (`scalex.numerics.arrowhead`).
        "exponential": `ExponentialRK` (docs/theory.md §3.7), erf or linear g only.
        Or a `scipy.integrate.solve_ivp` method: "BDF", "Radau" (with the same Jacobian as a
        sparse matrix), "LSODA" (dense Jacobian for n ≤ 3000 unknowns, else its own estimate),
        "RK45", "DOP853", "RK23" (plain state).
    progress : None shows a tqdm bar over α decades on a terminal once the solve has run 5 s;
        True always; False never.
    log_time : integrate in u = ln(α + α₀), α₀ = 0.1/(η λ_1), instead of α.
    record : the overlaps to store, a subset of `scalex.schema.RECORDABLE`: per-group "q", "r"
        (schema variables) and/or the λ-weighted "Q", "R" (K = M = 40, L = 512: 26 MB per
        output time for q and r, 26 kB for Q and R). ε_g is computed either way.

    Returns
    -------
    A schema Dataset (`scalex.schema.make_dataset`, ``method="ode"``), with the second layer
    ``v(alpha, student_i)`` if ``setup.train_v`` (``init`` may carry a start ``v``), whose
    attrs also hold
    ``ode_method``, ``rtol``, ``atol``, ``seed``, the numbers of right-hand-side, Jacobian and
    LU evaluations, ``wall_time_s``, ``eg_atol``, ``eg_route``, ``eg_clipped``, and
    ``eta_max_linear`` and ``eta_over_eta_max_linear`` (`stability_report`). If the overlaps
    blow up (|Q| or |R| > `DIVERGENCE_BOUND`, non-finite values, or a failing integrator while
    they are large) — also before the first requested α — the rest of the grid is NaN,
    ``status`` is "diverged" and a `scalex.schema.DivergenceWarning` is issued; any other
    integrator failure gives status "failed: <reason>" and a RuntimeWarning. Neither raises. η
    far outside the stable range adds a `scalex.schema.StabilityWarning` (module docstring).
    """
    from scalex.schema import DivergenceWarning, StabilityWarning, make_dataset

    if not isinstance(setup, Setup):
        raise ValueError(f"setup: must be a scalex.Setup, got {type(setup).__name__}")
    alpha = check_alpha(alpha)
    for name, tol in (("rtol", rtol), ("atol", atol), ("eg_atol", eg_atol)):
        if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
            raise ValueError(f"{name}: must be finite and > 0, got {tol!r}")
    if progress not in (None, True, False):
        raise ValueError(f"progress: must be None, True or False, got {progress!r}")
    from scalex.schema import (
        check_record,
        initial_second_layer,
        second_layer_extra,
        weighted_extra,
    )

    rec = check_record(record)
    q0, r0, t, start = _initial(setup, init, seed)
    if alpha[0] < start:
        raise ValueError(f"alpha: must start at or after the initial time {start:g} of init")
    sp = setup.spectrum
    v, w = setup.second_layer
    if setup.train_v and init is not None and "v" in init.data_vars:
        v = initial_second_layer(init, setup.K)
    kwargs = dict(eigenvalues=sp.eigenvalues, fractions=sp.fractions, v=v, w=w, eta=setup.eta,
                  activation=setup.activation, noise=setup.noise, trained=setup.trained_groups)
    if setup.train_v:
        system: AugmentedSystem = SecondLayerSystem(q0, r0, t, eta_v=setup.learning_rate_v,
                                                    **kwargs)
    else:
        system = AugmentedSystem(q0, r0, t, **kwargs)
    chosen = _resolve_method(method, system)
    if not setup.train_v and (chosen in EXPLICIT or chosen in EXPONENTIAL or chosen in FEEDBACK):
        if log_time and chosen in EXPONENTIAL:
            raise ValueError("log_time: the exponential method integrates in alpha itself")
        system = AugmentedSystem(q0, r0, t, augmented=False, **kwargs)
    stability, unstable = stability_report(setup, "scalex.solve_ode")
    if unstable:
        warnings.warn(f"{unstable} ({setup!r})", StabilityWarning, stacklevel=2)

    A = alpha.size
    z_out = np.full((system.n, A), np.nan)
    status, message = "ok", ""
    stats = {"nfev": 0, "njev": 0, "nlu": 0}
    tick = time.perf_counter()
    z0 = system.initial_state()
    if system.G == 0 or alpha[-1] == start:
        z_out[:] = z0[:, None]  # nothing moves, or nothing to integrate
    else:
        positive = alpha[alpha > 0]
        bar = _DecadeProgress(max(float(positive[0]) / 10, 1e-12), float(alpha[-1]), progress)
        # Time variable u: α itself, or ln(α + α₀).
        alpha0 = 0.1 / (setup.eta * float(np.max(sp.eigenvalues))) if log_time else 0.0

        def to_u(a: ArrayLike) -> Array:
            a = np.array(a, dtype=float)
            return np.log(a + alpha0) if log_time else a

        def to_alpha(u: float) -> float:
            return math.exp(u) - alpha0 if log_time else u

        def dadu(u: float) -> float:
            return math.exp(u) if log_time else 1.0

        def fun(u: float, z: Array) -> Array:
            bar(to_alpha(u))
            return system.rhs(z) * dadu(u)

        def blowup(u: float, z: Array) -> float:
            _, y = system.split(z)
            big = float(np.max(np.abs(y))) if np.all(np.isfinite(y)) else np.inf
            return DIVERGENCE_BOUND - min(big, 1e300)

        blowup.terminal = True  # type: ignore[attr-defined]
        ivp_kwargs: dict[str, Any] = {}
        solver: str | type = chosen
        if chosen == "arrowhead":
            solver = ArrowheadBDF
            ivp_kwargs["jac"] = lambda u, z: system.arrowhead(z, scale=dadu(u))
        elif setup.train_v:
            pass  # finite-difference Jacobians of scipy's implicit methods
        elif chosen in ("BDF", "Radau"):
            ivp_kwargs["jac"] = lambda u, z: system.jacobian(z, scale=dadu(u))
        elif chosen in FEEDBACK:
            solver = ArrowheadBDF
            ivp_kwargs["jac"] = lambda u, z: FeedbackJacobian.at(system, z, scale=dadu(u))
        elif chosen == "exponential":
            solver = ExponentialRK
            ivp_kwargs.update(system=system, on_step=bar)
        elif chosen == "LSODA" and system.n <= 3000:
            ivp_kwargs["jac"] = lambda u, z: system.arrowhead(z, scale=dadu(u)).toarray()
        u0, u_eval = float(to_u(start)), to_u(alpha)
        u_eval[0] = max(u_eval[0], u0)  # round-off of the log map at α = start
        atol_z = np.full(system.n, float(atol))
        atol_z[system.error_index()] = eg_atol
        with warnings.catch_warnings(), _single_threaded_blas():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                sol = solve_ivp(fun, (u0, float(u_eval[-1])), z0, method=solver, t_eval=u_eval,
                                rtol=rtol, atol=atol_z, events=blowup, **ivp_kwargs)
            finally:
                bar.close()
        # solve_ivp leaves t and y as empty lists when it stops before the first t_eval.
        sol.t = np.asarray(sol.t, dtype=float).reshape(-1)
        sol.y = np.asarray(sol.y, dtype=float).reshape(system.n, sol.t.size)
        done = sol.y.shape[1]
        if done:
            z_out[:, :done] = sol.y
        stats = {"nfev": int(sol.nfev), "njev": int(sol.njev), "nlu": int(sol.nlu)}
        if sol.status != 0 or not np.all(np.isfinite(sol.y)):
            status, message = _failure(sol, system, z0, to_alpha)
            z_out[:, ~np.all(np.isfinite(z_out), axis=0)] = np.nan
            category = DivergenceWarning if status == "diverged" else RuntimeWarning
            bound = (f" (eta={setup.eta:g}; the linear stability bound is "
                     f"{setup.eta_max_linear:.4g})" if status == "diverged" else "")
            warnings.warn(f"scalex.solve_ode: {setup!r}: {message}{bound}; the rest of the grid "
                          f"is NaN", category, stacklevel=2)
    # the λ-weighted overlaps (A, K, K), (A, K, M) from the per-group states (not from the
    # augmented fields, which carry the integrator's drift of the linear invariant)
    x_out, _ = system.split(z_out)
    Q_out, R_out = system.unpack((system.y_frozen[:, None]
                                  + np.einsum("g,gpa->pa", system.lam, x_out)).T)
    v_out = system.second_layer(z_out).T if setup.train_v else None  # (A, K)
    eg, clipped = _generalization_error(setup, system, Q_out, R_out, t, z_out, v_out)
    attrs = {
        "seed": int(seed),
        "ode_method": chosen,
        "rtol": float(rtol),
        "atol": float(atol),
        "eg_atol": float(eg_atol),
        "eg_route": ("error coordinates: eg = sum(lambda*E)/2" if system.ne else
                     "eg = c^T I2(C) c / 2 of the overlaps, negative round-off clipped to 0"),
        "eg_clipped": int(clipped),
        "log_time": int(log_time),
        "augmented_state": int(system.augmented),
        "n_rhs_evaluations": stats["nfev"],
        "n_jacobian_evaluations": stats["njev"],
        "n_lu_decompositions": stats["nlu"],
        "n_moment_evaluations": system.counts["moments"],
        "wall_time_s": float(time.perf_counter() - tick),
    }
    attrs.update(stability)
    if message:
        attrs["solver_message"] = message
    attrs["recorded"] = " ".join(rec)
    if "q" in rec or "r" in rec:
        q_out, r_out = system.overlaps(z_out)
        failed = ~np.all(np.isfinite(z_out), axis=0)
        q_out[failed], r_out[failed] = np.nan, np.nan
    else:  # zero-memory placeholders, dropped below
        q_out = np.broadcast_to(np.nan, (A, setup.L, setup.K, setup.K))
        r_out = np.broadcast_to(np.nan, (A, setup.L, setup.K, setup.M))
    extra = {k: v for k, v in weighted_extra(Q_out, R_out).items() if k in rec}
    if v_out is not None:
        extra.update(second_layer_extra(v_out))
    ds = make_dataset(setup, alpha, q_out, r_out, t, method="ode", eg=eg, status=status,
                      extra=extra, attrs=attrs)
    return ds.drop_vars([name for name in ("q", "r") if name not in rec])


def _generalization_error(setup: Setup, system: AugmentedSystem, Q: Array, R: Array, t: Array,
                          z: Array, v_out: Array | None = None) -> tuple[Array, int]:
    """ε_g at the outputs and how many values were clipped from below 0.

    With error coordinates (linear g) ε_g = ½ Σ_τ λ_τ E^τ (docs/theory.md §4, eq. (4.2)), which
    is ≥ 0 by construction. Otherwise ε_g = ½ cᵀ I2(C) c (eq. (3.11)) from the λ-weighted
    overlaps; I2 is PSD, so values below 0 are round-off or integration error and are
    reported as 0 (a round-off guard; their number goes to attrs ``eg_clipped``).
    """
    if system.ne:
        return system.generalization_error(z), 0
    T = np.einsum("g,gnm->nm", setup.spectrum.eigenvalues, t)
    v, w = setup.second_layer
    if v_out is not None:  # a trained second layer: ε_g at v(α) (docs/theory.md §3.10)
        v = v_out
    with np.errstate(invalid="ignore"):
        eg = generalization_error(Q, R, T, v, w, setup.activation)
        negative = eg < 0
    return np.where(negative, 0.0, eg), int(negative.sum())


def _failure(sol: Any, system: AugmentedSystem, z0: Array,
             to_alpha: Callable[[float], float]) -> tuple[str, str]:
    """(status, message) of an integration that stopped early."""
    if sol.t_events is not None and len(sol.t_events[0]):
        where = to_alpha(float(sol.t_events[0][0]))
        return "diverged", f"overlaps exceeded {DIVERGENCE_BOUND:g} at alpha ≈ {where:.4g}"
    where = to_alpha(float(sol.t[-1])) if sol.t.size else float("nan")
    _, y_last = system.split(sol.y[:, -1] if sol.y.shape[1] else z0)
    if not np.all(np.isfinite(sol.y)) or not np.all(np.isfinite(y_last)) or (
            np.max(np.abs(y_last)) > 1e3):
        return "diverged", f"overlaps blew up after alpha ≈ {where:.4g} ({sol.message})"
    status = f"failed: {sol.message} (after alpha ≈ {where:.4g})"
    return status, status
