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

`ENTRY_FIELDS` lists every field, `ANALYSES` the analyses, and `alpha_grid` reads the
``alpha`` field. ``setup`` may take its eigenvalues from a bundled real data set
(``spectrum_from``, `scalex.model.datasets`). `load_catalog` (default file
`default_catalog_path`: ``$SCALEX_CATALOG``, else the paper catalog shipped as package data
``scalex.catalogs``, which is catalogs/paper.yaml of the source tree) and `parse_catalog`
validate everything before anything runs, with the pydantic models of
`scalex.experiments.catalog_schema`. The YAML is read safely, with YAML 1.2 floats (``1e-2`` is
a number) and no duplicate keys. An unknown key (at any level, ``kind_options`` included), a
wrong type, an invalid `Setup` or an invalid grid point raises `CatalogError` naming the file,
the entry and the field. An `Entry` runs its main kind with `Entry.run`, a
`scalex.experiments.sweep.sweep`. Running a whole entry (comparisons, analyses, plots, report)
is `scalex.experiments.runner`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml
from numpy.typing import NDArray
from pydantic import ValidationError

from scalex.experiments.catalog_schema import ANALYSES, CatalogSpec, EntrySpec, alpha_adapter
from scalex.experiments.kind_options import SWEEP_OPTIONS, kind_option_names
from scalex.experiments.sweep import sweep
from scalex.experiments.validation import first_problem
from scalex.model.setup import Setup
from scalex.viz.spec import PlotSpec

__all__ = [
    "ANALYSES",
    "ENTRY_FIELDS",
    "SWEEP_OPTIONS",
    "Catalog",
    "CatalogError",
    "Entry",
    "PlotSpec",
    "alpha_grid",
    "default_catalog_path",
    "kind_option_names",
    "load_catalog",
    "parse_catalog",
]

#: entry field -> (required, description)
ENTRY_FIELDS: dict[str, tuple[bool, str]] = {
    name: (info.is_required(), info.description or "")
    for name, info in EntrySpec.model_fields.items()
}
CATALOG_ENV = "SCALEX_CATALOG"
#: the package whose data files are the catalogs shipped with scalex (catalogs/ of the source)
CATALOG_PACKAGE = "scalex.catalogs"
DEFAULT_CATALOG = "paper.yaml"


class CatalogError(ValueError):
    """An invalid catalog: the message names the file, the entry and the field."""


# ---------------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-2`` is a number, not a string) and no duplicate keys."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# ---------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class Entry:
    """A validated catalog entry (see the module docstring and catalogs/README.md)."""

    name: str
    description: str
    kind: str
    setup: Setup
    over: Mapping[str, tuple[Any, ...]]
    seeds: tuple[int, ...]
    alpha: tuple[float, ...]
    kind_options: Mapping[str, Any] = field(default_factory=dict)
    compare: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    analyses: tuple[str, ...] = ()
    summary_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    plots: tuple[PlotSpec, ...] = ()
    cost: str | None = None
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def alpha_array(self) -> NDArray[np.float64]:
        """The α grid as an array."""
        return np.asarray(self.alpha, dtype=float)

    @property
    def n_members(self) -> int:
        """Number of sweep members (grid points × seeds) of the main kind."""
        return math.prod(len(v) for v in self.over.values()) * len(self.seeds)

    def summary_line(self) -> str:
        """One line for `scalex list`: kind, members, cost and the description's first sentence."""
        text = self.description.strip()
        if len(text) > 90:
            text = text[:90].rsplit(" ", 1)[0] + " …"
        cost = self.cost or "cost not estimated"
        return f"{self.kind}, {self.n_members} member(s), {cost}: {text}"

    def run(self, **kwargs: Any) -> xr.Dataset:
        """`scalex.experiments.sweep.sweep` of this entry's main kind (``kwargs`` go to `sweep`)."""
        return sweep(
            self.kind, self.setup, dict(self.over), self.seeds, self.alpha_array,
            **{**dict(self.kind_options), **kwargs},
        )


@dataclass(frozen=True)
class Catalog(Mapping[str, Entry]):
    """A validated catalog file: ``entries`` by name, in file order."""

    path: str
    entries: Mapping[str, Entry]
    description: str = ""

    def __getitem__(self, name: str) -> Entry:
        if name not in self.entries:
            raise KeyError(
                f"{self.path}: no entry {name!r}; available: {', '.join(self.entries) or 'none'}"
            )
        return self.entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------------- files
def default_catalog_path() -> Path:
    """``$SCALEX_CATALOG`` if set, else the paper catalog shipped with scalex.

    The shipped catalogs are the package data of ``scalex.catalogs`` (read with
    `importlib.resources`), which is the catalogs/ folder of the source tree in both a wheel and
    an editable install. A source tree that is on ``sys.path`` without being installed has no
    ``scalex.catalogs`` package; its catalogs/ folder is used then.
    """
    env = os.environ.get(CATALOG_ENV)
    if env:
        return Path(env)
    try:
        packaged = resources.files(CATALOG_PACKAGE) / DEFAULT_CATALOG
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "catalogs" / DEFAULT_CATALOG
    return Path(str(packaged))


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Read and validate a catalog file (default `default_catalog_path`).

    Raises `FileNotFoundError` for a missing file and `CatalogError` for an invalid one.
    """
    path = Path(path) if path is not None else default_catalog_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such catalog file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise CatalogError(
            f"{path}: not UTF-8 text: byte {err.object[err.start:err.start + 1]!r} at line "
            f"{line} (offset {err.start}); save the catalog as UTF-8") from None
    except OSError as err:
        raise CatalogError(f"{path}: cannot be read: {err.strerror or err}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise CatalogError(f"{path}: not valid YAML: {err}") from None
    return parse_catalog(data, str(path))


# ---------------------------------------------------------------------------------- validation
def _field_name(loc: tuple[str | int, ...]) -> str:
    """``("over", "L", 2)`` -> ``over.L[2]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _catalog_error(err: ValidationError, source: str) -> CatalogError:
    loc, problem = first_problem(err)
    where = [source]
    if len(loc) >= 2 and loc[0] == "entries":
        where.append(f"entry {loc[1]!r}")
        loc = loc[2:]
    if loc:
        where.append(f"field {_field_name(loc)!r}")
    return CatalogError(": ".join([*where, problem]))


def parse_catalog(data: Any, source: str = "<catalog>") -> Catalog:
    """Validate a catalog already parsed from YAML (a mapping with ``entries``)."""
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as err:
        raise _catalog_error(err, source) from None
    entries = {name: _entry(name, e, data["entries"][name], source)
               for name, e in spec.entries.items()}
    return Catalog(source, entries, spec.description)


def _entry(name: str, spec: EntrySpec, raw: Mapping[str, Any], source: str) -> Entry:
    return Entry(
        name=name,
        description=spec.description,
        kind=spec.kind,
        setup=spec.setup,
        over=dict(spec.over),
        seeds=spec.seeds,
        alpha=tuple(float(a) for a in spec.alpha),
        kind_options=dict(spec.kind_options),
        compare=tuple((kind, dict(options)) for kind, options in spec.compare),
        analyses=tuple(spec.analyses),
        summary_options={k: dict(v) for k, v in spec.summary_options.items()},
        plots=tuple(PlotSpec(p.name, str(p.file), dict(p.model_extra or {})) for p in spec.plots),
        cost=spec.cost,
        source=source,
        raw=dict(raw),
    )


def alpha_grid(
    spec: Any, fail: Callable[[str, str], Exception] | None = None
) -> NDArray[np.float64]:
    """The α grid of a catalog ``alpha`` field: a list, or {start, stop, num, spacing, zero}.

    ``spacing: log`` (default) gives ``num`` log-spaced points from ``start`` > 0 to ``stop``;
    ``linear`` evenly spaced ones; ``zero: true`` prepends α = 0 (docs/theory.md §1). An
    invalid field raises ``fail(field, problem)``, by default a `CatalogError`.
    """
    fail = fail or (lambda f, p: CatalogError(f"field {f!r}: {p}"))
    try:
        return alpha_adapter().validate_python(spec)
    except ValidationError as err:
        loc, problem = first_problem(err)
        raise fail(_field_name(("alpha", *loc)), problem) from None
