"""Presentation of ``contrastkit reproduce dcc`` results: the image grids of the learned sets and the summary table
for docs/results.md (``python -m contrastkit.reproduce.experiments._dcc_report RESULTS_JSON``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contrastkit.reproduce.artifacts import load_artifact_json
from contrastkit.reproduce.experiments._dcc_setup import DATASETS, IPCS, METHODS


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """``plots/synthetic_<dataset>-ipc<K>.png``: seed-0 sets of every method (rows) for each class (columns)."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    paths = []
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


def summary_table(results: Mapping[str, Any]) -> str:
    """Markdown: one row per dataset and ipc, one column per method, test accuracy % mean ± std over seeds (n)."""
    from contrastkit.reproduce.stats import mean_std

    rows = results["rows"]
    lines = ["| test accuracy %, mean ± std over seeds (n) | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]  # fmt: skip
    for dataset in DATASETS:
        for ipc in IPCS:
            cells = []
            for method in METHODS:
                values = [r["metrics"]["test_acc"] for r in rows if r["arm"] == f"{method}-{dataset}-ipc{ipc}"]
                if not values:
                    cells.append("-")
                    continue
                ms = mean_std([100 * v for v in values])
                cells.append(f"{ms.mean:.1f} ± {ms.std:.1f} ({ms.n})" if ms.n > 1 else f"{ms.mean:.1f} (1)")
            if any(c != "-" for c in cells):
                lines.append(f"| {dataset}, ipc {ipc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m contrastkit.reproduce.experiments._dcc_report RESULTS_JSON")
    print(summary_table(json.loads(Path(sys.argv[1]).read_text())))
