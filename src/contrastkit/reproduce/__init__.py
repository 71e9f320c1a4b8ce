"""Reproductions of paper claims: experiments (arms x seeds), the runner, statistics and verdicts.

``contrastkit reproduce NAME --seeds 3 --out DIR`` calls :func:`run_experiment`, which writes ``DIR/results.json``
(the contract checked by ``contrastkit validate``, :mod:`contrastkit.reproduce.validate`) and ``DIR/report.md``
with the verdicts of the hypotheses declared before the run (:mod:`contrastkit.reproduce.claims`: gates, margins,
Holm correction, power), mean ± std per arm, paired differences versus the first arm and bar plots with per-seed
points.
"""

from __future__ import annotations

from contrastkit.reproduce.artifacts import (
    artifact_dir,
    artifact_path,
    artifacts_in,
    load_artifact_json,
    save_artifact_json,
)
from contrastkit.reproduce.claims import VERDICT_RULE, VERDICTS, Claim, Hypothesis, judge
from contrastkit.reproduce.experiment import (
    Arm,
    Experiment,
    Metric,
    get_experiment,
    list_experiments,
    register_experiment,
    unregister_experiment,
)
from contrastkit.reproduce.gates import Gate, any_arm_at_least, any_arm_at_most, mean_at_least, mean_at_most
from contrastkit.reproduce.runner import merge_runs, rerun_command, run_experiment
from contrastkit.reproduce.stats import (
    MeanStd,
    holm_adjust,
    mean_std,
    metric_values,
    minimal_detectable_effect,
    paired_differences,
    paired_t_test,
    sign_count,
)

__all__ = [
    "Arm",
    "Metric",
    "Claim",
    "Hypothesis",
    "Gate",
    "judge",
    "mean_at_least",
    "mean_at_most",
    "any_arm_at_least",
    "any_arm_at_most",
    "Experiment",
    "register_experiment",
    "unregister_experiment",
    "get_experiment",
    "list_experiments",
    "merge_runs",
    "rerun_command",
    "run_experiment",
    "VERDICTS",
    "VERDICT_RULE",
    "MeanStd",
    "mean_std",
    "metric_values",
    "paired_differences",
    "paired_t_test",
    "sign_count",
    "holm_adjust",
    "minimal_detectable_effect",
    "artifact_dir",
    "artifact_path",
    "artifacts_in",
    "save_artifact_json",
    "load_artifact_json",
]
