r"""The claims of ``contrastkit reproduce dcc`` and the gates they need, declared before any run.

Claims (:class:`~contrastkit.reproduce.experiment.Hypothesis`, paired by seed on ``test_acc``; a margin in accuracy
units, 0.01 = 1 point). **Primary**, ipc 1, per dataset (6 claims, one Holm family): DCC beats DC and DSAC beats
DSA by more than ``MARGIN_MAIN`` (Lee et al., ICML 2022, abstract and Tables 1-2; the cluttered variant is this
repository's stand-in for the paper's task-irrelevant-heavy data). **Exploratory** (the other family): DC beats
random selection by more than ``MARGIN_SANITY`` on MNIST and Fashion-MNIST at ipc 1 (DC paper, Table 1); on
clutter at ipc 1, DCC beats random selection, and random selection is no worse than DC by more than 2 points
(non-inferiority, margin ``-MARGIN_NONINFERIOR``: the abstract's "can perform worse than random selection"); at
ipc 10, DCC beats DC, DSAC beats DSA and DC beats random by more than ``MARGIN_IPC10`` per dataset.

Gates (:class:`~contrastkit.reproduce.gates.Gate`); a claim naming a failed gate is "untestable":

* ``dc_anchor_mnist``: DC on MNIST at ipc 1 reaches ``ANCHOR_DC_MNIST`` = 88 % (DC paper: 91.7 % at width 128;
  issue 13's anchor). Gates every MNIST and every clutter claim (clutter is the same digits: if DC fails its anchor
  on clean MNIST, the budget is too small for any claim about the digits).
* ``dc_gain_fashion``: on Fashion-MNIST at ipc 1, DC beats its own starting images (the random arm, same seeds) by
  ``FASHION_DC_GAIN`` = 5 points on average. No published number fits a width-32 net there, so the gate asks
  that condensation works at all; 5 points is a quarter of the committed 20-iteration run's gain (+12.8) and about
  twice the standard error of a 5-seed mean (the random arm's seed std was 5.1 points).
* ``clutter_premise``: the clutter carries task-irrelevant content that matters: random selection loses
  ``CLUTTER_RANDOM_LOSS`` = 20 points from clean to cluttered MNIST at ipc 1 (the paper's premise; committed run
  65.1 vs 20.0 %).
* ``moved_<dataset>_ipc10_{dc,dsa}``: at ipc 10 every ``dc*`` (DC, DCC) or ``dsa*`` (DSA, DSAC) set moved from its
  starting images by ``image_change`` >= ``MOVED_IPC10`` = 0.25 (``||S - S0|| / ||S0||``). The committed 20-
  iteration ipc-10 sets, which the issue found "barely moved" and where DC beat random by 0.9 points on MNIST,
  moved 0.04-0.19; the ipc-1 sets of that run 0.33-0.88, and DC's MNIST ipc-1 sets that reached 91 % 0.89-0.94
  (``benchmarks/dcc_image_change.py``, docs/results/dcc/image_change_committed.json). The gate sits above every
  set the issue called unmoved: a quarter of the starting images' RMS.
"""

from __future__ import annotations

from typing import Any

from contrastkit.reproduce.experiment import Hypothesis
from contrastkit.reproduce.experiments._dcc_setup import DATASETS
from contrastkit.reproduce.gates import Gate, mean_at_least

__all__ = ["GATES", "HYPOTHESES", "gap_at_least"]

ANCHOR_DC_MNIST = 0.88
FASHION_DC_GAIN = 0.05
CLUTTER_RANDOM_LOSS = 0.20
MOVED_IPC10 = 0.25
MARGIN_MAIN, MARGIN_SANITY, MARGIN_IPC10, MARGIN_NONINFERIOR = 0.01, 0.05, 0.01, 0.02


def gap_at_least(name: str, better: str, worse: str, metric: str, threshold: float, description: str) -> Gate:
    """A gate: over the seeds both arms finished, ``mean(better) - mean(worse) >= threshold`` on ``metric``."""

    def check(rows: list[dict[str, Any]]) -> tuple[bool, str]:
        values: dict[str, dict[int, float]] = {better: {}, worse: {}}
        for row in rows:
            if row["arm"] in values and metric in row["metrics"]:
                values[row["arm"]][int(row["seed"])] = float(row["metrics"][metric])
        seeds = sorted(set(values[better]) & set(values[worse]))
        if not seeds:
            return False, f"not run: no seed has finished rows of both {better!r} and {worse!r} with {metric!r}"
        gap = sum(values[better][s] - values[worse][s] for s in seeds) / len(seeds)
        return gap >= threshold, (f"mean {metric} of {better} minus {worse} over seeds {seeds}: {gap:+.4g} "
                                  f"(needs >= {threshold:g})")  # fmt: skip

    return Gate(name, description, check)


GATES = [
    mean_at_least("dc_anchor_mnist", "dc-mnist-ipc1", "test_acc", ANCHOR_DC_MNIST,
                  "DC on MNIST at 1 image per class reaches 88 % test accuracy (DC paper 91.7 % at width 128): "
                  "the condensation and evaluation work at this budget"),
    gap_at_least("dc_gain_fashion", "dc-fashion-mnist-ipc1", "random-fashion-mnist-ipc1", "test_acc",
                 FASHION_DC_GAIN, "DC on Fashion-MNIST at 1 image per class beats its own starting images by 5 "
                 "points on average: condensation works on this dataset"),
    gap_at_least("clutter_premise", "random-mnist-ipc1", "random-clutter-ipc1", "test_acc", CLUTTER_RANDOM_LOSS,
                 "the clutter is task-irrelevant content that matters: random selection at 1 image per class loses "
                 "20 points from clean to cluttered MNIST"),
] + [
    mean_at_least(f"moved_{dataset}_ipc10_{family}", f"{family}*-{dataset}-ipc10", "image_change", MOVED_IPC10,
                  f"every {family.upper()}-family set of {dataset} at 10 images per class moved from its starting "
                  "images by at least 0.25 of their RMS: the comparison is between condensed sets")
    for dataset in DATASETS
    for family in ("dc", "dsa")
]  # fmt: skip

_DATASET_GATES = {"mnist": ("dc_anchor_mnist",), "fashion-mnist": ("dc_gain_fashion",),
                  "clutter": ("dc_anchor_mnist", "clutter_premise")}  # fmt: skip


def _claims() -> list[Hypothesis]:
    out = []
    for dataset in DATASETS:  # primary: the paper's main claims at ipc 1
        tag, gates = f"{dataset}-ipc1", _DATASET_GATES[dataset]
        out += [
            Hypothesis(f"{tag}: DCC beats DC by more than 1 point (Lee et al., abstract, Tables 1-2)", "test_acc",
                       f"dcc-{tag}", f"dc-{tag}", MARGIN_MAIN, primary=True, gates=gates),
            Hypothesis(f"{tag}: DSAC beats DSA by more than 1 point (Lee et al., Tables 1-2)", "test_acc",
                       f"dsac-{tag}", f"dsa-{tag}", MARGIN_MAIN, primary=True, gates=gates),
        ]  # fmt: skip
    for dataset in ("mnist", "fashion-mnist"):  # sanity: the baseline works (no gate: this is the calibration)
        tag = f"{dataset}-ipc1"
        out.append(Hypothesis(f"{tag}: DC beats random selection by more than 5 points (DC paper, Table 1)",
                              "test_acc", f"dc-{tag}", f"random-{tag}", MARGIN_SANITY, primary=False))  # fmt: skip
    gates = _DATASET_GATES["clutter"]
    out += [
        Hypothesis("clutter-ipc1: DCC beats random selection on task-irrelevant-heavy data (Lee et al., abstract)",
                   "test_acc", "dcc-clutter-ipc1", "random-clutter-ipc1", 0.0, primary=False, gates=gates),
        Hypothesis("clutter-ipc1: random selection is no worse than DC by more than 2 points when task-irrelevant "
                   "content dominates (Lee et al., abstract: DC 'can perform worse than random selection')",
                   "test_acc", "random-clutter-ipc1", "dc-clutter-ipc1", -MARGIN_NONINFERIOR, primary=False,
                   gates=gates),
    ]  # fmt: skip
    for dataset in DATASETS:  # exploratory: ipc 10, only once the sets moved
        tag, gates = f"{dataset}-ipc10", _DATASET_GATES[dataset]
        dc_moved, dsa_moved = f"moved_{dataset}_ipc10_dc", f"moved_{dataset}_ipc10_dsa"
        out += [
            Hypothesis(f"{tag}: DCC beats DC by more than 1 point (Lee et al., Tables 1-2)", "test_acc",
                       f"dcc-{tag}", f"dc-{tag}", MARGIN_IPC10, primary=False, gates=(*gates, dc_moved)),
            Hypothesis(f"{tag}: DSAC beats DSA by more than 1 point (Lee et al., Tables 1-2)", "test_acc",
                       f"dsac-{tag}", f"dsa-{tag}", MARGIN_IPC10, primary=False, gates=(*gates, dsa_moved)),
        ]  # fmt: skip
        if dataset != "clutter":
            out.append(Hypothesis(f"{tag}: DC beats random selection by more than 1 point (DC paper, Table 1)",
                                  "test_acc", f"dc-{tag}", f"random-{tag}", MARGIN_IPC10, primary=False,
                                  gates=(dc_moved,)))  # fmt: skip
    return out


HYPOTHESES = _claims()
