"""Backbone-only export: a file that ``load_backbone`` turns back into the trained network without the training code.

File layout (``torch.save`` of a dict that ``torch.load(..., weights_only=True)`` reads)::

    {"format": "contrastkit-backbone", "version": 1,
     "config": backbone.config,            # {"name": str, "kwargs": dict}; models.registry rebuilds it
     "state_dict": {name: CPU tensor},     # wrapper prefixes ("module.", "_orig_mod.") removed
     "metadata": {...}}                     # JSON-able: user metadata + contrastkit / torch versions

Written atomically (``contrastkit._io``): an interrupted export never leaves a torn file. Loading rebuilds the
architecture with ``backbone_from_config(config)`` and loads the weights strictly (every parameter and buffer,
BatchNorm running statistics included), so ``load_backbone(f)(x) == backbone(x)`` in eval mode.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit._io import (
    BACKBONE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    PathLike,
    atomic_torch_save,
    load_torch_file,
)
from contrastkit.models.backbone import Backbone, jsonable
from contrastkit.models.registry import backbone_from_config

BACKBONE_FORMAT_VERSION = 1
_WRAPPER_ATTRIBUTES = ("_orig_mod", "module", "_forward_module")  # torch.compile, DDP/DataParallel, Fabric


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile`` / DDP / DataParallel / Fabric wrappers (``model`` if unwrapped)."""
    for _ in range(16):  # wrappers nest (compile(DDP(m))), never deeply
        if isinstance(model, Backbone):
            return model
        inner = next(
            (getattr(model, a) for a in _WRAPPER_ATTRIBUTES if isinstance(getattr(model, a, None), nn.Module)),
            None,
        )
        if inner is None:
            return model
        model = inner
    return model


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove what wrappers add to state-dict keys: leading ``module.`` (DDP, DataParallel) and every
    ``_orig_mod.`` segment (``torch.compile``, also on compiled submodules), e.g.
    ``"module._orig_mod.layer1.0.conv1.weight" -> "layer1.0.conv1.weight"``."""
    cleaned: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = [p for p in str(key).split(".") if p != "_orig_mod"]
        while len(parts) > 1 and parts[0] == "module":
            parts = parts[1:]
        name = ".".join(parts)
        if name in cleaned:
            raise ValueError(f"state_dict keys {key!r} and another one both map to {name!r} after prefix removal")
        cleaned[name] = value
    return cleaned


def _cpu_copy(tensor: Tensor) -> Tensor:
    """Detached, contiguous CPU tensor that owns only its own bytes (a view would save its whole storage)."""
    out = tensor.detach().cpu().contiguous()
    if out.untyped_storage().nbytes() != out.numel() * out.element_size() or out.storage_offset() != 0:
        out = out.clone()
    return out


def _default_metadata() -> dict[str, str]:
    try:
        version = importlib.metadata.version("contrastkit")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        version = "unknown"
    return {"contrastkit_version": version, "torch_version": str(torch.__version__)}


def _check_keys_against_architecture(config: Mapping[str, Any], state_dict: Mapping[str, Any], where: str) -> None:
    """Raise CheckpointError naming the first missing / unexpected / mis-shaped key for ``config``'s network."""
    try:
        with torch.device("meta"):  # shapes only, no memory, no init cost
            reference = backbone_from_config(config).state_dict()
    except ValueError as err:
        raise CheckpointError(f"{where} holds an architecture that cannot be built: {err}") from err
    missing = [k for k in reference if k not in state_dict]
    unexpected = [k for k in state_dict if k not in reference]
    name = config.get("name")
    if missing:
        raise CheckpointError(
            f"{where} does not match architecture {name!r}: missing key {missing[0]!r} ({len(missing)} missing)"
        )
    if unexpected:
        raise CheckpointError(
            f"{where} does not match architecture {name!r}: unexpected key {unexpected[0]!r} "
            f"({len(unexpected)} unexpected)"
        )
    for key, ref in reference.items():
        value = state_dict[key]
        if not isinstance(value, Tensor) or value.shape != ref.shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise CheckpointError(
                f"{where} does not match architecture {name!r}: {key!r} has shape {got}, expected {tuple(ref.shape)}"
            )


def export_backbone(backbone: nn.Module, path: PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``backbone``'s architecture and weights to ``path`` (atomically); see the module docstring.

    Args:
        backbone: a contrastkit :class:`Backbone`, possibly wrapped by DDP / ``torch.compile`` / Fabric.
        path: the file to write; its directory must exist.
        metadata: JSON-able facts to keep with the weights (dataset, method, epochs, accuracy...); the
            contrastkit and torch versions are added unless given.

    Returns the written path. Raises ValueError for a non-contrastkit module or non-JSON-able metadata.
    """
    model = unwrap_model(backbone)
    if not isinstance(model, Backbone):
        raise ValueError(
            f"export_backbone needs a contrastkit Backbone (models.build_backbone), got {type(model).__name__}; "
            "for a method pass method.backbone"
        )
    try:
        user_metadata = jsonable(dict(metadata or {}))
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata must be a dict of JSON-able values: {err}") from err
    config = model.config
    state_dict = {k: _cpu_copy(v) for k, v in strip_wrapper_prefixes(model.state_dict()).items()}
    _check_keys_against_architecture(config, state_dict, f"backbone {type(model).__name__}")
    payload = {
        "format": BACKBONE_FORMAT,
        "version": BACKBONE_FORMAT_VERSION,
        "config": config,
        "state_dict": state_dict,
        "metadata": {**_default_metadata(), **user_metadata},
    }
    return atomic_torch_save(payload, path)


def read_backbone_file(path: PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and validate an exported-backbone file; returns its dict (``config``, ``state_dict``, ``metadata``).

    Raises :class:`CheckpointError` (one line) for a missing, corrupt or truncated file, a training checkpoint, a
    file of another kind or a newer format version.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        if (file / "checkpoints" / "last.ckpt").is_file():
            raise CheckpointError(
                f"{file} is a run directory, not an exported backbone: run `contrastkit export {file} --out FILE`"
            )
        raise CheckpointError(f"{file} is a directory, not an exported backbone: pass the FILE from contrastkit export")
    payload = load_torch_file(file, map_location=map_location, what="backbone file")
    tag = payload.get("format") if isinstance(payload, Mapping) else None
    if tag == TRAIN_FORMAT:
        run_dir = file.parent.parent if file.parent.name == "checkpoints" else "RUN_DIR"
        raise CheckpointError(
            f"{file} is a training checkpoint, not an exported backbone: run `contrastkit export {run_dir} --out FILE`"
        )
    if tag != BACKBONE_FORMAT:
        kind = f"format {tag!r}" if tag is not None else f"no contrastkit format tag ({type(payload).__name__})"
        raise CheckpointError(
            f"{file} is not an exported contrastkit backbone ({kind}): write one with "
            "contrastkit.models.export_backbone or `contrastkit export RUN_DIR --out FILE`"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > BACKBONE_FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has backbone format version {version!r}; this contrastkit reads up to "
            f"{BACKBONE_FORMAT_VERSION}: upgrade contrastkit"
        )
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), Mapping):
            raise CheckpointError(f"{file} is a damaged backbone file: entry {key!r} is missing or not a dict")
    return dict(payload)


def load_backbone(path: PathLike, map_location: Any = "cpu") -> Backbone:
    """Rebuild the backbone saved by :func:`export_backbone` and load its weights strictly.

    Reads with ``torch.load(..., weights_only=True)`` only. The network is moved to ``map_location`` when that is
    a device (``"cpu"``, ``"cuda:0"``, ``torch.device``) and returned in **eval mode** (ready for feature
    extraction; call ``.train()`` to fine-tune). Raises :class:`CheckpointError` (a ValueError) with one line
    for: a missing file, a corrupt or truncated file, a training checkpoint or another kind of file, and weights
    that do not fit the architecture (naming the first missing / unexpected / mis-shaped key).
    """
    file = Path(path).expanduser()
    payload = read_backbone_file(file, map_location=map_location)
    config, state_dict = payload["config"], payload["state_dict"]
    _check_keys_against_architecture(config, state_dict, str(file))
    model = backbone_from_config(config)
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
