import copy
import math

import pytest
import torch
from torch import nn

from paretorch import hypernetwork, split_outputs
from paretorch.errors import ParetorchError
from paretorch.methods import build_method
from paretorch.models import MultiLeNet
from paretorch.parameterisations import auto_chunk_size


@pytest.fixture(params=[(None, False), (500, False), (None, True), (500, True)],
                ids=["per-tensor projections", "chunked", "residual", "chunked residual"])
def pm(request):
    torch.manual_seed(0)
    chunk_size, residual = request.param
    return hypernetwork(MultiLeNet(), 2, hidden=32, chunk_size=chunk_size, residual=residual)


def rms(tensor: torch.Tensor) -> float:
    return float(tensor.detach().double().pow(2).mean().sqrt())


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
        assert rms(generated[name]) == pytest.approx(rms(template), rel=1e-4), name
    # The first convolution's default scale is several times the last layer's: one flat scale cannot fit both.
    assert rms(generated["encoder.0.weight"]) > 2 * rms(generated["encoder.7.weight"])


def test_a_chunked_hypernetwork_starts_with_distinct_chunks_and_gains_about_one():
    # Two causes of a chunked LeNet that did not learn MultiMNIST in 10 epochs (test HV 0.01): chunk codes of
    # scale 0.1 made every chunk's MLP output 87 % correlated with the others (the target network began as copies
    # of one chunk), and per-tensor gains of 10-40 multiplied every Adam step of the shared projection.
    # A third: the preference, two numbers beside a 64-dimensional code, barely moved the codes (its fronts came
    # out unordered).
    torch.manual_seed(0)
    hyper = hypernetwork(MultiLeNet(), 2, chunk_size=275).hyper

    def codes(preference: list[float]) -> torch.Tensor:
        chunks = len(hyper.chunk_embeddings)
        with torch.no_grad():
            return hyper.mlp(torch.cat([torch.tensor(preference).expand(chunks, -1), hyper.chunk_embeddings], 1))

    centre = codes([0.5, 0.5])
    correlation = torch.corrcoef(centre)
    assert float(correlation[~torch.eye(len(centre), dtype=torch.bool)].mean()) < 0.5
    # The two vertices' codes of one chunk lie about as far apart as two chunks' codes (0.16 times before).
    first, second = codes([1.0, 0.0]), codes([0.0, 1.0])
    between_chunks = torch.cdist(first, first).sum() / (len(first) * (len(first) - 1))
    assert float((first - second).norm(dim=1).mean() / between_chunks) > 0.5
    gains = hyper.tensor_gains.double()
    assert float(gains.log().mean().exp()) == pytest.approx(1.0, rel=1e-6)
    assert float(gains.max() / gains.min()) < 5


@pytest.mark.parametrize("chunk_size", [None, 500], ids=["per-tensor projections", "chunked"])
def test_a_residual_hypernetwork_starts_at_the_targets_own_weights_pretrained_ones_included(chunk_size):
    torch.manual_seed(0)
    net = MultiLeNet()
    with torch.no_grad():  # stands for pretrained weights: far from any default initialisation
        for param in net.parameters():
            param.add_(0.5 + torch.randn_like(param))
    pm = hypernetwork(net, 2, chunk_size=chunk_size, residual=True, residual_init=0.1)
    for pref in ([1.0, 0.0], [0.5, 0.5], [0.0, 1.0]):
        steered = pm.at(pref)
        for name, weight in net.named_parameters():
            moved = rms(steered.get_parameter(name) - weight) / rms(weight)
            # H(λ) starts at a tenth of each tensor's scale (exactly so at the centre), never at the weights' own.
            assert 0.0 < moved < 0.3, (name, pref, moved)
    centre = pm.hyper(torch.tensor([0.5, 0.5]))
    rmses = {name: rms(centre[name] - weight) / rms(weight) for name, weight in net.named_parameters()}
    if chunk_size is None:
        assert all(value == pytest.approx(0.1, rel=1e-4) for value in rmses.values()), rmses
    # The paper's form keeps the weights only as a template for scale: its networks start elsewhere.
    paper = hypernetwork(net, 2, chunk_size=chunk_size).at([0.5, 0.5])
    assert rms(paper.encoder[0].weight - net.encoder[0].weight) > 0.5 * rms(net.encoder[0].weight)


@pytest.mark.parametrize("chunk_size", [None, 500], ids=["per-tensor projections", "chunked"])
def test_the_residual_step_shrinks_how_far_one_adam_step_moves_the_generated_weights(chunk_size):
    # One Adam step moves every entry of a projection by about lr whatever its scale, and a projection's step moves
    # every generated weight at once (15-20 % of their norm per step at lr 1e-3 in the paper's form): the residual
    # form's c = residual_step scales the projections' share of that move by c.
    def moved(step: float) -> float:
        torch.manual_seed(0)
        pm = hypernetwork(MultiLeNet(), 2, hidden=32, chunk_size=chunk_size, residual=True, residual_step=step)
        hyper, pref = pm.hyper, torch.tensor([0.3, 0.7])
        before = {name: value.detach().clone() for name, value in hyper._generated_part(pref).items()}
        optimizer = torch.optim.Adam(pm.parameters(), lr=1e-3)
        torch.manual_seed(1)
        x, targets = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (2, 8))
        outputs = pm(x, pref)
        sum(nn.functional.cross_entropy(out, target) for out, target in zip(outputs, targets, strict=True)).backward()
        optimizer.step()
        with torch.no_grad():
            after = hyper._generated_part(pref)
        return sum(float((after[name] - value).norm()) for name, value in before.items())

    assert moved(0.1) < 0.25 * moved(1.0)  # 0.11 and 0.14 of it here


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


@pytest.mark.parametrize("method", ["cpmtl", "phn"])
def test_the_presets_chunk_a_target_too_large_for_one_projection_per_tensor(method):
    # A 1.05-million-parameter target would need 105 million projection parameters unchunked: the preset chunks
    # it so that the hypernetwork stays about the target's size, as CPMTL's chunked runs.
    big = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 2))
    target = sum(p.numel() for p in big.parameters())
    pm = build_method(method, big, 2).pm
    assert pm.hyper.chunk_size == math.ceil(target / 100) == auto_chunk_size(target, 100)
    generator = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    # The residual form's trainable copy of the target's weights (θ₀) holds as many again.
    assert sum(p.numel() for p in pm.hyper.base.parameters()) == target
    assert target < generator - target < 1.2 * target
    # A LeNet stays unchunked (PHN's MultiMNIST hypernetwork), and so does any target with chunk_size=0.
    assert build_method(method, MultiLeNet(), 2).pm.hyper.chunk_size is None
    assert build_method(method, MultiLeNet(), 2, chunk_size=0).pm.config["chunk_size"] is None
    assert build_method(method, MultiLeNet(), 2, chunk_size=500).pm.config["chunk_size"] == 500
    x = torch.randn(3, 1024)
    assert pm(x, [0.3, 0.7]).shape == (3, 2)


def test_hypernetwork_refuses_a_chunk_size_that_is_not_a_positive_integer_or_auto():
    for bad in (0, -5, "big", 2.5):
        with pytest.raises(ParetorchError, match="chunk_size must be a positive integer"):
            hypernetwork(MultiLeNet(), 2, chunk_size=bad)
    for step, init in ((0.0, 0.1), (0.1, -1.0)):
        with pytest.raises(ParetorchError, match="residual_step and residual_init must be positive"):
            hypernetwork(MultiLeNet(), 2, residual=True, residual_step=step, residual_init=init)
