"""The fused, blocked path (contrastkit.losses.fused): float64 brute force over every block layout, gradcheck,
excluded rows, the losses built on it, and bfloat16 GEMMs with float32 reductions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import cross_view_info_nce, dcl, nt_xent, supcon
from contrastkit.losses.fused import label_contrastive_losses, row_logsumexp


def brute_lse(a: torch.Tensor, k: torch.Tensor, scale: float, self_offset: int | None,
              row_labels: torch.Tensor | None, col_labels: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    out = []
    for i in range(a.shape[0]):
        terms = [float(a[i] @ k[j]) * scale for j in range(k.shape[0])
                 if not (self_offset is not None and j == self_offset + i)
                 and not (row_labels is not None and int(row_labels[i]) == int(col_labels[j]))]  # fmt: skip
        top = max(terms) if terms else 0.0
        out.append(top + math.log(sum(math.exp(t - top) for t in terms)) if terms else float("-inf"))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("block", [1, 3, 4, 7, 64])
@pytest.mark.parametrize("layout", ["symmetric", "symmetric_labels", "keys_with_self", "keys_only"])
def test_blocked_logsumexp_equals_brute_force_in_float64(block: int, layout: str) -> None:
    g = torch.Generator().manual_seed(block)
    a = torch.randn(10, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (10,), generator=g)
    if layout.startswith("symmetric"):
        with_labels = layout == "symmetric_labels"
        got = row_logsumexp(a, None, 2.5, self_offset=None if with_labels else 0,
                            row_labels=labels if with_labels else None, col_labels=labels if with_labels else None,
                            block=block)  # fmt: skip
        want = brute_lse(a, a, 2.5, None if with_labels else 0, labels if with_labels else None, labels)
    else:
        keys = torch.cat([torch.randn(3, 5, generator=g, dtype=torch.float64), a, torch.randn(4, 5, generator=g,
                                                                                             dtype=torch.float64)])
        offset = 3 if layout == "keys_with_self" else None
        got = row_logsumexp(a, keys, 0.7, self_offset=offset, block=block)
        want = brute_lse(a, keys, 0.7, offset, None, None)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("symmetric", [True, False])
def test_gradcheck_over_several_blocks(symmetric: bool) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    if symmetric:
        def fn(x: torch.Tensor) -> torch.Tensor:
            return row_logsumexp(x, None, 1.3, self_offset=0, block=3) * torch.arange(1.0, 8.0, dtype=x.dtype)

        assert torch.autograd.gradcheck(fn, (a,))
        assert torch.autograd.gradcheck(lambda x: row_logsumexp(x, None, 1.3, row_labels=labels, col_labels=labels,
                                                                block=2).sum(), (a,))  # fmt: skip
    else:
        k = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, y: row_logsumexp(x, y, 0.9, self_offset=1, block=4), (a, k))


def test_a_row_with_nothing_kept_is_minus_infinity_without_gradient() -> None:
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    key = a[:1]  # one key, anchor 0's own row: anchor 0 keeps nothing, the others keep it
    lse = row_logsumexp(a, key, 1.0, self_offset=0, block=2)
    assert torch.isinf(lse[0]) and lse[0] < 0 and torch.isfinite(lse[1:]).all()
    assert torch.allclose(lse[1:], (a[1:] @ a[0]).detach(), atol=1e-12)  # log of one term
    torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse)).sum().backward()
    assert torch.isfinite(a.grad).all()
    assert torch.allclose(a.grad[0], a[1:].detach().sum(0), atol=1e-12)  # only through the key of the others


@pytest.mark.parametrize("chunk", [1, 3, 5])
def test_losses_do_not_depend_on_the_block_size(chunk: int) -> None:
    g = torch.Generator().manual_seed(chunk)
    z1, z2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 2, 1, 0, 1, 0, 2, 2, 1])
    for fn in (lambda c: nt_xent(z1, z2, 0.3, chunk_size=c), lambda c: dcl(z1, z2, 0.3, chunk_size=c),
               lambda c: supcon(torch.cat([z1, z2]), labels, 0.3, chunk_size=c),
               lambda c: cross_view_info_nce(z1, z2, 0.3, chunk_size=c)):  # fmt: skip
        assert abs(float(fn(chunk)) - float(fn(None))) < 1e-12


def test_positive_term_uses_every_key_of_the_label_but_self() -> None:
    """SupCon with arbitrary (non-compact) labels equals the mean over positives computed by hand."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([70, -3, 70, 9, -3, 70, 9, 1000])  # 1000: no positive, an invalid anchor
    loss, valid = label_contrastive_losses(x, None, labels, None, 0.5, self_offset=0)
    u = F.normalize(x, dim=1)
    s = u @ u.T / 0.5
    for i in range(8):
        pos = [j for j in range(8) if j != i and labels[j] == labels[i]]
        if not pos:
            assert not valid[i] and loss[i] == 0
            continue
        lse = torch.logsumexp(torch.cat([s[i, :i], s[i, i + 1 :]]), 0)
        assert abs(float(loss[i]) - float(lse - s[i, pos].mean())) < 1e-12


@pytest.mark.parametrize("aligned", [False, True])
def test_bfloat16_gemms_keep_float32_reductions(aligned: bool) -> None:
    """Under bfloat16 autocast the loss is float32 and within 1e-3 of the float64 loss; the plain formula under the
    same autocast (bfloat16 logits and reductions) is off by ~1e-2 (issue #16 measured 2e-2)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 128, generator=g)
    labels = torch.randint(0, 10, (1024,), generator=g)
    if aligned:  # class-aligned features, as after training: the positives' logits near 1 / tau
        x = x + 3 * torch.randn(10, 128, generator=g)[labels]
    exact = supcon(x.double(), labels, 0.1).item()
    same, eye = labels[:, None] == labels[None, :], torch.eye(1024, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = supcon(x, labels, 0.1)
        u = F.normalize(x, dim=1)
        logits = ((u @ u.T) / 0.1).masked_fill(eye, float("-inf"))
        log_p = logits - torch.logsumexp(logits, 1, keepdim=True)
        plain = -(log_p.masked_fill(~same | eye, 0).sum(1) / (same & ~eye).sum(1)).mean()
    assert fused.dtype == torch.float32
    assert abs(fused.item() - exact) < 1e-3
    assert abs(fused.item() - exact) < abs(plain.item() - exact) / 10


@pytest.mark.parametrize("chunk", [None, 16])
def test_float32_equals_float64_to_1e6(chunk: int | None) -> None:
    g = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(40, 32, generator=g), torch.randn(40, 32, generator=g)
    labels = torch.randint(0, 6, (80,), generator=g)
    for fn in (lambda x, y: nt_xent(x, y, 0.2, chunk_size=chunk), lambda x, y: dcl(x, y, 0.2, chunk_size=chunk),
               lambda x, y: supcon(torch.cat([x, y]), labels, 0.1, chunk_size=chunk),
               lambda x, y: cross_view_info_nce(x, y, 0.1, chunk_size=chunk)):  # fmt: skip
        assert abs(fn(z1, z2).item() - fn(z1.double(), z2.double()).item()) < 1e-6


@pytest.mark.parametrize("block", [2, 5, 64])
def test_column_logsumexps_come_from_the_same_blocks(block: int) -> None:
    """``columns=True``: every key's log-sum-exp over the anchors too (cross-view's second direction)."""
    g = torch.Generator().manual_seed(block)
    a = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    both = row_logsumexp(a, k, 1.7, block=block, columns=True)
    assert torch.allclose(both[:6], brute_lse(a.detach(), k.detach(), 1.7, None, None, None), atol=1e-12)
    assert torch.allclose(both[6:], brute_lse(k.detach(), a.detach(), 1.7, None, None, None), atol=1e-12)
    weights = torch.arange(1.0, 16.0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, y: row_logsumexp(x, y, 1.7, block=block, columns=True) * weights,
                                    (a, k))  # fmt: skip


def test_symmetric_cross_view_in_one_pass_equals_two_directions() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    one = cross_view_info_nce(z1, z2, 0.2, chunk_size=3)
    two = 0.5 * (cross_view_info_nce(z1, z2, 0.2, symmetric=False) + cross_view_info_nce(z2, z1, 0.2, symmetric=False))
    assert abs(one.item() - two.item()) < 1e-12
    u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    s = u1 @ u2.T / 0.2
    target = torch.arange(7)
    assert abs(one.item() - 0.5 * (F.cross_entropy(s, target) + F.cross_entropy(s.T, target)).item()) < 1e-12


def test_grace_loss_equals_its_per_node_formula_in_float64() -> None:
    """GRACE (Zhu et al. 2020): inter- and intra-view negatives, both directions, brute-force loop; chunked = dense."""
    from contrastkit.losses import grace_loss

    g = torch.Generator().manual_seed(2)
    u, v = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64)

    def theta(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(x @ y / (x.norm() * y.norm())) / 0.4

    def node(a: torch.Tensor, b: torch.Tensor, i: int) -> float:
        denominator = sum(math.exp(theta(a[i], b[k])) for k in range(9))
        denominator += sum(math.exp(theta(a[i], a[k])) for k in range(9) if k != i)
        return -(theta(a[i], b[i]) - math.log(denominator))

    expected = sum(0.5 * (node(u, v, i) + node(v, u, i)) for i in range(9)) / 9
    assert abs(grace_loss(u, v, 0.4).item() - expected) < 1e-12
    assert abs(grace_loss(u, v, 0.4, chunk_size=4).item() - expected) < 1e-12
    assert abs(grace_loss(v, u, 0.4).item() - expected) < 1e-12  # symmetric in its two views
    x, y = u.clone().requires_grad_(), v.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: grace_loss(p, q, 0.4, chunk_size=3), (x, y))


def test_grace_loss_closed_form_on_orthonormal_identical_views() -> None:
    """ariel.md 7.7.2: n orthonormal nodes, u = v, tau = 1: positive e^1, n - 1 inter- and n - 1 intra-view e^0,
    so every node's loss is -1 + log(e + 2(n - 1))."""
    from contrastkit.losses import grace_loss

    n = 6
    u = torch.linalg.qr(torch.randn(8, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].T
    expected = -1.0 + math.log(math.e + 2 * (n - 1))
    assert abs(grace_loss(u, u.clone(), 1.0).item() - expected) < 1e-12
    assert abs(grace_loss(u, u.clone(), 1.0, chunk_size=4).item() - expected) < 1e-12
