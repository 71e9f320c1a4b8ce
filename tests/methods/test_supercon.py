"""SuperCon: stage 1 is SupCon on the projections (NT-Xent when every class is one image's two views; anchors
without positives handled), stage 2 the classifier switches (loss, frozen or fine-tuned encoder)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.augment import simclr_views
from contrastkit.data import Batch
from contrastkit.losses import CLASSIFICATION_LOSSES, ClassBalancedLoss, FocalLoss, nt_xent, supcon
from contrastkit.methods import SuperCon, SupervisedClassifier, supercon_classifier
from contrastkit.models import ConvNet


def tiny(**kw: object) -> SuperCon:
    backbone = ConvNet(in_channels=1, image_size=8, width=8, depth=2, norm="batchnorm")
    return SuperCon(backbone, kw.pop("views", simclr_views(8, 1)), projection_dim=16, **kw)  # type: ignore[arg-type]


def test_step_is_supcon_of_the_projections_over_all_anchors() -> None:
    torch.manual_seed(0)
    method = tiny(views=None, temperature=0.2, base_temperature=0.07)
    v1, v2 = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    out = method.training_step(Batch(views=(v1, v2), labels=labels))
    z = method(torch.cat([v1, v2]))  # BN statistics of the joint batch, as in the step
    expected = supcon(z, labels.repeat(2), 0.2, 0.07, reduction="none").mean()
    torch.testing.assert_close(out["loss"], expected)
    assert out["embeddings"].shape == (6, method.backbone.num_features)
    again = method.training_step({"views": [v1, v2], "labels": labels})  # a loader's mapping
    torch.testing.assert_close(again["loss"], expected)


def test_equals_nt_xent_when_each_class_is_the_two_views_of_one_image() -> None:
    """Every label distinct within a view, base_temperature = temperature: SupCon is exactly NT-Xent."""
    torch.manual_seed(1)
    for tau in (0.07, 0.5):
        for reduction in ("all_anchors", "nonzero_anchors"):
            method = tiny(views=None, temperature=tau, base_temperature=tau, supcon_reduction=reduction).double()
            v1, v2 = torch.rand(5, 1, 8, 8, dtype=torch.float64), torch.rand(5, 1, 8, 8, dtype=torch.float64)
            loss = method.training_step(Batch(views=(v1, v2), labels=torch.tensor([4, 0, 3, 1, 2])))["loss"]
            z = method(torch.cat([v1, v2]))
            torch.testing.assert_close(loss, nt_xent(z[:5], z[5:], tau), rtol=1e-12, atol=1e-12)
    # with tau != tau_base the loss is NT-Xent scaled by tau / tau_base
    z = torch.randn(8, 4, dtype=torch.float64)
    scaled = tiny(temperature=0.2, base_temperature=0.1).loss(z, torch.arange(4).repeat(2))
    torch.testing.assert_close(scaled, 2 * nt_xent(z[:4], z[4:], 0.2))


def test_anchor_without_positive_is_finite_and_reductions_differ_as_specified() -> None:
    """A singleton class (one view, n_views = 1): the anchor has no positive. all_anchors: it adds 0 to a mean
    over all anchors (Khosla et al., NeurIPS 2020); nonzero_anchors: it leaves the denominator."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2])  # anchor 4 has no positive
    per = supcon(z, labels, 0.1, 0.07, reduction="none")
    assert per[4].item() == 0.0 and torch.isfinite(per).all()
    all_anchors = tiny(temperature=0.1, base_temperature=0.07).loss(z, labels)
    nonzero = tiny(temperature=0.1, base_temperature=0.07, supcon_reduction="nonzero_anchors").loss(z, labels)
    torch.testing.assert_close(all_anchors, per.sum() / 5)
    torch.testing.assert_close(nonzero, per[:4].mean())
    (grad,) = torch.autograd.grad(all_anchors, z)
    assert torch.isfinite(grad).all()
    # no anchor with a positive at all: 0, finite gradient
    lonely = torch.randn(4, 6, requires_grad=True)
    loss = tiny().loss(lonely, torch.arange(4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(lonely.grad).all()


def test_step_gives_gradients_to_backbone_and_head() -> None:
    torch.manual_seed(3)
    method = tiny()
    out = method.training_step((torch.rand(8, 1, 8, 8), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])))
    out["loss"].backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    head = method.projection_head
    assert method(torch.rand(3, 1, 8, 8)).shape == (3, 16)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.modules()) == 2  # Linear -> ReLU -> Linear


@pytest.mark.parametrize("stage2_loss", CLASSIFICATION_LOSSES)
def test_stage2_loss_switch(stage2_loss: str) -> None:
    stage1 = tiny()
    model = supercon_classifier(stage1, 4, stage2_loss=stage2_loss, class_counts=[30, 10, 5, 2])
    assert isinstance(model, SupervisedClassifier) and model.loss_name == stage2_loss
    assert model.backbone is stage1.backbone  # shared, the projection head is dropped
    assert not any(p is q for p in model.parameters() for q in stage1.projection_head.parameters())
    kinds = {"focal": FocalLoss, "class_balanced": ClassBalancedLoss}
    if stage2_loss in kinds:
        assert isinstance(model.criterion, kinds[stage2_loss])
    if stage2_loss == "class_balanced":
        assert model.criterion.weights[3] > model.criterion.weights[0]
    out = model.training_step((torch.rand(8, 1, 8, 8), torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])))
    assert torch.isfinite(out["loss"])


def _stage2_steps(model: SupervisedClassifier) -> None:
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.5, momentum=0.9)
    model.train()
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        loss = model.training_step((torch.rand(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)))
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()


@pytest.mark.parametrize("freeze", [True, False])
def test_stage2_freeze_encoder(freeze: bool) -> None:
    torch.manual_seed(5)
    stage1 = tiny()
    stage1.training_step((torch.rand(8, 1, 8, 8), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])))["loss"].backward()
    before = {k: v.clone() for k, v in stage1.backbone.state_dict().items()}
    model = supercon_classifier(stage1, 3, stage2_loss="focal", freeze_encoder=freeze)
    head_before = model.classifier.linear.weight.clone()
    _stage2_steps(model)
    after = stage1.backbone.state_dict()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    if freeze:
        assert len(unchanged) == len(before)  # weights and BatchNorm running statistics
    else:
        weights = [k for k, _ in stage1.backbone.named_parameters()]
        assert not set(weights) & set(unchanged)
    assert not torch.equal(model.classifier.linear.weight, head_before)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: tiny(supcon_reduction="mean"), "supcon_reduction"),
        (lambda: tiny(temperature=0.0), "temperature"),
        (lambda: tiny(base_temperature=-1.0), "base_temperature"),
        (lambda: SuperCon(torch.nn.Identity(), None), "num_features"),
        (lambda: tiny().training_step(torch.rand(4, 1, 8, 8)), "supervised"),
        (lambda: tiny(views=None).training_step((torch.rand(4, 1, 8, 8), torch.arange(4))), "no view pipeline"),
        (lambda: tiny().training_step((torch.rand(4, 1, 8, 8), torch.arange(3))), "entries"),
        (lambda: supercon_classifier(tiny(), 3, stage2_loss="weighted_ce"), "class_counts"),
        (lambda: supercon_classifier(tiny(), 3, stage2_loss="hinge"), "loss must be one of"),
    ],
)
def test_bad_input_raises(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]
