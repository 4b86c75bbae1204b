"""What every example, benchmark and figure script needs, written once.

* `script_parser`: the common command-line options (``--out``, ``--images``, ``--catalog``,
  ``--repeat``, ``--quick``), with the script's docstring as description;
* `write_figure`: a figure into its output folder (HTML and PNG) and, on request, a PNG copy
  for the documentation;
* `best_of`: the minimum wall time of repeated calls, as benchmarks report it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["best_of", "script_parser", "write_figure"]

T = TypeVar("T")


def script_parser(doc: str | None, *, out: Path | None = None, images: bool = False,
                  catalog: bool = False, repeat: int | None = None,
                  quick: bool = False) -> argparse.ArgumentParser:
    """An `argparse.ArgumentParser` with the options a script asks for.

    ``out`` is the default output folder (the option is added when given); ``images`` adds
    ``--images DIR`` (a PNG copy for docs/), ``catalog`` adds ``--catalog FILE``, ``repeat`` adds
    ``--repeat N`` with that default, ``quick`` adds ``--quick`` (smaller sizes).
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0]
                                     if doc else None)
    if out is not None:
        parser.add_argument("--out", type=Path, default=out,
                            help="output folder (default: %(default)s)")
    if images:
        parser.add_argument("--images", type=Path, default=None,
                            help="also write a PNG of the figure into this folder (docs/images)")
    if catalog:
        parser.add_argument("--catalog", default=None,
                            help="catalog file (default: the paper's)")
    if repeat is not None:
        parser.add_argument("--repeat", type=int, default=repeat,
                            help="timed repetitions; the minimum is reported (%(default)s)")
    if quick:
        parser.add_argument("--quick", action="store_true", help="smaller sizes")
    return parser


def write_figure(figure: Any, out: Path, name: str, images: Path | None = None) -> list[Path]:
    """Save ``figure`` as ``<out>/<name>-figure.{html,png}``, and ``<images>/<name>.png``."""
    from scalex.viz.export import save

    written = save(figure, Path(out) / f"{name}-figure")
    if images is not None:
        written += save(figure, Path(images) / name, formats=("png",))
    return written


def best_of(func: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The minimum wall time (s) of ``repeat`` calls of ``func``, and the last result."""
    if repeat < 1:
        raise ValueError(f"repeat: must be >= 1, got {repeat}")
    times = []
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return min(times), out
