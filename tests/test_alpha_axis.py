"""One meaning of the α axis for the step-based engines: the requested times are the ``alpha``
coordinate (all of them, in order), the step run for each is n = rint(α·N)
(`scalex.common.alpha.alpha_to_steps`), reported beside it as ``alpha_step`` = n/N, and a step
asked for by several α is run once and reported under each."""

import numpy as np

import scalex
from scalex.common.alpha import alpha_to_steps
from scalex.engines.real_data import sgd_real_data
from scalex.engines.simulate import simulate
from scalex.model.datasets import eigendata
from scalex.model.setup import Setup
from scalex.schema import validate


def test_simulate_keeps_every_requested_alpha():
    """A 50-point log grid at N = 64 rounds to 43 distinct steps; it used to give 43 records."""
    s = Setup(K=2, M=2, N=64, L=2, eta=0.5)
    alpha = np.geomspace(0.02, 10, 50)
    steps = alpha_to_steps(alpha, s.N)
    assert np.unique(steps).size == 43
    ds = simulate(s, alpha, seeds=[3], scheduler="sync")
    validate(ds)
    np.testing.assert_array_equal(ds.alpha.values, alpha)
    np.testing.assert_array_equal(ds.step.values, steps)
    np.testing.assert_array_equal(ds.alpha_step.values, steps / s.N)
    assert ds.alpha_step.attrs["long_name"] and ds.alpha_step.attrs["units"] == "1"
    # Each distinct step once: the same numbers as a run on the distinct times only, copied
    # under every α that asked for that step (same code path, so the same bits).
    distinct, where = np.unique(steps, return_inverse=True)
    once = simulate(s, distinct / s.N, seeds=[3], scheduler="sync")
    for name in ("eg", "q", "r"):
        np.testing.assert_array_equal(ds[name].values, once[name].values[:, where])


def test_sgd_real_data_accepts_times_sharing_a_step():
    """It used to raise for α closer than 1/N; now the same meaning as `simulate`."""
    X = np.random.default_rng(3).standard_normal((50, 12)) * np.linspace(2, 0.3, 12)
    data = eigendata(X)
    setup = data.setup(eta=0.4, sigma_J=0.3)
    alpha = np.array([0.0, 0.01, 0.02, 0.5, 0.51, 2.0])
    ds = sgd_real_data(data.inputs, setup, alpha, seeds=[4, 5])
    validate(ds)
    steps = alpha_to_steps(alpha, setup.N)
    np.testing.assert_array_equal(ds.alpha.values, alpha)
    np.testing.assert_array_equal(ds.step.values, steps)
    np.testing.assert_array_equal(ds.alpha_step.values, steps / setup.N)
    distinct, where = np.unique(steps, return_inverse=True)
    once = sgd_real_data(data.inputs, setup, distinct / setup.N, seeds=[4, 5])
    np.testing.assert_array_equal(ds.eg.values, once.eg.values[:, where])


def test_simulate_sweep_over_N_has_the_requested_alpha_axis_without_holes():
    """With the real simulator: α = [0, .01, .02, 1] over N ∈ {16, 32} used to combine into
    α = [0, 0.03125, 1] with NaN holes."""
    alpha = [0.0, 0.01, 0.02, 1.0]
    ds = scalex.sweep("simulate", Setup(K=1, M=1, L=1, N=16), over={"N": [16, 32]},
                      seeds=[0], alpha=alpha)
    np.testing.assert_array_equal(ds.alpha.values, alpha)
    assert not np.isnan(ds.eg.values).any()
    assert ds.alpha_step.dims == ("N", "alpha")
    np.testing.assert_array_equal(ds.alpha_step.values, [[0, 0, 0, 1], [0, 0, 1 / 32, 1]])
    assert ds.alpha_step.attrs["units"] == "1"
