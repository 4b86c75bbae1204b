"""Helpers shared by every layer: time grids, seeds, atomic writes, progress reporting."""
