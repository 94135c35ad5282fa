"""A hypernetwork θ(λ) = H(λ) that generates all weights of the user's network from the preference
(Controllable Pareto MTL, Lin et al. 2020, §5.1; Pareto HyperNetworks, Navon et al. 2021).

An MLP maps the preference to an embedding a; linear projections turn a into the target's parameters. Without
chunking there is one projection W_j per target parameter tensor (PHN). With ``chunk_size`` the flattened
target parameters are cut into chunks of that size, each chunk c has a trainable embedding e_c, the MLP maps
[λ; e_c] to a_c and one shared projection W maps a_c to the chunk (CPMTL Fig. 5): the projection no longer
grows with the target size.

The target network's own parameters are kept only as a template (frozen, unused in the forward pass); its
buffers (BatchNorm statistics) are shared by all preferences.

``residual=True`` (beyond the papers) generates θ(λ) = θ₀ + c·H(λ) instead, θ₀ a trainable copy of the target's
own weights: the network starts at those weights (pretrained ones kept) and trains as a plain one does, while H
learns how the weights move with the preference. In the papers' form one Adam step moves every generated tensor by
15-20 % of its norm at lr 1e-3: a small transformer stayed at chance and a chunked ResNet-18 learned far below a
plain one (benchmarks/results/hypernetwork-residual-2026-12-06-cpu.txt).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from paretorch.errors import ParetorchError
from paretorch.parameterisations._context import PreferenceState
from paretorch.parameterisations._model import (
    LayerParameters,
    ParameterReport,
    ParetoModel,
    _first_tensor,
    call_model,
    map_tensors,
)


def _key(name: str) -> str:
    # A target parameter's name as a key of the projections' ModuleDict and θ₀'s ParameterDict, which refuse dots.
    return name.replace(".", "__")


class PreferenceHyperNetwork(nn.Module):
    """Preference → the flat vector of all target parameters."""

    def __init__(self, shapes: dict[str, torch.Size], num_tasks: int, hidden: int = 100, layers: int = 2,
                 chunk_size: int | None = None, chunk_embedding: int = 64, residual: bool = False,
                 residual_init: float = 0.1, residual_step: float = 0.1) -> None:
        super().__init__()
        self.shapes = dict(shapes)
        self.total = sum(math.prod(shape) for shape in shapes.values())
        self.chunk_size = chunk_size
        self.num_tasks = num_tasks
        width_in = num_tasks + (chunk_embedding if chunk_size else 0)
        blocks: list[nn.Module] = []
        for index in range(layers):
            blocks += [nn.Linear(width_in if index == 0 else hidden, hidden), nn.ReLU()]
        self.mlp = nn.Sequential(*blocks)
        if chunk_size:
            chunks = math.ceil(self.total / chunk_size)
            # Unit-variance codes: with codes of 0.1 the preference and the biases dominated the MLP's input, the
            # chunks' MLP outputs came out 87 % correlated on average and the target network started as near
            # copies of one chunk (a chunked LeNet did not learn MultiMNIST in 10 epochs:
            # benchmarks/results/hypernetwork-chunking-2026-12-06-cpu.txt).
            self.chunk_embeddings = nn.Parameter(torch.randn(chunks, chunk_embedding))
            # The preference then enters the first layer beside a code of norm √E: its columns start √E larger, so
            # that moving λ across the simplex moves the layer's input as much as a different code does (CPMTL
            # embeds preference and chunk alike in 64 dimensions). Without it the chunked fronts came out unordered.
            with torch.no_grad():
                self.mlp[0].weight[:, :num_tasks] *= math.sqrt(chunk_embedding)
            self.projection = nn.Linear(hidden, chunk_size)
            # One fixed gain per target tensor (set by match_template): the shared projection cannot be rescaled
            # per tensor, so its output is. Saved with the model, so a loaded model generates what it did.
            self.register_buffer("tensor_gains", torch.ones(len(self.shapes)))
        else:
            self.projections = nn.ModuleDict({
                _key(name): nn.Linear(hidden, math.prod(shape)) for name, shape in shapes.items()
            })
        self.residual = residual
        self.residual_init = residual_init
        # Residual form: θ(λ) = θ₀ + c·H(λ). θ₀ (a trainable copy of the target's own weights, set by
        # match_template) trains as a plain network does; H learns how the weights move with the preference. c
        # (``residual_step``) multiplies H's output and its projections start 1/c larger, so the start is the same
        # and each Adam step of a projection moves the generated part c times as far: Adam's step is about lr per
        # entry whatever the entry's scale, and a projection's step moves every generated weight at once.
        self.output_scale = residual_step if residual else 1.0
        if residual:
            self.base = nn.ParameterDict({_key(name): nn.Parameter(torch.zeros(shape))
                                          for name, shape in shapes.items()})
        self._rescale_outputs()

    def _rescale_outputs(self) -> None:
        # Start the generated weights at the scale of a default-initialised layer (fan-in rule), not at the
        # much larger scale a plain Linear head would give every target entry.
        with torch.no_grad():
            for projection in ([self.projection] if self.chunk_size else list(self.projections.values())):
                projection.weight.mul_(0.1)
                projection.bias.zero_()

    @torch.no_grad()
    def match_template(self, template: dict[str, Tensor]) -> None:
        """Start each generated tensor at the scale of the target's own initialisation of it.

        At the centre of the simplex each generated tensor is brought to the root-mean-square of the target's
        default-initialised one: without chunking by rescaling its projection, with chunking (one projection
        for all tensors) by rescaling the projection by the tensors' common factor (the geometric mean) and each
        tensor's fixed gain by the rest. A single scale for all tensors leaves the first layers of a
        network far below their usual scale (a LeNet's first convolution about 7× too small), and the signal
        then fades through the layers.
        """
        centre = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=self.mlp[0].weight.dtype,
                            device=self.mlp[0].weight.device)
        generated = self._generated_part(centre)
        ratios: dict[int, float] = {}
        for index, (name, value) in enumerate(generated.items()):
            target = template[name].detach().double().pow(2).mean().sqrt()
            current = value.double().pow(2).mean().sqrt()
            if target > 0 and current > 0:
                ratios[index] = float(target / current)
        if self.residual:
            # θ₀ starts at the target's own weights (pretrained ones included); H(λ) at residual_init of their scale.
            for name, value in template.items():
                self.base[_key(name)].copy_(value)
            ratios = {index: ratio * self.residual_init for index, ratio in ratios.items()}
        if self.chunk_size:
            # The ratios' common part goes into the shared projection, the per-tensor gains keep the rest (about
            # 1). A fixed gain of 10-40 on every tensor would multiply each Adam step of the projection by as much.
            common = math.exp(sum(math.log(ratio) for ratio in ratios.values()) / len(ratios)) if ratios else 1.0
            self.projection.weight.mul_(common)
            self.projection.bias.mul_(common)
            for index, ratio in ratios.items():
                self.tensor_gains[index] *= ratio / common
            return
        for index, name in enumerate(generated):
            if index in ratios:
                projection = self.projections[_key(name)]
                projection.weight.mul_(ratios[index])
                projection.bias.mul_(ratios[index])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Chunked hypernetworks saved before the per-tensor gains existed generated with gain 1.
        if self.chunk_size and prefix + "tensor_gains" not in state_dict:
            state_dict[prefix + "tensor_gains"] = torch.ones_like(self.tensor_gains)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, pref: Tensor) -> dict[str, Tensor]:
        generated = self._generate(pref)
        # Under autocast the projections compute in low precision; the target's parameters keep the generator's
        # own precision, as a regular model's parameters do (autocast then casts per operation).
        dtype = self.mlp[0].weight.dtype
        return {name: value.to(dtype) for name, value in generated.items()}

    def _generate(self, pref: Tensor) -> dict[str, Tensor]:
        out = self._generated_part(pref)
        if self.residual:
            out = {name: value + self.base[_key(name)] for name, value in out.items()}
        return out

    def _generated_part(self, pref: Tensor) -> dict[str, Tensor]:
        # H(λ), scaled by the residual form's c; the papers' form (c = 1) skips the multiplication, a pass over
        # every generated weight each step.
        pref = pref.to(self.mlp[0].weight.dtype)
        if self.chunk_size:
            chunks = self.chunk_embeddings.shape[0]
            inputs = torch.cat([pref.expand(chunks, -1), self.chunk_embeddings], dim=1)
            flat = self.projection(self.mlp(inputs)).reshape(-1)[: self.total]
            if self.residual:
                flat = flat * self.output_scale
            out, offset = {}, 0
            for index, (name, shape) in enumerate(self.shapes.items()):
                size = math.prod(shape)
                out[name] = flat[offset : offset + size].view(shape) * self.tensor_gains[index].to(flat.dtype)
                offset += size
            return out
        embedding = self.mlp(pref)
        out = {name: self.projections[_key(name)](embedding).view(shape) for name, shape in self.shapes.items()}
        if self.residual:
            out = {name: value * self.output_scale for name, value in out.items()}
        return out


class HyperParetoModel(ParetoModel):
    """A :class:`ParetoModel` whose weights all come from a preference-conditioned hypernetwork."""

    # forward runs each distinct preference's rows through its own generated network: BatchNorm layers already
    # see one preference at a time.
    stacks_preferences_in_batchnorm = False

    def __init__(self, model: nn.Module, num_tasks: int, hyper: PreferenceHyperNetwork, config: dict[str, Any]
                 ) -> None:
        super().__init__(model, num_tasks, "hypernetwork", PreferenceState(num_tasks), [], config)
        self.hyper = hyper
        for param in self.model.parameters():
            param.requires_grad_(False)

    def forward(self, x: Any, pref: Any, *args: Any, **kwargs: Any) -> Any:
        first = _first_tensor(x)
        tensor = self._prepare(pref, first, self.allow_outside_simplex)
        if tensor.dim() == 1:
            return _generated_call(self.model, self.hyper(tensor), x, args, kwargs)
        if first is not None and first.shape[0] != tensor.shape[0]:
            raise ParetorchError(f"got {tensor.shape[0]} per-sample preferences for a batch of {first.shape[0]}")
        # One generated network per distinct preference; each runs on its own rows, outputs are re-assembled.
        unique, inverse = torch.unique(tensor, dim=0, return_inverse=True)
        pieces = []
        for index, row in enumerate(unique):
            rows = torch.nonzero(inverse == index).squeeze(1)
            part = map_tensors(x, lambda t, rows=rows: t[rows])
            pieces.append((rows, _generated_call(self.model, self.hyper(row), part, args, kwargs)))
        order = torch.cat([rows for rows, _ in pieces])
        restore = torch.empty_like(order)
        restore[order] = torch.arange(len(order), device=order.device)
        return _merge([out for _, out in pieces], restore)

    def at(self, pref: Any, allow_outside_simplex: bool | None = None) -> nn.Module:
        allow = self.allow_outside_simplex if allow_outside_simplex is None else allow_outside_simplex
        tensor = self._prepare(pref, None, allow)
        plain = copy.deepcopy(self.model)
        with torch.no_grad(), self.full_precision():
            for name, value in self.hyper(tensor).items():
                plain.get_parameter(name).copy_(value)
        for param in plain.parameters():
            param.requires_grad_(True)
        return plain

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.hyper.parameters())

    def base_parameters(self) -> list[nn.Parameter]:
        return []

    def parameter_report(self) -> ParameterReport:
        target = sum(p.numel() for p in self.model.parameters())
        generator = sum(p.numel() for p in self.hyper.parameters())
        # The target's own tensors are only a template; what trains is the hypernetwork.
        row = LayerParameters("hypernetwork", "MLP", target, generator)
        # The target's own parameters are frozen templates: all of them "shared" in the sense of not steered
        # would mislead, so none are listed; frozen and trainable counts say what trains.
        return ParameterReport("hypernetwork", [row], base_total=target, added_total=generator,
                               **self._training_counts())


def _generated_call(model: nn.Module, params: dict[str, Tensor], x: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
    # The model with the generated parameters; a dict input is keyword arguments, as in ParetoModel.forward.
    return call_model(lambda *a, **k: functional_call(model, params, a, k), x, args, kwargs)


def _merge(outputs: list[Any], restore: Tensor) -> Any:
    first = outputs[0]
    if isinstance(first, Tensor):
        return torch.cat(outputs)[restore]
    if isinstance(first, dict):
        return {key: _merge([o[key] for o in outputs], restore) for key in first}
    return type(first)(_merge([o[i] for o in outputs], restore) for i in range(len(first)))


# Without chunking the projections hold hidden × N parameters for a target of N: 2.7 million for PaMaL's LeNet,
# 1.1 billion for a ResNet-18 (the size LORPMAN's §4 gives for not running PHN there). "auto" chunks above this.
UNCHUNKED_LIMIT = 100_000_000


def auto_chunk_size(num_params: int, hidden: int) -> int | None:
    """The chunk size ``chunk_size="auto"`` picks for a target of ``num_params`` parameters: none (one projection
    per tensor) while the projections would hold at most :data:`UNCHUNKED_LIMIT` parameters, else ⌈N / hidden⌉.

    That chunk keeps the hypernetwork "comparable in size with the corresponding MTL model", as CPMTL does for
    its chunked SegNet and ResNet runs (§5.1, App. E): the shared projection has hidden × chunk ≈ N parameters and
    there are about ``hidden`` chunks.

    >>> auto_chunk_size(27_450, 100) is None  # PaMaL's MultiLeNet: 2.7 million parameters unchunked
    True
    >>> auto_chunk_size(11_200_000, 100)  # a ResNet-18
    112000
    """
    if hidden * num_params <= UNCHUNKED_LIMIT:
        return None
    return math.ceil(num_params / hidden)


def hypernetwork(model: nn.Module, num_tasks: int, hidden: int = 100, layers: int = 2,
                 chunk_size: int | Literal["auto"] | None = None, chunk_embedding: int = 64,
                 residual: bool = False, residual_init: float = 0.1, residual_step: float = 0.1) -> HyperParetoModel:
    """Wrap ``model`` so that a hypernetwork generates all its parameters from the preference.

    Defaults follow CPMTL's synthetic setting (a 2-layer MLP with 100 hidden units, no chunking) and PHN's
    MultiMNIST hypernetwork; ``chunk_size`` turns on CPMTL's chunking with trainable chunk embeddings, and
    ``"auto"`` chunks only a target too large for one projection per tensor (:func:`auto_chunk_size`).

    ``residual=True`` generates θ₀ + c·H(λ) around a trainable copy θ₀ of ``model``'s weights (its pretrained
    weights, if it has them), with c = ``residual_step`` and H(λ) starting at ``residual_init`` of each tensor's
    scale; the presets ``cpmtl`` and ``phn`` use it unless given ``residual=False``. Without it (the papers'
    form) the weights are all generated and ``model``'s only set their scale.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> pm = hypernetwork(net, num_tasks=2, hidden=8)
    >>> pm(torch.randn(4, 3), [0.5, 0.5]).shape
    torch.Size([4, 2])
    >>> big = torch.nn.Linear(1024, 1024)  # 1.05 million parameters: 105 million unchunked
    >>> hypernetwork(big, num_tasks=2, chunk_size="auto").config["chunk_size"]
    10496
    >>> steered = hypernetwork(net, num_tasks=2, hidden=8, residual=True).at([1.0, 0.0])
    >>> bool((steered[0].weight - net[0].weight).norm() < 0.2 * net[0].weight.norm())  # starts at net's weights
    True
    """
    if residual_step <= 0 or residual_init <= 0:
        raise ParetorchError(f"residual_step and residual_init must be positive, got {residual_step} and "
                             f"{residual_init}")
    if num_tasks < 2:
        raise ParetorchError(f"num_tasks must be an integer >= 2, got {num_tasks!r}")
    if chunk_size == "auto":
        chunk_size = auto_chunk_size(sum(param.numel() for param in model.parameters()), hidden)
    elif chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                     or chunk_size < 1):
        raise ParetorchError(f"chunk_size must be a positive integer, \"auto\" or None, got {chunk_size!r}")
    wrapped = copy.deepcopy(model)
    shapes = {name: param.shape for name, param in wrapped.named_parameters()}
    reference = next(iter(wrapped.parameters()), None)
    hyper = PreferenceHyperNetwork(shapes, num_tasks, hidden, layers, chunk_size, chunk_embedding, residual,
                                   residual_init, residual_step)
    if reference is not None:  # the generator works in the target's precision and on its device
        hyper.to(device=reference.device, dtype=reference.dtype)
    hyper.match_template(dict(wrapped.named_parameters()))
    config = {"method": "hypernetwork", "num_tasks": num_tasks, "hidden": hidden, "layers": layers,
              "chunk_size": chunk_size, "chunk_embedding": chunk_embedding, "residual": residual,
              "residual_step": residual_step}
    return HyperParetoModel(wrapped, num_tasks, hyper, config)
