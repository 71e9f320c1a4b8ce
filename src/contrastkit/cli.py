"""``contrastkit``: train, evaluate, export, list datasets, reproduce papers.

Every error caused by the input (config, data, checkpoint, paths, a locked run directory, a full disk) prints one
line ``contrastkit: error: ...`` and exits with code 2; a run whose loss diverges exits with code 3 and keeps its
last good checkpoint; a DDP process that stops answering ends the run with code 4 (``trainer.collective_timeout``);
SIGINT / SIGTERM save the step, write the report and exit with 130 / 143 (:mod:`contrastkit.errors`).
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143 (contrastkit.errors.TrainingInterrupted)


_DESCRIPTION = "contrastkit: train, evaluate, export, list datasets, reproduce papers."
_TRAIN_EPILOG = """\
stop criteria: trainer.max_epochs, trainer.max_steps and trainer.time_budget_minutes; a run stops at whichever
comes first of those set (e.g. --set trainer.max_steps=500).
devices: trainer.accelerator auto|cpu|cuda (auto takes a GPU when torch sees one); several processes with
--set trainer.devices=2 trainer.strategy=ddp (docs/distributed.md).
examples:
  contrastkit train configs/simclr_fashion_mnist.yaml --out runs/fm --set trainer.max_steps=500
  contrastkit train configs/simclr_fashion_mnist.yaml --out runs/fm --resume"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("contrastkit")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    epilog = "Errors caused by the input print one line and exit 2; a diverged run exits 3 and keeps its last good "
    p = argparse.ArgumentParser(prog="contrastkit", description=_DESCRIPTION, epilog=epilog + "checkpoint.")
    p.add_argument("--version", action="version", version=f"contrastkit {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train a method from a YAML config", epilog=_TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    t.add_argument("config", help="YAML config, e.g. configs/simclr_fashion_mnist.yaml")
    t.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys, e.g. --set optim.lr=1e-3 trainer.max_epochs=5")  # fmt: skip
    t.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.ckpt")
    e = sub.add_parser("evaluate", help="evaluate a run's backbone with frozen-feature protocols",
                       formatter_class=formatter)  # fmt: skip
    e.add_argument("run_dir", help="a run directory written by contrastkit train")
    e.add_argument("--protocol", default="all", choices=["knn", "linear", "nmi", "node", "all"],
                   help="weighted kNN, linear probe (L-BFGS), k-means NMI/ARI, or all three; graph runs: node "
                   "classification (node; all = node)")  # fmt: skip
    e.add_argument("--checkpoint", default="last", choices=["last", "best"],
                   help="which checkpoint of the run: the last one or the best by the monitored metric")  # fmt: skip
    e.add_argument("--no-baselines", action="store_true", help="skip the same protocols on the untrained network "
                   "and on raw pixels (by default they are printed beside the trained numbers)")  # fmt: skip
    x = sub.add_parser("export", help="write a run's backbone as a standalone file for load_backbone",
                       formatter_class=formatter)  # fmt: skip
    x.add_argument("run_dir", help="a run directory written by contrastkit train")
    x.add_argument("--out", required=True, help="output file, e.g. backbone.pt")
    x.add_argument("--checkpoint", default="last", choices=["last", "best"],
                   help="which checkpoint of the run: the last one or the best by the monitored metric")  # fmt: skip
    x.add_argument("--force", action="store_true", help="replace an existing --out file (never a checkpoint or "
                   "a file inside a run directory)")  # fmt: skip
    sub.add_parser("datasets", help="list the datasets, whether they are installed and how to install them",
                   description="List the offline datasets, whether each is installed, its splits, and the command "
                   "that installs it (nothing downloads at run time).")  # fmt: skip
    r = sub.add_parser("reproduce", help="run a paper's reproduction: arms x seeds -> results.json, report.md",
                       formatter_class=formatter, description="Run a registered experiment (omit NAME to list "
                       "them with their cost). Verdicts follow contrastkit/reproduce/claims.py.")  # fmt: skip
    r.add_argument("name", nargs="?", help="experiment name (omit to list them)")
    r.add_argument("--quick", action="store_true", help="a smoke-test budget (seconds to minutes), not evidence")
    r.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per arm (at least 3 for a verdict)")
    r.add_argument("--out", default=None, help="output folder (default: runs/reproduce/<name>; the committed "
                   "results in docs/results/ are written only with an explicit --out)")  # fmt: skip
    r.add_argument("--resume", action="store_true", help="keep the finished rows in --out and run only the rest")
    r.add_argument("--arms", nargs="+", metavar="PATTERN", help="run only these arms (shell-style patterns); "
                   "finished rows of the other arms in --out are kept")  # fmt: skip
    r.add_argument("--only-seed", type=int, nargs="+", metavar="SEED", help="run only these seeds (rows of other "
                   "seeds in --out are kept)")  # fmt: skip
    r.add_argument("--set", dest="settings", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="add to every arm's setting (value parsed as YAML), e.g. --set outer=100")  # fmt: skip
    r.add_argument("--merge", nargs="+", default=[], metavar="DIR", help="first fold the rows of these runs (shards "
                   "of the arms run side by side) into --out; implies --resume")  # fmt: skip
    v = sub.add_parser("validate", help="check a reproduction's results.json against the contract",
                       formatter_class=formatter)  # fmt: skip
    v.add_argument("results", help="e.g. docs/results/directclr/results.json")
    v.add_argument("--min-seeds", type=int, default=3, help="seeds every arm needs")
    return p


def _train(args: argparse.Namespace) -> int:
    from contrastkit.train.config import load_config
    from contrastkit.train.loop import fit

    if not Path(args.config).is_file():
        raise ValueError(f"config file not found: {args.config}")
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    fit(cfg, out, resume=args.resume, command="contrastkit " + shlex.join(sys.argv[1:]))
    return 0


def _check_evaluation_writable(run_dir: Path) -> None:
    """``evaluate`` writes into the run directory (it has no ``--out``): refuse at once, before the evaluation, when
    it cannot, and name the fix."""
    from contrastkit.train.report import EVALUATION_FILE
    from contrastkit.train.run_dir import is_run_directory

    target = run_dir / EVALUATION_FILE
    if not is_run_directory(run_dir):
        return
    if target.is_dir():
        raise ValueError(f"evaluate writes {target}, but a directory of that name is in the way: move or remove it")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ValueError(
            f"evaluate writes {EVALUATION_FILE} and report.md into the run directory {run_dir}, which is not "
            f"writable: make it writable (chmod u+w {run_dir}), or copy the run directory and evaluate the copy"
        )


def _evaluate(args: argparse.Namespace) -> int:
    from contrastkit.train.run_dir import evaluate_run

    _check_evaluation_writable(Path(args.run_dir))
    result = evaluate_run(args.run_dir, args.protocol, args.checkpoint, baselines=not args.no_baselines)
    width = max([len("metric"), *map(len, result["metrics"])])
    print(f"{'metric':{width}s} {'value':>8s}  protocol")
    for name, value in result["metrics"].items():
        print(f"{name:{width}s} {value:8.4f}  {result['protocols'][name]}")
    print(f"written to {Path(args.run_dir) / 'evaluation.json'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from contrastkit.train.run_dir import export_run

    path = export_run(args.run_dir, args.out, args.checkpoint, force=args.force)
    print(f"backbone written to {path}; load it with contrastkit.models.load_backbone({str(path)!r})")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from contrastkit.data import available

    print(f"{'dataset':14s} {'installed':9s} {'splits':36s} install")
    for info in available():
        splits = ", ".join(f"{k} {v}" for k, v in info.splits.items())
        print(
            f"{info.name:14s} {'yes' if info.installed else 'no':9s} {splits:36s} "
            f"{'' if info.installed else info.install_hint}"
        )
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from contrastkit.reproduce import list_experiments, merge_runs, rerun_command, run_experiment
    from contrastkit.train.config import parse_override

    if args.name is None:
        from contrastkit.reproduce import get_experiment

        names = list_experiments()
        print("experiments (full budget on 2 CPU cores; --quick is a smoke test):" if names else "none registered yet")
        for name in names:
            print(f"  {name:16s} {get_experiment(name).duration or 'duration not stated'}")
        return 0
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / args.name
    if args.merge:
        merge_runs(out, args.merge)
    subset = args.arms is not None or args.only_seed is not None
    settings = {}
    for text in args.settings:
        parts, value = parse_override(text)
        if len(parts) != 1:
            raise ValueError(f"--set takes a top-level setting key of the arms (e.g. outer=100), got {text!r}")
        settings[parts[0]] = value
    results = run_experiment(
        args.name,
        seeds=args.only_seed if args.only_seed is not None else args.seeds,
        quick=args.quick,
        out=out,
        command=rerun_command("contrastkit", sys.argv[1:]),
        progress=print,
        resume=args.resume or bool(args.merge) or subset,
        arms=args.arms,
        settings=settings or None,
    )
    for primary, family in ((True, "primary"), (False, "exploratory")):
        verdicts = [c["verdict"] for c in results["claims"] if c["primary"] is primary]
        if verdicts:
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
            print(f"{family} claims: {counts}")
    print(f"results: {out / 'results.json'}, report: {out / 'report.md'}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from contrastkit.reproduce.validate import results_problems

    if not Path(args.results).is_file():
        raise ValueError(f"results file not found: {args.results}")
    found = results_problems(args.results, args.min_seeds)
    for problem in found:
        print(problem)
    print(f"{args.results}: " + (f"{len(found)} problems" if found else "holds"))
    return 1 if found else 0


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
    "datasets": _datasets,
    "reproduce": _reproduce,
    "validate": _validate,
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _disk_full(err: BaseException) -> OSError | None:
    """The ``ENOSPC`` error anywhere in ``err``'s chain of causes (a full disk), else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return current
        current = current.__cause__ or current.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("contrastkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # one line for the user; the exit code tells what kind of failure it was
        from contrastkit.errors import ContrastkitError, TrainingInterrupted
        from contrastkit.train.loop import NonFiniteLossError

        if isinstance(err, NonFiniteLossError):
            print(f"contrastkit: error: {err}", file=sys.stderr)
            return EXIT_DIVERGED
        if isinstance(err, TrainingInterrupted):
            from contrastkit.train.run_lock import is_launching_process

            if is_launching_process():  # the DDP processes it started stop with it, silently
                print(f"contrastkit: {_one_line(err)}", file=sys.stderr)
            return err.exit_code
        full = _disk_full(err)
        if full is not None:
            where = f" writing {full.filename}" if full.filename else ""
            print(
                f"contrastkit: error: no space left on the device{where}; the files written before are intact: "
                "free some space (or choose another --out) and run again (with --resume for a training run)",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if isinstance(err, ContrastkitError):
            print(f"contrastkit: error: {_one_line(err)}", file=sys.stderr)
            return err.exit_code
        if isinstance(err, (ValueError, FileNotFoundError, PermissionError, ImportError)):
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            print(f"contrastkit: error: {message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
