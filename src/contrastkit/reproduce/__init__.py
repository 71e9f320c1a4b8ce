"""Reproductions of paper claims: experiments (arms x seeds), the runner, statistics and verdicts.

``contrastkit reproduce NAME --seeds 3 --out DIR`` calls :func:`run_experiment`, which writes ``DIR/results.json``
(the contract checked by ``contrastkit validate``, :mod:`contrastkit.reproduce.validate`) and ``DIR/report.md``
with mean ± std per arm, paired differences versus the first arm, bar plots with per-seed points, and the claims
judged by :func:`compare_arms`.
"""

from __future__ import annotations

from contrastkit.reproduce.artifacts import (
    artifact_dir,
    artifact_path,
    artifacts_in,
    load_artifact_json,
    save_artifact_json,
)
from contrastkit.reproduce.experiment import (
    Arm,
    Claim,
    Experiment,
    Metric,
    get_experiment,
    list_experiments,
    register_experiment,
    unregister_experiment,
)
from contrastkit.reproduce.runner import merge_runs, rerun_command, run_experiment
from contrastkit.reproduce.stats import (
    VERDICT_RULE,
    VERDICTS,
    MeanStd,
    compare_arms,
    mean_std,
    metric_values,
    paired_differences,
    paired_t_test,
    sign_count,
)

__all__ = [
    "Arm",
    "Metric",
    "Claim",
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
    "compare_arms",
    "artifact_dir",
    "artifact_path",
    "artifacts_in",
    "save_artifact_json",
    "load_artifact_json",
]
