r"""``contrastkit reproduce supercon``: two-stage supervised contrastive learning vs re-weighted single-stage
baselines on long-tailed Fashion-MNIST (SuperCon, Chen, Zhuang & Chang, arXiv 2202.05685).

**Profiles** (training subsets, drawn per seed with :func:`contrastkit.data.long_tailed_subset`):

* ``exp10`` / ``exp50`` / ``exp100``: all 10 classes, exponential profile ``n_c = n_max * rho^(-c/9)``
  (n_max = 1000: 4085 / 2800 / 2480 images; quick n_max = 300);
* ``ham``: the first 7 classes with the HAM10000 profile 6705:1113:1099:514:327:142:115 scaled by s = 0.5
  (3353:557:550:257:164:71:58, 5010 images; quick s = 0.1).

**Test**: the official balanced t10k images of the profile's classes (1,000 each; quick 200 each, seeded).
No validation split is used: every arm trains for a fixed, pre-declared budget and nothing is selected, neither on
validation nor on test data; class weights come from the training counts only.

Every arm, and each SuperCon stage, is the base config ``reproduce/configs/supercon.yaml`` plus overrides
(:mod:`._supercon_arms`; the report prints each arm's ``contrastkit train`` commands) and trains through the engine.

**Shared by every arm**: the backbone (DC ConvNet, width 32, depth 3, BatchNorm, 288-d features), the views
(``simclr_views(28, 1, min_scale=0.5)``: crop scale (0.5, 1), flip, brightness/contrast 0.4 with p 0.8), the
optimiser (SGD momentum 0.9, nesterov, lr 0.05 x batch / 256, weight decay 5e-4, one warm-up epoch then cosine to
0, restarted for each stage), batch 256 (random order, last partial batch dropped), bf16 autocast where the CPU has
it, the same initial backbone weights for a given seed, and the same **epoch budget** E = 20 passes over the
training set (quick 6; lowered from the first draft's 30 for every arm alike, to fit a 2-core CPU). ``--quick`` is
a smoke test, not evidence.

**Arms** (``METHOD-PROFILE``; 8 methods x 4 profiles):

* ``ce``, ``weighted_ce`` (inverse frequency, ``F.cross_entropy(weight=w)``), ``focal`` (gamma 2, no alpha),
  ``class_balanced`` (Cui et al., beta 0.999): end to end on one view for E epochs;
* SuperCon: stage 1 SupCon L_out (tau 0.1, tau_base 0.07 as Khosla et al., NeurIPS 2020, two views,
  all anchors, projection 288 -> 288 -> 128) for E1 = round(2E/3) = 13 epochs, then stage 2 for E - E1 = 7 epochs:

  * ``supercon``: CE on the FROZEN encoder (the linear evaluation protocol of Khosla et al., NeurIPS 2020; the
    default switches) -- the primary SuperCon arm of the claims;
  * ``supercon_focal``: focal (gamma 2) on the frozen encoder, the "SuperCon-like" reading of the paper,
    also judged in the claims;
  * ``supercon_cb``: class-balanced CE (beta 0.999) on the frozen encoder;
  * ``supercon_ft``: focal with the encoder fine-tuned (``freeze_encoder=false``; the stage-2 loss
    is fixed in advance to focal, not picked as "the best" on test data).

  The four SuperCon arms of one (profile, seed) share one stage 1: it is trained once, its backbone exported to
  the artifacts and reused (same config, so it would be identical anyway); stage 2 starts from it through
  ``model.init_from``, as ``contrastkit train ... --set model.init_from=STAGE1_RUN`` does. What is equal across
  arms is the number of passes over the training images; stage 1 draws two views per image, so SuperCon spends
  about 2 x 13 + 7 x (1/3 when frozen: forward only) backbone passes against the baselines' 20 (its ``seconds``
  include the shared stage 1).

The CICL class-balanced batch sampler (``data.sampler: class_balanced``; Marrakchi et al., MICCAI 2021) is a config
switch but not run here: it would need its own stage 1 per profile and seed.

**Metrics** on the test split: macro-F1, macro one-vs-rest AUC (softmax scores), balanced accuracy, accuracy,
weighted-F1 (reference only; on a balanced test split it equals macro-F1), the mean recall of the 3 classes with the
fewest training images, and per-class recall (saved per arm and seed as an artifact, drawn in
``plots/per_class_recall.png``); ``plots/paired_differences.png`` draws the per-profile paired differences of the
claims.

**Claims**: within each profile, ``supercon`` and ``supercon_focal`` each beat each baseline on macro-F1 and on
macro OvR AUC (one-sided paired t-test over seeds, margin 0): 2 x 4 x 4 x 2 = 64 verdicts, all reported.
"""

from __future__ import annotations

import time
from typing import Any

from contrastkit.evaluate.protocols import classifier_protocol_texts, evaluate_classifier_scores
from contrastkit.reproduce.arms import arm_config, arm_overrides, base_config_path, train_arm, train_command
from contrastkit.reproduce.artifacts import artifact_path, load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Claim, Experiment, Metric, register_experiment
from contrastkit.reproduce.experiments._supercon_arms import (
    ARMS,
    BASE,
    BASELINES,
    CLAIM_METRICS,
    CLAIMED,
    PROFILES,
    claim_text,
)
from contrastkit.reproduce.experiments._supercon_report import figures
from contrastkit.reproduce.stats import compare_arms

QUICK: list[str] = []  # budget overrides of --quick besides each arm's own (tests shrink the model here)
_TEST = "official balanced t10k split of the profile's classes (1,000 per class; quick 200)"
_PROTOCOLS = classifier_protocol_texts(_TEST)
METRICS = [
    *(Metric(name, _PROTOCOLS[name]) for name in ("macro_f1", "auc_macro_ovr", "balanced_accuracy", "accuracy")),
    Metric("weighted_f1", f"{_PROTOCOLS['weighted_f1']} (reference only: equals macro-F1 on a balanced split)"),
    Metric("tail3_recall", f"mean recall of the 3 classes with the fewest training images; {_TEST}"),
    Metric("seconds", "wall-clock seconds of training + evaluation (SuperCon arms include their shared stage 1)",
           higher_is_better=False),
]  # fmt: skip


def evaluate_classifier(classifier: Any, test: Any) -> tuple[dict[str, float], list[float]]:
    """:func:`contrastkit.evaluate.protocols.evaluate_classifier_scores` of ``classifier``'s logits on ``test``:
    ``({metric: value}, per-class recall)``."""
    from contrastkit.evaluate import extract_features

    logits = extract_features(classifier, test.images, batch_size=1000, precision="auto")
    measured, recall = evaluate_classifier_scores(logits, test.labels)
    return {name: m.value for name, m in measured.items()}, recall


def stage1_backbone(arm: Arm, seed: int, quick: bool) -> tuple[str, float, bool]:
    """The exported stage-1 backbone of ``arm`` at ``seed`` (an artifact, trained once and shared by the SuperCon
    arms with the same stage-1 config), the seconds its training took, and whether it was reused."""
    from contrastkit.models import export_backbone
    from contrastkit.train import load_config

    overrides = arm_overrides(arm, seed, quick, QUICK, stage="stage1")
    name = f"stage1-{arm.setting['profile']}-seed{seed}"
    path = artifact_path(f"{name}.pt")
    try:
        record = load_artifact_json(name)
    except (FileNotFoundError, ValueError):
        record = {}
    if record.get("overrides") == overrides and path.is_file():
        return str(path), float(record["seconds"]), True
    start = time.perf_counter()
    method, _ = train_arm(load_config(base_config_path(BASE), overrides))
    export_backbone(method.backbone, path, metadata={"overrides": overrides})
    seconds = time.perf_counter() - start
    save_artifact_json(name, {"overrides": overrides, "seconds": seconds})
    return str(path), seconds, False


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train and evaluate ``arm``; saves ``{arm}-seed{seed}`` per-class recalls."""
    start = time.perf_counter()
    extra, reused = [], 0.0
    if "stage1" in arm.setting:
        path, stage1_seconds, was_reused = stage1_backbone(arm, seed, quick)
        reused = stage1_seconds if was_reused else 0.0
        extra = [f"model.init_from={path}"]
    method, data = train_arm(arm_config(BASE, arm, seed, quick, QUICK, extra=extra))
    metrics, recall = evaluate_classifier(method, data.eval)
    counts = data.train.class_counts().tolist()
    tail = sorted(range(len(counts)), key=lambda c: (counts[c], -c))[:3]
    metrics["tail3_recall"] = sum(recall[c] for c in tail) / len(tail)
    metrics["seconds"] = time.perf_counter() - start + reused
    save_artifact_json(f"{arm.name}-seed{seed}", {"arm": arm.name, "seed": seed, "setting": dict(arm.setting),
                                                  "class_counts": counts, "per_class_recall": recall})  # fmt: skip
    return metrics


def arm_commands(arm: Arm, seed: int, quick: bool) -> str:
    """The ``contrastkit train`` command(s) of ``arm``: stage 1 into a run directory, then stage 2 from it."""
    stage2 = arm_overrides(arm, seed, quick, QUICK)
    if "stage1" not in arm.setting:
        return train_command(BASE, stage2)
    out = f"runs/{arm.name}-stage1-seed{seed}"
    return (train_command(BASE, arm_overrides(arm, seed, quick, QUICK, stage="stage1"), out) + " && "
            + train_command(BASE, [*stage2, f"model.init_from={out}"]))  # fmt: skip


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    """Within each profile, each claimed SuperCon arm vs each baseline on macro-F1 and macro OvR AUC (paired
    per-seed one-sided t-test, margin 0; the evidence gives the paired differences)."""
    present = {r["arm"] for r in rows}
    out = []
    for profile in PROFILES:
        for method in CLAIMED:
            ours = f"{method}-{profile}"
            for baseline in BASELINES:
                theirs = f"{baseline}-{profile}"
                if ours not in present or theirs not in present:
                    continue
                for metric, label in CLAIM_METRICS:
                    verdict, evidence = compare_arms(rows, metric, ours, theirs, 0.0)
                    out.append(Claim(claim_text(profile, method, baseline, label), verdict, evidence))
    return out


EXPERIMENT = register_experiment(
    Experiment(
        name="supercon",
        description=(
            "SuperCon (Chen et al. 2022): SupCon pre-training + a classifier on the frozen (or fine-tuned) encoder vs "
            "CE, inverse-frequency weighted CE, focal (gamma 2) and class-balanced CE (beta 0.999) on long-tailed "
            "Fashion-MNIST (exponential ratios 10/50/100 on 10 classes, the HAM10000 profile on 7 classes), "
            "balanced test split, equal epoch budget (20 passes; quick 6). Arms are METHOD-PROFILE; compare arms "
            "within a profile (the generic paired table below pairs every arm with the first arm, ce-exp10, which "
            "is only meaningful for the exp10 arms; the claims and plots/paired_differences.png pair within each "
            "profile)."
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        claims=claims,
        primary_metric="macro_f1",
        figures=figures,
        arm_command=arm_commands,
    )
)
