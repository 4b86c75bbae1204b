"""Validation with pydantic, worded for people: strict models that refuse unknown keys, and
errors that carry their place in the input and one message.

`StrictModel` is the base of the catalog models (`scalex.experiments.catalog_schema`) and of
the models of kind options (`scalex.experiments.kind_options`): strict types (a string is not
a number), and an unknown key is refused naming the allowed ones. Validators raise `problem`
(a message, and where below the validated value it applies); `first_problem` turns a
`pydantic.ValidationError` into a location (keys and list indices) and one message, e.g.
``(("entries", "fig1", "over", "L"), "must be a list, got 4")``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

__all__ = ["TAGS", "Problem", "StrictModel", "drop_prefix", "first_problem", "one_of",
           "problem", "short_repr"]


class Problem(ValueError):
    """A validation error with our own message, at ``at`` below the value being validated
    (pydantic reports a ValueError raised by a validator at that value)."""

    def __init__(self, text: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(text)
        self.at = at


def problem(text: str, *at: str | int) -> Problem:
    """`Problem` ``text`` at ``at``: ``raise problem("must be > 0", "start")``."""
    return Problem(text, at)


# ---------------------------------------------------------------------------------- messages
_TYPE_TEXT = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "literal_error": "must be {expected}",
    "greater_than_equal": "must be >= {ge}",
    "too_short": "must hold at least {min_length} item(s)",
    "too_long": "must hold at most {max_length} item(s)",
    "is_instance_of": "must be a {class} object, which a YAML catalog cannot give",
}
#: not places in the input: the union tags of the models (`pydantic.Tag`: the form a value
#: took) and "[key]" (an error in a mapping's key)
TAGS = ("(list)", "(mapping)", "(name)", "[key]")


def short_repr(value: Any, limit: int = 100) -> str:
    """``repr(value)``, cut after ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"


def first_problem(err: ValidationError) -> tuple[tuple[str | int, ...], str]:
    """The location (keys and list indices) and the message of the first error in ``err``."""
    e = err.errors(include_url=False)[0]
    ctx = e.get("ctx") or {}
    loc = tuple(part for part in e["loc"] if part not in TAGS)
    if e["type"] == "value_error":
        error = ctx.get("error")
        return (*loc, *getattr(error, "at", ())), str(error or e["msg"])
    text = _TYPE_TEXT[e["type"]].format(**ctx) if e["type"] in _TYPE_TEXT else e["msg"]
    if e["type"] not in ("missing", "extra_forbidden"):
        text += f", got {short_repr(e['input'])}"
    return loc, text


def drop_prefix(err: Exception, *names: str) -> str:
    """A shared validator's message without its leading ``name: ``/``name[...]: ``."""
    text = str(err)
    for name in names:
        text = re.sub(rf"^{re.escape(name)}(\[.*?\])?: ", "", text)
    return text


# ---------------------------------------------------------------------------------- base model
class StrictModel(BaseModel):
    """Strict types; unknown keys are refused, naming the allowed ones."""

    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)
    unknown_text: ClassVar[str] = "unknown field"
    sort_allowed: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and cls.model_config.get("extra") == "forbid":
            allowed = sorted(cls.model_fields) if cls.sort_allowed else list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    raise problem(f"{cls.unknown_text}; allowed: {allowed}", key)
        return data


def one_of(choices: Callable[[], Mapping[str, Any]], *, order: bool) -> Callable[[Any], Any]:
    """A validator: the value must be a key of ``choices()`` (read at validation time)."""
    def check(value: Any) -> Any:
        allowed = choices()
        if not isinstance(value, str) or value not in allowed:
            names = sorted(allowed) if order else list(allowed)
            raise problem(f"must be one of {names}, got {short_repr(value)}")
        return value
    return check
