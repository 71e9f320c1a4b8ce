"""The claims and gates of ``contrastkit reproduce supercon``, declared before any run (:mod:`.supercon`).

**Primary** (4 claims, one Holm family): on the HAM10000 profile (``ham``, the spec's primary dataset and the paper's
setting), SupCon -> weighted-CE head and SupCon -> class-balanced head each beat each of the two re-weighted
baselines, weighted CE and class-balanced CE end to end (the strongest baselines on macro-F1 in every profile of the
earlier run), on macro-F1 of the common re-fit head protocol, by more than **1 point**. The margin: the seed-to-seed
standard deviation of macro-F1 was about 1 point in the earlier run, and 1 point is about twice the standard error of
a macro-F1 near 0.75 on a 7,000-image balanced test split; a smaller gain would not be the "significant improvement"
the paper claims.

**Exploratory** (Holm within their own family): the same four pairs on the exponential profiles; the four pairs on
macro OvR AUC (margin 0.5 point, AUC spreads are about half of macro-F1's); SupCon -> CE vs CE and SupCon -> focal
vs focal (matched losses); and the claimed arms vs their matched baselines on each arm's OWN classifier (the
baselines' engine-trained layer), which needs that layer to have converged.

**Gates** (a claim naming a failed gate is untestable):

* ``lr_searched-P``: every trained arm of profile P ran at the learning rate the search of :mod:`._supercon_search`
  chose;
* ``anchor-P``: in profile P, weighted CE and class-balanced CE end to end beat the seed's untrained encoder under the
  same head (``random_init-P``) by at least 1 point of macro-F1 (the baselines learnt features worth comparing);
* ``heads_converged-P``: every re-fit head of profile P ends with max |grad J| <= 1e-4 (mean over seeds);
* ``own_heads_converged-P``: every arm's own classifier is at most 1 point of macro-F1 below the re-fit head with the
  same loss on the same features (0 by construction for the arms whose classifier is the re-fit head).
"""

from __future__ import annotations

from typing import Any

from contrastkit.reproduce.experiment import Hypothesis
from contrastkit.reproduce.experiments._supercon_arms import DESCRIPTIONS, PRIMARY_PROFILE, PROFILES, RANDOM_INIT
from contrastkit.reproduce.gates import Gate, beats_reference, mean_at_most

F1_MARGIN = 0.01
AUC_MARGIN = 0.005
GRAD_GATE = 1e-4
CLAIMED = ("supercon_weighted_ce", "supercon_cb")
REWEIGHTED = ("weighted_ce", "class_balanced")
MATCHED = {"supercon_weighted_ce": "weighted_ce", "supercon_cb": "class_balanced", "supercon_ce": "ce",
           "supercon_focal": "focal"}  # fmt: skip
LABELS = {"macro_f1": "macro-F1", "auc_macro_ovr": "macro OvR AUC", "own_macro_f1": "macro-F1 of its own classifier"}


def claim_text(profile: str, better: str, worse: str, metric: str) -> str:
    """The text of one claim (the summary tables find a claim's verdict by its arms, not by this text)."""
    return f"{profile}: {DESCRIPTIONS[better]} beats {DESCRIPTIONS[worse]} on {LABELS[metric]}"


def _beats_random_init(profile: str) -> Gate:
    text = (f"{profile}: weighted CE and class-balanced CE end to end beat the untrained encoder under the same "
            "re-fit head by >= 1 point of macro-F1")  # fmt: skip
    baselines = [f"{b}-{profile}" for b in REWEIGHTED]
    return beats_reference(f"anchor-{profile}", baselines, "macro_f1", f"{RANDOM_INIT}-{profile}", F1_MARGIN, text)


def _searched(profile: str) -> Gate:
    def check(rows: list[dict[str, Any]]) -> tuple[bool, str]:
        trained = [r for r in rows if r["setting"].get("profile") == profile and r["setting"].get("lr_source")]
        unsearched = sorted({r["arm"] for r in trained if r["setting"]["lr_source"] != "search"})
        if not trained:
            return False, f"not run: no trained arm of {profile} finished"
        if unsearched:
            return False, f"{len(unsearched)} arms ran at the base lr without a search, e.g. {unsearched[0]}"
        return True, f"all {len({r['arm'] for r in trained})} trained arms of {profile} ran at their searched lr"

    return Gate(f"lr_searched-{profile}", f"{profile}: every trained arm used the learning rate chosen on the "
                "validation carve", check)  # fmt: skip


def _gates() -> list[Gate]:
    gates = []
    for p in PROFILES:
        gates += [
            _searched(p),
            _beats_random_init(p),
            mean_at_most(f"heads_converged-{p}", f"*-{p}", "head_grad_max", GRAD_GATE,
                         f"{p}: every re-fit head reached max |grad J| <= {GRAD_GATE:g}"),
            mean_at_most(f"own_heads_converged-{p}", f"*-{p}", "own_head_gap", F1_MARGIN,
                         f"{p}: every arm's own classifier is within 1 point of macro-F1 of the re-fit head"),
        ]  # fmt: skip
    return gates


def _hypothesis(p: str, better: str, worse: str, metric: str, primary: bool = False) -> Hypothesis:
    gates: tuple[str, ...] = (f"lr_searched-{p}", f"anchor-{p}", f"heads_converged-{p}")
    gates += (f"own_heads_converged-{p}",) if metric.startswith("own_") else ()
    margin = AUC_MARGIN if metric == "auc_macro_ovr" else F1_MARGIN
    return Hypothesis(claim_text(p, better, worse, metric), metric, f"{better}-{p}", f"{worse}-{p}", margin, primary,
                      gates)  # fmt: skip


def _hypotheses() -> list[Hypothesis]:
    pairs = [(c, b) for c in CLAIMED for b in REWEIGHTED]
    out = [_hypothesis(PRIMARY_PROFILE, c, b, "macro_f1", primary=True) for c, b in pairs]
    out += [_hypothesis(p, c, b, "macro_f1") for p in PROFILES if p != PRIMARY_PROFILE for c, b in pairs]
    out += [_hypothesis(p, c, b, "auc_macro_ovr") for p in PROFILES for c, b in pairs]
    out += [_hypothesis(p, c, MATCHED[c], "macro_f1") for p in PROFILES for c in ("supercon_ce", "supercon_focal")]
    out += [_hypothesis(p, c, MATCHED[c], "own_macro_f1") for p in PROFILES for c in CLAIMED]
    return out


GATES = _gates()
HYPOTHESES = _hypotheses()
