"""Node classification on frozen graph embeddings: the evaluation protocol of GRACE (Zhu et al., "Deep Graph
Contrastive Representation Learning", 2020), also used by ARIEL (Feng et al., WWW 2022).

For embeddings ``z`` ``[N, h]`` and labels ``y`` ``[N]``:

1. L2-normalise the rows, ``z_i <- z_i / max(||z_i||, eps)`` (``normalize=True``);
2. for each repeat ``r = 0 .. repeats - 1``: a random split with ``n_train = round(train_fraction * N)`` training
   nodes and the other ``N - n_train`` as test nodes, drawn by ``numpy.random.default_rng([seed, r])`` only
   (not by the embeddings), so two encoders evaluated with the same ``seed`` see exactly the same splits and their
   accuracies can be compared split by split (:func:`paired_difference`);
3. a one-vs-rest logistic regression (``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``, one
   binary L2-regularised problem ``min_w 1/2 ||w||^2 + C sum_i log(1 + exp(-t_i w . z_i))`` per class) whose
   ``C`` is chosen by ``GridSearchCV`` (accuracy, stratified ``folds``-fold CV on the training nodes, no shuffle)
   over ``c_grid`` (default ``2^k, k = -10 .. 9``, GRACE's grid), refitted on all training nodes;
4. the accuracy on the test nodes; the result holds one accuracy per split, their mean and (population) std.

Small graphs: stratified CV needs every class to have at least ``folds`` training nodes. When the smallest class
present in a split's training part has ``c_min < folds`` members, that split uses ``c_min`` folds when
``c_min >= 2`` and otherwise skips the grid and fits ``C = 1`` (sklearn's default); ``folds_used`` records the
folds of each split (0 = grid skipped) and ``chosen_c`` the ``C`` used. A class with no training node is never
predicted. Ties in the CV accuracy go to the first ``C`` of the grid (``GridSearchCV``); liblinear runs with
``random_state=0``, so a call is deterministic.

Cost: ``repeats x (len(c_grid) x folds + 1)`` one-vs-rest fits (``K`` binary liblinear fits each). Measured on
3,000 x 128 Gaussian-mixture embeddings (10 classes, accuracy ~0.93), 20 repeats, one process on the project's
2 shared cores: the full grid 55-75 s per call, ``REDUCED_C_GRID`` 20-35 s; ``n_jobs=2`` was slower (33 s for the
reduced grid), liblinear itself is ~40 % of the time, sklearn's per-fit bookkeeping the rest. Large ``C``
converge more slowly, so the time also depends on the embeddings.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from torch import Tensor

__all__ = [
    "GRACE_C_GRID",
    "REDUCED_C_GRID",
    "NodeClassificationResult",
    "node_classification",
    "paired_difference",
]

GRACE_C_GRID: tuple[float, ...] = tuple(2.0**k for k in range(-10, 10))
"""``C = 2^k, k = -10 .. 9``: the grid of GRACE's evaluation (spec ariel.md §2.7)."""

REDUCED_C_GRID: tuple[float, ...] = tuple(2.0**k for k in range(-2, 9, 2))
"""``C = 2^k, k = -2, 0, 2, 4, 6, 8``: a coarser grid for repeated evaluations (state it when used)."""

_FALLBACK_C = 1.0


@dataclass(frozen=True)
class NodeClassificationResult:
    """Outcome of :func:`node_classification` (one entry per split in the tuples).

    Attributes:
        accuracies: test accuracy in ``[0, 1]`` of each split.
        mean: mean of ``accuracies``.
        std: population standard deviation (``ddof = 0``, as GRACE reports) of ``accuracies``.
        train_fraction: share of the nodes used for training in every split.
        c_grid: the ``C`` values searched.
        chosen_c: the ``C`` of each split's final classifier.
        folds_used: the CV folds of each split (``folds`` unless a class is too small; 0 = grid skipped, C = 1).
        split_fingerprint: SHA-256 (hex) of ``N`` and every split's training indices; equal fingerprints mean
            the same splits.
    """

    accuracies: tuple[float, ...]
    mean: float
    std: float
    train_fraction: float
    c_grid: tuple[float, ...]
    chosen_c: tuple[float, ...]
    folds_used: tuple[int, ...]
    split_fingerprint: str


def _as_numpy(name: str, value: object, ndim: int) -> np.ndarray:
    if isinstance(value, Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(array.shape)}")
    return array


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_c_grid(c_grid: Sequence[float] | None) -> tuple[float, ...]:
    if c_grid is None:
        return GRACE_C_GRID
    grid = tuple(float(c) for c in c_grid)
    if not grid or not all(math.isfinite(c) and c > 0 for c in grid):
        raise ValueError(f"c_grid must be a non-empty list of finite C > 0, got {c_grid!r}; e.g. [0.25, 1, 4, 16]")
    return grid


def _split(num_nodes: int, num_train: int, seed: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test node ids of split ``repeat``: a permutation drawn from ``default_rng([seed, repeat])``."""
    order = np.random.default_rng([seed, repeat]).permutation(num_nodes)
    return np.sort(order[:num_train]), np.sort(order[num_train:])


def _fit_split(
    x_train: np.ndarray, y_train: np.ndarray, c_grid: tuple[float, ...], folds: int, n_jobs: int | None
) -> tuple[OneVsRestClassifier, float, int]:
    """The fitted one-vs-rest classifier, its C and the folds used (0 = grid skipped)."""
    smallest_class = int(np.unique(y_train, return_counts=True)[1].min())
    folds_used = min(folds, smallest_class)
    if folds_used < 2:
        model = OneVsRestClassifier(LogisticRegression(solver="liblinear", C=_FALLBACK_C, random_state=0)).fit(
            x_train, y_train
        )
        return model, _FALLBACK_C, 0
    search = GridSearchCV(
        OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=0)),
        param_grid={"estimator__C": list(c_grid)},
        cv=StratifiedKFold(n_splits=folds_used),
        scoring="accuracy",
        n_jobs=n_jobs,
    )
    search.fit(x_train, y_train)  # folds <= c_min: every class is in every fold's training part
    return search.best_estimator_, float(search.best_params_["estimator__C"]), folds_used


def node_classification(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    *,
    train_fraction: float = 0.1,
    repeats: int = 20,
    seed: int = 0,
    c_grid: Sequence[float] | None = None,
    folds: int = 5,
    normalize: bool = True,
    n_jobs: int | None = 1,
) -> NodeClassificationResult:
    """GRACE's node-classification accuracy of frozen ``embeddings`` ``[N, h]`` with ``labels`` ``[N]``.

    See the module docstring for the protocol. ``c_grid=None`` is :data:`GRACE_C_GRID`; ``n_jobs`` is passed to
    ``GridSearchCV`` (1 = no worker processes, the right choice on 2 shared cores).
    """
    z = _as_numpy("embeddings", embeddings, 2).astype(np.float64)
    y = _as_numpy("labels", labels, 1)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must hold integer class ids, got dtype {y.dtype}; call .long() first")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but embeddings has {z.shape[0]} rows; they must match")
    if not np.isfinite(z).all():
        raise ValueError("embeddings contain NaN or Inf; check the encoder output")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) or not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction!r}; e.g. 0.1 for 10% training nodes")
    repeats = _check_int("repeats", repeats, 1)
    seed = _check_int("seed", seed, 0)
    folds = _check_int("folds", folds, 2)
    grid = _check_c_grid(c_grid)
    num_nodes = z.shape[0]
    num_train = round(float(train_fraction) * num_nodes)
    if not 2 <= num_train <= num_nodes - 1:
        raise ValueError(
            f"train_fraction {train_fraction} of {num_nodes} nodes gives {num_train} training nodes; "
            "need at least 2 training and 1 test node, change train_fraction"
        )
    if normalize:
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    fingerprint = hashlib.sha256(np.int64(num_nodes).tobytes())
    accuracies: list[float] = []
    chosen_c: list[float] = []
    folds_used: list[int] = []
    for repeat in range(repeats):
        train, test = _split(num_nodes, num_train, seed, repeat)
        fingerprint.update(train.astype(np.int64).tobytes())
        if np.unique(y[train]).size < 2:
            raise ValueError(
                f"split {repeat} has fewer than 2 classes among its {num_train} training nodes; raise train_fraction"
            )
        model, c_value, split_folds = _fit_split(z[train], y[train], grid, folds, n_jobs)
        accuracies.append(float(np.mean(model.predict(z[test]) == y[test])))
        chosen_c.append(c_value)
        folds_used.append(split_folds)
    return NodeClassificationResult(
        accuracies=tuple(accuracies),
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
        train_fraction=float(train_fraction),
        c_grid=grid,
        chosen_c=tuple(chosen_c),
        folds_used=tuple(folds_used),
        split_fingerprint=fingerprint.hexdigest(),
    )


def paired_difference(a: NodeClassificationResult, b: NodeClassificationResult) -> tuple[float, float]:
    """Mean and standard error of the per-split accuracy differences ``d_r = acc_a[r] - acc_b[r]``.

    ``(mean_r d_r, std(d, ddof=1) / sqrt(R))`` over the ``R`` shared splits (spec ariel.md §7.4: call an effect only
    if the mean exceeds ~2 standard errors). Both results must come from the same splits (same nodes, ``seed``,
    ``train_fraction`` and ``repeats``: equal ``split_fingerprint``). With ``R = 1`` the standard error is NaN.
    """
    for name, result in (("a", a), ("b", b)):
        if not isinstance(result, NodeClassificationResult):
            raise ValueError(f"{name} must be a NodeClassificationResult, got {type(result).__name__}")
    if a.split_fingerprint != b.split_fingerprint or len(a.accuracies) != len(b.accuracies):
        raise ValueError(
            "a and b were evaluated on different splits; call node_classification with the same seed, "
            "train_fraction and repeats on the same nodes"
        )
    diffs = np.asarray(a.accuracies, dtype=np.float64) - np.asarray(b.accuracies, dtype=np.float64)
    if diffs.size < 2:
        return float(diffs.mean()), math.nan
    return float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(diffs.size))
