"""Catalog and CLI failure modes: every error names file, entry and field (or path and reason)
in one line without a traceback, and `scalex run` exits non-zero when a member failed."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

import scalex
from scalex.cli import main
from scalex.experiments.catalog import CatalogError, kind_option_names, load_catalog
from scalex.experiments.kinds import KINDS, register_kind
from scalex.schema import setup_rows
from scalex.viz.report import report

TINY = {
    "description": "tiny linear sweep",
    "kind": "linear",
    "setup": {"K": 1, "M": 1, "N": 16, "activation": "linear", "eta": 0.5},
    "over": {"L": [1, 4]},
    "seeds": 1,
    "alpha": {"start": 0.01, "stop": 10, "num": 6, "zero": True},
    "analyses": ["summary"],
}


def _write(tmp_path, entry, name="cat.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "entries": {"e": entry}}))
    return path


# ---------------------------------------------------------------------------------- catalog
@pytest.mark.parametrize(("change", "message"), [
    ({"over": {"L": [1, "4"]}}, "field 'over.L': grid point (L='4') is not a valid Setup: "
                                "L: must be an integer >= 1, got '4'"),
    ({"kind_options": {"rtoll": 1e-6}},
     "field 'kind_options.rtoll': unknown option of kind 'linear'; allowed: ['block', "
     "'overlaps']"),
    ({"kind_options": {"workers": 2}}, "field 'kind_options.workers': is an option of the run"),
    ({"compare": [{"kind": "ode", "options": {"rtoll": 1}}]},
     "field 'compare[0].options.rtoll': unknown option of kind 'ode'"),
    ({"kind": ["linear"]}, "field 'kind': must be one of"),
    ({"analyses": [["summary"]]}, "field 'analyses[0]': must be one of"),
])
def test_bad_values_are_catalog_errors(tmp_path, change, message):
    """Before: a string in `over` and an unhashable kind raised TypeError tracebacks; a
    typo in kind_options passed validation and failed every member at run time."""
    path = _write(tmp_path, {**TINY, **change})
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value).startswith(f"{path}: entry 'e': ")
    assert message in str(info.value)


def test_schema_errors_are_one_line_at_the_cli(tmp_path, capsys):
    """A quoted number, a junk file, an empty file: one line naming the place, exit code 2."""
    cases = {
        "quoted.yaml": ("entries:\n  e:\n    description: d\n    kind: ode\n"
                        "    alpha: [0, 1]\n    kind_options: {rtol: '1e-6'}\n",
                        "entry 'e': field 'kind_options.rtol': must be a number, got '1e-6'"),
        "list.yaml": ("- a\n- b\n", "must be a mapping with an 'entries' field, got ['a', 'b']"),
        "empty.yaml": ("", "must be a mapping with an 'entries' field, got None"),
        "over.yaml": ("entries:\n  e:\n    description: d\n    kind: linear\n"
                      "    alpha: [0, 1]\n    over: {L: [1, {n: 4}]}\n",
                      "entry 'e': field 'over.L[1]': must be a number or a string, got {'n': 4}"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert main(["list", "--catalog", str(path)]) == 2
        assert capsys.readouterr().err == f"scalex: error: {path}: {message}\n"


def test_kind_options_follow_the_kind_signature():
    import inspect

    from scalex.engines.ode import solve_ode

    expected = set(inspect.signature(solve_ode).parameters) - {"setup", "alpha", "seed"}
    assert kind_option_names("ode") == expected
    assert "record" in kind_option_names("simulate")
    for entry in load_catalog().values():  # the paper catalog's options are all valid
        assert set(entry.kind_options) <= kind_option_names(entry.kind)


def test_catalog_that_is_not_utf8_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"entries:\n  e:\n    description: caf\xe9\n")
    with pytest.raises(CatalogError, match=r"latin1\.yaml: not UTF-8 text: byte b'\\xe9' at "
                                           r"line 3"):
        load_catalog(path)
    assert main(["list", "--catalog", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err


def _fails_for_L4(setup, alpha, seed, **kwargs):
    if setup.L == 4:
        raise RuntimeError("member blew up on purpose")
    return scalex.linear_theory(setup, alpha, seed=seed)


@pytest.fixture
def failing_kind():
    register_kind("fails_for_L4", _fails_for_L4, scheduler="threads")
    yield "fails_for_L4"
    KINDS.pop("fails_for_L4", None)


def test_run_exits_nonzero_naming_each_failed_member(tmp_path, capsys, failing_kind):
    """Before: every member could fail and `scalex run` still exited 0."""
    path = _write(tmp_path, {**TINY, "kind": failing_kind})
    code = main(["run", "e", "--catalog", str(path), "--out", str(tmp_path / "o"), "--quiet",
                 "--no-plots"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 of 2 member(s) of 'e' failed:" in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("  L=")]
    assert lines == ["  L=4, seed=0: failed: RuntimeError: member blew up on purpose"]
    assert "Traceback" not in captured.err
    assert (tmp_path / "o" / "e.nc").exists()  # the good member's results are kept


# ---------------------------------------------------------------------------------- paths
def test_unwritable_out_is_one_line(tmp_path, capsys):
    """Before: NotADirectoryError with a full traceback, exit code 1 only by accident."""
    path = _write(tmp_path, TINY)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["run", "e", "--catalog", str(path), "--out", str(blocker / "sub"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (f"scalex: error: --out {blocker / 'sub'}: cannot write the results "
                           "there: Not a directory")
    code = main(["run", "e", "--catalog", str(path), "--out", str(blocker), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "exists and is not a directory" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    path = _write(out.parent, TINY)
    assert main(["run", "e", "--catalog", str(path), "--out", str(out), "--quiet",
                 "--no-plots"]) == 0
    return out


def test_info_on_a_directory_lists_its_results(run_dir, capsys):
    """Before: "<dir>: no such file"."""
    assert main(["info", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir}: is a directory, not a NetCDF file; results inside: " in err
    assert str(run_dir / "e.nc") in err and str(run_dir / "e-summary.nc") in err
    assert f"{run_dir / 'store-linear'}/ (sweep store)" in err
    assert main(["info", str(run_dir / "store-linear")]) == 2
    assert "is a directory, a sweep store (manifest.json)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- setup table
def test_info_and_report_show_swept_fields_as_swept(run_dir, capsys, tmp_path):
    """Before: the Setup table showed the base Setup (L=1) of a sweep over L."""
    assert main(["info", str(run_dir / "e.nc")]) == 0
    out = capsys.readouterr().out
    assert "L: swept over [1, 4]" in out
    assert "L=1" not in out.split("sweep")[0]
    ds = xr.open_dataset(run_dir / "e.nc").load()
    rows = setup_rows(ds.attrs)
    assert rows["L"] == "swept over [1, 4]" and rows["K"] == 1
    assert "setup hash (base Setup of the sweep)" in rows
    html = report("e", ds, {}, None, tmp_path / "report.html").read_text()
    assert "swept over [1, 4]" in html


def test_linked_axes_show_both_fields():
    attrs = scalex.Setup(K=2, M=2, N=16).to_attrs() | {"sweep_over": '{"K=M": [2, 3]}',
                                                        "sweep_dims": "K"}
    rows = setup_rows(attrs)
    assert rows["K"] == rows["M"] == "swept over [2, 3]"
    assert np.isscalar(rows["N"])
