"""Real data sets for the linear scaling-law experiments (docs/theory.md §4.7, Fig. 3 right).

Everything here is read from files that installed packages ship; nothing is downloaded.

``"digits"``
    scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``): 1797 images
    of 8×8 pixels, N = 64 (61 with non-zero variance). Fitted β ≈ 0.35.
``"patches"``
    Grey-scale square patches cut from the three natural photographs bundled with the
    dependencies: scikit-learn's ``china.jpg`` and ``flower.jpg`` (427×640,
    ``sklearn.datasets.load_sample_images``) and matplotlib's ``grace_hopper.jpg`` (600×512,
    ``matplotlib.cbook.get_sample_data``). ``size=8, stride=4`` gives ~52 000 patches of
    N = 64 pixels; ``size=16`` gives N = 256. Natural images have a power-law spectrum with
    small β (≈ 0.2–0.35 depending on the patch size and fit window).

`eigendata` turns any data matrix into inputs for the theory: it centres the data, rotates it
into the eigenbasis of its sample covariance (so the empirical distribution has covariance
exactly diag(λ)), drops null modes, scales to tr Σ/N = 1, and fits β with
`scalex.model.spectrum.from_data`. `EigenData.setup` builds the matching linear K = M = 1
`Setup` with these explicit eigenvalues, for `scalex.engines.linear.linear_theory`
(Gaussian inputs with the same spectrum) and `scalex.engines.real_data.sgd_real_data` (SGD
driven by the data vectors themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scalex.model.setup import Setup
from scalex.model.spectrum import EmpiricalSpectrum, from_data

__all__ = [
    "DATASETS",
    "IMAGES",
    "EigenData",
    "digits",
    "eigendata",
    "image_patches",
    "load",
    "real_data",
]

DATASETS = ("digits", "patches")
IMAGES = ("china", "flower", "grace_hopper")
#: ITU-R BT.601 luma weights for the grey-scale conversion.
LUMA = np.array([0.299, 0.587, 0.114])


def digits() -> NDArray[np.float64]:
    """scikit-learn's bundled 8×8 digits as a (1797, 64) float array (pixel values 0..16)."""
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().data, dtype=float)


def _image(name: str) -> NDArray[np.float64]:
    """One bundled photograph as a grey-scale float array."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        rgb = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        rgb = mpimg.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        raise ValueError(f"images: each entry must be one of {IMAGES}, got {name!r}")
    return np.asarray(rgb, dtype=float)[..., :3] @ LUMA


def image_patches(
    size: int = 8, stride: int = 4, images: Sequence[str] = IMAGES
) -> NDArray[np.float64]:
    """All size×size grey-scale patches, taken every ``stride`` pixels, of bundled photos.

    Returns an (n_patches, size²) float array (rows are patches flattened row by row).
    """
    if isinstance(size, bool) or int(size) != size or not 2 <= size <= 64:
        raise ValueError(f"size: must be an integer in [2, 64], got {size!r}")
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"stride: must be an integer >= 1, got {stride!r}")
    if isinstance(images, str) or not images:
        raise ValueError(f"images: must be a non-empty sequence of names from {IMAGES}")
    size, stride = int(size), int(stride)
    out = []
    for name in images:
        grey = _image(name)
        win = np.lib.stride_tricks.sliding_window_view(grey, (size, size))[::stride, ::stride]
        out.append(win.reshape(-1, size * size))
    return np.concatenate(out)


def load(name: str, **kwargs: Any) -> NDArray[np.float64]:
    """A bundled data set as a (samples, features) matrix: "digits" or "patches" (kwargs go to
    `image_patches`)."""
    if name == "digits":
        if kwargs:
            raise ValueError(f"digits: takes no options, got {sorted(kwargs)}")
        return digits()
    if name == "patches":
        return image_patches(**kwargs)
    raise ValueError(f"name: must be one of {DATASETS}, got {name!r}")


@dataclass(frozen=True)
class EigenData:
    """A data set in the eigenbasis of its covariance, ready for the linear theory.

    Attributes
    ----------
    name : label of the data set.
    inputs : (n_samples, N) centred data rotated into the eigenbasis and scaled so that the
        column variances (1/n Σ rows²) are ``eigenvalues``; the columns are uncorrelated.
    eigenvalues : (N,) decreasing, mean 1 (tr Σ/N = 1), null modes dropped.
    spectrum : the `EmpiricalSpectrum` of the raw data with the fitted β ± stderr.
    scale : the factor tr Σ_raw/N that was divided out.
    """

    name: str
    inputs: NDArray[np.float64] = field(repr=False)
    eigenvalues: NDArray[np.float64] = field(repr=False)
    spectrum: EmpiricalSpectrum
    scale: float

    @property
    def N(self) -> int:
        """Number of input dimensions kept."""
        return int(self.eigenvalues.size)

    @property
    def beta(self) -> float:
        """Fitted spectrum exponent β̂."""
        return self.spectrum.beta

    def setup(self, **kwargs: Any) -> Setup:
        """The linear K = M = 1 `Setup` with these eigenvalues (one group per eigenvalue).

        ``kwargs`` set the other fields (eta, sigma_J, trainable, noise, ...).
        """
        fixed = {"N": self.N, "eigenvalues": tuple(self.eigenvalues), "spectrum_norm": "mean"}
        clash = sorted(set(kwargs) & (set(fixed) | {"L", "multiplicities"}))
        if clash:
            raise ValueError(f"kwargs: {clash} are set by the data and cannot be given")
        params: dict[str, Any] = {"K": 1, "M": 1, "activation": "linear"}
        params.update(kwargs)
        params.update(fixed)
        return Setup(**params)

    def __repr__(self) -> str:
        return (f"EigenData({self.name!r}, n_samples={self.inputs.shape[0]}, N={self.N}, "
                f"beta={self.beta:.3f} ± {self.spectrum.beta_stderr:.3f})")


def eigendata(
    X: ArrayLike,
    *,
    name: str = "data",
    fit_range: tuple[int, int] | None = None,
    rtol: float = 1e-10,
) -> EigenData:
    """Centre ``X`` (samples × features), rotate it into its eigenbasis and fit β.

    Modes with eigenvalue ≤ ``rtol`` λ_1 are dropped. ``fit_range`` (1-based ranks) goes to
    `scalex.model.spectrum.from_data`, which also sets the default window.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 4:
        raise ValueError(f"X: must be a (samples, features) array with >= 2 rows and >= 4 "
                         f"columns, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X: must be finite")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    emp = from_data(X, fit_range=fit_range)
    Xc = X - X.mean(axis=0)
    lam, vec = np.linalg.eigh(Xc.T @ Xc / X.shape[0])
    order = np.argsort(lam)[::-1]
    lam, vec = lam[order], vec[:, order]
    keep = lam > rtol * lam[0]
    lam, vec = lam[keep], vec[:, keep]
    scale = float(lam.mean())
    inputs = (Xc @ vec) / np.sqrt(scale)
    return EigenData(name, np.ascontiguousarray(inputs), lam / scale, emp, scale)


def real_data(
    name: str = "digits", *, fit_range: tuple[int, int] | None = None, **kwargs: Any
) -> EigenData:
    """`eigendata` of a bundled data set (`load` options in ``kwargs``)."""
    return eigendata(load(name, **kwargs), name=name, fit_range=fit_range)
