"""Errors paretorch raises for bad input: each carries a one-line message naming the problem and the fix."""

from __future__ import annotations

__all__ = ["NonFiniteLossError", "ParetorchError"]


class ParetorchError(ValueError):
    """Bad input or state that the user can fix; the CLI prints its message as one line and exits non-zero.

    It subclasses ``ValueError`` so that library callers can catch either.
    """


class NonFiniteLossError(ParetorchError):
    """A training step's loss is NaN or infinite; ``step`` and the task ``losses`` say where."""

    def __init__(self, step: int, losses: list[list[float]]) -> None:
        super().__init__(f"non-finite loss at step {step} (task losses {losses}); lower the learning rate or set "
                         "clip_grad_norm")
        self.step, self.losses = step, losses
