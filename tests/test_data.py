import numpy as np
import pytest
import torch

from paretorch import ParetorchError
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
