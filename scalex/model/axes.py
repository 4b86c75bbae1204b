"""Sweep axes: which `Setup` fields one axis of a parameter sweep sets (docs/theory.md §7).

An axis is a key of a sweep's ``over`` mapping and its values. A key names one scalar Setup
field (``"L"``) or several tied together (``"K=M"``: one axis named "K" that sets both), so
that the grid stays a plain product of orthogonal dimensions. A key may also name one of the
`DERIVED` axes, which change the Setup in a way no single field says: ``"split"`` splits every
power-law eigenvalue group into λ_τ(1 ± ε) (`scalex.model.spectrum.near_degenerate`), so the
Setup gets those 2L explicit eigenvalues. `member` builds a grid point's Setup either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from scalex.model.setup import Setup
from scalex.model.spectrum import near_degenerate

# Fields holding tuples describe a whole spectrum or second layer, not one axis value.
_UNSWEEPABLE = ("v", "w", "eigenvalues", "multiplicities")


@dataclass(frozen=True)
class Axis:
    dim: str
    fields: tuple[str, ...]
    values: tuple[Any, ...]


_SETUP_FIELDS = {f.name for f in fields(Setup)}


def _split(setup: Setup, value: Any) -> Setup:
    """``setup`` with every power-law group split into λ_τ(1 ± value) (docs/theory.md §1)."""
    if setup.eigenvalues is not None:
        raise ValueError("split: needs a power-law spectrum (L, beta), not explicit eigenvalues")
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
        raise ValueError(f"split: must be a number in [0, 1), got {value!r}")
    sp = near_degenerate(setup.L, setup.beta, float(value), setup.N, setup.spectrum_norm)
    return setup.replace(eigenvalues=tuple(float(x) for x in sp.eigenvalues),
                         multiplicities=tuple(int(m) for m in sp.multiplicities))


#: sweep axes that are not Setup fields: name -> function(Setup, value) -> Setup
DERIVED: dict[str, Callable[[Setup, Any], Setup]] = {"split": _split}


def member(base: Setup, changes: Mapping[str, Any]) -> Setup:
    """The Setup of one grid point: ``base`` with the field ``changes``, then the `DERIVED`
    axes among them applied in their order."""
    setup = base.replace(**{k: v for k, v in changes.items() if k not in DERIVED})
    for name, value in changes.items():
        if name in DERIVED:
            setup = DERIVED[name](setup, value)
    return setup


def parse_over(over: Mapping[str, Sequence[Any]] | None) -> list[Axis]:
    """Check ``over``; a key "K=M" sets several fields to the same value on one axis "K"."""
    axes: list[Axis] = []
    seen: set[str] = set()
    for key, values in (over or {}).items():
        names = tuple(part.strip() for part in str(key).split("="))
        for name in names:
            if name not in _SETUP_FIELDS and name not in DERIVED:
                raise ValueError(
                    f"over: {name!r} is not a Setup field; allowed: {sorted(_SETUP_FIELDS)} "
                    f"and {sorted(DERIVED)}"
                )
            if name in DERIVED and len(names) > 1:
                raise ValueError(f"over: {name!r} cannot be linked to other fields")
            if name in _UNSWEEPABLE:
                raise ValueError(
                    f"over: {name!r} holds a sequence and cannot be a sweep axis; "
                    f"sweep one scalar field at a time"
                )
            if name in seen:
                raise ValueError(f"over: field {name!r} appears on more than one axis")
            seen.add(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"over[{key!r}]: must be a list of values, got {values!r}")
        vals = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
        if not vals:
            raise ValueError(f"over[{key!r}]: must hold at least one value")
        for v in vals:
            if v is None or not isinstance(v, (int, float, str)):
                raise ValueError(
                    f"over[{key!r}]: values must be numbers or strings, got {v!r}"
                )
        if len(set(vals)) != len(vals):
            raise ValueError(f"over[{key!r}]: values must be distinct, got {list(vals)}")
        axes.append(Axis(names[0], names, vals))
    return axes
