"""MNIST as the one-file ``mnist.pkl.gz`` (deeplearning.net's, 60,000 training and 10,000 test digits): read
without running anything, checked, and composed into MultiMNIST from the command line."""

import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paretorch import ParetorchError
from paretorch.data import MNIST_PICKLE, load_mnist_digits
from paretorch.runs import load_splits, resolve_config


def _digits(count: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # Every image differs (a pixel ramp shifted by its index), and uses the whole 0-255 range.
    images = ((np.arange(784)[None, :] * 7 + 13 * (np.arange(count)[:, None] + offset)) % 256).astype(np.uint8)
    return images, (np.arange(count) + offset) % 10


def _write(path: Path, sizes=(30, 10, 12), scale: float = 256.0, protocol: int = 2, content=None) -> Path:
    parts = [_digits(count, offset) for count, offset in zip(sizes, (0, 1000, 2000), strict=True)]
    if content is None:
        content = tuple(((images / scale).astype(np.float32), labels.astype(np.int64)) for images, labels in parts)
    with gzip.open(path, "wb") as stream:
        stream.write(pickle.dumps(content, protocol=protocol))
    return path


@pytest.mark.parametrize("scale", [256.0, 255.0])
@pytest.mark.parametrize("protocol", [2, 5])
def test_the_pickle_gives_mnists_digits_exactly_its_training_and_validation_parts_as_the_train_pool(
        tmp_path, scale, protocol):
    path = _write(tmp_path / MNIST_PICKLE, scale=scale, protocol=protocol)
    pools = load_mnist_digits(path)
    train, val, test = _digits(30), _digits(10, 1000), _digits(12, 2000)
    assert pools.train_images.dtype == np.uint8 and pools.train_images.shape == (40, 28, 28)
    assert np.array_equal(pools.train_images.reshape(40, -1), np.concatenate([train[0], val[0]]))
    assert np.array_equal(pools.train_labels, np.concatenate([train[1], val[1]]))
    assert np.array_equal(pools.test_images.reshape(12, -1), test[0]) and np.array_equal(pools.test_labels, test[1])
    # The folder holding it gives the same pools.
    from_folder = load_mnist_digits(tmp_path)
    assert np.array_equal(from_folder.train_images, pools.train_images)


def test_a_gzip_pickle_that_names_anything_but_arrays_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = _write(tmp_path / MNIST_PICKLE, content=((Hostile(), 1), (2, 3), (4, 5)))
    with pytest.raises(ParetorchError, match=r"is not MNIST's mnist\.pkl\.gz \(unreadable: .*is not allowed\)"):
        load_mnist_digits(path)
    assert not marker.exists()


@pytest.mark.parametrize(("content", "message"), [
    (lambda: (_digits(3), _digits(3)), "not three pairs"),
    (lambda: ((np.zeros((3, 780), np.float32), np.zeros(3, np.int64)),) * 3, "training images are not an (N, 784)"),
    (lambda: ((np.zeros((3, 784), np.float32), np.full(3, 10)),) * 3, "training labels are not 3 digits 0-9"),
    (lambda: ((np.full((3, 784), 2.0, np.float32), np.zeros(3, np.int64)),) * 3, "training pixels are not in [0, 1]"),
    (lambda: ((np.zeros((3, 784), np.float32), np.zeros(2, np.int64)),) * 3, "training labels are not 3 digits"),
])
def test_a_pickle_of_another_layout_says_what_mnist_pkl_gz_should_hold(tmp_path, content, message):
    path = _write(tmp_path / MNIST_PICKLE, content=content())
    with pytest.raises(ParetorchError) as raised:
        load_mnist_digits(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).endswith("labels (N,) in 0-9: replace it with the original file")


def test_a_truncated_file_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path / MNIST_PICKLE)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ParetorchError, match=r"is not MNIST's mnist\.pkl\.gz .*replace it with the original file"):
        load_mnist_digits(path)


def test_idx_files_win_over_the_pickle_in_a_folder_and_multimnist3_composes_from_it(tmp_path):
    sizes = {"train_size": 6, "val_size": 3, "test_size": 4}
    _write(tmp_path / MNIST_PICKLE)
    composed = load_splits(resolve_config({"dataset": "multimnist3", "data_source": str(tmp_path / MNIST_PICKLE),
                                           **sizes}))
    assert composed.num_tasks == 3 and composed.train.tensors[0].shape == (6, 1, 28, 28)
    # MultiFashion does not compose MNIST's digits: a folder with only mnist.pkl.gz names the file it lacks.
    with pytest.raises(ParetorchError, match=r"missing data file .*multi_fashion\.pickle"):
        load_splits(resolve_config({"dataset": "multifashion", "data_source": str(tmp_path), **sizes}))
    # With MNIST's IDX files beside it, the folder is read as IDX files (here a broken one, which says so).
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not idx")
    with pytest.raises(ParetorchError, match="is not a valid MNIST IDX file"):
        load_mnist_digits(tmp_path)


def _write_idx(folder: Path, pools) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, images, labels in (("train", pools.train_images, pools.train_labels),
                                   ("t10k", pools.test_images, pools.test_labels)):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())


def test_the_command_line_composes_multimnist_from_the_pickle_as_from_the_same_digits_idx_files(tmp_path):
    (tmp_path / "data").mkdir()
    path = _write(tmp_path / "data" / MNIST_PICKLE, sizes=(60, 20, 30))
    run = tmp_path / "run"
    trained = subprocess.run([sys.executable, "-m", "paretorch", "train", str(run), "method=ls", "dataset=multimnist",
                              f"data_source={path}", "epochs=1", "train_size=32", "val_size=8", "test_size=8",
                              "batch_size=16", "--quiet"], capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["data_source"] == str(path) and config["dataset"] == "multimnist"
    # The same digits as IDX files compose the same images (train, held-out validation and test).
    _write_idx(tmp_path / "idx", load_mnist_digits(path))
    sizes = {"dataset": "multimnist", "train_size": 32, "val_size": 8, "test_size": 8, "seed": 3}
    from_pickle = load_splits(resolve_config({**sizes, "data_source": str(path)}))
    from_idx = load_splits(resolve_config({**sizes, "data_source": str(tmp_path / "idx")}))
    for split in ("train", "val", "test"):
        for mine, theirs in zip(getattr(from_pickle, split).tensors, getattr(from_idx, split).tensors, strict=True):
            assert mine.equal(theirs)
    assert from_pickle.train.tensors[0].max() > 0.9


@pytest.mark.parametrize("dataset", ["multimnist", "multifashion"])
def test_a_file_of_neither_format_names_what_each_data_set_reads(tmp_path, dataset):
    # Neither gzip nor a pickle: MultiMNIST's refusal also names MNIST's own files, which it composes from;
    # MultiFashion's names only Pareto MTL's pickle (mnist.pkl.gz holds no fashion items).
    path = tmp_path / "digits.txt"
    path.write_text("not a data file\n")
    refused = subprocess.run([sys.executable, "-m", "paretorch", "train", str(tmp_path / "run"), f"dataset={dataset}",
                              f"data_source={path}", "epochs=1", "--quiet"],
                             capture_output=True, text=True, timeout=300)
    message = refused.stderr.strip()
    assert refused.returncode == 2 and "Traceback" not in refused.stderr and "\n" not in message
    assert "is not one of Pareto MTL's pickles" in message
    assert (f"also composes its images from MNIST's {MNIST_PICKLE} or a folder of its IDX files" in message) == (
        dataset == "multimnist")
    assert not (tmp_path / "run").exists(), "a refused run leaves no run directory behind"
