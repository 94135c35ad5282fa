import copy

import pytest
import torch
from torch import nn

from paretorch import hypernetwork, split_outputs
from paretorch.models import MultiLeNet


@pytest.fixture(params=[None, 500], ids=["per-tensor projections", "chunked"])
def pm(request):
    torch.manual_seed(0)
    return hypernetwork(MultiLeNet(), 2, hidden=32, chunk_size=request.param)


def close(a, b):
    for left, right in zip(a, b, strict=True):
        torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-4)


def test_per_sample_equals_loop_and_multi_forward_equals_sequential(pm):
    x = torch.randn(6, 1, 28, 28)
    prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((3,))
    per_sample = prefs.repeat_interleave(2, dim=0)
    batched = pm(x, per_sample)
    for row in range(6):
        close([out[row : row + 1] for out in batched], pm(x[row : row + 1], per_sample[row]))
    together = split_outputs(pm.multi_forward(x, prefs), 3)
    for index, pref in enumerate(prefs):
        close([out[index] for out in together], pm(x, pref))


def test_at_is_the_plain_target_and_matches(pm):
    pref = torch.tensor([0.3, 0.7])
    plain = pm.at(pref)
    assert type(plain) is MultiLeNet
    x = torch.randn(4, 1, 28, 28)
    close(plain(x), pm(x, pref))


def test_only_the_hypernetwork_trains(pm):
    x = torch.randn(2, 1, 28, 28)
    sum(out.sum() for out in pm(x, torch.tensor([0.5, 0.5]))).backward()
    assert all(p.grad is None for p in pm.model.parameters())
    assert all(p.grad is not None for p in pm.hyper.parameters())


def test_preference_changes_the_generated_weights(pm):
    a, b = pm.at([1.0, 0.0]), pm.at([0.0, 1.0])
    assert not torch.equal(a.encoder[0].weight, b.encoder[0].weight)


def test_parameter_report_counts_the_generator():
    pm = hypernetwork(nn.Sequential(nn.Linear(4, 3)), 2, hidden=5, layers=1)
    report = pm.parameter_report()
    assert report.base_total == 15
    # MLP 2→5 (15) + projections 5→12 weight (60 + 12) and 5→3 bias (15 + 3).
    assert report.added_total == 15 + 72 + 18


def test_original_not_mutated():
    net = MultiLeNet()
    before = copy.deepcopy(net.state_dict())
    pm = hypernetwork(net, 2, hidden=8)
    pm(torch.randn(1, 1, 28, 28), [0.5, 0.5])
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("chunk_size", [None, 500], ids=["per-tensor projections", "chunked"])
def test_generated_tensors_start_at_the_scale_of_the_targets_own_initialisation(chunk_size):
    torch.manual_seed(0)
    net = MultiLeNet()
    pm = hypernetwork(net, num_tasks=2, chunk_size=chunk_size)
    generated = pm.hyper(torch.tensor([0.5, 0.5]))
    for name, template in net.named_parameters():
        rms = lambda t: float(t.detach().double().pow(2).mean().sqrt())  # noqa: E731
        assert rms(generated[name]) == pytest.approx(rms(template), rel=1e-4), name
    # The first convolution's default scale is several times the last layer's: one flat scale cannot fit both.
    assert rms(generated["encoder.0.weight"]) > 2 * rms(generated["encoder.7.weight"])


def test_a_chunked_hypernetwork_saved_without_tensor_gains_loads_with_gain_one():
    # Chunked hypernetworks saved before the per-tensor gains generated every tensor with gain 1.
    torch.manual_seed(0)
    saved = hypernetwork(MultiLeNet(), 2, hidden=16, chunk_size=500)
    state = {key: value for key, value in saved.state_dict().items() if not key.endswith("tensor_gains")}
    loaded = hypernetwork(MultiLeNet(), 2, hidden=16, chunk_size=500)
    loaded.load_state_dict(state)
    assert torch.equal(loaded.hyper.tensor_gains, torch.ones_like(loaded.hyper.tensor_gains))
    saved.hyper.tensor_gains.fill_(1.0)
    x = torch.randn(3, 1, 28, 28)
    close(loaded(x, [0.2, 0.8]), saved(x, [0.2, 0.8]))
