"""``Batch``: the one typed batch every method's ``training_step`` takes, and the adapter from plain loaders.

A batch carries what a method may need; the fields a source or method does not use stay ``None``:

* ``images`` ``[B, C, H, W]``: un-augmented inputs (a method draws its own views from them);
* ``views``: ready views, each ``[B, C, H, W]`` (the engine draws them for the *global* batch from the step's
  generator and hands each rank its rows; a method given views skips its own augmentation);
* ``labels`` ``[B]`` int64 class ids (``-1``: unlabelled, see :class:`contrastkit.data.sources.TensorSource`);
* ``indices`` ``[B]`` int64 positions in the data source (prototype assignments, memory banks);
* ``domains`` ``[B]`` int64 domain ids (multi-domain training);
* ``masks`` ``[B, H, W]`` int64 segmentation masks (or ``[B, K, H, W]`` soft masks);
* ``geometry``: per view ``[B, 4]`` crop boxes ``(top, left, height, width)`` in source pixels;
* ``graph``: a graph object (e.g. ``torch_geometric.data.Data``) for graph methods.

:func:`as_batch` turns what a plain ``DataLoader`` yields (a tensor, an ``(images, labels, ...)`` tuple or a
mapping with these keys) into a ``Batch``, so ``method.training_step(images)`` works in any loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Batch", "as_batch"]


@dataclass(frozen=True)
class Batch:
    """One training batch (see the module docstring for the fields and their shapes)."""

    images: Tensor | None = None
    views: tuple[Tensor, ...] = ()
    labels: Tensor | None = None
    indices: Tensor | None = None
    domains: Tensor | None = None
    masks: Tensor | None = None
    geometry: tuple[Tensor, ...] | None = None
    graph: Any | None = None

    def __len__(self) -> int:
        """Rows in the batch (of the images, the first view or the labels; 0 when none is set)."""
        for x in (self.images, self.views[0] if self.views else None, self.labels):
            if x is not None:
                return int(x.shape[0])
        return 0

    def replace(self, **changes: Any) -> Batch:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def rows(self, rows: slice) -> Batch:
        """The batch restricted to ``rows`` (every per-row tensor field; ``graph`` is kept as is)."""

        def cut(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[rows]

        return Batch(
            images=cut(self.images),
            views=tuple(v[rows] for v in self.views),
            labels=cut(self.labels),
            indices=cut(self.indices),
            domains=cut(self.domains),
            masks=cut(self.masks),
            geometry=None if self.geometry is None else tuple(g[rows] for g in self.geometry),
            graph=self.graph,
        )

    def to(self, device: Any, non_blocking: bool = False) -> Batch:
        """Every tensor field moved to ``device`` (``graph`` too when it has a ``to`` method)."""

        def move(x: Any) -> Any:
            return None if x is None else x.to(device, non_blocking=non_blocking)

        return Batch(
            images=move(self.images),
            views=tuple(move(v) for v in self.views),
            labels=move(self.labels),
            indices=move(self.indices),
            domains=move(self.domains),
            masks=move(self.masks),
            geometry=None if self.geometry is None else tuple(move(g) for g in self.geometry),
            graph=self.graph.to(device) if hasattr(self.graph, "to") else self.graph,
        )


_FIELDS = tuple(f.name for f in dataclasses.fields(Batch))


def as_batch(obj: object) -> Batch:
    """A :class:`Batch` from what a plain loader yields.

    * a ``Batch``: returned as is;
    * a tensor ``[B, C, H, W]``: ``Batch(images=x)``;
    * a tuple or list ``(images, labels, ...)``: images and, when the second entry is a tensor, labels (further
      entries are ignored, as datasets may add paths or targets of other kinds after the label);
    * a mapping with keys among the ``Batch`` fields (``{"images": x, "labels": y}``).
    """
    if isinstance(obj, Batch):
        return obj
    if isinstance(obj, Tensor):
        return Batch(images=obj)
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], Tensor):
        labels = obj[1] if len(obj) > 1 and isinstance(obj[1], Tensor) else None
        return Batch(images=obj[0], labels=labels)
    if isinstance(obj, Mapping):
        unknown = sorted(str(k) for k in obj if k not in _FIELDS)
        if unknown:
            raise ValueError(f"a batch mapping may only hold the keys {', '.join(_FIELDS)}; got {unknown}")
        values = dict(obj)
        if "views" in values:
            values["views"] = tuple(values["views"])
        return Batch(**values)
    raise ValueError(
        "a batch must be images [B, C, H, W], a tuple (images, labels), a mapping of Batch fields or a Batch, "
        f"got {type(obj).__name__}"
    )
