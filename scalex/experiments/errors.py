"""Exceptions and warnings of sweeps.

* `SweepWarning`: some members failed or are missing (NaN data, the reason in ``status``), or
  local worker processes could not start and the rest of the grid ran serially;
* `KindUnavailableError`: the module or function of a kind cannot be imported (raised before
  any member runs);
* `StoreMismatchError`: the store directory holds a sweep with another α grid, kind or kind
  options.
* `SchedulerLostError`: a cluster's scheduler could not be reached for ``scheduler_timeout``
  seconds (the members already in the store are kept; rerun to resume).

Diverged members are reported with `scalex.schema.DivergenceWarning`.
"""

from __future__ import annotations


class SweepWarning(RuntimeWarning):
    """Some members of a sweep failed (their data are NaN, their status says why)."""


class KindUnavailableError(RuntimeError):
    """A sweep kind whose implementing module or function cannot be imported."""


class StoreMismatchError(ValueError):
    """A store directory that holds a sweep with another α grid, kind or kind options."""


class SchedulerLostError(RuntimeError):
    """The dask scheduler of a distributed sweep stopped answering for longer than
    ``scheduler_timeout``; the members finished so far are kept in the store."""
