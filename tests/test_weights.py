"""Initial weights and per-group overlaps."""

import numpy as np
import pytest

from scalex.model.setup import Setup
from scalex.model.weights import sample_weights
from scalex.schema import initial_overlaps


def test_groups_sum_to_full_overlaps():
    s = Setup(K=3, M=2, N=60, eigenvalues=[3, 2, 1], multiplicities=[10, 20, 30], sigma_J=0.5)
    J, B = sample_weights(s, 5)
    ds = initial_overlaps(s, 5)
    np.testing.assert_allclose(ds.q.sum("group")[0], J @ J.T / s.N, rtol=1e-12)
    np.testing.assert_allclose(ds.r.sum("group")[0], J @ B.T / s.N, rtol=1e-12)
    np.testing.assert_allclose(ds.t.sum("group"), B @ B.T / s.N, rtol=1e-12)
    # Group 2 is coordinates 10..29.
    np.testing.assert_allclose(ds.q.sel(group=2)[0], J[:, 10:30] @ J[:, 10:30].T / s.N)


def test_t_has_expected_size_for_large_N():
    s = Setup(K=1, M=3, N=40_000, L=4)
    t = initial_overlaps(s, 0).t.values
    # E[t^τ_nm] = δ_nm N_τ/N, std ~ 1/√N
    expected = np.einsum("g,nm->gnm", s.spectrum.fractions, np.eye(3))
    np.testing.assert_allclose(t, expected, atol=5 / np.sqrt(s.N))


def test_q_scales_with_sigma_J():
    s = Setup(K=2, M=1, N=20_000, sigma_J=0.1)
    q = initial_overlaps(s, 1).q.values[0, 0]
    np.testing.assert_allclose(np.diag(q), 0.01, rtol=0.05)


def test_same_seed_same_draw_and_stream_independence():
    s = Setup(K=2, M=2, N=32)
    a, b = sample_weights(s, 3), sample_weights(s, 3)
    np.testing.assert_array_equal(a.J, b.J)
    assert not np.array_equal(a.J, sample_weights(s, 4).J)
    # The teacher does not depend on K or sigma_J; the student does not depend on M.
    np.testing.assert_array_equal(sample_weights(s.replace(K=5, sigma_J=1.0), 3).B, a.B)
    np.testing.assert_array_equal(sample_weights(s.replace(M=4), 3).J, a.J)


def test_invalid_seed():
    with pytest.raises(ValueError, match="seed"):
        sample_weights(Setup(N=8), -1)


def test_eg_at_init_matches_direct_formula():
    s = Setup(K=2, M=2, N=4000, L=4, sigma_J=0.0)
    ds = initial_overlaps(s, 0)
    # With J = 0 the student output vanishes: ε_g = ½ E[ζ²] = ½ wᵀ I2(T) w.
    from scalex.model.integrals import I2

    T = np.einsum("g,gnm->nm", s.spectrum.eigenvalues, ds.t.values)
    w = s.second_layer[1]
    assert float(ds.eg[0]) == pytest.approx(0.5 * w @ I2(T) @ w)
