"""paretorch: train one PyTorch model that can be steered to any trade-off between tasks.

Wrap a multi-task model with :func:`ensemble` (PaMaL) or :func:`lowrank` (PaLoRA, LORPMAN); the maths lives in
:mod:`paretorch.preferences`, :mod:`paretorch.metrics`, :mod:`paretorch.problems`, :mod:`paretorch.solvers`.
"""

from paretorch import metrics, preferences, problems, solvers
from paretorch.errors import ParetorchError
from paretorch.parameterisations import (
    ParameterReport,
    ParetoModel,
    conditioned,
    ensemble,
    film,
    hypernetwork,
    lowrank,
    plain,
    recalibrate_batchnorm,
    shared_parameters,
    split_outputs,
)
from paretorch.training import Accuracy, Front, MeanLoss, TrainConfig, Trainer, evaluate_front

__all__ = [
    "Accuracy",
    "Front",
    "MeanLoss",
    "ParameterReport",
    "ParetoModel",
    "ParetorchError",
    "TrainConfig",
    "Trainer",
    "conditioned",
    "ensemble",
    "evaluate_front",
    "film",
    "hypernetwork",
    "lowrank",
    "metrics",
    "plain",
    "preferences",
    "problems",
    "recalibrate_batchnorm",
    "shared_parameters",
    "solvers",
    "split_outputs",
]
__version__ = "0.1.0"
