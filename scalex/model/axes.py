"""Sweep axes: which `Setup` fields one axis of a parameter sweep sets (docs/theory.md §7).

An axis is a key of a sweep's ``over`` mapping and its values. A key names one scalar Setup
field (``"L"``) or several tied together (``"K=M"``: one axis named "K" that sets both), so
that the grid stays a plain product of orthogonal dimensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from scalex.model.setup import Setup

# Fields holding tuples describe a whole spectrum or second layer, not one axis value.
_UNSWEEPABLE = ("v", "w", "eigenvalues", "multiplicities")


@dataclass(frozen=True)
class Axis:
    dim: str
    fields: tuple[str, ...]
    values: tuple[Any, ...]


_SETUP_FIELDS = {f.name for f in fields(Setup)}


def parse_over(over: Mapping[str, Sequence[Any]] | None) -> list[Axis]:
    """Check ``over``; a key "K=M" sets several fields to the same value on one axis "K"."""
    axes: list[Axis] = []
    seen: set[str] = set()
    for key, values in (over or {}).items():
        names = tuple(part.strip() for part in str(key).split("="))
        for name in names:
            if name not in _SETUP_FIELDS:
                raise ValueError(
                    f"over: {name!r} is not a Setup field; allowed: {sorted(_SETUP_FIELDS)}"
                )
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
