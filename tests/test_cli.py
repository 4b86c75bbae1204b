"""The ``scalex`` command line, in-process (`scalex.cli.main`) and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import xarray as xr
import yaml

from scalex.cli import main
from scalex.experiments.kinds import KINDS, Kind

TINY = {
    "description": "tiny linear sweep for the CLI tests",
    "kind": "linear",
    "setup": {"K": 1, "M": 1, "N": 16, "activation": "linear", "eta": 0.5},
    "over": {"L": [1, 4]},
    "seeds": 2,
    "alpha": {"start": 0.01, "stop": 10, "num": 6, "zero": True},
    "analyses": ["summary"],
    "plots": ["learning_curves", "no_such_plot"],
    "cost": "~1 s",
}


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "entries": {"tiny": TINY}}))
    return path


def test_list_shows_every_paper_entry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("smoke", "fig1", "fig2_left", "fig2_right", "fig3_left", "fig3_real",
                 "fig5_plateau", "fig6", "fig6_full"):
        assert f"  {name} " in out
    assert "member(s)" in out


def test_unknown_entry_lists_the_available_ones(capsys, catalog):
    assert main(["run", "nope", "--catalog", str(catalog)]) == 2
    err = capsys.readouterr().err
    assert "unknown entry 'nope'" in err and "available: tiny" in err
    assert "Traceback" not in err


def test_bad_catalog_and_missing_files_are_user_errors(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"entries": {"tiny": {**TINY, "setup": {"eta": -1}}}}))
    assert main(["list", "--catalog", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: entry 'tiny': field 'setup.eta': must be finite and > 0, got -1" in err
    assert main(["run", "tiny", "--catalog", str(tmp_path / "none.yaml")]) == 2
    assert "no such catalog file" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "none.nc")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    assert main(["info", str(junk)]) == 2
    assert "not a readable NetCDF file" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "required" in capsys.readouterr().err
    assert main([]) == 2


def test_missing_kind_module_fails_clearly(capsys, catalog, monkeypatch, tmp_path):
    monkeypatch.setitem(KINDS, "linear", Kind("linear", KINDS["linear"].func, "threads",
                                              "scalex.not_written_yet:linear_theory"))
    assert main(["run", "tiny", "--catalog", str(catalog), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "needs scalex.not_written_yet.linear_theory" in err and "Traceback" not in err


def test_run_info_plot_in_process(capsys, catalog, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "tiny", "--catalog", str(catalog), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"Results in {out}/" in text
    assert "4 member(s): 4 ok" in text
    assert "plot 'no_such_plot' skipped" in text  # a bad plot is reported, results kept
    assert (out / "tiny.nc").exists() and (out / "tiny-summary.nc").exists()
    assert (out / "learning_curves.html").exists() and (out / "learning_curves.png").exists()
    ds = xr.open_dataset(out / "tiny.nc")
    assert ds.attrs["sweep_dims"] == "L" and dict(ds.sizes)["seed"] == 2
    ds.close()

    assert main(["info", str(out / "tiny.nc")]) == 0
    text = capsys.readouterr().out
    assert "sweep     L = 1, 4" in text and "4× ok" in text and "plateau_length" in text

    assert main(["plot", str(out / "tiny.nc"), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "tiny-learning_curves.png").exists()


def test_resume_after_rerun_skips_members(capsys, catalog, tmp_path):
    out = tmp_path / "out"
    args = ["run", "tiny", "--catalog", str(catalog), "--out", str(out), "--no-plots", "--quiet"]
    assert main(args) == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "store-linear").glob("*.nc")}
    assert len(stamp) == 4
    assert main(args) == 0
    again = {p.name: p.stat().st_mtime_ns for p in (out / "store-linear").glob("*.nc")}
    assert again == stamp  # nothing recomputed


def test_changed_entry_into_an_old_store_is_a_user_error(capsys, catalog, tmp_path):
    out = tmp_path / "out"
    args = ["run", "tiny", "--catalog", str(catalog), "--out", str(out), "--no-plots", "--quiet"]
    assert main(args) == 0
    changed = {**TINY, "alpha": [0.0, 1.0]}
    catalog.write_text(yaml.safe_dump({"version": 1, "entries": {"tiny": changed}}))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different alpha grid" in err and "--out" in err and "Traceback" not in err


def test_subprocess_end_to_end(catalog, tmp_path):
    out = tmp_path / "sub"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "scalex", "run", "tiny", "--catalog", str(catalog),
         "--out", str(out), "--no-plots", "--quiet"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Results in" in proc.stdout
    assert (out / "tiny.nc").exists() and (out / "catalog.yaml").exists()
    proc = subprocess.run([sys.executable, "-m", "scalex", "run", "nope", "--catalog",
                           str(catalog)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "available: tiny" in proc.stderr
    assert "Traceback" not in proc.stderr
