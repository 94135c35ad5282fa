"""Parameterisations θ(λ): how a preference becomes the weights of the user's network.

- :func:`ensemble` — PaMaL: T full copies of each targeted layer, θ(λ) = Σ λ_t θ_t.
- :func:`lowrank` — PaLoRA / LORPMAN: base weights plus one low-rank delta per task.
- :func:`hypernetwork` — CPMTL / PHN: an MLP generates every weight from the preference.
- :func:`conditioned`, :func:`film` — COSMOS: the preference as an extra input, or as feature-wise scale/shift.
- :func:`plain` — no Pareto layer (linear scalarisation, MGDA, single-task baselines).

Each deep-copies the user's model (the original is never mutated) and returns a :class:`ParetoModel`. Every
layer-replacing parameterisation is :func:`wrap` with a dispatch table from the user's layer types to
:class:`ParetoLayer` subclasses; a new one is a subclass and a table (see :class:`ParetoLayer`).

**Default targets.** Every Linear and Conv1d/2d/3d layer, task heads included, as PaMaL's and PaLoRA's
public code do (they walk all children). LORPMAN's paper adapts only the shared bottom: its preset leaves
out the heads that :func:`task_heads` finds (a ``ModuleList``/``ModuleDict`` called ``heads`` with one module
per task); elsewhere pass ``exclude=["heads"]`` (or whatever your heads are called) or explicit ``targets``.

**BatchNorm policy.** A step of training stands for one forward per preference, and BatchNorm layers are
normalised as those would be: when :meth:`ParetoModel.multi_forward` stacks the batch once per preference, each
BatchNorm layer normalises each preference's block with that block's statistics and updates its running
statistics once per block (the wrapped model's BatchNorm layers get a subclass that does so; ``pm.at(λ)`` and
exported models hold the plain ``torch.nn`` classes again, and the state-dict keys are the user's). The
hypernetworks already run each preference's rows separately. Running statistics are shared by all preferences:
during training they average over the preferences seen, which matches no single trade-off. For a model at one
trade-off, refit them with :func:`recalibrate_batchnorm` on a few training batches (``recalibrate_batchnorm(
pm.at(λ), loader)``), which then normalises as training did at λ. ``pm.export(path, λ, recalibrate=batches)``
does so before writing, and :func:`~paretorch.training.evaluate_front`'s ``recalibrate`` (which the Trainer and
the command line pass) at each evaluated preference. Affine parameters are shared for ``lowrank`` (they belong
to the base network) and, for ``ensemble``, shared by default or given T members with ``batchnorm="members"``
(PaMaL's choice). A preference fed as an input (``conditioned``, COSMOS) shifts the first layer's outputs by a
constant per channel, which a BatchNorm right after that layer removes within each preference's block: on such
a network use FiLM (``film``) instead. Convert to ``SyncBatchNorm`` before wrapping, not after (a conversion
afterwards puts back layers that pool the blocks).
"""

from paretorch.parameterisations._attention import ParetoAttention
from paretorch.parameterisations._conditioned import FiLMLayer, PreferenceEmbedding, PreferenceInput, conditioned, film
from paretorch.parameterisations._context import PreferenceState, per_sample
from paretorch.parameterisations._ensemble import EnsembleBatchNorm, EnsembleLayer, ensemble
from paretorch.parameterisations._hyper import HyperParetoModel, auto_chunk_size, hypernetwork
from paretorch.parameterisations._layer import LayerFactory, ParetoLayer
from paretorch.parameterisations._lowrank import (
    LowRankConv,
    LowRankLayer,
    LowRankLinear,
    Scaling,
    adapter_scale,
    lowrank,
    lowrank_deltas,
)
from paretorch.parameterisations._model import (
    LayerParameters,
    ParameterReport,
    ParetoModel,
    SharedParameters,
    call_model,
    map_tensors,
    move_to,
    plain,
    recalibrate_batchnorm,
    shared_parameters,
    to_channels_last,
    wrap,
)
from paretorch.parameterisations._pretrained import from_pretrained
from paretorch.parameterisations._select import (
    Targets,
    check_num_tasks,
    replace_module,
    select_layers,
    task_heads,
)

__all__ = [
    "EnsembleBatchNorm",
    "EnsembleLayer",
    "FiLMLayer",
    "HyperParetoModel",
    "LayerFactory",
    "LayerParameters",
    "LowRankConv",
    "LowRankLayer",
    "LowRankLinear",
    "ParameterReport",
    "ParetoAttention",
    "ParetoLayer",
    "ParetoModel",
    "PreferenceEmbedding",
    "PreferenceInput",
    "PreferenceState",
    "Scaling",
    "SharedParameters",
    "Targets",
    "adapter_scale",
    "auto_chunk_size",
    "call_model",
    "check_num_tasks",
    "conditioned",
    "ensemble",
    "film",
    "from_pretrained",
    "hypernetwork",
    "lowrank",
    "lowrank_deltas",
    "map_tensors",
    "move_to",
    "per_sample",
    "plain",
    "recalibrate_batchnorm",
    "replace_module",
    "select_layers",
    "shared_parameters",
    "split_outputs",
    "task_heads",
    "to_channels_last",
    "wrap",
]


def split_outputs(outputs: object, count: int) -> object:
    """Reshape each output of :meth:`ParetoModel.multi_forward` from ``(M·B, …)`` to ``(M, B, …)``."""
    return map_tensors(outputs, lambda t: t.view(count, t.shape[0] // count, *t.shape[1:]))
