"""Training and evaluation of steerable models."""

from paretorch.training.balancing import LossBalancer, balanced_shared_gradients
from paretorch.training.evaluation import Accuracy, Front, MeanLoss, TaskMetric, evaluate_front, split_batch
from paretorch.training.regularisers import multi_forward_penalty, orthogonality_penalty
from paretorch.training.stacked import StackedTrainer
from paretorch.training.trainer import TrainConfig, Trainer

__all__ = [
    "Accuracy",
    "Front",
    "LossBalancer",
    "MeanLoss",
    "StackedTrainer",
    "TaskMetric",
    "TrainConfig",
    "Trainer",
    "balanced_shared_gradients",
    "evaluate_front",
    "multi_forward_penalty",
    "orthogonality_penalty",
    "split_batch",
]
