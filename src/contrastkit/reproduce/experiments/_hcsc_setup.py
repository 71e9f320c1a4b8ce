"""The arms, metrics and evaluation of ``contrastkit reproduce hcsc`` (Guo et al., CVPR 2022), shared by the
experiment (:mod:`.hcsc`) and its claims (:mod:`._hcsc_claims`).

Arms are ``METHOD-DATASET``: the MoCo v2 baseline, PCL on the hierarchy (prototypes, no selection), ICSC only,
PCSC only and full HCSC, each selective arm with both ``mask_fill`` values (``zero``: the official code;
``neginf``: the paper's reading), and ``random-init`` (the untrained network, a reference for the premise gates).
Every arm is a base YAML (``reproduce/configs/hcsc_DATASET.yaml``) plus overrides.

Evaluation, the same for every arm: kNN and linear probe on the query backbone's representation; k-means NMI/ARI of
the test features against the fine labels (k = 10) and, on Fashion-MNIST, the coarse groups
(:data:`contrastkit.data.hierarchy.COARSE_GROUPS`, k = 5); then the key encoder embeds the training images and
:func:`contrastkit.cluster.hierarchical_kmeans` clusters them with the dataset's hierarchy, *for every arm* (MoCo and
the untrained network too), giving the purity of each prototype level and the selection mechanism
(:func:`contrastkit.methods.hcsc.keep_rates_by_class`: mean ICSC keep probability of same-class vs other-class
negatives per level; ``selection_gap_level{l}`` = other - same).
"""

from __future__ import annotations

from typing import Any

from contrastkit.reproduce.artifacts import save_artifact_json
from contrastkit.reproduce.experiment import Arm, Metric

DATASETS = ("fashion", "digits")
HIERARCHY = {"fashion": [100, 50, 20], "digits": [60, 30, 15]}
WARMUP_EPOCHS = {"fashion": 5, "digits": 10}
LEVELS = 3
KNN_K = 20
KNN_TEMPERATURE = 0.07
QUICK = ["trainer.max_steps=6"]
QUICK_DATA = {"fashion": ["data.class_counts=[60,60,60,60,60,60,60,60,60,60]"], "digits": []}
FILLS = {"zero": "zero", "neginf": "neg_inf"}


def _prototypes(dataset: str) -> list[str]:
    levels = ",".join(str(k) for k in HIERARCHY[dataset])
    return [f"method.num_clusters=[{levels}]", f"method.warmup_epochs={WARMUP_EPOCHS[dataset]}"]


def method_overrides(method: str, dataset: str) -> list[str]:
    """The ``--set`` overrides of ``method`` (an arm name's first part) on ``dataset``."""
    if method in ("moco", "random-init"):
        return ["method.name=moco"]
    if method == "pcl":
        return ["method.name=pcl", *_prototypes(dataset)]
    kind, fill = method.split("-")
    switches = {"icsc": ["method.prototype_selection=false"], "pcsc": ["method.instance_selection=false"],
                "hcsc": []}[kind]  # fmt: skip
    return ["method.name=hcsc", *_prototypes(dataset), *switches, f"method.mask_fill={FILLS[fill]}"]


def _quick_prototypes(method: str) -> list[str]:
    return [] if method in ("moco", "random-init") else ["method.warmup_epochs=0"]


METHODS = ("moco", "pcl", *(f"{kind}-{fill}" for kind in ("icsc", "pcsc", "hcsc") for fill in FILLS), "random-init")
ARMS = {
    dataset: [
        Arm(f"{method}-{dataset}", {"base": f"hcsc_{dataset}", "overrides": method_overrides(method, dataset),
                                    "overrides_quick": QUICK_DATA[dataset] + _quick_prototypes(method),
                                    "train": method != "random-init"})
        for method in METHODS
    ]
    for dataset in DATASETS
}  # fmt: skip

_REP = "the query backbone's representation (method.embed)"
_HIER = "key-encoder embeddings of the training images, hierarchical k-means with the dataset's hierarchy"
_METRICS = [
    Metric("knn_top1", f"weighted kNN top-1 (k={KNN_K}, T={KNN_TEMPERATURE}, cosine) on {_REP}; bank: the training "
           "images; queries: the test images"),
    Metric("linear_top1", f"linear probe top-1 on {_REP}: L-BFGS (standardised features) fitted on the training "
           "images, scored on the test images"),
    Metric("nmi_fine", "NMI of k-means (k = 10, scikit-learn, 10 inits) of the L2-normalised test features vs the "
           "10 classes"),
    Metric("ari_fine", "ARI of the same k-means vs the 10 classes"),
    Metric("nmi_coarse", "NMI of k-means (k = 5) of the L2-normalised test features vs the 5 coarse groups "
           "(Fashion-MNIST: tops, bottoms, dresses, footwear, bags)"),
    Metric("ari_coarse", "ARI of the same k-means vs the 5 coarse groups"),
    *[Metric(f"purity_level{i}", f"purity of level {i} of the {_HIER} (share of training images whose prototype's "
             "majority class is their own)") for i in range(1, LEVELS + 1)],
    *[Metric(f"keep_same_level{i}", f"mean ICSC keep probability of same-class negatives at level {i}: 256 query "
             f"and 1,024 negative training images, {_HIER}", higher_is_better=False) for i in range(1, LEVELS + 1)],
    *[Metric(f"keep_other_level{i}", f"mean ICSC keep probability of other-class negatives at level {i} (same "
             "protocol)") for i in range(1, LEVELS + 1)],
    *[Metric(f"selection_gap_level{i}", f"keep_other_level{i} - keep_same_level{i}: how much more often selection "
             "keeps a negative of another class than one of the query's") for i in range(1, LEVELS + 1)],
    Metric("kmeans_share", "seconds of the per-epoch hierarchical k-means / seconds of the training steps (training "
           "time minus the k-means and the memory's embedding; 0 without prototypes)", higher_is_better=False),
    Metric("seconds", "wall-clock seconds of training + evaluation", higher_is_better=False),
]  # fmt: skip
COARSE_METRICS = ("nmi_coarse", "ari_coarse")  # datasets with coarse groups only
METRICS = {"fashion": _METRICS, "digits": [m for m in _METRICS if m.name not in COARSE_METRICS]}


def evaluate_arm(method: Any, data: Any, arm: Arm, seed: int, train_seconds: float) -> dict[str, float]:
    """Every metric of :data:`METRICS` but ``seconds`` for a trained (or untrained) method; saves the per-epoch
    mechanism history as the artifact ``history-ARM-seedS``."""
    import torch.nn.functional as F

    from contrastkit.cluster import hierarchical_kmeans
    from contrastkit.data.hierarchy import COARSE_GROUPS, coarse_labels
    from contrastkit.evaluate import Embedding, cluster_purity, cluster_scores, extract_features
    from contrastkit.evaluate.protocols import evaluate_features, values
    from contrastkit.methods.hcsc import keep_rates_by_class

    dataset = arm.name.rsplit("-", 1)[1]
    train, test = data.train, data.eval
    bank = extract_features(Embedding(method), train.images, batch_size=1024)
    queries = extract_features(Embedding(method), test.images, batch_size=1024)
    out = values(evaluate_features(bank, train.labels, queries, test.labels, ["knn", "linear"], k=KNN_K,
                                   temperature=KNN_TEMPERATURE, num_classes=10))  # fmt: skip
    fine = cluster_scores(queries, test.labels, n_clusters=10, seed=seed)
    out.update({"nmi_fine": fine["nmi"], "ari_fine": fine["ari"]})
    if dataset == "fashion":
        coarse = cluster_scores(queries, coarse_labels(test.labels, COARSE_GROUPS["fashion-mnist"]), 5, seed=seed)
        out.update({"nmi_coarse": coarse["nmi"], "ari_coarse": coarse["ari"]})
    memory = F.normalize(extract_features(method.key_encoder, train.images, batch_size=1024), dim=1)
    levels = hierarchical_kmeans(memory, HIERARCHY[dataset], seed=seed, temperature=method.temperature, nredo=5)
    for i, level in enumerate(levels, start=1):
        out[f"purity_level{i}"] = cluster_purity(level.assignments, train.labels)
    rates = keep_rates_by_class(memory, train.labels, levels, seed=seed)
    out.update(rates)
    for i in range(1, LEVELS + 1):
        out[f"selection_gap_level{i}"] = rates[f"keep_other_level{i}"] - rates[f"keep_same_level{i}"]
    history = list(getattr(method, "history", []))
    kmeans_seconds = sum(record["kmeans_seconds"] for record in history)
    steps_seconds = train_seconds - kmeans_seconds - sum(record["embed_seconds"] for record in history)
    out["kmeans_share"] = kmeans_seconds / max(steps_seconds, 1e-9) if history else 0.0
    save_artifact_json(f"history-{arm.name}-seed{seed}", {"epochs": history})
    return out
