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

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dimod
import numpy as np

__all__ = [
    "CardinalityComposite",
    "NormalisingComposite",
    "auto_multiplier",
    "penalty_bound",
    "safe_multiplier",
]

Cardinality = Sequence[tuple[Sequence[Any], int]]
_BINARY_TYPES = (dimod.BINARY, dimod.SPIN)

# penalty="auto": the first multiplier is AUTO_SCALE times the median single-flip change at
# AUTO_PROBES random feasible states; while fewer than AUTO_FEASIBLE of the samples are
# feasible it grows AUTO_GROWTH-fold, and the last of AUTO_ROUNDS tries is the safe bound.
# Measured on real blocks (docs/benchmarks.md): answers are best when a small multiplier lets
# samples cross the constraint and the decoder repairs them, worst when a large one freezes
# every sample feasible; the later tries guarantee feasible samples where the bound does.
AUTO_SCALE = 0.005
AUTO_GROWTH = 8.0
AUTO_ROUNDS = 3
AUTO_FEASIBLE = 0.25
AUTO_PROBES = 4


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
    is. Otherwise the child receives the penalised BQM, with the multiplier ``penalty``:

    - ``"auto"`` (the default): a multiplier taken from the block's own numbers
      (:func:`auto_multiplier`), raised while fewer than a quarter of the samples are
      feasible (three tries at most, the last at the safe bound); every try's samples are
      returned, and the decoder repairs the infeasible ones;
    - ``"safe"``: just above the provable bound of the math note (every ground state feasible);
    - a number, or ``penalty_scale`` times the provable bound.

    ``initial_states`` (a warm start) passes through unchanged; it must be feasible, which
    costs no penalty.
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

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        cardinality: Cardinality | None = None,
        penalty: float | Literal["auto", "safe"] = "auto",
        penalty_scale: float | None = None,
        **parameters: Any,
    ) -> dimod.SampleSet:
        """Sample ``bqm`` subject to ``cardinality``; energies are ``bqm``'s own."""
        if self.native:
            return self.child.sample(bqm, cardinality=cardinality, **parameters)
        variables = list(bqm.variables)
        groups = _groups(cardinality, {v: i for i, v in enumerate(variables)})
        M, offset = _dense(bqm, variables)
        results = []
        for lam in _multipliers(M, groups, penalty, penalty_scale):
            result = self.child.sample(_penalised(M, offset, groups, lam, variables), **parameters)
            if (
                not isinstance(result, dimod.SampleSet)
                or result.vartype not in _BINARY_TYPES
                or not len(result)
            ):
                return result  # not an answer: the caller says so, naming the solver
            results.append(_objective_energies(result, bqm, groups, lam, variables))
            if results[-1].info["feasible_fraction"] >= AUTO_FEASIBLE:
                break
        return _rounds(results)

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


def most_rounds(options: Mapping[str, Any]) -> int:
    """How many solves one penalised block may take with these options (for pricing)."""
    auto = options.get("penalty", "auto") == "auto" and options.get("penalty_scale") is None
    return AUTO_ROUNDS if auto else 1


def safe_multiplier(bound: float) -> float:
    """Strictly above the provable bound (1 for an all-zero objective)."""
    return bound * (1.0 + 1e-6) if bound > 0 else 1.0


def auto_multiplier(M: np.ndarray, groups: list[tuple[np.ndarray, int]]) -> float:
    """``AUTO_SCALE`` times the median size of a single flip's change of the objective at a few
    random feasible states: the block's own energy scale, where the provable bound is a worst
    case summed over a whole row (it grows with the block, the typical flip does not)."""
    n = len(M)
    Q = (np.triu(M, 1) + np.triu(M, 1).T) / 2.0
    Q[np.diag_indices(n)] = np.diag(M)
    rng = np.random.default_rng(0)  # the same multiplier for the same block, every time
    X = rng.integers(0, 2, size=(AUTO_PROBES, n)).astype(float)
    for g, k in groups:
        X[:, g] = 0.0
        for row in X:
            row[rng.choice(g, size=k, replace=False)] = 1.0
    fields = X @ Q - X * np.diag(Q)  # sum_{j != i} Q_ij x_j
    flips = (1.0 - 2.0 * X) * (np.diag(Q) + 2.0 * fields)
    scale = float(np.median(np.abs(flips)))
    return AUTO_SCALE * scale if scale > 0 else 1.0


def _row_bound(M: np.ndarray) -> np.ndarray:
    """Per variable ``|a_i| + sum_j |b_ij|`` of an upper-triangular BINARY matrix."""
    off = np.abs(np.triu(M, 1))
    return np.abs(np.diag(M)) + off.sum(axis=0) + off.sum(axis=1)


def _multipliers(
    M: np.ndarray,
    groups: list[tuple[np.ndarray, int]],
    penalty: float | str | None,
    penalty_scale: float | None,
) -> list[float]:
    """The multipliers to try, in order (one, except for ``"auto"``)."""
    bound = float(_row_bound(M).max()) if len(M) else 0.0
    if penalty_scale is not None:
        lams = [float(penalty_scale) * bound]
    elif penalty in (None, "safe"):
        lams = [safe_multiplier(bound)]
    elif penalty == "auto":  # from the block's own scale up; the last try is the safe bound
        safe = safe_multiplier(bound)
        first = min(auto_multiplier(M, groups), safe)
        lams = [min(first * AUTO_GROWTH**r, safe) for r in range(AUTO_ROUNDS - 1)] + [safe]
    else:
        lams = [float(penalty)]
    if not all(lam >= 0 for lam in lams):
        raise ValueError(f"penalty multiplier must be >= 0, got {lams[0]}")
    return lams


def _penalised(
    M: np.ndarray,
    offset: float,
    groups: list[tuple[np.ndarray, int]],
    lam: float,
    variables: list,
) -> dimod.BinaryQuadraticModel:
    """``objective + lam * sum_g (sum x_g - k_g)^2`` as a BQM over ``variables``."""
    M = M.copy()
    for g, k in groups:
        # lam (sum x - k)^2 = lam [ (1 - 2k) sum x + 2 sum_{i<j} x_i x_j + k^2 ]
        M[g, g] += lam * (1.0 - 2.0 * k)
        gi = np.sort(g)
        M[np.ix_(gi, gi)] += 2.0 * lam * np.triu(np.ones((len(gi), len(gi))), 1)
        offset += lam * k * k
    penalised = dimod.BinaryQuadraticModel(M, dimod.BINARY, offset=offset)
    if variables != list(range(len(variables))):
        penalised.relabel_variables(dict(enumerate(variables)))
    return penalised


def _rounds(results: list[dimod.SampleSet]) -> dimod.SampleSet:
    """The samples of every round as one set; ``info`` of the last round, plus the rounds and
    the feasible share over all of them."""
    if len(results) == 1:
        return results[0]
    merged = dimod.concatenate(results)
    weights = [r.record.num_occurrences.sum() for r in results]
    feasible = np.average([r.info["feasible_fraction"] for r in results], weights=weights)
    info = {
        **results[-1].info,
        "penalty_rounds": len(results),
        "feasible_fraction": float(feasible),
    }
    return dimod.SampleSet(merged.record, merged.variables, info, merged.vartype)


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
    violation, distance = np.zeros(len(X)), np.zeros(len(X))
    for g, k in groups:
        off = X[:, g].sum(axis=1) - k
        violation += off**2
        distance += np.abs(off)
    weights = binary.record.num_occurrences
    share = lambda ok: float(np.average(ok, weights=weights)) if len(X) else 0.0  # noqa: E731
    info = {
        **result.info,
        "penalty": lam,
        "feasible_fraction": share(violation == 0),
        "near_feasible_fraction": share(distance <= 1),
    }
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
    """The child's samples in ``bqm``'s vartype with ``bqm``'s own energies (anything else is
    returned as it came, for the registry's answer checks to name)."""
    if not isinstance(result, dimod.SampleSet) or result.vartype not in _BINARY_TYPES:
        return result
    result = result.change_vartype(bqm.vartype)
    energies = bqm.energies((result.record.sample, result.variables))
    return _with_energies(result, energies, result.info)
