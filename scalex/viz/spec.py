"""What one plot of a catalog entry is: a plot name, a file stem and its options.

Kept apart from the plot code, so that reading a catalog (`scalex.experiments.catalog`) does
not load the plotting libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PlotSpec"]


@dataclass(frozen=True)
class PlotSpec:
    """One plot of an entry: ``scalex.viz.plots.<name>(data, **options)`` saved as ``<file>.*``."""

    name: str
    file: str
    options: Mapping[str, Any] = field(default_factory=dict)
