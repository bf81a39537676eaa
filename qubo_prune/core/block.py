"""One block of weights as a cardinality-constrained QUBO.

A :class:`Block` is the unit every solver sees: ``E(x) = x^T Q x + constant`` over binary ``x``
(``x_i = 1``: weight ``i`` is pruned after the step) subject to one ``sum(x[g]) == k_g`` per
disjoint group ``g``. Energies are always in the objective's own units (loss change or squared
output error); penalties exist only inside the BQM handed to penalty-based solvers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dimod
import numpy as np

__all__ = ["Block", "block_bytes", "cardinality_cqm", "load_blocks", "save_blocks"]

# float64 n x n matrices alive while one block is built and solved: the objective's Hessian or
# Gram slice, Q, the BQM and its penalised copy, and the sampler's own.
_MATRICES_PER_BLOCK = 8


def block_bytes(n: int) -> int:
    """Memory one block of ``n`` weights takes while it is built and solved."""
    return _MATRICES_PER_BLOCK * 8 * int(n) ** 2


def cardinality_cqm(
    objective: dimod.BinaryQuadraticModel, cardinality: list[tuple[list, int]]
) -> dimod.ConstrainedQuadraticModel:
    """``objective`` with one equality ``sum(x[g]) == k`` per group, as native constraints."""
    cqm = dimod.ConstrainedQuadraticModel()
    cqm.set_objective(objective)
    for j, (group, k) in enumerate(cardinality):
        cqm.add_constraint_from_iterable(
            [(v, 1) for v in group], "==", rhs=k, label=f"cardinality_{j}"
        )
    return cqm


@dataclass
class Block:
    """A cardinality-constrained QUBO over the weights ``coords`` of tensor ``tensor``.

    ``Q`` is symmetric (the linear part on its diagonal, since ``x_i^2 = x_i``); ``current`` is
    the block's mask before the step, always a feasible candidate.
    """

    Q: np.ndarray
    constant: float
    current: np.ndarray
    groups: tuple[np.ndarray, ...] = ()
    k: tuple[int, ...] = ()
    tensor: str = ""
    coords: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        Q = np.asarray(self.Q, dtype=np.float64)
        if Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
            raise ValueError(f"Q must be a square matrix, got shape {Q.shape}")
        if not np.all(np.isfinite(Q)) or not np.isfinite(self.constant):
            raise ValueError("the block objective contains NaN or inf (check gradients/Hessian)")
        self.Q = (Q + Q.T) / 2.0
        self.constant = float(self.constant)
        n = Q.shape[0]
        self.current = np.asarray(self.current, dtype=np.int8).reshape(n)
        if not self.groups:
            self.groups = (np.arange(n),)
            self.k = (int(self.current.sum()),)
        self.groups = tuple(np.asarray(g, dtype=np.int64) for g in self.groups)
        self.k = tuple(int(v) for v in self.k)
        if len(self.groups) != len(self.k):
            raise ValueError("one cardinality k is needed per group")
        covered = np.concatenate(self.groups) if self.groups else np.zeros(0, dtype=np.int64)
        if len(np.unique(covered)) != len(covered):
            raise ValueError("cardinality groups must be disjoint")
        self.coords = np.asarray(self.coords, dtype=np.int64)
        if not self.is_feasible(self.current):
            raise ValueError("the current mask of a block must satisfy its cardinality constraints")

    @property
    def n(self) -> int:
        return self.Q.shape[0]

    def energy(self, x: np.ndarray) -> np.ndarray | float:
        """Objective ``x^T Q x + constant`` of one state ``(n,)`` or many ``(m, n)``."""
        X = np.asarray(x, dtype=np.float64)
        single = X.ndim == 1
        X = np.atleast_2d(X)
        E = np.einsum("mi,mi->m", X @ self.Q, X) + self.constant
        return float(E[0]) if single else E

    def is_feasible(self, x: np.ndarray) -> np.ndarray | bool:
        """Whether each state satisfies every group's cardinality."""
        X = np.atleast_2d(np.asarray(x))
        ok = np.ones(X.shape[0], dtype=bool)
        for g, k in zip(self.groups, self.k):
            ok &= X[:, g].sum(axis=1) == k
        return bool(ok[0]) if np.ndim(x) == 1 else ok

    def penalty_bound(self) -> float:
        """Smallest multiplier the math note proves safe: ``max_i |Q_ii| + 2 sum_{j!=i} |Q_ij|``.

        Above it, one flip toward feasibility lowers the penalty more than it can raise the
        objective, so every ground state of the penalised BQM is feasible.
        """
        A = np.abs(self.Q)
        row = 2.0 * A.sum(axis=1) - np.diag(A)
        return float(row.max()) if self.n else 0.0

    def default_penalty(self) -> float:
        """Strictly above :meth:`penalty_bound` (1 for an all-zero objective)."""
        bound = self.penalty_bound()
        return bound * (1.0 + 1e-6) if bound > 0 else 1.0

    def to_bqm(self, penalty: float | None = None) -> dimod.BinaryQuadraticModel:
        """The penalised BQM over variables ``0..n-1``; ``penalty=0`` gives the bare objective."""
        lam = self.default_penalty() if penalty is None else float(penalty)
        if lam < 0:
            raise ValueError(f"penalty multiplier must be >= 0, got {lam}")
        n = self.n
        # Upper-triangular QUBO: diagonal = linear biases, off-diagonal = 2 Q_ij.
        M = 2.0 * np.triu(self.Q, 1)
        linear = np.diag(self.Q).copy()
        offset = self.constant
        for g, k in zip(self.groups, self.k):
            # lam (sum x - k)^2 = lam [ (1 - 2k) sum x + 2 sum_{i<j} x_i x_j + k^2 ]
            linear[g] += lam * (1.0 - 2.0 * k)
            gi = np.sort(g)
            M[np.ix_(gi, gi)] += 2.0 * lam * np.triu(np.ones((len(gi), len(gi))), 1)
            offset += lam * k * k
        M[np.diag_indices(n)] = linear
        return dimod.BinaryQuadraticModel(M, dimod.BINARY, offset=offset)

    def to_cqm(self) -> dimod.ConstrainedQuadraticModel:
        """The block with its cardinalities as native equality constraints."""
        return cardinality_cqm(self.to_bqm(penalty=0.0), self.cardinality())

    def cardinality(self) -> list[tuple[list[int], int]]:
        """Constraints in the form native-cardinality samplers take (``cardinality=`` kwarg)."""
        return [(g.tolist(), k) for g, k in zip(self.groups, self.k)]

    def to_dict(self) -> dict[str, np.ndarray]:
        out = {
            "Q": self.Q,
            "constant": np.array(self.constant),
            "current": self.current,
            "k": np.array(self.k, dtype=np.int64),
            "group_sizes": np.array([len(g) for g in self.groups], dtype=np.int64),
            "group_index": np.concatenate(self.groups),
            "tensor": np.array(self.tensor),
            "coords": self.coords,
        }
        return out

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Block:
        splits = np.cumsum(d["group_sizes"])[:-1]
        return cls(
            Q=d["Q"],
            constant=float(d["constant"]),
            current=d["current"],
            groups=tuple(np.split(d["group_index"], splits)),
            k=tuple(int(v) for v in d["k"]),
            tensor=str(d["tensor"]),
            coords=d["coords"],
        )


def save_blocks(blocks: list[Block], path: str | Path) -> Path:
    """Save blocks to one ``.npz`` file (keys ``b{i}/field``) for ``qubo-prune compare``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"b{i}/{key}": v for i, b in enumerate(blocks) for key, v in b.to_dict().items()}
    np.savez_compressed(path, count=np.array(len(blocks)), **arrays)
    return path


def load_blocks(path: str | Path) -> list[Block]:
    """Blocks saved by :func:`save_blocks`; anything else is refused with what it takes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recorded blocks at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            count = int(data["count"])
            return [
                Block.from_dict(
                    {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"b{i}/")}
                )
                for i in range(count)
            ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path} is not a blocks file (an .npz written by --record-blocks or save_blocks): "
            f"{(str(err).splitlines() or [''])[0][:200]}"
        ) from None
