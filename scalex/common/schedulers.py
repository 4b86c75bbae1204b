"""The dask scheduler vocabulary of scalex, defined once.

Every function that takes ``scheduler=`` (`scalex.sweep`, `scalex.simulate`, the CLI) maps
the name through `normalise_scheduler`, so the same aliases work everywhere:

=================  ======================================================
canonical          aliases
=================  ======================================================
``synchronous``    ``sync``, ``single-threaded`` (one task after another)
``threads``        ``threading``
``processes``      ``multiprocessing``
``distributed``    ``dask.distributed`` (a `distributed.Client`)
=================  ======================================================
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ALIASES", "CANONICAL", "normalise_scheduler"]

#: The canonical local and distributed scheduler names.
CANONICAL: tuple[str, ...] = ("synchronous", "threads", "processes", "distributed")

#: alias -> canonical name (the canonical names map to themselves).
ALIASES: dict[str, str] = {
    **{name: name for name in CANONICAL},
    "sync": "synchronous",
    "single-threaded": "synchronous",
    "threading": "threads",
    "multiprocessing": "processes",
    "dask.distributed": "distributed",
}


def normalise_scheduler(
    name: str, *, extra: Iterable[str] = (), allowed: Iterable[str] | None = None
) -> str:
    """The canonical name of the scheduler ``name`` (an alias from `ALIASES`).

    ``extra`` adds names a caller accepts besides the vocabulary (e.g. ``"auto"`` for
    `scalex.sweep`); ``allowed`` restricts the canonical names (e.g. no ``"distributed"``).
    Raises ValueError naming the parameter and every accepted name.
    """
    extra = tuple(extra)
    canonical = tuple(allowed) if allowed is not None else CANONICAL
    if isinstance(name, str):
        key = name.strip().lower()
        if key in extra:
            return key
        if ALIASES.get(key) in canonical:
            return ALIASES[key]
    names = [*extra, *(a for a, c in ALIASES.items() if c in canonical)]
    raise ValueError(f"scheduler: must be one of {names}, got {name!r}")
