"""Seeds as dask tasks: computing them on any scheduler, and their warnings (`simulate`).

Warnings
    Seeds run as dask tasks, possibly in worker threads, where warnings cannot be caught
    safely (`warnings.catch_warnings` swaps process-global state and races between threads).
    So a task never touches the warnings filters: a seed reports its own divergence as data,
    floating-point warnings are silenced with the thread-local `numpy.errstate`, and any other
    warning issued inside a task is collected per task (`run_captured`) and re-issued by
    `compute_tasks` in the calling thread, in task order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import dask

from scalex.common.capture import capture_warnings
from scalex.common.schedulers import ALIASES, normalise_scheduler

__all__ = [
    "IN_PROCESS",
    "WarningRecord",
    "canonical_scheduler",
    "compute_tasks",
    "run_captured",
    "runs_in_process",
]

#: canonical schedulers (`scalex.common.schedulers`) that run tasks in this process
IN_PROCESS = ("synchronous", "threads")

#: A warning as data: (category, message).
WarningRecord = tuple[type[Warning], str]


class _Captured:
    """A task's result and the warnings issued inside it, as (category, message, file, line)."""

    def __init__(self, result: Any, caught: list[tuple[type[Warning], str, str, int]]) -> None:
        self.result, self.caught = result, caught


def run_captured(func: Callable[..., Any], *args: Any, **kwargs: Any) -> _Captured:
    """Run a task body, collecting the warnings it issues in its own thread (no filter change).

    The warnings are collected by `scalex.common.capture.capture_warnings`. A body returning
    ``(result, [(category, message), ...])`` reports warnings as data instead. `compute_tasks`
    re-issues both in the calling thread.
    """
    with capture_warnings() as caught:
        result = func(*args, **kwargs)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], list):
        result, notes = result
        caught = [(cat, msg, __file__, 0) for cat, msg in notes] + caught
    return _Captured(result, caught)


def _reissue(results: list[Any]) -> list[Any]:
    """Unwrap `_Captured` results, re-issuing their warnings here (the calling thread)."""
    out = []
    for res in results:
        if isinstance(res, _Captured):
            for category, message, filename, lineno in res.caught:
                if lineno:
                    warnings.warn_explicit(message, category, filename, lineno)
                else:
                    warnings.warn(message, category, stacklevel=4)
            res = res.result
        out.append(res)
    return out


def compute_tasks(tasks: Sequence[Any], scheduler: Any = None) -> list[Any]:
    """Compute dask ``tasks`` (e.g. `dask.delayed` objects) and return their results in order.

    ``scheduler``: None (dask's default: an active `distributed.Client`, else the configured
    scheduler, else local threads); a scheduler name ("sync"/"synchronous"/"single-threaded",
    "threads", "processes", or "distributed" for the current Client); a `distributed.Client`;
    or a scheduler address such as "tcp://127.0.0.1:8786", to which a Client is connected for
    this call and closed afterwards.

    Tasks built on `run_captured` return their result with the warnings issued inside them;
    these are re-issued here, in the calling thread, in task order (module docstring).
    """
    tasks = list(tasks)
    if not tasks:
        return []
    if scheduler is None:
        return _reissue(list(dask.compute(*tasks)))
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            return _reissue(list(dask.compute(*tasks, scheduler=client)))
    if isinstance(scheduler, str):
        if canonical_scheduler(scheduler) is None:
            raise ValueError(
                f"scheduler: must be one of {list(ALIASES)}, a distributed.Client or a "
                f"scheduler address 'tcp://host:port', got {scheduler!r}"
            )
        return _reissue(list(dask.compute(*tasks, scheduler=canonical_scheduler(scheduler))))
    if hasattr(scheduler, "get") and hasattr(scheduler, "submit"):  # distributed.Client
        return _reissue(list(dask.compute(*tasks, scheduler=scheduler)))
    raise ValueError(
        f"scheduler: must be a scheduler name, a distributed.Client or an address, "
        f"got {type(scheduler).__name__}"
    )


def canonical_scheduler(scheduler: Any) -> str | None:
    """The canonical name of a scheduler name (`scalex.common.schedulers`), else None."""
    try:
        return normalise_scheduler(scheduler)
    except ValueError:
        return None


def runs_in_process(scheduler: Any) -> bool:
    """Whether tasks run in threads of this process, so a shared progress bar can follow them."""
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None) or "threads"
    return canonical_scheduler(scheduler) in IN_PROCESS
