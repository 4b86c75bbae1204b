"""`EscapeResult`: what `scalex.analysis.escape.escape` returns (docs/theory.md §5.3;
docs/analysis.md, "Escape theory"), with its repr and Dataset form."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from scalex.model.setup import Setup

__all__ = ["EscapeResult"]

Array = NDArray[np.float64]


@dataclass(frozen=True, repr=False)
class EscapeResult:
    """Escape-time theory of one Setup (see `escape`). All times are in α = steps/N.

    Attributes
    ----------
    plateau_height : ε_g* at the symmetric fixed point (E1).
    escape_rate : μ, the largest real part on the symmetry-breaking subspace (E2);
        ``escape_multiplicity`` its degeneracy.
    plateau_start, plateau_end, plateau_length : the predicted plateau (E3)–(E5); NaN when
        ``has_plateau`` is False (no flat run of ≥ min_decades), as in `scalex.analysis.plateau`.
    naive_length : (1/μ) ln(1/A_0), the textbook estimate (not used for the prediction).
    initial_asymmetry, plateau_asymmetry : A_0 at α = 0 and A_s at the plateau start.
    kappa : κ of ε_g − ε_g* ≈ κ A² along the unstable direction (E5).
    fixed_point : (q*, r*, t) per group; ``fixed_point_residual`` max |dx/dα| there.
    second_layer : the student's v at the fixed point: the fixed v, or with ``train_v`` the
        trained v̄* (all entries equal; docs/theory.md §5.6).
    antisymmetric_eigenvalues, symmetric_eigenvalues : spectra of the V1 and V0 blocks, each
        eigenvalue of an irreducible block listed once, sorted by decreasing real part, with
        ``antisymmetric_multiplicities`` the dimension of its representation (1 throughout for
        ``method="dense"``, which lists every copy). Blocks with more than ``dense_max`` rows
        contribute only their rightmost real eigenvalue (docs/analysis.md, (E2)).
    method : "structured" or "dense" (the route of (E2)–(E5)).
    alpha, eg_symmetric, eg_predicted : ε_sym(α) and ε_pred(α) (NaN once |κ A²| exceeds half
        the excess over the baseline, where second order no longer holds).
    """

    setup: Setup
    plateau_height: float
    escape_rate: float
    escape_multiplicity: int
    plateau_start: float
    plateau_end: float
    plateau_length: float
    has_plateau: bool
    naive_length: float
    initial_asymmetry: float
    plateau_asymmetry: float
    kappa: float
    fixed_point_residual: float
    asymmetry_source: str
    thresholds: dict[str, float]
    fixed_point: tuple[Array, Array, Array] = field(compare=False)
    antisymmetric_eigenvalues: Array = field(compare=False)
    symmetric_eigenvalues: Array = field(compare=False)
    alpha: Array = field(compare=False)
    eg_symmetric: Array = field(compare=False)
    eg_predicted: Array = field(compare=False)
    second_layer: Array = field(default_factory=lambda: np.zeros(0), compare=False)
    antisymmetric_multiplicities: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, np.int64), compare=False)
    method: str = "structured"

    @property
    def escape_time(self) -> float:
        """1/μ, the e-folding time of the symmetry-breaking amplitude."""
        return 1.0 / self.escape_rate if self.escape_rate > 0 else np.inf

    def __repr__(self) -> str:
        s = self.setup
        trained = (f", v̄*={self.second_layer.mean():.4g}" if s.train_v and self.second_layer.size
                   else "")
        return (
            f"EscapeResult(K={s.K}, M={s.M}, L={s.L}, beta={s.beta:g}, eta={s.eta:g}: "
            f"ε_g*={self.plateau_height:.4g}{trained}, μ={self.escape_rate:.4g} "
            f"(×{self.escape_multiplicity}), plateau {self.plateau_start:.4g}–"
            f"{self.plateau_end:.4g} (length {self.plateau_length:.4g}, "
            f"{'found' if self.has_plateau else 'none'}), naive (1/μ)ln(1/A0)="
            f"{self.naive_length:.4g}, A0={self.initial_asymmetry:.3g} "
            f"[{self.asymmetry_source}])"
        )

    def to_dataset(self) -> xr.Dataset:
        """The scalars as 0-d variables, the fixed point per group, the spectra and the
        predicted curves on ``alpha``; attrs carry the Setup (`Setup.to_attrs`)."""
        q, r, t = self.fixed_point
        s = self.setup
        scalars = {
            "plateau_height": (self.plateau_height, "plateau height ε_g* at the fixed point"),
            "escape_rate": (self.escape_rate, "escape rate μ (largest unstable eigenvalue)"),
            "escape_multiplicity": (self.escape_multiplicity, "degeneracy of μ"),
            "plateau_start": (self.plateau_start, "predicted plateau start α_s"),
            "plateau_end": (self.plateau_end, "predicted plateau end"),
            "plateau_length": (self.plateau_length, "predicted plateau length"),
            "has_plateau": (self.has_plateau, "a plateau of ≥ min_decades is predicted"),
            "naive_length": (self.naive_length, "(1/μ) ln(1/A_0)"),
            "initial_asymmetry": (self.initial_asymmetry,
                                  "A_0: draw projected on the unstable eigenspace at α = 0"),
            "plateau_asymmetry": (self.plateau_asymmetry,
                                  "A_s: unstable amplitude at the plateau start"),
            "kappa": (self.kappa, "κ: ε_g − ε_g* ≈ κ A² along the unstable direction"),
            "fixed_point_residual": (self.fixed_point_residual, "max |dx/dα| at the fixed point"),
        }
        ds = xr.Dataset(
            {k: ((), val, {"long_name": ln, "units": "1"}) for k, (val, ln) in scalars.items()},
            coords={"group": np.arange(1, s.L + 1), "student_i": np.arange(1, s.K + 1),
                    "student_j": np.arange(1, s.K + 1), "teacher_n": np.arange(1, s.M + 1),
                    "teacher_m": np.arange(1, s.M + 1), "alpha": self.alpha},
        )
        ds["q_fixed"] = (("group", "student_i", "student_j"), q,
                         {"long_name": "q^τ at the symmetric fixed point", "units": "1"})
        ds["r_fixed"] = (("group", "student_i", "teacher_n"), r,
                         {"long_name": "r^τ at the symmetric fixed point", "units": "1"})
        ds["t_fixed"] = (("group", "teacher_n", "teacher_m"), t,
                         {"long_name": "isotropic teacher t^τ = f_τ I", "units": "1"})
        if self.second_layer.size:
            ds["v_fixed"] = (("student_i",), self.second_layer,
                             {"long_name": "student second layer v at the fixed point",
                              "units": "1"})
        for name, vals in (("antisymmetric_eigenvalues", self.antisymmetric_eigenvalues),
                           ("symmetric_eigenvalues", self.symmetric_eigenvalues)):
            dim = name.replace("_eigenvalues", "_mode")
            ds[f"{name}_real"] = ((dim,), vals.real, {"long_name": f"Re {name}", "units": "1"})
            ds[f"{name}_imag"] = ((dim,), vals.imag, {"long_name": f"Im {name}", "units": "1"})
        ds["antisymmetric_multiplicities"] = (
            ("antisymmetric_mode",), self.antisymmetric_multiplicities,
            {"long_name": "dimension of the representation of each V1 eigenvalue", "units": "1"})
        ds["eg_symmetric"] = (("alpha",), self.eg_symmetric,
                              {"long_name": "ε_g on the symmetric trajectory", "units": "1"})
        ds["eg_predicted"] = (("alpha",), self.eg_predicted,
                              {"long_name": "ε_sym + κ A_s² exp(2μ(α − α_s))", "units": "1"})
        ds.attrs = {**s.to_attrs(), "method": "escape_theory", "escape_route": self.method,
                    "asymmetry_source": self.asymmetry_source,
                    **{f"escape_{k}": v for k, v in self.thresholds.items()}}
        return ds
