"""Presentation of ``contrastkit reproduce dcc`` results: the image grids of the learned sets, the image change per
outer iteration, and the summary tables for docs/results.md (test accuracy and image change per dataset, ipc and
method: ``python -m contrastkit.reproduce.experiments._dcc_report RESULTS_JSON``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contrastkit.reproduce.artifacts import load_artifact_json
from contrastkit.reproduce.experiments._dcc_setup import DATASETS, IPCS, METHODS


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/synthetic_<dataset>-ipc<K>.png``: seed-0 sets of every method (rows) for each class (columns);
    ``plots/image_change.png``: the image change after each outer iteration of every condensation arm (first seed)."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    paths = [_change_plot(rows, directory)] if any(r["metrics"].get("condense_seconds", 0) > 0 for r in rows) else []
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


def _change_plot(rows: list[dict[str, Any]], directory: Path) -> Path:
    """One panel per dataset and ipc: ``image_change`` after each outer iteration, one line per method."""
    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    tags = [f"{d}-ipc{i}" for d in DATASETS for i in IPCS if any(r["arm"].endswith(f"-{d}-ipc{i}") for r in rows)]
    fig, axes = plt.subplots(1, len(tags), figsize=(3.2 * len(tags), 2.6), squeeze=False)
    for ax, tag in zip(axes[0], tags, strict=True):
        for method in METHODS[1:]:
            seeds = [r["seed"] for r in rows if r["arm"] == f"{method}-{tag}"]
            if seeds:
                trace = load_artifact_json(f"{method}-{tag}-seed{min(seeds)}").get("image_change_per_outer", [])
                ax.plot(range(1, len(trace) + 1), trace, label=method)
        ax.set_title(tag, fontsize=8)
        ax.set_xlabel("outer iteration", fontsize=7)
        ax.set_ylabel("||S - S0|| / ||S0||", fontsize=7)
        ax.legend(fontsize=6)
    return save_figure(fig, directory / "plots" / "image_change.png")


def summary_table(results: Mapping[str, Any], metric: str = "test_acc") -> str:
    """Markdown: one row per dataset and ipc, one column per method, ``metric`` mean ± std over seeds (n);
    ``test_acc`` in %, other metrics as they are."""
    from contrastkit.reproduce.stats import mean_std

    rows = results["rows"]
    scale, title = (100.0, "test accuracy %") if metric == "test_acc" else (1.0, metric)
    digits = 1 if metric == "test_acc" else 3
    lines = [f"| {title}, mean ± std over seeds (n) | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]  # fmt: skip
    for dataset in DATASETS:
        for ipc in IPCS:
            cells = []
            for method in METHODS:
                arm = f"{method}-{dataset}-ipc{ipc}"
                values = [r["metrics"][metric] for r in rows if r["arm"] == arm and metric in r["metrics"]]
                if not values:
                    cells.append("-")
                    continue
                ms = mean_std([scale * v for v in values])
                cells.append(f"{ms.mean:.{digits}f} ± {ms.std:.{digits}f} ({ms.n})" if ms.n > 1
                             else f"{ms.mean:.{digits}f} (1)")  # fmt: skip
            if any(c != "-" for c in cells):
                lines.append(f"| {dataset}, ipc {ipc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m contrastkit.reproduce.experiments._dcc_report RESULTS_JSON")
    loaded = json.loads(Path(sys.argv[1]).read_text())
    print(summary_table(loaded) + "\n\n" + summary_table(loaded, "image_change"))
