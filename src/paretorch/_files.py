"""Everything paretorch writes to or reads from a run directory goes through here.

- Writes are atomic (a temporary file in the same folder, flushed, then renamed over the target), so a
  kill or a full disk never leaves a half-written checkpoint or front where a good one was.
- Files get the mode an ordinary ``open()`` would give them (0666 less the umask), not ``mkstemp``'s 0600.
- JSON is strict: NaN and infinities are written as ``null`` (and read back as NaN where a number is expected).
- Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only,
  never an arbitrary pickled object, so a checkpoint handed over by someone else cannot run code on load.
- A run directory is locked by the process that writes it; a second writer is refused with one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from paretorch.errors import ParetorchError

__all__ = [
    "RunLock",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_text",
    "load_checkpoint_file",
    "read_json",
    "remove_stale_temporaries",
    "to_strict_json",
    "write_json",
]

TEMPORARY_SUFFIX = ".tmp"
LOCK_NAME = ".paretorch.lock"


def _default_mode() -> int:
    # The umask can only be read by setting it; set it straight back (a process-wide value, read once per write).
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(stream)`` fills a temporary file beside it, which then replaces it.

    On any failure (a full disk, an exception in ``write``) the temporary file is removed and ``path`` keeps
    its earlier content. An ``OSError`` becomes a one-line :class:`ParetorchError` naming the file.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.txt", lambda stream: stream.write(b"hello")).read_text()
    'hello'
    """
    target = Path(path)
    temporary: str | None = None
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _default_mode())
        os.replace(temporary, target)
        temporary = None
    except OSError as error:
        raise ParetorchError(f"could not write {target}: {error.strerror or error}; check the folder exists, is "
                             "writable and has free space (earlier files are kept)") from error
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write`."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda stream: stream.write(data))


def to_strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, so that it serialises as strict JSON.

    >>> to_strict_json({"hv": float("nan"), "values": [1.0, float("inf")]})
    {'hv': None, 'values': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: to_strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_strict_json(item) for item in value]
    return value


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as strict, indented JSON, atomically (NaN and infinities become ``null``)."""
    return atomic_write_text(path, json.dumps(to_strict_json(value), indent=2, allow_nan=False) + "\n")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read a JSON file; a missing, unreadable or malformed file is one :class:`ParetorchError` line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ParetorchError(f"{what} {file} does not exist") from error
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ParetorchError(f"cannot read {what} {file}: {reason}") from error
    try:
        # Wave-1 files may hold a bare NaN; accept it on read (and never write it).
        return json.loads(text)
    except ValueError as error:
        raise ParetorchError(f"{what} {file} is not valid JSON ({error}); restore it or rerun the step that "
                             "wrote it") from error


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda stream: torch.save(obj, stream))


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a paretorch checkpoint with ``torch.load(weights_only=True)``.

    A file that holds anything but tensors, numbers, strings and containers is refused with one line and
    nothing in it is executed; so is a truncated or otherwise unreadable file.
    """
    target = Path(path)
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # no refused class or function: garbage where a pickle should be
            raise ParetorchError(f"checkpoint {target} is corrupt (not a torch checkpoint: {str(error)[:80]}); "
                                 "restore it from a backup or train the run again into a new directory") from error
        raise ParetorchError(f"{target} is not a plain paretorch checkpoint (it holds objects other than tensors, "
                             "numbers and strings) and was not loaded; only load checkpoints you trust with "
                             "torch.load directly") from error
    except FileNotFoundError as error:
        raise ParetorchError(f"no checkpoint at {target}; start without --resume") from error
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ParetorchError(f"checkpoint {target} is corrupt or truncated ({first_line}); restore it from a "
                             "backup or train the run again into a new directory") from error
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ParetorchError(f"{target} is not a paretorch checkpoint (no model state and epoch); "
                             "point to the checkpoint.pt that paretorch train wrote")
    return state


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that a killed writer left in ``directory`` and its sub-folders.

    Only call this while holding the directory's :class:`RunLock`: a live writer's temporary files look the same.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(f".*{TEMPORARY_SUFFIX}") if p.is_file()]
    for file in stale:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
    return stale


class RunLock:
    """An exclusive, advisory lock on a run directory for the life of one writing process.

    It is an OS file lock (``flock``), so the kernel releases it when the process dies, even by ``kill -9``:
    a killed run never leaves a lock behind. A second process asking for it is refused with one line.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     pass
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._stream: IO[str] | None = None

    def acquire(self) -> RunLock:
        path = self.directory / LOCK_NAME
        try:
            stream = open(path, "a+")  # noqa: SIM115 - held open for as long as the lock
        except OSError as error:
            raise ParetorchError(f"cannot use run directory {self.directory}: {error.strerror or error}") from error
        try:
            _lock_exclusive(stream)
        except OSError:
            stream.close()
            raise ParetorchError(f"run directory {self.directory} is in use by another paretorch process; wait for "
                                 "it to finish or choose another directory") from None
        # Nothing is written into the lock file: a refused command must leave the directory byte-identical.
        self._stream = stream
        return self

    def release(self) -> None:
        if self._stream is not None:
            _unlock(self._stream)
            self._stream.close()
            self._stream = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


try:
    import fcntl

    def _lock_exclusive(stream: IO[str]) -> None:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(stream: IO[str]) -> None:
        fcntl.flock(stream.fileno(), fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock_exclusive(stream: IO[str]) -> None:
        stream.seek(0)
        msvcrt.locking(stream.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _unlock(stream: IO[str]) -> None:
        stream.seek(0)
        msvcrt.locking(stream.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


@contextlib.contextmanager
def locked(directory: str | os.PathLike[str]) -> Iterator[RunLock]:
    """Hold :class:`RunLock` on ``directory`` (created if needed) for the body of a ``with``."""
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise ParetorchError(f"run directory {folder} is a file (or lies under one); choose a folder path") from error
    except OSError as error:
        raise ParetorchError(f"cannot create run directory {folder}: {error.strerror or error}") from error
    lock = RunLock(folder).acquire()
    try:
        yield lock
    finally:
        lock.release()
