"""Backend registry: solver name -> a dimod sampler, wrapped in the composites its spec asks for.

Every backend is a ``dimod.Sampler``. The registry knows each one's capabilities, price and
credentials without importing it (heavy SDKs load only when used), checks extras and
credentials before any work, builds the sampler and wraps it: a
:class:`~qubo_prune.backends.composites.CardinalityComposite` always (native cardinality or a
penalty), a :class:`~qubo_prune.backends.composites.NormalisingComposite` when the spec asks.
A :class:`Backend` then hands each block over as its bare objective plus its groups.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import dimod
import numpy as np

from qubo_prune.backends.composites import CardinalityComposite, NormalisingComposite
from qubo_prune.core.block import Block
from qubo_prune.core.choices import close_matches

if TYPE_CHECKING:
    from qubo_prune.backends.cost import CostEstimate, Prices

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

# The option the registry consumes itself (penalty and penalty_scale belong to the composite).
WARM_START = "warm_start"


class BackendError(ValueError):
    """A backend cannot be used as asked; the message says what to do about it."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend takes: how many variables, how it keeps the cardinality, what it costs."""

    max_variables: int | None = None
    native_cardinality: bool = False
    stochastic: bool = True
    batched: bool = False
    paid: bool = False


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend, known without importing it.

    ``factory`` is ``"module:callable"``; the callable takes the constructor options and returns
    a ``dimod.Sampler``. ``requires`` are import names that must be present, ``extra`` the pip
    extra that installs them. The callables take the backend's options: ``credentials``
    returns ``None`` when usable or a message naming what to set (never the secret itself),
    ``limit`` the block-size limit they imply (``None``: ``capabilities.max_variables``) and
    ``cost`` the :class:`~qubo_prune.backends.cost.CostEstimate` of one block solve (free when
    absent), ``native`` whether the sampler keeps the cardinality itself with these options
    (``capabilities.native_cardinality`` when absent). ``normalise`` scales each BQM to a
    largest bias of 1 before the sampler sees it.
    """

    name: str
    factory: str
    description: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    requires: tuple[str, ...] = ()
    extra: str | None = None
    credentials: Callable[[Mapping[str, Any]], str | None] | None = None
    limit: Callable[[Mapping[str, Any]], int | None] | None = None
    cost: Callable[[Mapping[str, Any], Prices], CostEstimate] | None = None
    native: Callable[[Mapping[str, Any]], bool] | None = None
    normalise: bool = False

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

    def keeps_cardinality(self, options: Mapping[str, Any] | None = None) -> bool:
        """Whether, with these options, the sampler gets the bare objective and the groups
        (native) rather than the penalised BQM."""
        if self.native is not None:
            return bool(self.native(dict(options or {})))
        return self.capabilities.native_cardinality

    def max_variables(self, options: Mapping[str, Any] | None = None) -> int | None:
        """The largest block these options allow, known before anything is built."""
        limit = self.limit(dict(options or {})) if self.limit else None
        return limit if limit is not None else self.capabilities.max_variables

    def check_size(self, n: int, options: Mapping[str, Any] | None = None) -> None:
        limit = self.max_variables(options)
        if limit is not None and n > limit:
            raise BackendError(
                f"a block of {n} variables is too large for solver {self.name!r}, which takes at "
                f"most {limit}; use a smaller block size (--block-size {limit})"
            )

    def require(self) -> None:
        """Raise naming the ``pip install`` when the backend's SDK is missing."""
        missing = self.missing()
        if missing:
            raise BackendError(
                f"solver {self.name!r} needs {', '.join(missing)}, which is not installed: "
                f"{self.install_hint()}"
            )

    def estimate(
        self, options: Mapping[str, Any] | None = None, prices: Prices | None = None
    ) -> CostEstimate:
        """Cost of one block solve with ``options``; a paid backend without a model is refused."""
        from qubo_prune.backends.cost import DEFAULT_PRICES, FREE, BudgetError

        if self.cost is not None:
            self.require()
            return self.cost(dict(options or {}), prices or DEFAULT_PRICES)
        if self.capabilities.paid:
            raise BudgetError(
                f"no cost model for paid solver {self.name!r}; cannot guard its budget"
            )
        return FREE


def _builtin_specs() -> dict[str, BackendSpec]:
    from qubo_prune.backends.specs import BUILTIN_SPECS

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
    return BackendError(
        f"unknown {kind} {name!r}.{close_matches(name, known)} Known: {', '.join(known)}."
    )


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
    """A ready solver: the wrapped sampler, its spec and the per-solve options."""

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
    def base_sampler(self) -> dimod.Sampler:
        """The sampler the factory built, inside the composites."""
        sampler = self.sampler
        while isinstance(sampler, (CardinalityComposite, NormalisingComposite)):
            sampler = sampler.child
        return sampler

    @property
    def max_variables(self) -> int | None:
        return self.spec.max_variables(self.options)

    def check_size(self, n: int) -> None:
        self.spec.check_size(n, self.options)

    def _params(self, block: Block) -> dict[str, Any]:
        """The sample options, with the block's current mask as the initial state on warm start."""
        params = {k: v for k, v in self.options.items() if k != WARM_START}
        if self.options.get(WARM_START):
            params["initial_states"] = (
                block.current[None, :].astype(np.int8),
                list(range(block.n)),
            )
        return params

    def solve(self, block: Block) -> dimod.SampleSet:
        """Solve one block; the sample set's variables are ``0..n-1``."""
        self.check_size(block.n)
        return self.sampler.sample(
            block.to_bqm(penalty=0.0), cardinality=block.cardinality(), **self._params(block)
        )

    def solve_many(self, blocks: Sequence[Block]) -> list[dimod.SampleSet]:
        """Solve several blocks, in one call when the sampler batches (``sample_batch``)."""
        for b in blocks:
            self.check_size(b.n)
        if not (self.capabilities.batched and blocks):
            return [self.solve(b) for b in blocks]
        params = [self._params(b) for b in blocks]
        shared = {k: v for k, v in params[0].items() if k != "initial_states"}
        return self.sampler.sample_batch(
            [b.to_bqm(penalty=0.0) for b in blocks],
            cardinality=[b.cardinality() for b in blocks],
            initial_states=[p.get("initial_states") for p in params],
            **shared,
        )


def get_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` with sampler ``options``; every problem is reported before work."""
    spec = get_spec(name)
    spec.require()
    problem = spec.credential_problem(options)
    if problem:
        raise BackendError(f"solver {name!r} has no credentials: {problem}")
    module_name, _, attr = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    # Options the factory's signature names build the sampler; the rest go to sample().
    built = _factory_params(factory)
    sampler = factory(**{k: v for k, v in options.items() if k in built})
    if spec.normalise:
        sampler = NormalisingComposite(sampler)
    sampler = CardinalityComposite(sampler, native=spec.keeps_cardinality(options))
    accepted = set(sampler.parameters) | {WARM_START} | built
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise _unknown(f"option for solver {name!r}:", unknown[0], accepted)
    return Backend(spec, sampler, {k: v for k, v in options.items() if k not in built})


def _factory_params(factory: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return set()
    return {p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
