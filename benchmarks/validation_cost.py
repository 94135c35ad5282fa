"""What one epoch's validation costs against its training, on the scene data sets at their real image counts.

A validation evaluates the whole preference grid (11 points for 2 tasks, 66 for 3), each on the validation split
and, with BatchNorm, after refitting the statistics on 512 training examples. This script writes arrays in MTAN's
NYUv2 and CityScapes layout with the real numbers of images (NYUv2: 795 training, 654 test; CityScapes: 2,975
and 500) but smaller images (``--height``, ``--width``), trains one epoch of each method with the data set's
protocol (batch size, gradient balancing, the papers' method settings) and validation after it, and prints the
seconds of each. Training and validation run the same network on images of the same size, so their ratio
carries over to the full-size images better than either time does (convolutions cost about the same per pixel).

Run: ``python benchmarks/validation_cost.py [--datasets nyuv2,cityscapes] [--methods pamal,lorpman]
[--height 48 --width 64] [--model-width 16] [--keep FOLDER]``. Nothing is downloaded; the arrays are random.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from paretorch.allocator import reuse_freed_memory
from paretorch.runs import train_run

# (training images, test images, classes, the label folder) as MTAN's preprocessed files hold them.
SCENES = {"nyuv2": (795, 654, 13, "label"), "cityscapes": (2975, 500, 7, "label_7")}


def write_scene_arrays(root: Path, dataset: str, height: int, width: int) -> Path:
    """Random arrays in MTAN's layout (``train/`` and ``val/``, one ``.npy`` per image and kind)."""
    train, test, classes, labels = SCENES[dataset]
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", test)):
        kinds = ["image", labels, "depth", *(["normal"] if dataset == "nyuv2" else [])]
        for kind in kinds:
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            np.save(root / split / "image" / f"{index}.npy", rng.random((height, width, 3), dtype=np.float32))
            np.save(root / split / labels / f"{index}.npy",
                    rng.integers(0, classes, (height, width)).astype(np.float32))
            np.save(root / split / "depth" / f"{index}.npy",
                    rng.uniform(0.5, 5.0, (height, width, 1)).astype(np.float32))
            if dataset == "nyuv2":
                normals = rng.normal(size=(height, width, 3))
                normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
                np.save(root / split / "normal" / f"{index}.npy", normals.astype(np.float32))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="nyuv2,cityscapes")
    parser.add_argument("--methods", default="pamal,lorpman")
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--model-width", type=int, default=16, help="SegNet's first-stage channels (its own: 64)")
    parser.add_argument("--keep", metavar="FOLDER", help="keep the arrays and runs here")
    args = parser.parse_args()
    reuse_freed_memory()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep or scratch)
        print(f"# one epoch, then one validation; images {args.height} x {args.width}, SegNet width "
              f"{args.model_width}")
        print("dataset     method   train images  val images  grid  train s  validation s  validation / train")
        for dataset in args.datasets.split(","):
            data = write_scene_arrays(base / f"{dataset}-arrays", dataset, args.height, args.width)
            for method in args.methods.split(","):
                settings = {"method": method, "dataset": dataset, "data_source": str(data), "epochs": 1,
                            "eval_every": 1, "seed": 0, "model_width": args.model_width}
                run = train_run(settings, base / f"{dataset}-{method}", progress=False)
                record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
                front = json.loads((run / "front_val_epoch1.json").read_text())
                train_count = SCENES[dataset][0] - round(0.1 * SCENES[dataset][0])
                print(f"{dataset:<11} {method:<8} {train_count:>12}  {SCENES[dataset][0] - train_count:>10}  "
                      f"{len(front['preferences']):>4}  {record['seconds']:>7.1f}  {record['val_seconds']:>12.1f}  "
                      f"{record['val_seconds'] / record['seconds']:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
