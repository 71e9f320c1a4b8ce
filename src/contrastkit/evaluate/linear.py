"""Offline linear probe: multinomial logistic regression on frozen features.

A linear classifier ``logits = W x_hat + b`` (``W`` ``[C, D]``) is fit on standardised train features
``x_hat = (x - mu) / sigma`` (``mu``, ``sigma`` from the train split only) by minimising

    L(W, b) = mean_i CE(W x_hat_i + b, y_i) + (weight_decay / 2) * ||W||_F^2

and evaluated on the test split. This is the "linear evaluation" protocol of SimCLR (Chen et al., ICML 2020)
as an offline probe, without augmentation (features are extracted once).

Solvers:

* ``"lbfgs"`` (default): full-batch L-BFGS with a strong-Wolfe line search from a zero initialisation. The
  objective is convex (strictly so when ``weight_decay > 0``), so this is deterministic and converges to the
  optimum; 60,000 x 128 features with 10 classes take about a second on 2 CPU cores. ``epochs``,
  ``batch_size`` and ``seed`` are unused.
* ``"adam"``: mini-batch Adam with a cosine learning-rate decay over ``epochs`` (shuffled with a generator
  seeded by ``seed``); use it when the features do not fit on the device at once. Slow on CPU: ~0.5 s per
  epoch at 60,000 x 128 with batch 256 on a free core, several times more when the cores are contended.

The reported accuracies are those of the final classifier (never the best epoch on the test split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_positive, check_tensor

__all__ = ["LinearProbeResult", "linear_probe"]

_SOLVERS = ("lbfgs", "adam")
_DEFAULT_LR = {"lbfgs": 1.0, "adam": 1e-3}


@dataclass
class LinearProbeResult:
    """Outcome of :func:`linear_probe`.

    Attributes:
        train_accuracy: top-1 accuracy in ``[0, 1]`` on the train features.
        test_accuracy: top-1 accuracy in ``[0, 1]`` on the test features.
        classifier: ``nn.Linear(D, C)`` on the CPU acting on **raw** features: the standardisation is folded
            in, ``W' = W / sigma`` and ``b' = b - W' mu``.
        test_logits: ``[M, C]`` float32 logits of the test features (CPU), e.g. for :func:`ovr_auc`.
        final_loss: the training objective at the end (cross-entropy + weight-decay term).
    """

    train_accuracy: float
    test_accuracy: float
    classifier: nn.Linear
    test_logits: Tensor
    final_loss: float

    def predict(self, features: Tensor) -> Tensor:
        """Class predictions ``[M]`` for raw features ``[M, D]`` (on the CPU)."""
        check_tensor("features", features, 2, floating=True)
        with torch.no_grad():
            return self.classifier(features.detach().float().cpu()).argmax(dim=1)


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _fit_lbfgs(
    linear: nn.Linear, x: Tensor, y: Tensor, lr: float, weight_decay: float, max_iter: int
) -> None:
    optimizer = torch.optim.LBFGS(
        linear.parameters(),
        lr=lr,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = _objective(linear, x, y, weight_decay)
        # allowed outside the engine: the probe's L-BFGS closure fits a linear map to frozen features (an
        # evaluation protocol, not a training run)
        loss.backward()
        return loss

    optimizer.step(closure)


def _fit_adam(
    linear: nn.Linear,
    x: Tensor,
    y: Tensor,
    lr: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    seed: int,
) -> None:
    optimizer = torch.optim.Adam(linear.parameters(), lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = x.shape[0]
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            # allowed outside the engine: the probe's mini-batch solver on frozen features (evaluation, not training)
            _objective(linear, x[idx], y[idx], weight_decay).backward()
            optimizer.step()


def _objective(linear: nn.Linear, x: Tensor, y: Tensor, weight_decay: float) -> Tensor:
    loss = F.cross_entropy(linear(x), y)
    if weight_decay > 0:
        loss = loss + 0.5 * weight_decay * linear.weight.pow(2).sum()
    return loss


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int | None = None,
    solver: str = "lbfgs",
    epochs: int = 100,
    max_iter: int = 500,
    lr: float | None = None,
    weight_decay: float = 1e-5,
    batch_size: int = 256,
    standardize: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> LinearProbeResult:
    """Fit a linear classifier on frozen train features ``[N, D]`` and score it on test features ``[M, D]``.

    Args:
        train_features, test_features: floating point, same ``D``; ``N >= 1``, ``M >= 1``.
        train_labels, test_labels: integer class ids ``[N]`` / ``[M]`` in ``[0, num_classes)``.
        num_classes: ``C``; ``None`` uses ``max(train_labels, test_labels) + 1``.
        solver: ``"lbfgs"`` (full batch, default) or ``"adam"`` (mini-batch); see the module docstring.
        epochs: Adam epochs (Adam only).
        max_iter: L-BFGS iterations (L-BFGS only).
        lr: step size; ``None`` gives 1.0 for L-BFGS (scaled by the line search) and 1e-3 for Adam.
        weight_decay: ``lambda >= 0`` of the penalty ``lambda/2 ||W||^2`` (the bias is not penalised).
        batch_size: Adam mini-batch size (Adam only).
        standardize: z-score every feature with the train mean / std (a constant feature keeps std 1).
        seed: seeds the Adam shuffling. L-BFGS starts from zero weights and needs no randomness.
        device: where to train; ``None`` uses the train features' device.

    Returns:
        A :class:`LinearProbeResult`. Identical inputs and seed give identical results on the same device.
    """
    check_tensor("train_features", train_features, 2, min_rows=1, floating=True)
    check_tensor("test_features", test_features, 2, min_rows=1, floating=True)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features dim {train_features.shape[1]} != test_features dim {test_features.shape[1]}; "
            "embed both with the same model"
        )
    check_labels("train_labels", train_labels, train_features.shape[0])
    check_labels("test_labels", test_labels, test_features.shape[0])
    if num_classes is None:
        num_classes = max(int(train_labels.max()), int(test_labels.max())) + 1
    _check_int("num_classes", num_classes, 1)
    check_labels("train_labels", train_labels, train_features.shape[0], num_classes)
    check_labels("test_labels", test_labels, test_features.shape[0], num_classes)
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    _check_int("epochs", epochs, 1)
    _check_int("max_iter", max_iter, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    lr = _DEFAULT_LR[solver] if lr is None else lr
    check_positive("lr", lr)
    if not isinstance(weight_decay, (int, float)) or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")

    dev = train_features.device if device is None else torch.device(device)
    x_train = train_features.detach().to(dev, torch.float32)
    x_test = test_features.detach().to(dev, torch.float32)
    y_train = train_labels.to(dev, torch.long)
    y_test = test_labels.to(dev, torch.long)
    dim = x_train.shape[1]
    if standardize:
        mean = x_train.mean(dim=0)
        std = x_train.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
    else:
        mean = torch.zeros(dim, device=dev)
        std = torch.ones(dim, device=dev)
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std

    linear = nn.Linear(dim, num_classes).to(dev)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
    with torch.enable_grad():
        if solver == "lbfgs":
            _fit_lbfgs(linear, x_train, y_train, lr, float(weight_decay), max_iter)
        else:
            _fit_adam(linear, x_train, y_train, lr, float(weight_decay), epochs, batch_size, seed)

    with torch.no_grad():
        final_loss = float(_objective(linear, x_train, y_train, float(weight_decay)))
        if not math.isfinite(final_loss):
            raise ValueError(f"linear probe diverged (loss {final_loss}); lower lr or use solver='lbfgs'")
        train_acc = float((linear(x_train).argmax(dim=1) == y_train).double().mean())
        test_logits = linear(x_test)
        test_acc = float((test_logits.argmax(dim=1) == y_test).double().mean())
        folded = nn.Linear(dim, num_classes)
        weight = (linear.weight / std).cpu()
        folded.weight.copy_(weight)
        folded.bias.copy_(linear.bias.cpu() - weight @ mean.cpu())
    return LinearProbeResult(
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        classifier=folded,
        test_logits=test_logits.float().cpu(),
        final_loss=final_loss,
    )
