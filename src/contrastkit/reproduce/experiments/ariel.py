r"""``contrastkit reproduce ariel`` and ``ariel-csbm``: ARIEL against GRACE on node classification and under
attack (Feng et al., WWW 2022, "Adversarial Graph Contrastive Learning with Information Regularization").

**Budget.** Two graphs, one experiment each, every arm the graph's base config plus overrides (the report prints
each arm's ``contrastkit train`` command), trained through the engine for 500 steps (ARIEL's code: one optimiser
step per epoch, 300-2,000 epochs by dataset):

* ``ariel``, the kNN graph of 3,000 Fashion-MNIST training images drawn with the seed (datasets.md's recipe:
  10 neighbours by cosine on PCA-50, binarised row-normalised pixels; edge homophily ~0.73, average degree ~14.6),
  subgraphs of 1,000 nodes (``reproduce/configs/ariel_fashion.yaml``);
* ``ariel-csbm``, a contextual stochastic block model drawn with the seed (1,000 nodes, 4 classes, homophily
  ~0.8, degree ~7.8), subgraphs of 500 nodes (``reproduce/configs/ariel_csbm.yaml``);
* ``ariel-polblogs``, a real graph: the political blogs of Adamic and Glance (2005) from graph-tool's collection
  (1,490 nodes of which 266 isolated, 2 classes, homophily 0.91, no node features: one-hot degree), subgraphs of
  500 nodes (``reproduce/configs/ariel_polblogs.yaml``).

Both use the Cora settings of ARIEL's current code (``attack_variant: current``). Arms and evaluation:
:mod:`._ariel_setup`; hypotheses, margins and gates: :mod:`._ariel_claims`. The paper's graphs (Cora, CiteSeer,
Amazon, Coauthor) cannot be installed offline, so the verdicts speak for these graphs. ``--quick`` trains 3 steps on
a 300-400-node graph with 2 splits: a smoke test, not evidence.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from contrastkit.reproduce.arms import arm_command, arm_config, train_arm
from contrastkit.reproduce.experiment import Arm, Experiment, register_experiment
from contrastkit.reproduce.experiments._ariel_claims import GATES, HYPOTHESES
from contrastkit.reproduce.experiments._ariel_setup import (
    ARMS,
    METRICS,
    QUICK,
    evaluate_arm,
    evaluate_raw_features,
)


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train one arm (or not, for the references) and evaluate it; ``seconds`` is training + evaluation."""
    start = time.perf_counter()
    cfg = arm_config(arm.setting["base"], arm, seed, quick, QUICK)
    method, data = train_arm(cfg, train=bool(arm.setting.get("train", True)))
    if arm.name.startswith("raw-features-"):
        metrics = evaluate_raw_features(data, seed, quick)
    else:
        metrics = evaluate_arm(method, data, seed, quick)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


_PANELS = (("accuracy", "clean graph"), ("accuracy_random20", "20 % random flips"), ("accuracy_pgd20", "PGD, 20 %"))


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """Accuracy per arm on the clean graph and under the two attacks (mean and standard deviation over seeds)."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(_PANELS)
    for i, (metric, label) in enumerate(_PANELS):
        values = [[r["metrics"][metric] for r in rows if r["arm"] == a and metric in r["metrics"]] for a in arms]
        means = [np.mean(v) if v else np.nan for v in values]
        stds = [np.std(v) if v else 0.0 for v in values]
        ax.bar(np.arange(len(arms)) + i * width, means, width=width, yerr=stds, capsize=2, label=label)
    ax.set_xticks(np.arange(len(arms)) + width, [a.rsplit("-", 1)[0] for a in arms], rotation=30, fontsize=8)
    finite = [r["metrics"][m] for r in rows for m, _ in _PANELS if m in r["metrics"]]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.03))
    dataset = arms[0].rsplit("-", 1)[1] if arms else ""
    ax.set(title=f"{dataset}: node classification (10 % train, 20 splits; mean over seeds)", ylabel="accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [save_figure(fig, directory / "plots" / "accuracy.png")]


_SETTINGS = {
    "fashion": ("ariel", "the kNN graph of 3,000 Fashion-MNIST images (subgraphs of 1,000 nodes)",
                "5.4 hours of one-thread arm time on shared cores (30 trained arm-seeds, 3-18 min each; measured)"),
    "csbm": ("ariel-csbm", "a contextual stochastic block model of 1,000 nodes (subgraphs of 500 nodes)",
             "73 minutes of one-thread arm time (25 trained arm-seeds; measured)"),
    "polblogs": ("ariel-polblogs", "polblogs (1,490 political blogs, 2 classes, one-hot degree features; subgraphs "
                 "of 500 nodes)", "78 minutes of one-thread arm time on shared cores (25 trained arm-seeds; measured)"),
}  # fmt: skip
for _dataset, (_name, _where, _duration) in _SETTINGS.items():
    register_experiment(
        Experiment(
            name=_name,
            description=(
                f"ARIEL vs GRACE (Feng et al., WWW 2022) on {_where}: GRACE on the whole graph, GRACE on ARIEL's "
                "subgraphs, ARIEL, ARIEL with the information regulariser, the untrained encoder and the raw "
                "features; node classification (10 % train, 20 splits) on the clean graph, under random edge flips "
                "and under a PGD edge attack, every arm alike."
            ),
            arms=ARMS[_dataset],
            metrics=METRICS,
            run=run,
            hypotheses=HYPOTHESES[_dataset],
            gates=GATES[_dataset],
            duration=_duration,
            primary_metric="accuracy",
            figures=figures,
            arm_command=lambda arm, seed, quick: arm_command(arm.setting["base"], arm, seed, quick, QUICK),
        )
    )
