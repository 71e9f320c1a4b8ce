"""What the per-epoch hierarchical k-means of HCSC costs next to the epoch's training, on the reproduction's setting.

Trains the ``hcsc-zero`` arm of ``contrastkit reproduce hcsc`` (``--dataset fashion``: 10,000 Fashion-MNIST images,
ResNet-18 w0.25, hierarchy [100, 50, 20], k-means niter 20, nredo 5) or of ``hcsc-digits`` through the engine for
``--epochs`` epochs with prototypes from the first epoch (``method.warmup_epochs=0``), and prints per epoch:
the seconds of the epoch's training steps, of embedding the memory with the key encoder, and of the k-means, with
the k-means share (k-means / training steps; the issue's target is <= 15 %). Writes JSON to ``--out``.

    python benchmarks/hcsc_kmeans_share.py --dataset fashion --epochs 3 --out docs/results/hcsc_kmeans_share.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from contrastkit.cluster import faiss_available
from contrastkit.reproduce.arms import arm_config
from contrastkit.reproduce.experiments._hcsc_setup import ARMS
from contrastkit.train.builders import build_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(ARMS), default="fashion")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    arm = next(a for a in ARMS[args.dataset] if a.name.startswith("hcsc-zero"))
    cfg = arm_config(arm.setting["base"], arm, seed=0, quick=False,
                     extra=["method.warmup_epochs=0", f"method.kmeans_backend={args.backend}"])  # fmt: skip
    engine, module, _ = build_engine(cfg)
    method = module.method
    engine.start()
    epochs = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for _ in range(engine.steps_per_epoch):
            engine.step()
        total = time.perf_counter() - start
        record = method.history[-1]
        steps = total - record["kmeans_seconds"] - record["embed_seconds"]
        epochs.append({"epoch": epoch, "steps_seconds": steps, "embed_seconds": record["embed_seconds"],
                       "kmeans_seconds": record["kmeans_seconds"], "kmeans_share": record["kmeans_seconds"] / steps})
        print(f"epoch {epoch}: training steps {steps:.1f} s, embedding the memory {record['embed_seconds']:.2f} s, "
              f"k-means {record['kmeans_seconds']:.2f} s ({100 * record['kmeans_seconds'] / steps:.1f} % of the "
              "steps)")  # fmt: skip
    result = {
        "command": f"python benchmarks/hcsc_kmeans_share.py --dataset {args.dataset} --epochs {args.epochs} "
                   f"--backend {args.backend}",
        "arm": arm.name, "steps_per_epoch": engine.steps_per_epoch, "memory": len(engine.source),
        "num_clusters": cfg.method.num_clusters, "kmeans": {"niter": cfg.method.kmeans_niter,
                                                             "nredo": cfg.method.kmeans_nredo},
        "backend": args.backend if args.backend != "auto" else ("faiss" if faiss_available() else "torch"),
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "epochs": epochs, "max_kmeans_share": max(e["kmeans_share"] for e in epochs),
    }  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
