"""Objective 1 of the math note: the second-order change of the model's loss over a block.

Gradient and Hessian are taken with respect to the block's weights only, so the cost scales
with the block, not the model: ``exact`` differentiates twice (``torch.func``); ``fisher`` uses
per-sample gradients ``1/N sum g_s g_s^T`` (positive semi-definite, the choice that scales);
``gauss-newton`` uses ``1/N sum J_s^T H_out,s J_s`` with ``J_s`` the Jacobian of the model's
outputs (positive semi-definite; for a ReLU network it equals the exact Hessian of one layer).
For an ``nn.Linear`` weight fed 2-D inputs both factor through the layer: the per-sample gradient
of weight ``(r, c)`` is ``delta_s[r] * x_s[c]``, so no full-size per-sample gradient is formed.
The Fisher factors the same way for a linear fed token sequences and for a ``Conv2d`` (inputs:
its unfolded patches, :mod:`qubo_prune.objectives.conv`): the gradient is then summed over
positions, ``sum_l delta_s[l, r] * x_s[l, c]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, hessian, jacrev, vmap

from qubo_prune.core.block import Block
from qubo_prune.objectives.conv import conv_patches, is_prunable_conv

__all__ = ["HESSIANS", "LossObjective", "taylor_block"]

HESSIANS = ("fisher", "gauss-newton", "exact")


def taylor_block(
    w0: np.ndarray,
    current: np.ndarray,
    g: np.ndarray,
    H: np.ndarray,
    ridge: float = 0.0,
    **block_kwargs,
) -> Block:
    """The block QUBO of ``g^T d + 1/2 d^T H d + ridge ||d||^2`` with ``d = a - D x``."""
    w0 = np.asarray(w0, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        raise FloatingPointError("the block gradient or Hessian contains NaN or inf")
    a = np.asarray(current, dtype=np.float64) * w0
    Ha = H @ a
    Q = 0.5 * w0[:, None] * H * w0[None, :]
    linear = -w0 * g - w0 * Ha
    constant = g @ a + 0.5 * a @ Ha
    if ridge:
        Q[np.diag_indices_from(Q)] += ridge * w0**2
        linear += -2.0 * ridge * a * w0
        constant += ridge * a @ a
    Q[np.diag_indices_from(Q)] += linear
    return Block(Q=Q, constant=constant, current=current, **block_kwargs)


class LossObjective:
    """Builds loss-change blocks for any ``nn.Module`` whose loss is ``loss_fn(model(X), y)``.

    ``loss_fn`` must average over the batch (e.g. ``torch.nn.functional.cross_entropy``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        hessian: str = "fisher",
        ridge: float = 0.0,
        gradient_scale: float = 1.0,
        chunk_size: int = 256,
    ):
        if hessian not in HESSIANS:
            raise ValueError(f"unknown Hessian method {hessian!r}; choose one of {HESSIANS}")
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.model = model
        self.loss_fn = loss_fn
        self.hessian = hessian
        self.ridge = float(ridge)
        self.gradient_scale = float(gradient_scale)
        self.chunk_size = int(chunk_size)

    def _block_loss(self, name: str, coords: torch.Tensor) -> Callable[..., torch.Tensor]:
        """``f(v, X, y)``: the loss with the block's weights replaced by ``v``."""
        base = dict(self.model.named_parameters())[name].detach()
        params = {k: v.detach() for k, v in self.model.named_parameters()}
        buffers = dict(self.model.named_buffers())

        def f(v: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            W = base.reshape(-1).index_put((coords,), v).view_as(base)
            out = functional_call(self.model, ({**params, name: W}, buffers), (X,))
            return self.loss_fn(out, y)

        return f

    def gradient_hessian(
        self, name: str, coords: np.ndarray, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian (per ``self.hessian``) of the loss over the block."""
        factors = None if self.hessian == "exact" else self._linear_factors(name, X, y)
        if factors is not None:
            return self._from_factors(factors, coords, X.shape[0])
        if self.hessian == "gauss-newton":
            raise ValueError(
                f"the gauss-newton Hessian needs {name!r} to be an nn.Linear weight fed 2-D "
                "inputs (not a conv or a token sequence); use hessian='fisher' or 'exact'"
            )
        idx = torch.as_tensor(coords, dtype=torch.long)
        f = self._block_loss(name, idx)
        v = dict(self.model.named_parameters())[name].detach().reshape(-1)[idx].clone()
        if self.hessian == "exact":
            g = grad(f)(v, X, y)
            H = jacrev(grad(f), chunk_size=self.chunk_size)(v, X, y)
        else:

            def one(vv: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return f(vv, x[None], t[None])

            G = vmap(grad(one), in_dims=(None, 0, 0), chunk_size=self.chunk_size)(v, X, y)
            g = G.mean(0)
            H = G.T @ G / G.shape[0]
        return g.double().numpy(), H.double().numpy()

    def _linear_factors(
        self, name: str, X: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor] | None:
        """Layer inputs ``x`` and per-sample output gradients ``delta``, both
        ``(N, positions, width)`` (a conv's inputs are its patches), and (Gauss-Newton, 2-D
        linear only) the output Jacobians ``B`` and loss Hessians ``H_out``, from one forward
        pass."""
        module_name, _, attr = name.rpartition(".")
        module = dict(self.model.named_modules()).get(module_name)
        conv = is_prunable_conv(module)
        if attr != "weight" or not (isinstance(module, nn.Linear) or conv):
            return None
        seen: dict[str, torch.Tensor] = {}

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor):
            seen["x"] = inputs[0].detach()
            seen["z"] = torch.zeros_like(out, requires_grad=True)
            return out + seen["z"]

        handle = module.register_forward_hook(hook)
        try:
            out = self.model(X)
        finally:
            handle.remove()
        x, z = seen["x"], seen["z"]
        N = X.shape[0]
        keep = self.hessian == "gauss-newton"
        if x.shape[0] != N or (keep and (conv or x.ndim != 2 or out.ndim != 2)):
            return None
        loss = self.loss_fn(out, y)
        (dz,) = torch.autograd.grad(loss, [z], retain_graph=keep)
        if conv:  # (N, out, h, w) -> (N, positions, out)
            x, dz = conv_patches(module, x), dz.flatten(2).transpose(1, 2)
        factors = {  # the loss averages N samples
            "x": x.reshape(N, -1, x.shape[-1]).double(),
            "delta": N * dz.reshape(N, -1, dz.shape[-1]).double(),
        }
        if keep:
            rows = [
                torch.autograd.grad(out[:, k].sum(), [z], retain_graph=True)[0]
                for k in range(out.shape[1])
            ]
            factors["B"] = torch.stack(rows, 1).double()  # (N, outputs, layer outputs)

            def one(o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return self.loss_fn(o[None], t[None])

            factors["H_out"] = vmap(hessian(one))(out.detach(), y).double()
        return factors

    def _from_factors(
        self, f: dict[str, torch.Tensor], coords: np.ndarray, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = np.divmod(np.asarray(coords), f["x"].shape[-1])
        r, c = torch.as_tensor(rows), torch.as_tensor(cols)
        step = max(1, self.chunk_size)  # samples at a time: positions x block size each
        G = torch.cat(  # per-sample gradients of the block: sum over positions of delta * x
            [
                (f["delta"][s : s + step, :, r] * f["x"][s : s + step, :, c]).sum(1)
                for s in range(0, N, step)
            ]
        )
        g = G.mean(0)
        if "B" not in f:
            return g.numpy(), (G.T @ G / N).numpy()
        J = f["B"][:, :, r] * f["x"][:, 0, c][:, None, :]  # (N, outputs, n)
        HJ = torch.einsum("skl,sln->skn", f["H_out"], J)
        H = torch.einsum("skn,skm->nm", J, HJ) / N
        return g.numpy(), ((H + H.T) / 2).numpy()

    def block(
        self,
        name: str,
        coords: np.ndarray,
        w0: np.ndarray,
        current: np.ndarray,
        X: torch.Tensor,
        y: torch.Tensor,
    ) -> Block:
        """The QUBO of the loss change when the block's mask moves from ``current`` to ``x``."""
        g, H = self.gradient_hessian(name, coords, X, y)
        return taylor_block(
            w0, current, self.gradient_scale * g, H, self.ridge, tensor=name, coords=coords
        )
