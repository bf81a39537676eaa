"""Batched simulated annealing in torch that keeps cardinality constraints exactly.

Why a new annealer: a penalty-based annealer (neal) must cross a barrier of the penalty's size
for every single flip, so on a block with ``sum(x) = k`` it barely moves along the feasible
states once it has found one. Here every move swaps one 1 with one 0 inside a group, so every visited state is
feasible and the bare objective is annealed. And because iCBS solves many blocks of equal
size (one per row of a layer), all blocks and all replicas advance together as one tensor
program of shape ``(blocks, replicas, n)``; the only Python loop is over proposal steps.

Representation. Each block's variables are laid out in *slots*. A cardinality group of size
``g`` with ``k`` ones owns ``g`` consecutive slots: the first ``k`` hold the variables that are
1, the rest those that are 0, so a swap move is "exchange the contents of a random one-slot
and a random zero-slot of the same group", which keeps both ranges valid. A variable in no
group owns two slots holding itself and a *ghost* variable (index ``n``, zero couplings), the
one-slot holding whichever is 1; exchanging them is a single flip, so free variables need no
separate code path. Proposal slots therefore depend only on random numbers and the layout and
are drawn for a whole sweep at once.

Candidates. With few lanes (blocks x replicas: one block, as ``compare`` sends it) a step costs
the launch of its few operations, not their arithmetic, so such a step draws several random
moves per replica and proposes the one that lowers the energy most (:func:`auto_candidates`),
then accepts it by Metropolis: greedier than plain annealing, and far more work per step at
little more cost. A layer's batch of rows fills the lanes by itself and proposes single moves.

Polish. The last sweeps try only random moves, so annealing ends near a local optimum, not
at it; each problem's best read then descends by the most improving swap among all of them
until none is left (:meth:`Annealer.polish`: a few ``n x n`` passes).

Energy bookkeeping. With symmetric ``Q`` (linear biases on the diagonal) and ``E = x^T Q x``,
the fields ``g = 2 Q x`` give the swap delta of ``i: 1 -> 0, j: 0 -> 1`` as
``g_j - g_i + C_ij`` with the state-free ``C_ij = Q_ii + Q_jj - 2 Q_ij``; an accepted swap
updates ``g += 2 Q[j] - 2 Q[i]`` (rank-2), recomputed exactly every few sweeps to stop float
drift. Reported energies are recomputed in float64 from the returned states.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np
import torch

from qubo_prune.backends.schedule import COLD_ACCEPT, COLD_QUANTILE, HOT_ACCEPT

__all__ = [
    "Annealer",
    "GPUAnnealSampler",
    "Layout",
    "Problem",
    "as_problem",
    "auto_candidates",
    "beta_ranges",
    "layout",
]

Cardinality = Sequence[tuple[Sequence[Any], int]]

# Lanes a step is filled to with candidate moves, and the most candidates per replica ("Candidates"
# above; chosen on recorded n = 1024 blocks, docs/benchmarks.md).
CANDIDATE_LANES = 256
MAX_CANDIDATES = 32

# Sweeps between exact recomputations of the fields: cheap (one batched matmul) against a
# sweep of n proposals, and keeps the float32 drift of incremental updates negligible.
_REFRESH_EVERY = 8

# Elements of the swap-delta matrices one polish round holds at once (problems are chunked).
_POLISH_ELEMENTS = 1 << 22


def beta_ranges(annealer: Annealer, probe: torch.Generator) -> torch.Tensor:
    """``(B, 2)`` hot and cold inverse temperatures from the sizes of the moves themselves.

    Every replica starts at a random feasible state and draws one sweep of proposals (swaps
    inside a group, flips of free variables); their energy changes, measured but not applied,
    set the range of each block. Hot: the median change is accepted with probability 1/2, so
    the first sweeps mix. Cold: the 1%-smallest change is accepted with probability 1/100, so
    the last sweeps only descend. (neal's rule, from the largest and smallest biases, spans ten
    decades on dense Gram blocks and spends most sweeps frozen.) The annealer is left at those
    random states; start it again before annealing.
    """
    B, device = annealer.B, annealer.device
    out = torch.tensor([0.1, 1.0], dtype=torch.float64, device=device).repeat(B, 1)
    if annealer.n == 0:
        return out  # no signal: every state has the same energy
    gen = annealer.gen
    annealer.gen = probe
    try:
        annealer.start(*_random_start(annealer))
        ab, _ = annealer.proposals(torch.ones(B, dtype=annealer.dtype, device=device), 1)
    finally:
        annealer.gen = gen
    sizes = torch.stack([annealer.delta(ab[t, :, :, 0])[1] for t in range(annealer.n)], dim=1)
    sizes = sizes.reshape(B, -1).abs().to(torch.float64)
    moving = sizes > 1e-12 * sizes.amax(dim=1, keepdim=True)  # beyond float noise
    nonzero = moving.sum(dim=1)
    ordered = torch.where(moving, sizes, math.inf).sort(dim=1).values
    signal = nonzero > 0
    last = (nonzero - 1).clamp_min(0)
    median = ordered.gather(1, (last // 2)[:, None])[:, 0]
    low_at = (last.to(torch.float64) * COLD_QUANTILE).floor().long()
    low = ordered.gather(1, low_at[:, None])[:, 0]
    hot = math.log(1.0 / HOT_ACCEPT) / median
    cold = math.log(1.0 / COLD_ACCEPT) / low
    out[signal, 0] = hot[signal]
    out[signal, 1] = torch.maximum(hot, cold)[signal]
    return out


def auto_candidates(blocks: int, replicas: int) -> int:
    """Candidate moves per replica and step when none are asked: fill the step's lanes."""
    return max(1, min(MAX_CANDIDATES, CANDIDATE_LANES // max(1, blocks * replicas)))


def _random_start(annealer: Annealer) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial states that ask :meth:`Annealer.start` for random feasible states everywhere."""
    X0 = torch.zeros(
        (annealer.B, annealer.R, annealer.n1), dtype=torch.int8, device=annealer.device
    )
    return X0, torch.zeros((annealer.B, annealer.R), dtype=torch.bool, device=annealer.device)


def schedule(ranges: torch.Tensor, num_sweeps: int, kind: str) -> torch.Tensor:
    """``(B, num_sweeps)`` inverse temperatures from each block's hot to its cold end."""
    t = torch.linspace(0.0, 1.0, num_sweeps, dtype=torch.float64, device=ranges.device)[None, :]
    hot, cold = ranges[:, :1], ranges[:, 1:]
    if kind == "geometric":
        return torch.exp(torch.log(hot) + t * (torch.log(cold) - torch.log(hot)))
    return hot + t * (cold - hot)


@dataclass
class Layout:
    """Where a problem's variables sit in the annealer's slots, given its groups.

    ``slot_var``: the variable each slot holds in the layout's reference order (ghost ``n``
    for padding and for free variables' partner slots); ``slot_unit``: the unit (group or free
    variable) a slot belongs to; ``slot_one``: whether the slot is a one-slot; ``slot_src`` and
    ``slot_flip``: whose value decides a slot in a given state (a ghost slot takes the
    complement of its free variable); ``moves``: rows ``(one_start, k, zero_start, n_zero)``,
    one per proposal weight unit; ``var_unit``: each variable's group, -1 for a free one.
    """

    slot_var: np.ndarray
    slot_unit: np.ndarray
    slot_one: np.ndarray
    slot_src: np.ndarray
    slot_flip: np.ndarray
    moves: np.ndarray
    var_unit: np.ndarray

    @property
    def num_slots(self) -> int:
        return len(self.slot_var)


def layout(n: int, groups: Sequence[tuple[np.ndarray, int]]) -> Layout:
    """The slots of ``n`` variables with disjoint ``groups`` ``(positions, k)``; the rest free."""
    seen = np.zeros(n, dtype=bool)
    var_unit = np.full(n, -1, dtype=np.int64)
    slot_var, slot_unit, slot_one, slot_src, slot_flip, moves = [], [], [], [], [], []
    for unit, (g, k) in enumerate(groups):
        seen[g] = True
        var_unit[g] = unit
        start = len(slot_var)
        slot_var += g.tolist()
        slot_src += g.tolist()
        slot_flip += [False] * len(g)
        slot_unit += [unit] * len(g)
        slot_one += [True] * k + [False] * (len(g) - k)
        if 0 < k < len(g):  # weight a group by its size so every variable is visited alike
            moves += [(start, k, start + k, len(g) - k)] * len(g)
    for unit, v in enumerate(np.flatnonzero(~seen), start=len(groups)):
        start = len(slot_var)
        slot_var += [int(v), n]
        slot_src += [int(v), int(v)]
        slot_flip += [False, True]
        slot_unit += [unit, unit]
        slot_one += [True, False]
        moves.append((start, 1, start + 1, 1))
    return Layout(
        slot_var=np.array(slot_var, dtype=np.int64),
        slot_unit=np.array(slot_unit, dtype=np.int64),
        slot_one=np.array(slot_one, dtype=bool),
        slot_src=np.array(slot_src, dtype=np.int64),
        slot_flip=np.array(slot_flip, dtype=bool),
        moves=np.array(moves, dtype=np.int64).reshape(-1, 4),
        var_unit=var_unit,
    )


@dataclass
class Problem:
    """One BQM in the form the annealer takes: binary ``Q``, its groups and their slot layout."""

    bqm: dimod.BinaryQuadraticModel
    variables: list[Any]
    Q: np.ndarray
    offset: float
    groups: list[tuple[np.ndarray, int]]
    init: np.ndarray | None
    layout: Layout

    @property
    def n(self) -> int:
        return len(self.variables)


def as_problem(
    bqm: dimod.BinaryQuadraticModel, cardinality: Cardinality | None, initial_states: Any
) -> Problem:
    """Validate one BQM with its constraints and initial states and lay out its slots."""
    variables = list(bqm.variables)
    n = len(variables)
    index = {v: i for i, v in enumerate(variables)}
    lin, (row, col, quad), offset = bqm.binary.to_numpy_vectors(variable_order=variables)
    Q = np.zeros((n, n))
    Q[np.diag_indices(n)] = lin
    Q[row, col] = quad / 2.0  # a BQM holds each pair once, off the diagonal
    Q[col, row] = quad / 2.0

    try:
        groups = [
            (np.array([index[v] for v in members], dtype=np.int64), int(k))
            for members, k in cardinality or ()
        ]
    except KeyError as err:
        raise ValueError(f"cardinality names variable {err.args[0]!r}, not in the BQM") from None
    _check_groups(groups, n)
    init = (
        None if initial_states is None else _initial_states(bqm, variables, groups, initial_states)
    )
    return Problem(bqm, variables, Q, float(offset), groups, init, layout(n, groups))


def _initial_states(
    bqm: dimod.BinaryQuadraticModel,
    variables: list[Any],
    groups: list[tuple[np.ndarray, int]],
    initial_states: Any,
) -> np.ndarray:
    """Samples-like initial states as a binary (m, n) matrix in ``variables`` order, checked."""
    X, labels = dimod.as_samples(initial_states)
    position = {v: i for i, v in enumerate(labels)}
    if len(X) and (len(labels) != len(variables) or any(v not in position for v in variables)):
        raise ValueError("initial_states must give a value for every variable of the BQM")
    X = X[:, [position[v] for v in variables]] if len(X) else np.zeros((0, len(variables)))
    if bqm.vartype is dimod.SPIN:
        if not np.isin(X, (-1, 1)).all():
            raise ValueError("initial_states of a SPIN BQM must be -1/+1")
        X = (X + 1) // 2
    elif not np.isin(X, (0, 1)).all():
        raise ValueError("initial_states of a BINARY BQM must be 0/1")
    X = X.astype(np.int8)
    bad = np.flatnonzero(~_feasible(X, groups))
    if len(bad):
        raise ValueError(f"initial state {int(bad[0])} violates the cardinality constraints")
    return X


def _check_groups(groups: Sequence[tuple[np.ndarray, int]], n: int) -> None:
    """Refuse overlapping groups, positions outside ``0..n-1`` and impossible counts."""
    seen = np.zeros(n, dtype=bool)
    for g, k in groups:
        if len(g) and (g.min() < 0 or g.max() >= n):
            raise ValueError(f"cardinality group positions must lie in 0..{n - 1}")
        if len(np.unique(g)) != len(g) or seen[g].any():
            raise ValueError("cardinality groups must be disjoint sets of variables")
        if not 0 <= k <= len(g):
            raise ValueError(f"cardinality k={k} is impossible for a group of {len(g)} variables")
        seen[g] = True


def _feasible(X: np.ndarray, groups: list[tuple[np.ndarray, int]]) -> np.ndarray:
    ok = np.ones(len(X), dtype=bool)
    for g, k in groups:
        ok &= X[:, g].sum(axis=1) == k
    return ok


class Annealer:
    """Every replica of a batch of equal-size problems, advanced together.

    State per replica: ``perm`` (which variable sits in each slot), the fields ``g = 2 Q x``
    and the running energy ``E``; the best state seen at a sweep boundary is kept, so a
    replica never returns worse than where it passed. On CPU an accepted move updates only
    the accepted replicas' fields (few late in the anneal); elsewhere every replica takes a
    masked update, which avoids the host synchronisation of selecting the accepted ones.
    """

    def __init__(
        self,
        Q: torch.Tensor,
        layouts: Sequence[Layout],
        num_reads: int,
        dtype: torch.dtype,
        generator: torch.Generator,
        candidates: int | None = 1,
    ) -> None:
        B, R, n = Q.shape[0], num_reads, Q.shape[1]
        self.candidates = auto_candidates(B, R) if candidates is None else candidates
        n1 = n + 1
        L = max(lay.num_slots for lay in layouts) + 1  # the last slot: a ghost for no-op moves
        device = Q.device
        self.B, self.R, self.n, self.n1, self.L = B, R, n, n1, L
        self.device, self.dtype, self.gen = device, dtype, generator
        self.dense_updates = device.type != "cpu"

        # 2Q for field updates and C_ij = Q_ii + Q_jj - 2 Q_ij for deltas, with a zero ghost
        # row and column; built in float64, stored in the annealing dtype.
        Qd = Q.to(torch.float64)
        d = torch.diagonal(Qd, dim1=1, dim2=2)
        self.Q2 = torch.zeros((B, n1, n1), dtype=dtype, device=device)
        self.Q2[:, :n, :n] = 2.0 * Qd
        C = torch.zeros((B, n1, n1), dtype=dtype, device=device)
        C[:, :n, :n] = (-2.0 * Qd).add_(d[:, :, None]).add_(d[:, None, :])
        C[:, n, :n] = C[:, :n, n] = d
        self.Q2_rows = self.Q2.view(B * n1, n1)
        self.C = C.view(B, n1 * n1)
        # Energies improve "really" only by more than float noise of the largest flip delta.
        bound = Qd.abs().sum(dim=2).amax(dim=1) if n else torch.zeros(B, device=device)
        self.tol = (1e-6 * bound).to(dtype)[:, None]

        # One layout shared by every problem (a layer's row blocks) is stored once, broadcast.
        distinct = layouts[:1] if all(lay is layouts[0] for lay in layouts) else layouts

        def padded(field: str, fill: int) -> torch.Tensor:
            out = np.full((len(distinct), L), fill, dtype=getattr(layouts[0], field).dtype)
            for b, lay in enumerate(distinct):
                out[b, : lay.num_slots] = getattr(lay, field)
            return torch.as_tensor(out, device=device).expand(B, L)

        self.slot_var = padded("slot_var", n)
        self.slot_unit = padded("slot_unit", L)  # padding sorts after every real unit
        self.slot_one = padded("slot_one", False).to(dtype)
        self.slot_src = padded("slot_src", n)
        self.slot_flip = padded("slot_flip", False)

        noop = np.array([[L - 1, 1, L - 1, 1]])
        moves = [lay.moves if len(lay.moves) else noop for lay in distinct]
        # One group per problem (a block, a row): every move row is the same, no unit to draw.
        self.one_unit = all((m == m[0]).all() for m in moves)
        if self.one_unit:
            moves = [m[:1] for m in moves]
        P = max(len(m) for m in moves)
        table = np.zeros((len(moves), P, 4), dtype=np.int64)
        for b, m in enumerate(moves):
            table[b, : len(m)] = m
        self.moves = torch.as_tensor(table.reshape(-1, 4), device=device)
        counts = torch.as_tensor([len(m) for m in moves], device=device)
        self.num_moves = counts.expand(B)[None, :, None]
        base = torch.arange(len(moves), device=device) * P
        self.move_base = base.expand(B)[None, :, None]
        units = np.full((len(distinct), n1), -1, dtype=np.int64)  # the ghost: with free ones
        for b, lay in enumerate(distinct):
            units[b, :n] = lay.var_unit
        self.var_unit = torch.as_tensor(units, device=device).expand(B, n1)
        self.row_base = torch.arange(B, device=device).repeat_interleave(R) * n1
        self.ghost = torch.full((B, R, 2), n, dtype=torch.long, device=device)

        self.perm = torch.empty((B, R, L), dtype=torch.long, device=device)
        self.g = torch.empty((B, R, n1), dtype=dtype, device=device)
        self.E = torch.empty((B, R), dtype=dtype, device=device)
        self.best_perm = torch.empty_like(self.perm)
        self.best_E = torch.empty_like(self.E)

    def start(self, X0: torch.Tensor, given: torch.Tensor) -> None:
        """Lay out the initial states: ``X0`` (B, R, n1) where ``given``, random elsewhere.

        Sorting slots by (unit, 0 for ones / 1/2 for zeros) puts a given state's ones first
        in each unit; a random key in [0, 1) per slot is a random feasible state instead.
        """
        shape = (self.B, self.R, self.L)
        xs = X0.to(torch.float64).gather(2, self.slot_src[:, None, :].expand(shape))
        xs = torch.where(self.slot_flip[:, None, :], 1.0 - xs, xs)
        noise = torch.rand(shape, generator=self.gen, device=self.device, dtype=torch.float64)
        key = self.slot_unit[:, None, :] + torch.where(given[:, :, None], 0.5 * (1.0 - xs), noise)
        order = torch.argsort(key, dim=2, stable=True)
        self.perm.copy_(self.slot_var[:, None, :].expand(shape).gather(2, order))
        self.refresh()
        self.best_perm.copy_(self.perm)
        self.best_E.copy_(self.E)

    def states(self, perm: torch.Tensor | None = None) -> torch.Tensor:
        """Binary states (B, R, n1) of a slot layout (the ghost column is meaningless)."""
        perm = self.perm if perm is None else perm
        x = torch.zeros((self.B, self.R, self.n1), dtype=self.dtype, device=self.device)
        return x.scatter_(2, perm, self.slot_one[:, None, :].expand(perm.shape))

    def refresh(self) -> None:
        """Recompute fields and energies exactly from the states (ends float drift)."""
        x = self.states()
        torch.bmm(x, self.Q2, out=self.g)
        torch.mul(x, self.g, out=x)
        torch.sum(x, dim=2, out=self.E).mul_(0.5)

    def proposals(self, beta: torch.Tensor, candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One sweep of proposals: slots ``ab`` (n, B, R, candidates, 2) and thresholds.

        A move is accepted when ``delta <= -log(1 - u) / beta`` (Metropolis). Integer
        remainders pick the unit and slots, which cannot overshoot a range as a scaled float
        can; problems of one group draw no unit.
        """
        shape = (self.n, self.B, self.R, candidates)
        if self.one_unit:  # every move row of a problem alike: draw only the two slots
            r = torch.randint(0, 1 << 31, (*shape, 2), generator=self.gen, device=self.device)
            move = self.moves[self.move_base[0, :, 0]][None, :, None, None, :]
        else:
            r = torch.randint(0, 1 << 31, (*shape, 3), generator=self.gen, device=self.device)
            unit = torch.remainder(r[..., 2], self.num_moves[..., None])
            move = self.moves[unit + self.move_base[..., None]]
        a = move[..., 0] + torch.remainder(r[..., 0], move[..., 1])
        b = move[..., 2] + torch.remainder(r[..., 1], move[..., 3])
        ab = torch.stack((a, b), dim=-1)
        u = torch.rand(shape[:3], generator=self.gen, device=self.device, dtype=self.dtype)
        threshold = torch.log1p(-u).neg_().div_(beta[None, :, None])
        return ab, threshold

    def best_candidate(self, abm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The lowest-delta move among each replica's candidates ``abm`` (B, R, m, 2): its
        slots and variables (B, R, 2) and its energy change (B, R), as :meth:`delta` gives."""
        B, R, m = abm.shape[:3]
        ij = self.perm.gather(2, abm.reshape(B, R, 2 * m)).view(B, R, m, 2)
        gij = self.g.gather(2, ij.view(B, R, 2 * m)).view(B, R, m, 2)
        pair = torch.add(ij[..., 1], ij[..., 0], alpha=self.n1).view(B, R * m)
        delta = self.C.gather(1, pair).view(B, R, m).add_(gij[..., 1]).sub_(gij[..., 0])
        delta, best = delta.min(dim=2)
        best = best[:, :, None, None].expand(B, R, 1, 2)
        return abm.gather(2, best)[:, :, 0], ij.gather(2, best)[:, :, 0], delta

    def delta(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Variables ``ij`` (B, R, 2) in slots ``ab`` and the energy change of swapping them."""
        ij = self.perm.gather(2, ab)
        gij = self.g.gather(2, ij)
        pair = torch.add(ij[..., 1], ij[..., 0], alpha=self.n1)
        delta = self.C.gather(1, pair)
        return ij, delta.add_(gij[..., 1]).sub_(gij[..., 0])

    def apply(
        self,
        ab: torch.Tensor,
        ba: torch.Tensor,
        ij: torch.Tensor,
        delta: torch.Tensor,
        accept: torch.Tensor,
    ) -> None:
        """Swap the accepted pairs and update energies and fields by rows of ``2 Q``.

        ``delta`` is consumed (zeroed where rejected) to spare an allocation per step.
        """
        self.E.add_(delta.mul_(accept))
        self.perm.scatter_(2, torch.where(accept[..., None], ba, ab), ij)
        if self.dense_updates:
            pick = torch.where(accept[..., None], ij, self.ghost)
            pick += self.row_base.view(self.B, self.R, 1)
            rows = self.Q2_rows.index_select(0, pick.view(-1)).view(self.B, self.R, 2, self.n1)
            self.g.add_(rows[:, :, 1]).sub_(rows[:, :, 0])
            return
        moved = accept.view(-1).nonzero().squeeze(1)
        if moved.numel():
            pick = (
                ij.view(-1, 2).index_select(0, moved)
                + self.row_base.index_select(0, moved)[:, None]
            )
            rows = self.Q2_rows.index_select(0, pick.view(-1)).view(-1, 2, self.n1)
            self.g.view(-1, self.n1).index_add_(0, moved, rows[:, 1] - rows[:, 0])

    def sweep(self, beta: torch.Tensor) -> None:
        """``n`` proposal steps, every replica of every block proposing one move per step:
        its one random move, or the best of its ``candidates`` random moves."""
        ab, threshold = self.proposals(beta, self.candidates)
        single = self.candidates == 1
        ab = ab[:, :, :, 0] if single else ab
        ba = ab.flip(-1) if single else None
        accept = torch.empty((self.B, self.R), dtype=torch.bool, device=self.device)
        for t in range(self.n):
            if single:
                pick, back = ab[t], ba[t]
                ij, delta = self.delta(pick)
            else:
                pick, ij, delta = self.best_candidate(ab[t])
                back = pick.flip(-1)
            torch.le(delta, threshold[t], out=accept)
            self.apply(pick, back, ij, delta, accept)

    def keep_best(self) -> bool:
        """Remember states that beat their replica's best; whether any did by more than noise."""
        significant = bool((self.E < self.best_E - self.tol).any())
        better = self.E < self.best_E
        self.best_E = torch.where(better, self.E, self.best_E)
        self.best_perm = torch.where(better[..., None], self.perm, self.best_perm)
        return significant

    def polish(self, x: torch.Tensor) -> int:
        """Steepest descent by swaps from each problem's best read of ``x`` (B, R, n1), in place.

        Annealing ends near, not at, a local optimum: its last sweeps try only random moves.
        Each round here takes, per problem, the swap (or free flip) that lowers the energy
        most among all of them, until none lowers it by more than float noise; it costs a few
        ``n x n`` passes. Returns the number of swaps made.
        """
        rows = torch.arange(self.B, device=self.device)
        lane = self.best_E.argmin(dim=1)
        best = x[rows, lane]
        chunk = max(1, _POLISH_ELEMENTS // (self.n1 * self.n1))
        swaps = sum(self._descend(best, slice(lo, lo + chunk)) for lo in range(0, self.B, chunk))
        x[rows, lane] = best
        return swaps

    def _descend(self, best: torch.Tensor, part: slice) -> int:
        """:meth:`polish` on the problems ``part`` of ``best`` (B, n1). A pair (i: 1 -> 0,
        j: 0 -> 1) is a move when both lie in one group, or both are free or the ghost (two
        flips, or one against the ghost, which counts as a 1 and as a 0)."""
        x, n, n1 = best[part], self.n, self.n1
        C = self.C[part].view(-1, n1, n1)
        unit = self.var_unit[part]
        same = unit[:, :, None] == unit[:, None, :]
        swaps = 0
        for _ in range(n):  # each swap lowers the energy, so this ends; n is a cap
            g = torch.bmm(x[:, None, :], self.Q2[part])[:, 0]
            one, zero = x > 0.5, x < 0.5
            one[:, n] = zero[:, n] = True
            delta = (C + g[:, None, :]).sub_(g[:, :, None])
            delta.masked_fill_(~(same & one[:, :, None] & zero[:, None, :]), math.inf)
            delta, at = delta.view(len(x), -1).min(dim=1)
            moved = (delta < -self.tol[part, 0]).nonzero().squeeze(1)
            if not len(moved):
                break
            x[moved, at[moved] // n1] = 0.0
            x[moved, at[moved] % n1] = 1.0
            x[:, n] = 0.0
            swaps += len(moved)
        return swaps


class GPUAnnealSampler(dimod.Sampler):
    """Cardinality-preserving simulated annealing of many blocks at once, in torch.

    ``cardinality=[(variables, k), ...]`` (disjoint groups; for a SPIN BQM a 1 is a +1) is
    kept exactly: initial states are random feasible states (or the given ones, checked) and
    every move swaps a 1 and a 0 of one group; variables in no group take single flips. One
    sweep is ``n`` proposal steps per replica (each the best of ``candidates`` random moves).
    Each read returns the best state its replica held
    at a sweep boundary, with its energy recomputed in float64.

    ``device`` defaults to CUDA when available for BQMs, and to the tensors' own device for
    :meth:`sample_tensors`; ``dtype`` (default float32; a torch dtype or
    its name, as ``--solver-option dtype=float64`` gives it) is the precision of the annealing
    arithmetic only. ``num_threads`` is torch's intra-op thread count while annealing on CPU
    (default 1): a step's tensors are small, so more threads only add synchronisation, which
    collapses (steps 100x slower, measured) when another process shares the cores; the
    previous setting is restored afterwards. ``None`` leaves torch's setting alone.
    """

    parameters = {
        "cardinality": [],
        "initial_states": [],
        "initial_states_generator": ["random", "tile", "none"],
        "num_reads": [],
        "num_sweeps": [],
        "candidates": [],
        "beta_range": [],
        "beta_schedule_type": ["geometric", "linear"],
        "seed": [],
        "time_limit": [],
        "early_stop": [],
        "polish": [],
    }

    def __init__(
        self,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        num_threads: int | None = 1,
    ):
        self.follow_tensors = device is None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype.removeprefix("torch."), None)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a torch floating-point dtype, got {dtype!r}")
        self.dtype = torch.float32 if dtype is None else dtype
        self.num_threads = num_threads

    @property
    def properties(self) -> dict[str, Any]:
        return {"device": str(self.device), "dtype": str(self.dtype)}

    def sample(
        self,
        bqm: dimod.BinaryQuadraticModel,
        cardinality: Cardinality | None = None,
        initial_states: Any = None,
        **params: Any,
    ) -> dimod.SampleSet:
        """Anneal one BQM; see :meth:`sample_batch` for the parameters."""
        return self.sample_batch(
            [bqm], cardinality=[cardinality], initial_states=[initial_states], **params
        )[0]

    def sample_batch(
        self,
        bqms: Sequence[dimod.BinaryQuadraticModel],
        cardinality: Sequence[Cardinality | None] | None = None,
        initial_states: Sequence[Any] | None = None,
        num_reads: int | None = None,
        num_sweeps: int = 1000,
        candidates: int | None = None,
        beta_range: tuple[float, float] | None = None,
        beta_schedule_type: str = "geometric",
        seed: int | None = None,
        time_limit: float | None = None,
        early_stop: int | None = None,
        initial_states_generator: str = "random",
        polish: bool = True,
    ) -> list[dimod.SampleSet]:
        """Anneal many BQMs in one tensor program per size; one sample set per BQM, in order.

        Args:
            cardinality: per BQM, ``[(variables, k), ...]`` or ``None``.
            initial_states: per BQM, samples-like (``(array, labels)``, a sample set, an
                array in ``bqm.variables`` order) or ``None``; they must be feasible.
            num_reads: replicas per BQM; default the most initial states given, else 16.
            num_sweeps: sweeps of ``n`` proposal steps each.
            candidates: random moves drawn per replica and step; the one that lowers the
                energy most is proposed (1: plain Metropolis). Default
                :func:`auto_candidates`: as many as fill ``CANDIDATE_LANES`` per step.
            beta_range: ``(hot, cold)`` inverse temperatures; default per BQM from the sizes
                of its moves (:func:`beta_ranges`).
            beta_schedule_type: ``"geometric"`` or ``"linear"`` from hot to cold.
            seed: seeds a ``torch.Generator``; runs on CPU are then reproducible.
            time_limit: seconds; annealing stops at the first sweep boundary past it.
            early_stop: stop after this many sweeps in which no replica of a size group
                improved its best energy.
            initial_states_generator: how reads beyond the given states start: ``"random"``
                feasible states, ``"tile"`` the given ones repeated, ``"none"`` (error).
            polish: end by steepest swap descent from each BQM's best read
                (:meth:`Annealer.polish`); ``info["polish_swaps"]``: the swaps made in
                the BQM's size group.
        """
        started = time.perf_counter()
        bqms = list(bqms)
        cards = list(cardinality) if cardinality is not None else [None] * len(bqms)
        inits = list(initial_states) if initial_states is not None else [None] * len(bqms)
        if not len(bqms) == len(cards) == len(inits):
            raise ValueError("cardinality and initial_states need one entry per BQM")
        _check_params(
            beta_schedule_type,
            initial_states_generator,
            num_sweeps,
            num_reads,
            beta_range,
            candidates,
        )
        problems = [as_problem(b, c, i) for b, c, i in zip(bqms, cards, inits)]
        if num_reads is None:
            given = [len(p.init) for p in problems if p.init is not None]
            num_reads = max(given) if given and max(given) > 0 else 16
        short = [i for i, p in enumerate(problems) if p.init is None or len(p.init) < num_reads]
        if initial_states_generator == "none" and short:
            raise ValueError(
                f"initial_states_generator='none' needs {num_reads} initial states per BQM; "
                f"BQM {short[0]} has fewer"
            )

        generator = self._generator(seed, self.device)
        deadline = None if time_limit is None else started + float(time_limit)
        out: list[dimod.SampleSet | None] = [None] * len(problems)
        with self._threads(self.device):
            for n in sorted({p.n for p in problems}):
                group_start = time.perf_counter()
                members = [i for i, p in enumerate(problems) if p.n == n]
                batch = [problems[i] for i in members]
                Q = torch.as_tensor(np.stack([p.Q for p in batch]), device=self.device)
                X0, given = _given_states(
                    [p.init for p in batch], n, num_reads, initial_states_generator, self.device
                )
                X, ranges, info = self._anneal(
                    Q,
                    [p.layout for p in batch],
                    X0,
                    given,
                    num_sweeps,
                    beta_range,
                    beta_schedule_type,
                    generator,
                    deadline,
                    early_stop,
                    candidates,
                    polish,
                )
                X = X.cpu().numpy()
                for j, (i, p) in enumerate(zip(members, batch)):
                    meta = {"beta_range": tuple(ranges[j].tolist()), **info}
                    meta["time_s"] = time.perf_counter() - group_start  # this size group's
                    out[i] = _sampleset(p, X[j], meta)
        return out

    def sample_tensors(
        self,
        Q: torch.Tensor,
        groups: Sequence[np.ndarray],
        k: Sequence[int],
        initial_states: torch.Tensor | None = None,
        num_reads: int | None = None,
        num_sweeps: int = 1000,
        candidates: int | None = None,
        beta_range: tuple[float, float] | None = None,
        beta_schedule_type: str = "geometric",
        seed: int | None = None,
        time_limit: float | None = None,
        early_stop: int | None = None,
        initial_states_generator: str = "random",
        polish: bool = True,
    ) -> torch.Tensor:
        """Anneal ``B`` blocks given as tensors; best states ``(B, num_reads, n)`` (bool).

        ``Q`` (B, n, n): symmetric binary matrices; ``groups`` (positions) and ``k`` are
        shared by every block; ``initial_states`` (B, m, n), feasible. The same annealing as
        :meth:`sample_batch` on the blocks' BQMs (same seed: same states), without building
        them: the layer-wise loop's path, which stays on the tensors' device.
        """
        started = time.perf_counter()
        _check_params(
            beta_schedule_type,
            initial_states_generator,
            num_sweeps,
            num_reads,
            beta_range,
            candidates,
        )
        n = Q.shape[1]
        shared = list(zip((np.asarray(g, dtype=np.int64) for g in groups), (int(v) for v in k)))
        _check_groups(shared, n)
        inits: list[np.ndarray | None] = [None] * Q.shape[0]
        if initial_states is not None:
            X = initial_states.to("cpu", torch.int8).numpy()
            if not _feasible(X.reshape(-1, n), shared).all():
                raise ValueError("an initial state violates the cardinality constraints")
            inits = list(X)
        if num_reads is None:
            num_reads = initial_states.shape[1] if initial_states is not None else 16
            num_reads = max(num_reads, 1)
        if initial_states_generator == "none" and (inits[0] is None or len(inits[0]) < num_reads):
            raise ValueError(f"initial_states_generator='none' needs {num_reads} initial states")
        device = Q.device if self.follow_tensors else self.device
        generator = self._generator(seed, device)
        deadline = None if time_limit is None else started + float(time_limit)
        with self._threads(device):
            X0, given = _given_states(inits, n, num_reads, initial_states_generator, device)
            X, _, _ = self._anneal(
                Q.to(device),
                [layout(n, shared)] * Q.shape[0],
                X0,
                given,
                num_sweeps,
                beta_range,
                beta_schedule_type,
                generator,
                deadline,
                early_stop,
                candidates,
                polish,
            )
        return X.to(Q.device, torch.bool)

    @staticmethod
    def _generator(seed: int | None, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return generator

    @contextmanager
    def _threads(self, device: torch.device) -> Iterator[None]:
        """Run with ``num_threads`` intra-op threads on CPU, restoring torch's setting."""
        if device.type != "cpu" or self.num_threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _anneal(
        self,
        Q: torch.Tensor,
        layouts: Sequence[Layout],
        X0: torch.Tensor,
        given: torch.Tensor,
        num_sweeps: int,
        beta_range: tuple[float, float] | None,
        kind: str,
        generator: torch.Generator,
        deadline: float | None,
        early_stop: int | None,
        candidates: int | None,
        polish: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Anneal equal-size problems together: best states (B, R, n) int8, beta ranges, info."""
        B, R, n = Q.shape[0], X0.shape[1], Q.shape[1]
        if n == 0:
            X = torch.zeros((B, R, 0), dtype=torch.int8, device=Q.device)
            ranges = torch.tensor([beta_range or (0.1, 1.0)], dtype=torch.float64).repeat(B, 1)
            return X, ranges.to(Q.device), {"num_sweeps": 0, "stopped": None, "polish_swaps": 0}
        annealer = Annealer(Q, layouts, R, self.dtype, generator, candidates)
        if beta_range is None:
            probe = self._generator(0, Q.device)  # the schedule does not depend on the seed
            ranges = beta_ranges(annealer, probe)
        else:
            ranges = torch.tensor([beta_range], dtype=torch.float64, device=Q.device).repeat(B, 1)
        betas = schedule(ranges, num_sweeps, kind).to(self.dtype)
        annealer.start(X0, given)
        stopped, idle, done = None, 0, 0
        for s in range(num_sweeps):
            annealer.sweep(betas[:, s])
            done = s + 1
            if done % _REFRESH_EVERY == 0:
                annealer.refresh()
            idle = 0 if annealer.keep_best() else idle + 1
            if early_stop is not None and idle >= early_stop:
                stopped = "early_stop"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                stopped = "time_limit"
                break
        X = annealer.states(annealer.best_perm)
        swaps = annealer.polish(X) if polish else 0
        info = {"num_sweeps": done, "stopped": stopped, "polish_swaps": swaps}
        return X[:, :, :n].to(torch.int8), ranges, info


def _given_states(
    inits: Sequence[np.ndarray | None], n: int, R: int, mode: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X0 (B, R, n + 1), given (B, R))``: the initial states each replica starts from."""
    B = len(inits)
    X0 = torch.zeros((B, R, n + 1), dtype=torch.int8)
    given = torch.zeros((B, R), dtype=torch.bool)
    for b, init in enumerate(inits):
        m = 0 if init is None else len(init)
        if m:
            rows = np.arange(R if mode == "tile" else min(m, R)) % m
            X0[b, : len(rows), :n] = torch.as_tensor(init[rows])
            given[b, : len(rows)] = True
    return X0.to(device), given.to(device)


def _check_params(
    schedule: str,
    generator: str,
    num_sweeps: int,
    num_reads: int | None,
    beta_range: tuple[float, float] | None,
    candidates: int | None,
) -> None:
    """Refuse impossible annealing parameters before any work."""
    if schedule not in GPUAnnealSampler.parameters["beta_schedule_type"]:
        raise ValueError(f"beta_schedule_type must be 'geometric' or 'linear', got {schedule!r}")
    if generator not in GPUAnnealSampler.parameters["initial_states_generator"]:
        raise ValueError(f"unknown initial_states_generator {generator!r}")
    if num_sweeps < 0 or (num_reads is not None and num_reads < 1):
        raise ValueError("num_sweeps must be >= 0 and num_reads >= 1")
    if beta_range is not None and not 0 < beta_range[0] <= beta_range[1]:
        raise ValueError(f"beta_range must be 0 < hot <= cold, got {beta_range}")
    if candidates is not None and (
        isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1
    ):
        raise ValueError(f"candidates must be an integer >= 1, got {candidates!r}")


def _sampleset(problem: Problem, X: np.ndarray, info: dict[str, Any]) -> dimod.SampleSet:
    """Samples in the BQM's vartype with float64 energies ``x^T Q x + offset`` (BLAS, not
    dimod's per-term loop, which dominates the cost for large dense blocks)."""
    Xf = X.astype(np.float64)
    energy = np.einsum("mi,mi->m", Xf @ problem.Q, Xf) + problem.offset
    samples = 2 * X - 1 if problem.bqm.vartype is dimod.SPIN else X
    return dimod.SampleSet.from_samples(
        (samples, problem.variables), problem.bqm.vartype, energy=energy, info=info
    )
