"""Experiment catalogs: named, declarative sweeps in YAML (schema in catalogs/README.md).

A catalog file holds ``entries``, each a complete experiment::

    entries:
      fig1:
        description: Plateau shortens as L grows (ODE, K = M = 2).
        kind: ode                    # ode | simulate | linear | a registered sweep kind
        setup: {K: 2, M: 2, N: 1024, eta: 0.1, beta: 1.0, sigma_J: 0.01}
        over: {L: [1, 4, 16, 64]}    # sweep axes: Setup fields ("K=M" links two fields)
        seeds: [0]                   # or an integer n for seeds 0..n-1
        alpha: {start: 1e-2, stop: 1e4, num: 121, spacing: log, zero: true}
        kind_options: {rtol: 1.0e-6} # keyword arguments of the kind
        compare: [linear]            # other kinds run on the same grid, for comparison
        analyses: [summary, escape]
        plots: [learning_curves, {name: plateau_length, x: L, over: null}]
        cost: "~10 s on 2 cores"

`load_catalog` validates everything before anything runs: an unknown field, a wrong type or an
invalid `Setup` raises `CatalogError` naming the file, the entry and the field. `run_entry` runs
one entry into an output folder (the result store, the combined NetCDF files, an analysis
summary, plots, an optional HTML report and an intake catalog); the ``scalex`` CLI is a thin
front to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from scalex.common.atomic import write_text


# ---------------------------------------------------------------------------------- intake
def write_intake_catalog(
    path: str | os.PathLike[str], sources: Mapping[str, tuple[Path, str]]
) -> Path:
    """Write (or extend) an intake 2 catalog of NetCDF results: ``{name: (file, description)}``.

    The format is intake ≥ 2.0's own YAML (``version: 2``, `XArrayDatasetReader`), which needs
    no plugin; file URLs are relative to the catalog (``{CATALOG_DIR}``), so the folder can move.
    Open it with ``intake.from_yaml_file(path)[name].read()``. The YAML is written whether or not
    intake is installed; entries already in the file are kept unless ``sources`` replaces them.
    """
    path = Path(path)
    cat: dict[str, Any] = {
        "version": 2,
        "metadata": {"description": "scalex results (NetCDF, scalex schema)",
                     "created_by": "scalex"},
        "user_parameters": {},
        "aliases": {},
        "data": {},
        "entries": {},
    }
    if path.exists():
        try:
            old = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(old, Mapping) and old.get("version") == 2:
                for key in ("data", "entries", "aliases"):
                    cat[key].update(old.get(key) or {})
        except yaml.YAMLError:
            pass  # a broken catalog is replaced
    for name, (file, description) in sources.items():
        file = Path(file)
        try:
            rel = file.resolve().relative_to(path.parent.resolve()).as_posix()
            url = "{CATALOG_DIR}/" + rel
        except ValueError:
            url = file.resolve().as_posix()
        data_key = f"{name}-data"
        cat["data"][data_key] = {
            "datatype": "intake.readers.datatypes:HDF5",
            "kwargs": {"url": url, "storage_options": None, "path": ""},
            "metadata": {},
            "user_parameters": {},
        }
        cat["entries"][name] = {
            "reader": "intake.readers.readers:XArrayDatasetReader",
            "kwargs": {"args": [f"{{data({data_key})}}"], "engine": "netcdf4",
                       "open_local": True, "chunks": {}},
            "metadata": {"description": description, "file": file.name},
            "output_instance": "xarray:Dataset",
            "user_parameters": {},
        }
        cat["aliases"][name] = name
    return write_text(path, yaml.safe_dump(cat, sort_keys=False))
