"""Backend registry: solver name -> a dimod sampler plus what it can take.

Every backend is a ``dimod.Sampler``. The registry knows each one's capabilities without
importing it (heavy SDKs load only when used), checks extras and credentials before any work,
and hands a :class:`~qubo_prune.block.Block` to the sampler in the form it takes: a penalised
BQM, or the bare objective plus ``cardinality=[(variables, k), ...]`` for samplers that keep
the constraint natively.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import dimod
import numpy as np

from qubo_prune.block import Block

__all__ = [
    "Backend",
    "BackendError",
    "BackendSpec",
    "Capabilities",
    "available_backends",
    "get_backend",
    "get_spec",
    "parse_options",
]

ENTRY_POINT_GROUP = "qubo_prune.backends"

# Options the registry consumes itself; everything else goes to the sampler.
GENERIC_OPTIONS = {
    "penalty": "cardinality penalty multiplier (default: the provable bound of the math note)",
    "penalty_scale": "multiply the provable bound by this instead of giving the multiplier",
    "warm_start": "pass the block's current mask as the initial state (samplers that take one)",
}


class BackendError(ValueError):
    """A backend cannot be used as asked; the message says what to do about it."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend takes: how many variables, how it keeps the cardinality, what it costs."""

    max_variables: int | None = None
    native_cardinality: bool = False
    stochastic: bool = True
    needs_credentials: bool = False
    batched: bool = False
    paid: bool = False


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend, known without importing it.

    ``factory`` is ``"module:callable"``; the callable takes the sampler options and returns a
    ``dimod.Sampler``. ``requires`` are import names that must be present, ``extra`` the pip
    extra that installs them, ``credentials`` a callable of the options returning ``None`` when
    usable or a message naming what to set (never the secret itself).
    """

    name: str
    factory: str
    description: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    requires: tuple[str, ...] = ()
    extra: str | None = None
    credentials: Callable[[Mapping[str, Any]], str | None] | None = None
    limit: Callable[[Mapping[str, Any]], int | None] | None = None

    def missing(self) -> list[str]:
        """Import names of ``requires`` that are not installed."""
        out = []
        for mod in self.requires:
            try:
                found = importlib.util.find_spec(mod) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                out.append(mod)
        return out

    def install_hint(self) -> str:
        extra = f"qubo-prune[{self.extra}]" if self.extra else "qubo-prune"
        return f"pip install '{extra}'"

    def credential_problem(self, options: Mapping[str, Any] | None = None) -> str | None:
        """What to set for these options (local simulators and mocks need nothing)."""
        return self.credentials(dict(options or {})) if self.credentials else None

    def status(self) -> str:
        """``usable``, ``not installed (...)`` or ``no credentials (...)`` for ``qubo-prune solvers``."""
        missing = self.missing()
        if missing:
            return f"not installed: {self.install_hint()}"
        problem = self.credential_problem()
        if problem:
            return f"no credentials: {problem}"
        return "usable"


def _builtin_specs() -> dict[str, BackendSpec]:
    from qubo_prune.backends import BUILTIN_SPECS

    return {s.name: s for s in BUILTIN_SPECS}


def _plugin_specs() -> dict[str, BackendSpec]:
    specs: dict[str, BackendSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        spec = obj() if callable(obj) and not isinstance(obj, BackendSpec) else obj
        if not isinstance(spec, BackendSpec):
            raise BackendError(
                f"entry point {ep.name!r} in group {ENTRY_POINT_GROUP!r} must give a BackendSpec"
            )
        specs[spec.name] = spec
    return specs


def available_backends() -> dict[str, BackendSpec]:
    """Every known backend (built-in first, then entry-point plugins), installed or not."""
    specs = _builtin_specs()
    for name, spec in _plugin_specs().items():
        specs.setdefault(name, spec)
    return specs


def _unknown(kind: str, name: str, known: Iterable[str]) -> BackendError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return BackendError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")


def get_spec(name: str) -> BackendSpec:
    specs = available_backends()
    if name not in specs:
        raise _unknown("solver", name, specs)
    return specs[name]


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["num_reads=10", "beta_range=(0.1, 5)"]`` -> dict; values are Python literals or strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise BackendError(f"solver option {pair!r} must look like key=value")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        out[key.strip()] = value
    return out


class Backend:
    """A ready solver: a dimod sampler, its capabilities and how to hand it a block."""

    def __init__(self, spec: BackendSpec, sampler: dimod.Sampler, options: Mapping[str, Any]):
        self.spec = spec
        self.sampler = sampler
        self.options = dict(options)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def capabilities(self) -> Capabilities:
        return self.spec.capabilities

    @property
    def max_variables(self) -> int | None:
        limit = self.spec.limit(self.options) if self.spec.limit else None
        return limit if limit is not None else self.capabilities.max_variables

    def check_size(self, n: int) -> None:
        limit = self.max_variables
        if limit is not None and n > limit:
            raise BackendError(
                f"a block of {n} variables is too large for solver {self.name!r}, which takes at "
                f"most {limit}; use a smaller block size (--block-size {limit})"
            )

    def _sampler_kwargs(self, block: Block) -> tuple[dimod.BinaryQuadraticModel, dict[str, Any]]:
        opts = dict(self.options)
        penalty = opts.pop("penalty", None)
        scale = opts.pop("penalty_scale", None)
        warm = opts.pop("warm_start", False)
        kwargs = opts
        if self.capabilities.native_cardinality:
            bqm = block.to_bqm(penalty=0.0)
            kwargs["cardinality"] = block.cardinality()
        else:
            if penalty is None and scale is not None:
                penalty = float(scale) * block.penalty_bound()
            bqm = block.to_bqm(penalty=penalty)
        if warm:
            kwargs["initial_states"] = (
                block.current[None, :].astype(np.int8),
                list(range(block.n)),
            )
        return bqm, kwargs

    def solve(self, block: Block) -> dimod.SampleSet:
        """Solve one block; the sample set's variables are ``0..n-1``."""
        self.check_size(block.n)
        bqm, kwargs = self._sampler_kwargs(block)
        return self.sampler.sample(bqm, **kwargs)

    def solve_many(self, blocks: list[Block]) -> list[dimod.SampleSet]:
        """Solve several blocks, in one call when the sampler batches (``sample_batch``)."""
        for b in blocks:
            self.check_size(b.n)
        if self.capabilities.batched and hasattr(self.sampler, "sample_batch") and blocks:
            pairs = [self._sampler_kwargs(b) for b in blocks]
            shared = {
                k: v for k, v in pairs[0][1].items() if k not in ("cardinality", "initial_states")
            }
            return self.sampler.sample_batch(
                [bqm for bqm, _ in pairs],
                cardinality=[kw.get("cardinality") for _, kw in pairs],
                initial_states=[kw.get("initial_states") for _, kw in pairs],
                **shared,
            )
        return [self.solve(b) for b in blocks]


def get_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` with sampler ``options``; every problem is reported before work."""
    spec = get_spec(name)
    missing = spec.missing()
    if missing:
        raise BackendError(
            f"solver {name!r} needs {', '.join(missing)}, which is not installed: "
            f"{spec.install_hint()}"
        )
    problem = spec.credential_problem(options)
    if problem:
        raise BackendError(f"solver {name!r} has no credentials: {problem}")
    module_name, _, attr = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    # Options the factory's signature names build the sampler; the rest go to sample().
    built = _factory_params(factory)
    sampler = factory(**{k: v for k, v in options.items() if k in built})
    accepted = set(getattr(sampler, "parameters", {})) | set(GENERIC_OPTIONS) | built
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise _unknown(f"option for solver {name!r}:", unknown[0], accepted)
    return Backend(spec, sampler, {k: v for k, v in options.items() if k not in built})


def _factory_params(factory: Callable[..., Any]) -> set[str]:
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return set()
    return {p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
