"""The options of sweep kinds in a catalog: ``kind_options`` and ``compare[i].options``.

The options a kind takes are the keyword arguments of the function it runs (`Kind.requires`,
e.g. `scalex.engines.ode.solve_ode`), or of its registered member function, without those the
sweep fills in (setup, alpha, seed/seeds) and without the options of the run itself
(`SWEEP_OPTIONS`: ``scalex run`` and `scalex.experiments.sweep.sweep` take them).
`kind_options_model` is a strict pydantic model of them, typed by the function's annotations,
so that an unknown option or a value of the wrong type is refused before any member runs,
instead of failing every member at run time.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from importlib import import_module
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from scalex.experiments.kinds import KINDS
from scalex.experiments.validation import StrictModel, first_problem, problem, short_repr

__all__ = ["SWEEP_OPTIONS", "check_kind_options", "kind_option_names", "kind_options_model"]

#: keyword arguments the sweep itself takes (``scalex run`` options), not the kind's
SWEEP_OPTIONS = ("client", "store", "batch_size", "progress", "scheduler", "workers",
                 "scheduler_timeout", "per_group")
#: arguments the sweep fills in for every member
_MEMBER_ARGS = ("setup", "alpha", "seed", "seeds")


def kind_option_names(kind: str) -> set[str] | None:
    """Keyword arguments a kind accepts in ``kind_options``; None if any are accepted.

    From `inspect.signature` of the function the kind runs (``Kind.requires``, e.g.
    `scalex.engines.ode.solve_ode`), or of the registered member function itself, without the
    arguments the sweep fills in (setup, alpha, seed/seeds). None when the function takes
    ``**kwargs`` or cannot be imported (then `run_entry` reports the missing module).
    """
    params = _kind_parameters(kind)
    return None if params is None else {p.name for p in params}


def _kind_function(kind: str) -> Any:
    spec = KINDS[kind]
    if not spec.requires:
        return spec.func
    module, _, attr = spec.requires.partition(":")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _kind_parameters(kind: str) -> list[inspect.Parameter] | None:
    func = _kind_function(kind)
    try:
        params = inspect.signature(func).parameters.values() if func is not None else None
    except (TypeError, ValueError):
        return None
    if params is None or any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p for p in params if p.name not in _MEMBER_ARGS
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


_OPTION_MODELS: dict[Any, type[BaseModel]] = {}


def kind_options_model(kind: str) -> type[BaseModel] | None:
    """The model of ``kind_options`` for ``kind``: one field per `kind_option_names` that is
    not one of `SWEEP_OPTIONS`, typed by the function's annotations (strict: the value must
    already have that type); None if the kind takes any option."""
    key = KINDS[kind]
    if key in _OPTION_MODELS:
        return _OPTION_MODELS[key]
    params = _kind_parameters(kind)
    if params is None:
        return None
    try:
        hints = typing.get_type_hints(_kind_function(kind))
    except Exception:  # annotations that do not resolve are not checked
        hints = {}
    model = create_model(  # type: ignore[call-overload]
        f"{kind}_options", __base__=StrictModel,
        **{p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
           for p in params if p.name not in SWEEP_OPTIONS})
    model.unknown_text = f"unknown option of kind {kind!r}"
    model.sort_allowed = True
    _OPTION_MODELS[key] = model
    return model


def check_kind_options(options: Mapping[str, Any], kind: str, *at: str | int) -> None:
    """Refuse options the kind does not take (a typo would fail every member) or of a wrong
    type; ``at`` is where the options are in the entry."""
    for key in options:
        if key in SWEEP_OPTIONS:
            raise problem("is an option of the run (scalex run / sweep), not of the kind",
                          *at, key)
    model = kind_options_model(kind)
    if model is None:
        return
    try:
        model.model_validate(options)
    except ValidationError as err:
        loc, text = first_problem(err)
        if len(loc) > 1 and loc[0] in model.model_fields:  # inside a union: name the type
            hint = re.sub(r"\b[a-z_.]+\.(?=[A-Za-z])", "", str(model.model_fields[str(loc[0])]
                                                                 .annotation))
            text = f"must be of type {hint}, got {short_repr(options[str(loc[0])])}"
        raise problem(text, *at, *loc[:1]) from None
