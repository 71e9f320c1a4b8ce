"""Seconds per k-means (``contrastkit.cluster.kmeans``, niter 20, nredo 1) for each back end, faiss and torch.

Data: ``--n`` random rows of dimension ``--dim``, L2-normalised, float32 (seed 0), as HCSC clusters its embeddings.
For each ``k`` in ``--ks`` and each back end: the median of ``--repeats`` timed runs after one untimed warm-up run
(which also absorbs the start-up of the back end's thread pool), the total squared error, and the share of rows both
back ends assign alike (they start from the same rows for a given seed, see :mod:`contrastkit.cluster._lloyd`). faiss
always runs on the CPU; the torch back end runs on ``--device``.

    python benchmarks/kmeans_backends.py --n 60000 --dim 128 --ks 100 1000 --repeats 3 \
        --out docs/results/kmeans_backends.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from contrastkit.cluster import KMeansResult, faiss_available, kmeans

ROOT = Path(__file__).resolve().parents[1]


def timed_kmeans(x: torch.Tensor, k: int, backend: str, repeats: int) -> tuple[list[float], KMeansResult]:
    """Seconds of ``repeats`` runs of ``kmeans(x, k, niter=20, nredo=1, backend=backend)`` after one warm-up run,
    and the last result."""
    result = kmeans(x, k, seed=0, niter=20, nredo=1, backend=backend)
    seconds = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = kmeans(x, k, seed=0, niter=20, nredo=1, backend=backend)
        if x.is_cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000, help="rows to cluster")
    p.add_argument("--dim", type=int, default=128, help="features per row")
    p.add_argument("--ks", type=int, nargs="+", default=[100, 1000], help="numbers of clusters")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per back end and k (median reported)")
    p.add_argument("--device", default="cpu", help="device of the torch back end (faiss runs on the CPU)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "kmeans_backends.json")
    args = p.parse_args(argv)
    backends = ["faiss", "torch"] if faiss_available() else ["torch"]
    x = F.normalize(torch.randn(args.n, args.dim, generator=torch.Generator().manual_seed(0)), dim=1)
    result: dict = {
        "settings": vars(args) | {"out": str(args.out)},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "faiss": __import__("faiss").__version__ if "faiss" in backends else None,
        "rows": [],
    }
    print(f"k-means of {args.n} x {args.dim} L2-normalised float32 rows, niter 20, nredo 1, "
          f"{result['threads']} threads; median of {args.repeats} runs")  # fmt: skip
    print(f"{'k':>6s} {'backend':8s} {'device':6s} {'median s':>9s} {'ms/iter':>8s} {'sq. error':>11s} {'same':>6s}")
    for k in args.ks:
        outputs = {}
        for backend in backends:
            device = "cpu" if backend == "faiss" else args.device
            seconds, out = timed_kmeans(x.to(device), k, backend, args.repeats)
            outputs[backend] = out
            median = statistics.median(seconds)
            error = float(out.distances.double().pow(2).sum())
            row = {"k": k, "backend": backend, "device": device, "median_s": median, "seconds": seconds,
                   "ms_per_iteration": 1e3 * median / 20, "squared_error": error}  # fmt: skip
            result["rows"].append(row)
        same = None
        if len(outputs) == 2:
            same = float((outputs["faiss"].assignments == outputs["torch"].assignments.cpu()).float().mean())
        for row in result["rows"][-len(backends) :]:
            row["same_assignments"] = same
            shown = "-" if same is None else f"{same:.3f}"
            print(f"{k:6d} {row['backend']:8s} {row['device']:6s} {row['median_s']:9.3f} "
                  f"{row['ms_per_iteration']:8.1f} {row['squared_error']:11.2f} {shown:>6s}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
