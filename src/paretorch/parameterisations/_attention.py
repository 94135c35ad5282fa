"""Steerable attention: ``nn.MultiheadAttention`` with its q/k/v and output projections as Pareto layers.

``nn.MultiheadAttention`` does not call its projections as modules: it reads the packed ``in_proj_weight``
(or ``q/k/v_proj_weight``) and ``out_proj.weight`` directly and hands them to a fused kernel. A wrapper that
replaced ``out_proj`` would be ignored or crash. So the whole attention module is replaced: its packed
projection is split into separate query, key and value ``nn.Linear`` layers (plus the output projection), each
wrapped by the parameterisation's own Linear layer (low-rank adapters, ensemble members, FiLM), and attention
is computed from their outputs with ``F.scaled_dot_product_attention``. At the start the outputs equal the
user's module's (to float rounding); ``merged(pref)`` folds the four projections back into a plain
``nn.MultiheadAttention``.

Supported: self- and cross-attention, ``batch_first`` either way, ``kdim``/``vdim``, ``attn_mask`` and
``key_padding_mask`` (boolean or additive), ``is_causal``, ``need_weights``. Refused with one line (exclude the
module to leave it shared): ``add_bias_kv`` and ``add_zero_attn``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paretorch.errors import ParetorchError
from paretorch.parameterisations._context import PreferenceState
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer

__all__ = ["ParetoAttention", "attention_factory"]

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                      dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _split_projections(attention: nn.MultiheadAttention) -> list[nn.Linear]:
    """The query, key, value and output projections of ``attention`` as four plain Linear layers."""
    embed = attention.embed_dim
    biases = (attention.in_proj_bias.split(embed) if attention.in_proj_bias is not None else (None, None, None))
    if attention._qkv_same_embed_dim:
        weights = attention.in_proj_weight.split(embed)
    else:
        weights = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)
    projections = [_linear(w.detach(), None if b is None else b.detach()) for w, b in zip(weights, biases, strict=True)]
    out = attention.out_proj
    return [*projections, _linear(out.weight.detach(), None if out.bias is None else out.bias.detach())]


class ParetoAttention(ParetoLayer):
    """``nn.MultiheadAttention`` whose four projections are the parameterisation's Linear layers.

    It keeps the user's module's call signature and return value ``(output, weights or None)``. Its
    ``_qkv_same_embed_dim`` is ``False`` and ``in_proj_bias`` is ``None`` (there is no packed projection any
    more), which also keeps torch's fused transformer fast path, which reads packed weights, from running.
    """

    _qkv_same_embed_dim = False
    in_proj_bias = None

    def __init__(self, base: nn.MultiheadAttention, state: PreferenceState, name: str, linear: LayerFactory
                 ) -> None:
        super().__init__(state, name)
        if base.bias_k is not None or base.add_zero_attn:
            raise ParetorchError(f"attention {name!r} uses add_bias_kv or add_zero_attn, which paretorch does not "
                                 f"steer; leave it shared with exclude=[{name!r}]")
        self.embed_dim, self.num_heads, self.head_dim = base.embed_dim, base.num_heads, base.head_dim
        self.kdim, self.vdim = base.kdim, base.vdim
        self.dropout, self.batch_first = base.dropout, base.batch_first
        for label, layer in zip(_PROJECTIONS, _split_projections(base), strict=True):
            self.add_module(label, linear(layer, state, f"{name}.{label}"))

    def projections(self) -> list[ParetoLayer]:
        return [getattr(self, label) for label in _PROJECTIONS]

    def original_type(self) -> str:
        return "MultiheadAttention"  # the user's module itself is not kept: merged() rebuilds it

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [param for layer in self.projections() for param in layer.adapter_parameters()]

    def base_parameter_count(self) -> int:
        return sum(layer.base_parameter_count() for layer in self.projections())

    def added_parameters(self) -> int:
        return sum(layer.added_parameters() for layer in self.projections())

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            # Samples first is what the projections need for per-sample preferences; (L, N, E) is torch's default.
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        batch, target, source = query.shape[0], query.shape[1], key.shape[1]
        heads = [layer(x).view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
                 for layer, x in zip(self.projections()[:3], (query, key, value), strict=True)]
        mask = self._mask(attn_mask, key_padding_mask, batch, target, source, is_causal, heads[0].dtype)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = heads[0] @ heads[1].transpose(-2, -1) / math.sqrt(self.head_dim)
            weights = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            out = F.dropout(weights, dropout, self.training) @ heads[2]
            weights = weights.mean(dim=1) if average_attn_weights else weights
            weights = weights.squeeze(0) if unbatched else weights
        else:
            out = F.scaled_dot_product_attention(*heads, attn_mask=mask, dropout_p=dropout)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, target, self.embed_dim))
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _mask(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, batch: int, target: int, source: int,
              is_causal: bool, dtype: torch.dtype) -> Tensor | None:
        # One additive mask (N, H, L, S) or broadcastable, from torch's boolean (True = masked) or float masks.
        def additive(mask: Tensor) -> Tensor:
            if mask.dtype == torch.bool:
                return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
            return mask.to(dtype)

        if attn_mask is None and is_causal:
            attn_mask = torch.ones(target, source, dtype=torch.bool).triu(1)
        total = None
        if attn_mask is not None:
            total = additive(attn_mask)
            total = (total.view(batch, self.num_heads, target, source) if total.dim() == 3
                     else total.view(1, 1, target, source))
        if key_padding_mask is not None:
            padding = additive(key_padding_mask).view(batch, 1, 1, source)
            total = padding if total is None else total + padding
        return total

    def merged(self, pref: Tensor) -> nn.Module:
        q, k, v, out = (layer.merged(pref) for layer in self.projections())
        plain = nn.MultiheadAttention(self.embed_dim, self.num_heads, dropout=self.dropout, bias=q.bias is not None,
                                      kdim=self.kdim, vdim=self.vdim, batch_first=self.batch_first,
                                      device=q.weight.device, dtype=q.weight.dtype)
        with torch.no_grad():
            if plain._qkv_same_embed_dim:
                plain.in_proj_weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
            else:
                plain.q_proj_weight.copy_(q.weight)
                plain.k_proj_weight.copy_(k.weight)
                plain.v_proj_weight.copy_(v.weight)
            if plain.in_proj_bias is not None:
                plain.in_proj_bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
            plain.out_proj.weight.copy_(out.weight)
            if out.bias is not None:
                plain.out_proj.bias.copy_(out.bias)
        return plain

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def attention_factory(linear: LayerFactory) -> LayerFactory:
    """The dispatch entry for ``nn.MultiheadAttention`` of a parameterisation whose Linear layers ``linear`` makes."""

    def make(layer: nn.Module, state: PreferenceState, name: str) -> ParetoLayer:
        return ParetoAttention(layer, state, name, linear)  # type: ignore[arg-type]

    return make

