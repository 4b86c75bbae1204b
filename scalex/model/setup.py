"""`Setup`: a frozen, validated description of a teacher–student experiment (docs/theory.md §1)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scalex.model.spectrum import NORMS, Spectrum, normalize, power_law

__all__ = ["ACTIVATIONS", "OUTPUT_SCALES", "Setup"]

ACTIVATIONS = ("erf", "linear", "relu")
OUTPUT_SCALES = ("sqrt", "mean", "none")
ATTR_KEY = "scalex_setup"
#: Fields recorded (to_dict, attrs, hash) only when ``train_v`` is set.
_OPTIONAL_KEYS = ("train_v", "eta_v")


class FieldTypeError(TypeError, ValueError):
    """A Setup field of the wrong type; the message starts with the field's name.

    Both a TypeError (the usual Python signal) and a ValueError, so code that reports invalid
    Setups by catching ValueError also reports wrong types.
    """


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_))


def _integer(x: Any, name: str, lo: int, hi: int | None = None, hi_name: str = "") -> int:
    """An integer field in [lo, hi]: a wrong type raises `FieldTypeError`, naming ``name``."""
    rng = f">= {lo}" if hi is None else f"in [{lo}, {hi_name}{hi}]"
    if not _is_number(x):
        raise FieldTypeError(f"{name}: must be an integer {rng}, got {x!r} "
                             f"({type(x).__name__})")
    if not (np.isfinite(x) and float(x).is_integer()) or x < lo or (hi is not None and x > hi):
        raise ValueError(f"{name}: must be an integer {rng}, got {x!r}")
    return int(x)


def _float_tuple(x: Any, name: str) -> tuple[float, ...] | None:
    if x is None:
        return None
    if isinstance(x, (str, bytes, Mapping)) or not (
            _is_number(x) or isinstance(x, (Sequence, np.ndarray))):
        raise FieldTypeError(f"{name}: must be a sequence of numbers, got {x!r} "
                             f"({type(x).__name__})")
    try:
        arr = np.atleast_1d(np.asarray(x, dtype=float))
    except (TypeError, ValueError):
        raise FieldTypeError(f"{name}: must be a sequence of numbers, got {x!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be a 1-D sequence of numbers")
    if any(isinstance(a, (bool, np.bool_)) for a in np.atleast_1d(np.asarray(x, dtype=object))):
        raise FieldTypeError(f"{name}: must be a sequence of numbers, got {x!r}")
    return tuple(float(a) for a in arr)


@dataclass(frozen=True)
class Setup:
    """A teacher–student experiment: networks, input spectrum and SGD parameters.

    Student σ(ξ) = Σ_i v_i g(J_i·ξ/√N), teacher ζ(ξ) = Σ_n w_n g(B_n·ξ/√N), inputs ξ ~ N(0, Σ),
    online SGD J_i ← J_i + (η/√N) v_i g'(x_i) (ζ − σ) ξ, time α = steps/N (docs/theory.md §1).

    Parameters
    ----------
    K, M : number of student and teacher hidden units (≥ 1).
    N : input dimension (≥ 1); the L groups must divide it unless ``multiplicities`` are given.
    L : number of distinct eigenvalues (≥ 1). Set from ``eigenvalues`` when those are given.
    beta : power-law exponent β > 0 of λ_τ = λ_+ τ^{-(1+β)}.
    eta : learning rate η > 0.
    sigma_J : std of the student initial weights, J_i ~ N(0, σ_J² I) (≥ 0; > 0 for "relu").
        [switch, 0.01]
    activation : "erf" for g(x) = erf(x/√2), "linear" for g(x) = x, or "relu" for
        g(x) = max(0, x) (docs/theory.md §3.8: its Gaussian integrals need every field variance
        Q_ii > 0, so σ_J = 0 is refused; a zero ReLU student also never moves under SGD, as
        g'(0) = 0). [switch, "erf"]
    spectrum_norm : "mean" (tr Σ/N = 1), "top" (λ_1 = 1) or, for explicit eigenvalues only,
        "none". [switch, "mean"]
    output_scale : second-layer weights when ``v``/``w`` are not given: "sqrt" (1/√K, 1/√M),
        "mean" (1/K, 1/M) or "none" (1). [switch, "sqrt"]
    v, w : explicit fixed second-layer weights of length K and M (override ``output_scale``).
    noise : std s ≥ 0 of the teacher output noise ζ + s·ε. [0]
    trainable : number N_l of trained input coordinates (those of the largest eigenvalues);
        ``None`` trains all N. Must end on a group boundary so each group is trained or frozen.
    eigenvalues, multiplicities : an explicit spectrum (decreasing eigenvalues, integer
        multiplicities summing to N; default equal N/L). Overrides ``L`` and ``beta``'s role.
    train_v : train the student's second layer too (docs/theory.md §3.10): every SGD step also
        does v_i ← v_i + (η_v/N) g(x_i)(ζ + s·ε − σ) with the step's pre-update fields and
        error, so dv_i/dα = η_v E[g(x_i)(ζ − σ)] as N → ∞. ``v``/``output_scale`` give the
        initial v, which is the trained weight itself (no scale multiplies it); the teacher's w
        stays fixed. [False]
    eta_v : learning rate η_v > 0 of the second layer; ``None`` uses ``eta``. Only with
        ``train_v=True``. [None]

    ``train_v`` and ``eta_v`` enter `to_dict`, the attributes and the hash only when
    ``train_v`` is set, so every Setup without them keeps its earlier record and hash.
    """

    K: int = 2
    M: int = 2
    N: int = 1024
    L: int = 1
    beta: float = 1.0
    eta: float = 0.1
    sigma_J: float = 0.01
    activation: str = "erf"
    spectrum_norm: str = "mean"
    output_scale: str = "sqrt"
    v: tuple[float, ...] | None = None
    w: tuple[float, ...] | None = None
    noise: float = 0.0
    trainable: int | None = None
    eigenvalues: tuple[float, ...] | None = None
    multiplicities: tuple[int, ...] | None = None
    train_v: bool = False
    eta_v: float | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, val: object.__setattr__(self, k, val)  # noqa: E731
        for name in ("K", "M", "N", "L"):
            set_(name, _integer(getattr(self, name), name, 1))
        for name, lo, strict in (("beta", 0.0, True), ("eta", 0.0, True),
                                 ("sigma_J", 0.0, False), ("noise", 0.0, False)):
            val = getattr(self, name)
            if not _is_number(val):
                raise FieldTypeError(f"{name}: must be a real number, got {val!r} "
                                     f"({type(val).__name__})")
            fval = float(val)
            if not np.isfinite(fval) or (fval <= lo if strict else fval < lo):
                rng = f"> {lo:g}" if strict else f">= {lo:g}"
                raise ValueError(f"{name}: must be finite and {rng}, got {val!r}")
            set_(name, fval)
        for name, allowed in (("activation", ACTIVATIONS), ("output_scale", OUTPUT_SCALES),
                              ("spectrum_norm", NORMS)):
            val = getattr(self, name)
            if not isinstance(val, str):
                raise FieldTypeError(f"{name}: must be one of {allowed}, got {val!r} "
                                     f"({type(val).__name__})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.activation == "relu" and not self.sigma_J > 0:
            raise ValueError(
                f"sigma_J: must be > 0 for activation='relu' (a zero student has field variance "
                f"Q_ii = 0, where the ReLU integrals are singular; docs/theory.md §3.8), "
                f"got {self.sigma_J!r}")
        if self.output_scale not in OUTPUT_SCALES:
            raise ValueError(
                f"output_scale: must be one of {OUTPUT_SCALES}, got {self.output_scale!r}"
            )
        if self.spectrum_norm not in NORMS:
            raise ValueError(f"spectrum_norm: must be one of {NORMS}, got {self.spectrum_norm!r}")
        for name, size in (("v", self.K), ("w", self.M)):
            vec = _float_tuple(getattr(self, name), name)
            if vec is not None:
                if len(vec) != size:
                    n = "K" if name == "v" else "M"
                    raise ValueError(f"{name}: must have length {n}={size}, got {len(vec)}")
                if not all(np.isfinite(vec)):
                    raise ValueError(f"{name}: must be finite")
            set_(name, vec)

        eig = _float_tuple(self.eigenvalues, "eigenvalues")
        set_("eigenvalues", eig)
        if eig is not None:
            set_("L", len(eig))
            mult = self.multiplicities
            if mult is None:
                if self.N % self.L:
                    raise ValueError(
                        f"multiplicities: not given, and L={self.L} (number of eigenvalues) "
                        f"does not divide N={self.N}"
                    )
                mult = (self.N // self.L,) * self.L
            if isinstance(mult, (str, bytes, Mapping)) or not isinstance(
                    mult, (Sequence, np.ndarray)) or not all(_is_number(m) for m in mult):
                raise FieldTypeError(
                    f"multiplicities: must be {self.L} integers >= 1 (one per eigenvalue), "
                    f"got {mult!r}")
            mult_arr = np.asarray(mult)
            if mult_arr.ndim != 1 or mult_arr.size != self.L or np.any(mult_arr < 1) or np.any(
                mult_arr != np.round(mult_arr)
            ):
                raise ValueError(
                    f"multiplicities: must be {self.L} integers >= 1 (one per eigenvalue), "
                    f"got {mult!r}"
                )
            if int(mult_arr.sum()) != self.N:
                raise ValueError(
                    f"multiplicities: must sum to N={self.N}, got {int(mult_arr.sum())}"
                )
            set_("multiplicities", tuple(int(m) for m in mult_arr))
            Spectrum(np.asarray(eig), mult_arr)  # validates positivity and ordering
        else:
            if self.multiplicities is not None:
                raise ValueError("multiplicities: only allowed together with eigenvalues, "
                                 f"got {self.multiplicities!r}")
            if self.N % self.L:
                raise ValueError(f"L: must divide N={self.N}, got L={self.L}")
            if self.spectrum_norm == "none":
                raise ValueError(
                    "spectrum_norm: 'none' is only allowed with explicit eigenvalues; "
                    "use 'mean' or 'top' for a power law"
                )

        # 0 and 1 too: sweep axes, catalogs and NetCDF attributes have no booleans.
        if not (isinstance(self.train_v, (bool, np.bool_)) or (
                _is_number(self.train_v) and self.train_v in (0, 1))):
            raise FieldTypeError(f"train_v: must be True or False (or 1 or 0), got "
                                 f"{self.train_v!r} ({type(self.train_v).__name__})")
        set_("train_v", bool(self.train_v))
        if self.eta_v is not None:
            if not _is_number(self.eta_v):
                raise FieldTypeError(f"eta_v: must be a real number or None, got "
                                     f"{self.eta_v!r} ({type(self.eta_v).__name__})")
            if not (np.isfinite(self.eta_v) and self.eta_v > 0):
                raise ValueError(f"eta_v: must be finite and > 0, got {self.eta_v!r}")
            if not self.train_v:
                raise ValueError(f"eta_v: only allowed with train_v=True (the second layer is "
                                 f"fixed otherwise), got eta_v={self.eta_v!r}")
            set_("eta_v", float(self.eta_v))

        if self.trainable is not None:
            t = _integer(self.trainable, "trainable", 1, self.N, "N=")
            bounds = np.cumsum(self.spectrum.multiplicities)
            if t not in bounds:
                raise ValueError(
                    f"trainable: must end on an eigenvalue-group boundary (a cumulative "
                    f"multiplicity, e.g. {list(bounds[:4])}...), got {t}"
                )
            set_("trainable", None if t == self.N else t)

    # ------------------------------------------------------------------ derived quantities
    @cached_property
    def spectrum(self) -> Spectrum:
        """The input spectrum (eigenvalues in decreasing order, multiplicities)."""
        if self.eigenvalues is None:
            return power_law(self.L, self.beta, self.N, self.spectrum_norm)
        mult = np.asarray(self.multiplicities, dtype=np.int64)
        return Spectrum(normalize(self.eigenvalues, mult, self.spectrum_norm), mult)

    @property
    def second_layer(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The fixed second-layer weights (v, w)."""
        scale = {"sqrt": np.sqrt, "mean": lambda x: x, "none": lambda x: 1.0}[self.output_scale]
        v = np.asarray(self.v) if self.v is not None else np.full(self.K, 1.0 / scale(self.K))
        w = np.asarray(self.w) if self.w is not None else np.full(self.M, 1.0 / scale(self.M))
        return v.astype(float), w.astype(float)

    @property
    def learning_rate_v(self) -> float:
        """η_v of the second layer (``eta_v``, or ``eta`` when None; docs/theory.md §3.10)."""
        return self.eta if self.eta_v is None else float(self.eta_v)

    @property
    def n_trainable(self) -> int:
        """N_l, the number of trained input coordinates."""
        return self.N if self.trainable is None else int(self.trainable)

    @property
    def trained_groups(self) -> NDArray[np.bool_]:
        """(L,) mask of the eigenvalue groups whose coordinates SGD updates."""
        ends = np.cumsum(self.spectrum.multiplicities)
        return ends <= self.n_trainable

    @property
    def eta_max_linear(self) -> float:
        """Linear-SGD stability bound η Σ_i v_i² < 2 / Σ_{τ trained} f_τ λ_τ (docs/theory.md (4.6)).

        The linear student is a perceptron for J_eff = Σ_i v_i J_i with rate η_eff = η Σ_i v_i².
        """
        sp = self.spectrum
        mask = self.trained_groups
        v, _ = self.second_layer
        return 2.0 / (float(v @ v) * float(np.dot(sp.fractions[mask], sp.eigenvalues[mask])))

    # ------------------------------------------------------------------ conversions
    def replace(self, **changes: Any) -> Setup:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown Setup field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field (JSON-serialisable).

        ``train_v`` and ``eta_v`` are left out while ``train_v`` is False (`_OPTIONAL_KEYS`), so
        the records and hashes of Setups with a fixed second layer are those of before.
        """
        out = {}
        for f in fields(self):
            if f.name in _OPTIONAL_KEYS and not self.train_v:
                continue
            val = getattr(self, f.name)
            out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Setup:
        """Inverse of `to_dict`; unknown keys raise a `ValueError` naming them."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown Setup field(s): {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**dict(d))

    def to_attrs(self) -> dict[str, Any]:
        """NetCDF-safe attributes: each field readable on its own, plus the exact JSON record."""
        attrs: dict[str, Any] = {}
        for key, val in self.to_dict().items():
            if val is None:
                continue
            attrs[key] = np.asarray(val, dtype=float) if isinstance(val, list) else val
        if self.train_v:  # NetCDF has no boolean attributes
            attrs["train_v"] = 1
            attrs["eta_v"] = self.learning_rate_v
        attrs["trainable"] = self.n_trainable
        attrs["L"] = self.L
        attrs[ATTR_KEY] = json.dumps(self.to_dict(), sort_keys=True)
        attrs["setup_hash"] = self.hash
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Setup:
        """Rebuild a Setup from dataset attributes written by `to_attrs`."""
        if ATTR_KEY not in attrs:
            raise ValueError(
                f"attrs: no {ATTR_KEY!r} attribute; this is not a dataset written by scalex"
            )
        return cls.from_dict(json.loads(attrs[ATTR_KEY]))

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit parameter hash (SHA-256 of the canonical JSON of all fields)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        defaults = Setup.__dataclass_fields__
        parts = [f"K={self.K}", f"M={self.M}", f"N={self.N}", f"L={self.L}"]
        for f in fields(self):
            if f.name in ("K", "M", "N", "L"):
                continue
            val = getattr(self, f.name)
            if f.name == "beta" and self.eigenvalues is not None:
                continue  # an explicit spectrum has no β
            always = f.name in ("beta", "eta", "sigma_J", "activation")
            if always or val != defaults[f.name].default:
                if isinstance(val, tuple) and len(val) > 4:
                    parts.append(f"{f.name}=({val[0]:.3g}, ..., {val[-1]:.3g}) [{len(val)}]")
                else:
                    parts.append(f"{f.name}={val!r}")
        return f"Setup({', '.join(parts)})"


def as_setup(obj: Setup | Mapping[str, Any] | Sequence[Any]) -> Setup:
    """Accept a Setup or a mapping of its fields."""
    if isinstance(obj, Setup):
        return obj
    if isinstance(obj, Mapping):
        return Setup.from_dict(obj)
    raise TypeError(f"expected a Setup or a mapping of its fields, got {type(obj).__name__}")
