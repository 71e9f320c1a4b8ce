"""The CLI on a folder of PNGs: train SimCLR with a held-out folder or a held-out fraction and ``evaluate`` on it,
train on unlabelled images, and a step limit with a time budget (whichever comes first)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contrastkit.cli import main

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (`pip install pillow`)")

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_test.yaml")
FAST = ["data.batch_size=16", "trainer.max_steps=2"]  # 48 training images: 3 steps per epoch


def write_pngs(folder: Path, count: int, brightness: int, seed: int) -> None:
    """``count`` 8x8 grey PNGs of noise around ``brightness`` (two classes differ in brightness)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        values = np.clip(rng.normal(brightness, 30, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(values, mode="L").save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/{dark,light}`` (24 each), ``test/{dark,light}`` (6 each) and ``loose/`` (40, no classes)."""
    root = tmp_path_factory.mktemp("own_pngs")
    for split, count, seed in (("train", 24, 0), ("test", 6, 1)):
        write_pngs(root / split / "dark", count, 60, seed)
        write_pngs(root / split / "light", count, 190, seed + 10)
    write_pngs(root / "loose", 40, 120, 2)
    return root


def train(out: Path, *overrides: str) -> int:
    return main(["train", TINY, "--out", str(out), "--set", "data.name=folder", *FAST, *overrides])


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("contrastkit: error: ") and "\n" not in err, err
    return err


def test_train_with_a_held_out_folder_then_evaluate_on_it(pngs: Path, tmp_path: Path) -> None:
    run = tmp_path / "held_out_folder"
    assert train(run, f"data.path={pngs / 'train'}", f"data.eval_path={pngs / 'test'}") == 0
    assert 0 <= results(run)["metrics"]["knn_top1"] <= 1  # the monitor ran on the held-out folder
    assert main(["evaluate", str(run), "--protocol", "knn"]) == 0
    text = (run / "evaluation.json").read_text()  # the protocol texts name the bank and the queries
    assert "the 48 images of the train split" in text and "the 12 images of the test split" in text, text


def test_train_with_a_held_out_fraction_then_evaluate_on_it(pngs: Path, tmp_path: Path) -> None:
    run = tmp_path / "held_out_fraction"
    split = ["data.eval_fraction=0.25", "data.split_seed=3", "data.eval_split=val"]
    assert train(run, f"data.path={pngs / 'train'}", *split) == 0
    assert main(["evaluate", str(run), "--protocol", "knn"]) == 0
    text = (run / "evaluation.json").read_text()
    # 12 of the 48 images are held out and no longer trained on; evaluate carves the same split again
    assert "the 36 images of the train split" in text and "the 12 images of the val split" in text, text


def test_train_unlabelled_then_evaluate_says_it_needs_labels(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "unlabelled"
    assert train(run, f"data.path={pngs / 'loose'}", "data.labelled=false", "data.eval_fraction=0.2") == 0
    summary = results(run)
    assert summary["steps"] == 2 and "effective_rank" in summary["metrics"] and "knn_top1" not in summary["metrics"]
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    assert "--protocol all needs class labels, but the run's data is unlabelled" in one_line_error(capsys)


def test_an_eval_split_without_held_out_data_is_a_one_line_error(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(tmp_path / "refused", f"data.path={pngs / 'train'}", "data.eval_split=test") == 2
    err = one_line_error(capsys)
    assert "data.eval_split='test' needs held-out folder data: set data.eval_path=FOLDER or data.eval_fraction" in err
    assert not (tmp_path / "refused" / "checkpoints").exists()


def test_a_step_limit_and_a_time_budget_stop_at_whichever_comes_first(
    pngs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = [f"data.path={pngs / 'train'}", "data.eval_split=null", "monitor.knn_every_epochs=0"]
    steps_first = tmp_path / "steps_first"
    assert train(steps_first, *quiet, "trainer.time_budget_minutes=10") == 0
    assert results(steps_first)["steps"] == 2  # 10 minutes would allow far more
    budget_first = tmp_path / "budget_first"
    assert train(budget_first, *quiet, "trainer.max_steps=100000", "trainer.time_budget_minutes=0.0005") == 0
    summary = results(budget_first)  # a 0.03 s budget: the first steps exceed it, long before 100000 steps
    assert 1 <= summary["steps"] < 100 and summary["train_seconds"] < 5
    # a run without a held-out split: evaluate names the config key that is null, not a key to add
    capsys.readouterr()
    assert main(["evaluate", str(steps_first)]) == 2
    assert "config.yaml has data.eval_split: null, so the run has no held-out split" in one_line_error(capsys)
