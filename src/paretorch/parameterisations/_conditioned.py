"""The preference as an extra input of the first layer (COSMOS, Ruchte & Grabocka 2021), or as FiLM.

COSMOS concatenates λ to tabular inputs and appends T constant channels (λ_t upsampled to H × W) to images.
Concatenation into the first layer is the same as adding W_λ·λ (Linear) or a convolution of the constant
maps (Conv) to the layer's own output, so the user's first layer is kept and the preference weights W_λ are
added beside it, initialised as new input columns of that layer would be (Kaiming uniform).
"""

from __future__ import annotations

import copy
import math
import re

import torch
from torch import Tensor, nn

from paretorch.errors import ParetorchError
from paretorch.parameterisations._attention import attention_factory
from paretorch.parameterisations._context import PreferenceState, per_sample, shared_input
from paretorch.parameterisations._conv import CONV_FUNCTIONS, padded_like
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer
from paretorch.parameterisations._model import ParetoModel, wrap
from paretorch.parameterisations._select import Targets

__all__ = ["FiLMLayer", "PreferenceEmbedding", "PreferenceInput", "conditioned", "film"]

_INPUT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


class PreferenceInput(ParetoLayer):
    """The first layer with T extra input columns / channels that carry the preference."""

    def __init__(self, base: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, state: PreferenceState, name: str
                 ) -> None:
        super().__init__(state, name)
        self.base = base
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
        pref = self.preference().to(x.dtype)
        if isinstance(self.base, nn.Linear):
            return self.base(x) + per_sample(pref @ self.pref_weight.T, x, -1, self.layer_name)
        # The convolution is linear in its input, so that of the constant maps λ_t is Σ_t λ_t R_t, R_t the
        # response to a map of ones in channel t: T small convolutions per call instead of one per sample.
        spatial = x.shape[2:]
        tasks = self.num_tasks
        units = torch.eye(tasks, dtype=x.dtype, device=x.device).reshape(tasks, tasks, *[1] * len(spatial))
        units, padding = padded_like(self.base, units.expand(tasks, tasks, *spatial))
        responses = CONV_FUNCTIONS[len(spatial)](units, self.pref_weight.to(x.dtype), None, self.base.stride,
                                                 padding, self.base.dilation)
        shared = shared_input(self._state, x)
        if shared is not None:
            # multi_forward's first layer: base(x) once for the M equal blocks, the preference part per block.
            rows, blocks = shared
            per_block = torch.tensordot(blocks.to(responses.dtype), responses, dims=1).unsqueeze(1)
            return (self.base(rows).unsqueeze(0) + per_block).flatten(0, 1)
        # (n, …) for one preference, (B, n, …) per sample
        return self.base(x) + torch.tensordot(pref.to(responses.dtype), responses, dims=1)

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.base)
        padding = getattr(self.base, "padding", 0)
        padded = padding == "same" or (isinstance(padding, tuple) and any(p != 0 for p in padding))
        if not isinstance(plain, nn.Linear) and self.base.padding_mode == "zeros" and padded:
            raise ParetorchError(f"at() cannot fold the preference into the padded convolution {self.layer_name!r} "
                                 "(its constant channels meet zero padding at the borders); use pm(x, pref)")
        with torch.no_grad():
            weights = self.pref_weight.reshape(self.pref_weight.shape[0], self.pref_weight.shape[1], -1).sum(-1)
            shift = weights @ pref.to(weights.dtype)
            if plain.bias is None:
                plain.bias = nn.Parameter(shift)
            else:
                plain.bias.add_(shift)
        return plain

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [self.pref_weight]


class PreferenceEmbedding(ParetoLayer):
    """A token embedding plus W_λ·λ at every position: COSMOS's extra input for a model whose first layer is an
    ``nn.Embedding`` (a transformer). The shift is the same for every token, so ``at(pref)`` adds it to every
    row of the embedding table, exactly."""

    def __init__(self, base: nn.Embedding, state: PreferenceState, name: str) -> None:
        super().__init__(state, name)
        self.base = base
        self.pref_weight = nn.Parameter(torch.empty(base.embedding_dim, state.num_tasks, device=base.weight.device,
                                                    dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.pref_weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        shift = self.preference().to(out.dtype) @ self.pref_weight.T
        if shift.dim() == 2:  # per sample: (B, D) over (B, …, D)
            shift = shift.view(shift.shape[0], *[1] * (out.dim() - 2), shift.shape[1])
        return out + shift

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.base)
        with torch.no_grad():
            plain.weight.add_(self.pref_weight @ pref.to(self.pref_weight.dtype))
        return plain

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [self.pref_weight]


_FILM_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FiLMLayer(ParetoLayer):
    """A layer whose output features are scaled and shifted by the preference (FiLM, Perez et al. 2018).

    ``y = γ(λ) ⊙ f(x) + β(λ)`` per output feature (channel for convolutions and BatchNorm, last axis for
    Linear), with ``γ(λ) = 1 + Γλ`` and ``β(λ) = Bλ``: each task owns a vector of feature scales and shifts and
    λ mixes them. Γ and B start at zero, so the conditioned model starts as the user's model. Because the
    modulation is affine per feature it folds exactly into the layer's weight and bias for ``at(pref)``.
    """

    def __init__(self, base: nn.Module, state: PreferenceState, name: str) -> None:
        super().__init__(state, name)
        if not isinstance(base, _FILM_TYPES):
            raise ParetorchError(f"FiLM conditions Linear, Conv and affine BatchNorm layers; {name!r} is "
                                 f"{type(base).__name__}")
        if isinstance(base, nn.modules.batchnorm._BatchNorm) and not base.affine:
            raise ParetorchError(f"FiLM needs an affine BatchNorm to fold into; {name!r} has affine=False")
        self.base = base
        features = (base.out_features if isinstance(base, nn.Linear)
                    else base.num_features if isinstance(base, nn.modules.batchnorm._BatchNorm)
                    else base.out_channels)
        self._feature_dim = -1 if isinstance(base, nn.Linear) else 1
        weight = base.weight
        self.scale_weight = nn.Parameter(torch.zeros(features, state.num_tasks, device=weight.device,
                                                     dtype=weight.dtype))
        self.shift_weight = nn.Parameter(torch.zeros_like(self.scale_weight))

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        pref = self.preference().to(out.dtype)
        scale = per_sample(1.0 + pref @ self.scale_weight.T, out, self._feature_dim, self.layer_name)
        shift = per_sample(pref @ self.shift_weight.T, out, self._feature_dim, self.layer_name)
        return out * scale + shift

    def merged(self, pref: Tensor) -> nn.Module:
        plain = copy.deepcopy(self.base)
        with torch.no_grad():
            pref = pref.to(self.scale_weight.dtype)
            scale, shift = 1.0 + self.scale_weight @ pref, self.shift_weight @ pref
            plain.weight.mul_(scale.view(-1, *[1] * (plain.weight.dim() - 1)))
            if plain.bias is None:
                plain.bias = nn.Parameter(shift.clone())
            else:
                plain.bias.mul_(scale).add_(shift)
        return plain

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [self.scale_weight, self.shift_weight]


def conditioned(model: nn.Module, num_tasks: int, target: str | None = None) -> ParetoModel:
    """COSMOS: feed the preference to the first Linear/Conv/Embedding layer (or the layer named ``target``) as T
    extra input columns or constant channels (for an Embedding: W_λ·λ added at every position). ``at(pref)``
    folds it into that layer's bias or embedding table (exact for Linear, Embedding and unpadded convolutions).
    See :func:`film` for feature-wise conditioning of many layers.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> pm = conditioned(net, num_tasks=2)
    >>> pm.layer_names
    ['0']
    """
    # Projections inside an attention module are not inputs of the network (and attention reads them directly).
    attention = tuple(name + "." for name, module in model.named_modules() if isinstance(module, nn.MultiheadAttention))
    names = [name for name, module in model.named_modules() if isinstance(module, _INPUT_TYPES)
             and (target is None or name == target) and not (attention and name.startswith(attention))]
    if not names:
        raise ParetorchError(f"no Linear/Conv/Embedding layer {'named ' + repr(target) if target else ''} to "
                             "condition")
    first = names[0]
    dispatch: dict[type[nn.Module], LayerFactory] = dict.fromkeys(_INPUT_TYPES[:4], PreferenceInput)
    dispatch[nn.Embedding] = PreferenceEmbedding
    return wrap(model, num_tasks, dispatch, targets=re.escape(first), name="conditioned", config={"target": first})


def film(model: nn.Module, num_tasks: int, targets: Targets = None, exclude: Targets = None) -> ParetoModel:
    """FiLM conditioning (Perez et al. 2018; the baseline of LORPMAN §4.3): the output features of each
    targeted layer are scaled and shifted by ``γ(λ) = 1 + Γλ`` and ``β(λ) = Bλ`` (2·T numbers per feature).

    ``targets`` selects layers as for :func:`paretorch.lowrank` (names, name suffixes, a regex, or containers);
    by default every BatchNorm layer when the model has any (a FiLM layer after each block, as LORPMAN puts
    them in ResNet-18), otherwise every Linear and Conv layer. ``at(pref)`` folds γ and β into the layers'
    weights and biases exactly.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> pm = film(net, num_tasks=2)
    >>> pm.layer_names, pm.parameter_report().added_total
    (['0', '2'], 24)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(pm(x, [0.3, 0.7]), net(x))  # Γ = B = 0 at the start: the user's model
    True
    """
    kinds: tuple[type[nn.Module], ...] = _FILM_TYPES
    if targets is None:
        has_norms = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        kinds = _FILM_TYPES[4:] if has_norms else _FILM_TYPES[:4]
    dispatch: dict[type[nn.Module], LayerFactory] = dict.fromkeys(kinds, FiLMLayer)
    if nn.Linear in kinds:  # attention's projections are Linear layers, modulated together
        dispatch[nn.MultiheadAttention] = attention_factory(FiLMLayer)
    pm = wrap(model, num_tasks, dispatch, targets=targets, exclude=exclude, name="film")
    pm.config["targets"] = pm.layer_names
    return pm
