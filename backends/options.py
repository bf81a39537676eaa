"""A backend's options checked before anything is built, sent or loaded.

Names are checked against what the sampler declares: the parameters of its ``sample`` (and
``sample_batch``) method and of its factory, read from the class without building it (building
a QPU client already contacts the service). Values are checked against those signatures' type
annotations (``int``, ``float``, ``Literal[...]``, ``Optional``, unions, sequences), so
``num_reads="abc"`` or ``timeout="500"`` fail at once with the parameter's name. Counts must be
at least 1 and numbers finite.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qubo_prune.backends.errors import BackendError

__all__ = ["OptionError", "SignatureOptions", "check_value"]

# Parameters that count something: a value below 1 is always a mistake.
COUNTS = frozenset({"num_reads", "reps", "shots", "popsize"})


class OptionError(BackendError):
    """An option's name or value is wrong; the message names it and says what it takes."""


def _describe(value: Any) -> str:
    return f"{value!r} (a {type(value).__name__})"


def _conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation``; unknown annotations accept anything."""
    if annotation in (Any, inspect.Parameter.empty, object):
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is collections.abc.Callable:
        return callable(value)
    if annotation is bool:
        return isinstance(value, (bool, np.bool_))
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_conforms, value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _shown(annotation: Any) -> str:
    """An annotation in words: ``int or None``, ``one of 'linear', 'geometric'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_shown(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        return f"a {getattr(origin, '__name__', str(origin))}"
    return getattr(annotation, "__name__", str(annotation))


def check_value(name: str, value: Any, annotation: Any, solver: str) -> None:
    """Raise :class:`OptionError` when ``value`` does not fit ``name``'s declared type."""
    if not _conforms(value, annotation):
        raise OptionError(
            f"option {name}={_describe(value)} of solver {solver!r} must be {_shown(annotation)}"
        )
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise OptionError(f"option {name}={value!r} of solver {solver!r} must be finite")
        if name in COUNTS and value < 1:
            raise OptionError(f"option {name}={value!r} of solver {solver!r} must be at least 1")


def _hints(function: Callable[..., Any]) -> tuple[dict[str, Any], bool]:
    """``{parameter: annotation}`` of a callable (``bqm``/``self`` excluded) and whether it also
    takes ``**kwargs``."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}, True
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: names still count, types are not checked
        hints = {}
    named = {
        p: hints.get(p, Any)
        for p, v in params.items()
        if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL) and p not in ("self", "bqm", "bqms")
    }
    return named, any(v.kind is v.VAR_KEYWORD for v in params.values())


class SignatureOptions:
    """What a sampler class and its factory declare: constructor and sample parameters."""

    def __init__(self, factory: Callable[..., Any]):
        self.build, _ = _hints(factory)
        sampler = factory if isinstance(factory, type) else _returned_class(factory)
        self.sample: dict[str, Any] = {}
        self.open = True  # whether unnamed options may still be valid (``**kwargs``)
        if sampler is not None:
            self.sample, self.open = _hints(sampler.sample)
            if hasattr(sampler, "sample_batch"):  # gpu-anneal: sample() forwards to sample_batch
                batch, _ = _hints(sampler.sample_batch)
                self.sample.update(batch)
                self.open = False
            declared = getattr(sampler, "parameters", None)
            if isinstance(declared, dict):  # dimod's declaration, as a class attribute
                self.sample.update({p: Any for p in declared if p not in self.sample})
                self.open = False
        # The registry passes these itself; a sampler that names initial_states takes a warm start.
        self.initial_states = self.sample.pop("initial_states", None) is not None
        self.sample.pop("cardinality", None)

    def annotation(self, name: str) -> Any:
        return self.build.get(name, self.sample.get(name, Any))

    def known(self) -> set[str]:
        return set(self.build) | set(self.sample)


def _returned_class(factory: Callable[..., Any]) -> type | None:
    """The sampler class a factory function is annotated to return, if it names one."""
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:
        return None
    return returned if isinstance(returned, type) and hasattr(returned, "sample") else None
