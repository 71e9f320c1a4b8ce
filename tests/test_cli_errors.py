"""Bad input to the CLI: one line on stderr, exit code 2, and nothing that existed is changed."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from contrastkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_test.yaml")
QUICK = ["trainer.max_steps=2", "data.eval_split=null", "monitor.knn_every_epochs=0"]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished tiny run and the user files the cases below point at."""
    root = tmp_path_factory.mktemp("cli_errors")
    assert main(["train", TINY, "--out", str(root / "run"), "--set", *QUICK]) == 0
    (root / "bad.yaml").write_text("data: [unclosed\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    folder = root / "folder" / "cat"
    folder.mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "empty").mkdir()
    np.savez(root / "neg_labels.npz", images=np.zeros((40, 8, 8), np.uint8), labels=-np.ones(40, np.int64))
    np.savez(root / "few.npz", images=np.zeros((10, 8, 8), np.uint8), labels=np.zeros(10, np.int64))
    np.savez(root / "no_images.npz", x=np.zeros((40, 8, 8), np.uint8))
    np.savez(root / "named.npz", images=np.zeros((40, 8, 8), np.uint8), labels=np.arange(40) % 3,
             classes=np.array(["a", "b"]))  # fmt: skip
    header = io.BytesIO()  # the header of a decompression bomb: 10^13 uint8 values declared, none stored
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**7, 10**3, 10**3)}
    )
    with zipfile.ZipFile(root / "bomb.npz", "w") as archive:
        archive.writestr("images.npy", header.getvalue())
        archive.writestr("labels.npy", b"")  # present, never read: the images' header is refused first
    (root / "afile").write_text("a file, not a directory")
    (root / "copy.ckpt").write_bytes((root / "run" / "checkpoints" / "last.ckpt").read_bytes())
    (root / "notarun").mkdir()
    (root / "text.npz").write_text("hello")  # 5 bytes of text: not a zip archive, not pickled data
    flat = root / "flat"  # images without class sub-folders
    flat.mkdir()
    for i in range(10):
        _png(flat / f"{i}.png", 8)
    (root / "sizes" / "cat").mkdir(parents=True)
    _png(root / "sizes" / "cat" / "a.png", 8)
    _png(root / "sizes" / "cat" / "b.png", 9)
    _copy_run(root / "run", root / "blocked").joinpath("evaluation.json").mkdir()  # evaluate's output is in the way
    unlabelled = _copy_run(root / "run", root / "unlabelled_run")  # eval_split set, but no labels to evaluate
    cfg = yaml.safe_load((unlabelled / "config.yaml").read_text())
    cfg["data"].update(
        name="folder", path=str(flat), labelled=False, eval_split="test", eval_fraction=0.5, batch_size=4
    )
    (unlabelled / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _png(path: Path, size: int) -> None:
    from PIL import Image

    Image.fromarray(np.full((size, size), 128, np.uint8)).save(path)


def _copy_run(run: Path, to: Path) -> Path:
    for file in run.rglob("*"):
        if file.is_file():
            (to / file.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
            (to / file.relative_to(run)).write_bytes(file.read_bytes())
    return to


def train(*args: str) -> Callable[[Path], list[str]]:
    return lambda w: ["train", TINY, "--out", str(w / "fresh"), "--set", *QUICK, *args]


CASES: dict[str, Callable[[Path], list[str]]] = {
    "missing config file": lambda w: ["train", str(w / "nope.yaml")],
    "config is not valid YAML": lambda w: ["train", str(w / "bad.yaml")],
    "config top level is not a mapping": lambda w: ["train", str(w / "list.yaml")],
    "unknown key": train("optim.lrr=0.1"),
    "wrong type": train("optim.lr=fast"),
    "value out of range": train("data.batch_size=1"),
    "bad choice": train("trainer.precision=fp8"),
    "bad override syntax": train("optim.lr"),
    "missing dataset": train("data.name=cifar10"),
    "corrupt image in a folder dataset": lambda w: train(
        "data.name=folder", f"data.path={w / 'folder'}", "data.image_size=8", "data.channels=1"
    )(w),
    "empty folder": lambda w: train("data.name=folder", f"data.path={w / 'empty'}")(w),
    "missing npz file": lambda w: train("data.name=npz", f"data.path={w / 'nope.npz'}")(w),
    "npz without the images key": lambda w: train("data.name=npz", f"data.path={w / 'no_images.npz'}")(w),
    "labels out of range": lambda w: train("data.name=npz", f"data.path={w / 'neg_labels.npz'}")(w),
    "npz labels beyond the named classes": lambda w: train("data.name=npz", f"data.path={w / 'named.npz'}")(w),
    "npz header declaring terabytes": lambda w: train("data.name=npz", f"data.path={w / 'bomb.npz'}")(w),
    "batch larger than the dataset": lambda w: train("data.name=npz", f"data.path={w / 'few.npz'}")(w),
    "wrong channel count": train("data.channels=2"),
    "run dir not writable": lambda w: ["train", TINY, "--out", str(w / "afile" / "run"), "--set", *QUICK],
    "run dir already holds a run": lambda w: ["train", TINY, "--out", str(w / "run"), "--set", *QUICK],
    "resume without a checkpoint": lambda w: ["train", TINY, "--out", str(w / "notarun"), "--resume"],
    "resume with another architecture": lambda w: [
        "train",
        TINY,
        "--out",
        str(w / "run"),
        "--resume",
        "--set",
        *QUICK,
        "model.width=0.25",
    ],
    "evaluate a folder that is not a run": lambda w: ["evaluate", str(w / "notarun")],
    "export from a folder that is not a run": lambda w: ["export", str(w / "notarun"), "--out", str(w / "b.pt")],
    "export into a missing directory": lambda w: ["export", str(w / "run"), "--out", str(w / "no" / "dir" / "b.pt")],
    "export over the run's own last.ckpt": lambda w: [
        "export",
        str(w / "run"),
        "--out",
        str(w / "run" / "checkpoints" / "last.ckpt"),
        "--force",
    ],
    "export over a file inside a run directory": lambda w: [
        "export",
        str(w / "run"),
        "--out",
        str(w / "run" / "config.yaml"),
        "--force",
    ],
    "export over a checkpoint outside a run": lambda w: [
        "export",
        str(w / "run"),
        "--out",
        str(w / "copy.ckpt"),
        "--force",
    ],
    "export over an existing file without --force": lambda w: ["export", str(w / "run"), "--out", str(w / "afile")],
    "unknown experiment": lambda w: ["reproduce", "no-such-paper"],
    # the keys of the engine, the data sources, the method registry and model.init_from
    "unknown sampler": train("data.sampler=nope"),
    "no batches to accumulate": train("trainer.accumulate_grad_batches=0"),
    "negative clipping norm": train("trainer.gradient_clip_norm=-1"),
    "empty class counts": train("data.class_counts=[]"),
    "more class counts than classes": train("data.class_counts=[5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]"),
    "a class with fewer images than its count": train("data.class_counts=[5000, 5]"),
    "unknown loss of the supervised method": train("method.name=supervised", "method.loss=nope"),
    "init_from a missing path": train("model.init_from=/nonexistent"),
    "init_from a folder that is not a run": lambda w: train(f"model.init_from={w / 'notarun'}")(w),
    "init_from another architecture": lambda w: train(f"model.init_from={w / 'run'}", "model.width=0.25")(w),
    # issue 18: the keys of the divergence guards, and hints that name the key or flag of the command at hand
    "keep no checkpoints": train("trainer.keep_checkpoints=0"),
    "loss explosion factor not above 1": train("trainer.loss_explosion_factor=0.5"),
    "loss explosion over no steps": train("trainer.loss_explosion_factor=10", "trainer.loss_explosion_steps=0"),
    "npz that is a 5-byte text file": lambda w: train("data.name=npz", f"data.path={w / 'text.npz'}")(w),
    "folder without class sub-folders": lambda w: train("data.name=folder", f"data.path={w / 'flat'}")(w),
    "folder images of different sizes": lambda w: train("data.name=folder", f"data.path={w / 'sizes'}")(w),
    "evaluate a run without a held-out split": lambda w: ["evaluate", str(w / "run")],
    "evaluate a run with a held-out split but no labels": lambda w: ["evaluate", str(w / "unlabelled_run")],
    "evaluate when evaluation.json is a directory": lambda w: ["evaluate", str(w / "blocked")],
}
HINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # case: (what the line must say, what it must not say: a hint that points nowhere in that context)
    "keep no checkpoints": (("trainer.keep_checkpoints",), ()),
    "loss explosion factor not above 1": (("trainer.loss_explosion_factor",), ()),
    "loss explosion over no steps": (("trainer.loss_explosion_steps",), ()),
    "npz that is a 5-byte text file": (("not an .npz archive", "numpy.savez"), ("pickle",)),
    "folder without class sub-folders": (("--set data.labelled=false",), ()),
    "folder images of different sizes": (("--set data.image_size=",), ()),
    "evaluate a run without a held-out split": (("data.eval_split: null",), ("--out",)),
    "evaluate a run with a held-out split but no labels": (("data.labelled",), ("data.eval_split", "--out")),
    "evaluate when evaluation.json is a directory": (("move or remove it",), ("--out",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(
    case: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(work)
    code = main(CASES[case](work))
    err = capsys.readouterr().err.strip()
    assert code == 2, (case, err)
    assert err.startswith("contrastkit: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    must, must_not = HINTS.get(case, ((), ()))
    assert [text for text in must if text not in err] == [], err
    assert [text for text in must_not if text in err] == [], err
    after = snapshot(work)
    assert {k: v for k, v in after.items() if k in before} == before, "an existing file was changed"
    assert not any(k.endswith(".ckpt") for k in set(after) - set(before)), "a checkpoint was written"


def test_corrupt_checkpoint_is_refused_and_kept(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = work / "corrupt_run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_bytes((work / "run" / "config.yaml").read_bytes())
    (run / "checkpoints").mkdir(exist_ok=True)
    good = (work / "run" / "checkpoints" / "last.ckpt").read_bytes()
    (run / "checkpoints" / "last.ckpt").write_bytes(good[: len(good) // 2])
    before = snapshot(run)
    assert main(["train", TINY, "--out", str(run), "--resume", "--set", *QUICK]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert snapshot(run) == before


def test_export_replaces_another_file_only_with_force(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from contrastkit.models import load_backbone

    out = work / "exports" / "backbone.pt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("an old file")
    assert main(["export", str(work / "run"), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "an old file"
    assert main(["export", str(work / "run"), "--out", str(out), "--force"]) == 0
    assert load_backbone(out) is not None


def test_at_least_fifteen_cases() -> None:
    assert len(CASES) + 1 >= 15


def test_non_finite_loss_stops_with_exit_3_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from contrastkit.train.checkpoint import load_training_checkpoint

    run = tmp_path / "diverges"
    code = main(
        [
            "train",
            TINY,
            "--out",
            str(run),
            "--set",
            *QUICK,
            "trainer.max_steps=20",
            "trainer.checkpoint_every_steps=1",
            "optim.name=sgd",
            "optim.lr=1e30",
            "optim.momentum=0.0",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert "became" in err and "last good checkpoint" in err and "\n" not in err
    assert "trainer.gradient_clip_norm=1.0" in err
    assert "trainer.precision=32" not in err, "the run already trains in float32: the hint would point nowhere"
    checkpoint = load_training_checkpoint(run / "checkpoints" / "last.ckpt")
    assert 0 < checkpoint["step"] < 20
    assert all(v.isfinite().all() for v in checkpoint["model_state"].values() if v.is_floating_point())
