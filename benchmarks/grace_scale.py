"""GRACE and ARIEL at scale: seconds per epoch and peak memory on the kNN graph of Fashion-MNIST + MNIST (140k nodes).

Builds the graph with :func:`contrastkit.data.image_knn_graph` (train + val + test images of each dataset, PCA-50,
k = 10, faiss when installed), then trains :class:`contrastkit.methods.GRACE` (2-layer GCN, ``--hidden`` wide,
projection ``--hidden``, tau 0.5, GRACE's view probabilities) through the engine with the whole graph as every
step's batch (:class:`contrastkit.data.GraphSource`) for ``--epochs`` steps, and prints the seconds of the graph
build and of each epoch (forward + backward + Adam step) and the process's peak resident memory (``ru_maxrss``,
which includes the dataset and the graph). Writes JSON to ``--out``.

``--method ariel`` trains :class:`contrastkit.methods.ARIEL` instead (the current code's attack: eps 0.5, 5 PGD
steps on 20 % of the subgraph's edges, feature box 0.04) on random node-induced subgraphs of ``--sample-size``
nodes, one optimiser step each; an epoch is then ``N // sample_size`` steps (every node once).

    python benchmarks/grace_scale.py --datasets fashion-mnist mnist --epochs 2 --out docs/results/grace_scale.json
    python benchmarks/grace_scale.py --method ariel --sample-size 1000 --epochs 1 --out docs/results/ariel_scale.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["fashion-mnist", "mnist"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--block", type=int, default=1024, help="block of the fused loss")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", choices=("grace", "ariel"), default="grace")
    parser.add_argument("--sample-size", type=int, default=None, help="ARIEL's subgraph (default: the whole graph)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from contrastkit.data import GraphSource, image_knn_graph
    from contrastkit.methods import ARIEL, GRACE
    from contrastkit.models import GCNEncoder
    from contrastkit.train.engine import Engine

    start = time.perf_counter()
    graph = image_knn_graph(tuple(args.datasets), k=10, pca_dim=50, seed=0)
    build_seconds = time.perf_counter() - start
    n, e = graph.num_nodes, graph.edge_index.shape[1]
    print(f"graph: {n} nodes, {e} directed edges, built in {build_seconds:.1f} s")
    torch.manual_seed(0)
    method = GRACE if args.method == "grace" else ARIEL
    model = method(GCNEncoder(graph.x.shape[1], args.hidden), args.hidden, chunk_size=args.block)
    batch = args.sample_size or n
    steps_per_epoch = n // batch
    engine = Engine(model, GraphSource(graph), [torch.optim.Adam(model.parameters(), lr=1e-3)], batch_size=batch,
                    seed=0, max_steps=args.epochs * steps_per_epoch)  # fmt: skip
    engine.start()
    epochs = []
    for epoch in range(args.epochs):
        t = time.perf_counter()
        losses = [float(engine.step()["loss"]) for _ in range(steps_per_epoch)]
        seconds = time.perf_counter() - t
        epochs.append({"epoch": epoch, "seconds": seconds, "steps": steps_per_epoch, "loss": losses[-1]})
        print(f"epoch {epoch}: {seconds:.1f} s ({steps_per_epoch} steps of {batch} nodes), loss {losses[-1]:.4f}")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    print(f"peak resident memory: {peak_gib:.2f} GiB")
    result = {
        "command": "python benchmarks/grace_scale.py --datasets " + " ".join(args.datasets)
        + f" --epochs {args.epochs} --hidden {args.hidden} --block {args.block} --threads {args.threads}"
        + f" --method {args.method}" + (f" --sample-size {args.sample_size}" if args.sample_size else ""),
        "method": args.method, "sample_size": batch,
        "nodes": n, "directed_edges": e, "features": int(graph.x.shape[1]), "graph_build_seconds": build_seconds,
        "epochs": epochs, "peak_rss_gib": peak_gib, "torch": torch.__version__, "threads": args.threads,
        "machine": platform.machine(),
    }  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
