"""Random streams of a run, derived from its seed, so that a resumed run draws exactly what an uninterrupted one did.

A run has several streams: the data order, the preference draws, dropout and other layers that use the
process-wide generator, the orthogonality regulariser's task subsets, and the objectives' own draws. Each is
re-derived at the start of every epoch from ``(seed, epoch, stream name)``; whatever advances inside an epoch
is either re-derived again at the next epoch or saved in the checkpoint at the epoch's end. Resuming at an
epoch boundary therefore replays the same draws.

The process-wide generator is never re-seeded for the caller: code that must use it (dropout has no generator
argument) runs inside :func:`scoped_global_seed`, which restores the caller's generator state afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

__all__ = ["derive_seed", "epoch_scope", "scoped_global_seed", "seeded_generator"]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and labels, stable across processes and Python versions.

    >>> derive_seed(0, "data", 3) == derive_seed(0, "data", 3) != derive_seed(0, "data", 4)
    True
    """
    text = "/".join(str(part) for part in (seed, *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def seeded_generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, *keys)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))


@contextlib.contextmanager
def scoped_global_seed(seed: int, device: str | torch.device | None = None) -> Iterator[None]:
    """Seed the process-wide generator (CPU, and ``device`` if it is a CUDA device) for the body of a ``with``,
    then restore the state it had before: the caller's own random stream is not disturbed.

    >>> before = torch.get_rng_state()
    >>> with scoped_global_seed(1):
    ...     a = torch.rand(2)
    >>> with scoped_global_seed(1):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b) and torch.equal(before, torch.get_rng_state())
    True
    """
    target = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [target.index if target.index is not None else torch.cuda.current_device()] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


@contextlib.contextmanager
def epoch_scope(seed: int, epoch: int, loader: object = None, device: str | torch.device | None = None
                ) -> Iterator[None]:
    """The random streams of one training epoch, derived from ``(seed, epoch)``.

    A loader whose sampler has ``set_epoch`` (a ``DistributedSampler``, which draws its order from its own seed
    and the epoch) is told the epoch; a loader with a ``generator`` (a ``DataLoader(shuffle=True,
    generator=g)``) has it re-seeded; a loader with neither draws its order from the process-wide generator,
    seeded here for the body of the ``with`` (and restored afterwards), as are dropout and any other layer
    that uses it.
    """
    set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(derive_seed(seed, "data", epoch))
    with scoped_global_seed(derive_seed(seed, "global", epoch), device):
        yield
