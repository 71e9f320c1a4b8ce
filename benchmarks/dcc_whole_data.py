"""Whole-data upper bound of the reduced DCC reproduction: the width-32 ConvNet trained on the whole training split.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_whole_data.py --epochs 1 \
           --out docs/results/dcc/whole_data.json

Same data preparation and test subset (1,000 class-stratified test images) as ``contrastkit reproduce dcc``; SGD lr
0.01, momentum 0.9, wd 5e-4, batch 256, no augmentation; one net per dataset (seed 0).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from contrastkit.reproduce.experiments._dcc_setup import load_dataset, make_net_factory
from contrastkit.train.condensation import whole_data_accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "clutter"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = {"command": f"benchmarks/dcc_whole_data.py --epochs {args.epochs} --datasets {' '.join(args.datasets)}"}
    for name in args.datasets:
        data = load_dataset(name, quick=False)
        t0 = time.perf_counter()
        acc = whole_data_accuracy(make_net_factory(32, data["num_classes"]), data["images"], data["labels"],
                                  data["test_images"], data["test_labels"], epochs=args.epochs)  # fmt: skip
        out[name] = {"test_acc": acc, "seconds": time.perf_counter() - t0, "train_images": int(data["labels"].numel())}
        print(name, out[name], flush=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
