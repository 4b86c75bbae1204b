"""Warnings issued inside one thread, collected as data: one mechanism for tasks and members.

`warnings.catch_warnings` changes process-wide state (the filters and `showwarning`) and is
not thread-safe: two worker threads using it at once lose warnings or leak an "ignore"
filter. `capture_warnings` never touches ``warnings.filters``; while any capture is active,
``warnings.showwarning`` is a dispatcher that hands a warning issued in a capturing thread to
that thread's list and shows every other thread's warning as before. The dispatcher is
installed and restored under a lock, reference-counted, and left alone if someone replaced it
meanwhile. Callers re-issue the collected warnings in the thread that waits for the results.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["WarningRecord", "capture_warnings"]

#: a collected warning: (category, message, filename, lineno)
WarningRecord = tuple[type[Warning], str, str, int]

_lock = threading.Lock()
_users = 0
_saved: Any = None
_at_import = warnings.showwarning
_local = threading.local()


def _dispatch(message: Any, category: type[Warning], filename: str, lineno: int,
              file: Any = None, line: str | None = None) -> None:
    sink = getattr(_local, "sink", None)
    if sink is not None:
        sink.append((category, str(message), filename, lineno))
    else:  # another thread's warning: shown as it would have been
        (_saved or _at_import)(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def capture_warnings() -> Iterator[list[WarningRecord]]:
    """Collect the warnings this thread shows (after the caller's filters) into a list."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = warnings.showwarning
            warnings.showwarning = _dispatch
        _users += 1
    previous = getattr(_local, "sink", None)
    _local.sink = caught = []
    try:
        yield caught
    finally:
        _local.sink = previous
        with _lock:
            _users -= 1
            if _users == 0:
                if warnings.showwarning is _dispatch:
                    warnings.showwarning = _saved
                _saved = None
