"""Runs on disk: a run directory holds the resolved config, checkpoints, the metrics log and the fronts.

Continuous methods (pamal, palora, lorpman) train one steerable model in the run directory. Discrete
methods train one plain model per preference in ``member_<k>/`` sub-directories: ``ls`` a grid of
weightings (``ls_points``, default 5), ``stl`` one model per task.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from paretorch.data import Splits, load_adult, load_census_kdd, multi_mnist
from paretorch.errors import ParetorchError
from paretorch.methods import METHODS, build_method
from paretorch.models import CensusMLP, MultiLeNet, ResNet18MTL
from paretorch.parameterisations import ParetoModel
from paretorch.preferences import simplex_grid
from paretorch.training import Accuracy, Front, StackedTrainer, Trainer, evaluate_front
from paretorch.training.evaluation import atomic_write_text

__all__ = ["DEFAULTS", "RunConfig", "evaluate_run", "load_run", "train_run"]

DISCRETE = ("ls", "stl", "pmtl", "mgda")
DATASETS = ("multimnist", "multimnist3", "adult", "adult3", "census-kdd")
MODELS = ("lenet", "mlp", "resnet18")
# Run-level keys; every other key goes to the method preset (sampler, parameterisation, TrainConfig).
DEFAULTS: dict[str, Any] = {
    "method": "palora", "dataset": "multimnist", "data_source": "embedded", "model": "auto", "epochs": 10,
    "batch_size": 256, "seed": 0, "train_size": 10_000, "val_size": 2_000, "test_size": 2_000,
    "device": "cpu", "ls_points": 5,
}


@dataclass
class RunConfig:
    values: dict[str, Any]

    @property
    def method_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k not in DEFAULTS}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def resolve_config(values: dict[str, Any]) -> RunConfig:
    merged = DEFAULTS | values
    if merged["method"] not in METHODS:
        raise ParetorchError(f"unknown method {merged['method']!r}; choose one of {', '.join(METHODS)}")
    if merged["dataset"] not in DATASETS:
        raise ParetorchError(f"unknown dataset {merged['dataset']!r}; choose one of {', '.join(DATASETS)}")
    if merged["model"] == "auto":
        merged["model"] = "lenet" if merged["dataset"].startswith("multimnist") else "mlp"
    if merged["model"] not in MODELS:
        raise ParetorchError(f"unknown model {merged['model']!r}; choose one of {', '.join(MODELS)}")
    return RunConfig(merged)


def load_splits(config: RunConfig) -> Splits:
    name, source, seed = config["dataset"], config["data_source"], config["seed"]
    if name.startswith("multimnist"):
        return multi_mnist(source, 3 if name == "multimnist3" else 2, config["train_size"], config["val_size"],
                           config["test_size"], seed=seed)
    if name == "census-kdd":
        return load_census_kdd(source, seed=seed)
    return load_adult(source, "pmtl" if name == "adult3" else "pamal", seed=seed)


def build_model(config: RunConfig, splits: Splits) -> nn.Module:
    torch.manual_seed(config["seed"])
    if config["model"] == "lenet":
        return MultiLeNet(splits.num_tasks, splits.num_classes)
    if config["model"] == "mlp":
        return CensusMLP(splits.input_shape[0], splits.num_tasks, num_classes=splits.num_classes)
    return ResNet18MTL(splits.num_tasks, splits.num_classes, in_channels=splits.input_shape[0])


def _members(config: RunConfig, num_tasks: int) -> list[dict[str, Any]]:
    if config["method"] == "ls":
        if config["ls_points"] == 1:
            return [{"weights": [1.0 / num_tasks] * num_tasks}]
        return [{"weights": pref.tolist()} for pref in simplex_grid(num_tasks, max(config["ls_points"], num_tasks))]
    if config["method"] == "stl":
        return [{"task": task} for task in range(num_tasks)]
    if config["method"] == "pmtl":
        return [{"k": k} for k in range(int(config.method_options.get("vectors", 5)))]
    return [{}]


def _loaders(config: RunConfig, splits: Splits) -> tuple[DataLoader, DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(config["seed"])
    size = config["batch_size"]
    return (DataLoader(splits.train, batch_size=size, shuffle=True, generator=generator),
            DataLoader(splits.val, batch_size=1024), DataLoader(splits.test, batch_size=1024))


def _cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


def train_run(values: dict[str, Any], run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train the run described by ``values`` into ``run_dir``; returns the directory."""
    config = resolve_config(values)
    directory = Path(run_dir)
    config_path = directory / "config.json"
    if resume:
        if not config_path.exists():
            raise ParetorchError(f"{directory} holds no run to resume (no config.json); start it without --resume")
        config = resolve_config(json.loads(config_path.read_text()) | values)
    elif (directory / "checkpoint.pt").exists() or any(directory.glob("member_*/checkpoint.pt")):
        raise ParetorchError(f"{directory} already holds a run; use --resume or choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, json.dumps(config.values, indent=2))
    splits = load_splits(config)
    train_loader, val_loader, _ = _loaders(config, splits)
    started = time.perf_counter()
    if config["method"] == "pmtl" and config.method_options.get("stacked", False):
        _train_stacked(config, splits, directory, train_loader, resume)
    for index, member in enumerate([] if config.method_options.get("stacked", False)
                                   else _members(config, splits.num_tasks)):
        target = directory if config["method"] not in DISCRETE else directory / f"member_{index}"
        setup = build_method(config["method"], build_model(config, splits), splits.num_tasks, config["epochs"],
                             config["seed"], **(config.method_options | member))
        setup.pm.to(config["device"])
        trainer = Trainer(setup.pm, [_cross_entropy] * splits.num_tasks, setup.sampler, setup.config,
                          run_dir=target, metrics=[Accuracy] * splits.num_tasks, progress=progress,
                          objective=setup.objective)
        resuming = resume and (target / "checkpoint.pt").exists()
        # A discrete member is one point, no front: only continuous methods are validated per epoch.
        trainer.fit(train_loader, None if config["method"] in DISCRETE else val_loader, resume=resuming)
        atomic_write_text(target / "member.json", json.dumps({"options": member}))
    summary = {"train_seconds": time.perf_counter() - started, "epochs": config["epochs"]}
    atomic_write_text(directory / "training.json", json.dumps(summary))
    return directory


def _train_stacked(config: RunConfig, splits: Splits, directory: Path, train_loader: DataLoader,
                   resume: bool) -> None:
    """Pareto MTL's K subproblems in one vmapped loop (:class:`StackedTrainer`), saved as the usual members."""
    members = _members(config, splits.num_tasks)
    targets = [directory / f"member_{index}" for index in range(len(members))]
    if resume:
        if all((t / "member.json").exists() for t in targets):
            return  # finished already
        raise ParetorchError("stacked Pareto MTL writes its members at the end and cannot resume a run cut short; "
                             "train it again into a new directory (or with stacked=false)")
    setups = [build_method("pmtl", build_model(config, splits), splits.num_tasks, config["epochs"], config["seed"],
                           **(config.method_options | member)) for member in members]
    for setup in setups:
        setup.pm.to(config["device"])
    objectives = [setup.objective for setup in setups if setup.objective is not None]
    trained = StackedTrainer([setup.pm.model for setup in setups], [_cross_entropy] * splits.num_tasks, objectives,
                             setups[0].config).fit(train_loader)
    for setup, model, target, member in zip(setups, trained, targets, members, strict=True):
        setup.pm.model.load_state_dict(model.state_dict())
        trainer = Trainer(setup.pm, [_cross_entropy] * splits.num_tasks, setup.sampler, setup.config, run_dir=target,
                          objective=setup.objective)
        trainer.epoch = config["epochs"]
        trainer.save_checkpoint()
        atomic_write_text(target / "member.json", json.dumps({"options": member, "stacked": True}))


@dataclass
class LoadedRun:
    config: RunConfig
    splits: Splits
    models: dict[tuple[float, ...], ParetoModel] | ParetoModel
    directory: Path


def load_run(run_dir: str | Path) -> LoadedRun:
    directory = Path(run_dir)
    if not (directory / "config.json").exists():
        raise ParetorchError(f"{directory} is not a run directory (no config.json); train one with paretorch train")
    config = resolve_config(json.loads((directory / "config.json").read_text()))
    splits = load_splits(config)
    members = _members(config, splits.num_tasks)
    loaded: dict[tuple[float, ...], ParetoModel] = {}
    discrete = config["method"] in DISCRETE
    for index, member in enumerate(members):
        target = directory / f"member_{index}" if discrete else directory
        setup = build_method(config["method"], build_model(config, splits), splits.num_tasks, config["epochs"],
                             config["seed"], **(config.method_options | member))
        trainer = Trainer(setup.pm, [_cross_entropy] * splits.num_tasks, setup.sampler, setup.config, run_dir=target)
        trainer.load_checkpoint()
        loaded[tuple(setup.sampler.sample(0, 1)[0].tolist())] = setup.pm
    models = loaded if discrete else next(iter(loaded.values()))
    return LoadedRun(config, splits, models, directory)


def evaluate_run(run: LoadedRun, split: str = "test") -> Front:
    """Evaluate a run's front (11/66/100-point grid, or its discrete models) on ``split`` and save it."""
    if split not in ("val", "test"):
        raise ParetorchError(f"split must be 'val' or 'test', got {split!r}")
    dataset = run.splits.test if split == "test" else run.splits.val
    loader = DataLoader(dataset, batch_size=1024)
    front = evaluate_front(run.models, loader, [Accuracy] * run.splits.num_tasks)
    front.metric_names = [f"{name} acc" for name in run.splits.task_names]
    models = run.models.values() if isinstance(run.models, dict) else [run.models]
    report = [pm.parameter_report() for pm in models]
    training = run.directory / "training.json"
    front.extra = {
        "method": run.config["method"], "dataset": run.config["dataset"], "split": split,
        "parameters": sum(r.base_total + r.added_total for r in report),
        "base_parameters": report[0].base_total,
        "overhead_percent": 100.0 * (sum(r.base_total + r.added_total for r in report) / report[0].base_total - 1),
        "train_seconds": json.loads(training.read_text())["train_seconds"] if training.exists() else None,
        "epochs": run.config["epochs"],
    }
    front.save(run.directory, f"front_{split}")
    return front
