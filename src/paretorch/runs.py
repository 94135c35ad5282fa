"""Runs on disk: a run directory holds the resolved config, checkpoints, the metrics log and the fronts.

Continuous methods (pamal, palora, lorpman) train one steerable model in the run directory. Discrete
methods train one plain model per preference in ``member_<k>/`` sub-directories: ``ls`` a grid of
weightings (``ls_points``; unset, 5 for 2 tasks, every vertex and the centre from 3), ``stl`` one model per task.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from paretorch._files import locked, read_json, remove_stale_temporaries, write_json
from paretorch._random import derive_seed, scoped_global_seed
from paretorch.catalogue import settings_text
from paretorch.data import (
    ADULT_MANY_MAX_TASKS,
    IGNORE_INDEX,
    MNIST_PICKLE,
    PARETO_MTL_FILES,
    Splits,
    has_mnist_idx,
    is_mnist_pickle,
    load_adult,
    load_adult_many,
    load_celeba,
    load_census_kdd,
    load_cifar100,
    load_pareto_mtl,
    load_sarcos,
    load_utkface,
    multi_mnist,
)
from paretorch.errors import ParetorchError
from paretorch.loading import batch_loader
from paretorch.methods import MethodSetup, build_method, get_method, method_names, validate_method_options
from paretorch.models import VGG16MTL, CensusMLP, MultiLeNet, ResNet18MTL, SegNetMTL
from paretorch.options import (
    COMPOSED_DATASETS,
    CURRENT_DEFAULT,
    DATASET_MODELS,
    DATASET_TASKS,
    RUN_OPTIONS,
    TRAIN_OPTIONS,
    check_device,
    protocol_settings,
)
from paretorch.parameterisations import ParetoModel
from paretorch.scenes import SCENE_DATASETS, SCENE_LOSSES, load_scenes, scene_metric
from paretorch.training import Accuracy, Front, MeanLoss, StackedTrainer, Trainer, evaluate_front
from paretorch.training import distributed as dist_state
from paretorch.training.epoch_logs import check_log_kinds, log_kinds

__all__ = ["DEFAULTS", "RunConfig", "evaluate_run", "load_run", "train_run"]

# Run-level keys and their defaults; every other key goes to the method preset (see paretorch.options).
DEFAULTS: dict[str, Any] = {name: option.default for name, option in RUN_OPTIONS.items()}
# Settings that a resumed run may change: where it runs, how long it trains, how often it validates, and how it
# reads and refits (none changes what a step computes).
RESUMABLE_CHANGES = ("device", "epochs", "eval_every", "recalibration_examples", "workers")
_MULTIMNIST_SIZES = {"train_size": 10_000, "val_size": 2_000, "test_size": 2_000}


@dataclass
class RunConfig:
    values: dict[str, Any]

    @property
    def method_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k not in DEFAULTS}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def validate_run_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a whole run's settings (run-level keys and the method's options); return them resolved.

    The result holds every run-level key (defaults filled in), the method options as given (validated) and
    those the preset marks ``recorded`` (defaults filled in): what a run directory's ``config.json`` records.
    """
    run = {name: option.check(values[name]) if name in values else option.default
           for name, option in RUN_OPTIONS.items()}
    check_device(run["device"])
    check_log_kinds(log_kinds(run["log"]))
    # The run's own settings first: the method's are checked for the task count that the data set gives.
    usual = DATASET_MODELS[run["dataset"]]
    dense, images = usual == "segnet", usual in ("lenet", "resnet18", "vgg16")
    run["model"] = _network(run)  # recorded resolved: a run keeps its network if the data set's usual one changes
    if dense != (run["model"] == "segnet"):
        raise ParetorchError(f"dataset {run['dataset']} needs model=segnet (one output per pixel)" if dense else
                             f"model segnet predicts per pixel (nyuv2, cityscapes); dataset {run['dataset']} has one "
                             "target per example: use model=auto")
    if run["model"] == "lenet" and usual != "lenet":
        kind = "colour images: use model=resnet18" if images else "tabular: use model=mlp"
        raise ParetorchError(f"model lenet takes grey 28 × 28 images (MultiMNIST, MultiFashion); dataset "
                             f"{run['dataset']} is {kind}")
    if run["model"] == "mlp" and images:
        # An MLP on flattened images would work, but CensusMLP expects a feature vector: say so.
        raise ParetorchError(f"model mlp takes feature vectors; dataset {run['dataset']} is images: use model=lenet "
                             "or resnet18")
    if run["model"] in ("resnet18", "vgg16") and not images:
        raise ParetorchError(f"model {run['model']} takes images; dataset {run['dataset']} is tabular: use "
                             "model=mlp")
    for name, option in RUN_OPTIONS.items():
        # Left at its default a setting is harmless anywhere (config.json records every one); a changed value that
        # this data set or network does not use is refused, as a method option that has no effect is.
        if option.applies is not None and run[name] != option.default and not option.applies(run):
            raise ParetorchError(f"{settings_text({name: run[name]}, quote=False)} has no effect with dataset "
                                 f"{run['dataset']} and model {run['model']}: it applies to {option.when}; "
                                 f"remove {name}=")
    if run["tasks"] is not None and run["tasks"] > ADULT_MANY_MAX_TASKS:
        raise ParetorchError(f"adult-many has {ADULT_MANY_MAX_TASKS} tasks, got tasks={run['tasks']}")
    method_given = {key: value for key, value in values.items() if key not in RUN_OPTIONS}
    resolved = validate_method_options(run["method"], method_given, run_num_tasks(run), tuple(RUN_OPTIONS))
    preset = get_method(run["method"])
    options = preset.options
    recorded = [name for name, option in options.items() if option.recorded]
    for name in recorded:
        if resolved[name] is None and options[name].unset_value is not None:
            resolved[name] = options[name].unset_value(run_num_tasks(run))
    # Training keys that a run records where they apply: the user's value, else the preset's own default.
    traits = {"traits": frozenset(preset.traits(resolved))}
    for name, option in TRAIN_OPTIONS.items():
        if option.recorded and name not in resolved and (option.applies is None or option.applies(traits)):
            resolved[name] = preset.train_defaults.get(name, option.default)
            recorded.append(name)
    return run | {key: resolved[key] for key in [*method_given, *recorded]}


def _network(values: Mapping[str, Any]) -> str | None:
    """A run's network: its ``model``, or for ``auto`` its data set's usual one (None for an unknown data set)."""
    model = values.get("model", RUN_OPTIONS["model"].default)
    return DATASET_MODELS.get(values.get("dataset", RUN_OPTIONS["dataset"].default)) if model == "auto" else model


def run_num_tasks(values: Mapping[str, Any]) -> int:
    """The task count of a run's dataset (``tasks=`` for adult-many)."""
    return values.get("tasks") or DATASET_TASKS[values["dataset"]]


def resolve_config(values: dict[str, Any]) -> RunConfig:
    """Validate a run's settings (see :mod:`paretorch.options`) and fill in the defaults."""
    return RunConfig(validate_run_options(values))


def _preset_options(method: str) -> Mapping[str, Any]:
    return get_method(method).options if method in method_names() else {}


def _stored_config(directory: Path) -> dict[str, Any]:
    values = read_json(directory / "config.json", "run config")
    if not isinstance(values, dict):
        raise ParetorchError(f"run config {directory / 'config.json'} is not a JSON object of settings")
    # Wave-1 runs wrote ls_points=5 for every method; only presets that declare it keep it.
    preset = _preset_options(str(values.get("method")))
    if values.get("ls_points") == 5 and "ls_points" not in preset:
        values.pop("ls_points")
    # Until 2026-12-07 model_width was taken, and ignored, with any network (now refused where it does nothing):
    # a run that recorded it beside another network trained at that network's own width, and loads with it.
    width, network = RUN_OPTIONS["model_width"], {"model": _network(values)}
    if values.get("model_width") not in (None, width.default) and width.applies and not width.applies(values | network):
        values.pop("model_width")
    # Runs saved before an option was recorded (e.g. low-rank runs before conv_layout: PEFT's layout; PaMaL and
    # CPMTL before their windows: 3 and 1 preferences per step) are rebuilt and resumed with what they trained with.
    for name, option in [*RUN_OPTIONS.items(), *preset.items(), *TRAIN_OPTIONS.items()]:
        if option.recorded and name not in values:
            legacy = option.legacy_value(values)
            if legacy is not CURRENT_DEFAULT:
                values[name] = legacy
        elif option.legacy_unset is not None and values.get(name, "") is None:
            # Recorded as unset (null) before unset values were recorded resolved: the rule of that time.
            values[name] = option.legacy_unset(run_num_tasks(values))
    return values


# Data sets that no package ships, and what their folder must hold.
_LOCAL_FILES = {
    "multifashion": "the folder with Fashion-MNIST's IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte"
                    "[.gz], t10k-…), or Pareto MTL's multi_fashion.pickle (the file, or its folder)",
    "multifashion-mnist": "Pareto MTL's multi_fashion_and_mnist.pickle (the file, or its folder)",
    "cifar100": "the folder with CIFAR-100's python version (train, test) or binary version (train.bin, test.bin)",
    "sarcos": "the folder with sarcos_inv.mat and sarcos_inv_test.mat",
    "celeba": "the folder with list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/",
    "utkface": "the folder of UTKFace's images",
    "nyuv2": "the folder of MTAN's preprocessed NYUv2 arrays, train/ and val/",
    "cityscapes": "the folder of MTAN's preprocessed CityScapes arrays, train/ and val/",
}


def check_data_source(values: Mapping[str, Any]) -> None:
    """Refuse a data set that no package ships when it is given no folder, or a folder that does not exist:
    before a run announces its settings or writes anything.

    >>> check_data_source({"dataset": "sarcos"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    paretorch.errors.ParetorchError: sarcos does not ship with any package; give data_source=FOLDER (the folder ...)
    >>> check_data_source({"dataset": "multimnist"})
    """
    name = values.get("dataset", RUN_OPTIONS["dataset"].default)
    source = str(values.get("data_source", RUN_OPTIONS["data_source"].default))
    if name not in _LOCAL_FILES:
        return
    if source == "embedded":
        raise ParetorchError(f"{name} does not ship with any package; give data_source=FOLDER ({_LOCAL_FILES[name]})")
    if not Path(source).is_dir() and not (name in PARETO_MTL_FILES and Path(source).is_file()):
        raise ParetorchError(f"data_source {source} is not a folder; give {_LOCAL_FILES[name]}")


def _of_mnist_digits(name: str) -> bool:
    """Whether a data set composes its images from MNIST's digits (``mnist.pkl.gz`` and MNIST's IDX files), not
    fashion items."""
    return name.startswith("multimnist")


def _pareto_mtl_file(name: str, source: str) -> Path | None:
    """Which of Pareto MTL's pickles a run reads (None: it composes its images): ``data_source`` itself, or the
    data set's file in that folder when the folder has no digits to compose from (IDX files or ``mnist.pkl.gz``
    win: a folder of MNIST's files keeps composing)."""
    if name not in PARETO_MTL_FILES or source == "embedded":
        return None
    path, of_digits = Path(source), _of_mnist_digits(name)
    if path.is_file():
        return None if of_digits and is_mnist_pickle(path) else path
    holds_mnist_pickle = (path / MNIST_PICKLE).exists()
    if has_mnist_idx(path) or (of_digits and holds_mnist_pickle):
        return None
    pickled = path / PARETO_MTL_FILES[name]
    # A folder of MNIST's mnist.pkl.gz alone holds no fashion items: name the file this data set would read.
    return pickled if pickled.exists() or name not in COMPOSED_DATASETS or holds_mnist_pickle else None


def load_splits(config: RunConfig) -> Splits:
    name, source, seed = config["dataset"], config["data_source"], config["seed"]
    check_data_source(config.values)
    pickled = _pareto_mtl_file(name, source)
    if pickled is None and name in COMPOSED_DATASETS:
        sizes = {key: config[key] or default for key, default in _MULTIMNIST_SIZES.items()}
        return multi_mnist(source, DATASET_TASKS[name], sizes["train_size"], sizes["val_size"],
                           sizes["test_size"], seed=seed, val_digits=config["val_digits"])
    if pickled is not None:
        if config["val_digits"] != RUN_OPTIONS["val_digits"].default:
            raise ParetorchError(f"val_digits={config['val_digits']} composes validation images from digits; "
                                 f"{pickled} holds composed images, whose validation split is 10 % of its training "
                                 "images: remove val_digits=")
        try:
            splits = load_pareto_mtl(pickled, seed=seed)
        except ParetorchError as error:
            if not _of_mnist_digits(name):
                raise
            # The user may have meant MNIST's own files, which these data sets compose from: name them too.
            raise ParetorchError(f"{error}; {name} also composes its images from MNIST's {MNIST_PICKLE} or a folder "
                                 "of its IDX files") from None
    elif name in SCENE_DATASETS:
        splits = load_scenes(name, source, seed=seed)
    elif name == "utkface":
        splits = load_utkface(source, seed=seed)
    elif name == "celeba":
        splits = load_celeba(source)
    elif name == "sarcos":
        splits = load_sarcos(source, seed=seed)
    elif name == "cifar100":
        splits = load_cifar100(source, seed=seed)
    elif name == "adult-many":
        splits = load_adult_many(source, run_num_tasks(config.values), seed=seed)
    elif name == "census-kdd":
        splits = load_census_kdd(source, seed=seed)
    else:
        splits = load_adult(source, "pmtl" if name == "adult3" else "pamal", seed=seed)
    # Other splits are used whole unless a size is given: then their first rows (already shuffled by seed).
    for key, split in (("train_size", "train"), ("val_size", "val"), ("test_size", "test")):
        if config[key] is not None:
            dataset = getattr(splits, split)
            count = min(config[key], len(dataset))
            # In-memory data stays a TensorDataset, which the loaders slice a batch at a time.
            setattr(splits, split, TensorDataset(*(tensor[:count] for tensor in dataset.tensors))
                    if isinstance(dataset, TensorDataset) else Subset(dataset, range(count)))
    return splits


def build_model(config: RunConfig, splits: Splits) -> nn.Module:
    if config["model"] == "lenet":
        return MultiLeNet(splits.num_tasks, splits.num_classes)
    if config["model"] == "mlp":
        return CensusMLP(splits.input_shape[0], splits.num_tasks, num_classes=splits.num_classes)
    if config["model"] == "segnet":
        height, width = splits.input_shape[1:]
        # As many pooling stages (up to SegNet's 5) as halve the image exactly.
        stages = next((k for k in range(5, 0, -1) if height % 2**k == 0 and width % 2**k == 0), 0)
        if stages == 0:
            raise ParetorchError(f"segnet pools by 2: images of {height} × {width} need an even height and width")
        return SegNetMTL(splits.classes(), splits.input_shape[0], config["model_width"], stages)
    if config["model"] == "vgg16":
        return VGG16MTL(splits.num_tasks, splits.num_classes, in_channels=splits.input_shape[0])
    return ResNet18MTL(splits.num_tasks, splits.num_classes, in_channels=splits.input_shape[0],
                       dropout=config["dropout"], pool_size=config["pool_size"])


def build_setup(config: RunConfig, splits: Splits, member: dict[str, Any]) -> MethodSetup:
    """The model and method preset of one member, initialised from the run's seed (the caller's global random
    stream is left as it was)."""
    with scoped_global_seed(config["seed"]):
        setup = build_method(config["method"], build_model(config, splits), splits.num_tasks, config["epochs"],
                             config["seed"], **(config.method_options | member))
    setup.pm.use_channels_last(_channels_last(config, setup.pm))
    return setup


def _channels_last(config: RunConfig, pm: nn.Module) -> bool:
    """The run's ``channels_last``, or when unset: on for a convolutional model on the CPU, where it was measured
    (benchmarks/forward_backward.py --channels-last); GPUs keep the default layout until it is measured there."""
    if config["channels_last"] is not None:
        return bool(config["channels_last"])
    convolutional = any(isinstance(module, (nn.Conv2d, nn.Conv3d)) for module in pm.modules())
    return convolutional and torch.device(config["device"]).type == "cpu"


def _members(config: RunConfig, num_tasks: int) -> list[dict[str, Any]]:
    """One entry per model a run trains: the options that differ between the members of a discrete method."""
    return get_method(config["method"]).members_of(config.method_options, num_tasks)


def _same_options(stored: Any, member: Any) -> bool:
    # JSON turns tuples into lists; weights are compared to float32 precision (they come from float32 grids); a
    # key left out is unset (wave-1 LS members recorded only their weights, not "ls_points": null).
    if isinstance(member, Mapping):
        return isinstance(stored, Mapping) and all(
            _same_options(stored.get(key), member.get(key)) for key in {*stored, *member})
    if isinstance(member, list | tuple):
        return isinstance(stored, list) and len(stored) == len(member) and all(
            _same_options(a, b) for a, b in zip(stored, member, strict=True))
    if isinstance(member, float) and isinstance(stored, int | float) and not isinstance(stored, bool):
        return abs(stored - member) <= 1e-6
    return stored == member


def _check_members(config: RunConfig, directory: Path, members: list[dict[str, Any]]) -> None:
    """Refuse a discrete run whose members its settings no longer describe (say a default that changed without
    being recorded): a member trained with other options would be labelled with a preference it never trained at,
    and more models on disk than the settings give would be dropped without a word."""
    if not _discrete(config):
        return
    fix = "restore the config.json this run was trained with, or train a new run"
    for index, member in enumerate(members):
        record = _member_dir(config, directory, index) / "member.json"
        if not record.exists():
            continue
        stored = read_json(record, "member record")
        options = stored.get("options") if isinstance(stored, dict) else None
        if not _same_options(options, member):
            raise ParetorchError(f"{record.parent} was trained with {options}, but the run's config.json now gives "
                                 f"it {dict(member)}: {fix}")
    if _member_dir(config, directory, len(members)).exists():
        found = len(list(directory.glob("member_*")))
        raise ParetorchError(f"{directory} holds {found} models, but the run's config.json now gives "
                             f"{len(members)}: {fix}")


def _discrete(config: RunConfig) -> bool:
    return get_method(config["method"]).discrete


def _member_dir(config: RunConfig, directory: Path, index: int) -> Path:
    return directory / f"member_{index}" if _discrete(config) else directory


def _loaders(config: RunConfig, splits: Splits) -> tuple[DataLoader, DataLoader, DataLoader]:
    # The order of an epoch is a permutation drawn from (seed, epoch) alone (the Trainer sets the sampler's
    # epoch), dealt out to the processes: process r of W takes every W-th sample of it, so the W batches of a
    # step together hold the samples one process would take in its batch of batch_size. Runs on any number of
    # processes therefore see the same batches, and a run may resume on another number of processes.
    world = dist_state.world_size()
    order = DistributedSampler(splits.train, num_replicas=world, rank=dist_state.rank(), shuffle=True,
                               seed=derive_seed(config["seed"], "data"))
    evaluation, reading = _evaluation_batch(config), _reading(config)
    return (batch_loader(splits.train, config["batch_size"] // world, order, **reading),
            batch_loader(splits.val, evaluation, **reading), batch_loader(splits.test, evaluation, **reading))


def _reading(config: RunConfig) -> dict[str, Any]:
    """How the loaders of data read from files (CelebA, UTKFace, NYUv2, CityScapes) read it: ``workers``
    processes, by default none on the CPU, where training needs the cores, and on a GPU up to 8 per training
    process (the GPU would otherwise wait on one process decoding images), with batches in pinned memory there."""
    cuda = str(config["device"]).startswith("cuda")
    workers = config["workers"]
    if workers is None:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        workers = min(8, max((os.cpu_count() or 1) // per_node - 1, 0)) if cuda else 0
    return {"workers": workers, "pin_memory": cuda}


class _BuiltOnUse:
    """Batches whose loader is built when first walked: a run without BatchNorm never walks them, and loading a
    run to evaluate it must not compose its training images (MultiMNIST's are built on first use)."""

    def __init__(self, build: Callable[[], DataLoader]) -> None:
        self._build, self._loader = build, None

    def __iter__(self) -> Iterator[Any]:
        if self._loader is None:
            self._loader = self._build()
        return iter(self._loader)


def recalibration_data(config: RunConfig, splits: Splits) -> Iterable[Any] | None:
    """The training examples on which evaluation and export refit a steerable model's BatchNorm statistics: a
    draw from the run's seed alone (the same at every epoch, in ``eval`` and ``export``, on every process), in
    batches of the run's batch size, built when first walked; None when ``recalibration_examples`` is 0."""
    if not config["recalibration_examples"]:
        return None

    def build() -> DataLoader:
        generator = torch.Generator().manual_seed(derive_seed(config["seed"], "recalibration"))
        order = torch.randperm(len(splits.train), generator=generator)  # type: ignore[arg-type]
        chosen = order[: config["recalibration_examples"]].tolist()
        return batch_loader(splits.train, config["batch_size"], sampler=chosen,  # type: ignore[arg-type]
                            **_reading(config))
    return _BuiltOnUse(build)


def _cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Samples of other tasks (CIFAR-100's superclasses) are ignored; a batch without any sample of this task
    # contributes zero (F.cross_entropy would return NaN, the mean over nothing).
    if target.dtype == torch.int64 and not (target != IGNORE_INDEX).any():
        return output.sum() * 0.0
    return F.cross_entropy(output, target)


def _squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.reshape(target.shape), target)


def _mse_metric() -> MeanLoss:
    return MeanLoss(_squared_error, "mse")


def task_losses(splits: Splits) -> list[Any]:
    """One training loss per task, by its kind: cross-entropy (classification), squared error (regression), or
    the pixel-wise losses of :mod:`paretorch.scenes` (segmentation, depth, normals)."""
    plain = {"classification": _cross_entropy, "regression": _squared_error}
    return [plain.get(kind) or SCENE_LOSSES[kind] for kind in splits.kinds()]


def task_metrics(splits: Splits) -> list[Any]:
    """One metric factory per task, by its kind: accuracy, mean squared error, mean IoU, depth error or normal
    angle error."""
    plain = {"classification": Accuracy, "regression": _mse_metric}
    return [plain.get(kind) or scene_metric(kind, count)
            for kind, count in zip(splits.kinds(), splits.classes(), strict=True)]


# Dense targets are large: evaluate them a few images at a time. How many preferences one pass stacks is
# measured from the model's activations (evaluation.preferences_per_pass).
def _evaluation_batch(config: RunConfig) -> int:
    return config["batch_size"] if config["dataset"] in SCENE_DATASETS else 1024


def _trainer(config: RunConfig, splits: Splits, setup: MethodSetup, target: Path, progress: bool = False
             ) -> Trainer:
    # By task name: the logs, the fronts and the saved model carry the data set's task names.
    names = splits.task_names
    return setup.trainer(dict(zip(names, task_losses(splits), strict=True)), run_dir=target,
                         metrics=dict(zip(names, task_metrics(splits), strict=True)),
                         progress=progress, distributed=dist_state.active(),
                         logs=log_kinds(config["log"]),
                         recalibration_examples=config["recalibration_examples"],
                         recalibration_data=recalibration_data(config, splits))


@contextlib.contextmanager
def _processes(config: RunConfig) -> Iterator[str]:
    """Join torchrun's process group when this process was launched by ``torchrun`` (gloo on CPU, NCCL on
    GPUs, one GPU per process by ``LOCAL_RANK``); yields the device this process trains on."""
    device = config["device"]
    if not dist_state.launched_by_torchrun() or dist_state.active():
        yield device
        return
    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        world = dist_state.world_size()
        if config["batch_size"] % world:
            raise ParetorchError(f"batch_size={config['batch_size']} is the batch of all {world} processes together "
                                 f"and must divide among them: use a multiple of {world}")
        if config.method_options.get("stacked", False) and world > 1:
            raise ParetorchError("stacked Pareto MTL trains in one process; drop stacked=true or run without torchrun")
        yield device
        # No process leaves while another still writes or talks to it (rank 0 writes the last files alone).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _resume_config(directory: Path, values: dict[str, Any]) -> RunConfig:
    if not (directory / "config.json").exists():
        raise ParetorchError(f"{directory} holds no run to resume (no config.json); start it without --resume")
    stored = resolve_config(_stored_config(directory))
    effective = stored.values | validate_method_options(stored["method"], stored.method_options)

    def differs(key: str) -> bool:
        option = RUN_OPTIONS.get(key) or get_method(stored["method"]).options.get(key) or TRAIN_OPTIONS.get(key)
        if option is None or key not in effective:
            return True  # an option the run never had
        try:
            return option.check(values[key]) != effective[key]
        except ParetorchError:
            return True
    changed = sorted(key for key in values if key not in RESUMABLE_CHANGES and differs(key))
    if changed:
        shown = ", ".join(f"{key} ({effective.get(key)!r} -> {values[key]!r})" for key in changed)
        raise ParetorchError(f"--resume cannot change {shown}: a resumed run keeps its settings (only "
                             f"{', '.join(RESUMABLE_CHANGES[:-1])} and {RESUMABLE_CHANGES[-1]} may change); train "
                             "into a new directory instead")
    return resolve_config(stored.values | {key: values[key] for key in RESUMABLE_CHANGES if key in values})


def _check_resumable(config: RunConfig, splits: Splits, directory: Path) -> None:
    # Load every checkpoint the run has before anything is written: a corrupt or mismatched one stops the
    # command with the run directory untouched.
    members = _members(config, splits.num_tasks)
    _check_members(config, directory, members)
    for index, member in enumerate(members):
        target = _member_dir(config, directory, index)
        if (target / "checkpoint.pt").exists():
            trainer = _trainer(config, splits, build_setup(config, splits, member), target)
            trainer.load_checkpoint()
            if trainer.epoch > config["epochs"]:
                raise ParetorchError(f"{target} has trained {trainer.epoch} epochs already; resume with "
                                     f"epochs >= {trainer.epoch}")


def train_run(values: dict[str, Any], run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train the run described by ``values`` into ``run_dir``; returns the directory.

    The settings are validated before anything is written; the directory is locked against a second process;
    ``resume=True`` continues a killed run exactly (only :data:`RESUMABLE_CHANGES` may change) and writes
    nothing until its checkpoints have loaded.
    """
    directory = Path(run_dir)
    if directory.exists() and not directory.is_dir():
        raise ParetorchError(f"run directory {directory} is a file; choose a folder path")
    # A new run takes its data set's protocol for the keys it leaves out (recorded in its config.json); a resumed
    # run keeps what it recorded.
    config = _resume_config(directory, values) if resume else resolve_config(protocol_settings(values) | values)
    if not resume and ((directory / "checkpoint.pt").exists() or any(directory.glob("member_*/checkpoint.pt"))):
        raise ParetorchError(f"{directory} already holds a run; use --resume or choose another directory")
    splits = load_splits(config)
    with _processes(config) as device:
        main = dist_state.is_main()  # under torchrun, rank 0 alone locks and writes the run directory
        with locked(directory) if main else contextlib.nullcontext():
            if main:
                remove_stale_temporaries(directory)
            if resume:
                _check_resumable(config, splits, directory)
            if main:
                write_json(directory / "config.json", config.values)
            train_loader, val_loader, _ = _loaders(config, splits)
            started = time.perf_counter()
            if config.method_options.get("stacked", False):  # Pareto MTL's K subproblems, vmapped
                _train_stacked(config, splits, directory, train_loader, resume)
            else:
                for index, member in enumerate(_members(config, splits.num_tasks)):
                    target = _member_dir(config, directory, index)
                    setup = build_setup(config, splits, member)
                    setup.pm.to(device)
                    trainer = _trainer(config, splits, setup, target, progress)
                    # A discrete member is one point, no front: only continuous methods are validated per epoch.
                    trainer.fit(train_loader, None if _discrete(config) else val_loader,
                                resume=resume and (target / "checkpoint.pt").exists())
                    if main:
                        write_json(target / "member.json", {"options": member})
            if main:
                summary = {"train_seconds": time.perf_counter() - started, "epochs": config["epochs"],
                           "processes": dist_state.world_size()}
                write_json(directory / "training.json", summary)
    return directory


def _train_stacked(config: RunConfig, splits: Splits, directory: Path, train_loader: DataLoader,
                   resume: bool) -> None:
    """Pareto MTL's K subproblems in one vmapped loop (:class:`StackedTrainer`), saved as the usual members."""
    members = _members(config, splits.num_tasks)
    targets = [_member_dir(config, directory, index) for index in range(len(members))]
    if resume:
        if all((t / "member.json").exists() for t in targets):
            return  # finished already
        raise ParetorchError("stacked Pareto MTL writes its members at the end and cannot resume a run cut short; "
                             "train it again into a new directory (or with stacked=false)")
    setups = [build_setup(config, splits, member) for member in members]
    for setup in setups:
        setup.pm.to(config["device"])
    objectives = [setup.objective for setup in setups if setup.objective is not None]
    trained = StackedTrainer([setup.pm.model for setup in setups], task_losses(splits), objectives,
                             setups[0].config).fit(train_loader)
    for setup, model, target, member in zip(setups, trained, targets, members, strict=True):
        setup.pm.model.load_state_dict(model.state_dict())
        trainer = _trainer(config, splits, setup, target)
        trainer.epoch = config["epochs"]
        trainer.save_checkpoint()
        write_json(target / "member.json", {"options": member, "stacked": True})


_UNITS = {"classification": "acc", "regression": "mse", "segmentation": "mIoU", "depth": "abs err",
          "normals": "angle°"}


@dataclass
class LoadedRun:
    config: RunConfig
    splits: Splits
    models: dict[tuple[float, ...], ParetoModel] | ParetoModel
    directory: Path


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a run directory (settings, data, every trained model) without changing anything in it."""
    directory = Path(run_dir)
    if not (directory / "config.json").exists():
        raise ParetorchError(f"{directory} is not a run directory (no config.json); train one with paretorch train")
    config = resolve_config(_stored_config(directory))
    splits = load_splits(config)
    loaded: dict[tuple[float, ...], ParetoModel] = {}
    members = _members(config, splits.num_tasks)
    _check_members(config, directory, members)
    for index, member in enumerate(members):
        target = _member_dir(config, directory, index)
        if not (target / "checkpoint.pt").exists():
            raise ParetorchError(f"{target} has no checkpoint: the run's training did not finish; continue it with "
                                 f"paretorch train {directory} --resume")
        setup = build_setup(config, splits, member)
        trainer = _trainer(config, splits, setup, target)
        trainer.load_checkpoint()
        # A discrete member is labelled by the preference it was trained at (Fixed samplers draw nothing).
        loaded[tuple(setup.sampler.sample(0, 1)[0].tolist())] = setup.pm
    discrete = _discrete(config)
    models = loaded if discrete else next(iter(loaded.values()))
    return LoadedRun(config, splits, models, directory)


def evaluate_run(run: LoadedRun, split: str = "test", out: str | os.PathLike[str] | None = None,
                 save: bool = True) -> Front:
    """Evaluate a run's front (11/66/100-point grid, or its discrete models) on ``split`` and save it as
    ``front_SPLIT.json`` and ``.csv`` in ``out`` (default: the run directory; ``save=False``: nowhere)."""
    if split not in ("val", "test"):
        raise ParetorchError(f"split must be 'val' or 'test', got {split!r}")
    dataset = run.splits.test if split == "test" else run.splits.val
    loader = batch_loader(dataset, _evaluation_batch(run.config), **_reading(run.config))
    front = evaluate_front(run.models, loader, task_metrics(run.splits),
                           recalibrate=recalibration_data(run.config, run.splits))
    units = [_UNITS[kind] for kind in run.splits.kinds()]
    front.metric_names = [f"{name} {unit}" for name, unit in zip(run.splits.task_names, units, strict=True)]
    models = run.models.values() if isinstance(run.models, dict) else [run.models]
    report = [pm.parameter_report() for pm in models]
    training = run.directory / "training.json"
    front.extra = {
        "method": run.config["method"], "dataset": run.config["dataset"], "split": split,
        "discrete": _discrete(run.config),
        "parameters": sum(r.base_total + r.added_total for r in report),
        "base_parameters": report[0].base_total,
        "overhead_percent": 100.0 * (sum(r.base_total + r.added_total for r in report) / report[0].base_total - 1),
        "train_seconds": read_json(training, "training summary").get("train_seconds") if training.exists() else None,
        "epochs": run.config["epochs"],
    }
    if save:
        front.save(run.directory if out is None else Path(out), f"front_{split}")
    return front
