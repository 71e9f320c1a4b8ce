"""Gradient-matching distances of DC/DSA/DCC (spec dcc.md §2.2, §7.7.1-2)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.losses.gradient_matching import dc_matching_loss, dcc_matching_loss, gradient_distance

SHAPES = [(6, 3, 3, 3), (6,), (5, 24), (5,), (4, 2, 2, 2)]


def _grads(seed: int, dtype: torch.dtype = torch.float32, shapes: list[tuple[int, ...]] = SHAPES) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in shapes]


def _brute_force(gs: list[torch.Tensor], gr: list[torch.Tensor], metric: str) -> float:
    """The official distance_wb / match_loss written as plain loops over tensors and rows."""
    if metric == "ours":
        total = 0.0
        for a, b in zip(gs, gr, strict=True):
            if a.ndim < 2:
                continue
            for o in range(a.shape[0]):
                ra, rb = a[o].flatten().tolist(), b[o].flatten().tolist()
                dot = sum(x * y for x, y in zip(ra, rb, strict=True))
                na, nb = sum(x * x for x in ra) ** 0.5, sum(y * y for y in rb) ** 0.5
                total += 1.0 - dot / (na * nb + 1e-6)
        return total
    fa = [x for t in gs for x in t.flatten().tolist()]
    fb = [y for t in gr for y in t.flatten().tolist()]
    if metric == "mse":
        return sum((x - y) ** 2 for x, y in zip(fa, fb, strict=True))
    dot = sum(x * y for x, y in zip(fa, fb, strict=True))
    return 1.0 - dot / (sum(x * x for x in fa) ** 0.5 * sum(y * y for y in fb) ** 0.5 + 1e-6)


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_distance_equals_brute_force_loop_in_float64(metric: str) -> None:
    gs, gr = _grads(0, torch.float64), _grads(1, torch.float64)
    got = gradient_distance(gs, gr, metric)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(_brute_force(gs, gr, metric), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_distance_of_equal_gradients_is_zero(metric: str) -> None:
    g = _grads(0, torch.float64)
    assert float(gradient_distance(g, [t.clone() for t in g], metric)) == pytest.approx(0.0, abs=1e-6)
    # and it is clearly positive for different gradients
    assert float(gradient_distance(g, _grads(1, torch.float64), metric)) > 0.1


def test_ours_is_invariant_to_positive_per_tensor_scaling_mse_is_not() -> None:
    gs, gr = _grads(0, torch.float64), _grads(1, torch.float64)
    scales = [0.01, 3.0, 100.0, 7.0, 0.5]
    scaled = [a * s for a, s in zip(gs, scales, strict=True)]
    base = gradient_distance(gs, gr, "ours")
    assert torch.allclose(gradient_distance(scaled, gr, "ours"), base, atol=1e-6)
    assert torch.allclose(gradient_distance(gs, [b * 42.0 for b in gr], "ours"), base, atol=1e-6)
    assert not torch.allclose(gradient_distance(scaled, gr, "mse"), gradient_distance(gs, gr, "mse"), rtol=1e-3)


def test_cos_is_invariant_to_positive_global_scaling() -> None:
    gs, gr = _grads(0, torch.float64), _grads(1, torch.float64)
    base = gradient_distance(gs, gr, "cos")
    assert torch.allclose(gradient_distance([a * 5.0 for a in gs], gr, "cos"), base, atol=1e-9)
    assert torch.allclose(gradient_distance(gs, [b * 0.2 for b in gr], "cos"), base, atol=1e-9)
    # a negative scale is not an invariance (the rows point the other way)
    assert not torch.allclose(gradient_distance([-a for a in gs], gr, "cos"), base, atol=1e-3)


def test_one_dimensional_tensors_contribute_zero_for_ours() -> None:
    gs, gr = _grads(0), _grads(1)
    perturbed = [a + 10.0 * torch.randn_like(a) if a.ndim == 1 else a for a in gs]
    assert torch.equal(gradient_distance(perturbed, gr, "ours"), gradient_distance(gs, gr, "ours"))
    only_bias = [t for t in gs if t.ndim == 1]
    assert float(gradient_distance(only_bias, [t + 1 for t in only_bias], "ours")) == 0.0
    # mse does see them
    assert not torch.equal(gradient_distance(perturbed, gr, "mse"), gradient_distance(gs, gr, "mse"))


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_batched_distance_is_the_sum_over_the_batch(metric: str) -> None:
    per_class = [(_grads(c), _grads(10 + c)) for c in range(3)]
    stacked_s = [torch.stack([p[0][k] for p in per_class]) for k in range(len(SHAPES))]
    stacked_r = [torch.stack([p[1][k] for p in per_class]) for k in range(len(SHAPES))]
    expected = sum(float(gradient_distance(a, b, metric)) for a, b in per_class)
    assert float(dc_matching_loss(stacked_s, stacked_r, metric)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_dcc_equals_dc_with_one_class(metric: str) -> None:
    gs, gr = _grads(0), _grads(1)
    dc = dc_matching_loss([g[None] for g in gs], [g[None] for g in gr], metric)
    for reduction in ("mean", "sum"):
        assert torch.equal(dcc_matching_loss(gs, [g[None] for g in gr], metric, reduction), dc)


def test_mean_and_sum_reduction_agree_for_ours_and_cos_not_for_mse() -> None:
    gs = _grads(0, torch.float64)
    gr = [torch.stack([t, 2 * t + 1, -t]) for t in _grads(1, torch.float64)]
    for metric in ("ours", "cos"):
        a, b = dcc_matching_loss(gs, gr, metric, "mean"), dcc_matching_loss(gs, gr, metric, "sum")
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(dcc_matching_loss(gs, gr, "mse", "mean"), dcc_matching_loss(gs, gr, "mse", "sum"))
    assert torch.allclose(
        dcc_matching_loss(gs, gr, "mse", "mean"), gradient_distance(gs, [g.mean(0) for g in gr], "mse")
    )


def test_distance_is_differentiable_wrt_the_synthetic_gradient() -> None:
    gs = [t.requires_grad_(True) for t in _grads(0, torch.float64)]
    gradient_distance(gs, _grads(1, torch.float64), "ours").backward()
    assert gs[0].grad is not None and gs[0].grad.abs().sum() > 0
    assert gs[1].grad is None or float(gs[1].grad.abs().sum()) == 0.0  # the 1-D tensor is ignored


def test_bad_inputs_raise_one_line_value_errors() -> None:
    gs, gr = _grads(0), _grads(1)
    with pytest.raises(ValueError, match="metric must be one of"):
        gradient_distance(gs, gr, "l1")
    with pytest.raises(ValueError, match="same non-zero number"):
        gradient_distance(gs, gr[:-1])
    with pytest.raises(ValueError, match="shapes"):
        gradient_distance(gs, [g.T if g.ndim == 2 else g for g in gr])
    with pytest.raises(ValueError, match="lists or tuples"):
        gradient_distance(gs[0], gr[0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        dcc_matching_loss(gs, [g[None] for g in gr], "ours", "max")
    with pytest.raises(ValueError, match="batch_dims"):
        gradient_distance(gs, gr, batch_dims=-1)
