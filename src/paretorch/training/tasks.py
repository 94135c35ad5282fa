"""Tasks by name: outputs, targets, losses and metrics given as dicts are matched by key, never by position.

A model may return ``{"depth": …, "segmentation": …}`` while the batch's targets come as
``{"segmentation": …, "depth": …}``: matching them by position would train each head on the other task's labels.
:class:`TaskOrder` fixes the order of the tasks once (from the first dict it sees: the losses or metrics given
as a dict, else the batch's targets, else the model's outputs) and reads every later dict by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from paretorch.errors import ParetorchError

__all__ = ["TaskOrder"]


class TaskOrder:
    """The tasks' order and names; ``select(value, what)`` returns ``value``'s T entries in that order.

    >>> order = TaskOrder(2)
    >>> order.select({"b": 1, "a": 2}, "the targets")
    [1, 2]
    >>> order.select({"a": "head a", "b": "head b"}, "the outputs")  # by key, not position
    ['head b', 'head a']
    >>> order.names
    ['b', 'a']
    """

    def __init__(self, num_tasks: int, names: Sequence[str] | None = None) -> None:
        self.num_tasks = num_tasks
        self.names: list[str] | None = None if names is None else [str(name) for name in names]
        if self.names is not None and len(self.names) != num_tasks:
            raise ParetorchError(f"got {len(self.names)} task names for {num_tasks} tasks")

    @classmethod
    def of(cls, values: Sequence[Any] | Mapping[str, Any], num_tasks: int) -> tuple[TaskOrder, list[Any]]:
        """The order given by ``values`` (named if it is a dict) and its entries in that order."""
        if isinstance(values, Mapping):
            return cls(num_tasks, list(values)), list(values.values())
        return cls(num_tasks), list(values)

    def select(self, value: Any, what: str) -> list[Any]:
        if isinstance(value, Mapping):
            if self.names is None:
                if len(value) != self.num_tasks:
                    raise ParetorchError(f"{what} has {len(value)} entries ({', '.join(map(str, value))}) for "
                                         f"{self.num_tasks} tasks")
                self.names = [str(key) for key in value]
            keys = [str(key) for key in value]
            if sorted(keys) != sorted(self.names):
                raise ParetorchError(f"{what} are keyed {keys}, but the tasks are {self.names}; use the same task "
                                     "names for outputs, targets, losses and metrics")
            by_name = {str(key): item for key, item in value.items()}
            return [by_name[name] for name in self.names]
        items = list(value)
        if len(items) != self.num_tasks:
            raise ParetorchError(f"{what}: got {len(items)} for {self.num_tasks} tasks")
        return items

    def label(self, task: int) -> str:
        """The task's name, or ``task<t>`` when the tasks have no names."""
        return self.names[task] if self.names is not None else f"task{task}"
