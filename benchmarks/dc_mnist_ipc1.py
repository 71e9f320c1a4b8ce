"""DC on MNIST at 1 image per class, reduced CPU budget (see docs/results.md, DCC section).

Usage: .venv/bin/python benchmarks/dc_mnist_ipc1.py --outer 500 --width 64 --batch-real 128 --seeds 0 \
           --first-padding 3 --out docs/results/dcc/dc_mnist_ipc1.json

DC as in its paper's MNIST ipc-1 setting: class-wise matching, loops (1, 1) (one matching step per fresh net),
init from real images, SGD on pixels lr 0.1 momentum 0.5, distance 'ours'. Evaluation: 10 fresh ConvNets per set,
1,000 epochs with DC's MNIST augmentation (crop/scale/rotate), SGD lr 0.01 momentum 0.9 wd 5e-4, lr x 0.1 at
half, full 10,000-image test split. The starting images (random selection, same seed) are evaluated the same way.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from contrastkit.data import load
from contrastkit.evaluate.condensation import SynsetEvalConfig
from contrastkit.methods.dcc import CondensationConfig, initial_images
from contrastkit.models import ConvNet
from contrastkit.train.condensation import condense, evaluate_synset


def save_grid(pt_path: str, png_path: str, title: str) -> None:
    """Draw the learned set saved at ``pt_path`` (images in standardised space) as one row of digits."""
    from contrastkit.train.plots import pyplot, save_figure

    saved = torch.load(pt_path, weights_only=True)
    pixels = (saved["images"] * saved["std"] + saved["mean"]).clamp(0, 1)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pixels), figsize=(0.9 * len(pixels), 1.2), squeeze=False)
    for ax, img, label in zip(axes[0], pixels, saved["labels"].tolist(), strict=True):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(label), fontsize=8)
    fig.suptitle(title, fontsize=8)
    save_figure(fig, png_path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outer", type=int, default=500)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-real", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--nets", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--matching", default="dc")
    parser.add_argument("--first-padding", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grad-method", default="loop", choices=("loop", "vmap"))
    parser.add_argument("--no-random", action="store_true", help="skip evaluating the starting images")
    parser.add_argument("--grid", nargs="+", default=[], metavar="PT", help="only draw saved sets as PNGs")
    parser.add_argument("--out", required=False)
    args = parser.parse_args(argv)
    if args.grid:
        for pt in args.grid:
            save_grid(pt, pt.replace(".pt", ".png"), f"DC, MNIST, 1 image per class ({pt.rsplit('/', 1)[-1]})")
        return {}
    if not args.out:
        parser.error("--out is required")
    torch.set_num_threads(args.threads)
    train, test = load("mnist", "train"), load("mnist", "test")
    mean, std = train.images.mean(), train.images.std()
    x, xt = (train.images - mean) / std, (test.images - mean) / std

    def make_net() -> ConvNet:
        return ConvNet(1, 28, width=args.width, depth=3, norm="instancenorm", num_classes=10,
                       first_padding=args.first_padding)  # fmt: skip

    loops = "dc_table" if args.matching == "dc" else "dcc_table"
    cfg = CondensationConfig(
        ipc=1,
        matching=args.matching,
        loops=loops,
        outer_loop=args.outer,
        outer_warmup=args.outer // 4,
        batch_real=args.batch_real,
        vmap_chunk_size=1,
        class_grad_method=args.grad_method,
    )
    ecfg = SynsetEvalConfig(num_nets=args.nets, epochs=args.epochs, augment="dc")
    record: dict = {
        "command": ".venv/bin/python benchmarks/dc_mnist_ipc1.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if not isinstance(v, bool) and k != "grid"  # every resolved option, so defaults are on record
        )
        + (" --no-random" if args.no_random else ""),
        "condensation": {k: str(v) for k, v in cfg.__dict__.items()},
        "evaluation": {k: str(v) for k, v in ecfg.__dict__.items()},
        "runs": [],
    }
    for seed in args.seeds:
        t0 = time.perf_counter()
        rand_acc: list[float] = []
        if not args.no_random:
            rand_x, rand_y = initial_images(x, train.labels, 10, 1, seed)
            rand = evaluate_synset(make_net, rand_x, rand_y, xt, test.labels, ecfg, seed=seed)
            print(f"seed {seed} random: {rand} ({rand.seconds:.0f}s)", flush=True)
            rand_acc = list(rand.accuracies)
        result = condense(
            x, train.labels, 10, make_net, cfg, seed=seed, log_every=50, log=lambda m: print(m, flush=True)
        )
        ev = evaluate_synset(make_net, result.images, result.labels, xt, test.labels, ecfg, seed=seed)
        print(f"seed {seed} {args.matching}: {ev} ({ev.seconds:.0f}s)", flush=True)
        secs = result.seconds_per_outer
        record["runs"].append(
            {
                "seed": seed,
                "random_acc": rand_acc,
                "condensed_acc": list(ev.accuracies),
                "condensed_mean": ev.mean,
                "condensed_std": ev.std,
                "image_change": result.image_change[-1],
                "seconds_per_outer_median": sorted(secs)[len(secs) // 2],
                "condense_seconds": sum(secs),
                "total_seconds": time.perf_counter() - t0,
            }
        )
        pt = args.out.replace(".json", f"_seed{seed}.pt")
        torch.save({"images": result.images, "labels": result.labels, "mean": mean, "std": std}, pt)
        save_grid(pt, pt.replace(".pt", ".png"), f"DC, MNIST, 1 image per class, seed {seed}: {ev}")
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
    return record


if __name__ == "__main__":
    main()
