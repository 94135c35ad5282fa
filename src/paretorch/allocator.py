"""Keep freed memory in the process for reuse, instead of handing it back to the operating system.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves a large block (an activation of a
batch: 1024 × 10 × 24 × 24 floats is 24 MB) with its own ``mmap`` and unmaps it when the tensor is freed, so
the next step's tensor of the same size is faulted in again page by page, each page zeroed by the kernel. A
training step allocates and frees the same sizes over and over; on a 2-core CPU these page faults cost a
fifth to a third of a LeNet step (``benchmarks/whole_job.py --system-malloc`` measures a whole job both ways).
CUDA tensors are unaffected: PyTorch caches GPU memory itself.

The ``paretorch`` command calls :func:`reuse_freed_memory` when it starts; a script that trains in its own
process may call it first thing. The cost is memory: the process keeps its peak size until it exits, which a
training job reaches in its first steps anyway, and the heap fragments a little (PaMaL's LeNet steps here: peak
355-366 MB against 353 MB; a loop that holds two 64 MB tensors a step settles at three to five of them within
its first 30 steps). jemalloc or tcmalloc (``LD_PRELOAD``) do the same and more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["reuse_freed_memory"]

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1
# Set to 1 to leave the C library's settings alone (the paretorch command then does not call mallopt).
OPT_OUT_VARIABLE = "PARETORCH_SYSTEM_MALLOC"
# glibc's own variables: whoever set one has chosen the allocator's behaviour already.
_GLIBC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def reuse_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to serve every block from its heap (no per-block ``mmap``) and never to return
    the heap's free top to the system, so that tensors freed by one training step are reused by the next
    without page faults. Returns whether the setting took effect: ``False`` on a C library other than glibc
    (macOS, musl, Windows), when ``PARETORCH_SYSTEM_MALLOC=1`` or a ``MALLOC_*_`` variable of glibc's is set.

    The setting is process-wide and lasts until the process exits.

    >>> isinstance(reuse_freed_memory(), bool)
    True
    """
    if os.environ.get(OPT_OUT_VARIABLE, "") not in ("", "0") or any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = ctypes.CDLL(name).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success. Both settings are needed: without mmap every block comes from the heap,
    # and without trimming the heap's free top stays mapped for the next block.
    return bool(mallopt(_M_MMAP_MAX, 0)) & bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
