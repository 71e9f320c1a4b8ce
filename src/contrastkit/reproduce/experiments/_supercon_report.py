"""Presentation of ``contrastkit reproduce supercon`` results: the headline (what was and was not shown), the
per-profile Markdown tables (``summary.md`` beside the report, and docs/results.md), and the per-class recall and
paired-difference figures. The experiment is :mod:`.supercon`, its arms :mod:`._supercon_arms`, its claims
:mod:`._supercon_claims`."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contrastkit.reproduce.experiments._supercon_arms import BASELINES, METHODS, PRIMARY_PROFILE, PROFILES
from contrastkit.reproduce.experiments._supercon_claims import CLAIMED, F1_MARGIN, REWEIGHTED
from contrastkit.reproduce.stats import paired_differences

__all__ = ["figures", "headline", "summary_tables"]

NOT_SHOWN = (
    "no skin-lesion image was used: Fashion-MNIST with the HAM10000 class profile stands in for ISIC / HAM10000",
    "the paper's backbone, budget and stage-2 loss are not known; the four heads are the plausible readings, "
    "a DC ConvNet at 100 epochs is not the paper's network",
    "a fine-tuned stage 2 and class-balanced (CICL) batches were not run",
    "learning rates were searched on seed 0 of each profile only (a 3-point grid), then used for every seed",
)


def headline(results: Mapping[str, Any]) -> str:
    """What the run showed and did not show: the primary verdicts, the failed gates, and the standing limits."""
    claims = [c for c in results.get("claims", []) if c.get("primary")]
    if not claims:
        return "**Headline.** Not judged: the run did not finish.\n"
    counts = {v: sum(c["verdict"] == v for c in claims) for v in dict.fromkeys(c["verdict"] for c in claims)}
    shown = ", ".join(f"{n} {v}" for v, n in counts.items())
    out = [f"**Headline** ({PRIMARY_PROFILE} profile, macro-F1 of the common re-fit head, margin "
           f"{F1_MARGIN * 100:g} point, Holm over {len(claims)} primary claims): {shown}.", ""]  # fmt: skip
    for c in claims:
        gain = "" if c.get("mean_difference") is None else f", gain {100 * c['mean_difference']:+.1f} points"
        out.append(f"- {c['claim']}: **{c['verdict']}**{gain} (n={c.get('n', 0)}).")
    reproduced = [c for c in claims if c["verdict"] == "reproduced"]
    out.append("")
    out.append("Shown: " + ("; ".join(c["claim"] for c in reproduced) + "." if reproduced else "no primary claim."))
    named = {g for c in claims for g in c.get("gates", [])}
    failed = [g for g in results.get("gates", []) if not g["passed"] and g["name"] in named]
    out += [f"Gate {g['name']} failed ({g['evidence']}): the primary claims naming it are untestable, not refuted."
            for g in failed]  # fmt: skip
    out.append("Not shown: " + "; ".join(NOT_SHOWN) + ".")
    return "\n".join(out) + "\n"


def _values(rows: Sequence[Mapping[str, Any]], arm: str, metric: str) -> list[float]:
    return [float(r["metrics"][metric]) for r in rows if r["arm"] == arm and metric in r["metrics"]]


def _cell(xs: Sequence[float], scale: float = 100.0, sign: str = "") -> str:
    if not xs:
        return "—"
    mean = statistics.fmean(xs) * scale
    return f"{mean:{sign}.1f}" if len(xs) < 2 else f"{mean:{sign}.1f} ± {statistics.stdev(xs) * scale:.1f}"


def _search_table(record: Mapping[str, Any]) -> list[str]:
    """The learning-rate search (:mod:`._supercon_search`): validation score per scale and the chosen scale."""
    out = ["**Learning-rate search** (seed 0, lr = scale x 0.05; validation macro-F1 of the re-fit head on a 20 % "
           "carve of the training subset, %; chosen in bold)", "", "| profile | encoder | x0.5 | x1 | x2 |",
           "|---|---|---|---|---|"]  # fmt: skip
    for profile in [p for p in PROFILES if p in record]:
        for encoder, scores in record[profile]["scores"].items():
            chosen = f"{float(record[profile]['chosen'][encoder]):g}"
            cells = [f"**{100 * v:.1f}**" if k == chosen else f"{100 * v:.1f}" for k, v in scores.items()]
            out.append(f"| {profile} | {encoder} | " + " | ".join(cells) + " |")
    return [*out, ""] if record else ["**Learning-rate search**: not run (every encoder at lr 0.05).", ""]


def summary_tables(results: Mapping[str, Any], lr_search: Mapping[str, Any] | None = None) -> str:
    """The headline, then Markdown tables (one column per profile) of a finished or partial results dict:

    * per metric (re-fit head macro-F1, macro OvR AUC, balanced accuracy, tail-3 recall; own-classifier macro-F1; in
      %): mean ± std over seeds of every method;
    * paired differences claimed arm - re-weighted baseline (macro-F1 points, same seed) with the claim's verdict;
    * mean seconds per arm;
    * the learning-rate search record ``lr_search`` (when given: the run's ``artifacts/lr_search.json``).

    Run it as ``python -m contrastkit.reproduce.experiments._supercon_report RESULTS_JSON`` (it reads the
    ``artifacts/lr_search.json`` beside the file).
    """
    rows = list(results["rows"])
    arms = {r["arm"] for r in rows}
    profiles = [p for p in PROFILES if any(f"{m}-{p}" in arms for m in METHODS)]
    verdicts = {(c["better"], c["worse"], c["metric"]): c["verdict"] for c in results.get("claims", [])}
    head, rule = "| method | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)
    out = [headline(results), f"Seeds: {sorted({int(r['seed']) for r in rows})}; values in % (mean ± std).", ""]
    tables = (("macro_f1", "macro-F1, re-fit head"), ("auc_macro_ovr", "macro OvR AUC, re-fit head"),
              ("balanced_accuracy", "balanced accuracy, re-fit head"),
              ("tail3_recall", "recall of the 3 rarest classes, re-fit head"),
              ("own_macro_f1", "macro-F1, each arm's own classifier"))  # fmt: skip
    for metric, label in tables:
        out += [f"**{label}**", "", head, rule]
        out += [f"| {m} | " + " | ".join(_cell(_values(rows, f"{m}-{p}", metric)) for p in profiles) + " |"
                for m in METHODS]  # fmt: skip
        out.append("")
    out += ["**Paired differences on macro-F1** (points, claimed arm − baseline, same seed; verdict)", "", head.replace(
        "method", "pair"), rule]  # fmt: skip
    for ours in CLAIMED:
        for base in REWEIGHTED:
            cells = []
            for p in profiles:
                a, b = f"{ours}-{p}", f"{base}-{p}"
                diffs = list(paired_differences(rows, "macro_f1", a, b).values()) if {a, b} <= arms else []
                cells.append(f"{_cell(diffs, sign='+')} ({verdicts.get((a, b, 'macro_f1'), 'not judged')})")
            out.append(f"| {ours} − {base} | " + " | ".join(cells) + " |")
    out += ["", "**Seconds per arm** (mean; SupCon arms include their shared stage 1)", "", head, rule]
    out += [f"| {m} | " + " | ".join(_cell(_values(rows, f"{m}-{p}", "seconds"), 1.0) for p in profiles) + " |"
            for m in METHODS]  # fmt: skip
    out += ["", *_search_table(lr_search)] if lr_search is not None else []
    return "\n".join(out) + "\n"


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/per_class_recall.png`` (mean test recall per class of the re-fit head, head to tail, per method and
    profile) and ``plots/paired_differences.png`` (per-seed macro-F1 differences claimed arm - re-weighted
    baseline); writes ``summary.md`` (:func:`summary_tables`) beside the report."""
    from contrastkit._io import atomic_write_text
    from contrastkit.reproduce.artifacts import load_artifact_json
    from contrastkit.train.plots import pyplot, save_figure

    atomic_write_text(directory / "summary.md", summary_tables(results, load_artifact_json("lr_search")))
    plt, rows = pyplot(), results["rows"]
    profiles = [p for p in PROFILES if any(r["setting"].get("profile") == p for r in rows)]
    if not profiles:
        return []
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.4 * len(profiles), 3.8), squeeze=False)
    for ax, profile in zip(axes[0], profiles, strict=True):
        for method in METHODS:
            arm = f"{method}-{profile}"
            saved = [load_artifact_json(f"{arm}-seed{r['seed']}") for r in rows if r["arm"] == arm]
            if not saved:
                continue
            counts = saved[0]["class_counts"]
            order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
            mean = [sum(s["per_class_recall"][c] for s in saved) / len(saved) for c in order]
            style = "-" if method in BASELINES else ":" if method == "random_init" else "--"
            width = 2.2 if method in CLAIMED else 1.1
            ax.plot(range(len(order)), mean, style, marker="o", ms=3, label=method, lw=width)
            ax.set_xticks(range(len(order)), [f"{c}\n{counts[c]}" for c in order], fontsize=7)
        ax.set(title=profile, xlabel="class id / training images (head -> tail)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test recall, re-fit head (mean over seeds)")
    axes[0][-1].legend(fontsize=6, loc="lower left")
    paths = [save_figure(fig, directory / "plots" / "per_class_recall.png")]
    present = {r["arm"] for r in rows}
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.4 * len(profiles), 3.4), squeeze=False)
    for ax, profile in zip(axes[0], profiles, strict=True):
        pairs = [(m, b) for m in CLAIMED for b in REWEIGHTED if {f"{m}-{profile}", f"{b}-{profile}"} <= present]
        for x, (ours, base) in enumerate(pairs):
            diffs = [100 * d for d in paired_differences(rows, "macro_f1", f"{ours}-{profile}", f"{base}-{profile}")
                     .values()]  # fmt: skip
            ax.bar(x, sum(diffs) / len(diffs), width=0.6, alpha=0.5, color=f"C{CLAIMED.index(ours)}")
            ax.scatter([x] * len(diffs), diffs, s=10, color="k", zorder=3)
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.axhline(100 * F1_MARGIN, color="0.3", lw=0.8, ls="--")
        ax.set_xticks(range(len(pairs)), [f"{o.removeprefix('supercon_')}\n-{b}" for o, b in pairs], fontsize=6)
        ax.set_title(f"{profile}: macro-F1 (points; dashed: margin)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    paths.append(save_figure(fig, directory / "plots" / "paired_differences.png"))
    return paths


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m contrastkit.reproduce.experiments._supercon_report RESULTS_JSON")
    search = Path(sys.argv[1]).parent / "artifacts" / "lr_search.json"
    record = json.loads(search.read_text()) if search.is_file() else None
    print(summary_tables(json.loads(Path(sys.argv[1]).read_text()), record), end="")
