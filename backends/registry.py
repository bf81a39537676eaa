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
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

import dimod
import numpy as np

from qubo_prune.backends.composites import (
    CardinalityComposite,
    NormalisingComposite,
    most_rounds,
)
from qubo_prune.backends.errors import BackendError, SolveFailed, cloud_message
from qubo_prune.backends.options import OptionError, SignatureOptions, check_value
from qubo_prune.core.block import Block
from qubo_prune.core.choices import close_matches

if TYPE_CHECKING:
    import torch

    from qubo_prune.backends.cost import CostEstimate, Prices
    from qubo_prune.core.batch import BlockBatch

__all__ = [
    "Backend",
    "BackendError",
    "BackendSpec",
    "Capabilities",
    "SolveFailed",
    "available_backends",
    "check_options",
    "get_backend",
    "get_spec",
    "parse_options",
]

ENTRY_POINT_GROUP = "qubo_prune.backends"

# Options the registry consumes itself (penalty and penalty_scale belong to the composite).
WARM_START = "warm_start"
SOLVE_TIMEOUT = "solve_timeout"
REGISTRY_OPTIONS = {WARM_START: bool, SOLVE_TIMEOUT: float}
PENALTY_OPTIONS = ("penalty", "penalty_scale")
_WORKER_STACK = 64 << 20  # bytes of stack for the thread solves run in


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
    largest bias of 1 before the sampler sees it. ``solve_timeout`` is the default upper cap, in
    seconds, on one solve (option ``solve_timeout``); ``hardware`` the options that select the
    real device, for the status of a backend that runs locally by default. ``defaults`` are the
    options a user gets without giving any, measured on real blocks (docs/benchmarks.md); given
    options override them. ``budget`` names the option that sets how much work a solve does
    (sweeps, restarts, reads), which ``compare`` scales for its quality-vs-time ladder.
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
    solve_timeout: float = 600.0
    hardware: Mapping[str, Any] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    budget: str | None = None

    def options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options a solve runs with: the measured defaults, then what was given."""
        return {**self.defaults, **(given or {})}

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

    def status(self) -> tuple[str, str]:
        """What ``qubo-prune solvers`` says, found offline, and what to do about it: credentials
        are never verified here (that would contact the provider), only found or not."""
        if self.missing():
            return "not installed", self.install_hint()
        if self.credentials is None:
            return "ready", ""
        problem = self.credential_problem(self.hardware)
        found = "no credentials" if problem else "credentials found (not verified)"
        if self.hardware is not None:  # local by default, hardware with these options
            return f"ready (simulator); hardware: {found}", problem and f"for hardware, {problem}"
        return found, problem or ""

    def factory_callable(self) -> Callable[..., Any]:
        """The factory itself (imports the backend's module, never builds a sampler)."""
        self.require()
        module_name, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise BackendError(
                f"solver {self.name!r}: its factory {self.factory!r} cannot be loaded ({err})"
            ) from None

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
        """Cost of one block solve with ``options``; a paid backend without a model is refused.
        A penalised block under ``penalty="auto"`` is priced at its most tries."""
        from qubo_prune.backends.cost import DEFAULT_PRICES, FREE, BudgetError

        if self.cost is not None:
            self.require()
            options = self.options(options)
            one = self.cost(options, prices or DEFAULT_PRICES)
            rounds = 1 if self.keeps_cardinality(options) else most_rounds(options)
            if rounds == 1:
                return one
            return replace(
                one,
                usd=one.usd * rounds,
                qpu_seconds=one.qpu_seconds * rounds,
                detail=f"{one.detail} x up to {rounds} penalty tries (penalty=auto)",
            )
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


class _Worker:
    """One daemon thread that runs calls in turn; a daemon never keeps the process alive."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        previous = threading.stack_size(_WORKER_STACK)  # deep SDK recursion needs a main's stack
        try:
            threading.Thread(target=self._serve, name=name, daemon=True).start()
        finally:
            threading.stack_size(previous)

    def submit(self, call: Callable[[], Any]) -> tuple[threading.Event, dict[str, Any]]:
        done, box = threading.Event(), {}
        self._jobs.put((call, done, box))
        return done, box

    def _serve(self) -> None:
        while True:
            call, done, box = self._jobs.get()
            try:
                box["value"] = call()
            except BaseException as err:  # handed to the caller's thread
                box["error"] = err
            done.set()


class Backend:
    """A ready solver: the wrapped sampler, its spec and the per-solve options."""

    def __init__(self, spec: BackendSpec, sampler: dimod.Sampler, options: Mapping[str, Any]):
        self.spec = spec
        self.sampler = sampler
        self.options = dict(options)
        self._worker: _Worker | None = None

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
        params = {k: v for k, v in self.options.items() if k not in REGISTRY_OPTIONS}
        if self.options.get(WARM_START):
            params["initial_states"] = (
                block.current[None, :].astype(np.int8),
                list(range(block.n)),
            )
        return params

    def solve(self, block: Block) -> dimod.SampleSet:
        """Solve one block; the sample set's variables are ``0..n-1`` and its values 0/1."""
        self.check_size(block.n)
        result = self._call(
            lambda: self.sampler.sample(
                block.to_bqm(penalty=0.0), cardinality=block.cardinality(), **self._params(block)
            )
        )
        return self._checked(result, block)

    def solve_many(self, blocks: Sequence[Block]) -> list[dimod.SampleSet]:
        """Solve several blocks, in one call when the sampler batches (``sample_batch``)."""
        for b in blocks:
            self.check_size(b.n)
        if not (self.capabilities.batched and blocks):
            return [self.solve(b) for b in blocks]
        params = [self._params(b) for b in blocks]
        shared = {k: v for k, v in params[0].items() if k != "initial_states"}
        if self.options.get(WARM_START):  # only a sampler that takes initial states gets them
            shared["initial_states"] = [p["initial_states"] for p in params]
        results = self._call(
            lambda: self.sampler.sample_batch(
                [b.to_bqm(penalty=0.0) for b in blocks],
                cardinality=[b.cardinality() for b in blocks],
                **shared,
            )
        )
        if not isinstance(results, list) or len(results) != len(blocks):
            raise BackendError(f"solver {self.name!r} did not return one sample set per block")
        return [self._checked(r, b) for r, b in zip(results, blocks)]

    @property
    def takes_tensors(self) -> bool:
        """Whether a block batch goes to the sampler as tensors (``sample_tensors``), no BQMs:
        only for a sampler that keeps the cardinality itself and needs no normalising."""
        return (
            self.spec.keeps_cardinality(self.options)
            and not self.spec.normalise
            and callable(getattr(self.base_sampler, "sample_tensors", None))
        )

    def solve_batch(self, batch: BlockBatch) -> torch.Tensor:
        """States ``(B, m, n)`` of a block batch from a sampler that takes tensors, under the
        same time cap and failure handling as :meth:`solve`."""
        self.check_size(batch.n)
        params = {k: v for k, v in self.options.items() if k not in REGISTRY_OPTIONS}
        initial = batch.current[:, None, :] if self.options.get(WARM_START) else None
        X = self._call(
            lambda: self.base_sampler.sample_tensors(
                batch.Q, batch.groups, batch.k, initial_states=initial, **params
            )
        )
        shape = tuple(getattr(X, "shape", ()))
        if len(shape) != 3 or shape[0] != batch.Q.shape[0] or shape[2] != batch.n:
            raise BackendError(f"solver {self.name!r} returned states of shape {shape}")
        return X

    def _call(self, call: Callable[[], Any]) -> Any:
        """Run one solver call under the time cap, its failures as one-line BackendErrors.

        Calls run on the backend's own worker thread (always the same one: some SDKs keep
        thread-bound state); a call that outlives the cap is abandoned with its thread (a
        thread cannot be killed) and the run stops, rather than waiting forever.
        """
        timeout = float(self.options.get(SOLVE_TIMEOUT, self.spec.solve_timeout))
        if self._worker is None:
            self._worker = _Worker(f"solve:{self.name}")
        done, box = self._worker.submit(call)
        if not done.wait(timeout):
            self._worker = None
            raise BackendError(
                f"solver {self.name!r} gave no answer within {timeout:g} s (option "
                f"{SOLVE_TIMEOUT}); the solve was abandoned"
            )
        error = box.get("error")
        if error is None:
            return box.get("value")
        if isinstance(error, BackendError) or not isinstance(error, Exception):
            raise error
        raise BackendError(_failure(self.name, error)) from None

    def _checked(self, result: Any, block: Block) -> dimod.SampleSet:
        """``result`` if it is an answer to ``block``: a non-empty sample set over its variables
        with 0/1 (or -1/+1) values. Anything else stops the run with the solver's name."""
        if not isinstance(result, dimod.SampleSet):
            raise BackendError(
                f"solver {self.name!r} returned {type(result).__name__}, not a dimod.SampleSet"
            )
        if len(result) == 0:
            raise BackendError(f"solver {self.name!r} returned no samples")
        if set(result.variables) != set(range(block.n)):
            raise BackendError(
                f"solver {self.name!r} answered about other variables than the block's"
            )
        if result.vartype not in (dimod.BINARY, dimod.SPIN):
            raise BackendError(
                f"solver {self.name!r} returned {result.vartype.name} samples, not 0/1 values"
            )
        allowed = (0, 1) if result.vartype is dimod.BINARY else (-1, 1)
        if not np.isin(result.record.sample, allowed).all():
            raise BackendError(f"solver {self.name!r} returned values other than {allowed}")
        return result


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Check every option's name and value against what the backend declares, before anything
    is built, sent or loaded; an option only a built sampler can vouch for is left to
    :func:`get_backend`."""
    spec = get_spec(name)
    options = spec.options(options)
    declared = SignatureOptions(spec.factory_callable())
    native = spec.keeps_cardinality(options)
    for key, value in options.items():
        if key in REGISTRY_OPTIONS:
            check_value(key, value, REGISTRY_OPTIONS[key], name)
        elif key in PENALTY_OPTIONS:
            if native:
                raise OptionError(
                    f"solver {name!r} keeps the cardinality natively, so {key} does not apply"
                )
            allowed = float if key == "penalty_scale" else float | Literal["auto", "safe"]
            check_value(key, value, allowed, name)
            if isinstance(value, str):
                continue
            if value < 0 or (key == "penalty_scale" and value == 0):
                raise OptionError(f"option {key}={value!r} of solver {name!r} must be positive")
        elif key in declared.known():
            check_value(key, value, declared.annotation(key), name)
        elif not declared.open:
            raise _unknown(
                f"option for solver {name!r}:", key, declared.known() | set(REGISTRY_OPTIONS)
            )
    if options.get(WARM_START) and not declared.initial_states:
        raise OptionError(f"solver {name!r} takes no initial state, so warm_start does not apply")


def get_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` with sampler ``options``; every problem is reported before work."""
    spec = get_spec(name)
    spec.require()
    problem = spec.credential_problem(options)
    if problem:
        raise BackendError(f"solver {name!r} has no credentials: {problem}")
    check_options(name, options)
    options = spec.options(options)
    factory = spec.factory_callable()
    # Options the factory's signature names build the sampler; the rest go to sample().
    built = _factory_params(factory)
    try:
        sampler = factory(**{k: v for k, v in options.items() if k in built})
    except BackendError:
        raise
    except Exception as err:  # an SDK contacting its service: one line, never the secret
        raise BackendError(_failure(name, err)) from None
    if spec.normalise:
        sampler = NormalisingComposite(sampler)
    sampler = CardinalityComposite(sampler, native=spec.keeps_cardinality(options))
    accepted = set(sampler.parameters) | set(REGISTRY_OPTIONS) | built
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise _unknown(f"option for solver {name!r}:", unknown[0], accepted)
    return Backend(spec, sampler, {k: v for k, v in options.items() if k not in built})


def _failure(name: str, error: BaseException) -> str:
    """One line about a sampler that raised: what to check for known SDK errors, else the
    error's own first line."""
    known = cloud_message(error, name)
    if known:
        return known
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"solver {name!r} failed: {type(error).__name__}: {first}"


def _factory_params(factory: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return set()
    return {p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
