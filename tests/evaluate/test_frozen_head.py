"""The frozen-head protocol: float64 closed-form gradients of its four losses, convergence of the L-BFGS fit, the
stratified validation carve, and the L2 selection on constructed cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.evaluate.frozen_head import (
    GRAD_TOLERANCE,
    HEAD_LOSSES,
    fit_frozen_head,
    frozen_head_protocol,
    head_loss,
    head_objective,
    select_l2,
    stratified_holdout,
)
from contrastkit.evaluate.protocols import evaluate_frozen_head
from contrastkit.losses import build_classification_loss
from contrastkit.losses.class_balanced import class_balanced_weights, inverse_frequency_weights

COUNTS = [9, 5, 2]


def _logits_and_labels(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    return 2.0 * torch.randn(len(labels), len(COUNTS), generator=g, dtype=torch.float64), labels


def _closed_form_gradient(loss: str, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """dL/dz [N, K] by hand: (q - e_y) scaled per sample for the CE family; the focal derivative
    (e_y - q) [gamma p (1 - p)^(gamma - 1) log p - (1 - p)^gamma] / N with p = q_y (Lin et al., ICCV 2017)."""
    q = z.softmax(dim=1)
    onehot = F.one_hot(y, z.shape[1]).double()
    n = z.shape[0]
    if loss == "ce":
        return (q - onehot) / n
    if loss == "weighted_ce":
        assert w is not None
        return w[y, None] * (q - onehot) / w[y].sum()
    if loss == "class_balanced":
        assert w is not None
        return w[y, None] * (q - onehot) / n
    p = q.gather(1, y[:, None])
    return (onehot - q) * (2.0 * p * (1 - p) * p.log() - (1 - p) ** 2) / n


@pytest.mark.parametrize("loss", HEAD_LOSSES)
def test_head_losses_have_their_closed_form_gradients_in_float64(loss: str) -> None:
    z, y = _logits_and_labels()
    weights = {"weighted_ce": inverse_frequency_weights(COUNTS), "class_balanced": class_balanced_weights(COUNTS)}
    w = weights.get(loss)
    z.requires_grad_(True)
    value = head_loss(loss, z, y, w)
    (grad,) = torch.autograd.grad(value, z)
    assert value.dtype == torch.float64
    assert torch.allclose(grad, _closed_form_gradient(loss, z.detach(), y, w), rtol=1e-12, atol=1e-15)
    # the same loss as the training losses of the baselines (float32 there)
    reference = build_classification_loss(loss, COUNTS)(z.detach().float(), y)
    assert float(value.detach()) == pytest.approx(float(reference), rel=1e-5)


def test_weighted_losses_differ_as_their_normalisations_say() -> None:
    """weighted_ce divides by the batch's summed weights, class_balanced by N: brute force per sample."""
    z, y = _logits_and_labels(1)
    w = inverse_frequency_weights(COUNTS)
    ce = [float(-z[i].log_softmax(0)[y[i]]) for i in range(len(y))]
    wce = sum(float(w[y[i]]) * ce[i] for i in range(len(y))) / sum(float(w[y[i]]) for i in range(len(y)))
    assert float(head_loss("weighted_ce", z, y, w)) == pytest.approx(wce, rel=1e-12)
    cb = class_balanced_weights(COUNTS, 0.999)
    mean_cb = sum(float(cb[y[i]]) * ce[i] for i in range(len(y))) / len(y)
    assert float(head_loss("class_balanced", z, y, cb)) == pytest.approx(mean_cb, rel=1e-12)
    with pytest.raises(ValueError, match="needs class weights"):
        head_loss("class_balanced", z, y)


def _gaussians(counts: list[int], seed: int, dim: int = 6, shift: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian classes (not separable) with a feature of scale 100 and a constant feature."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    x = torch.randn(len(y), dim, generator=g) + shift * F.one_hot(y, dim).float()
    x[:, -2] *= 100.0
    x[:, -1] = 3.0
    return x, y


@pytest.mark.parametrize("loss", HEAD_LOSSES)
def test_fitted_head_is_a_stationary_point(loss: str) -> None:
    x, y = _gaussians([60, 25, 10], 0)
    head = fit_frozen_head(x, y, loss=loss, l2=1e-3)
    assert head.grad_max <= GRAD_TOLERANCE and head.iterations > 1
    # the gradient recomputed independently, in the head's own standardised coordinates
    z = (x.double() - head.mean) / head.std
    w, b = head.weight.clone().requires_grad_(True), head.bias.clone().requires_grad_(True)
    counts = torch.bincount(y).tolist()
    weights = {"weighted_ce": inverse_frequency_weights(counts), "class_balanced": class_balanced_weights(counts)}
    grads = torch.autograd.grad(head_objective(w, b, z, y, loss, 1e-3, weights.get(loss)), [w, b])
    assert max(float(g.abs().max()) for g in grads) <= GRAD_TOLERANCE
    assert torch.equal(head.std[-1], torch.tensor(1.0, dtype=torch.float64))  # a constant feature keeps std 1


def test_ce_head_matches_multinomial_logistic_regression() -> None:
    """CE + (l2/2)||W||^2 (mean over N) is sklearn's multinomial logistic regression with C = 1 / (l2 N)."""
    from sklearn.linear_model import LogisticRegression

    x, y = _gaussians([50, 30, 20], 1)
    head = fit_frozen_head(x, y, loss="ce", l2=1e-2)
    z = ((x.double() - head.mean) / head.std).numpy()
    reference = LogisticRegression(C=1.0 / (1e-2 * len(y)), tol=1e-12, max_iter=10_000).fit(z, y.numpy())
    probs = torch.from_numpy(reference.predict_proba(z))
    assert torch.allclose(head.logits(x).softmax(dim=1), probs, atol=1e-4)  # max |grad| <= 1e-5 at both ends


def test_stratified_holdout_takes_a_fifth_of_each_class_but_at_least_one() -> None:
    labels = torch.tensor([0] * 50 + [1] * 7 + [2] * 2 + [3] * 3)
    fit, val = stratified_holdout(labels, 0.2, seed=3)
    assert torch.bincount(labels[val]).tolist() == [10, 1, 1, 1]  # round(0.2 * n), at least one
    assert torch.bincount(labels[fit]).tolist() == [40, 6, 1, 2]  # never all of a class
    assert sorted(torch.cat([fit, val]).tolist()) == list(range(len(labels)))
    again, other = stratified_holdout(labels, 0.2, seed=3)[1], stratified_holdout(labels, 0.2, seed=4)[1]
    assert torch.equal(val, again) and not torch.equal(val, other)
    with pytest.raises(ValueError, match="class 1 has 1 image"):
        stratified_holdout(torch.tensor([0, 0, 1]), 0.2)


def test_l2_selection_on_constructed_cases() -> None:
    # 1-D, imbalanced fit set, balanced validation: a strong penalty leaves the bias (the prior) in charge, every
    # validation image goes to the majority class (macro-F1 = (2/3 + 0) / 2); a weak penalty separates the classes
    g = torch.Generator().manual_seed(0)
    fit_y = torch.tensor([0] * 90 + [1] * 10)
    fit_x = (2.0 * fit_y - 1.0 + 0.5 * torch.randn(100, generator=g))[:, None]
    val_y = torch.tensor([0] * 50 + [1] * 50)
    val_x = (2.0 * val_y - 1.0 + 0.5 * torch.randn(100, generator=g))[:, None]
    chosen, scores = select_l2(fit_x, fit_y, val_x, val_y, loss="ce", l2_grid=(100.0, 1e-4))
    assert chosen == 1e-4 and scores[100.0] == pytest.approx(1 / 3) and scores[1e-4] > 0.9
    # every value scores 1 on well-separated classes: the tie goes to the larger penalty
    far_x = 5.0 * (2.0 * val_y - 1.0)[:, None]
    chosen, scores = select_l2(far_x, val_y, far_x, val_y, loss="weighted_ce", l2_grid=(1e-4, 1e-2))
    assert scores == {1e-2: 1.0, 1e-4: 1.0} and chosen == 1e-2


def test_protocol_is_deterministic_and_its_metrics_name_the_loss() -> None:
    x, y = _gaussians([80, 30, 12], 2)
    queries, query_y = _gaussians([40, 40, 40], 3)
    first = frozen_head_protocol(x, y, loss="class_balanced", seed=5)
    second = frozen_head_protocol(x, y, loss="class_balanced", seed=5)
    assert torch.equal(first.head.weight, second.head.weight) and first.l2_scores == second.l2_scores
    assert first.head.l2 in first.l2_scores and (first.fit_size, first.val_size) == (98, 24)
    measured, recall, result = evaluate_frozen_head(x, y, queries, query_y, loss="focal", query_text="QUERIES")
    assert set(measured) == {"accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "auc_macro_ovr"}
    assert all("focal loss" in m.protocol and "QUERIES" in m.protocol for m in measured.values())
    assert measured["balanced_accuracy"].value == pytest.approx(sum(recall) / 3)
    assert measured["macro_f1"].value > 0.6 and result.head.loss == "focal"
