"""The module form shared by the batch-contrastive losses (called as ``Loss(temperature=...)(z1, z2)``)."""

from __future__ import annotations

from torch import nn

from contrastkit.losses.info_nce import Reduction, check_options


class BatchContrastiveLoss(nn.Module):
    """Holds the options every batch-contrastive loss shares, validated once at construction.

    Subclasses set ``default_temperature`` (the paper's value) and implement ``forward`` by calling their
    functional form with ``self.temperature`` and ``**self.options()``.
    """

    default_temperature: float = 0.1

    def __init__(
        self,
        temperature: float | None = None,
        *,
        gather_distributed: bool = False,
        chunk_size: int | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        temperature = self.default_temperature if temperature is None else temperature
        check_options(temperature, chunk_size, reduction)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.chunk_size = chunk_size
        self.reduction: Reduction = reduction

    def options(self) -> dict[str, object]:
        """Keyword arguments for the functional form."""
        return {
            "gather_distributed": self.gather_distributed,
            "chunk_size": self.chunk_size,
            "reduction": self.reduction,
        }

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"
