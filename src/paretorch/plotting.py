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
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy = prefs @ corners
    return xy[:, 0], xy[:, 1]


def plot_fronts(fronts: Sequence[Front], labels: Sequence[str], path: str | os.PathLike[str],
                title: str = "") -> Path:
    """Draw one or more fronts (same tasks) into a PNG at ``path``."""
    plt = _pyplot()
    if not fronts:
        raise ParetorchError("nothing to plot: give at least one front")
    tasks = fronts[0].values.shape[1]
    names = fronts[0].metric_names
    if tasks == 2:
        figure, axis = plt.subplots(figsize=(6.5, 5.5))
        for front, label in zip(fronts, labels, strict=True):
            order = np.argsort(front.preferences[:, 0])
            values = front.values[order]
            line = axis.plot(values[:, 0], values[:, 1], "-o", alpha=0.8, label=label, markersize=4)[0]
            keep = front.nondominated[order]
            axis.scatter(values[keep, 0], values[keep, 1], s=60, facecolors="none",
                         edgecolors=line.get_color())
            for pref, value in zip(front.preferences[order], values, strict=True):
                axis.annotate(f"{pref[0]:.1f}", value, textcoords="offset points", xytext=(4, 4), fontsize=7,
                              color=line.get_color())
        axis.set_xlabel(names[0])
        axis.set_ylabel(names[1])
        axis.legend(title="circled: non-dominated; labels: weight on task 1", fontsize=8, title_fontsize=8)
    elif tasks == 3:
        figure = plt.figure(figsize=(16, 4.5 * len(fronts)))
        for row, (front, label) in enumerate(zip(fronts, labels, strict=True)):
            x, y = _simplex_xy(front.preferences)
            for task in range(3):
                axis = figure.add_subplot(len(fronts), 4, 4 * row + task + 1)
                points = axis.scatter(x, y, c=front.values[:, task], cmap="viridis", s=40)
                figure.colorbar(points, ax=axis, fraction=0.046)
                axis.set_title(f"{label}: {names[task]}", fontsize=9)
                axis.set_axis_off()
            axis3d = figure.add_subplot(len(fronts), 4, 4 * row + 4, projection="3d")
            keep = front.nondominated
            axis3d.scatter(*front.values[keep].T, c="tab:blue", label="non-dominated")
            axis3d.scatter(*front.values[~keep].T, c="tab:red", label="dominated")
            axis3d.set_xlabel(names[0], fontsize=7)
            axis3d.set_ylabel(names[1], fontsize=7)
            axis3d.set_zlabel(names[2], fontsize=7)
            axis3d.legend(fontsize=7)
    else:
        figure, axis = plt.subplots(figsize=(max(8, tasks * 0.4), 5))
        for front, label in zip(fronts, labels, strict=True):
            for index, value in enumerate(front.values):
                axis.plot(range(tasks), value, alpha=0.3, color=f"C{labels.index(label)}",
                          label=label if index == 0 else None)
        axis.set_xticks(range(tasks), names, rotation=90, fontsize=7)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Through the atomic writer: an interrupted or failed plot never leaves half a PNG.
        atomic_write(target, lambda stream: figure.savefig(stream, dpi=120, format="png"))
    except OSError as error:
        raise ParetorchError(f"cannot write the plot {target}: {error.strerror or error} ({error.filename}); "
                             "choose another --out") from error
    finally:
        plt.close(figure)
    return target
