"""``ParetoLoss``: one batch in, the scalar to back-propagate out; the piece to drop into any training loop.

It holds the four concepts of a method and nothing of the loop: the steerable model (parameterisation), the
preference sampler, the objective and the regularisers. One call draws the step's preferences, evaluates the
batch at all of them in one :meth:`~paretorch.ParetoModel.multi_forward` pass, computes the task losses,
asks the objective for task weights (computing the Gram matrix of task gradients when it needs one) and adds
the regularisers. There is no optimizer inside: the caller back-propagates and steps, in a hand-written loop,
PyTorch Lightning or Accelerate. :class:`~paretorch.Trainer` is this loss plus the loop, checkpoints and
evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from paretorch._random import seeded_generator
from paretorch.errors import NonFiniteLossError, ParetorchError
from paretorch.objectives import GradientSource, LinearScalarisation, Objective
from paretorch.parameterisations import ParetoModel, move_to, shared_parameters, split_outputs
from paretorch.preferences import PreferenceSampler
from paretorch.training.balancing import LossBalancer, balanced_and_plain_gradients
from paretorch.training.distributed import average, sum_across, world_size
from paretorch.training.evaluation import as_task_list, split_batch
from paretorch.training.gradients import task_gram, task_grams
from paretorch.training.precision import check_gradient_precision, forward_precision, in_float32
from paretorch.training.regularisers import Regulariser, StepOutputs
from paretorch.training.tasks import TaskOrder

__all__ = ["LossOutput", "ParetoLoss"]

TaskLoss = Callable[[Tensor, Tensor], Tensor]


@dataclass
class LossOutput:
    """One step of a :class:`ParetoLoss`: ``loss`` is the scalar to back-propagate; the rest is for logging.

    ``objective`` is the weighted task term, ``regularisers`` their sum and ``parts`` each one by name;
    ``losses`` ``(M, T)`` are the task losses at the step's preferences ``prefs`` ``(M, T)`` and ``weights``
    ``(M, T)`` the objective's task weights (all detached).
    """

    loss: Tensor
    objective: Tensor
    regularisers: Tensor
    losses: Tensor
    prefs: Tensor
    weights: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)

    def logs(self) -> dict[str, float]:
        """Plain numbers for a logger: the weighted task loss per preference (the objective divided by the M
        preferences of the step, so that its scale does not depend on M), the regularisers' sum and each
        regulariser."""
        count = max(self.prefs.shape[0], 1)
        return {"loss": float(self.objective) / count, "regulariser": float(self.regularisers)} | {
            name: float(value) for name, value in self.parts.items()}


class ParetoLoss:
    """The training loss of a steerable model: ``loss(batch)`` returns a :class:`LossOutput` whose ``.loss``
    you back-propagate.

    - ``pm``: the :class:`~paretorch.ParetoModel`; ``losses``: one ``loss(output, target)`` per task, as a list
      or as a dict by task name (then the model's outputs and the batch's targets, if dicts, are matched by
      key; without names the first dict seen fixes the order, see :class:`~paretorch.training.tasks.TaskOrder`);
      ``sampler``: the :class:`~paretorch.preferences.PreferenceSampler` of the training preferences.
    - ``objective``: an :class:`~paretorch.objectives.Objective` (default :class:`LinearScalarisation`, λᵀL).
      Where it declares ``gradients``, the loss computes the Gram matrix of the task gradients on those
      parameters (``gradients=`` here overrides the objective's choice; ``representation`` names the submodule
      whose output MGDA-UB differentiates).
    - ``regularisers``: :class:`~paretorch.training.regularisers.Regulariser` objects, each with its coefficient.
    - ``loss_balancing_window``: divide each task loss by its running mean over that many steps (PaMaL §4.2);
      ``gradient_balancing``: rescale every task gradient on the shared parameters to unit norm (PaMaL §4.2).
      The returned scalar then carries a term whose value is 0 and whose gradient turns the plain gradient on
      the shared parameters into the balanced one, so ``loss.backward()`` is still all a loop does. The M
      preferences of a step share one stacked forward pass, except under gradient balancing or a gradient-based
      objective: then each runs its own, so that each of the M·T task gradients runs through B rows, not M·B.
    - ``distributed``: the ``DistributedDataParallel`` wrapper of ``pm`` when training on several processes;
      the forward then runs through it, so that it synchronises the gradients. Every rank draws the same
      preferences (the streams depend only on ``seed`` and the epoch), so each process computes the loss of
      its own share of the batch at the same M preferences. What sets the weights is that of the whole batch:
      the task losses, the loss balancer's running means, the Gram matrices of gradient-based objectives and
      the task gradients of gradient balancing are averaged over the processes first, and the regularisers
      see the whole batch's loss values (with this process's gradients); shares of equal size then give the
      weights and the gradient of one process with the combined batch (``tests/test_distributed.py``).
    - ``across_processes``: the caller's own ``DistributedDataParallel`` wrapper runs this loss inside its
      forward (a ``LightningModule``'s ``training_step`` under Lightning's DDP): the gradients are synchronised
      there, and the loss averages what sets the weights over the processes as with ``distributed``.
    - ``precision``: ``"32"`` (default), ``"bf16-mixed"`` or ``"16-mixed"``: the forward passes and task losses
      run under ``torch.autocast`` to that type, and the losses return as float32, so the objective, the Gram
      matrices, balancing and the regularisers keep the parameters' precision (:mod:`~paretorch.training.precision`;
      ``"16-mixed"`` also needs a ``GradScaler`` on the loss, as the Trainer keeps, and is refused with gradient
      balancing or a gradient-based objective). Under your own autocast (Lightning's or Accelerate's precision)
      leave it at ``"32"``.
    - ``seed``: the loss's random streams (preference draws, the objective's and the regularisers' draws) are
      derived from ``(seed, stream, epoch)``; call :meth:`start_epoch` at each epoch for runs that resume
      exactly (the Trainer does). The process-wide generator is never touched.

    ``batch`` is ``(inputs, targets)`` with one target per task; ``step`` and ``total_steps`` drive annealed
    samplers (without ``step`` the loss counts its own calls; ``total_steps`` can be given once here).

    >>> import torch
    >>> from paretorch import lowrank
    >>> from paretorch.preferences import Dirichlet
    >>> class TwoHeads(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body = torch.nn.Linear(4, 8)
    ...         self.heads = torch.nn.ModuleList([torch.nn.Linear(8, 1), torch.nn.Linear(8, 1)])
    ...     def forward(self, x):
    ...         return [head(torch.relu(self.body(x))).squeeze(-1) for head in self.heads]
    >>> pm = lowrank(TwoHeads(), num_tasks=2, rank=1)
    >>> loss = ParetoLoss(pm, [torch.nn.functional.mse_loss] * 2, Dirichlet(2, m=3), seed=0)
    >>> optimizer = torch.optim.Adam(pm.parameters(), lr=1e-3)
    >>> batch = (torch.randn(16, 4), [torch.randn(16), torch.randn(16)])
    >>> out = loss(batch)
    >>> out.loss.backward()
    >>> optimizer.step()
    >>> out.losses.shape  # the task losses at each of the 3 preferences of the step
    torch.Size([3, 2])
    """

    def __init__(
        self,
        pm: ParetoModel,
        losses: Sequence[TaskLoss] | Mapping[str, TaskLoss],
        sampler: PreferenceSampler,
        objective: Objective | None = None,
        regularisers: Iterable[Regulariser] = (),
        *,
        gradients: GradientSource | None = None,
        representation: str = "encoder",
        loss_balancing_window: int = 0,
        gradient_balancing: bool = False,
        seed: int = 0,
        total_steps: int | None = None,
        distributed: nn.Module | None = None,
        across_processes: bool = False,
        precision: str = "32",
    ) -> None:
        self.tasks, self.loss_fns = TaskOrder.of(losses, len(losses))
        self.pm, self.sampler = pm, sampler
        self.objective = objective if objective is not None else LinearScalarisation()
        self.regularisers = list(regularisers)
        if len(self.loss_fns) != pm.num_tasks:
            raise ParetorchError(f"give one loss per task: got {len(self.loss_fns)} for {pm.num_tasks} tasks")
        if sampler.num_tasks != pm.num_tasks:
            raise ParetorchError(f"the sampler draws {sampler.num_tasks}-task preferences for a "
                                 f"{pm.num_tasks}-task model")
        for regulariser in self.regularisers:
            if not isinstance(regulariser, Regulariser):
                raise ParetorchError(f"regularisers must be Regulariser objects, got {type(regulariser).__name__}")
        if gradients is not None and gradients not in ("shared", "all", "representation"):
            raise ParetorchError(f"gradients must be 'shared', 'all' or 'representation', got {gradients!r}")
        # Which Gram matrix the objective reads (None: it reads only the losses).
        self.gradients: GradientSource | None = (
            None if self.objective.gradients is None else gradients or self.objective.gradients)
        self.representation = representation
        self._representation_module = self._find_representation() if self.gradients == "representation" else None
        self.balancer = LossBalancer(pm.num_tasks, loss_balancing_window) if loss_balancing_window > 0 else None
        self.gradient_balancing = gradient_balancing
        check_gradient_precision(precision, gradient_balancing,
                                 None if self.gradients is None else f"the objective {type(self.objective).__name__}")
        self.precision = precision
        self.seed, self.total_steps = seed, total_steps
        self.distributed = distributed
        self.across_processes = across_processes
        self._calls = 0
        self._shared: list[nn.Parameter] | None = None
        self.start_epoch(0)

    # ----- random streams ------------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Re-derive every random stream of the loss from ``(seed, epoch)``: where a run resumed makes no
        difference to what it draws."""
        names = ["preferences", "objective", *(r.stream for r in self.regularisers if r.stream)]
        self._generators = {name: seeded_generator(self.seed, name, epoch) for name in dict.fromkeys(names)}

    # ----- one step ------------------------------------------------------------------------------------------
    def __call__(self, batch: Any, step: int | None = None, total_steps: int | None = None) -> LossOutput:
        step = self._calls if step is None else step
        self._calls = step + 1
        total = total_steps if total_steps is not None else self.total_steps
        if total is None:
            if getattr(self.sampler, "annealed", False):
                raise ParetorchError(f"{type(self.sampler).__name__} anneals over training: give total_steps "
                                     "(ParetoLoss(..., total_steps=N) or loss(batch, step, total_steps))")
            total = 0
        device = next(self.pm.parameters()).device
        inputs, targets = split_batch(batch, self.pm.num_tasks, self.tasks)
        inputs, targets = move_to(inputs, device), move_to(targets, device)
        prefs = self.sampler.sample(step, total, generator=self._generators["preferences"]).to(device)
        if prefs.shape[0] != 1 and not self.objective.per_preference:
            raise ParetorchError(f"{type(self.objective).__name__} trains one preference per step; set m=1")
        losses, captured, pieces = self._task_losses(inputs, targets, prefs)
        # On several processes, what decides the weights (the losses, the balancer's running means, the Gram
        # matrices) is that of the whole batch, so every rank weights alike and as one process would.
        whole = average(losses) if self._synchronised else losses.detach()
        # The regularisers see the whole batch's loss values with this process's gradients: a penalty that is
        # not linear in the losses (PaMaL's ordering, COSMOS's cosine) then has the whole batch's value, and
        # DDP's mean of the processes' gradients is the gradient one process would compute.
        seen = whole + (losses - losses.detach()) if self._synchronised else losses
        observed, weighted = whole, losses
        if self.balancer is not None:
            self.balancer.record(observed)
            weighted, observed = self.balancer.normalise(losses), self.balancer.normalise(observed)
        if self.gradients is not None:
            # Each task gradient through its own preference's pass where each ran apart: rows re-stacked from the
            # unstacked losses, weighted as ``weighted`` is.
            rows = weighted if pieces is None else [self._weighted_row(row) for row in pieces]
            grams = self._grams(rows, inputs, captured)
        else:
            grams = None
        weights = self.objective.step_weights(observed, grams, prefs, self._generators["objective"])
        self.objective.update(observed, grams, prefs)
        objective = (weights.to(weighted) * weighted).sum()
        regularisers = losses.new_zeros(())
        parts: dict[str, Tensor] = {}
        for regulariser in self.regularisers:
            if regulariser.coefficient == 0:
                continue
            value = regulariser(StepOutputs(prefs, seen, self.pm, self._generators.get(regulariser.stream)))
            regularisers = regularisers + value
            parts[regulariser.name] = value.detach()
        total_loss = objective + regularisers
        if not torch.isfinite(total_loss):
            raise NonFiniteLossError(step, losses.detach().tolist())
        if self.gradient_balancing:
            total_loss = total_loss + self._balancing_term(objective, losses, pieces, prefs, inputs)
        return LossOutput(total_loss, objective.detach(), regularisers.detach(), whole, prefs,
                          weights.detach(), parts)

    @property
    def _reduce(self) -> Callable[[Tensor], Tensor] | None:
        # How a per-process statistic becomes the whole batch's: the mean over the processes.
        return average if self._synchronised else None

    @property
    def _synchronised(self) -> bool:
        # Several processes share each step: through the loss's own DDP wrapper, or inside the caller's.
        return self.distributed is not None or self.across_processes

    def _task_losses(self, inputs: Any, targets: list[Tensor], prefs: Tensor
                     ) -> tuple[Tensor, list[Any], list[list[Tensor]] | None]:
        """The task losses ``(M, T)`` at the step's preferences, the representations a hook captured, and, when
        each preference ran its own forward pass, each preference's losses before they were stacked."""
        count = prefs.shape[0]
        captured: list[Any] = []
        module = self._representation_module
        hook = (module.register_forward_hook(lambda _module, _args, out: captured.append(out))
                if module is not None else None)
        # Gradient balancing and gradient-based objectives differentiate every (preference, task) loss on its own.
        # Through one stacked pass of M·B rows each of those M·T backward passes runs through all M blocks (zeros
        # in the others' rows); with one pass per preference it runs through its own B rows. BatchNorm layers
        # normalise each block on its own either way (parameterisations/_norms.py), so both compute the same
        # outputs. A DDP wrapper of the loss's own keeps the one pass its synchronisation expects per backward.
        each = ((self.gradient_balancing or self.gradients is not None) and count > 1
                and self.distributed is None)
        try:
            with forward_precision(self.precision, prefs.device):
                if each:
                    raw = [split_outputs(self.pm.multi_forward(inputs, prefs[m:m + 1]), 1) for m in range(count)]
                else:
                    raw = [split_outputs(self.pm.multi_forward(inputs, prefs, via=self.distributed), count)]
        finally:
            if hook is not None:
                hook.remove()
        for outputs in raw:
            if not isinstance(outputs, Mapping) and len(outputs) != self.pm.num_tasks:
                raise ParetorchError(f"the model returns {len(outputs)} outputs for {self.pm.num_tasks} tasks; "
                                     "return one output per task (or wrap it with num_tasks matching its heads)")
        passes = [as_task_list(outputs, self.tasks) for outputs in raw]  # per pass, per task: (M or 1, B, …)
        if self.pm.task_names is None and self.tasks.names is not None:
            self.pm.task_names = list(self.tasks.names)  # so that save_pretrained records them

        def output(m: int, t: int) -> Any:
            return passes[m][t][0] if each else passes[0][t][m]

        # The losses under the forward's precision (autocast computes cross-entropy and the like in float32 anyway);
        # under autocast returned as float32 for what follows.
        with forward_precision(self.precision, prefs.device):
            rows = [[in_float32(fn(output(m, t), targets[t]), self.precision) for t, fn in enumerate(self.loss_fns)]
                    for m in range(count)]
        return torch.stack([torch.stack(row) for row in rows]), captured, rows if each else None

    def _weighted_row(self, row: list[Tensor]) -> Tensor:
        # One preference's task losses as the objective weighs them (the loss balancer's scale, if any).
        losses = torch.stack(row)
        return losses if self.balancer is None else self.balancer.normalise(losses[None])[0]

    def _grams(self, weighted: Tensor | list[Tensor], inputs: Any, captured: list[Any]) -> Tensor:
        """One Gram matrix of task gradients per preference of the step, ``(M, T, T)``."""
        if self.gradients == "representation":
            # MGDA-UB: gradients with respect to the shared representation Z; its forward ran once per preference.
            if len(captured) != len(weighted) or not all(isinstance(z, Tensor) for z in captured):
                raise ParetorchError(f"the representation module {self.representation!r} must return one tensor per "
                                     f"forward pass (got {len(captured)} for {len(weighted)} preferences); the "
                                     "plain parameterisation is needed")
            grams = torch.stack([task_gram(row, [z]) for row, z in zip(weighted, captured, strict=True)])
            if self._synchronised:
                # Each rank differentiates its own samples' representations, each scaled by 1/W too much
                # (its loss is the mean over its share): the whole batch's Gram is Σ_ranks Gram / W².
                grams = sum_across(grams) / world_size() ** 2
            return grams
        params = self._shared_parameters(inputs) if self.gradients == "shared" else list(self.pm.parameters())
        return task_grams(weighted, [p for p in params if p.requires_grad], self._reduce)

    def _balancing_term(self, objective: Tensor, losses: Tensor, pieces: list[list[Tensor]] | None,
                        prefs: Tensor, inputs: Any) -> Tensor:
        # Value 0; gradient (balanced − plain) on the shared parameters, so that backward gives the balanced one.
        # The task gradients are taken from each preference's own losses where it ran its own pass (``pieces``);
        # balancing keeps their directions only, which a loss balancer's detached scale leaves alone. The plain
        # gradient is the same task gradients weighted by ∂objective/∂L, a backward through the weighting alone.
        shared = [p for p in self._shared_parameters(inputs) if p.requires_grad]
        coefficients = torch.autograd.grad(objective, losses, retain_graph=True)[0]
        balanced, plain = balanced_and_plain_gradients(losses if pieces is None else pieces, prefs, shared,
                                                       coefficients, self._reduce)
        term = objective.new_zeros(())
        for param, target, current in zip(shared, balanced, plain, strict=True):
            term = term + ((target - current).detach() * (param - param.detach())).sum()
        return term

    def _shared_parameters(self, inputs: Any) -> list[nn.Parameter]:
        if self._shared is None:
            self._shared = shared_parameters(self.pm, inputs)
        return self._shared

    def _find_representation(self) -> nn.Module:
        try:
            return self.pm.model.get_submodule(self.representation)
        except AttributeError:
            children = ", ".join(n for n, _ in self.pm.model.named_children())
            raise ParetorchError(f"gradients='representation' needs the submodule {self.representation!r} of the "
                                 f"model, which has none; set representation= one of: {children}") from None

    # ----- state ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the loss carries from step to step: the objective's state and the loss balancer's window."""
        return {"objective": self.objective.state_dict(),
                "balancer": None if self.balancer is None else self.balancer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("objective") is not None:
            self.objective.load_state_dict(state["objective"])
        if self.balancer is not None and state.get("balancer") is not None:
            self.balancer.load_state_dict(state["balancer"])
