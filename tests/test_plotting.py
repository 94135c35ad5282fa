"""Plots: every task count draws, the legend's hypervolumes share one reference, discrete runs are points and
fronts of other tasks are refused."""

import numpy as np
import pytest

from paretorch import ParetorchError
from paretorch.plotting import _axis_limits, _is_discrete, plot_fronts
from paretorch.preferences import simplex_grid
from paretorch.training import Front
from paretorch.training.evaluation import on_common_reference


def _front(tasks, shift=0.0, method="palora", higher=True, discrete=None):
    prefs = simplex_grid(tasks).numpy() if tasks <= 3 else np.full((5, tasks), 1 / tasks)
    values = 0.5 + 0.3 * prefs + shift
    extra = {"method": method} | ({} if discrete is None else {"discrete": discrete})
    return Front(prefs, values, [f"t{t}_acc" for t in range(tasks)], [higher] * tasks, extra=extra)


@pytest.mark.parametrize("tasks", [2, 3, 5])
def test_fronts_of_any_task_count_are_drawn(tmp_path, tasks):
    path = plot_fronts([_front(tasks), _front(tasks, -0.1, "ls")], ["a", "b"], tmp_path / "f.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_legend_hypervolumes_share_one_reference_and_other_tasks_are_refused():
    better = _front(2, higher=False)
    worse = _front(2, 0.5, higher=False)
    shared = on_common_reference([better, worse])
    assert shared[0].ref == shared[1].ref == pytest.approx((1.1 * worse.values.max(axis=0)).tolist())
    # With its own reference each front is measured against a point of its own; with the shared one the front
    # that is better everywhere has the larger hypervolume.
    assert better.ref != shared[0].ref
    assert shared[0].hypervolume["value"] > shared[1].hypervolume["value"]
    with pytest.raises(ParetorchError, match="compare runs of the same tasks"):
        on_common_reference([_front(2), _front(3)])


def test_discrete_methods_are_recognised_from_the_front():
    assert _is_discrete(_front(2, method="ls")) and _is_discrete(_front(2, method="stl"))
    assert not _is_discrete(_front(2, method="palora"))
    assert _is_discrete(_front(2, method="mine", discrete=True))


def test_models_given_no_weight_on_a_task_do_not_set_that_axis_scale(tmp_path):
    # An LS grid whose end models sit at chance (0.1) on the task they ignore, beside a steerable front near 0.9.
    prefs = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    grid = Front(prefs, np.array([[0.1, 0.93], [0.94, 0.92], [0.95, 0.1]]), ["t0_acc", "t1_acc"], [True, True],
                 extra={"method": "ls"})
    steerable = _front(2, 0.4)  # values 0.9 … 1.2
    (x_low, x_high), (y_low, y_high) = _axis_limits([steerable, grid])
    assert 0.85 < x_low < 0.9 and 1.2 < x_high < 1.25 and 0.85 < y_low < 0.9 and 1.2 < y_high < 1.25
    # Nothing is left out when those models lie within the others' range, and a steerable front's ends (no
    # weight on a task) always set the scale, however low.
    assert _axis_limits([steerable, _front(2, 0.4, "ls")]) == [None, None]
    assert _axis_limits([_front(2, -0.4), steerable]) == [None, None]
    assert plot_fronts([steerable, grid], ["p", "ls"], tmp_path / "f.png").stat().st_size > 0


def test_the_two_task_legend_sits_outside_the_axes_and_long_run_names_are_shortened():
    from paretorch.plotting import _plot_two, _pyplot

    plt = _pyplot()
    long = "multifashion-palora-data_source=_tmp_fashion-deb_usr_share_datasets_fashion-mnist-seed0"
    figure = _plot_two(plt, [_front(2), _front(2, -0.1, "ls")], [long, "ls"])
    try:
        figure.canvas.draw()
        axis = figure.axes[0]
        legend = axis.get_legend()
        # Wherever a legend sits inside the axes, some front's points can run under it.
        assert not legend.get_window_extent().overlaps(axis.get_window_extent())
        texts = [text.get_text() for text in legend.get_texts()]
        # Both ends of a long name stay (what the runs are, and which seed), its middle is elided.
        assert all(len(text) < 80 for text in texts) and "…" in texts[0]
        assert texts[0].startswith("multifashion-palora") and "mnist-seed0, HV " in texts[0]
    finally:
        plt.close(figure)
