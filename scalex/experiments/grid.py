"""Parameter sweeps: many ODE solves, simulations or linear-theory runs as one Dataset.

A sweep is the product grid of ``over`` (values of `Setup` fields) times ``seeds``. Each
*member* (one `Setup` × one seed) is one dask task that calls a *kind* — a function
``kind(setup, alpha, seed, **kind_kwargs) -> xarray.Dataset`` registered in `KINDS` — and the
members are combined into one Dataset with the sweep parameters as plain orthogonal dimensions
(no stacked MultiIndex), in the order given, then ``seed``, then the schema dimensions.

Ragged dimensions
    Members can differ in L, K and M. The ``group``, ``student_i/j`` and ``teacher_n/m``
    dimensions of the result are those of the largest member; a smaller member's values beyond
    its own size are NaN (``attrs["padding"]`` says so). Per-member coordinates become
    multi-dimensional over the sweep dimensions they depend on, e.g. ``eigenvalue(L, group)``.

Failures
    A member that raises is recorded with ``status = "failed: <Error>: <message>"`` and NaN
    data; a member that diverges keeps the kind's own ``status = "diverged"``. The rest of the
    grid completes either way, and a warning counts the failed and diverged members.

Result store (``store=path``)
    Every member is written, as soon as it finishes and by the worker that ran it, to its own
    NetCDF file ``<kind>-<setup hash>-s<seed>.nc`` (atomically: temporary file and rename). A
    member that raised leaves a JSON marker ``<kind>-<setup hash>-s<seed>.failed.json`` with
    the error instead. A rerun skips every member whose file is present and valid, and retries
    the failed ones: an exception may be transient (memory, a lost worker), whereas a
    divergence is a deterministic result and is kept. ``manifest.json`` records the sweep
    specification so that `open_store` can rebuild the combined Dataset lazily (dask-backed).

Schedulers
    ``client=None`` runs on the local dask scheduler. The ODE solver is Python-level scipy code
    that holds the GIL, so threads do not overlap (they are even slower than a serial loop),
    while starting worker processes costs a few seconds (benchmarks/sweep_results.md): "ode"
    therefore uses "auto", which times the first member and starts processes only when the
    rest of the grid is long enough to pay for them, and otherwise runs serially.
    "simulate" (numba kernels that release the GIL), "linear" and registered kinds use
    threads. Worker processes are spawned, so a script that runs a sweep needs the usual
    ``if __name__ == "__main__":`` guard. ``client`` may be a
    `distributed.Client` or a scheduler address; members are then submitted in a bounded
    window (about two per worker thread) with `distributed.as_completed`, so the scheduler
    never holds the whole grid. With a store, the workers write the member files
    themselves, so on a multi-machine cluster the store must be on a shared file system.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from scalex.common.seeds import check_seeds
from scalex.model.axes import parse_over
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
            setups[idx] = base_setup.replace(**changes)
        except ValueError as err:
            point = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            raise ValueError(f"over: grid point ({point}) is not a valid Setup: {err}") from None
    return [
        Member((*idx, j), setup, seed)
        for idx, setup in setups.items()
        for j, seed in enumerate(seed_list)
    ]


