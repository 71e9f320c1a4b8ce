"""The setup of ``contrastkit reproduce dcc``: arms, budgets, data and the condensation and evaluation configs of
an arm (the experiment is :mod:`.dcc`, its claims and gates :mod:`._dcc_claims`).

Budgets (``BUDGETS``; ``outer``, ``nets`` per ipc). ``full``: ConvNet width 32 with the official first-conv padding
of 3 for grey 28x28 images (32 -> 16 -> 8 -> 4 px), 32 real images per class per matching step, 200 outer
iterations at ipc 1 (the low end of the 200-500 that issue #13 asks for: 14 core-hours for 5 seeds of the 15 ipc-1
arms on a 2-core machine, against 19.5 at 300; ``docs/results/dcc/cost.json``) and 200 at ipc 10, loops (10, 5) at
ipc 1 (DCC's table) and (10, 10) at ipc 10 (the table's T = 50 cut to 10), DCC's outer warm-up a quarter of the
outer iterations (250 of 1,000 in Lee et al.), 10 evaluation nets at ipc 1 and 5 at ipc 10, DC's evaluation epochs
(1,000 with augmentation, 300 without: :func:`contrastkit.train.condensation.dc_eval_epochs`), the whole official
test split. ``quick``: width 8, 8 real images per class from a 1,000-image training subset, 2 outer iterations of
(2, 2) loops, 2 nets x 20 epochs, 200 test images: a smoke test, not evidence.

An arm's setting may carry the overrides ``SETTING_OVERRIDES`` (``contrastkit reproduce dcc --set outer=100``);
any other key is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contrastkit.reproduce.experiment import Arm

METHODS = ("random", "dc", "dcc", "dsa", "dsac")
DATASETS = ("mnist", "fashion-mnist", "clutter")
IPCS = (1, 10)
ARM_KEYS = ("method", "dataset", "ipc")
SETTING_OVERRIDES = ("outer", "width", "batch_real", "nets")
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"width": 32, "first_padding": 3, "batch_real": 32, "outer": {1: 200, 10: 200},
             "loops": {1: None, 10: (10, 10)}, "nets": {1: 10, 10: 5}, "epochs": None, "test": None,
             "train_subset": None},
    "quick": {"width": 8, "first_padding": 3, "batch_real": 8, "outer": {1: 2, 10: 2},
              "loops": {1: (2, 2), 10: (2, 2)}, "nets": {1: 2, 10: 2}, "epochs": 20, "test": 200,
              "train_subset": 1000},
}  # fmt: skip
DSA_STRATEGY = {"mnist": "color_crop_cutout_scale_rotate", "clutter": "color_crop_cutout_scale_rotate",
                "fashion-mnist": "color_crop_cutout_flip_scale_rotate"}  # fmt: skip

ARMS = [
    Arm(f"{method}-{dataset}-ipc{ipc}", {"method": method, "dataset": dataset, "ipc": ipc})
    for dataset in DATASETS
    for ipc in IPCS
    for method in METHODS
]


def budget_of(quick: bool) -> dict[str, Any]:
    return BUDGETS["quick" if quick else "full"]


def check_setting(setting: Mapping[str, Any]) -> None:
    """ValueError naming the problem when ``setting`` has an unknown key or an unknown method / dataset / ipc."""
    unknown = sorted(set(setting) - set(ARM_KEYS) - set(SETTING_OVERRIDES))
    if unknown:
        raise ValueError(f"unknown dcc setting(s) {unknown}; --set accepts only {list(SETTING_OVERRIDES)}")
    for key, allowed in (("method", METHODS), ("dataset", DATASETS), ("ipc", IPCS)):
        if setting.get(key) not in allowed:
            raise ValueError(f"unknown {key} {setting.get(key)!r}; choose one of {list(allowed)}")
    for key in SETTING_OVERRIDES:
        value = setting.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"setting {key} must be an int >= 1, got {value!r}")


def resolved(setting: Mapping[str, Any], quick: bool, key: str) -> int:
    """The value of budget entry ``key`` for this arm: the setting's override, else the budget's (per ipc)."""
    if key in setting:
        return int(setting[key])
    value = budget_of(quick)[key]
    return int(value[int(setting["ipc"])] if isinstance(value, dict) else value)


def load_dataset(dataset: str, quick: bool) -> dict[str, Any]:
    """Standardised train images/labels and the test images (full split; quick: a fixed stratified subset)."""
    import torch

    from contrastkit.data import ImageDataset, load
    from contrastkit.data.clutter import clutter_images, cluttered_mnist

    cache = load_dataset.__dict__.setdefault("cache", {})
    key = (dataset, quick)
    if key in cache:
        return cache[key]
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    budget = budget_of(quick)
    if dataset == "clutter" and not budget["train_subset"]:
        train, test = cluttered_mnist("train", seed=0), cluttered_mnist("test", seed=0)
    else:
        train, test = load("mnist" if dataset == "clutter" else dataset, "train"), load(dataset, "test")
    images, labels = train.images, train.labels
    if budget["train_subset"]:
        keep = _stratified(labels, budget["train_subset"] // 10, seed=0)
        images, labels = images[keep], labels[keep]
        if dataset == "clutter":  # quick: clutter only the subsets (fragments then come from the subset)
            images = clutter_images(images, torch.Generator().manual_seed(0))
            test = ImageDataset(clutter_images(test.images, torch.Generator().manual_seed(2)), test.labels,
                                list(test.classes), "cluttered-mnist/test")  # fmt: skip
    mean, std = float(images.mean()), float(images.std())
    keep_test = _stratified(test.labels, budget["test"] // 10, seed=0) if budget["test"] else slice(None)
    out = {
        "images": (images - mean) / std,
        "labels": labels.clone(),
        "test_images": (test.images[keep_test] - mean) / std,
        "test_labels": test.labels[keep_test].clone(),
        "mean": mean,
        "std": std,
        "num_classes": int(labels.max()) + 1,
    }
    cache[key] = out
    return out


def _stratified(labels: Any, per_class: int, seed: int) -> Any:
    """Indices of ``per_class`` random items of every class, class-major (fixed by ``seed``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:per_class]])
    return torch.cat(picks)


def make_net_factory(width: int, num_classes: int, first_padding: int = 3) -> Any:
    """A ``make_net()`` for the DC ConvNet (depth 3, instancenorm, avg-pool) on 28x28 grey images; the first conv
    is padded by ``first_padding`` (3 in DC's code for 1-channel inputs, so the maps are 32 -> 16 -> 8 -> 4)."""
    from contrastkit.models import ConvNet

    def make_net() -> ConvNet:
        return ConvNet(1, 28, width=width, depth=3, norm="instancenorm", num_classes=num_classes,
                       first_padding=first_padding)  # fmt: skip

    return make_net


def condensation_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.methods.dcc.CondensationConfig` of a condensation arm."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.methods.dcc import CondensationConfig

    check_setting(setting)
    method, ipc = str(setting["method"]), int(setting["ipc"])
    if method == "random":
        raise ValueError("the random arm condenses nothing; it has no condensation config")
    outer = resolved(setting, quick, "outer")
    loops = budget_of(quick)["loops"][ipc]
    inner_loop, epochs_between = loops if loops else (None, None)
    return CondensationConfig(
        ipc=ipc,
        matching="dcc" if method in ("dcc", "dsac") else "dc",
        dsa=method in ("dsa", "dsac"),
        dsa_config=DSAConfig(DSA_STRATEGY[str(setting["dataset"])]),
        outer_loop=outer,
        outer_warmup=outer // 4,
        inner_warmup=min(10, inner_loop) if inner_loop else 10,
        loops="dcc_table",
        inner_loop=inner_loop,
        epochs_between=epochs_between,
        batch_real=resolved(setting, quick, "batch_real"),
        vmap_chunk_size=1,
        class_grad_method="loop",  # equal to vmap up to rounding, 1.2-1.5x faster on a CPU
    )


def eval_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.evaluate.condensation.SynsetEvalConfig` of an arm: DC's augmentation choice
    (``crop_scale_rotate`` on the digit datasets, none on Fashion-MNIST; DSA for DSA/DSAC) and DC's epochs."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.evaluate.condensation import SynsetEvalConfig
    from contrastkit.train.condensation import dc_eval_epochs

    check_setting(setting)
    method, dataset = str(setting["method"]), str(setting["dataset"])
    if method in ("dsa", "dsac"):
        augment = "dsa"
    else:
        augment = "dc" if dataset in ("mnist", "clutter") else "none"
    epochs = budget_of(quick)["epochs"] or dc_eval_epochs(augment)
    return SynsetEvalConfig(num_nets=resolved(setting, quick, "nets"), epochs=epochs, augment=augment,
                            dsa_config=DSAConfig(DSA_STRATEGY[dataset]))  # fmt: skip
