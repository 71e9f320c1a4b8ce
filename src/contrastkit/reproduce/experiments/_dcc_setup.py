"""The setup of ``contrastkit reproduce dcc``: arms, budgets, data and the condensation and evaluation configs of
an arm (the experiment is :mod:`.dcc`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contrastkit.reproduce.experiment import Arm

METHODS = ("random", "dc", "dcc", "dsa", "dsac")
DATASETS = ("mnist", "fashion-mnist", "clutter")
IPCS = (1, 10)
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"width": 32, "batch_real": 32, "outer": 20, "loops": {1: None, 10: (10, 10)}, "nets": 10,
             "epochs": 300, "test": 1000, "train_subset": None},
    "quick": {"width": 8, "batch_real": 8, "outer": 2, "loops": {1: (2, 2), 10: (2, 2)}, "nets": 2, "epochs": 20,
              "test": 200, "train_subset": 1000},
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


def load_dataset(dataset: str, quick: bool) -> dict[str, Any]:
    """Standardised train images/labels and the fixed stratified test subset of ``dataset`` (cached)."""
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
    keep_test = _stratified(test.labels, budget["test"] // 10, seed=0)
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


def make_net_factory(width: int, num_classes: int) -> Any:
    """A ``make_net()`` for the DC ConvNet (depth 3, instancenorm, avg-pool) on 28x28 grey images."""
    from contrastkit.models import ConvNet

    def make_net() -> ConvNet:
        return ConvNet(1, 28, width=width, depth=3, norm="instancenorm", num_classes=num_classes)

    return make_net


def condensation_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.methods.dcc.CondensationConfig` of a condensation arm."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.methods.dcc import CondensationConfig

    method, ipc = str(setting["method"]), int(setting["ipc"])
    budget = budget_of(quick)
    outer = int(setting.get("outer", budget["outer"]))
    loops = budget["loops"][ipc]
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
        batch_real=int(setting.get("batch_real", budget["batch_real"])),
        vmap_chunk_size=1,
        class_grad_method="loop",  # equal to vmap up to rounding, 1.2-1.5x faster on a CPU
    )


def eval_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.evaluate.condensation.SynsetEvalConfig` of an arm."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.evaluate.condensation import SynsetEvalConfig

    method, dataset = str(setting["method"]), str(setting["dataset"])
    budget = budget_of(quick)
    if method in ("dsa", "dsac"):
        augment = "dsa"
    else:
        augment = "dc" if dataset in ("mnist", "clutter") else "none"
    return SynsetEvalConfig(num_nets=budget["nets"], epochs=budget["epochs"], augment=augment,
                            dsa_config=DSAConfig(DSA_STRATEGY[dataset]))  # fmt: skip
