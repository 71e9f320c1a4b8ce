r"""``contrastkit reproduce directclr``: projectors, DirectCLR and dimensional collapse on Fashion-MNIST (Jing,
Vincent, LeCun & Tian, ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning").

Every arm is the base config ``reproduce/configs/directclr.yaml`` plus overrides (the report prints each arm's
``contrastkit train`` command) and trains through the engine: small-stem ResNet-18 (width 0.25, BatchNorm,
``D = 128``), symmetric cross-view InfoNCE (tau 0.1), Adam (2e-3, wd 1e-6, 3 % warm-up, cosine), batch 256, bf16
where the CPU has it, the same steps. Only what the loss sees differs:

* ``mlp``: ``z = W2 relu(BN(W1 r))`` (128 -> 128 -> 128), SimCLR's projector;
* ``linear``: ``z = W r`` (128 -> 128, no bias);
* ``none``: ``z = r``;
* ``directclr-d{16,32,64}``: ``z = r[:, :d0]`` with ``d0 = D/8, D/4, D/2`` (no projector);
* ``random-init`` (reference): the same backbone untrained, at the seed's initialisation.

Each over two augmentations (weak vs strong noise and crop):

* ``weak``: random resized crop with scale (0.6, 1) + horizontal flip, no photometric jitter;
* ``strong``: crop scale (0.08, 1) + flip + brightness/contrast jitter of strength 1.0 (0.8, 0.8; p 0.8) +
  Gaussian blur (p 0.5).

Evaluation of ``r`` (never of ``z``): linear probe and weighted kNN (:mod:`contrastkit.evaluate.protocols`; bank:
a fixed 10,000-image stratified training subset; queries: the 10,000 test images); collapse metrics (the protocol
of Jing et al., ICLR 2022: spectrum of the L2-normalised rows) of ``r`` and ``z``. ``--quick`` trains 25 steps and
evaluates on 2,000 / 2,000 images: a smoke test, not evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from contrastkit.reproduce.arms import arm_command, config_arm_runner
from contrastkit.reproduce.artifacts import load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Claim, Experiment, Metric, register_experiment
from contrastkit.reproduce.stats import compare_arms

BASE = "directclr"
FEATURES = 128  # pooled features of the width-0.25 ResNet-18
D0S = (FEATURES // 8, FEATURES // 4, FEATURES // 2)
QUICK = ["trainer.max_steps=25"]
EVAL_FULL = (10_000, 10_000)  # (training subset for the probes, test images)
EVAL_QUICK = (2_000, 2_000)
AUGMENTATIONS: dict[str, list[str]] = {
    "weak": ["augment.min_scale=0.6", "augment.strength=0.0", "augment.hflip_p=0.5", "augment.blur=false"],
    "strong": ["augment.min_scale=0.08", "augment.strength=1.0", "augment.hflip_p=0.5", "augment.blur=true"],
}
LOSS_SPACES: dict[str, list[str]] = {
    **{p: ["method.name=simclr", f"method.projector={p}"] for p in ("mlp", "linear", "none")},
    **{f"directclr-d{d}": ["method.name=directclr", f"method.d0={d}", "method.negatives=cross_view",
                           "method.temperature=0.1", "method.gather_distributed=false"] for d in D0S},
}  # fmt: skip

ARMS = [Arm(f"{space}-{aug}", {"overrides": [*LOSS_SPACES[space], *AUGMENTATIONS[aug]]})
        for aug in AUGMENTATIONS for space in LOSS_SPACES]  # fmt: skip
# Reference, not a method: the same backbone at its seed's random initialisation (no training step), evaluated the
# same way, so the report shows what the training budget adds to (or takes from) the representation.
ARMS.append(Arm("random-init", {"overrides": [*LOSS_SPACES["none"], *AUGMENTATIONS["weak"]], "train": False}))

_REP = "representation r (128-d pooled backbone features, method.embed)"
_TEST = "Fashion-MNIST test images (10,000; 2,000 with --quick)"
_BANK = "a fixed class-stratified 10,000-image training subset (2,000 quick)"
METRICS = [
    Metric("linear_top1", f"linear probe top-1 on {_REP}: L-BFGS (at most 500 iterations, standardised features) on "
           f"{_BANK}, scored on the {_TEST}"),
    Metric("knn_top1", f"weighted kNN top-1 (k=200, T=0.1, cosine) on {_REP}; bank: {_BANK}; queries: the {_TEST}"),
    Metric("erank_representation", f"effective rank exp(H(lambda/sum lambda)) of the covariance of L2-normalised "
           f"{_REP} on the {_TEST}"),
    Metric("erank_loss_space", f"effective rank of the covariance of the L2-normalised space the loss sees (z) on "
           f"the {_TEST}"),
    Metric("collapsed_dims_representation", f"eigenvalues <= 1e-4 x the largest, L2-normalised {_REP}, {_TEST}",
           higher_is_better=False),
    Metric("dead_units_representation", f"units of {_REP} that are 0 on every test image", higher_is_better=False),
    Metric("loss_space_dim", "dimension of the space the loss sees", higher_is_better=False),
    Metric("seconds", "wall-clock seconds of training + evaluation", higher_is_better=False),
]  # fmt: skip


@lru_cache(maxsize=1)
def _fashion_mnist() -> tuple[Any, Any]:
    from contrastkit.data import load

    return load("fashion-mnist", "train"), load("fashion-mnist", "test")


def evaluate_arm(method: Any, data: Any, arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Probes on the representation (``method.embed``) and collapse metrics of it and of the loss space
    (``method.forward``); saves both spectra as the artifact ``spectra-ARM-seedS``."""
    import torch

    from contrastkit.data.splits import stratified_split
    from contrastkit.evaluate import Embedding, collapse_report, embedding_spectrum, extract_features
    from contrastkit.evaluate.protocols import evaluate_features, values

    train, test = _fashion_mnist()
    n_train, n_test = EVAL_QUICK if quick else EVAL_FULL
    train_idx = stratified_split(train.labels, [n_train], seed=0)[0]
    test_idx = torch.arange(min(n_test, len(test)))
    kwargs: dict[str, Any] = {"batch_size": 1024, "precision": "auto"}
    bank = extract_features(Embedding(method), train.images[train_idx], **kwargs)
    rep = extract_features(Embedding(method), test.images[test_idx], **kwargs)
    z = extract_features(method, test.images[test_idx], **kwargs)
    out = values(evaluate_features(bank, train.labels[train_idx], rep, test.labels[test_idx], ["knn", "linear"],
                                   num_classes=10))  # fmt: skip
    rep_report, z_report = collapse_report(rep, normalize=True), collapse_report(z, normalize=True)
    out.update({
        "erank_representation": rep_report["effective_rank"], "erank_loss_space": z_report["effective_rank"],
        "collapsed_dims_representation": rep_report["collapsed_dims"],
        "dead_units_representation": rep_report["dead_units"], "loss_space_dim": z_report["dim"],
    })  # fmt: skip
    unit = torch.nn.functional.normalize
    spectra = {"representation": embedding_spectrum(unit(rep, dim=1)).tolist(),
               "loss_space": embedding_spectrum(unit(z, dim=1)).tolist()}  # fmt: skip
    save_artifact_json(f"spectra-{arm.name}-seed{seed}", spectra)
    return out


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    out: list[Claim] = []
    for d0 in D0S:
        verdict, evidence = compare_arms(rows, "linear_top1", f"directclr-d{d0}-strong", "linear-strong")
        out.append(Claim(f"DirectCLR (d0={d0} of {FEATURES}) beats the linear projector on linear-probe accuracy "
                         "(paper Table 1: 62.7 vs 61.1 % on ImageNet, 100 epochs), strong augmentation",
                         verdict, evidence))  # fmt: skip
    for aug in AUGMENTATIONS:
        for other in ("linear", "mlp"):
            verdict, evidence = compare_arms(
                rows, "erank_representation", f"none-{aug}", f"{other}-{aug}", higher_is_better=False
            )
            text = (
                f"Without a projector the representation collapses more than with a {other} projector (lower "
                f"effective rank; paper Fig. 8/9), {aug} augmentation"
            )
            out.append(Claim(text, verdict, evidence))
    for space in ("none", "linear", "mlp"):
        verdict, evidence = compare_arms(
            rows, "erank_loss_space", f"{space}-strong", f"{space}-weak", higher_is_better=False
        )
        out.append(Claim(f"Stronger augmentation collapses more: lower effective rank of the loss space "
                         f"(paper Sec. 4 / Fig. 3), {space} projector", verdict, evidence))  # fmt: skip
    return out


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """Mean normalised log-spectra over seeds, per arm: representation and loss space x weak and strong."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows: Sequence[dict[str, Any]] = results["rows"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for col, aug in enumerate(AUGMENTATIONS):
        for row, space in enumerate(("representation", "loss_space")):
            ax = axes[row][col]
            for name in LOSS_SPACES:
                arm = f"{name}-{aug}"
                spectra = [np.asarray(load_artifact_json(f"spectra-{arm}-seed{r['seed']}")[space])
                           for r in rows if r["arm"] == arm]  # fmt: skip
                if not spectra:
                    continue
                normed = [np.sort(np.clip(s, 1e-12, None))[::-1] / max(s.max(), 1e-12) for s in spectra]
                mean_log = np.mean([np.log10(s) for s in normed], axis=0)
                ax.plot(np.arange(1, mean_log.size + 1), mean_log, label=name, lw=1.2)
            ax.set(title=f"{space.replace('_', ' ')}, {aug} augmentation", xlabel="index (sorted)",
                   ylabel="log10 eigenvalue / largest")  # fmt: skip
            ax.set_ylim(bottom=-8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Covariance spectra of L2-normalised test embeddings (mean of log10 over seeds)")
    return [save_figure(fig, directory / "plots" / "spectra.png")]


register_experiment(
    Experiment(
        name="directclr",
        description=(
            "DirectCLR vs projector arms on Fashion-MNIST (Jing et al., ICLR 2022): small-stem "
            f"ResNet-18 w0.25 (D={FEATURES}), cross-view InfoNCE tau 0.1, Adam 2e-3, batch 256, 250 steps "
            "(--quick: 25), weak vs strong augmentation; probes and collapse metrics on the test split. "
            "The first arm (mlp-weak) is the reference of the paired-difference tables; the claims pair the arms "
            "the paper compares."
        ),
        arms=ARMS,
        metrics=METRICS,
        run=config_arm_runner(BASE, evaluate_arm, QUICK),
        claims=claims,
        primary_metric="linear_top1",
        figures=figures,
        arm_command=lambda arm, seed, quick: arm_command(BASE, arm, seed, quick, QUICK),
    )
)
