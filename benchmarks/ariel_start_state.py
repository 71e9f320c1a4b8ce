"""Does an ``ariel`` arm leave its starting state? Projection spread and the two InfoNCE terms along training.

Trains arms of ``contrastkit reproduce ariel`` / ``ariel-csbm`` / ``ariel-polblogs`` (their base config and
overrides, one seed) through the engine and, at the listed steps, measures on one fixed random subgraph of the
arm's ``data.batch_size`` nodes, with the model in eval mode:

* ``mean_cos``: the mean pairwise cosine of the projections ``u = g(f(x, A))``, i.e. ``|mean_i u_i / |u_i||^2``
  (1 = every node projects to the same direction);
* ``nce``: GRACE's InfoNCE between two of the arm's seeded views (``log(2n - 1)`` is its value when every
  projection is the same);
* ``adv_nce``: the InfoNCE between view 1 and ARIEL's adversarial view (the current code's attack, the arm's
  feature box), i.e. the term ARIEL adds with weight ``eps``.

A diagnostic, not a verdict: it shows whether training moves the encoder away from its (near-constant) start.

    python benchmarks/ariel_start_state.py --dataset csbm --arms grace-sub ariel ariel-edges --at 0 10 50 200 500
    python benchmarks/ariel_start_state.py --dataset csbm --arms ariel --set method.attack_variant=www2022
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="csbm", choices=("fashion", "csbm", "polblogs"))
    parser.add_argument("--arms", nargs="+", default=["grace-sub", "ariel", "ariel-edges"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", type=int, nargs="+", default=[0, 10, 50, 200, 500])
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides added to every arm, e.g. method.attack_variant=www2022")  # fmt: skip
    args = parser.parse_args()
    from torch_geometric.utils import subgraph

    from contrastkit.augment import graph_views
    from contrastkit.losses import grace_loss
    from contrastkit.methods.ariel import ARIEL
    from contrastkit.reproduce.arms import arm_config
    from contrastkit.reproduce.experiments._ariel_setup import ARMS
    from contrastkit.train.builders import build_engine

    print(f"dataset {args.dataset}, seed {args.seed}, overrides {args.set}")
    for name in args.arms:
        arm = next(a for a in ARMS[args.dataset] if a.name == f"{name}-{args.dataset}")
        cfg = arm_config(f"ariel_{args.dataset}", arm, args.seed, False,
                         extra=[*args.set, f"trainer.max_steps={max(max(args.at), 1)}"])  # fmt: skip
        engine, module, data = build_engine(cfg)
        method, graph = module.method, data.train.graph
        if not isinstance(method, ARIEL):
            raise SystemExit(f"arm {arm.name} is not trained by ARIEL's code path; pick grace-sub or an ariel* arm")
        n_total = int(graph.x.shape[0])
        nodes = torch.randperm(n_total, generator=torch.Generator().manual_seed(args.seed))[: int(cfg.data.batch_size)]
        edges, _ = subgraph(nodes, graph.edge_index, relabel_nodes=True, num_nodes=n_total)
        x, n = graph.x[nodes], int(nodes.numel())
        engine.start()
        start = time.perf_counter()
        for step in range(max(args.at) + 1):
            if step in args.at:
                method.eval()
                generator = torch.Generator().manual_seed(args.seed)
                with torch.no_grad():
                    u = method.project(x, edges)
                    (x1, e1), (x2, e2) = graph_views(x, edges, edge_drop=method.edge_drop,
                                                     feature_mask=method.feature_mask, generator=generator,
                                                     force_undirected=method.undirected_edge_drop)  # fmt: skip
                    u1, u2 = method.project(x1, e1), method.project(x2, e2)
                adversarial = method.adversarial_view(x, edges, (x1, e1), generator)  # the arm's attack settings
                with torch.no_grad():
                    u_adv = method.projection_head(method.backbone.forward_dense(adversarial.x, adversarial.adj))
                    mean_cos = float(torch.nn.functional.normalize(u, dim=1).mean(0).square().sum())
                    nce = float(grace_loss(u1, u2, method.temperature))
                    adv_nce = float(grace_loss(u1, u_adv, method.temperature))
                method.train()
                print(
                    f"{arm.name} step {step}: mean_cos {mean_cos:.4f} nce {nce:.4f} adv_nce {adv_nce:.4f} "
                    f"(log(2n-1) = {math.log(2 * n - 1):.4f}; {time.perf_counter() - start:.0f} s)"
                )
            if step < max(args.at):
                engine.step()


if __name__ == "__main__":
    main()
