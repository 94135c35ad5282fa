"""What the convolution layers of every parameterisation share: the functional form and the base layer's padding."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CONV_FUNCTIONS", "padded_like"]

# The functional convolution for 1, 2 or 3 spatial dimensions.
CONV_FUNCTIONS: dict[int, Callable[..., Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def padded_like(layer: nn.Conv1d | nn.Conv2d | nn.Conv3d, x: Tensor) -> tuple[Tensor, int | tuple[int, ...] | str]:
    """``x`` and the ``padding`` argument that make a functional convolution pad exactly as ``layer`` does.

    Zero padding is left to the convolution itself; the other modes (reflect, replicate, circular) pad ``x``
    explicitly, as ``nn.Conv*d`` does, and the convolution then pads nothing.
    """
    if layer.padding_mode == "zeros":
        return x, layer.padding
    return F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode), 0
