"""Online monitors: a stop-gradient linear probe trained beside the method, and held-out kNN / effective rank.

``TrainModule`` wraps a method with the online classifier (an online linear probe: a linear layer on
detached backbone features of the first view, trained with cross-entropy at every step). Its gradients never reach
the backbone, so it measures the representation without changing it. ``evaluate_monitors`` embeds the held-out
split and a (sub-sampled) training memory bank and reports weighted kNN accuracy (Wu et al. 2018), the
effective rank of the held-out embeddings (Roy & Vetterli 2007) and the online classifier's held-out accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.data import Batch, ImageDataset
from contrastkit.evaluate import Embedding, extract_features
from contrastkit.evaluate.protocols import (
    classifier_protocol_texts,
    evaluate_classifier_scores,
    evaluate_features,
    protocol_texts,
)
from contrastkit.train.config import MonitorConfig
from contrastkit.train.progress import QUIET, Progress

EXTRACT_BATCH = 1024
"""Images per forward pass when embedding a split (monitors and ``contrastkit evaluate`` alike)."""
_CHUNK_BATCHES = 4  # batches between two moves of the progress bar


class TrainModule(nn.Module):
    """A method plus its online linear classifier; ``training_step`` returns the method's outputs and
    ``"total"``, the sum of both losses. ``make_views``, ``embed`` and the method's hooks are forwarded."""

    def __init__(self, method: nn.Module, num_classes: int | None, sample: Tensor | None = None) -> None:
        super().__init__()
        self.method = method
        self.online_classifier = None
        if num_classes:
            if sample is None:
                raise ValueError("the online probe needs a sample batch to size its input")
            self.online_classifier = nn.Linear(embedding_dim(method, sample), num_classes)
        for hook in ("on_fit_start", "on_epoch_start", "on_step_end"):
            if callable(getattr(method, hook, None)):
                setattr(self, hook, getattr(method, hook))

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return self.method.make_views(images, generator=generator)

    def embed(self, x: Tensor) -> Tensor:
        return self.method.embed(x)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        out = self.method.training_step(batch)
        loss = out["loss"]
        logs = {k: v.detach() for k, v in out.items() if k != "embeddings" and v.ndim == 0}
        embeddings = out.get("embeddings")
        if self.online_classifier is not None and batch.labels is not None and embeddings is not None:
            labelled = batch.labels >= 0  # -1: unlabelled items (contrastkit.data.labelled_unlabelled)
            logits = self.online_classifier(embeddings.detach().float())
            online_loss = F.cross_entropy(logits, batch.labels, ignore_index=-1) if bool(labelled.any()) else None
            if online_loss is not None:
                logs["online_linear_loss"] = online_loss.detach()
                hits = logits.argmax(1)[labelled] == batch.labels[labelled]
                logs["online_linear_train_top1"] = hits.float().mean()
                loss = loss + online_loss
        logs["loss"] = out["loss"].detach()
        return {"total": loss, **logs}


CLASSIFIER_MONITORS = ("classifier_accuracy", "classifier_balanced_accuracy", "classifier_macro_f1")


class _Predict(nn.Module):
    """A classifier method's ``predict`` (logits) as a module, for feature extraction."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return self.method.predict(x)


@torch.no_grad()
def embedding_dim(method: nn.Module, sample: Tensor) -> int:
    """The size ``D`` of ``method.embed`` on ``sample`` ``[B, C, H, W]`` (a forward pass in eval mode)."""
    was_training = method.training
    method.eval()
    dim = int(method.embed(sample).reshape(sample.shape[0], -1).shape[1])
    method.train(was_training)
    return dim


def embed_images(
    method: nn.Module,
    images: Tensor,
    device: torch.device | str,
    precision: str,
    progress: Progress = QUIET,
    desc: str = "embedding",
) -> Tensor:
    """``method.embed`` of ``images`` ``[N, C, H, W]`` in eval mode, batches of :data:`EXTRACT_BATCH` under
    ``precision`` (``"32"``, ``"bf16"``, ``"auto"``) -> ``[N, D]`` float32 on the CPU, with a bar per chunk: the
    feature extraction the online monitors and ``contrastkit evaluate`` share. The chunks are whole batches, so the
    features equal those of one :func:`contrastkit.evaluate.extract_features` call."""
    embedding = Embedding(method)
    chunk = EXTRACT_BATCH * _CHUNK_BATCHES
    parts: list[Tensor] = []
    with progress.counter(desc, images.shape[0]) as bar:
        for start in range(0, images.shape[0], chunk):
            block = images[start : start + chunk]
            parts.append(extract_features(embedding, block, EXTRACT_BATCH, device=device, precision=precision))
            bar.update(block.shape[0])
    return torch.cat(parts)


def bank_of(train: ImageDataset, cfg: MonitorConfig, seed: int) -> ImageDataset:
    """The kNN memory bank: ``train``, or ``cfg.knn_max_train`` of its images drawn without replacement with
    ``torch.Generator().manual_seed(seed)``."""
    if cfg.knn_max_train is None or len(train) <= cfg.knn_max_train:
        return train
    generator = torch.Generator().manual_seed(seed)
    return train.subset(torch.randperm(len(train), generator=generator)[: cfg.knn_max_train])


def data_texts(
    train_split: str, n_train: int, n_bank: int, eval_split: str, n_queries: int, seed: int
) -> tuple[str, str]:
    """``(bank_text, query_text)`` of the protocol texts, the same words for the monitors and
    ``contrastkit evaluate``: "the 60000 images of the train split" (or "256 images drawn (seed 0) from the 60000
    of the train split") and "the 10000 images of the test split"."""
    bank = f"the {n_train} images of the {train_split} split"
    if n_bank < n_train:
        bank = f"{n_bank} images drawn (seed {seed}) from the {n_train} of the {train_split} split"
    return bank, f"the {n_queries} images of the {eval_split} split"


def features_note(precision: str, of: str = "method.embed") -> str:
    """How the features of a protocol text were computed: ``of`` (the model) in eval mode, ``precision`` (the
    resolved ``"32"`` or ``"bf16"``)."""
    how = "bfloat16 autocast" if precision == "bf16" else "float32"
    return f"features: {of} in eval mode, {how}, batches of {EXTRACT_BATCH}"


def evaluate_monitors(
    module: TrainModule,
    train: ImageDataset,
    held_out: ImageDataset,
    cfg: MonitorConfig,
    device: torch.device,
    precision: str,
    seed: int,
    progress: Progress = QUIET,
) -> tuple[dict[str, float], Tensor]:
    """Held-out monitors; returns ``(metrics, held-out features [N, D])``. Leaves the module in train mode.

    The kNN features come from :func:`embed_images`, the computation
    ``contrastkit evaluate`` makes, so the final kNN of a run and its ``evaluate`` kNN are the same number.
    """
    bank = bank_of(train, cfg, seed)
    labelled = bank.labels is not None and held_out.labels is not None
    f_held = embed_images(module.method, held_out.images, device, precision, progress, "embedding the held-out split")
    f_bank = (
        embed_images(module.method, bank.images, device, precision, progress, "embedding the kNN memory bank")
        if labelled
        else None
    )
    protocols = (["knn"] if f_bank is not None else []) + (["rank"] if cfg.effective_rank else [])
    measured = evaluate_features(
        f_bank, bank.labels, f_held, held_out.labels, protocols, k=cfg.knn_k, temperature=cfg.knn_temperature
    )
    metrics = {name: m.value for name, m in measured.items()}
    predict = getattr(module.method, "predict", None)
    if callable(predict) and held_out.labels is not None:
        logits = extract_features(_Predict(module.method), held_out.images, 1024, device, precision=precision)
        measured, _ = evaluate_classifier_scores(logits, held_out.labels, prefix="classifier_")
        metrics.update({name: m.value for name, m in measured.items() if name in CLASSIFIER_MONITORS})
    if module.online_classifier is not None and held_out.labels is not None:
        with torch.no_grad():
            weight = module.online_classifier.weight.detach().float().cpu()
            bias = module.online_classifier.bias.detach().float().cpu()
            predictions = (f_held @ weight.T + bias).argmax(1)
        metrics["online_linear_top1"] = float((predictions == held_out.labels.cpu()).float().mean())
    module.train()
    return metrics, f_held


def monitor_protocols(cfg: MonitorConfig, bank_text: str, query_text: str, precision: str) -> dict[str, str]:
    """How each monitor metric is measured, for reports (``bank_text``, ``query_text``: :func:`data_texts`;
    ``precision``: the resolved one of the run)."""
    note = features_note(precision)
    texts = {
        name: f"{text}; {note}"
        for name, text in protocol_texts(
            ["knn", "rank"], k=cfg.knn_k, temperature=cfg.knn_temperature, bank_text=bank_text, query_text=query_text
        ).items()
    }
    texts.update(
        {
            name: f"{text} (the method's own classifier, predict)"
            for name, text in classifier_protocol_texts(query_text, "classifier_").items()
            if name in CLASSIFIER_MONITORS
        }
    )
    texts["online_linear_top1"] = (
        f"online linear probe top-1 on {query_text} (stop-gradient linear layer trained on view-1 features "
        "during pre-training)"
    )
    return texts
