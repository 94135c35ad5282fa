"""Train a steerable model with Hugging Face Accelerate: ``ParetoLoss`` in an ``accelerator``-prepared loop.

Run: ``python examples/accelerate_front.py`` (CPU, a few seconds); ``accelerate launch`` or ``torchrun
--nproc-per-node N`` for several processes, which train the model one process trains
(``tests/test_integrations.py`` checks 2 CPU processes against 1). It trains LORPMAN on the same synthetic
two-task problem as ``lightning_front.py`` and saves its front.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator, DataLoaderConfiguration
from torch.utils.data import DataLoader

import paretorch

try:  # run as a script or imported from the tests
    from lightning_front import TwoTaskNet, conflicting_data
except ImportError:  # pragma: no cover
    from examples.lightning_front import TwoTaskNet, conflicting_data


def main(epochs: int = 8, out: str | Path = "paretorch-runs/accelerate", seed: int = 0) -> paretorch.Front:
    torch.manual_seed(seed)
    setup = paretorch.build_method("lorpman", TwoTaskNet(), 2, epochs=epochs, seed=seed, lr=1e-2, rank=2)
    # split_batches: a batch of 64 is 64 samples whatever the number of processes (each takes its share), so a
    # run on several processes trains the model of one process.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    train = DataLoader(conflicting_data(512, seed), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(setup.parameter_groups())
    model, optimizer, train = accelerator.prepare(setup.pm, optimizer, train)
    loss = setup.loss({"left": F.mse_loss, "right": F.mse_loss}, total_steps=epochs * len(train))
    # On several processes prepare() returns a DistributedDataParallel wrapper. The loss must run the model
    # through it (or no gradient is synchronised) and average what sets the step's weights over the processes.
    loss.distributed = model if model is not setup.pm else None
    for epoch in range(epochs):
        loss.start_epoch(epoch)
        # LORPMAN's freeze epoch. DDP fixes the parameters it synchronises when it is built: wrap again.
        if setup.freeze_if_due(epoch) and loss.distributed is not None:
            model = loss.distributed = accelerator.prepare_model(setup.pm)
        for inputs, targets in train:
            result = loss((inputs, {"left": targets[:, 0], "right": targets[:, 1]}))
            optimizer.zero_grad()
            accelerator.backward(result.loss)
            optimizer.step()
    test = DataLoader(conflicting_data(256, seed + 1), batch_size=256)
    metrics = {task: lambda: paretorch.MeanLoss(F.mse_loss, "mse") for task in ("left", "right")}
    pm = accelerator.unwrap_model(model)
    front = paretorch.evaluate_front(pm, ((x, {"left": y[:, 0], "right": y[:, 1]}) for x, y in test), metrics,
                                     ref=[20.0, 20.0])
    if accelerator.is_main_process:
        front.save(Path(out), "front_test")
    return front


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="paretorch-runs/accelerate")
    args = parser.parse_args()
    # One write of the whole table: each process of a multi-process run prints it, and print's separate write
    # of the newline could land inside another process's lines on a shared, unbuffered pipe.
    sys.stdout.write(main(args.epochs, args.out).table() + "\n")
