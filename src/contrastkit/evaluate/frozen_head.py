r"""The frozen-head protocol: a linear head re-fitted to convergence on frozen, standardised features.

One evaluation for every encoder of an imbalanced-classification comparison (the end-to-end baselines' encoders
and a two-stage method's stage-1 encoder alike), so that a difference between two rows is a difference between
representations, never between how far two heads were trained. With features ``x`` ``[N, D]`` of the TRAINING
images (no augmentation), labels ``y`` ``[N]`` and ``K`` classes:

1. standardise with the training statistics, ``x_hat = (x - mu) / sigma`` (``sigma`` = 1 for a constant feature);
2. fit ``logits = W x_hat + b`` (``W`` ``[K, D]``) from zero by full-batch L-BFGS with a strong-Wolfe line search in
   float64 (deterministic) on

       J(W, b) = L_loss(W x_hat + b, y) + (l2 / 2) ||W||_F^2       (the bias is not penalised)

   where ``L_loss`` is one of (``n_c`` the count of class c in the data being fitted):

   * ``"ce"``: ``mean_n CE_n``;
   * ``"weighted_ce"``: ``sum_n w_{y_n} CE_n / sum_n w_{y_n}``, inverse frequency ``w_c ∝ 1 / n_c``
     (PyTorch's ``F.cross_entropy(weight=w)``);
   * ``"class_balanced"``: ``mean_n w_{y_n} CE_n``, ``w_c ∝ (1 - beta) / (1 - beta^{n_c})``, beta 0.999 (Cui et
     al., CVPR 2019);
   * ``"focal"``: ``mean_n -(1 - p_t)^gamma log p_t``, gamma 2 (Lin et al., ICCV 2017);

   (weights normalised to sum K, :mod:`contrastkit.losses.class_balanced`; the same definitions as
   :func:`contrastkit.losses.build_classification_loss`, here in float64);
3. choose ``l2`` from a fixed grid on a class-stratified validation carve of the training set
   (:func:`stratified_holdout`: ``round(fraction * n_c)`` images of each class, at least one, at least one left to
   fit; seeded): fit on the rest (its own statistics and class weights; from the largest ``l2`` down, each fit
   warm-started at the previous solution: for the convex ``J`` of ce, weighted_ce and class_balanced a matter of
   speed only; focal's ``J`` is not convex, its head is the stationary point this deterministic path reaches), score
   the carve's macro-F1, keep the best (ties: the larger ``l2``);
4. re-fit on the whole training set with the chosen ``l2``, from zero; :attr:`FrozenHead.grad_max` records
   ``max |grad J|`` at the solution (L-BFGS stops at :data:`GRAD_TOLERANCE` or after ``max_iter`` iterations; a
   value above the tolerance means the fit did not converge).

This is an evaluation protocol like the L-BFGS linear probe of :mod:`contrastkit.evaluate.linear` (SimCLR's linear
evaluation, Chen et al., ICML 2020), with the loss as a switch; it trains nothing but the head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit._checks import check_labels, check_tensor
from contrastkit.evaluate.classification import macro_f1
from contrastkit.losses.class_balanced import class_balanced_weights, inverse_frequency_weights
from contrastkit.losses.focal import focal_loss

__all__ = [
    "GRAD_TOLERANCE",
    "HEAD_LOSSES",
    "L2_GRID",
    "FrozenHead",
    "FrozenHeadResult",
    "fit_frozen_head",
    "frozen_head_protocol",
    "head_loss",
    "head_objective",
    "select_l2",
    "stratified_holdout",
]

HEAD_LOSSES = ("ce", "weighted_ce", "class_balanced", "focal")
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
GRAD_TOLERANCE = 1e-5  # L-BFGS stops when max |grad J| <= this (J is a mean loss of order 1)
VAL_FRACTION = 0.2
FOCAL_GAMMA = 2.0
CB_BETA = 0.999


def stratified_holdout(labels: Tensor, fraction: float = VAL_FRACTION, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(fit_index, val_index)`` (sorted LongTensors) of a class-stratified validation carve of ``labels`` ``[N]``:
    ``max(1, round(fraction * n_c))`` random images of each class (seeded by ``seed``), never all of a class."""
    if not isinstance(labels, Tensor) or labels.ndim != 1:
        raise ValueError("labels must be a 1-D tensor [N] of integer class ids")
    check_labels("labels", labels, labels.shape[0])
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    generator = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    val: list[Tensor] = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < 2:
            raise ValueError(f"class {c} has {members.numel()} image; a validation carve needs >= 2 per class")
        k = min(max(1, math.floor(fraction * members.numel() + 0.5)), members.numel() - 1)
        val.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    val_index = torch.cat(val).sort().values
    keep = torch.ones(labels.shape[0], dtype=torch.bool)
    keep[val_index] = False
    return torch.nonzero(keep).flatten(), val_index


def _class_weights(loss: str, labels: Tensor, num_classes: int, cb_beta: float) -> Tensor | None:
    """float64 ``[K]`` weights of ``loss`` from the class counts of ``labels`` (None for the unweighted losses)."""
    if loss not in ("weighted_ce", "class_balanced"):
        return None
    counts = torch.bincount(labels.cpu(), minlength=num_classes).tolist()
    if min(counts) < 1:
        raise ValueError(f"loss {loss!r} needs every class in the fitted data, got counts {counts}")
    if loss == "weighted_ce":
        return inverse_frequency_weights(counts)
    return class_balanced_weights(counts, cb_beta)


def head_loss(
    loss: str, logits: Tensor, labels: Tensor, weights: Tensor | None = None, focal_gamma: float = FOCAL_GAMMA
) -> Tensor:
    """``L_loss(logits [N, K], labels [N])`` in the logits' dtype (see the module docstring); ``weights`` ``[K]``
    are needed by ``weighted_ce`` and ``class_balanced``."""
    if loss not in HEAD_LOSSES:
        raise ValueError(f"loss must be one of {HEAD_LOSSES}, got {loss!r}")
    if loss in ("weighted_ce", "class_balanced") and weights is None:
        raise ValueError(f"loss {loss!r} needs class weights [K] (from the training counts)")
    if loss == "focal":
        return focal_loss(logits, labels, focal_gamma)
    if loss == "ce":
        return F.cross_entropy(logits, labels)
    assert weights is not None
    w = weights.to(logits)
    if loss == "weighted_ce":
        return F.cross_entropy(logits, labels, weight=w)
    return (w[labels] * F.cross_entropy(logits, labels, reduction="none")).mean()


def head_objective(
    weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, loss: str, l2: float, class_weights: Tensor | None,
    focal_gamma: float = FOCAL_GAMMA,
) -> Tensor:  # fmt: skip
    """``J(W, b) = L_loss(x W^T + b, y) + (l2 / 2) ||W||^2`` on (standardised) features ``x`` ``[N, D]``."""
    return head_loss(loss, x @ weight.T + bias, y, class_weights, focal_gamma) + 0.5 * l2 * weight.pow(2).sum()


@dataclass(frozen=True)
class FrozenHead:
    """A fitted head: ``logits = ((x - mean) / std) @ weight.T + bias`` (float64, CPU).

    ``objective`` is ``J`` at the solution, ``grad_max`` = ``max |grad J|`` there, ``iterations`` the L-BFGS
    iterations."""

    weight: Tensor
    bias: Tensor
    mean: Tensor
    std: Tensor
    loss: str
    l2: float
    objective: float
    grad_max: float
    iterations: int

    def logits(self, features: Tensor) -> Tensor:
        """Class logits ``[M, K]`` (float64) of raw features ``[M, D]``."""
        check_tensor("features", features, 2, floating=True)
        x = (features.detach().cpu().double() - self.mean) / self.std
        return x @ self.weight.T + self.bias


def fit_frozen_head(
    features: Tensor,
    labels: Tensor,
    *,
    loss: str,
    l2: float,
    num_classes: int | None = None,
    focal_gamma: float = FOCAL_GAMMA,
    cb_beta: float = CB_BETA,
    max_iter: int = 2000,
    start: FrozenHead | None = None,
) -> FrozenHead:
    """Fit the head on ``features`` ``[N, D]`` / ``labels`` ``[N]`` to convergence (steps 1-2 of the module
    docstring; class weights from ``labels``' counts)."""
    check_tensor("features", features, 2, min_rows=1, floating=True)
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    y = check_labels("labels", labels, features.shape[0], k).cpu().long()
    if loss not in HEAD_LOSSES:
        raise ValueError(f"loss must be one of {HEAD_LOSSES}, got {loss!r}")
    if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    raw = features.detach().cpu().double()
    mean, std = raw.mean(dim=0), raw.std(dim=0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    x = (raw - mean) / std
    class_weights = _class_weights(loss, y, k, cb_beta)
    weight = torch.zeros(k, x.shape[1], dtype=torch.float64)
    bias = torch.zeros(k, dtype=torch.float64)
    if start is not None:  # warm start: the same head map, re-expressed in this data's standardisation
        weight = start.weight * (std / start.std)
        bias = start.bias + start.weight @ ((mean - start.mean) / start.std)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                                  history_size=20, tolerance_grad=GRAD_TOLERANCE, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = head_objective(weight, bias, x, y, loss, float(l2), class_weights, focal_gamma)
        # allowed outside the engine: the L-BFGS closure of an evaluation protocol that fits a linear head to frozen
        # features (no encoder is trained)
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(closure)
        value = head_objective(weight, bias, x, y, loss, float(l2), class_weights, focal_gamma)
        grads = torch.autograd.grad(value, [weight, bias])
    objective = float(value.detach())
    if not math.isfinite(objective):
        raise ValueError(f"the {loss} head diverged (objective {objective}); check the features for NaN / inf")
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    return FrozenHead(weight.detach(), bias.detach(), mean, std, loss, float(l2), objective,
                      max(float(g.abs().max()) for g in grads), iterations)  # fmt: skip


def select_l2(
    fit_features: Tensor, fit_labels: Tensor, val_features: Tensor, val_labels: Tensor, *, loss: str,
    l2_grid: Sequence[float] = L2_GRID, num_classes: int | None = None, focal_gamma: float = FOCAL_GAMMA,
    cb_beta: float = CB_BETA,
) -> tuple[float, dict[float, float]]:  # fmt: skip
    """``(chosen l2, {l2: validation macro-F1})``: a head fitted on the fit part for each ``l2`` of the grid (largest
    first, each warm-started at the previous solution), scored on the validation part; the best macro-F1 wins, ties
    go to the larger ``l2``."""
    if not l2_grid:
        raise ValueError("l2_grid must hold at least one value")
    k = int(max(int(fit_labels.max()), int(val_labels.max()))) + 1 if num_classes is None else num_classes
    scores: dict[float, float] = {}
    head = None
    for l2 in sorted({float(v) for v in l2_grid}, reverse=True):
        head = fit_frozen_head(fit_features, fit_labels, loss=loss, l2=l2, num_classes=k, start=head,
                               focal_gamma=focal_gamma, cb_beta=cb_beta)  # fmt: skip
        scores[l2] = macro_f1(val_labels, head.logits(val_features).argmax(dim=1), num_classes=k)
    best = max(scores.values())
    return max(l2 for l2, score in scores.items() if score == best), scores


@dataclass(frozen=True)
class FrozenHeadResult:
    """:func:`frozen_head_protocol`'s outcome: the head re-fitted on all training features with the chosen ``l2``,
    the validation macro-F1 of every ``l2`` of the grid, and the sizes of the fit / validation parts."""

    head: FrozenHead
    l2_scores: dict[float, float]
    fit_size: int
    val_size: int


def frozen_head_protocol(
    features: Tensor,
    labels: Tensor,
    *,
    loss: str,
    num_classes: int | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    focal_gamma: float = FOCAL_GAMMA,
    cb_beta: float = CB_BETA,
) -> FrozenHeadResult:
    """Steps 1-4 of the module docstring on training features ``[N, D]`` / labels ``[N]``; ``seed`` seeds the
    validation carve (use the data seed, so every encoder of one seed sees the same carve)."""
    check_tensor("features", features, 2, min_rows=2, floating=True)
    y = check_labels("labels", labels, features.shape[0]).cpu().long()
    k = int(y.max()) + 1 if num_classes is None else int(num_classes)
    fit, val = stratified_holdout(y, val_fraction, seed=seed)
    x = features.detach().cpu()
    l2, scores = select_l2(x[fit], y[fit], x[val], y[val], loss=loss, l2_grid=l2_grid, num_classes=k,
                           focal_gamma=focal_gamma, cb_beta=cb_beta)  # fmt: skip
    head = fit_frozen_head(x, y, loss=loss, l2=l2, num_classes=k, focal_gamma=focal_gamma, cb_beta=cb_beta)
    return FrozenHeadResult(head, scores, int(fit.numel()), int(val.numel()))
