"""Moves of the pruned count between rows, for masks chosen per matrix (``--pattern layer``).

Row blocks keep each row's count, so on their own they can never change how the layer's count
is shared out among its rows, which is what a per-matrix mask (ADMM's, magnitude's) decides.
A transfer prunes the cheapest kept weight of one row and restores the most valuable pruned
weight of another. With ``e = w0 - w`` and ``R = e G`` a row's squared output error changes by

    prune kept j (w_j -> 0):      2 w_j R_j + w_j^2 G_jj
    restore pruned j (0 -> v_j): -2 v_j R_j + v_j^2 G_jj

(``v``: the weight's value when kept, its refit proposal ``R_j / G_jj`` under a refit). Rows
are independent in objective 2, so a pair's change is the sum of its two rows' and is exact
as long as no row takes part in two moves of one round; a pair is taken only if it lowers the
layer's error, so the total error never rises (one row's may, by less than another's falls).
"""

from __future__ import annotations

import torch

__all__ = ["Transfers", "row_transfers"]

Transfers = tuple[torch.Tensor, torch.Tensor, float]


def row_transfers(
    weights: torch.Tensor,
    residual: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    diag: torch.Tensor,
) -> Transfers:
    """``(to_prune, to_restore, gain)``: flat coordinates of one round of improving transfers,
    each row in at most one of them, and the predicted decrease of the layer's error."""
    w, R, v, d = (t.to(torch.float64) for t in (weights, residual, values, diag[None, :]))
    prune = torch.where(mask, torch.inf, 2.0 * w * R + w * w * d)
    restore = torch.where(mask, -2.0 * v * R + v * v * d, torch.inf)
    prune_cost, prune_col = prune.min(dim=1)
    restore_cost, restore_col = restore.min(dim=1)
    donors = torch.argsort(prune_cost).tolist()
    receivers = torch.argsort(restore_cost).tolist()
    pc, rc = prune_cost.tolist(), restore_cost.tolist()
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    gain, i, j = 0.0, 0, 0
    while i < len(donors) and j < len(receivers):
        a, b = donors[i], receivers[j]
        if a in used:
            i += 1
        elif b in used or b == a:
            j += 1
        elif pc[a] + rc[b] < 0.0:  # both lists ascend: the next pair can only be worse
            pairs.append((a, b))
            used.update((a, b))
            gain -= pc[a] + rc[b]
            i, j = i + 1, j + 1
        else:
            break
    if not pairs:
        empty = torch.zeros(0, dtype=torch.long, device=mask.device)
        return empty, empty, 0.0
    a, b = (torch.tensor(x, dtype=torch.long, device=mask.device) for x in zip(*pairs))
    cols = mask.shape[1]
    return a * cols + prune_col[a], b * cols + restore_col[b], gain
