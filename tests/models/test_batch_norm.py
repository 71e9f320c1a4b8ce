"""The fused bf16 batch norm (+ residual + ReLU) against float64 references, ATen's chain and its fallbacks."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.models import BatchNorm2d, native, norm_act, resnet18, resnet50, set_fused_batch_norm
from contrastkit.models.activations import set_fast_path

needs_kernels = pytest.mark.skipif(not native.native_kernels(), reason="native bf16 kernels need AVX-512 and g++")
BF16_EPS = 2.0**-8  # half an ulp of bfloat16, relative
Shape = tuple[int, int, int, int]


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _inputs(seed: int, shape: Shape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    # per-channel offsets far from zero: a one-pass E[x^2] - E[x]^2 in float32 would lose the variance
    x = torch.randn(shape, generator=g) * (0.5 + torch.rand(c, generator=g)).view(1, c, 1, 1)
    x = x + 20 * torch.randn(c, generator=g).view(1, c, 1, 1)
    weight = 0.5 + torch.rand(c, generator=g)
    bias = torch.randn(c, generator=g)
    return _cl(x.to(torch.bfloat16)), weight, bias


def _reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor | None, act: bool
) -> torch.Tensor:  # float64, from the same bf16 inputs
    xd = x.double()
    mean = xd.mean(dim=(0, 2, 3), keepdim=True)
    var = xd.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    h = (xd - mean) / torch.sqrt(var + 1e-5) * weight.double().view(1, -1, 1, 1) + bias.double().view(1, -1, 1, 1)
    if residual is not None:
        h = h.to(torch.bfloat16).double() + residual.double()  # the unfused chain rounds bn(x) first
    return torch.relu(h) if act else h


def _module(weight: torch.Tensor, bias: torch.Tensor) -> BatchNorm2d:
    bn = BatchNorm2d(weight.numel())
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    return bn


# channels: tails only (1, 3), one full chunk (16), chunks + tail (40, 130); each with and without residual and ReLU
SHAPES: list[Shape] = [(5, 1, 3, 3), (4, 3, 5, 7), (8, 16, 6, 6), (2, 40, 9, 5), (3, 130, 2, 3)]
CASES = pytest.mark.parametrize(
    ("shape", "residual", "act"),
    [(shape, residual, act) for shape in SHAPES for residual in (False, True) for act in (False, True)],
)


@needs_kernels
@CASES
def test_forward_matches_float64_within_bf16_rounding(shape: Shape, residual: bool, act: bool) -> None:
    x, weight, bias = _inputs(0, shape)
    z = _cl(torch.randn(shape).to(torch.bfloat16)) if residual else None
    bn = _module(weight, bias)
    y = bn.forward_act(x, z, act)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    ref = _reference(x, weight, bias, z, act)
    # one rounding of the output (two with a residual), plus float32 arithmetic inside
    tolerance = (3 if residual else 1.1) * BF16_EPS * ref.abs() + 1e-3
    assert ((y.double() - ref).abs() <= tolerance).all()
    # and almost always the very same bf16 value as ATen's unfused chain
    aten = F.batch_norm(x, None, None, weight, bias, True, 0.1, 1e-5)
    if z is not None:
        aten = aten + z
    aten = torch.relu(aten) if act else aten
    assert (y == aten).double().mean() > 0.97
    assert ((y.double() - aten.double()).abs() <= 2 * BF16_EPS * aten.double().abs() + 1e-3).all()


@needs_kernels
@CASES
def test_backward_matches_float64(shape: Shape, residual: bool, act: bool) -> None:
    x, weight, bias = _inputs(1, shape)
    z0 = torch.randn(shape).to(torch.bfloat16)
    grad = _cl(torch.randn(shape).to(torch.bfloat16))
    bn = _module(weight, bias)
    xi = x.clone().requires_grad_()
    zi = _cl(z0.clone()).requires_grad_() if residual else None  # a leaf of its own (for C = 1 _cl is a no-op)
    y = bn.forward_act(xi, zi, act)
    y.backward(grad)

    # float64 reference through the same graph, with the ReLU mask taken from the fused output
    xd = x.double().requires_grad_()
    wd = weight.double().requires_grad_()
    bd = bias.double().requires_grad_()
    zd = z0.double().requires_grad_() if residual else None
    h = F.batch_norm(xd, None, None, wd, bd, True, 0.0, 1e-5)
    if zd is not None:
        h = h + zd
    if act:
        h = h * (y.detach() > 0).double()
    h.backward(grad.double())

    def close(ours: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
        assert (ours.double() - ref).abs().max() <= rel * ref.abs().max() + 1e-6

    close(xi.grad, xd.grad, 2e-2)  # bf16 output: ~0.4 % per element, relative to the largest
    close(bn.weight.grad, wd.grad, 1e-3)
    close(bn.bias.grad, bd.grad, 1e-4)
    if residual:
        expected = grad.float() * (y.detach() > 0).float() if act else grad.float()
        assert torch.equal(zi.grad.float(), expected)


@needs_kernels
def test_statistics_do_not_cancel_far_from_zero() -> None:
    x, weight, bias = _inputs(2, (64, 8, 16, 16))
    # every channel near 1000, where bf16 values are 4-8 apart: E[x^2] ~ 1e6 against a variance of 1-6, which
    # a float32 E[x^2] - E[x]^2 over 512-row blocks gets ~70 % wrong in running_var (tolerance 1e-4)
    x = _cl((x.float() + 1000).to(torch.bfloat16))
    bn = _module(weight, bias)
    bn.forward_act(x, None, False)
    var = x.double().var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_mean.double(), 0.1 * x.double().mean(dim=(0, 2, 3)), rtol=1e-6, atol=0)
    torch.testing.assert_close(bn.running_var.double(), 0.9 + 0.1 * var, rtol=1e-4, atol=0)


@needs_kernels
@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_follow_nn_batchnorm(momentum: float | None) -> None:
    fused = BatchNorm2d(16, momentum=momentum)
    plain = nn.BatchNorm2d(16, momentum=momentum)
    for step in range(3):
        x, _, _ = _inputs(10 + step, (8, 16, 5, 5))
        fused(x)
        plain(x)
    assert int(fused.num_batches_tracked) == int(plain.num_batches_tracked) == 3
    torch.testing.assert_close(fused.running_mean, plain.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused.running_var, plain.running_var, rtol=1e-4, atol=1e-5)


def _same_as_nn(bn: BatchNorm2d, x: torch.Tensor) -> bool:
    plain = nn.BatchNorm2d(bn.num_features)
    plain.load_state_dict(bn.state_dict())
    plain.train(bn.training)
    return torch.equal(bn.forward_act(x, None, True), torch.relu(plain(x)))


@pytest.mark.parametrize(
    "case", ["eval", "float32", "contiguous", "hook", "switched_off", "one_value_per_channel", "vmap"]
)
def test_falls_back_to_aten_exactly(case: str) -> None:
    x, weight, bias = _inputs(3, (4, 16, 6, 6))
    bn = _module(weight, bias)
    if case == "eval":
        bn.eval()
    elif case == "float32":
        x = x.float()
    elif case == "contiguous":
        x = x.contiguous()
    elif case == "hook":
        calls = []
        bn.register_forward_hook(lambda *args: calls.append(1))
        assert _same_as_nn(bn, x) and calls
        return
    elif case == "switched_off":
        previous = set_fused_batch_norm(False)
        try:
            assert _same_as_nn(bn, x)
        finally:
            set_fused_batch_norm(previous)
        return
    elif case == "one_value_per_channel":
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            bn.forward_act(x[:1, :, :1, :1], None, True)
        return
    elif case == "vmap":  # torch.func transforms never see the native op
        bn = BatchNorm2d(16, track_running_stats=False)
        xs = torch.stack([x, _cl(torch.randn(4, 16, 6, 6).to(torch.bfloat16))])
        plain = nn.BatchNorm2d(16, track_running_stats=False)
        out = torch.func.vmap(lambda t: bn.forward_act(t, None, True))(xs)
        assert torch.equal(out, torch.func.vmap(lambda t: torch.relu(plain(t)))(xs))
        return
    assert _same_as_nn(bn, x)


@needs_kernels
def test_double_backward_follows_the_unfused_chain() -> None:
    x, weight, bias = _inputs(4, (4, 16, 5, 5))
    z = _cl(torch.randn(4, 16, 5, 5).to(torch.bfloat16))
    grads = []
    for fused in (True, False):
        previous = set_fused_batch_norm(fused)
        try:
            bn = _module(weight, bias)
            xi = x.clone().requires_grad_()
            (gx,) = torch.autograd.grad(bn.forward_act(xi, z, True).float().square().sum(), xi, create_graph=True)
            (gw,) = torch.autograd.grad(gx.float().square().sum(), bn.weight)
            grads.append(gw)
        finally:
            set_fused_batch_norm(previous)
    torch.testing.assert_close(grads[0], grads[1], rtol=0.05, atol=1e-3)


def test_norm_act_on_other_norms_is_the_plain_chain() -> None:
    torch.manual_seed(5)
    x, z = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    gn = nn.GroupNorm(2, 8)
    assert torch.equal(norm_act(gn, x, z), torch.relu(gn(x) + z))
    assert torch.equal(norm_act(nn.Identity(), x, act=False), x)


def test_state_dict_is_that_of_nn_batchnorm() -> None:
    ours, plain = BatchNorm2d(12), nn.BatchNorm2d(12)
    assert isinstance(ours, nn.BatchNorm2d)
    assert list(ours.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(ours.state_dict())


@needs_kernels
@pytest.mark.parametrize("arch", [resnet18, resnet50])
def test_resnet_bf16_step_with_fused_norms_is_as_accurate_as_aten(arch: Callable[..., nn.Module]) -> None:
    """A whole bf16 ResNet forward and backward, against float32: fused kernels err no more than ATen's.

    bf16 alone puts a small ResNet's gradients at init some 30 % (relative norm) off float32, so the test compares
    the two bf16 paths' errors rather than the paths with each other.
    """
    x = _cl(torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(6)))
    weights = torch.randn(16, 256, generator=torch.Generator().manual_seed(0))  # loss: a random projection
    results = {}
    for name, fused, bf16 in (("fused", True, True), ("aten", False, True), ("float32", False, False)):
        previous = set_fused_batch_norm(fused)
        try:
            torch.manual_seed(7)
            model = arch(in_channels=1, small_stem=True, width=0.125).to(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            (out.float() * weights[:, : out.shape[1]]).sum().backward()
            results[name] = (out.float().detach(), torch.cat([p.grad.flatten() for p in model.parameters()]))
        finally:
            set_fused_batch_norm(previous)

    def error(name: str, i: int) -> float:
        return float((results[name][i] - results["float32"][i]).norm() / results["float32"][i].norm())

    assert error("fused", 0) <= 1.25 * error("aten", 0) + 1e-3
    assert error("fused", 1) <= 1.25 * error("aten", 1) + 1e-3
    assert not torch.equal(results["fused"][0], results["aten"][0])  # the fused path was taken


def test_relu_fast_path_in_a_resnet_is_bit_identical() -> None:
    """With the norms unfused, the int16 ReLU fast path leaves a whole bf16 ResNet step bit for bit unchanged."""
    x = _cl(torch.randn(8, 1, 16, 16))
    grads = []
    previous_bn = set_fused_batch_norm(False)
    try:
        for fast in (True, False):
            previous = set_fast_path(fast)
            try:
                torch.manual_seed(3)
                model = resnet18(in_channels=1, small_stem=True, width=0.125).to(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(x)
                out.float().square().sum().backward()
                grads.append([p.grad.clone() for p in model.parameters()])
            finally:
                set_fast_path(previous)
    finally:
        set_fused_batch_norm(previous_bn)
    for g_fast, g_plain in zip(*grads, strict=True):
        assert torch.equal(g_fast, g_plain)


def test_switched_off_by_environment() -> None:
    code = "import contrastkit.models.native as n; print(n.native_kernels())"
    env = {"CONTRASTKIT_NATIVE": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_failed_build_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.cpp_extension as cpp_extension

    def broken_load(**kwargs):
        raise RuntimeError("Error building extension 'contrastkit_bf16'\nc++: command not found")

    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(cpp_extension, "load", broken_load)
    monkeypatch.delenv("CONTRASTKIT_NATIVE", raising=False)
    with pytest.warns(RuntimeWarning, match="could not be built .*command not found"):
        assert native.native_kernels() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.native_kernels() is False  # cached: no second warning
    x, weight, bias = _inputs(8, (4, 16, 6, 6))
    assert _same_as_nn(_module(weight, bias), x)


@needs_kernels
def test_results_do_not_depend_on_the_thread_count() -> None:
    x, weight, bias = _inputs(9, (16, 24, 12, 12))
    grad = _cl(torch.randn(16, 24, 12, 12).to(torch.bfloat16))
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            bn = _module(weight, bias)
            xi = x.clone().requires_grad_()
            y = bn.forward_act(xi, None, True)
            y.backward(grad)
            results.append((y, xi.grad, bn.weight.grad, bn.running_var))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
