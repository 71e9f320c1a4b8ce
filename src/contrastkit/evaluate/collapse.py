"""One-call dimensional-collapse summary (Jing et al., ICLR 2022, "Understanding Dimensional Collapse in
Contrastive Self-supervised Learning"), built on :mod:`contrastkit.evaluate.spectrum`.

For embeddings ``z`` ``[N, D]`` with covariance eigenvalues ``lambda_1 >= ... >= lambda_D``:

* ``effective_rank = exp(H(lambda / sum lambda))`` (in ``[1, D]``);
* ``collapsed_dims = #{k : lambda_k <= rel * lambda_1}`` (``rel = 1e-4``: DirectCLR's near-zero eigenvalues);
* ``dead_units``: columns that are 0 on every row (post-ReLU units that never fire; each gives a zero
  eigenvalue, so it also counts as collapsed: report it separately);
* ``dim = D``.

With ``pre_relu`` (the same representation before its last ReLU, ``[N, D']``) the same numbers are added with a
``pre_relu_`` prefix, which separates dead units from genuinely collapsed directions. Plot the spectrum with
``contrastkit.train.plots.plot_spectrum(embedding_spectrum(z), path)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from contrastkit._checks import check_positive, check_tensor
from contrastkit.evaluate.spectrum import dead_units, effective_rank, embedding_spectrum, rank_at_threshold

__all__ = ["collapse_report"]


def _report(z: Tensor, rel: float, normalize: bool) -> dict[str, float]:
    check_tensor("z", z, 2, min_rows=2, floating=True)
    dead = dead_units(z)
    eig = embedding_spectrum(F.normalize(z.detach(), dim=1) if normalize else z)
    return {
        "effective_rank": effective_rank(eig),
        "collapsed_dims": float(eig.numel() - rank_at_threshold(eig, rel)),
        "dead_units": float(dead),
        "dim": float(eig.numel()),
    }


def collapse_report(
    z: Tensor, pre_relu: Tensor | None = None, *, rel: float = 1e-4, normalize: bool = False
) -> dict[str, float]:
    """Collapse metrics of embeddings ``z`` ``[N, D]`` (N >= 2), as a flat ``{name: float}`` dict.

    Args:
        z: the embeddings (e.g. post-ReLU representation, or the space the loss sees).
        pre_relu: optional ``[N, D']`` pre-activation of the same rows; adds ``pre_relu_*`` keys.
        rel: relative eigenvalue threshold for ``collapsed_dims`` (DirectCLR: 1e-4 of the largest).
        normalize: L2-normalise the rows before the spectrum (the protocol of Jing et al., ICLR 2022: spectrum
            of the L2-normalised rows); dead units are counted before normalising.

    Returns:
        ``{"effective_rank", "collapsed_dims", "dead_units", "dim"}`` (+ the same keys prefixed ``pre_relu_``).
        All spectra are float64; all-zero spectra give effective rank 0 and ``collapsed_dims = D``.
    """
    check_positive("rel", rel)
    report = _report(z, rel, normalize)
    if pre_relu is not None:
        check_tensor("pre_relu", pre_relu, 2, min_rows=2, floating=True)
        if pre_relu.shape[0] != z.shape[0]:
            raise ValueError(
                f"pre_relu has {pre_relu.shape[0]} rows but z has {z.shape[0]}: pass both for the same inputs"
            )
        report.update({f"pre_relu_{k}": v for k, v in _report(pre_relu, rel, normalize).items()})
    return report
