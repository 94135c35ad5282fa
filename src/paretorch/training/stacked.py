"""K plain models trained together in one process: Pareto MTL's K subproblems, vectorised with ``torch.func``.

Pareto MTL (Lin et al. 2019) trains one model per preference vector. The K models have the same architecture
and see the same batches, so their parameters can be stacked along a new leading axis and their forward
passes run as one ``vmap`` over ``functional_call``. One backward pass per task then yields every model's
task gradient at once (the models do not share parameters, so the gradient of ``Σ_k L_t^k`` holds each
model's own ``∇L_t^k`` in its slice); the K small duals are solved on the CPU and one more backward applies
the K weighted objectives. Sequentially the same work costs K forward passes and K·(T + 1) backward passes.

``python benchmarks/pareto_mtl_stacked.py`` measures which way is faster; see the README for the figures.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from paretorch._random import epoch_scope
from paretorch.errors import ParetorchError
from paretorch.objectives import Objective
from paretorch.parameterisations import move_to, plain, shared_parameters
from paretorch.training.evaluation import as_task_list, split_batch
from paretorch.training.gradients import independent_task_grams
from paretorch.training.precision import check_gradient_precision, forward_precision, in_float32
from paretorch.training.trainer import TrainConfig, build_optimizer

__all__ = ["StackedTrainer"]


class StackedTrainer:
    """Train ``K`` copies of one architecture at once, model ``k`` with its own gradient objective.

    ``models``: K plain models of the same class (their current weights are the starting points);
    ``objectives``: one :class:`~paretorch.objectives.Objective` per model (for instance
    ``ParetoMTL(refs, k)``); ``config``: ``epochs``, ``lr``, ``optimizer``, ``momentum``, ``weight_decay``,
    ``clip_grad_norm`` (per model), ``seed``, ``precision`` (``"32"`` or ``"bf16-mixed"``) and
    ``objective_parameters`` (``"shared"`` or ``"all"``; by default what the objectives declare) are used. The
    objectives and the Gram computation are the pieces :class:`~paretorch.ParetoLoss` uses; only the forward
    (vmapped over the K models) is this class's own.
    BatchNorm layers that track running statistics are not supported (vmap cannot update them in place).

    >>> from paretorch.objectives import ParetoMTL
    >>> from paretorch.preferences import unit_vectors
    >>> refs = unit_vectors(2, 3)
    >>> models = [torch.nn.Linear(4, 2) for _ in range(3)]
    >>> data = [(torch.randn(8, 4), torch.randn(8, 2))]
    >>> mse = lambda out, target: ((out - target) ** 2).mean()
    >>> split = lambda out: [out[..., 0], out[..., 1]]  # one Linear output column per task
    >>> trainer = StackedTrainer(models, [mse, mse], [ParetoMTL(refs, k, init_steps=0) for k in range(3)],
    ...                          TrainConfig(epochs=2, objective_parameters="all"), output_split=split)
    >>> [type(m).__name__ for m in trainer.fit(data)]
    ['Linear', 'Linear', 'Linear']
    """

    def __init__(self, models: Sequence[nn.Module], losses: Sequence[Callable[[Tensor, Tensor], Tensor]],
                 objectives: Sequence[Objective], config: TrainConfig | None = None,
                 output_split: Callable[[Any], list[Tensor]] | None = None) -> None:
        if len(models) < 1 or len(models) != len(objectives):
            raise ParetorchError(f"give one objective per model: got {len(models)} models and "
                                 f"{len(objectives)} objectives")
        if len({type(m) for m in models}) != 1:
            raise ParetorchError("stacked training needs K models of the same class")
        for module in models[0].modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                raise ParetorchError("stacked training cannot update BatchNorm running statistics under vmap; "
                                     "train the subproblems one by one (paretorch train … vectorise=false)")
        self.config = config or TrainConfig()
        check_gradient_precision(self.config.precision, False, f"the objective {type(objectives[0]).__name__}")
        self.gradients = self.config.objective_parameters or objectives[0].gradients
        if self.gradients not in ("shared", "all"):
            raise ParetorchError("stacked training takes task gradients on 'shared' or 'all' parameters")
        self.models = list(models)
        self.loss_fns, self.objectives = list(losses), list(objectives)
        self.num_tasks = len(self.loss_fns)
        # Optional: how to read the T task outputs from the model's output (default: list/tuple/dict of T).
        self.output_split = output_split
        params, buffers = stack_module_state(self.models)
        self.params = {name: nn.Parameter(value.detach().clone()) for name, value in params.items()}
        self.buffers = {name: value.detach().clone() for name, value in buffers.items()}
        self._skeleton = copy.deepcopy(self.models[0]).to("meta")
        self._gram_names: list[str] | None = None
        # Adam and SGD act elementwise, so one optimiser over the stacked tensors equals K separate ones.
        self.optimizer = build_optimizer(list(self.params.values()), self.config)

    @property
    def num_models(self) -> int:
        return len(self.models)

    def _forward(self, inputs: Any) -> list[Tensor]:
        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Any) -> Any:
            return functional_call(self._skeleton, (params, buffers), (x,))

        outputs = vmap(one, in_dims=(0, 0, None), randomness="different")(self.params, self.buffers, inputs)
        tasks = self.output_split(outputs) if self.output_split is not None else as_task_list(outputs)
        if len(tasks) != self.num_tasks:
            raise ParetorchError(f"the model returned {len(tasks)} outputs for {self.num_tasks} losses")
        return tasks

    def _names_for_gram(self, inputs: Any) -> list[str]:
        if self._gram_names is None:
            if self.gradients == "all":
                self._gram_names = list(self.params)
            else:
                probe = plain(copy.deepcopy(self.models[0]), self.num_tasks)
                shared = {id(p) for p in shared_parameters(probe, inputs)}
                self._gram_names = [name for name, p in probe.model.named_parameters() if id(p) in shared]
        return self._gram_names

    def training_step(self, batch: Any) -> Tensor:
        """One step for all K models; returns their task losses ``(K, T)`` before the update."""
        inputs, targets = split_batch(batch, self.num_tasks)
        device = next(iter(self.params.values())).device
        inputs, targets = move_to(inputs, device), move_to(targets, device)
        with forward_precision(self.config.precision, device):
            outputs = self._forward(inputs)
            losses = torch.stack([torch.stack([fn(outputs[t][k], targets[t]) for t, fn in enumerate(self.loss_fns)])
                                  for k in range(self.num_models)])  # (K, T)
        losses = in_float32(losses, self.config.precision)
        names = self._names_for_gram(inputs)
        grams = independent_task_grams(losses, [self.params[name] for name in names])
        detached = losses.detach()
        # Each model's objective sees its own step: one preference (unused by Pareto MTL), its losses and Gram.
        no_preference = detached.new_zeros(1, self.num_tasks)
        weights = torch.cat([objective.step_weights(detached[k][None], grams[k][None], no_preference).to(losses)
                             for k, objective in enumerate(self.objectives)])
        for k, objective in enumerate(self.objectives):
            objective.update(detached[k][None], grams[k][None], no_preference)
        self.optimizer.zero_grad(set_to_none=True)
        (weights * losses).sum().backward()
        if self.config.clip_grad_norm is not None:
            self._clip_per_model(self.config.clip_grad_norm)
        self.optimizer.step()
        return detached

    def _clip_per_model(self, max_norm: float) -> None:
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.reshape(self.num_models, -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
        factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for grad in grads:
            grad.mul_(factor.view(-1, *[1] * (grad.dim() - 1)))

    def fit(self, train_loader: Iterable[Any]) -> list[nn.Module]:
        """Train for ``config.epochs`` epochs and return the K trained models (copies of the inputs' class)."""
        device = next(iter(self.params.values())).device
        for epoch in range(self.config.epochs):
            # The same per-epoch streams as Trainer, so K stacked models equal K Trainer runs.
            with epoch_scope(self.config.seed, epoch, train_loader, device):
                for batch in train_loader:
                    losses = self.training_step(batch)
                    if not torch.isfinite(losses).all():
                        raise ParetorchError(f"non-finite loss at epoch {epoch} (task losses {losses.tolist()}); "
                                             "lower the learning rate or set clip_grad_norm")
        return self.trained_models()

    def trained_models(self) -> list[nn.Module]:
        """The K models with the current stacked weights, as plain modules."""
        trained = []
        for k, model in enumerate(self.models):
            copy_ = copy.deepcopy(model)
            state = {name: value[k].detach().clone() for name, value in {**self.params, **self.buffers}.items()}
            copy_.load_state_dict(state)
            trained.append(copy_)
        return trained
