"""Pareto MTL's MultiMNIST-like pickles (MultiMNIST, MultiFashion, Multi-(Fashion+MNIST)) and MultiFashion
composed from Fashion-MNIST's IDX files: read safely, checked, and trained on from the command line."""

import gzip
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paretorch import ParetorchError
from paretorch.data import PARETO_MTL_FILES, load_pareto_mtl
from paretorch.runs import load_splits, resolve_config


def _images(count: int, offset: int = 0) -> np.ndarray:
    # Image i is 36×36 with a bright square whose place and brightness depend on i: resizing keeps them apart.
    images = np.zeros((count, 36, 36), dtype=np.uint8)
    for i in range(count):
        row, col = (i * 7) % 20, (i * 11) % 20
        images[i, row : row + 12, col : col + 12] = 40 + (5 * (i + offset)) % 200
    return images


def _labels(count: int, offset: int = 0) -> np.ndarray:
    return np.stack([(np.arange(count) + offset) % 10, (np.arange(count) * 3 + offset) % 10], axis=1)


def _write(path: Path, train: int = 30, test: int = 10, protocol: int = 4, encode=lambda images: images) -> Path:
    content = (encode(_images(train)), _labels(train), encode(_images(test, offset=100)), _labels(test, offset=1))
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("encoding", ["bytes", "unit floats", "byte-scale floats", "flat"])
def test_a_pickle_gives_the_papers_splits_resized_as_composed_images_are(tmp_path, protocol, encoding):
    encode = {"bytes": lambda x: x, "unit floats": lambda x: x.astype(np.float64) / 255,
              "byte-scale floats": lambda x: x.astype(np.float32), "flat": lambda x: x.reshape(len(x), -1)}[encoding]
    path = _write(tmp_path / "multi_fashion.pickle", protocol=protocol, encode=encode)
    splits = load_pareto_mtl(path, seed=5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 10)
    assert splits.input_shape == (1, 28, 28) and splits.num_tasks == 2 and splits.task_names == ["top-left",
                                                                                               "bottom-right"]
    # The training and validation splits partition the file's training images; the test split is its test images.
    expected = F.interpolate(torch.from_numpy(_images(30)).float().div(255).unsqueeze(1), size=(28, 28),
                             mode="bilinear", align_corners=False, antialias=True)
    images = torch.cat([splits.train.tensors[0], splits.val.tensors[0]])
    labels = torch.cat([splits.train.tensors[1], splits.val.tensors[1]])
    order = [int(np.argmin([(expected[j] - image).abs().max() for j in range(30)])) for image in images]
    assert sorted(order) == list(range(30))
    assert torch.allclose(images, expected[order], atol=1e-5)
    assert torch.equal(labels, torch.from_numpy(_labels(30))[order])
    assert torch.equal(splits.test.tensors[1], torch.from_numpy(_labels(10, offset=1)))
    assert splits.test.tensors[0].min() >= 0 and splits.test.tensors[0].max() <= 1
    # The validation draw follows the seed.
    other = load_pareto_mtl(path, seed=6)
    assert not torch.equal(other.val.tensors[1], splits.val.tensors[1]) or not torch.equal(
        other.val.tensors[0], splits.val.tensors[0])


def test_a_pickle_that_names_anything_but_arrays_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for protocol in (2, 5):
        path = tmp_path / f"hostile{protocol}.pickle"
        path.write_bytes(pickle.dumps((_images(3), Hostile(), _images(3), _labels(3)), protocol=protocol))
        with pytest.raises(ParetorchError, match=r"is not allowed\); nothing in it was run"):
            load_pareto_mtl(path)
    assert not marker.exists()
    # Arrays of objects are refused too (an object array's items are pickles of their own).
    objects = np.empty(3, dtype=object)
    (tmp_path / "objects.pickle").write_bytes(pickle.dumps((objects, _labels(3), _images(3), _labels(3)), protocol=5))
    with pytest.raises(ParetorchError):
        load_pareto_mtl(tmp_path / "objects.pickle")


@pytest.mark.parametrize(("content", "message"), [
    (lambda: (_images(3), _labels(3)), "should hold a tuple of (training images, training labels, test images"),
    (lambda: (_images(3)[:, :30], _labels(3), _images(3), _labels(3)), "the training images have shape (3, 30, 36)"),
    (lambda: (_images(3), _labels(4), _images(3), _labels(3)), "the training labels have shape (4, 2)"),
    (lambda: (_images(3), _labels(3), _images(2), _labels(2) + 10), "the test labels should be classes 0-9"),
    (lambda: (_images(3) * 10.0, _labels(3), _images(3), _labels(3)), "pixels should lie in [0, 1] or [0, 255]"),
    (lambda: (_images(0), _labels(0), _images(3), _labels(3)), "the training images have shape (0, 36, 36)"),
])
def test_a_pickle_of_another_layout_is_named_with_what_it_should_hold(tmp_path, content, message):
    path = tmp_path / "bad.pickle"
    path.write_bytes(pickle.dumps(content(), protocol=4))
    with pytest.raises(ParetorchError) as raised:
        load_pareto_mtl(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def _write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as stream:
                stream.write(header + array.astype(np.uint8).tobytes())


def test_which_files_a_folder_gives_each_data_set(tmp_path):
    sizes = {"train_size": 8, "val_size": 4, "test_size": 4}

    def splits(dataset, source):
        return load_splits(resolve_config({"dataset": dataset, "data_source": str(source), **sizes}))

    items = np.repeat((10 * (np.arange(40) % 10 + 1)).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    _write_idx(tmp_path / "fashion", items, np.arange(40) % 10)
    composed = splits("multifashion", tmp_path / "fashion")  # Fashion-MNIST's files: composed as MultiMNIST
    assert composed.train.tensors[0].shape == (8, 1, 28, 28) and len(composed.test) == 4
    for dataset, name in PARETO_MTL_FILES.items():
        folder = tmp_path / dataset
        folder.mkdir()
        _write(folder / name)
        from_folder, from_file = splits(dataset, folder), splits(dataset, folder / name)
        assert torch.equal(from_folder.test.tensors[0], from_file.test.tensors[0])
        assert torch.equal(from_file.test.tensors[1], torch.from_numpy(_labels(4, offset=1)))
    # A folder with IDX files keeps composing, whatever else it holds.
    _write(tmp_path / "fashion" / "multi_fashion.pickle")
    assert torch.equal(splits("multifashion", tmp_path / "fashion").test.tensors[0], composed.test.tensors[0])
    # Without a size, a pickle is used whole (the composed data sets' defaults are for composing).
    whole = load_splits(resolve_config({"dataset": "multifashion-mnist",
                                        "data_source": str(_write(tmp_path / "x.pickle"))}))
    assert (len(whole.train), len(whole.val), len(whole.test)) == (27, 3, 10)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paretorch", *argv], capture_output=True, text=True, timeout=300)


def test_the_command_line_trains_evaluates_and_exports_on_a_pickle(tmp_path):
    path = _write(tmp_path / "multi_fashion_and_mnist.pickle", train=60, test=20)
    run = tmp_path / "run"
    trained = _cli("train", str(run), "method=palora", "dataset=multifashion-mnist", f"data_source={path}",
                   "epochs=2", "batch_size=16", "--quiet")
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "multifashion-mnist" and config["model"] == "lenet"
    evaluated = _cli("eval", str(run))
    assert evaluated.returncode == 0, evaluated.stderr
    front = json.loads((run / "front_test.json").read_text())
    assert len(front["preferences"]) == 11 and front["metric_names"][0].startswith("top-left")
    assert np.isfinite(np.asarray(front["values"], dtype=float)).all()
    exported = _cli("export", str(run), "--preference", "0.3,0.7", "--out", str(tmp_path / "m.safetensors"))
    assert exported.returncode == 0 and (tmp_path / "m.safetensors").exists(), exported.stderr
    resumed = _cli("train", str(run), "--resume", "epochs=3", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    # The composed data sets' val_digits has nothing to choose in a pickle's fixed images: one line says so.
    refused = _cli("train", str(tmp_path / "other"), "dataset=multifashion", f"data_source={path}",
                   "val_digits=training", "epochs=1", "--quiet")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().endswith("holds composed images, whose validation split is 10 % of its training "
                                           "images: remove val_digits=")
