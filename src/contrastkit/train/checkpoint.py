"""Training checkpoints for exact resume: model, optimiser, scheduler, RNG states and the position in the data.

File layout (one ``torch.save`` dict, written atomically by ``contrastkit._io``; read with ``weights_only=True``)::

    {"format": "contrastkit-train", "version": 1,
     "step": int, "epoch": int, "batch_in_epoch": int,    # optimiser steps done; epoch; batches done in it
     "model_state": {...}, "optimizer_state": {...}, "scheduler_state": {...} | None,
     "rng_state": capture_rng_state(), "config": {...}, "backbone_config": {...} | None,
     "metrics": {...}, "extra": {...}}

Exact resume on CPU needs every source of randomness back where it was: Python's ``random`` (Mersenne Twister,
625 words), NumPy's global ``RandomState`` (MT19937, 624 words + position + cached Gaussian), torch's CPU generator
and each CUDA device's generator. ``capture_rng_state`` stores them as tensors / ints / lists, which
``torch.load(weights_only=True)`` accepts. Under DDP each rank has its own streams; a harness that needs them all
stores one ``capture_rng_state()`` per rank (e.g. a list in ``rng_state``) and restores its own.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from contrastkit._io import (
    BACKBONE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    PathLike,
    atomic_link,
    atomic_torch_save,
    check_weights_only_safe,
    load_torch_file,
    remove_files,
)
from contrastkit.errors import ResumeMismatchError
from contrastkit.models import backbone_from_config, load_backbone
from contrastkit.models.backbone import jsonable
from contrastkit.models.export import strip_wrapper_prefixes

TRAIN_FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
MODEL_KEYS_NOT_IN_WEIGHTS = frozenset({"sync_batchnorm", "init_from"})
"""``model`` config keys that do not change the saved architecture (BatchNorm and SyncBatchNorm share a state
dict; ``init_from`` only sets the starting weights)."""
BACKBONE_PREFIX = "method.backbone."
"""Where the backbone's weights sit in a training checkpoint's ``model_state``."""
_REQUIRED_KEYS = ("step", "epoch", "batch_in_epoch", "model_state", "optimizer_state", "rng_state", "config")


# --------------------------------------------------------------------------------------------- RNG states


def capture_rng_state() -> dict[str, Any]:
    """The states of Python ``random``, NumPy's global RNG, torch's CPU RNG and every CUDA RNG (if available).

    Returns ``{"python": {"version", "state": list[int] (625), "gauss_next"}, "numpy": {"bit_generator",
    "keys": int64 tensor [624], "pos", "has_gauss", "cached_gaussian"}, "torch": uint8 tensor,
    "cuda": list of uint8 tensors or None}``; ``torch.load(weights_only=True)`` reads it back.
    """
    version, words, gauss_next = random.getstate()
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": {"version": int(version), "state": [int(w) for w in words], "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _rng_part(state: Mapping[str, Any], key: str) -> Any:
    if key not in state:
        raise ValueError(f"rng_state has no {key!r} entry: pass the dict returned by capture_rng_state()")
    return state[key]


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back the states captured by :func:`capture_rng_state`, so the next draws of ``random``, ``numpy``,
    ``torch`` (and CUDA) repeat those that followed the capture. CUDA states are restored for the devices present
    in both the checkpoint and this machine (a warning says when the counts differ)."""
    if not isinstance(state, Mapping):
        raise ValueError(f"rng_state must be the dict from capture_rng_state(), got {type(state).__name__}")
    py, npy, cpu = (_rng_part(state, k) for k in ("python", "numpy", "torch"))
    try:
        random.setstate((int(py["version"]), tuple(int(w) for w in py["state"]), py["gauss_next"]))
        keys = np.asarray(torch.as_tensor(npy["keys"]).cpu().numpy(), dtype=np.uint32)
        np.random.set_state(
            (str(npy["bit_generator"]), keys, int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"]))
        )
        torch.set_rng_state(torch.as_tensor(cpu).to(device="cpu", dtype=torch.uint8))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"rng_state is damaged ({type(err).__name__}: {err}): pass capture_rng_state()'s dict"
        ) from err
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if len(cuda_states) != count:
            warnings.warn(
                f"checkpoint has RNG states for {len(cuda_states)} CUDA devices, this machine has {count}: "
                "restoring the first ones; a resumed run may draw different random numbers",
                stacklevel=2,
            )
        for index, cuda_state in enumerate(list(cuda_states)[:count]):
            torch.cuda.set_rng_state(torch.as_tensor(cuda_state).to(device="cpu", dtype=torch.uint8), index)


# --------------------------------------------------------------------------------------------- save / load


def _as_dict(config: Any, name: str) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise ValueError(f"{name} must be a dict (or a config dataclass), got {type(config).__name__}")
    try:
        return jsonable(dict(config))
    except ValueError as err:
        raise ValueError(f"{name} must hold only JSON-able values: {err}") from err


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _plain_number(value: Any) -> Any:
    """0-d tensors and numpy scalars in metrics become Python numbers (weights_only-safe, JSON-able)."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_training_checkpoint(
    path: PathLike,
    *,
    model_state: Mapping[str, Any],
    optimizer_state: Mapping[str, Any],
    scheduler_state: Mapping[str, Any] | None,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    rng_state: Any,
    config: Any,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    backbone_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a training checkpoint atomically (see the module docstring) and return its path.

    ``model_state`` keys lose their wrapper prefixes (``module.``, ``_orig_mod.``), so the state loads into the
    unwrapped model; ``config`` is the resolved run config (dict or dataclass, JSON-able); ``backbone_config`` the
    ``Backbone.config`` of the trained backbone (lets ``contrastkit export`` rebuild it without the method code).
    Raises a one-line ValueError for negative counters, non-JSON-able config/metrics, or any entry that
    ``torch.load(weights_only=True)`` could not read back (caught here, not at resume time).
    """
    if not isinstance(model_state, Mapping) or not isinstance(optimizer_state, Mapping):
        raise ValueError("model_state and optimizer_state must be state dicts (module/optimizer .state_dict())")
    if scheduler_state is not None and not isinstance(scheduler_state, Mapping):
        raise ValueError(f"scheduler_state must be a dict or None, got {type(scheduler_state).__name__}")
    payload: dict[str, Any] = {
        "format": TRAIN_FORMAT,
        "version": TRAIN_FORMAT_VERSION,
        "step": _check_count("step", step),
        "epoch": _check_count("epoch", epoch),
        "batch_in_epoch": _check_count("batch_in_epoch", batch_in_epoch),
        "model_state": strip_wrapper_prefixes(model_state),
        "optimizer_state": dict(optimizer_state),
        "scheduler_state": None if scheduler_state is None else dict(scheduler_state),
        "rng_state": rng_state,
        "config": _as_dict(config, "config"),
        "backbone_config": None if backbone_config is None else _as_dict(backbone_config, "backbone_config"),
        "metrics": _as_dict({k: _plain_number(v) for k, v in (metrics or {}).items()}, "metrics"),
        "extra": dict(extra or {}),
    }
    for key in ("model_state", "optimizer_state", "scheduler_state", "rng_state", "extra"):
        check_weights_only_safe(payload[key], key)
    return atomic_torch_save(payload, path)


def _flatten(section: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show_section(flat: Mapping[str, Any], keys: list[str]) -> str:
    return "{" + ", ".join(f"{k}: {'<absent>' if k not in flat else flat[k]}" for k in keys) + "}"


def _section(config: Any, name: str) -> Mapping[str, Any]:
    section = config.get(name) if isinstance(config, Mapping) else None
    return section if isinstance(section, Mapping) else {}


def check_same_model(saved_config: Mapping[str, Any], expected_config: Any, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless the ``model`` section (ignoring ``MODEL_KEYS_NOT_IN_WEIGHTS``) and
    ``method.name`` of two run configs agree; the message shows the differing keys (and the backbone)."""
    expected = _as_dict(expected_config, "expected_config")
    saved_method, asked_method = (_section(c, "method").get("name") for c in (saved_config, expected))
    if saved_method != asked_method:
        raise CheckpointError(
            f"{where} was trained with method {saved_method}; the config asks for {asked_method}: "
            "use the same method or start a new run"
        )
    saved, asked = (
        {k: v for k, v in _flatten(_section(c, "model")).items() if k not in MODEL_KEYS_NOT_IN_WEIGHTS}
        for c in (saved_config, expected)
    )
    differing = sorted(k for k in saved.keys() | asked.keys() if saved.get(k, object()) != asked.get(k, object()))
    if differing:
        shown = (["backbone"] if "backbone" in saved and "backbone" not in differing else []) + differing
        raise CheckpointError(
            f"{where} was trained with model {_show_section(saved, shown)}; the config asks for "
            f"{_show_section(asked, shown)}: use the same model section or start a new run"
        )


RESUME_MAY_DIFFER = frozenset(
    {
        "trainer.max_epochs",
        "trainer.max_steps",
        "trainer.time_budget_minutes",
        "trainer.checkpoint_every_steps",
        "trainer.log_every_steps",
        "trainer.progress_bar",
        "trainer.collective_timeout",
        "trainer.keep_checkpoints",
        "trainer.loss_explosion_factor",
        "trainer.loss_explosion_steps",
        "monitor.knn_every_epochs",
        "model.init_from",
    }
)
"""Config keys that ``--resume`` lets differ from the checkpoint's: the budget (a longer one continues the run;
the learning-rate schedule then follows the new limit), logging / progress / checkpoint / monitor intervals, the
DDP timeout, how many checkpoints are kept, the loss-explosion guard (it never changes a step it lets pass), and
``model.init_from`` (the checkpoint's weights replace the initial ones). Every other key changes the run and must
match."""


def check_resume_config(saved_config: Mapping[str, Any], expected_config: Any, where: str = "checkpoint") -> None:
    """Raise :class:`ResumeMismatchError` (one line) unless the two run configs agree on every key outside
    :data:`RESUME_MAY_DIFFER`. The saved config is read through the schema first, so a key added to the schema
    since the checkpoint was written compares at its default."""
    from contrastkit.train.config import config_from_dict, config_to_dict

    try:
        saved = _flatten(config_to_dict(config_from_dict(saved_config)))
    except ValueError as err:
        raise ResumeMismatchError(
            f"{where} holds a config this contrastkit cannot read ({' '.join(str(err).split())}): "
            "start a new run with another --out"
        ) from None
    asked = _flatten(_as_dict(expected_config, "expected_config"))
    differing = [
        k for k in sorted(saved.keys() | asked.keys())
        if k not in RESUME_MAY_DIFFER and saved.get(k, "<absent>") != asked.get(k, "<absent>")
    ]  # fmt: skip
    if differing:
        shown = ", ".join(f"{k}: {saved.get(k, '<absent>')!r} -> {asked.get(k, '<absent>')!r}" for k in differing[:4])
        more = f" (and {len(differing) - 4} more)" if len(differing) > 4 else ""
        raise ResumeMismatchError(
            f"--resume would change the run in {where}: {shown}{more}; resume with the run's config.yaml (only "
            "the budget trainer.max_steps / max_epochs / time_budget_minutes, the log, checkpoint and monitor "
            "intervals and trainer.keep_checkpoints / loss_explosion_* may differ), or drop --resume and choose "
            "another --out"
        )


def load_training_checkpoint(
    path: PathLike, *, expected_config: Any = None, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint` with ``torch.load(weights_only=True)``.

    Returns its dict (keys in the module docstring). With ``expected_config`` (the new run's config, dict or
    dataclass) the saved ``model`` section and ``method.name`` must match it. Raises :class:`CheckpointError`
    (a ValueError, one line) for a missing, corrupt or truncated file, an exported backbone or any other kind of
    file, a newer format version, and a different model architecture or method.
    """
    file = Path(path).expanduser()
    payload = load_torch_file(file, map_location=map_location, what="checkpoint")
    tag = payload.get("format") if isinstance(payload, Mapping) else None
    if tag == BACKBONE_FORMAT:
        raise CheckpointError(
            f"{file} is an exported backbone, not a training checkpoint: load it with "
            "contrastkit.models.load_backbone, or resume from a run's checkpoints/last.ckpt"
        )
    if tag != TRAIN_FORMAT:
        kind = f"format {tag!r}" if tag is not None else f"no contrastkit format tag ({type(payload).__name__})"
        raise CheckpointError(
            f"{file} is not a contrastkit training checkpoint ({kind}): resume from a run's checkpoints/last.ckpt"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > TRAIN_FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has training-checkpoint version {version!r}; this contrastkit reads up to "
            f"{TRAIN_FORMAT_VERSION}: upgrade contrastkit"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{file} is a damaged training checkpoint: entry {missing[0]!r} is missing")
    if expected_config is not None:
        check_same_model(payload["config"], expected_config, where=f"checkpoint {file}")
    return dict(payload)


STEP_CHECKPOINT_PREFIX = "step-"
"""``trainer.keep_checkpoints > 1`` keeps the newest saves as ``checkpoints/step-NNNNNNNN.ckpt`` (8-digit step)."""


def step_checkpoint_name(step: int) -> str:
    """``step-00000120.ckpt``: the name of the kept checkpoint of ``step`` (sorts by step as text)."""
    return f"{STEP_CHECKPOINT_PREFIX}{_check_count('step', step):08d}.ckpt"


def step_checkpoints(directory: PathLike) -> dict[int, Path]:
    """The kept ``step-N.ckpt`` files of a checkpoint directory, by step (other files are ignored)."""
    found: dict[int, Path] = {}
    for file in Path(directory).expanduser().glob(f"{STEP_CHECKPOINT_PREFIX}*.ckpt"):
        digits = file.name[len(STEP_CHECKPOINT_PREFIX) : -len(".ckpt")]
        if digits.isdigit():
            found[int(digits)] = file
    return found


def keep_newest_checkpoints(last: PathLike, step: int, keep: int) -> list[Path]:
    """After ``last`` (``checkpoints/last.ckpt``) was written at ``step``: with ``keep > 1``, give it a second name
    ``step-N.ckpt`` (:func:`contrastkit._io.atomic_link`) and delete the kept files of other steps beyond the
    ``keep`` newest, and every one of a step after ``step`` (left by a run that was resumed from an earlier
    checkpoint, so no longer on this run's path). Each deletion is one atomic ``unlink``, done only once the new
    file is in place, so the ``keep`` newest saves always exist. ``keep == 1`` touches nothing (only last.ckpt).
    Returns the kept step files, oldest first."""
    last = Path(last).expanduser()
    if keep <= 1:
        return []
    atomic_link(last, last.parent / step_checkpoint_name(step))
    kept = step_checkpoints(last.parent)
    later = [kept.pop(s) for s in sorted(kept) if s > step]
    older = sorted(kept)
    stale = [kept.pop(s) for s in older[: max(0, len(older) - keep)]]
    remove_files(later + stale)
    return [kept[s] for s in sorted(kept)]


def find_resume_checkpoint(run_dir: PathLike) -> Path | None:
    """``RUN_DIR/checkpoints/last.ckpt`` if that file exists, else None (a fresh run)."""
    candidate = Path(run_dir).expanduser() / CHECKPOINT_DIR / LAST_CHECKPOINT
    return candidate if candidate.is_file() else None


def backbone_of(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the trained backbone from a training checkpoint, without the method code."""
    config = checkpoint.get("backbone_config")
    if not config:
        raise CheckpointError(
            "the checkpoint stores no backbone architecture (backbone_config): re-train with a contrastkit backbone"
        )
    backbone = backbone_from_config(config)
    state = {
        k[len(BACKBONE_PREFIX) :]: v for k, v in checkpoint["model_state"].items() if k.startswith(BACKBONE_PREFIX)
    }
    try:
        backbone.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"the checkpoint's backbone weights do not fit its architecture: {str(err).splitlines()[0]}"
        ) from None
    return backbone.eval()


def initial_backbone(path: PathLike) -> nn.Module:
    """The backbone that ``model.init_from`` names: a run directory (its ``checkpoints/last.ckpt``), a training
    checkpoint or an exported backbone file (:func:`contrastkit.models.export_backbone`)."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / CHECKPOINT_DIR / LAST_CHECKPOINT
        if not file.is_file():
            raise CheckpointError(f"model.init_from: {file} does not exist: train the run first, or name a file")
    payload = load_torch_file(file, what="model.init_from")
    if isinstance(payload, Mapping) and payload.get("format") == BACKBONE_FORMAT:
        return load_backbone(file)
    return backbone_of(load_training_checkpoint(file))
