"""Progress reporting for long runs, in terminals and notebooks alike.

One bar type for ODE solves (α decades), simulations (SGD steps) and sweeps (members):
`tqdm.auto` picks the notebook widget in Jupyter and the text bar elsewhere, bars go to
stderr (never stdout), and updates are thread-safe so that worker threads can share a bar.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["Progress", "interactive"]


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel, where a person watches the run."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A thread-safe progress bar; a no-op when disabled.

    ``enabled=None`` shows the bar only where someone watches (`interactive`), and only once
    the run has lasted ``delay`` seconds. Use as a context manager or call `close`.
    """

    def __init__(self, total: float, desc: str, unit: str, *, enabled: bool | None = None,
                 delay: float = 0.0, unit_scale: bool = False) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled is False or (enabled is None and not interactive()):
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale,
                         delay=0.0 if enabled else delay, leave=False, file=sys.stderr)

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def update(self, n: float = 1) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
