"""The learning-rate search of ``contrastkit reproduce supercon``: the same search for every encoder, on data the test
split never sees, run once before the experiment::

    OMP_NUM_THREADS=1 python -m contrastkit.reproduce.experiments._supercon_search --profiles ham exp100

For each profile, on seed 0's training subset: a class-stratified 20 % validation carve
(:func:`contrastkit.evaluate.frozen_head.stratified_holdout`, seed 0); each encoder of
:data:`._supercon_arms.ENCODERS` (SupCon stage 1 and the four end-to-end baselines) is trained through the engine on
the other 80 % at each learning rate ``{0.5, 1, 2} x 0.05`` with the full epoch budget; its score is the validation
macro-F1 of the frozen-head protocol fitted on the 80 % (the baselines: with their own loss; stage 1: the mean over
the four head losses of its arms). The best scale wins (ties: the order 1, 0.5, 2). Each finished candidate is cached
in ``--work`` (a rerun resumes); each finished profile is written into ``--out`` (default the shipped
``reproduce/configs/supercon_lr_search.yaml``, which the arms read), other profiles kept (under a file lock, so two
processes may search different profiles side by side). Cost: 3 x 0.8 of one seed of the profile's encoders plus 24
head fits (measured, one thread: exp10 0.6, exp50 0.46, exp100 0.39, ham 0.76 CPU-h).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import time
from pathlib import Path
from typing import Any

import torch

from contrastkit.reproduce.experiments._supercon_arms import (
    BASE,
    BASE_LR,
    ENCODERS,
    LR_SCALES,
    PROFILES,
    SUPERCON_HEADS,
    encoder_overrides,
    load_lr_search,
    lr_search_path,
)

SEARCH_SEED = 0
PREFERENCE = (1.0, 0.5, 2.0)  # tie order: the base learning rate first


def _best(by_scale: dict[float, dict[str, Any]]) -> float:
    """The scale with the best score; ties go to the earlier scale of :data:`PREFERENCE`."""

    def rank(scale: float) -> tuple[float, int]:
        order = PREFERENCE.index(scale) if scale in PREFERENCE else len(PREFERENCE)
        return float(by_scale[scale]["score"]), -order

    return max(by_scale, key=rank)


def _head_losses(encoder: str) -> tuple[str, ...]:
    return tuple(SUPERCON_HEADS.values()) if encoder == "stage1" else (encoder,)


def score_candidate(encoder: str, profile: str, scale: float, quick: bool = False,
                    extra: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Train ``encoder`` at ``scale x BASE_LR`` on the 80 % part of seed 0's subset; its validation scores."""
    from contrastkit.evaluate import extract_features
    from contrastkit.evaluate.classification import macro_f1
    from contrastkit.evaluate.frozen_head import VAL_FRACTION, frozen_head_protocol, stratified_holdout
    from contrastkit.reproduce.arms import base_config_path
    from contrastkit.train import builders, load_config

    full, quick_part = encoder_overrides(encoder, profile, BASE_LR * scale)
    cfg = load_config(base_config_path(BASE), [*full, f"trainer.seed={SEARCH_SEED}", *(quick_part if quick else []),
                                               *extra])  # fmt: skip
    start = time.perf_counter()
    data = builders.build_data(cfg)
    assert data.train.labels is not None  # data.class_counts needs labels
    fit, val = stratified_holdout(data.train.labels, VAL_FRACTION, seed=SEARCH_SEED)
    fit_set, val_set = data.train.subset(fit), data.train.subset(val)
    engine, module, _ = builders.build_engine(cfg, builders.Data(fit_set, None))
    engine.run()
    backbone = module.method.eval().backbone
    assert isinstance(backbone, torch.nn.Module) and fit_set.labels is not None and val_set.labels is not None
    fit_z, val_z = (extract_features(backbone, d.images, batch_size=1000) for d in (fit_set, val_set))
    k = data.train.num_classes
    scores = {}
    for loss in _head_losses(encoder):
        head = frozen_head_protocol(fit_z, fit_set.labels, loss=loss, num_classes=k, seed=SEARCH_SEED).head
        scores[loss] = macro_f1(val_set.labels, head.logits(val_z).argmax(dim=1), num_classes=k)
    return {"encoder": encoder, "profile": profile, "scale": scale, "lr": BASE_LR * scale, "val_macro_f1": scores,
            "score": sum(scores.values()) / len(scores), "fit_images": len(fit_set), "val_images": len(val_set),
            "seconds": time.perf_counter() - start}  # fmt: skip


def search_profile(profile: str, work: Path, quick: bool = False, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every candidate of ``profile`` (cached as JSON in ``work``) and the chosen scale per encoder."""
    work.mkdir(parents=True, exist_ok=True)
    candidates: dict[str, dict[float, dict[str, Any]]] = {}
    for encoder in ENCODERS:
        for scale in LR_SCALES:
            cache = work / f"{profile}-{encoder}-x{scale:g}{'-quick' if quick else ''}.json"
            if cache.is_file():
                result = json.loads(cache.read_text())
            else:
                result = score_candidate(encoder, profile, scale, quick, extra)
                cache.write_text(json.dumps(result, indent=1) + "\n")
            candidates.setdefault(encoder, {})[scale] = result
    chosen = {encoder: _best(by_scale) for encoder, by_scale in candidates.items()}
    first = next(iter(next(iter(candidates.values())).values()))
    return {
        "seed": SEARCH_SEED, "quick": quick, "base_lr": BASE_LR, "scales": list(LR_SCALES),
        "fit_images": first["fit_images"], "val_images": first["val_images"],
        "scores": {e: {f"{s:g}": round(c[s]["score"], 6) for s in LR_SCALES} for e, c in candidates.items()},
        "chosen": chosen, "seconds": round(sum(r["seconds"] for c in candidates.values() for r in c.values()), 1),
    }  # fmt: skip


def write_record(path: Path, profile: str, record: dict[str, Any], lock: Path | None = None) -> None:
    """Add (or replace) ``profile``'s record in the YAML file ``path``, keeping the other profiles, while holding the
    file lock ``lock`` (default ``path`` + ``.lock``)."""
    import yaml

    from contrastkit._io import atomic_write_text

    with open(lock or path.with_name(path.name + ".lock"), "w") as held:  # two searches may share one record
        fcntl.flock(held, fcntl.LOCK_EX)
        records = load_lr_search(path)
        records[profile] = record
        head = "# Written by python -m contrastkit.reproduce.experiments._supercon_search; do not edit by hand.\n"
        atomic_write_text(path, head + yaml.safe_dump(records, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--work", default="runs/supercon_lr_search", help="folder of the per-candidate cache")
    parser.add_argument("--out", default=None, help="the YAML record (default: the shipped one the arms read)")
    parser.add_argument("--quick", action="store_true", help="smoke test; needs --out (never the shipped record)")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick needs --out: a smoke test never replaces the shipped search record")
    out = Path(args.out) if args.out else lr_search_path()
    for profile in args.profiles:
        record = search_profile(profile, Path(args.work), args.quick)
        write_record(out, profile, record, lock=Path(args.work) / "record.lock")
        print(f"{profile}: chosen lr scales {record['chosen']} ({record['seconds']:.0f} s); written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
