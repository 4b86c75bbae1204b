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
`default_catalog_path`: ``$SCALEX_CATALOG``, else catalogs/paper.yaml) and `parse_catalog`
validate everything before anything runs. The YAML is read safely, with YAML 1.2 floats
(``1e-2`` is a number) and no duplicate keys. An unknown field, a wrong type, an invalid
`Setup` or an invalid grid point raises `CatalogError` naming the file, the entry and the
field. An `Entry` runs its main kind with `Entry.run`, a `scalex.experiments.sweep.sweep`.
Running a whole entry (comparisons, analyses, plots, report) is `scalex.experiments.runner`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml
from numpy.typing import NDArray

from scalex.common.alpha import check_alpha
from scalex.common.seeds import check_seeds
from scalex.experiments.grid import grid_members
from scalex.experiments.kinds import KINDS
from scalex.experiments.sweep import sweep
from scalex.model.setup import Setup

__all__ = [
    "ANALYSES",
    "ENTRY_FIELDS",
    "Catalog",
    "CatalogError",
    "Entry",
    "PlotSpec",
    "alpha_grid",
    "default_catalog_path",
    "load_catalog",
    "parse_catalog",
]

#: entry field -> (required, description)
ENTRY_FIELDS: dict[str, tuple[bool, str]] = {
    "description": (True, "what the entry reproduces, and any value chosen beyond the paper"),
    "kind": (True, "sweep kind: ode, simulate, linear or a registered one"),
    "setup": (False, "base Setup fields (plus spectrum_from for a real-data spectrum)"),
    "over": (False, "sweep axes {field: [values]}; 'K=M' sets two fields together"),
    "seeds": (False, "list of seeds, or an integer n for 0..n-1 (default [0])"),
    "alpha": (True, "{start, stop, num, spacing: log|linear, zero: bool} or a list of times"),
    "kind_options": (False, "keyword arguments passed to the kind"),
    "compare": (False, "other kinds (or {kind, options}) run on the same grid for comparison"),
    "analyses": (False, f"analyses to run: any of {('summary', 'escape')}"),
    "plots": (False, "scalex.viz.plots functions: names or {name, file, **options}"),
    "cost": (False, "an estimate of the run time, shown by `scalex list`"),
}
TOP_FIELDS = ("version", "description", "entries")
ALPHA_FIELDS = ("start", "stop", "num", "spacing", "zero")
SPECTRUM_FROM_FIELDS = ("data", "fit_range", "size", "stride", "images")
#: analysis name -> what it adds
ANALYSES = {
    "summary": "scalex.analysis.measures.summary: plateau length/height, exponents per member",
    "escape": "scalex.analysis.escape.escape: predicted plateau length per member",
}
CATALOG_ENV = "SCALEX_CATALOG"


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
class PlotSpec:
    """One plot of an entry: ``scalex.viz.plots.<name>(data, **options)`` saved as ``<file>.*``."""

    name: str
    file: str
    options: Mapping[str, Any] = field(default_factory=dict)


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


def default_catalog_path() -> Path:
    """``$SCALEX_CATALOG`` if set, else the paper catalog catalogs/paper.yaml of the checkout."""
    env = os.environ.get(CATALOG_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "catalogs" / "paper.yaml"


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


def parse_catalog(data: Any, source: str = "<catalog>") -> Catalog:
    """Validate a catalog already parsed from YAML (a mapping with ``entries``)."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"{source}: must be a mapping with an 'entries' field")
    unknown = [k for k in data if k not in TOP_FIELDS]
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level field(s) {unknown}; allowed: {list(TOP_FIELDS)}"
        )
    if data.get("version", 1) != 1:
        raise CatalogError(f"{source}: field 'version': must be 1, got {data['version']!r}")
    entries = data.get("entries")
    if not isinstance(entries, Mapping) or not entries:
        raise CatalogError(f"{source}: field 'entries': must be a non-empty mapping of entries")
    parsed = {}
    for name, raw in entries.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CatalogError(
                f"{source}: entry {name!r}: names may hold only letters, digits, '_', '.', '-'"
            )
        parsed[name] = _parse_entry(name, raw, source)
    return Catalog(source, parsed, str(data.get("description", "")))


class _Fail:
    """Builds the error messages of one entry."""

    def __init__(self, source: str, entry: str) -> None:
        self.prefix = f"{source}: entry {entry!r}"

    def __call__(self, field_name: str, problem: str) -> CatalogError:
        return CatalogError(f"{self.prefix}: field {field_name!r}: {problem}")


def _number(value: Any, name: str, fail: _Fail, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(name, f"must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise fail(name, f"must be an integer, got {value!r}")
    return int(value) if integer else float(value)


def alpha_grid(
    spec: Any, fail: Callable[[str, str], Exception] | None = None
) -> NDArray[np.float64]:
    """The α grid of a catalog ``alpha`` field: a list, or {start, stop, num, spacing, zero}.

    ``spacing: log`` (default) gives ``num`` log-spaced points from ``start`` > 0 to ``stop``;
    ``linear`` evenly spaced ones; ``zero: true`` prepends α = 0.
    """
    fail = fail or (lambda f, p: CatalogError(f"field {f!r}: {p}"))
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if not spec:
            raise fail("alpha", "must not be empty")
        values = [_number(v, f"alpha[{i}]", fail) for i, v in enumerate(spec)]  # type: ignore[arg-type]
        try:
            return check_alpha(values)
        except ValueError as err:
            raise fail("alpha", str(err).removeprefix("alpha: ")) from None
    if not isinstance(spec, Mapping):
        raise fail("alpha",
                   f"must be a list of times or a mapping {list(ALPHA_FIELDS)}, got {spec!r}")
    unknown = [k for k in spec if k not in ALPHA_FIELDS]
    if unknown:
        raise fail(f"alpha.{unknown[0]}", f"unknown field; allowed: {list(ALPHA_FIELDS)}")
    for key in ("start", "stop", "num"):
        if key not in spec:
            raise fail(f"alpha.{key}", "is required")
    start = _number(spec["start"], "alpha.start", fail)
    stop = _number(spec["stop"], "alpha.stop", fail)
    num = _number(spec["num"], "alpha.num", fail, integer=True)
    spacing = spec.get("spacing", "log")
    zero = spec.get("zero", False)
    if spacing not in ("log", "linear"):
        raise fail("alpha.spacing", f"must be 'log' or 'linear', got {spacing!r}")
    if not isinstance(zero, bool):
        raise fail("alpha.zero", f"must be true or false, got {zero!r}")
    if num < 2:
        raise fail("alpha.num", f"must be >= 2, got {num}")
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise fail("alpha.stop", f"must be finite and > start={start:g}, got {stop:g}")
    if spacing == "log":
        if start <= 0:
            raise fail("alpha.start", f"must be > 0 for log spacing, got {start:g}")
        a = np.logspace(np.log10(start), np.log10(stop), int(num))
    else:
        if start < 0:
            raise fail("alpha.start", f"must be >= 0, got {start:g}")
        a = np.linspace(start, stop, int(num))
    if zero and a[0] > 0:
        a = np.concatenate([[0.0], a])
    return a


def _setup_from(spec: Any, fail: _Fail) -> Setup:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise fail("setup", f"must be a mapping of Setup fields, got {spec!r}")
    allowed = {f.name for f in fields(Setup)} | {"spectrum_from"}
    for key in spec:
        if key not in allowed:
            raise fail(f"setup.{key}", f"unknown field; allowed: {sorted(allowed)}")
    params = dict(spec)
    real = params.pop("spectrum_from", None)
    if real is not None:
        params.update(_spectrum_from(real, params, fail))
    try:
        return Setup(**params)
    except (ValueError, TypeError) as err:
        raise _setup_error(err, "setup", fail) from None


def _setup_error(err: Exception, prefix: str, fail: _Fail) -> CatalogError:
    """Re-raise a Setup ValueError ("eta: must be ...") as field 'setup.eta'."""
    msg = str(err)
    match = re.match(r"^([A-Za-z_]+): (.*)$", msg, re.S)
    if match and match.group(1) in {f.name for f in fields(Setup)}:
        return fail(f"{prefix}.{match.group(1)}", match.group(2))
    return fail(prefix, msg)


def _spectrum_from(spec: Any, params: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """Explicit eigenvalues from a bundled real data set (`scalex.model.datasets.real_data`)."""
    if isinstance(spec, str):
        spec = {"data": spec}
    if not isinstance(spec, Mapping) or "data" not in spec:
        raise fail("setup.spectrum_from",
                   f"must be a data-set name or {{data: name, ...}}, got {spec!r}")
    unknown = [k for k in spec if k not in SPECTRUM_FROM_FIELDS]
    if unknown:
        raise fail(f"setup.spectrum_from.{unknown[0]}",
                   f"unknown field; allowed: {list(SPECTRUM_FROM_FIELDS)}")
    clash = sorted(set(params) & {"N", "L", "eigenvalues", "multiplicities", "beta"})
    if clash:
        raise fail(f"setup.{clash[0]}", "is set by spectrum_from and cannot be given too")
    try:
        from scalex.model import datasets
    except ImportError as err:
        raise fail("setup.spectrum_from", f"needs scalex.model.datasets ({err})") from None
    options = {k: v for k, v in spec.items() if k not in ("data",)}
    if "fit_range" in options:
        options["fit_range"] = tuple(options["fit_range"])
    try:
        data = datasets.real_data(spec["data"], **options)
    except (ValueError, TypeError) as err:
        raise fail("setup.spectrum_from", str(err)) from None
    return {"N": data.N, "eigenvalues": tuple(float(x) for x in data.eigenvalues),
            "spectrum_norm": "mean"}


def _parse_over(spec: Any, base: Setup, fail: _Fail) -> dict[str, tuple[Any, ...]]:
    from scalex.model.axes import parse_over as check_axes

    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise fail("over", f"must be a mapping {{field: [values]}}, got {spec!r}")
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in spec.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise fail(f"over.{key}", f"must be a list of values, got {values!r}")
        out[str(key)] = tuple(values)
        try:
            check_axes({str(key): values})
        except ValueError as err:
            raise fail(f"over.{key}", re.sub(r"^over(\[.*?\])?: ", "", str(err))) from None
    try:
        grid_members(base, out, [0])
    except (ValueError, TypeError) as err:
        msg = re.sub(r"^over(\[.*?\])?: ", "", str(err))
        # Name the axis whose value the Setup rejected ("L: must divide N ...").
        bad = re.search(r"is not a valid Setup: ([A-Za-z_]+): ", msg)
        axis = next((k for k in out if bad and bad.group(1) in k.split("=")), None)
        raise fail(f"over.{axis}" if axis else "over", msg) from None
    return out


def _parse_seeds(spec: Any, fail: _Fail) -> tuple[int, ...]:
    if spec is None:
        return (0,)
    if isinstance(spec, float) or (isinstance(spec, Sequence) and not isinstance(spec, str)
                                   and any(isinstance(s, float) for s in spec)):
        raise fail("seeds", f"must be an integer n or a list of integers >= 0, got {spec!r}")
    try:
        return check_seeds(spec)
    except ValueError as err:
        raise fail("seeds", str(err).removeprefix("seeds: ")) from None


#: keyword arguments the sweep itself takes (``scalex run`` options), not the kind's
SWEEP_OPTIONS = ("client", "store", "batch_size", "progress", "scheduler", "workers",
                 "scheduler_timeout")


def kind_option_names(kind: str) -> set[str] | None:
    """Keyword arguments a kind accepts in ``kind_options``; None if any are accepted.

    From `inspect.signature` of the function the kind runs (``Kind.requires``, e.g.
    `scalex.engines.ode.solve_ode`), or of the registered member function itself, without the
    arguments the sweep fills in (setup, alpha, seed/seeds). None when the function takes
    ``**kwargs`` or cannot be imported (then `run_entry` reports the missing module).
    """
    import inspect
    from importlib import import_module

    spec = KINDS[kind]
    func: Any = spec.func
    if spec.requires:
        module, _, attr = spec.requires.partition(":")
        try:
            func = getattr(import_module(module), attr)
        except (ImportError, AttributeError):
            return None
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    skip = {"setup", "alpha", "seed", "seeds"}
    return {p.name for p in params if p.name not in skip
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _check_kind_options(options: Mapping[Any, Any], kind: str, field_name: str,
                        fail: _Fail) -> dict[str, Any]:
    """Refuse option names the kind's function does not take (a typo would fail every member)."""
    allowed = kind_option_names(kind)
    for key in options:
        if not isinstance(key, str):
            raise fail(field_name, f"keys must be option names, got {key!r}")
        if key in SWEEP_OPTIONS:
            raise fail(f"{field_name}.{key}",
                       "is an option of the run (scalex run / sweep), not of the kind")
        if allowed is not None and key not in allowed:
            raise fail(f"{field_name}.{key}",
                       f"unknown option of kind {kind!r}; allowed: {sorted(allowed)}")
    return dict(options)


def _parse_names(spec: Any, name: str, fail: _Fail) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise fail(name, f"must be a list, got {spec!r}")
    return list(spec)


def _parse_plots(spec: Any, fail: _Fail) -> tuple[PlotSpec, ...]:
    plots = []
    files: set[str] = set()
    for i, item in enumerate(_parse_names(spec, "plots", fail)):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise fail(f"plots[{i}]",
                       f"must be a plot name or {{name: ..., **options}}, got {item!r}")
        name = item["name"]
        if not name.isidentifier() or name.startswith("_"):
            raise fail(f"plots[{i}].name",
                       f"must be a scalex.viz.plots function name, got {name!r}")
        file = item.get("file", name)
        if not isinstance(file, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", file):
            raise fail(f"plots[{i}].file", f"must be a plain file stem, got {file!r}")
        if file in files:
            raise fail(f"plots[{i}].file",
                       f"{file!r} is used twice; give the plots distinct 'file's")
        files.add(file)
        options = {k: v for k, v in item.items() if k not in ("name", "file")}
        plots.append(PlotSpec(name, file, options))
    return tuple(plots)


def _parse_compare(spec: Any, main_kind: str, fail: _Fail) -> tuple[tuple[str, dict], ...]:
    out = []
    for i, item in enumerate(_parse_names(spec, "compare", fail)):
        options: Any = {}
        if isinstance(item, Mapping):
            unknown = [k for k in item if k not in ("kind", "options")]
            if unknown:
                raise fail(f"compare[{i}].{unknown[0]}",
                           "unknown field; allowed: ['kind', 'options']")
            options = item.get("options") or {}
            item = item.get("kind")
        if not isinstance(item, str) or item not in KINDS:
            raise fail(f"compare[{i}]", f"must be one of {sorted(KINDS)}, got {item!r}")
        if item == main_kind:
            raise fail(f"compare[{i}]", f"{item!r} is already the entry's kind")
        if not isinstance(options, Mapping):
            raise fail(f"compare[{i}].options", f"must be a mapping, got {options!r}")
        out.append((item, _check_kind_options(options, item, f"compare[{i}].options", fail)))
    return tuple(out)


def _parse_entry(name: str, raw: Any, source: str) -> Entry:
    fail = _Fail(source, name)
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{source}: entry {name!r}: must be a mapping of fields, got {raw!r}")
    for key in raw:
        if key not in ENTRY_FIELDS:
            raise fail(str(key), f"unknown field; allowed: {list(ENTRY_FIELDS)}")
    for key, (required, _doc) in ENTRY_FIELDS.items():
        if required and key not in raw:
            raise fail(key, "is required")
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise fail("description", "must be a non-empty string")
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise fail("kind", f"must be one of {sorted(KINDS)}, got {kind!r}")
    setup = _setup_from(raw.get("setup"), fail)
    over = _parse_over(raw.get("over"), setup, fail)
    seeds = _parse_seeds(raw.get("seeds"), fail)
    alpha = alpha_grid(raw["alpha"], fail)
    kind_options = raw.get("kind_options") or {}
    if not isinstance(kind_options, Mapping):
        raise fail("kind_options", f"must be a mapping of keyword arguments, got {kind_options!r}")
    kind_options = _check_kind_options(kind_options, kind, "kind_options", fail)
    analyses = _parse_names(raw.get("analyses"), "analyses", fail)
    for i, item in enumerate(analyses):
        if not isinstance(item, str) or item not in ANALYSES:
            raise fail(f"analyses[{i}]", f"must be one of {list(ANALYSES)}, got {item!r}")
    cost = raw.get("cost")
    if cost is not None and not isinstance(cost, str):
        raise fail("cost", f"must be a string, got {cost!r}")
    return Entry(
        name=name,
        description=" ".join(description.split()),
        kind=kind,
        setup=setup,
        over=over,
        seeds=seeds,
        alpha=tuple(float(a) for a in alpha),
        kind_options=dict(kind_options),
        compare=_parse_compare(raw.get("compare"), kind, fail),
        analyses=tuple(analyses),
        plots=_parse_plots(raw.get("plots"), fail),
        cost=cost,
        source=source,
        raw=dict(raw),
    )


