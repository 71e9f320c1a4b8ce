r"""``contrastkit reproduce directclr``: projectors, DirectCLR and dimensional collapse, the digits variant (Jing,
Vincent, LeCun & Tian, ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning").

**Budget.** scikit-learn digits (8x8 grey, 1,347 train / 450 test, ``contrastkit.data.load("digits")``), so that the
official 150-epoch schedule fits a 2-core CPU (about 10 s per arm and seed) and the paper's premise, collapsed
eigenvalues, can show. Every arm is the base config ``reproduce/configs/directclr.yaml`` plus overrides (the report
prints each arm's ``contrastkit train`` command) and trains through the engine: residual MLP
(:mod:`contrastkit.models.mlp`: stem 64 -> 128, residual blocks with BatchNorm, zero-init residuals, post-ReLU
``r`` of ``D = 128``), symmetric cross-view InfoNCE (tau 0.1), the official optimisation (LARS, lr 4.8 x 256 / 4096
= 0.3, momentum 0.9, wd 1e-6, biases and norm parameters excluded; 10 warm-up epochs, cosine to 0.001 x lr),
batch 256, 150 epochs = 750 steps (5 full batches an epoch), float32. Only what the loss sees differs:

* ``mlp``: ``z = W2 relu(BN(W1 r))`` (128 -> 128 -> 32); ``linear``: ``z = W r`` (128 -> 32, no bias), the
  paper's dimension-reducing projectors; ``none``: ``z = r``;
* ``directclr-d{16,32,64}``: ``z = r[:, :d0]`` (no projector);
* ``random-init`` (reference): the untrained network (with zero-init residuals every depth gives ``relu(stem x)``).

Each in three settings (additive pixel noise, :func:`contrastkit.augment.noise_views`): ``weak`` (2 blocks, noise
0.1), ``strong`` (4 blocks, noise 0.5) and ``deep`` (4 blocks, noise 0.1: differs from ``strong`` only in the noise,
from ``weak`` only in depth). Blocks *without* BatchNorm were tried for ``strong`` first: under this optimiser
their biases (excluded from LARS, raw lr 0.3) drive the ReLUs dead (122 of 128 units, probe 83 % in a one-seed
pilot run), which is dying units rather than the paper's collapse, so every block keeps BatchNorm.

Evaluation of ``r``: linear probe (L-BFGS, standardised) and weighted kNN (k = 20, the bank holds ~135 images a
class), bank = the 1,347 training images, queries = the 450 test images; collapse metrics of ``r``, of ``r``
before its last ReLU and of ``z`` (spectrum of the L2-normalised rows); spectra saved per arm and seed. The
hypotheses, margins and premise gates are in :mod:`._directclr_claims`: collapse is judged by collapsed eigenvalues
that dead units do not explain. ``--quick`` trains 10 steps: a smoke test, not evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contrastkit.reproduce.arms import arm_command, config_arm_runner
from contrastkit.reproduce.artifacts import load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Experiment, Metric, register_experiment
from contrastkit.reproduce.experiments._directclr_claims import GATES, HYPOTHESES

BASE = "directclr"
FEATURES = 128  # D, the residual MLP's width
D0S = (FEATURES // 8, FEATURES // 4, FEATURES // 2)
KNN_K = 20
QUICK = ["trainer.max_steps=10"]
SETTINGS: dict[str, list[str]] = {
    "weak": ["model.depth=2", "augment.noise_std=0.1"],
    "deep": ["model.depth=4", "augment.noise_std=0.1"],
    "strong": ["model.depth=4", "augment.noise_std=0.5"],
}
LOSS_SPACES: dict[str, list[str]] = {
    **{p: ["method.name=simclr", f"method.projector={p}"] for p in ("mlp", "linear", "none")},
    **{f"directclr-d{d}": ["method.name=directclr", f"method.d0={d}", "method.negatives=cross_view",
                           "method.temperature=0.1", "method.gather_distributed=false"] for d in D0S},
}  # fmt: skip

ARMS = [Arm(f"{space}-{setting}", {"overrides": [*LOSS_SPACES[space], *SETTINGS[setting]]})
        for setting in SETTINGS for space in LOSS_SPACES]  # fmt: skip
# Reference, not a method: the network at its seed's initialisation (no training step), evaluated the same way, so
# the report shows what training adds and the collapse premise is judged against the untrained spectrum.
ARMS.append(Arm("random-init", {"overrides": [*LOSS_SPACES["none"], *SETTINGS["weak"]], "train": False}))

_REP = "representation r (128-d post-ReLU residual-MLP output, method.embed)"
_SPEC = "the covariance of the L2-normalised rows, 450 digits test images"
METRICS = [
    Metric("linear_top1", f"linear probe top-1 on {_REP}: L-BFGS (at most 500 iterations, standardised features) "
           "fitted on the 1,347 digits training images, scored on the 450 test images"),
    Metric("knn_top1", f"weighted kNN top-1 (k={KNN_K}, T=0.1, cosine) on {_REP}; bank: the 1,347 training images; "
           "queries: the 450 test images"),
    Metric("collapsed_dims_representation", f"eigenvalues <= 1e-4 x the largest of {_SPEC}, {_REP} (dead units "
           "included: each gives a zero eigenvalue)", higher_is_better=False),
    Metric("collapsed_live_dims_representation", "collapsed_dims_representation minus dead_units_representation: "
           "near-zero eigen-directions that dead units do not explain", higher_is_better=False),
    Metric("dead_units_representation", f"units of {_REP} that are 0 on every test image", higher_is_better=False),
    Metric("collapsed_dims_pre_relu", f"eigenvalues <= 1e-4 x the largest of {_SPEC}, r before its last ReLU",
           higher_is_better=False),
    Metric("erank_representation", f"effective rank exp(H(lambda / sum lambda)) of {_SPEC}, {_REP}"),
    Metric("erank_loss_space", f"effective rank of {_SPEC}, the space the loss sees (z)"),
    Metric("collapsed_dims_loss_space", f"eigenvalues <= 1e-4 x the largest of {_SPEC}, z", higher_is_better=False),
    Metric("loss_space_dim", "dimension of the space the loss sees", higher_is_better=False),
    Metric("seconds", "wall-clock seconds of training + evaluation", higher_is_better=False),
]  # fmt: skip


def evaluate_arm(method: Any, data: Any, arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Probes on the representation (``method.embed``), collapse metrics of it, of its pre-ReLU values and of the
    loss space (``method.forward``); saves the spectra of ``r`` and ``z`` as the artifact ``spectra-ARM-seedS``."""
    import torch

    from contrastkit.evaluate import Embedding, collapse_report, embedding_spectrum, extract_features
    from contrastkit.evaluate.protocols import evaluate_features, values

    train, test = data.train, data.eval
    bank = extract_features(Embedding(method), train.images, batch_size=1024)
    rep = extract_features(Embedding(method), test.images, batch_size=1024)
    z = extract_features(method, test.images, batch_size=1024)
    with torch.no_grad():  # r before its last ReLU (ResidualMLP.pre_activation), on the method's device
        pre = method.backbone.pre_activation(test.images.to(next(method.parameters()).device)).float().cpu()
    out = values(evaluate_features(bank, train.labels, rep, test.labels, ["knn", "linear"], k=KNN_K, num_classes=10))
    rep_report = collapse_report(rep, pre, normalize=True)
    z_report = collapse_report(z, normalize=True)
    out.update({
        "collapsed_dims_representation": rep_report["collapsed_dims"],
        "collapsed_live_dims_representation": rep_report["collapsed_dims"] - rep_report["dead_units"],
        "dead_units_representation": rep_report["dead_units"],
        "collapsed_dims_pre_relu": rep_report["pre_relu_collapsed_dims"],
        "erank_representation": rep_report["effective_rank"], "erank_loss_space": z_report["effective_rank"],
        "collapsed_dims_loss_space": z_report["collapsed_dims"], "loss_space_dim": z_report["dim"],
    })  # fmt: skip
    unit = torch.nn.functional.normalize
    spectra = {"representation": embedding_spectrum(unit(rep, dim=1)).tolist(),
               "loss_space": embedding_spectrum(unit(z, dim=1)).tolist()}  # fmt: skip
    save_artifact_json(f"spectra-{arm.name}-seed{seed}", spectra)
    return out


_train_and_evaluate = config_arm_runner(BASE, evaluate_arm, QUICK)


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train and evaluate one arm on one intra-op thread (restored afterwards): batches of 512 x 128 gain nothing
    from a second thread, and on the shared 2-core CPU a contended pool made a row 6x slower (68 s vs 11 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_evaluate(arm, seed, quick)
    finally:
        torch.set_num_threads(threads)


def figures(results: dict[str, Any], directory: Path, quick: bool) -> list[Path]:
    """Mean normalised log-spectra over seeds, per arm: representation and loss space x the three settings."""
    import numpy as np

    from contrastkit.train.plots import pyplot, save_figure

    plt = pyplot()
    rows: Sequence[dict[str, Any]] = results["rows"]
    fig, axes = plt.subplots(2, len(SETTINGS), figsize=(15, 7), sharey="row")
    for col, setting in enumerate(SETTINGS):
        for row, space in enumerate(("representation", "loss_space")):
            ax = axes[row][col]
            for name in LOSS_SPACES:
                arm = f"{name}-{setting}"
                spectra = [np.asarray(load_artifact_json(f"spectra-{arm}-seed{r['seed']}")[space])
                           for r in rows if r["arm"] == arm]  # fmt: skip
                if not spectra:
                    continue
                normed = [np.sort(np.clip(s, 1e-12, None))[::-1] / max(s.max(), 1e-12) for s in spectra]
                mean_log = np.mean([np.log10(s) for s in normed], axis=0)
                ax.plot(np.arange(1, mean_log.size + 1), mean_log, label=name, lw=1.2)
            ax.axhline(-4, color="grey", lw=0.8, ls=":")  # the collapse threshold, 1e-4 x the largest
            ax.set(title=f"{space.replace('_', ' ')}, {setting}", xlabel="index (sorted)",
                   ylabel="log10 eigenvalue / largest")  # fmt: skip
            ax.set_ylim(bottom=-8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Covariance spectra of L2-normalised digits test embeddings (mean of log10 over seeds)")
    return [save_figure(fig, directory / "plots" / "spectra.png")]


EXPERIMENT = register_experiment(
    Experiment(
        name="directclr",
        description=(
            "DirectCLR vs projector arms, digits variant (Jing et al., ICLR 2022): residual MLP (D=128, zero-init "
            "residuals), cross-view InfoNCE tau 0.1, LARS lr 0.3 (4.8 x 256/4096), 10 warm-up epochs + cosine, "
            "batch 256, 150 epochs = 750 steps (--quick: 10), weak / deep / strong settings of depth and pixel "
            "noise; probes and collapse metrics on the 450 test digits. The first arm (mlp-weak) is the reference of "
            "the paired-difference tables; the hypotheses pair the arms the paper compares."
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        hypotheses=HYPOTHESES,
        gates=GATES,
        duration="15 minutes (19 arms x 5 seeds)",
        primary_metric="linear_top1",
        figures=figures,
        arm_command=lambda arm, seed, quick: arm_command(BASE, arm, seed, quick, QUICK),
    )
)
