"""The papers' multi-task networks, written here because torchvision does not import beside the CPU wheel.

Each forward returns a list with one output per task, the format paretorch's wrappers and trainer expect.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CensusMLP", "MultiLeNet"]


class MultiLeNet(nn.Module):
    """PaMaL's MultiMNIST network (App. C.1): a LeNet shared bottom and one two-layer head per task.

    Bottom: conv 1→10 k5, max-pool, ReLU, conv 10→20 k5, max-pool, ReLU, fc 320→50, ReLU (28×28 input).
    Heads: fc 50→50, ReLU, fc 50→``num_classes``.

    >>> import torch
    >>> [out.shape for out in MultiLeNet()(torch.zeros(2, 1, 28, 28))]
    [torch.Size([2, 10]), torch.Size([2, 10])]
    """

    def __init__(self, num_tasks: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(320, 50), nn.ReLU(),
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, num_classes)) for _ in range(num_tasks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.encoder(x)
        return [head(features) for head in self.heads]


class CensusMLP(nn.Module):
    """PaMaL's Census network: a one-layer MLP shared bottom (inputs→256, ReLU), one linear head per task.

    >>> import torch
    >>> [out.shape for out in CensusMLP(in_features=12)(torch.zeros(3, 12))]
    [torch.Size([3, 2]), torch.Size([3, 2])]
    """

    def __init__(self, in_features: int, num_tasks: int = 2, hidden: int = 256, num_classes: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, num_classes) for _ in range(num_tasks))

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.encoder(x)
        return [head(features) for head in self.heads]
