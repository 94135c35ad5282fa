"""``ParetoModel``: the user's multi-task model, wrapped so that a preference chooses its weights.

The user's module is deep-copied and the targeted layers of the copy are replaced by paretorch layers
(PEFT-style injection: each replacement keeps the original layer inside it). The user's class, code and
forward signature are untouched; ``pm(x, pref)`` calls the copy's own forward with the preference held in
a shared state that only the replaced layers read.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from paretorch._files import atomic_write
from paretorch.errors import ParetorchError
from paretorch.parameterisations._context import CHANNELS_LAST, PreferenceState
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer
from paretorch.parameterisations._norms import block_normalised, plain_norms
from paretorch.parameterisations._select import Targets, check_num_tasks, replace_module, select_layers
from paretorch.preferences import as_preference


@dataclass(frozen=True)
class LayerParameters:
    """One wrapped layer's parameter counts: the original layer's, and what the parameterisation adds."""

    name: str
    layer_type: str
    base: int
    added: int

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.added / self.base if self.base else float("inf")


@dataclass(frozen=True)
class SharedParameters:
    """Parameters of one module of the user's model that no Pareto layer wraps: every preference uses them."""

    name: str
    layer_type: str
    count: int


@dataclass(frozen=True)
class ParameterReport:
    """Parameter counts per wrapped layer and for the whole model.

    ``base_total`` counts every parameter of the user's model, wrapped or not; ``added_total`` what the Pareto
    parameterisation adds; ``shared`` lists the modules whose parameters stay shared by all preferences (not
    wrapped), ``frozen_total`` the parameters that do not train and ``trainable_total`` those that do.
    ``str(report)`` is the table; :meth:`summary` one line, like PEFT's ``print_trainable_parameters``.
    """

    method: str
    layers: list[LayerParameters] = field(default_factory=list)
    base_total: int = 0
    added_total: int = 0
    shared: list[SharedParameters] = field(default_factory=list)
    frozen_total: int = 0
    trainable_total: int = 0

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.added_total / self.base_total if self.base_total else float("inf")

    @property
    def shared_total(self) -> int:
        return sum(row.count for row in self.shared)

    def summary(self) -> str:
        """One line: trainable, all, added (and its share of the base), shared and frozen parameters."""
        total = self.base_total + self.added_total
        share = 100.0 * self.trainable_total / total if total else 0.0
        return (f"trainable params: {self.trainable_total:,} || all params: {total:,} || trainable%: {share:.2f} || "
                f"added by {self.method}: {self.added_total:,} ({self.overhead_percent:.1f}% of the base) || "
                f"shared by all preferences: {self.shared_total:,} || frozen: {self.frozen_total:,}")

    def __str__(self) -> str:
        total_label = f"total ({self.method})"
        names = [row.name for row in self.layers] + [row.name for row in self.shared]
        width = max([len(total_label), *(len(name) for name in names)])
        lines = [f"{'wrapped layer':<{width}}  {'type':<18} {'base':>10} {'added':>10} {'overhead':>9}"]
        for row in self.layers:
            lines.append(f"{row.name:<{width}}  {row.layer_type:<18} {row.base:>10,} {row.added:>10,} "
                         f"{row.overhead_percent:>8.1f}%")
        lines.append(f"{total_label:<{width}}  {'':<18} {self.base_total:>10,} "
                     f"{self.added_total:>10,} {self.overhead_percent:>8.1f}%")
        if self.shared:
            lines.append(f"{'shared (not wrapped)':<{width}}  {'type':<18} {'params':>10}")
            lines += [f"{row.name:<{width}}  {row.layer_type:<18} {row.count:>10,}" for row in self.shared]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "base_total": self.base_total, "added_total": self.added_total,
            "overhead_percent": self.overhead_percent, "shared_total": self.shared_total,
            "frozen_total": self.frozen_total, "trainable_total": self.trainable_total,
            "layers": [row.__dict__ | {"overhead_percent": row.overhead_percent} for row in self.layers],
            "shared": [row.__dict__ for row in self.shared],
        }


def map_tensors(value: Any, function: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``function`` to every tensor inside nested tuples, lists and dicts (model inputs and outputs)."""
    if isinstance(value, Tensor):
        return function(value)
    if isinstance(value, dict):
        return {key: map_tensors(item, function) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(item, function) for item in value)
    return value


PRETRAINED_WEIGHTS = "pareto_model.safetensors"
PRETRAINED_CONFIG = "paretorch_config.json"


def write_safetensors(path: str | os.PathLike[str], state: Mapping[str, Tensor], metadata: dict[str, str]) -> Path:
    """Write ``state`` as a safetensors file, atomically (a kill leaves the previous file or none)."""
    try:
        from safetensors.torch import save as safetensors_bytes
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ParetorchError("saving needs safetensors: pip install 'paretorch[export]'") from error
    # Cloned: safetensors refuses tensors that share storage (views of one another).
    data = safetensors_bytes({key: value.detach().cpu().clone().contiguous() for key, value in state.items()},
                             metadata=metadata)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ParetorchError(f"cannot create the folder of {path}: {error.strerror or error}") from error
    return atomic_write(path, lambda stream: stream.write(data))


def move_to(value: Any, device: torch.device | str) -> Any:
    """Every tensor inside ``value`` (nested tuples, lists, dicts) moved to ``device``."""
    return map_tensors(value, lambda t: t.to(device))


def to_channels_last(value: Any) -> Any:
    """Every floating-point image batch inside ``value`` ((N, C, H, W) or (N, C, D, H, W)) laid out channels-last.

    Other tensors are returned as they are. The layout is forced even where it is ambiguous (one channel), so
    that the convolutions the batch meets run their channels-last kernels, and so do the layers after them.

    >>> import torch
    >>> to_channels_last(torch.zeros(2, 1, 4, 4)).stride()
    (16, 1, 4, 1)
    """
    def convert(tensor: Tensor) -> Tensor:
        layout = CHANNELS_LAST.get(tensor.dim())
        if layout is None or not tensor.is_floating_point():
            return tensor
        return tensor.to(memory_format=layout)

    return map_tensors(value, convert)


def call_model(model: Callable[..., Any], x: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
               ) -> Any:
    """``model(x, *args, **kwargs)``, or ``model(**x, **kwargs)`` when ``x`` is a dict of keyword arguments."""
    kwargs = kwargs or {}
    if isinstance(x, Mapping):
        return model(*args, **x, **kwargs)
    return model(x, *args, **kwargs)


def tensors_in(value: Any) -> list[Tensor]:
    """Every tensor inside nested tuples, lists and dicts, in :func:`map_tensors`' order."""
    found: list[Tensor] = []
    map_tensors(value, lambda t: found.append(t) or t)
    return found


def batch_inputs(batch: Any) -> Any:
    """A batch's inputs: the first item of a tuple or list ``(inputs, targets, ...)``, else the batch itself."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _first_tensor(value: Any) -> Tensor | None:
    found = tensors_in(value)
    return found[0] if found else None


class ParetoModel(nn.Module):
    """A multi-task model steerable by a preference λ on the simplex (one weight per task).

    - ``pm(x, pref)``: ``pref`` of shape ``(T,)`` applies to the whole batch, ``(B, T)`` gives each sample its
      own preference in one forward pass. Extra arguments go to the user's forward unchanged.
    - ``pm.multi_forward(x, prefs)``: the batch repeated for each of M preferences, in one pass.
    - ``pm.at(pref)``: a plain ``nn.Module`` with merged weights (no paretorch layer inside) that computes
      ``pm(·, pref)``; ``pm.export(path, pref)`` writes it as safetensors.

    Build one with :func:`paretorch.ensemble`, :func:`paretorch.lowrank`, :func:`paretorch.hypernetwork`,
    :func:`paretorch.conditioned` or :func:`paretorch.film`.
    """

    # Whether multi_forward's stacked pass reaches the BatchNorm layers as one batch of M blocks, which they then
    # normalise block by block (_norms.py); a subclass that runs each preference's rows separately sets False.
    stacks_preferences_in_batchnorm = True

    def __init__(self, model: nn.Module, num_tasks: int, method: str, state: PreferenceState,
                 layer_names: list[str], config: dict[str, Any], *, ignores_preference: bool = False) -> None:
        super().__init__()
        self._ignores_preference = ignores_preference
        if self.stacks_preferences_in_batchnorm:
            block_normalised(model, state)
        self.model = model
        self.num_tasks = num_tasks
        self.method = method
        self._state = state
        self.layer_names = layer_names
        self.config = config
        self.allow_outside_simplex = False
        # Set by use_channels_last(): image batches are laid out channels-last before the user's forward.
        self.channels_last = False
        # The tasks' names when they are known (a ParetoLoss with named tasks sets them); saved by save_pretrained.
        self.task_names: list[str] | None = None

    # ----- forward -------------------------------------------------------------------------------------------
    @property
    def ignores_preference(self) -> bool:
        """Whether the preference leaves the network unchanged (a plain model of a discrete method): then
        evaluation needs one pass whatever the preference, and no BatchNorm refit per preference."""
        return self._ignores_preference

    def use_channels_last(self, enabled: bool = True) -> ParetoModel:
        """Lay image batches out channels-last (NHWC) before every forward, so that convolutions, pooling and the
        layers after them run their channels-last kernels; returns ``self``.

        On a 2-core CPU a LeNet training step at 1,024 rows ran about 1.5× faster so (max-pooling 3×, the
        convolutions' backward 1.5×); ``benchmarks/forward_backward.py --channels-last`` measures it for your
        machine. The outputs equal those of the default layout to floating-point rounding.

        >>> import torch
        >>> from paretorch import ensemble
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
        >>> pm = ensemble(net, 2).use_channels_last()
        >>> pm(torch.ones(1, 1, 4, 4), [0.5, 0.5]).shape
        torch.Size([1, 8])
        """
        self.channels_last = enabled
        return self

    def _laid_out(self, x: Any) -> Any:
        return to_channels_last(x) if self.channels_last else x

    def _prepare(self, pref: Any, like: Tensor | None, allow_outside_simplex: bool) -> Tensor:
        tensor = as_preference(pref, self.num_tasks, allow_outside_simplex=allow_outside_simplex)
        reference = next(iter(self.parameters()), None)
        device = like.device if like is not None else reference.device if reference is not None else None
        # In the model's own precision (float64 models get float64 preferences); under autocast the layers cast.
        dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
        return tensor.to(device=device, dtype=dtype)

    def forward(self, x: Any, pref: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the user's model on ``x`` at preference ``pref`` ((T,) or (B, T)).

        ``x`` is what the model's forward takes first (a tensor, a tuple, …); a dict is taken as keyword
        arguments, as a Hugging Face batch is (``model(**x)``).
        """
        tensor = self._prepare(pref, _first_tensor(x), self.allow_outside_simplex)
        batch = _first_tensor(x)
        if tensor.dim() == 2 and batch is not None and batch.shape[0] != tensor.shape[0]:
            raise ParetorchError(
                f"got {tensor.shape[0]} per-sample preferences for a batch of {batch.shape[0]}; "
                f"give one row per sample, or a single ({self.num_tasks},) preference for the whole batch"
            )
        previous = self._state.value
        self._state.value = tensor
        try:
            return call_model(self.model, self._laid_out(x), args, kwargs)
        finally:
            self._state.value = previous

    def multi_forward(self, x: Any, prefs: Any, *args: Any, via: nn.Module | None = None, **kwargs: Any) -> Any:
        """Evaluate the batch at each of M preferences ``(M, T)`` in one pass.

        The batch is repeated M times (preference-major: rows ``m·B … (m+1)·B − 1`` use ``prefs[m]``), so each
        output has leading size ``M·B``; :func:`split_outputs` reshapes them to ``(M, B, …)``. ``via`` is a
        wrapper of this model to call instead of the model itself (a ``DistributedDataParallel``, whose forward
        must run for its gradient synchronisation).
        """
        prefs = self._prepare(prefs, _first_tensor(x), self.allow_outside_simplex)
        if prefs.dim() != 2:
            prefs = prefs.unsqueeze(0)
        first = _first_tensor(x)
        if first is None:
            raise ParetorchError("multi_forward needs a tensor input to repeat")
        count, batch = prefs.shape[0], first.shape[0]
        if count > 1 and self.stacks_preferences_in_batchnorm:
            # A BatchNorm layer replaced after wrapping is a torch class again and would pool the M blocks:
            # SyncBatchNorm.convert_sync_batchnorm does that (Lightning's sync_batchnorm=True calls it on the
            # whole module). A walk over the modules, small beside the forward it precedes.
            block_normalised(self.model, self._state)
        repeats: dict[int, tuple[Tensor, Tensor, int]] = {}

        def repeat(tensor: Tensor) -> Tensor:
            # cat keeps the rows' memory layout (channels-last stays so); Tensor.repeat would not.
            copies = torch.cat([tensor] * count) if tensor.dim() else tensor.repeat(count)
            repeats[id(copies)] = (copies, tensor, copies._version)
            return copies

        repeated = map_tensors(self._laid_out(x), repeat)
        previous = self._state.blocks, self._state.repeats
        self._state.blocks, self._state.repeats = prefs, repeats
        try:
            return (via or self)(repeated, prefs.repeat_interleave(batch, dim=0), *args, **kwargs)
        finally:
            self._state.blocks, self._state.repeats = previous

    # ----- merged plain models ---------------------------------------------------------------------------------
    def at(self, pref: Any, allow_outside_simplex: bool | None = None) -> nn.Module:
        """A plain copy of the user's model with the weights for ``pref`` merged in (no paretorch layers).

        Running statistics of BatchNorm layers are those of the wrapped model; see
        :func:`paretorch.recalibrate_batchnorm` to refit them at this preference.
        """
        allow = self.allow_outside_simplex if allow_outside_simplex is None else allow_outside_simplex
        tensor = self._prepare(pref, None, allow)
        if tensor.dim() != 1:
            raise ParetorchError(f"at() takes one preference of shape ({self.num_tasks},), got {tuple(tensor.shape)}")
        plain = copy.deepcopy(self.model)
        with self.full_precision():
            for name in self.layer_names:
                layer = plain.get_submodule(name)
                merged = layer.merged(tensor)
                # In the mode the model is in: a module built afresh (attention) would start in training mode,
                # and its dropout would then run in an exported model meant for evaluation.
                replace_module(plain, name, merged.train(layer.training))
        plain_norms(plain)
        return plain

    def full_precision(self) -> torch.autocast:
        """A context without autocast on the model's device: merged weights are computed in the parameters' own
        precision even when ``at()`` is called inside an autocast region."""
        reference = next(iter(self.parameters()), None)
        return torch.autocast(reference.device.type if reference is not None else "cpu", enabled=False)

    def export(self, path: str | os.PathLike[str], pref: Any, recalibrate: Iterable[Any] | None = None) -> Path:
        """Write ``self.at(pref)``'s state dict as safetensors, with the preference in the metadata.

        ``recalibrate`` (a few training batches) refits the exported model's BatchNorm statistics at ``pref``
        first (:func:`recalibrate_batchnorm`). The write is atomic (temporary file, then rename): an interrupted
        export leaves no partial file.
        """
        tensor = self._prepare(pref, None, self.allow_outside_simplex)
        metadata = {
            "paretorch.preference": json.dumps([round(v, 6) for v in tensor.tolist()]),
            "paretorch.method": self.method,
            "paretorch.config": json.dumps(self.config),
        }
        plain = self.at(tensor)
        if recalibrate is not None and not self.ignores_preference:
            recalibrate_batchnorm(plain, recalibrate)
        return write_safetensors(path, plain.state_dict(), metadata)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Save the steerable model itself: ``pareto_model.safetensors`` (every tensor of the wrapped model) and
        ``paretorch_config.json`` (the parameterisation, its options, the wrapped layers, the task count).

        :func:`paretorch.from_pretrained` rebuilds it around a fresh instance of your model class with identical
        outputs. Unlike a training checkpoint it holds no optimizer state; unlike :meth:`export` it stays
        steerable. Nothing is pickled: safetensors and JSON only.
        """
        folder = Path(directory)
        write_safetensors(folder / PRETRAINED_WEIGHTS, self.state_dict(), {"paretorch.method": self.method})
        config = {"format": "paretorch-pretrained", "version": 1, "method": self.method, "num_tasks": self.num_tasks,
                  "task_names": self.task_names, "layer_names": self.layer_names, "config": self.config}
        # The config is written last: a folder with a config always has its weights.
        atomic_write(folder / PRETRAINED_CONFIG, lambda stream: stream.write(
            (json.dumps(config, indent=2) + "\n").encode()))
        return folder

    # ----- parameter groups ------------------------------------------------------------------------------------
    def pareto_layers(self) -> dict[str, ParetoLayer]:
        """The wrapped layers by name (inside ``pm.model``)."""
        return {name: self.model.get_submodule(name) for name in self.layer_names}  # type: ignore[misc]

    def adapter_parameters(self) -> list[nn.Parameter]:
        """Parameters that the preference mixes: low-rank factors, ensemble members, FiLM weights…"""
        return [param for layer in self.pareto_layers().values() for param in layer.adapter_parameters()]

    def base_parameters(self) -> list[nn.Parameter]:
        """Every other parameter: the base (main) network that all preferences share."""
        adapters = {id(p) for p in self.adapter_parameters()}
        return [p for p in self.parameters() if id(p) not in adapters]

    def freeze_base(self, frozen: bool = True) -> None:
        """Stop (or restart) gradient updates of the base network; the adapters keep training."""
        for param in self.base_parameters():
            param.requires_grad_(not frozen)

    def parameter_report(self) -> ParameterReport:
        """Base and added parameters per wrapped layer and in total (PaLoRA mn + T·r(m+n) per layer,
        LORPMAN dk + m(dr + rk), PaMaL m·dk)."""
        rows = [LayerParameters(name, layer.original_type(), layer.base_parameter_count(),
                                layer.added_parameters()) for name, layer in self.pareto_layers().items()]
        added = sum(row.added for row in rows)
        total = sum(p.numel() for p in self.parameters())
        return ParameterReport(self.method, rows, base_total=total - added, added_total=added,
                               shared=self._shared_modules(), **self._training_counts())

    def _shared_modules(self) -> list[SharedParameters]:
        wrapped = tuple(name + "." for name in self.layer_names)
        rows = []
        for name, module in self.model.named_modules():
            if name in self.layer_names or (wrapped and name.startswith(wrapped)):
                continue
            count = sum(p.numel() for p in module.parameters(recurse=False))
            if count:
                rows.append(SharedParameters(name or "(model)", module._get_name(), count))
        return rows

    def _training_counts(self) -> dict[str, int]:
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return {"frozen_total": frozen, "trainable_total": sum(p.numel() for p in self.parameters()) - frozen}

    def print_trainable_parameters(self) -> None:
        """Print :meth:`ParameterReport.summary` (the name PEFT users know)."""
        print(self.parameter_report().summary())


def shared_parameters(pm: ParetoModel, example_input: Any, pref: Any | None = None) -> list[nn.Parameter]:
    """The parameters that every task's output depends on (the shared encoder), found by autograd.

    Runs one forward pass on ``example_input`` and keeps the parameters reached from every task output.
    PaMaL's gradient balancing normalises task gradients on exactly these.
    """
    pref = torch.full((pm.num_tasks,), 1.0 / pm.num_tasks) if pref is None else pref
    # In evaluation mode: the probe must leave no trace in training, neither a BatchNorm running-statistics update
    # nor a dropout draw from the random streams (a resumed run probes at another step than the run it continues).
    training = pm.training
    pm.eval()
    try:
        outputs = pm(example_input, pref)
    finally:
        pm.train(training)
    per_task = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    if len(per_task) != pm.num_tasks:
        raise ParetorchError(f"the model returned {len(per_task)} outputs for {pm.num_tasks} tasks")
    candidates = [p for p in pm.parameters() if p.requires_grad]
    reached = None
    for output in per_task:
        grads = torch.autograd.grad(output.float().sum(), candidates, retain_graph=True, allow_unused=True)
        hit = {i for i, g in enumerate(grads) if g is not None}
        reached = hit if reached is None else reached & hit
    return [candidates[i] for i in sorted(reached or set())]


def running_batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics (what evaluation normalises with)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], pref: Any | None = None,
                          max_batches: int | None = None) -> nn.Module:
    """Refit the running statistics of every BatchNorm layer of ``model`` on ``batches``, then return it.

    ``model`` is a plain module (for instance ``pm.at(pref)``) or a ``ParetoModel`` (then ``pref`` is
    required). Statistics are a cumulative average over the batches (momentum ``None``), computed without
    gradients; afterwards every module is back in the mode it was in. A batch is an input, or a tuple or list
    whose first item is the input.
    """
    norms = running_batchnorms(model)
    if not norms:
        return model
    if isinstance(model, ParetoModel) and pref is None:
        raise ParetorchError("recalibrating a ParetoModel needs the preference to refit it at")
    device = next(model.parameters()).device  # the batches come from a loader, on the CPU
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        with torch.no_grad():
            for index, batch in enumerate(batches):
                if max_batches is not None and index >= max_batches:
                    break
                inputs = move_to(batch_inputs(batch), device)
                if isinstance(model, ParetoModel):
                    model(inputs, pref)
                else:
                    model(inputs)
    finally:
        for norm, momentum in momenta.items():
            norm.momentum = momentum
        for module, training in modes.items():
            module.train(training)
    return model


def _factory_for(layer: nn.Module, layers: Mapping[type[nn.Module], LayerFactory]) -> LayerFactory:
    # The most specific entry wins: a subclass of nn.Linear uses the nn.Linear factory unless it has its own.
    for kind in type(layer).__mro__:
        if kind in layers:
            return layers[kind]
    raise ParetorchError(f"no Pareto layer for {type(layer).__name__}")  # select_layers only picks listed types


def wrap(model: nn.Module, num_tasks: int, layers: Mapping[type[nn.Module], LayerFactory], *,
         targets: Targets = None, exclude: Targets = None, name: str = "custom",
         config: dict[str, Any] | None = None) -> ParetoModel:
    """Make ``model`` steerable: replace its targeted layers using the dispatch table ``layers``.

    ``layers`` maps user layer types (``nn.Linear``, ``nn.Conv2d`` …; subclasses match too) to a factory
    ``factory(user_layer, state, layer_name) -> ParetoLayer``; every layer of one of these types that
    ``targets``/``exclude`` select is replaced in a deep copy of ``model`` (the original is never changed).
    The built-in parameterisations (:func:`~paretorch.ensemble`, :func:`~paretorch.lowrank`,
    :func:`~paretorch.film`, :func:`~paretorch.conditioned`) are this function with their own table; a new
    parameterisation is a :class:`~paretorch.parameterisations.ParetoLayer` subclass and one call to it.
    ``config`` (JSON-able) is recorded in exports and checkpoints.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> from paretorch.parameterisations import LowRankLinear
    >>> pm = wrap(net, 2, {torch.nn.Linear: lambda layer, state, name: LowRankLinear(layer, state, name, 1, 1.0)})
    >>> pm.layer_names
    ['0', '2']
    """
    check_num_tasks(num_tasks)
    if not layers:
        raise ParetorchError("wrap() needs a dispatch table {layer type: factory} with at least one entry")
    wrapped = copy.deepcopy(model)
    state = PreferenceState(num_tasks)
    label = (config or {}).get("method", name)  # lowrank-palora and lowrank-lorpman are both "lowrank"
    names = select_layers(wrapped, tuple(layers), targets, exclude, label)
    for layer_name in names:
        layer = wrapped.get_submodule(layer_name)
        replacement = _factory_for(layer, layers)(layer, state, layer_name)
        if not isinstance(replacement, ParetoLayer):
            raise ParetorchError(f"the factory for {type(layer).__name__} returned a {type(replacement).__name__}, "
                                 "not a ParetoLayer")
        # In the mode of the layer it replaces (a model put in evaluation mode before wrapping stays there).
        replace_module(wrapped, layer_name, replacement.train(layer.training))
    for module in wrapped.modules():
        # The encoder's nested-tensor fast path reads its layers' raw weights (like the layer fast path that
        # ParetoLayer's hook turns off): a steered encoder runs its layers one by one.
        if isinstance(module, nn.TransformerEncoder) and any(isinstance(m, ParetoLayer) for m in module.modules()):
            module.use_nested_tensor = False
    return ParetoModel(wrapped, num_tasks, name, state, names,
                       {"method": name, "num_tasks": num_tasks} | (config or {}))


def plain(model: nn.Module, num_tasks: int) -> ParetoModel:
    """The user's model with no Pareto layers: the preference is accepted and ignored (one trade-off, fixed
    by the loss weights). Linear scalarisation, single-task and MGDA baselines train this.

    >>> import torch
    >>> pm = plain(torch.nn.Linear(3, 2), num_tasks=2)
    >>> pm.at([0.5, 0.5]).weight.shape
    torch.Size([2, 3])
    """
    check_num_tasks(num_tasks)
    return ParetoModel(copy.deepcopy(model), num_tasks, "plain", PreferenceState(num_tasks), [],
                       {"method": "plain", "num_tasks": num_tasks}, ignores_preference=True)
