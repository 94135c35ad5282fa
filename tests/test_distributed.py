"""Several processes: ParetoLoss through DistributedDataParallel (gloo, 2 processes on CPU) gives the weights of
one process training on the combined batch, for every kind of statistic the weights are computed from (losses,
loss balancing, Gram matrices on parameters or on the representation, gradient balancing); and the command
line under torchrun gives the run of one process, resumes, and writes the run directory once."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.multiprocessing.spawn import ProcessExitedException
from torch.nn.parallel import DistributedDataParallel

from paretorch import ParetoLoss, build_method
from paretorch.errors import ParetorchError

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


# Each case decides the step's weights from a different per-batch statistic, all of which a process must take
# from the whole batch: LORPMAN (Dirichlet preferences, the orthogonality regulariser's random task subsets),
# PaMaL with loss balancing (running loss means) and gradient balancing (task gradient norms), MGDA (the Gram
# matrix of the shared parameters' gradients) and MGDA-UB (the Gram matrix with respect to the representation);
# PaMaL's ordering penalty and COSMOS's cosine term are not linear in the losses.
CASES = {
    "lorpman": ("lorpman", {"rank": 2}, {}),
    "pamal": ("pamal", {}, {}),
    "pamal-balanced": ("pamal", {}, {"loss_balancing_window": 2, "gradient_balancing": True}),
    "cosmos": ("cosmos", {}, {}),
    "mgda": ("mgda", {}, {}),
    "mgda-ub": ("mgda", {"ub": True}, {}),
}


class LossStep(nn.Module):
    """A module whose forward is one loss step, as Lightning's DDP wraps a LightningModule's training_step."""

    def __init__(self, pm: nn.Module, loss: ParetoLoss) -> None:
        super().__init__()
        self.pm, self.loss = pm, loss

    def forward(self, batch):
        return self.loss(batch).loss


def _train(shard: slice, distributed: bool, case: str = "lorpman", outer: bool = False) -> dict[str, torch.Tensor]:
    """``outer``: the DDP wrapper is the caller's, around a module that runs the loss (Lightning's layout), and
    the loss is told so with ``across_processes``; otherwise the loss runs the model through its own wrapper."""
    torch.manual_seed(0)
    method, options, loss_options = CASES[case]
    setup = build_method(method, TwoHeads(), 2, epochs=1, seed=3, lr=1e-2, **options)
    wrapper = DistributedDataParallel(setup.pm) if distributed and not outer else None
    gradients = "representation" if options.get("ub") else None
    loss = ParetoLoss(setup.pm, [F.mse_loss, F.mse_loss], setup.sampler, setup.objective, setup.regularisers,
                      seed=setup.config.seed, distributed=wrapper, gradients=gradients,
                      across_processes=distributed and outer, **loss_options)
    step_module = LossStep(setup.pm, loss)
    run = DistributedDataParallel(step_module) if distributed and outer else step_module
    optimizer = torch.optim.Adam(setup.pm.parameters(), lr=1e-2)
    x, y = _data()
    for step in range(STEPS):
        total = run((x[step, shard], y[step, shard]))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return {name: value.detach().clone() for name, value in setup.pm.state_dict().items()}


def _weights_file(folder: str | os.PathLike[str], case: str, wrapper: str, rank: int) -> str:
    """Where one process saves the weights of one case and wrapper layout."""
    return os.path.join(folder, f"{case}-{wrapper}-rank{rank}.pt")


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    # A file store: no TCP store server whose thread outlives its peers (nor a port to find).
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'store')}", rank=rank,
                            world_size=world)
    try:
        share = BATCH // world
        for case in CASES:
            for outer in (False, True):
                weights = _train(slice(rank * share, (rank + 1) * share), distributed=True, case=case, outer=outer)
                torch.save(weights, _weights_file(folder, case, "outer" if outer else "own", rank))
        # Neither process leaves while the other still talks to it: gloo aborts a process whose peer (or the
        # store rank 0 hosts) went away mid-conversation ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    files = {(case, wrapper): [_weights_file(folder, case, wrapper, rank) for rank in range(2)]
             for case in CASES for wrapper in ("own", "outer")}
    try:
        mp.spawn(_worker, args=(2, str(folder)), nprocs=2, join=True)
    except ProcessExitedException:
        # Seen once in a full run (2026-12-06), never alone: both processes aborted with gloo's "terminate called
        # without an active exception". What is tested is the weights each process saved; a process that died
        # before saving all of them leaves a file missing, and that still fails here.
        if not all(os.path.exists(path) for paths in files.values() for path in paths):
            raise
    return {key: [torch.load(path, weights_only=True) for path in paths] for key, paths in files.items()}


@pytest.mark.parametrize("wrapper", ["own", "outer"])
@pytest.mark.parametrize("case", list(CASES))
def test_two_ddp_processes_give_the_weights_of_one_process_on_the_combined_batch(two_process_weights, case, wrapper):
    # own: ParetoLoss(distributed=DDP(pm)); outer: DDP around a module whose forward is the loss step (Lightning's
    # layout), with across_processes=True.
    single = _train(slice(0, BATCH), distributed=False, case=case)
    ranks = two_process_weights[case, wrapper]
    for name, expected in single.items():
        # The ranks agree exactly (DDP averages the same gradients on both); against one process the sums of
        # the two half-batch means are reassociated, hence a float32 rounding tolerance.
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], expected, rtol=1e-5, atol=1e-6)
    half = _train(slice(0, BATCH // 2), False, case)
    assert any(not torch.equal(single[name], value) for name, value in half.items()), \
        "training on half the batch alone differs: the check can fail"


# ----- the command line under torchrun --------------------------------------------------------------------------
RUN = ["dataset=adult", "method=lorpman", "epochs=2", "freeze_fraction=0.5", "train_size=256", "val_size=128",
       "test_size=128", "batch_size=64", "seed=1"]


def _paretorch(*args: str, processes: int | None = None) -> subprocess.CompletedProcess[str]:
    """``paretorch`` in a subprocess, under ``torchrun --nproc-per-node N`` when ``processes`` is given."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes else [sys.executable])
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "paretorch", *args, "--quiet"], capture_output=True, text=True,
                          timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _model(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _assert_same_weights(first, second) -> None:
    # Two half-batch means averaged by DDP against one mean over the batch: float32 rounding only, which Adam's
    # normalised steps carry into the weights (assert_close's float32 tolerances).
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name])


def _history(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_cli_trains_the_run_of_one_process_and_resumes_on_any_number_of_processes(tmp_path):
    single, double, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    _paretorch("train", str(single), *RUN)
    launched = _paretorch("train", str(double), *RUN, processes=2)
    assert launched.stdout.count("trained:") == 1, "one process reports, not each"
    # LORPMAN freezes its base after the first of the two epochs: the DDP wrapper is rebuilt then.
    _assert_same_weights(_model(double), _model(single))
    assert [r["epoch"] for r in _history(double)] == [1, 2], "rank 0 alone writes the metrics log"
    for mine, theirs in zip(_history(double), _history(single), strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        # The grid split across the two processes gives the front of one process.
        assert mine["val_hypervolume"] == pytest.approx(theirs["val_hypervolume"], rel=1e-4)
    assert json.loads((double / "training.json").read_text())["processes"] == 2
    assert not list(double.glob(".*.tmp")), "no temporary file left behind"

    # Killed after epoch 1 (trained with epochs=1 on 2 processes), resumed under torchrun on 2 processes, and
    # resumed in one process without torchrun.
    first_epoch = [*(item for item in RUN if item != "epochs=2"), "epochs=1"]
    _paretorch("train", str(resumed), *first_epoch, processes=2)
    alone = tmp_path / "resumed-alone"
    shutil.copytree(resumed, alone)
    _paretorch("train", str(resumed), "--resume", "epochs=2", processes=2)
    _paretorch("train", str(alone), "--resume", "epochs=2")
    for run in (resumed, alone):
        _assert_same_weights(_model(run), _model(single))
        assert [r["epoch"] for r in _history(run)] == [1, 2]


def test_torchrun_cli_refuses_a_batch_that_does_not_divide_among_the_processes(tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run([*launcher, "-m", "paretorch", "train", str(tmp_path / "run"), *RUN[:-2],
                           "batch_size=63", "--quiet"], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "batch_size=63 is the batch of all 2 processes together" in done.stderr


def test_trainer_distributed_without_a_process_group_says_how_to_start_one():
    setup = build_method("lorpman", TwoHeads(), 2, epochs=1, rank=2)
    with pytest.raises(ParetorchError, match="launch with torchrun"):
        setup.trainer([F.mse_loss, F.mse_loss], distributed=True)
