"""SimCLR on a bundled dataset for a wall-clock budget, with kNN accuracy over time and a final linear probe.

The protocol of docs/results.md: small-stem ResNet-18, batched tensor views, NT-Xent, Adam with warm-up + cosine
over the *training* time budget. Every ``--eval-every`` seconds of training the clock stops, the backbone embeds the
whole train and test split, and weighted kNN (k=200, T=0.1, cosine; Wu et al. 2018) is measured. At the end a linear
probe is fitted on frozen features. ``--budget-minutes 0`` measures the random-init backbone.

    python benchmarks/simclr_budget.py --budget-minutes 10 --out docs/results/simclr_fmnist_bf16.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from contrastkit import accel
from contrastkit.augment import simclr_views
from contrastkit.data import load
from contrastkit.evaluate import extract_features, knn_accuracy, linear_probe
from contrastkit.methods import SimCLR
from contrastkit.models import build_backbone


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--budget-minutes", type=float, default=10.0)
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="train for this many steps instead of a time budget (the schedule then runs over steps)",
    )
    p.add_argument("--raw-pixels", action="store_true", help="only report kNN on raw pixels")
    p.add_argument(
        "--pil-views",
        action="store_true",
        help="peer baseline: per-image PIL views from DataLoader workers instead of batched tensor views",
    )
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for --pil-views")
    p.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between kNN evaluations")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--warmup-fraction", type=float, default=0.03)
    p.add_argument("--precision", default="auto", choices=["auto", "32", "bf16"])
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--linear-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def evaluate_knn(
    method: SimCLR,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    device: torch.device,
    precision: str,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    with accel.autocast(device, precision):
        f_train = extract_features(method.backbone, train_x, batch_size=1024, device=device)
        f_test = extract_features(method.backbone, test_x, batch_size=1024, device=device)
    return knn_accuracy(f_train, train_y, f_test, test_y, k=200, temperature=0.1), f_train, f_test


def _forever(loader: Iterable) -> Iterator:
    while True:
        yield from loader


def _channels_last(batch: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    if isinstance(batch, tuple):
        return tuple(v.contiguous(memory_format=torch.channels_last) for v in batch)
    return batch.contiguous(memory_format=torch.channels_last)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    precision = accel.resolve_precision(args.precision, device)
    train, test = load(args.dataset, "train"), load(args.dataset, "test")
    backbone = build_backbone(args.backbone, in_channels=train.channels, small_stem=True, width=args.width)
    method = SimCLR(backbone, simclr_views(train.image_size[0], train.channels), temperature=args.temperature)
    method = accel.channels_last(method.to(device), not args.no_channels_last)
    optimizer = torch.optim.Adam(method.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_x, train_y = train.images, train.labels
    budget = math.inf if args.max_steps else args.budget_minutes * 60.0
    if args.raw_pixels:
        a, b = train_x.flatten(1), test.images.flatten(1)
        mean, std = a.mean(0), a.std(0) + 1e-6
        variants = {
            "raw [0, 1]": (a, b),
            "centred": (a - mean, b - mean),
            "standardised": ((a - mean) / std, (b - mean) / std),
        }
        result = {
            name: knn_accuracy(f, train_y, g, test.labels, k=200, temperature=0.1) for name, (f, g) in variants.items()
        }
        for name, acc in result.items():
            print(f"pixels {name:13s}: kNN {100 * acc:.2f}% (k=200, T=0.1, cosine)")
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps(
                    {
                        "protocol": "weighted kNN k=200 T=0.1 cosine on flattened pixels, train "
                        "split as memory bank, test split",
                        "knn_top1": result,
                    },
                    indent=2,
                )
            )
        return result
    print(
        f"SimCLR {args.backbone} width {args.width} on {args.dataset} ({len(train)} images), batch "
        f"{args.batch_size}, precision {precision}, channels_last {not args.no_channels_last}, "
        f"budget {args.budget_minutes} min, {torch.get_num_threads()} threads",
        flush=True,
    )

    curve: list[dict] = []
    trained, seen, step, next_eval = 0.0, 0, 0, args.eval_every
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train), generator=generator)
    cursor, loss_value = 0, float("nan")
    pil_batches = None
    if args.pil_views:
        from pil_views import pil_loader

        method.views = None  # the loader yields ready (view1, view2) pairs
        pil_batches = _forever(pil_loader(train_x, args.batch_size, args.workers, args.seed))
    method.train()
    while trained < budget and (args.max_steps is None or step < args.max_steps):
        start = time.perf_counter()
        if pil_batches is not None:
            batch = tuple(v.to(device, non_blocking=True) for v in next(pil_batches))
        else:
            if cursor + args.batch_size > len(order):
                order, cursor = torch.randperm(len(train), generator=generator), 0
            batch = train_x[order[cursor : cursor + args.batch_size]].to(device, non_blocking=True)
            cursor += args.batch_size
        if not args.no_channels_last:
            batch = _channels_last(batch)
        frac = step / args.max_steps if args.max_steps else trained / budget
        warm = max(args.warmup_fraction, 1e-8)
        lr = args.lr * (frac / warm if frac < warm else 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accel.autocast(device, precision):
            loss = method.training_step(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise SystemExit(f"non-finite loss at step {step}; lower --lr")
        trained += time.perf_counter() - start
        seen += args.batch_size
        step += 1
        done = trained >= budget or (args.max_steps is not None and step >= args.max_steps)
        if trained >= next_eval or done:
            next_eval += args.eval_every
            acc, _, _ = evaluate_knn(method, train_x, train_y, test.images, test.labels, device, precision)
            curve.append(
                {
                    "train_seconds": round(trained, 1),
                    "images_seen": seen,
                    "epochs": seen / len(train),
                    "loss": loss_value,
                    "knn_top1": acc,
                }
            )
            print(
                f"  {trained:7.1f} s  epoch {seen / len(train):5.2f}  loss {loss_value:.3f}  kNN {100 * acc:.2f}%  "
                f"{seen / trained:.0f} img/s",
                flush=True,
            )
            method.train()

    knn, f_train, f_test = evaluate_knn(method, train_x, train_y, test.images, test.labels, device, precision)
    probe = linear_probe(f_train, train_y, f_test, test.labels, epochs=args.linear_epochs, seed=args.seed)
    result = {
        "protocol": "SimCLR pre-training on the train split for a wall-clock budget (training time only); weighted "
        "kNN k=200 T=0.1 cosine (train split as memory bank) and a linear probe on frozen features, "
        "both on the test split",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": vars(args) | {"out": str(args.out), "precision": precision},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "train_seconds": round(trained, 1),
        "steps": step,
        "images_seen": seen,
        "images_per_second": seen / trained if trained > 0 else None,
        "knn_top1": knn,
        "linear_top1": probe.test_accuracy,
        "curve": curve,
    }
    print(
        f"final: kNN {100 * knn:.2f}%  linear {100 * probe.test_accuracy:.2f}%  after {trained:.0f} s "
        f"({seen / max(trained, 1e-9):.0f} img/s, {seen / len(train):.2f} epochs)",
        flush=True,
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.out)
    return result


if __name__ == "__main__":
    main()
