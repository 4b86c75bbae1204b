"""The intake catalog written next to the results of a catalog entry.

`write_intake_catalog` writes (or extends) ``catalog.yaml`` in intake ≥ 2.0's own YAML format
(``version: 2``, one `XArrayDatasetReader` entry per NetCDF file, netcdf4 engine), which needs
no plugin. File URLs are relative to the catalog (``{CATALOG_DIR}``), so the results folder can
move. The file is written atomically whether or not intake is installed, and entries already in
it are kept unless replaced. Open it with ``intake.from_yaml_file(path)[name].read()``.
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
