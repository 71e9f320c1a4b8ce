r"""``contrastkit reproduce dcc``: dataset condensation with contrastive signals (DCC; Lee, Chun, Jung, Yun & Yoon,
ICML 2022) against class-wise gradient matching (DC, Zhao et al. ICLR 2021; DSA, Zhao & Bilen ICML 2021) and random
selection, on MNIST, Fashion-MNIST and cluttered MNIST.

**Arms** ``METHOD-DATASET-ipcK`` for METHOD in ``random``, ``dc``, ``dcc``, ``dsa``, ``dsac``; DATASET in
``mnist``, ``fashion-mnist``, ``clutter`` (MNIST digits on class-independent clutter,
:func:`contrastkit.data.clutter.cluttered_mnist`, clutter seed 0); K in 1, 10. ``random`` is the set that every
condensation of the same seed starts from (``ipc`` random real training images per class), so every comparison
is paired: same seed, same starting images, same evaluation nets.

**Condensation** (:func:`contrastkit.train.condensation.condense`), identical for all four methods except the
switches: ConvNet (depth 3, instancenorm = GroupNorm(C, C), avg-pool, width 32, first conv padded by 3 as in DC's
code for grey images), the same loops for DC and DCC: at ipc 1 DCC's table (10 matching steps per fresh net, 5
epochs of net training between them), at ipc 10 10 steps with **10** epochs between them instead of the table's 50
(a CPU budget); init from real images, SGD on the pixels (lr 0.1, momentum 0.5), distance ``ours``, 32 real images
per class per step, **200** outer iterations at ipc 1 and at ipc 10 (Lee et al.: 1,000), DCC's outer warm-up
a quarter of them (Lee et al.: 250 of 1,000) and ``inner_warmup = 10``. DSA/DSAC: siamese DSA,
``color_crop_cutout_scale_rotate`` on digits (no flip, as Zhao & Bilen advise for digits),
``color_crop_cutout_flip_scale_rotate`` on Fashion-MNIST. Images are standardised with the training split's
mean and std.

**Evaluation** (:func:`contrastkit.train.condensation.evaluate_synset`, DC's protocol): 10 fresh ConvNets (5 at
ipc 10) per set, SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256, lr x 0.1 at half the epochs (DC's code decays
once, after epoch E/2 + 1 of E + 1); augmentation and epochs as DC/DSA's code: DC's ``crop_scale_rotate`` for
random/DC/DCC on the digit datasets and DSA (one family per batch) for DSA/DSAC, each with **1,000 epochs**; no
augmentation and 300 epochs for random/DC/DCC on Fashion-MNIST. Test accuracy on the whole official test split.

**Metrics per row**: ``test_acc`` (mean over the nets; their std and the per-net accuracies are saved too),
``image_change`` (:func:`contrastkit.train.condensation.image_change`: ``||S - S0||_F / ||S0||_F`` between the
learned set and the real images it started from, standardised units; 0 for random), ``contrastive_share``
(fraction of matching steps that used the DCC loss: 0 for DC/DSA, 0.75 for DCC/DSAC), and the times.
The claims and their gates are declared in :mod:`._dcc_claims`; the setup and budgets in :mod:`._dcc_setup`, the
figures and tables in :mod:`._dcc_report`. The full-run cost and its shard commands are in docs/results.md.

Run a subset with ``--arms GLOB`` / ``--only-seed``; ``--set outer=100`` changes a setting of every arm run
(recorded in its rows; allowed keys in ``_dcc_setup.SETTING_OVERRIDES``); ``--resume`` continues a stopped run in
its ``--out`` and ``--merge DIR ...`` folds shards run side by side into ``--out`` first. ``--quick`` is a smoke
test (width 8, 2 outer iterations, 2 nets x 20 epochs), not evidence.
"""

from __future__ import annotations

from contrastkit.reproduce.artifacts import save_artifact_json
from contrastkit.reproduce.experiment import Arm, Experiment, Metric, register_experiment
from contrastkit.reproduce.experiments._dcc_claims import GATES, HYPOTHESES
from contrastkit.reproduce.experiments._dcc_report import figures, summary_table
from contrastkit.reproduce.experiments._dcc_setup import (
    ARMS,
    budget_of,
    check_setting,
    condensation_config,
    eval_config,
    load_dataset,
    make_net_factory,
    resolved,
)

__all__ = ["EXPERIMENT", "METRICS", "run", "summary_table"]

_EVAL = (
    "mean test accuracy of 10 fresh ConvNets (5 at ipc 10; quick: 2) trained on the set (SGD lr 0.01, momentum "
    "0.9, wd 5e-4, lr x 0.1 at half; 1,000 epochs with DC augmentation on digits or DSA for DSA/DSAC, 300 without "
    "augmentation (random/DC/DCC on Fashion-MNIST); quick: 20 epochs), on the whole official test split (quick: 200 "
    "class-stratified test images)"
)
METRICS = [
    Metric("test_acc", _EVAL),
    Metric("image_change", "||S - S0||_F / ||S0||_F between the learned set and the real images it started from "
           "(standardised pixels): the RMS pixel change relative to the RMS of the start images; 0 for random"),
    Metric("test_acc_std", "std (ddof 0) of the test accuracy over the evaluation nets", higher_is_better=False),
    Metric("contrastive_share", "fraction of matching steps that optimised the DCC loss (warm-up: DC loss)"),
    Metric("seconds_per_outer", "median wall-clock seconds of one outer iteration (fresh net, all inner steps)",
           higher_is_better=False),
    Metric("condense_seconds", "wall-clock seconds of the condensation (0 for random)", higher_is_better=False),
    Metric("eval_seconds", "wall-clock seconds of the evaluation", higher_is_better=False),
]  # fmt: skip


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Condense (or pick, for ``random``) the set of ``arm`` with ``seed`` and evaluate it (on CUDA when present:
    condensation and evaluation run on the images' device)."""
    import torch

    from contrastkit.train.condensation import condense, evaluate_synset, random_real_subset

    setting = arm.setting
    check_setting(setting)
    method, ipc = str(setting["method"]), int(setting["ipc"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = {k: v.to(device) if isinstance(v, torch.Tensor) else v
            for k, v in load_dataset(str(setting["dataset"]), quick).items()}  # fmt: skip
    make_net = make_net_factory(resolved(setting, quick, "width"), data["num_classes"],
                                budget_of(quick)["first_padding"])  # fmt: skip
    seconds_per_outer, condense_seconds, change, share, trace = 0.0, 0.0, 0.0, 0.0, []
    if method == "random":
        images, labels = random_real_subset(data["images"], data["labels"], data["num_classes"], ipc, seed=seed)
    else:
        config = condensation_config(setting, quick)
        result = condense(data["images"], data["labels"], data["num_classes"], make_net, config, seed=seed)
        images, labels = result.images, result.labels
        secs = sorted(result.seconds_per_outer)
        seconds_per_outer, condense_seconds = secs[len(secs) // 2], sum(secs)
        change, share, trace = result.image_change[-1], result.contrastive_share, result.image_change
    evaluation = evaluate_synset(make_net, images, labels, data["test_images"], data["test_labels"],
                                 eval_config(setting, quick), seed=seed)  # fmt: skip
    pixels = (images * data["std"] + data["mean"]).clamp(0, 1).cpu()
    save_artifact_json(f"{arm.name}-seed{seed}", {
        "arm": arm.name, "seed": seed, "accuracies": list(evaluation.accuracies),
        "images": [[round(v, 3) for v in img.flatten().tolist()] for img in pixels], "labels": labels.cpu().tolist(),
        "shape": list(images.shape[1:]), "image_change_per_outer": [round(v, 5) for v in trace],
    })  # fmt: skip
    return {
        "test_acc": evaluation.mean,
        "image_change": change,
        "test_acc_std": evaluation.std,
        "contrastive_share": share,
        "seconds_per_outer": seconds_per_outer,
        "condense_seconds": condense_seconds,
        "eval_seconds": evaluation.seconds,
    }


EXPERIMENT = Experiment(
    name="dcc",
    description=(
        "DCC vs DC, DSAC vs DSA and random selection (Lee et al., ICML 2022) on MNIST, Fashion-MNIST and cluttered "
        "MNIST at 1 and 10 images per class; width-32 ConvNet, 200 outer iterations of (10 "
        "matching steps, 5 (ipc 1) or 10 (ipc 10) net epochs between), DCC warm-up a quarter of them, 32 real images "
        "per class per step; DC's evaluation: 10 (ipc 10: 5) nets x 1,000 epochs with augmentation (300 without), "
        "whole test split (a reduced CPU budget, see docs/results.md); paired by seed (same starting images, same "
        "evaluation nets)"
    ),
    arms=ARMS,
    metrics=METRICS,
    run=run,
    hypotheses=HYPOTHESES,
    gates=GATES,
    duration="ipc 1: 14 core-hours for 5 seeds; ipc 10: 27.5 core-hours for 3 seeds",
    primary_metric="test_acc",
    figures=figures,
)
if __name__ != "__main__":  # ``python -m`` runs a copy of this module: register the imported one only
    register_experiment(EXPERIMENT)
