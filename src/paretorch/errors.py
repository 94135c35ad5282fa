"""Errors paretorch raises for bad input: each carries a one-line message naming the problem and the fix."""

from __future__ import annotations

__all__ = ["NonFiniteLossError", "ParetorchError"]


class ParetorchError(ValueError):
    """Bad input or state that the user can fix; the CLI prints its message as one line and exits non-zero.

    It subclasses ``ValueError`` so that library callers can catch either.

    >>> str(ParetorchError("Caught ParetorchError in DataLoader worker process 0.\\nOriginal Traceback (most "
    ...                    "recent call last):\\n  ...\\nparetorch.errors.ParetorchError: missing data file x.npy"))
    'missing data file x.npy'
    """

    def __init__(self, *args: object) -> None:
        # A DataLoader worker's error comes back as one built from "Caught ParetorchError in DataLoader worker
        # process N.", the worker's traceback, and the original message on the last line: keep that line.
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith(f"Caught {type(self).__name__} in "):
            original = args[0].rstrip().rsplit(f"{type(self).__name__}: ", 1)
            if len(original) == 2 and "\n" not in original[1]:
                args = (original[1],)
        super().__init__(*args)


class NonFiniteLossError(ParetorchError):
    """A training step's loss is NaN or infinite; ``step`` and the task ``losses`` say where."""

    def __init__(self, step: int, losses: list[list[float]]) -> None:
        super().__init__(f"non-finite loss at step {step} (task losses {losses}); lower the learning rate or set "
                         "clip_grad_norm")
        self.step, self.losses = step, losses
