"""The benchmark networks written here: the papers' shapes and parameter counts, and the CelebA dropout."""

import torch
from torch import nn

from paretorch import build_method
from paretorch.models import VGG16MTL, ResNet18MTL


def _dropouts(model: nn.Module) -> list[float]:
    return sorted(module.p for module in model.modules() if isinstance(module, (nn.Dropout, nn.Dropout2d)))


def test_resnet_dropout_adds_kurins_layers_without_changing_the_state_dict():
    torch.manual_seed(0)
    plain, dropping = ResNet18MTL(3, 2), ResNet18MTL(3, 2, dropout=True)
    assert _dropouts(plain) == [] and _dropouts(dropping) == [0.25] + [0.5] * 9  # stem, 8 blocks, pooled features
    assert list(plain.state_dict()) == list(dropping.state_dict()), "a run's weights load with or without it"
    dropping.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), dropping.eval()
    assert all(torch.equal(a, b) for a, b in zip(plain(x), dropping(x), strict=True)), "no dropout in evaluation"
    dropping.train()
    assert not torch.equal(dropping(x)[0], dropping(x)[0]), "training draws a mask each pass"


def test_resnet_pooled_to_two_by_two_is_the_celeba_network_of_lorpmans_parameter_counts():
    # LORPMAN's Table 4 (CelebA, 40 tasks): PaMaL 453.3 M parameters (40 copies of the network), COSMOS 11.4 M.
    # Sener & Koltun's heads read the last 8 × 8 map pooled to 2 × 2 (2,048 features); pooled to 1 × 1 the copies
    # would hold 448.4 M.
    pooled = ResNet18MTL(40, 2, pool_size=2)
    count = sum(parameter.numel() for parameter in pooled.parameters())
    assert round(40 * count / 1e6, 1) == 453.3 and round(count / 1e6, 1) == 11.3
    assert round(40 * sum(parameter.numel() for parameter in ResNet18MTL(40, 2).parameters()) / 1e6, 1) == 448.4
    outputs = pooled(torch.zeros(2, 3, 64, 64))
    assert len(outputs) == 40 and outputs[0].shape == (2, 2)
    assert list(ResNet18MTL(3, 2).state_dict()) == list(ResNet18MTL(3, 2, pool_size=2).state_dict())


def test_vgg16_has_lorpmans_cifar100_shapes_and_low_rank_parameter_count():
    net = VGG16MTL(20, 5)
    convs = [module for module in net.encoder.modules() if isinstance(module, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert sum(isinstance(module, nn.MaxPool2d) for module in net.modules()) == 4
    outputs = net(torch.zeros(2, 3, 32, 32))
    assert len(outputs) == 20 and all(output.shape == (2, 5) for output in outputs)
    base = sum(parameter.numel() for parameter in net.parameters())
    # LORPMAN adapts the shared bottom (PEFT's layout: a rank-r A over in × 3 × 3 inputs and a B to the outputs per
    # task), not the 20 heads: base + T · r · Σ (9 · in + out).
    rank = 8
    expected = base + 20 * rank * sum(9 * conv.in_channels + conv.out_channels for conv in convs)
    setup = build_method("lorpman", VGG16MTL(20, 5), 20, rank=rank)
    assert sum(parameter.numel() for parameter in setup.pm.parameters()) == expected


def test_every_data_set_has_its_usual_network_which_auto_picks_and_records():
    from paretorch.options import DATASET_MODELS, DATASET_TASKS, MODELS
    from paretorch.runs import resolve_config

    assert set(DATASET_MODELS) == set(DATASET_TASKS) and set(DATASET_MODELS.values()) <= set(MODELS)
    expected = {"multimnist": "lenet", "multimnist3": "lenet", "cifar100": "vgg16", "celeba": "resnet18",
                "utkface": "resnet18", "nyuv2": "segnet", "cityscapes": "segnet", "adult": "mlp", "sarcos": "mlp"}
    for dataset, model in expected.items():
        assert resolve_config({"dataset": dataset, "data_source": "/tmp"})["model"] == model
