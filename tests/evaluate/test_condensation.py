"""Evaluation of a synthetic set (DC ``evaluate_synset``; spec dcc.md §2.7, §7.4)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.evaluate.condensation import (
    SynsetEvalConfig,
    evaluate_synset,
    random_real_subset,
    train_on_synset,
    whole_data_accuracy,
)
from contrastkit.methods.dcc import initial_images
from contrastkit.models import ConvNet


def _data(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """3 classes of 8x8 images: a bright quadrant per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(per_class)
    x = 0.3 * torch.randn(3 * per_class, 1, 8, 8, generator=g)
    for c, (r, col) in enumerate([(0, 0), (0, 4), (4, 0)]):
        x[labels == c, :, r : r + 4, col : col + 4] += 1.0
    return x, labels


def _make_net() -> ConvNet:
    return ConvNet(1, 8, width=4, depth=2, norm="instancenorm", num_classes=3)


def test_nets_trained_on_a_few_good_images_generalise_and_runs_repeat() -> None:
    train, train_labels = _data(2, 0)
    test, test_labels = _data(50, 1)
    cfg = SynsetEvalConfig(num_nets=3, epochs=60)
    a = evaluate_synset(_make_net, train, train_labels, test, test_labels, cfg, seed=0)
    b = evaluate_synset(_make_net, train, train_labels, test, test_labels, cfg, seed=0)
    assert len(a.accuracies) == 3 and a.accuracies == b.accuracies
    assert a.mean > 0.9, a
    assert 0.0 <= a.std <= 0.1 and "nets" in str(a)
    c = evaluate_synset(_make_net, train, train_labels, test, test_labels, cfg.__class__(num_nets=3, epochs=1), seed=0)
    assert c.mean < a.mean  # one epoch at lr 0.01 is not enough: the protocol really trains


@pytest.mark.parametrize("augment", ["none", "dc", "dsa"])
def test_training_changes_the_net_with_every_augmentation(augment: str) -> None:
    train, labels = _data(2, 0)
    net = _make_net()
    before = [p.detach().clone() for p in net.parameters()]
    train_on_synset(net, train, labels, SynsetEvalConfig(epochs=3, augment=augment), generator=torch.Generator())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_lr_steps_down_at_half_the_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    original = torch.optim.SGD.step

    def record(self: torch.optim.SGD, *args: object, **kwargs: object) -> object:
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    train, labels = _data(2, 0)
    cfg = SynsetEvalConfig(epochs=6, lr=0.01, momentum=0.9, weight_decay=5e-4)
    train_on_synset(_make_net(), train, labels, cfg, generator=torch.Generator())
    assert seen == pytest.approx([0.01] * 3 + [0.001] * 3)


def test_random_subset_has_ipc_real_images_per_class() -> None:
    images, labels = _data(10, 0)
    x, y = random_real_subset(images, labels, 3, 4, seed=2)
    assert x.shape == (12, 1, 8, 8) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for img, c in zip(x, y, strict=True):
        assert any(torch.equal(img, real) for real in images[labels == c])
    assert len({tuple(i.flatten().tolist()) for i in x}) == 12  # distinct
    assert torch.equal(x, initial_images(images, labels, 3, 4, seed=2)[0])
    assert not torch.equal(x, random_real_subset(images, labels, 3, 4, seed=3)[0])


def test_whole_data_upper_bound() -> None:
    train, labels = _data(40, 0)
    test, test_labels = _data(30, 1)
    assert whole_data_accuracy(_make_net, train, labels, test, test_labels, epochs=20, batch=32) > 0.9


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="augment"):
        SynsetEvalConfig(augment="mixup")
    with pytest.raises(ValueError, match="num_nets"):
        SynsetEvalConfig(num_nets=0)
    with pytest.raises(ValueError, match="lr"):
        SynsetEvalConfig(lr=float("nan"))
