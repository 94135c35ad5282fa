"""reuse_freed_memory: freed CPU tensors are reused without page faults, and the command line asks for it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from paretorch import cli
from paretorch.allocator import OPT_OUT_VARIABLE, reuse_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A fresh process runs "steps" that each hold two 64 MB tensors and free them, as training steps do, and counts
# the page faults of 40 steps after 40 warm-up steps.
FAULTS = r"""
import json, resource, torch
from paretorch.allocator import reuse_freed_memory
took = reuse_freed_memory()
def step():
    a = torch.ones(16 * 2**20)
    b = a * 2
    return float(b[0])
for _ in range(40):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    step()
print(json.dumps({"took": took, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


# Only whether the setting took, in a fresh process, without FAULTS's 80 steps of 64 MB tensors.
TOOK = ("import json; from paretorch.allocator import reuse_freed_memory; "
        "print(json.dumps({'took': reuse_freed_memory()}))")


def _run(script: str, **environment: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env.pop(OPT_OUT_VARIABLE, None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env=env | environment)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _faults(**environment: str) -> dict:
    return _run(FAULTS, **environment)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_tensors_are_reused_without_page_faults() -> None:
    kept, system = _faults(), _faults(**{OPT_OUT_VARIABLE: "1"})
    assert kept["took"] is True and system["took"] is False
    # With glibc's defaults each of the 80 tensors is faulted in again, page by page. Reused memory is already
    # mapped: at most the heap's last growth faults, a few tensors' worth (the heap settles within the first
    # steps, 30 at the most in tries here, and at a size that varies with the address layout).
    assert kept["faults"] * 10 < system["faults"], (kept, system)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_opt_out_and_glibcs_own_variables_leave_malloc_alone() -> None:
    assert _run(TOOK)["took"] is True
    assert _run(TOOK, **{OPT_OUT_VARIABLE: "1"})["took"] is False
    assert _run(TOOK, MALLOC_TRIM_THRESHOLD_="1000000")["took"] is False


def test_the_opt_out_is_read_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPT_OUT_VARIABLE, "1")
    assert reuse_freed_memory() is False


def test_the_command_line_asks_for_reuse_when_it_runs_a_command(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["list"]) == 0
    assert calls == [True]
    assert cli.main(["train", "--help"]) == 0  # help prints and exits before any command runs
    assert calls == [True]
    capsys.readouterr()
