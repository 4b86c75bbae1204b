"""Exact linear theory (docs/theory.md §4): secular eigensystem against dense linear algebra and
mpmath, the exact curve against matrix exponentials and the general per-group ODE, the
scaling laws against their exponents, stability, Gaussian and real-data SGD, data loaders."""


import mpmath
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from scalex.engines.linear import exact_errors, initial_condition, linear_theory, stability_bound
from scalex.engines.linear_asymptotics import asymptotic_curve, asymptotics, decay_rates
from scalex.engines.real_data import sgd_real_data
from scalex.model.datasets import eigendata, image_patches, load, real_data
from scalex.model.integrals import generalization_error
from scalex.model.setup import Setup
from scalex.model.weights import sample_weights
from scalex.numerics.secular import secular_eigensystem
from scalex.schema import initial_overlaps, validate, weighted_overlaps


# --------------------------------------------------------------------------- references
def brute_force(lam, frac, e0, eta, alpha, trained, noise):
    """e(α) = exp(Aα) e(0) of the per-group ODE (L1), augmented by a constant 1 for the
    forcing, with a dense matrix exponential per time."""
    L = lam.size
    A = np.zeros((L + 1, L + 1))
    for t in np.flatnonzero(trained):
        A[t, t] = -2 * eta * lam[t]
        A[t, :L] += eta**2 * lam[t] * frac[t] * lam
        A[t, L] = eta**2 * lam[t] * frac[t] * noise**2
    x0 = np.append(e0, 1.0)
    return np.array([expm(A * a) @ x0 for a in alpha])[:, :L]


def errors_from_weights(setup, J, B):
    """e_τ = D P_τ D / N with D = Σ v_i J_i − Σ w_n B_n, by explicit slicing."""
    v, w = setup.second_layer
    D = v @ J - w @ B
    ends = np.cumsum(setup.spectrum.multiplicities)
    return np.array([D[e - m:e] @ D[e - m:e] for e, m in
                     zip(ends, setup.spectrum.multiplicities)]) / setup.N


def fit_slope(x, y):
    return np.polyfit(np.log(x), np.log(y), 1)[0]


# --------------------------------------------------------------------------- secular equation
@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 14), spread=st.floats(0.1, 4.0),
       zscale=st.floats(0.0, 5.0))
def test_secular_eigensystem_matches_eigh(seed, n, spread, zscale):
    rng = np.random.default_rng(seed)
    lam = np.sort(rng.lognormal(0, spread, n))[::-1]
    if np.any(np.diff(lam) >= 0):
        return
    z = rng.normal(size=n) * np.exp(zscale * rng.normal(size=n))
    rho = float(rng.lognormal(0, 1.5))
    nu, zhat, origin, offset = secular_eigensystem(lam, z, rho)
    S = np.diag(lam) - rho * np.outer(z, z)
    ref = np.linalg.eigvalsh(S)[::-1]
    scale = np.abs(ref).max()
    np.testing.assert_allclose(nu, ref, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(nu, lam[origin] - offset, rtol=1e-15, atol=0)
    # interlacing: ν_k in (λ_{k+1}, λ_k]
    assert np.all(nu <= lam) and np.all(nu[:-1] >= lam[1:])
    X = zhat[:, None] / ((lam[:, None] - lam[origin][None, :]) + offset[None, :])
    X /= np.linalg.norm(X, axis=0)
    np.testing.assert_allclose(X.T @ X, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(X @ np.diag(nu) @ X.T, S, atol=1e-12 * scale)


def test_secular_roots_have_relative_accuracy_near_poles():
    """Roots within 1e-20 of a pole: the offsets must keep full relative precision (mpmath)."""
    lam = np.arange(1, 13, dtype=float) ** -3.0
    z = lam * np.sqrt(1 / 12) * np.logspace(0, -8, 12)  # tiny weights for the small λ
    rho = 0.3
    _, _, origin, offset = secular_eigensystem(lam, z, rho)
    zm = [mpmath.mpf(x) ** 2 for x in z]
    lm = [mpmath.mpf(x) for x in lam]
    secular = lambda x: 1 - rho * mpmath.fsum(zz / (ll - x) for zz, ll in zip(zm, lm))  # noqa: E731
    with mpmath.workdps(60):
        for k in range(lam.size):
            off = mpmath.mpf(offset[k])
            # the secular function changes sign across off·(1 ± 1e-12) around the pole
            pole = lm[origin[k]]
            f_lo, f_hi = secular(pole - off * (1 - 1e-12)), secular(pole - off * (1 + 1e-12))
            assert f_lo * f_hi < 0, k
    # the smallest roots sit closer to their poles than a plain ν could resolve
    assert np.min(np.abs(offset) / lam[origin]) < 1e-17


# --------------------------------------------------------------------------- exact solution
@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), L=st.integers(1, 9), frac_eta=st.floats(0.02, 0.97),
       noise=st.sampled_from([0.0, 0.4]), ties=st.booleans())
def test_exact_errors_match_expm(seed, L, frac_eta, noise, ties):
    rng = np.random.default_rng(seed)
    lam = np.sort(rng.lognormal(0, 1.5, L))[::-1]
    if ties and L > 2:
        lam[1] = lam[0]
        lam[-1] = lam[-2]
    mult = rng.integers(1, 5, L)
    frac = mult / mult.sum()
    trained = np.arange(L) < rng.integers(1, L + 1)
    eta = frac_eta * 2 / np.dot(lam[trained], frac[trained])
    e0 = rng.uniform(0.1, 2.0, L) * frac
    alpha = np.sort(rng.uniform(0, 4 / (eta * lam[trained][-1]), 5))
    got = exact_errors(lam, frac, e0, eta, alpha, trained=trained, noise=noise)
    ref = brute_force(lam, frac, e0, eta, alpha, trained, noise)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=0)


def test_exact_errors_blocking_and_saturation():
    """Column blocks do not change the result; late times reach the closed-form fixed point."""
    L = 40
    lam = np.arange(1, L + 1, dtype=float) ** -1.5 * 10
    frac = np.full(L, 1 / L)
    trained = np.arange(L) < 25
    e0 = np.full(L, 1.01 / L)
    alpha = np.array([0.0, 1.0, 30.0, 1e3, 1e6])
    a = exact_errors(lam, frac, e0, 0.1, alpha, trained=trained, noise=0.2, block=7)
    b = exact_errors(lam, frac, e0, 0.1, alpha, trained=trained, noise=0.2)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(a[0], e0, rtol=1e-12)
    ref = brute_force(lam, frac, e0, 0.1, alpha[:4], trained, 0.2)
    np.testing.assert_allclose(a[:4], ref, rtol=1e-8)
    setup = Setup(K=1, M=1, N=L, eigenvalues=lam, spectrum_norm="none", eta=0.1,
                  sigma_J=0.1, noise=0.2, trainable=25, activation="linear")
    sat = asymptotics(setup).saturation
    assert 0.5 * lam @ b[-1] == pytest.approx(sat, rel=1e-10)


def test_matches_general_ode_k2_m2():
    """Full q^τ, r^τ of (L4) against the general per-group ODE of docs/theory.md §3 (scalex.ode)."""
    from scalex.engines.ode_system import derivatives
    setup = Setup(K=2, M=2, N=36, eigenvalues=[3.0, 1.5, 1.0, 0.4, 0.2, 0.1], eta=0.4,
                  v=(0.8, -0.5), w=(1.0, 0.6), noise=0.3, trainable=24, sigma_J=0.5,
                  activation="linear")
    alpha = np.linspace(0, 15, 7)
    ds = linear_theory(setup, alpha, seed=5)
    L, K, M = setup.L, 2, 2
    sp = setup.spectrum
    v, w = setup.second_layer
    t = ds.t.values

    def rhs(_, y):
        q = y[: L * K * K].reshape(L, K, K)
        r = y[L * K * K:].reshape(L, K, M)
        dq, dr = derivatives(q, r, t, sp.eigenvalues, sp.fractions, v, w, setup.eta,
                                 "linear", setup.noise, setup.trained_groups)
        return np.concatenate([dq.ravel(), dr.ravel()])

    y0 = np.concatenate([ds.q.values[0].ravel(), ds.r.values[0].ravel()])
    sol = solve_ivp(rhs, (0, alpha[-1]), y0, t_eval=alpha, method="DOP853", rtol=1e-12,
                    atol=1e-15)
    q = sol.y[: L * K * K].T.reshape(-1, L, K, K)
    r = sol.y[L * K * K:].T.reshape(-1, L, K, M)
    np.testing.assert_allclose(ds.q.values, q, rtol=1e-8, atol=1e-10 * np.abs(q).max())
    np.testing.assert_allclose(ds.r.values, r, rtol=1e-8, atol=1e-10 * np.abs(r).max())
    Q, R, T = weighted_overlaps(q, r, t, sp.eigenvalues)
    np.testing.assert_allclose(ds.eg.values, generalization_error(Q, R, T, v, w, "linear"),
                               rtol=1e-8)


def test_dataset_schema_and_consistency():
    setup = Setup(K=3, M=2, N=40, L=8, beta=0.8, eta=0.2, activation="linear", sigma_J=0.3,
                  output_scale="mean", trainable=30)
    alpha = np.array([0.0, 0.5, 2.0, 10.0])
    ds = linear_theory(setup, alpha, seed=2)
    validate(ds)
    assert ds.attrs["method"] == "linear" and ds.attrs["initial_condition"] == "seed"
    assert ds.attrs["seed"] == 2
    assert ds.e.dims == ("alpha", "group") and ds.e.attrs["units"] == "1"
    v, w = setup.second_layer
    Q, R, T = weighted_overlaps(ds.q.values, ds.r.values, ds.t.values, setup.spectrum.eigenvalues)
    np.testing.assert_allclose(ds.eg.values, generalization_error(Q, R, T, v, w, "linear"),
                               rtol=1e-12)
    np.testing.assert_allclose(ds.q.values, np.swapaxes(ds.q.values, -1, -2), rtol=1e-14)
    # the start is the actual draw of the seed
    J, B = sample_weights(setup, 2)
    np.testing.assert_allclose(ds.e.values[0], errors_from_weights(setup, J, B), rtol=1e-12)
    init = initial_overlaps(setup, 2)
    np.testing.assert_allclose(ds.q.values[0], init.q.values[0], rtol=1e-12)
    # untrained groups do not move
    frozen = ~setup.trained_groups
    np.testing.assert_allclose(ds.q.values[:, frozen], ds.q.values[:1, frozen].repeat(4, 0))
    reduced = linear_theory(setup, alpha, seed=2, overlaps=False)
    assert not {"q", "r", "t"} & set(reduced) and reduced.attrs["overlaps"] == 0
    np.testing.assert_allclose(reduced.eg.values, ds.eg.values, rtol=1e-14)
    expected = linear_theory(setup, alpha)
    assert expected.attrs["initial_condition"] == "expected" and expected.attrs["seed"] == -1


def test_expected_initial_condition_is_the_mean_over_draws():
    setup = Setup(K=2, M=3, N=60, L=4, eta=0.1, sigma_J=0.7, activation="linear",
                  v=(0.6, 1.1), w=(0.5, -0.3, 0.9))
    draws = np.array([errors_from_weights(setup, *sample_weights(setup, s)) for s in range(400)])
    e_exp = initial_condition(setup)["e"]
    v, w = setup.second_layer
    np.testing.assert_allclose(e_exp, (0.49 * v @ v + w @ w) * setup.spectrum.fractions)
    stderr = draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - e_exp) < 4 * stderr)


# --------------------------------------------------------------------------- scaling laws
@pytest.mark.parametrize("beta", [0.5, 0.75, 1.0, 2.0])
def test_time_exponent_and_prefactor(beta):
    """Inside the window ε_g + offset = A α^{−β/(1+β)}: fitted exponent within 0.01, and the
    prefactor within 2 % (L = N = 4096, η = 0.01). The sub-window starts where the decaying
    front has passed ~10 groups (α = 10^{1+β} α_lo) and ends a decade before α_hi."""
    setup = Setup(K=1, M=1, N=4096, L=4096, beta=beta, eta=0.01, activation="linear")
    asym = asymptotics(setup)
    lo, hi = asym.window
    alpha = np.logspace(np.log10(lo) + 1 + beta, np.log10(hi) - 1, 60)
    eg = linear_theory(setup, alpha, overlaps=False).eg.values
    assert abs(-fit_slope(alpha, eg + asym.offset) - beta / (1 + beta)) < 0.01
    np.testing.assert_allclose((eg + asym.offset) / asym.power_law(alpha), 1.0, atol=0.02)
    if beta >= 2:  # for steep spectra the finite-L offset is negligible
        assert abs(-fit_slope(alpha, eg) - beta / (1 + beta)) < 0.01


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_saturation_follows_trainable_power_law(beta):
    setup = Setup(K=1, M=1, N=4096, L=4096, beta=beta, eta=0.05, activation="linear")
    lam = setup.spectrum.eigenvalues
    n_l = np.array([8, 16, 32, 64, 128, 256])
    sat = []
    for n in n_l:
        s = setup.replace(trainable=int(n))
        late = 40 / (2 * s.eta * lam[n - 1])
        eg = linear_theory(s, [late], overlaps=False).eg.values[0]
        assert eg == pytest.approx(asymptotics(s).saturation, rel=1e-6)
        sat.append(eg)
    assert abs(fit_slope(n_l, sat) + beta) < 0.05
    asym = asymptotics(setup)
    np.testing.assert_allclose(sat, asym.saturation_coefficient * n_l ** -beta, rtol=0.15)
    # with the finite-size tail the leading-order law is good to O(η) (here h <= 0.025)
    np.testing.assert_allclose(sat, asym.saturation_law(n_l, finite_size=True), rtol=0.04)


def test_asymptotic_curve_and_decay_rates():
    setup = Setup(K=1, M=1, N=64, L=16, beta=1.0, eta=0.2, activation="linear", trainable=32)
    asym = asymptotics(setup)
    assert asym.exponent == pytest.approx(0.5)
    alpha = np.logspace(-1, 4, 11)
    da = asymptotic_curve(setup, alpha)
    assert da.dims == ("alpha",) and da.attrs["exponent"] == pytest.approx(0.5)
    np.testing.assert_allclose(da.values, np.maximum(asym.prefactor * alpha**-0.5,
                                                     asym.saturation))
    corrected = asymptotic_curve(setup, alpha, finite_size=True)
    np.testing.assert_allclose(
        corrected.values, np.maximum(asym.prefactor * alpha**-0.5 - asym.offset, asym.saturation))
    pure = asymptotic_curve(setup, alpha, saturation=False)
    np.testing.assert_allclose(pure.values, asym.prefactor * alpha**-0.5)
    # rates are the eigenvalues of −A on the trained block (dense route), ties included
    tied = Setup(K=1, M=1, N=12, eigenvalues=[3.0, 3.0, 1.0, 0.5, 0.5, 0.2], eta=0.3,
                 activation="linear", trainable=10, multiplicities=[2, 2, 2, 4, 1, 1])
    sp = tied.spectrum
    m = tied.trained_groups
    lam, f = sp.eigenvalues[m], sp.fractions[m]
    A = -2 * 0.3 * np.diag(lam) + 0.09 * np.outer(lam * f, lam)
    ref = np.sort(-np.linalg.eigvals(A).real)[::-1]
    np.testing.assert_allclose(decay_rates(tied), ref, rtol=1e-10)
    # a fitted exponent for explicit eigenvalues recovers the power law it was built from
    explicit = Setup(K=1, M=1, N=256, eigenvalues=np.arange(1, 257.0) ** -1.6, eta=0.01,
                     activation="linear")
    assert asymptotics(explicit).beta == pytest.approx(0.6, abs=1e-9)


# --------------------------------------------------------------------------- validation
def test_stability_bound_is_enforced():
    setup = Setup(K=2, M=1, N=32, L=4, beta=1.0, activation="linear", output_scale="none")
    bound = stability_bound(setup)
    assert bound == pytest.approx(2 / (2 * 1.0))  # Σv² = 2, tr Σ/N = 1
    for eta in (bound, 1.5 * bound):
        with pytest.raises(ValueError, match=r"eta: must be < 1 \(") as err:
            linear_theory(setup.replace(eta=eta), [0.0, 1.0])
        assert "got" in str(err.value)
    ds = linear_theory(setup.replace(eta=0.97 * bound), [0.0, 10.0, 1000.0])
    assert np.all(np.isfinite(ds.eg.values)) and ds.eg.values[-1] < ds.eg.values[0]
    partial = setup.replace(trainable=8)
    assert stability_bound(partial) > bound
    with pytest.raises(ValueError, match="activation"):
        linear_theory(setup.replace(activation="erf", eta=0.1), [0.0])
    with pytest.raises(ValueError, match="alpha"):
        linear_theory(setup.replace(eta=0.1), [1.0, 0.5])
    with pytest.raises(ValueError, match="eta"):
        exact_errors([1.0, 0.5], [0.5, 0.5], [0.5, 0.5], 3.0, [0.0])
    huge = Setup(K=200, M=200, N=4096, L=4096, eta=0.01, activation="linear")
    with pytest.raises(ValueError, match="overlaps=False"):
        linear_theory(huge, np.arange(10.0))
    assert linear_theory(huge, np.arange(10.0), overlaps=False).e.shape == (10, 4096)


# --------------------------------------------------------------------------- simulations
def test_theory_matches_gaussian_sgd():
    """A plain numpy SGD with Gaussian inputs, from the draws of `sample_weights`."""
    setup = Setup(K=1, M=1, N=200, L=4, beta=1.0, eta=0.5, sigma_J=0.2, activation="linear",
                  noise=0.1)
    seeds = range(24)
    N, lam = setup.N, setup.spectrum.diagonal()
    J = np.array([sample_weights(setup, s).J[0] for s in seeds])
    B = np.array([sample_weights(setup, s).B[0] for s in seeds])
    rng = np.random.default_rng(99)
    record = {200: 0, 600: 1, 2000: 2, 5000: 3}
    eg = np.empty((len(seeds), len(record)))
    for step in range(1, 5001):
        xi = rng.standard_normal((len(seeds), N)) * np.sqrt(lam)
        delta = np.einsum("sk,sk->s", B - J, xi) / np.sqrt(N)
        delta += setup.noise * rng.standard_normal(len(seeds))
        J += setup.eta / np.sqrt(N) * delta[:, None] * xi
        if step in record:
            eg[:, record[step]] = 0.5 * ((J - B) ** 2 @ lam) / N
    alpha = np.array(sorted(record)) / N
    theory = np.mean([linear_theory(setup, alpha, seed=s, overlaps=False).eg.values
                      for s in seeds], axis=0)
    stderr = eg.std(0, ddof=1) / np.sqrt(len(seeds))
    assert np.all(np.abs(eg.mean(0) - theory) < 4 * stderr + 0.03 * theory)


def test_theory_matches_scalex_simulate():
    from scalex.engines.simulate import simulate

    setup = Setup(K=1, M=1, N=256, L=16, beta=1.0, eta=0.5, sigma_J=0.01, activation="linear")
    alpha = np.array([0.5, 2.0, 8.0, 30.0])
    seeds = range(8)
    sim = simulate(setup, alpha, seeds=seeds, record=(), scheduler="sync", progress=False)
    theory = np.mean([linear_theory(setup, sim.alpha.values, seed=s, overlaps=False).eg.values
                      for s in seeds], axis=0)
    mean = sim.eg.mean("seed").values
    stderr = sim.eg.std("seed", ddof=1).values / np.sqrt(len(seeds))
    assert np.all(np.abs(mean - theory) < 4 * stderr + 0.03 * theory)


def test_sgd_real_data_replays_a_plain_loop():
    """The numba kernel against a per-step python loop on the same random stream."""
    from scalex.model.weights import rng_streams

    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 12)) * np.linspace(2, 0.3, 12)
    data = eigendata(X)
    setup = data.setup(eta=0.4, sigma_J=0.3, noise=0.2, trainable=8, v=(0.9,), w=(1.2,))
    ds = sgd_real_data(data.inputs, setup, [0.5, 2.0], seeds=[4])
    J, B = (x[0].copy() for x in sample_weights(setup, 4))
    stream = rng_streams(4)[2]
    N = setup.N
    snaps = []
    for target in (6, 24):
        n = target - (0 if not snaps else 6)
        idx = stream.integers(0, X.shape[0], size=n)
        eps = stream.standard_normal(n)
        for i, e in zip(idx, eps):
            xi = data.inputs[i]
            delta = (1.2 * B - 0.9 * J) @ xi / np.sqrt(N) + 0.2 * e
            J[:8] += 0.4 / np.sqrt(N) * 0.9 * delta * xi[:8]
        snaps.append(0.5 * ((0.9 * J - 1.2 * B) ** 2 @ data.eigenvalues) / N)
    np.testing.assert_allclose(ds.eg.isel(seed=0).values, snaps, rtol=1e-10)
    validate(ds)


def test_sgd_real_data_on_gaussian_samples_matches_theory():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 32)) * np.arange(1, 33) ** -0.8
    data = eigendata(X)
    setup = data.setup(eta=0.5, sigma_J=0.1)
    alpha = np.array([0.25, 1.0, 4.0, 16.0])
    seeds = range(16)
    sim = sgd_real_data(data.inputs, setup, alpha, seeds=seeds)
    theory = np.mean([linear_theory(setup, alpha, seed=s, overlaps=False).eg.values
                      for s in seeds], axis=0)
    mean = sim.eg.mean("seed").values
    stderr = sim.eg.std("seed", ddof=1).values / np.sqrt(len(seeds))
    assert np.all(np.abs(mean - theory) < 4 * stderr + 0.05 * theory)


# --------------------------------------------------------------------------- data sets
def test_digits_eigendata():
    X = load("digits")
    assert X.shape == (1797, 64)
    data = real_data("digits")
    ref = np.linalg.svd(X - X.mean(0), compute_uv=False) ** 2 / X.shape[0]
    ref = ref[ref > 1e-10 * ref[0]]
    np.testing.assert_allclose(data.eigenvalues * data.scale, ref, rtol=1e-9)
    assert data.eigenvalues.mean() == pytest.approx(1.0)
    cov = data.inputs.T @ data.inputs / X.shape[0]
    np.testing.assert_allclose(cov, np.diag(data.eigenvalues), atol=1e-10)
    assert 0.2 < data.beta < 0.5 and data.spectrum.beta_stderr < 0.1
    setup = data.setup(eta=0.1)
    assert setup.N == setup.L == data.N and setup.activation == "linear"
    np.testing.assert_allclose(setup.spectrum.eigenvalues, data.eigenvalues, rtol=1e-12)
    with pytest.raises(ValueError, match="set by the data"):
        data.setup(N=3)


def test_image_patches_and_errors():
    P = image_patches(size=4, stride=32)
    assert P.ndim == 2 and P.shape[1] == 16 and P.shape[0] > 500
    assert 0 <= P.min() and P.max() <= 255
    with pytest.raises(ValueError, match="name"):
        load("cifar")
    with pytest.raises(ValueError, match="size"):
        image_patches(size=1)
    with pytest.raises(ValueError, match="images"):
        image_patches(images=["moon"])
    with pytest.raises(ValueError, match="inputs"):
        sgd_real_data(np.ones((5, 3)), Setup(K=1, M=1, N=4, L=4, activation="linear"), [1.0])
    assert isinstance(asymptotic_curve(Setup(K=1, M=1, N=8, L=8, activation="linear"), [1.0]),
                      xr.DataArray)
