import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paretorch.cli import main, parse_overrides
from paretorch.errors import ParetorchError

TINY = ["dataset=multimnist", "train_size=64", "val_size=32", "test_size=32", "epochs=1", "batch_size=32"]


@pytest.mark.parametrize("method", ["palora", "ls"])
def test_train_eval_plot_export_round_trip(tmp_path, method, capsys):
    run = tmp_path / method
    extra = ["ls_points=2"] if method == "ls" else []
    assert main(["train", str(run), f"method={method}", *extra, *TINY, "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    assert "hypervolume" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0
    assert (run / "front_test.png").stat().st_size > 0
    out = tmp_path / "model.safetensors"
    assert main(["export", str(run), "--preference", "0.3,0.7", "--out", str(out)]) == 0
    assert main(["compare", str(run)]) == 0

    from safetensors.torch import load_file

    from paretorch.models import MultiLeNet
    from paretorch.runs import load_run

    loaded = load_run(run)
    plain = MultiLeNet()
    plain.load_state_dict(load_file(out))
    x = loaded.splits.test.tensors[0][:8]
    pref = torch.tensor([0.3, 0.7])
    pm = loaded.models if method == "palora" else min(loaded.models.items(),
                                                        key=lambda kv: float(torch.dist(torch.tensor(kv[0]), pref)))[1]
    pm.eval()
    plain.eval()
    for expected, got in zip(pm(x, pref), plain(x), strict=True):
        torch.testing.assert_close(expected, got, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("options", [["method=cpmtl", "solver=moo", "m=2"], ["method=phn", "solver=epo"],
                                     ["method=cosmos", "conditioning=film"], ["method=mgda", "ub=true"],
                                     ["method=pmtl", "stacked=true", "vectors=2", "init_steps=0"],
                                     ["method=pamal", "solver=moo"]],
                         ids=["cpmtl-moo", "phn-epo", "cosmos-film", "mgda-ub", "pmtl-stacked", "pamal-moo"])
def test_new_presets_train_and_evaluate_through_the_cli(tmp_path, options, capsys):
    run = tmp_path / "run"
    assert main(["train", str(run), *options, *TINY, "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    assert "hypervolume" in capsys.readouterr().out
    assert main(["export", str(run), "--preference", "0.5,0.5", "--out", str(tmp_path / "m.safetensors")]) == 0


def test_eval_out_writes_elsewhere_and_leaves_a_shared_run_directory_untouched(tmp_path, capsys, monkeypatch):
    run, out = tmp_path / "run", tmp_path / "mine"
    assert main(["train", str(run), "method=palora", *TINY, "--quiet"]) == 0
    before = {path.name: path.stat().st_mtime_ns for path in run.iterdir()}
    assert main(["eval", str(run), "--out", str(out)]) == 0
    assert f"saved {out / 'front_test.json'} and .csv" in capsys.readouterr().out
    assert {path.name: path.stat().st_mtime_ns for path in run.iterdir()} == before, "nothing written, not even a lock"
    front = json.loads((out / "front_test.json").read_text())
    assert len(front["values"]) == 11 and (out / "front_test.csv").exists()
    # plot on a run directory this user cannot write: its front is evaluated and drawn, nothing is kept there.
    import paretorch.cli as cli

    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != run)
    assert main(["plot", str(run), "--out", str(out / "front.png")]) == 0
    assert (out / "front.png").stat().st_size > 0
    assert {path.name: path.stat().st_mtime_ns for path in run.iterdir()} == before


def test_resume_continues(tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(run), "method=pamal", *TINY, "--quiet"]) == 0
    assert main(["train", str(run), "epochs=2", "--resume", "--quiet"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_validation_about_ten_times_a_run_and_eval_every_may_change_on_resume(tmp_path):
    # Through the command a user runs: unset, eval_every is epochs // 10, and a resumed run may change it (it
    # changes no weight). Each validated epoch logs its validation time; the per-epoch line (not a terminal) says it.
    run = tmp_path / "run"
    command = [sys.executable, "-m", "paretorch", "train", str(run)]
    tiny = [setting for setting in TINY if not setting.startswith("epochs=")]
    done = subprocess.run([*command, "method=pamal", *tiny, "epochs=20"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "epoch 2/20" in done.stdout and "(validation " in done.stdout
    resumed = subprocess.run([*command, "--resume", "epochs=23", "eval_every=1", "--quiet"], capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    validated = [record["epoch"] for record in records if "val_hypervolume" in record]
    assert validated == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 21, 22, 23]
    assert [record["epoch"] for record in records if record.get("val_seconds", 0) > 0] == validated
    assert sorted(path.name for path in run.glob("front_val_epoch*.json")) == sorted(
        f"front_val_epoch{epoch}.json" for epoch in validated)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "{run}", "method=magic"], "unknown method 'magic'"),
        (["train", "{run}", "lr"], "malformed override 'lr'"),
        (["train", "{run}", "data_source=/nonexistent/folder"], "MNIST folder /nonexistent/folder does not exist"),
        (["eval", "{run}"], "is not a run directory"),
        (["train", "{run}", "--config", "/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, argv, message):
    argv = [a.replace("{run}", str(tmp_path / "run")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_export_wrong_preference_length(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(run), "method=palora", *TINY, "--quiet"]) == 0
    assert main(["export", str(run), "--preference", "0.2,0.3,0.5", "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "preference has shape (3,)" in capsys.readouterr().err


def test_config_file_and_overrides(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('method = "lorpman"\nrank = 2\nscale = 1.0\n')
    run = tmp_path / "run"
    assert main(["train", str(run), "--config", str(config), *TINY, "--quiet"]) == 0
    import json

    resolved = json.loads((run / "config.json").read_text())
    assert resolved["method"] == "lorpman" and resolved["rank"] == 2


def test_parse_overrides_types():
    assert parse_overrides(["lr=1e-3", "weights=[0.3, 0.7]", "method=pamal"]) == {
        "lr": 1e-3, "weights": [0.3, 0.7], "method": "pamal"}
    assert parse_overrides(["residual=False", "flag=true", "other=True"]) == {
        "residual": False, "flag": True, "other": True}
    with pytest.raises(ParetorchError):
        parse_overrides(["=3"])


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "paretorch.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "eval", "plot", "export", "compare", "demo"):
        assert command in result.stdout


def test_many_task_adult_trains_and_evaluates_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "many"
    common = ["dataset=adult-many", "tasks=5", "train_size=256", "val_size=128", "test_size=256", "epochs=1"]
    assert main(["train", str(run), "method=lorpman", *common, "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    assert len(front["preferences"]) == 100 and len(front["preferences"][0]) == 5
    assert front["metric_names"][0].startswith("age>=40")
    # Up to 6 tasks every task's metric has its column.
    out = capsys.readouterr().out
    assert all(name in out for name in front["metric_names"])


def test_eval_and_compare_of_many_tasks_fit_a_terminal_line(tmp_path, capsys):
    # 12 tasks: a summary row per preference, and the reference and Spearman correlations summarised.
    run = tmp_path / "many"
    common = ["dataset=adult-many", "tasks=12", "train_size=128", "val_size=64", "test_size=128", "epochs=1"]
    assert main(["train", str(run), "method=palora", *common, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    front = json.loads((run / "front_test.json").read_text())
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 160, max(lines, key=len)
    assert lines[0].split() == ["largest", "weight", "mean", "worst", "worst", "task", "non-dominated"]
    assert len(lines) == 1 + 100 + 4  # header, rows, hypervolume, Spearman, a note, the files saved
    vertex = lines[1 + front["preferences"].index([1.0] + [0.0] * 11)]
    values = front["values"][front["preferences"].index([1.0] + [0.0] * 11)]
    worst = min(range(12), key=lambda task: values[task])
    assert vertex.split()[:3] == ["1.00", "on", "0"]
    assert f"{sum(values) / 12:.4f}" in vertex and f"{values[worst]:.4f}" in vertex
    assert front["metric_names"][worst][:20] in vertex
    assert "ref 0 for each of 12 tasks" in out and lines[-3].startswith("spearman min ")
    assert main(["compare", str(run), str(run)]) == 0
    out = capsys.readouterr().out
    assert "hypervolume reference 0 for each of 12 tasks" in out and "12 tasks (" in out
    assert max(len(line) for line in out.splitlines()) <= 160
    defined = [value for value in front["spearman"] if value is not None]  # null: the same at every preference
    assert f"min {min(defined):.2f}" in out
    assert main(["train", str(tmp_path / "bad"), "dataset=adult", "tasks=5", "--quiet"]) == 2
