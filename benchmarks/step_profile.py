"""Where the SimCLR step spends its time, and the elementwise kernels behind it.

Two tables:
  * ``profile``: milliseconds per step by kind of op (convolution, batch norm, ReLU, add, the rest), from
    ``torch.profiler`` self CPU time over ``--steps`` steps, for the float32 eager step and the fast step
    (channels_last + bfloat16 autocast), the same steps as ``benchmarks/throughput.py``;
  * ``kernels``: median milliseconds of single ops on a ``[2 * batch, 16, 28, 28]`` channels_last bfloat16 tensor
    (the first stage's activation): a copy, ATen's ReLU forward (``clamp_min_``) and backward
    (``threshold_backward``), the fast path of ``contrastkit.models.activations``, ATen's batch norm forward and
    backward, and the fused batch norm + ReLU of ``contrastkit.models.batch_norm`` (when its kernels are built).

    python benchmarks/step_profile.py --steps 3 --out docs/results/step_profile.json
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from throughput import make_step, run_header, save_result, step_arguments, timeit
from torch.profiler import ProfilerActivity, profile

from contrastkit.models import BatchNorm2d, native_kernels, set_fused_batch_norm
from contrastkit.models.activations import relu, set_fast_path

KINDS = {
    "convolution": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution"),
    "batch_norm": (
        "aten::native_batch_norm",
        "aten::native_batch_norm_backward",
        "contrastkit_bf16::batch_norm_forward",  # the fused kernel of contrastkit.models.batch_norm (+ add, ReLU)
        "contrastkit_bf16::batch_norm_backward",
    ),
    "relu": ("aten::clamp_min_", "aten::clamp_min", "aten::threshold_backward", "aten::relu", "aten::relu_"),
    "add": ("aten::add", "aten::add_"),
}


def profile_step(args: argparse.Namespace, fast: bool, images: torch.Tensor) -> dict[str, float]:
    """Self CPU milliseconds per step by kind of op."""
    step, _, _ = make_step(args, fast, images)
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    per_kind = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in KINDS.items() if event.key in names), "other")
        per_kind[kind] += event.self_cpu_time_total / 1e3 / args.steps
    per_kind["total"] = sum(per_kind.values())
    return per_kind


def kernel_table(batch: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of single elementwise ops on the first stage's bf16 channels_last activation."""
    x = torch.randn(2 * batch, 16, 28, 28).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    out = torch.relu(x)
    grad = torch.randn_like(x)
    weight, bias = torch.ones(16, requires_grad=True), torch.zeros(16, requires_grad=True)
    xg = x.clone().requires_grad_()
    normed = F.batch_norm(xg, None, None, weight, bias, True)

    def bn_backward() -> None:
        torch.autograd.grad(normed, (xg, weight, bias), grad, retain_graph=True)

    def fast_backward() -> None:
        torch.ops.aten.threshold_backward(grad.view(torch.int16), out.view(torch.int16), 0)

    buffer = x.clone()
    previous = set_fast_path(True)  # the kernel table times the fast paths whatever the switches of the step
    previous_bn = set_fused_batch_norm(True)
    try:
        fused = {}
        if native_kernels():
            module = BatchNorm2d(16)
            xf = x.clone().requires_grad_()
            fused_out = module.forward_act(xf)

            def fused_backward() -> None:
                torch.autograd.grad(fused_out, (xf, module.weight, module.bias), grad, retain_graph=True)

            fused = {
                "fused_batch_norm_relu_forward_ms": 1e3 * timeit(lambda: module.forward_act(x), repeats),
                "fused_batch_norm_relu_backward_ms": 1e3 * timeit(fused_backward, repeats),
            }
        return {
            "copy_ms": 1e3 * timeit(lambda: buffer.copy_(x), repeats),
            # in place on the same buffer: the kernels read and write every element whatever the values
            "aten_relu_forward_ms": 1e3 * timeit(lambda: buffer.clamp_min_(0), repeats),
            "fast_relu_forward_ms": 1e3 * timeit(lambda: relu(buffer, inplace=True), repeats),
            "aten_relu_backward_ms": 1e3 * timeit(lambda: torch.ops.aten.threshold_backward(grad, out, 0), repeats),
            "fast_relu_backward_ms": 1e3 * timeit(fast_backward, repeats),
            "batch_norm_forward_ms": 1e3 * timeit(lambda: F.batch_norm(x, None, None, weight.detach(), bias.detach(),
                                                                        True), repeats),
            "batch_norm_backward_ms": 1e3 * timeit(bn_backward, repeats),
            **fused,
        }
    finally:
        set_fast_path(previous)
        set_fused_batch_norm(previous_bn)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(p, "cpu")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20, help="repeats of each kernel timing")
    args = p.parse_args(argv)
    result = run_header(args)
    images = torch.rand(4096, 1, 28, 28)
    result |= {
        "profile_ms_per_step": {
            "float32 eager": profile_step(args, False, images),
            "channels_last + bf16": profile_step(args, True, images),
        },
        "kernels": kernel_table(args.batch_size, args.repeats),
    }
    kinds = [*KINDS, "other", "total"]
    print(f"{'ms per step (self CPU)':24s} " + " ".join(f"{k:>11s}" for k in kinds))
    for config, row in result["profile_ms_per_step"].items():
        print(f"{config:24s} " + " ".join(f"{row[k]:11.1f}" for k in kinds))
    print(f"kernels on [{2 * args.batch_size}, 16, 28, 28] bf16 channels_last (ms):")
    for name, ms in result["kernels"].items():
        print(f"  {name:32s} {ms:7.2f}")
    save_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
