"""Method recipes: each a small composition of views, backbone, heads and a loss, driven by ``training_step``."""

from contrastkit.methods.base import Method, ViewBatch, split_batch
from contrastkit.methods.dcc import CondensationConfig, CondensationResult, condense, get_loops, matching_loss
from contrastkit.methods.directclr import DirectCLR
from contrastkit.methods.simclr import SimCLR
from contrastkit.methods.supercon import SuperCon, supercon_classifier
from contrastkit.methods.supervised import CLASSIFICATION_LOSSES, SupervisedClassifier, build_classification_loss

__all__ = ["DirectCLR", "Method", "SimCLR", "ViewBatch", "split_batch"]
__all__ += ["SuperCon", "supercon_classifier", "SupervisedClassifier", "build_classification_loss"]
__all__ += ["CLASSIFICATION_LOSSES"]
__all__ += [
    "CondensationConfig",
    "CondensationResult",
    "condense",
    "get_loops",
    "matching_loss",
]  # dataset condensation (DC / DSA / DCC)
