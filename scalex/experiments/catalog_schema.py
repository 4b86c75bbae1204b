"""The schema of experiment catalogs, as pydantic models (the format: catalogs/README.md).

`CatalogSpec` is a whole file, `EntrySpec` one entry. Every model refuses keys it does not
know, naming the allowed ones (`scalex.experiments.validation.StrictModel`); so does the model
of each kind's options (`scalex.experiments.kind_options`). The shapes (types, required
fields, shorthands such as ``seeds: 3``) are checked by the models; the values by the code
that owns them: `Setup` for ``setup`` and for every grid point of ``over``
(`scalex.experiments.grid.grid_members`), `scalex.model.axes.parse_over` for the axes,
`scalex.common.seeds.check_seeds` and `scalex.common.alpha.check_alpha` for seeds and times
(docs/theory.md §1 and §7), `scalex.model.datasets.real_data` for ``spectrum_from``.

A validated `EntrySpec` holds the built values: ``setup`` is a `Setup`, ``alpha`` a float
array, ``over`` maps axes to tuples of values, ``compare`` holds ``(kind, options)`` pairs.
Errors are worded by `scalex.experiments.validation.first_problem`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    create_model,
    model_validator,
)

from scalex.common.alpha import check_alpha
from scalex.common.seeds import check_seeds
from scalex.experiments.grid import grid_members
from scalex.experiments.kind_options import check_kind_options
from scalex.experiments.kinds import KINDS
from scalex.experiments.validation import (
    StrictModel,
    drop_prefix,
    one_of,
    problem,
    short_repr,
)
from scalex.model.axes import parse_over
from scalex.model.setup import Setup

__all__ = [
    "ANALYSES",
    "AlphaRange",
    "CatalogSpec",
    "CompareSpec",
    "EntrySpec",
    "PlotItem",
    "SetupFields",
    "SpectrumFrom",
    "alpha_adapter",
]

#: analysis name -> what it adds
ANALYSES = {
    "summary": "scalex.analysis.measures.summary: plateau length/height, exponents per member",
    "escape": "scalex.analysis.escape.escape: predicted plateau length per member",
}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _none_to(default: Any) -> BeforeValidator:
    """``null`` in the YAML means the empty ``default()``."""
    return BeforeValidator(lambda value: default() if value is None else value)


def _form(value: Any) -> str | None:
    if isinstance(value, str):
        return "(name)"
    if isinstance(value, list):
        return "(list)"
    return "(mapping)" if isinstance(value, dict) else None


KindName = Annotated[Any, AfterValidator(one_of(lambda: KINDS, order=True))]


# ---------------------------------------------------------------------------------- alpha
def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class AlphaRange(StrictModel):
    """``{start, stop, num, spacing, zero}``: ``num`` points from ``start`` to ``stop``."""

    start: float
    stop: float
    num: Annotated[int, BeforeValidator(_integral)]
    spacing: Literal["log", "linear"] = "log"
    zero: bool = False

    def grid(self) -> NDArray[np.float64]:
        """The times: log (``start`` > 0) or evenly spaced, with α = 0 in front if ``zero``."""
        start, stop, num = self.start, self.stop, self.num
        if num < 2:
            raise problem(f"must be >= 2, got {num}", "num")
        if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
            raise problem(f"must be finite and > start={start:g}, got {stop:g}", "stop")
        if self.spacing == "log":
            if start <= 0:
                raise problem(f"must be > 0 for log spacing, got {start:g}", "start")
            a = np.logspace(np.log10(start), np.log10(stop), num)
        else:
            if start < 0:
                raise problem(f"must be >= 0, got {start:g}", "start")
            a = np.linspace(start, stop, num)
        return np.concatenate([[0.0], a]) if self.zero and a[0] > 0 else a


def _times(value: list[float] | AlphaRange) -> NDArray[np.float64]:
    if isinstance(value, AlphaRange):
        return value.grid()
    try:
        return check_alpha(value)
    except ValueError as err:
        raise problem(drop_prefix(err, "alpha")) from None


AlphaField = Annotated[
    Annotated[list[float], Tag("(list)")] | Annotated[AlphaRange, Tag("(mapping)")],
    Discriminator(_form, custom_error_type="form", custom_error_message=(
        f"must be a list of times or a mapping {list(AlphaRange.model_fields)}")),
    AfterValidator(_times),
]


@cache
def alpha_adapter() -> TypeAdapter[Any]:
    """A `pydantic.TypeAdapter` for one ``alpha`` field: its ``validate_python`` gives the times."""
    return TypeAdapter(AlphaField, config=ConfigDict(strict=True))


# ---------------------------------------------------------------------------------- setup
class SpectrumFrom(StrictModel):
    """``setup.spectrum_from``: a bundled data set of `scalex.model.datasets.real_data`."""

    data: str
    fit_range: Annotated[list[int], Field(min_length=2, max_length=2)] | None = None
    size: int | None = None
    stride: int | None = None
    images: list[str] | None = None


_SETUP_FIELDS = [f.name for f in fields(Setup)]
_SPECTRUM_SETS = ("N", "L", "eigenvalues", "multiplicities", "beta")
SetupFields = create_model(  # type: ignore[call-overload]
    "SetupFields", __base__=StrictModel,
    spectrum_from=(Annotated[
        Annotated[str, Tag("(name)")] | Annotated[SpectrumFrom, Tag("(mapping)")],
        Discriminator(_form, custom_error_type="form",
                      custom_error_message="must be a data-set name or {data: name, ...}"),
    ] | None, None),
    **{name: (Any, None) for name in _SETUP_FIELDS},
)
SetupFields.sort_allowed = True


def _spectrum(spec: str | SpectrumFrom) -> dict[str, Any]:
    """N and the eigenvalues of a bundled data set (docs/theory.md §4.7)."""
    if isinstance(spec, str):
        spec = SpectrumFrom(data=spec)
    try:
        from scalex.model import datasets
    except ImportError as err:
        raise problem(f"needs scalex.model.datasets ({err})", "spectrum_from") from None
    options: dict[str, Any] = {k: getattr(spec, k) for k in spec.model_fields_set - {"data"}}
    if "fit_range" in options:
        options["fit_range"] = tuple(options["fit_range"])
    try:
        data = datasets.real_data(spec.data, **options)
    except (ValueError, TypeError) as err:
        raise problem(str(err), "spectrum_from") from None
    return {"N": data.N, "eigenvalues": tuple(float(x) for x in data.eigenvalues),
            "spectrum_norm": "mean"}


def _setup(spec: Any) -> Setup:
    """The `Setup` of a ``setup`` field; its own validation names the field."""
    params = {k: getattr(spec, k) for k in spec.model_fields_set} if spec is not None else {}
    real = params.pop("spectrum_from", None)
    if real is not None:
        clash = sorted(set(params) & set(_SPECTRUM_SETS))
        if clash:
            raise problem("is set by spectrum_from and cannot be given too", clash[0])
        params.update(_spectrum(real))
    try:
        return Setup(**params)
    except (ValueError, TypeError) as err:
        match = re.match(r"^([A-Za-z_]+): (.*)$", str(err), re.S)
        if match and match.group(1) in _SETUP_FIELDS:
            raise problem(match.group(2), match.group(1)) from None
        raise problem(str(err)) from None


# ---------------------------------------------------------------------------------- over, seeds
def _axis_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise problem(f"must be a number or a string, got {short_repr(value)}")
    return value


def _axes(over: dict[str, list[Any]]) -> dict[str, tuple[Any, ...]]:
    for key, values in over.items():
        try:
            parse_over({key: values})
        except ValueError as err:
            raise problem(drop_prefix(err, "over"), key) from None
    return {key: tuple(values) for key, values in over.items()}


def _seeds(value: Any) -> tuple[int, ...]:
    if value is None:
        return (0,)
    if isinstance(value, float) or (isinstance(value, list)
                                    and any(isinstance(s, float) for s in value)):
        raise problem(f"must be an integer n or a list of integers >= 0, got {short_repr(value)}")
    try:
        return check_seeds(value)
    except ValueError as err:
        raise problem(drop_prefix(err, "seeds")) from None


# ---------------------------------------------------------------------------------- plots
class PlotItem(StrictModel):
    """One plot: a `scalex.viz.plots` function ``name``, saved as ``file``; the other keys
    (``model_extra``) are its options."""

    model_config = ConfigDict(extra="allow")

    name: str
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise problem("must be a plot name or {name: ..., **options}, got "
                          + short_repr(data))
        name = data["name"]
        if not name.isidentifier() or name.startswith("_"):
            raise problem(f"must be a scalex.viz.plots function name, got {name!r}", "name")
        file = data.get("file", name)
        if not isinstance(file, str) or not _NAME.fullmatch(file):
            raise problem(f"must be a plain file stem, got {short_repr(file)}", "file")
        return {**data, "file": file}


def _distinct_files(plots: list[PlotItem]) -> list[PlotItem]:
    seen: set[str] = set()
    for i, plot in enumerate(plots):
        if plot.file in seen:
            raise problem(f"{plot.file!r} is used twice; give the plots distinct 'file's",
                          i, "file")
        seen.add(str(plot.file))
    return plots


# ---------------------------------------------------------------------------------- entries
class CompareSpec(StrictModel):
    """``{kind: NAME, options: {...}}``: another kind run on the entry's grid."""

    kind: KindName
    options: Annotated[dict[str, Any], _none_to(dict)] = Field(default_factory=dict)


CompareItem = Annotated[
    Annotated[KindName, Tag("(name)")] | Annotated[CompareSpec, Tag("(mapping)")],
    Discriminator(_form, custom_error_type="form", custom_error_message=(
        "must be a kind name or {kind: NAME, options: {...}}")),
    AfterValidator(lambda v: (v.kind, v.options) if isinstance(v, CompareSpec) else (v, {})),
]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem("must be a non-empty string")
    return " ".join(value.split())


Analysis = Annotated[Any, AfterValidator(one_of(lambda: ANALYSES, order=False))]

#: summary_options keys: the measure each dict of options goes to (by its public function)
SUMMARY_PARTS = {"plateau": "plateau", "fit": "fit_power_law", "convergence": "convergence"}
#: options `scalex.analysis.measures.summary` sets for all three parts itself
SUMMARY_SETS = ("dim", "baseline", "seed_mean")


def _summary_options(value: dict[str, Any]) -> dict[str, Any]:
    """{plateau|fit|convergence: {option: value}} for `scalex.analysis.measures.summary`,
    each option checked against the keyword parameters of its measure."""
    import inspect

    from scalex.analysis import measures

    for part, options in value.items():
        if part not in SUMMARY_PARTS:
            raise problem(f"unknown part {part!r}; allowed: {sorted(SUMMARY_PARTS)}")
        if not isinstance(options, dict):
            raise problem(f"{part}: must be a mapping of options, got {short_repr(options)}")
        params = list(inspect.signature(getattr(measures, SUMMARY_PARTS[part])).parameters)
        # every option after the data, except those `summary` passes itself
        allowed = sorted(set(params[1:]) - set(SUMMARY_SETS))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise problem(f"{part}: unknown option(s) {unknown}; allowed: {allowed}")
    return value


class EntrySpec(StrictModel):
    """One catalog entry (catalogs/README.md, "Entry fields")."""

    description: Annotated[Any, AfterValidator(_text)] = Field(
        description="what the entry reproduces, and any value chosen beyond the paper")
    kind: KindName = Field(description="sweep kind: ode, simulate, linear or a registered one")
    setup: Annotated[SetupFields | None, AfterValidator(_setup)] = Field(  # type: ignore[valid-type]
        None, validate_default=True,
        description="base Setup fields (plus spectrum_from for a real-data spectrum)")
    over: Annotated[dict[str, list[Annotated[Any, AfterValidator(_axis_value)]]],
                    _none_to(dict), AfterValidator(_axes)] = Field(
        {}, description="sweep axes {field: [values]}; 'K=M' sets two fields together")
    seeds: Annotated[Any, AfterValidator(_seeds)] = Field(
        (0,), description="list of seeds, or an integer n for 0..n-1 (default [0])")
    alpha: AlphaField = Field(
        description="{start, stop, num, spacing: log|linear, zero: bool} or a list of times")
    kind_options: Annotated[dict[str, Any], _none_to(dict)] = Field(
        {}, description="keyword arguments passed to the kind")
    compare: Annotated[list[CompareItem], _none_to(list)] = Field(
        [], description="other kinds (or {kind, options}) run on the same grid for comparison")
    analyses: Annotated[list[Analysis], _none_to(list)] = Field(
        [], description=f"analyses to run: any of {tuple(ANALYSES)}")
    summary_options: Annotated[dict[str, Any], _none_to(dict),
                               AfterValidator(_summary_options)] = Field(
        {}, description="options of the summary analysis: {plateau|fit|convergence: {...}}, "
                        "e.g. {fit: {alpha_min: 3e3}} to fit only the late decay")
    plots: Annotated[list[PlotItem], _none_to(list), AfterValidator(_distinct_files)] = Field(
        [], description="scalex.viz.plots functions: names or {name, file, **options}")
    cost: str | None = Field(
        None, description="an estimate of the run time, shown by `scalex list`")

    @model_validator(mode="after")
    def _fits_together(self) -> EntrySpec:
        """Every grid point is a valid Setup; the options fit their kinds."""
        try:
            grid_members(self.setup, self.over, [0])
        except (ValueError, TypeError) as err:
            text = drop_prefix(err, "over")
            # Name the axis whose value the Setup rejected ("L: must divide N ...").
            bad = re.search(r"is not a valid Setup: ([A-Za-z_]+): ", text)
            axis = next((k for k in self.over if bad and bad.group(1) in k.split("=")), None)
            raise problem(text, "over", *([axis] if axis else [])) from None
        check_kind_options(self.kind_options, self.kind, "kind_options")
        for i, (kind, options) in enumerate(self.compare):
            if kind == self.kind:
                raise problem(f"{kind!r} is already the entry's kind", "compare", i)
            check_kind_options(options, kind, "compare", i, "options")
        return self


def _entry_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise problem("names may hold only letters, digits, '_', '.', '-'")
    return name


def _entries(value: Any) -> Any:
    if not isinstance(value, Mapping) or not value:
        raise problem("must be a non-empty mapping of entries")
    return dict(value)


class CatalogSpec(StrictModel):
    """A catalog file: ``version`` (1), ``description`` and the ``entries`` by name."""

    unknown_text: ClassVar[str] = "unknown top-level field"

    version: Literal[1] = 1
    description: str = ""
    entries: Annotated[dict[Annotated[Any, AfterValidator(_entry_name)], EntrySpec],
                       BeforeValidator(_entries)] = Field(None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise problem(f"must be a mapping with an 'entries' field, got {short_repr(data)}")
        return dict(data)
