"""What a new user meets first: the listing and help of every key, key validation, TOML configs with tables,
the example config, the per-epoch line, CSV and TensorBoard logs, and `compare` on one reference point."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paretorch import ParetorchError, build_method
from paretorch.cli import flatten_tables, main
from paretorch.methods import get_method, method_names
from paretorch.options import (
    DATASET_TASKS,
    METHOD_PROTOCOLS,
    MODELS,
    RUN_OPTIONS,
    TRAIN_OPTIONS,
    protocol_settings,
)
from paretorch.preferences import AnnealedGrid, symmetric_grid_size
from paretorch.runs import build_setup, load_run, validate_run_options
from paretorch.training import Front, MeanLoss, ParetoLoss

ROOT = Path(__file__).resolve().parents[1]
TINY = ["dataset=adult", "train_size=256", "val_size=128", "test_size=128", "batch_size=64"]


def test_list_names_every_method_option_dataset_model_and_key_with_its_default(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in method_names():
        assert f"  {name}: " in text
        for option in get_method(name).options:
            assert f"    {option} = " in text
    for name in (*DATASET_TASKS, *MODELS):
        assert f"  {name}" in text
    for option in (*RUN_OPTIONS, *TRAIN_OPTIONS):
        assert f"  {option} = " in text
    assert "temperature = 0.2" in text and "batch_size = 256" in text
    assert main(["list", "models"]) == 0
    assert "segnet" in capsys.readouterr().out


# A changed value of each run key that one data set or network uses, and a data set and network where it applies.
_SCOPED_RUN_KEYS = {"tasks": (3, {"dataset": "adult-many"}), "model_width": (8, {"dataset": "nyuv2"}),
                    "dropout": (True, {"model": "resnet18"}), "pool_size": (2, {"model": "resnet18"}),
                    "val_digits": ("training", {"dataset": "multimnist3"})}


def test_a_run_key_that_one_data_set_or_network_uses_is_refused_elsewhere_only_when_changed():
    from paretorch.catalogue import catalogue

    scoped = {name: option for name, option in RUN_OPTIONS.items() if option.applies is not None}
    assert set(scoped) == set(_SCOPED_RUN_KEYS), "a new scoped run key: give it a case here"
    listing = " ".join(catalogue("keys").split())  # unwrapped
    elsewhere = {"dataset": "adult"}  # a tabular data set and its MLP: none of these keys applies there
    for name, option in scoped.items():
        changed, where = _SCOPED_RUN_KEYS[name]
        assert f"[{option.when}]" in listing
        assert validate_run_options(where | {name: changed})[name] == changed
        assert validate_run_options(elsewhere | {name: option.default})[name] == option.default
        with pytest.raises(ParetorchError, match=f"^{name}=.* has no effect with dataset adult and model mlp: it "
                           f"applies to {option.when}; remove {name}=$"):
            validate_run_options(elsewhere | {name: changed})


def test_a_run_saved_with_a_width_its_network_ignored_still_evaluates_and_resumes(tmp_path):
    # Until model_width was refused beside networks other than SegNet, it was taken and ignored, and recorded.
    run = tmp_path / "run"
    tiny = ["dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16", "--quiet"]
    assert main(["train", str(run), "method=lorpman", "epochs=1", *tiny]) == 0
    stored = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(stored | {"model_width": 8}))
    evaluated = subprocess.run([sys.executable, "-m", "paretorch.cli", "eval", str(run)], capture_output=True,
                               text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    resumed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(run), "--resume", "epochs=2",
                              *tiny], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # A new run is told, in one line.
    refused = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(tmp_path / "new"), "model_width=8",
                              *tiny], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "remove model_width=" in refused.stderr


def test_list_wraps_to_the_terminal_and_gives_the_measurements_behind_the_defaults_on_request():
    def listing(*args, columns=80):
        result = subprocess.run([sys.executable, "-m", "paretorch.cli", "list", *args], capture_output=True,
                                text=True, env=os.environ | {"COLUMNS": str(columns)})
        assert result.returncode == 0, result.stderr
        return result.stdout

    def words(text):
        return " ".join(text.split())

    for columns, width in ((80, 80), (100, 100), (300, 120)):
        assert max(len(line) for line in listing(columns=columns).splitlines()) <= width
    plain, why = listing("lorpman"), listing("lorpman", "--why")
    assert "pamal:" not in plain and words(plain).startswith("lorpman: LORPMAN")
    options = get_method("lorpman").options.values()
    assert all(words(option.help) in words(plain) for option in options)
    explained = [option for option in options if option.why]
    assert {"p", "freeze_fraction", "adapt_heads", "scale"} <= {option.name for option in explained}
    assert all(words(option.why) in words(why) and words(option.why) not in words(plain) for option in explained)
    assert words(RUN_OPTIONS["val_digits"].why) in words(listing("keys", "--why"))
    # A reader that stops early (paretorch list | head) ends the command quietly, as SIGPIPE ends other programs.
    reader = subprocess.Popen([sys.executable, "-m", "paretorch.cli", "list", "--why"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.close()  # before the command writes anything: importing torch alone takes longer
    assert reader.wait(timeout=120) == 141 and reader.stderr.read() == b""
    reader.stderr.close()
    refused = subprocess.run([sys.executable, "-m", "paretorch.cli", "list", "lorpmn"], capture_output=True,
                             text=True)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "did you mean 'lorpman'?" in refused.stderr


@pytest.mark.parametrize(("dataset", "method"), [(dataset, method) for dataset, methods in METHOD_PROTOCOLS.items()
                                                 for method in methods])
def test_the_papers_settings_of_a_method_on_a_data_set_are_valid_and_a_given_key_wins(dataset, method):
    given = {"dataset": dataset, "method": method}
    settings = protocol_settings(given)
    assert METHOD_PROTOCOLS[dataset][method].items() <= settings.items()
    config = validate_run_options(settings | given)
    assert all(config[key] == value for key, value in METHOD_PROTOCOLS[dataset][method].items())
    first = next(iter(METHOD_PROTOCOLS[dataset][method]))
    assert first not in protocol_settings(given | {first: None})
    # Another method on the same data set gets none of them; the same method elsewhere neither.
    elsewhere = protocol_settings({"dataset": dataset, "method": "ls"})
    assert not METHOD_PROTOCOLS[dataset][method].keys() & elsewhere.keys()
    assert protocol_settings({"dataset": "multimnist", "method": method}) == {}


def test_train_help_shows_every_key_with_its_default(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (*RUN_OPTIONS, *TRAIN_OPTIONS):
        assert f"  {option} = " in text, option
    assert "epochs = 10" in text and "paretorch list methods" in text


@pytest.mark.parametrize(("override", "suggestion"), [("batch_sise=64", "batch_size"), ("methd=pamal", "method"),
                                                      ("method=palroa", "palora"), ("dataset=adultt", "adult")])
def test_a_misspelt_key_or_value_is_refused_with_the_closest_name(tmp_path, capsys, override, suggestion):
    assert main(["train", str(tmp_path / "run"), *TINY, override]) == 2
    error = capsys.readouterr().err
    assert f"did you mean '{suggestion}'?" in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists(), "nothing is written for a refused run"


def test_config_tables_are_flattened_and_a_key_given_twice_is_refused(tmp_path):
    assert flatten_tables({"method": "ls", "data": {"dataset": "adult", "sub": {"seed": 3}}}) == \
        {"method": "ls", "dataset": "adult", "seed": 3}
    with pytest.raises(ParetorchError, match=r"sets 'epochs' twice \(\[training\] and \[more\]\)"):
        flatten_tables({"training": {"epochs": 1}, "more": {"epochs": 2}})
    config = tmp_path / "run.toml"
    config.write_text('method = "lorpman"\n[data]\ndataset = "adult"\ntrain_size = 256\nval_size = 128\n'
                      'test_size = 128\nbatch_size = 64\n[training]\nepochs = 1\nlr = 3e-3\n')
    assert main(["train", str(tmp_path / "run"), "--config", str(config), "--quiet"]) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["method"] == "lorpman" and stored["lr"] == 3e-3 and stored["train_size"] == 256


def test_the_example_config_is_valid_and_trains(tmp_path):
    example = ROOT / "examples" / "palora_multimnist.toml"
    from paretorch.cli import _read_config

    values = _read_config(str(example))
    resolved = validate_run_options(values)
    assert resolved["method"] == "palora" and resolved["epochs"] == 10 and resolved["log"] == ["csv"]
    run = tmp_path / "run"
    assert main(["train", str(run), "--config", str(example), "epochs=1", "train_size=64", "val_size=32",
                 "test_size=32", "--quiet"]) == 0
    assert (run / "metrics.csv").exists()


def test_a_run_not_on_a_terminal_prints_one_line_per_epoch(tmp_path):
    done = subprocess.run([sys.executable, "-m", "paretorch", "train", str(tmp_path / "run"), *TINY, "epochs=2",
                           "method=lorpman"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("train_loss" in line and "val_hypervolume" in line for line in lines)


def test_csv_and_tensorboard_logs_hold_each_epoch_once_after_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", str(run), *TINY, "method=lorpman", "epochs=1", 'log=["csv", "tensorboard"]',
                 "--quiet"]) == 0
    assert main(["train", str(run), "--resume", "epochs=3", "--quiet"]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["epoch", "train_loss"] and "val_hypervolume" in header
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3"]
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [event.step for event in scalars] == [1, 2, 3]
    assert [event.value for event in scalars] == pytest.approx([record["train_loss"] for record in history])
    assert main(["train", str(tmp_path / "bad"), *TINY, "log=wandb"]) == 2


def _front(values, names=("a_mse", "b_mse"), hib=(False, False), method="x"):
    values = np.asarray(values, dtype=float)
    prefs = np.linspace(0, 1, len(values))
    return Front(np.stack([prefs, 1 - prefs], axis=1), values, list(names), list(hib), extra={"method": method})


def test_compare_takes_every_hypervolume_from_one_reference_and_refuses_other_tasks(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    _front([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]).save(first, "front_test")
    _front([[2.0, 6.0], [6.0, 2.0]]).save(second, "front_test")  # worse: its own 1.1 × worst reference flatters it
    assert main(["compare", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    reference = [6.6, 6.6]  # 1.1 × the worst value of both runs, per task
    assert "hypervolume reference [6.6, 6.6]" in out.replace("6.6000000000000005", "6.6")
    for run, values in ((first, [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), (second, [[2.0, 6.0], [6.0, 2.0]])):
        expected = Front(np.zeros((len(values), 2)), np.asarray(values), ["a_mse", "b_mse"], [False, False],
                         ref=reference).hypervolume["value"]
        line = next(line for line in out.splitlines() if line.startswith(run.name))
        assert f"{expected:.4f}" in line
    other = tmp_path / "other"
    _front([[1.0, 3.0], [3.0, 1.0]], names=("c_acc", "d_acc"), hib=(True, True)).save(other, "front_test")
    assert main(["compare", str(first), str(other)]) == 2
    assert "compare runs of the same tasks and metrics only" in capsys.readouterr().err


class _Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(4, 16)
        self.heads = torch.nn.ModuleList([torch.nn.Linear(16, 1), torch.nn.Linear(16, 1)])

    def forward(self, x):
        z = torch.tanh(self.body(x))
        return [head(z).squeeze(-1) for head in self.heads]


def _regression_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=generator)
    y = torch.stack([x[:, 0] - x[:, 1], x[:, 2] * x[:, 3]], dim=1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def test_validation_hypervolume_keeps_the_first_epochs_reference_through_a_resume(tmp_path):
    def trainer(epochs):
        torch.manual_seed(0)
        setup = build_method("lorpman", _Regression(), 2, epochs=epochs, rank=2, lr=1e-2)
        metric = lambda: MeanLoss(F.mse_loss, "mse")  # noqa: E731
        return setup.trainer([F.mse_loss, F.mse_loss], run_dir=tmp_path / "run", metrics=[metric, metric])

    data = _regression_data()
    trainer(2).fit(data, data)
    trainer(4).fit(data, data, resume=True)
    fronts = [json.loads((tmp_path / "run" / f"front_val_epoch{k}.json").read_text()) for k in range(1, 5)]
    references = [front["hypervolume"]["ref"] for front in fronts]
    assert all(reference == references[0] for reference in references)
    worst = np.max(np.asarray(fronts[0]["values"]), axis=0)
    assert references[0] == pytest.approx((1.1 * worst).tolist())
    # A later front's own worst values would have given another reference.
    assert (1.1 * np.max(np.asarray(fronts[-1]["values"]), axis=0)).tolist() != pytest.approx(references[0])


def test_train_loss_is_per_preference_whatever_the_number_of_preferences():
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    logs = []
    for m in (1, 4):
        torch.manual_seed(0)
        setup = build_method("palora", _Regression(), 2, epochs=1, m=m)
        loss = ParetoLoss(setup.pm, [F.mse_loss, F.mse_loss], setup.sampler, total_steps=10)
        logs.append(loss((x, y), step=0).logs()["loss"])  # at step 0 every annealed ray is the centre
    assert logs[0] == pytest.approx(logs[1], rel=1e-6)


def test_annealed_rays_with_a_margin_start_inside_the_simplex_and_sharpen_gradually():
    sampler = AnnealedGrid(2, m=5, temperature=0.2, margin=0.01)
    torch.testing.assert_close(sampler.base[:, 0], torch.linspace(0.01, 0.99, 5, dtype=torch.float64))
    edges = [float(sampler.sample(step, 100)[0, 0]) for step in (0, 10, 50, 100)]
    assert edges[0] == pytest.approx(0.5) and all(a > b > 0 for a, b in itertools.pairwise(edges))
    # Without a margin, the edge ray is a vertex from the first step on.
    assert float(AnnealedGrid(2, m=5, temperature=0.2).sample(1, 100)[0, 0]) == 0.0
    with pytest.raises(ParetorchError, match="margin must be in"):
        AnnealedGrid(3, margin=0.4)
    # The official code's power 5τ: Q = 0.2 gives λ̃^(5τ) normalised.
    tau = 50 / 99  # step 50 of 100: τ runs from 0 at the first step to 1 at the last
    base = sampler.base.pow(5 * tau)
    torch.testing.assert_close(sampler.sample(50, 100), (base / base.sum(1, keepdim=True)).float())


def test_runs_record_the_conv_layout_and_runs_saved_before_it_load_with_peft(tmp_path):
    tiny = ["dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16", "epochs=1"]
    assert main(["train", str(tmp_path / "new"), "method=palora", *tiny, "--quiet"]) == 0
    # Recorded although left at its default: a later change of the default does not change this run's shapes.
    assert json.loads((tmp_path / "new" / "config.json").read_text())["conv_layout"] == "loralib"
    # A run saved before the option existed: PEFT's layout, no conv_layout in its config.
    old = tmp_path / "old"
    assert main(["train", str(old), "method=palora", "conv_layout=peft", *tiny, "--quiet"]) == 0
    stored = json.loads((old / "config.json").read_text())
    del stored["conv_layout"]
    (old / "config.json").write_text(json.dumps(stored))
    result = subprocess.run([sys.executable, "-m", "paretorch.cli", "eval", str(old)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    front = json.loads((old / "front_test.json").read_text())
    assert len(front["values"]) == 11


@pytest.mark.parametrize(("method", "key", "default", "before"),
                         [("pamal", "m", 4, 3), ("pamal", "p", 0.5, 1.0), ("cpmtl", "m", 4, 1),
                          ("lorpman", "p", 0.2, 1.0), ("lorpman", "freeze_fraction", 0.8, 0.6),
                          ("palora", "m", 4, 5), ("cpmtl", "chunk_size", None, 0),
                          ("phn", "residual", True, False), ("phn", "m", 2, 1),
                          ("pamal", "batchnorm", "members", "shared"),
                          ("pamal", "member_lr_multiplier", True, False)])
def test_a_changed_default_is_recorded_and_runs_saved_before_it_resume_with_the_old_one(tmp_path, method, key,
                                                                                       default, before):
    tiny = ["dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16"]
    assert main(["train", str(tmp_path / "new"), f"method={method}", *tiny, "epochs=1", "--quiet"]) == 0
    assert json.loads((tmp_path / "new" / "config.json").read_text())[key] == default
    # A run saved while the default was the old one has no such key in its config: it is resumed with the old one.
    old = tmp_path / "old"
    assert main(["train", str(old), f"method={method}", f"{key}={before}", *tiny, "epochs=1", "--quiet"]) == 0
    stored = json.loads((old / "config.json").read_text())
    del stored[key]
    (old / "config.json").write_text(json.dumps(stored))
    assert load_run(old).config[key] == before
    result = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(old), "--resume", "epochs=2",
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert load_run(old).config[key] == before
    assert len((old / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("method", "recorded", "rates"), [("pamal", True, [2e-3]), ("palora", True, [2e-3, 1e-3]),
                                                          ("lorpman", False, [1e-3, 1e-3]), ("ls", None, None)])
def test_the_member_learning_rate_a_run_trains_with_is_its_recorded_one(tmp_path, method, recorded, rates):
    # PaMaL §5 (members at m times the rate) and PaLoRA's code (adapters at lr × T) set it; LORPMAN does not; a
    # method without adapters or members has no such setting to record.
    tiny = ["dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16", "--quiet"]
    assert main(["train", str(tmp_path / "run"), f"method={method}", *tiny, "epochs=1"]) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored.get("member_lr_multiplier") == recorded
    if rates is not None:  # the members' group (PaMaL's LeNet is all members), then the shared parameters'
        state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
        assert [group["lr"] for group in state["optimizer"]["param_groups"]] == pytest.approx(rates)
    # A user's value wins over the preset's and is what the run records.
    if recorded is not None:
        assert main(["train", str(tmp_path / "mine"), f"method={method}", *tiny, "epochs=1",
                     f"member_lr_multiplier={str(not recorded).lower()}"]) == 0
        assert json.loads((tmp_path / "mine" / "config.json").read_text())["member_lr_multiplier"] is (not recorded)


def test_palora_records_its_ray_count_and_runs_that_recorded_it_unset_resume_with_the_rule_of_their_time(tmp_path):
    # Unset m is 4 rays for 2 tasks now (5 until the rule changed); a new run records the count itself, so that the
    # next change of the rule leaves it alone. A run that recorded null was trained with 5 and resumes with 5.
    tiny = ["method=palora", "dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16",
            "--quiet"]
    new, old = tmp_path / "new", tmp_path / "old"
    assert main(["train", str(new), *tiny, "epochs=1"]) == 0
    assert json.loads((new / "config.json").read_text())["m"] == 4
    loaded = load_run(new)
    assert build_setup(loaded.config, loaded.splits, {}).sampler.m == 4
    assert main(["train", str(old), *tiny, "epochs=1", "m=5"]) == 0
    stored = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps(stored | {"m": None}))
    resumed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(old), "--resume", "epochs=2",
                              *tiny], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    loaded = load_run(old)
    assert loaded.config["m"] == 5 and build_setup(loaded.config, loaded.splits, {}).sampler.m == 5
    assert len((old / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("method", "few", "many"), [("pamal", 0.5, 2.0), ("lorpman", 0.2, 2.0), ("cpmtl", 0.2, 1.0),
                                                     ("phn", 0.2, 1.0)])
def test_dirichlet_presets_draw_near_the_corners_for_few_tasks_and_towards_the_centre_for_many(method, few, many):
    # Unset p: near the corners up to 3 tasks (ordered fronts on MultiMNIST and MultiMNIST-3), towards the centre
    # from 4 (the higher hypervolume on the many-task Adult). A given p wins whatever the task count.
    def concentration(tasks: int, **options: float) -> list[float]:
        model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, tasks))
        setup = build_method(method, model, tasks, **options)
        return setup.sampler.concentration.tolist()

    for tasks, expected in ((2, few), (3, few), (4, many), (40, many)):
        assert concentration(tasks) == [expected] * tasks
    assert concentration(40, p=0.3) == [0.3] * 40


@pytest.mark.parametrize("method", ["lorpman", "phn"])
def test_a_run_records_its_task_counts_concentration(tmp_path, method):
    settings = [f"method={method}", "dataset=adult-many", "train_size=64", "val_size=32", "test_size=32",
                "batch_size=32", "epochs=1", "--quiet"]
    for tasks, expected in ((3, 0.2), (5, {"lorpman": 2.0, "phn": 1.0}[method])):
        run = tmp_path / f"t{tasks}"
        assert main(["train", str(run), *settings, f"tasks={tasks}"]) == 0
        assert json.loads((run / "config.json").read_text())["p"] == expected
        loaded = load_run(run)
        assert build_setup(loaded.config, loaded.splits, {}).sampler.concentration.tolist() == [expected] * tasks
    # A run saved before p was recorded drew from the default of its time, whatever its task count: LORPMAN's
    # paper's 1 (until 2026-12-05), the hypernetworks' 0.2.
    stored = json.loads((run / "config.json").read_text())
    del stored["p"]
    (run / "config.json").write_text(json.dumps(stored))
    assert load_run(run).config["p"] == {"lorpman": 1.0, "phn": 0.2}[method]


def test_pamal_records_its_task_counts_concentration_and_runs_that_recorded_it_unset_resume_with_their_rule(
        tmp_path):
    # A run records its task count's value, so that a later change of the rule leaves it alone; one that recorded
    # null (runs of 2026-12-06) is rebuilt and resumed with the rule of that day.
    run = tmp_path / "many"
    settings = ["method=pamal", "dataset=adult-many", "tasks=5", "train_size=64", "val_size=32", "test_size=32",
                "batch_size=32", "--quiet"]
    assert main(["train", str(run), *settings, "epochs=1"]) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["p"] == 2.0
    (run / "config.json").write_text(json.dumps(stored | {"p": None}))
    resumed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(run), "--resume", "epochs=2",
                              *settings], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    loaded = load_run(run)
    assert loaded.config["p"] == 1.0
    assert build_setup(loaded.config, loaded.splits, {}).sampler.concentration.tolist() == [1.0] * 5


def _as_point_set(rays: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(round(float(v), 6) for v in ray) for ray in rays}


def _resume_as_saved_before(run: Path, key: str, settings: list[str]) -> None:
    """Drop ``key`` from a run's config.json, as in a run saved before the option was recorded, and resume it to 2
    epochs through a CLI subprocess."""
    stored = json.loads((run / "config.json").read_text())
    del stored[key]
    (run / "config.json").write_text(json.dumps(stored))
    resumed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(run), "--resume", "epochs=2",
                              *settings], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr


def test_palora_trains_a_large_ray_grid_in_turn_within_its_budget_and_older_runs_keep_every_ray(tmp_path):
    # Up to 5 tasks the grid (at most 6 rays) is trained whole every step; beyond, 6 of its T + 1 rays per step.
    for tasks in range(2, 12):
        sampler = build_method("palora", nn.Sequential(nn.Linear(3, tasks)), tasks).sampler
        assert sampler.per_step == min(6, sampler.m) and sampler.sample(7, 100).shape == (sampler.per_step, tasks)
        assert (sampler.per_step == sampler.m) == (tasks <= 5)
    whole = build_method("palora", nn.Sequential(nn.Linear(3, 9)), 9, rays_per_step=None).sampler
    assert whole.per_step == whole.m == 10
    with pytest.raises(ParetorchError, match="multi_forward_coef"):  # one ray per step: nothing to order
        build_method("palora", nn.Sequential(nn.Linear(3, 9)), 9, rays_per_step=1, multi_forward_coef=1.0)
    tiny = ["method=palora", "dataset=adult-many", "tasks=7", "train_size=64", "val_size=32", "test_size=32",
            "batch_size=32", "--quiet"]
    new = tmp_path / "new"
    assert main(["train", str(new), *tiny, "epochs=1"]) == 0
    assert json.loads((new / "config.json").read_text())["rays_per_step"] == 6
    # A run saved before the budget existed trained every ray every step: it is rebuilt and resumed so.
    old = tmp_path / "old"
    assert main(["train", str(old), *tiny, "epochs=1"]) == 0
    _resume_as_saved_before(old, "rays_per_step", tiny)
    loaded = load_run(old)
    assert loaded.config["rays_per_step"] is None
    assert build_setup(loaded.config, loaded.splits, {}).sampler.per_step == 8


def test_ls_grid_treats_every_task_alike_and_grids_saved_before_keep_their_models(tmp_path):
    # Unset ls_points: a grid no permutation of the tasks changes, with a model per task and one that weighs every
    # task (separate models do not interpolate: a grid without it, such as the 3-task lattice of vertices and edge
    # midpoints, has no model good at all tasks). The old fixed 5 put one model between tasks 1 and 2 for 3 tasks,
    # and kept the vertices alone from 5 tasks.
    ls = get_method("ls")
    for tasks in range(2, 9):
        grid = torch.tensor([m["weights"] for m in ls.members_of({"weights": None, "ls_points": None}, tasks)])
        assert len(grid) == (5 if tasks == 2 else tasks + 1)
        for first in range(tasks - 1):
            swapped = grid.clone()
            swapped[:, [first, first + 1]] = grid[:, [first + 1, first]]
            assert _as_point_set(swapped) == _as_point_set(grid), (tasks, first)
        assert {tuple(row) for row in torch.eye(tasks).tolist()} <= _as_point_set(grid), "a model per task"
        assert any(bool((row > 0).all()) for row in grid), "and a model that weighs every task"
    assert len(ls.members_of({"weights": None, "ls_points": 3}, 2)) == 3  # a given count wins
    tiny = ["dataset=adult-many", "tasks=3", "train_size=64", "val_size=32", "test_size=32", "batch_size=32",
            "--quiet"]

    new = tmp_path / "new"
    assert main(["train", str(new), "method=ls", "epochs=1", *tiny]) == 0
    assert json.loads((new / "config.json").read_text())["ls_points"] is None
    assert len(load_run(new).models) == 4
    # A grid saved before ls_points was recorded trained 5 models: it resumes and loads with those 5.
    old = tmp_path / "old"
    assert main(["train", str(old), "method=ls", "ls_points=5", "epochs=1", *tiny]) == 0
    _resume_as_saved_before(old, "ls_points", tiny)
    loaded = load_run(old)
    assert loaded.config["ls_points"] == 5 and len(loaded.models) == 5
    assert len((old / "member_4" / "metrics.jsonl").read_text().splitlines()) == 2
    # Wave-1 members recorded their weights alone; those records still describe them.
    record = old / "member_0" / "member.json"
    options = json.loads(record.read_text())["options"]
    record.write_text(json.dumps({"options": {"weights": options["weights"]}}))
    assert len(load_run(old).models) == 5
    # A run of one weighting saved then had no grid: nothing is filled in, and it resumes.
    single = tmp_path / "single"
    assert main(["train", str(single), "method=ls", "weights=[0.2, 0.3, 0.5]", "epochs=1", *tiny]) == 0
    _resume_as_saved_before(single, "ls_points", tiny)
    assert list(load_run(single).models) == [pytest.approx((0.2, 0.3, 0.5))]
    # Members that the settings no longer describe are refused, not loaded under another preference or dropped.
    for points, message in ((6, "was trained with"), (None, "holds 5 models")):
        stored = json.loads((old / "config.json").read_text())
        stored["ls_points"] = points
        (old / "config.json").write_text(json.dumps(stored))
        refused = subprocess.run([sys.executable, "-m", "paretorch.cli", "eval", str(old)], capture_output=True,
                                 text=True)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr


def test_palora_rays_treat_every_task_alike_unless_m_is_given(tmp_path):
    # Unset m: a ray grid that no permutation of the tasks changes, with a ray that favours each task, at every
    # point of the schedule (the whole grid; from 6 tasks a step trains 6 of its rays, in turn). The old fixed 5
    # rays failed both: for 3 tasks one ray sat between tasks 1 and 2, and from 6 tasks the grid held only the
    # first 5 vertices.
    for tasks in range(2, 9):
        sampler = build_method("palora", nn.Sequential(nn.Linear(3, tasks)), tasks, rays_per_step=None).sampler
        assert sampler.m == symmetric_grid_size(tasks) >= tasks + 1
        for step in (0, 37, 99):
            rays = sampler.sample(step, 100).double()
            for first in range(tasks - 1):  # adjacent transpositions generate every permutation
                swapped = rays.clone()
                swapped[:, [first, first + 1]] = rays[:, [first + 1, first]]
                assert _as_point_set(swapped) == _as_point_set(rays), (tasks, step, first)
        end = sampler.sample(99, 100)
        assert set(end.argmax(dim=1).tolist()) == set(range(tasks)), "each task has a ray of its own"
    uneven = AnnealedGrid(3, m=5).sample(99, 100)
    assert _as_point_set(uneven[:, [1, 0, 2]]) != _as_point_set(uneven), "the old 3-task grid favoured tasks 1-2"
    assert build_method("palora", nn.Sequential(nn.Linear(3, 10)), 10, m=4).sampler.m == 4  # a given m wins
    # A run records "unset", and is rebuilt with its task count's grid.
    run = tmp_path / "five"
    assert main(["train", str(run), "method=palora", "dataset=adult-many", "tasks=5", "train_size=64",
                 "val_size=32", "test_size=32", "batch_size=32", "epochs=1", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["m"] == 6  # the count unset stands for, recorded
    loaded = load_run(run)
    assert build_setup(loaded.config, loaded.splits, {}).sampler.m == 6
    # Settings that depend on several preferences per step accept the unset count.
    assert main(["train", str(tmp_path / "penalised"), "method=palora", "multi_forward_coef=1", "dataset=multimnist",
                 "train_size=32", "val_size=16", "test_size=16", "batch_size=16", "epochs=1", "--quiet"]) == 0


def test_lorpman_adapts_the_shared_bottom_and_leaves_each_task_head_plain(tmp_path):
    # LORPMAN §2: θ(α) = θ0 + s Σ α_i B_i A_i is the shared bottom's. A head sees only its own task's loss, so the
    # preset leaves the heads task_heads finds (a ModuleList/ModuleDict called heads, one module per task) plain.
    from paretorch.models import MultiLeNet
    from paretorch.parameterisations import task_heads

    def adapted(pm: nn.Module) -> list[str]:
        return [name.removeprefix("model.") for name, module in pm.named_modules()
                if type(module).__name__.startswith("LowRank")]

    net = MultiLeNet()
    setup = build_method("lorpman", net, 2)
    assert adapted(setup.pm) == ["encoder.0", "encoder.3", "encoder.7"]
    base = sum(p.numel() for p in net.parameters())
    rank = 8  # the preset's r; PEFT's layout: r·(out + in·k·k) per task for a convolution, r·(out + in) for a Linear
    bottom = 2 * rank * ((10 + 1 * 25) + (20 + 10 * 25) + (50 + 320))
    assert sum(p.numel() for p in setup.pm.parameters()) == base + bottom
    assert len(adapted(build_method("lorpman", net, 2, adapt_heads=True).pm)) == 7  # the bottom's 3 and the heads' 4
    assert adapted(build_method("lorpman", net, 2, targets=["heads.0.0"]).pm) == ["heads.0.0"]  # as the user says
    assert adapted(build_method("lorpman", net, 2, exclude=["encoder.0"]).pm) == ["encoder.3", "encoder.7"]

    # Heads keyed by task name are found; a list of T blocks under another name is no set of heads.
    class Named(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(6, 6), nn.Linear(6, 6)])
            self.heads = nn.ModuleDict({"left": nn.Linear(6, 3), "right": nn.Linear(6, 2)})

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            for layer in self.layers:
                x = torch.relu(layer(x))
            return {name: head(x) for name, head in self.heads.items()}

    assert task_heads(Named(), 2) == ["heads"] and task_heads(Named(), 3) == []
    headless = Named()
    headless.layers = nn.ModuleList([nn.ReLU(), nn.ReLU()])  # nothing to adapt but the heads: said in one line
    with pytest.raises(ParetorchError, match=r"no Linear or Conv layer outside its task heads.*adapt_heads=true"):
        build_method("lorpman", headless, 2)
    assert len(adapted(build_method("lorpman", headless, 2, adapt_heads=True).pm)) == 2
    pm = build_method("lorpman", Named(), 2).pm
    assert adapted(pm) == ["layers.0", "layers.1"]
    assert set(pm(torch.ones(4, 6), [0.3, 0.7])) == {"left", "right"}

    # A run records the choice; one saved before it adapted its heads, and resumes with them through the CLI.
    tiny = ["method=lorpman", "dataset=multimnist", "train_size=32", "val_size=16", "test_size=16", "batch_size=16",
            "--quiet"]
    new = tmp_path / "new"
    assert main(["train", str(new), *tiny, "epochs=1"]) == 0
    assert json.loads((new / "config.json").read_text())["adapt_heads"] is False
    old = tmp_path / "old"
    assert main(["train", str(old), *tiny, "adapt_heads=true", "epochs=1"]) == 0
    _resume_as_saved_before(old, "adapt_heads", tiny)
    loaded = load_run(old)
    assert loaded.config["adapt_heads"] is True and len(adapted(loaded.models)) == 7
    assert len((old / "metrics.jsonl").read_text().splitlines()) == 2


def test_lorpman_freezes_its_main_network_after_a_share_of_training_unless_an_epoch_is_given():
    def freeze(epochs: int, **options: float) -> int | None:
        return build_method("lorpman", nn.Sequential(nn.Linear(3, 2)), 2, epochs=epochs, **options).config.freeze_epoch

    assert [freeze(epochs) for epochs in (1, 3, 10, 50, 100)] == [1, 2, 8, 40, 80]
    assert freeze(10, freeze_fraction=0.6) == 6 and freeze(10, freeze_fraction=1.0) == 10  # 10 of 10: never
    assert freeze(10, freeze_epoch=3) == 3 and freeze(10, freeze_fraction=0.6, freeze_epoch=9) == 9
