r"""``contrastkit reproduce supercon``: SupCon pre-training + a re-fitted (re-weighted) linear head vs re-weighted
end-to-end baselines on long-tailed Fashion-MNIST (SuperCon, Chen, Zhuang & Chang, arXiv 2202.05685).

**Profiles** (training subsets drawn per seed): ``exp10`` / ``exp50`` / ``exp100``, 10 classes, ``n_c = 1000 *
rho^(-c/9)`` (4085 / 2800 / 2480 images); ``ham``, 7 classes, HAM10000's 6705:...:115 at s = 0.5 (5010 images).
**Test**: the official balanced t10k images of the profile's classes (1,000 each). Class weights and every choice
(learning rate, head L2) come from the training subset only; nothing is chosen on test data.

**Encoders** (base config ``reproduce/configs/supercon.yaml`` + overrides, trained through the engine; DC ConvNet
width 32 / depth 3 / BatchNorm, 288-d; views crop (0.5, 1), flip, jitter; SGD momentum 0.9 nesterov, weight decay
5e-4, batch 256, 5 % warm-up then cosine; bf16 where the CPU has it): the baselines ``ce``, ``weighted_ce``,
``focal`` (gamma 2) and ``class_balanced`` (beta 0.999) end to end on one view, and SupCon stage 1 (L_out, tau 0.1,
tau_base 0.07, Khosla et al., NeurIPS 2020; two views, all anchors, projection 288 -> 288 -> 128). **Budget rule**:
every encoder makes the same number of passes over the training images, E = 100 epochs (quick 2); stage 1 sees
two views per pass (about 2x the backbone compute of a baseline). Stage 1 is trained once per (profile, seed),
exported to the artifacts and shared by the four SupCon arms.

**Learning rates**: each encoder's lr is chosen from {0.5, 1, 2} x 0.05 by :mod:`._supercon_search` (seed 0 of each
profile, full budget, trained on 80 % of the training subset, scored by the re-fit head's macro-F1 on the other
20 %: the same search for every encoder) and read from ``reproduce/configs/supercon_lr_search.yaml`` (copied to
``artifacts/lr_search.json``, tabled in ``summary.md``); without a full search of a profile its encoders run at 0.05
and its gate ``lr_searched-PROFILE`` fails.

**One head protocol for every encoder** (stage 2 of SuperCon, and a separate evaluation of the baselines):
:func:`contrastkit.evaluate.protocols.evaluate_frozen_head`, a linear head re-fitted to convergence (float64 L-BFGS)
on the frozen, standardised features of the un-augmented training images, its L2 chosen on a stratified 20 %
carve of them (seeded by the data seed). Arms (``METHOD-PROFILE``, 9 x 4):

* ``ce``, ``weighted_ce``, ``focal``, ``class_balanced``: end to end; the head re-fitted with the same loss (the
  ``own_*`` metrics are their engine-trained classifier);
* ``supercon_ce``, ``supercon_weighted_ce``, ``supercon_focal``, ``supercon_cb``: stage 1, then the head with CE,
  weighted CE, focal or class-balanced CE (the SuperCon readings; the paper's stage-2 loss is not stated);
* ``random_init``: the seed's untrained encoder, weighted-CE head (the anchor of the gates).

Not run: a fine-tuned stage 2 and CICL's class-balanced batches (``data.sampler``; Marrakchi et al., MICCAI 2021).

**Metrics** (test split): macro-F1, macro OvR AUC, balanced accuracy, accuracy, weighted-F1 (= macro-F1 on a
balanced split), mean recall of the 3 rarest training classes, per-class recall (artifacts and
``plots/per_class_recall.png``); ``own_*``, ``own_head_gap``, ``head_grad_max``, ``head_l2``, ``seconds``.
Claims and gates: :mod:`._supercon_claims`; ``summary.md`` (headline and tables, :mod:`._supercon_report`).

**Cost** (measured on this 2-core CPU, one thread per process, other jobs running): per training image and epoch,
stage 1 0.64-0.71 ms and a baseline 0.31-0.34 ms; features + head protocol 15-19 s per arm. Per seed at E = 100:
exp10 0.26 h, exp50 0.20 h, exp100 0.17 h, ham 0.33 h (0.97 CPU-h); 5 seeds 4.8 CPU-h, the search 2.2 CPU-h: about
7 CPU-hours (8.5 with slack), so every profile is kept (E = 200 would cost about 12). Shards (one thread each, two
at a time): the search ``--profiles ham exp50`` / ``--profiles exp10 exp100``; then ``contrastkit reproduce supercon
--seeds 5 --arms '*-ham' '*-exp100' --out DIR1`` / ``--arms '*-exp10' '*-exp50' --out DIR2`` (``--resume`` to
continue one), and ``--out DIR --merge DIR1 DIR2`` judges them together. Keep a profile's arms of one seed in one
shard: its four SupCon arms share one stage 1.
"""

from __future__ import annotations

import time
from typing import Any

from contrastkit.evaluate.protocols import classifier_protocol_texts, evaluate_frozen_head, frozen_head_text
from contrastkit.reproduce.arms import arm_config, arm_overrides, base_config_path, train_arm, train_command
from contrastkit.reproduce.artifacts import artifact_path, load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Experiment, Metric, register_experiment
from contrastkit.reproduce.experiments._supercon_arms import ARMS, BASE, LR_SEARCH
from contrastkit.reproduce.experiments._supercon_claims import GATES, HYPOTHESES
from contrastkit.reproduce.experiments._supercon_report import figures

QUICK: list[str] = []  # budget overrides of --quick besides each arm's own (tests shrink the model here)
_TEST = "official balanced t10k split of the profile's classes (1,000 per class; quick 200)"
_HEAD = frozen_head_text("arm's head_loss", "the training subset")
_OWN = classifier_protocol_texts(_TEST)
_SUMMARY = ("macro_f1", "auc_macro_ovr", "balanced_accuracy")
METRICS = [
    *(Metric(m, f"{m} of the argmax of {_HEAD}; {_TEST}") for m in (*_SUMMARY, "accuracy", "weighted_f1")),
    Metric("tail3_recall", f"mean recall of the 3 rarest training classes under {_HEAD}; {_TEST}"),
    *(Metric(f"own_{m}", f"{_OWN[m]} (the arm's own classifier: a baseline's engine-trained layer, else the re-fit "
             "head)") for m in _SUMMARY),  # fmt: skip
    Metric("own_tail3_recall", "mean recall of the 3 rarest training classes, the arm's own classifier"),
    Metric("own_head_gap", "macro_f1 - own_macro_f1 (how far the own classifier is from the converged head)",
           higher_is_better=False),
    Metric("head_grad_max", "max |grad J| of the re-fit head at its solution (convergence)", higher_is_better=False),
    Metric("head_l2", "the L2 strength the validation carve chose for the re-fit head", higher_is_better=False),
    Metric("seconds", "wall-clock seconds of training + evaluation (SupCon arms include their shared stage 1)",
           higher_is_better=False),
]  # fmt: skip


def stage1_backbone(arm: Arm, seed: int, quick: bool) -> tuple[str, float, bool]:
    """The exported stage-1 backbone of ``arm`` at ``seed`` (an artifact, trained once and shared by the SupCon
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


def _encoder(arm: Arm, seed: int, quick: bool) -> tuple[Any, Any, Any, float]:
    """``(encoder, data, own classifier or None, seconds of a reused stage 1)`` of ``arm`` at ``seed``."""
    from contrastkit.models import load_backbone
    from contrastkit.train import builders, load_config

    if arm.setting["kind"] != "supercon":
        method, data = train_arm(arm_config(BASE, arm, seed, quick, QUICK), train=arm.setting.get("train", True))
        return method.backbone, data, method if arm.setting["kind"] == "baseline" else None, 0.0
    path, seconds, reused = stage1_backbone(arm, seed, quick)
    data = builders.build_data(load_config(base_config_path(BASE), arm_overrides(arm, seed, quick, QUICK, "stage1")))
    return load_backbone(path), data, None, seconds if reused else 0.0


def _tail3(recall: list[float], counts: list[int]) -> float:
    tail = sorted(range(len(counts)), key=lambda c: (counts[c], -c))[:3]
    return sum(recall[c] for c in tail) / len(tail)


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train (or load) the arm's encoder, re-fit its head, evaluate; saves ``{arm}-seed{seed}`` per-class recalls."""
    from contrastkit.evaluate import extract_features
    from contrastkit.evaluate.protocols import evaluate_classifier_scores

    start = time.perf_counter()
    save_artifact_json("lr_search", LR_SEARCH)  # the search record the arms were built from (same in every shard)
    encoder, data, own, reused = _encoder(arm, seed, quick)
    train, test = data.train, data.eval
    counts = train.class_counts().tolist()
    train_z, test_z = (extract_features(encoder, d.images, batch_size=1000) for d in (train, test))
    measured, recall, result = evaluate_frozen_head(train_z, train.labels, test_z, test.labels, seed=seed,
                                                    loss=arm.setting["head_loss"], num_classes=len(counts))  # fmt: skip
    metrics = {name: m.value for name, m in measured.items()}
    metrics["tail3_recall"] = _tail3(recall, counts)
    own_metrics, own_recall = dict(metrics), recall
    if own is not None:
        logits = extract_features(own, test.images, batch_size=1000)
        scored, own_recall = evaluate_classifier_scores(logits, test.labels)
        own_metrics = {name: m.value for name, m in scored.items()}
    metrics.update({f"own_{m}": own_metrics[m] for m in _SUMMARY}, own_tail3_recall=_tail3(own_recall, counts))
    metrics.update(own_head_gap=metrics["macro_f1"] - metrics["own_macro_f1"], head_grad_max=result.head.grad_max,
                   head_l2=result.head.l2, seconds=time.perf_counter() - start + reused)  # fmt: skip
    save_artifact_json(f"{arm.name}-seed{seed}", {
        "arm": arm.name, "seed": seed, "setting": dict(arm.setting), "class_counts": counts,
        "per_class_recall": recall, "own_per_class_recall": own_recall,
        "head": {"l2_scores": {f"{k:g}": v for k, v in result.l2_scores.items()}, "l2": result.head.l2,
                 "grad_max": result.head.grad_max, "iterations": result.head.iterations},
    })  # fmt: skip
    return metrics


def arm_commands(arm: Arm, seed: int, quick: bool) -> str:
    """The ``contrastkit train`` command that trains the arm's encoder (the head is the evaluation protocol)."""
    head = f" # then the frozen-head protocol, loss {arm.setting['head_loss']}"
    if arm.setting["kind"] == "supercon":
        out = f"runs/stage1-{arm.setting['profile']}-seed{seed}"
        return train_command(BASE, arm_overrides(arm, seed, quick, QUICK, stage="stage1"), out) + head
    command = train_command(BASE, arm_overrides(arm, seed, quick, QUICK))
    return f"untrained: the initial weights of {command}{head}" if arm.setting["kind"] == "random_init" else command


EXPERIMENT = register_experiment(
    Experiment(
        name="supercon",
        description=(
            "SuperCon (Chen et al. 2022) on long-tailed Fashion-MNIST (exponential ratios 10/50/100 on 10 classes, "
            "the HAM10000 profile on 7): SupCon stage 1 then a re-fitted linear head (CE, weighted CE, focal, "
            "class-balanced) vs the same four losses end to end, every encoder 100 epochs at its searched learning "
            "rate and scored by one re-fit head protocol (L-BFGS on frozen standardised features, L2 chosen on a "
            "validation carve of the training data); balanced test split. Arms are METHOD-PROFILE; the claims pair "
            "arms within a profile (the generic table below pairs every arm with the first arm, ce-exp10, which is "
            "only meaningful within exp10); summary.md gives the headline and per-profile tables."
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        hypotheses=HYPOTHESES,
        duration="about 5 CPU-hours for 5 seeds, after a 2.2 CPU-hour learning-rate search run once",
        primary_metric="macro_f1",
        gates=GATES,
        figures=figures,
        arm_command=arm_commands,
    )
)
