"""Projection / prediction / linear heads: shapes, BatchNorm present or absent, closed forms, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.models import (
    LinearClassifier,
    MoCoV2ProjectionHead,
    PredictionHead,
    ProjectionHead,
    SimCLRProjectionHead,
)


def _count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("output_batch_norm", [True, False])
def test_simclr_head_layers_and_batchnorm(num_layers: int, batch_norm: bool, output_batch_norm: bool) -> None:
    head = SimCLRProjectionHead(
        16, 32, 8, num_layers=num_layers, batch_norm=batch_norm, output_batch_norm=output_batch_norm
    )
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert _count(head, nn.Linear) == num_layers
    assert _count(head, nn.ReLU) == num_layers - 1
    expected_bn = (num_layers - 1) * batch_norm + output_batch_norm
    assert _count(head, nn.BatchNorm1d) == expected_bn
    for i, m in enumerate(head.layers):  # a Linear followed by BatchNorm has no bias
        if isinstance(m, nn.Linear):
            followed_by_bn = i + 1 < len(head.layers) and isinstance(head.layers[i + 1], nn.BatchNorm1d)
            assert (m.bias is None) == followed_by_bn


def test_mocov2_head_closed_form_and_no_batchnorm() -> None:
    head = MoCoV2ProjectionHead(6, 10, 3).double()
    assert _count(head, nn.BatchNorm1d) == 0
    lin1, lin2 = [m for m in head.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(5, 6, dtype=torch.float64)
    manual = torch.relu(x @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    torch.testing.assert_close(head(x), manual)
    assert head(x[:1]).shape == (1, 3)  # no BN: a single row is fine in train mode


def test_prediction_head_has_hidden_batchnorm() -> None:
    head = PredictionHead(8, 4, 8)
    assert head(torch.randn(3, 8)).shape == (3, 8)
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(bns) == 1 and bns[0].num_features == 4
    head.train()
    out = head(torch.randn(16, 8) * 10 + 3)
    assert torch.isfinite(out).all()


def test_generic_projection_head_chains_blocks() -> None:
    head = ProjectionHead([(4, 6, nn.BatchNorm1d(6), nn.ReLU()), (6, 2, None, nn.Tanh())])
    assert (head.in_dim, head.out_dim) == (4, 2)
    out = head(torch.randn(3, 4))
    assert out.shape == (3, 2) and out.abs().max() <= 1.0
    with pytest.raises(ValueError, match=r"blocks\[1\] has in_dim 5 but the previous block outputs 6"):
        ProjectionHead([(4, 6, None, None), (5, 2, None, None)])
    with pytest.raises(ValueError, match="at least one block"):
        ProjectionHead([])


def test_linear_classifier_init_shapes_and_stop_gradient() -> None:
    clf = LinearClassifier(512, 10)
    assert clf(torch.randn(3, 512)).shape == (3, 10)
    assert 0.008 < clf.linear.weight.std().item() < 0.012
    assert torch.count_nonzero(clf.linear.bias) == 0
    feats = torch.randn(3, 512, requires_grad=True)
    LinearClassifier(512, 10, stop_gradient=True)(feats).sum().backward()
    assert feats.grad is None
    LinearClassifier(512, 10)(feats).sum().backward()
    assert feats.grad is not None and feats.grad.abs().max() > 0


def test_heads_reject_bad_input() -> None:
    head = SimCLRProjectionHead(16, 32, 8)
    with pytest.raises(ValueError, match=r"expected \[B, 16\] float features"):
        head(torch.randn(4, 15))
    with pytest.raises(ValueError, match=r"expected \[B, 16\] float features"):
        head(torch.randn(4, 16, 1))
    with pytest.raises(ValueError, match="needs a batch of >= 2 rows"):
        head.train()(torch.randn(1, 16))
    assert head.eval()(torch.randn(1, 16)).shape == (1, 8)  # eval-mode BN uses running statistics
    with pytest.raises(ValueError, match=r"expected \[B, 7\] float features"):
        LinearClassifier(7, 2)(torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        SimCLRProjectionHead(16, num_layers=0)
