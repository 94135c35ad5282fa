"""The papers' methods as named presets of (parameterisation, preference sampler, objective, regularisers).

A preset is data: a :class:`MethodPreset` with its name, its typed options (:class:`~paretorch.options.Option`,
defaults included), a ``build`` function that turns the model and the resolved options into a :class:`Recipe`,
whether it is discrete (one plain model per preference) and, if so, which members a run trains. The
built-in presets are registered below; :func:`register_method` adds a user's own, which then works everywhere a
built-in one does (``build_method``, ``paretorch train method=…``).

>>> sorted(method_names())[:3]
['cosmos', 'cpmtl', 'lorpman']
>>> validate_method_options("palora", {"rank": 2})["rank"]
2
>>> validate_method_options("palora", {"rnak": 2})
Traceback (most recent call last):
...
paretorch.errors.ParetorchError: unknown option 'rnak' for method palora; did you mean 'rank'? ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from paretorch.errors import ParetorchError
from paretorch.objectives import EPO, MGDA, Objective, ParetoMTL, PreferenceMOO
from paretorch.options import TRAIN_OPTIONS, Option, option_table
from paretorch.parameterisations import ParetoModel, conditioned, ensemble, film, hypernetwork, lowrank, plain
from paretorch.parameterisations._lowrank import ADAPTED_LAYERS, CONV_LAYOUTS
from paretorch.parameterisations._select import has_layers_outside, task_heads, with_excluded
from paretorch.preferences import (
    AnnealedGrid,
    Dirichlet,
    Fixed,
    PreferenceSampler,
    simplex_grid,
    symmetric_grid_size,
    unit_vectors,
)
from paretorch.training.loss import ParetoLoss, TaskLoss
from paretorch.training.precision import check_gradient_precision
from paretorch.training.regularisers import CosineAlignment, MultiForwardOrdering, Orthogonality, Regulariser
from paretorch.training.trainer import TrainConfig, Trainer, configured_loss, freeze_if_due, parameter_groups

__all__ = [
    "MethodPreset",
    "MethodSetup",
    "Recipe",
    "build_method",
    "get_method",
    "method_names",
    "pareto_expansion",
    "register_method",
    "validate_method_options",
]


@dataclass
class Recipe:
    """What a preset's ``build`` returns: the wrapped model, the sampler, the objective (``None``: linear
    scalarisation), the regularisers, and the preset's defaults for :class:`~paretorch.TrainConfig` fields
    (the user's training options override them)."""

    pm: ParetoModel
    sampler: PreferenceSampler
    objective: Objective | None = None
    regularisers: list[Regulariser] = field(default_factory=list)
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildInputs:
    """What a preset's ``build`` receives: the user's model, the task count, the preset's resolved options
    (every key of its table, defaults filled in), the number of epochs and the run's seed."""

    model: nn.Module
    num_tasks: int
    options: Mapping[str, Any]
    epochs: int
    seed: int


@dataclass(frozen=True)
class MethodPreset:
    """A named method: its options and how to build it.

    - ``options``: the preset's own settings (typed, with defaults and help); every key of
      :data:`~paretorch.options.TRAIN_OPTIONS` is accepted too, where its ``applies`` condition holds.
    - ``build(inputs) -> Recipe``.
    - ``discrete``: the method trains one plain model per preference; ``members(options, num_tasks)`` lists
      the option overrides of each model a run trains (a continuous preset trains one model).
    - ``traits(options)``: what the preset is made of, for the conditions of training options
      (``"continuous"``, ``"adapters"``, ``"gradients"``; see :func:`~paretorch.options.has_trait`).
    - ``check(options, num_tasks)``: extra checks that need the task count (optional).
    - ``train_defaults``: the preset's own defaults for training keys (:data:`~paretorch.options.TRAIN_OPTIONS`),
      which the user's override; a run records those that the option table marks ``recorded``.
    """

    name: str
    summary: str
    options: Mapping[str, Option]
    build: Callable[[BuildInputs], Recipe]
    discrete: bool = False
    members: Callable[[Mapping[str, Any], int], list[dict[str, Any]]] | None = None
    traits: Callable[[Mapping[str, Any]], Iterable[str]] = lambda options: ()
    check: Callable[[Mapping[str, Any], int], None] | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)

    def members_of(self, options: Mapping[str, Any], num_tasks: int) -> list[dict[str, Any]]:
        """The option overrides of each model a run of this preset trains (``[{}]``: one model)."""
        return self.members(options, num_tasks) if self.members is not None else [{}]


_PRESETS: dict[str, MethodPreset] = {}


def register_method(preset: MethodPreset, replace: bool = False) -> MethodPreset:
    """Add ``preset`` to the registry (``replace=True`` to redefine an existing name); returns it.

    >>> from paretorch.options import Option
    >>> preset = MethodPreset("uniform-ls", "plain model, uniform weights", {},
    ...                       lambda inputs: Recipe(plain(inputs.model, inputs.num_tasks),
    ...                                             Fixed([[1 / inputs.num_tasks] * inputs.num_tasks])),
    ...                       discrete=True)
    >>> register_method(preset).name in method_names()
    True
    """
    if not preset.name or not isinstance(preset.name, str):
        raise ParetorchError(f"a method preset needs a name, got {preset.name!r}")
    if preset.name in _PRESETS and not replace:
        raise ParetorchError(f"method {preset.name!r} is registered already; pass replace=True to redefine it")
    clash = sorted(set(preset.options) & set(TRAIN_OPTIONS))
    if clash:
        raise ParetorchError(f"method {preset.name!r} declares {', '.join(clash)}, which are training options "
                             "every method has; give them other names")
    _PRESETS[preset.name] = preset
    return preset


def method_names() -> list[str]:
    """The registered presets, in registration order."""
    return list(_PRESETS)


def get_method(name: str) -> MethodPreset:
    """The registered preset ``name``, or a one-line error that suggests the closest name."""
    if name not in _PRESETS:
        close = difflib.get_close_matches(str(name), list(_PRESETS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParetorchError(f"unknown method {name!r}; {hint}choose one of {', '.join(_PRESETS)}")
    return _PRESETS[name]


# ----- validation ----------------------------------------------------------------------------------------------------
def _unknown(key: str, method: str, valid: list[str]) -> ParetorchError:
    owners = [name for name, preset in _PRESETS.items() if key in preset.options]
    if owners:
        return ParetorchError(f"option {key!r} belongs to method {' and '.join(owners)}, not {method}; remove it "
                              f"(method {method} takes: {', '.join(_PRESETS[method].options) or 'no own options'})")
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ParetorchError(f"unknown option {key!r} for method {method}; {hint}valid keys: {', '.join(valid)}")


def validate_method_options(method: str, given: Mapping[str, Any], num_tasks: int | None = None,
                            run_keys: Sequence[str] = ()) -> dict[str, Any]:
    """Check the options given for ``method`` and return them with every default of the preset filled in.

    Training settings (:data:`~paretorch.options.TRAIN_OPTIONS`) are returned only where given. An option the
    method does not use, or one that only applies under another setting (``momentum`` without
    ``optimizer=sgd``), is refused with the condition it needs. With ``num_tasks``, task-shaped options are
    checked too.
    """
    preset = get_method(method)
    table = preset.options
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
    settings["traits"] = frozenset(preset.traits(resolved))
    for key in given:
        option = table.get(key) or TRAIN_OPTIONS[key]
        if option.applies is not None and not option.applies(settings):
            raise ParetorchError(f"option {key!r} has no effect with method {method} and these settings: it applies "
                                 f"to {option.when}; remove it")
    # Refused here, before a run writes anything, as the loss would refuse it when built.
    check_gradient_precision(settings["precision"], settings["gradient_balancing"],
                             f"method {method}'s objective" if "gradients" in settings["traits"] else None)
    if num_tasks is not None and preset.check is not None:
        preset.check(resolved, num_tasks)
    return resolved


# ----- what build_method returns --------------------------------------------------------------------------------------
@dataclass
class MethodSetup:
    """What a method needs to train: the steerable model, the preference sampler, the training config, the
    objective and the regularisers. :meth:`loss` and :meth:`trainer` put them together."""

    name: str
    pm: ParetoModel
    sampler: PreferenceSampler
    config: TrainConfig
    objective: Objective | None = None
    regularisers: list[Regulariser] = field(default_factory=list)

    def loss(self, losses: Sequence[TaskLoss], total_steps: int | None = None) -> ParetoLoss:
        """The method's :class:`~paretorch.ParetoLoss` for your own training loop."""
        return configured_loss(self.pm, losses, self.sampler, self.config, self.objective, self.regularisers,
                               total_steps)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for your own optimiser, with the method's learning rates (adapters or ensemble
        members at lr × T where the preset says so): ``torch.optim.Adam(setup.parameter_groups())``."""
        return parameter_groups(self.pm, self.config)

    def freeze_if_due(self, epoch: int) -> bool:
        """Call at the start of each epoch of your own loop: from the preset's freeze epoch on (LORPMAN's 80 %
        of training) only the adapters train. True when this call froze the base network: rebuild a
        ``DistributedDataParallel`` wrapper then (see :func:`~paretorch.training.trainer.freeze_if_due`)."""
        return freeze_if_due(self.pm, self.config, epoch)

    def trainer(self, losses: Sequence[TaskLoss], **kwargs: Any) -> Trainer:
        """A :class:`~paretorch.Trainer` of this method (keyword arguments go to the Trainer and may replace the
        method's ``objective`` or ``regularisers``)."""
        return Trainer(self.pm, losses, self.sampler, self.config,
                       **({"objective": self.objective, "regularisers": self.regularisers} | kwargs))


def build_method(name: str, model: nn.Module, num_tasks: int, epochs: int = 10, seed: int = 0,
                 **overrides: Any) -> MethodSetup:
    """Build a registered method preset with the papers' defaults.

    - ``pamal`` (PaMaL): ensemble (BatchNorm's scale and shift as members too), Dirichlet(p) with p = 0.5 up to 3
      tasks and 2 from 4 (unless ``p`` is given), window ``m=4``, λ_p = 1 (lexicographic edges), members at
      lr × T (its §5; at lr before 2026-12-07).
    - ``palora`` (PaLoRA): low-rank r = 1, α = 2, convolutions in loralib's layout (rank r·k, as its official
      code), AnnealedGrid with ``m`` rays (unset: 4 for 2 tasks, 6 for 3, T + 1 from 4), Q = 0.2 and margin 0.01
      (the official code's schedule), adapters at lr × T (its ``reweight_lr``), no regulariser.
    - ``lorpman`` (LORPMAN): low-rank r = 8 (convolutions in PEFT's layout) on the shared bottom, as its paper
      (task heads found by :func:`~paretorch.parameterisations.task_heads` stay plain; ``adapt_heads=True``
      adapts them too), s = 6, Dirichlet(p) with p = 0.2 up to 3 tasks and 2 from 4 (unless ``p`` is given),
      window ``m=4``, λ_p = 0, λ_o = 1, the main network frozen after
      ``freeze_fraction`` = 80 % of training (8 of 10 epochs, as the paper's CelebA and CIFAR-100 runs).
    - ``cpmtl`` (Controllable Pareto MTL): hypernetwork (2-layer MLP, 100 hidden, chunked only when the target is
      too large for one projection per tensor, e.g. a ResNet-18; ``chunk_size`` sets it, 0 never chunks;
      generating θ₀ + 0.1·H(λ) around a trainable copy θ₀ of the target's weights, beyond the papers, unless
      ``residual=False``),
      Dirichlet(p) with p = 0.2 up to 3 tasks and 1 from 4, ``m`` preferences per step (default 4, its appendix's
      batched preferences),
      preference-based linear scalarisation (Eq. 8), or with ``solver="moo"`` the preference-based
      multi-objective gradient (Eq. 9, ``num_refs`` = 3;
      ``infeasible`` and ``references`` as in :class:`~paretorch.objectives.PreferenceMOO`).
    - ``phn`` (Pareto HyperNetwork): hypernetwork with a 3-layer MLP (residual as cpmtl's), Dirichlet(p) as cpmtl's,
      2 preferences per step (``m``; PHN's paper draws one ray), linear scalarisation,
      or ``solver="epo"`` (EPO search per ray, needs scipy); ``solver="moo"`` works here too.
    - ``cosmos`` (COSMOS): the preference as extra input of the first layer, Dirichlet(p=1.2), loss
      λᵀL − μ·cos(L, λ) with μ = ``cosine_coef`` = 1; ``conditioning="film"`` conditions by FiLM instead
      (:func:`~paretorch.parameterisations.film`, ``targets`` / ``exclude`` select the layers).
    - ``ls``: the plain model with fixed ``weights`` (default uniform).
    - ``stl``: the plain model trained on task ``task`` alone (one run per task gives the single-task set).
    - ``mgda``: the plain model with MGDA's min-norm weights each step (gradients on the shared parameters;
      ``ub=True``: MGDA-UB, gradients with respect to the output of the submodule ``representation``,
      default ``"encoder"``).
    - ``pmtl``: Pareto MTL's subproblem ``k`` of ``vectors`` (default 5) unit preference vectors, initial phase
      of ``init_steps`` (default 200; 0 skips it), ε = ``eps``; one run per k gives the method's set
      (``paretorch train … method=pmtl stacked=true`` trains the K runs together, vmapped).

    ``pamal``, ``palora`` and ``lorpman`` also take ``solver="moo"`` or ``"epo"`` (beyond the papers): each
    sampled preference then gets CPMTL's constraint-based or EPO's weights instead of linear scalarisation,
    so the continuous front can cover concave parts.

    Every option, its type, default and where it applies is in the preset's table (``get_method(name).options``)
    and :data:`~paretorch.options.TRAIN_OPTIONS` (``lr``, ``freeze_epoch`` …); an unknown option, a value of the
    wrong type or range, or an option the method would ignore is one :class:`ParetorchError` line.
    """
    preset = get_method(name)
    options = validate_method_options(name, overrides, num_tasks)
    train = {key: options.pop(key) for key in list(options) if key in TRAIN_OPTIONS}
    options.pop("method")
    recipe = preset.build(BuildInputs(model, num_tasks, options, epochs, seed))
    config = TrainConfig(**({"epochs": epochs, "seed": seed} | dict(preset.train_defaults) | recipe.train | train))
    return MethodSetup(name, recipe.pm, recipe.sampler, config, recipe.objective,
                       [r for r in recipe.regularisers if r.coefficient > 0])


def pareto_expansion(trained: nn.Module | ParetoModel, num_tasks: int, epochs: int = 4, seed: int = 0,
                     **overrides: Any) -> MethodSetup:
    """PaLoRA's Pareto expansion (§5.4): adapters around an already trained model, the model itself frozen.

    ``trained`` is a plain model or a ``plain``/``ls`` ParetoModel (its inner model is used). Only the
    low-rank adapters train, so the front grows around the trained point; pass the final learning rate of
    the original run as ``lr``.
    """
    model = trained.model if isinstance(trained, ParetoModel) else trained
    return build_method("palora", model, num_tasks, epochs=epochs, seed=seed, freeze_base=True, **overrides)


# ----- shared pieces of the built-in presets -------------------------------------------------------------------------
_P = "Dirichlet concentration of the preference draws"
_M = "preferences per training step"
_TARGETS = "layer names (or patterns) to wrap; default all supported layers"
_EXCLUDE = "layer names (or patterns) to leave shared"
_SOLVER = "how each preference weighs the task losses: ls (λᵀL), moo (CPMTL's constraints) or epo"


def _solver_is(*solvers: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda settings: settings.get("solver") in solvers


def _several_preferences(settings: Mapping[str, Any]) -> bool:
    # The ordering penalty compares the losses of the step's preferences: it needs at least two. A step has the
    # smaller of m and PaLoRA's rays_per_step; an unset m is PaLoRA's automatic ray grid, which has at least 5.
    counts = [int(count) for count in (settings.get("m", 1), settings.get("rays_per_step")) if count is not None]
    return not counts or min(counts) > 1


_MOO = {"applies": _solver_is("moo"), "when": "solver=moo"}
_SEVERAL = {"applies": _several_preferences, "when": "continuous methods with m > 1 preferences per step"}


def _solver_options(default: str = "ls") -> tuple[Option, ...]:
    return (
        Option("solver", "str", default, _SOLVER, choices=("ls", "moo", "epo")),
        Option("num_refs", "int", 3, "moo: random reference preferences per step", minimum=1, **_MOO),
        Option("infeasible", "str", "guarded", "moo: step for a solution outside its region",
               choices=("guarded", "paper"), **_MOO),
        Option("references", "str", "random", "moo: reference preferences", choices=("random", "batch"), **_MOO),
        Option("eps", "float", 1e-4, "epo: tolerance of the balance test", above=0.0, applies=_solver_is("epo"),
               when="solver=epo"),
    )


def _regulariser_options(ordering: float = 0.0, orthogonality: float | None = None, cosine: float = 0.0
                         ) -> tuple[Option, ...]:
    # Every continuous preset takes the ordering penalty and COSMOS's cosine term; the low-rank ones also the
    # orthogonality of their deltas (orthogonality=None: not offered).
    found = (
        Option("multi_forward_coef", "float", ordering, "λ_p, PaMaL's multi-forward ordering penalty", minimum=0.0,
               **_SEVERAL),
        Option("multi_forward_edges", "str", "lexicographic", "pairs the ordering penalty compares",
               choices=("full", "lexicographic"), **_SEVERAL),
        Option("cosine_coef", "float", cosine, "μ, COSMOS's cosine alignment of losses with the preference",
               minimum=0.0),
        Option("cosine_target", "str", "preference", "the ray the cosine term aligns the losses with: preference "
               "(COSMOS's λ, which asks a heavily weighted task for a large loss) or inverse (EPO's ray 1/λ, on "
               "which every λ_t·L_t is equal)", choices=("preference", "inverse"),
               applies=lambda s: s.get("cosine_coef", cosine) > 0, when="cosine_coef > 0"),
    )
    if orthogonality is None:
        return found
    return (*found, Option("orthogonality_coef", "float", orthogonality,
                           "λ_o, LORPMAN's orthogonality of the low-rank deltas", minimum=0.0))


def _regularisers(options: Mapping[str, Any]) -> list[Regulariser]:
    # In this order (ordering, orthogonality, cosine) so that sums are the same as they always were.
    found: list[Regulariser] = [MultiForwardOrdering(options["multi_forward_coef"], options["multi_forward_edges"])]
    if "orthogonality_coef" in options:
        found.append(Orthogonality(options["orthogonality_coef"]))
    return [*found, CosineAlignment(options["cosine_coef"], options["cosine_target"])]


def _continuous_traits(options: Mapping[str, Any], *extra: str) -> list[str]:
    gradients = ["gradients"] if options.get("solver", "ls") != "ls" else []
    return ["continuous", *extra, *gradients]


def _solver_objective(options: Mapping[str, Any], seed: int) -> Objective | None:
    # ls: linear scalarisation (CPMTL Eq. 8 / PHN-LS); moo: CPMTL Eq. 9; epo: PHN-EPO. Beyond the papers, a
    # continuous parameterisation with moo/epo reaches concave parts of a front. Both papers take the task
    # gradients on all parameters, which is what these objectives declare.
    if options["solver"] == "moo":
        return PreferenceMOO(options["num_refs"], generator=torch.Generator().manual_seed(seed),
                             infeasible=options["infeasible"], references=options["references"])
    if options["solver"] == "epo":
        return EPO(options["eps"])
    return None


def _dirichlet(inputs: BuildInputs, unset: Callable[[int], float] | None = None) -> Dirichlet:
    """The preset's Dirichlet(p) draws, ``m`` per step; an unset ``p`` is ``unset(T)``."""
    options = inputs.options
    p = options["p"] if options["p"] is not None or unset is None else unset(inputs.num_tasks)
    return Dirichlet(inputs.num_tasks, p, options["m"], torch.Generator().manual_seed(inputs.seed))


def _near_the_corners_for_few_tasks(few: float, many: float) -> Callable[[int], float]:
    """The rule of an unset Dirichlet p: ``few`` (< 1, draws near the simplex's corners) up to 3 tasks, ``many``
    from 4."""

    def concentration(num_tasks: int) -> float:
        return few if num_tasks <= 3 else many

    return concentration


# With 2-3 tasks draws near the simplex's corners (PaMaL 0.5, the others 0.2) train the single-task ends and order
# the fronts. From 4 tasks such draws put nearly all weight on one or two tasks: few draws train the rest together
# (for PaMaL's members the loss of common representation that its appendix A.1 warns of), and draws towards the
# centre had the higher hypervolume on the many-task Adult: the papers' flat 1 above 0.2-0.5 for every preset, and
# for PaMaL and LORPMAN the p = 2 of LORPMAN's CelebA, CIFAR-100 and UTKFace runs above 1 from T = 10
# (benchmarks/results/dirichlet-many-tasks-2026-12-07-cpu.txt).
_pamal_concentration = _near_the_corners_for_few_tasks(0.5, 2.0)
_lorpman_concentration = _near_the_corners_for_few_tasks(0.2, 2.0)
_hypernetwork_concentration = _near_the_corners_for_few_tasks(0.2, 1.0)


def _wrapping(options: Mapping[str, Any]) -> dict[str, Any]:
    return {"targets": options["targets"], "exclude": options["exclude"]}


def _conv_layout_option(default: str, why: str) -> Option:
    return Option("conv_layout", "str", default, "how a convolution's kernel becomes the adapters' matrix: loralib "
                  "(Hu et al.'s code, rank r·k per kernel row) or peft (rank r over out × in·k·k)",
                  choices=CONV_LAYOUTS, recorded=True, legacy_default="peft", why=why)


# ----- the built-in presets -------------------------------------------------------------------------------------------
def _pamal(inputs: BuildInputs) -> Recipe:
    options = inputs.options
    return Recipe(ensemble(inputs.model, inputs.num_tasks, batchnorm=options["batchnorm"], **_wrapping(options)),
                  _dirichlet(inputs, _pamal_concentration),
                  _solver_objective(options, inputs.seed), _regularisers(options))


def _palora(inputs: BuildInputs) -> Recipe:
    options = inputs.options
    pm = lowrank(inputs.model, inputs.num_tasks, rank=options["rank"], scale=options["scale"], scaling="palora",
                 freeze_base=options["freeze_base"], conv_layout=options["conv_layout"], **_wrapping(options))
    # The official code's schedule and learning rates (see the preset's options and train_defaults): rays from
    # linspace(0.01, 0.99) sharpened to the power 5τ, adapters at lr × T. With Eq. 3 read literally (Q = 1, rays
    # on the faces) the fronts came out badly ordered (benchmarks/results/palora-defaults-2026-11-23-cpu.txt).
    rays = AnnealedGrid(inputs.num_tasks, options["m"], options["temperature"], options["margin"],
                        options["rays_per_step"])
    return Recipe(pm, rays, _solver_objective(options, inputs.seed), _regularisers(options))


def _lorpman(inputs: BuildInputs) -> Recipe:
    options = inputs.options
    wrapping = _wrapping(options)
    if not options["adapt_heads"] and options["targets"] is None:
        # LORPMAN §2: θ(α) = θ0 + s Σ α_i B_i A_i is the shared bottom's; each task head stays one plain module.
        heads = task_heads(inputs.model, inputs.num_tasks)
        if heads and not has_layers_outside(inputs.model, ADAPTED_LAYERS, heads):
            raise ParetorchError(f"LORPMAN adapts the shared bottom, but the model has no Linear or Conv layer "
                                 f"outside its task heads {heads}; give it one, or pass adapt_heads=true")
        wrapping["exclude"] = with_excluded(options["exclude"], heads)
    pm = lowrank(inputs.model, inputs.num_tasks, rank=options["rank"], scale=options["scale"], scaling="lorpman",
                 conv_layout=options["conv_layout"], **wrapping)
    return Recipe(pm, _dirichlet(inputs, _lorpman_concentration), _solver_objective(options, inputs.seed),
                  _regularisers(options),
                  train={"freeze_epoch": max(1, round(options["freeze_fraction"] * inputs.epochs))})


def _hyper(inputs: BuildInputs) -> Recipe:
    # CPMTL: 2-layer MLP, 100 hidden, chunked when large; PHN: 3-layer ray MLP. Both draw from Dirichlet(0.2) up to
    # 3 tasks, Dirichlet(1) from 4.
    options = inputs.options
    # The option's unset is hypernetwork's "auto" (chunk only a target too large for one projection per tensor),
    # its 0 ("never") hypernetwork's None.
    chunk_size = options["chunk_size"]
    pm = hypernetwork(inputs.model, inputs.num_tasks, hidden=options["hidden"], layers=options["layers"],
                      chunk_size="auto" if chunk_size is None else chunk_size or None, residual=options["residual"])
    return Recipe(pm, _dirichlet(inputs, _hypernetwork_concentration), _solver_objective(options, inputs.seed),
                  _regularisers(options))


def _cosmos(inputs: BuildInputs) -> Recipe:
    options = inputs.options
    if options["conditioning"] == "film":  # LORPMAN §4.3's FiLM baseline: feature-wise scale and shift
        pm = film(inputs.model, inputs.num_tasks, **_wrapping(options))
    else:
        pm = conditioned(inputs.model, inputs.num_tasks, options["target"])
    return Recipe(pm, _dirichlet(inputs), regularisers=_regularisers(options))


def _ls(inputs: BuildInputs) -> Recipe:
    weights = inputs.options["weights"] or [1.0 / inputs.num_tasks] * inputs.num_tasks
    return Recipe(plain(inputs.model, inputs.num_tasks), Fixed([list(weights)]))


def _ls_members(options: Mapping[str, Any], num_tasks: int) -> list[dict[str, Any]]:
    if options.get("weights") is not None:
        return [{}]
    # Each member is one weighting of the grid (ls_points is the run's, not the member's, setting). A given count
    # below T still holds every vertex (one model per task).
    points = options.get("ls_points") or _ls_default_points(num_tasks)
    if points == 1:
        return [{"weights": [1.0 / num_tasks] * num_tasks, "ls_points": None}]
    return [{"weights": pref.tolist(), "ls_points": None} for pref in simplex_grid(num_tasks, max(points, num_tasks))]


def _ls_default_points(num_tasks: int) -> int:
    # A grid the same for every task that holds a model weighing all of them: 5 points for 2 tasks, every vertex and
    # the centre from 3. Not PaLoRA's 3-task rays (vertices and edge midpoints): separate models do not interpolate,
    # and each of those is at chance on a task it gives no weight, so that grid had no model good at all three tasks
    # (MultiMNIST-3, 20 epochs, seed 0: HV 0.24 against PaLoRA's 0.87).
    return 5 if num_tasks == 2 else num_tasks + 1


def _ls_legacy_points(stored: Mapping[str, Any]) -> int | None:
    # Grids saved before ls_points was recorded had 5 models (the vertices alone from 5 tasks); a run of one
    # weighting (weights=) had no grid (and a grid count beside weights= is refused).
    return 5 if stored.get("weights") is None else None


def _ls_check(options: Mapping[str, Any], num_tasks: int) -> None:
    if options.get("weights") is not None and options.get("ls_points") is not None:
        raise ParetorchError("give ls either weights= (one model) or ls_points= (a grid of models), not both")
    weights = options.get("weights")
    if weights is not None and (len(weights) != num_tasks or any(w < 0 for w in weights)
                                or abs(sum(weights) - 1.0) > 1e-6):
        raise ParetorchError(f"ls weights must be {num_tasks} non-negative numbers summing to 1, got {weights}")


def _stl(inputs: BuildInputs) -> Recipe:
    task = inputs.options["task"] or 0
    pref = [1.0 if t == task else 0.0 for t in range(inputs.num_tasks)]
    return Recipe(plain(inputs.model, inputs.num_tasks), Fixed([pref]))


def _stl_check(options: Mapping[str, Any], num_tasks: int) -> None:
    if options.get("task") is not None and not 0 <= options["task"] < num_tasks:
        raise ParetorchError(f"stl task must be in 0..{num_tasks - 1}, got {options['task']}")


def _mgda(inputs: BuildInputs) -> Recipe:
    # MGDA-UB: gradients with respect to the shared representation instead of the shared parameters.
    objective = MGDA("representation" if inputs.options["ub"] else "shared")
    return Recipe(plain(inputs.model, inputs.num_tasks), Fixed([[1.0 / inputs.num_tasks] * inputs.num_tasks]),
                  objective)


def _pmtl(inputs: BuildInputs) -> Recipe:
    options, num_tasks = inputs.options, inputs.num_tasks
    refs: Tensor = unit_vectors(num_tasks, options["vectors"])
    k = options["k"] or 0
    # Pareto MTL's vectors point along the loss vector (a large u_t means a large loss on task t), so the run is
    # labelled with the simplex weight w = (1 − ū_k) / (T − 1), ū_k = u_k / Σ u_k: more weight, less loss.
    label = (1.0 - refs[k] / refs[k].sum()) / (num_tasks - 1)
    return Recipe(plain(inputs.model, num_tasks), Fixed([label.tolist()]),
                  ParetoMTL(refs, k, eps=options["eps"], init_steps=options["init_steps"]))


def _pmtl_check(options: Mapping[str, Any], num_tasks: int) -> None:
    if options.get("k") is not None and not 0 <= options["k"] < options["vectors"]:
        raise ParetorchError(f"pmtl k must be in 0..{options['vectors'] - 1} (vectors={options['vectors']}), "
                             f"got {options['k']}")


def _hyper_options(layers: int, p_why: str = "", m: Option | None = None) -> dict[str, Option]:
    p_help = f"{_P}; unset: 0.2 up to 3 tasks (PHN's), the papers' flat 1 from 4; a run records the value"
    p_why = (f"{p_why}From 4 tasks, on the many-task Adult (3 seeds, T = 5-40) 1 had the higher mean HV at every T, "
             "CPMTL +0.3-3.8 % (higher on 11 of 12 runs), PHN +0.8-3.5 % (9 of 12). 0.2 for every T before "
             "2026-12-07")
    return option_table(
        Option("hidden", "int", 100, "hypernetwork hidden width", minimum=1),
        Option("layers", "int", layers, "hypernetwork depth", minimum=1),
        Option("chunk_size", "int", None, "chunking (CPMTL's Fig. 4b): weights generated this many at a time; 0: "
               "never; unset: none while the projections hold at most 100 million parameters (hidden × the "
               "target's, e.g. 2.7 million for a LeNet), else ⌈target / hidden⌉", minimum=0, optional=True,
               recorded=True, legacy_default=0,
               why="Chunked so, the hypernetwork stays about the target's size, as CPMTL's chunked runs (a ResNet-18 "
               "unchunked: 1.1 billion). MultiMNIST's LeNet so chunked (78 k parameters against 2.8 M): HV 0.868 "
               "against 0.885 (cpmtl), 0.850 against 0.885 (phn), both still ordered. Never chunked before "
               "2026-12-06"),
        Option("residual", "bool", True, "generate θ(λ) = θ₀ + 0.1·H(λ) around a trainable copy θ₀ of the "
               "target's own (or pretrained) weights, beyond the papers; false: the papers' θ(λ) = H(λ)",
               recorded=True, legacy_default=False,
               why="At lr 1e-3 the papers' form stayed at chance on a small transformer and learned a chunked "
               "ResNet-18 far slower (CPMTL test HV 0.40 against 0.80 in 3 epochs); on MultiMNIST's LeNet (6 seeds) "
               "the residual form has the higher HV (0.896 against 0.886 for CPMTL) and flatter ends (PHN 8.3 "
               "against 10.0 of 11 non-dominated). false before 2026-12-06"),
        Option("p", "float", None, p_help, above=0.0, optional=True, recorded=True,
               legacy_default=0.2, unset_value=_hypernetwork_concentration, why=p_why),
        m or Option("m", "int", 1, _M, minimum=1),
        *_solver_options(), *_regulariser_options())


_WRAPPING = (Option("targets", "names", None, _TARGETS, optional=True),
             Option("exclude", "names", None, _EXCLUDE, optional=True))
_FILM_ONLY = {"applies": lambda s: s.get("conditioning") == "film", "when": "conditioning=film"}

for _preset in (
    MethodPreset("pamal", "PaMaL: T weight copies mixed by λ, ordering penalty", option_table(
        Option("p", "float", None, f"{_P}; unset: 0.5 up to 3 tasks, 2 from 4 (LORPMAN's paper's many-task "
               "value); a run records the value", why="0.5 on MultiMNIST (50,000 pairs, 10 epochs, 6 seeds): 9.3 "
               "against 6.2 of 11 non-dominated, min Spearman 0.94 against 0.74 at the same HV (0.876, 0.879); on "
               "MultiMNIST-3 HV 0.360 against 0.321. On the many-task Adult (3 seeds) 1 had more HV than 0.5 on "
               "every seed from T = 5 (+1-2 % at T = 5-10, +4-5 % at T = 20-40), and 2 more than 1 on every seed "
               "from T = 10 (+2.1 %, +2.6 %, +3.7 % at T = 10, 20, 40). 1 for every T before 2026-12-05, then 0.5 "
               "until 2026-12-06, then 1 from 4 tasks until 2026-12-07", above=0.0, optional=True,
               recorded=True, legacy_default=1.0, unset_value=_pamal_concentration,
               # Runs of 2026-12-06 recorded null for the rule of that day (a frozen copy, not the rule of now).
               legacy_unset=_near_the_corners_for_few_tasks(0.5, 1.0)),
        Option("m", "int", 4, f"{_M}; the window b = 4 of PaMaL's MultiMNIST runs", minimum=1, recorded=True,
               legacy_default=3, why="Over 6 seeds 9.5 against 8.8 of 11 non-dominated with 3 (the default before) at "
               "the same hypervolume; on MultiMNIST-3 HV 0.321 against 0.281"),
        Option("batchnorm", "str", "members", "BatchNorm layers: members (T copies of the scale and shift, as "
               "PaMaL's public code; a multi-preference step normalises each preference's batch with its own "
               "statistics) or shared (one BatchNorm, statistics pooled over the step's preferences); no effect on "
               "models without BatchNorm", choices=("members", "shared"), recorded=True, legacy_default="shared",
               why="With shared a ResNet-18 on MultiMNIST stayed at chance (training loss 2.3 per preference after 2 "
               "epochs); with members it learns. shared before 2026-12-06"), *_WRAPPING,
        *_solver_options(), *_regulariser_options(ordering=1.0)),
        _pamal, traits=lambda options: _continuous_traits(options, "adapters"),
        # PaMaL §5: "the learning rate for our method is m-fold the learning rate of the baselines".
        train_defaults={"member_lr_multiplier": True}),
    MethodPreset("palora", "PaLoRA: base + per-task low-rank adapters, annealed rays", option_table(
        Option("rank", "int", 1, "adapter rank r", minimum=1),
        Option("scale", "float", 2.0, "α, the adapters' scale (α/r multiplies their product)", above=0.0,
               why="The official code's α = 1 with 4 rays, over nine seeds on MultiMNIST (50,000 pairs, 10 epochs): "
               "9.2 of 11 non-dominated, min Spearman 0.97, HV 0.883 against 9.9, 0.98 and 0.887 with 2"),
        Option("freeze_base", "bool", False, "train the adapters only"),
        _conv_layout_option("loralib", "loralib as PaLoRA's public code; on MultiMNIST it took the front from HV "
                            "0.664 to 0.724 and 8.0 to 9.7 of 11 non-dominated points"),
        Option("m", "int", None, "rays of the annealed grid; unset: a grid the same for every task, 4 rays for 2 "
               "tasks (the official code's), 6 for 3 (vertices and edge midpoints), T + 1 from 4 (vertices and "
               "centre); a run records the count",
               why="2 tasks had 5 until 2026-12-06: on MultiMNIST (50,000 pairs, 10 epochs, 9 seeds) 4 gave 9.9 "
               "against 8.9 of 11 non-dominated, min Spearman 0.98 against 0.97, HV 0.887 against 0.889 (the "
               "official code: 0.887, 9.3, 0.97). 5 for every T before that: for 3 tasks that "
               "grid favoured tasks 1-2 (MultiMNIST-3, 20 epochs, 3 seeds: 6 rays gave 43.7 against 29.3 of 66 "
               "non-dominated, min Spearman 0.95 against 0.84, HV 0.870 against 0.872), and from 6 tasks it left "
               "the later tasks without a ray", minimum=1, optional=True, recorded=True, legacy_default=5,
               unset_value=symmetric_grid_size, legacy_unset=lambda tasks: {2: 5, 3: 6}.get(tasks, tasks + 1)),
        Option("rays_per_step", "int", 6, "forward passes per step (PaLoRA's budget M): a grid with more rays "
               "trains them in turn, this many per step, each as often; null or a count >= the grid's rays: every "
               "ray every step", minimum=1, optional=True, recorded=True, legacy_default=None,
               why="6 keeps every ray of the grids up to 5 tasks in every step. Every ray every step, as runs saved "
               "before this option trained, had 2-9 % more HV per epoch on the many-task Adult (10-40 tasks) at up "
               "to 6x the step time"),
        Option("temperature", "float", 0.2, "Q of the annealed schedule (Eq. 3, τ' = τ/Q); 0.2 is the official "
               "code's power 5τ, Q = 1 the text's literal reading", above=0.0),
        Option("margin", "float", 0.01, "base rays moved this far off the simplex's faces (the official code's "
               "linspace(0.01, 0.99))", minimum=0.0), *_WRAPPING,
        *_solver_options(), *_regulariser_options(orthogonality=0.0)),
        _palora, traits=lambda options: _continuous_traits(options, "adapters"),
        # The official code's reweight_lr: adapters at lr × T.
        train_defaults={"member_lr_multiplier": True}),
    MethodPreset("lorpman", "LORPMAN: low-rank Pareto manifold with orthogonal task deltas", option_table(
        Option("rank", "int", 8, "adapter rank r", minimum=1),
        Option("scale", "float", 6.0, "s, the scale of the low-rank deltas", above=0.0,
               why="6 is the best of the paper's MultiMNIST grid {1, 2, 4, 6} in 5-epoch runs; the paper keeps s = 1 "
               "for its 100-epoch ResNet-18 runs (CelebA, CIFAR-100 and UTKFace's protocols set it)"),
        _conv_layout_option("peft", "peft is nearer the paper's LeNet count (0.046M; peft 0.043M, loralib 0.055M)"),
        # Up to 3 tasks p = 0.2 rather than the paper's MultiMNIST 1: draws near the simplex's corners keep the
        # single-task ends trained.
        # LORPMAN can afford them, unlike PaMaL's separate members (PaMaL's appendix A.1), because its main network
        # is trained by every draw and keeps the common representation.
        Option("p", "float", None, f"{_P}; unset: 0.2 up to 3 tasks, 2 from 4 (the paper's value for CelebA, "
               "CIFAR-100 and UTKFace); a run records the value", why="0.2 with 2-3 tasks: with the paper's "
               "MultiMNIST 1 the front bent back at "
               "both ends, on the training pairs too (MultiMNIST, 50,000 pairs, 10 epochs, 6 seeds: 7.7 against "
               "3.7 of 11 non-dominated, min Spearman 0.93 against 0.44, HV 0.888 both; on MultiMNIST-3 54 against "
               "17 of 66 non-dominated at a 10 % lower HV). From 4 tasks, on the many-task Adult (3 seeds): 1 had "
               "more HV than 0.2 on every seed from T = 10 (+0.2 %, +0.4 %, +3.2 % at T = 10, 20, 40), 2 more than "
               "1 in the mean from T = 10 (+1.1 %, +1.4 %, +1.2 %; 7 of 9 runs), level at T = 5. 1 for every T "
               "before 2026-12-05, then 0.2 until 2026-12-07", above=0.0, optional=True,
               recorded=True, legacy_default=1.0, unset_value=_lorpman_concentration),
        Option("m", "int", 4, _M, minimum=1),
        # A head's parameters reach only its own task's loss, so a preference-dependent head adds no trade-off
        # of its own: at a preference far from its task, the deltas it mixes learn from a loss weighted near zero.
        Option("adapt_heads", "bool", False, "give the task heads low-rank deltas too; false: the paper's "
               "shared bottom alone (its §2), each task head (a ModuleList/ModuleDict called heads with one module "
               "per task; name other heads with exclude) one plain module", why="At the papers' budgets the shared "
               "bottom was as good and better ordered (MultiMNIST, 6 seeds: 8.5 against 7.7 of 11 non-dominated, "
               "HV 0.886 against 0.888; MultiMNIST-3, 20 epochs: HV 0.878 against 0.875, 38 against 34 of 66) "
               "with fewer parameters (38,250 against 43,370); in 5-epoch runs true had 2-7 % more HV (all frozen "
               "at 60 %; true before 2026-12-06)", recorded=True, legacy_default=True),
        Option("freeze_fraction", "float", 0.8, "the share of training after which the main network is frozen "
               "and only the low-rank deltas train (freeze epoch = round(fraction × epochs), at least 1; a given "
               "freeze_epoch wins; 1: never frozen)", why="0.8 as the paper's CelebA (40 of 50) and CIFAR-100 (250 of "
               "300) runs and within its MultiMNIST grid {4, 6, 8} of 10: on MultiMNIST (50,000 pairs, 10 epochs, "
               "6 seeds) HV 0.892 against 0.886 with 0.6, higher on every seed, 8.5 of 11 non-dominated both; "
               "MultiMNIST-3 (20 epochs) HV 0.884 against 0.878 at 33 against 38 of 66; 5-epoch runs 5-15 % more "
               "HV, the many-task Adult (10-40 tasks) 1-3 % (0.6 before 2026-12-06)",
               above=0.0, recorded=True, legacy_default=0.6), *_WRAPPING,
        *_solver_options(), *_regulariser_options(orthogonality=1.0)),
        _lorpman, traits=lambda options: _continuous_traits(options, "adapters")),
    MethodPreset("cpmtl", "Controllable Pareto MTL: a hypernetwork generates the weights", _hyper_options(
        2, "With the flat 1 CPMTL's MultiMNIST front came out mis-ordered (1 before 2026-11-23). ",
        Option("m", "int", 4, f"{_M}; batched preferences as CPMTL's appendix A.3", why="4 as PaMaL's and LORPMAN's "
               "window: on MultiMNIST (50,000 pairs, 10 epochs, seeds 0-5, residual form) HV 0.896, 10.0 of 11 "
               "non-dominated, min Spearman 0.98 against 0.896, 8.5 and 0.92 with 2, for about 1.4x the epoch time; 2 "
               "from 2026-11-23 to 2026-12-07 (against 1 in the papers' form: HV 0.885 and 9.3 of 11 against "
               "0.876 and 8.7), 1 before", minimum=1, recorded=True, legacy_default=1)),
                 _hyper, traits=_continuous_traits),
    MethodPreset("phn", "Pareto HyperNetwork: a ray hypernetwork", _hyper_options(
        3, m=Option("m", "int", 2, f"{_M}; as CPMTL's batched preferences, beyond PHN's one ray per step",
                    why="On MultiMNIST (50,000 pairs, 10 epochs, seeds 0-5) HV 0.892 and 9.7 of 11 non-dominated, min "
                    "Spearman 0.95, against 0.890, 8.3 and 0.92 with 1, for 1.25x the epoch time (1 before "
                    "2026-12-07)", minimum=1, recorded=True, legacy_default=1)), _hyper,
                 traits=_continuous_traits),
    MethodPreset("cosmos", "COSMOS: the preference as an extra input, cosine alignment", option_table(
        Option("conditioning", "str", "input", "input: λ as extra input of the first layer; film: FiLM layers",
               choices=("input", "film")),
        Option("target", "str", None, "input: the layer that receives λ (default the first)", optional=True,
               applies=lambda s: s.get("conditioning", "input") == "input", when="conditioning=input"),
        Option("targets", "names", None, _TARGETS, optional=True, **_FILM_ONLY),
        Option("exclude", "names", None, _EXCLUDE, optional=True, **_FILM_ONLY),
        Option("p", "float", 1.2, _P, above=0.0), Option("m", "int", 1, _M, minimum=1),
        *_regulariser_options(cosine=1.0)),
        _cosmos, traits=_continuous_traits),
    MethodPreset("ls", "linear scalarisation: one plain model per weighting", option_table(
        Option("weights", "floats", None, "one weighting (a run of one model); default the ls_points grid",
               optional=True),
        Option("ls_points", "int", None, "models on the simplex grid (1: uniform weights only); unset: 5 for 2 "
               "tasks, T + 1 from 3 (every vertex and the centre)", minimum=1, optional=True, recorded=True,
               legacy_default=_ls_legacy_points, why="A grid the same for every task, with a model that weighs them "
               "all (a 3-task lattice of vertices and edge midpoints had none: HV 0.24 on MultiMNIST-3). 5 for every "
               "T before 2026-12-06")),
        _ls, discrete=True, members=_ls_members, check=_ls_check),
    MethodPreset("stl", "single-task learning: one plain model per task", option_table(
        Option("task", "int", None, "train this task only (default one model per task)", minimum=0, optional=True)),
        _stl, discrete=True, check=_stl_check,
        members=lambda options, num_tasks: [{}] if options.get("task") is not None
        else [{"task": task} for task in range(num_tasks)]),
    MethodPreset("mgda", "MGDA: min-norm weights of the task gradients", option_table(
        Option("ub", "bool", False, "MGDA-UB: gradients with respect to the representation")),
        _mgda, discrete=True, traits=lambda options: ["gradients"]),
    MethodPreset("pmtl", "Pareto MTL: one plain model per preference vector", option_table(
        Option("vectors", "int", 5, "preference vectors K (one model each)", minimum=2),
        Option("k", "int", None, "train subproblem k only (default all K)", minimum=0, optional=True),
        Option("eps", "float", 1e-3, "tolerance of the initial feasibility phase", above=0.0),
        Option("init_steps", "int", 200, "steps of the initial phase (0 skips it)", minimum=0),
        Option("stacked", "bool", False, "train the K models together, vmapped (CLI runs)")),
        _pmtl, discrete=True, traits=lambda options: ["gradients"], check=_pmtl_check,
        members=lambda options, num_tasks: [{}] if options.get("k") is not None
        else [{"k": k} for k in range(int(options.get("vectors", 5)))]),
):
    register_method(_preset)
