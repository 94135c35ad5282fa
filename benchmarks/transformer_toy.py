"""Does each preset learn a small transformer, at which learning rate? A check on data other than MultiMNIST.

A 4-layer ``nn.TransformerEncoder`` (width 64, 4 heads) over 12-token sequences of a 100-word vocabulary, with
two named tasks in a ``ModuleDict``: ``topic`` (5 classes: the first token mod 5) and ``sentiment`` (3 classes:
the second token mod 3). 512 synthetic sequences, batch 64, 20 epochs (160 steps), trained in a hand-written loop
through :class:`~paretorch.ParetoLoss` with the preset's defaults except ``lr``. Printed: each task's training
cross-entropy at the two vertices of the simplex (chance: ln 5 = 1.61 and ln 3 = 1.10), and whether the model
steers (each task's loss lower at its own vertex).

Run: ``python benchmarks/transformer_toy.py --methods ls,phn,cpmtl --lrs 1e-3,1e-4``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import paretorch

TASKS = ("topic", "sentiment")


class Tagger(nn.Module):
    """Token embedding, a transformer encoder, mean pooling and one linear head per named task."""

    def __init__(self, width: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, width)
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.heads = nn.ModuleDict({"topic": nn.Linear(width, 5), "sentiment": nn.Linear(width, 3)})

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(self.embed(ids)).mean(1)
        return {name: head(features) for name, head in self.heads.items()}


def run(method: str, lr: float, epochs: int, seed: int) -> str:
    torch.manual_seed(seed)
    ids = torch.randint(0, 100, (512, 12))
    targets = {"topic": ids[:, 0] % 5, "sentiment": ids[:, 1] % 3}
    batches = [(ids[i:i + 64], {k: v[i:i + 64] for k, v in targets.items()}) for i in range(0, len(ids), 64)]
    losses = {name: F.cross_entropy for name in TASKS}
    setup = paretorch.build_method(method, Tagger(), len(TASKS), epochs=epochs, seed=seed, lr=lr)
    loss = setup.loss(losses, total_steps=epochs * len(batches))
    optimizer = torch.optim.Adam(setup.parameter_groups())
    for epoch in range(epochs):
        loss.start_epoch(epoch)
        setup.freeze_if_due(epoch)
        for batch in batches:
            out = loss(batch)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    at = {}
    with torch.no_grad():
        for vertex, preference in (("topic", [1.0, 0.0]), ("sentiment", [0.0, 1.0])):
            outputs = setup.pm(ids, preference)
            at[vertex] = {name: float(F.cross_entropy(outputs[name], targets[name])) for name in TASKS}
    steers = all(at[name][name] < at[other][name] for name, other in (TASKS, TASKS[::-1]))
    trainable = sum(p.numel() for p in setup.pm.parameters() if p.requires_grad)
    return (f"{method:8s} lr {lr:g}: at (1, 0) topic {at['topic']['topic']:.3f} sentiment "
            f"{at['topic']['sentiment']:.3f} | at (0, 1) topic {at['sentiment']['topic']:.3f} sentiment "
            f"{at['sentiment']['sentiment']:.3f} | steers {'yes' if steers else 'no'} | {trainable:,} trainable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ls,palora,lorpman,pamal,cpmtl,phn,cosmos")
    parser.add_argument("--lrs", default="1e-3,1e-4")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for lr in (float(value) for value in args.lrs.split(",")):
        for method in args.methods.split(","):
            print(run(method, lr, args.epochs, args.seed), flush=True)


if __name__ == "__main__":
    main()
