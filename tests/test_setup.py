"""Setup validation, derived quantities, attrs round trip and hashing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalex.model.setup import Setup


def test_defaults_and_repr():
    s = Setup()
    assert (s.K, s.M, s.N, s.L, s.activation) == (2, 2, 1024, 1, "erf")
    assert "K=2" in repr(s) and "eta=0.1" in repr(s)
    v, w = s.second_layer
    np.testing.assert_allclose(v, 1 / np.sqrt(2))
    np.testing.assert_allclose(w, 1 / np.sqrt(2))
    assert s.n_trainable == 1024 and s.trained_groups.all()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"L": 3}, "L"),  # does not divide N
        ({"eta": 0}, "eta"),
        ({"eta": -1}, "eta"),
        ({"K": 0}, "K"),
        ({"M": 1.5}, "M"),
        ({"activation": "tanh"}, "activation"),
        ({"activation": "relu", "sigma_J": 0.0}, "sigma_J"),  # ReLU needs Q_ii > 0
        ({"v": (1.0, 2.0, 3.0)}, "v"),
        ({"w": (1.0,)}, "w"),
        ({"trainable": 2048}, "trainable"),
        ({"trainable": 0}, "trainable"),
        ({"L": 4, "trainable": 100}, "trainable"),  # not on a group boundary
        ({"beta": 0}, "beta"),
        ({"sigma_J": -0.1}, "sigma_J"),
        ({"noise": float("nan")}, "noise"),
        ({"spectrum_norm": "max"}, "spectrum_norm"),
        ({"output_scale": "x"}, "output_scale"),
        ({"eigenvalues": (1.0, 2.0)}, "eigenvalues"),  # increasing
        ({"eigenvalues": (2.0, 1.0), "multiplicities": (1, 2)}, "multiplicities"),
        ({"multiplicities": (512, 512)}, "multiplicities"),
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        Setup().replace(**changes)


def test_error_gives_allowed_range():
    with pytest.raises(ValueError, match=r"must be finite and > 0"):
        Setup(eta=-1)
    with pytest.raises(ValueError, match=r"one of \('erf', 'linear', 'relu'\)"):
        Setup(activation="tanh")
    with pytest.raises(ValueError, match="unknown Setup field"):
        Setup().replace(etaa=1)


def test_explicit_spectrum_sets_L_and_normalises():
    s = Setup(N=6, eigenvalues=[3.0, 2.0, 1.0], multiplicities=[1, 2, 3])
    assert s.L == 3
    sp = s.spectrum
    assert sp.trace_per_dim == pytest.approx(1.0)
    np.testing.assert_allclose(sp.eigenvalues / sp.eigenvalues[0], [1, 2 / 3, 1 / 3])
    raw = s.replace(spectrum_norm="none").spectrum
    np.testing.assert_allclose(raw.eigenvalues, [3, 2, 1])


def test_trainable_on_boundary():
    s = Setup(N=16, L=4, trainable=8)
    np.testing.assert_array_equal(s.trained_groups, [True, True, False, False])
    assert s.replace(trainable=16).trainable is None  # full training is canonical


def test_second_layer_scales():
    assert Setup(K=4, output_scale="mean").second_layer[0] == pytest.approx(np.full(4, 0.25))
    assert Setup(K=4, output_scale="none").second_layer[0] == pytest.approx(np.ones(4))
    assert Setup(K=2, v=(1.0, -1.0)).second_layer[0] == pytest.approx([1.0, -1.0])


setups = st.builds(
    Setup,
    K=st.integers(1, 5),
    M=st.integers(1, 5),
    L=st.sampled_from([1, 2, 4, 8]),
    N=st.sampled_from([8, 64]),
    beta=st.floats(0.05, 3),
    eta=st.floats(1e-4, 2),
    sigma_J=st.floats(0, 1),
    activation=st.sampled_from(["erf", "linear"]),
    spectrum_norm=st.sampled_from(["mean", "top"]),
    noise=st.floats(0, 1),
)


@settings(max_examples=60)
@given(setups)
def test_attrs_round_trip_and_hash(setup):
    back = Setup.from_attrs(setup.to_attrs())
    assert back == setup
    assert back.hash == setup.hash
    assert setup.replace(eta=setup.eta * 1.5).hash != setup.hash


def test_hash_is_stable_across_processes():
    import subprocess
    import sys

    code = "import scalex; print(scalex.Setup(L=4, N=64, eta=0.05).hash)"
    out = subprocess.check_output([sys.executable, "-c", code], text=True).strip()
    assert out == Setup(L=4, N=64, eta=0.05).hash


def test_from_attrs_rejects_foreign():
    with pytest.raises(ValueError, match="not a dataset written by scalex"):
        Setup.from_attrs({"title": "x"})


def test_eta_max_linear():
    # mean normalisation: tr Σ/N = 1, so the bound is 2.
    assert Setup(L=4, N=8).eta_max_linear == pytest.approx(2.0)


def test_eta_max_linear_includes_second_layer_norm():
    # v = 1/K (output_scale="mean"): η_eff = η Σv² = η/K, so the bound grows by K.
    assert Setup(K=4, L=4, N=8, output_scale="mean").eta_max_linear == pytest.approx(8.0)
    # Only trained groups count: freezing all but the top group.
    s = Setup(K=1, M=1, L=4, N=8, trainable=2)
    sp = s.spectrum
    assert s.eta_max_linear == pytest.approx(2 / (sp.fractions[0] * sp.eigenvalues[0]))


def test_repr_of_explicit_spectrum_has_no_beta():
    assert "beta" not in repr(Setup(N=4, eigenvalues=[2.0, 1.0]))


# Wrong-typed values (not wrong values of the right type): strings of numbers, containers,
# None where a value is required, bools, complex numbers, arbitrary objects.
WRONG_TYPES = ["2", "0.1", b"2", [1], {"a": 1}, object(), 1j, True, (1, "x")]
FIELDS = [f.name for f in __import__("dataclasses").fields(Setup)]
#: None is a valid value of the optional fields
OPTIONAL = {"v", "w", "trainable", "eigenvalues", "multiplicities", "eta_v"}


@settings(max_examples=150)
@given(field=st.sampled_from(FIELDS), value=st.sampled_from([*WRONG_TYPES, None]))
def test_wrong_type_message_starts_with_the_field_name(field, value):
    """Before: Setup(K='2') raised a bare "TypeError: '<' not supported ..."."""
    if (value is None and field in OPTIONAL) or (field == "train_v" and value is True):
        return
    changes = {field: value}
    if field == "multiplicities":
        changes["eigenvalues"] = (1.0, 0.5)
    try:
        Setup(**changes)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(f"{field}: "), (field, value, str(err))
    else:
        # only a container of numbers can be right for the sequence fields
        assert field in ("v", "w", "eigenvalues") and value == [1], (field, value)


def test_wrong_type_is_a_type_error_and_a_value_error():
    with pytest.raises(TypeError, match=r"^K: must be an integer >= 1, got '2'"):
        Setup(K="2")
    with pytest.raises(ValueError, match=r"^eta: must be a real number, got '0.1'"):
        Setup(eta="0.1")
