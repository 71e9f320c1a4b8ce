"""The bfloat16 ReLU fast path equals torch.relu bit for bit (values and gradients), and falls back elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.models.activations import ReLU, relu, set_fast_path


def _special_bf16() -> torch.Tensor:
    finfo = torch.finfo(torch.bfloat16)
    values = [0.0, -0.0, 1.0, -1.0, finfo.tiny, -finfo.tiny, finfo.max, -finfo.max, float("inf"), float("-inf")]
    subnormal = torch.tensor([1e-40, -1e-40]).to(torch.bfloat16)
    return torch.cat([torch.tensor(values, dtype=torch.bfloat16), subnormal, torch.randn(1000).to(torch.bfloat16)])


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16)


def test_forward_equals_torch_relu_bit_for_bit() -> None:
    """Every bit pattern equal to ATen's, except that -0.0 comes out as +0.0 (equal as values)."""
    x = _special_bf16()
    expected = torch.relu(x)
    assert _bits(expected)[1] == -32768  # ATen keeps -0.0
    expected_bits = _bits(expected).clone()
    expected_bits[1] = 0
    assert torch.equal(_bits(relu(x)), expected_bits)
    assert torch.equal(relu(x), expected)
    y = x.clone()
    out = relu(y, inplace=True)
    assert out.data_ptr() == y.data_ptr()
    assert torch.equal(_bits(y), expected_bits)


def test_positive_nan_stays_nan() -> None:
    x = torch.tensor([float("nan"), 1.0], dtype=torch.bfloat16).abs()  # sign bit clear
    assert torch.isnan(relu(x)[0])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gradient_equals_torch_relu(memory_format: torch.memory_format) -> None:
    torch.manual_seed(0)
    x0 = torch.randn(4, 3, 5, 5).to(torch.bfloat16).contiguous(memory_format=memory_format)
    x0[0, 0, 0, :2] = torch.tensor([0.0, -0.0])
    grad = torch.randn_like(x0)
    a = x0.clone().requires_grad_()
    b = x0.clone().requires_grad_()
    relu(a * 1).backward(grad)
    torch.relu(b * 1).backward(grad)
    assert torch.equal(_bits(a.grad), _bits(b.grad))
    assert relu(x0).is_contiguous(memory_format=memory_format)


def test_inplace_inside_autograd_graph() -> None:
    torch.manual_seed(1)
    x = torch.randn(64).to(torch.bfloat16).requires_grad_()
    grad = torch.randn(64).to(torch.bfloat16)
    (relu(x * 2, inplace=True) * 3).backward(grad)
    expected = torch.where(x.detach() > 0, 6 * grad.float(), 0.0)
    torch.testing.assert_close(x.grad.float(), expected, rtol=1e-2, atol=0)


def test_double_backward_matches_torch_relu() -> None:
    torch.manual_seed(2)
    x = torch.randn(32).to(torch.bfloat16)
    w = torch.randn(32).to(torch.bfloat16)
    results = []
    for fn in (relu, torch.relu):
        wi = w.clone().requires_grad_()
        xi = x.clone().requires_grad_()
        (g,) = torch.autograd.grad((fn(xi * wi) ** 2).sum(), xi, create_graph=True)
        (gw,) = torch.autograd.grad(g.float().pow(2).sum(), wi)
        results.append(gw)
    assert torch.equal(_bits(results[0]), _bits(results[1]))


def test_float32_is_torch_relu_and_vmap_works() -> None:
    x = torch.randn(5, 7)
    assert torch.equal(relu(x), torch.relu(x))
    xb = x.to(torch.bfloat16)
    assert torch.equal(_bits(torch.func.vmap(relu)(xb)), _bits(torch.relu(xb)))
    g = torch.func.grad(lambda t: relu(t).float().sum())(xb[0])
    assert torch.equal(g.float(), (xb[0] > 0).float())


def test_module_is_a_drop_in_nn_relu() -> None:
    module = ReLU(inplace=True)
    assert isinstance(module, nn.ReLU) and module.inplace and repr(module) == repr(nn.ReLU(inplace=True))


def test_the_fast_path_can_be_switched_off() -> None:
    x = torch.tensor([-0.0, -1.0, 2.0], dtype=torch.bfloat16)
    assert _bits(relu(x))[0] == 0  # fast path: -0.0 -> +0.0
    previous = set_fast_path(False)
    try:
        assert previous is True
        assert _bits(relu(x))[0] == -32768  # ATen keeps -0.0
    finally:
        set_fast_path(previous)
    assert _bits(relu(x))[0] == 0
