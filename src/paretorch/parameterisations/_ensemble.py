"""T weight copies per layer combined as θ(λ) = Σ_t λ_t θ_t (PaMaL, Dimitriadis et al. 2023, §4.1).

With one preference for the whole batch the members are merged into one set of weights and the layer runs
once. With per-sample preferences each member runs on the whole batch and the outputs are mixed per sample:
for layers whose output is affine in their parameters (Linear, Conv, Embedding, the affine part of a norm
layer) Σ_t λ_t f(x; θ_t) = f(x; Σ_t λ_t θ_t) whenever Σ_t λ_t = 1, so the mix is exact. This costs T
member evaluations per layer, not one per preference.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

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
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer
from paretorch.parameterisations._model import ParetoModel, wrap
from paretorch.parameterisations._select import Targets

__all__ = ["ENSEMBLE_LAYER_TYPES", "EnsembleBatchNorm", "EnsembleLayer", "ensemble"]

# Layers whose output is affine in their parameters, so per-sample output mixing is exact.
ENSEMBLE_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.LayerNorm, nn.GroupNorm,
)


_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class EnsembleLayer(ParetoLayer):
    """T independently initialised copies of a layer, mixed by the current preference."""

    def __init__(self, base: nn.Module, state: PreferenceState, name: str, independent_init: bool = True) -> None:
        super().__init__(state, name)
        num_tasks = state.num_tasks
        if any(True for _ in base.buffers()):
            raise ParetorchError(f"layer {name!r} has buffers; ensemble() cannot share them across members")
        self.members = nn.ModuleList()
        for index in range(num_tasks):
            member = copy.deepcopy(base)
            # Member 0 keeps the user's weights when they are not re-initialised; the others always differ.
            if independent_init or index > 0:
                member.reset_parameters()
            self.members.append(member)

    def _stacked(self) -> dict[str, Tensor]:
        names = [name for name, _ in self.members[0].named_parameters()]
        return {name: torch.stack([dict(m.named_parameters())[name] for m in self.members]) for name in names}

    def merged_parameters(self, pref: Tensor) -> dict[str, Tensor]:
        return {name: torch.tensordot(pref.to(value.dtype), value, dims=1) for name, value in self._stacked().items()}

    def forward(self, x: Tensor) -> Tensor:
        pref = self.preference()
        if pref.dim() == 1:
            return functional_call(self.members[0], self.merged_parameters(pref), (x,))
        shared = shared_input(self._state, x)
        if shared is not None and self.num_tasks < len(shared[1]):
            # The M blocks of x are equal: T member passes on the B rows, mixed per block (exact, each member
            # being linear in its parameters), cost T·B instead of M·B.
            rows, blocks = shared
            return mix_blocks(blocks, [member(rows) for member in self.members])
        blocks = use_blocks(self._state, x)
        if blocks is not None:
            # multi_forward: merge the weights once per preference and run one batched call.
            merged = {name: torch.tensordot(blocks.to(value.dtype), value, dims=1)
                      for name, value in self._stacked().items()}
            return block_forward(self.members[0], merged, x, blocks.shape[0])
        total: Tensor | None = None
        for task, member in enumerate(self.members):
            out = member(x)
            contribution = per_sample(pref[:, task].to(out.dtype), out, 0, self.layer_name) * out
            total = contribution if total is None else total + contribution
        assert total is not None
        return total

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.members[0])
        with torch.no_grad():
            for name, value in self.merged_parameters(pref).items():
                plain.get_parameter(name).copy_(value)
        return plain

    def original_layer(self) -> nn.Module:
        return self.members[0]

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.members.parameters())

    def added_parameters(self) -> int:
        return (self.num_tasks - 1) * self.base_parameter_count()


class EnsembleBatchNorm(ParetoLayer):
    """A BatchNorm layer whose affine parameters have T members; the running statistics stay shared.

    Normalisation happens once, with the batch (training) or running (evaluation) statistics of the wrapped
    layer; only the scale and shift γ(λ), β(λ) are mixed, per sample if the preference is per sample.
    """

    def __init__(self, base: nn.modules.batchnorm._BatchNorm, state: PreferenceState, name: str) -> None:
        super().__init__(state, name)
        num_tasks = state.num_tasks
        if not base.affine:
            raise ParetorchError(f"BatchNorm layer {name!r} has no affine parameters to ensemble; leave it shared")
        self.norm = base
        self.weight = nn.Parameter(base.weight.detach().clone().expand(num_tasks, -1).contiguous())
        self.bias = nn.Parameter(base.bias.detach().clone().expand(num_tasks, -1).contiguous())
        # The wrapped layer keeps its statistics; its own affine parameters are replaced by the members.
        del base.weight, base.bias
        base.register_parameter("weight", None)
        base.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        pref = self.preference()
        # BatchNorm without affine parameters takes its input in the statistics' precision (a bf16 input under
        # autocast would meet float32 running statistics); the result goes back to the input's precision.
        # The wrapped layer normalises each multi-forward block with its own statistics (_norms.py): with
        # statistics pooled over the blocks, the members' mixes of independently initialised networks met one
        # normalisation, and PaMaL's 4 preferences per step left a ResNet-18 at chance.
        normalised = self.norm(x.to(self.weight.dtype))
        scale = pref.to(normalised.dtype) @ self.weight
        shift = pref.to(normalised.dtype) @ self.bias
        out = per_sample(scale, x, 1, self.layer_name) * normalised + per_sample(shift, x, 1, self.layer_name)
        return out.to(x.dtype)

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.norm)
        with torch.no_grad():
            plain.weight = nn.Parameter(pref.to(self.weight.dtype) @ self.weight)
            plain.bias = nn.Parameter(pref.to(self.bias.dtype) @ self.bias)
        return plain

    def original_layer(self) -> nn.Module:
        return self.norm

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [self.weight, self.bias]

    def base_parameter_count(self) -> int:
        return self.weight.shape[1] * 2  # the original γ and β; the wrapped norm keeps none of its own

    def added_parameters(self) -> int:
        return (self.num_tasks - 1) * self.base_parameter_count()


def ensemble(
    model: nn.Module,
    num_tasks: int,
    targets: Targets = None,
    exclude: Targets = None,
    batchnorm: Literal["shared", "members"] = "shared",
    independent_init: bool = True,
) -> ParetoModel:
    """PaMaL's weight ensemble: every targeted layer gets T members, θ(λ) = Σ_t λ_t θ_t.

    Members are re-initialised the way each layer initialises itself (``reset_parameters``), independently;
    with ``independent_init=False`` member 0 keeps the user's weights (to start from a trained model).
    Linear, Conv1d/2d/3d, Embedding, LayerNorm and GroupNorm layers are wrapped (all of them unless
    ``targets``/``exclude`` say otherwise), and BatchNorm's affine parameters with ``batchnorm="members"``.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> pm = ensemble(net, num_tasks=2)
    >>> pm(torch.randn(5, 4), [0.3, 0.7]).shape
    torch.Size([5, 2])
    """
    if batchnorm not in ("shared", "members"):
        raise ParetorchError(f"batchnorm must be 'shared' or 'members', got {batchnorm!r}")
    member: LayerFactory = partial(EnsembleLayer, independent_init=independent_init)
    dispatch: dict[type[nn.Module], LayerFactory] = dict.fromkeys(ENSEMBLE_LAYER_TYPES, member)
    dispatch[nn.MultiheadAttention] = attention_factory(member)
    if batchnorm == "members":
        dispatch |= dict.fromkeys(_BATCHNORM_TYPES, EnsembleBatchNorm)
    return wrap(model, num_tasks, dispatch, targets=targets, exclude=exclude, name="ensemble",
                config={"batchnorm": batchnorm, "independent_init": independent_init})
