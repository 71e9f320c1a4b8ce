"""SupCon (L_out) vs a float64 brute-force loop, its reduction to NT-Xent, closed forms and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import SupConLoss, nt_xent, supcon


def brute_force_supcon(
    features: torch.Tensor, labels: list[int], tau: float, base_tau: float
) -> list[float | None]:
    """Per-anchor L_out (None for anchors without a positive), Khosla et al. eq. 2."""
    u = F.normalize(features.double(), dim=1)
    n = u.shape[0]
    out: list[float | None] = []
    for i in range(n):
        s = [float(u[i] @ u[j]) / tau for j in range(n)]
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            out.append(None)
            continue
        log_denom = math.log(sum(math.exp(s[a]) for a in range(n) if a != i))
        out.append(-(tau / base_tau) * sum(s[p] - log_denom for p in positives) / len(positives))
    return out


LABEL_PATTERNS = [
    [0, 1, 0, 1, 2, 2],  # pairs
    [0, 0, 0, 1, 1, 2],  # class 2 has a single sample: no positive
    [3, 1, 4, 0, 5, 9, 2, 6],  # all distinct: no anchor has a positive
    [1, 1, 1, 1, 1],  # one class
    [0, 1, 2, 0, 1, 2, 7],  # two views of 3 samples plus a singleton
]


@pytest.mark.parametrize("labels", LABEL_PATTERNS)
@pytest.mark.parametrize(("tau", "base_tau"), [(0.1, None), (0.07, 0.07), (0.5, 0.1)])
def test_matches_brute_force(labels: list[int], tau: float, base_tau: float | None) -> None:
    g = torch.Generator().manual_seed(len(labels))
    x = torch.randn(len(labels), 5, generator=g, dtype=torch.float64)
    y = torch.tensor(labels)
    ref = brute_force_supcon(x, labels, tau, tau if base_tau is None else base_tau)
    per = supcon(x, y, tau, base_tau, reduction="none")
    expected = torch.tensor([0.0 if r is None else r for r in ref], dtype=torch.float64)
    torch.testing.assert_close(per, expected, rtol=1e-10, atol=1e-10)
    valid = [r for r in ref if r is not None]
    mean = supcon(x, y, tau, base_tau)
    assert abs(mean.item() - (sum(valid) / len(valid) if valid else 0.0)) < 1e-10
    assert torch.isfinite(mean)


def test_all_distinct_labels_over_two_views_equals_nt_xent() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = (
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
    )
    labels = torch.arange(6).repeat(2)
    for tau in (0.1, 0.5):
        torch.testing.assert_close(supcon(torch.cat([z1, z2]), labels, tau, tau), nt_xent(z1, z2, tau))


def test_collapsed_positive_closed_form() -> None:
    """P positives at similarity 1 and N_n negatives at similarity s: loss = log(P + N_n e^{(s - 1)/tau})."""
    e0, e1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.6, 0.8], dtype=torch.float64)
    s = float(e0 @ e1)  # 0.6
    features = torch.stack([e0] * 4 + [e1] * 3)  # class 0: 4 copies (P = 3), class 1: 3 copies
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    tau, base = 0.2, 0.1
    per = supcon(features, labels, tau, base, reduction="none")
    expected0 = (tau / base) * math.log(3 + 3 * math.exp((s - 1) / tau))
    expected1 = (tau / base) * math.log(2 + 4 * math.exp((s - 1) / tau))
    torch.testing.assert_close(per, torch.tensor([expected0] * 4 + [expected1] * 3, dtype=torch.float64))
    # the floor log P as tau -> 0
    floor = supcon(features, labels, 0.01, reduction="none")
    assert abs(floor[0].item() - math.log(3)) < 1e-12


def test_no_positive_batch_is_zero_with_graph_and_no_nan() -> None:
    x = torch.randn(5, 3, requires_grad=True)
    loss = supcon(x, torch.arange(5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() == 0
    single = torch.randn(1, 3, requires_grad=True)
    assert supcon(single, torch.tensor([0])).item() == 0.0


def test_singleton_anchor_excluded_but_still_a_negative() -> None:
    """The singleton's features still matter (it is a negative of the others) though it is no anchor."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2])
    loss = supcon(x, labels, 0.2)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad[4].abs().max() > 0
    per = supcon(x, labels, 0.2, reduction="none")
    assert per[4].item() == 0.0 and abs(loss.item() - per[:4].mean().item()) < 1e-12
    # the convention of Khosla et al. (mean over all anchors) is available through reduction="none"
    assert abs(per.mean().item() - 0.8 * loss.item()) < 1e-12


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 1, 2])
    assert torch.autograd.gradcheck(lambda f: supcon(f, labels, 0.3, 0.5), (x,))


@pytest.mark.parametrize("chunk_size", [1, 3, 4])
def test_chunked_equals_unchunked(chunk_size: int) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 3, 1])
    full = supcon(x, labels, 0.2)
    (g_full,) = torch.autograd.grad(full, x)
    chunked = supcon(x, labels, 0.2, chunk_size=chunk_size)
    (g_chunk,) = torch.autograd.grad(chunked, x)
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-10, atol=1e-12)


def test_extreme_temperature_is_finite() -> None:
    x = torch.randn(24, 6).mul(30).requires_grad_()
    labels = torch.randint(0, 4, (24,))
    loss = supcon(x, labels, 0.01)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_module_matches_function() -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(SupConLoss(0.07, 0.07)(x, y), supcon(x, y, 0.07, 0.07))
    assert "base_temperature=0.07" in repr(SupConLoss(0.07, 0.07))


def test_bad_inputs_raise() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="repeat the labels"):
        supcon(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        supcon(x, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        supcon(x, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        supcon(x, torch.zeros(4, dtype=torch.long), 0.0)
    with pytest.raises(ValueError, match="base_temperature"):
        supcon(x, torch.zeros(4, dtype=torch.long), 0.1, -1.0)
    with pytest.raises(ValueError, match="NaN"):
        supcon(torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="dimensions"):
        supcon(x[None], torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="base_temperature"):
        SupConLoss(0.1, 0.0)
