r"""``contrastkit reproduce directclr``: projectors, DirectCLR and dimensional collapse on Fashion-MNIST (Jing,
Vincent, LeCun & Tian, ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning";
spec §7.2).

Every arm trains the same small-stem ResNet-18 (width 0.25, BatchNorm, representation ``r`` of ``D = 128`` pooled
features) with the same loss, the official code's symmetric cross-view InfoNCE (tau 0.1, N - 1 negatives from the
other view), the same Adam optimiser (lr 2e-3, wd 1e-6, 3 % warm-up then cosine), batch 256, bf16 autocast where
the CPU has it, and the same number of steps. Only what the loss sees differs:

* ``mlp``: ``z = W2 relu(BN(W1 r))`` (128 -> 128 -> 128), SimCLR's projector;
* ``linear``: ``z = W r`` (128 -> 128, no bias);
* ``none``: ``z = r``;
* ``directclr-d{16,32,64}``: ``z = r[:, :d0]`` with ``d0 = D/8, D/4, D/2`` (no projector);
* ``random-init`` (reference): the same backbone untrained, at the seed's initialisation.

Each over two augmentations (spec §7.2: "weak vs strong noise/crop"):

* ``weak``: random resized crop with scale (0.6, 1) + horizontal flip, no photometric jitter;
* ``strong``: crop scale (0.08, 1) + flip + brightness/contrast jitter of strength 1.0 (0.8, 0.8; p 0.8) +
  Gaussian blur (p 0.5).

Evaluation of the representation ``r`` (never of ``z``): a linear probe (L-BFGS, standardised features) and a
weighted kNN (k = 200, T = 0.1) with a fixed 10,000-image class-stratified training subset as the training set and
the 10,000 test images as queries; collapse metrics (:func:`contrastkit.evaluate.collapse_report` on the
L2-normalised rows, the official ``spectrum.py`` protocol) of ``r`` and of ``z`` on the test images. ``--quick``
trains 25 steps and evaluates on 2,000 / 2,000 images: a smoke test of the pipeline, not evidence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from contrastkit.reproduce.artifacts import load_artifact_json, save_artifact_json
from contrastkit.reproduce.experiment import Arm, Claim, Experiment, Metric, register_experiment
from contrastkit.reproduce.stats import compare_arms

FEATURES = 128  # pooled features of the width-0.25 ResNet-18
D0S = (FEATURES // 8, FEATURES // 4, FEATURES // 2)
STEPS_FULL = 250
STEPS_QUICK = 25
EVAL_FULL = (10_000, 10_000)  # (training subset for the probes, test images)
EVAL_QUICK = (2_000, 2_000)
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "weak": {"preset": "simclr", "min_scale": 0.6, "strength": 0.0, "hflip_p": 0.5, "blur": False},
    "strong": {"preset": "simclr", "min_scale": 0.08, "strength": 1.0, "hflip_p": 0.5, "blur": True},
}
LOSS_SPACES = ("mlp", "linear", "none") + tuple(f"directclr-d{d}" for d in D0S)

ARMS = [Arm(f"{space}-{aug}", {"loss_space": space, "augment": aug}) for aug in AUGMENTATIONS for space in LOSS_SPACES]
# Reference, not a method: the same backbone at its seed's random initialisation (no training step), evaluated the
# same way, so the report shows what the training budget adds to (or takes from) the representation.
ARMS.append(Arm("random-init", {"loss_space": "none", "augment": "weak", "train": False}))

_REP = "representation r (128-d pooled backbone features)"
_TEST = "Fashion-MNIST test images (10,000; 2,000 with --quick)"
METRICS = [
    Metric("linear_top1", f"linear probe top-1 on {_REP}: L-BFGS on a fixed class-stratified 10,000-image training "
           f"subset (2,000 quick), scored on the {_TEST}"),
    Metric("knn_top1", f"weighted kNN top-1 (k=200, T=0.1, cosine) on {_REP}, same training subset, {_TEST}"),
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


def arm_config(setting: Mapping[str, Any], seed: int, steps: int) -> Any:
    """The harness :class:`~contrastkit.train.Config` of one arm (same for every arm except method/augment)."""
    from contrastkit.train import config_from_dict

    space = str(setting["loss_space"])
    if space.startswith("directclr-d"):
        method = {"name": "directclr", "d0": int(space.removeprefix("directclr-d")), "temperature": 0.1,
                  "negatives": "cross_view", "gather_distributed": False}  # fmt: skip
    else:
        method = {"name": "simclr", "projector": space, "temperature": 0.1, "negatives": "cross_view",
                  "gather_distributed": False}  # fmt: skip
    return config_from_dict({
        "name": f"directclr-repro-{space}-{setting['augment']}",
        "data": {"name": "fashion-mnist", "train_split": "train", "eval_split": "test", "batch_size": 256},
        "augment": dict(AUGMENTATIONS[str(setting["augment"])]),
        "model": {"backbone": "resnet18", "width": 0.25, "small_stem": True, "norm": "batch",
                  "projection_dim": FEATURES, "hidden_dim": FEATURES},
        "method": method,
        "optim": {"name": "adam", "lr": 2e-3, "weight_decay": 1e-6},
        "schedule": {"name": "cosine", "warmup_fraction": 0.03},
        "trainer": {"precision": "auto", "max_steps": steps, "seed": seed},
    })  # fmt: skip


@lru_cache(maxsize=1)
def _fashion_mnist() -> tuple[Any, Any]:
    from contrastkit.data import load

    return load("fashion-mnist", "train"), load("fashion-mnist", "test")


def train_arm(cfg: Any, train_images: Any, device: Any, train: bool = True) -> Any:
    """Train the method of ``cfg`` for ``cfg.trainer.max_steps`` steps (none when ``train`` is false: the seed's
    initialisation); data order and views are functions of ``(seed, step)``, so every arm sees the same images in the
    same order. Returns the method in eval mode."""
    import torch

    from contrastkit import accel
    from contrastkit.methods import ViewBatch
    from contrastkit.train.builders import build_method, build_optimizer, lr_factor

    seed, batch = cfg.trainer.seed, cfg.data.batch_size
    steps = int(cfg.trainer.max_steps) if train else 0
    torch.manual_seed(seed)
    precision = accel.resolve_precision(cfg.trainer.precision, device)
    method = accel.channels_last(build_method(cfg, 28, 1).to(device), precision == "bf16")
    optimizer = build_optimizer(cfg, method)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
    per_epoch = len(train_images) // batch
    method.train()
    for step in range(steps):
        if step and step % per_epoch == 0:
            order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed + step))
        idx = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * lr_factor(cfg, step / steps)
        images = train_images[idx].to(device)
        views = method.make_views(images, generator=torch.Generator(device=device).manual_seed(seed * 1_000_003 + step))
        if precision == "bf16":
            views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
        with accel.autocast(device, precision):
            loss = method.training_step(ViewBatch(views))["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{cfg.name}: the loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return method.eval()


def evaluate_arm(method: Any, train: Any, test: Any, n_train: int, n_test: int, device: Any) -> dict[str, Any]:
    """Probes on the representation and collapse metrics of both spaces (see the module docstring)."""
    import torch

    from contrastkit.data.splits import stratified_split
    from contrastkit.evaluate import collapse_report, embedding_spectrum, extract_features, knn_accuracy, linear_probe

    train_idx = stratified_split(train.labels, [n_train], seed=0)[0]
    test_idx = torch.arange(min(n_test, len(test)))
    kwargs = {"batch_size": 1024, "device": device, "precision": "auto"}
    bank = extract_features(method.backbone, train.images[train_idx], **kwargs)
    rep = extract_features(method.backbone, test.images[test_idx], **kwargs)
    z = extract_features(method, test.images[test_idx], **kwargs)
    y_bank, y_test = train.labels[train_idx], test.labels[test_idx]
    rep_report = collapse_report(rep, normalize=True)
    z_report = collapse_report(z, normalize=True)
    return {
        "linear_top1": linear_probe(bank, y_bank, rep, y_test, num_classes=10).test_accuracy,
        "knn_top1": knn_accuracy(bank, y_bank, rep, y_test, k=200, temperature=0.1, num_classes=10),
        "erank_representation": rep_report["effective_rank"],
        "erank_loss_space": z_report["effective_rank"],
        "collapsed_dims_representation": rep_report["collapsed_dims"],
        "dead_units_representation": rep_report["dead_units"],
        "loss_space_dim": z_report["dim"],
        "_spectra": {
            "representation": embedding_spectrum(torch.nn.functional.normalize(rep, dim=1)).tolist(),
            "loss_space": embedding_spectrum(torch.nn.functional.normalize(z, dim=1)).tolist(),
        },
    }


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    import torch

    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, test = _fashion_mnist()
    cfg = arm_config(arm.setting, seed, STEPS_QUICK if quick else STEPS_FULL)
    method = train_arm(cfg, train.images, device, train=bool(arm.setting.get("train", True)))
    n_train, n_test = EVAL_QUICK if quick else EVAL_FULL
    out = evaluate_arm(method, train, test, n_train, n_test, device)
    save_artifact_json(f"spectra-{arm.name}-seed{seed}", out.pop("_spectra"))
    out["seconds"] = time.perf_counter() - start
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

    from contrastkit.train.report import pyplot, save_figure

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
            "DirectCLR vs projector arms on Fashion-MNIST (Jing et al., ICLR 2022, spec section 7.2): small-stem "
            f"ResNet-18 w0.25 (D={FEATURES}), cross-view InfoNCE tau 0.1, Adam 2e-3, batch 256, {STEPS_FULL} steps "
            f"(--quick: {STEPS_QUICK}), weak vs strong augmentation; probes and collapse metrics on the test split. "
            "The first arm (mlp-weak) is the reference of the paired-difference tables; the claims pair the arms "
            "the paper compares."
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        claims=claims,
        primary_metric="linear_top1",
        figures=figures,
    )
)
