"""Classification metrics for imbalanced evaluations (thin, validated wrappers around scikit-learn).

* ``macro_f1``: unweighted mean over classes of ``F1_c = 2 P_c R_c / (P_c + R_c)``;
* ``balanced_accuracy``: mean per-class recall ``(1/C) sum_c TP_c / (TP_c + FN_c)`` over the classes present;
* ``ovr_auc``: one-vs-rest ROC-AUC, ``AUC_c`` of score column ``c`` for "class c vs the rest", macro-averaged
  as ``sklearn.metrics.roc_auc_score(multi_class="ovr")`` but the scores need not sum to 1 (logits are fine);
* ``weighted_f1``: ``sum_c (support_c / N) F1_c``, for reference only (it hides minority-class failures);
* ``per_class_recall``: ``R_c = TP_c / (TP_c + FN_c)`` for each class ``c`` (0 for a class absent from y_true);
* ``imbalanced_classification_report``: all of the above plus accuracy from ``[N, C]`` scores in one call.

Inputs may be torch tensors (any device) or numpy arrays.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score
from torch import Tensor

__all__ = [
    "macro_f1",
    "balanced_accuracy",
    "ovr_auc",
    "weighted_f1",
    "per_class_recall",
    "imbalanced_classification_report",
]

ArrayLike = Tensor | np.ndarray


def _to_numpy(name: str, x: object) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _labels(name: str, x: object) -> np.ndarray:
    arr = _to_numpy(name, x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}; call .long() first")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one sample")
    return arr


def _pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} entries but y_pred has {p.shape[0]}; they must match")
    return t, p


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> float:
    """Macro-averaged F1 in ``[0, 1]`` over classes ``0..num_classes-1`` (or the classes seen when ``None``).

    A class that is never predicted and never present contributes F1 = 0 only when ``num_classes`` lists it.
    """
    t, p = _pair(y_true, y_pred)
    labels = None if num_classes is None else list(range(num_classes))
    return float(f1_score(t, p, labels=labels, average="macro", zero_division=0))


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean per-class recall in ``[0, 1]`` over the classes present in ``y_true``."""
    t, p = _pair(y_true, y_pred)
    return float(balanced_accuracy_score(t, p))


def ovr_auc(y_true: ArrayLike, scores: ArrayLike, average: str = "macro") -> float:
    """One-vs-rest ROC-AUC in ``[0, 1]``.

    Args:
        y_true: ``[N]`` integer class ids in ``[0, C)``.
        scores: ``[N, C]`` per-class scores (probabilities, logits or kNN vote shares; only their order within
            each column matters), or ``[N]`` scores of class 1 for a binary problem. With ``C = 2`` the binary
            AUC of ``scores[:, 1] - scores[:, 0]`` is returned.
        average: ``"macro"`` (unweighted mean of ``AUC_c``) or ``"weighted"`` (by class support).

    Every class must occur in ``y_true`` at least once and not be all of it (AUC is undefined otherwise).
    """
    t = _labels("y_true", y_true)
    s = _to_numpy("scores", scores).astype(np.float64)
    if s.ndim not in (1, 2) or s.shape[0] != t.shape[0]:
        raise ValueError(f"scores must be [N] or [N, C] with N = {t.shape[0]}, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or Inf; check the classifier outputs")
    if average not in ("macro", "weighted"):
        raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")
    n_classes = 2 if s.ndim == 1 else s.shape[1]
    if t.min() < 0 or t.max() >= n_classes:
        raise ValueError(f"y_true must lie in [0, {n_classes}) to match scores, got [{t.min()}, {t.max()}]")
    counts = np.bincount(t, minlength=n_classes)
    if (counts == 0).any() or (counts == t.shape[0]).any():
        raise ValueError(f"every class needs positives and negatives for AUC; class counts are {counts.tolist()}")
    if s.ndim == 1 or n_classes == 2:
        positive = s if s.ndim == 1 else s[:, 1] - s[:, 0]
        return float(roc_auc_score(t, positive))
    onehot = np.eye(n_classes, dtype=np.int64)[t]  # [N, C] indicator: per-column binary AUC, no sum-to-1 check
    return float(roc_auc_score(onehot, s, average=average))


def weighted_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> float:
    """Support-weighted F1 ``sum_c (n_c / N) F1_c`` in ``[0, 1]`` (``f1_score(average="weighted")``); classes
    ``0..num_classes-1`` when given (absent classes have support 0 and weight 0)."""
    t, p = _pair(y_true, y_pred)
    labels = None if num_classes is None else list(range(num_classes))
    return float(f1_score(t, p, labels=labels, average="weighted", zero_division=0))


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> list[float]:
    """Recall ``TP_c / (TP_c + FN_c)`` of every class ``c = 0..C-1`` as a list of C floats.

    ``C = num_classes`` when given, else ``max(y_true, y_pred) + 1``; a class absent from ``y_true`` gets 0.
    """
    t, p = _pair(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(t.max(), p.max())) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes:
        raise ValueError(f"class ids must lie in [0, {num_classes}); pass the right num_classes")
    recalls = recall_score(t, p, labels=list(range(num_classes)), average=None, zero_division=0)
    return [float(r) for r in recalls]


def imbalanced_classification_report(y_true: ArrayLike, scores: ArrayLike) -> dict[str, float | list[float]]:
    """Every metric of an imbalanced evaluation from per-class ``scores`` ``[N, C]`` (probabilities or logits).

    Predictions are ``argmax`` of the scores. Returns ``{"macro_f1", "weighted_f1", "auc_macro_ovr",
    "balanced_accuracy", "accuracy"}`` (floats) and ``"per_class_recall"`` (list of C floats). Every class must
    occur in ``y_true`` (a balanced test split) for the AUC to be defined.
    """
    t = _labels("y_true", y_true)
    s = _to_numpy("scores", scores)
    if s.ndim != 2 or s.shape[0] != t.shape[0] or s.shape[1] < 2:
        raise ValueError(f"scores must be [N, C] with N = {t.shape[0]} and C >= 2, got shape {s.shape}")
    num_classes = int(s.shape[1])
    pred = s.argmax(axis=1).astype(np.int64)
    return {
        "macro_f1": macro_f1(t, pred, num_classes),
        "weighted_f1": weighted_f1(t, pred, num_classes),
        "auc_macro_ovr": ovr_auc(t, s, average="macro"),
        "balanced_accuracy": balanced_accuracy(t, pred),
        "accuracy": float(accuracy_score(t, pred)),
        "per_class_recall": per_class_recall(t, pred, num_classes),
    }
