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


def test_many_task_adult_trains_and_evaluates_from_the_command_line(tmp_path):
    run = tmp_path / "many"
    common = ["dataset=adult-many", "tasks=5", "train_size=256", "val_size=128", "test_size=256", "epochs=1"]
    assert main(["train", str(run), "method=lorpman", *common, "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    assert len(front["preferences"]) == 100 and len(front["preferences"][0]) == 5
    assert front["metric_names"][0].startswith("age>=40")
    assert main(["train", str(tmp_path / "bad"), "dataset=adult", "tasks=5", "--quiet"]) == 2
