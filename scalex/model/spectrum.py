"""Input covariance spectra: power laws, user-given eigenvalues and empirical spectra.

The input covariance Σ is diagonal in its eigenbasis. Its N eigenvalues fall into L distinct
groups; group τ (1-based) holds ``multiplicity[τ]`` coordinates with eigenvalue ``λ_τ``, and
the groups are ordered by decreasing eigenvalue (docs/theory.md §1).

Power law:  λ_τ = λ_+ · τ^{-(1+β)}.

Near-degenerate spectra: `split_groups` splits every group into two halves with eigenvalues
λ_τ(1 ± ε) (`near_degenerate`: a split power law); at ε = 0 the halves are equal and
`merge_equal` gives the original spectrum back.

Normalisations (``norm``):

``"mean"``  tr Σ / N = Σ_τ m_τ λ_τ / N = 1 (for equal multiplicities, (1/L) Σ_τ λ_τ = 1);
``"top"``   λ_1 = 1;
``"none"``  eigenvalues used as given (only for explicit spectra).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scalex.common.fits import line_fit

__all__ = ["EmpiricalSpectrum", "Spectrum", "from_data", "merge_equal", "near_degenerate",
           "normalize", "power_law", "split_groups"]

NORMS = ("mean", "top", "none")


@dataclass(frozen=True)
class Spectrum:
    """A covariance spectrum of L distinct eigenvalues with integer multiplicities.

    Attributes
    ----------
    eigenvalues : (L,) float array, strictly positive, in decreasing order.
    multiplicities : (L,) int array, summing to ``N``.
    """

    eigenvalues: NDArray[np.float64]
    multiplicities: NDArray[np.int64]

    def __post_init__(self) -> None:
        lam = np.asarray(self.eigenvalues, dtype=float)
        mult = np.asarray(self.multiplicities, dtype=np.int64)
        if lam.ndim != 1 or lam.size < 1:
            raise ValueError("eigenvalues: must be a non-empty 1-D sequence")
        if mult.shape != lam.shape:
            raise ValueError(
                f"multiplicities: must have the same length as eigenvalues ({lam.size}), "
                f"got {mult.size}"
            )
        if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
            raise ValueError("eigenvalues: must be finite and > 0")
        if np.any(mult < 1):
            raise ValueError("multiplicities: must be integers >= 1")
        if np.any(np.diff(lam) > 0):
            raise ValueError("eigenvalues: must be in decreasing order (group 1 is the largest)")
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "multiplicities", mult)

    @property
    def L(self) -> int:
        """Number of distinct eigenvalue groups."""
        return int(self.eigenvalues.size)

    @property
    def N(self) -> int:
        """Input dimension, the sum of the multiplicities."""
        return int(self.multiplicities.sum())

    @property
    def fractions(self) -> NDArray[np.float64]:
        """N_τ / N, the share of the input coordinates in each group."""
        return self.multiplicities / self.N

    @property
    def trace_per_dim(self) -> float:
        """tr Σ / N."""
        return float(np.dot(self.fractions, self.eigenvalues))

    def diagonal(self) -> NDArray[np.float64]:
        """The N diagonal entries of Σ in the eigenbasis (group 1 first)."""
        return np.repeat(self.eigenvalues, self.multiplicities)

    def group_starts(self) -> NDArray[np.int64]:
        """Index of the first coordinate of each group (for ``np.add.reduceat``)."""
        return np.concatenate([[0], np.cumsum(self.multiplicities)[:-1]]).astype(np.int64)

    def __repr__(self) -> str:
        lam = self.eigenvalues
        return (
            f"Spectrum(L={self.L}, N={self.N}, λ_1={lam[0]:.4g}, λ_L={lam[-1]:.4g}, "
            f"tr Σ/N={self.trace_per_dim:.4g})"
        )


def normalize(
    eigenvalues: ArrayLike, multiplicities: ArrayLike, norm: str
) -> NDArray[np.float64]:
    """Scale eigenvalues so that ``norm`` holds ("mean": tr Σ/N = 1, "top": λ_1 = 1)."""
    lam = np.asarray(eigenvalues, dtype=float)
    mult = np.asarray(multiplicities, dtype=float)
    if norm == "mean":
        return lam / (np.dot(mult, lam) / mult.sum())
    if norm == "top":
        return lam / lam.max()
    if norm == "none":
        return lam
    raise ValueError(f"spectrum_norm: must be one of {NORMS}, got {norm!r}")


def power_law(L: int, beta: float, N: int | None = None, norm: str = "mean") -> Spectrum:
    """Power-law spectrum λ_τ = λ_+ τ^{-(1+β)}, τ = 1..L, each of multiplicity N/L.

    Parameters
    ----------
    L : number of distinct eigenvalues.
    beta : spectrum exponent β > 0.
    N : input dimension, a multiple of L (defaults to L).
    norm : "mean" (tr Σ/N = 1, the default) or "top" (λ_1 = 1).
    """
    if int(L) != L or L < 1:
        raise ValueError(f"L: must be an integer >= 1, got {L!r}")
    N = L if N is None else N
    if N % L:
        raise ValueError(f"L: must divide N (N={N}, L={L})")
    if not beta > 0:
        raise ValueError(f"beta: must be > 0, got {beta!r}")
    if norm not in ("mean", "top"):
        raise ValueError(f"spectrum_norm: must be 'mean' or 'top' for a power law, got {norm!r}")
    tau = np.arange(1, L + 1, dtype=float)
    mult = np.full(L, N // L, dtype=np.int64)
    return Spectrum(normalize(tau ** (-(1.0 + beta)), mult, norm), mult)


def split_groups(spectrum: Spectrum, split: float) -> Spectrum:
    """Every group τ split into two halves of its coordinates, with eigenvalues λ_τ(1 + ε)
    and λ_τ(1 − ε), ε = ``split`` (docs/theory.md §1): 2L groups, tr Σ unchanged.

    At ε = 0 the two halves are equal (`merge_equal` gives ``spectrum`` back). Raises
    ValueError unless 0 ≤ ε < 1, every multiplicity is even, and the halves of neighbouring
    groups keep the decreasing order, λ_τ(1 − ε) ≥ λ_{τ+1}(1 + ε).
    """
    eps = float(split)
    if not (np.isfinite(eps) and 0.0 <= eps < 1.0):
        raise ValueError(f"split: must be in [0, 1), got {split!r}")
    lam, mult = spectrum.eigenvalues, spectrum.multiplicities
    if np.any(mult % 2):
        raise ValueError(f"split: every multiplicity must be even to halve a group, got "
                         f"{mult.tolist()}")
    if np.any(lam[1:] * (1.0 + eps) > lam[:-1] * (1.0 - eps)):
        raise ValueError(f"split: {eps:g} is too large: the halves of neighbouring groups "
                         "would cross (λ_τ(1 − ε) < λ_τ+1(1 + ε))")
    pairs = np.stack([lam * (1.0 + eps), lam * (1.0 - eps)], axis=1).ravel()
    return Spectrum(pairs, np.repeat(mult // 2, 2))


def merge_equal(spectrum: Spectrum) -> Spectrum:
    """Neighbouring groups of equal eigenvalue merged into one (their multiplicities added)."""
    lam, mult = spectrum.eigenvalues, spectrum.multiplicities
    start = np.concatenate([[True], lam[1:] != lam[:-1]])
    return Spectrum(lam[start], np.add.reduceat(mult, np.flatnonzero(start)))


def near_degenerate(L: int, beta: float, split: float, N: int | None = None,
                    norm: str = "mean") -> Spectrum:
    """`split_groups` of the power law `power_law` (L, β, N, norm): 2L eigenvalues
    λ_τ(1 ± ε), each of multiplicity N/(2L); tr Σ/N as the power law's (docs/theory.md §1)."""
    return split_groups(power_law(L, beta, N if N is not None else 2 * L, norm), split)


@dataclass(frozen=True)
class EmpiricalSpectrum:
    """The covariance spectrum of a data matrix, with a fitted power-law exponent.

    The fit is an ordinary least-squares line through log λ_k against log k over the rank
    window ``fit_range`` (1-based, inclusive): log λ_k = c − (1+β) log k.
    """

    eigenvalues: NDArray[np.float64]
    beta: float
    beta_stderr: float
    fit_range: tuple[int, int]
    n_samples: int
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def spectrum(self, norm: str = "mean", tol: float = 1e-12) -> Spectrum:
        """A `Spectrum` with one group per eigenvalue, dropping numerically zero modes."""
        lam = self.eigenvalues[self.eigenvalues > tol * self.eigenvalues[0]]
        mult = np.ones(lam.size, dtype=np.int64)
        return Spectrum(normalize(lam, mult, norm), mult)

    def __repr__(self) -> str:
        return (
            f"EmpiricalSpectrum(n_features={self.eigenvalues.size}, n_samples={self.n_samples}, "
            f"beta={self.beta:.3f} ± {self.beta_stderr:.3f}, fit ranks {self.fit_range})"
        )


def fit_power_law_exponent(
    eigenvalues: ArrayLike, fit_range: tuple[int, int]
) -> tuple[float, float]:
    """Least-squares β and its standard error from log λ_k = c − (1+β) log k, k_min ≤ k ≤ k_max.

    The line fit is `scalex.common.fits.line_fit` (docs/theory.md §4.7); the standard error is
    NaN for a window of two ranks.
    """
    lam = np.asarray(eigenvalues, dtype=float)
    kmin, kmax = fit_range
    k = np.arange(kmin, kmax + 1, dtype=float)
    fit = line_fit(np.log(k), np.log(lam[kmin - 1 : kmax]))
    return float(-fit.slope - 1.0), float(fit.slope_stderr)


def from_data(
    X: ArrayLike, fit_range: tuple[int, int] | None = None, center: bool = True
) -> EmpiricalSpectrum:
    """Empirical covariance spectrum of a data matrix ``X`` (samples × features).

    The eigenvalues of the sample covariance (1/n) Xᶜᵀ Xᶜ are sorted in decreasing order and a
    power law λ_k ∝ k^{-(1+β)} is fitted on ``fit_range`` (1-based ranks, inclusive). The default
    window skips the top 2 % of ranks (dominated by a few structured modes) and stops where the
    spectrum has fallen to 1e-6 of its top, or at half the rank, whichever is first.

    Returns
    -------
    EmpiricalSpectrum with the fitted ``beta`` and its least-squares standard error.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 4:
        raise ValueError(
            "X: must be a 2-D array (samples × features) with ≥ 2 rows and ≥ 4 columns, "
            f"got shape {X.shape}"
        )
    if center:
        X = X - X.mean(axis=0)
    n, d = X.shape
    lam = np.zeros(d)
    if n >= d:
        # The d×d Gram matrix is much cheaper than an SVD of a tall X; its eigenvalues carry an
        # absolute error ~1e-16 λ_1, far below the fit window's 1e-6 λ_1 floor.
        lam[:] = np.clip(np.linalg.eigvalsh(X.T @ X / n), 0.0, None)
    else:
        sv = np.linalg.svd(X, compute_uv=False)
        lam[: sv.size] = sv**2 / n
    lam = np.sort(lam)[::-1]
    rank = int(np.sum(lam > 1e-12 * lam[0]))
    if fit_range is None:
        kmin = max(1, int(np.ceil(0.02 * rank)))
        kmax = max(kmin + 3, min(int(np.sum(lam > 1e-6 * lam[0])), rank // 2))
        kmax = min(kmax, rank)
        fit_range = (kmin, kmax)
    kmin, kmax = fit_range
    if not (1 <= kmin < kmax <= rank) or kmax - kmin < 2:
        raise ValueError(
            f"fit_range: must satisfy 1 <= k_min < k_max - 1 <= rank - 1 (rank={rank}), "
            f"got {fit_range}"
        )
    beta, stderr = fit_power_law_exponent(lam, (kmin, kmax))
    return EmpiricalSpectrum(lam, beta, stderr, (int(kmin), int(kmax)), n)
