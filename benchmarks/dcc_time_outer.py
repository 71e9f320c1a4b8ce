"""Seconds of one DCC/DC outer iteration on MNIST (fresh net, all inner steps), on this machine.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_time_outer.py --width 32 --batch-real 32 --ipc 1 \
           --matching dcc [--inner-loop 1]

``--inner-loop N`` times only N matching steps (for the official width-128 / 256-image setting, where one full
outer iteration takes minutes); the full outer iteration is then extrapolated as
``inner_loop_table / N x seconds`` (the net training between steps is negligible at ipc 1).
"""

from __future__ import annotations

import argparse
import json

import torch

from contrastkit.data import load
from contrastkit.methods.dcc import CondensationConfig, get_loops
from contrastkit.models import ConvNet
from contrastkit.train.condensation import condense


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-real", type=int, default=32)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--matching", default="dcc")
    parser.add_argument("--loops", default="dcc_table")
    parser.add_argument("--inner-loop", type=int, default=None)
    parser.add_argument("--epochs-between", type=int, default=None, help="T (default: the loop table's)")
    parser.add_argument("--outer", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grad-method", default="loop", choices=("loop", "vmap"))
    parser.add_argument("--first-padding", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = load("mnist", "train")
    x = (train.images - train.images.mean()) / train.images.std()
    table_inner, table_t = get_loops(args.ipc, args.loops)
    inner = args.inner_loop or table_inner
    cfg = CondensationConfig(ipc=args.ipc, matching=args.matching, loops=args.loops, outer_loop=args.outer,
                             outer_warmup=0, inner_warmup=min(10, inner), inner_loop=inner,
                             epochs_between=table_t if args.epochs_between is None else args.epochs_between,
                             batch_real=args.batch_real, vmap_chunk_size=1,
                             class_grad_method=args.grad_method)  # fmt: skip

    def make_net() -> ConvNet:
        return ConvNet(1, 28, width=args.width, depth=3, norm="instancenorm", num_classes=10,
                       first_padding=args.first_padding)  # fmt: skip

    secs = condense(x, train.labels, 10, make_net, cfg, seed=0).seconds_per_outer
    measured = min(secs)
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_time_outer.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    print(json.dumps({"command": command, **vars(args), "table_loops": [table_inner, table_t],
                      "timed_inner_steps": inner,
                      "seconds_per_outer_measured": secs,
                      "seconds_per_outer_extrapolated": measured * table_inner / inner}))  # fmt: skip


if __name__ == "__main__":
    main()
