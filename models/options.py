"""Options of a design-axis entry, declared and checked: `Options`, the pydantic model of one
entry's options (types, ranges, rules between them), `option` to declare one, and the checks that
name every problem with its key path, the value given and what is allowed (`option_problems`,
`check_options`, `Problems`, `refuse`). The declarations themselves are `models.axes`."""

from typing import ClassVar, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


def option(description=None, **constraints):
    """An option's declaration: its constraints (pydantic's ge, gt, le, lt, ...), and no default of its own."""
    return Field(None, description=description, **constraints)


class Options(BaseModel):
    """The options of one entry, checked strictly (an integer is a number, but true is not); each
    pair (low, high) of `ordered` must be in order where both are given."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def in_order(self):
        for low, high in self.ordered:
            if getattr(self, low) is not None and getattr(self, high) is not None and not getattr(self, low) < getattr(self, high):
                raise ValueError(f"{low} must be below {high}")
        return self


NOUNS = {int: "integer", float: "number", str: "string", list: "list"}
BOUNDS = {Ge: "<=", Gt: "<", Le: "<=", Lt: "<"}


def requirement(name, field):
    """What an option must be, in words: its description, or its type and range (e.g. 'a number
    with 0 <= eta <= 1', "one of 'bh1', 'bh2'", 'a positive, finite number')."""
    if field.description:
        return field.description
    if get_origin(field.annotation) is Literal:
        return f"one of {', '.join(repr(value) for value in get_args(field.annotation))}"
    if field.annotation is bool:
        return "true or false"
    lower = next((m for m in field.metadata if isinstance(m, Ge | Gt)), None)
    upper = next((m for m in field.metadata if isinstance(m, Le | Lt)), None)
    positive = isinstance(lower, Gt) and lower.gt == 0 and upper is None
    finite = any(getattr(m, "allow_inf_nan", True) is False for m in field.metadata)
    described = ", ".join(["positive"] * positive + ["finite"] * finite) + " " + NOUNS[get_origin(field.annotation) or field.annotation]
    words = ("an " if described.lstrip()[0] in "aeiou" else "a ") + described.lstrip()
    if positive or (lower is None and upper is None):
        return words
    low = f"{lower.ge if isinstance(lower, Ge) else lower.gt} {BOUNDS[type(lower)]} " if lower else ""
    high = f" {BOUNDS[type(upper)]} {upper.le if isinstance(upper, Le) else upper.lt}" if upper else ""
    return f"{words} with {low}{name}{high}"


def option_problems(kind, name, entry, options):
    """(key path below the options, value, message) of each option that `entry` (`kind` `name`) does not
    accept: an unknown name, a value of the wrong type or range, a broken rule between options."""
    try:
        entry.options.model_validate(options)
    except ValidationError as error:
        fields = entry.options.model_fields
        unknown = sorted(str(e["loc"][0]) for e in error.errors() if e["type"] == "extra_forbidden")
        if unknown:
            yield (), options, f"{kind} {name!r} does not accept option(s) {unknown}; allowed: {sorted(fields)}"
        for e in error.errors():
            if e["type"] == "extra_forbidden":
                continue
            if e["loc"]:
                key = e["loc"][0]
                yield (key,), options[key], f"{kind} {name!r}: option {key} must be {requirement(key, fields[key])}"
            else:
                yield (), options, f"{kind} {name!r}: {e['msg'].removeprefix('Value error, ')}"


def check_options(kind, name, entry, options):
    """Raise a ValueError that names every problem of `options` for `entry`, if it has any."""
    problems = [f"{message} (got {value!r})" for _, value, message in option_problems(kind, name, entry, options)]
    if problems:
        raise ValueError("; ".join(problems))


class Problems(ValueError):
    """What a check found: (key path below the checked model, value given there, message) each; a
    pydantic validator raises it so that every message keeps its exact key path."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(message for _, _, message in problems))


def refuse(problems):
    """Raise `Problems` if the iterable `problems` yields any."""
    problems = list(problems)
    if problems:
        raise Problems(problems)
