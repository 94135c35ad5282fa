"""Mixed precision for the built-in loops: the forward passes and task losses under ``torch.autocast``, the rest
(objective, Gram matrices, balancing, regularisers, optimiser) in the parameters' own precision.

The names are Lightning's: ``"32"`` (no autocast), ``"bf16-mixed"`` (autocast to bfloat16, no loss scaling:
bfloat16 has float32's exponent range) and ``"16-mixed"`` (autocast to float16 with a ``GradScaler``). Float16's
narrow range is why ``"16-mixed"`` is refused where the loss takes task gradients of its own (gradient balancing,
gradient-based objectives): those backward passes run on unscaled losses, where small float16 gradients flush to
zero. In your own loop, Lightning's or Accelerate's, use their precision setting instead: their autocast covers
``ParetoLoss`` as it stands.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from paretorch.errors import ParetorchError

__all__ = ["PRECISIONS", "autocast_dtype", "forward_precision", "in_float32"]

# Each precision's autocast type (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast type of ``precision`` (None for ``"32"``); an unknown name is refused in one line.

    >>> autocast_dtype("bf16-mixed")
    torch.bfloat16
    """
    if precision not in PRECISIONS:
        raise ParetorchError(f"unknown precision {precision!r}; use one of {', '.join(map(repr, PRECISIONS))}")
    return PRECISIONS[precision]


@contextlib.contextmanager
def forward_precision(precision: str, device: torch.device) -> Iterator[None]:
    """A region whose operations run in ``precision`` on ``device`` (a no-op for ``"32"``).

    >>> with forward_precision("bf16-mixed", torch.device("cpu")):
    ...     torch.nn.Linear(3, 2)(torch.randn(4, 3)).dtype
    torch.bfloat16
    """
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def in_float32(tensor: torch.Tensor, precision: str) -> torch.Tensor:
    """``tensor`` (a loss computed under ``precision``'s autocast) as float32 for what follows; unchanged
    without autocast, so a float64 model's losses stay float64."""
    return tensor if autocast_dtype(precision) is None else tensor.float()


def check_gradient_precision(precision: str, balancing: bool, objective: str | None) -> None:
    """Refuse float16 where the loss takes unscaled task gradients: for gradient ``balancing``, or for the
    gradient-based ``objective`` it names (None: the objective reads the losses only)."""
    if autocast_dtype(precision) != torch.float16 or not (balancing or objective):
        return
    why, other = ("gradient balancing", " or gradient_balancing=false") if balancing else (objective, "")
    raise ParetorchError(f"precision='16-mixed' cannot take the task gradients that {why} needs (float16 "
                         f"gradients of unscaled losses flush to zero): use precision='bf16-mixed'{other}")
