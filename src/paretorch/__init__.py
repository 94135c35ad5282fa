"""paretorch: train one PyTorch model that can be steered to any trade-off between tasks.

Public modules: :mod:`paretorch.preferences`, :mod:`paretorch.metrics`, :mod:`paretorch.problems`,
:mod:`paretorch.solvers`.
"""

from paretorch import metrics, preferences, problems, solvers
from paretorch.errors import ParetorchError

__all__ = ["ParetorchError", "metrics", "preferences", "problems", "solvers"]
__version__ = "0.1.0"
