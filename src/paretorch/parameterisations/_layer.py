"""``ParetoLayer``: what every layer that a parameterisation puts into the user's model has in common.

A parameterisation replaces some of the user's layers by ``ParetoLayer`` subclasses (PEFT-style injection: the
replacement keeps the user's layer inside it). Every such layer reads the preference of the forward call in
progress from the :class:`PreferenceState` its model shares, and can say four things about itself:

- ``merged(pref)``: a plain layer (no paretorch inside) that computes this layer at ``pref``;
- ``adapter_parameters()``: the parameters the preference mixes (members, low-rank factors, FiLM weights);
- ``base_parameter_count()``: the parameter count of the user's original layer;
- ``added_parameters()``: what the parameterisation adds on top of it.

:class:`~paretorch.parameterisations.ParetoModel` relies on these alone, so a new parameterisation is one
module with its layers and a dispatch table (user layer type → factory) passed to :func:`wrap`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from paretorch.parameterisations._context import PreferenceState

__all__ = ["LayerFactory", "ParetoLayer"]


class ParetoLayer(nn.Module):
    """Base class of the layers that make a model steerable by a preference.

    Subclasses call ``super().__init__(state, name)``, keep the user's layer (by convention as ``self.base``),
    read the current preference with :meth:`preference` in ``forward`` and implement :meth:`merged` and
    :meth:`adapter_parameters`. The preference is ``(T,)`` for a whole batch or ``(B, T)`` per sample;
    :func:`~paretorch.parameterisations.per_sample` broadcasts per-sample weights over an input.

    >>> import torch
    >>> class Gain(ParetoLayer):  # y = (Σ_t λ_t g_t) · base(x): one scalar gain per task
    ...     def __init__(self, base, state, name):
    ...         super().__init__(state, name)
    ...         self.base, self.gains = base, torch.nn.Parameter(torch.ones(state.num_tasks))
    ...     def forward(self, x):
    ...         gain = self.preference().to(x.dtype) @ self.gains
    ...         return per_sample(gain[..., None], x, -1, self.layer_name) * self.base(x)
    ...     def merged(self, pref):
    ...         plain = copy.deepcopy(self.base)
    ...         with torch.no_grad():
    ...             plain.weight.mul_(pref @ self.gains)
    ...             plain.bias.mul_(pref @ self.gains)
    ...         return plain
    ...     def adapter_parameters(self):
    ...         return [self.gains]
    >>> import copy
    >>> from paretorch.parameterisations import per_sample, wrap
    >>> pm = wrap(torch.nn.Sequential(torch.nn.Linear(3, 2)), 2, {torch.nn.Linear: Gain}, name="gain")
    >>> pm.parameter_report().added_total
    2
    """

    def __init__(self, state: PreferenceState, name: str) -> None:
        super().__init__()
        self._state, self._name = state, name
        # torch's fused transformer fast path (TransformerEncoderLayer in evaluation mode) reads its layers' raw
        # weights instead of calling them, which would skip the preference; it stays off for a block that holds
        # a module with a forward hook, so every Pareto layer carries one that does nothing.
        self.register_forward_pre_hook(_no_op)

    def __getattr__(self, name: str) -> object:
        # Attributes of the user's layer that the surrounding code reads (LayerNorm's eps, Linear's
        # out_features, attention's batch_first) are answered by the original layer; its tensors are not, since
        # the weights in use depend on the preference and are not the original ones.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or name in _OWN:
                raise
            original = self.original_layer()
            value = getattr(original, name)
            if isinstance(value, Tensor):
                raise AttributeError(
                    f"{name!r} of layer {self._name!r} depends on the preference under paretorch; code that reads "
                    f"it directly cannot be steered: use pm.at(pref) for a plain model, or exclude "
                    f"[{self._name!r}]") from None
            return value

    @property
    def layer_name(self) -> str:
        """The layer's name inside the user's model (for error messages)."""
        return self._name

    @property
    def num_tasks(self) -> int:
        return self._state.num_tasks

    def preference(self) -> Tensor:
        """The preference of the forward call in progress: ``(T,)`` or ``(B, T)``."""
        return self._state.current(self._name)

    def original_layer(self) -> nn.Module:
        """The user's layer this one replaces."""
        base = self._modules.get("base")
        if base is None:
            raise AttributeError(f"{type(self).__name__} must keep the user's layer as self.base or override "
                                 "original_layer()")
        return base

    def original_type(self) -> str:
        """The type of the user's layer, as the parameter report names it."""
        return self.original_layer()._get_name()

    def merged(self, pref: Tensor) -> nn.Module:
        """A plain module (no paretorch layer inside) that computes this layer at the preference ``pref`` (T,)."""
        raise NotImplementedError

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The parameters that the preference mixes; every other parameter belongs to the shared base."""
        raise NotImplementedError

    def base_parameter_count(self) -> int:
        """Parameters of the user's original layer."""
        return sum(p.numel() for p in self.original_layer().parameters())

    def added_parameters(self) -> int:
        """Parameters the parameterisation adds to the original layer (by default, its adapter parameters)."""
        return sum(p.numel() for p in self.adapter_parameters())


_OWN = frozenset({"base", "members", "norm", "training"})


def _no_op(module: nn.Module, args: object) -> None:
    del module, args


#: Builds the Pareto layer that replaces one user layer: ``factory(user_layer, state, name)``.
LayerFactory = Callable[[nn.Module, PreferenceState, str], ParetoLayer]
