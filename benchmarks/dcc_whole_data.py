"""Whole-data upper bound of the reduced DCC reproduction: its ConvNet trained on the whole training split.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_whole_data.py --epochs 1 --datasets mnist \
           --out docs/results/dcc/whole_data.json

Same data preparation, network (width 32, first conv padded by 3) and test split (the whole official one) as
``contrastkit reproduce dcc`` (:mod:`contrastkit.reproduce.experiments._dcc_setup`); SGD lr 0.01, momentum 0.9, wd
5e-4, batch 256, no augmentation; one net per dataset (seed 0). The entries of other datasets already in ``--out``
are kept (each records its own command), so the datasets can run in separate calls.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from contrastkit.reproduce.experiments._dcc_setup import DATASETS, budget_of, load_dataset, make_net_factory
from contrastkit.train.condensation import whole_data_accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.is_file() else {}
    budget = budget_of(False)
    for name in args.datasets:
        data = load_dataset(name, quick=False)
        make_net = make_net_factory(budget["width"], data["num_classes"], budget["first_padding"])
        t0 = time.perf_counter()
        acc = whole_data_accuracy(make_net, data["images"], data["labels"], data["test_images"], data["test_labels"],
                                  epochs=args.epochs)  # fmt: skip
        saved[name] = {
            "command": f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_whole_data.py --epochs {args.epochs} "
            f"--datasets {name} --out {args.out}",
            "test_acc": acc,
            "seconds": time.perf_counter() - t0,
            "train_images": int(data["labels"].numel()),
            "test_images": int(data["test_labels"].numel()),
            "width": budget["width"],
            "first_padding": budget["first_padding"],
        }
        print(name, saved[name], flush=True)
        out.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
