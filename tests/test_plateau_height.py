"""The plateau height of a draw with its own teacher (scalex.analysis.plateau_height).

Independent routes: the ODE of the draw itself, measured by `plateau` (the estimator used on
data), and, for an isotropic teacher, the symmetric fixed point of docs/theory.md eq. (5.2)
(a three-unknown root, `scalex.escape`).
"""

from __future__ import annotations

import numpy as np
import pytest

import scalex
from scalex.analysis.measures import plateau
from scalex.analysis.plateau_height import draw_plateau_height, student_symmetrized
from scalex.schema import initial_overlaps


def fig1(L: int) -> scalex.Setup:
    return scalex.Setup(K=2, M=2, L=L, N=1024, eta=0.1, beta=1.0, sigma_J=0.01)


@pytest.mark.parametrize("L", [1, 2, 4])
def test_draw_height_matches_the_measured_plateau(L):
    setup = fig1(L)
    lam = setup.spectrum.eigenvalues
    alpha = np.geomspace(1e-2 / (setup.eta * lam.max()), 1e4, 400)
    ds = scalex.solve_ode(setup, alpha, seed=0, rtol=1e-8, atol=1e-12, progress=False)
    measured = float(plateau(ds["eg"])["plateau_height"])
    predicted = draw_plateau_height(setup, seed=0)
    assert predicted == pytest.approx(measured, rel=5e-3)
    # The N → ∞ (isotropic-teacher) height misses the same measurement by several per cent:
    # the finite-N teacher, not the η² term, is what moves the plateau.
    isotropic = scalex.escape(setup, seed=0).plateau_height
    assert abs(isotropic / measured - 1) > 0.02


def test_isotropic_teacher_reproduces_the_symmetric_fixed_point():
    setup = fig1(1)
    init = initial_overlaps(setup, 0)
    f = setup.spectrum.fractions
    init["t"].values[:] = f[:, None, None] * np.eye(setup.M)[None]
    height = draw_plateau_height(setup, init=init)
    assert height == pytest.approx(scalex.escape(setup, seed=0).plateau_height, rel=1e-4)


def test_student_symmetrized_is_a_projection_onto_equal_units():
    init = initial_overlaps(fig1(4), 3)
    sym = student_symmetrized(init)
    q, r = sym["q"].values, sym["r"].values
    np.testing.assert_allclose(q[..., 0, 0], q[..., 1, 1], rtol=0, atol=0)
    np.testing.assert_allclose(r[..., 0, :], r[..., 1, :], rtol=0, atol=0)
    np.testing.assert_array_equal(sym["t"].values, init["t"].values)
    # idempotent, and it keeps the student-averaged overlaps
    again = student_symmetrized(sym)
    np.testing.assert_allclose(again["q"].values, q, rtol=1e-15, atol=0)
    np.testing.assert_allclose(r.mean(axis=-2), init["r"].values.mean(axis=-2), rtol=1e-13)


def test_unequal_second_layer_is_refused():
    setup = scalex.Setup(K=2, M=2, L=1, N=64, v=[1.0, 0.5])
    with pytest.raises(ValueError, match="equal second-layer"):
        draw_plateau_height(setup)
