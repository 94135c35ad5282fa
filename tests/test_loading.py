"""batch_loader: the batches of a DataLoader, sliced a batch at a time from a TensorDataset."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from paretorch._random import epoch_scope
from paretorch.loading import batch_loader


def _data() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(23, 3, 4, generator=generator), torch.randint(0, 5, (23, 2), generator=generator))


def _assert_same_batches(left, right) -> None:
    left, right = list(left), list(right)
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype
            assert torch.equal(x, y)


def test_in_order_equals_a_dataloader_including_the_short_last_batch():
    data = _data()
    loader = batch_loader(data, 5)
    assert len(loader) == 5
    _assert_same_batches(loader, DataLoader(data, batch_size=5))


def test_shuffled_epochs_equal_a_dataloader_with_the_same_sampler_told_the_epoch():
    data = _data()
    for rank in range(2):
        ours = batch_loader(data, 4, DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=7))
        reference = DataLoader(data, batch_size=4,
                               sampler=DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=7))
        orders = []
        for epoch in range(3):
            with epoch_scope(0, epoch, ours), epoch_scope(0, epoch, reference):
                _assert_same_batches(ours, reference)
                orders.append(torch.cat([targets[:, 0] for _, targets in ours]))
        # The epoch reaches the sampler: the orders differ from epoch to epoch.
        assert not torch.equal(orders[0], orders[1])


def test_other_datasets_keep_the_per_sample_loader():
    class Squares(Dataset):
        def __len__(self) -> int:
            return 7

        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tensor([float(index)]), torch.tensor([index * index, index])

    loader = batch_loader(Squares(), 3)
    _assert_same_batches(loader, DataLoader(Squares(), batch_size=3))
    assert loader.batch_size == 3
