r"""``contrastkit reproduce dcc``: dataset condensation with contrastive signals (DCC; Lee, Chun, Jung, Yun & Yoon,
ICML 2022) against class-wise gradient matching (DC, Zhao et al. ICLR 2021; DSA, Zhao & Bilen ICML 2021) and random
selection, on MNIST, Fashion-MNIST and cluttered MNIST (spec ``dcc.md`` §7).

**Arms** ``METHOD-DATASET-ipcK`` for METHOD in ``random``, ``dc``, ``dcc``, ``dsa``, ``dsac``; DATASET in
``mnist``, ``fashion-mnist``, ``clutter`` (MNIST digits on class-independent clutter,
:func:`contrastkit.data.clutter.cluttered_mnist`, clutter seed 0); K in 1, 10. ``random`` is the set that every
condensation of the same seed starts from (``ipc`` random real training images per class), so every comparison
is paired: same seed, same starting images, same evaluation nets.

**Condensation** (:func:`contrastkit.methods.dcc.condense`), identical for all four methods except the switches:
ConvNet (depth 3, instancenorm = GroupNorm(C, C), avg-pool, width ``WIDTH``), the same loops for DC and DCC: at
ipc 1 DCC's table (10 matching steps per fresh net, 5 epochs of net training between them), at ipc 10 10 steps
with **10** epochs between them instead of the table's 50 (spec §7.6: keep T small on a CPU; with 50 one outer
iteration takes 24.9 s instead of 7.4 s on one core, ``benchmarks/dcc_time_outer.py --ipc 10 --outer 1
--matching dcc [--epochs-between 10]``, ``docs/results/dcc/time_outer_ipc10_T{50,10}.json``), init
from real images, SGD on the pixels (lr 0.1, momentum 0.5), distance ``ours``, ``batch_real`` real images per
class, ``outer`` fresh nets, DCC warm-up ``outer_warmup = outer // 4`` (spec §4: 25 % of a short run) and
``inner_warmup = 10``. DSA/DSAC: siamese DSA, ``color_crop_cutout_scale_rotate`` on digits (no flip, as the DC
README advises), ``color_crop_cutout_flip_scale_rotate`` on Fashion-MNIST. Images are standardised with the mean
and std of the training split.

**Evaluation** (:func:`contrastkit.evaluate.condensation.evaluate_synset`): ``NETS`` fresh ConvNets (same
architecture) per set, SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256, ``EPOCHS`` epochs, lr x 0.1 at half;
augmentation while training as in DC/DSA: DC's ``crop_scale_rotate`` for random/DC/DCC on the digit datasets,
none on Fashion-MNIST, DSA (one family per batch) for DSA/DSAC; test accuracy on a fixed class-stratified subset
of the official test split (``TEST`` images). Metric ``test_acc`` is the mean over the nets (``test_acc_std``
their std; the per-net accuracies are saved as artifacts).

**Budget** (a 2-core CPU, see docs/results.md): ``full`` = width 32, batch_real 32, 20 outer iterations, 10 nets
x 300 epochs, 1,000 test images; ``quick`` = width 8, 8 real images per class from a 1,000-image training
subset, 2 outer iterations of (2, 2) loops, 2 nets x 20 epochs, 200 test images: a smoke test, not evidence. The
official budget (width 128, batch_real 256, 1,000 outer iterations, 20 nets x 300-1,000 epochs, 10,000 test
images) is about 3 orders of magnitude more compute.

Run a subset of the arms (all seeds) with ``python -m contrastkit.reproduce.experiments.dcc --arms GLOB ...``;
``--resume`` continues a stopped run in its ``--out``, and ``--merge DIR ...`` folds runs of other arm subsets
(shards run side by side, one per core) into ``--out`` before judging the claims over all of them.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit.reproduce.artifacts import load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Claim, Experiment, Metric, register_experiment
from contrastkit.reproduce.stats import compare_arms

METHODS = ("random", "dc", "dcc", "dsa", "dsac")
DATASETS = ("mnist", "fashion-mnist", "clutter")
IPCS = (1, 10)
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"width": 32, "batch_real": 32, "outer": 20, "loops": {1: None, 10: (10, 10)}, "nets": 10,
             "epochs": 300, "test": 1000, "train_subset": None},
    "quick": {"width": 8, "batch_real": 8, "outer": 2, "loops": {1: (2, 2), 10: (2, 2)}, "nets": 2, "epochs": 20,
              "test": 200, "train_subset": 1000},
}  # fmt: skip
DSA_STRATEGY = {"mnist": "color_crop_cutout_scale_rotate", "clutter": "color_crop_cutout_scale_rotate",
                "fashion-mnist": "color_crop_cutout_flip_scale_rotate"}  # fmt: skip

ARMS = [
    Arm(f"{method}-{dataset}-ipc{ipc}", {"method": method, "dataset": dataset, "ipc": ipc})
    for dataset in DATASETS
    for ipc in IPCS
    for method in METHODS
]

_EVAL = (
    "mean test accuracy of 10 fresh ConvNets (quick: 2) trained on the set (SGD lr 0.01, momentum 0.9, wd 5e-4, "
    "300 epochs (quick 20), lr x 0.1 at half; DC augmentation on digits, DSA for DSA/DSAC), on 1,000 "
    "class-stratified official test images (quick 200)"
)
METRICS = [
    Metric("test_acc", _EVAL),
    Metric("test_acc_std", "std (ddof 0) of the test accuracy over the evaluation nets", higher_is_better=False),
    Metric("seconds_per_outer", "median wall-clock seconds of one outer iteration (fresh net, all inner steps)",
           higher_is_better=False),
    Metric("condense_seconds", "wall-clock seconds of the condensation (0 for random)", higher_is_better=False),
    Metric("eval_seconds", "wall-clock seconds of the evaluation", higher_is_better=False),
]  # fmt: skip


def _budget(quick: bool) -> dict[str, Any]:
    return BUDGETS["quick" if quick else "full"]


def load_dataset(dataset: str, quick: bool) -> dict[str, Any]:
    """Standardised train images/labels and the fixed stratified test subset of ``dataset`` (cached)."""
    import torch

    from contrastkit.data import ImageDataset, load
    from contrastkit.data.clutter import clutter_images, cluttered_mnist

    cache = load_dataset.__dict__.setdefault("cache", {})
    key = (dataset, quick)
    if key in cache:
        return cache[key]
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    budget = _budget(quick)
    if dataset == "clutter" and not budget["train_subset"]:
        train, test = cluttered_mnist("train", seed=0), cluttered_mnist("test", seed=0)
    else:
        train, test = load("mnist" if dataset == "clutter" else dataset, "train"), load(dataset, "test")
    images, labels = train.images, train.labels
    if budget["train_subset"]:
        keep = _stratified(labels, budget["train_subset"] // 10, seed=0)
        images, labels = images[keep], labels[keep]
        if dataset == "clutter":  # quick: clutter only the subsets (fragments then come from the subset)
            images = clutter_images(images, torch.Generator().manual_seed(0))
            test = ImageDataset(clutter_images(test.images, torch.Generator().manual_seed(2)), test.labels,
                                list(test.classes), "cluttered-mnist/test")  # fmt: skip
    mean, std = float(images.mean()), float(images.std())
    keep_test = _stratified(test.labels, budget["test"] // 10, seed=0)
    out = {
        "images": (images - mean) / std,
        "labels": labels.clone(),
        "test_images": (test.images[keep_test] - mean) / std,
        "test_labels": test.labels[keep_test].clone(),
        "mean": mean,
        "std": std,
        "num_classes": int(labels.max()) + 1,
    }
    cache[key] = out
    return out


def _stratified(labels: Any, per_class: int, seed: int) -> Any:
    """Indices of ``per_class`` random items of every class, class-major (fixed by ``seed``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:per_class]])
    return torch.cat(picks)


def make_net_factory(width: int, num_classes: int) -> Any:
    """A ``make_net()`` for the DC ConvNet (depth 3, instancenorm, avg-pool) on 28x28 grey images."""
    from contrastkit.models import ConvNet

    def make_net() -> ConvNet:
        return ConvNet(1, 28, width=width, depth=3, norm="instancenorm", num_classes=num_classes)

    return make_net


def condensation_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.methods.dcc.CondensationConfig` of a condensation arm."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.methods.dcc import CondensationConfig

    method, ipc = str(setting["method"]), int(setting["ipc"])
    budget = _budget(quick)
    outer = int(setting.get("outer", budget["outer"]))
    loops = budget["loops"][ipc]
    inner_loop, epochs_between = loops if loops else (None, None)
    return CondensationConfig(
        ipc=ipc,
        matching="dcc" if method in ("dcc", "dsac") else "dc",
        dsa=method in ("dsa", "dsac"),
        dsa_config=DSAConfig(DSA_STRATEGY[str(setting["dataset"])]),
        outer_loop=outer,
        outer_warmup=outer // 4,
        inner_warmup=min(10, inner_loop) if inner_loop else 10,
        loops="dcc_table",
        inner_loop=inner_loop,
        epochs_between=epochs_between,
        batch_real=int(setting.get("batch_real", budget["batch_real"])),
        vmap_chunk_size=1,
        class_grad_method="loop",  # equal to vmap up to rounding, 1.2-1.5x faster on a CPU
    )


def eval_config(setting: Mapping[str, Any], quick: bool) -> Any:
    """The :class:`~contrastkit.evaluate.condensation.SynsetEvalConfig` of an arm."""
    from contrastkit.augment.dsa import DSAConfig
    from contrastkit.evaluate.condensation import SynsetEvalConfig

    method, dataset = str(setting["method"]), str(setting["dataset"])
    budget = _budget(quick)
    if method in ("dsa", "dsac"):
        augment = "dsa"
    else:
        augment = "dc" if dataset in ("mnist", "clutter") else "none"
    return SynsetEvalConfig(num_nets=budget["nets"], epochs=budget["epochs"], augment=augment,
                            dsa_config=DSAConfig(DSA_STRATEGY[dataset]))  # fmt: skip


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Condense (or pick, for ``random``) the set of ``arm`` with ``seed`` and evaluate it."""
    from contrastkit.evaluate.condensation import evaluate_synset, random_real_subset
    from contrastkit.methods.dcc import condense

    setting = arm.setting
    method, ipc = str(setting["method"]), int(setting["ipc"])
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    data = load_dataset(str(setting["dataset"]), quick)
    make_net = make_net_factory(int(setting.get("width", _budget(quick)["width"])), data["num_classes"])
    seconds_per_outer, condense_seconds = 0.0, 0.0
    if method == "random":
        images, labels = random_real_subset(data["images"], data["labels"], data["num_classes"], ipc, seed=seed)
    else:
        config = condensation_config(setting, quick)
        result = condense(data["images"], data["labels"], data["num_classes"], make_net, config, seed=seed)
        images, labels = result.images, result.labels
        secs = sorted(result.seconds_per_outer)
        seconds_per_outer, condense_seconds = secs[len(secs) // 2], sum(secs)
    evaluation = evaluate_synset(make_net, images, labels, data["test_images"], data["test_labels"],
                                 eval_config(setting, quick), seed=seed)  # fmt: skip
    pixels = (images * data["std"] + data["mean"]).clamp(0, 1)
    save_artifact_json(f"{arm.name}-seed{seed}", {
        "arm": arm.name, "seed": seed, "accuracies": list(evaluation.accuracies),
        "images": [[round(v, 3) for v in img.flatten().tolist()] for img in pixels], "labels": labels.tolist(),
        "shape": list(images.shape[1:]),
    })  # fmt: skip
    return {
        "test_acc": evaluation.mean,
        "test_acc_std": evaluation.std,
        "seconds_per_outer": seconds_per_outer,
        "condense_seconds": condense_seconds,
        "eval_seconds": evaluation.seconds,
    }


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    """The paper's orderings, per dataset and ipc present: DCC > DC, DSAC > DSA, DC <= random on clutter and
    DCC > random on clutter (paired per-seed t-tests on ``test_acc``)."""
    present = {r["arm"] for r in rows}
    out: list[Claim] = []

    def add(text: str, better: str, worse: str) -> None:
        if better in present and worse in present:
            verdict, evidence = compare_arms(rows, "test_acc", better, worse, 0.0)
            out.append(Claim(text, verdict, evidence))

    for dataset in DATASETS:
        for ipc in IPCS:
            tag = f"{dataset}-ipc{ipc}"
            add(f"{tag}: DCC beats DC (contrastive signals help; abstract, Tables 1-2)", f"dcc-{tag}", f"dc-{tag}")
            add(f"{tag}: DSAC beats DSA", f"dsac-{tag}", f"dsa-{tag}")
            if dataset == "clutter":
                add(f"{tag}: DCC beats random selection on task-irrelevant-heavy data (abstract)",
                    f"dcc-{tag}", f"random-{tag}")  # fmt: skip
                if f"dc-{tag}" in present and f"random-{tag}" in present:
                    # "DC <= random": judged as the claim "random beats DC"; a clear DC win refutes it
                    verdict, evidence = compare_arms(rows, "test_acc", f"random-{tag}", f"dc-{tag}", 0.0)
                    dc_wins, _ = compare_arms(rows, "test_acc", f"dc-{tag}", f"random-{tag}", 0.0)
                    if verdict != "reproduced":
                        verdict = "not reproduced" if dc_wins == "reproduced" else "inconclusive"
                    out.append(Claim(f"{tag}: DC does no better than random selection when task-irrelevant "
                                     "content dominates (abstract; judged as 'random beats DC', refuted by a "
                                     "significant DC win)", verdict, evidence))  # fmt: skip
            else:
                add(f"{tag}: DC beats random selection (DC paper, Table 1)", f"dc-{tag}", f"random-{tag}")
    if not out:
        out.append(Claim("no pair of compared arms ran", "inconclusive", "run the dc/dcc/random arms of one setting"))
    return out


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/synthetic_<dataset>-ipc<K>.png``: seed-0 sets of every method (rows) for each class (columns)."""
    import numpy as np

    from contrastkit.train.report import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    paths = []
    for dataset in DATASETS:
        for ipc in IPCS:
            tag = f"{dataset}-ipc{ipc}"
            arms = [f"{m}-{tag}" for m in METHODS if any(r["arm"] == f"{m}-{tag}" for r in rows)]
            if not arms:
                continue
            seed = min(r["seed"] for r in rows if r["arm"] in arms)
            sets = [load_artifact_json(f"{arm}-seed{seed}") for arm in arms]
            shape = sets[0]["shape"]
            classes = max(sets[0]["labels"]) + 1
            shown = min(ipc, 3)  # images per class drawn
            fig, axes = plt.subplots(len(sets), classes * shown, figsize=(0.9 * classes * shown, 1.05 * len(sets)),
                                     squeeze=False)  # fmt: skip
            for i, saved in enumerate(sets):
                images = np.asarray(saved["images"], dtype=float).reshape(-1, *shape)
                labels = np.asarray(saved["labels"])
                acc = np.mean(saved["accuracies"])
                for c in range(classes):
                    for j, img in enumerate(images[labels == c][:shown]):
                        ax = axes[i][c * shown + j]
                        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
                        ax.set_xticks([])
                        ax.set_yticks([])
                        if c == 0 and j == 0:
                            ax.set_ylabel(f"{saved['arm'].split('-')[0]}\n{100 * acc:.1f}%", fontsize=7)
            fig.suptitle(f"{tag}, seed {seed} (rows: method, test accuracy; columns: classes)", fontsize=9)
            paths.append(save_figure(fig, directory / "plots" / f"synthetic_{tag}.png"))
    return paths


def summary_table(results: Mapping[str, Any]) -> str:
    """Markdown: one row per dataset and ipc, one column per method, test accuracy % mean ± std over seeds (n)."""
    from contrastkit.reproduce.stats import mean_std

    rows = results["rows"]
    lines = ["| test accuracy %, mean ± std over seeds (n) | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]  # fmt: skip
    for dataset in DATASETS:
        for ipc in IPCS:
            cells = []
            for method in METHODS:
                values = [r["metrics"]["test_acc"] for r in rows if r["arm"] == f"{method}-{dataset}-ipc{ipc}"]
                if not values:
                    cells.append("-")
                    continue
                ms = mean_std([100 * v for v in values])
                cells.append(f"{ms.mean:.1f} ± {ms.std:.1f} ({ms.n})" if ms.n > 1 else f"{ms.mean:.1f} (1)")
            if any(c != "-" for c in cells):
                lines.append(f"| {dataset}, ipc {ipc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="dcc",
    description=(
        "DCC vs DC, DSAC vs DSA and random selection (Lee et al., ICML 2022; spec dcc.md section 7) on MNIST, "
        "Fashion-MNIST and cluttered MNIST at 1 and 10 images per class; width-32 ConvNet, 20 outer iterations "
        "of (10 matching steps, 5 (ipc 1) or 10 (ipc 10) net epochs between), 32 real images per class per step, "
        "10 evaluation nets x 300 epochs (a reduced CPU "
        "budget, see docs/results.md); paired by seed (same starting images, same evaluation nets)"
    ),
    arms=ARMS,
    metrics=METRICS,
    run=run,
    claims=claims,
    primary_metric="test_acc",
    figures=figures,
)
if __name__ != "__main__":  # ``python -m`` runs a copy of this module: register the imported one only
    register_experiment(EXPERIMENT)


def select_arms(patterns: Sequence[str]) -> list[Arm]:
    """The arms whose names match any of the shell-style ``patterns`` (registry order)."""
    chosen = [arm for arm in ARMS if any(fnmatch.fnmatch(arm.name, p) for p in patterns)]
    if not chosen:
        raise ValueError(f"no arm matches {list(patterns)}; arms look like 'dcc-clutter-ipc1'")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subset of the arms: ``python -m contrastkit.reproduce.experiments.dcc --arms '*-ipc1' --out DIR``."""
    from dataclasses import replace

    import torch

    from contrastkit.reproduce.runner import merge_runs, rerun_command, run_experiment

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--summary", metavar="RESULTS_JSON", help="only print the summary table of a finished run")
    parser.add_argument("--arms", nargs="+",
                        help="shell-style patterns of arm names (note: '*-mnist-*' also matches fashion-mnist)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--outer", type=int, default=None, help="outer iterations (recorded in every arm's setting)")
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true", help="keep the finished rows in --out, run the rest")
    parser.add_argument("--merge", nargs="+", default=[], metavar="DIR",
                        help="first fold the rows of these runs (shards of the arms) into --out; implies --resume")
    args = parser.parse_args(argv)
    if args.summary:
        import json

        print(summary_table(json.loads(Path(args.summary).read_text())))
        return 0
    if not args.arms or not args.out:
        parser.error("--arms and --out are required")
    torch.set_num_threads(args.threads)
    arms = select_arms(args.arms)
    if args.outer is not None:
        if args.outer < 1:
            raise ValueError(f"--outer must be >= 1, got {args.outer}")
        arms = [Arm(a.name, {**a.setting, "outer": args.outer}) for a in arms]
    experiment = replace(EXPERIMENT, arms=arms)
    if args.merge:
        merge_runs(args.out, args.merge)
    command = rerun_command("python -m contrastkit.reproduce.experiments.dcc",
                            sys.argv[1:] if argv is None else argv)  # fmt: skip
    start = time.perf_counter()
    run_experiment(experiment, seeds=args.seeds, quick=args.quick, out=args.out, progress=print, command=command,
                   resume=args.resume or bool(args.merge))  # fmt: skip
    print(f"done in {time.perf_counter() - start:.0f}s: {Path(args.out) / 'results.json'}")
    return 0


def _main_with_one_line_errors() -> int:
    """``main()`` as a command: bad input (a missing file, an unknown arm, a refused merge) is one line, exit 2."""
    try:
        return main()
    except (ValueError, OSError) as err:
        print(f"contrastkit: error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
              file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    raise SystemExit(_main_with_one_line_errors())
