"""Reading the pickled numpy arrays that some data sets ship as (CIFAR-100's python version, Pareto MTL's
MultiMNIST-like files) without running anything a file names.

A pickle rebuilds objects by calling the functions it names, which is how a pickle runs code. The unpickler
here resolves a short list of names to its own safe versions (numpy arrays, dtypes, bytes) and refuses every
other one, as torch's ``weights_only`` loader does for checkpoints.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["UNREADABLE_PICKLE", "is_gzip", "read_array_pickle"]

# What reading a file that is not such a pickle raises: a refused name, a truncated file, or bytes that are no pickle
# at all (each caller turns these into one line naming the file it expected).
UNREADABLE_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                     gzip.BadGzipFile, zlib.error)


def _reconstruct(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    # What numpy's own _reconstruct does for a plain ndarray: an empty array whose state the pickle then sets.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray.__new__(subtype, shape, dtype)


def _from_buffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # What numpy writes for an array under pickle protocol 5; an object dtype cannot come from a buffer.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only arrays of numbers are allowed")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


class _ArrayUnpickler(pickle.Unpickler):
    _SAFE: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _from_buffer,
        ("numpy._core.numeric", "_frombuffer"): _from_buffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._SAFE[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed") from None


def is_gzip(path: Path) -> bool:
    """Whether a file starts with gzip's magic number."""
    with path.open("rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def read_array_pickle(path: Path) -> Any:
    """The content of a pickle of numpy arrays, numbers, strings, bytes and containers, read without running
    anything it names: any other object in it raises :class:`pickle.UnpicklingError` (``"… is not allowed"``)
    before it is built; a file that is no such pickle raises one of :data:`UNREADABLE_PICKLE`. Files written by
    Python 2 (keys as ``bytes``), protocols 2-5 and gzip-compressed pickles (``mnist.pkl.gz``) read alike.

    >>> import io, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "arrays.pickle"
    >>> _ = path.write_bytes(pickle.dumps((np.arange(3), [1, 2]), protocol=5))
    >>> read_array_pickle(path)
    (array([0, 1, 2]), [1, 2])
    """
    with (gzip.open(path, "rb") if is_gzip(path) else path.open("rb")) as stream:
        return _ArrayUnpickler(stream, encoding="bytes").load()
