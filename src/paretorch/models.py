"""The papers' multi-task networks, written here because torchvision does not import beside the CPU wheel.

Each forward returns a list with one output per task, the format paretorch's wrappers and trainer expect.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["VGG16MTL", "CensusMLP", "MultiLeNet", "ResNet18MTL", "SegNetMTL"]


# VGG-16's convolution stages (Simonyan & Zisserman 2014): (channels, 3×3 conv-BN-ReLU layers), a 2×2 pooling
# between stages; LORPMAN's CIFAR-100 network and SegNet's encoder.
_VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class _SharedBottom(nn.Module):
    """The papers' multi-task layout: ``encoder`` (the shared bottom) once, then every task's module of
    ``heads`` on its features; one output per task, in the heads' order."""

    encoder: nn.Module
    heads: nn.ModuleList

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.encoder(x)
        return [head(features) for head in self.heads]


def _per_task(num_classes: int | list[int], num_tasks: int) -> list[int]:
    return [num_classes] * num_tasks if isinstance(num_classes, int) else list(num_classes)


class MultiLeNet(_SharedBottom):
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


class CensusMLP(_SharedBottom):
    """PaMaL's Census network: a one-layer MLP shared bottom (inputs→256, ReLU), one linear head per task.

    >>> import torch
    >>> [out.shape for out in CensusMLP(in_features=12)(torch.zeros(3, 12))]
    [torch.Size([3, 2]), torch.Size([3, 2])]
    """

    def __init__(self, in_features: int, num_tasks: int = 2, hidden: int = 256, num_classes: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, num_classes) for _ in range(num_tasks))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float = 0.0,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        # On the block's input (both paths): the stem's dropout, kept out of the encoder's numbered layers so that
        # a state dict's keys do not depend on it.
        self.input_dropout = nn.Dropout2d(input_dropout) if input_dropout else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        # Between the two convolutions, as Kurin et al. (2022) place it (at the block's end it underfitted).
        self.dropout = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_dropout(x)
        out = self.dropout(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18MTL(_SharedBottom):
    """A ResNet-18 encoder (He et al. 2016; four stages of two basic blocks, 64-512 channels) with one linear
    head per task, as PaMaL and LORPMAN use for UTKFace and CelebA. ``small_input=True`` uses a 3×3 stem
    without max-pool for 32×32-size images.

    ``dropout=True`` adds the dropout of Kurin et al. (2022), which LORPMAN's CelebA runs adopt against
    overfitting (its App. D.7): channel dropout of 0.25 after the stem and of 0.5 between the two convolutions
    of each block, and dropout of 0.5 on the pooled features. It adds no parameter: a state dict loads either
    way.

    ``pool_size``: the last feature map is average-pooled to ``pool_size`` × ``pool_size`` before the heads. 1
    (global pooling, 512 features per head) as PaMaL's UTKFace network; 2 (2,048 features) as Sener & Koltun's
    CelebA network that LORPMAN and Kurin et al. train, whose 40 copies are LORPMAN's Table 4 count for PaMaL
    (453.3 M parameters; with 1, 448.4 M).

    >>> import torch
    >>> [o.shape for o in ResNet18MTL(num_tasks=3, num_classes=[1, 2, 5])(torch.zeros(2, 3, 32, 32))]
    [torch.Size([2, 1]), torch.Size([2, 2]), torch.Size([2, 5])]
    """

    def __init__(self, num_tasks: int = 2, num_classes: int | list[int] = 2, in_channels: int = 3,
                 small_input: bool = True, dropout: bool = False, pool_size: int = 1) -> None:
        super().__init__()
        classes = _per_task(num_classes, num_tasks)
        if small_input:
            stem: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
        else:
            stem = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                    nn.MaxPool2d(3, 2, 1)]
        stages: list[nn.Module] = []
        channels = 64
        block_dropout = 0.5 if dropout else 0.0
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            # The stem's dropout (0.25) acts on the first block's input.
            first = _BasicBlock(channels, width, stride, block_dropout, 0.25 if dropout and not stages else 0.0)
            stages += [first, _BasicBlock(width, width, 1, block_dropout)]
            channels = width
        pooled = [nn.AdaptiveAvgPool2d(pool_size), nn.Flatten(), *([nn.Dropout(0.5)] if dropout else [])]
        self.encoder = nn.Sequential(*stem, *stages, *pooled)
        self.heads = nn.ModuleList(nn.Linear(512 * pool_size**2, count) for count in classes)


def _conv_block(in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(count):
        layers += [nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, padding=1),
                   nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers)


class VGG16MTL(_SharedBottom):
    """VGG-16's thirteen 3×3 convolutions (Simonyan & Zisserman 2014), each followed by BatchNorm and ReLU, in
    stages of 2, 2, 3, 3 and 3 layers of 64, 128, 256, 512 and 512 channels with a 2×2 max-pool between stages,
    then global average pooling and one linear head per task: the base network of LORPMAN's CIFAR-100 runs
    (its App. D.6, after Liu et al. 2022's Auto-Lambda), about 14.7 M shared parameters. Auto-Lambda keeps one
    BatchNorm per task because each of its batches holds one task's images; a batch here mixes superclasses, so
    the BatchNorm is shared (LORPMAN's text names none).

    >>> import torch
    >>> net = VGG16MTL(num_tasks=20, num_classes=5)
    >>> [o.shape for o in net(torch.zeros(2, 3, 32, 32))][:2], sum(p.numel() for p in net.encoder.parameters())
    ([torch.Size([2, 5]), torch.Size([2, 5])], 14723136)
    """

    def __init__(self, num_tasks: int = 20, num_classes: int | list[int] = 5, in_channels: int = 3) -> None:
        super().__init__()
        classes = _per_task(num_classes, num_tasks)
        layers: list[nn.Module] = []
        channels = in_channels
        for index, (width, count) in enumerate(_VGG16_STAGES):
            if index:
                layers.append(nn.MaxPool2d(2))
            layers.append(_conv_block(channels, width, count))
            channels = width
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList(nn.Linear(channels, count) for count in classes)


class _SegNetTrunk(nn.Module):
    """SegNet's encoder and decoder (Badrinarayanan et al. 2017): VGG-16 stages of 3×3 conv-BN-ReLU layers,
    max-pooling whose indices the decoder's un-pooling reuses; the output has the input's resolution."""

    def __init__(self, in_channels: int, channels: list[int], convs: list[int]) -> None:
        super().__init__()
        inputs = [in_channels, *channels[:-1]]
        self.down = nn.ModuleList(_conv_block(i, o, n) for i, o, n in zip(inputs, channels, convs, strict=True))
        # Decoder stage k undoes encoder stage k: from channels[k] back to channels[k - 1] (channels[0] at the top).
        self.up = nn.ModuleList(_conv_block(channels[k], channels[max(k - 1, 0)], convs[k]) for k in range(len(convs)))
        self.pool, self.unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        indices, sizes = [], []
        for stage in self.down:
            x = stage(x)
            sizes.append(x.shape)
            x, index = self.pool(x)
            indices.append(index)
        for stage, index, size in zip(reversed(self.up), reversed(indices), reversed(sizes), strict=True):
            x = stage(self.unpool(x, index, output_size=size))
        return x


class SegNetMTL(_SharedBottom):
    """The dense multi-task network of the NYUv2/CityScapes literature (MTAN's "split" SegNet, Liu et al.
    2019): one shared SegNet encoder-decoder (``encoder``, whose output MGDA-UB differentiates) and, per task,
    a 3×3 conv, ReLU and a 1×1 conv to that task's channels (13 class logits, 1 depth, 3 normal components).

    ``width`` is the first stage's channels (64 in SegNet: 64-128-256-512-512); ``stages`` how many pooling
    stages (5 in SegNet; the input's height and width must divide by 2^stages).

    >>> import torch
    >>> net = SegNetMTL([13, 1, 3], width=4, stages=3)
    >>> [o.shape for o in net(torch.zeros(2, 3, 16, 24))]
    [torch.Size([2, 13, 16, 24]), torch.Size([2, 1, 16, 24]), torch.Size([2, 3, 16, 24])]
    """

    def __init__(self, outputs: list[int], in_channels: int = 3, width: int = 64, stages: int = 5) -> None:
        super().__init__()
        if not 1 <= stages <= 5:
            raise ValueError(f"SegNetMTL has 1 to 5 stages, got {stages}")
        # VGG-16's stages, scaled so that the first has ``width`` channels.
        channels = [width * stage_width // _VGG16_STAGES[0][0] for stage_width, _ in _VGG16_STAGES][:stages]
        convs = [count for _, count in _VGG16_STAGES][:stages]
        self.encoder = _SegNetTrunk(in_channels, channels, convs)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, count, 1))
            for count in outputs)
