"""Channels-last image batches: the same outputs and gradients as the default layout, and the layout reaches the
convolutions (through every parameterisation, the shared first layer and the per-preference blocks)."""

import copy
import json

import pytest
import torch
from torch import nn

from paretorch import conditioned, ensemble, film, hypernetwork, lowrank
from paretorch.cli import main
from paretorch.parameterisations import _ensemble as _ensemble_module
from paretorch.parameterisations import _lowrank as _lowrank_module
from paretorch.parameterisations import to_channels_last
from paretorch.parameterisations._context import mix_blocks
from paretorch.runs import build_setup, load_run, load_splits, resolve_config

BUILDERS = {
    "ensemble": lambda net: ensemble(net, 2),
    "lowrank": lambda net: lowrank(net, 2, rank=2, scale=2.0),
    "lowrank-loralib": lambda net: lowrank(net, 2, rank=1, scale=2.0, conv_layout="loralib"),
    "hypernetwork": lambda net: hypernetwork(net, 2),
    "conditioned": lambda net: conditioned(net, 2),
    "film": lambda net: film(net, 2),
}


def image_net(in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 3),
    )


def layouts_seen(pm: nn.Module) -> list[bool]:
    """Whether each Conv2d of the user's model got a channels-last input, recorded by forward hooks."""
    seen: list[bool] = []
    for module in pm.model.modules():
        if type(module) is nn.Conv2d:
            # Channel stride 1: channels-last, and not merely ambiguous (one channel, contiguous either way).
            module.register_forward_hook(lambda _m, args, _out: seen.append(
                args[0].is_contiguous(memory_format=torch.channels_last) and args[0].stride(1) == 1))
    return seen


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("count", [2, 5])  # M = 2 takes the per-block paths, M = 5 the shared first layer too
def test_channels_last_equals_the_default_layout_and_reaches_the_convolutions(name, in_channels, count, monkeypatch):
    taken = []
    for module in (_ensemble_module, _lowrank_module):
        original = module.shared_input
        monkeypatch.setattr(module, "shared_input", lambda state, t, f=original: taken.append(f(state, t)) or taken[-1])
    torch.manual_seed(0)
    default = BUILDERS[name](image_net(in_channels)).double()
    laid_out = copy.deepcopy(default).use_channels_last()
    x = torch.randn(3, in_channels, 8, 8, dtype=torch.float64)
    prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((count,)).double()
    seen = layouts_seen(laid_out)
    expected, got = default.multi_forward(x, prefs), laid_out.multi_forward(x, prefs)
    assert seen and all(seen), seen
    if name in ("ensemble", "lowrank") and count == 5:  # the laid-out batch is still recognised as repeated
        assert any(source is not None for source in taken), "the shared-input path did not run"
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    for (param_name, a), b in zip(default.named_parameters(), laid_out.parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-11, msg=param_name)
    # Per-sample preferences in a plain forward.
    per_sample = torch.distributions.Dirichlet(torch.ones(2)).sample((3,)).double()
    torch.testing.assert_close(laid_out(x, per_sample), default(x, per_sample), rtol=1e-10, atol=1e-12)


def test_mix_blocks_keeps_the_channels_last_layout_and_values():
    torch.manual_seed(0)
    outputs = [to_channels_last(torch.randn(3, 4, 5, 6)) for _ in range(2)]
    coefficients = torch.rand(5, 2)
    mixed = mix_blocks(coefficients, outputs)
    expected = torch.tensordot(coefficients, torch.stack([o.contiguous() for o in outputs]), dims=1).flatten(0, 1)
    assert mixed.is_contiguous(memory_format=torch.channels_last) and not mixed.is_contiguous()
    torch.testing.assert_close(mixed, expected)


def test_to_channels_last_converts_image_batches_only():
    batch = {"image": torch.randn(2, 1, 4, 4), "mask": torch.ones(2, 1, 4, 4, dtype=torch.long),
             "tokens": torch.randn(2, 3)}
    converted = to_channels_last(batch)
    assert converted["image"].stride() == (16, 1, 4, 1)  # forced, though one channel leaves it ambiguous
    assert converted["mask"].stride() == batch["mask"].stride()
    assert converted["tokens"] is batch["tokens"]


def test_lowrank_convolution_with_channels_last_parameters():
    # pm.to(memory_format=...) lays the adapters' 4-D parameters out channels-last; their deltas still compute.
    torch.manual_seed(0)
    pm = lowrank(image_net(3), 2, rank=2).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    expected = pm(x, [0.3, 0.7])
    pm.to(memory_format=torch.channels_last)
    torch.testing.assert_close(pm(x, [0.3, 0.7]), expected)


def test_runs_choose_the_layout_from_the_setting(tmp_path):
    tiny = {"dataset": "multimnist", "train_size": 32, "val_size": 16, "test_size": 16, "epochs": 1}
    splits = load_splits(resolve_config({"method": "pamal", **tiny}))

    def chosen(**values: object) -> bool:
        config = resolve_config({"method": "pamal", **tiny, **values})
        return build_setup(config, splits, {}).pm.channels_last

    assert chosen() is True  # unset: on for a convolutional model on the CPU
    assert chosen(channels_last=False) is False
    adult = resolve_config({"method": "pamal", "dataset": "adult", "epochs": 1, "train_size": 32})
    assert build_setup(adult, load_splits(adult), {}).pm.channels_last is False  # an MLP: nothing to lay out
    # Through the command line: the setting is stored with the run and applies when it is loaded again.
    run = tmp_path / "run"
    assert main(["train", str(run), "method=pamal", *(f"{k}={v}" for k, v in tiny.items()), "channels_last=false",
                 "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["channels_last"] is False
    assert load_run(run).models.channels_last is False
