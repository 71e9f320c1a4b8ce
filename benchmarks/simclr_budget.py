"""SimCLR on a bundled dataset for a wall-clock budget, with kNN accuracy over time and a final linear probe.

The protocol of docs/results.md: ``configs/simclr_fashion_mnist.yaml`` (small-stem ResNet-18, batched tensor views,
NT-Xent, Adam with warm-up + cosine over the *training* time budget) trained through the engine
(:mod:`contrastkit.train.engine`), so the recipe is the one ``contrastkit train`` runs. Every ``--eval-every``
seconds of training the clock stops (the engine counts training time only), the backbone embeds the whole train
and test split, and weighted kNN (k=200, T=0.1, cosine; Wu et al. 2018) is measured. At the end a linear probe is
fitted on frozen features. ``--budget-minutes 0`` measures the random-init backbone.

    python benchmarks/simclr_budget.py --budget-minutes 10 --out docs/results/simclr_fmnist_bf16.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

from contrastkit.data import Batch, load
from contrastkit.evaluate import Embedding, extract_features, knn_accuracy, linear_probe
from contrastkit.train import load_config
from contrastkit.train.builders import build_engine
from contrastkit.train.engine import Engine, StepCallback
from contrastkit.train.runtime import LocalRuntime

ROOT = Path(__file__).resolve().parents[1]


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
    method: torch.nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    device: torch.device,
    precision: str,
) -> tuple[float, torch.Tensor, torch.Tensor]:
    kwargs = {"batch_size": 1024, "device": device, "precision": precision}
    f_train = extract_features(Embedding(method), train_x, **kwargs)  # type: ignore[arg-type]
    f_test = extract_features(Embedding(method), test_x, **kwargs)  # type: ignore[arg-type]
    return knn_accuracy(f_train, train_y, f_test, test_y, k=200, temperature=0.1), f_train, f_test


class LoaderSource:
    """A source that hands out a DataLoader's ready ``(view1, view2)`` batches in the loader's own order (the
    engine's indices are ignored): the per-image PIL peer baseline (``--pil-views``)."""

    def __init__(self, loader: torch.utils.data.DataLoader, n: int) -> None:
        self.loader, self.n, self.batches = loader, n, iter(loader)

    def __len__(self) -> int:
        return self.n

    def num_batches(self, batch_size: int) -> int:
        return self.n // batch_size

    def batch_indices(self, epoch: int, index: int, batch_size: int, seed: int) -> torch.Tensor:
        return torch.arange(batch_size)

    def fetch(self, indices: torch.Tensor) -> Batch:
        try:
            views = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            views = next(self.batches)
        return Batch(views=tuple(views))


class KnnCurve(StepCallback):
    """kNN every ``every`` seconds of training time (the engine's clock stops while callbacks run)."""

    def __init__(self, every: float, data: object, n_train: int) -> None:
        self.every, self.next, self.data, self.n_train = every, every, data, n_train
        self.curve: list[dict] = []

    def on_step_end(self, engine: Engine, outputs: dict[str, torch.Tensor]) -> None:
        s = engine.state
        if s.elapsed < self.next and not engine.finished():
            return
        self.next += self.every
        train, test = self.data.train, self.data.eval  # type: ignore[attr-defined]
        rt = engine.runtime
        acc, _, _ = evaluate_knn(engine.method, train.images, train.labels, test.images, test.labels, rt.device,
                                 rt.precision)  # fmt: skip
        loss = float(outputs["loss"])
        self.curve.append({"train_seconds": round(s.elapsed, 1), "images_seen": s.samples_seen,
                           "epochs": s.samples_seen / self.n_train, "loss": loss, "knn_top1": acc})  # fmt: skip
        print(f"  {s.elapsed:7.1f} s  epoch {s.samples_seen / self.n_train:5.2f}  loss {loss:.3f}  "
              f"kNN {100 * acc:.2f}%  {s.samples_seen / s.elapsed:.0f} img/s", flush=True)  # fmt: skip
        engine.method.train()


def run_config(args: argparse.Namespace) -> object:
    """``configs/simclr_fashion_mnist.yaml`` with the command line's settings."""
    stop = [f"trainer.max_steps={args.max_steps}", "trainer.time_budget_minutes=null"] if args.max_steps else [
        f"trainer.time_budget_minutes={max(args.budget_minutes, 1e-6)}"
    ]  # fmt: skip
    return load_config(ROOT / "configs" / "simclr_fashion_mnist.yaml", [
        f"data.name={args.dataset}", f"data.batch_size={args.batch_size}", f"model.backbone={args.backbone}",
        f"model.width={args.width}", f"method.temperature={args.temperature}", f"optim.lr={args.lr}",
        f"optim.weight_decay={args.weight_decay}", f"schedule.warmup_fraction={args.warmup_fraction}",
        f"trainer.precision={args.precision}", f"trainer.channels_last={not args.no_channels_last}",
        f"trainer.seed={args.seed}", f"trainer.accelerator={args.device}", "trainer.progress_bar=false",
        "monitor.knn_every_epochs=0", "monitor.online_linear=false", *stop,
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    train, test = load(args.dataset, "train"), load(args.dataset, "test")
    train_x, train_y = train.images, train.labels
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
            protocol = "weighted kNN k=200 T=0.1 cosine on flattened pixels, train split as memory bank, test split"
            args.out.write_text(json.dumps({"protocol": protocol, "knn_top1": result}, indent=2))
        return result
    cfg = run_config(args)
    runtime = LocalRuntime(device, args.precision)
    engine, module, data = build_engine(cfg, runtime=runtime)
    if args.pil_views:
        from pil_views import pil_loader

        engine.source = LoaderSource(pil_loader(train_x, args.batch_size, args.workers, args.seed), len(train))
    curve = KnnCurve(args.eval_every, data, len(train))
    engine.callbacks.append(curve)
    print(
        f"SimCLR {args.backbone} width {args.width} on {args.dataset} ({len(train)} images), batch "
        f"{args.batch_size}, precision {runtime.precision}, channels_last {engine.channels_last}, "
        f"budget {args.budget_minutes} min, {torch.get_num_threads()} threads",
        flush=True,
    )
    if args.max_steps or args.budget_minutes > 0:
        engine.run()
    state, method = engine.state, module.method
    knn, f_train, f_test = evaluate_knn(method, train_x, train_y, test.images, test.labels, device, runtime.precision)
    probe = linear_probe(f_train, train_y, f_test, test.labels, epochs=args.linear_epochs, seed=args.seed)
    trained, seen = state.elapsed, state.samples_seen
    result = {
        "protocol": "SimCLR pre-training (configs/simclr_fashion_mnist.yaml through the engine) on the train split "
        "for a wall-clock budget (training time only); weighted kNN k=200 T=0.1 cosine (train split as memory bank) "
        "and a linear probe on frozen features, both on the test split",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": vars(args) | {"out": str(args.out), "precision": runtime.precision},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device),
        },
        "train_seconds": round(trained, 1),
        "steps": state.step,
        "images_seen": seen,
        "images_per_second": seen / trained if trained > 0 else None,
        "knn_top1": knn,
        "linear_top1": probe.test_accuracy,
        "curve": curve.curve,
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
