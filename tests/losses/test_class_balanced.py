"""Class-balanced (Cui et al. 2019) and inverse-frequency weights and losses against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import (
    ClassBalancedLoss,
    class_balanced_loss,
    class_balanced_weights,
    focal_loss,
    inverse_frequency_weights,
)

HAM = [3353, 557, 550, 257, 164, 71, 58]


def brute_force_cb_weights(counts: list[int], beta: float) -> list[float]:
    """(1 - beta) / (1 - beta^n_c), normalised to sum to the number of classes, in plain float64 Python."""
    raw = [(1.0 - beta) / (1.0 - beta**n) for n in counts]
    return [w * len(counts) / math.fsum(raw) for w in raw]


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
@pytest.mark.parametrize("counts", [HAM, [5, 5, 5], [1, 2, 1000], [10]])
def test_cb_weights_match_formula_and_sum_to_k(beta: float, counts: list[int]) -> None:
    got = class_balanced_weights(counts, beta)
    assert got.dtype == torch.float64 and got.shape == (len(counts),)
    torch.testing.assert_close(got, torch.tensor(brute_force_cb_weights(counts, beta), dtype=torch.float64))
    assert abs(got.sum().item() - len(counts)) < 1e-12
    # rarer classes weigh more (strictly, when counts differ)
    order = sorted(range(len(counts)), key=lambda c: counts[c])
    assert all(got[a] >= got[b] for a, b in zip(order, order[1:], strict=False))


def test_cb_weights_differ_from_uniform_on_ham_profile() -> None:
    """Regression: 1 - beta^n was once computed as 1 - (1 - beta)^n, which made every weight 1."""
    w = class_balanced_weights(HAM, 0.999)
    assert w.max() / w.min() > 10
    assert w[-1] > 2.0 and w[0] < 0.2


def test_cb_weights_beta_limits() -> None:
    for beta in (0.0, 1e-12, 1e-6):
        torch.testing.assert_close(class_balanced_weights(HAM, beta), torch.ones(7, dtype=torch.float64))
    # beta -> 1: effective number -> n_c, so the weights tend to inverse frequency
    near_one = class_balanced_weights(HAM, 1 - 1e-9)
    torch.testing.assert_close(near_one, inverse_frequency_weights(HAM), rtol=1e-5, atol=1e-6)


def test_inverse_frequency_weights() -> None:
    counts = [100, 10, 1]
    w = inverse_frequency_weights(counts)
    raw = [1 / 100, 1 / 10, 1.0]
    torch.testing.assert_close(w, torch.tensor([3 * r / sum(raw) for r in raw], dtype=torch.float64))
    assert abs(w.sum().item() - 3) < 1e-12
    assert w[2] / w[0] == pytest.approx(100.0)
    torch.testing.assert_close(inverse_frequency_weights(torch.tensor([4, 4])), torch.ones(2, dtype=torch.float64))


def test_cb_loss_is_weighted_sample_mean_of_ce() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 0, 1, 2, 2, 0])
    counts = [50, 7, 3]
    w = class_balanced_weights(counts, 0.99)
    ce = F.cross_entropy(logits, y, reduction="none")
    want = (w[y] * ce).mean()  # Cui et al.: mean over samples, not divided by the weight sum
    got = class_balanced_loss(logits, y, counts, 0.99)
    assert abs(got.item() - want.item()) < 1e-6  # weights are applied in float32
    per = class_balanced_loss(logits, y, counts, 0.99, reduction="none")
    torch.testing.assert_close(per, w[y] * ce, rtol=1e-6, atol=1e-7)
    assert class_balanced_loss(logits, y, counts, 0.99, reduction="sum").item() == pytest.approx(
        (w[y] * ce).sum().item(), rel=1e-6
    )
    # beta = 0: plain CE
    torch.testing.assert_close(class_balanced_loss(logits, y, counts, 0.0), F.cross_entropy(logits, y))


def test_cb_focal_variant_and_module() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 3, 0])
    counts = torch.tensor([40, 20, 10, 5])
    w = class_balanced_weights(counts, 0.999).float()
    torch.testing.assert_close(
        class_balanced_loss(logits, y, counts, 0.999, base_loss="focal", gamma=2.0),
        focal_loss(logits, y, 2.0, w),
    )
    module = ClassBalancedLoss(counts, 0.999)
    assert "weights" in dict(module.named_buffers())
    torch.testing.assert_close(module(logits, y), class_balanced_loss(logits, y, counts, 0.999))
    torch.testing.assert_close(
        ClassBalancedLoss(counts, 0.999, base_loss="focal", gamma=1.0)(logits, y), focal_loss(logits, y, 1.0, w)
    )
    logits.requires_grad_(True)
    (grad,) = torch.autograd.grad(module(logits, y), logits)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: class_balanced_weights([10, 0, 3]), ">= 1"),
        (lambda: class_balanced_weights([], 0.9), "non-empty"),
        (lambda: class_balanced_weights([10, 5], 1.0), "beta"),
        (lambda: class_balanced_weights([10, 5], -0.1), "beta"),
        (lambda: class_balanced_weights([10, "a"], 0.9), "counts"),
        (lambda: inverse_frequency_weights([3, float("nan")]), ">= 1"),
        (lambda: class_balanced_loss(torch.randn(2, 3), torch.tensor([0, 1]), [5, 5]), "3 columns"),
        (lambda: class_balanced_loss(torch.randn(2, 2), torch.tensor([0, 1]), [5, 5], base_loss="l2"), "base_loss"),
        (lambda: ClassBalancedLoss([5, 5], base_loss="x"), "base_loss"),
        (lambda: ClassBalancedLoss([5, 5])(torch.randn(2, 3), torch.tensor([0, 1])), "class weights"),
    ],
)
def test_bad_inputs_raise(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
