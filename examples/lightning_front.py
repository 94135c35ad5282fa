"""Train a steerable model with PyTorch Lightning: ``ParetoLoss`` inside a ``LightningModule``.

Run: ``python examples/lightning_front.py`` (CPU, a few seconds). It trains PaLoRA on a small synthetic problem
with two conflicting regression tasks, then evaluates the front on an 11-point preference grid and saves it.
``--method lorpman`` trains another preset; ``torchrun --nproc-per-node 2 examples/lightning_front.py --devices 2``
trains on two processes.
Everything paretorch-specific is in ``ParetoLightningModule``: the loss per batch, its random streams per epoch,
the freeze epoch of the preset; Lightning does the loop, the devices and the logging.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import paretorch
from paretorch.methods import MethodSetup


class TwoTaskNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.heads = nn.ModuleDict({"left": nn.Linear(32, 1), "right": nn.Linear(32, 1)})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {name: head(z).squeeze(-1) for name, head in self.heads.items()}


def conflicting_data(samples: int, seed: int) -> TensorDataset:
    """Two regression targets that pull the shared encoder in different directions."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 8, generator=generator)
    return TensorDataset(x, torch.stack([x[:, :4].sum(1), -x[:, 2:6].sum(1)], dim=1))


class ParetoLightningModule(L.LightningModule):
    """A method preset trained by Lightning: ``training_step`` returns the ParetoLoss of the batch."""

    def __init__(self, setup: MethodSetup, losses: dict) -> None:
        super().__init__()
        self.setup_ = setup
        self.pm = setup.pm  # registered as a submodule: Lightning moves it and hands its parameters to the optimizer
        self.loss = setup.loss(losses)

    def on_fit_start(self) -> None:
        # On several devices Lightning's DDP runs training_step inside its wrapper, which synchronises the
        # gradients; the loss then averages what sets the step's weights (the losses its penalties and balancing
        # see, Gram matrices) over the processes, as one process would compute them on the whole batch.
        self.loss.across_processes = self.trainer.world_size > 1

    def on_train_epoch_start(self) -> None:
        self.loss.start_epoch(self.current_epoch)  # the loss's random streams, derived from (seed, epoch)
        # A preset's freeze epoch (LORPMAN's): from then on only the adapters train (on several devices see the
        # strategy in main).
        self.setup_.freeze_if_due(self.current_epoch)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        # Annealed samplers (PaLoRA's rays) follow the optimiser steps of the whole fit, which Lightning counts
        # for the devices it runs on (each takes a share of the data, so there are fewer steps on more devices).
        result = self.loss((inputs, {"left": targets[:, 0], "right": targets[:, 1]}), step=self.global_step,
                           total_steps=int(self.trainer.estimated_stepping_batches))
        self.log_dict(result.logs(), prog_bar=False)
        return result.loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.setup_.parameter_groups())


def main(epochs: int = 8, out: str | Path = "paretorch-runs/lightning", seed: int = 0, method: str = "palora",
         devices: int = 1) -> paretorch.Front:
    torch.manual_seed(seed)
    options = {"palora": {"scale": 4.0}, "lorpman": {"rank": 2}}.get(method, {})  # sized for this small problem
    setup = paretorch.build_method(method, TwoTaskNet(), 2, epochs=epochs, seed=seed, lr=1e-2, **options)
    train = DataLoader(conflicting_data(512, seed), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    losses = {"left": F.mse_loss, "right": F.mse_loss}
    module = ParetoLightningModule(setup, losses)
    # DDP fixes the parameters it synchronises when it is built: a preset that freezes its base network during
    # training (LORPMAN) needs DDP to look for parameters without gradients.
    strategy = "auto" if devices == 1 else (
        "ddp_find_unused_parameters_true" if setup.config.freeze_epoch is not None else "ddp")
    trainer = L.Trainer(max_epochs=epochs, accelerator="auto", devices=devices, strategy=strategy, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train)
    test = DataLoader(conflicting_data(256, seed + 1), batch_size=256)
    metrics = {task: lambda: paretorch.MeanLoss(F.mse_loss, "mse") for task in ("left", "right")}
    front = paretorch.evaluate_front(setup.pm.cpu(), ((x, {"left": y[:, 0], "right": y[:, 1]}) for x, y in test),
                                     metrics, ref=[20.0, 20.0])
    if trainer.is_global_zero:
        front.save(Path(out), "front_test")
    return front


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="paretorch-runs/lightning")
    parser.add_argument("--method", default="palora")
    parser.add_argument("--devices", type=int, default=1, help="processes (under torchrun: its --nproc-per-node)")
    args = parser.parse_args()
    # One write of the whole table: each process of a multi-process run prints it, and print's separate write
    # of the newline could land inside another process's lines on a shared, unbuffered pipe.
    sys.stdout.write(main(args.epochs, args.out, method=args.method, devices=args.devices).table() + "\n")
