"""What the QAOA backends (``qaoa-qiskit``, ``braket``) share: one sampler, two SDKs.

A block reaches a QAOA sampler in one of two forms; the registry's cardinality composite picks
it from the options (:func:`~qubo_prune.backends.qaoa.ansatz.keeps_cardinality`):

- ``mixer="xy"`` (the default): the bare objective with ``cardinality=[(variables, k), ...]``.
  The circuit starts each group in its Dicke state and mixes within it, so the cost Hamiltonian
  is the objective alone and every noiseless shot is feasible.
- ``mixer="x"``: the penalised BQM of the composite (no ``cardinality``): standard QAOA, whose
  shots may be infeasible; the decoder repairs them.

The registry also wraps both in a normalising composite (largest bias 1), so one set of angle
bounds and one initial schedule suit every block. :class:`QAOASampler` holds everything else:
the defaults (which the cost guard reads), the ansatz, the angle optimisation and the shots as
a sample set, with ``info`` recording the circuit's depth and two-qubit gate count as run. A
subclass only compiles the gate list for its SDK (:meth:`QAOASampler._program`) and runs batches
of angle sets on its device or its local simulator (:meth:`QAOASampler._runner`).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np

from qubo_prune.backends.errors import BackendError
from qubo_prune.backends.qaoa.ansatz import (
    DEFAULT_MIXER,
    MIXERS,
    XY_GRAPHS,
    Gate,
    parameter_names,
    qaoa_gates,
)
from qubo_prune.backends.qaoa.optimise import OPTIMIZERS, budget, optimise

__all__ = [
    "QAOASampler",
    "Runs",
    "check_qubits",
    "ramp_angles",
    "shots_to_sampleset",
    "z_ising",
]

# One run of an angle set: distinct measured states (m, n) in qubit order and their counts.
Runs = list[tuple[np.ndarray, np.ndarray]]
Run = Callable[[Any, np.ndarray, int, "int | None"], Runs]


def z_ising(bqm: dimod.BinaryQuadraticModel, variables: list) -> tuple[np.ndarray, list]:
    """Cost Hamiltonian ``sum h_i Z_i + sum J_ij Z_i Z_j`` over qubits ``0..n-1``.

    Qubit ``i`` carries ``variables[i]`` and measures 1 when the variable is 1. dimod's spin is
    ``s = 2x - 1`` while ``Z|1> = -|1>``, so ``s = -Z``: linear terms flip sign, couplings do not.
    """
    h, J, _ = bqm.spin.to_ising()
    index = {v: i for i, v in enumerate(variables)}
    hz = np.zeros(len(variables))
    for v, b in h.items():
        hz[index[v]] = -b
    couplings = [(index[u], index[v], float(b)) for (u, v), b in J.items() if b]
    return hz, couplings


def ramp_angles(reps: int, step: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ramp ``(gammas, betas)``: a discretised anneal, a good start for normalised problems."""
    t = (np.arange(reps) + 0.5) / reps
    return t * step, (1.0 - t) * step


def check_qubits(n: int, limit: int | None, where: str) -> None:
    """Refuse a block larger than the device before anything is submitted."""
    if limit is not None and n > limit:
        raise BackendError(f"a block of {n} variables needs {n} qubits; {where} has {limit}")


def shots_to_sampleset(
    bits: np.ndarray,
    counts: np.ndarray,
    variables: list,
    bqm: dimod.BinaryQuadraticModel,
    info: Mapping[str, Any] | None = None,
) -> dimod.SampleSet:
    """Distinct measured states ``(m, n)`` (1 = variable is 1) with their counts, as a SampleSet
    in ``bqm``'s vartype with ``bqm``'s energies, lowest energy first."""
    X = np.asarray(bits, dtype=np.int8)
    if bqm.vartype is dimod.SPIN:
        X = 2 * X - 1
    return dimod.SampleSet.from_samples_bqm(
        (X, variables), bqm, num_occurrences=np.asarray(counts, dtype=int), info=dict(info or {})
    ).truncate(len(X))


def spread(
    binary: dimod.BinaryQuadraticModel,
    variables: list,
    groups: Sequence[tuple[Sequence[int], int]],
    samples: int = 512,
) -> float:
    """Standard deviation of the energy over the initial state's support (random ``k``-subsets
    of each group, random bits elsewhere): the cost Hamiltonian divided by it gives every
    block the same spread of phases per unit of ``gamma``, so one schedule suits them all."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(samples, len(variables)), dtype=np.int8)
    for g, k in groups:
        X[:, g] = 0
        picks = np.argsort(rng.random((samples, len(g))), axis=1)[:, :k]
        X[np.arange(samples)[:, None], np.asarray(g)[picks]] = 1
    sigma = float(np.std(binary.energies((X, variables))))
    return sigma if sigma > 0 else 1.0


def distinct(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shots ``(shots, n)`` as distinct states and their counts."""
    states, counts = np.unique(np.asarray(bits, dtype=np.int8), axis=0, return_counts=True)
    return states, counts


def _cvar(energies: np.ndarray, counts: np.ndarray, alpha: float) -> float:
    """Mean energy of the lowest ``alpha`` fraction of the shots (``alpha = 1``: the mean)."""
    order = np.argsort(energies)
    e, c = energies[order], counts[order].astype(float)
    keep = alpha * c.sum()
    taken = np.minimum(c, np.maximum(0.0, keep - (np.cumsum(c) - c)))
    return float(e @ taken / taken.sum())


def _qubit_groups(
    cardinality: Sequence[tuple[Sequence[Any], int]] | None, variables: list, mixer: str
) -> list[tuple[list[int], int]]:
    """``cardinality`` over BQM labels as groups of qubit indices; none for the X mixer."""
    if not cardinality:
        return []
    if mixer == "x":
        raise BackendError(
            "mixer='x' solves a penalised BQM and takes no cardinality; the registry hands it "
            "one (get_backend(..., mixer='x'))"
        )
    index = {v: i for i, v in enumerate(variables)}
    try:
        return [([index[v] for v in group], int(k)) for group, k in cardinality]
    except KeyError as err:
        raise BackendError(f"cardinality names variable {err.args[0]!r}, not in the BQM") from None


def _check(mixer: str, xy_graph: str, optimizer: str, optimize_on: str, alpha: float) -> None:
    for name, value, allowed in (
        ("mixer", mixer, MIXERS),
        ("xy_graph", xy_graph, XY_GRAPHS),
        ("optimizer", str(optimizer).lower().replace("-", "_"), OPTIMIZERS),
        ("optimize_on", optimize_on, ("device", "local")),
    ):
        if value not in allowed:
            raise BackendError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if not 0 < alpha <= 1:
        raise BackendError(f"cvar_alpha must be in (0, 1], got {alpha}")


@dataclass(frozen=True)
class _Plan:
    """How one block's angles are trained and its final circuit sampled."""

    reps: int
    shots: int
    optimizer: str
    maxiter: int
    popsize: int
    seed: int | None
    alpha: float


class QAOASampler(dimod.Sampler):
    """QAOA on a block: the ansatz of :mod:`~qubo_prune.backends.qaoa.ansatz`, angles optimised
    by :mod:`~qubo_prune.backends.qaoa.optimise`, the best circuit's shots returned.

    Subclasses set ``_local_only`` (the device is the local simulator) and implement
    :meth:`_program` and :meth:`_runner`.
    """

    parameters = {
        name: []
        for name in (
            "cardinality",
            "mixer",
            "xy_graph",
            "reps",
            "shots",
            "optimizer",
            "maxiter",
            "popsize",
            "seed",
            "cvar_alpha",
            "optimize_on",
        )
    }
    _local_only = True

    def _set_device(self, device: str, max_qubits: int) -> None:
        self._properties = {"device": device, "max_qubits": max_qubits}

    @property
    def properties(self) -> dict[str, Any]:
        return self._properties

    @abstractmethod
    def _program(self, gates: list[Gate], n: int, target: str) -> Any:
        """The circuit of ``gates`` on ``n`` qubits, measured, compiled for ``target``
        (``"device"`` or ``"local"``), with its angles free."""

    @abstractmethod
    def _stats(self, program: Any) -> dict[str, int]:
        """``depth`` and ``two_qubit_gates`` of a compiled program, as it runs."""

    @abstractmethod
    def _runner(self, target: str, iterative: bool) -> AbstractContextManager[Run]:
        """A function running ``(program, points (S, 2 reps), shots, seed)`` on ``target``, one
        batch per call, open for a block's whole optimisation: an IBM session when
        ``iterative`` (the optimiser's jobs follow one another), a batch otherwise."""

    def _shared(self, iterative: bool) -> AbstractContextManager[None]:
        """One device context for several blocks (:meth:`sample_batch`); none by default."""
        return nullcontext()

    def sample_batch(
        self,
        bqms: Sequence[dimod.BinaryQuadraticModel],
        cardinality: Sequence[Sequence[tuple[Sequence[Any], int]] | None] | None = None,
        **parameters: Any,
    ) -> list[dimod.SampleSet]:
        """Independent blocks with the same options, their device jobs in one context: one IBM
        batch when only final samplings go to the device (``optimize_on="local"``), one session
        otherwise. No initial states: QAOA starts from its ansatz."""
        cards = list(cardinality) if cardinality is not None else [None] * len(bqms)
        with self._shared(iterative=parameters.get("optimize_on", "device") != "local"):
            return [self.sample(b, cardinality=c, **parameters) for b, c in zip(bqms, cards)]

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        cardinality: Sequence[tuple[Sequence[Any], int]] | None = None,
        mixer: str = DEFAULT_MIXER,
        xy_graph: str = "ring",
        reps: int = 2,
        shots: int = 1024,
        optimizer: str = "cobyla",
        maxiter: int = 60,
        popsize: int = 4,
        seed: int | None = None,
        cvar_alpha: float | None = None,
        optimize_on: str = "device",
        **kwargs: Any,
    ) -> dimod.SampleSet:
        """Optimise the ``2 reps`` angles (at most ``maxiter`` steps of ``optimizer``, see
        :func:`~qubo_prune.backends.qaoa.optimise.budget`), then sample the best circuit.

        ``cvar_alpha`` in (0, 1] scores angles by the mean of the best ``alpha`` fraction of
        shots (CVaR) instead of the mean energy. ``optimize_on="local"`` trains on the free
        local simulator and sends only the final sampling to the device.
        """
        self.remove_unknown_kwargs(**kwargs)
        alpha = 1.0 if cvar_alpha is None else float(cvar_alpha)
        _check(mixer, xy_graph, optimizer, optimize_on, alpha)
        variables = list(bqm.variables)
        n = len(variables)
        check_qubits(n, self.properties["max_qubits"], self.properties["device"])
        if n == 0:
            return shots_to_sampleset(np.zeros((1, 0)), [shots], variables, bqm)
        groups = _qubit_groups(cardinality, variables, mixer)
        binary = bqm.change_vartype(dimod.BINARY, inplace=False)
        sigma = spread(binary, variables, groups)
        h, couplings = z_ising(bqm, variables)
        h, couplings = h / sigma, [(i, j, J / sigma) for i, j, J in couplings]
        gates = qaoa_gates(h, couplings, reps, groups, xy_graph)
        trainer = "local" if optimize_on == "local" or self._local_only else "device"
        programs = {t: self._program(gates, n, t) for t in {trainer, "device"}}
        plan = _Plan(reps, shots, optimizer, maxiter, popsize, seed, alpha)
        start = time.perf_counter()
        x, (bits, counts), batches = self._optimise(
            programs, trainer, lambda X: binary.energies((X, variables)), plan
        )
        info = {
            "device": self.properties["device"],
            "shots": shots,
            "reps": reps,
            "mixer": "xy" if groups else "x",
            "optimal_point": dict(zip(parameter_names(reps), map(float, x))),
            "training_evaluations": sum(batches),
            "training_batches": len(batches),
            "trained_on": "local simulator" if trainer == "local" else self.properties["device"],
            "seconds": time.perf_counter() - start,
            **self._stats(programs["device"]),
        }
        if groups:
            feasible = np.ones(len(bits), dtype=bool)
            for g, k in groups:
                feasible &= bits[:, g].sum(axis=1) == k
            info["feasible_fraction"] = float(counts[feasible].sum() / counts.sum())
        return shots_to_sampleset(bits, counts, variables, bqm, info)

    def _optimise(
        self,
        programs: Mapping[str, Any],
        trainer: str,
        energies: Callable[[np.ndarray], np.ndarray],
        plan: _Plan,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], list[int]]:
        """Train the angles on ``trainer`` from the linear ramp, then sample the device once at
        the best: ``(angles, (states, counts), batch sizes)``. Every device job of the block
        runs inside one runner (one IBM session)."""
        batches: list[int] = []
        gammas, betas = ramp_angles(plan.reps)
        bounds = [(0.0, np.pi)] * plan.reps + [(0.0, np.pi / 2)] * plan.reps
        with self._runner(trainer, iterative=True) as train:

            def score(points: np.ndarray) -> np.ndarray:
                batches.append(len(points))
                runs = train(programs[trainer], points, plan.shots, plan.seed)
                return np.array([_cvar(energies(X), c, plan.alpha) for X, c in runs])

            x = optimise(
                score,
                np.concatenate([gammas, betas]),
                bounds,
                plan.optimizer,
                plan.maxiter,
                plan.popsize,
                plan.seed,
            )
            if trainer == "device":
                final = train(programs["device"], x[None], plan.shots, plan.seed)
        if trainer == "local":
            with self._runner("device", iterative=False) as device:
                final = device(programs["device"], x[None], plan.shots, plan.seed)
        return x, final[0], batches

    @staticmethod
    def planned(options: Mapping[str, Any]) -> tuple[int, int]:
        """Batches and angle evaluations one block makes with ``options`` (final sampling
        included), known before anything runs: what the cost guard prices."""
        from qubo_prune.backends.cost import sample_defaults

        o = {**sample_defaults(QAOASampler), **options}
        reps = int(o["reps"])
        if o["optimize_on"] == "local":
            return 1, 1
        batches, evaluations = budget(
            o["optimizer"], int(o["maxiter"]), int(o["popsize"]), 2 * reps
        )
        return batches + 1, evaluations + 1
