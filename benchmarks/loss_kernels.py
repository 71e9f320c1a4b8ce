"""Forward + backward time, peak memory and accuracy of contrastkit's contrastive losses against plain references.

For each loss (``--losses``: nt_xent, supcon, dcl, cross_view), N in ``--sizes`` and dtype in ``--dtypes``, the
contenders run forward + backward of the loss on the same inputs, round-robin within each of ``--repeats`` repeats
(after one warm-up call each) so that drifts of the machine hit all alike; the median is reported:

* ``contrastkit``: ``contrastkit.losses.{nt_xent, supcon, dcl, cross_view_info_nce}`` as the package has them at
  run time (whatever path they dispatch to);
* ``reference``: the plain one-matrix versions of ``benchmarks/_loss_references.py`` (equal to contrastkit in
  float64, tests/test_loss_benchmark.py); skipped above ``--max-reference-n`` and, like pml, where its estimated
  peak memory (``estimated_gb``) exceeds 80 % of the free memory;
* ``pml``: pytorch-metric-learning's ``NTXentLoss`` / ``SupConLoss`` (``pip install contrastkit[bench]``), when
  importable and when its estimated memory fits ``--max-pml-gb`` (its NTXentLoss builds a [2N, 4N^2] pair
  matrix, so it runs only at small N).

Inputs: two views z1, z2 [N, d] (``--dim``) of N samples; NT-Xent and DCL contrast the 2N views, cross-view
InfoNCE the N x N pairs of the two views in both directions, SupCon the 2N views ``cat(z1, z2)`` with labels
``randint(--classes)`` repeated per view. Each loss at its function's default temperature. ``bf16`` is the same call
with float32 inputs under ``torch.autocast(device, dtype=torch.bfloat16)``. Ratios: contrastkit / reference at the
same dtype, contrastkit / the reference's fp32 time, contrastkit / pml. Accuracy (N <= ``--max-accuracy-n``): the
absolute difference of each contender's loss value from the float64 reference on the same inputs.

``--memory``: the peak memory growth of ONE forward + backward at each N of ``--memory-sizes``, each in a fresh
subprocess (CPU: the peak RSS after the call minus the RSS before it, both of the child alone; CUDA:
``max_memory_allocated`` minus the allocated bytes before), for contrastkit and the reference, with the exponent
k of memory ~ N^k between successive sizes (linear: k < 1.5). ``--sizes`` with no value skips the timings.

    python benchmarks/loss_kernels.py --threads 2 --markdown /tmp/loss_kernels.md
    python benchmarks/loss_kernels.py --sizes --memory --memory-sizes 4096 16384 65536
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loss_references import reference_cross_view, reference_dcl, reference_nt_xent, reference_supcon  # noqa: E402
from _loss_tables import IMPLS, tables  # noqa: E402

import contrastkit.losses  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("nt_xent", "supcon", "dcl", "cross_view")
DTYPES = ("fp32", "bf16")
CONTRASTKIT_NAME = {"nt_xent": "nt_xent", "supcon": "supcon", "dcl": "dcl", "cross_view": "cross_view_info_nce"}
REFERENCE = {"nt_xent": reference_nt_xent, "supcon": reference_supcon, "dcl": reference_dcl,
             "cross_view": reference_cross_view}  # fmt: skip
TEMPERATURE = {"nt_xent": 0.5, "supcon": 0.1, "dcl": 0.5, "cross_view": 0.1}  # each function's default
# peak bytes per logit entry of one float32 forward + backward of the references (--memory at N = 2048, CPU)
REFERENCE_BYTES_PER_ENTRY = {"nt_xent": 14.0, "supcon": 23.0, "dcl": 22.0, "cross_view": 11.0}
PML_NTXENT_BYTES_PER_PAIR_ENTRY = 17.0  # its [2N positive pairs, 2N (2N - 2) negative pairs] matrices
PML_SUPCON_BYTES_PER_ENTRY = 56.0  # float masks and int64 pair indices over the [2N, 2N] matrix
LINEAR_EXPONENT = 1.5  # memory ~ N^k: k = 1 linear, k = 2 quadratic; below 1.5 reads as linear
Loss = Callable[..., Tensor]


def logit_entries(loss: str, n: int) -> int:
    """Entries of the logit matrices of one call: [2N, 2N], or two [N, N] for cross-view."""
    return 2 * n * n if loss == "cross_view" else 4 * n * n


def estimated_gb(impl: str, loss: str, n: int) -> float:
    """Rough peak memory of one forward + backward of the one-matrix contenders (reference, pml), in GB."""
    if impl == "pml" and loss == "nt_xent":
        return PML_NTXENT_BYTES_PER_PAIR_ENTRY * 2 * n * 2 * n * (2 * n - 2) / 1e9
    per_entry = PML_SUPCON_BYTES_PER_ENTRY if impl == "pml" else REFERENCE_BYTES_PER_ENTRY[loss]
    return per_entry * logit_entries(loss, n) / 1e9


def available_gb(device: torch.device) -> float | None:
    """Free memory of ``device`` in GB (CPU: MemAvailable of /proc/meminfo), None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 1e9
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    kib = next((line.split()[1] for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:")), None)
    return None if kib is None else int(kib) * 1024 / 1e9


def too_large(impl: str, loss: str, n: int, args: argparse.Namespace) -> str | None:
    """Why the one-matrix contender ``impl`` must not run at ``n`` (its N limit, or the free memory), else None."""
    need = estimated_gb(impl, loss, n)
    free = available_gb(torch.device(args.device))
    over_limit = n > args.max_reference_n if impl == "reference" else need > args.max_pml_gb
    if over_limit:
        return f"skipped (would need ~{need:.0f} GB)"
    if free is not None and need > 0.8 * free:
        return f"skipped (would need ~{need:.0f} GB, {free:.0f} GB free)"
    return None


def implementation(impl: str, loss: str, n: int, args: argparse.Namespace) -> Loss | str:
    """The loss function of contender ``impl``, or the reason why it does not run (a one-line string)."""
    tau = TEMPERATURE[loss]
    if impl == "contrastkit":
        name = CONTRASTKIT_NAME[loss]
        return lambda *inputs: getattr(contrastkit.losses, name)(*inputs, temperature=tau)
    if impl == "reference":
        reason = too_large(impl, loss, n, args)
        return reason if reason else lambda *inputs: REFERENCE[loss](*inputs, temperature=tau)
    if loss not in ("nt_xent", "supcon"):
        return "n/a"
    try:
        from pytorch_metric_learning import losses as pml
    except ImportError:
        return "not installed (pip install contrastkit[bench])"
    if reason := too_large(impl, loss, n, args):
        return reason
    if loss == "supcon":
        return pml.SupConLoss(temperature=tau)
    ntxent = pml.NTXentLoss(temperature=tau)
    return lambda z1, z2: ntxent(torch.cat([z1, z2]), torch.arange(z1.shape[0], device=z1.device).repeat(2))


def make_inputs(loss: str, n: int, args: argparse.Namespace, device: torch.device) -> tuple[Tensor, ...]:
    """Seeded float32 inputs that require grad: (z1, z2) [N, d], or (features [2N, d], labels [2N]) for SupCon."""
    generator = torch.Generator().manual_seed(args.seed)
    z1, z2 = (torch.randn(n, args.dim, generator=generator) for _ in range(2))
    if loss == "supcon":
        labels = torch.randint(0, args.classes, (n,), generator=generator).repeat(2)
        return torch.cat([z1, z2]).to(device).requires_grad_(), labels.to(device)
    return z1.to(device).requires_grad_(), z2.to(device).requires_grad_()


def make_run(fn: Loss, inputs: tuple[Tensor, ...], dtype: str, device: torch.device) -> Callable[[], Tensor]:
    """One forward + backward of ``fn(*inputs)`` (grads reset first), under bfloat16 autocast for ``bf16``."""
    leaves = [t for t in inputs if t.requires_grad]

    def run() -> Tensor:
        for leaf in leaves:
            leaf.grad = None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = fn(*inputs)
        # allowed outside the engine: forward + backward of a loss alone is the kernel being timed, not training
        loss.backward()
        return loss.detach()

    return run


def timed(run: Callable[[], Tensor], device: torch.device) -> tuple[float, float | None]:
    """Seconds of ``run()`` and, on CUDA, its peak extra allocated MB."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    run()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20 if cuda else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None else None


def time_case(loss: str, n: int, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Rows (one per dtype) of the interleaved timing of every contender of ``loss`` at ``n``."""
    inputs = make_inputs(loss, n, args, device)
    fns = {impl: implementation(impl, loss, n, args) for impl in IMPLS}
    skipped = {impl: fn for impl, fn in fns.items() if isinstance(fn, str)}
    runs = {(impl, dt): make_run(fn, inputs, dt, device) for impl, fn in fns.items() if not isinstance(fn, str)
            for dt in args.dtypes}  # fmt: skip
    values = {key: run().item() for key, run in runs.items()}  # the warm-up call, whose loss values are kept
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    peak_mb: dict[tuple[str, str], float] = {}
    for _ in range(args.repeats):
        for key, run in runs.items():  # round-robin within the repeat
            t, mb = timed(run, device)
            seconds[key].append(t)
            if mb is not None:
                peak_mb[key] = max(mb, peak_mb.get(key, 0.0))
    exact = None
    if n <= args.max_accuracy_n and not isinstance(fns["reference"], str):  # the float64 one needs ~2x its memory
        with torch.no_grad():
            exact = REFERENCE[loss](*(t.detach().double() if t.is_floating_point() else t for t in inputs),
                                    temperature=TEMPERATURE[loss]).item()  # fmt: skip
    median = {key: sorted(ts)[len(ts) // 2] for key, ts in seconds.items()}
    rows = []
    for dt in args.dtypes:
        s = {impl: median.get((impl, dt)) for impl in IMPLS}
        rows.append({
            "loss": loss, "n": n, "dim": args.dim, "dtype": dt, "temperature": TEMPERATURE[loss],
            "median_s": s, "all_s": {impl: seconds[(impl, dt)] for impl in IMPLS if (impl, dt) in seconds},
            "skipped": skipped,
            "ratio_vs_reference": ratio(s["contrastkit"], s["reference"]),
            "ratio_vs_reference_fp32": ratio(s["contrastkit"], median.get(("reference", "fp32"))),
            "ratio_vs_pml": ratio(s["contrastkit"], s["pml"]),
            "loss_value": {impl: values[(impl, dt)] for impl in IMPLS if (impl, dt) in values},
            "float64_reference": exact,
            "abs_err": None if exact is None else {impl: abs(values[(impl, dt)] - exact) for impl in IMPLS
                                                   if (impl, dt) in values},
            "cuda_peak_extra_mb": {impl: peak_mb[(impl, dt)] for impl in IMPLS if (impl, dt) in peak_mb} or None,
        })  # fmt: skip
    return rows


TARGETS = [  # (what the issue asks, row filter, ratio field, bound)
    ("fp32, N=4096: contrastkit <= 0.5 x reference", lambda r: r["n"] == 4096 and r["dtype"] == "fp32",
     "ratio_vs_reference", 0.5),
    ("bf16, N=4096: contrastkit <= 0.25 x reference fp32", lambda r: r["n"] == 4096 and r["dtype"] == "bf16",
     "ratio_vs_reference_fp32", 0.25),
    ("N=256: contrastkit no slower than the reference", lambda r: r["n"] == 256, "ratio_vs_reference", 1.0),
    ("SupCon: contrastkit <= 0.5 x pml", lambda r: r["loss"] == "supcon", "ratio_vs_pml", 0.5),
]  # fmt: skip


def target_checks(rows: list[dict]) -> list[dict]:
    """Every (target, row) pair the run can read, with the ratio and whether the bound holds."""
    return [{"target": name, "loss": r["loss"], "n": r["n"], "dtype": r["dtype"], "ratio": r[field],
             "bound": bound, "met": r[field] <= bound}
            for name, keep, field, bound in TARGETS for r in rows if keep(r) and r[field] is not None]  # fmt: skip


def memory_child(loss: str, impl: str, n: int, args: argparse.Namespace) -> dict:
    """In a fresh process: the memory growth of one forward + backward (after a tiny warm-up call), in MB."""
    device = torch.device(args.device)
    fn = implementation(impl, loss, n, args)
    assert not isinstance(fn, str), fn
    dtype = args.dtypes[0]
    make_run(fn, make_inputs(loss, 8, args, device), dtype, device)()  # lazy initialisations, not the loss's memory
    run = make_run(fn, make_inputs(loss, n, args, device), dtype, device)
    if device.type == "cuda":
        return {"extra_mb": timed(run, device)[1]}
    status = Path("/proc/self/status")
    if not status.exists():  # not Linux: ru_maxrss (bytes on macOS), the peak since the process started
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run()
        return {"extra_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20}
    # Linux: ru_maxrss keeps the PARENT's RSS at fork (exec saves the old mm's high-water mark), so read this mm's
    # own VmHWM, reset to the current RSS first (clear_refs 5) where the kernel allows it
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    before = proc_status_kib("VmRSS")
    run()
    return {"extra_mb": (proc_status_kib("VmHWM") - before) / 1024, "rss_before_mb": before / 1024}


def proc_status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def memory_rows(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Peak extra memory per (loss, dtype, N, contender), each call in a subprocess, and the growth exponents."""
    rows = []
    for loss in args.losses:
        for dt in args.dtypes:
            for n in args.memory_sizes:
                for impl in ("contrastkit", "reference"):
                    row: dict = {"loss": loss, "dtype": dt, "n": n, "impl": impl, "extra_mb": None, "status": "ok"}
                    reason = too_large(impl, loss, n, args) if impl == "reference" else None
                    if reason:
                        row["status"] = reason
                    else:
                        cmd = [sys.executable, __file__, "--memory-child", loss, impl, str(n), "--dtypes", dt,
                               "--dim", str(args.dim), "--classes", str(args.classes), "--seed", str(args.seed),
                               "--threads", str(args.threads), "--device", args.device]  # fmt: skip
                        done = subprocess.run(cmd, capture_output=True, text=True)
                        if done.returncode == 0:
                            row["extra_mb"] = json.loads(done.stdout.strip().splitlines()[-1])["extra_mb"]
                        else:
                            last = (done.stderr.strip().splitlines() or ["killed, out of memory?"])[-1]
                            row["status"] = f"failed (exit {done.returncode}: {last})"
                    rows.append(row)
    growth = []
    for loss in args.losses:
        for dt in args.dtypes:
            for impl in ("contrastkit", "reference"):
                mine = [r for r in rows if (r["loss"], r["dtype"], r["impl"]) == (loss, dt, impl) and r["extra_mb"]]
                ok = sorted(mine, key=lambda r: r["n"])
                steps = [{"from_n": a["n"], "to_n": b["n"], "memory_ratio": b["extra_mb"] / a["extra_mb"],
                          "exponent": math.log(b["extra_mb"] / a["extra_mb"]) / math.log(b["n"] / a["n"])}
                         for a, b in zip(ok, ok[1:], strict=False) if b["n"] != a["n"]]  # fmt: skip
                looks_linear = steps[-1]["exponent"] < LINEAR_EXPONENT if steps else None
                growth.append({"loss": loss, "dtype": dt, "impl": impl, "steps": steps, "looks_linear": looks_linear})
    return rows, growth


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    p.add_argument("--sizes", nargs="*", type=int, default=[256, 1024, 4096, 16384], help="N; none = no timings")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--repeats", type=int, default=5, help="timed calls per contender (median), after 1 warm-up")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--classes", type=int, default=100, help="SupCon label range")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-reference-n", type=int, default=16384, help="skip the reference above this N")
    p.add_argument("--max-pml-gb", type=float, default=8.0, help="skip pml where its estimated memory is larger")
    p.add_argument("--max-accuracy-n", type=int, default=4096, help="float64 reference values up to this N")
    p.add_argument("--memory", action="store_true", help="also measure peak memory, a subprocess per call")
    p.add_argument("--memory-sizes", nargs="+", type=int, default=[4096, 16384, 65536])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "loss_kernels.json")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown here")
    p.add_argument("--memory-child", nargs=3, metavar=("LOSS", "IMPL", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("dim", "repeats", "threads", "classes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if any(n < 2 for n in [*args.sizes, *args.memory_sizes]):
        p.error("--sizes and --memory-sizes must be >= 2 (one pair has no negatives)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device} but torch.cuda.is_available() is False; use --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        loss, impl, n = args.memory_child
        print(json.dumps(memory_child(loss, impl, int(n), args)))
        return {}
    try:
        import pytorch_metric_learning

        pml_version = pytorch_metric_learning.__version__
    except ImportError:
        pml_version = None
    device = torch.device(args.device)
    argv = sys.argv[1:] if argv is None else argv
    result: dict = {
        "command": shlex.join(["python", "benchmarks/loss_kernels.py", *argv]),
        "settings": vars(args) | {"out": str(args.out), "markdown": str(args.markdown)},
        "torch": torch.__version__, "pytorch_metric_learning": pml_version, "threads": torch.get_num_threads(),
        "machine": platform.processor() or cpu_model(), "platform": platform.platform(), "device": str(device),
        "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
    }  # fmt: skip
    if args.sizes and device.type == "cpu" and os.getloadavg()[0] + args.threads > (os.cpu_count() or 1) + 0.5:
        print(
            f"warning: load {os.getloadavg()[0]:.1f} + {args.threads} threads > {os.cpu_count()} cores: noisy timings"
        )
    result["rows"] = []
    for loss in args.losses:
        for n in args.sizes:
            result["rows"] += time_case(loss, n, args, device)
            save(args.out, result)  # what is done survives a later crash
    result["targets"] = target_checks(result["rows"])
    result["load_average_after_timings"] = os.getloadavg()
    if args.memory:
        result["memory"], result["memory_growth"] = memory_rows(args)
    lines = tables(result)
    if pml_version is None:
        lines.append("\npytorch-metric-learning is not installed: no pml column (pip install contrastkit[bench])")
    print("\n".join(lines))
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")
    save(args.out, result)
    return result


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is empty on Linux), or platform.machine()."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.machine())


def save(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
