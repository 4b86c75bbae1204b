"""Direct SGD simulation: kernel against a plain numpy reference, RNG layout, statistics
against exact theory, divergence handling and the dask paths."""

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from scipy.linalg import expm
from scipy.optimize import fsolve
from scipy.special import erf

from scalex.engines.sgd_kernel import (
    CACHE_LINE,
    TRANSPOSED_MIN_K,
    aligned_empty,
    scratch,
    sgd_steps,
    sgd_steps_transposed,
)
from scalex.engines.sgd_run import SGDRun
from scalex.engines.simulate import compute_tasks, record_steps, simulate, test_stream
from scalex.model.integrals import (
    field_covariance,
    generalization_error,
    stein_coefficients,
    update_second_moment,
)
from scalex.model.setup import Setup
from scalex.model.weights import rng_streams, sample_weights
from scalex.schema import DivergenceWarning, StabilityWarning, initial_overlaps, validate


# --------------------------------------------------------------------------- reference
def reference_sgd(J, B, z, lam, v, w, eta, noise, n_trainable, activation, record_at=()):
    """Plain per-step numpy SGD of docs/theory.md §1; z rows are (z_1..z_N, ε). Returns J and the
    weights after each step listed in ``record_at``."""
    J = np.array(J, dtype=float)
    N = J.shape[1]
    if activation == "erf":
        g = lambda u: erf(u / np.sqrt(2))  # noqa: E731
        dg = lambda u: np.sqrt(2 / np.pi) * np.exp(-u**2 / 2)  # noqa: E731
    else:
        g = lambda u: u  # noqa: E731
        dg = np.ones_like
    snaps = {0: J.copy()} if 0 in record_at else {}
    for step, row in enumerate(z, start=1):
        xi = np.sqrt(lam) * row[:N]
        x = J @ xi / np.sqrt(N)
        y = B @ xi / np.sqrt(N)
        delta = w @ g(y) + noise * row[N] - v @ g(x)
        J[:, :n_trainable] += eta / np.sqrt(N) * np.outer(v * dg(x) * delta, xi[:n_trainable])
        if step in record_at:
            snaps[step] = J.copy()
    return J, snaps


def overlaps_by_slicing(X, Y, mult, N):
    """X P_τ Yᵀ / N group by group with explicit slices (independent of group_overlaps)."""
    ends = np.cumsum(mult)
    return np.stack([X[:, e - m:e] @ Y[:, e - m:e].T / N for e, m in zip(ends, mult)])


GENERAL = dict(K=3, M=2, N=48, eigenvalues=[4.0, 2.0, 1.0, 0.5], trainable=24, noise=0.3,
               v=(0.5, -1.2, 0.8), w=(1.1, -0.4), eta=0.3, sigma_J=0.5)


# --------------------------------------------------------------------------- kernel
@pytest.mark.parametrize("activation, K", [("erf", 3), ("linear", 3), ("erf", 32)])
def test_simulation_matches_numpy_reference(activation, K):
    """Whole pipeline (documented data stream, blocks, records) against the reference.

    K = 32 goes through the transposed-weights kernel."""
    v = GENERAL["v"] if K == 3 else tuple(np.linspace(-1, 1.5, K) / np.sqrt(K))
    s = Setup(activation=activation, **{**GENERAL, "K": K, "v": v})
    seed, steps = 7, np.array([0, 50, 123, 300])
    ds = simulate(s, steps / s.N, seeds=[seed], block=37, scheduler="sync")
    J0, B = sample_weights(s, seed)
    z = rng_streams(seed)[2].standard_normal((steps[-1], s.N + 1))
    lam = s.spectrum.diagonal()
    v, w = s.second_layer
    _, snaps = reference_sgd(J0, B, z, lam, v, w, s.eta, s.noise, s.n_trainable, activation,
                             record_at=set(steps))
    mult = s.spectrum.multiplicities
    for a, n in enumerate(steps):
        q = overlaps_by_slicing(snaps[n], snaps[n], mult, s.N)
        r = overlaps_by_slicing(snaps[n], B, mult, s.N)
        np.testing.assert_allclose(ds.q.values[0, a], q, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ds.r.values[0, a], r, rtol=0, atol=1e-12)
    assert np.all(ds.step.values == steps)
    # Things did move, but not in the frozen groups 3 and 4 (trainable = 24 of 48).
    q = ds.q.values[0]
    assert np.abs(q[-1, :2] - q[0, :2]).max() > 1e-2
    np.testing.assert_array_equal(q[-1, 2:], q[0, 2:])


@given(
    K=st.integers(1, 4), M=st.integers(1, 3), L=st.sampled_from([1, 2, 4]),
    per_group=st.integers(1, 6), trained_groups=st.integers(1, 4),
    activation=st.sampled_from(["erf", "linear"]), noise=st.sampled_from([0.0, 0.7]),
    seed=st.integers(0, 2**16),
)
def test_kernel_matches_reference_property(K, M, L, per_group, trained_groups, activation,
                                           noise, seed):
    N = L * per_group
    rng = np.random.default_rng(seed)
    lam = np.repeat(np.sort(rng.uniform(0.2, 3.0, L))[::-1], per_group)
    J = rng.normal(size=(K, N))
    B = rng.normal(size=(M, N))
    v, w = rng.normal(size=K), rng.normal(size=M)
    z = rng.standard_normal((200, N + 1))
    n_trainable = min(trained_groups, L) * per_group
    eta = 0.2 / (1 + np.abs(v).sum())
    J_ref, _ = reference_sgd(J, B, z, lam, v, w, eta, noise, n_trainable, activation)
    Jk = J.copy()
    JT = np.ascontiguousarray(J.T)
    y = np.stack([B @ (np.sqrt(lam) * row[:N]) / np.sqrt(N) for row in z])
    args = (z, y, np.sqrt(lam), v, w, eta, noise, n_trainable, activation == "erf")
    assert sgd_steps(Jk, *args, *scratch(K, N, np.float64)) == len(z)
    assert sgd_steps_transposed(JT, *args, *scratch(K, N, np.float64), np.empty((4, K))) == len(z)
    np.testing.assert_allclose(Jk, J_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(Jk[:, n_trainable:], J[:, n_trainable:])  # untouched
    # Two code paths (row and transposed layouts): they sum in the same order and agree bit for
    # bit here, but another CPU/compiler may contract differently (2.8e-17 was seen), so allow
    # a few ulp rather than demand identical bits.
    np.testing.assert_allclose(JT.T, Jk, rtol=4 * np.finfo(float).eps, atol=1e-300)


def test_float32_kernel_close_to_float64_reference():
    s = Setup(activation="erf", **GENERAL)
    J0, B = sample_weights(s, 1)
    lam = s.spectrum.diagonal()
    v, w = s.second_layer
    z = np.random.default_rng(3).standard_normal((300, s.N + 1)).astype(np.float32)
    J_ref, _ = reference_sgd(J0, B, z.astype(float), lam, v, w, s.eta, s.noise,
                             s.n_trainable, "erf")
    J32 = J0.astype(np.float32)
    y = z[:, :s.N] @ (B * np.sqrt(lam) / np.sqrt(s.N)).T.astype(np.float32)
    sgd_steps(J32, z, y, np.sqrt(lam).astype(np.float32), v, w, s.eta, s.noise,
              s.n_trainable, True, *scratch(s.K, s.N, np.float32))
    JT32 = np.ascontiguousarray(J0.T.astype(np.float32))
    sgd_steps_transposed(JT32, z, y, np.sqrt(lam).astype(np.float32), v, w, s.eta, s.noise,
                         s.n_trainable, True, *scratch(s.K, s.N, np.float32),
                         np.empty((4, s.K)))
    # Two code paths (layouts): a few float32 ulp, not identical bits (see above).
    np.testing.assert_allclose(JT32.T, J32, rtol=4 * np.finfo(np.float32).eps, atol=1e-30)
    np.testing.assert_allclose(J32, J_ref, atol=2e-4 * np.abs(J_ref).max())
    ds = simulate(s, [0, 1], seeds=[0], dtype="float32", scheduler="sync")
    assert ds.attrs["dtype"] == "float32" and np.all(np.isfinite(ds.eg))


@pytest.mark.parametrize("N, n_trainable", [(40, 40), (43, 29), (13, 13)])
def test_kernels_stop_at_a_non_finite_field_with_the_weights_before_that_step(N, n_trainable):
    """Both layouts (the transposed one applies each update one step late, fused with the next
    fields) stop at the same step t, with the weights after exactly t steps."""
    K, M = 20, 2
    rng = np.random.default_rng(5)
    lam = np.linspace(2.0, 0.5, N)
    J, B = rng.normal(size=(K, N)), rng.normal(size=(M, N))
    v, w = np.full(K, 0.5), np.ones(M)
    z = rng.standard_normal((400, N + 1))
    y = np.stack([B @ (np.sqrt(lam) * row[:N]) / np.sqrt(N) for row in z])
    eta = 30.0  # linear, η far above the stability bound: |J| grows geometrically to overflow
    args = (z, y, np.sqrt(lam), v, w, eta, 0.0, n_trainable, False)
    with np.errstate(all="ignore"):
        Jk = J.copy()
        t = sgd_steps(Jk, *args, *scratch(K, N, np.float64))
        JT = np.ascontiguousarray(J.T)
        t_T = sgd_steps_transposed(JT, *args, *scratch(K, N, np.float64), np.empty((4, K)))
    assert 0 < t == t_T < len(z)
    np.testing.assert_allclose(JT.T, Jk, rtol=4 * np.finfo(float).eps, atol=1e-300)
    np.testing.assert_array_equal(JT.T[:, n_trainable:], J[:, n_trainable:])
    # The weights after exactly t steps: same code path, so the same bits ...
    JT_t = np.ascontiguousarray(J.T)
    with np.errstate(all="ignore"):
        assert sgd_steps_transposed(JT_t, z[:t], y[:t], *args[2:], *scratch(K, N, np.float64),
                                    np.empty((4, K))) == t
    np.testing.assert_array_equal(JT, JT_t)
    # ... which the numpy reference reproduces to rounding, a few steps before any overflow.
    early = t - 5
    J_early = J.copy()
    assert sgd_steps(J_early, z[:early], y[:early], *args[2:],
                     *scratch(K, N, np.float64)) == early
    J_ref, _ = reference_sgd(J, B, z[:early], lam, v, w, eta, 0.0, n_trainable, "linear")
    assert np.all(np.isfinite(J_ref)) and np.abs(J_ref).max() > 1e100  # it did blow up
    np.testing.assert_allclose(J_early, J_ref, rtol=1e-9, atol=0)


@pytest.mark.parametrize("shape", [1, 7, (3, 5), (512, 40), (40, 513)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_aligned_empty_starts_on_a_cache_line(shape, dtype):
    a = aligned_empty(shape, dtype)
    assert a.ctypes.data % CACHE_LINE == 0
    assert a.shape == ((shape,) if isinstance(shape, int) else shape) and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    a[...] = 1.5  # the whole array is usable
    assert float(a.sum()) == 1.5 * a.size


@pytest.mark.parametrize("K", [3, TRANSPOSED_MIN_K + 4])
def test_sgd_run_holds_aligned_weights_in_the_kernel_layout(K):
    s = Setup(K=K, M=2, N=24, L=2)
    J, B = sample_weights(s, 0)
    run = SGDRun(s, J, B)
    assert run.transposed == (K >= TRANSPOSED_MIN_K)
    assert run.W.ctypes.data % CACHE_LINE == 0
    np.testing.assert_array_equal(run.student(), J)
    assert run.max_self_overlap() == pytest.approx(np.max(np.sum(J**2, axis=1)) / s.N)


def test_many_units_run_twice_give_the_same_bits():
    """The transposed kernel (K ≥ TRANSPOSED_MIN_K), blocks ending mid-record, float64/32."""
    s = Setup(K=TRANSPOSED_MIN_K + 3, M=3, N=44, L=4, eta=0.2, noise=0.1, trainable=22)
    for dtype in ("float64", "float32"):
        a, b = (simulate(s, [0, 0.5, 2, 3], seeds=[4], block=9, dtype=dtype, scheduler="sync")
                for _ in range(2))
        for name in ("eg", "q", "r"):
            np.testing.assert_array_equal(a[name].values, b[name].values)
        assert np.all(np.isfinite(a.q.values)) and not np.allclose(a.q[0, -1], a.q[0, 0])


# --------------------------------------------------------------------------- records and RNG
def test_initial_record_equals_initial_overlaps():
    s = Setup(K=2, M=3, N=60, L=3, sigma_J=0.3)
    ds = simulate(s, [0, 0.5], seeds=[4, 9], scheduler="sync")
    for seed in (4, 9):
        init = initial_overlaps(s, seed)
        got = ds.sel(seed=seed).isel(alpha=0)
        # Two code paths (the simulator's record and initial_overlaps) of the same draw: a
        # few ulp, not identical bits, which another CPU need not reproduce.
        for name in ("q", "r", "eg"):
            np.testing.assert_allclose(got[name].values, init[name].values[0],
                                       rtol=4 * np.finfo(float).eps, atol=1e-300)
        np.testing.assert_allclose(got.t.values, init.t.values, rtol=4 * np.finfo(float).eps,
                                   atol=1e-300)
    validate(ds)


def test_seed_reproducibility_and_block_independence():
    s = Setup(K=2, M=2, N=64, L=4, eta=0.5, noise=0.1)
    alpha = [0, 1, 3.5, 6]
    a = simulate(s, alpha, seeds=[1, 2], block=50, scheduler="sync")
    b = simulate(s, alpha, seeds=[1, 2], block=50, scheduler="sync")
    for name in ("eg", "q", "r", "t"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.allclose(a.q.values[0, 1:], a.q.values[1, 1:])
    # The inputs of a seed do not depend on how steps are blocked (module docstring).
    c = simulate(s, alpha, seeds=[1, 2], block=7, scheduler="sync")
    np.testing.assert_allclose(c.q.values, a.q.values, rtol=0, atol=1e-11)
    assert c.attrs["block_size"] == 7


def test_test_stream_is_fourth_child_independent_of_rng_streams():
    base = [g.standard_normal(5) for g in rng_streams(11)]
    four = [np.random.default_rng(c).standard_normal(5)
            for c in np.random.SeedSequence(11).spawn(4)]
    for x, y in zip(base, four[:3]):
        np.testing.assert_array_equal(x, y)
    extra = test_stream(11).standard_normal(5)
    np.testing.assert_array_equal(extra, four[3])
    assert not any(np.allclose(extra, x) for x in base)


def test_eg_test_agrees_with_exact_eg():
    s = Setup(K=2, M=3, N=100, L=2, eta=0.5, sigma_J=0.5)
    ds = simulate(s, [0, 2, 10], seeds=[0, 1], eg_test=20_000, scheduler="sync")
    z = np.abs(ds.eg_test - ds.eg) / ds.eg_test_stderr
    assert float(z.max()) < 4, z.values
    assert np.all(ds.eg_test_stderr > 0) and np.all(ds.eg_test_stderr < 0.05 * ds.eg_test)
    # It is a genuine estimate, not the exact value.
    assert np.all(ds.eg_test != ds.eg)


def test_record_weighted_overlaps_only():
    s = Setup(K=2, M=2, N=40, L=4, eta=0.3)
    full = simulate(s, [0, 1, 2], seeds=[3], scheduler="sync")
    small = simulate(s, [0, 1, 2], seeds=[3], record=("Q", "R"), scheduler="sync")
    assert "q" not in small and "r" not in small
    lam = full.eigenvalue
    xr.testing.assert_allclose(small.Q, (full.q * lam).sum("group"), rtol=1e-13)
    xr.testing.assert_allclose(small.R, (full.r * lam).sum("group"), rtol=1e-13)
    np.testing.assert_allclose(small.eg, full.eg, rtol=1e-13)
    bare = simulate(s, [0, 1, 2], seeds=[3], record=(), scheduler="sync")
    assert not {"q", "r", "Q", "R"} & set(bare.data_vars)
    np.testing.assert_allclose(bare.eg, full.eg, rtol=1e-13)


# --------------------------------------------------------------------------- physics
def test_linear_follows_exact_solution():
    """Seed-averaged ε_g of linear K=M=1 SGD against e(α) = expm(Aα) e(0) (docs/theory.md §4)."""
    s = Setup(K=1, M=1, N=400, L=4, eta=1.0, sigma_J=0.5, activation="linear")
    lam, frac = s.spectrum.eigenvalues, s.spectrum.fractions
    A = -2 * s.eta * np.diag(lam) + s.eta**2 * np.outer(lam * frac, lam)
    alpha = np.array([0, 0.25, 0.5, 1, 2, 4, 8])
    n_seeds = 32
    ds = simulate(s, alpha, seeds=range(n_seeds))
    e0 = ds.q.values[:, 0, :, 0, 0] - 2 * ds.r.values[:, 0, :, 0, 0] + ds.t.values[:, :, 0, 0]
    theory = np.array([[0.5 * lam @ expm(A * a) @ e for a in alpha] for e in e0])
    np.testing.assert_allclose(ds.eg.values[:, 0], theory[:, 0], rtol=1e-12)
    diff = (ds.eg.values - theory)[:, 1:]
    stderr = diff.std(axis=0, ddof=1) / np.sqrt(n_seeds)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * stderr), diff.mean(axis=0) / stderr
    # The error really decays by two orders of magnitude over this window.
    assert ds.eg.values[:, -1].mean() < 0.02 * ds.eg.values[:, 0].mean()


def _symmetric_plateau_eg(T, v, w, eta):
    """ε_g at the student-symmetric fixed point of the L = 1 ODEs (Saad & Solla 1995).

    With Q = [[a, b], [b, a]] and R_in = c_n for both students, solve dQ_11 = dQ_12 =
    dR_11 = dR_12 = 0 from docs/theory.md §3 (L = 1, λ = 1) written out with scalex.integrals.
    """
    def rhs(p):
        Q = np.array([[p[0], p[1]], [p[1], p[0]]])
        R = np.array([[p[2], p[3]], [p[2], p[3]]])
        C = field_covariance(Q, R, T)
        s_ia = stein_coefficients(C, v, w)
        Gs = np.concatenate([Q, R], 1) @ s_ia.T
        dQ = eta * (Gs + Gs.T) + eta**2 * update_second_moment(C, v, w)
        dR = eta * (np.concatenate([R.T, T], 1) @ s_ia.T).T
        return [dQ[0, 0], dQ[0, 1], dR[0, 0], dR[0, 1]]

    p, _, ier, msg = fsolve(rhs, [0.5] * 4, full_output=True)
    assert ier == 1, msg
    Q = np.array([[p[0], p[1]], [p[1], p[0]]])
    R = np.array([[p[2], p[3]], [p[2], p[3]]])
    return float(generalization_error(Q, R, T, v, w))


def test_erf_sits_on_symmetric_plateau():
    s = Setup(K=2, M=2, N=500, L=1, eta=0.5, sigma_J=0.01)
    v, w = s.second_layer
    alpha = np.arange(30.0, 160.0, 10.0)
    ds = simulate(s, np.concatenate([[0], alpha]), seeds=range(3))
    for seed in ds.seed.values:
        plateau = _symmetric_plateau_eg(ds.t.sel(seed=seed).values[0], v, w, s.eta)
        eg = ds.eg.sel(seed=seed).values[1:]
        np.testing.assert_allclose(eg, plateau, rtol=0.04)
        assert ds.eg.sel(seed=seed).values[0] > 10 * plateau  # it did fall onto it


# --------------------------------------------------------------------------- divergence
def test_divergence_is_recorded_not_raised():
    s = Setup(K=1, M=1, N=64, L=2, activation="linear", sigma_J=0.1)
    s = s.replace(eta=5 * s.eta_max_linear)
    with pytest.warns(DivergenceWarning, match="diverged"), \
            pytest.warns(StabilityWarning, match="5 x the linear stability bound"):
        ds = simulate(s, [0, 0.5, 5, 50, 100], seeds=[0, 1], scheduler="threads")
    assert list(ds.status.values) == ["diverged", "diverged"]
    assert np.all(np.isfinite(ds.eg.isel(alpha=0)))
    assert np.all(np.isnan(ds.eg.isel(alpha=slice(3, None))))
    assert np.all(np.isnan(ds.q.isel(alpha=-1)))


def test_only_diverging_seeds_stop():
    # Near the edge of stability (N = 2, η = 1.8) whether a linear run blows up depends on its
    # draw: a sweep of seeds mixes diverged and healthy runs.
    s = Setup(K=1, M=1, N=2, L=1, activation="linear", sigma_J=0.1, eta=1.8)
    alpha = [0, 10, 100, 1000]
    with pytest.warns(DivergenceWarning):
        ds = simulate(s, alpha, seeds=range(8))
    diverged = ds.status.values == "diverged"
    assert 0 < diverged.sum() < len(diverged)
    for seed, bad in zip(ds.seed.values, diverged):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            alone = simulate(s, alpha, seeds=[seed], scheduler="sync")
        np.testing.assert_array_equal(ds.eg.sel(seed=seed).values, alone.eg.values[0])
        assert np.isnan(ds.eg.sel(seed=seed).values[-1]) == bad
        assert np.all(np.isfinite(ds.eg.sel(seed=seed).values[:1]))


def test_divergence_threshold_is_applied():
    # σ_J = 2: q starts near 4 and decays towards t ≈ 1; checked after the first block of 4
    # steps, a threshold of 1 flags every seed, a threshold of 10 none.
    s = Setup(K=1, M=1, N=64, L=1, activation="linear", sigma_J=2.0, eta=0.2)
    with pytest.warns(DivergenceWarning):
        low = simulate(s, [0, 1], seeds=[0, 1], divergence_threshold=1.0, block=4,
                      scheduler="sync")
    assert set(low.status.values) == {"diverged"}
    high = simulate(s, [0, 1], seeds=[0, 1], divergence_threshold=10.0, block=4,
                    scheduler="sync")
    assert set(high.status.values) == {"ok"}


def test_no_warning_without_divergence():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        ds = simulate(Setup(K=1, M=1, N=32), [0, 1], seeds=[0], scheduler="sync")
    assert ds.status.values.tolist() == ["ok"]


# --------------------------------------------------------------------------- dask
def _values(ds):
    return {name: ds[name].values for name in ("eg", "q", "r", "t", "eg_test")}


def test_schedulers_agree():
    from distributed import Client, LocalCluster

    s = Setup(K=2, M=2, N=32, L=2, eta=0.4)
    kw = dict(seeds=[0, 5, 6], eg_test=500)
    ref = _values(simulate(s, [0, 1, 2], scheduler="sync", **kw))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        runs = {"threads": simulate(s, [0, 1, 2], scheduler="threads", **kw),
                "processes": simulate(s, [0, 1, 2], scheduler="processes", **kw),
                "address": simulate(s, [0, 1, 2], scheduler=cluster.scheduler_address, **kw)}
        with Client(cluster) as client:
            runs["client"] = simulate(s, [0, 1, 2], scheduler=client, **kw)
            runs["default"] = simulate(s, [0, 1, 2], **kw)  # the active Client
    for name, ds in runs.items():
        for var, val in _values(ds).items():
            np.testing.assert_array_equal(val, ref[var], err_msg=f"{name}: {var}")


def test_compute_tasks_rejects_unknown_scheduler():
    with pytest.raises(ValueError, match="scheduler"):
        compute_tasks([1], "gpu")
    assert compute_tasks([], None) == []


# --------------------------------------------------------------------------- validation
def test_record_steps_rounding():
    np.testing.assert_array_equal(record_steps([0, 0.5, 1.26], 100), [0, 50, 126])
    # Times finer than the resolution 1/N are merged into one record.
    np.testing.assert_array_equal(record_steps([0, 0.001, 0.002, 0.02], 100), [0, 2])
    with pytest.raises(ValueError, match="alpha"):
        record_steps([1, 0.5], 100)
    with pytest.raises(ValueError, match="alpha"):
        record_steps([-1, 1], 100)


@given(st.lists(st.floats(0, 50), min_size=1, max_size=20, unique=True),
       st.integers(1, 2048))
def test_record_steps_property(alpha, N):
    alpha = np.sort(alpha)
    steps = record_steps(alpha, N)
    assert np.all(np.diff(steps) > 0)
    # Every requested time has a record within half a step, and every record was requested.
    nearest = np.abs(steps[None, :] / N - alpha[:, None]).min(axis=1)
    assert np.all(nearest <= 0.5 / N + 1e-12)
    np.testing.assert_array_equal(steps, np.unique(np.rint(alpha * N)))


@pytest.mark.parametrize("kwargs, name", [
    (dict(seeds="3"), "seeds"), (dict(seeds=[1, 1]), "seeds"), (dict(seeds=[-1]), "seeds"),
    (dict(record=("x",)), "record"), (dict(eg_test=-1), "eg_test"), (dict(block=0), "block"),
    (dict(dtype="float16"), "dtype"), (dict(scheduler="gpu"), "scheduler"),
    (dict(divergence_threshold=0), "divergence_threshold"),
])
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate(Setup(K=1, M=1, N=8), [0, 1], **kwargs)


def test_package_attribute_stays_callable():
    import scalex
    import scalex.engines.simulate  # a submodule import leaves scalex.simulate the function

    ds = scalex.simulate(dict(K=1, M=1, N=8), [0, 1], seeds=[0], scheduler="sync")
    assert ds.status.values.tolist() == ["ok"]


def test_progress_bar_and_attrs(capsys):
    s = Setup(K=1, M=1, N=16)
    ds = simulate(s, [0, 2], seeds=[0], progress=True, scheduler="threads")
    assert "step" in capsys.readouterr().err
    assert ds.attrs["method"] == "sgd" and ds.attrs["wall_time_s"] > 0
    assert ds.wall_time.dims == ("seed",) and ds.seed.attrs["long_name"]
    simulate(s, [0, 2], seeds=[0], progress=False)
    assert capsys.readouterr().err == ""


def test_netcdf_round_trip(tmp_path):
    from scalex.schema import open_dataset, to_netcdf

    ds = simulate(Setup(K=2, M=1, N=16, L=2), [0, 1], seeds=[0, 3], eg_test=100,
                  scheduler="sync")
    back = open_dataset(to_netcdf(ds, tmp_path / "sim.nc")).load()
    xr.testing.assert_identical(back.drop_vars("status"), ds.drop_vars("status"))
    assert back.status.values.tolist() == ["ok", "ok"]
