"""The hypotheses and gates of ``contrastkit reproduce ariel``, ``ariel-csbm`` and ``ariel-polblogs`` (Feng et al.,
WWW 2022), declared before any run. Arms are ``METHOD-DATASET`` (:mod:`._ariel_setup`).

The paper's claims at the scale of the spec's CPU reproduction (ariel.md section 7): ARIEL's adversarial view
improves node classification over GRACE, and the learned encoder loses less accuracy when the graph is attacked.
The spec expects "a gap of a point or two at best" and allows a tie on an easy kNN graph or CSBM; a fairly tested
null is reported as such. ARIEL is compared with GRACE on the whole graph (the paper's comparison) and with GRACE on
the same sampled subgraphs (the comparison that isolates the adversarial view, pitfall 1).

Margins (accuracy units), chosen before the run: 0.005 (half a point) for accuracy and for accuracy drops.

Gates:

* ``learns_D``: GRACE on the whole graph beats the untrained encoder by >= 1 point (training shows);
* ``grace_level_D``: GRACE on the whole graph beats the raw node features by >= 1 point (the declared level: a
  graph encoder that does not beat logistic regression on its own inputs is not a working baseline);
* ``attack_bites_D``: the PGD edge attack costs GRACE >= 1 point (the premise of a robustness comparison).
"""

from __future__ import annotations

from contrastkit.reproduce.experiment import Hypothesis
from contrastkit.reproduce.gates import Gate, beats_reference, mean_at_least

__all__ = ["GATES", "HYPOTHESES"]

MARGIN = 0.005


def _gates(d: str) -> list[Gate]:
    return [
        beats_reference(f"learns_{d}", f"grace-full-{d}", "accuracy", f"random-init-{d}", 0.01,
                        f"premise: GRACE (whole graph) beats the untrained encoder by >= 1 point ({d})"),
        beats_reference(f"grace_level_{d}", f"grace-full-{d}", "accuracy", f"raw-features-{d}", 0.01,
                        f"premise: GRACE (whole graph) beats logistic regression on the raw node features by >= 1 "
                        f"point ({d})"),
        mean_at_least(f"attack_bites_{d}", f"grace-full-{d}", "drop_pgd20", 0.01,
                      f"premise: the PGD edge attack (20 %) costs GRACE >= 1 point of accuracy ({d})"),
        beats_reference(f"ariel_learns_{d}", f"ariel-{d}", "accuracy", f"random-init-{d}", 0.01,
                        f"premise (added after the CSBM run): ARIEL's encoder beats the untrained one by >= 1 point, "
                        f"so its robustness is not that of a collapsed encoder ({d})"),
    ]  # fmt: skip


GATES = {d: _gates(d) for d in ("fashion", "csbm", "polblogs")}


def _claims(d: str) -> list[Hypothesis]:
    works = (f"learns_{d}", f"grace_level_{d}")
    ariel_works = (*works, f"ariel_learns_{d}")
    robust = (*ariel_works, f"attack_bites_{d}")
    claims = [
        Hypothesis(f"ARIEL beats GRACE (whole graph) on node classification, {d}", "accuracy", f"ariel-{d}",
                   f"grace-full-{d}", MARGIN, gates=works),
        Hypothesis(f"ARIEL beats GRACE on the same sampled subgraphs (the adversarial view's own effect), {d}",
                   "accuracy", f"ariel-{d}", f"grace-sub-{d}", MARGIN, gates=works),
        Hypothesis(f"ARIEL loses less accuracy than GRACE under a PGD edge attack (20 %), {d}", "drop_pgd20",
                   f"ariel-{d}", f"grace-full-{d}", MARGIN, gates=robust),
        Hypothesis(f"ARIEL loses less accuracy than GRACE under a PGD edge attack (10 %), {d}", "drop_pgd10",
                   f"ariel-{d}", f"grace-full-{d}", MARGIN, primary=False, gates=robust),
        Hypothesis(f"ARIEL loses less accuracy than GRACE under 20 % random edge flips, {d}", "drop_random20",
                   f"ariel-{d}", f"grace-full-{d}", MARGIN, primary=False, gates=ariel_works),
        Hypothesis(f"ARIEL's accuracy on the PGD-attacked graph beats GRACE's, {d}", "accuracy_pgd20", f"ariel-{d}",
                   f"grace-full-{d}", MARGIN, primary=False, gates=robust),
        Hypothesis(f"The information regulariser (lamb 1) improves ARIEL's accuracy, {d}", "accuracy",
                   f"ariel-reg-{d}", f"ariel-{d}", MARGIN, primary=False, gates=ariel_works),
        Hypothesis(f"ARIEL's edge attack alone beats GRACE on the same subgraphs, {d}", "accuracy",
                   f"ariel-edges-{d}", f"grace-sub-{d}", MARGIN, primary=False, gates=works),
        Hypothesis(f"The feature attack costs ARIEL accuracy (edges only beats edges + features), {d}", "accuracy",
                   f"ariel-edges-{d}", f"ariel-{d}", MARGIN, primary=False, gates=works),
        Hypothesis(f"GRACE on the whole graph beats GRACE on sampled subgraphs (what sampling costs), {d}",
                   "accuracy", f"grace-full-{d}", f"grace-sub-{d}", MARGIN, primary=False, gates=works),
    ]  # fmt: skip
    if d == "fashion":
        claims.append(Hypothesis("A feature box matched to the features' scale (0.0032) beats the default 0.04, "
                                 "fashion", "accuracy", "ariel-box-fashion", "ariel-fashion", MARGIN, primary=False,
                                 gates=works))  # fmt: skip
    return claims


HYPOTHESES = {d: _claims(d) for d in ("fashion", "csbm", "polblogs")}
