"""2 processes train MoCo v2 and HCSC exactly as 1 process does: keys gathered into one queue, shuffle-BN groups
split over the processes, selection masks drawn for the global batch, rank 0's prototypes broadcast."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_runs import FAST, TINY, cli, final_state, max_diff

# query encoder: batch norm over the global batch; key encoder: shuffle-BN in 2 groups (one per process)
COMMON = ["trainer.max_steps=3", "model.norm=batch", "model.sync_batchnorm=true", "method.queue_size=64",
          "method.bn_splits=2", "method.momentum=0.9", *FAST]  # fmt: skip
METHODS = {
    "moco": ["method.name=moco"],
    "hcsc": ["method.name=hcsc", "method.warmup_epochs=0", "method.num_clusters=[12,6,3]", "method.kmeans_nredo=1"],
}


def two_runs(tmp_path: Path, settings: list[str]) -> tuple[Path, Path]:
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = cli("train", TINY, "--out", str(one), "--set", *settings)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = cli("train", TINY, "--out", str(two), "--set", *settings, "trainer.devices=2", "trainer.strategy=ddp")
    assert r2.returncode == 0, r2.stderr[-2000:]
    return one, two


@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_processes_train_like_one(tmp_path: Path, method: str) -> None:
    one, two = two_runs(tmp_path, METHODS[method] + COMMON)
    a, b = final_state(one), final_state(two)
    assert max_diff(a, b) <= 1e-5, max_diff(a, b)
    queue = next(k for k in a if k.endswith("queue_indices"))
    # 3 global batches of 32 through 64 slots: both ranks' keys were enqueued (and the queue wrapped), same order
    assert int(a["method.queue_pointer"]) == 3 * 32 % 64 and bool((a[queue] >= 0).all())
    assert bool((a[queue] == b[queue]).all())


def test_plain_key_batch_norm_breaks_the_equivalence(tmp_path: Path) -> None:
    """Negative control: per-process key statistics (no shuffle groups shared with one process) differ."""
    one, two = two_runs(tmp_path, [*METHODS["moco"], *COMMON, "method.key_batch_norm=plain"])
    assert max_diff(final_state(one), final_state(two)) > 1e-4
