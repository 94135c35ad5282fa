import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from paretorch import ParetorchError, ensemble, hypernetwork, lowrank, plain, recalibrate_batchnorm
from paretorch.methods import build_method
from paretorch.metrics import hypervolume
from paretorch.preferences import Dirichlet, Fixed
from paretorch.training import (
    Front,
    LossBalancer,
    MeanLoss,
    Orthogonality,
    TrainConfig,
    Trainer,
    balanced_and_plain_gradients,
    balanced_shared_gradients,
    evaluate_front,
    multi_forward_penalty,
    orthogonality_penalty,
)


# ----- regularisers --------------------------------------------------------------------------------------------------
def test_multi_forward_penalty_zero_when_ordered():
    prefs = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]])
    # More weight on a task, less loss on it: every ordering holds.
    losses = torch.tensor([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    for edges in ("full", "lexicographic"):
        assert multi_forward_penalty(prefs, losses, edges).item() == 0.0


def test_multi_forward_penalty_hand_value_when_violated():
    prefs = torch.tensor([[0.2, 0.8], [0.8, 0.2]])
    # Task 1: λ goes 0.2 → 0.8 but L1 rises 1.0 → 1.5: violation 0.5, log(mean(e^0.5)) = 0.5.
    # Task 2: λ goes 0.2 → 0.8 (pref 2 → pref 1) and L2 falls 0.9 → 0.3: no violation.
    losses = torch.tensor([[1.0, 0.3], [1.5, 0.9]])
    assert multi_forward_penalty(prefs, losses).item() == pytest.approx(0.5)


def test_multi_forward_penalty_full_versus_lexicographic():
    prefs = torch.tensor([[0.1, 0.9], [0.4, 0.6], [0.7, 0.3]])
    losses = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    # Task 1 edges, full: (0→1) viol 1, (0→2) viol 0, (1→2) viol 0 → log((e + 1 + 1) / 3).
    full = multi_forward_penalty(prefs, losses, "full").item()
    assert full == pytest.approx(math.log((math.e + 2) / 3))
    # Lexicographic keeps (0→1) and (1→2): log((e + 1) / 2).
    lexicographic = multi_forward_penalty(prefs, losses, "lexicographic").item()
    assert lexicographic == pytest.approx(math.log((math.e + 1) / 2))


def test_multi_forward_penalty_has_gradient_towards_the_order():
    prefs = torch.tensor([[0.2, 0.8], [0.8, 0.2]])
    losses = torch.tensor([[1.0, 0.3], [1.5, 0.9]], requires_grad=True)
    multi_forward_penalty(prefs, losses).backward()
    # Descending pushes L1 at the high-weight preference down and L1 at the low-weight one up.
    assert losses.grad[1, 0] > 0
    assert losses.grad[0, 0] < 0


def test_orthogonality_zero_for_orthogonal_and_hand_value_otherwise():
    orthogonal = {"a": torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])}
    assert orthogonality_penalty(orthogonal).item() == pytest.approx(0.0)
    # Two unit directions at 45°: off-diagonal cosines 1/√2, twice squared: 2 · 0.5 = 1.
    slanted = {"a": torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])}
    assert orthogonality_penalty(slanted).item() == pytest.approx(1.0)
    # The mean over layers.
    assert orthogonality_penalty(orthogonal | {"b": slanted["a"]}).item() == pytest.approx(0.5)


def test_orthogonality_uses_three_task_subsets_beyond_three_tasks():
    deltas = {"a": torch.randn(6, 4, 5)}
    value = orthogonality_penalty(deltas, generator=torch.Generator().manual_seed(0))
    # With 3 unit columns the off-diagonal sum of squares is at most 3·2 = 6.
    assert 0 < value.item() <= 6.0


# ----- balancing -----------------------------------------------------------------------------------------------------
class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 6)
        self.heads = nn.ModuleList([nn.Linear(6, 1) for _ in range(2)])

    def forward(self, x):
        h = torch.tanh(self.encoder(x))
        return [head(h).squeeze(-1) for head in self.heads]


def test_gradient_balancing_gives_unit_task_gradients():
    torch.manual_seed(0)
    pm = lowrank(TwoHeads(), 2)
    shared = list(pm.model.encoder.parameters())
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    prefs = torch.tensor([[1.0, 0.0]])
    outputs = pm.multi_forward(x, prefs)
    losses = torch.stack([F.mse_loss(outputs[t], 100 * y[:, t]) for t in range(2)])[None]
    grads = balanced_shared_gradients(losses, prefs, shared)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert norm.item() == pytest.approx(1.0, abs=1e-5)
    # Two tasks at (0.5, 0.5): the result is the mean of two unit vectors, so its norm is at most 1.
    prefs = torch.tensor([[0.5, 0.5]])
    outputs = pm.multi_forward(x, prefs)
    losses = torch.stack([F.mse_loss(outputs[t], y[:, t] * (1 + 99 * t)) for t in range(2)])[None]
    grads = balanced_shared_gradients(losses, prefs, shared)
    assert torch.sqrt(sum((g**2).sum() for g in grads)).item() <= 1.0 + 1e-6


def test_the_plain_sum_of_the_task_gradients_is_the_objectives_gradient_and_zero_preferences_are_skipped():
    # The balancing term takes the objective's gradient on the shared parameters from the task gradients it
    # computes anyway, weighted by ∂objective/∂L: it must equal the objective's own gradient, including the
    # terms of a task whose preference is 0 (no balanced term) but whose coefficient is not.
    torch.manual_seed(0)
    pm = lowrank(TwoHeads(), 2)
    shared = list(pm.model.encoder.parameters())
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    prefs = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    outputs = pm.multi_forward(x, prefs)
    losses = torch.stack([torch.stack([F.mse_loss(outputs[t].view(2, 8)[m], y[:, t]) for t in range(2)])
                          for m in range(2)])
    objective = (torch.tensor([[0.5, 0.25], [0.15, 0.35]]) * losses / torch.tensor([2.0, 3.0])).sum()
    coefficients = torch.autograd.grad(objective, losses, retain_graph=True)[0]
    balanced, plain = balanced_and_plain_gradients(losses, prefs, shared, coefficients)
    expected = torch.autograd.grad(objective, shared, retain_graph=True)
    for got, want in zip(plain, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert all(torch.equal(a, b) for a, b in zip(balanced, balanced_shared_gradients(losses, prefs, shared),
                                                 strict=True))
    # Without the (0, 1) coefficient's task gradient the plain sum differs: the case can fail.
    skipped = coefficients.clone()
    skipped[0, 1] = 0.0
    _, partial = balanced_and_plain_gradients(losses, prefs, shared, skipped)
    assert not all(torch.allclose(a, b) for a, b in zip(partial, expected, strict=True))


def test_loss_balancer_normalises_by_window_mean():
    balancer = LossBalancer(2, window=2)
    first = balancer(torch.tensor([[2.0, 10.0]]))
    assert torch.equal(first, torch.tensor([[2.0, 10.0]])), "unchanged until the window is full"
    second = balancer(torch.tensor([[4.0, 30.0]]))
    torch.testing.assert_close(second, torch.tensor([[4.0 / 3.0, 30.0 / 20.0]]))


# ----- the engine on a synthetic conflicting two-task problem ---------------------------------------------------------
class SharedRegressor(nn.Module):
    """One shared output has to predict two different linear targets: the tasks conflict."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, 8), nn.Linear(8, 1))

    def forward(self, x):
        h = self.encoder(x).squeeze(-1)
        return [h, h]


def conflicting_data(seed: int, samples: int, features: int = 8) -> TensorDataset:
    directions = torch.randn(2, features, generator=torch.Generator().manual_seed(123))
    x = torch.randn(samples, features, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, x @ directions.T)


def mse(output, target):
    return F.mse_loss(output, target)


METRICS = [lambda: MeanLoss(mse, "mse")] * 2
REF = [20.0, 20.0]


class SharedMLP(nn.Module):
    """The same conflict through a ReLU layer: a preference fed as input can change the map only by gating."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        h = self.encoder(x).squeeze(-1)
        return [h, h]


def train(method, epochs=20, run_dir=None, model=SharedRegressor, **overrides):
    torch.manual_seed(0)
    setup = build_method(method, model(), 2, epochs=epochs, lr=1e-2, **overrides)
    trainer = setup.trainer([mse, mse], run_dir=run_dir, metrics=METRICS,
                      objective=setup.objective)
    train_loader = DataLoader(conflicting_data(0, 512), batch_size=64, shuffle=True)
    return trainer, train_loader


@pytest.fixture(scope="module")
def validation():
    return DataLoader(conflicting_data(1, 256), batch_size=256)


@pytest.fixture(scope="module")
def best_single_ls_hypervolume(validation):
    best = 0.0
    for weights in ([0.1, 0.9], [0.5, 0.5], [0.9, 0.1]):
        trainer, loader = train("ls", weights=weights)
        trainer.fit(loader)
        front = evaluate_front(trainer.pm, validation, METRICS, grid=torch.tensor([weights]), ref=REF)
        best = max(best, front.hypervolume["value"])
    return best


@pytest.mark.parametrize(("method", "overrides"), [
    ("pamal", {}), ("palora", {"scale": 4.0}), ("lorpman", {"scale": 2.0}), ("cpmtl", {"m": 2}),
    ("cpmtl", {"m": 2, "solver": "moo"}), ("phn", {"m": 2}), ("phn", {"m": 2, "solver": "epo"}),
    ("cosmos", {"conditioning": "film"}), ("cosmos", {"model": SharedMLP}),
], ids=["pamal", "palora", "lorpman", "cpmtl-ls", "cpmtl-moo", "phn-ls", "phn-epo", "cosmos-film", "cosmos-input"])
def test_method_learns_a_valid_front(method, overrides, validation, best_single_ls_hypervolume):
    trainer, loader = train(method, **overrides)
    trainer.fit(loader)
    front = evaluate_front(trainer.pm, validation, METRICS, ref=REF)
    assert front.num_nondominated >= 9
    assert all(value <= -0.9 for value in front.spearman), front.spearman
    assert front.hypervolume["value"] > best_single_ls_hypervolume


def test_resume_equals_uninterrupted_run(tmp_path):
    trainer, loader = train("lorpman", epochs=4, run_dir=tmp_path / "full", scale=2.0)
    trainer.fit(loader)
    reference = {k: v.clone() for k, v in trainer.pm.state_dict().items()}

    first, loader = train("lorpman", epochs=4, run_dir=tmp_path / "killed", scale=2.0)
    first.config.epochs = 2  # the run "dies" after two epochs, with its checkpoint on disk
    first.fit(loader)
    second, loader = train("lorpman", epochs=4, run_dir=tmp_path / "killed", scale=2.0)
    second.fit(loader, resume=True)
    for key, value in second.pm.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=0, rtol=0)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_freeze_epoch_stops_base_updates():
    trainer, loader = train("lorpman", epochs=3, scale=2.0, freeze_epoch=1)
    trainer.config.epochs = 1
    trainer.fit(loader)
    base_after_one = [p.detach().clone() for p in trainer.pm.base_parameters()]
    adapters_after_one = [p.detach().clone() for p in trainer.pm.adapter_parameters()]
    trainer.config.epochs = 3
    trainer.fit(loader)
    for before, param in zip(base_after_one, trainer.pm.base_parameters(), strict=True):
        assert torch.equal(before, param), "the base network must not move after the freeze epoch"
    moved = [not torch.equal(b, p) for b, p in zip(adapters_after_one, trainer.pm.adapter_parameters(), strict=True)]
    assert any(moved), "the adapters keep training"


def test_non_finite_loss_stops_with_one_line_error_and_keeps_checkpoint(tmp_path):
    trainer, loader = train("pamal", epochs=2, run_dir=tmp_path)
    trainer.config.epochs = 1
    trainer.fit(loader)
    checkpoint = (tmp_path / "checkpoint.pt").read_bytes()

    def exploding(output, target):
        return F.mse_loss(output, target) * float("nan")

    trainer.loss.loss_fns = [exploding, mse]
    trainer.config.epochs = 2
    with pytest.raises(ParetorchError, match="non-finite loss at epoch 1 step") as info:
        trainer.fit(loader)
    assert "\n" not in str(info.value)
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    trainer, loader = train("pamal", epochs=1, run_dir=tmp_path)
    with pytest.raises(ParetorchError, match="is corrupt"):
        trainer.fit(loader, resume=True)


def test_front_is_saved_as_json_and_csv(tmp_path, validation):
    trainer, loader = train("palora", epochs=2, run_dir=tmp_path, scale=4.0)
    trainer.fit(loader, val_loader=validation)
    assert (tmp_path / "front_val_epoch2.json").exists()
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["val_hypervolume"] > 0
    front = Front.load(tmp_path / "front_val_epoch2.json")
    csv_lines = (tmp_path / "front_val_epoch2.csv").read_text().splitlines()
    assert csv_lines[0] == "pref_0,pref_1,task0_mse,task1_mse,nondominated"
    assert len(csv_lines) == 12
    assert front.values.shape == (11, 2)


def test_front_hypervolume_of_accuracies_uses_reference_zero():
    import numpy as np

    front = Front(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.9, 0.5], [0.6, 0.8]]),
                  ["a", "b"], [True, True])
    assert front.hypervolume["value"] == pytest.approx(hypervolume([[0.9, 0.5], [0.6, 0.8]], 0.0, True).value)
    assert front.hypervolume["ref"] == [0.0, 0.0]


def test_bad_configuration_errors():
    pm = ensemble(SharedRegressor(), 2)
    with pytest.raises(ParetorchError, match="one loss per task"):
        Trainer(pm, [mse], Dirichlet(2))
    with pytest.raises(ParetorchError, match="3-task preferences"):
        Trainer(pm, [mse, mse], Dirichlet(3))
    with pytest.raises(ParetorchError, match="unknown method 'pareto'"):
        build_method("pareto", SharedRegressor(), 2)
    with pytest.raises(ParetorchError, match="unknown optimizer"):
        Trainer(pm, [mse, mse], Fixed([0.5, 0.5]), TrainConfig(optimizer="lion"))  # type: ignore[arg-type]


def test_pareto_expansion_trains_only_adapters_around_an_ls_model(validation):
    from paretorch.methods import pareto_expansion

    trainer, loader = train("ls", epochs=10)
    trainer.fit(loader)
    ls_front = evaluate_front(trainer.pm, validation, METRICS, grid=torch.tensor([[0.5, 0.5]]), ref=REF)
    setup = pareto_expansion(trainer.pm, 2, epochs=10, lr=1e-2, scale=4.0)
    base_before = [p.detach().clone() for p in setup.pm.base_parameters()]
    expander = setup.trainer([mse, mse])
    expander.fit(loader)
    for before, after in zip(base_before, setup.pm.base_parameters(), strict=True):
        assert torch.equal(before, after)
    front = evaluate_front(setup.pm, validation, METRICS, ref=REF)
    assert front.hypervolume["value"] > ls_front.hypervolume["value"]
    assert front.num_nondominated >= 9


def test_evaluate_front_restores_training_mode_over_several_chunks(validation):
    pm = ensemble(SharedRegressor(), 2)
    pm.train()
    evaluate_front(pm, validation, METRICS, chunk=4, ref=REF)  # 11 preferences: three chunks
    assert pm.training


class _WideBatchNormNet(nn.Module):
    """A 256-wide hidden layer (1 kB per example) with BatchNorm, whose running statistics a probe must not move."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(8, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(256, 1) for _ in range(2))

    def forward(self, x):
        hidden = self.trunk(x)
        return [head(hidden).squeeze(-1) for head in self.heads]


def test_evaluation_stacks_only_as_many_preferences_as_the_activation_budget_allows(validation, monkeypatch):
    from paretorch.training import evaluation

    torch.manual_seed(0)
    pm = lowrank(_WideBatchNormNet(), 2, rank=2)
    stats = pm.model.trunk[1].running_mean.clone()
    passes = []
    forward = pm.multi_forward
    monkeypatch.setattr(pm, "multi_forward", lambda x, prefs: passes.append(len(prefs)) or forward(x, prefs))
    whole = evaluate_front(pm, validation, METRICS, ref=REF)  # 1 kB × 4 × 256 examples: 1 MB per preference
    assert passes[-1:] == [11]  # the probe's one preference, then the grid in one pass
    reference = evaluate_front(pm, validation, METRICS, ref=REF, chunk=1)
    # A budget of 3 MB holds three preferences of the batch: four passes of at most three, the same front.
    monkeypatch.setattr(evaluation, "EVAL_ACTIVATION_BYTES", 3 * 4 * 1024 * 256)
    passes.clear()
    limited = evaluate_front(pm, validation, METRICS, ref=REF)
    assert passes == [1, 3, 3, 3, 2]
    assert evaluation.preferences_per_pass(pm.eval(), next(iter(validation))[0]) == 3
    for front in (whole, limited):
        assert torch.allclose(torch.as_tensor(front.values), torch.as_tensor(reference.values), rtol=1e-5)
    # The probe ran in eval mode: BatchNorm's running statistics are where training left them.
    assert torch.equal(pm.model.trunk[1].running_mean, stats)
    # A budget below one preference still evaluates, one preference per pass.
    assert evaluation.preferences_per_pass(pm, next(iter(validation))[0], budget=1) == 1


def _running_statistics(pm):
    return {name: value.clone() for name, value in pm.state_dict().items() if "running" in name}


@pytest.mark.parametrize("wrap", [
    lambda net: ensemble(net, 2, batchnorm="members"),
    lambda net: lowrank(net, 2, rank=2),
    lambda net: hypernetwork(net, 2, hidden=8, residual=True),
], ids=["ensemble", "lowrank", "hypernetwork"])
def test_evaluation_refits_batchnorm_statistics_at_each_preference_as_an_export_would(validation, wrap):
    torch.manual_seed(0)
    pm = wrap(_WideBatchNormNet())
    trainer = Trainer(pm, [mse, mse], Dirichlet(2, 1.0), TrainConfig(epochs=1, lr=1e-2, seed=0), metrics=METRICS)
    trainer.fit(DataLoader(conflicting_data(2, 256), batch_size=64))
    own = _running_statistics(pm)
    batches = list(DataLoader(conflicting_data(3, 96), batch_size=32))
    refit = evaluate_front(pm, validation, METRICS, ref=REF, recalibrate=batches)
    stale = evaluate_front(pm, validation, METRICS, ref=REF)
    assert not torch.allclose(torch.as_tensor(refit.values), torch.as_tensor(stale.values), rtol=1e-3)
    # Evaluation leaves the model's own statistics, and its mode, as they were.
    assert all(torch.equal(value, own[name]) for name, value in _running_statistics(pm).items())
    assert pm.training
    # Each preference's row is what the plain model exported there and refit on the same batches scores.
    for pref, row in zip(refit.preferences, refit.values, strict=True):
        exported = recalibrate_batchnorm(pm.at(pref.tolist()), batches)
        alone = evaluate_front({tuple(pref): plain(exported, 2)}, validation, METRICS, ref=REF)
        assert torch.allclose(torch.as_tensor(row), torch.as_tensor(alone.values[0]), rtol=1e-4)
    # Through the Trainer: refit on the first 64 examples of the loader fit trained on, or not at all with 0.
    trainer.recalibration_examples = 64
    first = list(DataLoader(conflicting_data(2, 256), batch_size=64))[:1]
    expected = evaluate_front(pm, validation, METRICS, ref=REF, recalibrate=first)
    assert torch.equal(torch.as_tensor(trainer.evaluate(validation, ref=REF).values), torch.as_tensor(expected.values))
    trainer.recalibration_examples = 0
    assert torch.equal(torch.as_tensor(trainer.evaluate(validation, ref=REF).values), torch.as_tensor(stale.values))


def test_recalibration_leaves_models_without_batchnorm_and_training_unchanged(validation):
    pm = lowrank(SharedRegressor(), 2, rank=1)
    batches = list(DataLoader(conflicting_data(3, 64), batch_size=32))
    with_refit = evaluate_front(pm, validation, METRICS, ref=REF, recalibrate=batches)
    assert torch.equal(torch.as_tensor(with_refit.values), torch.as_tensor(evaluate_front(pm, validation, METRICS,
                                                                                          ref=REF).values))
    # Per-epoch validation with refitting changes no weight and no running statistic that training leaves.
    states = []
    for examples in (0, 128):
        torch.manual_seed(0)
        net = ensemble(_WideBatchNormNet(), 2, batchnorm="members")
        trainer = Trainer(net, [mse, mse], Dirichlet(2, 1.0), TrainConfig(epochs=2, lr=1e-2, seed=0),
                          metrics=METRICS, recalibration_examples=examples)
        trainer.fit(DataLoader(conflicting_data(2, 256), batch_size=64, shuffle=True), validation)
        states.append(net.state_dict())
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])
    with pytest.raises(ParetorchError, match="recalibration_examples must be >= 0"):
        Trainer(net, [mse, mse], Dirichlet(2, 1.0), recalibration_examples=-1)


class _DropoutFourTasks(nn.Module):
    """Dropout in the trunk and four heads: the global stream and LORPMAN's three-task subsets are both used."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3))
        self.heads = nn.ModuleList(nn.Linear(16, 1) for _ in range(4))

    def forward(self, x):
        hidden = self.trunk(x)
        return [head(hidden).squeeze(-1) for head in self.heads]


def _four_task_trainer(run_dir, epochs):
    with torch.random.fork_rng():  # initialisation draws from a fixed stream, leaving the caller's alone
        torch.manual_seed(0)
        setup = build_method("lorpman", _DropoutFourTasks(), 4, epochs=epochs, seed=3, rank=2)
    data = TensorDataset(torch.linspace(-1, 1, 96 * 6).reshape(96, 6).sin(), torch.randn(96, 4,
                         generator=torch.Generator().manual_seed(1)))
    # No generator on the loader: its order comes from the process-wide stream, which the Trainer scopes per epoch.
    loader = DataLoader(data, batch_size=16, shuffle=True)
    mse = F.mse_loss
    return setup.trainer([mse] * 4, run_dir=run_dir), loader


def test_resume_is_exact_with_dropout_subset_orthogonality_and_a_loader_without_generator(tmp_path):
    full, loader = _four_task_trainer(tmp_path / "full", epochs=4)
    assert any(isinstance(r, Orthogonality) for r in full.loss.regularisers)
    full.fit(loader)
    killed, loader = _four_task_trainer(tmp_path / "killed", epochs=4)
    killed.config.epochs = 1
    killed.fit(loader)
    torch.rand(5)  # the process's own stream moves on between the kill and the resume: it must not matter
    resumed, loader = _four_task_trainer(tmp_path / "killed", epochs=4)
    resumed.fit(loader, resume=True)
    for key, value in full.pm.state_dict().items():
        assert torch.equal(value, resumed.pm.state_dict()[key]), key
    # And the streams matter: another seed gives other weights.
    other, loader = _four_task_trainer(None, epochs=4)
    other.config.seed = 4
    other.fit(loader)
    assert not all(torch.equal(v, other.pm.state_dict()[k]) for k, v in full.pm.state_dict().items())


def test_fit_leaves_the_process_wide_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainer, loader = _four_task_trainer(None, epochs=2)
    trainer.fit(loader)
    assert torch.equal(torch.rand(3), expected)
