"""Is GRACE's budget fair on an ``ariel`` graph? Accuracy of GRACE (whole graph) along its training, at one lr.

Trains the ``grace-full-DATASET`` arm of ``contrastkit reproduce ariel`` (its base config plus ``optim.lr`` and
``trainer.max_steps``) through the engine and, at the listed steps, scores the encoder with the experiment's node
classification on 2 splits (the ``--quick`` protocol: a pilot, not a verdict). Compare with the experiment's
``random-init`` arm on the same seed.

    python benchmarks/ariel_grace_pilot.py --dataset fashion --lr 5e-4 --steps 1000
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion", choices=("fashion", "csbm", "polblogs"))
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", type=int, nargs="+", default=[50, 150, 300, 500, 1000])
    args = parser.parse_args()
    from contrastkit.reproduce.arms import arm_config
    from contrastkit.reproduce.experiments._ariel_setup import ARMS, _accuracy
    from contrastkit.train.builders import build_engine

    arm = next(a for a in ARMS[args.dataset] if a.name == f"grace-full-{args.dataset}")
    cfg = arm_config(f"ariel_{args.dataset}", arm, args.seed, False,
                     extra=[f"optim.lr={args.lr}", f"trainer.max_steps={args.steps}"])  # fmt: skip
    engine, module, data = build_engine(cfg)
    method, graph = module.method, data.train.graph
    engine.start()
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        engine.step()
        if step in args.at:
            method.eval()
            with torch.no_grad():
                z = method.embed_graph(graph.x, graph.edge_index)
            method.train()
            accuracy = _accuracy(z, graph.y, args.seed, True).mean
            print(f"lr {args.lr:g} step {step}: accuracy {accuracy:.4f} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
