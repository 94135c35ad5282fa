"""BatchNorm layers that normalise each preference of a multi-forward with that preference's own statistics.

``ParetoModel.multi_forward`` stacks the batch once per preference and runs the network once. A plain BatchNorm
layer in training mode would then normalise with statistics pooled over all M preferences, so the stacked pass
would compute something else than the M separate forwards it stands for, and something else than the model
``pm.at(λ)`` whose statistics are refit at one preference (what evaluation and export use). The wrapped model's
BatchNorm layers are therefore given a subclass whose forward normalises each block of rows on its own (and
updates the running statistics once per block, as M separate forwards would). Swapping the class, rather than
wrapping the layer, keeps the user's state-dict keys, and ``pm.at(λ)`` swaps it back: exported models hold plain
``torch.nn`` classes.
"""

from __future__ import annotations

from torch import Tensor, cat, nn

from paretorch.parameterisations._context import PreferenceState

__all__ = ["block_normalised", "plain_norms"]

# Where the swapped layer finds the multi-forward in progress (an attribute, not a submodule or buffer: it is
# absent from the state dict).
_STATE = "_paretorch_state"


class _PerPreferenceNorm:
    """The forward shared by the subclasses below; ``_plain_class`` is the torch class each one extends."""

    _plain_class: type[nn.modules.batchnorm._BatchNorm]

    def forward(self, input: Tensor) -> Tensor:
        plain_forward = self._plain_class.forward
        state: PreferenceState | None = self.__dict__.get(_STATE)
        blocks = None if state is None else state.blocks
        batch_statistics = self.training or not self.track_running_stats  # type: ignore[attr-defined]
        if blocks is None or blocks.shape[0] == 1 or not batch_statistics or input.shape[0] % blocks.shape[0]:
            return plain_forward(self, input)  # type: ignore[arg-type]
        # multi_forward's rows are preference-major: block m holds the batch at preference m.
        return cat([plain_forward(self, block) for block in input.chunk(blocks.shape[0])])  # type: ignore[arg-type]

    def _get_name(self) -> str:
        return self._plain_class.__name__  # printed and reported as the user's layer


class PerPreferenceBatchNorm1d(_PerPreferenceNorm, nn.BatchNorm1d):
    _plain_class = nn.BatchNorm1d


class PerPreferenceBatchNorm2d(_PerPreferenceNorm, nn.BatchNorm2d):
    _plain_class = nn.BatchNorm2d


class PerPreferenceBatchNorm3d(_PerPreferenceNorm, nn.BatchNorm3d):
    _plain_class = nn.BatchNorm3d


class PerPreferenceSyncBatchNorm(_PerPreferenceNorm, nn.SyncBatchNorm):
    _plain_class = nn.SyncBatchNorm


_SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    cls._plain_class: cls for cls in (PerPreferenceBatchNorm1d, PerPreferenceBatchNorm2d, PerPreferenceBatchNorm3d,
                                      PerPreferenceSyncBatchNorm)
}


def _per_preference_class(plain: type[nn.Module]) -> type[nn.Module] | None:
    if plain in _SWAPS:
        return _SWAPS[plain]
    if not issubclass(plain, nn.modules.batchnorm._BatchNorm) or issubclass(plain, nn.modules.lazy.LazyModuleMixin):
        return None  # a lazy layer swaps its own class on its first forward
    # A BatchNorm class of the user's (or a library's): its own forward, run once per block.
    _SWAPS[plain] = type(f"PerPreference{plain.__name__}", (_PerPreferenceNorm, plain),
                         {"_plain_class": plain, "__module__": __name__})
    return _SWAPS[plain]


def block_normalised(model: nn.Module, state: PreferenceState) -> None:
    """Make every BatchNorm layer of ``model`` normalise each multi-forward block on its own (in place)."""
    for module in model.modules():
        if not isinstance(module, _PerPreferenceNorm):
            swapped = _per_preference_class(type(module))
            if swapped is None:
                continue
            module.__class__ = swapped
        module.__dict__[_STATE] = state


def plain_norms(model: nn.Module) -> None:
    """Undo :func:`block_normalised` on ``model`` (a copy about to leave the ParetoModel), in place."""
    for module in model.modules():
        if isinstance(module, _PerPreferenceNorm):
            module.__class__ = module._plain_class
            module.__dict__.pop(_STATE, None)
