"""The members of a sweep: the product grid ``over`` × ``seeds`` (`grid_members`).

The axes of ``over`` are checked and read by `scalex.model.axes.parse_over` (which fields may be
swept, and ``"K=M"`` for two fields on one axis); the seeds by `scalex.common.seeds.check_seeds`.
The members are the product of the axes with the seeds in C order, the seed fastest. Each
`Member` carries its grid index (one position per axis, then the seed's), its `Setup` and its
seed. A grid point whose Setup is invalid raises ValueError naming that point, before anything
runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from scalex.common.seeds import check_seeds
from scalex.model.axes import member, parse_over
from scalex.model.setup import Setup


# ---------------------------------------------------------------------------------- grid
class Member(NamedTuple):
    """One sweep member: its position in the grid, its Setup and its seed."""

    index: tuple[int, ...]
    setup: Setup
    seed: int


def grid_members(
    base_setup: Setup, over: Mapping[str, Sequence[Any]] | None, seeds: int | Iterable[int]
) -> list[Member]:
    """Every member of the product grid ``over`` × ``seeds`` in C order (the last axis fastest).

    Raises ValueError naming the grid point whose Setup is invalid.
    """
    axes = parse_over(over)
    seed_list = check_seeds(seeds)
    setups: dict[tuple[int, ...], Setup] = {}
    for idx in itertools.product(*(range(len(ax.values)) for ax in axes)):
        changes = {
            name: ax.values[i] for ax, i in zip(axes, idx, strict=True) for name in ax.fields
        }
        try:
            setups[idx] = member(base_setup, changes)
        except ValueError as err:
            point = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            raise ValueError(f"over: grid point ({point}) is not a valid Setup: {err}") from None
    return [
        Member((*idx, j), setup, seed)
        for idx, setup in setups.items()
        for j, seed in enumerate(seed_list)
    ]


