"""Cost guard: estimate what a run on paid hardware costs and refuse it before anything is sent.

Each paid backend's spec names its cost function here (``BackendSpec.cost``); option defaults
are read from the sampler's own ``sample`` signature (:func:`sample_defaults`), never copied.

Prices are a dated table (:data:`DEFAULT_PRICES`, public list prices as of ``as_of``); vendors
change them and negotiated plans differ, so every number can be overridden from a JSON file
(:func:`load_prices`). Estimates are upper bounds where the algorithm may stop early (QAOA
optimisers) and list prices otherwise; they never include taxes, storage or idle fees.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from qubo_prune.backends.errors import BackendError

__all__ = [
    "DEFAULT_PRICES",
    "FREE",
    "BudgetError",
    "CostEstimate",
    "Prices",
    "braket_cost",
    "check_budget",
    "dwave_qpu_cost",
    "estimate_block_cost",
    "ibm_cost",
    "leap_cqm_cost",
    "leap_hybrid_cost",
    "load_prices",
    "sample_defaults",
]


class BudgetError(BackendError):
    """A run would cost more than allowed, or costs money and no limit was given."""


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of solving blocks: dollars, seconds of QPU time, and how it was reckoned."""

    usd: float
    qpu_seconds: float
    detail: str
    paid: bool = False
    solves: int = 1

    def __add__(self, other: CostEstimate) -> CostEstimate:
        parts = self.detail.split("; ") if self.detail else []
        if other.detail and other.detail not in parts:  # many blocks, one line per kind
            parts.append(other.detail)
        detail = "; ".join(parts)
        return CostEstimate(
            self.usd + other.usd,
            self.qpu_seconds + other.qpu_seconds,
            detail,
            self.paid or other.paid,
            self.solves + other.solves,
        )

    def times(self, solves: int) -> CostEstimate:
        """The cost of ``solves`` block solves of this kind."""
        return replace(
            self,
            usd=self.usd * solves,
            qpu_seconds=self.qpu_seconds * solves,
            solves=self.solves * solves,
        )


FREE = CostEstimate(0.0, 0.0, "")  # one block solve that costs nothing


@dataclass(frozen=True)
class Prices:
    """List prices in USD. Override any field with :func:`load_prices`."""

    as_of: str = "2025-06-01"
    # Amazon Braket: a fee per task plus one per shot, by provider/device (matched against the
    # device ARN, lower case); managed simulators per minute with a 3 s minimum per task.
    braket_task_usd: float = 0.30
    braket_shot_usd: Mapping[str, float] = field(
        default_factory=lambda: {
            "ionq/aria": 0.03,
            "ionq/forte": 0.08,
            "iqm/garnet": 0.00145,
            "iqm/emerald": 0.0016,
            "rigetti/ankaa": 0.0009,
        }
    )
    braket_simulator_usd_per_minute: Mapping[str, float] = field(
        default_factory=lambda: {"amazon/sv1": 0.075, "amazon/dm1": 0.075, "amazon/tn1": 0.275}
    )
    braket_simulator_min_seconds: float = 3.0
    # D-Wave Leap: QPU access time = programming + reads x (anneal + readout + delay).
    dwave_usd_per_qpu_second: float = 0.56
    dwave_programming_seconds: float = 0.015
    dwave_readout_seconds: float = 1.2e-4
    dwave_delay_seconds: float = 2.1e-5
    dwave_default_anneal_us: float = 20.0
    # Leap hybrid solvers bill their run time, at least their minimum time limit.
    dwave_hybrid_usd_per_second: float = 0.56
    dwave_hybrid_bqm_min_seconds: float = 3.0
    dwave_hybrid_cqm_min_seconds: float = 5.0
    # IBM Quantum pay-as-you-go: QPU seconds per job (overhead) and per shot. A session is
    # billed while it holds the QPU, idle time between jobs included: the round trip (result
    # back, optimiser step, next job in) is not published; 2 s is an assumption.
    ibm_usd_per_qpu_second: float = 1.60
    ibm_job_seconds: float = 2.0
    ibm_shot_seconds: float = 2.5e-4
    ibm_session_idle_seconds: float = 2.0


DEFAULT_PRICES = Prices()


def load_prices(path: str | Path | None = None) -> Prices:
    """:data:`DEFAULT_PRICES` with the fields of a JSON file (``path`` or ``$QUBO_PRUNE_PRICES``)
    replaced, e.g. ``{"as_of": "2026-01-01", "braket_shot_usd": {"ionq/forte": 0.08}}``."""
    path = path or os.environ.get("QUBO_PRUNE_PRICES")
    if not path:
        return DEFAULT_PRICES
    overrides = json.loads(Path(path).read_text())
    known = {f.name for f in fields(Prices)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise BudgetError(f"unknown price fields in {path}: {', '.join(unknown)}")
    return replace(DEFAULT_PRICES, **overrides)


def estimate_block_cost(
    backend: str, options: Mapping[str, Any] | None = None, prices: Prices | None = None
) -> CostEstimate:
    """Cost of solving one block with ``backend`` and its ``options`` (those given to
    ``get_backend``): the ``cost`` of the backend's spec. Free backends (classical, simulators,
    mocks) cost nothing; a paid backend without a cost model raises rather than guessing."""
    from qubo_prune.backends.registry import get_spec

    return get_spec(backend).estimate(options, prices)


def sample_defaults(sampler: type | Callable[..., Any]) -> dict[str, Any]:
    """The default options of a sampler's ``sample`` method: the one place they are written."""
    method = getattr(sampler, "sample", sampler)
    return {
        name: p.default
        for name, p in inspect.signature(method).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def check_budget(estimates: Iterable[CostEstimate], max_cost: float | None) -> CostEstimate:
    """The total of ``estimates``; raises :class:`BudgetError` if it is paid and ``max_cost`` is
    ``None``, or if it exceeds ``max_cost`` (USD). Call it before the first job is sent."""
    total = CostEstimate(0.0, 0.0, "", solves=0)
    for estimate in estimates:
        total = total + estimate
    summary = (
        f"estimated ${total.usd:.2f} ({total.qpu_seconds:.1f} QPU s) for {total.solves} block "
        f"solves [{total.detail}]"
    )
    if total.paid and max_cost is None:
        raise BudgetError(
            f"this solver is billed: {summary}. Pass --max-cost USD to allow it "
            "(--dry-run shows the estimate without sending anything)"
        )
    if max_cost is not None and total.usd > max_cost:
        raise BudgetError(f"{summary}, over --max-cost ${max_cost:.2f}; nothing was sent")
    return total


def braket_cost(options: Mapping[str, Any], prices: Prices) -> CostEstimate:
    """Braket: a fee per task (one per angle evaluation, one for the final sampling) and one per
    shot (QPUs), or per minute (managed simulators). The local simulator is free."""
    arn = str(options.get("device_arn") or "")
    if not arn:
        return FREE
    from qubo_prune.backends.qaoa.common import QAOASampler

    shots = int({**sample_defaults(QAOASampler), **options}["shots"])
    _, tasks = QAOASampler.planned(options)
    device = arn.lower().split("device/", 1)[-1]
    for key, per_minute in prices.braket_simulator_usd_per_minute.items():
        if key in device:
            usd = tasks * prices.braket_simulator_min_seconds / 60.0 * per_minute
            return CostEstimate(usd, 0.0, f"braket {key}: {tasks} tasks at the minimum", paid=True)
    for key, per_shot in prices.braket_shot_usd.items():
        if key in device:
            usd = tasks * (prices.braket_task_usd + shots * per_shot)
            detail = f"braket {key}: {tasks} tasks x ({prices.braket_task_usd} + {shots} shots)"
            return CostEstimate(usd, 0.0, detail, paid=True)
    raise BudgetError(
        f"no Braket price known for device {arn!r}; add it to braket_shot_usd in a price file "
        "(QUBO_PRUNE_PRICES)"
    )


def ibm_cost(options: Mapping[str, Any], prices: Prices) -> CostEstimate:
    """IBM Quantum usage of one block: each job's quantum time (an overhead plus every shot of
    every angle set in it); in a session (the default) also the idle time between the jobs,
    since a session is billed for as long as it holds the QPU. Fake devices are free."""
    if not options.get("ibm_backend"):
        return FREE
    from qubo_prune.backends.qaoa.common import QAOASampler
    from qubo_prune.backends.qaoa.qiskit_qaoa import QiskitQAOASampler

    o = {**sample_defaults(QiskitQAOASampler.__init__), **sample_defaults(QAOASampler), **options}
    shots = int(o["shots"])
    jobs, angle_sets = QAOASampler.planned(options)
    seconds = jobs * prices.ibm_job_seconds + angle_sets * shots * prices.ibm_shot_seconds
    detail = f"ibm {options['ibm_backend']}: {jobs} jobs, {angle_sets} x {shots} shots"
    if o["execution"] in (None, "session") and jobs > 1:  # iterative work runs in a session
        seconds += (jobs - 1) * prices.ibm_session_idle_seconds
        detail += f", one session ({jobs - 1} idle gaps)"
    return CostEstimate(seconds * prices.ibm_usd_per_qpu_second, seconds, detail, paid=True)


def dwave_qpu_cost(options: Mapping[str, Any], prices: Prices) -> CostEstimate:
    """D-Wave QPU access time: programming plus reads x (anneal + readout + delay)."""
    if options.get("qpu_sampler") is not None:
        return FREE
    from qubo_prune.backends.dwave import DWaveCliqueQPUSampler

    reads = int({**sample_defaults(DWaveCliqueQPUSampler), **options}["num_reads"])
    anneal = float(options.get("annealing_time", prices.dwave_default_anneal_us)) * 1e-6
    per_read = anneal + prices.dwave_readout_seconds + prices.dwave_delay_seconds
    seconds = prices.dwave_programming_seconds + reads * per_read
    detail = f"dwave QPU: {reads} reads x {per_read * 1e6:.0f} us + programming"
    return CostEstimate(seconds * prices.dwave_usd_per_qpu_second, seconds, detail, paid=True)


def _dwave_hybrid(label: str, minimum: float, options: Mapping[str, Any], prices: Prices):
    if options.get("cqm_sampler") is not None:
        return FREE
    seconds = max(float(options.get("time_limit") or 0.0), minimum)
    detail = f"{label}: {seconds:g} s run time"
    return CostEstimate(seconds * prices.dwave_hybrid_usd_per_second, 0.0, detail, paid=True)


def leap_hybrid_cost(options: Mapping[str, Any], prices: Prices) -> CostEstimate:
    """Leap's hybrid BQM solver bills its run time, at least its minimum time limit."""
    return _dwave_hybrid("leap-hybrid", prices.dwave_hybrid_bqm_min_seconds, options, prices)


def leap_cqm_cost(options: Mapping[str, Any], prices: Prices) -> CostEstimate:
    """Leap's hybrid CQM solver bills its run time, at least its minimum time limit."""
    return _dwave_hybrid("leap-cqm", prices.dwave_hybrid_cqm_min_seconds, options, prices)
