"""Throughput of the SimCLR train step, of the augmentation alone and of the contrastive losses.

Prints one table. Rows:
  * ``step``: images/s of a full SimCLR step (batch from memory + two views + forward + backward + optimiser step),
    in plain float32 eager and in the fast configuration (channels_last + bfloat16 autocast where supported), the
    two timed in alternation (median of ``--repeats`` each);
    achieved FLOP/s of the step from ``torch.utils.flop_counter`` next to the measured GEMM FLOP/s of the machine;
  * ``augment``: images/s of the two-view augmentation alone, and its share of the step time;
  * ``loss``: forward+backward milliseconds of nt_xent and supcon at N = 1024 and 4096 (d = 128).

    python benchmarks/throughput.py --backbone resnet18 --width 0.25 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from contrastkit import accel
from contrastkit.augment import multi_view, simclr_views
from contrastkit.losses import nt_xent, supcon
from contrastkit.methods import SimCLR
from contrastkit.models import build_backbone, native_kernels, set_fused_batch_norm
from contrastkit.models.activations import set_fast_path


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def save_result(out: Path | None, result: dict) -> None:
    """Write ``result`` as indented JSON to ``out`` (folders created); nothing when ``out`` is None."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))


def gemm_flops(dtype: torch.dtype, n: int = 2048) -> float:
    """Measured FLOP/s of an ``n x n`` matrix product in ``dtype`` on the CPU."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timeit(lambda: a @ b, repeats=5)


def make_step(args: argparse.Namespace, fast: bool, images: torch.Tensor) -> tuple[Callable[[], None], SimCLR, str]:
    """A SimCLR train step (batch drawn from memory, two views, forward, backward, Adam) in float32 or fast mode."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    precision = accel.resolve_precision("auto" if fast else "32", device)
    backbone = build_backbone(args.backbone, in_channels=images.shape[1], small_stem=True, width=args.width)
    method = SimCLR(backbone, simclr_views(images.shape[-1], images.shape[1])).to(device)
    method = accel.channels_last(method, fast)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        idx = torch.randint(len(images), (args.batch_size,), generator=generator)
        x = images[idx].to(device)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with accel.autocast(device, precision):
            loss = method.training_step(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        # allowed outside the engine: this bare step is the reference the engine is measured against
        # (benchmarks/engine_overhead.py)
        loss.backward()
        optimizer.step()

    return step, method, precision


def augment_seconds(x: torch.Tensor, method: SimCLR, repeats: int) -> float:
    """Median seconds of the two SimCLR views of the batch ``x``."""
    return timeit(lambda: multi_view(x, 2, method.views), repeats)


def step_benchmarks(args: argparse.Namespace, images: torch.Tensor) -> list[dict]:
    """Both steps timed in alternation (float32, fast, float32, ...), so drifts of the machine hit both alike."""
    setups = [make_step(args, fast, images) for fast in (False, True)]
    for step, _, _ in setups:
        for _ in range(2):
            step()
    times: list[list[float]] = [[], []]
    for _ in range(args.repeats):
        for k, (step, _, _) in enumerate(setups):
            start = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - start)
    rows = []
    for k, (step, method, precision) in enumerate(setups):
        seconds = sorted(times[k])[len(times[k]) // 2]
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        aug = augment_seconds(images[: args.batch_size].to(args.device), method, args.repeats)
        rows.append({
            "config": "channels_last + " + precision if k else "float32 eager",
            "precision": precision,
            "images_per_s": args.batch_size / seconds,
            "step_ms": 1e3 * seconds,
            "step_ms_all": [1e3 * t for t in times[k]],
            "step_flops": flops,
            "achieved_gflops": flops / seconds / 1e9,
            "augment_ms": 1e3 * aug,
            "augment_share": aug / seconds,
        })  # fmt: skip
    return rows


def loss_benchmark(n: int, dim: int = 128) -> dict:
    torch.manual_seed(0)
    z = torch.randn(2 * n, dim, requires_grad=True)
    labels = torch.randint(0, 100, (n,)).repeat(2)

    # allowed outside the engine: forward + backward of the losses alone, a kernel timing, not training
    def run_nt_xent() -> None:
        nt_xent(z[:n], z[n:], temperature=0.5).backward()

    def run_supcon() -> None:  # allowed outside the engine: as above
        supcon(z, labels, temperature=0.1).backward()

    return {"N": n, "nt_xent_ms": 1e3 * timeit(run_nt_xent, 5), "supcon_ms": 1e3 * timeit(run_supcon, 5)}


def step_arguments(p: argparse.ArgumentParser, device: str) -> None:
    """The arguments of the SimCLR step (:func:`make_step`) and of its fast-path switches; shared by step_profile."""
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=device)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--no-fast-relu", action="store_true",
                   help="switch off the bfloat16 ReLU fast path of contrastkit.models.activations (ATen's ReLU)")
    p.add_argument("--no-fused-bn", action="store_true",
                   help="switch off the fused bfloat16 batch norm + ReLU of contrastkit.models.batch_norm (ATen's)")


def run_header(args: argparse.Namespace) -> dict:
    """Apply the switches of :func:`step_arguments` and return what a result file records about the run."""
    if args.no_fast_relu:
        set_fast_path(False)
    if args.no_fused_bn:
        set_fused_batch_norm(False)
    return {
        "settings": vars(args) | {"out": str(args.out)},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "native_kernels": native_kernels(),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(p, "cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    result = run_header(args)
    images = torch.rand(4096, args.channels, args.image_size, args.image_size)
    result |= {
        "gemm_gflops": {
            "float32": gemm_flops(torch.float32) / 1e9,
            "bfloat16": gemm_flops(torch.bfloat16) / 1e9,
        },
        "steps": step_benchmarks(args, images),
        "losses": [loss_benchmark(n) for n in (1024, 4096)],
    }
    slow, fast = result["steps"]
    result["speedup"] = fast["images_per_s"] / slow["images_per_s"]
    print(
        f"SimCLR step: {args.backbone} width {args.width}, small stem, {args.channels}x{args.image_size}x"
        f"{args.image_size}, batch {args.batch_size}, {result['threads']} threads, torch {torch.__version__}"
    )
    print(f"{'config':28s} {'img/s':>8s} {'step ms':>8s} {'GFLOP/s':>8s} {'aug ms':>7s} {'aug %':>6s}")
    for row in result["steps"]:
        print(
            f"{row['config']:28s} {row['images_per_s']:8.0f} {row['step_ms']:8.1f} {row['achieved_gflops']:8.1f} "
            f"{row['augment_ms']:7.1f} {100 * row['augment_share']:6.1f}"
        )
    print(f"speed-up of the fast step over float32 eager: {result['speedup']:.2f}x")
    print(f"augmentation alone: {args.batch_size / (fast['augment_ms'] / 1e3):.0f} images/s (two views)")
    gemm = result["gemm_gflops"]
    print(
        f"machine GEMM 2048^2: float32 {gemm['float32']:.0f} GFLOP/s, bfloat16 {gemm['bfloat16']:.0f} GFLOP/s; "
        f"step FLOPs {fast['step_flops'] / 1e9:.1f} GFLOP per batch"
    )
    print(f"{'loss fwd+bwd (d=128)':28s} {'N':>6s} {'nt_xent ms':>11s} {'supcon ms':>10s}")
    for row in result["losses"]:
        print(f"{'':28s} {row['N']:6d} {row['nt_xent_ms']:11.1f} {row['supcon_ms']:10.1f}")
    save_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
