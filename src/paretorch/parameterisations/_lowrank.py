"""Base weights plus one low-rank delta per task, mixed by the preference (PaLoRA, LORPMAN).

For a Linear layer with weight W (n × m): θ(λ) = W + s · Σ_t λ_t U_t D_t with D_t (r × m), U_t (n × r), and
s = α / r (PaLoRA, Eq. 2) or s (LORPMAN, Eq. 6). The T adapters are stored stacked: D = [D_1; …; D_T]
(T·r × m) and U = [U_1 … U_T] (n × T·r), so a whole batch with per-sample preferences costs one extra
pair of matmuls: h = x Dᵀ (B × T·r), each r-block scaled by that sample's λ_t, y = base(x) + s · h Uᵀ.

Convolutions have two layouts (``conv_layout``), both called LoRA's reshaping of a kernel into a matrix:

- ``"loralib"``, Hu et al.'s own code (loralib's ConvLoRA), which PaLoRA's public code uses and which
  PaLoRA and LORPMAN (footnote 1) cite: the weight's memory (n, m/g, k₀, k…) read as a matrix
  (n/g·k₀) × (m·∏k/k₀), factored at rank r·k₀: U_t (n/g·k₀ × r·k₀), D_t (r·k₀ × m·∏k/k₀). For a 5×5 kernel
  that is rank 5 per task for r = 1, with T·r·k₀·(n/g·k₀ + m·∏k/k₀) added parameters.
- ``"peft"``, PEFT's: the weight treated per group as a matrix n/g × (m/g·∏k) at rank r; D is a convolution
  with the layer's kernel, stride, padding, dilation and groups producing g·T·r channels, U a 1×1
  convolution with the same groups (T·r·(m·∏k + n) added parameters). Cheaper per sample: its adapter
  branch is one thin convolution, where loralib's deltas, having no such factored form, are convolved whole.

U starts at zero, so training starts exactly at the base model; D starts like LoRA's A (Kaiming uniform).
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paretorch.errors import ParetorchError
from paretorch.parameterisations._attention import attention_factory
from paretorch.parameterisations._context import (
    PreferenceState,
    block_forward,
    mix_blocks,
    per_sample,
    shared_input,
    use_blocks,
)
from paretorch.parameterisations._conv import CONV_FUNCTIONS, padded_like
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer
from paretorch.parameterisations._model import ParetoModel, wrap
from paretorch.parameterisations._select import Targets

__all__ = ["LowRankConv", "LowRankLayer", "LowRankLinear", "lowrank", "lowrank_deltas"]

Scaling = Literal["palora", "lorpman"]
ConvLayout = Literal["loralib", "peft"]
# The layer types lowrank gives adapters, in the order of its dispatch table (attention through its projections).
ADAPTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention)
CONV_LAYOUTS: tuple[ConvLayout, ...] = ("loralib", "peft")


def _check_conv_layout(layout: object) -> None:
    if layout not in CONV_LAYOUTS:
        raise ParetorchError(f"conv_layout must be one of {', '.join(CONV_LAYOUTS)}, got {layout!r}")


def adapter_scale(scaling: Scaling, scale: float, rank: int) -> float:
    """The factor in front of Σ λ_t U_t D_t: α / r for PaLoRA, s for LORPMAN."""
    return scale / rank if scaling == "palora" else scale


class LowRankLayer(ParetoLayer):
    """What Linear and Conv adapters share: the stacked factors, the merge into a plain layer, the task deltas.

    ``down`` stacks the T down-projections D_t (T·r rows), ``up`` the T up-projections U_t (T·r columns).
    """

    base: nn.Module
    down: nn.Parameter
    up: nn.Parameter

    def __init__(self, base: nn.Module, state: PreferenceState, name: str, rank: int, scale: float) -> None:
        super().__init__(state, name)
        if not isinstance(rank, int) or rank < 1:
            raise ParetorchError(f"rank must be a positive integer, got {rank!r}")
        self.base, self.rank, self.scale = base, rank, scale
        self.inner = rank  # each task's columns of U: r, or r·k₀ for a convolution in loralib's layout

    def task_deltas(self) -> Tensor:
        """The T weight deltas U_t D_t, each shaped like the base weight, without the scale."""
        raise NotImplementedError

    def merged_weight(self, pref: Tensor) -> Tensor:
        """W + s·Σ_t λ_t U_t D_t: one weight for a (T,) preference, one per row of an (M, T) one."""
        return self.base.weight + self.scale * torch.tensordot(pref.to(self.down.dtype), self.task_deltas(), dims=1)

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [self.down, self.up]

    def _block_forward(self, x: Tensor) -> Tensor | None:
        # multi_forward: one merged weight W + s·Σ_t λ_t U_t D_t per preference, one batched call.
        blocks = use_blocks(self._state, x)
        if blocks is None:
            return None
        weights = {name: value for name, value in self.base.named_parameters()}
        weights["weight"] = self.merged_weight(blocks)
        return block_forward(self.base, weights, x, blocks.shape[0])

    def merged(self, pref: Tensor) -> nn.Module:
        """A copy of the base layer with W + s·Σ_t λ_t U_t D_t as its weight."""
        plain = copy.deepcopy(self.base)
        with torch.no_grad():
            plain.weight.copy_(self.merged_weight(pref))
        return plain



class LowRankLinear(LowRankLayer):
    """A Linear layer with T low-rank task adapters mixed by the current preference."""

    def __init__(self, base: nn.Linear, state: PreferenceState, name: str, rank: int, scale: float) -> None:
        super().__init__(base, state, name, rank, scale)
        num_tasks = state.num_tasks
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.down = nn.Parameter(torch.empty(num_tasks * rank, base.in_features, **factory))
        self.up = nn.Parameter(torch.zeros(base.out_features, num_tasks * rank, **factory))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        # Per-sample and multi-forward share the stacked-adapter path: for a Linear layer the two extra thin
        # matmuls cost less than merging M weight matrices (measured by benchmarks/forward_backward.py).
        pref = self.preference()
        if pref.dim() == 2 and (shared := self._shared_forward(x)) is not None:
            return shared
        weights = per_sample(pref.repeat_interleave(self.rank, dim=-1).to(x.dtype), x, -1, self.layer_name)
        return self.base(x) + self.scale * F.linear(F.linear(x, self.down) * weights, self.up)

    def _shared_forward(self, x: Tensor) -> Tensor | None:
        # The M blocks of x are equal: base(x) and the down-projection do not depend on the preference, so they
        # run on the B rows; only the thin up-projection runs on M·B.
        shared = shared_input(self._state, x)
        if shared is None:
            return None
        rows, blocks = shared
        base, hidden = self.base(rows), F.linear(rows, self.down)
        count = blocks.shape[0]
        weights = blocks.repeat_interleave(self.rank, dim=-1).to(hidden.dtype)
        mixed = hidden.unsqueeze(0) * weights.view(count, *([1] * (hidden.dim() - 1)), weights.shape[1])
        out = base.unsqueeze(0) + self.scale * F.linear(mixed, self.up)
        return out.flatten(0, 1)

    def task_deltas(self) -> Tensor:
        """The T weight deltas U_t D_t, shape (T, n, m), without the scale."""
        down = self.down.view(self.num_tasks, self.rank, -1)
        up = self.up.view(self.up.shape[0], self.num_tasks, self.rank).transpose(0, 1)
        return up @ down



class LowRankConv(LowRankLayer):
    """A Conv1d/Conv2d/Conv3d layer with T low-rank task adapters mixed by the current preference."""

    def __init__(self, base: nn.Conv1d | nn.Conv2d | nn.Conv3d, state: PreferenceState, name: str, rank: int,
                 scale: float, layout: ConvLayout = "peft") -> None:
        super().__init__(base, state, name, rank, scale)
        if base.out_channels % base.groups:
            raise ParetorchError(f"conv layer {name!r} has out_channels not divisible by groups")
        _check_conv_layout(layout)
        num_tasks = state.num_tasks
        self.spatial = len(base.kernel_size)
        self.layout = layout
        groups = base.groups
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        if layout == "loralib":
            # The weight's memory as a (n/g·k₀) × (m·∏k/k₀) matrix, factored at rank r·k₀ per task.
            rows = base.out_channels // groups * base.kernel_size[0]
            self.inner = rank * base.kernel_size[0]
            self.down = nn.Parameter(torch.empty(num_tasks * self.inner, base.weight.numel() // rows, **factory))
            self.up = nn.Parameter(torch.zeros(rows, num_tasks * self.inner, **factory))
        else:
            self.down = nn.Parameter(torch.empty(groups * num_tasks * rank, base.in_channels // groups,
                                                 *base.kernel_size, **factory))
            self.up = nn.Parameter(torch.zeros(base.out_channels, num_tasks * rank, *([1] * self.spatial),
                                               **factory))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))

    def _shared_forward(self, x: Tensor) -> Tensor | None:
        # The M blocks of x are equal: y_m = base(x) + s·Σ_t λ_mt conv(x, U_t D_t) (exact for any λ), so the
        # base and the T task deltas convolve the B rows once each and the M outputs are their mixtures:
        # (1 + T)·B convolutions instead of M·B, worth it when 1 + T < M.
        shared = shared_input(self._state, x)
        if shared is None:
            return None
        rows, blocks = shared
        # Against the merged-weight blocks, (1 + T)·B convolutions pay when 1 + T < M; where there are none (GPU),
        # loralib's per-sample path costs (1 + T)·M·B, so sharing always pays.
        if blocks.shape[0] <= self.num_tasks + 1 and (self.layout == "peft" or use_blocks(self._state, x) is not None):
            return None
        outputs = [self.base(rows), *self._convolve_like_base(rows, list(self.task_deltas()))]
        coefficients = torch.cat([blocks.new_ones(blocks.shape[0], 1), self.scale * blocks], dim=1)
        return mix_blocks(coefficients, outputs)

    def _convolve_like_base(self, x: Tensor, weights: list[Tensor], bias: Tensor | None = None) -> list[Tensor]:
        # x padded once, then convolved with each weight at the base layer's stride, dilation and groups.
        padded, padding = padded_like(self.base, x)
        conv = CONV_FUNCTIONS[self.spatial]
        return [conv(padded, weight, bias, self.base.stride, padding, self.base.dilation, self.base.groups)
                for weight in weights]

    def forward(self, x: Tensor) -> Tensor:
        pref = self.preference()
        if pref.dim() == 2:
            # A multi-forward's first layer convolves the B rows once with the base and each task delta.
            # Otherwise, the adapter branch of a convolution costing a second full-resolution convolution, a
            # multi-forward merges one weight per preference and convolves each block with its own.
            shared = self._shared_forward(x)
            blocked = shared if shared is not None else self._block_forward(x)
            if blocked is not None:
                return blocked
        if self.layout == "loralib":
            return self._loralib_forward(x, pref)
        hidden = self._convolve_like_base(x, [self.down])[0]
        # Hidden channels are ordered group-major, then task, then rank: weight each by its task's λ.
        channel_weights = pref.repeat_interleave(self.rank, dim=-1).repeat(
            *([1] * (pref.dim() - 1)), self.base.groups
        )
        weights = per_sample(channel_weights.to(x.dtype), hidden, 1, self.layer_name)
        up = CONV_FUNCTIONS[self.spatial](hidden * weights, self.up, None, 1, 0, 1, self.base.groups)
        return self.base(x) + self.scale * up

    def _loralib_forward(self, x: Tensor, pref: Tensor) -> Tensor:
        if pref.dim() == 1:  # one preference: one convolution with the merged weight
            return self._convolve_like_base(x, [self.merged_weight(pref)], self.base.bias)[0]
        # Per sample: the deltas have no factored form, so each convolves the batch and is weighted per row.
        out = self.base(x)
        for task, response in enumerate(self._convolve_like_base(x, list(self.task_deltas()))):
            out = out + per_sample(self.scale * pref[:, task].to(x.dtype), response, 0, self.layer_name) * response
        return out

    def task_deltas(self) -> Tensor:
        """The T weight deltas, each shaped like the base weight (T, n, m/g, k…), without the scale."""
        if self.layout == "loralib":
            # reshape, not view: the parameters may be laid out channels-last (pm.to(memory_format=...)).
            down = self.down.reshape(self.num_tasks, self.inner, -1)
            up = self.up.reshape(self.up.shape[0], self.num_tasks, self.inner).transpose(0, 1)
            return (up @ down).reshape(self.num_tasks, *self.base.weight.shape)
        groups, tasks, rank = self.base.groups, self.num_tasks, self.rank
        out_per_group = self.base.out_channels // groups
        kernel = self.down.shape[1:]
        # reshape, not view: the parameters may be laid out channels-last (pm.to(memory_format=...)).
        down = self.down.reshape(groups, tasks, rank, -1)  # per group, per task: r × (m/g·∏k)
        up = self.up.reshape(groups, out_per_group, tasks, rank)  # per group: n/g × T·r
        delta = torch.einsum("gotr,gtrk->tgok", up, down)
        return delta.reshape(tasks, self.base.out_channels, *kernel)


def lowrank(
    model: nn.Module,
    num_tasks: int,
    rank: int = 1,
    scale: float = 1.0,
    scaling: Scaling = "palora",
    targets: Targets = None,
    exclude: Targets = None,
    freeze_base: bool = False,
    conv_layout: ConvLayout = "peft",
) -> ParetoModel:
    """Base weights plus one low-rank delta per task, mixed by the preference.

    ``scaling="palora"``: W + (α/r) Σ_t λ_t A_t B_t with α = ``scale`` (PaLoRA Eq. 2).
    ``scaling="lorpman"``: θ0 + s Σ_i α_i B_i A_i with s = ``scale`` (LORPMAN Eq. 6).
    The up-projection starts at zero, so the model starts exactly at the user's weights.
    ``freeze_base=True`` trains only the adapters (PaLoRA's Pareto expansion from a trained checkpoint).
    Every Linear and Conv1d/2d/3d layer is wrapped unless ``targets``/``exclude`` say otherwise.
    ``conv_layout`` picks how a convolution's kernel becomes a matrix (see the module's notes): ``"peft"``
    (rank r over n × m·∏k) or ``"loralib"`` (rank r·k₀ over (n·k₀) × (m·∏k/k₀), Hu et al.'s and PaLoRA's code).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> pm = lowrank(net, num_tasks=2, rank=1, scale=2.0)
    >>> torch.allclose(pm(torch.ones(1, 4), [1.0, 0.0]), net(torch.ones(1, 4)))
    True
    """
    if not isinstance(rank, int) or rank < 1:
        raise ParetorchError(f"rank must be a positive integer, got {rank!r}")
    if scaling not in ("palora", "lorpman"):
        raise ParetorchError(f"scaling must be 'palora' or 'lorpman', got {scaling!r}")
    _check_conv_layout(conv_layout)  # here too: a model without convolutions would not say so
    factor = adapter_scale(scaling, scale, rank)

    def linear(layer: nn.Module, state: PreferenceState, name: str) -> ParetoLayer:
        return LowRankLinear(layer, state, name, rank, factor)  # type: ignore[arg-type]

    def conv(layer: nn.Module, state: PreferenceState, name: str) -> ParetoLayer:
        return LowRankConv(layer, state, name, rank, factor, conv_layout)  # type: ignore[arg-type]

    # Every adapted type (ADAPTED_LAYERS, listed once) gets its factory: the convolutions share one.
    special: dict[type[nn.Module], LayerFactory] = {nn.Linear: linear, nn.MultiheadAttention: attention_factory(linear)}
    dispatch = {kind: special.get(kind, conv) for kind in ADAPTED_LAYERS}
    pm = wrap(model, num_tasks, dispatch, targets=targets, exclude=exclude, name=f"lowrank-{scaling}",
              config={"method": "lowrank", "rank": rank, "scale": scale, "scaling": scaling,
                      "conv_layout": conv_layout})
    if freeze_base:
        pm.freeze_base()
    return pm


def lowrank_deltas(pm: ParetoModel) -> dict[str, Tensor]:
    """Per low-rank layer of ``pm``, the T task deltas ``U_t D_t`` (without the scale), ``(T, *weight.shape)``.

    LORPMAN's orthogonality regulariser (Eq. 7) is computed from these; a model without low-rank layers has none.
    """
    return {name: layer.task_deltas() for name, layer in pm.pareto_layers().items()
            if isinstance(layer, LowRankLayer)}
