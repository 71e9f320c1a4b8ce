"""Run reproductions as (experiment, seed) shards side by side within a deadline, then merge and judge them.

The one prepared script for a lent accelerator (and for a many-core machine): every shard is
``contrastkit reproduce NAME --only-seed S --out OUT/NAME/shards/seedS --resume`` in its own process, ``--workers``
at a time, each with ``--threads`` CPU threads. Shards that finish are merged into ``OUT/NAME`` and the claims are
judged over every finished seed (``contrastkit reproduce NAME --merge ... --out OUT/NAME``). At the deadline the
running shards are stopped; their finished rows stay on disk, and running the same command again continues them
(every shard resumes), so a budget that does not fit one device session is spread over several::

    python scripts/device_reproduce.py --experiments directclr supercon dcc --seeds 5 --workers 8 --minutes 9
    python scripts/device_reproduce.py --experiments directclr-toy --seeds 2 --workers 2 --quick   # CPU smoke test

Exit status: 0 when every shard finished and every experiment was judged, 3 when the deadline stopped a shard
(run it again), 1 when a shard failed (its log is ``OUT/NAME/shards/seedS.log``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

EXIT_DEADLINE = 3
CLI = [sys.executable, "-c", "import sys; from contrastkit.cli import main; sys.exit(main())"]


@dataclass
class Shard:
    experiment: str
    seed: int
    out: Path
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None

    def command(self, quick: bool) -> list[str]:
        cli = [*CLI, "reproduce", self.experiment, "--only-seed", str(self.seed)]
        return cli + ["--out", str(self.out), "--resume"] + (["--quick"] if quick else [])


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+", default=["directclr", "supercon", "dcc"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 of every experiment (default 5)")
    parser.add_argument("--workers", type=int, default=8, help="shards run side by side (default 8)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per shard (default: cores / workers)")
    parser.add_argument("--minutes", type=float, default=9.0, help="deadline for the shards (default 9)")
    parser.add_argument("--quick", action="store_true", help="the experiments' smoke-test budget")
    parser.add_argument("--out", type=Path, default=Path("runs/device"), help="output root (default runs/device)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.workers < 1 or args.minutes <= 0 or args.threads < 0:
        parser.error("--seeds and --workers must be >= 1, --minutes > 0 and --threads >= 0")
    return args


def _start(shard: Shard, quick: bool, threads: int) -> None:
    shard.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = (shard.out.parent / f"seed{shard.seed}.log").open("ab")
    shard.process = subprocess.Popen(shard.command(quick), stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()  # the child holds its own handle


def run_shards(shards: list[Shard], workers: int, deadline: float, quick: bool, threads: int) -> bool:
    """Run ``shards`` at most ``workers`` at a time until ``deadline`` (``time.monotonic()``); True when all ended
    on their own (a stopped shard gets ``returncode = None``)."""
    waiting, running = list(shards), []
    while waiting or running:
        while waiting and len(running) < workers and time.monotonic() < deadline:
            shard = waiting.pop(0)
            _start(shard, quick, threads)
            running.append(shard)
        for shard in list(running):
            assert shard.process is not None
            if shard.process.poll() is not None:
                shard.returncode = shard.process.returncode
                running.remove(shard)
        if time.monotonic() >= deadline:
            for shard in running:
                assert shard.process is not None
                shard.process.terminate()  # SIGTERM; the runner has written every finished row already
                try:
                    shard.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    shard.process.kill()
            return not running and not waiting
        time.sleep(0.2)
    return True


def merge_and_judge(experiment: str, shards: list[Shard], out: Path, quick: bool) -> int:
    """Fold every shard of one experiment that has rows into ``out`` (rebuilt from the shards) and judge the claims
    there over the seeds whose shards finished; nothing new is trained. Returns the exit status."""
    sources = [str(s.out) for s in shards if (s.out / "results.json").is_file()]
    complete = [str(s.seed) for s in shards if s.returncode == 0]
    if not sources or not complete:
        print(f"{experiment}: no finished shard yet; run the script again to continue", flush=True)
        return 0
    (out / "results.json").unlink(missing_ok=True)  # the shards hold every row
    shutil.rmtree(out / "artifacts", ignore_errors=True)
    cli = [*CLI, "reproduce", experiment, "--merge", *sources, "--out", str(out), "--only-seed", *complete]
    return subprocess.run(cli + (["--quick"] if quick else []), check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    shards = [Shard(name, seed, args.out / name / "shards" / f"seed{seed}") for seed in range(args.seeds)
              for name in args.experiments]  # fmt: skip
    start = time.monotonic()
    finished = run_shards(shards, args.workers, start + 60.0 * args.minutes, args.quick, threads)
    failed = [s for s in shards if s.returncode not in (0, None)]
    for shard in failed:
        print(f"shard {shard.experiment} seed {shard.seed} failed (exit {shard.returncode}); log: "
              f"{shard.out.parent / f'seed{shard.seed}.log'}", flush=True)  # fmt: skip
    judged = [merge_and_judge(name, [s for s in shards if s.experiment == name], args.out / name, args.quick)
              for name in args.experiments]  # fmt: skip
    print(f"{time.monotonic() - start:.0f} s; {'all shards finished' if finished else 'deadline reached'}", flush=True)
    if failed or any(judged):
        return 1
    return 0 if finished else EXIT_DEADLINE


if __name__ == "__main__":
    sys.exit(main())
