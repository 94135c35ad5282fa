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
from collections.abc import Callable, Iterator

import numpy as np
import torch

__all__ = ["derive_seed", "distinct_picks", "epoch_scope", "scoped_global_seed", "seeded_generator"]


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


# ----- Rows of distinct picks, as NumPy's Generator.choice draws them, without a Python call per row -----------
_WORD = 1 << 32


def distinct_picks(seed: int, population: int, count: int, size: int) -> np.ndarray:
    """``count`` rows of ``size`` distinct integers below ``population``: exactly
    ``np.stack([rng.choice(population, size, replace=False) for _ in range(count)])`` with
    ``rng = np.random.default_rng(seed)``, computed from the generator's raw 32-bit words in a few array
    operations instead of one ``choice`` call per row (0.7 s for MultiMNIST's 54,000 rows).

    ``choice`` (for ``size`` ≤ 3, as here) runs Floyd's algorithm, ``size`` bounded draws, then a Fisher-Yates
    shuffle of the picks, ``size - 1`` bounded draws; each bounded draw is Lemire's multiply-shift on one 32-bit
    word (PCG64 hands out the low half of each 64-bit output, then the high half), redrawn in the rare case its
    low product bits fall under ``2**32 mod bound``. Rows are computed together assuming no redraw; from the
    first row that needed one, that row is replayed word by word and the rest recomputed from where it ended.

    >>> rng = np.random.default_rng(3)
    >>> expected = np.stack([rng.choice(50, 2, replace=False) for _ in range(4)])
    >>> bool((distinct_picks(3, 50, 4, 2) == expected).all())
    True
    """
    if not 0 < size <= 3 or population <= size or population >= _WORD:
        # Outside the replayed case, NumPy's own calls: a draw below 1 takes no word, a tail shuffle or a 64-bit
        # draw other ones.
        rng = np.random.default_rng(seed)
        rows = [rng.choice(population, size, replace=False) for _ in range(count)]
        return np.array(rows, dtype=np.int64).reshape(count, size)
    # Bounds of the row's draws, in order: Floyd's j + 1 for j = population - size .. population - 1, then the
    # shuffle's i + 1 for i = size - 1 .. 1.
    bounds = np.array([population - size + 1 + i for i in range(size)] + [size - i for i in range(size - 1)],
                      dtype=np.uint64)
    words = _WordStream(seed)
    picks = np.empty((count, size), dtype=np.int64)
    row = 0
    while row < count:
        rows = min(count - row, 8192)
        draws = words.peek(rows * len(bounds)).reshape(rows, len(bounds)) * bounds
        redrawn = ((draws & np.uint64(_WORD - 1)) < (np.uint64(_WORD) % bounds)).any(axis=1)
        accepted = int(redrawn.argmax()) if redrawn.any() else rows
        picks[row : row + accepted] = _floyd_then_shuffle((draws[:accepted] >> np.uint64(32)).astype(np.int64),
                                                          population, size)
        words.skip(accepted * len(bounds))
        row += accepted
        if accepted < rows:  # this row redraws: replay its words one at a time
            values = [words.bounded(int(bound)) for bound in bounds]
            picks[row] = _floyd_then_shuffle(np.array([values], dtype=np.int64), population, size)[0]
            row += 1
    return picks


def _floyd_then_shuffle(values: np.ndarray, population: int, size: int) -> np.ndarray:
    """The picks from each row's bounded draws (columns: Floyd's ``size`` draws, then the shuffle's)."""
    picks = np.empty((len(values), size), dtype=np.int64)
    for i in range(size):  # Floyd: the draw for j, unless already picked, else j itself
        drawn = values[:, i]
        taken = (picks[:, :i] == drawn[:, None]).any(axis=1)
        picks[:, i] = np.where(taken, population - size + i, drawn)
    rows = np.arange(len(values))
    for step, i in enumerate(range(size - 1, 0, -1)):  # Fisher-Yates: swap position i with the drawn j <= i
        j = values[:, size + step]
        swapped = picks[rows, j]
        picks[rows, j] = picks[:, i]
        picks[:, i] = swapped
    return picks


class _WordStream:
    """PCG64's 32-bit words in the order ``Generator`` consumes them: each 64-bit output low half first."""

    def __init__(self, seed: int) -> None:
        self._raw: Callable[[int], np.ndarray] = np.random.default_rng(seed).bit_generator.random_raw
        self._words = np.empty(0, dtype=np.uint64)
        self._start = 0

    def peek(self, count: int) -> np.ndarray:
        missing = self._start + count - len(self._words)
        if missing > 0:
            raw = self._raw((missing + 1) // 2)
            halves = np.stack([raw & np.uint64(_WORD - 1), raw >> np.uint64(32)], axis=1).reshape(-1)
            self._words = np.concatenate([self._words[self._start :], halves])
            self._start = 0
        return self._words[self._start : self._start + count]

    def skip(self, count: int) -> None:
        self._start += count

    def bounded(self, bound: int) -> int:
        """One of ``0 .. bound - 1`` by Lemire's method, redrawing as NumPy does."""
        while True:
            product = int(self.peek(1)[0]) * bound
            self.skip(1)
            if product % _WORD >= _WORD % bound:
                return product >> 32
