"""SupervisedClassifier (the imbalance baselines and SuperCon's stage 2): loss switch, freezing, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import (
    CLASSIFICATION_LOSSES,
    build_classification_loss,
    class_balanced_weights,
    focal_loss,
    inverse_frequency_weights,
)
from contrastkit.methods import SupervisedClassifier
from contrastkit.models import ConvNet

COUNTS = [40, 10, 3]


def tiny_backbone() -> ConvNet:
    return ConvNet(in_channels=1, image_size=8, width=8, depth=2, norm="batchnorm")


def test_loss_switch_covers_the_four_losses_with_their_formulas() -> None:
    assert set(CLASSIFICATION_LOSSES) == {"ce", "weighted_ce", "focal", "class_balanced"}
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 0])
    ce = F.cross_entropy(logits, y, reduction="none")
    w_inv = inverse_frequency_weights(COUNTS)
    w_cb = class_balanced_weights(COUNTS, 0.99)
    expected = {
        "ce": ce.mean(),
        "weighted_ce": (w_inv[y] * ce).sum() / w_inv[y].sum(),  # PyTorch's normalised weighted mean
        "focal": focal_loss(logits, y, 2.0),
        "class_balanced": (w_cb[y] * ce).mean(),  # Cui et al.: plain sample mean
    }
    for name in CLASSIFICATION_LOSSES:
        loss = build_classification_loss(name, COUNTS, focal_gamma=2.0, cb_beta=0.99)
        got = loss(logits, y)
        assert abs(got.item() - expected[name].item()) < 1e-5, name
    # the focal gamma is passed through
    got = build_classification_loss("focal", focal_gamma=0.0)(logits, y)
    assert abs(got.item() - ce.mean().item()) < 1e-6


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_each_loss_trains_the_classifier(name: str) -> None:
    torch.manual_seed(0)
    model = SupervisedClassifier(tiny_backbone(), None, 3, loss=name, class_counts=COUNTS)
    assert model.loss_name == name
    images, labels = torch.rand(16, 1, 8, 8), torch.tensor([0] * 10 + [1] * 4 + [2] * 2)
    out = model.training_step((images, labels))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embeddings"].shape == (16, model.backbone.num_features) and not out["embeddings"].requires_grad
    out["loss"].backward()
    assert model.classifier.linear.weight.grad is not None
    assert model.classifier.linear.weight.grad.abs().sum() > 0


def _train_steps(model: SupervisedClassifier, steps: int = 3) -> None:
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.5, momentum=0.9)
    model.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        images = torch.rand(12, 1, 8, 8, generator=g)
        labels = torch.randint(0, 3, (12,), generator=g)
        loss = model.training_step((images, labels))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_freeze_encoder_true_leaves_encoder_unchanged() -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}  # weights AND BatchNorm statistics
    model = SupervisedClassifier(backbone, None, 3, loss="focal", freeze_encoder=True)
    head_before = model.classifier.linear.weight.clone()
    assert all(not p.requires_grad for p in backbone.parameters())
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.classifier.parameters()}
    _train_steps(model)
    assert not model.backbone.training  # model.train() keeps a frozen encoder in eval mode
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(model.classifier.linear.weight, head_before)


def test_freeze_encoder_false_changes_encoder() -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone()
    backbone.requires_grad_(False)  # an earlier freeze of a shared backbone is undone
    before = {k: v.clone() for k, v in backbone.named_parameters()}
    model = SupervisedClassifier(backbone, None, 3, loss="class_balanced", class_counts=COUNTS)
    assert all(p.requires_grad for p in backbone.parameters())
    _train_steps(model)
    assert model.backbone.training
    changed = [k for k, v in backbone.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


def test_forward_is_classifier_of_backbone_and_views_are_used() -> None:
    from contrastkit.augment import simclr_views

    torch.manual_seed(0)
    model = SupervisedClassifier(tiny_backbone(), simclr_views(8, 1), 3).eval()
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model(x), model.classifier(model.backbone(x)))
    (view,) = model.make_views(x)
    assert view.shape == x.shape and not torch.equal(view, x)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: build_classification_loss("mse"), "loss must be one of"),
        (lambda: build_classification_loss("weighted_ce"), "class_counts"),
        (lambda: build_classification_loss("class_balanced"), "class_counts"),
        (lambda: SupervisedClassifier(tiny_backbone(), None, 3, class_counts=[4, 4]), "num_classes"),
        (lambda: SupervisedClassifier(torch.nn.Identity(), None, 3), "num_features"),
        (lambda: SupervisedClassifier(tiny_backbone(), None, 0), "num_classes"),
        (lambda: SupervisedClassifier(tiny_backbone(), None, 3).training_step(torch.rand(4, 1, 8, 8)), "labels"),
        (
            lambda: SupervisedClassifier(tiny_backbone(), None, 3).training_step(
                (torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))
            ),
            r"\[0, 3\)",
        ),
    ],
)
def test_bad_input_raises(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]
