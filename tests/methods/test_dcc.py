"""DC / DCC condensation loop (spec dcc.md §2.3-2.4, §3, §7.7.1, 3, 4, 6, 8)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import contrastkit
from contrastkit.losses.gradient_matching import gradient_distance
from contrastkit.methods.dcc import (
    CondensationConfig,
    class_gradients,
    get_loops,
    initial_images,
    matching_loss,
    use_contrastive,
)
from contrastkit.models import ConvNet
from contrastkit.train.condensation import condense


def _net(classes: int, dtype: torch.dtype = torch.float64, width: int = 6) -> ConvNet:
    torch.manual_seed(0)
    return ConvNet(1, 8, width=width, depth=2, norm="instancenorm", num_classes=classes).to(dtype)


def _batch(classes: int, n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(classes, n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _data(classes: int = 3, per_class: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.randn(classes * per_class, 1, 8, 8, generator=g) + labels.view(-1, 1, 1, 1).float()
    return images, labels


def test_loops_tables() -> None:
    dcc = {1: (10, 5), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
    for ipc, loops in dcc.items():
        assert get_loops(ipc) == get_loops(ipc, "dcc_table") == loops
        assert get_loops(ipc, "dc_table") == ((1, 1) if ipc == 1 else loops)
    with pytest.raises(ValueError, match="no loop setting"):
        get_loops(7)
    with pytest.raises(ValueError, match="table"):
        get_loops(1, "dm_table")


def test_warmup_switch_follows_the_or_rule_on_a_grid() -> None:
    for ol, il, ow, iw in itertools.product(range(6), range(6), range(5), range(5)):
        assert use_contrastive(ol, il, ow, iw) == (ol >= ow or il >= iw)
    # defaults with inner_loop = 10 (ipc 1 and 10): the inner condition never fires
    inner_loop, _ = get_loops(10)
    used = {(ol, il): use_contrastive(ol, il, 250, 10) for ol in range(0, 1000, 7) for il in range(inner_loop)}
    assert all(v == (ol >= 250) for (ol, _), v in used.items())


def test_class_gradients_vmap_equals_a_python_loop() -> None:
    net = _net(4)
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = _batch(4, 5, 1)
    y = torch.arange(4)[:, None].expand(4, 5)
    for chunk in (None, 1, 3):
        batched = class_gradients(net, params, x, y, chunk_size=chunk)
        for c in range(4):
            loop = torch.autograd.grad(F.cross_entropy(net(x[c]), y[c]), list(net.parameters()))
            for (name, _), g in zip(net.named_parameters(), loop, strict=True):
                assert torch.allclose(batched[name][c], g, atol=1e-12, rtol=1e-10), (chunk, c, name)


@pytest.mark.parametrize("contrastive", [False, True])
def test_loop_and_vmap_class_gradients_give_the_same_loss_and_image_gradient(contrastive: bool) -> None:
    """``class_grad_method="loop"`` (one autograd call per class) equals the vmapped path, to second order."""
    net = _net(3)
    real = _batch(3, 6, 2)
    results = []
    for method in ("vmap", "loop"):
        syn = _batch(3, 2, 3).requires_grad_(True)
        loss = matching_loss(net, syn, real, contrastive=contrastive, class_grad_method=method)
        (g,) = torch.autograd.grad(loss, syn)
        results.append((loss, g))
    (loss_v, g_v), (loss_l, g_l) = results
    assert torch.allclose(loss_v, loss_l, atol=1e-12, rtol=1e-12)
    assert torch.allclose(g_v, g_l, atol=1e-12, rtol=1e-10) and g_v.abs().sum() > 0
    params = {k: v.detach() for k, v in net.named_parameters()}
    labels = torch.arange(3)[:, None].expand(3, 6)
    loop = class_gradients(net, params, real, labels, method="loop")
    assert all(not t.requires_grad for t in loop.values())  # no graph kept for detached real images
    with pytest.raises(ValueError, match="method"):
        class_gradients(net, params, real, labels, method="scan")


def test_condense_with_the_loop_method_equals_vmap() -> None:
    images, labels = _data()
    a = condense(images, labels, 3, _make_net, _tiny_config(), seed=3)
    b = condense(images, labels, 3, _make_net, _tiny_config(class_grad_method="loop"), seed=3)
    assert torch.allclose(a.images, b.images, atol=1e-5)
    assert [h["used"] for h in a.history] == [h["used"] for h in b.history]


def test_dcc_real_gradient_is_the_gradient_of_the_class_balanced_mean_loss() -> None:
    net = _net(3)
    params = {k: v.detach() for k, v in net.named_parameters()}
    real = _batch(3, 7, 2)
    labels = torch.arange(3)[:, None].expand(3, 7)
    mean_of_class_grads = {k: v.mean(0) for k, v in class_gradients(net, params, real, labels).items()}
    balanced = sum(F.cross_entropy(net(real[c]), labels[c]) for c in range(3)) / 3
    direct = torch.autograd.grad(balanced, list(net.parameters()))
    names = [k for k, _ in net.named_parameters()]
    for name, g in zip(names, direct, strict=True):
        assert torch.allclose(mean_of_class_grads[name], g, atol=1e-12)
    # and the DCC loss matches the gradient of the whole synthetic set against exactly that target
    syn = _batch(3, 2, 3)
    flat = syn.reshape(6, 1, 8, 8)
    g_syn = torch.autograd.grad(
        F.cross_entropy(net(flat), torch.arange(3).repeat_interleave(2)), list(net.parameters())
    )
    expected = gradient_distance(list(g_syn), list(direct), "ours")
    got = matching_loss(net, syn, real, contrastive=True, metric="ours")
    assert torch.allclose(got, expected, atol=1e-9)


def test_dc_loss_is_the_sum_of_class_wise_distances() -> None:
    net = _net(3)
    syn, real = _batch(3, 2, 3), _batch(3, 7, 2)
    expected = 0.0
    for c in range(3):
        label_s, label_r = torch.full((2,), c), torch.full((7,), c)
        gs = torch.autograd.grad(F.cross_entropy(net(syn[c]), label_s), list(net.parameters()))
        gr = torch.autograd.grad(F.cross_entropy(net(real[c]), label_r), list(net.parameters()))
        expected += float(gradient_distance(list(gs), list(gr), "ours"))
    got = matching_loss(net, syn, real, contrastive=False, metric="ours", chunk_size=1)
    assert float(got) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_dcc_equals_dc_when_there_is_one_class(metric: str) -> None:
    net = _net(1)
    syn = _batch(1, 3, 4).requires_grad_(True)
    real = _batch(1, 9, 5)
    dc = matching_loss(net, syn, real, contrastive=False, metric=metric)
    dcc = matching_loss(net, syn, real, contrastive=True, metric=metric)
    assert torch.allclose(dc, dcc, atol=1e-12, rtol=1e-12)
    (g_dc,) = torch.autograd.grad(dc, syn)
    (g_dcc,) = torch.autograd.grad(dcc, syn)
    assert torch.allclose(g_dc, g_dcc, atol=1e-10)
    # with several classes they differ
    net3 = _net(3)
    a = matching_loss(net3, _batch(3, 2, 1), _batch(3, 4, 2), contrastive=False, metric=metric)
    b = matching_loss(net3, _batch(3, 2, 1), _batch(3, 4, 2), contrastive=True, metric=metric)
    assert not torch.allclose(a, b)


def test_matching_loss_is_differentiable_wrt_the_synthetic_images() -> None:
    net = _net(3, torch.float32)
    syn = _batch(3, 2, 1, torch.float32).requires_grad_(True)
    for contrastive in (False, True):
        loss = matching_loss(net, syn, _batch(3, 4, 2, torch.float32), contrastive=contrastive)
        (g,) = torch.autograd.grad(loss, syn)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())  # nothing accumulates in the network


def _tiny_config(**changes: object) -> CondensationConfig:
    base = CondensationConfig(ipc=2, outer_loop=3, inner_loop=3, epochs_between=2, outer_warmup=2, inner_warmup=2,
                              batch_real=5, batch_train=4, vmap_chunk_size=1)  # fmt: skip
    return base.with_(**changes)


def _make_net() -> ConvNet:
    return ConvNet(1, 8, width=4, depth=2, norm="instancenorm", num_classes=3)


@pytest.mark.parametrize("dsa", [False, True])
def test_condense_is_bit_identical_for_the_same_seed(dsa: bool) -> None:
    images, labels = _data()
    cfg = _tiny_config(dsa=dsa)
    a = condense(images, labels, 3, _make_net, cfg, seed=1)
    torch.manual_seed(123)  # the global RNG state must not matter
    b = condense(images, labels, 3, _make_net, cfg, seed=1)
    c = condense(images, labels, 3, _make_net, cfg, seed=2)
    assert torch.equal(a.images, b.images) and a.history == b.history
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (6, 1, 8, 8) and a.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert not torch.equal(a.images, initial_images(images, labels, 3, 2, seed=1)[0])  # it learned something


def test_condense_logs_which_loss_each_step_used() -> None:
    images, labels = _data()
    result = condense(images, labels, 3, _make_net, _tiny_config(), seed=0)
    assert len(result.history) == 3 * 3 and len(result.seconds_per_outer) == 3
    for h in result.history:
        assert h["used"] == ("dcc" if use_contrastive(h["outer"], h["inner"], 2, 2) else "dc")
    dc = condense(images, labels, 3, _make_net, _tiny_config(matching="dc"), seed=0)
    assert {h["used"] for h in dc.history} == {"dc"}


def test_random_baseline_is_the_starting_point_of_condensation() -> None:
    images, labels = _data()
    frozen = condense(images, labels, 3, _make_net, _tiny_config(lr_img=0.0, outer_loop=1), seed=4)
    start, start_labels = initial_images(images, labels, 3, 2, seed=4)
    assert torch.equal(frozen.images, start) and torch.equal(frozen.labels, start_labels)
    for c in range(3):  # each class's images are real images of that class
        for img in start[start_labels == c]:
            assert any(torch.equal(img, real) for real in images[labels == c])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="matching"):
        CondensationConfig(matching="dm")
    with pytest.raises(ValueError, match="inner_warmup"):
        CondensationConfig(ipc=1, loops="dc_table", matching="dcc")
    CondensationConfig(ipc=1, loops="dc_table", matching="dc")  # DC ignores the warm-up
    with pytest.raises(ValueError, match="dis_metric"):
        CondensationConfig(dis_metric="l2")
    with pytest.raises(ValueError, match="vmap_chunk_size"):
        CondensationConfig(vmap_chunk_size=0)
    with pytest.raises(ValueError, match="class_grad_method"):
        CondensationConfig(class_grad_method="scan")
    with pytest.raises(ValueError, match="fewer than ipc"):
        images, labels = _data(per_class=1)
        condense(images, labels, 3, _make_net, _tiny_config(), seed=0)


def test_condensation_trains_its_nets_only_through_the_engine() -> None:
    """No hand-written training step is left in condensation: no ``.backward(`` / ``.step()`` in the pure modules,
    and in :mod:`contrastkit.train.condensation` only the bi-level step on the synthetic images, marked as the
    allowed exception (the nets themselves train through ``train_on_set`` and the engine)."""
    root = Path(contrastkit.__file__).parent
    for pure in ("methods/dcc.py", "evaluate/condensation.py"):
        text = (root / pure).read_text()
        assert ".backward(" not in text and ".step()" not in text, pure
    lines = (root / "train" / "condensation.py").read_text().splitlines()
    backward = [i for i, line in enumerate(lines) if ".backward(" in line]
    assert len(backward) == 1, [lines[i] for i in backward]
    (at,) = backward
    comment = []
    for line in reversed(lines[:at]):  # the comment block right above the call
        if not line.strip().startswith("#"):
            break
        comment.append(line)
    assert "allowed outside the engine" in " ".join(comment)
    assert lines[at].strip() == "loss.backward()" and lines[at + 1].strip() == "opt_img.step()"
    assert sum(".step()" in line for line in lines) == 1  # the images' optimiser, nothing else
