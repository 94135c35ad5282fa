"""Training and evaluation of steerable models."""

from paretorch.training.balancing import LossBalancer, balanced_and_plain_gradients, balanced_shared_gradients
from paretorch.training.evaluation import (
    Accuracy,
    Front,
    MeanLoss,
    TaskMetric,
    evaluate_front,
    recalibration_batches,
    split_batch,
)
from paretorch.training.gradients import independent_task_grams, task_gram, task_grams
from paretorch.training.loss import LossOutput, ParetoLoss
from paretorch.training.regularisers import (
    CosineAlignment,
    MultiForwardOrdering,
    Orthogonality,
    Regulariser,
    StepOutputs,
    multi_forward_penalty,
    orthogonality_penalty,
)
from paretorch.training.stacked import StackedTrainer
from paretorch.training.trainer import TrainConfig, Trainer

__all__ = [
    "Accuracy",
    "CosineAlignment",
    "Front",
    "LossBalancer",
    "LossOutput",
    "MeanLoss",
    "MultiForwardOrdering",
    "Orthogonality",
    "ParetoLoss",
    "Regulariser",
    "StackedTrainer",
    "StepOutputs",
    "TaskMetric",
    "TrainConfig",
    "Trainer",
    "balanced_and_plain_gradients",
    "balanced_shared_gradients",
    "evaluate_front",
    "independent_task_grams",
    "multi_forward_penalty",
    "orthogonality_penalty",
    "recalibration_batches",
    "split_batch",
    "task_gram",
    "task_grams",
]
