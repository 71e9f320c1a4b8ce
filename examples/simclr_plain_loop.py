"""SimCLR in a plain PyTorch loop: contrastkit blocks, no harness, no Lightning.

python examples/simclr_plain_loop.py --steps 200
"""

from __future__ import annotations

import argparse

import torch

from contrastkit.augment import simclr_views
from contrastkit.data import load
from contrastkit.evaluate import extract_features, knn_accuracy
from contrastkit.methods import SimCLR
from contrastkit.models import resnet18


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    args = parser.parse_args(argv)

    train, test = load(args.dataset, "train"), load(args.dataset, "test")
    backbone = resnet18(in_channels=train.channels, small_stem=True, width=args.width)
    model = SimCLR(backbone, views=simclr_views(train.image_size[0], train.channels), temperature=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for step in range(args.steps):
        batch = train.images[torch.randint(len(train), (args.batch_size,))]
        loss = model.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.3f}")

    features_train = extract_features(model.backbone, train.images)
    features_test = extract_features(model.backbone, test.images)
    accuracy = knn_accuracy(features_train, train.labels, features_test, test.labels, k=200, temperature=0.1)
    print(f"kNN accuracy (k=200, T=0.1): {100 * accuracy:.2f}%")
    return accuracy


if __name__ == "__main__":
    main()
