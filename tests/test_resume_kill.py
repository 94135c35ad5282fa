"""Exact resume through the command line: real ``kill -9`` of ``paretorch train`` subprocesses, then ``--resume``.

The killed-and-resumed run must end with every tensor of its checkpoint (weights, optimizer moments, objective
state) equal by ``torch.equal`` to an uninterrupted run's, and with one metrics line per epoch.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

TINY = ["dataset=multimnist", "train_size=384", "val_size=64", "test_size=64", "batch_size=32", "--quiet"]
CLI = [sys.executable, "-m", "paretorch.cli"]

# Runs the real CLI in a process that kills itself (SIGKILL) in the middle of its N-th checkpoint write, after
# part of the file is on disk: the state a power cut or an OOM kill leaves behind.
DYING_CLI = textwrap.dedent("""
    import os, signal, sys, torch
    kill_at, calls, original = int(os.environ["KILL_AT_SAVE"]), [], torch.save
    def dying_save(obj, stream, *args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            stream.write(b"PK\\x03\\x04 half a checkpoint")
            stream.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(obj, stream, *args, **kwargs)
    torch.save = dying_save
    from paretorch.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _wait_until(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (status {process.returncode}) before the point to kill it")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the point to kill the run")
        time.sleep(0.005)


def _kill_when(args: list[str], condition, delay: float = 0.0) -> None:
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_until(condition, process)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode() if process.stderr else ""


def _run(args: list[str], command: list[str] = CLI, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _assert_same(expected, got, where: str = "checkpoint") -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and expected.dtype == got.dtype, where
        assert torch.equal(expected, got), f"{where} differs (max |Δ| {(expected - got).abs().max()})"
    elif isinstance(expected, dict):
        assert set(expected) == set(got), f"{where}: keys {set(expected) ^ set(got)}"
        for key in expected:
            if key not in ("seconds", "val_seconds"):  # wall-clock times of an epoch's training and validation
                _assert_same(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got), where
        for index, (a, b) in enumerate(zip(expected, got, strict=True)):
            _assert_same(a, b, f"{where}[{index}]")
    else:
        assert expected == got, f"{where}: {expected!r} != {got!r}"


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_kill_nine_at_several_points_then_resume_equals_an_uninterrupted_cli_run(tmp_path):
    settings = ["method=lorpman", "epochs=5", *TINY]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert _run(["train", str(reference), *settings]).returncode == 0

    # 1. Killed right after its first checkpoint appears.
    _kill_when(["train", str(run), *settings], lambda: (run / "checkpoint.pt").exists())
    # 2. Resumed, then killed while writing its second checkpoint: a partial temporary file is left behind.
    dying = tmp_path / "dying_cli.py"
    dying.write_text(DYING_CLI)
    env = {**__import__("os").environ, "KILL_AT_SAVE": "2"}
    killed = _run(["train", str(run), "--resume", "--quiet"], [sys.executable, str(dying)], env)
    assert killed.returncode == -signal.SIGKILL
    assert list(run.glob(".checkpoint.pt.*.tmp")), "the kill should have left a partial checkpoint file"
    _checkpoint(run / "checkpoint.pt")  # the previous checkpoint is intact
    # 3. Resumed, then killed in the middle of an epoch (after one more epoch has been logged).
    done = _lines(run / "metrics.jsonl")
    _kill_when(["train", str(run), "--resume", "--quiet"], lambda: _lines(run / "metrics.jsonl") > done, delay=0.05)
    # 4. Resumed to the end.
    finished = _run(["train", str(run), "--resume", "--quiet"])
    assert finished.returncode == 0, finished.stderr

    _assert_same(_checkpoint(reference / "checkpoint.pt"), _checkpoint(run / "checkpoint.pt"))
    assert not list(run.glob(".*.tmp")), "stale temporary files must be removed"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in expected]


def test_discrete_run_killed_between_members_resumes_exactly(tmp_path):
    settings = ["method=ls", "ls_points=2", "epochs=3", *TINY]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert _run(["train", str(reference), *settings]).returncode == 0
    _kill_when(["train", str(run), *settings], lambda: (run / "member_1" / "checkpoint.pt").exists())
    finished = _run(["train", str(run), "--resume", "--quiet"])
    assert finished.returncode == 0, finished.stderr
    for member in ("member_0", "member_1"):
        _assert_same(_checkpoint(reference / member / "checkpoint.pt"), _checkpoint(run / member / "checkpoint.pt"))


@pytest.mark.parametrize("command", ["eval", "export", "plot", "compare", "resume"])
def test_a_checkpoint_carrying_code_is_refused_and_nothing_runs(tmp_path, command, capsys):
    from paretorch.cli import main

    run = tmp_path / "run"
    assert main(["train", str(run), "method=palora", "epochs=1", *TINY]) == 0
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    state = _checkpoint(run / "checkpoint.pt")
    state["extra"] = Payload()
    torch.save(state, run / "checkpoint.pt")
    argv = {"eval": ["eval", str(run)],
            "export": ["export", str(run), "--preference", "0.5,0.5", "--out", str(tmp_path / "m.safetensors")],
            "plot": ["plot", str(run)], "compare": ["compare", str(run)],
            "resume": ["train", str(run), "--resume", "epochs=2", "--quiet"]}[command]
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is not a plain paretorch checkpoint" in err and err.count("\n") == 1
    assert not marker.exists(), "the checkpoint's payload ran"
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_the_malicious_checkpoint_is_refused_by_a_cli_subprocess_too(tmp_path):
    from paretorch.cli import main

    run = tmp_path / "run"
    assert main(["train", str(run), "method=ls", "ls_points=1", "epochs=1", *TINY]) == 0
    marker = tmp_path / "payload-ran"
    script = tmp_path / "poison.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        path = "{run / 'member_0' / 'checkpoint.pt'}"
        state = torch.load(path, weights_only=True)
        state["optimizer"]["extra"] = Payload()
        torch.save(state, path)
    """))
    assert subprocess.run([sys.executable, str(script)]).returncode == 0
    result = _run(["eval", str(run)])
    assert result.returncode == 2 and "not a plain paretorch checkpoint" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not marker.exists()


def test_palora_training_its_rays_in_turn_resumes_exactly_after_a_kill(tmp_path):
    # 7 tasks: 8 rays, 6 per step, so a cycle (8 steps) runs across the epoch boundary (12 steps) where it is killed.
    settings = ["method=palora", "dataset=adult-many", "tasks=7", "train_size=384", "val_size=64", "test_size=64",
                "batch_size=32", "epochs=3", "--quiet"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert _run(["train", str(reference), *settings]).returncode == 0
    assert json.loads((reference / "config.json").read_text())["rays_per_step"] == 6
    _kill_when(["train", str(run), *settings], lambda: (run / "checkpoint.pt").exists())
    finished = _run(["train", str(run), "--resume", "--quiet"])
    assert finished.returncode == 0, finished.stderr
    _assert_same(_checkpoint(reference / "checkpoint.pt"), _checkpoint(run / "checkpoint.pt"))
