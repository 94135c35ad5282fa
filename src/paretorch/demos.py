"""Runnable demonstrations behind ``paretorch demo``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from paretorch.metrics import HypervolumeResult, generational_distance, hypervolume, igd, nondominated
from paretorch.preferences import Dirichlet, simplex_grid
from paretorch.problems import TwoParameterToy

__all__ = ["ToyDemoResult", "format_toy_demo", "run_toy_demo"]

# The demo passes when the learned 11 points sit on the front (GD) and cover it as well as the exact Pareto
# points at the same 11 preferences do (their IGD is the floor: 11 points cannot cover a curve any closer).
GD_THRESHOLD = 0.05
IGD_SLACK = 1.05


@dataclass(frozen=True)
class ToyDemoResult:
    """Outcome of LORPMAN's illustrative example: the learned front on the 11-point grid and its quality."""

    grid: Tensor
    losses: Tensor
    theta0: Tensor
    deltas: Tensor
    hypervolume: HypervolumeResult
    reference_hypervolume: float
    igd: float
    igd_floor: float
    gd: float
    nondominated: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.gd <= GD_THRESHOLD and self.igd <= IGD_SLACK * self.igd_floor


def _toy_theta(theta0: Tensor, delta_first: Tensor, alpha: Tensor) -> Tensor:
    # θ(α) = θ0 + α1 Δθ1 + α2 Δθ2, where each Δθ_i = [δ_i, 0]: its second component is fixed at zero to mimic
    # the rank constraint of a low-rank delta (LORPMAN §4.1).
    first = theta0[0] + alpha @ delta_first
    return torch.stack([first, theta0[1].expand_as(first)], dim=1)


def run_toy_demo(steps: int = 1000, lr: float = 0.1, samples_per_step: int = 4, seed: int = 0) -> ToyDemoResult:
    """LORPMAN's illustrative example (Chen & Kwok 2024, §4.1) on the two-parameter toy problem.

    θ0 starts at [4.5, 4.5], Δθ1 at [−4.5, 0] and Δθ2 at [4.5, 0]; each step draws ``samples_per_step``
    preferences α from Dirichlet(1) and takes an Adam step on the mean of αᵀf(θ(α)). The learned line
    θ(α) is then evaluated on the 11-point grid against the known front.

    >>> result = run_toy_demo(steps=50)
    >>> result.losses.shape
    torch.Size([11, 2])
    """
    import time

    start = time.perf_counter()
    problem = TwoParameterToy()
    theta0 = torch.tensor([4.5, 4.5], requires_grad=True)
    delta_first = torch.tensor([-4.5, 4.5], requires_grad=True)
    optimizer = torch.optim.Adam([theta0, delta_first], lr=lr)
    sampler = Dirichlet(2, p=1.0, m=samples_per_step, generator=torch.Generator().manual_seed(seed))
    for step in range(steps):
        alpha = sampler.sample(step, steps)
        loss = (alpha * problem(_toy_theta(theta0, delta_first, alpha))).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grid = simplex_grid(2)
    front = problem.pareto_front(1000)
    with torch.no_grad():
        losses = problem(_toy_theta(theta0, delta_first, grid))
        exact_at_grid = problem(problem.pareto_set(11))
    ref = [0.0, 0.0]
    return ToyDemoResult(
        grid=grid,
        losses=losses,
        theta0=theta0.detach().clone(),
        deltas=torch.stack([delta_first.detach(), torch.zeros(2)], dim=1),
        hypervolume=hypervolume(losses, ref=ref),
        reference_hypervolume=hypervolume(front, ref=ref).value,
        igd=igd(losses, front),
        igd_floor=igd(exact_at_grid, front),
        gd=generational_distance(losses, front),
        nondominated=int(nondominated(losses).sum()),
        seconds=time.perf_counter() - start,
    )


def _rounded(vector: Tensor) -> list[float]:
    return [round(value, 3) for value in vector.tolist()]


def format_toy_demo(result: ToyDemoResult) -> str:
    """The demo's report: the front table, then hypervolume, IGD and GD with what they are compared to."""
    mask = nondominated(result.losses)
    lines = [
        "LORPMAN illustrative example (Chen & Kwok 2024, §4.1) on the two-parameter toy problem",
        "θ(α) = θ0 + α1·Δθ1 + α2·Δθ2, trained with α ~ Dirichlet(1); evaluated on the 11-point grid",
        "",
        f"{'α1':>6} {'α2':>6} {'f1':>10} {'f2':>10}  non-dominated",
    ]
    for pref, loss, keep in zip(result.grid.tolist(), result.losses.tolist(), mask.tolist(), strict=True):
        lines.append(f"{pref[0]:6.2f} {pref[1]:6.2f} {loss[0]:10.4f} {loss[1]:10.4f}  {'yes' if keep else 'no'}")
    hv = result.hypervolume
    lines += [
        "",
        f"learned θ0 = {_rounded(result.theta0)}, "
        f"Δθ1 = {_rounded(result.deltas[0])}, Δθ2 = {_rounded(result.deltas[1])}",
        f"hypervolume (ref {list(hv.ref)}, {hv.method}): {hv.value:.3f}; "
        f"of the whole known front: {result.reference_hypervolume:.3f}",
        f"IGD to the known front: {result.igd:.4f} (exact Pareto points at the same 11 α: {result.igd_floor:.4f}; "
        f"pass if <= {IGD_SLACK} x that)",
        f"GD (distance of the learned points to the front): {result.gd:.4f} (pass if <= {GD_THRESHOLD})",
        f"non-dominated points: {result.nondominated} of {len(result.grid)}; "
        f"{'PASS' if result.passed else 'FAIL'} in {result.seconds:.1f} s",
    ]
    return "\n".join(lines)
