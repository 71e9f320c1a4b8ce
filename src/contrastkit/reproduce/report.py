"""``report.md`` and ``plots/<metric>.png`` of a reproduction: verdicts first (primary claims, exploratory claims,
gates), then mean ± std per arm and the paired differences versus the first arm.

matplotlib (Agg) is imported inside :func:`plot_arms` only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit._io import atomic_write_text, check_writable_dir
from contrastkit.reproduce.claims import VERDICT_RULE, VERDICTS
from contrastkit.reproduce.experiment import Experiment
from contrastkit.reproduce.stats import mean_std, metric_values, paired_differences, sign_count
from contrastkit.train.plots import pyplot, save_figure

__all__ = ["write_reproduction_report", "plot_arms"]

Row = Mapping[str, Any]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", metric) + ".png"


def _arms(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(str(r["arm"]) for r in rows))


def _metrics(experiment: Experiment, rows: Sequence[Row]) -> list[str]:
    """Declared metrics first (in order), then any extra metric ``run`` returned."""
    names = [m.name for m in experiment.metrics] + [k for r in rows for k in r["metrics"]]
    return [n for n in dict.fromkeys(names) if any(n in r["metrics"] for r in rows)]


def plot_arms(rows: Sequence[Row], metric: str, path: str | Path, title: str = "") -> Path:
    """Bar per arm (mean, error bar = std with ddof=1) with each seed's value as a point; grey lines join the
    values of one seed across arms (the pairing that the paired differences use)."""
    plt = pyplot()
    rows = [r for r in rows if metric in r["metrics"]]
    arms = _arms(rows)
    per_arm = {a: metric_values(rows, metric, a) for a in arms}
    fig, ax = plt.subplots(figsize=(max(3.5, 1.2 * len(arms) + 1.5), 3.8))
    for x, arm in enumerate(arms):
        stats = mean_std(list(per_arm[arm].values()))
        ax.bar(x, stats.mean, width=0.6, alpha=0.5, yerr=0 if stats.n < 2 else stats.std, capsize=4)
    seeds = sorted({s for values in per_arm.values() for s in values})
    for rank, seed in enumerate(seeds):
        offset = 0.2 * (rank / max(len(seeds) - 1, 1) - 0.5)
        xs = [x + offset for x, a in enumerate(arms) if seed in per_arm[a]]
        ys = [per_arm[a][seed] for a in arms if seed in per_arm[a]]
        ax.plot(xs, ys, color="0.6", lw=0.7, zorder=2)
        ax.scatter(xs, ys, s=14, zorder=3, label=f"seed {seed}")
    ax.set_xticks(range(len(arms)), arms, rotation=20 if len(arms) > 3 else 0)
    ax.set(ylabel=metric, title=title or metric)
    values = [v for vs in per_arm.values() for v in vs.values()]
    low, high = min(values), max(values)
    pad = 0.15 * (high - low) or 0.05 * abs(high) or 1.0
    if low > 0 and low - pad > 0.5 * high:  # zoom in when bars would hide the differences
        ax.set_ylim(low - pad, high + pad)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _metric_section(experiment: Experiment, rows: Sequence[Row], metric: str, out: Path) -> list[str]:
    rows = [r for r in rows if metric in r["metrics"]]  # an undeclared extra metric may be missing from some rows
    declared = experiment.metric(metric)
    protocol = declared.protocol if declared else "extra metric (not declared by the experiment)"
    direction = (
        "" if declared is None else (" (higher is better)" if declared.higher_is_better else " (lower is better)")
    )
    lines = ["", f"### {metric}", "", f"Protocol: {_cell(protocol)}{direction}", ""]
    lines += ["| Arm | mean ± std | n | per seed |", "|---|---|---|---|"]
    arms = _arms(rows)
    for arm in arms:
        values = metric_values(rows, metric, arm)
        stats = mean_std(list(values.values()))
        std = "n/a" if stats.n < 2 else f"{stats.std:.4g}"
        per_seed = ", ".join(f"{v:.4g}" for v in values.values())
        lines.append(f"| {_cell(arm)} | {stats.mean:.4g} ± {std} | {stats.n} | {per_seed} |")
    if len(arms) > 1:
        baseline = arms[0]
        lines += ["", f"Paired differences versus the baseline `{baseline}` (same seed; std with ddof=1):", ""]
        lines += ["| Arm − baseline | mean ± std | n | sign count | per seed |", "|---|---|---|---|---|"]
        for arm in arms[1:]:
            diffs = list(paired_differences(rows, metric, arm, baseline).values())
            if not diffs:
                lines.append(f"| {_cell(arm)} − {_cell(baseline)} | no shared seed | 0 | | |")
                continue
            stats = mean_std(diffs)
            std = "n/a" if stats.n < 2 else f"{stats.std:.4g}"
            per_seed = ", ".join(f"{d:+.4g}" for d in diffs)
            lines.append(
                f"| {_cell(arm)} − {_cell(baseline)} | {stats.mean:+.4g} ± {std} | {stats.n} | "
                f"{sign_count(diffs)} | {per_seed} |"
            )
    plot = plot_arms(rows, metric, out / "plots" / _file_name(metric), title=f"{experiment.name}: {metric}")
    lines += ["", f"![{metric}]({plot.relative_to(out).as_posix()})"]
    return lines


def _number(value: object, spec: str = ".3g") -> str:
    return "–" if value is None else format(float(value), spec)  # type: ignore[arg-type]


def _claim_table(claims: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| Claim | Verdict | gain (mean ± std, n) | margin | p (Holm) | MDE | gates |"]
    lines.append("|---|---|---|---|---|---|---|")
    for c in claims:
        gain = (
            "–"
            if c.get("mean_difference") is None
            else (f"{float(c['mean_difference']):+.4g} ± {_number(c.get('std_difference'), '.3g')} (n={c.get('n', 0)})")
        )
        gates = ", ".join(f"~~{g}~~" if g in c.get("failed_gates", []) else g for g in c.get("gates", [])) or "–"
        lines.append(
            f"| {_cell(c['claim'])} | **{c['verdict']}** | {gain} | {_number(c.get('margin'), 'g')} | "
            f"{_number(c.get('p_holm'))} | {_number(c.get('mde'))} | {gates} |"
        )
    return lines


def _verdict_sections(results: Mapping[str, Any]) -> list[str]:
    """Counts per verdict, the primary and exploratory claim tables, and the gates (struck through: failed)."""
    claims = list(results["claims"])
    if not claims:
        return ["", "## Verdicts", "", "Not judged: the run did not finish."]
    lines = ["", "## Verdicts", ""]
    for primary, title in ((True, "Primary claims (declared before the run)"), (False, "Exploratory claims")):
        family = [c for c in claims if bool(c.get("primary", True)) is primary]
        if not family:
            continue
        counts = ", ".join(f"{sum(c['verdict'] == v for c in family)} {v}" for v in VERDICTS)
        lines += [f"### {title}", "", f"{len(family)} claims: {counts}. Holm correction over the tested claims of "
                  f"this family, alpha {results.get('alpha', 0.05)}.", ""]  # fmt: skip
        lines += _claim_table(family) + [""]
    gates = list(results.get("gates", []))
    if gates:
        lines += ["### Gates (premises and calibrations)", "", "| Gate | Holds | What must hold | Evidence |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {_cell(g['name'])} | {'yes' if g['passed'] else '**no**'} | {_cell(g['description'])} | "
                  f"{_cell(g['evidence'])} |" for g in gates]  # fmt: skip
    return lines


def write_reproduction_report(
    experiment: Experiment,
    results: Mapping[str, Any],
    out: str | Path,
    *,
    quick: bool = False,
    failure: str | None = None,
    figures: Sequence[str | Path] = (),
) -> Path:
    """Write ``out/report.md`` (and ``out/plots/*.png``) from a results dict; ``failure`` marks an unfinished run;
    ``figures`` (PNG paths inside ``out``, from the experiment's ``figures`` function) get their own section."""
    directory = check_writable_dir(out, what="output directory")
    rows: list[Row] = list(results["rows"])
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [f"# Reproduction: {experiment.name}", "", experiment.description, ""]
    lines += [
        f"- Command: `{results['command']}`",
        *[f"  - rows made by: `{c}`" for c in results.get("commands", []) if len(results.get("commands", [])) > 1],
        f"- Seeds: {seeds or 'none finished'}",
        f"- Wall time: {float(results['seconds']):.1f} s",
        f"- Budget: {'quick' if quick else 'full'}",
    ]
    if failure is not None:
        lines += [
            "",
            f"**Run incomplete: {_cell(failure)}.** {len(rows)} finished rows are kept in results.json; "
            "rerun the command to complete it.",
        ]
    lines += _verdict_sections(results)
    lines += ["", "## Arms", "", "Re-run one arm and seed with the first command; the second (where shown) trains the",
              "same weights by hand.", "", "| Arm | Re-run (seed 0) | Setting |", "|---|---|---|"]  # fmt: skip
    for i, arm in enumerate(experiment.arms):
        note = " (baseline)" if i == 0 else ""
        rerun = f"`{_cell(experiment.rerun_command(arm, 0, quick))}`"
        if experiment.arm_command is not None and arm.setting.get("train", True):  # an untrained arm has no recipe
            rerun += f"<br>`{_cell(experiment.arm_command(arm, 0, quick))}`"
        setting = _cell(json.dumps(dict(arm.setting), sort_keys=True))
        lines.append(f"| {_cell(arm.name)}{note} | {rerun} | `{setting}` |")
    lines += ["", "## Metrics"]
    for metric in _metrics(experiment, rows):
        lines += _metric_section(experiment, rows, metric, directory)
    if figures:
        lines += ["", "## Figures", ""]
        for figure in figures:
            path = Path(figure)
            shown = path.relative_to(directory).as_posix() if path.is_relative_to(directory) else path.as_posix()
            lines += [f"![{path.stem}]({shown})", ""]
    lines += ["", "## Verdict rule", "", VERDICT_RULE, ""]
    if results["claims"]:
        lines += ["## Evidence", ""] + [f"- {_cell(c['claim'])}: {_cell(c['evidence'])}" for c in results["claims"]]
        lines.append("")
    return atomic_write_text(directory / "report.md", "\n".join(lines))
