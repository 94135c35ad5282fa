"""One table of cases (layer type × parameterisation) through the same assertions, PEFT-style."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from paretorch import (
    ParetorchError,
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
from paretorch.parameterisations import ParetoLayer, lowrank_deltas
from paretorch.parameterisations import _ensemble as _ensemble_module
from paretorch.parameterisations import _lowrank as _lowrank_module

TASKS = 3


class LinearNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(8, 2) for _ in range(TASKS)])

    def forward(self, x):
        h = self.encoder(x)
        return [head(h) for head in self.heads]


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv1d(6, 6, 3, stride=2),
                                     nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(6, 1) for _ in range(TASKS)])

    def forward(self, x):
        h = self.encoder(x)
        return tuple(head(h) for head in self.heads)


class Conv2dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=4, padding_mode="reflect"), nn.ReLU(),
            nn.Conv2d(8, 4, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.heads = nn.ModuleDict({f"task{t}": nn.Linear(4, 2) for t in range(TASKS)})

    def forward(self, x):
        h = self.encoder(x)
        return {name: head(h) for name, head in self.heads.items()}


class SequenceNet(nn.Module):
    """Linear layers on (B, L, F) inputs: per-sample preferences broadcast over the sequence axis."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(5, 8)
        self.norm = nn.LayerNorm(8)
        self.heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(TASKS)])

    def forward(self, x):
        h = self.norm(self.embed(x)).mean(dim=1)
        return [head(h) for head in self.heads]


MODELS = {
    "linear": (LinearNet, (6,)),
    "conv1d": (Conv1dNet, (2, 9)),
    "conv2d": (Conv2dNet, (3, 6, 6)),
    "sequence": (SequenceNet, (4, 5)),
}
PARAMETERISATIONS = {
    "ensemble": lambda net: ensemble(net, TASKS),
    "palora": lambda net: lowrank(net, TASKS, rank=2, scale=4.0, scaling="palora"),
    "lorpman": lambda net: lowrank(net, TASKS, rank=1, scale=0.5, scaling="lorpman"),
    "palora-loralib": lambda net: lowrank(net, TASKS, rank=1, scale=2.0, conv_layout="loralib"),
}
CASES = [(m, p) for m in MODELS for p in PARAMETERISATIONS]


def outputs_list(outputs):
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


def assert_outputs_close(a, b, atol=1e-5):
    for left, right in zip(outputs_list(a), outputs_list(b), strict=True):
        torch.testing.assert_close(left, right, atol=atol, rtol=1e-4)


def build(model_name, parameterisation):
    torch.manual_seed(0)
    model_class, shape = MODELS[model_name]
    net = model_class()
    pm = PARAMETERISATIONS[parameterisation](net)
    # Low-rank up-projections start at zero; make the adapters non-trivial so the tests can see them.
    with torch.no_grad():
        for param in pm.adapter_parameters():
            param.add_(0.2 * torch.randn_like(param))
    return net, pm, torch.randn(5, *shape)


def random_prefs(count):
    return torch.distributions.Dirichlet(torch.ones(TASKS)).sample((count,))


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_one_hot_reproduces_member_or_base_plus_adapter(model_name, parameterisation):
    _, pm, x = build(model_name, parameterisation)
    for task in range(TASKS):
        one_hot = torch.nn.functional.one_hot(torch.tensor(task), TASKS).float()
        reference = copy.deepcopy(pm.model)
        # Reference built by hand: each wrapped layer replaced by task t's member / base + scaled delta.
        for name, layer in pm.pareto_layers().items():
            parent, _, child = name.rpartition(".")
            holder = reference.get_submodule(parent) if parent else reference
            if hasattr(layer, "members"):
                setattr(holder, child, copy.deepcopy(layer.members[task]))
            else:
                plain = copy.deepcopy(layer.base)
                with torch.no_grad():
                    plain.weight.add_(layer.scale * layer.task_deltas()[task])
                setattr(holder, child, plain)
        assert_outputs_close(pm(x, one_hot), reference(x))


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_per_sample_equals_loop_of_single_preferences(model_name, parameterisation):
    _, pm, x = build(model_name, parameterisation)
    prefs = random_prefs(len(x))
    batched = outputs_list(pm(x, prefs))
    for row in range(len(x)):
        single = outputs_list(pm(x[row : row + 1], prefs[row]))
        for task_out, single_out in zip(batched, single, strict=True):
            torch.testing.assert_close(task_out[row : row + 1], single_out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_multi_forward_equals_sequential(model_name, parameterisation):
    _, pm, x = build(model_name, parameterisation)
    prefs = random_prefs(4)
    together = split_outputs(pm.multi_forward(x, prefs), 4)
    for index, pref in enumerate(prefs):
        sequential = pm(x, pref)
        for joint, alone in zip(outputs_list(together), outputs_list(sequential), strict=True):
            torch.testing.assert_close(joint[index], alone, atol=1e-5, rtol=1e-4)


class GroupedFirstNet(nn.Module):
    """The first layer, which receives multi_forward's repeated input, a grouped, reflect-padded conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="reflect", bias=False)
        self.heads = nn.ModuleList([nn.Linear(6, 1) for _ in range(TASKS)])

    def forward(self, x):
        h = self.stem(x).mean(dim=(2, 3))
        return [head(h) for head in self.heads]


SHARED_CASES = [*CASES, *(("grouped-first", p) for p in PARAMETERISATIONS)]


@pytest.mark.parametrize(("model_name", "parameterisation"), SHARED_CASES)
def test_multi_forward_shared_first_layer_equals_per_sample_rows(model_name, parameterisation, monkeypatch):
    # With M = 6 > T + 1 preferences the first layer takes the shared-input path (base, members or deltas on
    # the B rows once, mixed per preference): outputs and gradients equal those of the same rows fed as a
    # per-sample batch, which no layer can recognise as repeated.
    if model_name == "grouped-first":
        torch.manual_seed(0)
        pm = PARAMETERISATIONS[parameterisation](GroupedFirstNet())
        with torch.no_grad():
            for param in pm.adapter_parameters():
                param.add_(0.2 * torch.randn_like(param))
        x = torch.randn(5, 4, 6, 6)
    else:
        _, pm, x = build(model_name, parameterisation)
    pm = pm.double()
    x = x.double()
    taken = []
    for module in (_ensemble_module, _lowrank_module):
        original = module.shared_input
        monkeypatch.setattr(module, "shared_input", lambda state, t, f=original: taken.append(f(state, t)) or taken[-1])
    prefs = random_prefs(6).double()
    joint = outputs_list(pm.multi_forward(x, prefs))
    assert any(source is not None for source in taken), "the shared-input path did not run"
    rows = outputs_list(pm(x.repeat(6, *([1] * (x.dim() - 1))), prefs.repeat_interleave(len(x), dim=0)))
    params = [p for p in pm.parameters() if p.requires_grad]
    joint_grads = torch.autograd.grad(sum((out.sin().sum() for out in joint), torch.zeros(())), params)
    row_grads = torch.autograd.grad(sum((out.sin().sum() for out in rows), torch.zeros(())), params)
    for left, right in zip(joint, rows, strict=True):
        torch.testing.assert_close(left, right, atol=1e-10, rtol=1e-10)
    for left, right in zip(joint_grads, row_grads, strict=True):
        torch.testing.assert_close(left, right, atol=1e-10, rtol=1e-10)


class InPlaceInputNet(nn.Module):
    """Edits its input in place before the first layer: the M blocks no longer repeat multi_forward's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3)
        self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(TASKS)])

    def forward(self, x):
        x[: len(x) // 2].mul_(3.0)
        h = self.stem(x).mean(dim=(2, 3))
        return [head(h) for head in self.heads]


@pytest.mark.parametrize("parameterisation", list(PARAMETERISATIONS))
def test_an_input_edited_in_place_is_not_taken_as_repeated(parameterisation):
    torch.manual_seed(0)
    pm = PARAMETERISATIONS[parameterisation](InPlaceInputNet()).double()
    with torch.no_grad():
        for param in pm.adapter_parameters():
            param.add_(0.2 * torch.randn_like(param))
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    prefs = random_prefs(6).double()
    joint = pm.multi_forward(x.clone(), prefs)
    rows = pm(x.repeat(6, 1, 1, 1), prefs.repeat_interleave(len(x), dim=0))
    for left, right in zip(joint, rows, strict=True):
        torch.testing.assert_close(left, right, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("model_name", ["linear", "conv1d", "conv2d"])
def test_conditioned_multi_forward_and_per_sample_equal_the_concatenated_input(model_name):
    # COSMOS's definition: λ as T extra input columns / constant channels of the first layer. The layer computes
    # it from the response to unit maps (and the base once for a multi-forward's equal blocks); compare with
    # the concatenation itself, padding included.
    torch.manual_seed(0)
    model_class, shape = MODELS[model_name]
    pm = conditioned(model_class(), TASKS).double()
    layer = next(iter(pm.pareto_layers().values()))
    x = torch.randn(5, *shape, dtype=torch.float64)
    prefs = random_prefs(6).double()
    rows = x.repeat(6, *([1] * (x.dim() - 1)))
    row_prefs = prefs.repeat_interleave(len(x), dim=0)

    def concatenated(inputs, preferences):
        base = layer.base
        if isinstance(base, nn.Linear):
            weight = torch.cat([base.weight, layer.pref_weight], dim=1)
            return torch.cat([inputs, preferences], dim=-1) @ weight.T + base.bias
        maps = preferences.reshape(*preferences.shape, *[1] * (inputs.dim() - 2)).expand(-1, -1, *inputs.shape[2:])
        weight = torch.cat([base.weight, layer.pref_weight], dim=1)
        conv = torch.nn.functional.conv1d if inputs.dim() == 3 else torch.nn.functional.conv2d
        return conv(torch.cat([inputs, maps], dim=1), weight, base.bias, base.stride, base.padding, base.dilation)

    expected = concatenated(rows, row_prefs)
    seen = []
    hook = layer.register_forward_hook(lambda _module, _args, out: seen.append(out))
    pm.multi_forward(x, prefs)
    pm(rows, row_prefs)
    hook.remove()
    torch.testing.assert_close(seen[0], expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(seen[1], expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_at_equals_forward_and_is_plain(model_name, parameterisation):
    net, pm, x = build(model_name, parameterisation)
    pref = random_prefs(1)[0]
    plain = pm.at(pref)
    assert not any(isinstance(module, ParetoLayer) for module in plain.modules())
    assert not any("paretorch" in type(module).__module__ for module in plain.modules())
    assert type(plain) is type(net)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in net.parameters())
    assert_outputs_close(pm(x, pref), plain(x))


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_save_and_load_round_trip(model_name, parameterisation, tmp_path):
    _, pm, x = build(model_name, parameterisation)
    pref = random_prefs(1)[0]
    torch.save(pm.state_dict(), tmp_path / "pm.pt")
    _, fresh, _ = build(model_name, parameterisation)
    with torch.no_grad():
        for param in fresh.parameters():
            param.zero_()
    fresh.load_state_dict(torch.load(tmp_path / "pm.pt"))
    assert_outputs_close(pm(x, pref), fresh(x, pref), atol=0)


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_export_safetensors_reproduces_forward(model_name, parameterisation, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    net, pm, x = build(model_name, parameterisation)
    pref = torch.tensor([0.2, 0.5, 0.3])
    path = pm.export(tmp_path / "model.safetensors", pref)
    target = copy.deepcopy(net)
    target.load_state_dict(load_file(path))
    assert_outputs_close(pm(x, pref), target(x))
    with safe_open(path, "pt") as handle:
        assert handle.metadata()["paretorch.preference"] == "[0.2, 0.5, 0.3]"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"], "no temporary file left behind"


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_gradients_reach_exactly_the_right_parameters(model_name, parameterisation):
    _, pm, x = build(model_name, parameterisation)
    if parameterisation != "ensemble":
        pm.freeze_base()
    loss = sum(out.sum() for out in outputs_list(pm(x, torch.tensor([0.5, 0.5, 0.0]))))
    loss.backward()
    adapters = {id(p) for p in pm.adapter_parameters()}
    for name, param in pm.named_parameters():
        if parameterisation != "ensemble" and id(param) not in adapters:
            assert param.grad is None, f"frozen base parameter {name} got a gradient"
        if ".members.2." in name:
            # λ_3 = 0: member 3 does not contribute, so its gradient is exactly zero.
            assert param.grad is None or torch.count_nonzero(param.grad) == 0, name
    for layer in pm.pareto_layers().values():
        if hasattr(layer, "up"):
            up_grad = layer.up.grad.view(layer.up.shape[0], -1)
            # Columns of U are ordered task-major: task t owns columns t·r … (t+1)·r − 1 (r·k₀ for loralib's conv).
            per_task = up_grad.view(up_grad.shape[0], TASKS, layer.inner)
            assert torch.count_nonzero(per_task[:, 2]) == 0, "the adapter of a zero-weight task gets no gradient"
            assert torch.count_nonzero(per_task[:, :2]) > 0


@pytest.mark.parametrize(("model_name", "parameterisation"), CASES)
def test_original_module_is_not_mutated(model_name, parameterisation):
    torch.manual_seed(0)
    model_class, shape = MODELS[model_name]
    net = model_class()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modules_before = [type(m) for m in net.modules()]
    pm = PARAMETERISATIONS[parameterisation](net)
    pm(torch.randn(2, *shape), torch.full((TASKS,), 1 / TASKS))
    assert [type(m) for m in net.modules()] == modules_before
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key])


def test_lowrank_starts_at_the_base_model():
    torch.manual_seed(0)
    net = Conv2dNet()
    pm = lowrank(net, TASKS, rank=2, scale=8.0)
    x = torch.randn(3, 3, 6, 6)
    assert_outputs_close(pm(x, random_prefs(3)), net(x), atol=0)


def test_parameter_counts_match_the_papers():
    m_in, n_out, rank = 20, 30, 3
    net = nn.Sequential(nn.Linear(m_in, n_out, bias=False))
    palora = lowrank(net, TASKS, rank=rank).parameter_report()
    # PaLoRA: mn + T·r(m + n) per layer.
    assert palora.base_total + palora.added_total == m_in * n_out + TASKS * rank * (m_in + n_out)
    # LORPMAN: dk + m(dr + rk), same shapes with d = out, k = in.
    lorpman = lowrank(net, TASKS, rank=rank, scaling="lorpman").parameter_report()
    assert lorpman.base_total + lorpman.added_total == n_out * m_in + TASKS * (n_out * rank + rank * m_in)
    # PaMaL: m·dk (T full copies).
    pamal = ensemble(net, TASKS).parameter_report()
    assert pamal.base_total + pamal.added_total == TASKS * n_out * m_in
    assert pamal.overhead_percent == pytest.approx(100.0 * (TASKS - 1))
    # Conv2d via LoRA reshaping: m = in·k·k.
    conv = nn.Sequential(nn.Conv2d(4, 6, 3, bias=False))
    report = lowrank(conv, TASKS, rank=rank).parameter_report()
    assert report.added_total == TASKS * rank * (4 * 9 + 6)
    assert "overhead" in str(report)


def test_loralib_conv_layout_is_hu_et_al_convlora():
    # loralib's ConvLoRA (Hu et al.'s code, which PaLoRA's public code copies): A (r·k, in·k), B (out·k, r·k),
    # delta = (B @ A).view(weight.shape), scaled by α / r.
    torch.manual_seed(0)
    rank, k, c_in, c_out = 2, 3, 4, 6
    conv = nn.Conv2d(c_in, c_out, k, padding=1)
    pm = lowrank(nn.Sequential(conv), TASKS, rank=rank, scale=3.0, conv_layout="loralib")
    layer = pm.model[0]
    assert layer.down.shape == (TASKS * rank * k, c_in * k) and layer.up.shape == (c_out * k, TASKS * rank * k)
    assert pm.parameter_report().added_total == TASKS * rank * k * (c_in * k + c_out * k)
    with torch.no_grad():
        layer.up.normal_()
    pref = torch.tensor([0.3, 0.2, 0.5])
    delta = sum(pref[t] * (layer.up[:, t * rank * k:(t + 1) * rank * k] @ layer.down[t * rank * k:(t + 1) * rank * k])
                .view(conv.weight.shape) for t in range(TASKS))
    x = torch.randn(2, c_in, 5, 5)
    expected = nn.functional.conv2d(x, conv.weight + 3.0 / rank * delta, conv.bias, padding=1)
    torch.testing.assert_close(pm(x, pref), expected)
    torch.testing.assert_close(pm(x, pref.expand(2, -1)), expected)  # per-sample path
    torch.testing.assert_close(pm.at(pref)(x), expected)  # merged export
    with pytest.raises(ParetorchError, match="conv_layout must be one of loralib, peft"):
        lowrank(nn.Sequential(nn.Conv2d(1, 2, 3)), TASKS, conv_layout="kernel")


def test_parameter_report_counts_unwrapped_layers_in_base():
    net = LinearNet()
    report = lowrank(net, TASKS, rank=1, exclude=["heads"]).parameter_report()
    assert report.base_total == sum(p.numel() for p in net.parameters())
    assert [row.name for row in report.layers] == ["encoder.0", "encoder.2"]


def test_default_targets_include_heads_and_exclude_works():
    net = LinearNet()
    assert lowrank(net, TASKS).layer_names == ["encoder.0", "encoder.2", "heads.0", "heads.1", "heads.2"]
    assert ensemble(net, TASKS, exclude=["heads"]).layer_names == ["encoder.0", "encoder.2"]
    assert lowrank(net, TASKS, targets=["encoder"]).layer_names == ["encoder.0", "encoder.2"]
    assert lowrank(net, TASKS, targets=r"heads\.\d").layer_names == ["heads.0", "heads.1", "heads.2"]


def test_clear_errors():
    net = LinearNet()
    net_with_prelu = nn.Sequential(nn.Linear(2, 2), nn.PReLU())
    with pytest.raises(ParetorchError, match="PReLU, which lowrank does not support"):
        lowrank(net_with_prelu, 2, targets=["1"])
    with pytest.raises(ParetorchError, match="matched no supported layer"):
        lowrank(net, TASKS, targets=["decoder"])
    pm = lowrank(net, TASKS)
    with pytest.raises(ParetorchError, match=r"shape \(2,\)"):
        pm(torch.randn(2, 6), [0.5, 0.5])
    with pytest.raises(ParetorchError, match="negative weights"):
        pm(torch.randn(2, 6), [1.5, -0.25, -0.25])
    with pytest.raises(ParetorchError, match="4 per-sample preferences for a batch of 2"):
        pm(torch.randn(2, 6), random_prefs(4))
    pm.allow_outside_simplex = True
    assert outputs_list(pm(torch.randn(2, 6), [1.5, -0.25, -0.25]))[0].shape == (2, 2)


def test_pseudo_preferences_extrapolate_linearly():
    _, pm, _ = build("linear", "palora")
    pm.allow_outside_simplex = True
    # For one layer's weights θ(λ) is affine in λ; check it on the merged first layer.
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    outside = 1.5 * a - 0.5 * b
    weight = lambda pref: pm.at(pref).encoder[0].weight  # noqa: E731
    torch.testing.assert_close(weight(outside), 1.5 * weight(a) - 0.5 * weight(b))


def test_freeze_base_then_unfreeze():
    pm = lowrank(LinearNet(), TASKS)
    pm.freeze_base()
    assert all(not p.requires_grad for p in pm.base_parameters())
    assert all(p.requires_grad for p in pm.adapter_parameters())
    pm.freeze_base(False)
    assert all(p.requires_grad for p in pm.parameters())


def test_shared_parameters_are_the_encoder():
    net = LinearNet()
    pm = lowrank(net, TASKS)
    shared = {id(p) for p in shared_parameters(pm, torch.randn(2, 6))}
    encoder_ids = {id(p) for p in pm.model.encoder.parameters()}
    head_ids = {id(p) for p in pm.model.heads.parameters()}
    assert shared == encoder_ids
    assert not shared & head_ids


def test_finding_the_shared_parameters_leaves_no_trace_in_training():
    # Gradient balancing finds them at its first step, which a resumed run takes elsewhere than the run it
    # continues: the probe must neither update BatchNorm's running statistics nor draw dropout's random numbers.
    net = LinearNet()
    net.encoder = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.ReLU(), nn.Linear(16, 8))
    pm = lowrank(net, TASKS).train()
    norm = pm.model.encoder[1]
    before = [t.clone() for t in (norm.running_mean, norm.running_var, norm.num_batches_tracked)]
    inputs = torch.randn(4, 6)
    torch.manual_seed(0)
    untouched = torch.rand(3)
    torch.manual_seed(0)
    shared = {id(p) for p in shared_parameters(pm, inputs)}
    assert torch.equal(torch.rand(3), untouched)
    assert all(torch.equal(a, b) for a, b in zip(before, (norm.running_mean, norm.running_var,
                                                           norm.num_batches_tracked), strict=True))
    assert pm.training and shared == {id(p) for p in pm.model.encoder.parameters()}


def test_lowrank_deltas_shapes_and_scale():
    net = Conv2dNet()
    pm = lowrank(net, TASKS, rank=2, scale=4.0)
    deltas = lowrank_deltas(pm)
    for name, delta in deltas.items():
        base = pm.model.get_submodule(name).base.weight
        assert delta.shape == (TASKS, *base.shape)


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(2)])

    def forward(self, x):
        h = self.encoder(x)
        return [head(h) for head in self.heads]


def test_batchnorm_members_policy_mixes_affine_and_shares_statistics():
    torch.manual_seed(0)
    pm = ensemble(BatchNormNet(), 2, batchnorm="members")
    norm_layer = pm.model.encoder[1]
    with torch.no_grad():
        norm_layer.weight.copy_(torch.tensor([[1.0] * 4, [3.0] * 4]))
    assert norm_layer.norm.running_mean is not None, "running statistics stay in the wrapped layer"
    pm.train()
    x = torch.randn(8, 2, 6, 6)
    pm(x, torch.tensor([0.5, 0.5]))
    assert not torch.equal(norm_layer.norm.running_mean, torch.zeros(4)), "statistics updated once per pass"
    pm.eval()
    merged = pm.at(torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(merged.encoder[1].weight, torch.full((4,), 2.5))
    assert_outputs_close(pm(x, torch.tensor([0.25, 0.75])), merged(x))


class _UserBatchNorm(nn.BatchNorm1d):
    """A BatchNorm class of the user's own (a subclass with its own forward)."""

    def forward(self, x):
        return super().forward(x) * 1.5


class BatchNorm1dNet(nn.Module):
    """A BatchNorm1d after a Linear (the MLP and transformer-head case), of torch's class and of a user's."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4), _UserBatchNorm(4))
        self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(2)])

    def forward(self, x):
        h = self.trunk(x)
        return [head(h) for head in self.heads]


class ReluFirstNet(BatchNormNet):
    """A ReLU between the first layer and the BatchNorm: COSMOS's constant preference channels give the first
    layer a shift per channel, which a BatchNorm right after it would remove within each preference's block."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten())


STACKED_BATCHNORM_CASES = {
    "ensemble-members": (lambda net: ensemble(net, 2, batchnorm="members"), BatchNormNet, (2, 6, 6)),
    "ensemble-shared": (lambda net: ensemble(net, 2), BatchNormNet, (2, 6, 6)),
    "lowrank": (lambda net: lowrank(net, 2, rank=1, scale=4.0), BatchNormNet, (2, 6, 6)),
    "lowrank-mlp": (lambda net: lowrank(net, 2, rank=2), BatchNorm1dNet, (3,)),
    "conditioned": (lambda net: conditioned(net, 2), ReluFirstNet, (2, 6, 6)),
    "film": (lambda net: film(net, 2), BatchNorm1dNet, (3,)),
    "plain": (lambda net: plain(net, 2), BatchNormNet, (2, 6, 6)),
    "hypernetwork": (lambda net: hypernetwork(net, 2, hidden=8), BatchNorm1dNet, (3,)),
    # Converted to SyncBatchNorm after wrapping, as Lightning's sync_batchnorm=True converts the whole module: the
    # converted layers are torch's classes again (on one process SyncBatchNorm normalises as BatchNorm does).
    "lowrank-sync-after": (lambda net: nn.SyncBatchNorm.convert_sync_batchnorm(lowrank(net, 2, rank=2)),
                           BatchNorm1dNet, (3,)),
    "ensemble-members-sync-after": (lambda net: nn.SyncBatchNorm.convert_sync_batchnorm(
        ensemble(net, 2, batchnorm="members")), BatchNormNet, (2, 6, 6)),
}


@pytest.mark.parametrize("case", list(STACKED_BATCHNORM_CASES))
def test_multi_forward_in_training_computes_what_separate_forwards_compute(case):
    # A multi-forward step stands for M forwards, one per preference: in training its outputs and the running
    # statistics it leaves must be theirs. Statistics pooled over the M blocks mixed the preferences' activations
    # (with PaMaL's independently initialised members a ResNet-18 stayed at chance) and matched neither the
    # separate forwards nor the model refit at one preference that evaluation and export use.
    build, net_class, shape = STACKED_BATCHNORM_CASES[case]
    torch.manual_seed(0)
    pm = build(net_class()).train()
    with torch.no_grad():  # away from the identity start, so that the preferences' blocks differ
        for param in pm.parameters():
            param.add_(0.3 * torch.randn_like(param))
    stacked, separate = copy.deepcopy(pm), copy.deepcopy(pm)
    x = torch.randn(8, *shape)
    prefs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
    with torch.no_grad():
        together = stacked.multi_forward(x, prefs)
        one_by_one = [separate(x, pref) for pref in prefs]
        pooled_blocks = [block.std() for block in together[0].split(8)]
    assert max(pooled_blocks) - min(pooled_blocks) > 1e-3 or case == "plain", "the blocks must differ to test this"
    for index in range(len(prefs)):
        for task in range(2):
            torch.testing.assert_close(together[task][8 * index:8 * (index + 1)], one_by_one[index][task])
    if case != "hypernetwork":  # it runs the distinct preferences in sorted order; its running averages follow it
        for (name, after_stacked), after_separate in zip(stacked.named_buffers(), separate.buffers(), strict=True):
            torch.testing.assert_close(after_stacked, after_separate, msg=name)
    stacked.eval()  # evaluation normalises with the running statistics, stacked or not
    with torch.no_grad():
        evaluated = stacked.multi_forward(x, prefs)
        for index, pref in enumerate(prefs):
            torch.testing.assert_close(evaluated[0][8 * index:8 * (index + 1)], stacked(x, pref)[0])


@pytest.mark.parametrize("case", ["ensemble-members", "lowrank", "lowrank-mlp", "film", "plain"])
def test_plain_models_keep_the_users_batchnorm_classes_and_state_dict_keys(case):
    build, net_class, _ = STACKED_BATCHNORM_CASES[case]
    net = net_class()
    pm = build(net)
    norms = [module for module in pm.model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(module).__name__.startswith("PerPreference") for module in norms)
    assert "PerPreference" not in repr(pm), "printed as the user's layers"
    plain_model = pm.at(torch.tensor([0.3, 0.7]))
    assert [type(module) for module in plain_model.modules()] == [type(module) for module in net.modules()]
    assert list(plain_model.state_dict()) == list(net.state_dict())
    assert not any("_paretorch_state" in vars(module) for module in plain_model.modules())
    restored = copy.deepcopy(pm)
    restored.load_state_dict(pm.state_dict())  # the swap adds no key: the state dict is the one saved before


def test_batchnorm_shared_policy_keeps_batchnorm_untouched():
    pm = ensemble(BatchNormNet(), 2)
    assert isinstance(pm.model.encoder[1], nn.BatchNorm2d)
    assert "encoder.1" not in pm.layer_names


def test_recalibration_fits_statistics_for_one_preference():
    torch.manual_seed(0)
    pm = lowrank(BatchNormNet(), 2, rank=1, scale=4.0)
    with torch.no_grad():
        for param in pm.adapter_parameters():
            param.normal_()
    batches = [torch.randn(16, 2, 6, 6) for _ in range(4)]
    pref = torch.tensor([0.0, 1.0])
    plain = recalibrate_batchnorm(pm.at(pref), batches)
    # Expected: the exact mean of the BatchNorm inputs over all calibration samples at this preference.
    conv = plain.encoder[0]
    features = torch.cat([conv(b) for b in batches])
    torch.testing.assert_close(plain.encoder[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert not plain.training or plain.training == pm.training
    # The ParetoModel's own statistics are untouched by recalibrating the plain copy.
    assert torch.equal(pm.model.encoder[1].running_mean, torch.zeros(4))
