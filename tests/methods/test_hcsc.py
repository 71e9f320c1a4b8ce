"""HCSC / PCL on MoCo v2: warm-up, the hierarchy in checkpointed buffers, the losses' composition, the switches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.cluster import ClusterLevel
from contrastkit.data.batch import Batch
from contrastkit.data.sources import TensorSource
from contrastkit.losses.selective import instance_keep_probability
from contrastkit.methods.base import EpochContext, FitContext
from contrastkit.methods.hcsc import HCSC, keep_rates_by_class

N, D = 64, 4


class Flat(nn.Module):
    num_features = 12

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def make(**options: object) -> HCSC:
    torch.manual_seed(0)
    defaults = {"num_clusters": (8, 4, 2), "warmup_epochs": 1, "queue_size": 32, "key_batch_norm": "plain",
                "projection_dim": D, "hidden_dim": 6, "kmeans_backend": "torch", "kmeans_nredo": 1}  # fmt: skip
    model = HCSC(Flat(), None, **{**defaults, **options}).double()
    images = torch.randn(N, 1, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.arange(N) % 4
    model.on_fit_start(FitContext(TensorSource(images, labels), torch.device("cpu"), "32", 7, 8, 8, 64, 1, 0))
    model.images = images  # type: ignore[assignment]
    return model


def epoch(model: HCSC, e: int) -> None:
    images = model.images  # type: ignore[attr-defined]
    model.on_epoch_start(EpochContext(e, 8 * e, lambda fn=None: fn(images)))


def step(model: HCSC, rows: slice = slice(0, 8)) -> dict[str, torch.Tensor]:
    x = model.images[rows]  # type: ignore[attr-defined,index]
    return model.training_step(Batch(views=(x, x.flip(-1)), indices=torch.arange(N)[rows]))


def test_warmup_epochs_train_plain_moco_then_the_hierarchy_appears() -> None:
    model = make()
    epoch(model, 0)
    assert not bool(model.hierarchy_ready)
    out = step(model)
    assert float(out["loss_prototype"]) == 0.0 and float(out["loss"].detach()) == float(out["loss_instance"])
    epoch(model, 1)
    assert bool(model.hierarchy_ready) and model.assignments_0.shape == (N,)
    # composed assignments: a level-1 cluster is the parent of the level-0 cluster of the same item
    assert torch.equal(model.assignments_1, model.parents_0[model.assignments_0])
    assert model.history[-1]["kmeans_seconds"] >= 0 and "keep_same_level1" in model.history[-1]
    assert float(step(model)["loss_prototype"]) > 0


def test_hierarchy_survives_a_checkpoint_round_trip() -> None:
    model = make()
    epoch(model, 1)
    fresh = make()
    assert fresh.assignments_0.numel() == 0
    fresh.load_state_dict(model.state_dict())
    assert bool(fresh.hierarchy_ready) and torch.equal(fresh.assignments_2, model.assignments_2)
    assert torch.equal(fresh.centroids_1, model.centroids_1)


def test_selection_off_is_pcl_and_everything_off_is_moco() -> None:
    """PCL: instance loss = MoCo's InfoNCE (one level, no masks); all off: the loss equals MoCo's exactly."""
    pcl = make(instance_selection=False, prototype_selection=False)
    epoch(pcl, 1)
    k, _ = pcl.keys(pcl.images[:8].flip(-1))  # type: ignore[attr-defined,index]
    _, q = pcl.queries(pcl.images[:8])  # type: ignore[attr-defined,index]
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ pcl.queue.T], 1) / pcl.temperature
    out = step(pcl)
    assert torch.allclose(out["loss_instance"], F.cross_entropy(logits, torch.zeros(8, dtype=torch.long)), atol=1e-12)
    moco = make(instance_selection=False, prototype_selection=False, prototype_loss=False)
    epoch(moco, 1)
    assert not bool(moco.hierarchy_ready)
    assert float(step(moco)["loss_prototype"]) == 0.0


def test_instance_level_reduction_sum_is_levels_times_mean_given_the_same_masks() -> None:
    summed, mean = make(instance_level_reduction="sum"), make(instance_level_reduction="mean")
    for model in (summed, mean):
        epoch(model, 1)
    a, b = step(summed), step(mean)  # same seed, same key step: the same masks
    assert torch.allclose(a["loss_instance"], 3 * b["loss_instance"], atol=1e-12)


def test_neg_inf_fill_gives_a_lower_instance_loss_than_zero_fill() -> None:
    """Removing dropped negatives from the denominator lowers the loss; zeroing them keeps exp(0) = 1 each."""
    zero, neg_inf = make(mask_fill="zero"), make(mask_fill="neg_inf")
    for model in (zero, neg_inf):
        epoch(model, 1)
    assert float(step(neg_inf)["loss_instance"]) < float(step(zero)["loss_instance"])


def test_keep_rates_split_same_and_other_class_pairs() -> None:
    """Two classes, each its own tight cluster: same-class negatives are dropped, other-class ones kept."""
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    labels = torch.arange(200) % 2
    memory = F.normalize(centres[labels] + 0.01 * torch.randn(200, 2, generator=g), dim=1)
    level = ClusterLevel(labels.clone(), centres, torch.full((2,), 0.05), None)
    rates = keep_rates_by_class(memory, labels, [level], queries=50, negatives=100)
    keep = instance_keep_probability(memory, centres, torch.full((2,), 0.05), labels)
    assert rates["keep_same_level1"] < 0.01 < 0.99 < rates["keep_other_level1"]
    same = labels[:, None] == labels[None, :]
    assert keep[same].mean() < 0.01  # the closed form agrees on all pairs


def test_bad_switches_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="mask_fill must be one of zero, neg_inf"):
        make(mask_fill="drop")
    with pytest.raises(ValueError, match="strictly decreasing"):
        make(num_clusters=(4, 8))
