r"""``contrastkit reproduce supercon``: two-stage supervised contrastive learning vs re-weighted single-stage
baselines on long-tailed Fashion-MNIST (SuperCon, Chen, Zhuang & Chang, arXiv 2202.05685; spec ``supercon.md`` §7).

**Profiles** (training subsets, drawn per seed with :func:`contrastkit.data.long_tailed_subset`):

* ``exp10`` / ``exp50`` / ``exp100``: all 10 classes, exponential profile ``n_c = n_max * rho^(-c/9)``
  (n_max = 1000, quick 300);
* ``ham``: the first 7 classes with the HAM10000 profile 6705:1113:1099:514:327:142:115 scaled by s = 0.5
  (3353:557:550:257:164:71:58; quick s = 0.1).

**Test**: the official balanced t10k images of the profile's classes (1,000 each; quick 200 each, seeded).
No validation split is used: every arm trains for a fixed budget, nothing is selected on test data.

**Arms** (one per method x profile, named ``METHOD-PROFILE``), all with the same backbone (DC ConvNet, width 32,
depth 3, BatchNorm, 288-d features), the same views (``simclr_views(28, 1, min_scale=0.5)``: crop scale
(0.5, 1), flip, brightness/contrast 0.4 p 0.8), the same optimiser (SGD momentum 0.9, nesterov, lr 0.05 x batch /
256, weight decay 5e-4, one warm-up epoch then cosine to 0), batch 256, bf16 autocast where fast, and the same
**epoch budget** E = 30 (quick 8) passes over the training set:

* ``ce``, ``weighted_ce`` (inverse frequency), ``focal`` (gamma 2), ``class_balanced`` (Cui et al., beta 0.999):
  end-to-end on one view, E epochs;
* ``supercon``: stage 1 SupCon (tau 0.1, tau_base 0.07, two views, projection 288-288-128) for E1 = 2E/3 epochs,
  then stage 2 ``ce`` on the FROZEN encoder for E - E1 epochs (SupContrast's linear evaluation; the switches
  ``stage2_loss`` / ``freeze_encoder`` / ``sampler`` sit in the arm setting). What is equal is the number of passes
  over the training images; stage 1 runs two views per image, so SuperCon spends about 2 x 2/3 + 1/3 x (forward
  only) of the baselines' backbone compute.

**Metrics** on the test split: macro-F1, macro one-vs-rest AUC (softmax scores), balanced accuracy, accuracy,
weighted-F1 (reference only), the mean recall of the 3 classes with the fewest training images, and per-class
recall (saved per arm and seed as an artifact, drawn in ``plots/per_class_recall.png``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit.reproduce.experiment import Arm, Claim, Experiment, Metric, register_experiment
from contrastkit.reproduce.stats import compare_arms

BASELINES = ("ce", "weighted_ce", "focal", "class_balanced")
METHODS = (*BASELINES, "supercon")
PROFILES = ("exp10", "exp50", "exp100", "ham")
HAM_SCALE = {"full": 0.5, "quick": 0.1}
EXP_N_MAX = {"full": 1000, "quick": 300}
EPOCHS = {"full": 30, "quick": 8}
TEST_PER_CLASS_QUICK = 200
STAGE1_SHARE = 2 / 3
BATCH = 256
LR = 0.05
WEIGHT_DECAY = 5e-4
TEMPERATURE = 0.1
BASE_TEMPERATURE = 0.07
SUPERCON_STAGE2 = {"stage2_loss": "ce", "freeze_encoder": True, "sampler": "random"}


def _arms() -> list[Arm]:
    arms = []
    for profile in PROFILES:
        for method in METHODS:
            setting: dict[str, Any] = {"method": method, "profile": profile}
            if method == "supercon":
                setting.update(SUPERCON_STAGE2)
            arms.append(Arm(f"{method}-{profile}", setting))
    return arms


ARMS = _arms()
_TEST = "official balanced t10k split of the profile's classes (1,000 per class; quick 200)"
METRICS = [
    Metric("macro_f1", f"sklearn f1_score(average='macro') of argmax predictions; {_TEST}"),
    Metric("auc_macro_ovr", f"sklearn roc_auc_score one-vs-rest, macro, on softmax scores; {_TEST}"),
    Metric("balanced_accuracy", f"mean per-class recall (sklearn balanced_accuracy_score); {_TEST}"),
    Metric("accuracy", f"top-1 accuracy; {_TEST} (equals balanced accuracy on a balanced split)"),
    Metric("weighted_f1", f"sklearn f1_score(average='weighted'), reference only; {_TEST}"),
    Metric("tail3_recall", f"mean recall of the 3 classes with the fewest training images; {_TEST}"),
    Metric("seconds", "wall-clock seconds of training + evaluation", higher_is_better=False),
]  # fmt: skip


def profile_counts(profile: str, quick: bool) -> list[int]:
    """Training images per class (label order) of ``profile`` (see the module docstring)."""
    from contrastkit.data import HAM10000_COUNTS, long_tailed_counts, scale_profile

    budget = "quick" if quick else "full"
    if profile == "ham":
        return scale_profile(HAM10000_COUNTS, HAM_SCALE[budget])
    if profile.startswith("exp") and profile[3:].isdigit():
        return long_tailed_counts(EXP_N_MAX[budget], 10, float(profile[3:]))
    raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")


def _fashion(split: str) -> Any:
    from contrastkit.data import load

    cache = _fashion.__dict__.setdefault("cache", {})
    if split not in cache:
        cache[split] = load("fashion-mnist", split)
    return cache[split]


def make_splits(profile: str, seed: int, quick: bool) -> tuple[Any, Any, list[int]]:
    """``(train, test, counts)``: the seeded long-tailed training subset and the balanced test subset."""
    from contrastkit.data import long_tailed_subset

    counts = profile_counts(profile, quick)
    train = long_tailed_subset(_fashion("train"), counts, seed=seed)
    test_per_class = TEST_PER_CLASS_QUICK if quick else 1000
    test = long_tailed_subset(_fashion("test"), [test_per_class] * len(counts), seed=seed)
    return train, test, counts


def _batches(labels: Any, epoch: int, generator: Any, sampler: Any | None) -> list[Any]:
    """Index batches of one epoch: ``sampler``'s class-balanced ones, or a random permutation (drop_last)."""
    import torch

    if sampler is not None:
        sampler.set_epoch(epoch)
        return [torch.tensor(b) for b in sampler]
    n = labels.shape[0]
    order = torch.randperm(n, generator=generator)
    size = min(BATCH, n)
    return [order[i : i + size] for i in range(0, n - size + 1, size)]


def _fit(model: Any, params: Sequence[Any], train: Any, epochs: int, generator: Any, sampler: Any | None) -> None:
    """SGD (momentum 0.9, nesterov) with a one-epoch linear warm-up then cosine decay; bf16 autocast if fast."""
    import torch

    from contrastkit.accel import autocast

    if epochs < 1:
        return
    per_epoch = len(_batches(train.labels, 0, torch.Generator().manual_seed(0), sampler))
    total = per_epoch * epochs
    lr = LR * BATCH / 256
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY)

    def factor(step: int) -> float:
        if step < per_epoch:
            return (step + 1) / per_epoch
        return 0.5 * (1 + math.cos(math.pi * (step - per_epoch) / max(1, total - per_epoch)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    for epoch in range(epochs):
        for index in _batches(train.labels, epoch, generator, sampler):
            images = train.images[index].contiguous(memory_format=torch.channels_last)
            with autocast(images.device, "auto"):
                out = model.training_step((images, train.labels[index]))
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            schedule.step()


def _evaluate(classifier: Any, test: Any) -> dict[str, Any]:
    import torch

    from contrastkit.accel import autocast
    from contrastkit.evaluate import imbalanced_classification_report

    classifier.eval()
    with torch.no_grad(), autocast(test.images.device, "auto"):
        logits = torch.cat([classifier(chunk.contiguous(memory_format=torch.channels_last)).float()
                            for chunk in test.images.split(1000)])  # fmt: skip
    return imbalanced_classification_report(test.labels, torch.softmax(logits, dim=1))


def train_arm(setting: Mapping[str, Any], seed: int, quick: bool) -> tuple[dict[str, Any], list[int]]:
    """Train one arm on its profile and evaluate it; returns the metric report and the training class counts."""
    import torch

    from contrastkit.accel import channels_last
    from contrastkit.augment import simclr_views
    from contrastkit.data import ClassBalancedBatchSampler
    from contrastkit.methods import SuperCon, SupervisedClassifier, supercon_classifier
    from contrastkit.models import ConvNet

    method, profile = str(setting["method"]), str(setting["profile"])
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    train, test, counts = make_splits(profile, seed, quick)
    epochs = int(setting.get("epochs", EPOCHS["quick" if quick else "full"]))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    backbone = channels_last(ConvNet(1, 28, width=32, depth=3, norm="batchnorm"))
    views = simclr_views(28, 1, min_scale=0.5)
    if method == "supercon":
        stage1 = SuperCon(backbone, views, temperature=TEMPERATURE, base_temperature=BASE_TEMPERATURE)
        epochs1 = max(1, round(epochs * STAGE1_SHARE))
        sampler = None
        if setting.get("sampler", "random") == "class_balanced":
            sampler = ClassBalancedBatchSampler(train.labels, BATCH, seed=seed)
        _fit(stage1, list(stage1.parameters()), train, epochs1, generator, sampler)
        model = supercon_classifier(
            stage1, len(counts), stage2_loss=str(setting.get("stage2_loss", "ce")),
            freeze_encoder=bool(setting.get("freeze_encoder", True)), class_counts=counts, views=views,
        )  # fmt: skip
        _fit(model, model.trainable_parameters(), train, epochs - epochs1, generator, None)
    else:
        model = SupervisedClassifier(backbone, views, len(counts), loss=method, class_counts=counts)
        _fit(model, model.trainable_parameters(), train, epochs, generator, None)
    return _evaluate(model, test), counts


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train and evaluate ``arm`` (see the module docstring); saves ``{arm}-seed{seed}`` per-class recalls."""
    from contrastkit.reproduce.artifacts import save_artifact_json

    start = time.perf_counter()
    report, counts = train_arm(arm.setting, seed, quick)
    recall = list(report.pop("per_class_recall"))
    tail = sorted(range(len(counts)), key=lambda c: (counts[c], -c))[:3]
    metrics = {k: float(v) for k, v in report.items()}
    metrics["tail3_recall"] = sum(recall[c] for c in tail) / len(tail)
    metrics["seconds"] = time.perf_counter() - start
    save_artifact_json(f"{arm.name}-seed{seed}", {"arm": arm.name, "seed": seed, "setting": dict(arm.setting),
                                                  "class_counts": counts, "per_class_recall": recall})  # fmt: skip
    return metrics


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    """SuperCon vs each baseline within each profile, on macro-F1 and macro OvR AUC (paired per-seed t-test)."""
    present = {r["arm"] for r in rows}
    out = []
    for profile in PROFILES:
        ours = f"supercon-{profile}"
        for baseline in BASELINES:
            theirs = f"{baseline}-{profile}"
            if ours not in present or theirs not in present:
                continue
            for metric, label in (("macro_f1", "macro-F1"), ("auc_macro_ovr", "macro OvR AUC")):
                verdict, evidence = compare_arms(rows, metric, ours, theirs, 0.0)
                out.append(Claim(f"{profile}: SuperCon (SupCon -> CE on the frozen encoder) beats {baseline} on "
                                 f"{label}", verdict, evidence))  # fmt: skip
    return out


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/per_class_recall.png``: mean test recall per class (head to tail) for every method, per profile."""
    from contrastkit.reproduce.artifacts import load_artifact_json
    from contrastkit.train.report import pyplot, save_figure

    plt = pyplot()
    profiles = [p for p in PROFILES if any(r["setting"].get("profile") == p for r in results["rows"])]
    if not profiles:
        return []
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.2 * len(profiles), 3.6), squeeze=False)
    for ax, profile in zip(axes[0], profiles, strict=True):
        for method in METHODS:
            saved = [load_artifact_json(f"{r['arm']}-seed{r['seed']}") for r in results["rows"]
                     if r["arm"] == f"{method}-{profile}"]  # fmt: skip
            if not saved:
                continue
            counts = saved[0]["class_counts"]
            order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
            mean = [sum(s["per_class_recall"][c] for s in saved) / len(saved) for c in order]
            ax.plot(range(len(order)), mean, marker="o", label=method, lw=2.2 if method == "supercon" else 1.2)
            ax.set_xticks(range(len(order)), [f"{c}\n{counts[c]}" for c in order], fontsize=7)
        ax.set_title(f"{profile} ({len(saved)} seed{'s' if len(saved) > 1 else ''})")
        ax.set_xlabel("class id / training images")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test recall")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    return [save_figure(fig, directory / "plots" / "per_class_recall.png")]


EXPERIMENT = register_experiment(
    Experiment(
        name="supercon",
        description=(
            "SuperCon (Chen et al. 2022): SupCon pre-training + a classifier on the frozen encoder vs CE, "
            "inverse-frequency weighted CE, focal (gamma 2) and class-balanced CE (beta 0.999) on long-tailed "
            "Fashion-MNIST (exponential ratios 10/50/100 on 10 classes, the HAM10000 profile on 7 classes), "
            "balanced test split, equal epoch budget"
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        claims=claims,
        primary_metric="macro_f1",
        figures=figures,
    )
)
