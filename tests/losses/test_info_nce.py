"""The masked InfoNCE core vs a float64 brute-force double loop, plus chunking, gradients and validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import (
    InfoNCELoss,
    info_nce,
    info_nce_from_logits,
    info_nce_with_mask_fn,
    masked_logsumexp,
)

DENOMINATORS = ("all", "own_positive", "negatives")


def brute_force_info_nce(
    anchors: torch.Tensor,
    keys: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    tau: float,
    denominator: str,
) -> tuple[list[float], list[bool]]:
    """Per-anchor losses with Python loops and math.exp/log, straight from the formulas in the docstring."""
    a = F.normalize(anchors.double(), dim=1)
    k = F.normalize(keys.double(), dim=1)
    losses: list[float] = []
    valid: list[bool] = []
    for i in range(a.shape[0]):
        s = [float(a[i] @ k[j]) / tau for j in range(k.shape[0])]
        positives = [j for j in range(k.shape[0]) if pos[i, j]]
        negatives = [j for j in range(k.shape[0]) if neg[i, j]]
        ok = len(positives) > 0 and (denominator != "negatives" or len(negatives) > 0)
        valid.append(ok)
        if not ok:
            losses.append(0.0)
            continue
        total = 0.0
        for p in positives:
            if denominator == "all":
                denom = sum(math.exp(s[j]) for j in positives + negatives)
                total += -(s[p] - math.log(denom))
            elif denominator == "own_positive":
                denom = math.exp(s[p]) + sum(math.exp(s[j]) for j in negatives)
                total += -(s[p] - math.log(denom))
            else:
                total += -s[p] + math.log(sum(math.exp(s[j]) for j in negatives))
        losses.append(total / len(positives))
    return losses, valid


def random_masks(n: int, m: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint random masks with some anchors without positives and some pairs in neither mask."""
    u = torch.rand(n, m, generator=generator)
    pos = u < 0.2
    neg = u > 0.35
    pos[0] = False  # anchor 0 has no positive
    pos[1, :] = False
    pos[1, 0] = True  # anchor 1 has exactly one positive
    return pos, neg & ~pos


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize(("n", "m", "tau"), [(5, 7, 0.1), (9, 4, 0.5), (12, 12, 1.0)])
def test_matches_brute_force(denominator: str, n: int, m: int, tau: float) -> None:
    g = torch.Generator().manual_seed(n * 100 + m)
    anchors = torch.randn(n, 6, generator=g, dtype=torch.float64)
    keys = torch.randn(m, 6, generator=g, dtype=torch.float64)
    pos, neg = random_masks(n, m, g)
    ref, valid = brute_force_info_nce(anchors, keys, pos, neg, tau, denominator)
    got = info_nce(anchors, keys, pos, neg, tau, reduction="none", denominator=denominator)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-10, atol=1e-10)
    mean = info_nce(anchors, keys, pos, neg, tau, denominator=denominator)
    expected_mean = sum(ref) / sum(valid)
    assert abs(float(mean) - expected_mean) < 1e-10
    total = info_nce(anchors, keys, pos, neg, tau, reduction="sum", denominator=denominator)
    assert abs(float(total) - sum(ref)) < 1e-10


def test_default_negatives_are_complement_of_positives() -> None:
    g = torch.Generator().manual_seed(3)
    a, k = (
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.randn(8, 4, generator=g, dtype=torch.float64),
    )
    pos, _ = random_masks(6, 8, g)
    torch.testing.assert_close(info_nce(a, k, pos), info_nce(a, k, pos, ~pos))


def test_denominator_ordering() -> None:
    """negatives < own_positive <= all per anchor (denominators are nested supersets)."""
    g = torch.Generator().manual_seed(4)
    a, k = (
        torch.randn(8, 5, generator=g, dtype=torch.float64),
        torch.randn(10, 5, generator=g, dtype=torch.float64),
    )
    pos, neg = random_masks(8, 10, g)
    losses = {d: info_nce(a, k, pos, neg, 0.3, reduction="none", denominator=d) for d in DENOMINATORS}
    has = pos.any(1)
    assert (losses["negatives"][has] < losses["own_positive"][has]).all()
    assert (losses["own_positive"][has] <= losses["all"][has] + 1e-12).all()


def test_unnormalized_uses_raw_dot_products() -> None:
    a = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    pos = torch.eye(2, dtype=torch.bool)
    got = info_nce(a, k, pos, temperature=0.5, normalize=False, reduction="none")
    # anchor 0: s = [4, 0] -> -4 + log(e^4 + 1); anchor 1: s = [0, 6] -> -6 + log(1 + e^6)
    expected = torch.tensor([math.log1p(math.exp(-4.0)), math.log1p(math.exp(-6.0))], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_no_positive_anywhere_gives_zero_with_graph() -> None:
    a = torch.randn(4, 3, requires_grad=True)
    k = torch.randn(5, 3, requires_grad=True)
    pos = torch.zeros(4, 5, dtype=torch.bool)
    for d in DENOMINATORS:
        loss = info_nce(a, k, pos, denominator=d)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.isfinite(a.grad).all() and torch.isfinite(k.grad).all()
        assert a.grad.abs().max() == 0 and k.grad.abs().max() == 0
        a.grad = k.grad = None


def test_invalid_anchors_get_zero_loss_and_zero_gradient() -> None:
    g = torch.Generator().manual_seed(5)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(6, 4, generator=g, dtype=torch.float64)
    pos, neg = random_masks(5, 6, g)
    neg[2] = False  # anchor 2 has positives but no negatives: invalid only for the DCL form
    pos[2, 3:5] = True
    neg &= ~pos
    for d in DENOMINATORS:
        per = info_nce(a, k, pos, neg, 0.2, reduction="none", denominator=d)
        assert torch.isfinite(per).all() and per[0] == 0
        # two positives, no negatives: log 2 + mean gap > 0 for "all"; 0 for "own_positive"; excluded for DCL
        assert (per[2] > 0) == (d == "all")
        n_valid = int(pos.any(1).sum()) - (1 if d == "negatives" else 0)
        mean = info_nce(a, k, pos, neg, 0.2, denominator=d)
        assert abs(mean.item() - per.sum().item() / n_valid) < 1e-12
        (grad,) = torch.autograd.grad(per.sum(), a)
        assert torch.isfinite(grad).all() and grad[0].abs().max() == 0


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("chunk_size", [1, 3, 5, 100])
def test_chunked_equals_unchunked(denominator: str, chunk_size: int) -> None:
    g = torch.Generator().manual_seed(6)
    a = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    pos, neg = random_masks(11, 9, g)
    full = info_nce(a, k, pos, neg, 0.2, denominator=denominator)
    ga, gk = torch.autograd.grad(full, (a, k))
    chunked = info_nce(a, k, pos, neg, 0.2, denominator=denominator, chunk_size=chunk_size)
    ca, ck = torch.autograd.grad(chunked, (a, k))
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ca, ga, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ck, gk, rtol=1e-10, atol=1e-12)


def test_chunking_recomputes_blocks_in_backward() -> None:
    """With chunk_size the block logits are not kept for backward: mask_fn is called again per block."""
    calls: list[tuple[int, int]] = []
    a = torch.randn(6, 3, requires_grad=True)
    k = torch.randn(4, 3)

    def mask_fn(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((start, stop))
        pos = torch.zeros(stop - start, 4, dtype=torch.bool)
        pos[:, 0] = True
        return pos, ~pos

    loss = info_nce_with_mask_fn(a, k, mask_fn, 0.5, chunk_size=2)
    assert calls == [(0, 2), (2, 4), (4, 6)]
    loss.backward()
    assert sorted(calls) == sorted([(0, 2), (2, 4), (4, 6)] * 2)


def test_mask_fn_form_equals_mask_form() -> None:
    g = torch.Generator().manual_seed(7)
    a, k = (
        torch.randn(7, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 4, generator=g, dtype=torch.float64),
    )
    pos, neg = random_masks(7, 5, g)
    got = info_nce_with_mask_fn(a, k, lambda s, e: (pos[s:e], neg[s:e]), 0.4, chunk_size=3)
    torch.testing.assert_close(got, info_nce(a, k, pos, neg, 0.4))


@pytest.mark.parametrize("denominator", DENOMINATORS)
def test_gradcheck(denominator: str) -> None:
    g = torch.Generator().manual_seed(8)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    pos, neg = random_masks(5, 6, g)
    assert torch.autograd.gradcheck(
        lambda x, y: info_nce(x, y, pos, neg, 0.3, denominator=denominator, chunk_size=2), (a, k)
    )


def test_extreme_temperature_stays_finite() -> None:
    g = torch.Generator().manual_seed(9)
    a = (100.0 * torch.randn(16, 8, generator=g)).requires_grad_()
    k = 100.0 * torch.randn(16, 8, generator=g)
    pos = torch.eye(16, dtype=torch.bool)
    for d in DENOMINATORS:
        loss = info_nce(a, k, pos, temperature=0.01, denominator=d)
        (grad,) = torch.autograd.grad(loss, a)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    # logits up to 1/0.001 = 1000: exp would overflow float32 without the log-sum-exp
    unnorm = info_nce(a, k, pos, temperature=0.001, normalize=False)
    assert torch.isfinite(unnorm)


def test_half_precision_is_computed_in_float32() -> None:
    a, k = torch.randn(6, 4), torch.randn(6, 4)
    pos = torch.eye(6, dtype=torch.bool)
    low = info_nce(a.bfloat16(), k.bfloat16(), pos, temperature=0.1)
    assert low.dtype == torch.float32
    assert abs(low.item() - info_nce(a.bfloat16().float(), k.bfloat16().float(), pos, temperature=0.1).item()) < 1e-5


def test_logits_stay_float32_under_autocast() -> None:
    g = torch.Generator().manual_seed(11)
    a, k = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    pos = torch.eye(8, dtype=torch.bool)
    reference = info_nce(a, k, pos, temperature=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ k.T).dtype == torch.bfloat16  # autocast is active
        got = info_nce(a, k, pos, temperature=0.05)
    assert got.dtype == torch.float32 and abs(got.item() - reference.item()) < 1e-5


def test_masked_logsumexp_matches_reference_and_empty_rows() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    lse, nonempty = masked_logsumexp(x, mask)
    assert nonempty.tolist() == [True, False]
    assert abs(lse[0].item() - math.log(math.e + math.e**3)) < 1e-12 and lse[1].item() == float("-inf")
    (grad,) = torch.autograd.grad(lse[0], x)
    assert torch.isfinite(grad).all() and grad[0, 1] == 0 and grad[1].abs().max() == 0


def test_module_wrapper_matches_function() -> None:
    a, k = torch.randn(5, 3), torch.randn(4, 3)
    pos = torch.rand(5, 4) < 0.4
    module = InfoNCELoss(0.2, denominator="own_positive")
    torch.testing.assert_close(module(a, k, pos), info_nce(a, k, pos, temperature=0.2, denominator="own_positive"))
    assert "own_positive" in repr(module)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_features_with_cpu_masks() -> None:
    g = torch.Generator().manual_seed(10)
    a, k = torch.randn(6, 3, generator=g), torch.randn(5, 3, generator=g)
    pos, neg = random_masks(6, 5, g)
    cpu = info_nce(a, k, pos, neg, 0.2, chunk_size=4)
    gpu = info_nce(a.cuda(), k.cuda(), pos, neg, 0.2, chunk_size=4)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"reduction": "avg"}, "reduction"),
        ({"denominator": "some"}, "denominator"),
    ],
)
def test_bad_options_raise(kwargs: dict, match: str) -> None:
    a, k = torch.randn(3, 2), torch.randn(3, 2)
    with pytest.raises(ValueError, match=match):
        info_nce(a, k, torch.eye(3, dtype=torch.bool), **kwargs)


def test_bad_inputs_raise() -> None:
    a, k = torch.randn(3, 2), torch.randn(4, 2)
    pos = torch.zeros(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="pos_mask must have shape"):
        info_nce(a, k, torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="neg_mask must have shape"):
        info_nce(a, k, pos, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        info_nce(a, k, pos.float())
    with pytest.raises(ValueError, match="overlap"):
        info_nce(a, k, ~pos, ~pos)
    with pytest.raises(ValueError, match="dimensions"):
        info_nce(a[0], k, pos)
    with pytest.raises(ValueError, match="feature size"):
        info_nce(a, torch.randn(4, 5), pos)
    with pytest.raises(ValueError, match="NaN"):
        info_nce(torch.full((3, 2), float("nan")), k, pos)
    with pytest.raises(ValueError, match="floating"):
        info_nce(a.long(), k, pos)
    with pytest.raises(ValueError, match="at least 1 rows"):
        info_nce(a[:0], k, pos[:0])


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("default_neg", [False, True])
def test_from_logits_equals_info_nce_on_feature_logits(denominator: str, reduction: str, default_neg: bool) -> None:
    g = torch.Generator().manual_seed(12)
    a = torch.randn(7, 4, generator=g, dtype=torch.float64)
    k = torch.randn(9, 4, generator=g, dtype=torch.float64)
    pos, neg = random_masks(7, 9, g)
    neg_mask = None if default_neg else neg
    tau = 0.3
    logits = F.normalize(a, dim=1) @ F.normalize(k, dim=1).T / tau
    got = info_nce_from_logits(logits, pos, neg_mask, reduction=reduction, denominator=denominator)
    want = info_nce(a, k, pos, neg_mask, tau, reduction=reduction, denominator=denominator)
    assert got.dtype == torch.float64 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0.0, atol=1e-12)


def test_from_logits_matches_brute_force_and_gradients_flow() -> None:
    g = torch.Generator().manual_seed(13)
    a = torch.randn(6, 3, generator=g, dtype=torch.float64)
    k = torch.randn(8, 3, generator=g, dtype=torch.float64)
    pos, neg = random_masks(6, 8, g)
    logits = (F.normalize(a, dim=1) @ F.normalize(k, dim=1).T / 0.5).requires_grad_()
    want, valid = brute_force_info_nce(a, k, pos, neg, 0.5, "all")
    got = info_nce_from_logits(logits, pos, neg, reduction="none")
    assert max(abs(x - y) for x, y in zip(got.tolist(), want, strict=True)) < 1e-12
    (grad,) = torch.autograd.grad(got.sum(), logits)
    untouched = ~(pos | neg) | ~torch.tensor(valid)[:, None]
    assert grad[untouched].abs().max() == 0 and grad[~untouched].abs().min() > 0
    assert torch.autograd.gradcheck(
        lambda x: info_nce_from_logits(x, pos, neg, denominator="own_positive"), (logits.detach().requires_grad_(),)
    )


def test_from_logits_half_precision_is_float32() -> None:
    logits = torch.randn(4, 5).bfloat16()
    pos = torch.eye(4, 5, dtype=torch.bool)
    got = info_nce_from_logits(logits, pos)
    assert got.dtype == torch.float32
    assert abs(got.item() - info_nce_from_logits(logits.float(), pos).item()) < 1e-6


def test_from_logits_bad_inputs_raise() -> None:
    logits = torch.randn(3, 4)
    pos = torch.zeros(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="pos_mask must have shape"):
        info_nce_from_logits(logits, torch.zeros(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        info_nce_from_logits(logits, pos.float())
    with pytest.raises(ValueError, match="overlap"):
        info_nce_from_logits(logits, ~pos, ~pos)
    with pytest.raises(ValueError, match="dimensions"):
        info_nce_from_logits(logits[0], pos)
    with pytest.raises(ValueError, match="NaN or Inf"):
        info_nce_from_logits(torch.full((3, 4), float("-inf")), pos)
    with pytest.raises(ValueError, match="floating"):
        info_nce_from_logits(logits.long(), pos)
    with pytest.raises(ValueError, match="reduction"):
        info_nce_from_logits(logits, pos, reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="denominator"):
        info_nce_from_logits(logits, pos, denominator="some")  # type: ignore[arg-type]
