"""How a preference reaches the wrapped layers without touching the user's forward signature.

``ParetoModel.forward`` stores the validated preference in a ``PreferenceState`` shared by all of its
paretorch layers for the duration of one call; each layer reads it and broadcasts it over its input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from paretorch.errors import ParetorchError


class PreferenceState:
    """The preference of the forward call in progress: ``(T,)`` for the whole batch or ``(B, T)`` per sample."""

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.value: Tensor | None = None
        # Set by multi_forward: the M distinct preferences, each applied to a contiguous block of B rows.
        # Layers whose output is a plain function of merged weights then run once per block with that block's
        # weights (see block_forward) instead of mixing T member outputs per sample.
        self.blocks: Tensor | None = None
        # Also set by multi_forward: each repeated input tensor (by id) with the B rows it repeats. A layer
        # handed one of these very tensors knows its M blocks are equal, and may compute what does not depend
        # on the preference once on the B rows (see shared_input).
        self.repeats: dict[int, tuple[Tensor, Tensor, int]] = {}

    def current(self, layer_name: str) -> Tensor:
        if self.value is None:
            raise ParetorchError(
                f"layer {layer_name!r} ran without a preference; call the ParetoModel as pm(x, pref), "
                "or use pm.at(pref) for a plain model"
            )
        return self.value


def per_sample(weights: Tensor, x: Tensor, feature_dim: int, layer_name: str) -> Tensor:
    """Shape per-feature ``weights`` so that they broadcast over ``x`` along its ``feature_dim`` axis.

    ``weights`` is ``(C,)`` for the whole batch or ``(B, C)`` per sample, where ``C`` is the size of the
    input's feature axis; ``(B, C)`` must match the input's leading (batch) dimension.
    """
    axis = feature_dim % x.dim()
    trailing = x.dim() - 1 - axis
    if weights.dim() == 1:
        return weights.view(weights.shape[0], *([1] * trailing))
    if x.shape[0] != weights.shape[0]:
        raise ParetorchError(
            f"layer {layer_name!r} got an input with batch size {x.shape[0]} but {weights.shape[0]} per-sample "
            "preferences; give one preference row per sample (dim 0 of every wrapped layer's input)"
        )
    return weights.view(weights.shape[0], *([1] * (axis - 1)), weights.shape[1], *([1] * trailing))


def use_blocks(state: PreferenceState, x: Tensor) -> Tensor | None:
    """The multi-forward preferences when the per-block merged-weight path should run, else ``None``.

    Only on the CPU: there one merged weight set per preference and a single batched call beat mixing member
    or adapter outputs (LeNet, B = 256, M = 4: 131 vs 262 ms for PaMaL), while on an H100 the same change made
    it slower (9.5 vs 5.9 ms), the vmapped convolution costing more than the extra member passes.
    """
    blocks = state.blocks
    if blocks is None or x.is_cuda or x.shape[0] % blocks.shape[0]:
        return None
    if torch.is_autocast_enabled(x.device.type):
        return None  # vmapped convolutions mix precisions under autocast; mixing member outputs does not
    return blocks


def shared_input(state: PreferenceState, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(rows, blocks)`` when ``x`` is an input tensor of a multi-forward in progress (the very tensor
    ``multi_forward`` built, so it repeats the B ``rows`` once for each of the M preferences ``blocks``),
    else ``None``.

    The first wrapped layer of most models receives it: a layer that is linear in what the preference mixes
    then runs its costly part (the convolution, the members) on B rows instead of M·B.
    """
    entry = state.repeats.get(id(x))
    # The version counter rises with every in-place change: a model that edits its input in place before the
    # layer (x -= mean) no longer holds M copies of the recorded rows.
    if entry is None or entry[0] is not x or x._version != entry[2] or state.blocks is None:
        return None
    return entry[1], state.blocks


# The channels-last layout of image batches: (N, C, H, W) and (N, C, D, H, W) tensors stored channel-innermost.
CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def is_channels_last(tensor: Tensor) -> bool:
    """Whether ``tensor`` is laid out channels-last and not merely contiguous too (one channel, or 1×1 maps)."""
    layout = CHANNELS_LAST.get(tensor.dim())
    return layout is not None and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=layout)


def mix_blocks(coefficients: Tensor, outputs: list[Tensor]) -> Tensor:
    """The M·B rows ``Σ_k coefficients[m, k] · outputs[k]`` for each block m, block-major: ``coefficients`` is
    ``(M, K)``, each of the K ``outputs`` has B rows (a layer's output for K parameter sets on shared rows)."""
    stacked = torch.stack(outputs)
    channels_last = is_channels_last(outputs[0])
    if channels_last:  # mixed with the channels innermost, where they are in memory: no copy to NCHW and back
        stacked = stacked.movedim(2, -1)
    mixed = torch.tensordot(coefficients.to(stacked.dtype), stacked, dims=1).flatten(0, 1)
    return mixed.movedim(-1, 1) if channels_last else mixed


def block_forward(layer: nn.Module, weights: dict[str, Tensor], x: Tensor, blocks: int) -> Tensor:
    """Run ``layer`` with a different weight set per block of rows: ``weights[name]`` has a leading axis of
    size ``blocks`` (or none, for shared tensors) and ``x`` holds ``blocks`` contiguous blocks of rows."""
    batched = {name: value for name, value in weights.items() if value.dim() > 0 and value.shape[0] == blocks
               and value.dim() == layer.get_parameter(name).dim() + 1}
    shared = {name: value for name, value in weights.items() if name not in batched}

    size = x.shape[0] // blocks
    if isinstance(layer, nn.modules.conv._ConvNd):
        # vmap turns M convolutions into one grouped convolution, which the CPU runs slower than the M
        # convolutions one after another (LeNet, B = 256, M = 4: forward+backward 83 against 117 ms).
        # split keeps each block's strides, a channels-last layout included (a reshape may drop it), and its
        # backward is one concatenation (M narrows would each scatter into a zeroed M·B-row gradient).
        return torch.cat([functional_call(layer, {name: value[index] for name, value in batched.items()} | shared,
                                          (block,)) for index, block in enumerate(x.split(size))])
    rows = x.reshape(blocks, size, *x.shape[1:])

    def run(params: dict[str, Tensor], block: Tensor) -> Tensor:
        return functional_call(layer, params | shared, (block,))

    out = vmap(run)(batched, rows)
    return out.reshape(x.shape[0], *out.shape[2:])
