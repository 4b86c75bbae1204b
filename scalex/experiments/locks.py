"""The run lock of a sweep store (NetCDF directory or zarr), shared by both store formats."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["run_lock"]


@contextlib.contextmanager
def run_lock(lock: Path, clean: Callable[[], int]) -> Iterator[int]:
    """Hold a shared ``flock`` on ``lock`` for a sweep; yield what ``clean()`` returned.

    Every live sweep holds a shared `fcntl.flock` on its store's lock file; a sweep that can
    take the lock exclusively knows that no other sweep (nor any worker of one) is writing into
    the store, runs ``clean`` (removes the temporaries of killed writers), and then shares the
    lock like the others, so that several sweeps can still run into one store at once. On a
    cluster the workers of a sweep write its members while the sweep holds the lock; a
    network file system whose ``flock`` is local to each machine (older NFS) cannot tell
    other machines' sweeps, so do not resume a store there while another sweep runs into it.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): leave temporaries, they are harmless
        yield 0
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        removed = 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another sweep is live: its temporaries may be in flight
            pass
        else:
            removed = clean()
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield removed
    finally:
        os.close(fd)  # releases the lock
