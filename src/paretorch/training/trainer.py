"""The training engine: multi-forward steps over preferences, regularisers, checkpoints and fronts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from paretorch._files import atomic_torch_save, load_checkpoint_file
from paretorch._random import epoch_scope
from paretorch.errors import NonFiniteLossError, ParetorchError
from paretorch.objectives import GradientSource, Objective
from paretorch.parameterisations import ParetoModel
from paretorch.parameterisations._model import running_batchnorms
from paretorch.preferences import PreferenceSampler
from paretorch.training import distributed as dist_state
from paretorch.training.epoch_logs import EpochLog, check_log_kinds, make_logs
from paretorch.training.evaluation import (
    RECALIBRATION_EXAMPLES,
    Front,
    TaskMetric,
    evaluate_front,
    evaluate_front_across_processes,
    recalibration_batches,
)
from paretorch.training.loss import ParetoLoss, TaskLoss
from paretorch.training.regularisers import Regulariser

__all__ = ["TrainConfig", "Trainer", "configured_loss", "default_eval_every", "freeze_if_due", "parameter_groups"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults are plain Adam; the method presets set the papers' values."""

    epochs: int = 10
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["none", "step", "cosine"] = "none"
    step_epochs: int = 0  # step schedule: multiply the lr by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    clip_grad_norm: float | None = None
    loss_balancing_window: int = 0  # 0: off
    gradient_balancing: bool = False
    freeze_epoch: int | None = None  # LORPMAN: from this epoch on only the adapters train
    member_lr_multiplier: bool = False  # PaMaL: lr × T for the preference-mixed parameters (ensemble members)
    # Validate every this many epochs (and after the last); None: about ten times a run (default_eval_every).
    eval_every: int | None = None
    seed: int = 0
    # Gradient-based objectives (MGDA, Pareto MTL, CPMTL's moo, EPO) read the Gram matrix of the task gradients
    # with respect to what they declare (``Objective.gradients``); this overrides it: the shared parameters,
    # all parameters, or the output of the submodule ``representation`` of the user's model (MGDA-UB, Sener &
    # Koltun 2018: one backward per task through the heads only).
    objective_parameters: GradientSource | None = None
    representation: str = "encoder"
    # "32", "bf16-mixed" or "16-mixed" (Lightning's names): the training forward passes under autocast, with a
    # GradScaler for "16-mixed" (paretorch.training.precision). Evaluation keeps the parameters' precision.
    precision: str = "32"


def build_optimizer(params: Iterable[Any], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` names (Adam or SGD) over ``params`` (tensors or param groups)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ParetorchError(f"unknown optimizer {config.optimizer!r}; use 'adam' or 'sgd'")


def parameter_groups(pm: ParetoModel, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups for ``pm`` under ``config``: the preference-mixed parameters (adapters,
    ensemble members) at ``lr × T`` when ``member_lr_multiplier`` is set (PaMaL §5, PaLoRA's official code),
    everything else at ``lr``. Give them to your own optimiser to train as the Trainer does.

    >>> import torch
    >>> from paretorch import build_method
    >>> setup = build_method("palora", torch.nn.Sequential(torch.nn.Linear(4, 2)), 2)
    >>> [round(group["lr"], 6) for group in parameter_groups(setup.pm, setup.config)]
    [0.002, 0.001]
    """
    adapters = {id(p) for p in pm.adapter_parameters()}
    member_scale = pm.num_tasks if config.member_lr_multiplier else 1
    groups = [
        {"params": [p for p in pm.parameters() if id(p) in adapters], "lr": config.lr * member_scale},
        {"params": [p for p in pm.parameters() if id(p) not in adapters], "lr": config.lr},
    ]
    return [group for group in groups if group["params"]]


def configured_loss(pm: ParetoModel, losses: Sequence[TaskLoss] | Mapping[str, TaskLoss], sampler: PreferenceSampler,
                    config: TrainConfig, objective: Objective | None = None, regularisers: Iterable[Regulariser] = (),
                    total_steps: int | None = None, distributed: nn.Module | None = None) -> ParetoLoss:
    """The :class:`~paretorch.ParetoLoss` that ``config``'s loss settings describe (gradients, representation,
    loss and gradient balancing, seed): the one a :class:`Trainer` with this config trains with."""
    return ParetoLoss(pm, losses, sampler, objective, regularisers, gradients=config.objective_parameters,
                      representation=config.representation, loss_balancing_window=config.loss_balancing_window,
                      gradient_balancing=config.gradient_balancing, seed=config.seed, total_steps=total_steps,
                      distributed=distributed, precision=config.precision)


def freeze_if_due(pm: ParetoModel, config: TrainConfig, epoch: int) -> bool:
    """At the start of ``epoch``: freeze ``pm``'s base network once ``config.freeze_epoch`` is reached, so that
    from then on only the adapters (or members) train (LORPMAN's second phase, Algorithm 1).

    Returns True when this call changed which parameters train. A ``DistributedDataParallel`` wrapper built
    before then synchronises parameters that no longer receive gradients, and must be built again (the
    Trainer does; ``examples/accelerate_front.py`` shows it with Accelerate).

    >>> import torch
    >>> from paretorch import build_method
    >>> setup = build_method("lorpman", torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)), 2,
    ...                      epochs=10)
    >>> [freeze_if_due(setup.pm, setup.config, epoch) for epoch in (7, 8, 9)]  # frozen after 80 % of 10 epochs
    [False, True, False]
    """
    if config.freeze_epoch is None or epoch < config.freeze_epoch:
        return False
    was_training = any(param.requires_grad for param in pm.base_parameters())
    pm.freeze_base()
    return was_training


class Trainer:
    """Train a :class:`ParetoModel` with per-task losses on a ``DataLoader`` of ``(inputs, targets)`` batches.

    The Trainer is a :class:`~paretorch.ParetoLoss` (``self.loss``: sampler, objective, regularisers) plus the
    loop, the optimizer and schedule, checkpoints and evaluation. Each step the loss draws M preferences from
    ``sampler``, evaluates the batch at all of them in one :meth:`ParetoModel.multi_forward` pass (one pass per
    preference under gradient balancing or a gradient-based objective, see ParetoLoss) and returns
    Σ_j w_jᵀ L(θ(λ_j)) + Σ_r coefficient_r · R_r (w = λ for linear scalarisation, the default objective).
    With a ``run_dir``, every epoch ends with an atomic checkpoint and then a line in ``metrics.jsonl``
    (rewritten from the checkpoint's history, so a killed and resumed run has each epoch once); fronts are
    saved there as JSON and CSV. ``fit(resume=True)`` continues a killed run and ends with the same weights
    as an uninterrupted one: every random stream (data order, preference draws, dropout, the regularisers'
    and objectives' draws) is re-derived at each epoch from ``config.seed``. A ``DataLoader`` built with a
    ``generator`` has that generator re-seeded each epoch; one without draws its order from the process-wide
    generator, which each epoch sees seeded (and restored afterwards, so the caller's own stream is not
    disturbed).

    ``distributed=True`` trains on the processes of an initialised ``torch.distributed`` process group (one per
    GPU under ``torchrun``): the Trainer wraps ``pm`` in ``DistributedDataParallel`` (again when a freeze epoch
    changes what trains), each process feeds its own share of every batch (a ``DistributedSampler``, whose
    epoch the Trainer sets), every process draws the same preferences, the evaluation grid is split across
    the processes, and only rank 0 writes the run directory.

    ``config.precision`` ``"bf16-mixed"`` or ``"16-mixed"`` runs the training forward passes under autocast
    (float16 with a ``GradScaler``, whose scale the checkpoint keeps); evaluation runs in the parameters' own
    precision, so fronts compare across precisions (:mod:`paretorch.training.precision`).

    ``logs=["csv", "tensorboard"]`` also writes each epoch's record to ``metrics.csv`` and to TensorBoard
    (see :mod:`paretorch.training.epoch_logs`); ``eval_chunk`` is how many preferences one evaluation pass
    takes (default: as many as :func:`~paretorch.training.evaluation.preferences_per_pass` allows, at most
    16). The validation hypervolume keeps the reference point of the first validation for the whole run, so
    that epochs compare. A steerable model with BatchNorm layers is evaluated at each preference with running
    statistics refit there on ``recalibration_examples`` training examples (default 512, 0: the statistics of
    training), taken from ``recalibration_data`` or else from the first batches of the loader ``fit`` trains on;
    training itself is unaffected (see :func:`~paretorch.training.evaluation.evaluate_front`). With
    ``distributed=True`` and no ``recalibration_data``, each process refits on its own share of that loader.
    """

    def __init__(
        self,
        pm: ParetoModel,
        losses: Sequence[TaskLoss] | Mapping[str, TaskLoss],
        sampler: PreferenceSampler,
        config: TrainConfig | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        metrics: Sequence[Callable[[], TaskMetric]] | Mapping[str, Callable[[], TaskMetric]] | None = None,
        progress: bool = False,
        objective: Objective | None = None,
        objective_parameters: GradientSource | None = None,
        regularisers: Iterable[Regulariser] = (),
        distributed: bool = False,
        eval_chunk: int | None = None,
        logs: Sequence[str] = (),
        recalibration_examples: int = RECALIBRATION_EXAMPLES,
        recalibration_data: Iterable[Any] | None = None,
    ) -> None:
        if distributed and not dist_state.active():
            raise ParetorchError("distributed=True needs an initialised process group: launch with torchrun and "
                                 "call torch.distributed.init_process_group() first")
        self.pm = pm
        self.distributed = distributed
        self.eval_chunk = eval_chunk  # preferences per evaluation pass; None: as many as fit (preferences_per_pass)
        if recalibration_examples < 0:
            raise ParetorchError(f"recalibration_examples must be >= 0 (0: no recalibration), got "
                                 f"{recalibration_examples}")
        self.recalibration_examples = recalibration_examples
        self.recalibration_data = recalibration_data
        self._train_loader: Iterable[Any] | None = None  # fit's, where recalibration batches come from by default
        self.log_kinds = list(logs)
        if self.log_kinds and run_dir is None:
            raise ParetorchError("logs=[...] write into the run directory: give run_dir too")
        check_log_kinds(self.log_kinds)
        self._logs: list[EpochLog] = []
        self.config = config or TrainConfig()
        if objective_parameters is not None:  # the argument overrides the config's field
            self.config = replace(self.config, objective_parameters=objective_parameters)
        self.loss = configured_loss(pm, losses, sampler, self.config, objective, regularisers)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and dist_state.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = metrics
        self.progress = progress
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        # Float16 training scales the loss so that small gradients survive; built at the first step, on the device
        # the model is then on (a checkpoint's scale waits there until it is).
        self.scaler: torch.amp.GradScaler | None = None
        self._scaler_state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self._wrapped_trainable: frozenset[int] | None = None
        # The hypervolume reference of every validation front of the run, fixed at the first one (for metrics
        # to minimise it is 1.1 × the worst value then), so that validation hypervolumes compare across epochs.
        self.val_reference: list[float] | None = None

    @property
    def objective(self) -> Objective:
        return self.loss.objective

    @property
    def sampler(self) -> PreferenceSampler:
        return self.loss.sampler

    # ----- set-up ------------------------------------------------------------------------------------------------
    def _build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(parameter_groups(self.pm, self.config), self.config)

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        cfg = self.config
        if cfg.schedule == "none":
            return None
        if cfg.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, max(cfg.step_epochs, 1), cfg.step_gamma)
        if cfg.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, max(cfg.epochs, 1))
        raise ParetorchError(f"unknown schedule {cfg.schedule!r}; use 'none', 'step' or 'cosine'")

    # ----- checkpoints --------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        """Write the run's state atomically (a kill or a full disk keeps the previous checkpoint); on several
        processes rank 0 writes it (all hold the same state)."""
        if self.checkpoint_path is None or not dist_state.is_main():
            return
        atomic_torch_save({
            "epoch": self.epoch, "model": self.pm.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "history": self.history, "config": asdict(self.config), "model_config": self.pm.config,
            "val_reference": self.val_reference, "scaler": self._scaler_state_dict(),
        } | self.loss.state_dict(), self.checkpoint_path)

    def load_checkpoint(self, path: str | os.PathLike[str] | None = None) -> None:
        """Restore model, optimizer, schedule, balancer, objective, epoch and history from a checkpoint.

        The file is read with ``torch.load(weights_only=True)``: a checkpoint holding arbitrary pickled
        objects is refused with one line and nothing in it runs.
        """
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None or not target.exists():
            raise ParetorchError(f"no checkpoint at {target}; start without --resume")
        state = load_checkpoint_file(target)
        try:
            self.pm.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.loss.load_state_dict(state)
            # The next step builds the scaler again, from the checkpoint's scale.
            self.scaler, self._scaler_state = None, state.get("scaler")
            self.epoch, self.history = int(state["epoch"]), list(state.get("history", []))
            reference = state.get("val_reference")
            self.val_reference = None if reference is None else [float(value) for value in reference]
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ParetorchError(f"checkpoint {target} does not match this model and settings ({first_line[:200]}); "
                                 "load it with the settings it was trained with") from error

    # ----- one step -----------------------------------------------------------------------------------------------
    def training_step(self, batch: Any, step: int, total_steps: int) -> dict[str, float]:
        """One optimisation step on ``batch``: the loss, its backward, clipping and the optimizer's step."""
        try:
            out = self.loss(batch, step, total_steps)
        except NonFiniteLossError as error:
            kept = (f"; the last good checkpoint is {self.checkpoint_path}"
                    if self.checkpoint_path is not None and self.checkpoint_path.exists() else "")
            raise ParetorchError(f"non-finite loss at epoch {self.epoch} step {error.step} (task losses "
                                 f"{error.losses}){kept}; lower the learning rate or set clip_grad_norm") from None
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self._gradient_scaler(out.loss.device)
        if scaler is None:
            out.loss.backward()
            if self.config.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.pm.parameters(), self.config.clip_grad_norm)
            self.optimizer.step()
        else:
            # The scaled loss's gradients are unscaled before clipping; a step with overflowing ones is skipped and
            # the scale lowered.
            scaler.scale(out.loss).backward()
            if self.config.clip_grad_norm is not None:
                scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.pm.parameters(), self.config.clip_grad_norm)
            scaler.step(self.optimizer)
            scaler.update()
        per_task = out.losses.mean(dim=0).tolist()  # each task's loss, averaged over the step's preferences
        return out.logs() | {f"loss_{self.loss.tasks.label(t)}": value for t, value in enumerate(per_task)}

    def _gradient_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        if self.config.precision != "16-mixed":
            return None
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler(device.type)
            if self._scaler_state is not None:
                self.scaler.load_state_dict(self._scaler_state)
        return self.scaler

    def _scaler_state_dict(self) -> dict[str, Any] | None:
        # Before the first step of a resumed run, the checkpoint's scale stands.
        return self.scaler.state_dict() if self.scaler is not None else self._scaler_state

    # ----- epochs -------------------------------------------------------------------------------------------------
    def fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, resume: bool = False
            ) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (continuing from the checkpoint with ``resume=True``)."""
        cfg = self.config
        self._train_loader = train_loader
        if resume:
            self.load_checkpoint()
        if self.run_dir is not None and dist_state.is_main():
            self._logs = make_logs(self.log_kinds, self.run_dir, self.epoch)
            if resume:
                self._write_logs()  # drop lines a kill left beyond the checkpoint
        steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        total_steps = cfg.epochs * steps_per_epoch
        device = next(self.pm.parameters()).device
        try:
            while self.epoch < cfg.epochs:
                with epoch_scope(cfg.seed, self.epoch, train_loader, device):
                    self._train_epoch(train_loader, val_loader, steps_per_epoch, total_steps)
        finally:
            for log in self._logs:
                log.close()
            self._logs = []
        return self.history

    def _train_epoch(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None, steps_per_epoch: int,
                     total_steps: int) -> None:
        cfg = self.config
        device = next(self.pm.parameters()).device
        freeze_if_due(self.pm, cfg, self.epoch)
        if self.distributed:
            self._wrap_for_processes()
        # Everything random in an epoch derives from (seed, epoch): where a run resumed makes no difference.
        self.loss.start_epoch(self.epoch)
        self.pm.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}
        batches = enumerate(train_loader)
        bar = None
        if self.progress and dist_state.is_main():
            try:
                from tqdm import tqdm

                # disable=None: no bar when stderr is not a terminal (logs, CI).
                bar = tqdm(total=steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                           disable=None)
            except ImportError:  # tqdm is an optional extra; train silently without it
                bar = None
        for index, batch in batches:
            step = self.epoch * steps_per_epoch + index
            logs = self.training_step(batch, step, total_steps)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + value
            if bar is not None:
                last_hv = self.history[-1].get("val_hypervolume") if self.history else None
                bar.set_postfix(loss=f"{sums['loss'] / (index + 1):.4f}", hv=last_hv)
                bar.update()
        if bar is not None:
            bar.close()
        if self.scheduler is not None:
            self.scheduler.step()
        # Epoch means of the step logs: the loss per preference, each task's loss and each regulariser; every
        # process logs the mean over all of them (each saw its own share of the data).
        names = sorted(sums)
        means = dist_state.average(torch.tensor([sums[name] / max(steps_per_epoch, 1) for name in names],
                                                dtype=torch.float64, device=device)).tolist() if names else []
        epoch_means = dict(zip(names, means, strict=True))
        record: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": epoch_means.pop("loss", float("nan")),
                                  "seconds": time.perf_counter() - start}
        record |= {f"train_{name}": value for name, value in epoch_means.items()}
        self.epoch += 1
        every = cfg.eval_every or default_eval_every(cfg.epochs)
        if val_loader is not None and self.metrics is not None and (
                self.epoch % every == 0 or self.epoch == cfg.epochs):
            validation_start = time.perf_counter()
            front = self.evaluate(val_loader, stem=f"front_val_epoch{self.epoch}", ref=self.val_reference)
            if self.val_reference is None:
                self.val_reference = [float(value) for value in front.ref or []] or None
            record["val_hypervolume"] = front.hypervolume["value"]
            record["val_nondominated"] = front.num_nondominated
            record["val_seconds"] = time.perf_counter() - validation_start
        self.history.append(record)
        # The checkpoint first, then the log line that describes it: a kill in between loses a line that the
        # resumed run rewrites from the checkpoint's history, never duplicates one.
        self.save_checkpoint()
        self._write_logs()
        if self.progress and dist_state.is_main():
            print(_summary(record, cfg.epochs), flush=True)

    def _wrap_for_processes(self) -> None:
        """(Re)build the ``DistributedDataParallel`` wrapper over the parameters that train now: DDP fixes the
        set it synchronises when built, and a freeze epoch changes it."""
        trainable = frozenset(id(p) for p in self.pm.parameters() if p.requires_grad)
        if trainable == self._wrapped_trainable:
            return
        from torch.nn.parallel import DistributedDataParallel

        device = next(self.pm.parameters()).device
        self.loss.distributed = DistributedDataParallel(
            self.pm, device_ids=[device.index] if device.type == "cuda" else None)
        self._wrapped_trainable = trainable

    def _write_logs(self) -> None:
        # metrics.jsonl and the requested logs (only rank 0 holds any).
        for log in self._logs:
            log.write(self.history)

    def evaluate(self, loader: Iterable[Any], grid: Tensor | None = None, stem: str | None = None,
                 ref: Sequence[float] | None = None) -> Front:
        """The front on ``loader`` (saved as ``stem``.json/.csv in the run directory when given); ``ref`` fixes the
        hypervolume's reference point (default: 0 for metrics to maximise, 1.1 × the worst value otherwise)."""
        if self.metrics is None:
            raise ParetorchError("evaluation needs metrics=[...] (one factory per task) on the Trainer")
        recalibrate = self._recalibration()
        front = (evaluate_front_across_processes(self.pm, loader, self.metrics, grid, ref, self.eval_chunk, recalibrate)
                 if self.distributed else
                 evaluate_front(self.pm, loader, self.metrics, grid, ref, self.eval_chunk, recalibrate))
        if stem is not None and self.run_dir is not None and dist_state.is_main():
            front.save(self.run_dir, stem)
        return front

    def _recalibration(self) -> list[Any] | None:
        """The batches evaluation refits BatchNorm statistics on (None: none to refit, or switched off)."""
        source = self.recalibration_data if self.recalibration_data is not None else self._train_loader
        if not self.recalibration_examples or source is None or not running_batchnorms(self.pm):
            return None
        return recalibration_batches(source, self.recalibration_examples)




def default_eval_every(epochs: int) -> int:
    """How often a run validates when ``eval_every`` is unset: every ``epochs // 10`` epochs (at least every
    epoch), so about ten times a run, and always after the last epoch.

    Why not every epoch: a validation evaluates the whole grid of preferences (11 points for 2 tasks, 66 for 3,
    100 from 4), each on the validation set and, with BatchNorm, after a refit on 512 training examples. On the
    papers' image data sets that costs as much as an epoch of training or more (NYUv2, UTKFace, CelebA,
    CIFAR-100; ``benchmarks/validation_cost.py``), while their budgets run 50-300 epochs.

    >>> [default_eval_every(epochs) for epochs in (1, 10, 19, 20, 50, 300)]
    [1, 1, 1, 2, 5, 30]
    """
    return max(1, epochs // 10)


def _summary(record: Mapping[str, Any], epochs: int) -> str:
    """One line per epoch for logs and terminals: the loss per preference, validation front and time."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    if record.get("val_hypervolume") is not None:
        parts.append(f"val_hypervolume {record['val_hypervolume']:.4g}")
    if "val_nondominated" in record:
        parts.append(f"non-dominated {record['val_nondominated']}")
    parts.append(f"{record['seconds']:.1f} s")
    if "val_seconds" in record:
        parts.append(f"(validation {record['val_seconds']:.1f} s)")
    return "  ".join(parts)
