"""Several processes (``torch.distributed``, launched by ``torchrun``): which process writes, and the few
statistics that every process must see for the whole batch rather than for its own share.

Without an initialised process group every function here is the identity of one process (rank 0 of 1), so
the training code calls them unconditionally.
"""

from __future__ import annotations

import os

import torch.distributed as dist
from torch import Tensor

__all__ = ["average", "is_main", "launched_by_torchrun", "rank", "sum_across", "world_size"]


def active() -> bool:
    """Whether a process group is initialised (training runs on several processes)."""
    return dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE`` and the rendezvous)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes the run directory (rank 0)."""
    return rank() == 0


def sum_across(tensor: Tensor) -> Tensor:
    """The element-wise sum of ``tensor`` over all processes (a detached copy; ``tensor`` itself is unchanged).

    >>> import torch
    >>> sum_across(torch.tensor([1.0, 2.0]))  # one process: the tensor itself
    tensor([1., 2.])
    """
    total = tensor.detach().clone()
    if active():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def average(tensor: Tensor) -> Tensor:
    """The element-wise mean of ``tensor`` over all processes (detached).

    Each process holds the mean over its share of the batch; with equal shares, their mean is the mean over
    the whole batch, which is what one process with the combined batch would compute.
    """
    return sum_across(tensor) / world_size()
