"""The training step under each ``precision`` setting, as a ratio to float32, measured in one run.

One ``Trainer.training_step`` (the step's forward passes under autocast, the loss, backward, the optimiser; a
``GradScaler`` for ``16-mixed``) of PaLoRA, PaMaL and LORPMAN with their defaults on MultiMNIST's LeNet (batch 256,
28 × 28) and on a 4-layer transformer with named tasks (batch 64, 12 tokens; ``transformer_toy.py``'s Tagger),
every setting interleaved per preset. Mixed precision pays on GPUs with bfloat16 / float16 units; a CPU without
them emulates the types, so expect ratios above 1 there.

Run: ``python benchmarks/precision.py [--device cpu|cuda] [--repeats 10] [--precisions 32,bf16-mixed,16-mixed]``.
Prints each step's median time and its ratio to float32; nothing here is a test.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import paretorch
from _timing import median_seconds
from paretorch.models import MultiLeNet
from transformer_toy import TASKS, Tagger


def problems(device: str) -> dict[str, tuple]:
    images = torch.randn(256, 1, 28, 28, device=device)
    digits = torch.randint(0, 10, (256, 2), device=device)
    ids = torch.randint(0, 100, (64, 12), device=device)
    labels = {"topic": ids[:, 0] % 5, "sentiment": ids[:, 1] % 3}
    return {"lenet": (MultiLeNet, (images, digits), [F.cross_entropy] * 2),
            "transformer": (Tagger, (ids, labels), {name: F.cross_entropy for name in TASKS})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--methods", default="palora,pamal,lorpman")
    parser.add_argument("--precisions", default="32,bf16-mixed,16-mixed")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    print(f"device {args.device}; median of {args.repeats} steps after 3 warm-up steps")
    for model_name, (make, batch, losses) in problems(args.device).items():
        for method in args.methods.split(","):
            seconds = {}
            for precision in precisions:
                torch.manual_seed(0)
                setup = paretorch.build_method(method, make(), 2, epochs=1, precision=precision)
                setup.pm.to(args.device)
                trainer = setup.trainer(losses)
                seconds[precision] = median_seconds(lambda t=trainer, b=batch: t.training_step(b, 0, 100), args.device,
                                                    args.repeats)
            shown = " | ".join(f"{p} {s * 1000:7.1f} ms ({s / seconds[precisions[0]]:.2f}×)"
                               for p, s in seconds.items())
            print(f"{model_name:11s} {method:8s} {shown}", flush=True)


if __name__ == "__main__":
    main()
