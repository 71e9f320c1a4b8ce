"""What the engine costs: ``contrastkit train``'s step loop against the bare SimCLR step, timed in alternation.

Three steps train the same model on the same data (``configs/simclr_fashion_mnist.yaml``: small-stem ResNet-18 at
width 0.25, batch 256, two batched views, NT-Xent, Adam, channels_last + bfloat16 autocast where fast) in blocks of
``--block`` steps, alternating bare, engine, train_config, bare, ... so that drifts of the machine hit all alike:

* ``bare``: :func:`throughput.make_step` (batch drawn from memory, two views, forward, backward, Adam with lr 1e-3
  and no weight decay): the reference, a hand-written loop with nothing else in it;
* ``engine``: the :class:`~contrastkit.train.engine.Engine` that ``contrastkit train`` builds
  (:func:`contrastkit.train.builders.build_engine`) with the run directory's callbacks (metrics.csv and TensorBoard
  rows every ``trainer.log_every_steps``, atomic checkpoints every ``trainer.checkpoint_every_steps``; held-out
  monitors off, as they are timed apart), the config set to the bare step's recipe (``MATCHED``): what the engine
  itself costs (data source, seeded views, schedule, hooks, callbacks). The target is >= 0.95 of ``bare``;
* ``train_config``: the same with the SimCLR config's own recipe (weight decay on one of two parameter groups, the
  online linear probe), i.e. what ``contrastkit train configs/simclr_fashion_mnist.yaml`` runs.

    python benchmarks/engine_overhead.py --blocks 12 --block 10 --out docs/results/engine_overhead.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_step, run_header, save_result, step_arguments  # noqa: E402

from contrastkit.data import load  # noqa: E402
from contrastkit.train import load_config  # noqa: E402
from contrastkit.train.builders import build_engine  # noqa: E402
from contrastkit.train.loop import _RunDirectory  # noqa: E402
from contrastkit.train.runtime import LocalRuntime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


MATCHED = [  # the bare step's recipe: Adam lr 1e-3 without weight decay on one group, NT-Xent tau 0.5, no probe
    "optim.lr=1.0e-3", "optim.weight_decay=0.0", "optim.exclude_bias_and_norm=false", "method.temperature=0.5",
    "method.gather_distributed=false", "monitor.online_linear=false", "schedule.name=constant",
    "schedule.warmup_fraction=0.0",
]  # fmt: skip


def engine_of(args: argparse.Namespace, device: torch.device, overrides: list[str], steps: int) -> object:
    """The engine ``contrastkit train`` builds for the SimCLR config + ``overrides``, with the run directory's
    callbacks, started and ready for ``steps`` steps."""
    cfg = load_config(ROOT / "configs" / "simclr_fashion_mnist.yaml", [
        f"data.batch_size={args.batch_size}", f"model.backbone={args.backbone}", f"model.width={args.width}",
        "trainer.time_budget_minutes=null", f"trainer.max_steps={steps}", "trainer.progress_bar=false",
        f"trainer.accelerator={device.type}", "monitor.knn_every_epochs=0", *overrides,
    ])  # fmt: skip
    engine, module, data = build_engine(cfg, runtime=LocalRuntime(device, cfg.trainer.precision))
    run_dir = Path(tempfile.mkdtemp(prefix="engine_overhead_"))
    (run_dir / "checkpoints").mkdir()
    directory = _RunDirectory(cfg, run_dir, engine.runtime, module, data, [])
    engine.callbacks.append(directory)
    directory.start(engine, None)
    engine.start()
    return engine


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_arguments(p, "cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--blocks", type=int, default=12, help="blocks of each kind")
    p.add_argument("--block", type=int, default=10, help="steps per block")
    args = p.parse_args(argv)
    result = run_header(args)
    device = torch.device(args.device)
    steps = 2 + args.blocks * args.block
    bare, _, precision = make_step(args, True, load("fashion-mnist", "train").images)
    runs = {
        "bare": bare,
        "engine": engine_of(args, device, MATCHED, steps).step,  # type: ignore[attr-defined]
        "train_config": engine_of(args, device, [], steps).step,  # type: ignore[attr-defined]
    }
    for _ in range(2):  # warm-up
        for run in runs.values():
            run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.blocks):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(args.block):
                run()
            seconds[name].append((time.perf_counter() - start) / args.block)
    rows = {}
    for name, per_step in seconds.items():
        median = sorted(per_step)[len(per_step) // 2]
        rows[name] = {"images_per_s": args.batch_size / median, "step_ms": 1e3 * median,
                      "step_ms_blocks": [1e3 * t for t in per_step]}  # fmt: skip
    ratio = rows["engine"]["images_per_s"] / rows["bare"]["images_per_s"]
    ratio_config = rows["train_config"]["images_per_s"] / rows["bare"]["images_per_s"]
    result |= {"precision": precision, "blocks": args.blocks, "block": args.block, "rows": rows, "ratio": ratio,
               "ratio_train_config": ratio_config}  # fmt: skip
    print(f"SimCLR {args.backbone} width {args.width}, batch {args.batch_size}, {precision}, "
          f"{result['threads']} threads; median of {args.blocks} blocks of {args.block} steps")  # fmt: skip
    for name, row in rows.items():
        print(f"{name:8s} {row['images_per_s']:8.0f} img/s  {row['step_ms']:7.1f} ms/step")
    print(f"engine / bare, same recipe: {ratio:.3f} (target >= 0.95); the SimCLR config's own recipe (weight decay, "
          f"two parameter groups, online probe) / bare: {ratio_config:.3f}")  # fmt: skip
    save_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
