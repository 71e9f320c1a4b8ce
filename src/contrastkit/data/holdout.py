"""Held-out splits of one's own data (an image folder or an ``.npz`` file, :mod:`contrastkit.data.folders`,
:mod:`contrastkit.data.npz`): a share carved from the training images, and a separately stored held-out set
whose labels are put in the training set's class order.

* :func:`split_off` holds out ``M = round_half_up(f * N)`` of the ``N`` images. Labelled: class c gives about
  ``n_c * M / N`` of them (largest remainder, :func:`contrastkit.data.splits.stratified_split`); unlabelled: a
  uniformly random ``M``. The draw depends on ``(labels, f, seed)`` only, so a run and its later evaluation
  carve the same split; both parts keep the original order.
* :func:`match_classes` relabels a held-out set by class *name*: label k of the training set is class
  ``classes[k]`` in both. Two folders whose class sub-folders differ (a class missing from the held-out folder)
  otherwise number their classes differently.
"""

from __future__ import annotations

import torch

from contrastkit.data.dataset import ImageDataset
from contrastkit.data.splits import round_half_up, stratified_split

__all__ = ["match_classes", "split_off"]


def split_off(dataset: ImageDataset, fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """``(rest, held_out)``: ``held_out`` holds ``round_half_up(fraction * N)`` images, stratified by class when
    ``dataset`` is labelled (module docstring); ``rest`` the others.

    Raises:
        ValueError: ``fraction`` outside (0, 1), or a part that would be empty.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must lie in (0, 1), got {fraction!r}")
    n = len(dataset)
    size = round_half_up(fraction * n)
    if not 1 <= size < n:
        raise ValueError(
            f"holding out {fraction} of the {n} images of {dataset.name} leaves {size} held-out and {n - size} "
            "training images; both need at least one: change the fraction or add images"
        )
    labels = dataset.labels if dataset.labels is not None else torch.zeros(n, dtype=torch.int64)
    held = stratified_split(labels.cpu(), [size], seed=seed)[0]
    rest = torch.ones(n, dtype=torch.bool)
    rest[held] = False
    return dataset.subset(rest), dataset.subset(held)


def match_classes(held_out: ImageDataset, classes: list[str]) -> ImageDataset:
    """``held_out`` with labels in the order of ``classes`` (the training set's), matched by class name.

    Unlabelled sets and sets already in that order are returned as they are.

    Raises:
        ValueError: the held-out set has a class that ``classes`` lacks.
    """
    if held_out.labels is None or held_out.classes == classes:
        return held_out
    unknown = [c for c in held_out.classes if c not in classes]
    if unknown:
        raise ValueError(
            f"the held-out set {held_out.name} has classes {unknown} that the training set lacks (it has "
            f"{classes}); use the same class names in both"
        )
    lookup = torch.tensor([classes.index(c) for c in held_out.classes], dtype=torch.int64)
    labels = lookup.to(held_out.labels.device)[held_out.labels]
    return ImageDataset(held_out.images, labels, list(classes), held_out.name)
