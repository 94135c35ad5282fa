"""Pictures of learned fronts (needs matplotlib: ``pip install 'paretorch[plot]'``).

2 tasks: the front in metric space, grid points labelled by preference, non-dominated ones marked.
3 tasks: three simplex triangles coloured by each task's metric (PaMaL Fig. 5) and a 3-D scatter.
More tasks: parallel coordinates, one line per preference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paretorch._files import atomic_write
from paretorch.errors import ParetorchError
from paretorch.training import Front
from paretorch.training.evaluation import on_common_reference

__all__ = ["plot_fronts"]


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ParetorchError("plotting needs matplotlib: pip install 'paretorch[plot]'") from error
    return plt


def _simplex_xy(prefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xy = prefs @ _CORNERS
    return xy[:, 0], xy[:, 1]


_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


def _axis_label(name: str, higher_is_better: bool, vertical: bool = False) -> str:
    arrow = ("↑" if higher_is_better else "↓") if vertical else ("→" if higher_is_better else "←")
    return f"{name}  ({'higher' if higher_is_better else 'lower'} is better {arrow})"


def _is_discrete(front: Front) -> bool:
    """Whether a front is a set of separately trained models (LS, STL, MGDA…) rather than one steerable model."""
    if "discrete" in front.extra:
        return bool(front.extra["discrete"])
    from paretorch.methods import get_method, method_names

    method = front.extra.get("method")
    return method in method_names() and get_method(method).discrete


# A run's label longer than this is shortened in its middle: run folders named after every setting (benchmark
# scripts, shared run trees) would otherwise make the legend wider than the figure.
_LABEL_CHARACTERS = 44


def _legend_label(front: Front, label: str) -> str:
    """``label`` (its middle elided when long), the method where the label does not show it, and the
    hypervolume.

    >>> front = Front(np.eye(2), np.array([[0.9, 0.8], [0.8, 0.9]]), ["a", "b"], [True, True],
    ...               extra={"method": "palora"})
    >>> _legend_label(front, "sweep-2026-12-07-data_source=_data_fashion-mnist-lr=0.003-seed0")
    'sweep-2026-12-07-data_sou…ist-lr=0.003-seed0 (palora), HV 0.8000'
    """
    if len(label) > _LABEL_CHARACTERS:
        head = (_LABEL_CHARACTERS - 1) * 3 // 5
        label = f"{label[:head]}…{label[head + 1 - _LABEL_CHARACTERS:]}"
    method = front.extra.get("method")
    named = label if method is None or method in label else f"{label} ({method})"
    return f"{named}, HV {front.hypervolume_text()}"


def _better_direction(higher: Sequence[bool]) -> str:
    """The arrow pointing to where both metrics improve (for the legend: a floating arrow would cover points)."""
    return {(True, True): "↗", (True, False): "↘", (False, True): "↖", (False, False): "↙"}[
        (bool(higher[0]), bool(higher[1]))]


def _axis_limits(fronts: Sequence[Front]) -> list[tuple[float, float] | None]:
    """Per axis, the range that leaves out separately trained models given no weight on that axis' task.

    An LS or STL model trained for the other task alone sits near chance on this one (0.1 where the fronts are
    at 0.9), and would squeeze every front into a corner. Such points are drawn at the edge instead. ``None``:
    nothing is left out on that axis, matplotlib's own range.
    """
    limits: list[tuple[float, float] | None] = []
    for task in range(2):
        kept, left_out = [], []
        for front in fronts:
            ignored = front.preferences[:, task] == 0 if _is_discrete(front) else np.zeros(len(front.values), bool)
            kept.append(front.values[~ignored, task])
            left_out.append(front.values[ignored, task])
        inside, outside = np.concatenate(kept), np.concatenate(left_out)
        if inside.size == 0 or outside.size == 0 or ((outside >= inside.min()) & (outside <= inside.max())).all():
            limits.append(None)
            continue
        low, high = float(inside.min()), float(inside.max())
        pad = 0.08 * (high - low) or 0.05 * max(abs(high), 1e-12)
        limits.append((low - pad, high + pad))
    return limits


def _plot_two(plt, fronts: Sequence[Front], labels: Sequence[str]):  # type: ignore[no-untyped-def]
    figure, axis = plt.subplots(figsize=(7, 5.5))
    names, higher = fronts[0].metric_names, fronts[0].higher_is_better
    limits = _axis_limits(fronts)
    for index, (front, label) in enumerate(zip(fronts, labels, strict=True)):
        colour = f"C{index}"
        order = np.argsort(front.preferences[:, 0])
        true_values, keep = front.values[order], front.nondominated[order]
        values = true_values.copy()
        for task, limit in enumerate(limits):
            if limit is not None:  # off-scale points sit on the edge, labelled with their value
                values[:, task] = np.clip(values[:, task], *limit)
        for value, true in zip(values, true_values, strict=True):
            if (value != true).any():  # the label reaches inward from the edge the point sits on
                right = limits[0] is not None and value[0] >= limits[0][1]
                low = limits[1] is not None and value[1] <= limits[1][0]
                axis.annotate(f"off scale: {', '.join(f'{v:.3g}' for v in true)}", value, textcoords="offset points",
                              xytext=(-100 if right else 6, 8 if low else -20), fontsize=7, color=colour)
        if _is_discrete(front):  # separate models: points, not a curve
            axis.scatter(values[:, 0], values[:, 1], marker="s", s=36, color=colour, label=_legend_label(front, label))
        else:
            axis.plot(values[:, 0], values[:, 1], "-o", color=colour, alpha=0.85, markersize=4,
                      label=_legend_label(front, label))
        axis.scatter(values[keep, 0], values[keep, 1], s=90, facecolors="none", edgecolors=colour, linewidths=1.2)
        # The weight on the first task at the ends and every other point, alternately above and below.
        step = max(1, len(values) // 5)
        for position, (pref, value) in enumerate(zip(front.preferences[order], values, strict=True)):
            if position % step and position != len(values) - 1:
                continue
            offset = (6, 6) if (position // step + index) % 2 == 0 else (6, -11)
            axis.annotate(f"{pref[0]:.2g}", value, textcoords="offset points", xytext=offset, fontsize=7,
                          color=colour)
    for task, limit in enumerate(limits):
        if limit is not None:
            (axis.set_xlim if task == 0 else axis.set_ylim)(*limit)
    axis.set_xlabel(_axis_label(names[0], higher[0]))
    axis.set_ylabel(_axis_label(names[1], higher[1], vertical=True))
    # Below the axes, never over them: wherever it sat inside, some front's end ran under it.
    axis.legend(title=f"better: {_better_direction(higher)}; circled: non-dominated; numbers: weight on {names[0]}",
                fontsize=8, title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    axis.grid(alpha=0.25)
    return figure


def _plot_three(plt, fronts: Sequence[Front], labels: Sequence[str]):  # type: ignore[no-untyped-def]
    names, higher = fronts[0].metric_names, fronts[0].higher_is_better
    figure = plt.figure(figsize=(16, 4.6 * len(fronts)))
    everything = np.concatenate([front.values for front in fronts])
    # One colour scale per task, shared by every run: the same colour means the same value in every triangle.
    limits = [(np.nanmin(everything[:, t]), np.nanmax(everything[:, t])) for t in range(3)]
    corner_names = [name.rsplit("_", 1)[0] for name in names]
    for row, (front, label) in enumerate(zip(fronts, labels, strict=True)):
        x, y = _simplex_xy(front.preferences)
        for task in range(3):
            axis = figure.add_subplot(len(fronts), 4, 4 * row + task + 1)
            points = axis.scatter(x, y, c=front.values[:, task], cmap="viridis" if higher[task] else "viridis_r",
                                  vmin=limits[task][0], vmax=limits[task][1], s=40)
            # Yellow is the better end of every scale (a reversed map for metrics to minimise).
            figure.colorbar(points, ax=axis, fraction=0.046,
                            label=f"{'higher' if higher[task] else 'lower'} is better (yellow)")
            axis.plot(*np.vstack([_CORNERS, _CORNERS[:1]]).T, color="0.6", linewidth=0.8)
            for corner, name, (dx, dy) in zip(_CORNERS, corner_names, ((-0.02, -0.07), (0.02, -0.07), (0, 0.04)),
                                              strict=True):
                axis.text(corner[0] + dx, corner[1] + dy, name, ha="center", fontsize=7)
            axis.set_title(f"{_legend_label(front, label)}\n{names[task]}", fontsize=8)
            axis.set_xlim(-0.15, 1.15)
            axis.set_ylim(-0.12, 0.98)
            axis.set_axis_off()
        axis3d = figure.add_subplot(len(fronts), 4, 4 * row + 4, projection="3d")
        keep = front.nondominated
        axis3d.scatter(*front.values[keep].T, c="tab:blue", label="non-dominated")
        axis3d.scatter(*front.values[~keep].T, c="tab:red", label="dominated")
        for setter, name, better in zip((axis3d.set_xlabel, axis3d.set_ylabel, axis3d.set_zlabel), names, higher,
                                        strict=True):
            setter(f"{name} ({'↑' if better else '↓'})", fontsize=7)
        axis3d.legend(fontsize=7)
    return figure


def _plot_many(plt, fronts: Sequence[Front], labels: Sequence[str]):  # type: ignore[no-untyped-def]
    names, higher = fronts[0].metric_names, fronts[0].higher_is_better
    tasks = len(names)
    figure, axis = plt.subplots(figsize=(max(8, tasks * 0.4), 5.5))
    for index, (front, label) in enumerate(zip(fronts, labels, strict=True)):
        for row, value in enumerate(front.values):
            axis.plot(range(tasks), value, alpha=0.3, color=f"C{index}",
                      label=_legend_label(front, label) if row == 0 else None)
    axis.set_xticks(range(tasks), [f"{name} {'↑' if better else '↓'}" for name, better in zip(names, higher,
                                                                                           strict=True)],
                    rotation=90, fontsize=7)
    axis.set_ylabel("metric (↑: higher is better, ↓: lower)")
    axis.legend(fontsize=8)
    return figure


def plot_fronts(fronts: Sequence[Front], labels: Sequence[str], path: str | os.PathLike[str],
                title: str = "") -> Path:
    """Draw one or more fronts of the same tasks into a PNG at ``path``.

    Axes and legend carry the task names and which way is better; the legend gives each run's method and its
    hypervolume, all from one reference point; discrete methods (separately trained models) are points, not
    a curve. 2 tasks: the front in metric space, labelled by the weight on the first task. 3 tasks: one
    simplex triangle per task coloured by its metric on a scale shared by every run (PaMaL Fig. 5), corners
    named, and a 3-D scatter. More tasks: parallel coordinates.
    """
    plt = _pyplot()
    if not fronts:
        raise ParetorchError("nothing to plot: give at least one front")
    fronts = on_common_reference(fronts, labels)
    tasks = fronts[0].values.shape[1]
    draw = _plot_two if tasks == 2 else _plot_three if tasks == 3 else _plot_many
    figure = draw(plt, fronts, labels)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Through the atomic writer: an interrupted or failed plot never leaves half a PNG.
        # bbox_inches="tight": the figure grows to hold a legend drawn outside its axes.
        atomic_write(target, lambda stream: figure.savefig(stream, dpi=120, format="png", bbox_inches="tight"))
    except OSError as error:
        raise ParetorchError(f"cannot write the plot {target}: {error.strerror or error} ({error.filename}); "
                             "choose another --out") from error
    finally:
        plt.close(figure)
    return target
