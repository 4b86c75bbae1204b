"""Groups of keyword arguments that several functions share, declared once.

Some sets of keyword arguments travel together through several functions: the plateau
criterion (A2) of docs/analysis.md is taken by `scalex.analysis.plateau`, by its 1-D kernel
and by the escape theory `scalex.escape`; the frame of a learning-curve plot by both curve
plots of `scalex.viz`. Such a set is a frozen dataclass derived from `KeywordGroup`: each
field holds its name, its default and, where it has one, its check (`positive`, `above`).
`takes` gives a function the fields of a group as ordinary keyword-only parameters, with their
defaults (callers, `inspect.signature` and ``help`` see them one by one), while the body
receives one instance of the group. The defaults and checks thus live in one place, and a
function that hands the group on passes ``**group.keywords()``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "KeywordGroup",
    "above",
    "must_be_fraction",
    "must_be_positive",
    "positive",
    "takes",
]

R = TypeVar("R")


def must_be_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is finite and > 0, naming it ``name``."""
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")


def must_be_fraction(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is in [0, 1), naming it ``name``."""
    if not (np.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"{name}: must be in [0, 1), got {value!r}")


def positive(default: float) -> Any:
    """A field of a `KeywordGroup` that must be finite and > 0."""
    return field(default=default, metadata={"check": must_be_positive})


def above(default: float, bound: float) -> Any:
    """A field of a `KeywordGroup` that must exceed ``bound``."""

    def check(name: str, value: float) -> None:
        if not value > bound:
            raise ValueError(f"{name}: must be > {bound}, got {value!r}")

    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class KeywordGroup:
    """Base of a frozen dataclass of keyword arguments (see the module docstring)."""

    def check(self) -> None:
        """Raise ValueError naming the first field, in order, that fails its check; then
        `check_together`."""
        for f in fields(self):
            rule = f.metadata.get("check")
            if rule is not None:
                rule(f.name, getattr(self, f.name))
        self.check_together()

    def check_together(self) -> None:
        """Checks that relate several fields (none here; subclasses add theirs)."""

    def keywords(self) -> dict[str, Any]:
        """The fields as keyword arguments, in their order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def takes(**groups: type[KeywordGroup]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a function the fields of keyword groups as keyword-only parameters.

    The function is written with one keyword-only parameter per group (``criterion:
    PlateauCriterion`` for ``takes(criterion=PlateauCriterion)``). The decorated function has,
    in its place, the fields of the group as keyword-only parameters with their defaults, and
    calls the function with the group built from them; the group itself is no parameter of
    the decorated function. Checks are left to the function (``criterion.check()``), so that
    it decides where it raises.
    """

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        sig = inspect.signature(func)
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            group = groups.get(p.name)
            if group is None:
                params.append(p)
                continue
            if p.kind is not p.KEYWORD_ONLY:
                raise TypeError(f"{func.__name__}: {p.name} must be a keyword-only parameter")
            params += [inspect.Parameter(f.name, p.KEYWORD_ONLY, default=f.default,
                                         annotation=f.type) for f in fields(group)]
        names = [p.name for p in params]
        if set(groups) - set(sig.parameters) or len(set(names)) != len(names):
            raise TypeError(f"{func.__name__}: every group must stand for one parameter, and "
                            "its fields must not repeat another parameter")
        members = {name: frozenset(f.name for f in fields(group))
                   for name, group in groups.items()}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            for name, group in groups.items():
                if name in kwargs:
                    raise TypeError(f"{func.__name__}() got an unexpected keyword argument "
                                    f"{name!r}")
                kwargs[name] = group(**{k: kwargs.pop(k) for k in members[name] & kwargs.keys()})
            return func(*args, **kwargs)

        new = sig.replace(parameters=params)
        wrapper.__signature__ = new  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **{p.name: p.annotation for p in params if p.annotation is not p.empty},
            **({"return": new.return_annotation} if new.return_annotation is not new.empty
               else {}),
        }
        return wrapper

    return decorate
