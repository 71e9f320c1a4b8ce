"""The arms, metrics and evaluation of ``contrastkit reproduce ariel`` and ``ariel-csbm`` (Feng et al., WWW 2022),
shared by the experiment (:mod:`.ariel`) and its claims (:mod:`._ariel_claims`).

Arms are ``METHOD-DATASET``, each the dataset's base YAML (``reproduce/configs/ariel_DATASET.yaml``) plus
overrides, with the same encoder, projection, temperature, views, optimiser and number of steps (500):

* ``grace-full``: GRACE on the whole graph every step (``data.batch_size`` = the node count);
* ``grace-sub``: ARIEL with ``eps = lamb = 0``, i.e. GRACE on ARIEL's sampled subgraphs (ariel.md pitfall 1: the
  arm that separates the adversarial view from the subgraph sampling);
* ``ariel``: eps 0.5, lamb 0 (the Cora settings of the current code); ``ariel-reg``: lamb 1 as well;
* ``ariel-box`` (the Fashion-MNIST graph only): the feature box matched to the features' scale, 0.8 x the mean non-zero
  feature (0.8 x 0.0040 = 0.0032, where the default 0.04 is ~10x that entry; Cora's ratio is ~0.8, pitfall 12);
* ``ariel-edges``: eps 0.5 with the edge attack only (``feature_box: 0``), an exploratory arm added after the
  first CSBM seed showed ARIEL's feature attack stalling training (the encoder stays near its collapsed start);
* ``random-init``: the untrained encoder; ``raw-features``: the node features themselves (no encoder, no graph),
  both references of the premise gates.

Evaluation, the same for every arm (ariel.md sections 2.7 and 7.4): the encoder's output on the whole graph,
L2-normalised, then :func:`contrastkit.evaluate.node_classification` (10 % train / 90 % test, 20 splits seeded
by the seed, so arms of one seed share their splits; one-vs-rest liblinear logistic regression, 5-fold grid search
over ``REDUCED_C_GRID``, where GRACE searches 2^-10..2^9). Robustness: the same protocol on the
embeddings of a perturbed graph: 10 % and 20 % random flips of node pairs (``flip_random_edges``) and a PGD edge
attack (:func:`contrastkit.augment.pgd_graph_attack`, 10 % and 20 % of the edges, 5 steps, alpha 200, no feature noise)
on the frozen encoder that ascends the contrastive loss between the clean and the attacked graph's projections.
"""

from __future__ import annotations

from typing import Any

from contrastkit.reproduce.experiment import Arm, Metric

DATASETS = ("fashion", "csbm", "polblogs")
NODES = {"fashion": 3000, "csbm": 1000, "polblogs": 1490}
MATCHED_FEATURE_BOX = 0.0032  # 0.8 x the mean non-zero feature of the Fashion-MNIST kNN graph (0.0040)
REPEATS = 20
TRAIN_FRACTION = 0.1
RANDOM_FLIPS = (0.1, 0.2)
PGD_BUDGETS = (0.1, 0.2)
QUICK = ["trainer.max_steps=3"]
QUICK_NODES = {"fashion": 400, "csbm": 300, "polblogs": None}  # None: a fixed graph, quick runs use all of it

_OVERRIDES = {
    "grace-full": ["method.name=grace"],
    "grace-sub": ["method.eps=0"],
    "ariel": [],
    "ariel-reg": ["method.lamb=1"],
    "ariel-box": [f"method.feature_box={MATCHED_FEATURE_BOX}"],
    "ariel-edges": ["method.feature_box=0"],
    "random-init": ["method.name=grace"],
    "raw-features": ["method.name=grace"],
}
REFERENCES = ("random-init", "raw-features")  # arms that train nothing
METHODS = {d: tuple(m for m in _OVERRIDES if m != "ariel-box" or d == "fashion") for d in DATASETS}


def _arm(method: str, dataset: str) -> Arm:
    full = method in ("grace-full", "random-init", "raw-features")
    nodes, quick_nodes = NODES[dataset], QUICK_NODES[dataset]
    overrides = [*_OVERRIDES[method], *([f"data.batch_size={nodes}"] if full else [])]
    quick_size = nodes if quick_nodes is None else quick_nodes
    quick = [] if quick_nodes is None else [f"data.num_nodes={quick_nodes}"]
    quick.append(f"data.batch_size={quick_size if full else quick_size // 2}")
    return Arm(f"{method}-{dataset}", {"base": f"ariel_{dataset}", "overrides": overrides,
                                       "overrides_quick": quick, "train": method not in REFERENCES})  # fmt: skip


ARMS = {dataset: [_arm(method, dataset) for method in METHODS[dataset]] for dataset in DATASETS}

_PROTOCOL = (f"node classification of the encoder's L2-normalised output on the whole graph: {TRAIN_FRACTION:.0%} "
             f"train / rest test, mean over {REPEATS} seeded splits, one-vs-rest liblinear logistic regression with "
             "5-fold grid search over C in 2^{-2,0,2,4,6,8}")  # fmt: skip
METRICS = [
    Metric("accuracy", _PROTOCOL),
    Metric("accuracy_split_std", "standard deviation of the accuracy over the splits (one encoder)",
           higher_is_better=False),
    *[Metric(f"accuracy_random{round(100 * f)}", f"the same protocol on the embeddings of the graph with "
             f"{f:.0%} of its edge count flipped at random (distinct node pairs, seeded)") for f in RANDOM_FLIPS],
    *[Metric(f"accuracy_pgd{round(100 * b)}", f"the same protocol on the embeddings of the graph after a PGD edge "
             f"attack on the frozen encoder ({b:.0%} of the edges, 5 steps, alpha 200, one Bernoulli draw)")
      for b in PGD_BUDGETS],
    *[Metric(f"drop_random{round(100 * f)}", f"accuracy - accuracy_random{round(100 * f)}",
             higher_is_better=False) for f in RANDOM_FLIPS],
    *[Metric(f"drop_pgd{round(100 * b)}", f"accuracy - accuracy_pgd{round(100 * b)}", higher_is_better=False)
      for b in PGD_BUDGETS],
    Metric("pgd_flips_share", "flipped pairs of the 20 % PGD attack / the graph's undirected edges"),
    Metric("effective_rank", "effective rank (exp of the entropy of the normalised covariance spectrum) of the "
           "encoder's output on the whole graph: a collapsed encoder scores near 1"),
    Metric("edge_homophily", "share of the graph's edges that join nodes of one class"),
    Metric("average_degree", "2 x undirected edges / nodes"),
    Metric("feature_box_ratio", "the arm's feature box / the mean non-zero node feature (0 without an attack)",
           higher_is_better=False),
    Metric("seconds", "wall-clock seconds of training + evaluation", higher_is_better=False),
]  # fmt: skip


def _accuracy(embeddings: Any, labels: Any, seed: int, quick: bool) -> Any:
    from contrastkit.evaluate.node_classification import REDUCED_C_GRID, node_classification

    return node_classification(embeddings, labels, train_fraction=TRAIN_FRACTION, repeats=2 if quick else REPEATS,
                               seed=seed, c_grid=REDUCED_C_GRID)  # fmt: skip


def evaluate_raw_features(data: Any, seed: int, quick: bool) -> dict[str, float]:
    """The metrics of the node features themselves (the ``raw-features`` arm). They do not use the graph, so edge
    perturbations leave them unchanged: the perturbed accuracies equal the clean one and the drops are 0."""
    from contrastkit.data.graph_datasets import graph_statistics
    from contrastkit.evaluate import effective_rank

    graph = data.train.graph
    result = _accuracy(graph.x, graph.y, seed, quick)
    stats = graph_statistics(graph)
    out = {"accuracy": result.mean, "accuracy_split_std": result.std, "pgd_flips_share": 0.0,
           "effective_rank": effective_rank(graph.x),
           "edge_homophily": float(stats["edge_homophily"]), "average_degree": float(stats["average_degree"]),
           "feature_box_ratio": 0.0}  # fmt: skip
    for name in ("random10", "random20", "pgd10", "pgd20"):
        out[f"accuracy_{name}"], out[f"drop_{name}"] = result.mean, 0.0
    return out


def evaluate_arm(method: Any, data: Any, seed: int, quick: bool) -> dict[str, float]:
    """Every metric of :data:`METRICS` but ``seconds`` for a trained (or untrained) GRACE / ARIEL method."""
    import torch

    from contrastkit.augment.graph import flip_random_edges
    from contrastkit.augment.graph_attack import pgd_graph_attack
    from contrastkit.data.graph_datasets import graph_statistics
    from contrastkit.evaluate import effective_rank
    from contrastkit.losses import grace_loss
    from contrastkit.models.graph import dense_adjacency

    graph = data.train.graph
    x, edges, labels, n = graph.x, graph.edge_index, graph.y, int(graph.x.shape[0])
    method.eval()
    with torch.no_grad():
        embeddings = method.embed_graph(x, edges)
    clean = _accuracy(embeddings, labels, seed, quick)
    out = {"accuracy": clean.mean, "accuracy_split_std": clean.std, "effective_rank": effective_rank(embeddings)}
    for fraction in RANDOM_FLIPS:
        flipped = flip_random_edges(edges, n, fraction, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            result = _accuracy(method.embed_graph(x, flipped), labels, seed, quick)
        key = round(100 * fraction)
        out[f"accuracy_random{key}"], out[f"drop_random{key}"] = result.mean, clean.mean - result.mean
    adj = dense_adjacency(edges, n).clamp(max=1.0)
    with torch.no_grad():
        anchor = method.projection_head(method.embed_graph(x, edges))

    def contrast(x_attacked: torch.Tensor, adj_attacked: torch.Tensor) -> torch.Tensor:
        projected = method.projection_head(method.backbone.forward_dense(x_attacked, adj_attacked))
        return grace_loss(anchor, projected, method.temperature)

    undirected = float(adj.triu(1).sum())
    for budget in PGD_BUDGETS:
        attack = pgd_graph_attack(contrast, x, adj, budget=budget * undirected, steps=5, alpha=200.0,
                                  attack_features=False, generator=torch.Generator().manual_seed(seed))  # fmt: skip
        with torch.no_grad():
            attacked = _accuracy(method.backbone.forward_dense(x, attack.adj), labels, seed, quick)
        key = round(100 * budget)
        out[f"accuracy_pgd{key}"], out[f"drop_pgd{key}"] = attacked.mean, clean.mean - attacked.mean
    out["pgd_flips_share"] = attack.flips / max(undirected, 1.0)
    stats = graph_statistics(graph)
    out.update(edge_homophily=float(stats["edge_homophily"]), average_degree=float(stats["average_degree"]))
    box = float(getattr(method, "feature_box", 0.0)) if float(getattr(method, "eps", 0.0)) > 0 else 0.0
    out["feature_box_ratio"] = box / float(x[x > 0].mean())
    return out
