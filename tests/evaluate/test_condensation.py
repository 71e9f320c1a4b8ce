"""Evaluation of a synthetic set (DC ``evaluate_synset``; spec dcc.md §2.7, §7.4) and how far a set moved from its
starting images (``image_change``)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from contrastkit.augment.dsa import DSAConfig, dsa_random
from contrastkit.data.sources import epoch_order
from contrastkit.evaluate.condensation import SynsetEvalConfig, dc_augment_config
from contrastkit.methods.dcc import initial_images
from contrastkit.models import ConvNet
from contrastkit.train.condensation import (
    condense,
    dc_eval_epochs,
    evaluate_synset,
    image_change,
    random_real_subset,
    train_on_set,
    train_on_synset,
    whole_data_accuracy,
)
from contrastkit.train.engine import step_generator


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
    train_on_synset(net, train, labels, SynsetEvalConfig(epochs=3, augment=augment), seed=0)
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
    train_on_synset(_make_net(), train, labels, cfg, seed=0)
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


@pytest.mark.parametrize(
    ("augment", "shared_family", "momentum", "weight_decay", "decay_epoch"),
    [
        ("none", True, 0.9, 5e-4, 2),  # the evaluation protocol without augmentation, lr step at E // 2
        ("dc", False, 0.9, 5e-4, 2),  # with DC's crop / scale / rotate per image
        ("dsa", True, 0.0, 0.0, None),  # condense's inner training: plain SGD, DSA with one family per batch
    ],
)
def test_train_on_set_is_the_plain_sgd_loop_it_replaced(
    augment: str, shared_family: bool, momentum: float, weight_decay: float, decay_epoch: int | None
) -> None:
    """The engine path equals the hand-written DC loop, bit for bit in float64, once the loop's randomness is
    drawn by the engine's rule: order ``epoch_order(M, seed, e)``, views from ``step_generator(seed, s)``. 12
    images in batches of 5 give 3 steps per epoch (5, 5 and the partial 2); 5 epochs, so the lr x 0.1 comes at
    step 2 * 3 = 6."""
    images, labels = _data(4, 0)
    images = images.double()
    ops = {"none": None, "dc": dc_augment_config(8), "dsa": DSAConfig()}[augment]
    epochs, batch, lr, seed = 5, 5, 0.01, 7
    torch.manual_seed(0)
    net = _make_net().double()
    reference, initial = copy.deepcopy(net), copy.deepcopy(net)

    def engine_path() -> None:
        train_on_set(net, images, labels, epochs=epochs, batch_size=batch, lr=lr, seed=seed, momentum=momentum,
                     weight_decay=weight_decay, lr_decay_epoch=decay_epoch, augment=ops,
                     shared_family=shared_family)  # fmt: skip

    engine_lrs = _recorded_lrs(engine_path)

    def plain_loop() -> None:
        optimizer = torch.optim.SGD(reference.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        reference.train()
        step = 0
        for epoch in range(epochs):
            if epoch == decay_epoch:
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.1
            for idx in epoch_order(12, seed, epoch).split(batch):
                x = images[idx]
                if ops is not None:
                    x = dsa_random(x, ops, generator=step_generator(seed, step), shared_family=shared_family)
                loss = F.cross_entropy(reference(x), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1

    reference_lrs = _recorded_lrs(plain_loop)
    switch = 15 if decay_epoch is None else 6
    assert engine_lrs == reference_lrs == [lr] * switch + [lr * 0.1] * (15 - switch)
    for (name, a), b in zip(net.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), initial.parameters(), strict=True))


def _recorded_lrs(train: Callable[[], object]) -> list[float]:
    """The first group's learning rate at every SGD step taken by ``train()``."""
    seen: list[float] = []
    original = torch.optim.SGD.step

    def record(self: torch.optim.SGD, *args: object, **kwargs: object) -> object:
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.SGD, "step", record)
        train()
    return seen


def test_image_change_is_the_relative_rms_change_from_the_start() -> None:
    """``||S - S0|| / ||S0||`` on a constructed case: S0 = 2 everywhere, S = S0 + 0.5 on a quarter of the pixels,
    so the RMS change is 0.5 * sqrt(1/4) = 0.25 and the RMS of S0 is 2: 0.125."""
    start = torch.full((4, 1, 4, 4), 2.0)
    moved = start.clone()
    moved[:, :, :2, :2] += 0.5
    assert image_change(moved, start) == pytest.approx(0.125, abs=1e-12)
    assert image_change(start.clone(), start) == 0.0  # random selection: nothing moved
    assert image_change(-start, start) == pytest.approx(2.0)  # scale-free: the same for 10x the units
    assert image_change(10 * moved, 10 * start) == pytest.approx(0.125, abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        image_change(moved[:2], start)
    with pytest.raises(ValueError, match="all zero"):
        image_change(moved, torch.zeros_like(start))


def test_condense_records_how_far_the_set_moved_after_every_outer_iteration() -> None:
    from contrastkit.methods.dcc import CondensationConfig

    images, labels = _data(6, 0)
    cfg = CondensationConfig(ipc=2, matching="dcc", outer_loop=3, outer_warmup=1, inner_loop=2, epochs_between=1,
                             inner_warmup=2, batch_real=4, batch_train=4, vmap_chunk_size=1)  # fmt: skip
    result = condense(images, labels, 3, _make_net, cfg, seed=1)
    assert torch.equal(result.start, initial_images(images, labels, 3, 2, seed=1)[0])  # the random arm's images
    assert len(result.image_change) == 3 and all(v > 0 for v in result.image_change)
    assert result.image_change[-1] == image_change(result.images, result.start)
    assert result.contrastive_share == pytest.approx(4 / 6)  # outer 0 warms up with DC: 2 of 6 steps


@pytest.mark.parametrize(("augment", "epochs"), [("none", 300), ("dc", 1000), ("dsa", 1000)])
def test_dc_evaluation_epochs_are_1000_with_augmentation(augment: str, epochs: int) -> None:
    assert dc_eval_epochs(augment) == epochs
    with pytest.raises(ValueError, match="augment must be one of"):
        dc_eval_epochs("mixup")
