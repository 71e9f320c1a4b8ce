"""Presentation of ``contrastkit reproduce supercon`` results: the per-class recall and paired-difference figures
and the Markdown summary tables for docs/results.md (the experiment is :mod:`.supercon`, its arms
:mod:`._supercon_arms`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit.reproduce.experiments._supercon_arms import (
    BASELINES,
    CLAIM_METRICS,
    CLAIMED,
    METHODS,
    PROFILES,
    claim_text,
)
from contrastkit.reproduce.stats import paired_differences

__all__ = ["figures", "summary_tables"]


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/per_class_recall.png`` (mean test recall per class, head to tail, per method and profile) and
    ``plots/paired_differences.png`` (per-seed differences claimed-arm - baseline on macro-F1 and AUC)."""
    from contrastkit.reproduce.artifacts import load_artifact_json
    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    profiles = [p for p in PROFILES if any(r["setting"].get("profile") == p for r in rows)]
    if not profiles:
        return []
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.4 * len(profiles), 3.8), squeeze=False)
    for ax, profile in zip(axes[0], profiles, strict=True):
        n_seeds = 0
        for method in METHODS:
            saved = [load_artifact_json(f"{r['arm']}-seed{r['seed']}") for r in rows
                     if r["arm"] == f"{method}-{profile}"]  # fmt: skip
            if not saved:
                continue
            n_seeds = max(n_seeds, len(saved))
            counts = saved[0]["class_counts"]
            order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
            mean = [sum(s["per_class_recall"][c] for s in saved) / len(saved) for c in order]
            style = "-" if method in BASELINES else "--"
            width = 2.2 if method in CLAIMED else 1.1
            ax.plot(range(len(order)), mean, style, marker="o", ms=3, label=method, lw=width)
            ax.set_xticks(range(len(order)), [f"{c}\n{counts[c]}" for c in order], fontsize=7)
        ax.set_title(f"{profile} ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
        ax.set_xlabel("class id / training images (head -> tail)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test recall (mean over seeds)")
    axes[0][-1].legend(fontsize=6, loc="lower left")
    paths = [save_figure(fig, directory / "plots" / "per_class_recall.png")]

    present = {r["arm"] for r in rows}
    metrics = CLAIM_METRICS
    fig, axes = plt.subplots(len(metrics), len(profiles), figsize=(4.4 * len(profiles), 6.4), squeeze=False)
    for j, profile in enumerate(profiles):
        for i, (metric, label) in enumerate(metrics):
            ax = axes[i][j]
            pairs = [(m, b) for m in CLAIMED for b in BASELINES
                     if f"{m}-{profile}" in present and f"{b}-{profile}" in present]  # fmt: skip
            for x, (method, baseline) in enumerate(pairs):
                diffs = list(paired_differences(rows, metric, f"{method}-{profile}", f"{baseline}-{profile}").values())
                ax.bar(x, sum(diffs) / len(diffs), width=0.6, alpha=0.5, color="C0" if method == "supercon" else "C1")
                ax.scatter([x] * len(diffs), diffs, s=10, color="k", zorder=3)
            ax.axhline(0.0, color="0.3", lw=0.8)
            ax.set_xticks(range(len(pairs)), [f"{'SC' if m == 'supercon' else 'SC-f'}\n-{b}" for m, b in pairs],
                          fontsize=6)  # fmt: skip
            ax.set_title(f"{profile}: {label}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("paired difference")
        axes[1][0].set_ylabel("paired difference")
    paths.append(save_figure(fig, directory / "plots" / "paired_differences.png"))
    return paths


def summary_tables(results: Mapping[str, Any]) -> str:
    """Markdown tables of a finished (or partial) results dict, one column per profile, for docs/results.md.

    * per metric (macro-F1, macro OvR AUC, balanced accuracy, tail-3 recall, in %): mean ± std over seeds of
      every method;
    * paired differences claimed arm - baseline (in points, mean ± std over seeds) with the claim's verdict
      (R = reproduced, N = not reproduced, I = inconclusive), macro-F1 and AUC;
    * mean seconds per arm.

    Run it as ``python -m contrastkit.reproduce.experiments._supercon_report docs/results/supercon/results.json``.
    """
    import statistics


    rows = list(results["rows"])
    arms = {r["arm"] for r in rows}
    profiles = [p for p in PROFILES if any(f"{m}-{p}" in arms for m in METHODS)]
    verdicts = {c["claim"]: c["verdict"] for c in results.get("claims", [])}
    short = {"reproduced": "R", "not reproduced": "N", "inconclusive": "I"}

    def values(arm: str, metric: str) -> list[float]:
        return [float(r["metrics"][metric]) for r in rows if r["arm"] == arm and metric in r["metrics"]]

    def cell(xs: Sequence[float], scale: float = 100.0, sign: str = "") -> str:
        if not xs:
            return "—"
        mean = statistics.fmean(xs) * scale
        if len(xs) < 2:
            return f"{mean:{sign}.1f}"
        return f"{mean:{sign}.1f} ± {statistics.stdev(xs) * scale:.1f}"

    head = "| method | " + " | ".join(profiles) + " |"
    rule = "|---|" + "---|" * len(profiles)
    seeds = sorted({int(r["seed"]) for r in rows})
    out = [f"Seeds: {seeds}; values in % (mean ± std over seeds).", ""]
    tables = (
        ("macro_f1", "macro-F1"),
        ("auc_macro_ovr", "macro OvR AUC"),
        ("balanced_accuracy", "balanced accuracy"),
        ("tail3_recall", "recall of the 3 rarest classes"),
    )
    for metric, label in tables:
        out += [f"**{label}**", "", head, rule]
        for method in METHODS:
            out.append(f"| {method} | " + " | ".join(cell(values(f"{method}-{p}", metric)) for p in profiles) + " |")
        out.append("")
    for metric, label in CLAIM_METRICS:
        out += [f"**Paired differences on {label}** (points, claimed arm − baseline, same seed; verdict R / N / I)", "",
                "| pair | " + " | ".join(profiles) + " |", rule]  # fmt: skip
        for method in CLAIMED:
            for baseline in BASELINES:
                cells = []
                for profile in profiles:
                    ours, theirs = f"{method}-{profile}", f"{baseline}-{profile}"
                    if ours not in arms or theirs not in arms:
                        cells.append("—")
                        continue
                    diffs = list(paired_differences(rows, metric, ours, theirs).values())
                    claim = claim_text(profile, method, baseline, label)
                    tag = short.get(verdicts.get(claim, ""), "not judged")
                    cells.append(f"{cell(diffs, sign='+')} ({tag})")
                out.append(f"| {method} − {baseline} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["**Seconds per arm** (mean; SuperCon arms include their shared stage 1)", "", head, rule]
    for method in METHODS:
        seconds = [cell(values(f"{method}-{p}", "seconds"), 1.0) for p in profiles]
        out.append(f"| {method} | " + " | ".join(seconds) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m contrastkit.reproduce.experiments._supercon_report RESULTS_JSON")
    print(summary_tables(json.loads(Path(sys.argv[1]).read_text())), end="")
