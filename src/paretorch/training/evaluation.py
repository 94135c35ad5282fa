"""Evaluate a steerable model along a preference grid and summarise the learned front."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from paretorch._files import atomic_write_text, read_json, write_json
from paretorch.errors import ParetorchError
from paretorch.metrics import hypervolume, nondominated, spearman_monotonicity
from paretorch.parameterisations import ParetoModel, map_tensors, move_to, split_outputs
from paretorch.parameterisations._model import batch_inputs, recalibrate_batchnorm, running_batchnorms, tensors_in
from paretorch.preferences import simplex_grid
from paretorch.training import distributed as dist_state
from paretorch.training.tasks import TaskOrder

__all__ = ["EVAL_ACTIVATION_BYTES", "RECALIBRATION_EXAMPLES", "Accuracy", "Front", "MeanLoss", "TaskMetric",
           "evaluate_front", "evaluate_front_across_processes", "on_common_reference", "preferences_per_pass",
           "recalibration_batches", "split_batch"]

# What one evaluation pass may hold in activations. Stacking the whole grid of a ResNet-18 on 28 × 28 images
# (11 preferences × 1,024 images) held 12 GB and, beside training, ended a 24 GB machine's run; a LeNet's
# 16 preferences × 1,024 images take about 0.1 GB, so small models keep their one pass per 16 preferences.
EVAL_ACTIVATION_BYTES = 2 * 2**30
MAX_PREFERENCES_PER_PASS = 16
# Training examples on which a steerable model's BatchNorm statistics are refit at each evaluated preference.
# A PaMaL ResNet-18 (MultiMNIST, 3 epochs) scored test HV 0.624 with the running statistics of training, which
# average over every preference drawn, and 0.854 / 0.851 refit on 512 / 2,048 examples per preference.
RECALIBRATION_EXAMPLES = 512
# Tensors of the largest activation's size alive at once, per example (a residual block holds its input, two
# convolution outputs and a normalised one).
_LIVE_ACTIVATIONS = 4


class TaskMetric:
    """A per-task metric accumulated over batches: ``update(output, target)`` then ``compute()``."""

    name: str = "metric"
    higher_is_better: bool = True

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, output: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError


class Accuracy(TaskMetric):
    """Fraction of samples whose arg-max logit equals the class label (maximised, reference 0)."""

    name = "accuracy"
    higher_is_better = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct, self.total = 0, 0

    def update(self, output: Tensor, target: Tensor) -> None:
        # Targets of -100 (F.cross_entropy's ignore_index) mark samples of another task: they are not counted.
        valid = target != -100
        self.correct += int(((output.argmax(dim=-1) == target) & valid).sum())
        self.total += int(valid.sum())

    def compute(self) -> float:
        return self.correct / max(self.total, 1)


class MeanLoss(TaskMetric):
    """Sample-weighted mean of a loss function (minimised)."""

    higher_is_better = False

    def __init__(self, loss: Callable[[Tensor, Tensor], Tensor], name: str = "loss") -> None:
        self.loss, self.name = loss, name
        self.reset()

    def reset(self) -> None:
        self.sum, self.count = 0.0, 0

    def update(self, output: Tensor, target: Tensor) -> None:
        self.sum += float(self.loss(output, target)) * target.shape[0]
        self.count += target.shape[0]

    def compute(self) -> float:
        return self.sum / max(self.count, 1)


def split_batch(batch: Any, num_tasks: int, tasks: TaskOrder | None = None) -> tuple[Any, list[Tensor]]:
    """A batch is ``(inputs, targets)``; targets are a sequence of T tensors, a dict by task name (read in the
    order of ``tasks``), or one tensor whose last axis (or, for shape (B, T), column t) is task t's target."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ParetorchError("each batch must be (inputs, targets), with one target per task")
    inputs, targets = batch
    if isinstance(targets, Tensor):
        if targets.dim() < 2 or targets.shape[-1] != num_tasks:
            raise ParetorchError(f"a target tensor must have a last axis of size {num_tasks} (one per task), "
                                 f"got shape {tuple(targets.shape)}")
        targets = list(targets.unbind(dim=-1))
    order = tasks if tasks is not None else TaskOrder(num_tasks)
    return inputs, order.select(targets, "the batch's targets")


def as_task_list(outputs: Any, tasks: TaskOrder | None = None) -> list[Tensor]:
    """The model's outputs as a list in task order (a dict is read by task name)."""
    if tasks is None:
        return list(outputs.values()) if isinstance(outputs, Mapping) else list(outputs)
    return tasks.select(outputs, "the model's outputs")


# From this many tasks on, Front.table prints a summary row per preference instead of every task's metric.
TABLE_TASKS = 6


def numbers_text(values: Sequence[float], digits: int = 4) -> str:
    """A list of per-task numbers for one line of text: all of them up to :data:`TABLE_TASKS`, else what they
    are made of (one value for all, or the minimum, median and maximum).

    >>> numbers_text([0.5, 0.25])
    '[0.5, 0.25]'
    >>> numbers_text([0.0] * 40)
    '0 for each of 40 tasks'
    >>> numbers_text([float(i) for i in range(40)], 2)
    'min 0 (task 0), median 19.5, max 39 (task 39) over 40 tasks'
    >>> numbers_text([0.5] * 7 + [float("nan")])
    '0.5 for each of 7 tasks, undefined for 1'
    """
    rounded = [round(float(v), digits) for v in values]
    if len(rounded) <= TABLE_TASKS:
        return str(rounded)
    array = np.asarray(rounded, dtype=float)
    finite = np.isfinite(array)
    # A correlation is undefined (NaN) for a task whose metric is the same at every preference.
    undefined = f", undefined for {int((~finite).sum())}" if not finite.all() else ""
    if not finite.any():
        return f"undefined for each of {len(rounded)} tasks"
    if np.ptp(array[finite]) == 0:
        return f"{array[finite][0]:g} for each of {int(finite.sum())} tasks{undefined}"
    masked = np.where(finite, array, np.nan)
    low, high = int(np.nanargmin(masked)), int(np.nanargmax(masked))
    return (f"min {array[low]:g} (task {low}), median {float(np.nanmedian(masked)):g}, max {array[high]:g} "
            f"(task {high}) over {int(finite.sum())} tasks{undefined}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@dataclass
class Front:
    """A learned front: one row of per-task metrics per preference, with its quality indicators."""

    preferences: np.ndarray
    values: np.ndarray
    metric_names: list[str]
    higher_is_better: list[bool]
    nondominated: np.ndarray = field(init=False)
    hypervolume: dict[str, Any] = field(init=False)
    spearman: list[float] = field(init=False)
    ref: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        signs = np.where(np.asarray(self.higher_is_better), -1.0, 1.0)
        minimised = self.values * signs
        finite = np.isfinite(minimised).all(axis=1)
        # A preference whose metrics are NaN or infinite (a diverged model) has no place on a front: it is not
        # counted as non-dominated, and the hypervolume is reported as undefined rather than as a number.
        self.nondominated = np.zeros(len(minimised), dtype=bool)
        if finite.any():
            self.nondominated[finite] = nondominated(minimised[finite])
        if self.ref is None:
            if not all(self.higher_is_better):
                # Losses have no natural reference: use the worst value seen, plus 10 %; said in the result.
                worst = (np.nanmax(np.where(finite[:, None], self.values, np.nan), axis=0) * 1.1 if finite.any()
                         else np.full(self.values.shape[1], np.nan))
                self.ref = [0.0 if hib else float(w) for hib, w in zip(self.higher_is_better, worst, strict=True)]
            else:
                self.ref = [0.0] * len(self.metric_names)
        if finite.all() and np.isfinite(self.ref).all():
            hv = hypervolume(minimised, ref=np.asarray(self.ref) * signs).to_dict()
        else:
            bad = [[round(float(p), 4) for p in pref] for pref in self.preferences[~finite]]
            hv = {"value": None, "method": "undefined", "problem":
                  f"metrics are not finite at {len(bad)} of {len(finite)} preferences {bad[:5]}"}
        self.hypervolume = hv | {"ref": self.ref, "maximize": list(self.higher_is_better)}
        # Raw metric: near +1 for an accuracy that rises with its weight, near -1 for a loss that falls.
        self.spearman = ([float(v) for v in spearman_monotonicity(self.preferences[finite], self.values[finite])]
                         if finite.sum() >= 2 else [float("nan")] * self.values.shape[1])

    @property
    def is_finite(self) -> bool:
        """Whether every metric of every preference is a finite number (else the hypervolume is undefined)."""
        return bool(np.isfinite(self.values).all())

    def hypervolume_text(self, digits: int = 4) -> str:
        """The hypervolume as text, or ``"undefined"`` when some metric is not finite: ``digits`` decimals, or
        as many significant digits below 0.01 (many tasks' hypervolumes of accuracies are small products)."""
        value = self.hypervolume.get("value")
        if value is None:
            return "undefined"
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.{digits}g}"

    @property
    def num_nondominated(self) -> int:
        return int(self.nondominated.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_names": self.metric_names, "higher_is_better": self.higher_is_better,
            "preferences": self.preferences.tolist(), "values": self.values.tolist(),
            "nondominated": self.nondominated.tolist(), "num_nondominated": self.num_nondominated,
            "hypervolume": self.hypervolume, "spearman": self.spearman, "extra": self.extra,
        }

    def save(self, directory: str | os.PathLike[str], stem: str = "front") -> tuple[Path, Path]:
        """Write ``stem.json`` and ``stem.csv`` into ``directory``, each atomically."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        json_path = write_json(folder / f"{stem}.json", self.to_dict())
        rows = [[*(f"pref_{t}" for t in range(self.preferences.shape[1])), *self.metric_names, "nondominated"]]
        for pref, value, keep in zip(self.preferences, self.values, self.nondominated, strict=True):
            rows.append([*(f"{p:.6g}" for p in pref), *(f"{v:.6g}" for v in value), str(bool(keep))])
        text = "\n".join(",".join(row) for row in rows) + "\n"
        return json_path, atomic_write_text(folder / f"{stem}.csv", text)

    def table(self) -> str:
        """The front as text for a terminal: one row per preference with every task's metric, or from
        :data:`TABLE_TASKS` + 1 tasks a summary row (largest weight, mean and worst metric) that fits a line,
        then the hypervolume, its reference and the per-task Spearman correlations."""
        wide = len(self.metric_names) > TABLE_TASKS
        header = (["largest weight", "mean", "worst", f"{'worst task':>24}", "non-dominated"] if wide else
                  ["pref", *self.metric_names, "non-dominated"])
        lines = ["  ".join(f"{h:>14}" for h in header)]
        for pref, value, keep in zip(self.preferences, self.values, self.nondominated, strict=True):
            flag = f"{'yes' if keep else 'no':>14}"
            if wide:
                worst = self._worst_task(value)
                heaviest = int(np.argmax(pref))
                weight = "equal" if np.ptp(pref) < 1e-6 else f"{pref[heaviest]:.2f} on {heaviest:<6}"
                cells = [f"{weight:>14}", f"{np.mean(value):14.4f}",
                         f"{value[worst]:14.4f}", f"{_clip(self.metric_names[worst], 24):>24}", flag]
            else:
                pref_text = ",".join(f"{p:.2f}" for p in pref)
                cells = [f"{pref_text:>14}", *(f"{v:>14.4f}" for v in value), flag]
            lines.append("  ".join(cells))
        hv = self.hypervolume
        if hv.get("value") is None:
            lines.append(f"hypervolume undefined: {hv.get('problem', 'non-finite metrics')}; the model diverged "
                         "there (lower the learning rate or set clip_grad_norm)")
            return "\n".join(lines)
        lines.append(f"hypervolume {self.hypervolume_text()} ({hv['method']}, ref {numbers_text(hv['ref'])}); "
                     f"non-dominated {self.num_nondominated}/{len(self.values)}" +
                     ("\n" if wide else "; ") + f"spearman {numbers_text(self.spearman, 3)}")
        if wide:
            lines.append("tasks are numbered from 0 in the order of the metric names; every value is in the "
                         ".csv beside the .json")
        return "\n".join(lines)

    def _worst_task(self, value: np.ndarray) -> int:
        # The task whose metric is worst in its own direction: the lowest of metrics to maximise, the highest of
        # errors. (A front that mixes the two kinds compares unlike scales here; the many-task data sets hold one
        # kind each: accuracies, or SARCOS's errors.)
        signed = np.where(np.asarray(self.higher_is_better), value, -value)
        return int(np.nanargmin(signed)) if np.isfinite(signed).any() else 0

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Front:
        """Read a front written by :meth:`save` (``null`` metric values come back as NaN)."""
        data = read_json(path, "front file")
        try:
            values = np.asarray([[np.nan if v is None else v for v in row] for row in data["values"]], dtype=float)
            return cls(np.asarray(data["preferences"], dtype=float), values, list(data["metric_names"]),
                       list(data["higher_is_better"]),
                       ref=[np.nan if r is None else r for r in data["hypervolume"]["ref"]],
                       extra=data.get("extra", {}))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ParetorchError(f"front file {path} is not a paretorch front ({type(error).__name__}: {error}); "
                                 "evaluate the run again with paretorch eval") from error


@torch.no_grad()
def evaluate_front(
    pm: ParetoModel | Mapping[tuple[float, ...], ParetoModel],
    loader: Iterable[Any],
    metrics: Sequence[Callable[[], TaskMetric]] | Mapping[str, Callable[[], TaskMetric]],
    grid: Tensor | None = None,
    ref: Sequence[float] | None = None,
    chunk: int | None = None,
    recalibrate: Iterable[Any] | None = None,
) -> Front:
    """Evaluate ``pm`` at every preference of ``grid`` (default :func:`simplex_grid`) on ``loader``.

    ``metrics`` holds one factory per task (``[Accuracy, Accuracy]``, or ``{"task": Accuracy, …}`` to match
    the model's outputs and the batch's targets by task name; names also label the front's columns). The grid
    is evaluated ``chunk`` preferences at a time with :meth:`ParetoModel.multi_forward` (default: as many as
    :func:`preferences_per_pass` allows for the first batch, at most 16). A discrete method
    passes a mapping ``{preference: model}`` instead (linear-scalarisation or single-task runs); each is
    evaluated at its own preference. Hypervolume reference: 0 for metrics to maximise, ``ref`` (or 1.1 × worst
    seen) otherwise.

    ``recalibrate`` (a few training batches, e.g. :func:`recalibration_batches`) refits the running statistics
    of a steerable model's BatchNorm layers at each preference before it is evaluated there, as
    :func:`~paretorch.recalibrate_batchnorm` does for an exported model: training's running statistics average
    over every preference drawn, and fit none of them. A pass then holds one preference; the model's own
    statistics are restored afterwards. Models without BatchNorm, and discrete runs, ignore it.
    """
    count = len(metrics)
    tasks, factories = TaskOrder.of(metrics, count)
    if isinstance(pm, Mapping):
        models = list(pm.items())
        num_tasks = count
        prefs = torch.tensor([list(p) for p, _ in models], dtype=torch.float32)
        groups = [(torch.as_tensor(p, dtype=torch.float32)[None], m) for p, m in models]
    else:
        num_tasks = pm.num_tasks
        prefs = simplex_grid(num_tasks) if grid is None else grid
        groups = []  # chunked at the first batch, whose size sets how many preferences one pass may stack
    if count != num_tasks:
        raise ParetorchError(f"give one metric per task: got {count} for {num_tasks} tasks")
    trackers = [[factory() for factory in factories] for _ in range(len(prefs))]
    # The layers whose statistics are refit, found once: they are reloaded before every batch's pass.
    norms = running_batchnorms(pm) if recalibrate is not None and not isinstance(pm, Mapping) else []
    refitted = _statistics_per_preference(pm, norms, recalibrate, prefs) if norms else None
    if refitted is not None:
        chunk = 1  # one preference's statistics at a time
    # A grid evaluates one model in several chunks: record each distinct model's mode once, so it is restored
    # to what it was before, not to the eval mode set by an earlier chunk.
    distinct = {id(model): model for _, model in groups} if groups else {id(pm): pm}
    modes = {key: model.training for key, model in distinct.items()}
    for model in distinct.values():
        model.eval()
    try:
        # One pass over the data for the whole grid: each batch is evaluated at every preference, then dropped.
        for batch in loader:
            inputs, targets = split_batch(batch, num_tasks, tasks)
            targets = [move_to(target, "cpu") for target in targets]
            if not groups:  # a grid of one model (in eval mode now, so the probe leaves BatchNorm's statistics)
                size = chunk or preferences_per_pass(pm, inputs)
                groups = [(prefs[i : i + size], pm) for i in range(0, len(prefs), size)]
            offset = 0  # the groups hold the preferences in order: each one's trackers follow the previous one's
            for chunk_prefs, model in groups:
                device = next(model.parameters()).device
                if refitted is not None:
                    _load_statistics(norms, refitted[offset])
                outputs = model.multi_forward(move_to(inputs, device), chunk_prefs.to(device))
                per_task = as_task_list(split_outputs(outputs, len(chunk_prefs)), tasks)
                for index in range(len(chunk_prefs)):
                    for task in range(num_tasks):
                        trackers[offset + index][task].update(per_task[task][index].cpu(), targets[task])
                offset += len(chunk_prefs)
    finally:
        for key, model in distinct.items():
            model.train(modes[key])
        if refitted is not None:
            _load_statistics(norms, refitted[-1])  # the model's own statistics, saved last
    values = np.array([[tracker.compute() for tracker in row] for row in trackers])
    example = [factory() for factory in factories]
    names = [f"{tasks.label(t)}_{metric.name}" for t, metric in enumerate(example)]
    return Front(prefs.numpy().astype(np.float64), values, names, [m.higher_is_better for m in example],
                 ref=list(ref) if ref is not None else None)


def recalibration_batches(batches: Iterable[Any], examples: int = RECALIBRATION_EXAMPLES) -> list[Any]:
    """The first batches of ``batches`` that hold at least ``examples`` examples (all of them if they hold
    fewer), as a list that :func:`evaluate_front`'s ``recalibrate`` may walk once per preference.

    >>> data = [(torch.zeros(100, 3), torch.zeros(100)) for _ in range(10)]
    >>> len(recalibration_batches(data, 250))
    3
    """
    chosen: list[Any] = []
    seen = 0
    for batch in batches:
        if seen >= examples:
            break
        chosen.append(batch)
        sized = [t for t in tensors_in(batch_inputs(batch)) if t.dim()]
        seen += sized[0].shape[0] if sized else 1
    return chosen


def _statistics(norms: Sequence[torch.nn.Module]) -> list[dict[str, Tensor]]:
    return [{name: buffer.clone() for name, buffer in norm.named_buffers(recurse=False)} for norm in norms]


def _load_statistics(norms: Sequence[torch.nn.Module], statistics: list[dict[str, Tensor]]) -> None:
    for norm, saved in zip(norms, statistics, strict=True):
        for name, buffer in norm.named_buffers(recurse=False):
            buffer.copy_(saved[name])


def _statistics_per_preference(pm: ParetoModel, norms: Sequence[torch.nn.Module], batches: Iterable[Any],
                               prefs: Tensor) -> list[list[dict[str, Tensor]]] | None:
    """The statistics of ``pm``'s BatchNorm layers ``norms`` refit at each preference, then the model's own
    (last); None when a plain model ignores the preference."""
    if pm.ignores_preference:
        return None
    chosen = list(batches)
    if not chosen:
        raise ParetorchError("recalibrate= holds no batches: pass a few training batches, or None to evaluate "
                             "with the statistics of training")
    own = _statistics(norms)
    device = next(pm.parameters()).device
    refitted = []
    try:
        for pref in prefs:
            recalibrate_batchnorm(pm, chosen, pref.to(device))
            refitted.append(_statistics(norms))
    finally:
        _load_statistics(norms, own)
    return [*refitted, own]


def preferences_per_pass(pm: ParetoModel, inputs: Any, budget: int | None = None) -> int:
    """How many preferences one evaluation pass of :meth:`ParetoModel.multi_forward` over the batch ``inputs``
    may stack: as many as keep four of the largest activation one example makes within ``budget`` bytes
    (default :data:`EVAL_ACTIVATION_BYTES`, 2 GiB), between 1 and 16. The largest activation is measured by
    running one example of the batch at the centre of the simplex (put ``pm`` in eval mode first: BatchNorm in
    training mode would update its statistics).

    >>> from paretorch import lowrank
    >>> pm = lowrank(torch.nn.Sequential(torch.nn.Linear(8, 512)), num_tasks=2).eval()
    >>> preferences_per_pass(pm, torch.zeros(1024, 8))  # 2 kB per example: the cap of 16
    16
    >>> preferences_per_pass(pm, torch.zeros(1024, 8), budget=2**26)  # 64 MB: 8 MB per preference
    8
    """
    sizes = [0]

    def record(_module: torch.nn.Module, _args: Any, output: Any) -> None:
        sizes.extend(t.numel() * t.element_size() for t in tensors_in(output))

    batched = [t for t in tensors_in(inputs) if t.dim()]
    if not batched:
        raise ParetorchError("evaluation needs a tensor input with a batch dimension")
    device = next(pm.parameters()).device  # only the one example travels there, not the whole batch
    one = move_to(map_tensors(inputs, lambda t: t[:1] if t.dim() else t), device)
    centre = torch.full((1, pm.num_tasks), 1.0 / pm.num_tasks, device=device)
    hooks = [module.register_forward_hook(record) for module in pm.model.modules()]
    try:
        with torch.no_grad():
            pm.multi_forward(one, centre)
    finally:
        for hook in hooks:
            hook.remove()
    examples = batched[0].shape[0]
    largest = max(sizes)
    per_preference = max(1, _LIVE_ACTIVATIONS * largest * examples)
    budget = EVAL_ACTIVATION_BYTES if budget is None else budget
    return max(1, min(MAX_PREFERENCES_PER_PASS, budget // per_preference))


def evaluate_front_across_processes(
    pm: ParetoModel,
    loader: Iterable[Any],
    metrics: Sequence[Callable[[], TaskMetric]] | Mapping[str, Callable[[], TaskMetric]],
    grid: Tensor | None = None,
    ref: Sequence[float] | None = None,
    chunk: int | None = None,
    recalibrate: Iterable[Any] | None = None,
) -> Front:
    """:func:`evaluate_front` with the grid split across the processes of a ``torch.distributed`` run.

    Each process evaluates a contiguous share of the preferences on the whole of ``loader``; the shares are
    summed into one table, so every process returns the same front as one process would (with one process,
    this is :func:`evaluate_front`).
    """
    prefs = simplex_grid(pm.num_tasks) if grid is None else grid
    world, rank = dist_state.world_size(), dist_state.rank()
    bounds = [len(prefs) * index // world for index in range(world + 1)]
    start, stop = bounds[rank], bounds[rank + 1]
    # A process with no preference of its own (more processes than points) evaluates the first one for the
    # metric names and contributes zeros.
    own = evaluate_front(pm, loader, metrics, prefs[start:stop] if stop > start else prefs[:1], ref, chunk,
                         recalibrate)
    device = next(pm.parameters()).device
    table = torch.zeros(len(prefs), own.values.shape[1], dtype=torch.float64, device=device)
    if stop > start:
        table[start:stop] = torch.as_tensor(own.values, dtype=torch.float64, device=device)
    values = dist_state.sum_across(table).cpu().numpy()
    return Front(prefs.cpu().numpy().astype(np.float64), values, own.metric_names, own.higher_is_better,
                 ref=list(ref) if ref is not None else None)


def on_common_reference(fronts: Sequence[Front], labels: Sequence[str] | None = None) -> list[Front]:
    """The fronts re-measured from one hypervolume reference, so that their hypervolumes compare: 0 for metrics
    to maximise, 1.1 × the worst value of all fronts for metrics to minimise. Fronts of other tasks or metrics
    than the first are refused with one line (``labels`` name them in it).

    >>> a = Front(np.array([[1.0, 0.0]]), np.array([[1.0, 2.0]]), ["x_mse", "y_mse"], [False, False])
    >>> b = Front(np.array([[1.0, 0.0]]), np.array([[3.0, 1.0]]), ["x_mse", "y_mse"], [False, False])
    >>> [round(r, 2) for r in on_common_reference([a, b])[0].ref]
    [3.3, 2.2]
    """
    names = list(labels) if labels is not None else [f"front {index + 1}" for index in range(len(fronts))]
    first = fronts[0]
    for name, front in zip(names[1:], fronts[1:], strict=True):
        if front.metric_names != first.metric_names or front.higher_is_better != first.higher_is_better:
            raise ParetorchError(f"{name} measures {front.metric_names} but {names[0]} measures {first.metric_names}: "
                                 "compare runs of the same tasks and metrics only")
    worst = np.nanmax(np.concatenate([front.values for front in fronts]), axis=0)
    reference = [0.0 if higher else float(1.1 * bad) for higher, bad in zip(first.higher_is_better, worst,
                                                                              strict=True)]
    return [Front(f.preferences, f.values, f.metric_names, f.higher_is_better, ref=reference, extra=f.extra)
            for f in fronts]
