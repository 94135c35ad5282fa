"""Where a run's per-epoch records go: ``metrics.jsonl`` always, and on request a CSV file and TensorBoard
event files.

Each log is rewritten or extended from the Trainer's history after every epoch, by rank 0 only. A resumed
run has each epoch once in every log: the files are rewritten from the history the checkpoint holds (lines a
kill left beyond it are dropped), and TensorBoard is told to discard events from the resumed epoch on
(``purge_step``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paretorch._files import atomic_write_text, to_strict_json
from paretorch.errors import ParetorchError

__all__ = ["LOG_KINDS", "CsvLog", "EpochLog", "JsonLinesLog", "TensorBoardLog", "check_log_kinds", "log_kinds",
           "make_logs"]

LOG_KINDS = ("csv", "tensorboard")


class EpochLog:
    """One destination for the epoch records ``{"epoch": 1, "train_loss": …, "val_hypervolume": …}``."""

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release what the log holds open."""


class JsonLinesLog(EpochLog):
    """``metrics.jsonl``: one strict-JSON record per epoch (non-finite numbers as ``null``)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(to_strict_json(record), allow_nan=False) + "\n" for record in history)
        atomic_write_text(self.path, lines)


class CsvLog(EpochLog):
    """``metrics.csv``: one row per epoch, one column per key any epoch recorded (empty where it had none)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.csv"

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        columns = list(dict.fromkeys(key for record in history for key in record))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for record in history:
            writer.writerow({key: _cell(value) for key, value in record.items()})
        atomic_write_text(self.path, buffer.getvalue())


def _cell(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


class TensorBoardLog(EpochLog):
    """TensorBoard scalars in ``tensorboard/`` of the run directory, one step per epoch (``pip install
    'paretorch[tensorboard]'``; view with ``tensorboard --logdir RUN``)."""

    def __init__(self, run_dir: Path, first_epoch: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ParetorchError("log=tensorboard needs the tensorboard package: pip install "
                                 "'paretorch[tensorboard]'") from error
        # Events of epochs after the checkpoint (a killed run wrote them) are discarded on resume.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=first_epoch + 1)
        self.written = first_epoch

    def write(self, history: Sequence[dict[str, Any]]) -> None:
        for record in history[self.written:]:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, record["epoch"])
        self.written = len(history)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def check_log_kinds(kinds: Sequence[str]) -> None:
    """Refuse an unknown log, or TensorBoard without its package, before anything trains."""
    unknown = [kind for kind in kinds if kind not in LOG_KINDS]
    if unknown:
        raise ParetorchError(f"unknown log {unknown[0]!r}; choose from {', '.join(LOG_KINDS)}")
    if "tensorboard" in kinds:
        try:
            import tensorboard  # noqa: F401
        except ImportError as error:
            raise ParetorchError("log=tensorboard needs the tensorboard package: pip install "
                                 "'paretorch[tensorboard]'") from error


def make_logs(kinds: Sequence[str], run_dir: Path, first_epoch: int) -> list[EpochLog]:
    """``metrics.jsonl`` and the logs named in ``kinds`` (``"csv"``, ``"tensorboard"``) for a run directory."""
    check_log_kinds(kinds)
    extra = [CsvLog(run_dir) if kind == "csv" else TensorBoardLog(run_dir, first_epoch) for kind in kinds]
    return [JsonLinesLog(run_dir), *extra]


def log_kinds(value: str | Sequence[str] | None) -> list[str]:
    """The ``log=`` setting of a run as a list: unset, one name, or several.

    >>> log_kinds(None), log_kinds("csv"), log_kinds(["csv", "tensorboard"])
    ([], ['csv'], ['csv', 'tensorboard'])
    """
    return [] if value is None else [value] if isinstance(value, str) else list(value)
