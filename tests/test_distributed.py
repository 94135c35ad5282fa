"""Several processes: ParetoLoss through DistributedDataParallel (gloo, 2 processes on CPU) gives the weights of
one process training on the combined batch."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from paretorch import ParetoLoss, build_method

STEPS, BATCH = 4, 16


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(16, 1), nn.Linear(16, 1)])

    def forward(self, x):
        z = self.encoder(x)
        return [head(z).squeeze(-1) for head in self.heads]


def _data():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(STEPS, BATCH, 6, generator=generator)
    return x, torch.stack([x[..., 0] + x[..., 1], x[..., 2] - x[..., 3]], dim=-1)


def _train(shard: slice, distributed: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    # LORPMAN: Dirichlet preferences and the orthogonality regulariser with its own random task subsets.
    setup = build_method("lorpman", TwoHeads(), 2, epochs=1, seed=3, rank=2, lr=1e-2)
    wrapper = DistributedDataParallel(setup.pm) if distributed else None
    loss = ParetoLoss(setup.pm, [F.mse_loss, F.mse_loss], setup.sampler, setup.objective, setup.regularisers,
                      seed=setup.config.seed, distributed=wrapper)
    optimizer = torch.optim.Adam(setup.pm.parameters(), lr=1e-2)
    x, y = _data()
    for step in range(STEPS):
        out = loss((x[step, shard], y[step, shard]))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    return {name: value.detach().clone() for name, value in setup.pm.state_dict().items()}


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        share = BATCH // world
        weights = _train(slice(rank * share, (rank + 1) * share), distributed=True)
        torch.save(weights, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ddp_processes_give_the_weights_of_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _train(slice(0, BATCH), distributed=False)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for name, expected in single.items():
        # The ranks agree exactly (DDP averages the same gradients on both); against one process the sums of
        # the two half-batch means are reassociated, hence a float32 rounding tolerance.
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(single[name], value) for name, value in _train(slice(0, BATCH // 2), False).items()), \
        "training on half the batch alone differs: the check can fail"
