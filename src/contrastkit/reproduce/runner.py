"""Run an experiment's arms x seeds, record every row as it finishes, and judge its claims.

``out/results.json`` follows the contract of ``contrastkit reproduce`` (checked by ``contrastkit validate``)::

    {"experiment": str, "command": str, "commands": [str], "quick": bool, "seconds": float, "alpha": float,
     "rows": [{"arm": str, "setting": {...}, "seed": int, "metrics": {name: float}}],
     "gates": [{"name": str, "description": str, "passed": bool, "evidence": str}],
     "claims": [{"claim": str, "verdict": one of contrastkit.reproduce.claims.VERDICTS, "evidence": str,
                 "primary": bool, "metric", "better", "worse", "margin", "gates", "failed_gates", "n",
                 "mean_difference", "std_difference", "p", "p_reverse", "p_holm", "p_reverse_holm", "mde"}]}

``command`` recomputes the run from scratch; ``commands`` lists every command whose rows the file holds (the shards
merged into it and the runs it resumed), in order.

Seeds run in the outer loop (seed 0 for every arm, then seed 1, ...), so a run that stops early still holds complete
pairs for the finished seeds. results.json is rewritten atomically after every row; when a run raises, the finished
rows stay (with ``"claims": []``, which the validator rejects: an unfinished run is no reproduction), report.md
says where it stopped, and the exception propagates. While the arms run, :func:`contrastkit.reproduce.artifact_dir`
is ``out/artifacts``; the experiment's optional ``figures`` function draws from it after the claims.

``resume=True`` continues a stopped run in the same ``out``: the rows already in ``out/results.json`` whose arm,
setting and seed the current run would produce are kept (their artifacts are still in ``out/artifacts``), only
the missing ones run, and ``seconds`` adds up both runs. A results file of another experiment, or of the other
budget (``quick``, recorded in results.json), is an error.
:func:`merge_runs` folds the rows and artifacts of runs made in other folders (e.g. shards of the arms run in
parallel processes) into one folder; a ``resume=True`` run there then judges the claims over all of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit._io import atomic_write_text, check_writable_dir
from contrastkit.reproduce.artifacts import artifacts_in
from contrastkit.reproduce.claims import judge
from contrastkit.reproduce.experiment import Arm, Experiment, get_experiment
from contrastkit.reproduce.gates import check_gates
from contrastkit.reproduce.report import write_reproduction_report

__all__ = ["merge_runs", "rerun_command", "run_experiment"]

_CONTINUATION_FLAGS = ("--resume", "--merge")  # how a run was continued, not what it computes


def _check_metrics(experiment: Experiment, arm: str, seed: int, metrics: object) -> dict[str, float]:
    """``run``'s result as ``{name: float}``: every declared metric present, every value a finite number."""
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"{experiment.name}: run({arm!r}, seed={seed}) must return a non-empty dict of metrics")
    missing = [m.name for m in experiment.metrics if m.name not in metrics]
    if missing:
        raise ValueError(f"{experiment.name}: run({arm!r}, seed={seed}) did not return the declared metrics {missing}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"{experiment.name}: run({arm!r}, seed={seed}) gave {name}={value!r}; metrics must be finite numbers "
                "(record a divergence as its own metric, e.g. diverged=1.0)"
            )
        out[str(name)] = float(value)
    return out


def _write(out: Path, results: dict[str, Any]) -> None:
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")


def rerun_command(prefix: str, argv: Sequence[str]) -> str:
    """The command line that recomputes a run from scratch: ``argv`` without ``--resume`` and ``--merge DIR...``."""
    kept: list[str] = []
    dropping = False
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in _CONTINUATION_FLAGS:
            dropping = flag == "--merge" and "=" not in arg
            continue
        if dropping and not arg.startswith("-"):
            continue
        dropping = False
        kept.append(arg)
    return f"{prefix} {shlex.join(kept)}".rstrip()


def _row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    """What identifies a row: its arm, its setting (canonical JSON) and its seed."""
    return str(row["arm"]), json.dumps(row["setting"], sort_keys=True), int(row["seed"])


def _read_results(directory: Path) -> dict[str, Any]:
    """``directory/results.json`` as a dict; a missing or unreadable file is a one-line ValueError."""
    path = directory / "results.json"
    try:
        results = json.loads(path.read_text())
        if not isinstance(results.get("rows"), list) or not isinstance(results.get("experiment"), str):
            raise ValueError("no 'experiment' and 'rows'")
        float(results.get("seconds", 0.0))
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"cannot read the run in {directory}: {err}; point to a folder written by a reproduction"
        ) from err
    return results


def _commands(results: dict[str, Any]) -> list[str]:
    """The commands whose rows a results file holds (files written before ``commands`` existed: its command)."""
    listed = results.get("commands") or [results.get("command", "")]
    return [str(c) for c in listed if c]


def _is_quick(results: dict[str, Any]) -> bool:
    """Whether a run used the smoke-test budget (files written before the flag was recorded: from the command)."""
    return bool(results.get("quick", "--quick" in str(results.get("command", "")).split()))


def _finished_rows(
    experiment: Experiment, directory: Path, seeds: int | None, quick: bool
) -> tuple[list[dict[str, Any]], float, list[str]]:
    """Rows of an earlier run in ``directory`` of the experiment's arms (and of seeds ``< seeds`` unless None), that
    run's seconds, and the commands that made its rows."""
    if not (directory / "results.json").is_file():
        return [], 0.0, []
    previous = _read_results(directory)
    if previous["experiment"] != experiment.name:
        raise ValueError(
            f"cannot resume: {directory / 'results.json'} holds experiment {previous['experiment']!r}, not "
            f"{experiment.name!r}; pick another --out"
        )
    if _is_quick(previous) != bool(quick):
        budgets = ("full", "quick") if quick else ("quick", "full")
        raise ValueError(
            f"cannot resume: {directory / 'results.json'} is a {budgets[0]} run and this one is {budgets[1]}; "
            "their rows must not mix, pick another --out"
        )
    wanted = {(arm.name, json.dumps(dict(arm.setting), sort_keys=True)) for arm in experiment.arms}
    kept = [row for row in previous["rows"]
            if _row_key(row)[:2] in wanted and (seeds is None or 0 <= _row_key(row)[2] < seeds)]  # fmt: skip
    return kept, float(previous.get("seconds", 0.0)), _commands(previous)


def merge_runs(into: str | Path, sources: list[str | Path]) -> int:
    """Add the rows (and artifacts) of the runs in ``sources`` to the run in ``into``; returns the rows added.

    ``into`` may be an empty (or new) folder. All must be runs of one experiment and one budget (``quick`` or not);
    a row whose (arm, setting, seed) is already in ``into`` is an error, as is an artifact name that exists in both
    with other contents. Everything is checked before anything is copied, so a refused merge changes nothing.
    ``into/results.json`` is then rewritten atomically with ``"claims": []`` and the summed ``seconds``
    (core-seconds, when the shards ran side by side): finish it with ``run_experiment(..., resume=True)``.
    """
    target = Path(into)
    if not sources:
        raise ValueError("merge_runs needs at least one source run")
    if (target / "results.json").is_file():
        merged = _read_results(target)
    else:  # an empty folder: the merge starts from nothing
        check_writable_dir(target, what="output directory")
        first = _read_results(Path(sources[0]))
        merged = {"experiment": first["experiment"], "command": first.get("command", ""), "commands": [],
                  "quick": _is_quick(first), "seconds": 0.0, "rows": [], "claims": []}  # fmt: skip
    commands = _commands(merged)
    keys = {_row_key(row) for row in merged["rows"]}
    before = len(merged["rows"])
    copies: dict[str, Path] = {}
    for source in map(Path, sources):
        other = _read_results(source)
        if other["experiment"] != merged["experiment"]:
            raise ValueError(f"{source} holds experiment {other['experiment']!r}, {target} {merged['experiment']!r}")
        if _is_quick(other) != _is_quick(merged):
            raise ValueError(f"{source} and {target} ran different budgets (--quick in one only); they must not mix")
        for row in other["rows"]:
            if _row_key(row) in keys:
                raise ValueError(f"arm {row['arm']!r} seed {row['seed']} is in both {target} and {source}")
            keys.add(_row_key(row))
            merged["rows"].append(row)
        merged["seconds"] = float(merged.get("seconds", 0.0)) + float(other.get("seconds", 0.0))
        commands += _commands(other)
        for item in sorted((source / "artifacts").glob("*")) if (source / "artifacts").is_dir() else []:
            existing = copies.get(item.name, target / "artifacts" / item.name)
            if existing.exists() and existing.read_bytes() != item.read_bytes():
                raise ValueError(f"artifact {item.name} differs between {existing.parent.parent} and {source}")
            copies[item.name] = item
    if copies:
        (target / "artifacts").mkdir(exist_ok=True)
    for name, item in copies.items():
        shutil.copyfile(item, target / "artifacts" / name)
    merged["claims"], merged["gates"] = [], []
    merged["commands"] = list(dict.fromkeys(commands))
    _write(target, merged)
    return len(merged["rows"]) - before


def run_experiment(
    name_or_experiment: str | Experiment,
    *,
    seeds: int | Sequence[int] = 3,
    quick: bool = False,
    out: str | Path,
    command: str,
    progress: Callable[[str], None] | None = None,
    resume: bool = False,
    arms: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every arm of the experiment with seeds ``0 .. seeds-1``; write ``out/results.json`` and ``out/report.md``.

    Args:
        name_or_experiment: a registered name or an :class:`Experiment`.
        seeds: number of seeds per arm (>= 3 for a verdict other than "inconclusive"), or the list of seeds to run.
        arms: shell-style patterns of the arms to run (None: all). With a pattern or a seed list, ``resume`` keeps
            every finished row of the experiment's arms, so one arm and seed can be re-run into a finished run.
        settings: entries added to (or replacing those of) every arm's setting, e.g. ``{"outer": 100}``; the rows
            record them, and only rows with the same settings are resumed.
        quick: passed to ``run``: a smoke-test budget.
        out: output directory (created); gets results.json, report.md and plots/<metric>.png.
        command: the command line that reproduces this run (recorded in both files).
        progress: called with one line per finished row (e.g. ``print``).
        resume: keep the matching finished rows of ``out/results.json`` and run only the missing ones.

    Returns:
        The results dict written to ``out/results.json``.
    """
    experiment = name_or_experiment
    if not isinstance(experiment, Experiment):
        experiment = get_experiment(experiment)
    if settings:
        changed = [Arm(arm.name, {**arm.setting, **settings}) for arm in experiment.arms]
        experiment = dataclasses.replace(experiment, arms=changed)
    subset = arms is not None or not isinstance(seeds, int)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
        seed_list = list(range(seeds))
    else:
        seed_list = sorted({int(s) for s in seeds})
        if not seed_list or min(seed_list) < 0:
            raise ValueError(f"seeds must be a count >= 1 or a non-empty list of seeds >= 0, got {seeds!r}")
    selected = experiment.select_arms(arms) if arms is not None else list(experiment.arms)
    if not isinstance(command, str) or not command:
        raise ValueError("command must be the non-empty command line that reproduces the run")
    directory = check_writable_dir(out, what="output directory")
    results: dict[str, Any] = {
        "experiment": experiment.name,
        "command": command,
        "commands": [command],
        "quick": bool(quick),
        "seconds": 0.0,
        "alpha": experiment.alpha,
        "rows": [],
        "gates": [],
        "claims": [],
    }
    arm_index = {arm.name: i for i, arm in enumerate(experiment.arms)}

    def in_run_order(row: dict[str, Any]) -> tuple[int, int]:
        return int(row["seed"]), arm_index[row["arm"]]

    done: set[tuple[str, int]] = set()
    earlier_seconds = 0.0
    if quick and not resume and (directory / "results.json").is_file():
        if not _is_quick(_read_results(directory)):
            raise ValueError(
                f"{directory / 'results.json'} holds a full run; a --quick run never replaces it: pick another --out"
            )
    if resume:
        kept, earlier_seconds, earlier = _finished_rows(
            experiment, directory, None if subset else len(seed_list), quick
        )
        results["rows"] = sorted(kept, key=in_run_order)
        results["commands"] = list(dict.fromkeys([*earlier, command])) if kept else [command]
        done = {(row["arm"], int(row["seed"])) for row in kept}
        if progress is not None:
            progress(f"[{experiment.name}] resuming: {len(done)} finished rows kept")
    start = time.perf_counter() - earlier_seconds
    current = ("", -1)
    figures: list[Path] = []
    try:
        with artifacts_in(directory / "artifacts"):
            for seed in seed_list:
                for arm in selected:
                    if (arm.name, seed) in done:
                        continue
                    current = (arm.name, seed)
                    t0 = time.perf_counter()
                    metrics = _check_metrics(experiment, arm.name, seed, experiment.run(arm, seed, quick))
                    results["rows"].append(
                        {"arm": arm.name, "setting": dict(arm.setting), "seed": seed, "metrics": metrics}
                    )
                    results["rows"].sort(key=in_run_order)
                    results["seconds"] = time.perf_counter() - start
                    _write(directory, results)
                    if progress is not None:
                        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                        took = time.perf_counter() - t0
                        progress(f"[{experiment.name}] arm={arm.name} seed={seed}: {shown} ({took:.1f}s)")
            current = ("claims", -1)
            rows = [dict(row) for row in results["rows"]]
            directions = {m.name: m.higher_is_better for m in experiment.metrics}
            claims = judge(rows, experiment.hypotheses, experiment.gates, alpha=experiment.alpha,
                           higher_is_better=directions)  # fmt: skip
            results["gates"] = [g.to_dict() for g in check_gates(rows, experiment.gates)]
            results["claims"] = [c.to_dict() for c in claims]
            results["seconds"] = time.perf_counter() - start
            _write(directory, results)
            if experiment.figures is not None:
                current = ("figures", -1)
                figures = [Path(p) for p in experiment.figures(results, directory, quick)]
                missing = [str(p) for p in figures if not p.is_file()]
                if missing:
                    raise ValueError(f"{experiment.name}: figures() returned paths that are not files: {missing}")
    except BaseException as err:
        results["seconds"] = time.perf_counter() - start
        _write(directory, results)
        where = {"claims": "judging the claims", "figures": "drawing the figures"}.get(
            current[0], f"arm {current[0]!r} seed {current[1]}"
        )
        try:
            write_reproduction_report(
                experiment, results, directory, quick=quick, failure=f"{type(err).__name__} at {where}: {err}"
            )
        except Exception:  # the report of a failed run must never hide the original error
            pass
        raise
    write_reproduction_report(experiment, results, directory, quick=quick, figures=figures)
    return results
