"""Problem transforms as dimod composites: cardinality in the form a sampler takes, normalised biases.

:class:`CardinalityComposite` receives a block's bare objective and its cardinality groups
(``cardinality=[(variables, k), ...]``). A sampler that keeps the constraint natively gets them
as they are; any other gets the penalised BQM ``objective + lam * sum_g (sum x_g - k_g)^2`` with
the provable multiplier of the math note by default, or ``penalty=`` / ``penalty_scale=`` (a
multiple of that bound). Either way the returned energies are the objective's and ``info``
records the multiplier used (``penalty``) and the share of feasible samples before any repair.

:class:`NormalisingComposite` scales a BQM so that its largest bias is 1 before its child sees
it (the QAOA samplers: one set of angle bounds and one initial schedule suit every block), and
returns energies in the BQM's own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dimod
import numpy as np

__all__ = ["CardinalityComposite", "NormalisingComposite", "penalty_bound"]

Cardinality = Sequence[tuple[Sequence[Any], int]]


def _dense(bqm: dimod.BinaryQuadraticModel, variables: list) -> tuple[np.ndarray, float]:
    """The BINARY upper-triangular matrix (linear biases on the diagonal) and offset."""
    lin, (row, col, quad), offset = bqm.binary.to_numpy_vectors(variable_order=variables)
    n = len(variables)
    M = np.zeros((n, n))
    M[np.minimum(row, col), np.maximum(row, col)] = quad  # a BQM holds each pair once
    M[np.diag_indices(n)] = lin
    return M, float(offset)


def penalty_bound(bqm: dimod.BinaryQuadraticModel) -> float:
    """``max_i |a_i| + sum_j |b_ij|`` of the BINARY biases: above it every ground state of the
    penalised BQM is feasible (one flip toward ``k`` lowers the penalty more than it can raise
    the objective). The same number as :meth:`qubo_prune.core.block.Block.penalty_bound`."""
    lin, (row, col, quad), _ = bqm.binary.to_numpy_vectors()
    n = len(lin)
    if n == 0:
        return 0.0
    rows = np.bincount(row, np.abs(quad), n) + np.bincount(col, np.abs(quad), n)
    return float((np.abs(lin) + rows).max())


def _groups(cardinality: Cardinality | None, index: dict) -> list[tuple[np.ndarray, int]]:
    try:
        return [
            (np.array([index[v] for v in g], dtype=np.int64), int(k)) for g, k in cardinality or ()
        ]
    except KeyError as err:
        raise ValueError(f"cardinality names variable {err.args[0]!r}, not in the BQM") from None


class CardinalityComposite(dimod.ComposedSampler):
    """Hands a bare objective with ``cardinality`` groups to ``child`` in the form it takes.

    ``native=True``: the child keeps the constraint itself and receives ``cardinality=`` as
    is. Otherwise the child receives the penalised BQM. ``initial_states`` (a warm start)
    passes through unchanged; it must be feasible, which costs no penalty.
    """

    def __init__(self, child: dimod.Sampler, native: bool):
        self._children = [child]
        self.native = bool(native)

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, list]:
        own = {"cardinality": []} if self.native else {"penalty": [], "penalty_scale": []}
        return {**self.child.parameters, **own, "cardinality": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {"child_properties": self.child.properties, "native_cardinality": self.native}

    def multiplier(
        self, bqm: dimod.BinaryQuadraticModel, penalty: float | None, penalty_scale: float | None
    ) -> float:
        """``penalty`` if given, else ``penalty_scale`` times the bound, else just above it."""
        if penalty is not None:
            lam = float(penalty)
        elif penalty_scale is not None:
            lam = float(penalty_scale) * penalty_bound(bqm)
        else:
            bound = penalty_bound(bqm)
            lam = bound * (1.0 + 1e-6) if bound > 0 else 1.0
        if not lam >= 0:
            raise ValueError(f"penalty multiplier must be >= 0, got {lam}")
        return lam

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        cardinality: Cardinality | None = None,
        penalty: float | None = None,
        penalty_scale: float | None = None,
        **parameters: Any,
    ) -> dimod.SampleSet:
        """Sample ``bqm`` subject to ``cardinality``; energies are ``bqm``'s own."""
        if self.native:
            return self.child.sample(bqm, cardinality=cardinality, **parameters)
        variables = list(bqm.variables)
        groups = _groups(cardinality, {v: i for i, v in enumerate(variables)})
        lam = self.multiplier(bqm, penalty, penalty_scale)
        M, offset = _dense(bqm, variables)
        for g, k in groups:
            # lam (sum x - k)^2 = lam [ (1 - 2k) sum x + 2 sum_{i<j} x_i x_j + k^2 ]
            M[g, g] += lam * (1.0 - 2.0 * k)
            gi = np.sort(g)
            M[np.ix_(gi, gi)] += 2.0 * lam * np.triu(np.ones((len(gi), len(gi))), 1)
            offset += lam * k * k
        penalised = dimod.BinaryQuadraticModel(M, dimod.BINARY, offset=offset)
        if variables != list(range(len(variables))):
            penalised.relabel_variables(dict(enumerate(variables)))
        result = self.child.sample(penalised, **parameters)
        return _objective_energies(result, bqm, groups, lam, variables)

    def sample_batch(
        self,
        bqms: Sequence[dimod.BinaryQuadraticModel],
        cardinality: Sequence[Cardinality | None] | None = None,
        **parameters: Any,
    ) -> list[dimod.SampleSet]:
        """Many BQMs in one call of a native, batched child (else one by one)."""
        cards = list(cardinality) if cardinality is not None else [None] * len(bqms)
        if self.native and hasattr(self.child, "sample_batch"):
            return self.child.sample_batch(list(bqms), cardinality=cards, **parameters)
        initial = parameters.pop("initial_states", None) or [None] * len(bqms)
        out = []
        for bqm, card, init in zip(bqms, cards, initial):
            extra = {} if init is None else {"initial_states": init}
            out.append(self.sample(bqm, cardinality=card, **parameters, **extra))
        return out


def _objective_energies(
    result: dimod.SampleSet,
    bqm: dimod.BinaryQuadraticModel,
    groups: list[tuple[np.ndarray, int]],
    lam: float,
    variables: list,
) -> dimod.SampleSet:
    """The child's samples with the objective's energies (penalty taken off), in ``bqm``'s
    vartype; ``info`` gains the multiplier and the feasible share before repair."""
    binary = result.change_vartype(dimod.BINARY, inplace=False)
    labels = list(binary.variables)
    X = binary.record.sample[:, [labels.index(v) for v in variables]]
    violation = np.zeros(len(X))
    for g, k in groups:
        violation += (X[:, g].sum(axis=1) - k) ** 2
    feasible = (
        float(np.average(violation == 0, weights=binary.record.num_occurrences)) if len(X) else 0.0
    )
    info = {**result.info, "penalty": lam, "feasible_fraction": feasible}
    out = _with_energies(binary, binary.record.energy - lam * violation, info)
    return out if bqm.vartype is dimod.BINARY else out.change_vartype(bqm.vartype, inplace=False)


def _with_energies(result: dimod.SampleSet, energies: np.ndarray, info: dict) -> dimod.SampleSet:
    """``result`` with its energies replaced (every other record field and the order kept)."""
    record = result.record.copy()
    record.energy = energies
    return dimod.SampleSet(record, result.variables, info, result.vartype)


class NormalisingComposite(dimod.ComposedSampler):
    """Scales each BQM to a largest bias of 1 for ``child``; energies come back unscaled."""

    def __init__(self, child: dimod.Sampler):
        self._children = [child]

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, list]:
        return dict(self.child.parameters)

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.child.properties)

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        return _unscaled(bqm, self.child.sample(_scaled(bqm), **parameters))

    def sample_batch(
        self, bqms: Sequence[dimod.BinaryQuadraticModel], **parameters: Any
    ) -> list[dimod.SampleSet]:
        """Many BQMs in one ``sample_batch`` call of the child, each scaled as by ``sample``."""
        results = self.child.sample_batch([_scaled(b) for b in bqms], **parameters)
        return [_unscaled(b, r) for b, r in zip(bqms, results)]


def _scaled(bqm: dimod.BinaryQuadraticModel) -> dimod.BinaryQuadraticModel:
    """``bqm`` in BINARY form with its largest bias 1."""
    scaled = bqm.change_vartype(dimod.BINARY, inplace=False)
    biases = np.concatenate(
        [np.abs(list(scaled.linear.values())), np.abs(list(scaled.quadratic.values()))]
    )
    scale = float(biases.max()) if biases.size else 0.0
    if scale > 0:
        scaled.scale(1.0 / scale)
    return scaled


def _unscaled(bqm: dimod.BinaryQuadraticModel, result: dimod.SampleSet) -> dimod.SampleSet:
    """The child's samples in ``bqm``'s vartype with ``bqm``'s own energies."""
    result = result.change_vartype(bqm.vartype)
    energies = bqm.energies((result.record.sample, result.variables))
    return _with_energies(result, energies, result.info)
