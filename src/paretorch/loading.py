"""Loaders that hand a tensor dataset out a batch at a time.

A ``DataLoader`` with ``batch_size=B`` indexes its dataset once per sample and stacks the B samples
(``default_collate``): on a ``TensorDataset`` that is B small tensor reads and one copy per field, Python work
that grows with the batch. :func:`batch_loader` gives the same batches, in the same order and bit for bit, by
indexing each tensor once with the batch's indices. Other datasets (images read from files) keep the
per-sample path.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler, TensorDataset


class EpochBatchSampler(BatchSampler):
    """A ``BatchSampler`` that passes ``set_epoch`` on to its sampler (a ``DistributedSampler`` draws its
    order from the epoch), so that a loader built on it is told the epoch as a batched one would be."""

    def set_epoch(self, epoch: int) -> None:
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


class _TensorBatches(Dataset):
    """A ``TensorDataset`` read a batch at a time: ``batches[indices]`` indexes every tensor once."""

    def __init__(self, tensors: tuple[torch.Tensor, ...]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor[index] for tensor in self.tensors)


def batch_loader(dataset: Dataset, batch_size: int, sampler: Sampler[int] | None = None, workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` of ``dataset`` in batches of ``batch_size`` drawn in ``sampler``'s order (default: in
    order), equal batch for batch to ``DataLoader(dataset, batch_size, sampler=sampler)``; a ``TensorDataset``
    is sliced a batch at a time instead of read and stacked sample by sample.

    Other datasets (files read one by one) are read by ``workers`` processes (kept across epochs) and, with
    ``pin_memory``, collated into page-locked memory for a faster copy to the GPU. Neither changes the batches:
    the order is the sampler's, drawn in this process.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.arange(10))
    >>> [targets.tolist() for _, targets in batch_loader(data, 4)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    if not isinstance(dataset, TensorDataset):
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=pin_memory)
    order: Sampler[int] = sampler if sampler is not None else SequentialSampler(dataset)
    batches = EpochBatchSampler(order, batch_size, drop_last=False)
    # batch_size=None: each item the sampler yields is a whole batch, taken as it is (no collation).
    return DataLoader(_TensorBatches(dataset.tensors), batch_size=None, sampler=batches)
