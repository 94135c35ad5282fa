"""A corpus of bad inputs, through the command line and the API.

Every CLI case must end with exit status 2 and exactly one line on stderr that names the problem, and must leave
an existing run directory byte-identical. Every API case raises :class:`ParetorchError` with such a line.
"""

import errno
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from paretorch.cli import main
from paretorch.errors import ParetorchError

TINY = ["dataset=multimnist", "train_size=64", "val_size=32", "test_size=32", "batch_size=32", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A finished palora run (2 epochs, evaluated) and a finished 2-member ls run, trained once."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["train", str(root / "palora"), "method=palora", "epochs=2", *TINY]) == 0
    assert main(["train", str(root / "ls"), "method=ls", "ls_points=2", "epochs=1", *TINY]) == 0
    for name in ("palora", "ls"):
        assert main(["eval", str(root / name)]) == 0
    return {"palora": root / "palora", "ls": root / "ls"}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Case:
    argv: list[str]
    message: str
    run: str | None = None  # copy this trained run to {run} first
    prepare: Callable[[Path, Path], None] | None = None  # (run, tmp) -> None, before the snapshot
    starts_run: bool = False  # the error comes from training: the new run's settings are written, no checkpoint


def _write(relative: str, content: bytes) -> Callable[[Path, Path], None]:
    return lambda run, tmp: (run / relative).write_bytes(content)


def _fake_idx(folder: Path) -> None:
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(bytes(range(100)))


class _Reduces:
    """Pickles as ``call(*arguments)``: what a hostile pickle runs on load."""

    def __init__(self, call: Callable[..., object], arguments: tuple) -> None:
        self.call, self.arguments = call, arguments

    def __reduce__(self) -> tuple:
        return self.call, self.arguments


def _write_pickle(name: str, hostile: tuple | None) -> Callable[[Path, Path], None]:
    """Pareto MTL's layout with a hostile object in it, or (None) with one label per image instead of two."""
    import pickle

    def write(run: Path, tmp: Path) -> None:
        images = np.zeros((3, 36, 36), dtype=np.uint8)
        labels = np.zeros(3, dtype=np.int64) if hostile is None else np.zeros((3, 2), dtype=np.int64)
        content = (images, _Reduces(*hostile) if hostile else labels, images, labels)
        (tmp / name).write_bytes(pickle.dumps(content, protocol=4))

    return write


def _fake_adult(folder: Path) -> None:
    folder.mkdir()
    (folder / "adult.data").write_text("not, the, adult, file\n")


def _truncate_checkpoint(run: Path, tmp: Path) -> None:
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


CASES: dict[str, Case] = {
    # ----- train: types and ranges
    "epochs-text": Case(["train", "{new}", "epochs=abc", *TINY], "epochs must be an integer >= 1, got 'abc'"),
    "epochs-zero": Case(["train", "{new}", "epochs=0", *TINY], "epochs must be an integer >= 1, got 0"),
    "epochs-fraction": Case(["train", "{new}", "epochs=1.5", *TINY], "epochs must be an integer >= 1, got 1.5"),
    "epochs-bool": Case(["train", "{new}", "epochs=true", *TINY], "epochs must be an integer"),
    "batch-size-zero": Case(["train", "{new}", "batch_size=0", "epochs=1"], "batch_size must be an integer >= 1"),
    "lr-negative": Case(["train", "{new}", "lr=-1", *TINY], "lr must be a finite number > 0, got -1"),
    "lr-nan": Case(["train", "{new}", "lr=nan", *TINY], "lr must be a finite number > 0, got nan"),
    "lr-inf": Case(["train", "{new}", "lr=inf", *TINY], "lr must be a finite number > 0, got inf"),
    "lr-text": Case(["train", "{new}", "lr=fast", *TINY], "lr must be a finite number > 0, got 'fast'"),
    "train-size-zero": Case(["train", "{new}", "train_size=0"], "train_size must be an integer >= 1"),
    "seed-negative": Case(["train", "{new}", "seed=-1", *TINY], "seed must be an integer >= 0"),
    "device-cuda": Case(["train", "{new}", "device=cuda", *TINY], "device 'cuda' is not available"),
    "device-unknown": Case(["train", "{new}", "device=tpu9", *TINY], "device must be cpu, cuda, cuda:N or mps"),
    "rank-zero": Case(["train", "{new}", "rank=0", *TINY], "rank must be an integer >= 1, got 0"),
    "rank-fraction": Case(["train", "{new}", "rank=1.5", *TINY], "rank must be an integer >= 1, got 1.5"),
    "scale-negative": Case(["train", "{new}", "scale=-2", *TINY], "scale must be a finite number > 0"),
    "bool-text": Case(["train", "{new}", "freeze_base=maybe", *TINY], "freeze_base must be true or false"),
    "targets-number": Case(["train", "{new}", "targets=3", *TINY], "targets must be a name or a list of names"),
    # ----- train: names and applicability
    "method-unknown": Case(["train", "{new}", "method=magic", *TINY], "unknown method 'magic'"),
    "method-typo": Case(["train", "{new}", "method=pamall", *TINY], "did you mean 'pamal'?"),
    "dataset-unknown": Case(["train", "{new}", "dataset=imagenet"], "unknown dataset 'imagenet'"),
    "model-unknown": Case(["train", "{new}", "model=vgg", *TINY], "unknown model 'vgg'"),
    "model-for-tabular": Case(["train", "{new}", "model=lenet", "dataset=adult"],
                              "model lenet takes grey 28 × 28 images"),
    # A run-level setting that the data set or network does not use: refused where changed (Option.applies).
    "dropout-without-resnet": Case(["train", "{new}", "dropout=true"],
                                   "dropout=true has no effect with dataset multimnist and model lenet: it applies "
                                   "to model=resnet18; remove dropout="),
    "pool-size-without-resnet": Case(["train", "{new}", "pool_size=2"], "it applies to model=resnet18; remove "
                                     "pool_size="),
    "width-without-segnet": Case(["train", "{new}", "model_width=8"], "it applies to model=segnet; remove "
                                 "model_width="),
    "tasks-without-adult-many": Case(["train", "{new}", "tasks=3"], "tasks=3 has no effect with dataset "
                                     "multimnist and model lenet: it applies to dataset=adult-many; remove tasks="),
    "val-digits-elsewhere": Case(["train", "{new}", "dataset=adult", "val_digits=training"],
                                 "val_digits=training has no effect with dataset adult and model mlp: it applies to "
                                 "dataset=multimnist, multimnist3 or multifashion; remove val_digits="),
    "option-typo": Case(["train", "{new}", "rnak=2", *TINY], "did you mean 'rank'?"),
    "option-of-other-method": Case(["train", "{new}", "method=palora", "ls_points=3", *TINY],
                                   "option 'ls_points' belongs to method ls, not palora"),
    "solver-unknown": Case(["train", "{new}", "method=pamal", "solver=newton", *TINY], "unknown solver 'newton'"),
    "optimizer-unknown": Case(["train", "{new}", "optimizer=adamw", *TINY], "unknown optimizer 'adamw'"),
    "momentum-without-sgd": Case(["train", "{new}", "momentum=0.5", *TINY], "it applies to optimizer=sgd"),
    "orthogonality-on-ls": Case(["train", "{new}", "method=ls", "orthogonality_coef=1", *TINY],
                                "option 'orthogonality_coef' belongs to method palora and lorpman, not ls"),
    "moo-option-without-moo": Case(["train", "{new}", "method=cpmtl", "num_refs=4", *TINY],
                                   "it applies to solver=moo"),
    "ls-points-zero": Case(["train", "{new}", "method=ls", "ls_points=0", *TINY], "ls_points must be an integer >= 1"),
    "ls-weights-length": Case(["train", "{new}", "method=ls", "weights=[1.0]", *TINY],
                              "ls weights must be 2 non-negative numbers summing to 1"),
    "ls-weights-negative": Case(["train", "{new}", "method=ls", "weights=[-0.5, 1.5]", *TINY],
                                "ls weights must be 2 non-negative numbers"),
    "ls-weights-and-points": Case(["train", "{new}", "method=ls", "weights=[0.5, 0.5]", "ls_points=3", *TINY],
                                  "either weights= (one model) or ls_points="),
    "stl-task-range": Case(["train", "{new}", "method=stl", "task=5", *TINY], "stl task must be in 0..1, got 5"),
    "pmtl-k-range": Case(["train", "{new}", "method=pmtl", "k=7", *TINY], "pmtl k must be in 0..4"),
    "override-malformed": Case(["train", "{new}", "lr"], "malformed override 'lr'"),
    "override-empty-value": Case(["train", "{new}", "lr="], "malformed override 'lr='"),
    "data-folder-missing": Case(["train", "{new}", "data_source=/nonexistent/folder", *TINY],
                                "MNIST folder /nonexistent/folder does not exist"),
    # ----- train: config files
    "config-missing": Case(["train", "{new}", "--config", "{tmp}/none.toml"], "none.toml does not exist"),
    "config-bad-toml": Case(["train", "{new}", "--config", "{tmp}/bad.toml"], "is not valid TOML",
                            prepare=lambda run, tmp: (tmp / "bad.toml").write_text("lr = = 3\n")),
    "config-is-a-folder": Case(["train", "{new}", "--config", "{tmp}"], "cannot read config file"),
    # Tables only group keys: one key in two tables is ambiguous.
    "config-key-in-two-tables": Case(["train", "{new}", "--config", "{tmp}/nested.toml", *TINY],
                                     "sets 'lr' twice ([training] and [more])",
                                     prepare=lambda run, tmp: (tmp / "nested.toml").write_text(
                                         "[training]\nlr = 0.1\n[more]\nlr = 0.2\n")),
    # ----- train: run directories
    "run-dir-is-a-file": Case(["train", "{tmp}/file", *TINY], "is a file",
                              prepare=lambda run, tmp: (tmp / "file").write_text("x")),
    "run-dir-under-a-file": Case(["train", "{tmp}/file/run", "epochs=1", *TINY], "is a file",
                                 prepare=lambda run, tmp: (tmp / "file").write_text("x")),
    "run-exists": Case(["train", "{run}", "epochs=1", *TINY], "already holds a run; use --resume", run="palora"),
    "resume-nothing": Case(["train", "{new}", "--resume"], "holds no run to resume"),
    "resume-change-method": Case(["train", "{run}", "--resume", "method=pamal"],
                                 "--resume cannot change method ('palora' -> 'pamal')", run="palora"),
    "resume-change-model-option": Case(["train", "{run}", "--resume", "rank=4"], "--resume cannot change rank",
                                       run="palora"),
    "resume-fewer-epochs": Case(["train", "{run}", "--resume", "epochs=1"], "has trained 2 epochs already",
                                run="palora"),
    "resume-corrupt-config": Case(["train", "{run}", "--resume"], "is not valid JSON", run="palora",
                                  prepare=_write("config.json", b"{not json")),
    "resume-truncated-checkpoint": Case(["train", "{run}", "--resume", "epochs=3"], "is corrupt", run="palora",
                                        prepare=_truncate_checkpoint),
    "resume-garbage-checkpoint": Case(["train", "{run}", "--resume", "epochs=3"], "is corrupt", run="palora",
                                      prepare=_write("checkpoint.pt", b"garbage")),
    "resume-checkpoint-of-other-model": Case(
        ["train", "{run}", "--resume", "epochs=3"], "does not match this model", run="palora",
        prepare=lambda run, tmp: torch.save({"model": {"w": torch.zeros(1)}, "epoch": 1, "optimizer": {}},
                                            run / "checkpoint.pt")),
    # ----- eval / plot / compare / export
    "eval-not-a-run": Case(["eval", "{new}"], "is not a run directory"),
    "eval-corrupt-config": Case(["eval", "{run}"], "is not valid JSON", run="palora",
                                prepare=_write("config.json", b"[1, 2")),
    "eval-config-not-an-object": Case(["eval", "{run}"], "is not a JSON object", run="palora",
                                      prepare=_write("config.json", b"[1, 2]")),
    "eval-config-bad-value": Case(["eval", "{run}"], "epochs must be an integer", run="palora",
                                  prepare=_write("config.json", b'{"method": "palora", "epochs": "ten"}')),
    "eval-missing-member-checkpoint": Case(["eval", "{run}"], "has no checkpoint", run="ls",
                                           prepare=lambda run, tmp: (run / "member_1" / "checkpoint.pt").unlink()),
    "eval-split": Case(["eval", "{run}", "--split", "train"], "invalid choice: 'train'", run="palora"),
    "plot-corrupt-front": Case(["plot", "{run}"], "front file", run="palora",
                               prepare=_write("front_test.json", b"{\"values\": [1,")),
    "compare-front-wrong-shape": Case(["compare", "{run}"], "is not a paretorch front", run="palora",
                                      prepare=_write("front_test.json", b'{"values": 3}')),
    "plot-out-under-a-file": Case(["plot", "{run}", "--out", "{tmp}/file/front.png"], "cannot write the plot",
                                  run="palora", prepare=lambda run, tmp: (tmp / "file").write_text("x")),
    "export-preference-text": Case(["export", "{run}", "--preference", "0.3,abc", "--out", "{tmp}/m.safetensors"],
                                   "must be comma-separated numbers", run="palora"),
    "export-preference-length": Case(["export", "{run}", "--preference", "0.2,0.3,0.5", "--out",
                                      "{tmp}/m.safetensors"], "preference has shape (3,)", run="palora"),
    "export-preference-negative": Case(["export", "{run}", "--preference=-0.5,1.5", "--out", "{tmp}/m.safetensors"],
                                       "negative", run="palora"),
    "export-preference-nan": Case(["export", "{run}", "--preference", "nan,nan", "--out", "{tmp}/m.safetensors"],
                                  "must hold finite numbers", run="palora"),
    "export-out-under-a-file": Case(["export", "{run}", "--preference", "0.5,0.5", "--out", "{tmp}/file/m.st"],
                                    "cannot create the folder", run="palora",
                                    prepare=lambda run, tmp: (tmp / "file").write_text("x")),
    "export-out-is-a-folder": Case(["export", "{run}", "--preference", "0.5,0.5", "--out", "{tmp}"],
                                   "must be a file path", run="palora"),
    "export-out-empty": Case(["export", "{run}", "--preference", "0.5,0.5", "--out", ""], "must be a file path",
                             run="palora"),
    "ordering-penalty-one-preference": Case(["train", "{new}", "method=pamal", "m=1", "multi_forward_coef=1", *TINY],
                                            "m > 1 preferences per step"),
    "idx-file-malformed": Case(["train", "{new}", "data_source={tmp}/idx", *TINY], "is not a valid MNIST IDX file",
                               prepare=lambda run, tmp: _fake_idx(tmp / "idx")),
    "multifashion-without-source": Case(["train", "{new}", "dataset=multifashion", "epochs=1"],
                                        "multifashion does not ship with any package; give data_source=FOLDER"),
    "pareto-mtl-pickle-missing": Case(["train", "{new}", "dataset=multifashion-mnist", "data_source={tmp}"],
                                      "/multi_fashion_and_mnist.pickle: put Pareto MTL's "
                                      "multi_fashion_and_mnist.pickle in"),
    "pareto-mtl-pickle-hostile": Case(["train", "{new}", "dataset=multifashion",
                                       "data_source={tmp}/multi_fashion.pickle"],
                                      "builtins.print is not allowed); nothing in it was run",
                                      prepare=_write_pickle("multi_fashion.pickle", (print, ("ran",)))),
    "pareto-mtl-pickle-labels": Case(["train", "{new}", "dataset=multifashion",
                                      "data_source={tmp}/multi_fashion.pickle"],
                                     "the training labels have shape (3,): expected one label per position",
                                     prepare=_write_pickle("multi_fashion.pickle", None)),
    "adult-file-malformed": Case(["train", "{new}", "dataset=adult", "data_source={tmp}/adult", "epochs=1"],
                                 "has 0 valid rows", prepare=lambda run, tmp: _fake_adult(tmp / "adult")),
    "nan-loss-first-epoch": Case(["train", "{new}", "lr=1e12", "epochs=1", *TINY], "non-finite loss at epoch 0",
                                 starts_run=True),
    "export-no-preference": Case(["export", "{run}", "--out", "{tmp}/m.safetensors"],
                                 "the following arguments are required: --preference", run="palora"),
    # ----- other commands
    "toy-steps-zero": Case(["toy", "--steps", "0"], "argument --steps: must be an integer >= 1"),
    "demo-epochs-zero": Case(["demo", "--epochs", "0", "--out", "{tmp}/demo"], "argument --epochs: must be"),
    "demo-scale-nan": Case(["demo", "--scale", "nan", "--out", "{tmp}/demo"], "argument --scale: must be"),
    "unknown-command": Case(["fly"], "invalid choice: 'fly'"),
    "unknown-flag": Case(["eval", "{new}", "--fast"], "unrecognized arguments: --fast"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_cli_input_is_one_line_exit_2_and_changes_nothing(name, trained, tmp_path, capsys):
    case = CASES[name]
    run = tmp_path / "run"
    if case.run is not None:
        shutil.copytree(trained[case.run], run)
    if case.prepare is not None:
        case.prepare(run, tmp_path)
    before = _snapshot(tmp_path)
    argv = [a.replace("{run}", str(run)).replace("{new}", str(tmp_path / "new")).replace("{tmp}", str(tmp_path))
            for a in case.argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert case.message in err, err
    assert err.count("\n") == 1 and err.startswith("paretorch: error:"), err
    assert "Traceback" not in err
    if case.starts_run:
        assert not (tmp_path / "new" / "checkpoint.pt").exists()
        return
    assert _snapshot(tmp_path) == before, "a refused command changed files"
    assert not (tmp_path / "new").exists(), "a refused command created its run directory"


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_second_process_on_a_run_directory_is_refused(trained, tmp_path, capsys):
    from paretorch._files import RunLock

    run = tmp_path / "run"
    shutil.copytree(trained["palora"], run)
    before = _snapshot(run)
    with RunLock(run):  # another process holds it (flock locks are per open file, so this stands in for one)
        assert main(["train", str(run), "--resume", "epochs=3", "--quiet"]) == 2
        assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("is in use by another paretorch process") == 2
    assert _snapshot(run) == before


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(trained, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained["palora"], run)
    kept = (run / "checkpoint.pt").read_bytes()

    def full(obj, stream, *args, **kwargs):
        stream.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert main(["train", str(run), "--resume", "epochs=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "checkpoint.pt" in err and err.count("\n") == 1
    assert (run / "checkpoint.pt").read_bytes() == kept
    assert not list(run.glob(".*.tmp"))
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # no line for the epoch that was not saved


# ----- API ---------------------------------------------------------------------------------------------------------
class _ThreeHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(4, 3) for _ in range(3))

    def forward(self, x):
        return [head(x) for head in self.heads]


def test_api_model_with_more_outputs_than_tasks_is_refused():
    from paretorch import Trainer, lowrank
    from paretorch.preferences import Dirichlet

    pm = lowrank(_ThreeHeads(), 2, rank=1)
    loss = nn.functional.cross_entropy
    trainer = Trainer(pm, [loss, loss], Dirichlet(2, m=2, generator=torch.Generator().manual_seed(0)))
    batch = (torch.randn(8, 4), torch.randint(0, 3, (8, 2)))
    with pytest.raises(ParetorchError, match="the model returns 3 outputs for 2 tasks"):
        trainer.training_step(batch, 0, 1)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"rnak": 1}, "did you mean 'rank'?"),
    ({"rank": "2"}, "rank must be an integer >= 1, got '2'"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"weights": [0.5]}, "belongs to method ls"),
    ({"momentum": 0.1}, "applies to optimizer=sgd"),
])
def test_api_build_method_rejects_bad_options(overrides, message):
    from paretorch.methods import build_method

    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ParetorchError, match=message.replace("(", r"\(").replace("?", r"\?")):
        build_method("palora", model, 2, **overrides)


def test_api_train_run_validates_before_creating_anything(tmp_path):
    from paretorch.runs import train_run

    with pytest.raises(ParetorchError, match="epochs must be an integer >= 1, got 0"):
        train_run({"epochs": 0}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_front_with_non_finite_metrics_is_reported_not_scored_zero(tmp_path):
    from paretorch.training import Front

    values = np.array([[0.9, 0.1], [np.nan, np.nan], [0.5, 0.5]])
    front = Front(np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]), values, ["a", "b"], [True, True])
    assert front.hypervolume["value"] is None and front.hypervolume["method"] == "undefined"
    assert "not finite at 1 of 3 preferences" in front.hypervolume["problem"]
    assert front.nondominated.tolist() == [True, False, True]
    assert "hypervolume undefined" in front.table()
    json_path, _ = front.save(tmp_path, "front")
    text = json_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    reloaded = Front.load(json_path)
    assert np.isnan(reloaded.values[1]).all() and reloaded.hypervolume["value"] is None


def test_written_files_get_the_usual_mode(trained):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for path in trained["palora"].iterdir():
        if path.is_file() and path.name != ".paretorch.lock":
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def test_discrete_export_records_the_members_own_preference(trained, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "m.safetensors"
    assert main(["export", str(trained["ls"]), "--preference", "0.3,0.7", "--out", str(out)]) == 0
    with safe_open(str(out), "pt") as handle:
        recorded = json.loads(handle.metadata()["paretorch.preference"])
    from paretorch.runs import load_run

    assert tuple(recorded) in {tuple(round(v, 6) for v in p) for p in load_run(trained["ls"]).models}
    assert recorded != [0.3, 0.7]


def test_recorded_member_options_are_honoured(tmp_path):
    from paretorch.runs import load_run

    assert main(["train", str(tmp_path / "ls"), "method=ls", "weights=[0.25, 0.75]", "epochs=1", *TINY]) == 0
    assert list(load_run(tmp_path / "ls").models) == [(0.25, 0.75)]
    assert main(["train", str(tmp_path / "stl"), "method=stl", "task=1", "epochs=1", *TINY]) == 0
    assert list(load_run(tmp_path / "stl").models) == [(0.0, 1.0)]
