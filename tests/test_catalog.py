"""Experiment catalogs: the paper catalog, validation messages, α grids, entry runs, intake."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
import time
import types
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import yaml

import scalex
from scalex.analysis.predictions import escape_predictions
from scalex.experiments.catalog import (
    ENTRY_FIELDS,
    CatalogError,
    alpha_grid,
    default_catalog_path,
    load_catalog,
    parse_catalog,
)
from scalex.experiments.intake import write_intake_catalog
from scalex.experiments.runner import result_table, run_entry
from scalex.experiments.sweep import sweep

PAPER = load_catalog()
ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "description": "a tiny test entry",
    "kind": "linear",
    "setup": {"K": 1, "M": 1, "N": 16, "activation": "linear", "eta": 0.5},
    "over": {"L": [1, 4]},
    "seeds": 2,
    "alpha": {"start": 0.01, "stop": 10, "num": 5, "spacing": "log", "zero": True},
}


def _write(tmp_path, entries, name="cat.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "entries": entries}, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------- paper
def test_paper_catalog_has_every_figure():
    expected = {"smoke", "fig1", "fig2_left", "fig2_right", "fig3_left", "fig3_real",
                "fig5_plateau", "fig6", "fig6_full"}
    assert expected <= set(PAPER)
    for entry in PAPER.values():
        assert entry.description and entry.cost
        assert entry.n_members >= 1


def test_paper_settings_follow_theory_section_4_and_5():
    fig1 = PAPER["fig1"]
    s = fig1.setup
    assert (fig1.kind, s.K, s.M, s.eta, s.beta, s.sigma_J, s.N, s.activation) == (
        "ode", 2, 2, 0.1, 1.0, 0.01, 1024, "erf")
    assert set(fig1.over["L"]) <= {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
    assert fig1.seeds == (0,) and fig1.alpha[0] == 0.0 and fig1.alpha[-1] >= 1e4
    left = PAPER["fig2_left"].setup
    assert (left.N, left.K, left.M, left.sigma_J**2, left.eta, left.beta, left.activation) == (
        128, 1, 1, 1.0, 1.0, 1.0, "linear")
    assert left.eta < left.eta_max_linear == pytest.approx(2.0)  # docs/theory.md §4 stability bound
    right = PAPER["fig2_right"]
    assert (right.setup.N, right.setup.L, right.setup.beta, right.setup.eta,
            right.setup.sigma_J, len(right.seeds)) == (1024, 1024, 0.75, 0.01, 0.01, 15)
    assert right.kind == "simulate" and [k for k, _ in right.compare] == ["linear"]
    f3 = PAPER["fig3_left"]
    assert (f3.setup.L, f3.setup.N, f3.setup.K, f3.setup.sigma_J, f3.setup.eta) == (
        256, 256, 1, 0.01, 0.05)
    assert "trainable" in f3.over
    real = PAPER["fig3_real"].setup
    assert real.eigenvalues is not None and real.trainable is None
    assert np.mean(real.spectrum.eigenvalues) == pytest.approx(1.0)
    f5 = PAPER["fig5_plateau"]
    assert list(f5.over) == ["L", "K=M"]
    full = PAPER["fig6_full"]  # the paper's size by ODE over L, and by 10-seed SGD
    assert (full.kind, full.setup.K, full.setup.M, full.setup.eta, full.setup.sigma_J) == (
        "ode", 40, 40, 0.01, 1e-6)
    assert {1, 8, 64, 512} <= set(full.over["L"]) and full.setup.N == 512
    assert full.alpha[-1] >= 1e5
    sgd = PAPER["fig6_full_sgd"]
    assert (sgd.kind, sgd.setup.K, sgd.setup.M, sgd.setup.eta, sgd.setup.sigma_J,
            len(sgd.seeds)) == ("simulate", 40, 40, 0.01, 1e-6, 10)
    assert sgd.over["L"] == (1, 512) and sgd.setup.N == 512


# ---------------------------------------------------------------------------------- errors
BAD = [
    ({"setup": {"eta": -1}}, "field 'setup.eta': must be finite and > 0, got -1"),
    ({"setup": {"etaa": 0.1}}, "field 'setup.etaa': unknown field"),
    ({"setup": {"L": 3, "N": 16}}, "field 'setup.L': must divide N=16, got L=3"),
    ({"seed": [0]}, "field 'seed': unknown field"),
    ({"kind": "odee"}, "field 'kind': must be one of"),
    ({"over": {"LL": [1]}}, "field 'over.LL'"),
    ({"over": {"L": [1, 3]}}, "field 'over.L'"),
    ({"over": {"L": 4}}, "field 'over.L': must be a list"),
    ({"seeds": -2}, "field 'seeds'"),
    ({"seeds": [0, 0]}, "field 'seeds': must be distinct"),
    ({"alpha": {"start": 0, "stop": 1, "num": 5}}, "field 'alpha.start': must be > 0 for log"),
    ({"alpha": {"start": 1, "stop": 10, "num": 5, "step": 2}}, "field 'alpha.step': unknown"),
    ({"alpha": {"start": 1, "num": 5}}, "field 'alpha.stop': is required"),
    ({"alpha": [0, 2, 1]}, "field 'alpha': must be strictly increasing"),
    ({"alpha": {"start": 1, "stop": 10, "num": 5, "spacing": "cubic"}}, "field 'alpha.spacing'"),
    ({"analyses": ["sumary"]}, "field 'analyses[0]': must be one of"),
    ({"plots": [{"nme": "x"}]}, "field 'plots[0]'"),
    ({"plots": ["a", {"name": "b", "file": "a"}]}, "field 'plots[1].file'"),
    ({"compare": ["linear"]}, "field 'compare[0]': 'linear' is already the entry's kind"),
    ({"compare": ["nope"]}, "field 'compare[0]': must be one of"),
    ({"kind_options": [1]}, "field 'kind_options': must be a mapping"),
    ({"cost": 5}, "field 'cost': must be a string"),
    ({"description": ""}, "field 'description': must be a non-empty string"),
    ({"setup": {"spectrum_from": {"data": "digits"}, "N": 64}},
     "field 'setup.N': is set by spectrum_from"),
    ({"setup": {"spectrum_from": {"data": "mnist"}}}, "field 'setup.spectrum_from'"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_entry_names_file_entry_and_field(tmp_path, change, message):
    entry = {**GOOD, **change}
    path = _write(tmp_path, {"fig1": entry})
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    text = str(info.value)
    assert text.startswith(f"{path}: entry 'fig1': ")
    assert message in text


def test_exact_message_format(tmp_path):
    path = _write(tmp_path, {"fig1": {**GOOD, "setup": {**GOOD["setup"], "eta": -1}}})
    with pytest.raises(CatalogError, match="^" + str(path).replace(".", r"\.")
                       + r": entry 'fig1': field 'setup\.eta': must be finite and > 0, got -1$"):
        load_catalog(path)


def test_missing_required_field_and_file_level_errors(tmp_path):
    entry = {k: v for k, v in GOOD.items() if k != "alpha"}
    with pytest.raises(CatalogError, match="entry 'e': field 'alpha': is required"):
        load_catalog(_write(tmp_path, {"e": entry}))
    with pytest.raises(CatalogError, match="unknown top-level field"):
        parse_catalog({"entries": {"e": GOOD}, "entris": {}}, "x.yaml")
    with pytest.raises(CatalogError, match="'entries': must be a non-empty mapping"):
        parse_catalog({"version": 1}, "x.yaml")
    dup = tmp_path / "dup.yaml"
    dup.write_text("entries:\n  a: {description: x}\n  a: {description: y}\n")
    with pytest.raises(CatalogError, match="duplicate key 'a'"):
        load_catalog(dup)
    with pytest.raises(FileNotFoundError, match="no such catalog file"):
        load_catalog(tmp_path / "none.yaml")


def test_yaml_exponent_floats_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent("""
        entries:
          e:
            description: exponents without a dot
            kind: linear
            setup: {K: 1, M: 1, N: 16, activation: linear, eta: 5e-1, sigma_J: 1e-3}
            alpha: {start: 1e-2, stop: 1e2, num: 5}
    """))
    entry = load_catalog(path)["e"]
    assert entry.setup.eta == 0.5 and entry.setup.sigma_J == 1e-3
    assert entry.alpha[0] == pytest.approx(1e-2)


# Refused by the schema (before: accepted, or a traceback, or the whole value was named).
SCHEMA_BAD = [
    ({"kind": "ode", "kind_options": {"rtol": "1e-6"}},
     "field 'kind_options.rtol': must be a number, got '1e-6'"),
    ({"kind_options": {"overlaps": "yes"}},
     "field 'kind_options.overlaps': must be true or false, got 'yes'"),
    ({"kind": "simulate", "kind_options": {"record": [1]}},
     "field 'kind_options.record': must be of type str | Sequence[str], got [1]"),
    ({"kind": "ode", "kind_options": {"init": {}}},
     "field 'kind_options.init': must be a Dataset object"),
    ({"compare": [{"kind": "ode", "options": {"rtol": True}}]},
     "field 'compare[0].options.rtol': must be a number, got True"),
    ({"compare": [{"kind": "ode", "optons": {}}]},
     "field 'compare[0].optons': unknown field; allowed: ['kind', 'options']"),
    ({"compare": [5]}, "field 'compare[0]': must be a kind name or {kind: NAME"),
    ({"setup": {"spectrum_from": {"data": "digits", "sze": 8}}},
     "field 'setup.spectrum_from.sze': unknown field; allowed: ['data', 'fit_range'"),
    ({"setup": {"spectrum_from": {"data": "patches", "size": "8"}}},
     "field 'setup.spectrum_from.size': must be an integer, got '8'"),
    ({"over": {"L": [1, None]}}, "field 'over.L[1]': must be a number or a string, got None"),
    ({"over": {"L": [1, [4]]}}, "field 'over.L[1]': must be a number or a string, got [4]"),
    ({"alpha": [0, "1"]}, "field 'alpha[1]': must be a number, got '1'"),
    ({"alpha": {"start": 1, "stop": "10", "num": 5}},
     "field 'alpha.stop': must be a number, got '10'"),
    ({"alpha": "1e-2..1e2"}, "field 'alpha': must be a list of times or a mapping"),
    ({"plots": [{"name": "learning_curves", "file": "a/b"}]},
     "field 'plots[0].file': must be a plain file stem, got 'a/b'"),
    ({"seeds": [0, 1.5]}, "field 'seeds': must be an integer n or a list of integers >= 0"),
]


@pytest.mark.parametrize(("change", "message"), SCHEMA_BAD)
def test_schema_refusals_name_the_place(change, message):
    with pytest.raises(CatalogError) as info:  # parsed values as given: no YAML round trip
        parse_catalog({"entries": {"fig1": {**GOOD, **change}}}, "x.yaml")
    assert str(info.value).startswith(f"x.yaml: entry 'fig1': {message}")


JUNK = [None, True, 1.5, -3, "x", [], [None], {}, {"a": 1}]


@pytest.mark.parametrize("field", list(ENTRY_FIELDS))
def test_any_junk_value_is_a_catalog_error_naming_its_field(field):
    """Whatever a field holds, the result is a valid entry or one CatalogError naming it."""
    for junk in JUNK:
        try:
            parse_catalog({"entries": {"e": {**GOOD, field: junk}}}, "x.yaml")
        except CatalogError as err:
            assert str(err).startswith(f"x.yaml: entry 'e': field '{field}"), (junk, str(err))


def test_file_level_schema_errors():
    for data, message in [
        ([1], "x.yaml: must be a mapping with an 'entries' field, got [1]"),
        (None, "x.yaml: must be a mapping with an 'entries' field"),
        ({"version": 2, "entries": {"e": GOOD}}, "x.yaml: field 'version': must be 1, got 2"),
        ({"description": 5, "entries": {"e": GOOD}},
         "x.yaml: field 'description': must be a string, got 5"),
        ({"entries": {"bad name": GOOD}},
         "x.yaml: entry 'bad name': names may hold only letters"),
        ({"entries": {"e": [GOOD]}}, "x.yaml: entry 'e': must be a mapping, got ["),
        ({"entries": {"e": GOOD}, "entris": {}},
         "x.yaml: field 'entris': unknown top-level field; allowed: ['version', "),
    ]:
        with pytest.raises(CatalogError) as info:
            parse_catalog(data, "x.yaml")
        assert str(info.value).startswith(message), str(info.value)


def test_entry_fields_are_documented():
    readme = (ROOT / "catalogs" / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (yes|no) \|", readme, re.M))
    assert rows == {name: "yes" if required else "no"
                    for name, (required, _doc) in ENTRY_FIELDS.items()}


def test_default_catalog_is_the_shipped_one_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("SCALEX_CATALOG", raising=False)
    shipped = default_catalog_path()
    assert shipped.read_bytes() == (ROOT / "catalogs" / "paper.yaml").read_bytes()
    path = _write(tmp_path, {"tiny": GOOD})
    monkeypatch.setenv("SCALEX_CATALOG", str(path))
    assert default_catalog_path() == path
    assert list(load_catalog()) == ["tiny"]


# ---------------------------------------------------------------------------------- grids
@pytest.mark.parametrize("num", [2, 5, 33])
def test_alpha_grid_log_and_linear(num):
    a = alpha_grid({"start": 1e-2, "stop": 1e3, "num": num, "zero": True})
    assert a[0] == 0.0 and a.size == num + 1
    assert a[1] == pytest.approx(1e-2) and a[-1] == pytest.approx(1e3)
    ratios = a[2:] / a[1:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # equal steps in log α
    lin = alpha_grid({"start": 0, "stop": 2, "num": num, "spacing": "linear"})
    np.testing.assert_allclose(np.diff(lin), 2 / (num - 1))
    assert list(alpha_grid([0, 0.5, 3])) == [0, 0.5, 3]


# ---------------------------------------------------------------------------------- running
def test_run_entry_writes_results_equal_to_the_sweep(tmp_path):
    cat = load_catalog(_write(tmp_path, {"tiny": {**GOOD, "analyses": ["summary"]}}))
    entry = cat["tiny"]
    result = run_entry(entry, tmp_path / "out", plots=False, progress=False)
    direct = sweep("linear", entry.setup, {"L": [1, 4]}, seeds=2, alpha=entry.alpha_array,
                   scheduler="synchronous", progress=False)
    saved = xr.open_dataset(tmp_path / "out" / "tiny.nc").load()
    for name in ("eg", "q", "r", "t", "e"):
        # Different code paths (run_entry: threads/processes + member store + NetCDF; here:
        # synchronous, in memory): BLAS and thread count may reorder sums, so compare to a
        # few ulp, not bitwise.
        xr.testing.assert_allclose(saved[name], direct[name], rtol=8 * np.finfo(float).eps,
                                   atol=0)
    assert saved.attrs["catalog_entry"] == "tiny"
    assert (tmp_path / "out" / "store-linear" / "manifest.json").exists()
    assert (tmp_path / "out" / "tiny-summary.nc").exists()
    assert list(result.table.index) == [1, 4]
    assert (tmp_path / "out" / "catalog.yaml").exists()


def test_escape_predictions_call_the_theory_per_member(monkeypatch):
    """Plumbing check with a stand-in theory whose answer encodes the member it was given."""
    fake = types.ModuleType("scalex.analysis.escape")
    fake.escape = lambda setup, seed=0: {"plateau_length": 100.0 * setup.L + setup.K + seed}
    monkeypatch.setitem(sys.modules, "scalex.analysis.escape", fake)
    monkeypatch.setattr(scalex, "theory", fake, raising=False)
    base = scalex.Setup(N=16)
    ds = sweep("ode", base, {"L": [1, 2], "K=M": [2, 3]}, seeds=[0, 7], alpha=[0.0, 0.1],
               scheduler="synchronous", progress=False)
    pred = escape_predictions(ds)
    assert pred.dims == ("L", "K", "seed")
    for L in (1, 2):
        for K in (2, 3):
            for seed in (0, 7):
                assert pred.sel(L=L, K=K, seed=seed).item() == 100.0 * L + K + seed


def test_escape_predictions_only_where_asked(monkeypatch):
    """``where`` (e.g. has_plateau) skips members: they are NaN and the theory is not called."""
    calls = []

    def escape(setup, seed=0):
        calls.append((setup.L, seed))
        return {"plateau_length": 100.0 * setup.L + seed}

    fake = types.ModuleType("scalex.analysis.escape")
    fake.escape = escape
    monkeypatch.setitem(sys.modules, "scalex.analysis.escape", fake)
    monkeypatch.setattr(scalex, "theory", fake, raising=False)
    ds = sweep("ode", scalex.Setup(N=16), {"L": [1, 2, 4]}, seeds=[0, 3], alpha=[0.0, 0.1],
               scheduler="synchronous", progress=False)
    where = xr.DataArray([[True, False], [True, True], [False, False]],
                         dims=("L", "seed"), coords={"L": [1, 2, 4], "seed": [0, 3]})
    pred = escape_predictions(ds, where=where)
    assert sorted(calls) == [(1, 0), (2, 0), (2, 3)]
    np.testing.assert_array_equal(np.isnan(pred.values), ~where.values)
    assert pred.sel(L=2, seed=3).item() == 203.0
    # Without a seed dim in the mask, it applies to every seed of the member.
    calls.clear()
    escape_predictions(ds, where=where.any("seed"))
    assert sorted(calls) == [(1, 0), (1, 3), (2, 0), (2, 3)]


def _slow_escape(setup, seed=0):
    if setup.L == 2 and seed == 1:
        time.sleep(60)
    return {"plateau_length": 10.0 * setup.L + seed}


def test_escape_predictions_respect_the_time_budget(monkeypatch):
    """Worker processes that overrun the budget are stopped; their members are NaN."""
    fake = types.ModuleType("scalex.analysis.escape")
    fake.escape = _slow_escape
    monkeypatch.setitem(sys.modules, "scalex.analysis.escape", fake)
    monkeypatch.setattr(scalex, "theory", fake, raising=False)
    ds = sweep("ode", scalex.Setup(N=16), {"L": [1, 2, 4]}, seeds=[0, 1], alpha=[0.0, 0.1],
               scheduler="synchronous", progress=False)
    problems: list[str] = []
    tick = time.monotonic()
    with dask.config.set({"multiprocessing.context": "fork"}):  # workers inherit the stand-in
        pred = escape_predictions(ds, timeout=4.0, workers=2, problems=problems)
    assert time.monotonic() - tick < 30
    # One worker is stuck on (L=2, seed=1); the other finishes everything else.
    assert pred.sel(L=1).values.tolist() == [10.0, 11.0]
    assert pred.sel(L=4).values.tolist() == [40.0, 41.0]
    assert pred.sel(L=2, seed=0).item() == 20.0 and np.isnan(pred.sel(L=2, seed=1).item())
    assert "1 of 6 predictions did not finish within 4 s" in problems[0]


def test_result_table_averages_seeds_and_counts_failures():
    summary = xr.Dataset(
        {"plateau_length": (("L", "seed"), [[1.0, 3.0], [np.nan, 5.0]]),
         "convergence": (("L", "seed"), [["exponential", "exponential"],
                                         ["power_law", "undetermined"]])},
        coords={"L": [1, 4], "seed": [0, 1]}, attrs={"sweep_dims": "L"})
    status = xr.DataArray([["ok", "ok"], ["failed: x", "ok"]], dims=("L", "seed"))
    table = result_table(summary, xr.Dataset({"status": status}))
    assert table.loc[1, "plateau_length"] == 2.0 and table.loc[4, "plateau_length"] == 5.0
    assert table.loc[1, "convergence"] == "exponential"
    assert list(table["not_ok"]) == [0, 1]


# ---------------------------------------------------------------------------------- intake
def test_intake_catalog_opens_the_results(tmp_path):
    import intake
    ds = scalex.initial_overlaps(scalex.Setup(N=8, L=2), 3)
    out = tmp_path / "results"
    scalex.to_netcdf(ds, out / "a.nc")
    path = write_intake_catalog(out / "catalog.yaml", {"a": (out / "a.nc", "initial overlaps")})
    write_intake_catalog(path, {"b": (out / "a.nc", "again")})  # extends, keeps "a"
    moved = tmp_path / "moved"
    shutil.move(out, moved)  # URLs are relative to the catalog
    cat = intake.from_yaml_file(str(moved / "catalog.yaml"))
    assert {"a", "b"} <= set(cat)
    got = cat["a"].read()
    xr.testing.assert_equal(got["q"].load(), ds["q"])
    assert got.attrs["setup_hash"] == ds.attrs["setup_hash"]


def test_intake_yaml_is_written_without_intake(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "intake", None)
    path = write_intake_catalog(tmp_path / "catalog.yaml", {"x": (tmp_path / "x.nc", "d")})
    data = yaml.safe_load(path.read_text())
    assert data["version"] == 2
    assert data["entries"]["x"]["reader"] == "intake.readers.readers:XArrayDatasetReader"
    assert data["data"]["x-data"]["kwargs"]["url"] == "{CATALOG_DIR}/x.nc"


# ------------------------------------------------------------------------- summary_options
def test_summary_options_reach_the_summary(tmp_path):
    # The fit window of the summary follows the entry's summary_options (checked against the
    # same measure called directly on the stored result).
    from scalex.analysis.measures import fit_power_law

    entry = dict(GOOD, kind="linear", setup={"K": 1, "M": 1, "N": 16, "activation": "linear",
                                             "eta": 0.5, "sigma_J": 0.01},
                 over={"L": [16]}, seeds=[0],
                 alpha={"start": 0.01, "stop": 100, "num": 25, "spacing": "log", "zero": True},
                 analyses=["summary"], summary_options={"fit": {"alpha_min": 1.0}})
    path = _write(tmp_path, {"e": entry})
    result = run_entry(load_catalog(path)["e"], tmp_path / "out", plots=False, progress=False)
    assert float(result.summary["fit_alpha_min"].min()) >= 1.0
    direct = fit_power_law(result.dataset, alpha_min=1.0)
    np.testing.assert_allclose(result.summary["exponent"].values.ravel(),
                               direct["exponent"].values.ravel(), rtol=1e-12)


@pytest.mark.parametrize("options,message", [
    ({"fitt": {}}, "field 'summary_options': unknown part 'fitt'"),
    ({"fit": {"alpha_mn": 1.0}},
     r"field 'summary_options': fit: unknown option\(s\) \['alpha_mn'\]"),
    ({"plateau": 3}, "field 'summary_options': plateau: must be a mapping"),
    # summary passes baseline itself: refused here, not a TypeError at run time
    ({"fit": {"baseline": 0.1}},
     r"field 'summary_options': fit: unknown option\(s\) \['baseline'\]"),
])
def test_summary_options_errors_name_entry_and_field(tmp_path, options, message):
    path = _write(tmp_path, {"e": dict(GOOD, summary_options=options)})
    with pytest.raises(CatalogError, match="entry 'e': " + message):
        load_catalog(path)
