"""The installed package, outside the source tree: a wheel built from this tree ships the
catalogs (package data ``scalex.catalogs``), runs ``scalex list`` and ``scalex run smoke`` from
another folder, and imports every module; an editable install finds the catalogs the same way;
every third-party module scalex imports is declared in pyproject.toml.

The wheel is installed with ``--no-deps`` into a fresh venv that sees the packages of the
running interpreter, so nothing is downloaded but the build backend (setuptools, from the
package index). The tests are skipped, with the reason, only when no venv or no build backend
can be had.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: what an unreachable package index looks like in pip's output
_NO_INDEX = re.compile(r"No matching distribution found|Could not find a version that "
                       r"satisfies|Failed to establish a new connection|Network is unreachable|"
                       r"Temporary failure in name resolution", re.I)


# ---------------------------------------------------------------------------------- static
def _source_packages() -> set[str]:
    return {".".join(p.parent.relative_to(ROOT).parts)
            for p in (ROOT / "scalex").rglob("__init__.py") if "__pycache__" not in p.parts}


def test_listed_packages_are_the_source_packages():
    """pyproject lists the packages by hand (for the catalogs mapping): none may be missing."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert set(setuptools["packages"]) == _source_packages() | {"scalex.catalogs"}
    assert setuptools["package-dir"] == {"scalex.catalogs": "catalogs"}
    assert (ROOT / "catalogs" / "__init__.py").is_file()


def _imported_modules() -> dict[str, dict[str, bool]]:
    """Top-level third-party modules imported anywhere in scalex -> {file: imported at module
    level (not inside a function)}."""
    found: dict[str, dict[str, bool]] = {}

    def visit(node: ast.AST, path: str, lazy: bool) -> None:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                 and node.module else [])
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "scalex":
                files = found.setdefault(top, {})
                files[path] = files.get(path, False) or not lazy
        lazy = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, path, lazy)

    for path in (ROOT / "scalex").rglob("*.py"):
        visit(ast.parse(path.read_text(encoding="utf-8")), str(path.relative_to(ROOT)), False)
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions(requirements: list[str]) -> set[str]:
    """The distributions of ``requirements``, with those their requested extras add."""
    out: set[str] = set()
    for req in requirements:
        match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", req)
        assert match, req
        name, extras = match.group(1), [e.strip() for e in (match.group(2) or "").split(",")]
        out.add(_norm(name))
        for extra in filter(None, extras):
            for dep in metadata.requires(name) or []:
                if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", dep):
                    out.add(_norm(re.match(r"[A-Za-z0-9._-]+", dep).group(0)))
    return out


def test_every_imported_package_is_declared():
    """A module-level import needs [project].dependencies; one inside a function (an optional
    feature) may come from an optional extra instead, but not from the test or dev extras.
    Before: pandas and panel were imported by scalex but not declared."""
    providers = metadata.packages_distributions()
    required = _distributions(PYPROJECT["project"]["dependencies"])
    optional = required | _distributions([
        req for extra, reqs in PYPROJECT["project"].get("optional-dependencies", {}).items()
        if extra not in ("test", "dev") for req in reqs])
    missing = {}
    for module, files in _imported_modules().items():
        dists = {_norm(d) for d in providers.get(module, [])}
        eager = sorted(f for f, at_import in files.items() if at_import)
        if eager and not dists & required:
            missing[module] = f"imported at module level by {eager}: add to dependencies"
        elif not dists & optional:
            missing[module] = (f"imported in functions of {sorted(files)}: add to dependencies "
                               "or to an optional extra")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


# ---------------------------------------------------------------------------------- venv
def _run(args: list[str | Path], cwd: Path, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without what would point scalex back at this source tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SCALEX_CATALOG", "PYTHONHOME")}
    return {**env, "PYTHONNOUSERSITE": "1", "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg",
            **extra}


def _copy_source(dest: Path) -> Path:
    """The files a build needs, copied: building writes build/ and *.egg-info into the tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("scalex", "catalogs"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def _venv(path: Path) -> Path:
    """A venv seeing the running interpreter's packages (and so its pip); its python."""
    proc = _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                 path], cwd=path.parent, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"cannot create a venv: {proc.stderr.strip()[-500:]}")
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    # If the running interpreter is itself a venv, --system-site-packages shows the base
    # interpreter's packages only: add this environment's site-packages behind the venv's own.
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=path.parent, timeout=60).stdout.strip()
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    proc = _run([python, "-m", "pip", "--version"], cwd=path.parent, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"pip is not available to the venv: {proc.stderr.strip()[-300:]}")
    return python


def _pip_install(python: Path, *args: str | Path) -> None:
    proc = _run([python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
                 *args], cwd=python.parent, env=_clean_env())
    if proc.returncode != 0 and _NO_INDEX.search(proc.stdout + proc.stderr):
        pytest.skip("the build backend (setuptools, build-system.requires) cannot be "
                    f"downloaded: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the source tree."""
    tmp = tmp_path_factory.mktemp("build")
    src = _copy_source(tmp / "src")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                 "--disable-pip-version-check", src, "-w", tmp / "dist"], cwd=tmp,
                env=_clean_env())
    if proc.returncode != 0 and _NO_INDEX.search(proc.stdout + proc.stderr):
        pytest.skip("the build backend (setuptools, build-system.requires) cannot be "
                    f"downloaded: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (found,) = (tmp / "dist").glob("scalex-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (``--no-deps``); its python."""
    python = _venv(tmp_path_factory.mktemp("venv") / "env")
    _pip_install(python, "--no-index", "--force-reinstall", wheel)
    return python


def test_wheel_holds_every_module_and_the_catalogs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "scalex").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set()
    catalogs = {f"scalex/catalogs/{p.name}" for p in (ROOT / "catalogs").iterdir()
                if p.suffix in (".yaml", ".md", ".py")}
    assert "scalex/catalogs/paper.yaml" in catalogs and catalogs - names == set()
    assert "scalex/py.typed" in names


def test_installed_wheel_lists_and_runs_smoke(venv, tmp_path):
    """Before: `scalex list` and `scalex run` failed outside the checkout ("no such catalog
    file": the catalog was looked up next to the source tree)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    scalex = venv.parent / "scalex"
    listing = _run([scalex, "list"], cwd=elsewhere, env=_clean_env())
    assert listing.returncode == 0, listing.stderr
    catalog = Path(listing.stdout.splitlines()[0].removesuffix(":"))
    assert catalog.is_relative_to(venv.parent.parent), listing.stdout
    assert catalog.as_posix().endswith("scalex/catalogs/paper.yaml")
    assert catalog.read_bytes() == (ROOT / "catalogs" / "paper.yaml").read_bytes()
    assert "  smoke " in listing.stdout

    run = _run([scalex, "run", "smoke", "--quiet"], cwd=elsewhere, env=_clean_env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    out = elsewhere / "scalex-results" / "smoke"
    for name in ("smoke.nc", "learning_curves.html", "learning_curves.png", "catalog.yaml",
                 "store-linear/manifest.json"):
        assert (out / name).is_file(), name
    # The installed package computes what this source tree computes.
    from scalex.experiments.catalog import load_catalog

    entry = load_catalog(ROOT / "catalogs" / "paper.yaml")["smoke"]
    direct = entry.run(scheduler="synchronous", progress=False)
    with xr.open_dataset(out / "smoke.nc") as saved:
        assert saved.attrs["catalog_file"] == str(catalog)
        np.testing.assert_allclose(saved["eg"].values, direct["eg"].values, rtol=1e-12, atol=0)


def test_every_module_imports_from_the_wheel(venv, tmp_path):
    """Every module of scalex, from the venv's copy (not this source tree)."""
    code = (
        "import importlib, pkgutil, scalex\n"
        "names = ['scalex', 'scalex.catalogs'] + [\n"
        "    m.name for m in pkgutil.walk_packages(scalex.__path__, 'scalex.')\n"
        "    if m.name != 'scalex.__main__']\n"
        "for name in names:\n"
        "    try:\n"
        "        print(name, importlib.import_module(name).__file__)\n"
        "    except Exception as err:\n"
        "        print(name, 'FAILED', type(err).__name__, err)\n"
    )
    proc = _run([venv, "-c", code], cwd=tmp_path, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    expected = {".".join(p.with_suffix("").relative_to(ROOT).parts).removesuffix(".__init__")
                for p in (ROOT / "scalex").rglob("*.py")
                if "__pycache__" not in p.parts and p.name != "__main__.py"}
    assert expected | {"scalex.catalogs"} <= set(lines)
    failed = {k: v for k, v in lines.items()
              if not Path(v.split()[0]).is_relative_to(venv.parent.parent)}
    assert not failed, failed


def test_editable_install_reads_the_catalogs_folder(tmp_path):
    """``pip install -e``: scalex.catalogs is the source tree's catalogs/ folder."""
    src = _copy_source(tmp_path / "src")
    python = _venv(tmp_path / "env")
    _pip_install(python, "-e", src)
    code = ("import importlib.resources as r, scalex\n"
            "from scalex.experiments.catalog import default_catalog_path, load_catalog\n"
            "print(scalex.__file__)\n"
            "print(r.files('scalex.catalogs') / 'paper.yaml')\n"
            "print(default_catalog_path())\n"
            "print(len(load_catalog()))\n")
    proc = _run([python, "-c", code], cwd=tmp_path, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    module, resource, default, count = proc.stdout.split()
    assert Path(module) == src / "scalex" / "__init__.py"
    assert Path(resource) == Path(default) == src / "catalogs" / "paper.yaml"
    assert int(count) >= 1
