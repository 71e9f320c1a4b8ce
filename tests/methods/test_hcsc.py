"""HCSC / PCL on MoCo v2: warm-up, the hierarchy in checkpointed buffers, the losses' composition, the switches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.augment import RandomResizedCrop, ViewPipeline
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


def multi_crop_step(model: HCSC, local_views: int) -> dict[str, torch.Tensor]:
    """A step whose local "crops" are the query images themselves (identity pipelines), so every term is known."""
    model.local_views = [ViewPipeline([]) for _ in range(local_views)]
    x = model.images[:8]  # type: ignore[attr-defined,index]
    return model.training_step(Batch(views=(x, x.flip(-1), *[x] * local_views), indices=torch.arange(8)))


def test_multi_crop_adds_one_query_term_per_local_view() -> None:
    """MoCo + 2 local views equal to the query view: L_local = 2 x InfoNCE(q, k, queue), and L sums all terms."""
    model = make(instance_selection=False, prototype_selection=False, prototype_loss=False, local_crop_ratios=())
    k, _ = model.keys(model.images[:8].flip(-1))  # type: ignore[attr-defined,index]
    _, q = model.queries(model.images[:8])  # type: ignore[attr-defined,index]
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ model.queue.T], 1) / model.temperature
    out = multi_crop_step(model, 2)
    expected = 2 * F.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    assert torch.allclose(out["loss_local"], expected, atol=1e-12) and float(out["loss_local_prototype"]) == 0.0
    parts = out["loss_instance"] + out["loss_prototype"] + out["loss_local"] + out["loss_local_prototype"]
    assert torch.allclose(out["loss"].detach(), parts, atol=1e-12)


@pytest.mark.parametrize("selection_on_local", [True, False])
def test_local_views_reuse_the_instance_masks_only_with_selection_on_local(selection_on_local: bool) -> None:
    model = make(prototype_loss=False, mask_fill="neg_inf", selection_on_local=selection_on_local)
    epoch(model, 1)
    plain = make(instance_selection=False, prototype_loss=False)
    epoch(plain, 1)
    out, reference = multi_crop_step(model, 3), multi_crop_step(plain, 0)
    expected = 3 * (out["loss_instance"] if selection_on_local else reference["loss_instance"])
    assert torch.allclose(out["loss_local"], expected, atol=1e-12)
    assert not torch.allclose(out["loss_instance"], reference["loss_instance"])  # the masks do change the loss


def test_local_prototype_terms_draw_fresh_masks_per_view() -> None:
    """Without prototype selection a local view equal to the query view repeats L_proto exactly; with it, each
    local view draws its own prototype masks (as the official code does), so the terms differ."""
    pcl = make(instance_selection=False, prototype_selection=False)
    epoch(pcl, 1)
    out = multi_crop_step(pcl, 2)
    assert float(out["loss_prototype"]) > 0
    assert torch.allclose(out["loss_local_prototype"], 2 * out["loss_prototype"], atol=1e-12)
    hcsc = make(mask_fill="neg_inf")
    epoch(hcsc, 1)
    out = multi_crop_step(hcsc, 2)
    assert not torch.allclose(out["loss_local_prototype"], 2 * out["loss_prototype"], atol=1e-6)


def test_multi_crop_draws_smaller_local_views_from_the_images() -> None:
    class Pooled(nn.Module):
        num_features = 12

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(x, (3, 4)).flatten(1)

    torch.manual_seed(0)
    views = ViewPipeline([RandomResizedCrop(size=(12, 16), scale=(0.2, 1.0))])
    model = HCSC(Pooled(), views, num_clusters=(8, 4), queue_size=32, key_batch_norm="plain", projection_dim=D,
                 hidden_dim=6, local_crop_ratios=(0.5, 0.25)).double()  # fmt: skip
    assert [v.ops[0].size for v in model.local_views] == [(6, 8), (3, 4)]
    images = torch.rand(8, 1, 12, 16, dtype=torch.float64)
    params = list(model.projection_head.parameters())
    torch.manual_seed(1)
    out = model.training_step(Batch(images=images, indices=torch.arange(8)))
    assert torch.isfinite(out["loss"]) and float(out["loss_local"]) > 0
    with_local = torch.autograd.grad(out["loss"], params)
    local_views, model.local_views = model.local_views, []
    torch.manual_seed(1)  # the same global views (they are drawn before the local ones)
    without = torch.autograd.grad(model.training_step(Batch(images=images, indices=torch.arange(8)))["loss"], params)
    assert not torch.allclose(with_local[0], without[0])  # the local queries train the query encoder
    model.local_views = local_views
    assert [tuple(v.shape[-2:]) for v in model.make_views(images)] == [(12, 16), (12, 16), (6, 8), (3, 4)]
    with pytest.raises(ValueError, match="needs 4 views per batch, got 2"):
        model.training_step(Batch(views=(images, images.flip(-1)), indices=torch.arange(8)))


def test_multi_crop_config_is_checked() -> None:
    from contrastkit.method_registry import ConfigError
    from contrastkit.methods.hcsc import HCSCConfig

    HCSCConfig(local_crop_ratios=[6 / 7, 3 / 7]).check()
    with pytest.raises(ConfigError, match=r"local_crop_ratios\[1\] must lie in \(0.0, 1.0\]"):
        HCSCConfig(local_crop_ratios=[0.5, 0.0]).check()
    with pytest.raises(ValueError, match="local crops with 3 levels"):
        make(local_crop_ratios=[0.5] * 11)
