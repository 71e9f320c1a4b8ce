"""Method recipes: each a small composition of views, backbone, heads and a loss, driven by ``training_step``."""

from contrastkit.methods.base import Method, ViewBatch, split_batch
from contrastkit.methods.directclr import DirectCLR
from contrastkit.methods.simclr import SimCLR

__all__ = ["DirectCLR", "Method", "SimCLR", "ViewBatch", "split_batch"]
