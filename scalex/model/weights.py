"""Weight initialisation and per-group order parameters (docs/theory.md §1–2).

Random-number layout (shared by `scalex.schema.initial_overlaps` and `scalex.engines.simulate`,
so that one seed gives one start): ``numpy.random.SeedSequence(seed).spawn(3)`` yields three
independent streams,

1. teacher: ``B = rng_teacher.standard_normal((M, N))``;
2. student: ``J = sigma_J * rng_student.standard_normal((K, N))``;
3. data: the SGD inputs and label noise, drawn by the simulator.

Independent streams make the teacher of a seed the same whatever K or σ_J is, and the student
the same whatever M is. Coordinates are in the eigenbasis of Σ, grouped by decreasing eigenvalue.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from scalex.model.setup import Setup

__all__ = ["Weights", "group_overlaps", "rng_streams", "sample_weights"]


class Weights(NamedTuple):
    """Student first-layer weights J (K, N) and teacher weights B (M, N)."""

    J: NDArray[np.float64]
    B: NDArray[np.float64]


def rng_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """The (teacher, student, data) generators of a seed (see module docstring)."""
    if isinstance(seed, bool) or not float(seed).is_integer() or seed < 0:
        raise ValueError(f"seed: must be an integer >= 0, got {seed!r}")
    teacher, student, data = np.random.SeedSequence(int(seed)).spawn(3)
    return (np.random.default_rng(teacher), np.random.default_rng(student),
            np.random.default_rng(data))


def sample_weights(setup: Setup, seed: int) -> Weights:
    """Draw B ~ N(0, I_N) and J ~ N(0, σ_J² I_N) exactly as the simulator does."""
    rng_t, rng_s, _ = rng_streams(seed)
    B = rng_t.standard_normal((setup.M, setup.N))
    J = setup.sigma_J * rng_s.standard_normal((setup.K, setup.N))
    return Weights(J, B)


def group_overlaps(
    X: NDArray[np.float64], Y: NDArray[np.float64], starts: NDArray[np.int64], N: int
) -> NDArray[np.float64]:
    """Per-group overlaps X_a P_τ Y_b / N, shape (L, A, B), for X (A, N), Y (B, N)."""
    prod = X[:, None, :] * Y[None, :, :]
    return np.moveaxis(np.add.reduceat(prod, starts, axis=-1), -1, 0) / N


