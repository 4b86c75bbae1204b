"""Process-wide control of BLAS threads for scalex's compute kernels.

`single_threaded_blas` limits BLAS to one thread (threadpoolctl) while an ODE solve
(`scalex.engines.ode`) or a simulated seed (`scalex.engines.simulate`) runs, since seeds and
sweep members, not matrix products, are the unit of parallelism. The limit is counted across
threads and lifted only when the last concurrent run finishes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["single_threaded_blas"]

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread while any ODE solve or simulated seed of this process runs.

    Seeds and sweep members are the unit of parallelism, and the products inside one of them
    are small: a multi-threaded BLAS only oversubscribes the cores (on a loaded 2-core machine a
    batched 155 × 155 inverse ran 10× slower multi-threaded). Reference-counted across all
    callers, so concurrent runs in threads restore the previous setting only when the last one
    finishes. A no-op without threadpoolctl.
    """
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            try:
                from threadpoolctl import threadpool_limits

                _blas_limiter = threadpool_limits(limits=1, user_api="blas")
            except ImportError:  # pragma: no cover - a declared dependency
                _blas_limiter = None
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
