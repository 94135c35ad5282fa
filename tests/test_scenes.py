"""NYUv2 and CityScapes from MTAN's preprocessed arrays: fixtures written in that format, the pixel losses and
metrics against hand computations, the SegNet, and training and evaluation through the command line."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paretorch import ParetorchError, build_method
from paretorch.cli import main
from paretorch.models import SegNetMTL
from paretorch.runs import validate_run_options
from paretorch.scenes import (
    IGNORE_INDEX,
    DepthError,
    MeanIoU,
    NormalAngleError,
    depth_loss,
    load_scenes,
    normal_loss,
    segmentation_loss,
)
from paretorch.training import ParetoLoss

HEIGHT, WIDTH = 16, 32


def _write_split(folder, count, dataset, seed):
    rng = np.random.default_rng(seed)
    classes = 13 if dataset == "nyuv2" else 7
    label_folder = "label" if dataset == "nyuv2" else "label_7"
    for name in ("image", label_folder, "depth", *(["normal"] if dataset == "nyuv2" else [])):
        (folder / name).mkdir(parents=True)
    for index in range(count):
        np.save(folder / "image" / f"{index}.npy", rng.random((HEIGHT, WIDTH, 3)).astype(np.float32))
        labels = rng.integers(0, classes, (HEIGHT, WIDTH)).astype(np.float32)
        labels[0, :4] = -1  # unlabelled pixels, as in the files
        np.save(folder / label_folder / f"{index}.npy", labels)
        depth = rng.uniform(0.5, 5.0, (HEIGHT, WIDTH, 1)).astype(np.float32)
        depth[1, :3] = 0  # unknown depth
        np.save(folder / "depth" / f"{index}.npy", depth)
        if dataset == "nyuv2":
            normals = rng.normal(size=(HEIGHT, WIDTH, 3))
            normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
            normals[2, 0] = 0  # unknown normal
            normals[2, 1] = [2 ** -0.5, -(2 ** -0.5), 0]  # a known normal whose components sum to zero
            np.save(folder / "normal" / f"{index}.npy", normals.astype(np.float32))


def write_scenes(root, dataset="nyuv2", counts=(10, 4)):
    _write_split(root / "train", counts[0], dataset, seed=1)
    _write_split(root / "val", counts[1], dataset, seed=2)
    return root


# ----- the loader --------------------------------------------------------------------------------------------------
def test_nyuv2_loader_reads_the_arrays_as_three_dense_tasks(tmp_path):
    root = write_scenes(tmp_path / "nyuv2")
    splits = load_scenes("nyuv2", root, seed=0)
    assert splits.task_names == ["segmentation", "depth", "normals"]
    assert splits.kinds() == ["segmentation", "depth", "normals"]
    assert splits.num_classes == [13, 1, 3] and splits.input_shape == (3, HEIGHT, WIDTH)
    # val/ is the literature's test split; the validation share is held out of train/.
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 1, 4)
    image, (labels, depth, normals) = splits.test[0]
    stored = np.load(root / "val" / "image" / "0.npy")
    assert torch.equal(image, torch.from_numpy(stored).permute(2, 0, 1))
    assert labels.dtype == torch.int64 and labels.shape == (HEIGHT, WIDTH)
    assert (labels[0, :4] == IGNORE_INDEX).all() and (labels[1:] >= 0).all()
    assert torch.equal(labels[1:].float(), torch.from_numpy(np.load(root / "val" / "label" / "0.npy"))[1:])
    assert depth.shape == (1, HEIGHT, WIDTH) and normals.shape == (3, HEIGHT, WIDTH)
    train_images = {tuple(splits.train[i][0][0, 0, :3].tolist()) for i in range(9)}
    assert tuple(splits.val[0][0][0, 0, :3].tolist()) not in train_images, "validation is held out of training"
    again = load_scenes("nyuv2", root, seed=0)
    assert torch.equal(again.val[0][0], splits.val[0][0]), "the held-out share depends only on the seed"


def test_cityscapes_loader_reads_label_7_and_depth(tmp_path):
    splits = load_scenes("cityscapes", write_scenes(tmp_path / "cs", "cityscapes"))
    assert splits.task_names == ["segmentation", "depth"] and splits.num_classes == [7, 1]
    _, targets = splits.train[0]
    assert len(targets) == 2 and targets[0].max() < 7


def test_scene_loader_names_the_missing_or_malformed_file(tmp_path):
    root = write_scenes(tmp_path / "nyuv2", counts=(3, 2))
    with pytest.raises(ParetorchError, match="not a folder"):
        load_scenes("nyuv2", tmp_path / "nowhere")
    (root / "val" / "normal" / "1.npy").unlink()
    with pytest.raises(ParetorchError, match=r"normal holds 1 \.npy files but .*image holds 2"):
        load_scenes("nyuv2", root)
    np.save(root / "val" / "normal" / "1.npy", np.zeros((HEIGHT, WIDTH, 2), dtype=np.float32))
    with pytest.raises(ParetorchError, match=r"1\.npy has shape \(16, 32, 2\); a normals array must be \(H, W, 3\)"):
        load_scenes("nyuv2", root).test[1]
    # A pickled object array is refused, never unpickled.
    np.save(root / "val" / "normal" / "1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ParetorchError, match=r"not a readable \.npy array"):
        load_scenes("nyuv2", root).test[1]
    (root / "val" / "normal" / "1.npy").write_bytes(b"not numpy")
    with pytest.raises(ParetorchError, match=r"not a readable \.npy array"):
        load_scenes("nyuv2", root).test[1]
    shutil.rmtree(root / "train" / "depth")
    with pytest.raises(ParetorchError, match=r"missing folder .*train/depth: the depth targets of nyuv2"):
        load_scenes("nyuv2", root)


# ----- losses and metrics --------------------------------------------------------------------------------------------
def test_pixel_losses_leave_out_unknown_pixels():
    target_depth = torch.tensor([[[[1.0, 0.0], [2.0, 4.0]]]])  # (1, 1, 2, 2), one unknown pixel
    prediction = torch.tensor([[[[2.0, 100.0], [2.0, 1.0]]]])
    assert depth_loss(prediction, target_depth).item() == pytest.approx((1 + 0 + 3) / 3)
    normals = torch.zeros(1, 3, 1, 3)
    normals[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    normals[0, :, 0, 1] = torch.tensor([2**-0.5, -(2**-0.5), 0.0])  # sums to zero, yet known
    # The prediction is normalised by the loss: a scaled copy of the target is perfect.
    assert normal_loss(3 * normals, normals).item() == pytest.approx(0, abs=1e-6)
    assert normal_loss(-normals, normals).item() == pytest.approx(2.0)
    logits = torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 4, (2, 3, 3))
    labels[0, 0, 0] = IGNORE_INDEX
    keep = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], labels[keep])
    assert segmentation_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    nothing = torch.full((2, 3, 3), IGNORE_INDEX)
    assert segmentation_loss(logits, nothing).item() == 0.0


def test_mean_iou_is_the_whole_splits_and_independent_of_the_batching():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 5, 4, 4), torch.randint(0, 5, (6, 4, 4))
    labels[0, 0] = IGNORE_INDEX
    whole, halves = MeanIoU(5), MeanIoU(5)
    whole.update(logits, labels)
    halves.update(logits[:3], labels[:3])
    halves.update(logits[3:], labels[3:])
    predicted, keep = logits.argmax(1), labels != IGNORE_INDEX
    ious = []
    for c in range(5):
        inter = ((predicted == c) & (labels == c) & keep).sum().item()
        union = (((predicted == c) | (labels == c)) & keep).sum().item()
        if union:
            ious.append(inter / union)
    assert whole.compute() == pytest.approx(np.mean(ious)) == halves.compute()


def test_depth_and_normal_errors_against_hand_computation():
    depth = DepthError()
    depth.update(torch.tensor([[[[2.0, 9.0]]]]), torch.tensor([[[[1.0, 0.0]]]]))
    depth.update(torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[4.0, 1.0]]]]))
    assert depth.compute() == pytest.approx((1 + 3 + 0) / 3)
    angle = NormalAngleError()
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)  # second pixel unknown
    angle.update(torch.tensor([[0.0, 5.0], [2.0, 5.0], [0.0, 5.0]]).view(1, 3, 1, 2), target)
    assert angle.compute() == pytest.approx(90.0)


# ----- the network, training and the command line ---------------------------------------------------------------------
def test_segnet_keeps_the_resolution_and_has_segnets_size():
    outputs = SegNetMTL([13, 1, 3], width=4, stages=4)(torch.zeros(2, 3, HEIGHT, WIDTH))
    assert [tuple(o.shape) for o in outputs] == [(2, 13, HEIGHT, WIDTH), (2, 1, HEIGHT, WIDTH), (2, 3, HEIGHT, WIDTH)]
    # SegNet's VGG-16 encoder-decoder at width 64 with MTAN's three split heads: about 25 M parameters.
    assert 24e6 < sum(p.numel() for p in SegNetMTL([13, 1, 3]).parameters()) < 26e6


def test_a_lorpman_front_on_nyuv2_learns_all_three_tasks(tmp_path):
    splits = load_scenes("nyuv2", write_scenes(tmp_path / "nyuv2", counts=(8, 2)))
    torch.manual_seed(0)
    setup = build_method("lorpman", SegNetMTL([13, 1, 3], width=4, stages=3), 3, epochs=1, rank=2, lr=1e-2)
    loss = ParetoLoss(setup.pm, [segmentation_loss, depth_loss, normal_loss], setup.sampler, setup.objective,
                      setup.regularisers, seed=0)
    optimizer = torch.optim.Adam(setup.pm.parameters(), lr=1e-2)
    batch = torch.utils.data.default_collate([splits.train[i] for i in range(len(splits.train))])
    first = None
    for _ in range(30):
        out = loss(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        first = out.losses.mean(0) if first is None else first
    assert (out.losses.mean(0) < first).all(), (first, out.losses.mean(0))


@pytest.mark.parametrize("dataset", ["nyuv2", "cityscapes"])
def test_scenes_train_and_evaluate_from_the_command_line(tmp_path, dataset):
    root = write_scenes(tmp_path / dataset, dataset, counts=(8, 4))
    run = tmp_path / "run"
    assert main(["train", str(run), f"dataset={dataset}", f"data_source={root}", "method=lorpman", "model_width=4",
                 "epochs=1", "batch_size=4", "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0
    front = json.loads((run / "front_test.json").read_text())
    names = ["segmentation mIoU", "depth abs err", "normals angle°"][: 3 if dataset == "nyuv2" else 2]
    assert front["metric_names"] == names
    assert front["higher_is_better"] == [True, False, False][: len(names)]
    values = np.asarray(front["values"], dtype=float)
    assert np.isfinite(values).all() and (values[:, 0] >= 0).all() and (values[:, 0] <= 1).all()
    assert front["hypervolume"]["value"] is not None


def test_scenes_refuse_a_model_without_per_pixel_outputs(tmp_path):
    root = write_scenes(tmp_path / "nyuv2", counts=(3, 2))
    assert main(["train", str(tmp_path / "run"), "dataset=nyuv2", f"data_source={root}", "model=resnet18"]) == 2
    with pytest.raises(ParetorchError, match="dataset nyuv2 needs model=segnet"):
        validate_run_options({"dataset": "nyuv2", "model": "mlp"})
    assert main(["train", str(tmp_path / "run2"), "dataset=nyuv2"]) == 2  # embedded: no package ships NYUv2


@pytest.mark.parametrize("method", ["pamal", "palora"])  # BatchNorm members; shared BatchNorm, 4 rays stacked
def test_a_batchnorm_run_exports_statistics_refit_at_the_preference_through_the_command_line(tmp_path, method):
    import subprocess
    import sys

    from safetensors.torch import load_file

    from paretorch import recalibrate_batchnorm
    from paretorch.runs import load_run, recalibration_data

    root = write_scenes(tmp_path / "cityscapes", "cityscapes", counts=(8, 4))
    run, out = tmp_path / "run", tmp_path / "model.safetensors"
    command = [sys.executable, "-m", "paretorch"]
    trained = subprocess.run([*command, "train", str(run), "dataset=cityscapes", f"data_source={root}",
                              f"method={method}", "model_width=4", "epochs=1", "batch_size=4",
                              "recalibration_examples=6", "--quiet"], capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "config.json").read_text())["recalibration_examples"] == 6
    exported = subprocess.run([*command, "export", str(run), "--preference", "0.3,0.7", "--out", str(out)],
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    written = load_file(out)
    loaded = load_run(run)
    data = recalibration_data(loaded.config, loaded.splits)
    assert [len(inputs) for inputs, *_ in data] == [4, 2]  # 6 of the 8 training images, in batches of 4
    stale = loaded.models.at([0.3, 0.7]).state_dict()
    refit = recalibrate_batchnorm(loaded.models.at([0.3, 0.7]), data).state_dict()
    means = [name for name in refit if name.endswith("running_mean")]
    assert sorted(written) == sorted(refit), "the exported keys are the plain network's"
    assert means and all(torch.allclose(written[name], refit[name], atol=1e-6) for name in means)
    assert not all(torch.allclose(written[name], stale[name], atol=1e-3) for name in means)


def test_a_new_run_takes_the_papers_protocol_for_the_keys_it_does_not_give(tmp_path):
    # CityScapes' protocol (PaMaL, PaLoRA, LORPMAN): batch 8, Adam 1e-4 halved after 75 of 100 epochs, gradient
    # balancing. Given keys win; a learning rate tied to the protocol's optimiser goes with it; the run records
    # what it trained with, and the command says what the protocol set.
    import subprocess
    import sys

    from paretorch.runs import build_setup, load_run

    root = write_scenes(tmp_path / "cityscapes", "cityscapes", counts=(8, 4))
    tiny = ["dataset=cityscapes", f"data_source={root}", "method=palora", "model_width=4", "epochs=1",
            "recalibration_examples=0", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "paretorch", "train", str(tmp_path / "run"), *tiny, "batch_size=4"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert ("cityscapes with palora: the papers' protocol sets lr=0.0001 schedule=step step_epochs=75 "
            "step_gamma=0.5 gradient_balancing=true rank=4 m=5") in done.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["epochs"], config["batch_size"], config["lr"], config["schedule"], config["step_epochs"],
            config["step_gamma"], config["gradient_balancing"]) == (1, 4, 1e-4, "step", 75, 0.5, True)
    # PaLoRA's own CityScapes settings (its §5.3: rank 4, 5 rays) build the model and are recorded.
    assert (config["rank"], config["m"]) == (4, 5)
    # Each layer's stacked down-projection holds T × rank rows (× the kernel size for a convolution's).
    downs = [t.shape[0] for name, t in torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
             .items() if name.endswith(".down")]
    assert downs and all(rows % (2 * 4) == 0 for rows in downs), downs
    # PaMaL's (its §5.3: window 3, Dirichlet p = 7) with a window given: the given key wins, p is the paper's.
    assert main(["train", str(tmp_path / "pamal"), *tiny, "method=pamal", "m=2"]) == 0
    config = json.loads((tmp_path / "pamal" / "config.json").read_text())
    assert (config["m"], config["p"]) == (2, 7.0)
    assert main(["train", str(tmp_path / "sgd"), *tiny, "optimizer=sgd", "schedule=none"]) == 0
    config = json.loads((tmp_path / "sgd" / "config.json").read_text())
    assert config["batch_size"] == 8 and config["gradient_balancing"] is True
    assert not {"lr", "step_epochs", "step_gamma"} & set(config)  # Adam's 1e-4 is not SGD's; no step schedule
    loaded = load_run(tmp_path / "sgd")
    setup = build_setup(loaded.config, loaded.splits, {})
    assert (setup.config.optimizer, setup.config.lr, setup.config.schedule) == ("sgd", 1e-3, "none")


@pytest.mark.parametrize("source", [None, "missing"])
def test_a_missing_data_folder_is_refused_before_the_protocol_is_announced(tmp_path, capsys, source):
    given = [] if source is None else [f"data_source={tmp_path / source}"]
    assert main(["train", str(tmp_path / "run"), "dataset=cityscapes", "method=pamal", *given]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "protocol" not in captured.err
    assert ("is not a folder" if source else "does not ship with any package") in captured.err
    assert captured.err.count("\n") == 1 and not (tmp_path / "run").exists()


def _small_cityscapes_lorpman(tmp_path):
    # LORPMAN frozen after epoch 1 of 2 and of 1 alike (freeze_fraction 0.5), so a 1-epoch run is a prefix of a
    # 2-epoch one (PaLoRA's annealing follows the run's total length: its 1-epoch run is none).
    root = write_scenes(tmp_path / "cityscapes", "cityscapes", counts=(8, 4))
    return ["dataset=cityscapes", f"data_source={root}", "method=lorpman", "freeze_fraction=0.5", "model_width=4",
            "batch_size=4", "recalibration_examples=4", "--quiet"]


def test_a_batchnorm_run_of_stacked_preferences_resumes_exactly_through_the_command_line(tmp_path, whole_and_resumed):
    # LORPMAN stacks its 4 preferences in one pass, and each SegNet BatchNorm normalises each preference's block on
    # its own and updates its running statistics once per block: a run stopped after epoch 1 and resumed by the
    # command line ends with the tensors of one uninterrupted run, running statistics included.
    whole, stopped, resumed = whole_and_resumed(_small_cityscapes_lorpman(tmp_path))
    # The protocol balances the task gradients: a probe of the shared parameters at the resumed run's first step
    # must leave no trace (it once updated BatchNorm's statistics there).
    assert json.loads((resumed / "config.json").read_text())["gradient_balancing"] is True
    expected, got = whole["model"], stopped["model"]
    means = [name for name in expected if name.endswith("running_mean")]
    assert means and set(expected) == set(got)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    first = json.loads((resumed / "metrics.jsonl").read_text().splitlines()[0])
    assert first["epoch"] == 1


def test_worker_processes_read_the_same_batches_and_a_resumed_run_may_change_their_number(tmp_path,
                                                                                         whole_and_resumed):
    # Scene arrays are read from files, so workers=2 reads them in two processes: the run stopped after epoch 1 and
    # resumed with workers=0 ends with the tensors of an uninterrupted run that read everything in this process.
    whole, stopped, resumed = whole_and_resumed(_small_cityscapes_lorpman(tmp_path), whole=["workers=0"],
                                                first=["workers=2"], resume=["workers=0"])
    expected, got = whole["model"], stopped["model"]
    assert set(expected) == set(got) and all(torch.equal(expected[name], got[name]) for name in expected)
    assert json.loads((resumed / "config.json").read_text())["workers"] == 0


def test_a_file_that_a_worker_process_cannot_read_is_one_line(tmp_path, capsys):
    root = write_scenes(tmp_path / "cityscapes", "cityscapes", counts=(8, 4))
    (root / "train" / "depth" / "5.npy").write_bytes(b"not an array")
    assert main(["train", str(tmp_path / "run"), "dataset=cityscapes", f"data_source={root}", "method=ls",
                 "ls_points=1", "model_width=4", "batch_size=4", "epochs=1", "workers=1", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and "DataLoader" not in error, error
    assert "5.npy is not a readable .npy array" in error, error
