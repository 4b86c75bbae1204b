"""The plateau height of one weight draw, with the draw's own teacher (docs/theory.md §5.1).

The symmetric fixed point of docs/theory.md eq. (5.2) assumes the N → ∞ teacher
t^τ = f_τ I. At finite N a draw's teacher overlaps t^τ = B P_τ Bᵀ/N fluctuate around f_τ I by
O(1/√N_τ), and the plateau moves with them: at the Fig. 1 settings (K = M = 2, η = 0.1,
N = 1024, L = 1, seed 0) the isotropic prediction is ε_g* = 5.921e-3, the ODE of the draw
plateaus at 5.723e-3, and the ODE of the same draw with t^τ replaced by f_τ I at 5.921e-3. The
η² term of (3.4) is in both; the difference is the teacher.

With equal second-layer weights v, the student permutations S_K remain a symmetry for ANY
teacher, so the S_K-symmetric states

    q^τ = a_τ I + b_τ (11ᵀ − I),    r^τ_in = c_τn   (the same for every student unit i)

form an invariant subspace (2 + M numbers per group), and the plateau of the draw is the
quasi-stationary state of the dynamics inside it. `draw_plateau_height` integrates the
student-averaged draw with the draw's teacher by `scalex.solve_ode` and takes the median of
ε_g over the longest flat run of that curve (|d ln ε_g / d ln α| < ``flatness``, as
`scalex.analysis.measures.plateau` measures data; the symmetric curve never leaves its
plateau, so the criterion on the drop after it does not apply). Round-off breaks the
symmetry only at ~1e-16, so the symmetric run stays on the plateau about
ln(1e16)/ln(1/A_0) ≈ 4 times longer than the draw itself.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scalex.model.setup import Setup

__all__ = ["draw_plateau_height", "student_symmetrized"]


def student_symmetrized(init: xr.Dataset) -> xr.Dataset:
    """The overlaps averaged over the student permutations S_K (teacher t kept as drawn).

    q^τ → a_τ I + b_τ (11ᵀ − I) with a_τ, b_τ the means of the diagonal and off-diagonal
    entries, r^τ_in → mean_i r^τ_in.
    """
    out = init.copy(deep=True)
    q = out["q"].values
    K = q.shape[-1]
    eye = np.eye(K, dtype=bool)
    a = q[..., eye].mean(axis=-1)
    b = q[..., ~eye].mean(axis=-1) if K > 1 else np.zeros_like(a)
    q[...] = b[..., None, None] + (a - b)[..., None, None] * np.eye(K)
    r = out["r"].values
    r[...] = r.mean(axis=-2, keepdims=True)
    return out


def draw_plateau_height(setup: Setup, *, seed: int = 0, init: xr.Dataset | None = None,
                        alpha_max: float | None = None, flatness: float = 0.1,
                        window: float = 0.2, contrast: float = 2.0, rtol: float = 1e-8,
                        atol: float = 1e-12) -> float:
    """Predicted plateau height of one draw (module docstring): ε_g of the S_K-symmetric
    dynamics with the draw's teacher, measured by `scalex.analysis.measures.plateau`.

    Parameters
    ----------
    setup : equal second-layer weights v (soft committee machine), any activation with a
        plateau (erf).
    seed, init : the draw (`scalex.initial_overlaps(setup, seed)`), or given overlaps.
    alpha_max : end of the symmetric run (default 100/(η min λ_trained), at least 1e4/η·…;
        the slow groups must have relaxed).
    flatness, window, contrast : the criterion of `scalex.analysis.measures.plateau`: a run
        of local slope below ``flatness`` whose median is ``contrast`` times below the start.
    rtol, atol : ODE tolerances.

    Returns NaN if the symmetric curve shows no plateau.
    """
    from scalex.analysis import estimators as est
    from scalex.engines.ode import solve_ode
    from scalex.schema import initial_overlaps

    v, _ = setup.second_layer
    if not np.allclose(v, v[0]):
        raise ValueError("setup: the student-symmetric plateau needs equal second-layer "
                         "weights v (a soft committee machine)")
    if init is None:
        init = initial_overlaps(setup, seed)
    start = student_symmetrized(init)
    lam = setup.spectrum.eigenvalues[setup.trained_groups]
    if alpha_max is None:
        alpha_max = max(30.0 / (setup.eta * float(lam.min())), 1e3 / setup.eta)
    lo = 1e-2 / (setup.eta * float(lam.max()))
    alpha = np.geomspace(lo, alpha_max, 400)
    ds = solve_ode(setup, alpha, init=start, rtol=rtol, atol=atol, progress=False)
    eg = ds["eg"].values
    flat = np.abs(est.local_slope(alpha, eg, window)) < flatness
    # flat runs below the start by ``contrast`` (not the flat start before the first drop)
    first = eg[np.isfinite(eg)][0]
    runs = [(i0, i1) for i0, i1 in est.true_runs(flat)
            if i1 > i0 and np.median(eg[i0:i1 + 1]) <= first / contrast]
    if not runs:
        return float("nan")
    i0, i1 = max(runs, key=lambda ab: np.log(alpha[ab[1]] / alpha[ab[0]]))
    return float(np.median(eg[i0:i1 + 1]))
