"""The four concepts as components: a parameterisation, an objective and a preset added from outside the package,
ParetoLoss in a hand-written loop against the Trainer, and the structure the design asks for."""

import ast
import copy
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import paretorch
from paretorch import MethodPreset, ParetoLayer, ParetorchError, Recipe, build_method, register_method, wrap
from paretorch import methods as methods_module
from paretorch.cli import main
from paretorch.objectives import Objective
from paretorch.options import Option
from paretorch.parameterisations import per_sample
from paretorch.preferences import Dirichlet, simplex_grid

SRC = Path(paretorch.__file__).parent


# ----- a new parameterisation and a new objective, written here, registered as a preset ------------------------------
class TaskGain(ParetoLayer):
    """A Linear layer whose output is scaled by Σ_t λ_t g_t: one trainable scalar gain per task."""

    def __init__(self, base: nn.Linear, state, name):
        super().__init__(state, name)
        self.base = base
        self.gains = nn.Parameter(torch.ones(state.num_tasks))

    def forward(self, x):
        gain = self.preference().to(x.dtype) @ self.gains
        return per_sample(gain[..., None], x, -1, self.layer_name) * self.base(x)

    def merged(self, pref):
        plain = copy.deepcopy(self.base)
        with torch.no_grad():
            gain = pref.to(self.gains.dtype) @ self.gains
            plain.weight.mul_(gain)
            plain.bias.mul_(gain)
        return plain

    def adapter_parameters(self):
        return [self.gains]


class SoftWorstCase(Objective):
    """Smooth Tchebycheff: weights softmax(λ ⊙ L / τ), so the worst weighted loss gets most of the step."""

    per_preference = True

    def __init__(self, temperature):
        self.temperature = temperature
        self.calls = 0

    def step_weights(self, losses, grams, prefs, generator=None):
        return torch.softmax(prefs * losses / self.temperature, dim=1)

    def update(self, losses, grams, prefs):
        self.calls += 1

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


def build_gain(inputs):
    pm = wrap(inputs.model, inputs.num_tasks, {nn.Linear: TaskGain}, name="gain")
    sampler = Dirichlet(inputs.num_tasks, 1.0, inputs.options["m"])
    return Recipe(pm, sampler, SoftWorstCase(inputs.options["temperature"]))


GAIN_PRESET = MethodPreset(
    "gain-softmax", "per-task output gains with a smooth worst-case objective",
    {"temperature": Option("temperature", "float", 0.5, "softmax temperature", above=0.0),
     "m": Option("m", "int", 2, "preferences per step", minimum=1)},
    build_gain, traits=lambda options: ["continuous", "adapters"])


@pytest.fixture
def registry(monkeypatch):
    """A copy of the preset registry for the test, so that what it registers does not outlive it."""
    monkeypatch.setattr(methods_module, "_PRESETS", dict(methods_module._PRESETS))
    register_method(GAIN_PRESET)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)])

    def forward(self, x):
        z = torch.tanh(self.encoder(x))
        return [head(z).squeeze(-1) for head in self.heads]


def _batches(count=6, size=16):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(count * size, 4, generator=generator)
    y = torch.stack([x[:, 0] - x[:, 1], x[:, 2] + 0.5 * x[:, 3]], dim=1)
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(count)]


def test_a_parameterisation_and_objective_from_outside_train_through_a_registered_preset(registry):
    torch.manual_seed(0)
    setup = build_method("gain-softmax", TwoHeads(), 2, epochs=3, lr=5e-2, temperature=0.3)
    assert setup.pm.layer_names == ["encoder", "heads.0", "heads.1"]
    report = setup.pm.parameter_report()
    assert [row.added for row in report.layers] == [2, 2, 2] and report.added_total == 6
    assert {id(p) for p in setup.pm.adapter_parameters()} == {id(layer.gains) for layer in
                                                              setup.pm.pareto_layers().values()}
    trainer = setup.trainer([F.mse_loss, F.mse_loss])
    history = trainer.fit(_batches())
    assert len(history) == 3 and setup.objective.calls == 3 * 6, "the objective ran once per step"
    gains = torch.stack([layer.gains.detach() for layer in setup.pm.pareto_layers().values()])
    assert not torch.equal(gains, torch.ones_like(gains)), "the gains trained"
    x = torch.randn(5, 4)
    for pref in simplex_grid(2, 5):
        plain = setup.pm.at(pref)
        assert not any(isinstance(m, ParetoLayer) for m in plain.modules())
        for merged, steered in zip(plain(x), setup.pm(x, pref), strict=True):
            torch.testing.assert_close(merged, steered)
    per_sample_prefs = simplex_grid(2, 5)
    batched = setup.pm(x, per_sample_prefs)
    for row, pref in enumerate(per_sample_prefs):
        single = setup.pm(x[row:row + 1], pref)
        torch.testing.assert_close(batched[0][row:row + 1], single[0])
    with pytest.raises(ParetorchError, match=r"unknown option 'temprature' .* did you mean 'temperature'"):
        build_method("gain-softmax", TwoHeads(), 2, temprature=0.3)
    with pytest.raises(ParetorchError, match="option 'momentum' has no effect"):
        build_method("gain-softmax", TwoHeads(), 2, momentum=0.5)


def test_a_registered_preset_works_from_the_command_line(registry, tmp_path):
    tiny = ["dataset=multimnist", "train_size=64", "val_size=32", "test_size=32", "batch_size=32", "--quiet"]
    run = tmp_path / "gain"
    assert main(["train", str(run), "method=gain-softmax", "temperature=0.4", "epochs=1", *tiny]) == 0
    assert json.loads((run / "config.json").read_text())["method"] == "gain-softmax"
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    assert len(front["preferences"]) == 11


def test_registration_refuses_clashes(registry):
    with pytest.raises(ParetorchError, match="registered already"):
        register_method(GAIN_PRESET)
    register_method(GAIN_PRESET, replace=True)
    clash = MethodPreset("clash", "", {"lr": Option("lr", "float", 0.1, "")}, build_gain)
    with pytest.raises(ParetorchError, match="lr, which are training options"):
        register_method(clash)
    with pytest.raises(ParetorchError, match="did you mean 'gain-softmax'"):
        build_method("gain-softmx", TwoHeads(), 2)


def test_wrap_refuses_a_factory_that_returns_a_plain_module():
    with pytest.raises(ParetorchError, match="not a ParetoLayer"):
        wrap(TwoHeads(), 2, {nn.Linear: lambda layer, state, name: layer})


# ----- ParetoLoss in a hand-written loop equals the Trainer --------------------------------------------------------
@pytest.mark.parametrize(("method", "options"), [
    ("lorpman", {"rank": 2, "freeze_fraction": 0.5}),  # Dirichlet draws, orthogonality subsets, freeze epoch 1
    ("palora", {"m": 3}),  # the annealed schedule needs step and total_steps
    ("pamal", {"gradient_balancing": True, "loss_balancing_window": 2}),  # balancing term and balancer
    ("cpmtl", {"solver": "moo", "m": 2, "hidden": 8}),  # an objective that reads grams and draws references
    ("cosmos", {}),
])
def test_paretoloss_in_a_hand_written_loop_gives_the_trainers_weights(method, options):
    epochs, batches = 2, _batches()
    torch.manual_seed(0)
    by_trainer = build_method(method, TwoHeads(), 2, epochs=epochs, seed=3, lr=1e-2, **options)
    torch.manual_seed(0)
    by_hand = build_method(method, TwoHeads(), 2, epochs=epochs, seed=3, lr=1e-2, **options)
    by_trainer.trainer([F.mse_loss, F.mse_loss]).fit(batches)

    pm = by_hand.pm
    loss = by_hand.loss([F.mse_loss, F.mse_loss], total_steps=epochs * len(batches))
    optimizer = torch.optim.Adam(by_hand.parameter_groups())  # the method's learning rates (PaLoRA: lr × T)
    for epoch in range(epochs):
        loss.start_epoch(epoch)  # the loss's random streams, derived from (seed, epoch)
        # LORPMAN's freeze epoch, as the README's loop: True once, at the epoch that froze the base network.
        froze = by_hand.freeze_if_due(epoch)
        assert froze == (epoch == by_hand.config.freeze_epoch)
        for batch in batches:
            out = loss(batch)  # the loss counts its steps itself
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            assert set(out.logs()) >= {"loss", "regulariser"}
    trained = by_trainer.pm.state_dict()
    for (name, expected), actual in zip(trained.items(), pm.state_dict().values(), strict=True):
        assert torch.equal(expected, actual), name


def test_paretoloss_says_when_an_annealed_sampler_has_no_total():
    setup = build_method("palora", TwoHeads(), 2)
    with pytest.raises(ParetorchError, match="give total_steps"):
        setup.loss([F.mse_loss, F.mse_loss])(_batches()[0])


def test_gradient_balancing_term_has_value_zero_and_the_balanced_gradient():
    torch.manual_seed(0)
    setup = build_method("pamal", TwoHeads(), 2, gradient_balancing=True, multi_forward_coef=0.0)
    plain_setup = copy.deepcopy(setup)
    plain_setup.config.gradient_balancing = False
    balanced, unbalanced = setup.loss([F.mse_loss] * 2), plain_setup.loss([F.mse_loss] * 2)
    batch = _batches()[0]
    out, reference = balanced(batch), unbalanced(batch)
    torch.testing.assert_close(out.loss, reference.loss)  # the extra term's value is exactly zero
    out.loss.backward()
    shared = [p for p in setup.pm.parameters() if p.requires_grad and p.grad is not None]
    # The gradient on the shared parameters is Σ_j Σ_t λ_jt g_jt / ‖g_jt‖: at most Σ_j 1 = M in norm.
    encoder = [setup.pm.model.encoder.members[t] for t in range(2)]
    norm = torch.sqrt(sum((p.grad ** 2).sum() for member in encoder for p in member.parameters()))
    assert 0 < float(norm) <= out.prefs.shape[0] + 1e-5
    assert shared


class BatchNormHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)])

    def forward(self, x):
        z = self.encoder(x)
        return [head(z).squeeze(-1) for head in self.heads]


def _step_counting_passes(pm, loss, batch):
    """One loss step, and the rows of every forward pass through the model's encoder."""
    passes = []
    hook = pm.model.encoder.register_forward_hook(lambda _module, args, _out: passes.append(args[0].shape[0]))
    try:
        return loss(batch), passes
    finally:
        hook.remove()


@pytest.mark.parametrize("method", ["palora", "lorpman", "pamal"])
def test_gradient_balancing_runs_each_preference_apart_and_gives_the_stacked_passes_gradients(method):
    # With balancing, each preference of a step runs its own forward pass, so that each of the M·T gradients
    # it takes runs through B rows, not M·B. The step's gradients and BatchNorm statistics are those of one
    # stacked pass: the balanced sum (computed here from a stacked pass) on the shared parameters, the plain
    # loss's gradient on the others.
    torch.manual_seed(0)
    # No regularisers: their gradient is neither the balanced sum nor the plain loss's (and is unchanged).
    quiet = {"multi_forward_coef": 0.0} | ({"orthogonality_coef": 0.0} if method == "lorpman" else {})
    setup = build_method(method, BatchNormHeads(), 2, epochs=1, gradient_balancing=True, **quiet)
    stacked = copy.deepcopy(setup)
    stacked.config.gradient_balancing = False
    balanced_loss = setup.loss([F.mse_loss] * 2, total_steps=10)
    plain_loss = stacked.loss([F.mse_loss] * 2, total_steps=10)
    x, y = _batches()[0]
    out, passes = _step_counting_passes(setup.pm, balanced_loss, (x, y))
    prefs = out.prefs
    assert len(prefs) > 1 and passes[-len(prefs):] == [len(x)] * len(prefs), passes
    out.loss.backward()
    reference = plain_loss((x, y))
    torch.testing.assert_close(out.loss, reference.loss)
    torch.testing.assert_close(out.prefs, reference.prefs)
    means = [name for name, _ in setup.pm.named_buffers() if name.endswith("running_mean")]
    assert means
    for name in means:
        torch.testing.assert_close(setup.pm.get_buffer(name), stacked.pm.get_buffer(name), msg=name)
    shared_names = {name for name, p in setup.pm.named_parameters()
                    if any(p is q for q in paretorch.parameterisations.shared_parameters(setup.pm, x))}
    assert shared_names
    losses = torch.stack([torch.stack([F.mse_loss(o, t) for o, t in zip(row, y.T, strict=True)])
                          for row in zip(*[out.view(len(prefs), -1) for out in
                                           stacked.pm.multi_forward(x, prefs)], strict=True)])
    named = dict(stacked.pm.named_parameters())
    shared = [named[name] for name in sorted(shared_names)]
    expected = dict(zip(sorted(shared_names), paretorch.training.balanced_shared_gradients(losses, prefs, shared),
                        strict=True))
    reference.loss.backward()
    for name, parameter in setup.pm.named_parameters():
        if parameter.grad is None:
            continue
        target = expected[name] if name in shared_names else named[name].grad
        torch.testing.assert_close(parameter.grad, target, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(("method", "solver"), [("palora", "epo"), ("lorpman", "moo"), ("cpmtl", "moo")])
def test_gradient_objectives_take_each_preferences_gram_matrix_from_its_own_pass(method, solver):
    # EPO and CPMTL's preference-based MOO read one Gram matrix of task gradients per preference: each
    # preference runs its own pass, and each Gram matrix is that of the gradients at that preference alone.
    torch.manual_seed(0)
    setup = build_method(method, BatchNormHeads(), 2, epochs=1, solver=solver, multi_forward_coef=0.0)
    separate = copy.deepcopy(setup.pm)
    loss = setup.loss([F.mse_loss] * 2, total_steps=10)
    seen = []
    step_weights = loss.objective.step_weights
    loss.objective.step_weights = lambda observed, grams, prefs, generator: (
        seen.append(grams) or step_weights(observed, grams, prefs, generator))
    x, y = _batches()[0]
    out, passes = _step_counting_passes(setup.pm, loss, (x, y))
    prefs = out.prefs
    assert len(prefs) > 1 and passes == [len(x)] * len(prefs), passes
    params = [p for p in separate.parameters() if p.requires_grad]
    for grams, pref in zip(seen[0], prefs, strict=True):
        outputs = separate(x, pref)
        grads = [torch.autograd.grad(F.mse_loss(outputs[t], y[:, t]), params, retain_graph=True, allow_unused=True)
                 for t in range(2)]  # a task head's parameters do not reach the other task's loss
        rows = [torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(task, params,
                                                                                                 strict=True)])
                for task in grads]
        jacobian = torch.stack(rows).double()
        torch.testing.assert_close(grams, jacobian @ jacobian.T, rtol=1e-4, atol=1e-8)


# ----- structure ----------------------------------------------------------------------------------------------------
def _imports(path: Path) -> tuple[set[str], list[str]]:
    tree = ast.parse(path.read_text())
    top, nested = set(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            top.update(names)
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        nested += [n.module or "" for n in ast.walk(function) if isinstance(n, ast.ImportFrom)]
    return top, nested


def test_pareto_model_knows_only_the_layer_base():
    path = SRC / "parameterisations" / "_model.py"
    imported, _ = _imports(path)
    concrete = {"_lowrank", "_ensemble", "_conditioned", "_hyper"}
    assert not {name for name in imported if name.rsplit(".", 1)[-1] in concrete}, imported
    names = {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
    assert not {name for name in names if re.search(r"LowRank|Ensemble|FiLM|PreferenceInput|Hyper", name)}


def test_no_function_level_imports_inside_the_parameterisations():
    # A function-level import of a sibling module is how the old circular import was hidden.
    for path in (SRC / "parameterisations").glob("*.py"):
        _, nested = _imports(path)
        assert not [name for name in nested if name.startswith("paretorch")], (path.name, nested)


def test_the_package_never_seeds_the_process_wide_generator():
    # Seeded work runs in scoped_global_seed (fork_rng, restored afterwards); nothing else may seed the process.
    offenders = []
    for path in SRC.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"torch\.(manual_seed|seed)\(|torch\.random\.manual_seed\(|np\.random\.seed\(", line):
                offenders.append(f"{path.name}:{number}")
    assert not offenders


def test_no_method_name_is_hard_coded_outside_the_presets():
    names = "|".join(map(re.escape, methods_module.method_names()))
    pattern = re.compile(r"""(==|!=|in \(|\bin \[)\s*["'](""" + names + r""")["']""")
    for path in SRC.rglob("*.py"):
        if path.name == "methods.py":
            continue
        # Only comparisons of a method (a scaling="palora" or a data variant="pamal" is not a method name).
        lines = [line for line in path.read_text().splitlines() if "method" in line and pattern.search(line)]
        assert not lines, (path.name, lines)


# ----- presets pass every option on, or refuse it -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["cpmtl", "phn", "ls", "stl", "mgda", "pmtl"])
def test_presets_without_layer_selection_refuse_targets(method):
    with pytest.raises(ParetorchError, match="option 'targets' belongs to method"):
        build_method(method, TwoHeads(), 2, targets=["encoder"])


def test_objective_parameters_reach_a_continuous_preset_with_a_solver():
    default = build_method("pamal", TwoHeads(), 2, solver="moo").loss([F.mse_loss] * 2)
    chosen = build_method("pamal", TwoHeads(), 2, solver="moo", objective_parameters="shared").loss([F.mse_loss] * 2)
    assert (default.gradients, chosen.gradients) == ("all", "shared")
    assert build_method("pamal", TwoHeads(), 2).loss([F.mse_loss] * 2).gradients is None, "λᵀL reads no gradients"


def test_preference_moo_weights_are_pure_and_draw_from_the_callers_generator():
    from paretorch.objectives import PreferenceMOO

    objective = PreferenceMOO()
    losses, grams = torch.tensor([[1.0, 2.0]]), torch.eye(2, dtype=torch.float64)[None]
    prefs = torch.tensor([[0.5, 0.5]])
    first = objective.step_weights(losses, grams, prefs)
    torch.testing.assert_close(objective.step_weights(losses, grams, prefs), first)  # no hidden stream advances
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    objective.step_weights(losses, grams, prefs, generator)
    assert not torch.equal(generator.get_state(), state), "the references come from the caller's generator"


# ----- tasks by name --------------------------------------------------------------------------------------------------
class NamedHeads(nn.Module):
    """Returns its tasks in the order (b, a); both are 3-class problems, so swapped labels would not crash."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 16)
        self.heads = nn.ModuleDict({"b": nn.Linear(16, 3), "a": nn.Linear(16, 3)})

    def forward(self, x):
        z = torch.relu(self.encoder(x))
        return {"b": self.heads["b"](z), "a": self.heads["a"](z)}


def _named_batches():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=generator)
    labels = {"a": (x[:, 0] > 0).long() + (x[:, 0] > 1).long(), "b": (x[:, 1] > 0).long() * 2}
    return [(x[i:i + 64], {"a": labels["a"][i:i + 64], "b": labels["b"][i:i + 64]}) for i in range(0, 256, 64)]


@pytest.mark.parametrize("losses", ["dict", "list"])
def test_dict_outputs_and_targets_are_matched_by_task_name(losses):
    from paretorch import Accuracy, evaluate_front

    torch.manual_seed(0)
    setup = build_method("pamal", NamedHeads(), 2, epochs=15, lr=2e-2)
    task_losses = {"a": F.cross_entropy, "b": F.cross_entropy} if losses == "dict" else [F.cross_entropy] * 2
    setup.trainer(task_losses).fit(_named_batches())
    # Each head learnt its own task, checked by hand on the plain model (with swapped labels each head would have
    # learnt the other task and score near chance on its own).
    batches = _named_batches()
    outputs = setup.pm.at([0.5, 0.5])(torch.cat([x for x, _ in batches]))
    for task in ("a", "b"):
        labels = torch.cat([y[task] for _, y in batches])
        assert (outputs[task].argmax(dim=1) == labels).float().mean() > 0.9, task
    front = evaluate_front(setup.pm, batches, {"b": Accuracy, "a": Accuracy})
    assert front.metric_names == ["b_accuracy", "a_accuracy"]
    assert front.values.min() > 0.8, front.values


def test_mismatched_task_names_are_one_clear_error():
    setup = build_method("pamal", NamedHeads(), 2)
    loss = setup.loss({"a": F.cross_entropy, "c": F.cross_entropy})
    with pytest.raises(ParetorchError, match=r"keyed \['a', 'b'\], but the tasks are \['a', 'c'\]"):
        loss(_named_batches()[0])


# ----- inputs of any structure ----------------------------------------------------------------------------------------
class KeywordModel(nn.Module):
    """A Hugging Face-style forward: keyword tensors, one of them a mask."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 8)
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 3), "b": nn.Linear(8, 3)})

    def forward(self, input_ids, attention_mask):
        hidden = self.embedding(input_ids) * attention_mask[..., None]
        pooled = hidden.sum(dim=1) / attention_mask.sum(dim=1, keepdim=True)
        return {name: head(pooled) for name, head in self.heads.items()}


def _keyword_batches(count=4, size=8):
    generator = torch.Generator().manual_seed(3)
    for _ in range(count):
        ids = torch.randint(0, 10, (size, 5), generator=generator)
        mask = torch.ones(size, 5)
        mask[:, 4] = 0
        yield ({"input_ids": ids, "attention_mask": mask}, {"a": ids[:, 0] % 3, "b": ids[:, 1] % 3})


def test_dict_batches_are_keyword_arguments_and_evaluation_streams_the_loader():
    import gc
    import weakref

    from paretorch import Accuracy, evaluate_front

    torch.manual_seed(0)
    # Its only layers are the heads (the embedding is no adapter target): LORPMAN adapts them on request.
    setup = build_method("lorpman", KeywordModel(), 2, epochs=2, lr=1e-2, adapt_heads=True)
    history = setup.trainer({"a": F.cross_entropy, "b": F.cross_entropy}).fit(list(_keyword_batches()))
    assert len(history) == 2
    alive = []

    def streamed():
        for batch in _keyword_batches(6):
            gc.collect()
            assert sum(ref() is not None for ref in alive) <= 1, "evaluation kept earlier batches"
            alive.append(weakref.ref(batch[0]["input_ids"]))
            yield batch

    front = evaluate_front(setup.pm, streamed(), {"a": Accuracy, "b": Accuracy})
    assert len(alive) == 6, "one pass over the data for the whole 11-point grid"
    assert front.values.shape == (11, 2)
    x = next(_keyword_batches())[0]
    torch.testing.assert_close(setup.pm(x, [0.2, 0.8])["a"], setup.pm.at([0.2, 0.8])(**x)["a"])
