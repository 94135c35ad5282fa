"""Errors paretorch raises for bad input: each carries a one-line message naming the problem and the fix."""

from __future__ import annotations

__all__ = ["ParetorchError"]


class ParetorchError(ValueError):
    """Bad input or state that the user can fix; the CLI prints its message as one line and exits non-zero.

    It subclasses ``ValueError`` so that library callers can catch either.
    """
