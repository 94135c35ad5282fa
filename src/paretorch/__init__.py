"""paretorch: train one PyTorch model that can be steered to any trade-off between tasks.

Wrap a multi-task model with :func:`ensemble` (PaMaL) or :func:`lowrank` (PaLoRA, LORPMAN); train it with a
:class:`Trainer` or, in your own loop, with :class:`ParetoLoss`. The four concepts each have one home:

- parameterisation θ(λ): :mod:`paretorch.parameterisations` (:class:`ParetoLayer`, :func:`wrap`);
- preference sampler: :mod:`paretorch.preferences`;
- objective: :mod:`paretorch.objectives` (:class:`~paretorch.objectives.Objective`);
- regularisers: :mod:`paretorch.training.regularisers` (:class:`~paretorch.training.Regulariser`);

and method presets combine them in :mod:`paretorch.methods` (:func:`register_method`). The maths lives in
:mod:`paretorch.preferences`, :mod:`paretorch.metrics`, :mod:`paretorch.problems`, :mod:`paretorch.solvers`.
"""

from paretorch import metrics, objectives, preferences, problems, solvers
from paretorch.errors import ParetorchError
from paretorch.methods import MethodPreset, Recipe, build_method, register_method
from paretorch.parameterisations import (
    ParameterReport,
    ParetoLayer,
    ParetoModel,
    conditioned,
    ensemble,
    film,
    from_pretrained,
    hypernetwork,
    lowrank,
    plain,
    recalibrate_batchnorm,
    shared_parameters,
    split_outputs,
    task_heads,
    wrap,
)
from paretorch.training import Accuracy, Front, MeanLoss, ParetoLoss, TrainConfig, Trainer, evaluate_front

__all__ = [
    "Accuracy",
    "Front",
    "MeanLoss",
    "MethodPreset",
    "ParameterReport",
    "ParetoLayer",
    "ParetoLoss",
    "ParetoModel",
    "ParetorchError",
    "Recipe",
    "TrainConfig",
    "Trainer",
    "build_method",
    "conditioned",
    "ensemble",
    "evaluate_front",
    "film",
    "from_pretrained",
    "hypernetwork",
    "lowrank",
    "metrics",
    "objectives",
    "plain",
    "preferences",
    "problems",
    "recalibrate_batchnorm",
    "register_method",
    "shared_parameters",
    "solvers",
    "split_outputs",
    "task_heads",
    "wrap",
]
__version__ = "0.1.0"
