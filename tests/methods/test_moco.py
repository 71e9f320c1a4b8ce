"""MoCo v2: the loss against its closed form, the EMA, the FIFO queue, no gradient into keys, shuffle-BN."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.data.batch import Batch
from contrastkit.methods.base import FitContext, StepContext
from contrastkit.methods.moco import MoCo


class TinyBackbone(nn.Module):
    """A linear map with a batch norm: its keys depend on the rows normalised together (shuffle-BN is visible)."""

    def __init__(self, dim: int = 12, features: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, features)
        self.norm = nn.BatchNorm1d(features)
        self.num_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x.flatten(1)))


def make(queue: int = 16, splits: int = 2, key_batch_norm: str = "shuffle", dtype: torch.dtype = torch.float32) -> MoCo:
    torch.manual_seed(0)
    model = MoCo(TinyBackbone(), None, projection_dim=4, hidden_dim=6, temperature=0.2, momentum=0.9,
                 queue_size=queue, key_batch_norm=key_batch_norm, bn_splits=splits)  # fmt: skip
    return model.to(dtype)


def fit_start(model: MoCo, batch_size: int = 8, seed: int = 3) -> None:
    model.on_fit_start(FitContext(None, torch.device("cpu"), "32", seed, batch_size, 10, 100, 1, 0))


def views(n: int = 8, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 3, 4, generator=g, dtype=dtype), torch.randn(n, 1, 3, 4, generator=g, dtype=dtype)


def test_loss_is_cross_entropy_of_positive_against_queue_in_float64() -> None:
    model = make(dtype=torch.float64)
    fit_start(model)
    vq, vk = views(dtype=torch.float64)
    k, _ = model.keys(vk)  # the shuffle of key step 0, the one the training step uses
    out = model.training_step(Batch(views=(vq, vk)))
    q = F.normalize(model.projection_head(model.backbone(vq)), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ model.queue.T], dim=1) / 0.2
    expected = F.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    assert torch.allclose(out["loss"], expected, atol=1e-12, rtol=0)


def test_no_gradient_reaches_the_key_encoder_or_the_queue() -> None:
    model = make()
    fit_start(model)
    model.training_step(Batch(views=views()))["loss"].backward()
    assert all(p.grad is None for p in model.key_encoder.parameters())
    assert not model.queue.requires_grad
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_ema_update_and_fifo_queue_with_wrap_around() -> None:
    model = make(queue=12, splits=1)
    fit_start(model, batch_size=4)
    before = [p.clone() for p in model.key_encoder.parameters()]
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)  # the query moves; the key encoder follows by (1 - m)
    batches = [torch.randn(4, 1, 3, 4) for _ in range(4)]
    all_keys = []
    for i, x in enumerate(batches):
        model.training_step(Batch(views=(x, x), indices=torch.arange(4) + 10 * i))
        all_keys.append(model._pending[-1][0].clone())
        model.on_step_end(StepContext(i + 1, 0.0, Batch(), {}))
        if i == 0:
            query = [*model.backbone.parameters(), *model.projection_head.parameters()]
            for old, new, q in zip(before, model.key_encoder.parameters(), query, strict=True):
                assert torch.allclose(new, 0.9 * old + 0.1 * q, atol=1e-6)
            # running statistics: the key forward leaves them, the EMA moves them towards the query's
            key_norm, query_norm = model.key_encoder[0].norm, model.backbone.norm
            assert torch.allclose(key_norm.running_mean, 0.1 * query_norm.running_mean, atol=1e-7)
            assert int(key_norm.num_batches_tracked) == int(query_norm.num_batches_tracked) == 1
    # 4 batches of 4 into 12 slots: the fourth batch overwrote the first; the pointer wrapped to 4
    assert int(model.queue_pointer) == 4
    assert torch.equal(model.queue[:4], all_keys[3]) and torch.equal(model.queue[4:8], all_keys[1])
    assert model.queue_indices.tolist() == [30, 31, 32, 33, 10, 11, 12, 13, 20, 21, 22, 23]


def test_queue_must_be_a_multiple_of_the_batch() -> None:
    model = make(queue=10)
    with pytest.raises(ValueError, match="multiple of data.batch_size=4"):
        fit_start(model, batch_size=4)


def test_shuffle_bn_normalises_each_permuted_group_on_its_own() -> None:
    model = make(splits=2)
    fit_start(model, seed=5)
    _, vk = views()
    keys, everyone = model.keys(vk)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(5 * 1_000_003))
    brute = torch.empty(8, 4)
    for group in order.view(2, 4):
        brute[group] = F.normalize(model.key_encoder(vk[group]), dim=1)
    assert torch.allclose(keys, brute, atol=1e-6) and torch.equal(keys, everyone)
    plain = F.normalize(model.key_encoder(vk), dim=1)
    assert (keys - plain).abs().max() > 1e-2  # the groups' statistics differ from the whole batch's
    one = make(splits=1)
    fit_start(one)
    assert torch.allclose(one.keys(vk)[0], plain, atol=1e-5)  # one group = the plain batch norm


def test_shuffle_needs_batch_divisible_by_splits() -> None:
    model = make(splits=3)
    fit_start(model, batch_size=8)
    with pytest.raises(ValueError, match="bn_splits=3"):
        model.keys(views()[1])


def test_key_encoder_keeps_local_batch_norm_under_global_conversion() -> None:
    from contrastkit.models.sync_batchnorm import GlobalBatchNorm, convert_to_global_batchnorm

    model = convert_to_global_batchnorm(copy.deepcopy(make()))
    assert isinstance(model.backbone.norm, GlobalBatchNorm)
    assert not isinstance(model.key_encoder[0].norm, GlobalBatchNorm)
