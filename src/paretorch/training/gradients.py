"""Gram matrices of task gradients: the statistic that gradient-based objectives (MGDA, Pareto MTL, CPMTL's
preference-based gradient, EPO) turn into task weights. Computed here, by the loss, so that objectives stay
free of parameters and layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["independent_task_grams", "task_gram", "task_grams"]


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor], rows: int = 1) -> Tensor:
    # Parameters a loss does not reach have a zero gradient.
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(rows, -1)
                      for g, p in zip(grads, params, strict=True)], dim=1)


def task_gram(losses: Tensor, params: Sequence[Tensor], reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """The Gram matrix ``(T, T)`` of the task gradients ``∇_params L_t``, keeping the graph for the update.

    ``reduce`` maps the task Jacobian ``(T, P)`` before the product: on several processes, the mean over them,
    so that the Gram matrix is that of the whole batch's gradients.

    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> task_gram(torch.stack([w[0] * 3, w[1] ** 2]), [w])
    tensor([[ 9.,  0.],
            [ 0., 16.]], dtype=torch.float64)
    """
    rows = [_flat(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params)[0]
            for loss in losses]
    jacobian = torch.stack(rows).double()
    if reduce is not None:
        jacobian = reduce(jacobian)
    return jacobian @ jacobian.T


def task_grams(losses: Tensor | Sequence[Tensor], params: Sequence[Tensor],
               reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """One Gram matrix per row of ``losses`` ``(M, T)``: ``(M, T, T)`` (M·T backward passes). Rows given as M
    separate tensors, each from its own forward pass, keep each backward pass within its own graph."""
    return torch.stack([task_gram(row, params, reduce) for row in losses])


def independent_task_grams(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
    """Gram matrices ``(K, T, T)`` for K models stacked along the leading axis of every tensor in ``params``.

    The models share no parameter, so the gradient of ``Σ_k L_t^k`` holds each model's own ``∇L_t^k`` in its
    slice: T backward passes give all K Jacobians (instead of K·T).
    """
    count = losses.shape[0]
    per_task = [_flat(torch.autograd.grad(losses[:, t].sum(), params, retain_graph=True, allow_unused=True),
                      params, count) for t in range(losses.shape[1])]
    jacobians = torch.stack(per_task, dim=1).double()  # (K, T, P)
    return jacobians @ jacobians.transpose(1, 2)
