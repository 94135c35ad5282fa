"""The preference as an extra input of the first layer (COSMOS, Ruchte & Grabocka 2021).

COSMOS concatenates λ to tabular inputs and appends T constant channels (λ_t upsampled to H × W) to images.
Concatenation into the first layer is the same as adding W_λ·λ (Linear) or a convolution of the constant
maps (Conv) to the layer's own output, so the user's first layer is kept and the preference weights W_λ are
added beside it, initialised as new input columns of that layer would be (Kaiming uniform).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paretorch.errors import ParetorchError
from paretorch.parameterisations._context import PreferenceState, per_sample

if TYPE_CHECKING:
    from paretorch.parameterisations._model import ParetoModel

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class PreferenceInput(nn.Module):
    """The first layer with T extra input columns / channels that carry the preference."""

    def __init__(self, base: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, state: PreferenceState, name: str
                 ) -> None:
        super().__init__()
        self.base, self._state, self._name = base, state, name
        tasks = state.num_tasks
        if isinstance(base, nn.Linear):
            shape: tuple[int, ...] = (base.out_features, tasks)
        else:
            if base.groups != 1:
                raise ParetorchError(f"layer {name!r} is a grouped convolution; COSMOS conditions ungrouped ones")
            shape = (base.out_channels, tasks, *base.kernel_size)
        self.pref_weight = nn.Parameter(torch.empty(shape, device=base.weight.device, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.pref_weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        pref = self._state.current(self._name).to(x.dtype)
        if isinstance(self.base, nn.Linear):
            return self.base(x) + per_sample(pref @ self.pref_weight.T, x, -1, self._name)
        spatial = x.shape[2:]
        rows = pref if pref.dim() == 2 else pref.expand(x.shape[0], -1)
        maps = rows.reshape(*rows.shape, *[1] * len(spatial)).expand(*rows.shape, *spatial)
        if self.base.padding_mode != "zeros":
            maps = F.pad(maps, self.base._reversed_padding_repeated_twice, mode=self.base.padding_mode)
            padding: int | tuple[int, ...] | str = 0
        else:
            padding = self.base.padding
        extra = _CONV[len(spatial)](maps, self.pref_weight, None, self.base.stride, padding, self.base.dilation)
        return self.base(x) + extra

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.base)
        padding = getattr(self.base, "padding", 0)
        padded = padding == "same" or (isinstance(padding, tuple) and any(p != 0 for p in padding))
        if not isinstance(plain, nn.Linear) and self.base.padding_mode == "zeros" and padded:
            raise ParetorchError(f"at() cannot fold the preference into the padded convolution {self._name!r} "
                                 "(its constant channels meet zero padding at the borders); use pm(x, pref)")
        with torch.no_grad():
            weights = self.pref_weight.reshape(self.pref_weight.shape[0], self.pref_weight.shape[1], -1).sum(-1)
            shift = weights @ pref.to(weights.dtype)
            if plain.bias is None:
                plain.bias = nn.Parameter(shift)
            else:
                plain.bias.add_(shift)
        return plain

    def added_parameters(self) -> int:
        return self.pref_weight.numel()


def conditioned(model: nn.Module, num_tasks: int, target: str | None = None) -> ParetoModel:
    """COSMOS: feed the preference to the first Linear/Conv layer (or the layer named ``target``) as T extra
    input columns or constant channels. ``at(pref)`` folds it into that layer's bias (exact for Linear and
    unpadded convolutions).

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> pm = conditioned(net, num_tasks=2)
    >>> pm.layer_names
    ['0']
    """
    from paretorch.parameterisations._model import ParetoModel, _replace, check_num_tasks

    check_num_tasks(num_tasks)
    wrapped = copy.deepcopy(model)
    supported = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    names = [name for name, module in wrapped.named_modules() if isinstance(module, supported)
             and (target is None or name == target)]
    if not names:
        raise ParetorchError(f"no Linear/Conv layer {'named ' + repr(target) if target else ''} to condition")
    state = PreferenceState(num_tasks)
    first = names[0]
    _replace(wrapped, first, PreferenceInput(wrapped.get_submodule(first), state, first))
    config = {"method": "conditioned", "num_tasks": num_tasks, "target": first}
    return ParetoModel(wrapped, num_tasks, "conditioned", state, [first], config)
