"""Dense scene understanding: NYUv2 and CityScapes as the multi-task literature uses them.

The data are the preprocessed arrays of MTAN (Liu et al. 2019), which LibMTL and most Pareto front papers
reuse: a folder with ``train/`` and ``val/``, each holding one ``.npy`` file per image, ``{index}.npy``
numbered from 0, in a sub-folder per modality:

- ``image/``: (H, W, 3) floats, the RGB input;
- ``label/`` (NYUv2; CityScapes: ``label_7/``, or ``label/``): (H, W) class indices, -1 where unlabelled;
- ``depth/``: (H, W, 1) depth (CityScapes: inverse depth), 0 where unknown;
- ``normal/`` (NYUv2 only): (H, W, 3) unit surface normals, the zero vector where unknown.

NYUv2: 795 training and 654 test images of 288 × 384, 13 classes, three tasks (segmentation, depth,
normals). CityScapes: 2,975 training and 500 test images of 128 × 256, 7 classes, two tasks (segmentation,
depth). ``val/`` is the literature's test split; the validation split is held out of ``train/`` by seed.

Losses and metrics follow MTAN's definitions, with two of its slips corrected: a normal counts as unknown when
it is the zero vector (MTAN tests that its three components sum to zero, which some valid normals do), and the
mean IoU is taken over the whole split's confusion matrix (MTAN averages per-image IoUs over a batch, which
depends on the batch size).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset

from paretorch.data import Splits, _split_indices
from paretorch.errors import ParetorchError
from paretorch.training.evaluation import TaskMetric

__all__ = [
    "SCENE_DATASETS",
    "DepthError",
    "MeanIoU",
    "NormalAngleError",
    "SceneArrays",
    "depth_loss",
    "load_scenes",
    "normal_loss",
    "scene_metric",
    "segmentation_loss",
]

IGNORE_INDEX = -100  # F.cross_entropy's default: unlabelled pixels (-1 in the files) become this


# Each data set: its tasks as (name, kind, sub-folders tried in order, output channels).
SCENE_DATASETS: dict[str, list[tuple[str, str, tuple[str, ...], int]]] = {
    "nyuv2": [("segmentation", "segmentation", ("label",), 13), ("depth", "depth", ("depth",), 1),
              ("normals", "normals", ("normal",), 3)],
    "cityscapes": [("segmentation", "segmentation", ("label_7", "label"), 7), ("depth", "depth", ("depth",), 1)],
}
# What each modality's array must look like: its rank, its last axis where fixed, and that in words.
_SHAPES = {"image": (3, 3, "(H, W, 3)"), "segmentation": (2, None, "(H, W)"), "depth": (3, 1, "(H, W, 1)"),
           "normals": (3, 3, "(H, W, 3)")}


def _read_array(path: Path) -> np.ndarray:
    """One ``.npy`` file, refusing pickled object arrays (``allow_pickle=False``)."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ParetorchError(f"missing data file {path}: each modality folder needs one {{index}}.npy per image, "
                             "numbered from 0") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ParetorchError(f"{path} is not a readable .npy array ({str(error).splitlines()[0][:120]}); expected "
                             "the preprocessed arrays of MTAN/LibMTL") from None


def _check_shape(array: np.ndarray, modality: str, path: Path, height_width: tuple[int, ...] | None) -> None:
    rank, last, expected = _SHAPES[modality]
    wrong = array.ndim != rank or (last is not None and array.shape[-1] != last)
    if not wrong and height_width is not None and tuple(array.shape[:2]) != height_width:
        wrong = True
    if wrong:
        size = f" with H, W = {height_width}" if height_width is not None else ""
        raise ParetorchError(f"{path} has shape {tuple(array.shape)}; a {modality} array must be {expected}"
                             f"{size}, as in MTAN's preprocessed files")


class SceneArrays(Dataset):
    """One split of NYUv2 or CityScapes read lazily from its ``.npy`` files: ``(image (3, H, W), [target per
    task])`` with class maps as int64 (unlabelled = -100), depth as (1, H, W) and normals as (3, H, W)."""

    def __init__(self, folder: str | os.PathLike[str], dataset: str) -> None:
        self.folder = Path(folder)
        self.tasks = SCENE_DATASETS[dataset]
        if not (self.folder / "image").is_dir():
            raise ParetorchError(f"missing folder {self.folder / 'image'}: {dataset} needs train/ and val/, each with "
                                 f"image/ and {', '.join(tried[0] + '/' for _, _, tried, _ in self.tasks)} of .npy "
                                 "files (MTAN's preprocessed arrays)")
        self.count = len(list((self.folder / "image").glob("*.npy")))
        if self.count == 0:
            raise ParetorchError(f"{self.folder / 'image'} holds no .npy file; expected {{index}}.npy from 0")
        self.modalities: list[tuple[str, Path]] = []
        for _, kind, tried, _ in self.tasks:
            found = next((self.folder / name for name in tried if (self.folder / name).is_dir()), None)
            if found is None:
                raise ParetorchError(f"missing folder {self.folder / tried[0]}: the {kind} targets of {dataset}")
            files = len(list(found.glob("*.npy")))
            if files != self.count:
                raise ParetorchError(f"{found} holds {files} .npy files but {self.folder / 'image'} holds "
                                     f"{self.count}; every image needs one file per task")
            self.modalities.append((kind, found))
        # The first sample fixes and checks the size of all others.
        image = _read_array(self.folder / "image" / "0.npy")
        _check_shape(image, "image", self.folder / "image" / "0.npy", None)
        self.height_width = tuple(int(n) for n in image.shape[:2])
        self[0]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, list[Tensor]]:
        image_path = self.folder / "image" / f"{index}.npy"
        image = _read_array(image_path)
        _check_shape(image, "image", image_path, self.height_width)
        targets = []
        for kind, folder in self.modalities:
            path = folder / f"{index}.npy"
            array = _read_array(path)
            _check_shape(array, kind, path, self.height_width)
            targets.append(_as_target(array, kind))
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1), targets


def _as_target(array: np.ndarray, kind: str) -> Tensor:
    if kind == "segmentation":
        labels = torch.from_numpy(np.asarray(array, dtype=np.float64)).round().long()
        return labels.masked_fill_(labels < 0, IGNORE_INDEX)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)


def load_scenes(dataset: str, folder: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """NYUv2 (``dataset="nyuv2"``) or CityScapes (``"cityscapes"``) from MTAN's preprocessed arrays in
    ``folder`` (see the module's docstring): train on ``train/`` less a validation share held out by ``seed``,
    test on ``val/``. Returns :class:`paretorch.data.Splits` whose task kinds are ``segmentation``, ``depth``
    and ``normals``."""
    if dataset not in SCENE_DATASETS:
        raise ParetorchError(f"unknown scene data set {dataset!r}; use one of {sorted(SCENE_DATASETS)}")
    root = Path(folder)
    if not root.is_dir():
        raise ParetorchError(f"data_source {root} is not a folder; give the folder with {dataset}'s train/ and val/")
    train, test = SceneArrays(root / "train", dataset), SceneArrays(root / "val", dataset)
    if train.height_width != test.height_width:
        raise ParetorchError(f"{root / 'train'} has images of {train.height_width} but {root / 'val'} of "
                             f"{test.height_width}; both splits must come from the same preprocessing")
    train_idx, val_idx, _ = _split_indices(len(train), seed, val_fraction, 0.0)
    if len(val_idx) == 0:
        train_idx, val_idx = train_idx[1:], train_idx[:1]
    tasks = SCENE_DATASETS[dataset]
    return Splits(Subset(train, train_idx.tolist()), Subset(train, val_idx.tolist()), test, len(tasks),
                  [name for name, *_ in tasks], (3, *train.height_width), [channels for *_, channels in tasks],
                  None, [kind for _, kind, _, _ in tasks])


# ----- losses ----------------------------------------------------------------------------------------------------
def segmentation_loss(output: Tensor, target: Tensor) -> Tensor:
    """Pixel-wise cross-entropy of class logits (B, C, H, W) against class maps (B, H, W), unlabelled pixels
    (-100) ignored; zero (with a gradient path) when a batch has no labelled pixel."""
    if not (target != IGNORE_INDEX).any():
        return output.sum() * 0.0
    return F.cross_entropy(output, target, ignore_index=IGNORE_INDEX)


def _known(target: Tensor) -> Tensor:
    # A depth of 0, or a normal that is the zero vector, marks an unknown pixel: (B, 1, H, W) booleans.
    return (target != 0).any(dim=1, keepdim=True)


def depth_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over the pixels whose depth is known (MTAN's L1 depth loss)."""
    known = _known(target)
    return ((output - target).abs() * known).sum() / known.sum().clamp_min(1)


def normal_loss(output: Tensor, target: Tensor) -> Tensor:
    """1 − the mean cosine between the predicted normals (normalised here) and the known target normals."""
    known = _known(target)
    cosine = (F.normalize(output, dim=1) * target).sum(dim=1, keepdim=True)
    return 1 - (cosine * known).sum() / known.sum().clamp_min(1)


SCENE_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "segmentation": segmentation_loss, "depth": depth_loss, "normals": normal_loss}


# ----- metrics ---------------------------------------------------------------------------------------------------
class MeanIoU(TaskMetric):
    """Mean intersection over union of the classes present in the split (its confusion matrix accumulated over
    all batches; unlabelled pixels left out). Maximised.

    >>> metric = MeanIoU(2)
    >>> logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]]]])  # (1, 2 classes, 1, 2 pixels): predicts 0, 1
    >>> metric.update(logits, torch.tensor([[[0, 0]]]))
    >>> metric.compute()  # class 0: 1 of 2 pixels; class 1: 0 of 1
    0.25
    """

    name = "miou"
    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, output: Tensor, target: Tensor) -> None:
        predicted = output.argmax(dim=1)
        labelled = target != IGNORE_INDEX
        pairs = target[labelled] * self.num_classes + predicted[labelled]
        self.confusion += torch.bincount(pairs, minlength=self.num_classes**2).reshape(self.num_classes, -1)

    def compute(self) -> float:
        hits = self.confusion.diag().double()
        union = self.confusion.sum(0) + self.confusion.sum(1) - self.confusion.diag()
        present = union > 0
        return float((hits[present] / union[present]).mean()) if present.any() else float("nan")


class _MeanOverKnownPixels(TaskMetric):
    """A per-pixel error averaged over every known pixel of the split (not per batch). Minimised."""

    higher_is_better = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def errors(self, output: Tensor, target: Tensor) -> Tensor:
        """The errors of the known pixels of a batch, one per pixel."""
        raise NotImplementedError

    def update(self, output: Tensor, target: Tensor) -> None:
        errors = self.errors(output, target)
        self.total += float(errors.double().sum())
        self.count += errors.numel()

    def compute(self) -> float:
        return self.total / self.count if self.count else float("nan")


class DepthError(_MeanOverKnownPixels):
    """Mean absolute depth error over the split's known pixels. Minimised."""

    name = "abs_err"

    def errors(self, output: Tensor, target: Tensor) -> Tensor:
        return (output - target).abs()[_known(target)]


class NormalAngleError(_MeanOverKnownPixels):
    """Mean angle in degrees between predicted (normalised) and known target normals over the split.
    Minimised."""

    name = "angle"

    def errors(self, output: Tensor, target: Tensor) -> Tensor:
        cosine = (F.normalize(output.double(), dim=1) * target.double()).sum(dim=1).clamp(-1, 1)
        return torch.rad2deg(torch.acos(cosine[_known(target).squeeze(1)]))


def scene_metric(kind: str, channels: int) -> Callable[[], TaskMetric]:
    """The metric factory of a task kind: mean IoU, depth error or normal angle error."""
    if kind == "segmentation":
        return lambda: MeanIoU(channels)
    return DepthError if kind == "depth" else NormalAngleError
