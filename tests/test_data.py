from pathlib import Path

import numpy as np
import pytest
import torch

from paretorch import ParetorchError
from paretorch._random import distinct_picks
from paretorch.data import COLLEGE_LEVELS, compose_multi_mnist, load_adult, load_mnist_digits, multi_mnist


def synthetic_digits(count=20):
    # Digit k is a 28×28 image filled with the value 10·(k+1): where it lands on the canvas is visible.
    labels = np.arange(count) % 10
    images = np.repeat((10 * (labels + 1)).astype(np.uint8)[:, None, None], 28, axis=1).repeat(28, axis=2)
    return images, labels


def test_multi_mnist_places_digits_at_pamal_positions():
    images, labels = synthetic_digits()
    dataset = compose_multi_mnist(images, labels, count=5, num_tasks=2, size=36)
    for index in range(5):
        canvas, target = dataset[index]
        canvas = (canvas[0] * 255).round()
        first, second = 10 * (target[0] + 1), 10 * (target[1] + 1)
        assert canvas[0, 0] == first, "top-left digit at [0:28, 0:28]"
        assert canvas[33, 33] == second, "bottom-right digit at [6:34, 6:34]"
        assert canvas[10, 10] == max(first, second), "overlap is the pixel-wise max"
        assert canvas[35, 35] == 0 and canvas[0, 35] == 0, "the rest of the 36×36 canvas is empty"


def test_multi_mnist_three_positions_on_42_canvas():
    images, labels = synthetic_digits()
    canvas, target = compose_multi_mnist(images, labels, count=1, num_tasks=3, size=42)[0]
    canvas = (canvas[0] * 255).round()
    values = 10 * (target + 1)
    assert canvas[0, 0] == values[0]  # top-left [0:28, 0:28]
    assert canvas[0, 41] == values[1]  # top-right [0:28, 14:42]
    assert canvas[41, 7] == values[2]  # bottom-centre [14:42, 7:35]
    assert canvas[41, 0] == 0


def test_resized_shape_and_range():
    images, labels = synthetic_digits()
    x, y = compose_multi_mnist(images, labels, count=3)[:]
    assert x.shape == (3, 1, 28, 28)
    assert x.min() >= 0 and x.max() <= 1
    assert y.shape == (3, 2)


def test_embedded_pools_are_disjoint_and_real():
    pools = load_mnist_digits("embedded")
    assert len(pools.train_labels) + len(pools.test_labels) == 5000
    train = {img.tobytes() for img in pools.train_images}
    assert not any(img.tobytes() in train for img in pools.test_images), "no digit in both train and test"
    assert sorted(np.unique(pools.test_labels)) == list(range(10))


def test_multi_mnist_splits_and_determinism():
    a = multi_mnist(train_size=50, val_size=10, test_size=10, seed=3)
    b = multi_mnist(train_size=50, val_size=10, test_size=10, seed=3)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert len(a.train) == 50 and a.input_shape == (1, 28, 28)


def test_multi_mnist_validation_digits_are_held_out_of_training(tmp_path):
    import json
    import subprocess
    import sys

    from paretorch.cli import main
    from paretorch.data import MULTIMNIST_VAL_FRACTION, hold_out_digits
    from paretorch.runs import load_run

    # Three disjoint pools: the validation digits are 10 % of each class of the training pool, which the training
    # images no longer use; the test pool is the one runs saved before used.
    pools = load_mnist_digits(seed=3)
    train_images, train_labels, val_images, val_labels = hold_out_digits(
        pools.train_images, pools.train_labels, MULTIMNIST_VAL_FRACTION, seed=3)
    assert np.bincount(val_labels).tolist() == [40] * 10 and len(train_labels) == 3600
    seen = {image.tobytes() for image in (*train_images, *pools.test_images)}
    assert not any(image.tobytes() in seen for image in val_images)
    held, kept = multi_mnist(train_size=40, val_size=20, test_size=20, seed=3), multi_mnist(
        train_size=40, val_size=20, test_size=20, seed=3, val_digits="training")
    for split, images, labels in (("train", train_images, train_labels), ("val", val_images, val_labels)):
        composed = compose_multi_mnist(images, labels, 20 if split == "val" else 40, seed=3 + (split == "val"))
        assert all(torch.equal(a, b) for a, b in zip(getattr(held, split).tensors, composed.tensors, strict=True))
    assert torch.equal(kept.val.tensors[0], compose_multi_mnist(pools.train_images, pools.train_labels, 20,
                                                                seed=4).tensors[0])
    assert torch.equal(held.test.tensors[0], kept.test.tensors[0]), "the test split does not move"

    # Through the command line: a new run records held-out; a run saved before the key resumes with the training
    # digits it validated on; another data set refuses the key; a resumed run cannot change it.
    tiny = ["method=ls", "ls_points=2", "train_size=32", "val_size=16", "test_size=16", "batch_size=16", "--quiet"]
    run = tmp_path / "run"
    assert main(["train", str(run), *tiny, "epochs=1"]) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["val_digits"] == "held-out"
    del stored["val_digits"]
    (run / "config.json").write_text(json.dumps(stored))
    resumed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(run), "--resume", "epochs=2",
                              *tiny], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    loaded = load_run(run)
    assert loaded.config["val_digits"] == "training"
    assert torch.equal(loaded.splits.val.tensors[0], compose_multi_mnist(
        load_mnist_digits(seed=0).train_images, load_mnist_digits(seed=0).train_labels, 16, seed=1).tensors[0])
    changed = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(run), "--resume", "epochs=3",
                              "val_digits=held-out", *tiny], capture_output=True, text=True)
    assert changed.returncode != 0 and "val_digits" in changed.stderr and "Traceback" not in changed.stderr
    refused = subprocess.run([sys.executable, "-m", "paretorch.cli", "train", str(tmp_path / "adult"),
                              "dataset=adult", "val_digits=training", "epochs=1", "--quiet"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].endswith(
        "it applies to dataset=multimnist, multimnist3 or multifashion; remove val_digits=")


def test_missing_mnist_folder_is_one_line(tmp_path):
    with pytest.raises(ParetorchError, match=r"missing data file .*train-images-idx3-ubyte"):
        load_mnist_digits(tmp_path)


def test_mnist_idx_folder(tmp_path):
    import gzip

    def write(name, array, magic):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as stream:
            stream.write(header + array.astype(np.uint8).tobytes())
        del magic

    images, labels = synthetic_digits(12)
    for prefix in ("train", "t10k"):
        write(f"{prefix}-images-idx3-ubyte", images, 3)
        write(f"{prefix}-labels-idx1-ubyte", labels, 1)
    pools = load_mnist_digits(tmp_path)
    assert np.array_equal(pools.train_images, images)
    assert np.array_equal(pools.test_labels, labels)
    # 12 digits: the two classes with two digits give one each to validation, which composes from those two.
    splits = multi_mnist(tmp_path, train_size=8, val_size=4, test_size=4)
    assert sorted(np.unique(splits.val.tensors[1]).tolist()) == [0, 1] and len(splits.train) == 8
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        write(name, (images if "images" in name else labels)[:10], 0)  # one digit per class: none to hold out
    with pytest.raises(ParetorchError, match="validation pool has 0 digits; each image needs 2 distinct ones: give "
                                             "a folder with more digits or val_digits=training"):
        multi_mnist(tmp_path, train_size=8, val_size=4, test_size=4)


def test_adult_has_no_target_columns_and_training_statistics():
    splits = load_adult()
    names = splits.feature_names
    for dropped in ("age", "education", "education-num"):
        assert not any(n == dropped or n.startswith(dropped + "=") for n in names), dropped
    numeric = [names.index(n) for n in ("fnlwgt", "capital-gain", "capital-loss", "hours-per-week")]
    x_train = splits.train.tensors[0][:, numeric]
    # Standardised with training statistics: training mean ≈ 0, std ≈ 1 on the numeric columns.
    assert torch.allclose(x_train.mean(dim=0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(x_train.std(dim=0, unbiased=False), torch.ones(4), atol=1e-3)
    # Validation statistics differ slightly: they were not used for fitting.
    assert not torch.allclose(splits.val.tensors[0][:, numeric].mean(dim=0), torch.zeros(4), atol=1e-4)
    assert splits.num_tasks == 2 and splits.task_names == ["age>=40", "education>=college"]


def test_adult_targets_cannot_be_read_off_the_inputs():
    # If age, education or education-num leaked, a linear probe would separate the targets perfectly.
    splits = load_adult()
    x, y = splits.train.tensors
    for task in range(2):
        solution = torch.linalg.lstsq(x[:5000], y[:5000, task].float()[:, None]).solution
        accuracy = (((x[5000:10000] @ solution) > 0.5).squeeze(1).long() == y[5000:10000, task]).float().mean()
        assert accuracy < 0.9


def test_adult_three_task_variant():
    splits = load_adult(variant="pmtl")
    assert splits.num_tasks == 3
    positive = splits.train.tensors[1].float().mean(dim=0)
    assert 0.15 < positive[0] < 0.35, "income > 50K is about a quarter"


def test_college_levels():
    assert "Masters" in COLLEGE_LEVELS and "HS-grad" not in COLLEGE_LEVELS


def test_missing_adult_file(tmp_path):
    with pytest.raises(ParetorchError, match=r"missing data file .*adult\.data"):
        load_adult(tmp_path)


# ----- KDD census-income (a fixture in the UCI files' layout) ----------------------------------------------------
_KDD_EDUCATION = ("High school graduate", "Masters degree(MA MS MEng MEd MSW MBA)", "Children",
                  "Bachelors degree(BA AB BS)", "10th grade", "Some college but no degree")


def _write_census_kdd(folder, rows=(60, 20), seed=0):
    """census-income.data / .test with the UCI layout: 42 comma-separated fields, a full stop at the end."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in zip(("data", "test"), rows, strict=True):
        lines, labels = [], []
        for _ in range(count):
            fields = [f"{rng.choice(['a', 'b', 'c'])}{k}" for k in range(42)]
            for numeric in (5, 16, 17, 18, 24, 30, 39):
                fields[numeric] = str(int(rng.integers(0, 500)))
            age, education = int(rng.integers(0, 91)), str(rng.choice(_KDD_EDUCATION))
            fields[0], fields[4], fields[41] = str(age), education, rng.choice(["- 50000", "50000+"])
            lines.append(", ".join(fields) + ".")
            labels.append((age >= 40, education.split()[0] in ("Masters", "Bachelors", "Some")))
        (folder / f"census-income.{name}").write_text("\n".join(lines) + "\n")
        written[name] = np.array(labels, dtype=np.int64)
    return written


def test_census_kdd_reads_the_uci_files_with_pamals_tasks_and_no_leaking_columns(tmp_path):
    from paretorch.data import load_census_kdd

    labels = _write_census_kdd(tmp_path)
    splits = load_census_kdd(tmp_path, seed=3, val_fraction=0.25)
    assert splits.num_tasks == 2 and splits.task_names == ["age>=40", "education>=college"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45, 15, 20)
    # The test split is the test file, in order; Masters holders count as college level (the public
    # preprocessing misspells it and labels them 0).
    assert torch.equal(splits.test.tensors[1], torch.from_numpy(labels["test"]))
    assert labels["data"][:, 1].any() and not labels["data"][:, 1].all()
    # Age (c0), education (c4), the instance weight (c24) and the income label (c41) are not inputs.
    names = splits.feature_names
    for dropped in ("c0", "c4", "c24", "c41"):
        assert not any(n == dropped or n.startswith(dropped + "=") for n in names), dropped
    assert "c5" in names and any(n.startswith("c1=") for n in names)
    x_train = splits.train.tensors[0]
    assert x_train.dtype == torch.float32 and x_train.shape[1] == len(names)
    wage = names.index("c5")
    assert abs(x_train[:, wage].mean().item()) < 1e-5, "numerics standardised with training statistics"


def test_census_kdd_names_missing_and_malformed_files(tmp_path):
    from paretorch.data import load_census_kdd

    with pytest.raises(ParetorchError, match=r"missing data file .*census-income\.data"):
        load_census_kdd(tmp_path)
    _write_census_kdd(tmp_path)
    path = tmp_path / "census-income.test"
    path.write_text(path.read_text() + "73, Not in universe, 0\n")
    with pytest.raises(ParetorchError, match=r"census-income\.test line 21 is not a KDD census-income row \(3 "):
        load_census_kdd(tmp_path)
    path.write_text("\n")
    with pytest.raises(ParetorchError, match=r"census-income\.test has no rows"):
        load_census_kdd(tmp_path)


def test_census_kdd_trains_with_the_papers_settings_from_the_command_line(tmp_path, capsys):
    import json

    from paretorch.cli import main

    _write_census_kdd(tmp_path / "kdd")
    run = tmp_path / "run"
    assert main(["train", str(run), "dataset=census-kdd", f"data_source={tmp_path / 'kdd'}", "method=lorpman",
                 "epochs=1", "batch_size=16"]) == 0
    assert "census-kdd with lorpman: the papers' protocol sets m=2 multi_forward_coef=5 p=1" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["m"], config["multi_forward_coef"], config["p"]) == ("mlp", 2, 5.0, 1.0)


# ----- the many-task Adult benchmark ----------------------------------------------------------------------------------
def test_adult_many_tasks_are_the_documented_attributes_and_inputs_exclude_their_sources():
    from paretorch.data import ADULT_COLUMNS, ADULT_MANY_GROUPS, adult_task_names, load_adult_many

    names = [name for name, _, _ in adult_task_names(40)]
    assert len(names) == len(set(names)) == 40
    assert names[:5] == ["age>=40", "income>50K", "sex=Male", "hours>=40", "marital=Married-civ-spouse"]
    splits = load_adult_many(num_tasks=40)
    features = splits.feature_names
    for source in ADULT_MANY_GROUPS:  # no input is derived from a task's column, whatever T is
        assert not [f for f in features if f == source or f.startswith(source + "=")], source
    assert any(f.startswith("education=") for f in features) and "capital-gain" in features
    small = load_adult_many(num_tasks=5)
    assert small.task_names == names[:5] and small.feature_names == features
    _, y = small.train.tensors
    assert y.shape[1] == 5 and set(y.unique().tolist()) == {0, 1}
    # The targets are what their names say, on the raw rows.
    from paretorch.data import _adult_rows

    rows, col, (train, _, _) = _adult_rows("embedded", 0, 0.1, 0.2)
    ages = torch.tensor([float(rows[i][col["age"]]) for i in train])
    assert torch.equal(y[:, 0], (ages >= 40).long())
    assert len(ADULT_COLUMNS) == 15


def test_adult_many_refuses_a_task_count_outside_its_range():
    from paretorch.data import adult_task_names

    with pytest.raises(ParetorchError, match="2 to 40 tasks"):
        adult_task_names(41)


# ----- CIFAR-100 as 20 superclass tasks (a fixture in the official binary format) ---------------------------------
def _write_cifar100(folder, per_class=3, seed=0):
    """train.bin / test.bin with `per_class` images of each of the 100 fine classes (5 per superclass)."""
    rng = np.random.default_rng(seed)
    # A made-up but valid assignment: fine classes 5c..5c+4 belong to superclass c, shuffled label numbers.
    fine_of = rng.permutation(100)
    records = []
    for superclass in range(20):
        for member in range(5):
            for _ in range(per_class):
                pixels = rng.integers(0, 256, 3072, dtype=np.uint8)
                records.append(np.concatenate([[superclass, fine_of[5 * superclass + member]], pixels]))
    data = np.stack(records).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    data.tofile(folder / "train.bin")
    data[::3].tofile(folder / "test.bin")
    return data


def test_cifar100_loader_makes_20_five_way_superclass_tasks(tmp_path):
    from paretorch.data import CIFAR100_SUPERCLASSES, IGNORE_INDEX, load_cifar100

    raw = _write_cifar100(tmp_path / "cifar")
    splits = load_cifar100(tmp_path / "cifar", val_fraction=0.2)
    assert splits.num_tasks == 20 and splits.task_names == list(CIFAR100_SUPERCLASSES) and splits.num_classes == 5
    x, y = splits.test.tensors
    assert x.shape == (len(raw[::3]), 3, 32, 32) and y.shape == (len(raw[::3]), 20)
    # Each image has exactly one task (its superclass), with a class in 0-4; the other 19 are ignored.
    assert ((y != IGNORE_INDEX).sum(dim=1) == 1).all()
    coarse = torch.from_numpy(raw[::3, 0].astype(np.int64))
    assert torch.equal((y != IGNORE_INDEX).long().argmax(dim=1), coarse)
    labels = y[y != IGNORE_INDEX]
    assert labels.min() == 0 and labels.max() == 4
    # Fine classes keep their order within a superclass: the smallest fine label of a superclass is class 0.
    fine = raw[::3, 1].astype(np.int64)
    for superclass in range(20):
        rows = np.nonzero(raw[::3, 0] == superclass)[0]
        smallest = rows[fine[rows] == fine[rows].min()]
        assert (y[torch.from_numpy(smallest), superclass] == 0).all()
    assert len(splits.train) + len(splits.val) == len(raw)


def _write_cifar100_python(folder, records):
    """The python version's train/test: dicts pickled with protocol 2, as the official files are."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", records), ("test", records[::3])):
        content = {b"filenames": [b"img%d.png" % i for i in range(len(rows))], b"batch_label": name.encode(),
                   b"fine_labels": rows[:, 1].astype(int).tolist(), b"coarse_labels": rows[:, 0].astype(int).tolist(),
                   b"data": np.ascontiguousarray(rows[:, 2:])}
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))


def test_cifar100_python_version_gives_the_binary_versions_tasks(tmp_path):
    from paretorch.data import load_cifar100

    raw = _write_cifar100(tmp_path / "binary")
    _write_cifar100_python(tmp_path / "python", raw)
    binary, python = load_cifar100(tmp_path / "binary", seed=4), load_cifar100(tmp_path / "python", seed=4)
    for split in ("train", "val", "test"):
        for mine, theirs in zip(getattr(python, split).tensors, getattr(binary, split).tensors, strict=True):
            assert torch.equal(mine, theirs), split


def test_cifar100_loader_names_missing_malformed_and_hostile_files(tmp_path):
    import pickle

    from paretorch.data import load_cifar100

    with pytest.raises(ParetorchError, match=r"missing data file .*train"):
        load_cifar100(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.bin").write_bytes(b"\x00" * 100)
    (tmp_path / "bad" / "test.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ParetorchError, match="not a CIFAR-100 binary file: expected records of 3074 bytes"):
        load_cifar100(tmp_path / "bad")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "train").write_bytes(b"pickle")
    (tmp_path / "garbage" / "test").write_bytes(b"pickle")
    with pytest.raises(ParetorchError, match="is not CIFAR-100's python-version file"):
        load_cifar100(tmp_path / "garbage")

    # A pickle that would run a command on load is refused before anything runs.
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "hostile").mkdir()
    for name in ("train", "test"):
        (tmp_path / "hostile" / name).write_bytes(pickle.dumps({b"data": Hostile()}, protocol=2))
    with pytest.raises(ParetorchError, match=r"is not allowed\); nothing in it was run"):
        load_cifar100(tmp_path / "hostile")
    assert not marker.exists()
    # The loader reads only what it checks: a dict of uint8 pixels and one label pair per image.
    raw = _write_cifar100(tmp_path / "binary")
    _write_cifar100_python(tmp_path / "short", raw)
    content = {b"data": raw[:4, 2:], b"coarse_labels": [0, 1], b"fine_labels": [0, 1]}
    (tmp_path / "short" / "train").write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ParetorchError, match="has 4 images but 2 coarse and 2 fine labels"):
        load_cifar100(tmp_path / "short")


def test_cifar100_trains_from_the_command_line_and_ignores_other_tasks_samples(tmp_path):
    import json

    from paretorch.cli import main

    _write_cifar100(tmp_path / "cifar", per_class=2)
    run = tmp_path / "run"
    # VGG-16 at a 100-point grid is slow on 2 cores: a few images suffice to run every step of the command, and
    # BatchNorm's refit at each of the 100 preferences (140 s here against 20 s without; test_scenes runs it) is off.
    assert main(["train", str(run), "dataset=cifar100", f"data_source={tmp_path / 'cifar'}", "method=lorpman",
                 "epochs=1", "batch_size=16", "train_size=32", "val_size=4", "test_size=4",
                 "recalibration_examples=0", "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    assert len(front["preferences"]) == 100 and front["metric_names"][0].startswith("aquatic_mammals")
    values = np.asarray(front["values"], dtype=float)
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    # LORPMAN's network on CIFAR-100 (its App. D.6), recorded; its parameters are VGG-16's plus the rank-8 deltas.
    from paretorch import build_method
    from paretorch.models import VGG16MTL

    assert json.loads((run / "config.json").read_text())["model"] == "vgg16"
    expected = build_method("lorpman", VGG16MTL(20, 5), 20).pm
    assert front["extra"]["parameters"] == sum(parameter.numel() for parameter in expected.parameters())


def test_accuracy_and_the_run_loss_skip_samples_of_other_tasks():
    from paretorch.runs import _cross_entropy
    from paretorch.training import Accuracy

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    accuracy = Accuracy()
    accuracy.update(logits, torch.tensor([0, 0, -100]))
    assert accuracy.compute() == 0.5
    loss = _cross_entropy(logits.requires_grad_(), torch.full((3,), -100))
    assert loss.item() == 0.0 and loss.requires_grad, "a batch without the task's samples adds nothing, not NaN"


# ----- SARCOS (fixtures written as real MATLAB files) ---------------------------------------------------------------
def _write_sarcos(folder, rows=(200, 40), seed=0):
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in zip(("sarcos_inv", "sarcos_inv_test"), rows, strict=True):
        inputs = rng.normal(size=(count, 21))
        torques = inputs[:, :7] * 3.0 + 0.5 * inputs[:, 7:14] + 10.0  # a learnable map, off-centre and scaled
        savemat(folder / f"{name}.mat", {name: np.concatenate([inputs, torques], axis=1)})


def test_sarcos_loader_reads_the_mat_files_as_seven_standardised_regression_tasks(tmp_path):
    from paretorch.data import SARCOS_TASKS, load_sarcos

    _write_sarcos(tmp_path / "sarcos")
    splits = load_sarcos(tmp_path / "sarcos", val_fraction=0.1)
    assert splits.num_tasks == 7 and splits.task_names == SARCOS_TASKS and splits.task_kind == "regression"
    x, y = splits.train.tensors
    assert x.shape == (180, 21) and y.shape == (180, 7) and len(splits.val) == 20 and len(splits.test) == 40
    torch.testing.assert_close(y.mean(dim=0), torch.zeros(7), atol=1e-5, rtol=0)  # training statistics
    torch.testing.assert_close(y.std(dim=0, correction=0), torch.ones(7), atol=1e-4, rtol=0)


def test_sarcos_loader_names_missing_and_malformed_files(tmp_path):
    from scipy.io import savemat

    from paretorch.data import load_sarcos

    with pytest.raises(ParetorchError, match=r"missing data file .*sarcos_inv\.mat"):
        load_sarcos(tmp_path)
    savemat(tmp_path / "sarcos_inv.mat", {"sarcos_inv": np.zeros((5, 27))})
    savemat(tmp_path / "sarcos_inv_test.mat", {"sarcos_inv_test": np.zeros((5, 28))})
    with pytest.raises(ParetorchError, match=r"variable 'sarcos_inv' of shape \(N, 28\)"):
        load_sarcos(tmp_path)
    (tmp_path / "sarcos_inv.mat").write_bytes(b"not matlab")
    with pytest.raises(ParetorchError, match="not a readable MATLAB file"):
        load_sarcos(tmp_path)


def test_sarcos_trains_and_evaluates_a_regression_front_from_the_command_line(tmp_path):
    import json

    from paretorch.cli import main

    _write_sarcos(tmp_path / "sarcos", rows=(400, 64))
    run = tmp_path / "run"
    assert main(["train", str(run), "dataset=sarcos", f"data_source={tmp_path / 'sarcos'}", "method=lorpman",
                 "epochs=3", "batch_size=64", "lr=1e-2", "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    assert front["metric_names"] == [f"torque{j} mse" for j in range(1, 8)]
    assert front["higher_is_better"] == [False] * 7
    values = np.asarray(front["values"], dtype=float)
    # Standardised targets: predicting the mean scores an MSE of about 1; the learnt map does better.
    assert np.isfinite(values).all() and values.mean() < 0.9, values.mean()


# ----- CelebA (a fixture in the official layout, with real JPEG files) ----------------------------------------------
def _write_celeba(folder, count=12, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"attribute_{k}" for k in range(40)]
    values = rng.choice([-1, 1], size=(count, 40))
    lines = [str(count), " ".join(names)]
    partition = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
        lines.append(name + "  " + " ".join(f"{v:2d}" for v in values[i]))  # the file pads with double spaces
        partition.append(f"{name} {0 if i < 8 else 1 if i < 10 else 2}")
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return names, values


def test_celeba_loader_reads_the_official_files_lazily_with_40_binary_tasks(tmp_path):
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from paretorch import ParetoLoss, lowrank
    from paretorch.data import load_celeba
    from paretorch.preferences import Dirichlet

    names, values = _write_celeba(tmp_path / "celeba")
    splits = load_celeba(tmp_path / "celeba", image_size=32)
    assert splits.num_tasks == 40 and splits.task_names == names and splits.num_classes == 2
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 2, 2)
    x, y = splits.val[1]
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(y, torch.from_numpy((values[9] == 1).astype(np.int64)))

    class TinyFaces(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(),
                                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            self.heads = torch.nn.ModuleList(torch.nn.Linear(4, 2) for _ in range(40))

        def forward(self, images):
            z = self.encoder(images)
            return [head(z) for head in self.heads]

    loss = ParetoLoss(lowrank(TinyFaces(), 40, exclude=["heads"]), [F.cross_entropy] * 40, Dirichlet(40, m=2))
    out = loss(next(iter(DataLoader(splits.train, batch_size=4))))
    out.loss.backward()
    assert out.losses.shape == (2, 40) and torch.isfinite(out.loss)


def test_celeba_loader_names_missing_and_malformed_files(tmp_path):
    from paretorch.data import load_celeba

    with pytest.raises(ParetorchError, match=r"missing data file .*list_attr_celeba\.txt"):
        load_celeba(tmp_path)
    _write_celeba(tmp_path / "celeba", count=3)
    attributes = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    attributes.write_text("\n".join([*lines[:3], lines[3].replace(" 1", " 2", 1), *lines[4:]]) + "\n")
    with pytest.raises(ParetorchError, match="line 4: expected an image name and 40 values of 1 or -1"):
        load_celeba(tmp_path / "celeba")
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").write_bytes(b"truncated")
    attributes.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParetorchError, match=r"cannot read CelebA image .*000002\.jpg"):
        load_celeba(tmp_path / "celeba").train[1]


# ----- UTKFace (labels in the file names; a fixture with real JPEG files) -------------------------------------------
def test_celeba_protocol_trains_with_kurins_dropout(tmp_path):
    # LORPMAN's App. D.7 adds Kurin et al.'s dropout to CelebA's ResNet-18: the protocol turns it on and records it.
    # (Dropout draws from the global stream, which each epoch derives from (seed, epoch), so resuming stays exact:
    # tests/test_training.py checks that with dropout. A 40-task ResNet-18 validates a 100-point grid, minutes here
    # for the three runs of a command-line resume test.)
    import json

    from paretorch.cli import main
    from paretorch.options import protocol_settings
    from paretorch.runs import build_setup, load_run, resolve_config

    _write_celeba(tmp_path / "celeba", count=12)
    run = tmp_path / "run"
    assert main(["train", str(run), "dataset=celeba", f"data_source={tmp_path / 'celeba'}", "method=cosmos",
                 "epochs=1", "batch_size=4", "val_size=1", "recalibration_examples=0", "--quiet"]) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["dropout"] is True and stored["pool_size"] == 2
    loaded = load_run(run)
    network = build_setup(loaded.config, loaded.splits, {}).pm
    drops = [module for module in network.modules() if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d))]
    assert sorted(module.p for module in drops) == [0.25] + [0.5] * 9
    # Sener & Koltun's heads: the last map pooled to 2 × 2, 512 · 4 features each.
    heads = [module for name, module in network.named_modules() if isinstance(module, torch.nn.Linear)]
    assert len(heads) == 40 and {head.in_features for head in heads} == {2048}
    # Another network keeps the protocol's other settings but neither; asked for there, they are refused.
    values = {"dataset": "celeba", "data_source": str(tmp_path), "model": "vgg16"}
    resolved = resolve_config(protocol_settings(values) | values)
    assert resolved["dropout"] is False and resolved["pool_size"] == 1 and resolved["batch_size"] == 128
    with pytest.raises(ParetorchError, match="model vgg16: it applies to model=resnet18; remove dropout="):
        resolve_config(values | {"dropout": True})
    with pytest.raises(ParetorchError, match="model vgg16: it applies to model=resnet18; remove pool_size="):
        resolve_config(values | {"pool_size": 2})


def _write_utkface(folder, count=20, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    labels = []
    for i in range(count):
        age, gender, race = int(rng.integers(1, 90)), int(rng.integers(0, 2)), int(rng.integers(0, 5))
        image = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
        image.save(folder / f"{age}_{gender}_{race}_2017011{i:04d}.jpg.chip.jpg")
        labels.append((age, gender, race))
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "39_1_20170116174525125.jpg.chip.jpg")
    return labels


def test_utkface_reads_age_gender_and_race_from_file_names_and_trains_with_mixed_task_kinds(tmp_path):
    from torch.utils.data import DataLoader

    from paretorch import ParetoLoss, evaluate_front, lowrank
    from paretorch.data import load_utkface
    from paretorch.preferences import Dirichlet
    from paretorch.runs import task_losses, task_metrics

    labels = _write_utkface(tmp_path / "UTKFace")
    splits = load_utkface(tmp_path / "UTKFace", image_size=32)
    assert splits.task_names == ["age", "gender", "race"] and splits.kinds()[0] == "regression"
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20, "the misnamed file is skipped"
    everything = [splits.train[i] for i in range(len(splits.train))]
    ages = torch.stack([target[0] for _, target in everything])
    torch.testing.assert_close(ages.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)  # standardised on train
    genders = sorted(int(target[1]) for _, target in everything)
    assert set(genders) <= {0, 1} and all(0 <= int(t[2]) < 5 for _, t in everything)
    assert everything[0][0].shape == (3, 32, 32)
    for index, (_, target) in enumerate(everything):  # the labels are the file name's
        age, gender, race = (int(part) for part in splits.train.files[index].name.split("_")[:3])
        assert (int(target[1]), int(target[2])) == (gender, race) and (age, gender, race) in labels

    class TinyFaces(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(),
                                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            self.heads = torch.nn.ModuleList([torch.nn.Linear(4, 1), torch.nn.Linear(4, 2), torch.nn.Linear(4, 5)])

        def forward(self, images):
            z = self.encoder(images)
            return [head(z) for head in self.heads]

    pm = lowrank(TinyFaces(), 3)
    loss = ParetoLoss(pm, task_losses(splits), Dirichlet(3, m=2))
    out = loss(next(iter(DataLoader(splits.train, batch_size=8))))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    front = evaluate_front(pm, DataLoader(splits.test, batch_size=8), task_metrics(splits))
    assert front.higher_is_better == [False, True, True] and front.values.shape == (66, 3)


def test_utkface_needs_its_images(tmp_path):
    from paretorch.data import load_utkface

    with pytest.raises(ParetorchError, match="missing data file"):
        load_utkface(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParetorchError, match=r"has 0 UTKFace images named \[age\]_\[gender\]_\[race\]"):
        load_utkface(tmp_path / "empty")


def test_multimnist_splits_are_composed_when_first_used_and_equal_the_eager_ones(tmp_path):
    from paretorch.data import ComposedOnUse
    from paretorch.runs import evaluate_run, load_run, train_run

    splits = multi_mnist(train_size=40, val_size=20, test_size=20, seed=3)
    assert all(isinstance(part, ComposedOnUse) for part in (splits.train, splits.val, splits.test))
    pools = load_mnist_digits(seed=3)
    eager = compose_multi_mnist(pools.test_images, pools.test_labels, 20, seed=3 + 2)
    for lazy_tensor, eager_tensor in zip(splits.test.tensors, eager.tensors, strict=True):
        assert torch.equal(lazy_tensor, eager_tensor)
    # Evaluating a trained run reads its test split only: the training images are never composed.
    run = train_run({"method": "ls", "ls_points": 2, "dataset": "multimnist", "train_size": 32, "val_size": 16,
                     "test_size": 16, "epochs": 1}, tmp_path / "run")
    loaded = load_run(run)
    evaluate_run(loaded, "test")
    assert loaded.splits.train._build is not None and loaded.splits.test._build is None


@pytest.mark.parametrize(("seed", "population", "count", "size"), [
    (0, 3_400, 20_000, 2),  # MultiMNIST's pools
    (1, 7, 5_000, 3),
    (2, 2**31 + 2, 3_000, 2),  # bounds near 2**31: about half the draws are redrawn, so rows shift in the stream
    (3, 2**31 + 5, 2_000, 3),
    (4, 3, 50, 3),  # population == size: a bound of 1 takes no word (NumPy's own calls)
    (5, 10, 10, 1),
    (6, 5, 0, 2),
])
def test_distinct_picks_replay_numpy_choice_row_by_row(seed, population, count, size):
    rng = np.random.default_rng(seed)
    expected = np.array([rng.choice(population, size, replace=False) for _ in range(count)],
                        dtype=np.int64).reshape(count, size)
    picks = distinct_picks(seed, population, count, size)
    assert picks.shape == (count, size) and picks.dtype == np.int64
    np.testing.assert_array_equal(picks, expected)
    assert ((picks >= 0) & (picks < population)).all()
    assert all(len(set(row)) == size for row in picks.tolist())
