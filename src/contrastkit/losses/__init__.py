"""Contrastive and classification losses, all on one masked InfoNCE core (:mod:`contrastkit.losses.info_nce`).

Functions take raw embeddings (L2-normalised inside) and have ``nn.Module`` wrappers with the same arguments:

* :func:`info_nce` / :class:`InfoNCELoss`: anchors [N, d] vs keys [M, d] with bool positive/negative masks;
  :func:`info_nce_with_mask_fn` builds the masks per block of rows (no N x M tensor with ``chunk_size``);
* :func:`nt_xent` / :class:`NTXentLoss`: SimCLR (Chen et al. 2020); :func:`grace_loss`: GRACE's node-level
  InfoNCE (Zhu et al. 2020), the same loss over two views of a graph's nodes;
* :func:`supcon` / :class:`SupConLoss`: supervised contrastive L_out (Khosla et al. 2020);
* :func:`dcl` / :class:`DCLLoss`: decoupled contrastive loss (Yeh et al. 2022);
* :func:`cross_view_info_nce` / :class:`CrossViewInfoNCELoss`: DirectCLR's cross-view InfoNCE (Jing et al.
  2022);
* :func:`focal_loss` / :class:`FocalLoss`: softmax focal loss (Lin et al. 2017).
* :func:`class_balanced_loss` / :class:`ClassBalancedLoss`: class-balanced CE / focal (Cui et al. 2019), and
  :func:`inverse_frequency_weights` for weighted CE;
* :func:`build_classification_loss`: ``ce | weighted_ce | focal | class_balanced`` by name;
* :func:`info_nce_from_logits`: the same core on ready logits (per-column temperatures, filled entries);
* :mod:`contrastkit.losses.selective`: HCSC's selective coding pieces (Guo et al. 2022) and PCL's shared
  negative prototypes (Li et al. 2021): keep probabilities, Bernoulli masks, :func:`selective_info_nce`.

The batch-contrastive losses take ``gather_distributed`` (exact DDP gradients, see
:mod:`contrastkit.distributed`) and ``chunk_size`` (bounded memory). NT-Xent, SupCon, DCL, cross-view InfoNCE and
GRACE run on the fused, blocked path of :mod:`contrastkit.losses.fused` (no N x N matrix or mask, blocks recomputed
in backward, ``chunk_size`` = its block); arbitrary masks go through :func:`info_nce`.
"""

from __future__ import annotations

from contrastkit.losses.class_balanced import (
    ClassBalancedLoss,
    class_balanced_loss,
    class_balanced_weights,
    inverse_frequency_weights,
)
from contrastkit.losses.classification import CLASSIFICATION_LOSSES, build_classification_loss
from contrastkit.losses.cross_view import CrossViewInfoNCELoss, cross_view_info_nce
from contrastkit.losses.dcl import DCLLoss, dcl
from contrastkit.losses.focal import FocalLoss, focal_loss
from contrastkit.losses.gradient_matching import (
    GRADIENT_DISTANCES,
    dc_matching_loss,
    dcc_matching_loss,
    gradient_distance,
)
from contrastkit.losses.info_nce import (
    Denominator,
    InfoNCELoss,
    MaskFn,
    Reduction,
    info_nce,
    info_nce_from_logits,
    info_nce_with_mask_fn,
    masked_logsumexp,
)
from contrastkit.losses.nt_xent import NTXentLoss, grace_loss, nt_xent
from contrastkit.losses.selective import (
    LEVEL_REDUCTIONS,
    MASK_FILLS,
    instance_keep_probability,
    negative_prototype_ids,
    prototype_keep_probability,
    reduce_levels,
    sample_keep_mask,
    selective_info_nce,
)
from contrastkit.losses.supcon import SupConLoss, supcon

__all__ = [
    "CLASSIFICATION_LOSSES",
    "build_classification_loss",
    "ClassBalancedLoss",
    "class_balanced_loss",
    "class_balanced_weights",
    "inverse_frequency_weights",
    "CrossViewInfoNCELoss",
    "DCLLoss",
    "Denominator",
    "FocalLoss",
    "InfoNCELoss",
    "MaskFn",
    "NTXentLoss",
    "Reduction",
    "SupConLoss",
    "cross_view_info_nce",
    "dcl",
    "focal_loss",
    "info_nce",
    "info_nce_from_logits",
    "info_nce_with_mask_fn",
    "masked_logsumexp",
    "grace_loss",
    "nt_xent",
    "supcon",
]
__all__ += [
    "GRADIENT_DISTANCES",
    "dc_matching_loss",
    "dcc_matching_loss",
    "gradient_distance",
]  # dataset condensation (DC / DSA / DCC)
__all__ += [
    "LEVEL_REDUCTIONS",
    "MASK_FILLS",
    "instance_keep_probability",
    "negative_prototype_ids",
    "prototype_keep_probability",
    "reduce_levels",
    "sample_keep_mask",
    "selective_info_nce",
]  # HCSC / PCL selective coding
