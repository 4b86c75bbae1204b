"""ReLU dynamics (docs/theory.md §3.8): the ODE against seed-averaged SGD, the teacher as a fixed
point, ε_g at α = 0 against Monte Carlo, the SGD kernel against plain numpy, and the argument
checks of Setup and solve_ode."""

import numpy as np
import pytest
from _support import network_error

from scalex.engines import ode as ode_module
from scalex.engines.ode import solve_ode
from scalex.engines.sgd_kernel import activation_code, scratch, sgd_steps, sgd_steps_transposed
from scalex.engines.simulate import simulate
from scalex.model.setup import Setup
from scalex.model.weights import sample_weights
from scalex.schema import CONVENTIONS, initial_overlaps, make_dataset

RELU = activation_code("relu")


def g(u):
    return np.maximum(u, 0.0)


def gp(u):
    return (u > 0).astype(float)


# --------------------------------------------------------------------------- ODE vs SGD
#: Finite-N allowance of the ODE-vs-SGD comparison at N = 512: ε_g relative to the ODE value,
#: the order parameters relative to their largest |value| on the grid. Measured with 64 seeds
#: (seed-paired SGD − ODE means, docs/theory.md §3.8): ε_g ≤ 4.6 % (L = 8, α ≈ 26, entering the
#: plateau; 3.5 % for L = 1 at α = 40), tr Q ≤ 1.4 %, Q_12 ≤ 6.3 %, Σ R ≤ 0.9 %; the ε_g offset
#: doubles at N = 256, a 1/N effect. The allowances are these offsets rounded up by about half.
#: With the delta term of s_ia left out, the same comparison misses its bound 2 to 13 times.
FINITE_N = {"eg": 0.07, "trQ": 0.03, "Q12": 0.08, "sumR": 0.02}


def _features(eg, Q, R):
    """ε_g and permutation-invariant order parameters: tr Q, Q_12 and Σ_in R_in."""
    return {"eg": eg, "trQ": np.einsum("...ii->...", Q), "Q12": Q[..., 0, 1],
            "sumR": R.sum((-1, -2))}


@pytest.mark.parametrize("L", [1, 8])
def test_ode_agrees_with_seed_averaged_sgd(L):
    """Each seed's ODE starts from that seed's weights; the seed-paired SGD − ODE mean lies
    within 3 standard errors plus `FINITE_N` (12 seeds, N = 512, α up to 40: the descent and
    the plateau up to its exit)."""
    setup = Setup(K=2, M=2, N=512, L=L, eta=0.5, sigma_J=0.3, activation="relu")
    alpha = np.concatenate([[0.0], np.geomspace(0.5, 40.0, 8)])
    seeds = range(12)
    sim = simulate(setup, alpha, seeds=seeds, record=("Q", "R"))
    odes = [solve_ode(setup, alpha, seed=s, record=("Q", "R"), progress=False) for s in seeds]
    assert all(o.status.item() == "ok" for o in odes) and set(sim.status.values) == {"ok"}
    sgd = _features(sim.eg.values, sim.Q.values, sim.R.values)
    ode = _features(*(np.stack([o[k].values for o in odes]) for k in ("eg", "Q", "R")))
    np.testing.assert_allclose(sgd["eg"][:, 0], ode["eg"][:, 0], rtol=1e-12)  # same starts
    for name, allow in FINITE_N.items():
        diff = sgd[name] - ode[name]
        mean, se = diff.mean(0), diff.std(0, ddof=1) / np.sqrt(len(seeds))
        mean_ode = np.abs(ode[name].mean(0))
        scale = mean_ode if name == "eg" else mean_ode.max()
        bad = np.abs(mean) > 3 * se + allow * scale
        assert not bad.any(), (name, alpha[bad], (mean / scale)[bad], (se / scale)[bad])


# --------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("L, perm", [(1, [0, 1]), (4, [2, 0, 1])])
def test_student_at_the_teacher_stays_there(L, perm):
    """Students equal to (permuted) teacher units with matching second-layer weights: Δ ≡ 0, so
    E = 0 and s_R = −s_Q P (docs/theory.md §3.8); the overlaps do not move and ε_g stays 0."""
    K = len(perm)
    w = np.array([1.0, 0.6, 0.8][:K])
    setup = Setup(K=K, M=K, N=64, L=L, eta=0.5, activation="relu", v=tuple(w[perm]),
                  w=tuple(w))
    t = initial_overlaps(setup, 3).t.values  # (L, M, M) teacher overlaps of a weight draw
    q = t[:, perm][:, :, perm]
    r = t[:, perm, :]
    init = make_dataset(setup, [0.0], q[None], r[None], t, method="test")
    ds = solve_ode(setup, [0.0, 1.0, 10.0, 100.0], init=init, progress=False)
    assert ds.status.item() == "ok"
    assert np.abs(ds.eg.values).max() < 1e-12
    np.testing.assert_allclose(ds.q.values, np.broadcast_to(q, ds.q.shape), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ds.r.values, np.broadcast_to(r, ds.r.shape), rtol=0, atol=1e-10)


@pytest.mark.parametrize("setup", [
    Setup(K=2, M=2, N=64, L=1, sigma_J=1.0, activation="relu"),
    Setup(K=3, M=2, N=64, L=4, beta=0.7, sigma_J=0.6, activation="relu", v=(0.9, -0.5, 1.2),
          w=(1.0, 0.4)),
])
def test_initial_generalization_error_against_monte_carlo(setup, rng):
    """ε_g of the ODE at α = 0 (closed-form I2 of the overlaps) against ½(ζ − σ)² of the
    seed's weights on 10⁶ Gaussian inputs (plain numpy), within 5 standard errors."""
    ode = solve_ode(setup, [0.0], seed=5, progress=False).eg.item()
    J, B = sample_weights(setup, 5)
    v, w = setup.second_layer
    mean, se = network_error(J, B, v, w, setup.spectrum.diagonal(), g, rng)
    assert abs(ode - mean) < 5 * se, (ode, mean, se)


def test_simulate_test_error_is_relu():
    """`simulate`'s Monte Carlo test error (its own ReLU network code) at α = 0 matches the
    exact ε_g of the same weights."""
    setup = Setup(K=2, M=3, N=64, L=2, sigma_J=0.8, activation="relu")
    ds = simulate(setup, [0.0], seeds=[0, 1], eg_test=100_000, scheduler="synchronous")
    z = np.abs(ds.eg_test - ds.eg) / ds.eg_test_stderr
    assert float(z.max()) < 5, z.values


# --------------------------------------------------------------------------- SGD kernel
def reference_relu_sgd(J, B, z, lam, v, w, eta, noise, n_trainable):
    """Plain numpy online SGD of docs/theory.md §1 with g = max(0, ·), g' = Θ (Θ(0) = 0)."""
    J = np.array(J, dtype=float)
    N = J.shape[1]
    scale = 1.0 / np.sqrt(N)
    smallest = np.inf
    for row in z:
        xi = np.sqrt(lam) * row[:N]
        x = (J @ xi) * scale
        y = (B @ xi) * scale
        smallest = min(smallest, np.abs(x).min())
        delta = w @ g(y) + noise * row[N] - v @ g(x)
        J[:, :n_trainable] += np.outer(eta * scale * v * gp(x) * delta, xi[:n_trainable])
    return J, smallest


@pytest.mark.parametrize("K, M, noise, n_trainable", [(3, 2, 0.0, 40), (5, 3, 0.7, 24)])
def test_relu_kernels_match_numpy_reference(K, M, noise, n_trainable):
    """30 steps of both compiled kernels against `reference_relu_sgd`. The kernels sum each
    field as four interleaved partial sums, numpy's BLAS in its own order, so the weights agree
    to rounding (measured: 1.5 ulps of max |J| after 30 steps), not bit for bit. No field
    comes within 1e-6 of the ReLU kink, where such rounding could flip Θ."""
    N = 40
    r = np.random.default_rng(K)
    lam = np.repeat([3.0, 1.5, 0.8, 0.3], N // 4)
    J, B = r.normal(size=(K, N)), r.normal(size=(M, N))
    v, w = r.normal(size=K), r.normal(size=M)
    z = r.standard_normal((30, N + 1))
    eta = 0.2
    J_ref, smallest = reference_relu_sgd(J, B, z, lam, v, w, eta, noise, n_trainable)
    assert smallest > 1e-6
    y = np.stack([(B @ (np.sqrt(lam) * row[:N])) / np.sqrt(N) for row in z])
    args = (z, y, np.sqrt(lam), v, w, eta, noise, n_trainable, RELU)
    Jk, JT = J.copy(), np.ascontiguousarray(J.T)
    assert sgd_steps(Jk, *args, *scratch(K, N, np.float64)) == len(z)
    assert sgd_steps_transposed(JT, *args, *scratch(K, N, np.float64), np.empty((4, K))) == len(z)
    assert not np.allclose(Jk, J)  # it learned
    ulps = 16 * np.finfo(float).eps
    np.testing.assert_allclose(Jk, J_ref, rtol=ulps, atol=ulps * np.abs(J_ref).max())
    np.testing.assert_array_equal(Jk[:, n_trainable:], J[:, n_trainable:])  # frozen part
    # Row and transposed layouts sum in the same order (sgd_kernel module docstring); allow a
    # few ulps for a compiler that contracts differently, as for erf.
    np.testing.assert_allclose(JT.T, Jk, rtol=4 * np.finfo(float).eps, atol=1e-300)


def test_relu_run_reproducible():
    """The same seed twice gives the same ReLU trajectory bit for bit."""
    setup = Setup(K=2, M=2, N=32, L=2, activation="relu", sigma_J=0.5)
    a = simulate(setup, [0.0, 2.0, 5.0], seeds=[4], scheduler="synchronous")
    b = simulate(setup, [0.0, 2.0, 5.0], seeds=[4], scheduler="synchronous")
    np.testing.assert_array_equal(a.q.values, b.q.values)
    np.testing.assert_array_equal(a.eg.values, b.eg.values)


# --------------------------------------------------------------------------- arguments
def test_setup_validation_names_the_parameter():
    assert Setup(activation="relu").activation == "relu"
    with pytest.raises(ValueError, match=r"sigma_J: must be > 0 for activation='relu'"):
        Setup(activation="relu", sigma_J=0.0)
    with pytest.raises(ValueError, match=r"activation: must be one of \('erf', 'linear', 'relu'\)"):
        Setup(activation="softplus")
    Setup(activation="erf", sigma_J=0.0)  # only ReLU needs σ_J > 0
    with pytest.raises(ValueError, match="activation"):
        activation_code("tanh")
    assert "relu: g(x) = max(0, x)" in CONVENTIONS["activation_convention"]


def test_solve_ode_method_choice_for_relu(monkeypatch):
    setup = Setup(K=2, M=2, N=64, L=4, eta=0.3, sigma_J=0.5, activation="relu")
    alpha = [0.0, 0.5, 2.0]
    with pytest.raises(ValueError, match=r"method: 'exponential'.*activation='relu'"):
        solve_ode(setup, alpha, method="exponential", progress=False)
    implicit = solve_ode(setup, alpha, rtol=1e-9, atol=1e-12, progress=False)
    assert implicit.attrs["ode_method"] == "arrowhead"
    monkeypatch.setattr(ode_module, "MAX_JACOBIAN_NNZ", 0)  # "auto" leaves the arrowhead
    other = solve_ode(setup, alpha, rtol=1e-9, atol=1e-12, progress=False)
    assert other.attrs["ode_method"] not in ("arrowhead", *ode_module.EXPONENTIAL)
    np.testing.assert_allclose(other.eg.values, implicit.eg.values, rtol=1e-6)
