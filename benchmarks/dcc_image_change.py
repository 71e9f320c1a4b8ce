"""How far the committed condensed sets moved from their starting images (the evidence behind the ipc-10 gate of
``contrastkit reproduce dcc``, :mod:`contrastkit.reproduce.experiments._dcc_claims`).

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_image_change.py --artifacts docs/results/dcc/artifacts \
           --sets docs/results/dcc/dc_mnist_ipc1_seed0.pt docs/results/dcc/dc_mnist_ipc1_seed1.pt \
           --out docs/results/dcc/image_change_committed.json

``image_change = ||S - S0||_F / ||S0||_F`` in standardised pixels (:func:`contrastkit.train.condensation.image_change`).
The run artifacts hold every set as pixels in [0, 1] (clipped, 3 decimals), and the ``random`` arm of the same seed
holds the starting images, so there it is ``||p - p0|| / ||p0 - mean||`` with the training mean ``mean``: exact up
to the clipping and rounding of the saved sets. The ``.pt`` sets of ``benchmarks/dc_mnist_ipc1.py`` are standardised
and unclipped; their starting images are drawn again (:func:`contrastkit.methods.dcc.initial_images`, the seed in
the file name).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from contrastkit.data import load
from contrastkit.methods.dcc import initial_images
from contrastkit.reproduce.experiments._dcc_setup import load_dataset
from contrastkit.train.condensation import image_change

_ARTIFACT = re.compile(r"^(dc|dcc|dsa|dsac)-(.+)-ipc(\d+)-seed(\d+)\.json$")


def from_artifacts(folder: Path) -> dict[str, list[float]]:
    """``{arm: [image_change per seed]}`` of every condensation artifact with a random artifact of the same seed."""
    out: dict[str, list[float]] = {}
    means: dict[str, float] = {}
    for path in sorted(folder.glob("*.json")):
        match = _ARTIFACT.match(path.name)
        start_path = path.with_name(re.sub(r"^[a-z]+-", "random-", path.name))
        if not match or not start_path.is_file():
            continue
        dataset = match.group(2)
        if dataset not in means:
            means[dataset] = load_dataset(dataset, quick=False)["mean"]
        pixels = torch.tensor(json.loads(path.read_text())["images"], dtype=torch.float64)
        start = torch.tensor(json.loads(start_path.read_text())["images"], dtype=torch.float64) - means[dataset]
        change = image_change(
            (pixels - means[dataset]).reshape(len(pixels), 1, 1, -1), start.reshape(len(start), 1, 1, -1)
        )
        out.setdefault(path.name.rsplit("-seed", 1)[0], []).append(round(change, 4))
    return out


def from_pt(paths: list[str]) -> dict[str, float]:
    """``{file: image_change}`` of sets saved by ``benchmarks/dc_mnist_ipc1.py`` (MNIST, ipc 1)."""
    train = load("mnist", "train")
    out = {}
    for name in paths:
        saved = torch.load(name, weights_only=True)
        seed = int(re.search(r"seed(\d+)\.pt$", name).group(1))
        x = (train.images - saved["mean"]) / saved["std"]
        start, _ = initial_images(x, train.labels, 10, 1, seed)
        out[Path(name).name] = round(image_change(saved["images"], start), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--sets", nargs="*", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {
        "command": f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_image_change.py --artifacts {args.artifacts} "
        + (f"--sets {' '.join(args.sets)} " if args.sets else "")
        + f"--out {args.out}",
        "artifacts": from_artifacts(Path(args.artifacts)),
        "sets": from_pt(args.sets),
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
