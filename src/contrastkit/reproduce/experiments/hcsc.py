r"""``contrastkit reproduce hcsc`` and ``hcsc-digits``: HCSC against MoCo v2 and PCL, its selection mechanism and
its hierarchy (Guo et al., CVPR 2022, "HCSC: Hierarchical Contrastive Selective Coding").

**Budget.** Two datasets, one experiment each, every arm the base config of its dataset plus overrides (the report
prints each arm's ``contrastkit train`` command), trained through the engine:

* ``hcsc``, Fashion-MNIST: a stratified 10,000-image Fashion-MNIST training subset drawn with the seed, the official
  10,000 test images; small-stem ResNet-18 at width 0.25 (128-d), MoCo v2 (queue 4096, T 0.2, m 0.99, shuffle-BN
  in 8 groups), MoCo v2 views, SGD lr 0.03, 30 epochs (1,170 steps), 5 warm-up epochs of MoCo v2, hierarchy
  [100, 50, 20] (``reproduce/configs/hcsc_fashion.yaml``);
* ``hcsc-digits``, the fast variant: 1,347 training / 450 test digits; residual MLP (128-d), head -> 32, queue
  1024, small crops + pixel noise, SGD lr 0.06, 100 epochs (500 steps), 10 warm-up epochs, hierarchy [60, 30, 15]
  (``reproduce/configs/hcsc_digits.yaml``).

Arms and evaluation: :mod:`._hcsc_setup`; hypotheses, margins and gates: :mod:`._hcsc_claims`. The spec's scale is
30-50 epochs on 10-20k images where the paper trains 200 ImageNet epochs, so accuracy verdicts speak for this scale
only. ``--quick`` trains 6 steps on a 600-image subset with prototypes from the first step: a smoke test, not
evidence.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from contrastkit.reproduce.arms import arm_command, arm_config, train_arm
from contrastkit.reproduce.artifacts import load_artifact_json
from contrastkit.reproduce.experiment import Arm, Experiment, register_experiment
from contrastkit.reproduce.experiments._hcsc_claims import GATES, HYPOTHESES
from contrastkit.reproduce.experiments._hcsc_setup import ARMS, LEVELS, METRICS, QUICK, evaluate_arm


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train one arm (digits on one intra-op thread: 256 x 128 batches gain nothing from a second one) and evaluate
    it; ``seconds`` is training + evaluation."""
    import torch

    start = time.perf_counter()
    threads = torch.get_num_threads()
    if arm.name.endswith("-digits"):
        torch.set_num_threads(1)
    try:
        cfg = arm_config(arm.setting["base"], arm, seed, quick, QUICK)
        train = bool(arm.setting.get("train", True))
        method, data = train_arm(cfg, train=train)
        metrics = evaluate_arm(method, data, arm, seed, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def _mean_history(rows: list[dict[str, Any]], arm: str) -> dict[str, list[float]]:
    """Per-epoch means over seeds of the mechanism records of ``arm`` (epochs every seed reached)."""
    import numpy as np

    runs = [load_artifact_json(f"history-{arm}-seed{r['seed']}")["epochs"] for r in rows if r["arm"] == arm]
    runs = [r for r in runs if r]
    if not runs:
        return {}
    length = min(len(r) for r in runs)
    keys = [k for k in runs[0][0] if k.startswith("keep_")]
    out = {k: np.mean([[e[k] for e in r[:length]] for r in runs], axis=0).tolist() for k in keys}
    out["epoch"] = [e["epoch"] for e in runs[0][:length]]
    return out


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """The mechanism per level over training (HCSC arms) and the fine / coarse k-means NMI of every arm."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    dataset = rows[0]["arm"].rsplit("-", 1)[1] if rows else "fashion"
    fig, axes = plt.subplots(1, LEVELS, figsize=(14, 4), sharey=True, squeeze=False)
    for arm, style in ((f"hcsc-zero-{dataset}", "-"), (f"hcsc-neginf-{dataset}", "--")):
        history = _mean_history(rows, arm)
        for level in range(1, LEVELS + 1):
            ax = axes[0][level - 1]
            for kind, colour in (("same", "tab:red"), ("other", "tab:blue")):
                if f"keep_{kind}_level{level}" in history:
                    ax.plot(history["epoch"], history[f"keep_{kind}_level{level}"], style, color=colour,
                            label=f"{arm.rsplit('-', 1)[0]}: {kind} class")  # fmt: skip
            ax.set(title=f"level {level}", xlabel="epoch", ylabel="mean keep probability")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: ICSC keep probability of same-class vs other-class negatives (mean over seeds)")
    paths = [save_figure(fig, directory / "plots" / "mechanism.png")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    arms = [a.name for a in ARMS[dataset]]
    for i, (metric, label) in enumerate((("nmi_fine", "fine (10 classes)"), ("nmi_coarse", "coarse (5 groups)"))):
        means = [np.mean([r["metrics"][metric] for r in rows if r["arm"] == a and metric in r["metrics"]] or
                         [np.nan]) for a in arms]  # fmt: skip
        ax.bar(np.arange(len(arms)) + 0.4 * i, means, width=0.4, label=label)
    ax.set_xticks(np.arange(len(arms)) + 0.2, [a.rsplit("-", 1)[0] for a in arms], rotation=45, fontsize=8)
    ax.set(title=f"{dataset}: k-means NMI of the test features (mean over seeds)", ylabel="NMI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, directory / "plots" / "nmi.png"))
    return paths


_SETTINGS = {
    "fashion": ("hcsc", "Fashion-MNIST (10k stratified train, ResNet-18 w0.25, 30 epochs, hierarchy [100, 50, 20])",
                "about 5 hours on 2 idle cores (40 trained arm-seeds, ~7.5 min each)"),
    "digits": ("hcsc-digits", "digits (residual MLP, 100 epochs, hierarchy [60, 30, 15]), the fast variant",
               "about 11 minutes (9 arms x 5 seeds)"),
}  # fmt: skip
for _dataset, (_name, _where, _duration) in _SETTINGS.items():
    register_experiment(
        Experiment(
            name=_name,
            description=(
                f"HCSC vs MoCo v2 and PCL (Guo et al., CVPR 2022) on {_where}: MoCo v2, PCL, ICSC only, PCSC only, "
                "HCSC (selective arms with mask_fill zero and neg_inf) and the untrained network; kNN, linear "
                "probe, k-means NMI, prototype purity and the selection mechanism per level, every arm alike."
            ),
            arms=ARMS[_dataset],
            metrics=METRICS[_dataset],
            run=run,
            hypotheses=HYPOTHESES[_dataset],
            gates=GATES[_dataset],
            duration=_duration,
            primary_metric="knn_top1",
            figures=figures,
            arm_command=lambda arm, seed, quick: arm_command(arm.setting["base"], arm, seed, quick, QUICK),
        )
    )
