"""SimCLR in a plain PyTorch loop: contrastkit blocks, no harness, no Lightning.

python examples/simclr_plain_loop.py --steps 200

Prints the loss and the images/s every ``--print-every`` steps (with the time left), then the progress of the
feature extraction and the kNN accuracy (k=200, T=0.1) of the backbone on the test split.
"""

from __future__ import annotations

import argparse
import time

import torch

from contrastkit.augment import simclr_views
from contrastkit.data import load
from contrastkit.evaluate import extract_features, knn_accuracy
from contrastkit.methods import SimCLR
from contrastkit.models import resnet18


def embed(model: torch.nn.Module, images: torch.Tensor, name: str, chunk: int = 4096) -> torch.Tensor:
    """Features ``[N, D]`` of ``images``, a line per ``chunk`` images (so a minute of CPU work is not silent)."""
    parts, start = [], time.perf_counter()
    for first in range(0, len(images), chunk):
        parts.append(extract_features(model, images[first : first + chunk]))
        done = first + len(parts[-1])
        print(f"  embedding {name}: {done}/{len(images)} images, {time.perf_counter() - start:.0f} s", flush=True)
    return torch.cat(parts)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--print-every", type=int, default=10, help="steps between two progress lines")
    args = parser.parse_args(argv)

    train, test = load(args.dataset, "train"), load(args.dataset, "test")
    backbone = resnet18(in_channels=train.channels, small_stem=True, width=args.width)
    model = SimCLR(backbone, views=simclr_views(train.image_size[0], train.channels), temperature=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = train.images[torch.randint(len(train), (args.batch_size,))]
        loss = model.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.print_every == 0 or step in (1, args.steps):
            elapsed = time.perf_counter() - start
            left = elapsed / step * (args.steps - step)
            print(
                f"step {step:4d}/{args.steps}  loss {loss.item():.3f}  {step * args.batch_size / elapsed:.0f} images/s"
                f"  {elapsed:.0f} s, about {left:.0f} s left",
                flush=True,
            )

    features_train = embed(model.backbone, train.images, f"the {len(train)} training images")
    features_test = embed(model.backbone, test.images, f"the {len(test)} test images")
    accuracy = knn_accuracy(features_train, train.labels, features_test, test.labels, k=200, temperature=0.1)
    print(f"kNN accuracy (k=200, T=0.1): {100 * accuracy:.2f}%")
    return accuracy


if __name__ == "__main__":
    main()
