"""Cost of the arms of ``contrastkit reproduce dcc`` at its full budget, from a few outer iterations and nets.

Usage: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dcc_cost.py --arms dc-mnist-ipc1 dcc-mnist-ipc1 \
           --outer 3 --nets 1 --out docs/results/dcc/cost.json

For each arm: the experiment's own data, network and configs (:mod:`contrastkit.reproduce.experiments._dcc_setup`),
``--outer`` outer iterations of its condensation (DCC/DSAC arms with the warm-up off, so every timed step is the
contrastive one, as in 3/4 of a full run) and ``--nets`` of its evaluation nets (DC's epochs, whole test split).
The estimate of one arm and seed at the full budget is ``outer_full * median(s per outer) + nets_full * (s per
net)``; ``image_change_per_outer`` records how far the set moved after each timed outer iteration (``--nets 0``:
condensation only, recorded under ``ARM@outerN``). The records of earlier calls in ``--out`` are kept (one entry
per arm, each with its command), so the arms can be timed in separate short calls.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from contrastkit.reproduce.experiments._dcc_setup import (
    ARMS,
    budget_of,
    condensation_config,
    eval_config,
    load_dataset,
    make_net_factory,
    resolved,
)
from contrastkit.train.condensation import condense, evaluate_synset, random_real_subset


def time_arm(name: str, outer: int, nets: int) -> dict:
    """Seconds per outer iteration and per evaluation net of arm ``name`` (seed 0), and the full-budget estimate."""
    (arm,) = [a for a in ARMS if a.name == name] or [None]
    if arm is None:
        raise SystemExit(f"unknown arm {name!r}; arms look like dc-mnist-ipc1, dsac-clutter-ipc10")
    setting = dict(arm.setting)
    data = load_dataset(str(setting["dataset"]), quick=False)
    budget = budget_of(False)
    make_net = make_net_factory(budget["width"], data["num_classes"], budget["first_padding"])
    record: dict = {"outer_full": 0, "seconds_per_outer": [], "median_seconds_per_outer": 0.0}
    if setting["method"] == "random":
        images, labels = random_real_subset(data["images"], data["labels"], data["num_classes"], int(setting["ipc"]))
    else:
        config = condensation_config(setting, quick=False)
        record["outer_full"] = config.outer_loop
        config = config.with_(outer_loop=outer, outer_warmup=0)
        result = condense(data["images"], data["labels"], data["num_classes"], make_net, config, seed=0)
        images, labels = result.images, result.labels
        secs = sorted(result.seconds_per_outer)
        record.update(seconds_per_outer=[round(s, 3) for s in result.seconds_per_outer],
                      median_seconds_per_outer=secs[len(secs) // 2],
                      image_change_per_outer=[round(v, 4) for v in result.image_change])  # fmt: skip
    if nets == 0:
        return record
    full_eval = eval_config(setting, quick=False)
    timed = eval_config({**setting, "nets": nets}, quick=False)
    evaluation = evaluate_synset(make_net, images, labels, data["test_images"], data["test_labels"], timed, seed=0)
    per_net = evaluation.seconds / nets
    record.update(
        eval_epochs=timed.epochs,
        eval_augment=timed.augment,
        test_images=int(data["test_labels"].numel()),
        eval_seconds_per_net=per_net,
        nets_full=full_eval.num_nets,
        estimated_seconds_full=record["outer_full"] * record["median_seconds_per_outer"] + full_eval.num_nets * per_net,
        outer_resolved=resolved(setting, False, "outer"),
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--outer", type=int, default=3, help="outer iterations timed per condensation arm")
    parser.add_argument("--nets", type=int, default=1, help="evaluation nets timed per arm (0: time no evaluation)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.is_file() else {"arms": {}}
    key = "" if args.nets else f"@outer{args.outer}"  # a condensation-only record does not replace a costed one
    for name in args.arms:
        t0 = time.perf_counter()
        record = time_arm(name, args.outer, args.nets)
        record["command"] = (
            f"OMP_NUM_THREADS={args.threads} .venv/bin/python benchmarks/dcc_cost.py --arms {name} "
            f"--outer {args.outer} --nets {args.nets} --threads {args.threads} --out {args.out}"
        )
        record["wall_seconds"] = time.perf_counter() - t0
        saved["arms"][name + key] = record
        print(name, json.dumps(record), flush=True)
        out.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
