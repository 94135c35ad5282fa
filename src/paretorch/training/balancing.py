"""PaMaL's loss and gradient balancing (Dimitriadis et al. 2023, §4.2, "Loss and gradient balancing")."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["LossBalancer", "balanced_and_plain_gradients", "balanced_shared_gradients"]


class LossBalancer:
    """Divide each task loss by the mean of its last ``window`` values (detached), once that many are known.

    Tasks with large losses then stop dominating λᵀL: the weighting becomes scale invariant.
    """

    def __init__(self, num_tasks: int, window: int) -> None:
        self.num_tasks, self.window = num_tasks, window
        self.history: deque[list[float]] = deque(maxlen=window)

    def __call__(self, losses: Tensor) -> Tensor:
        """Record this step's task losses (mean over preferences) and return ``losses`` normalised."""
        self.record(losses)
        return self.normalise(losses)

    def record(self, losses: Tensor) -> None:
        """Add this step's task losses ``(M, T)`` (their mean over preferences) to the window."""
        self.history.append(losses.detach().mean(dim=0).tolist())

    def normalise(self, losses: Tensor) -> Tensor:
        """``losses`` divided by the window's running means (unchanged until the window is full)."""
        if len(self.history) < self.window:
            return losses
        scale = torch.tensor(list(self.history), dtype=losses.dtype, device=losses.device).mean(dim=0)
        return losses / scale.clamp_min(1e-12)

    def state_dict(self) -> dict[str, object]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.history = deque(state["history"], maxlen=self.window)  # type: ignore[arg-type]


def balanced_shared_gradients(losses: Tensor | Sequence[Sequence[Tensor]], prefs: Tensor,
                              shared: Sequence[nn.Parameter], reduce: Callable[[Tensor], Tensor] | None = None
                              ) -> list[Tensor]:
    """The gradient on the shared parameters with every task gradient rescaled to unit ℓ2 norm.

    ``losses`` (M, T) at preferences ``prefs`` (M, T): returns Σ_j Σ_t λ_{j,t} g_{j,t} / ‖g_{j,t}‖ with
    g_{j,t} = ∇_shared L_t(θ(λ_j)), one tensor per shared parameter. Costs one backward per (j, t): give
    ``losses`` as M rows of T scalars computed by M separate forward passes and each runs through its own
    pass only (indexing one stacked tensor runs each through all of them). ``reduce`` maps each task gradient
    before its norm is taken (on several processes, the mean over them: the norm of the whole batch's gradient).

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    >>> losses = torch.stack([torch.stack([3 * w[0], (w ** 2).sum()])])  # ∇: (3, 0) and (2, 0)
    >>> balanced_shared_gradients(losses, torch.tensor([[0.5, 0.5]]), [w])
    [tensor([1., 0.])]
    """
    return balanced_and_plain_gradients(losses, prefs, shared, None, reduce)[0]


def balanced_and_plain_gradients(losses: Tensor | Sequence[Sequence[Tensor]], prefs: Tensor,
                                 shared: Sequence[nn.Parameter], coefficients: Tensor | None = None,
                                 reduce: Callable[[Tensor], Tensor] | None = None
                                 ) -> tuple[list[Tensor], list[Tensor]]:
    """:func:`balanced_shared_gradients`, and from the same task gradients the plain Σ_j Σ_t c_{j,t} g_{j,t}
    for ``coefficients`` c (M, T) (this process's own gradients, before ``reduce``; zeros when c is None).

    With c = ∂objective/∂L the plain sum is the objective's gradient on the shared parameters, without a
    backward pass of its own.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    >>> losses = torch.stack([torch.stack([3 * w[0], (w ** 2).sum()])])
    >>> balanced_and_plain_gradients(losses, torch.tensor([[0.5, 0.5]]), [w], torch.tensor([[1.0, 2.0]]))[1]
    [tensor([7., 0.])]
    """
    balanced = [torch.zeros_like(p) for p in shared]
    plain = [torch.zeros_like(p) for p in shared]
    # Read on the host once (not one device synchronisation per preference and task): which terms to take.
    weights = prefs.tolist()
    scales = None if coefficients is None else coefficients.tolist()
    for row in range(prefs.shape[0]):
        for task in range(prefs.shape[1]):
            weight, coefficient = weights[row][task], 0.0 if scales is None else scales[row][task]
            if weight == 0.0 and coefficient == 0.0:
                continue
            loss = losses[row, task] if isinstance(losses, Tensor) else losses[row][task]
            grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, shared, strict=True)]
            if coefficient != 0.0:
                for accumulated, grad in zip(plain, grads, strict=True):
                    accumulated.add_(grad, alpha=coefficient)
            if weight == 0.0:
                continue
            if reduce is not None:
                grads = [reduce(g) for g in grads]
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).clamp_min(1e-12)
            for accumulated, grad in zip(balanced, grads, strict=True):
                accumulated.add_(grad * (weight / norm).to(grad.dtype))
    return balanced, plain
