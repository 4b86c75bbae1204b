"""Seeds: one validator for every entry point (docs/theory.md §7 gives the random streams)."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

__all__ = ["check_seeds"]


def check_seeds(seeds: int | Iterable[int], name: str = "seeds") -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct integers >= 0; an integer n means 0..n-1.

    The error names ``name`` and the offending value.
    """
    if isinstance(seeds, (str, bytes)):
        raise ValueError(f"{name}: must be an integer n (seeds 0..n-1) or a list of integers "
                         f">= 0, got {seeds!r}")
    if isinstance(seeds, Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"{name}: an integer n means seeds 0..n-1 and must be >= 1, "
                             f"got {seeds}")
        return tuple(range(int(seeds)))
    try:
        values = list(seeds)
    except TypeError:
        raise ValueError(f"{name}: must be an integer n or a list of integers >= 0, "
                         f"got {seeds!r}") from None
    if not values:
        raise ValueError(f"{name}: must hold at least one seed")
    out = []
    for s in values:
        ok = not isinstance(s, (bool, str, bytes))
        try:
            ok = ok and float(s).is_integer() and s >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name}: every seed must be an integer >= 0, got {s!r}")
        out.append(int(s))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: must be distinct, got {out}")
    return tuple(out)
