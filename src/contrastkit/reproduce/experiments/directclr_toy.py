r"""``contrastkit reproduce directclr-toy``: the two toy theories of dimensional collapse (Jing, Vincent, LeCun &
Tian, ICLR 2022, Sec. 4-5, with the settings of their two toy experiments).

A linear encoder ``z = W x`` (``x`` ``[128, 16]`` drawn from a fixed pool of 10,000 standard-normal points) is
trained with plain SGD (no weight decay) on the un-normalised, one-directional InfoNCE of two noisy views::

    x1 = x + sigma * m * eps1,  x2 = x + sigma * m * eps2          (eps ~ N(0, I), m = noise mask)
    L  = CE(z1 z2^T / tau, arange(128)),  tau = 0.1                 (cross_view_info_nce, normalize=False)

* **Case 1, strong augmentation**: one ``Linear(16, 16)`` (PyTorch default init, with bias), noise on the last 8
  input dimensions only, sigma 0.01 (weak) vs 1.5 (strong), lr 1e-3. Theory: strong noise shrinks the weights
  of the noisy directions, so the embedding collapses onto about 8 dimensions.
* **Case 2, implicit regularisation**: ``L`` bias-free ``16 x 16`` layers, each initialised as ``U diag(s) V^T``
  with ``s_i = exp(-0.35 i)`` (``U, V`` from the SVD of a uniform random matrix), noise 1e-3 on every dimension,
  lr 1e-2. Theory: with two layers, the small singular directions stay small (the product's dynamics are
  amplitude-dependent), with one layer they grow back.

Metrics are measured on 1,000 fresh ``N(0, I)`` inputs: the effective rank ``exp(H(lambda / sum lambda))`` of
the embedding covariance, the number of eigenvalues below ``1e-2`` and ``1e-4`` of the largest, and
``log10 ||W[:, 8:]||_F^2 / ||W[:, :8]||_F^2`` (the gain of the noisy input directions relative to the clean ones,
``W`` the product of the layers). The full run uses 3,000 steps (Jing et al. run 10,000);
``--quick`` 1,500.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from contrastkit.reproduce.experiment import Arm, Experiment, Hypothesis, Metric, register_experiment

DIM = 16
NOISY_FROM = 8  # case 1 perturbs input dimensions 8..15
BATCH = 128
POOL = 10_000
TEMPERATURE = 0.1
STEPS_FULL = 3_000
STEPS_QUICK = 1_500
INIT_DECAY = 0.35  # case 2: initial singular values exp(-0.35 i)

ARMS = [
    Arm("case1-weak-noise", {"case": 1, "noise": 0.01, "layers": 1, "lr": 1e-3}),
    Arm("case1-strong-noise", {"case": 1, "noise": 1.5, "layers": 1, "lr": 1e-3}),
    Arm("case2-one-layer", {"case": 2, "noise": 1e-3, "layers": 1, "lr": 1e-2}),
    Arm("case2-two-layers", {"case": 2, "noise": 1e-3, "layers": 2, "lr": 1e-2}),
]
_PROBE = "1,000 fresh N(0, I_16) inputs, centred covariance of the embedding, float64 eigvalsh"
METRICS = [
    Metric("effective_rank", f"exp(entropy of lambda / sum lambda) of the embedding covariance; {_PROBE}"),
    Metric("dims_below_1e-2", f"eigenvalues <= 1e-2 * max; {_PROBE}", higher_is_better=False),
    Metric("dims_below_1e-4", f"eigenvalues <= 1e-4 * max (DirectCLR's collapse threshold); {_PROBE}",
           higher_is_better=False),
    Metric("log10_noisy_gain", "log10(||W[:, 8:]||_F^2 / ||W[:, :8]||_F^2), W = product of the linear layers: the "
           "embedding variance carried by the input dims that case 1 perturbs, relative to the clean ones"),
    Metric("seconds", "wall-clock seconds of the training run", higher_is_better=False),
]  # fmt: skip


def _case2_weight(generator: Any) -> Any:
    """``U diag(exp(-0.35 i)) V^T`` with ``U, V`` the singular vectors of a uniform random 16 x 16 matrix."""
    import torch

    u, _, vh = torch.linalg.svd(torch.rand(DIM, DIM, generator=generator, dtype=torch.float64))
    s = torch.exp(-INIT_DECAY * torch.arange(DIM, dtype=torch.float64))
    return (u @ torch.diag(s) @ vh).float()


def build_toy_encoder(case: int, layers: int, generator: Any) -> Any:
    """The toy encoder: case 1 one ``Linear(16, 16)`` with bias (default init drawn from ``generator``); case 2
    ``layers`` bias-free ``16 x 16`` layers with the decaying-spectrum init. ``[B, 16] -> [B, 16]``."""
    import torch
    from torch import nn

    if case == 1:
        if layers != 1:
            raise ValueError(f"toy case 1 uses one linear layer, got layers={layers}")
        net = nn.Linear(DIM, DIM)
        bound = 1.0 / math.sqrt(DIM)  # PyTorch's default Linear init, drawn from our generator
        with torch.no_grad():
            net.weight.uniform_(-bound, bound, generator=generator)
            net.bias.uniform_(-bound, bound, generator=generator)
        return net
    if case != 2 or layers < 1:
        raise ValueError(f"toy case must be 1 or 2 with layers >= 1, got case={case}, layers={layers}")
    stack = [nn.Linear(DIM, DIM, bias=False) for _ in range(layers)]
    with torch.no_grad():
        for layer in stack:
            layer.weight.copy_(_case2_weight(generator))
    return nn.Sequential(*stack)


def end_to_end_weight(net: Any) -> Any:
    """The product ``W_L ... W_1`` ``[16, 16]`` of the encoder's weight matrices (float64)."""
    import torch

    weight = torch.eye(DIM, dtype=torch.float64)
    for p in net.parameters():
        if p.ndim == 2:
            weight = p.detach().double() @ weight
    return weight


def train_toy(setting: Mapping[str, Any], seed: int, steps: int) -> Any:
    """Train one toy encoder (see the module docstring) and return it."""
    import torch

    from contrastkit.losses import cross_view_info_nce

    generator = torch.Generator().manual_seed(seed)
    case, noise, layers, lr = int(setting["case"]), float(setting["noise"]), int(setting["layers"]), setting["lr"]
    net = build_toy_encoder(case, layers, generator)
    pool = torch.randn(POOL, DIM, generator=generator)
    mask = torch.ones(DIM)
    if case == 1:
        mask[:NOISY_FROM] = 0.0
    optimizer = torch.optim.SGD(net.parameters(), lr=float(lr), weight_decay=0.0)
    for _ in range(steps):
        x = pool[torch.randperm(POOL, generator=generator)[:BATCH]]
        x1 = x + noise * mask * torch.randn(BATCH, DIM, generator=generator)
        x2 = x + noise * mask * torch.randn(BATCH, DIM, generator=generator)
        loss = cross_view_info_nce(net(x1), net(x2), TEMPERATURE, symmetric=False, normalize=False)
        optimizer.zero_grad(set_to_none=True)
        # allowed outside the engine: the toy theories (paper Sec. 4-5) train a linear net on Gaussian pairs, a
        # closed-form dynamics experiment with no data source, views or method
        loss.backward()
        optimizer.step()
    return net


def measure_toy(net: Any, seed: int) -> dict[str, float]:
    """Collapse metrics of ``net`` on 1,000 fresh Gaussian inputs (see ``METRICS``)."""
    import torch

    from contrastkit.evaluate import effective_rank, embedding_spectrum, rank_at_threshold

    probe = torch.randn(1000, DIM, generator=torch.Generator().manual_seed(10_000 + seed))
    with torch.no_grad():
        eig = embedding_spectrum(net(probe))
    weight = end_to_end_weight(net)
    gain = weight[:, NOISY_FROM:].pow(2).sum() / weight[:, :NOISY_FROM].pow(2).sum()
    return {
        "effective_rank": effective_rank(eig),
        "dims_below_1e-2": float(DIM - rank_at_threshold(eig, 1e-2)),
        "dims_below_1e-4": float(DIM - rank_at_threshold(eig, 1e-4)),
        "log10_noisy_gain": float(torch.log10(gain)),
    }


def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Train the arm's toy encoder for 3,000 steps (1,500 with ``quick``) and measure its collapse, on one
    intra-op thread (restored afterwards): 16 x 128 matrices gain nothing from more, and a busy pool slows them."""
    import torch

    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = train_toy(arm.setting, seed, STEPS_QUICK if quick else STEPS_FULL)
        metrics = measure_toy(net, seed)
    finally:
        torch.set_num_threads(threads)
    metrics["seconds"] = time.perf_counter() - start
    return metrics


# The paper's toy claims, declared before the run; margins in the metric's units (2 of 16 dims of effective rank;
# one decade of gain, i.e. a 10x shrink).
HYPOTHESES = [
    Hypothesis("Strong augmentation causes dimensional collapse (case 1): the effective rank with noise 1.5 on 8 "
               "input dims is more than 2 below that with noise 0.01", "effective_rank", "case1-weak-noise",
               "case1-strong-noise", margin=2.0),
    Hypothesis("Case 1: strong noise shrinks the embedding gain of the noisy input dims by more than 10x relative "
               "to weak noise", "log10_noisy_gain", "case1-weak-noise", "case1-strong-noise", margin=1.0),
    Hypothesis("Implicit regularisation (case 2): with weak noise, two linear layers end with an effective rank "
               "more than 2 below one linear layer", "effective_rank", "case2-one-layer", "case2-two-layers",
               margin=2.0),
]  # fmt: skip


EXPERIMENT = register_experiment(
    Experiment(
        name="directclr-toy",
        description=(
            "DirectCLR (Jing et al., ICLR 2022) toy theories of dimensional collapse: strong augmentation with one "
            "linear layer (case 1) and implicit regularisation with two linear layers (case 2), linear 16-d "
            "encoders trained with un-normalised InfoNCE, spectrum on fresh Gaussian inputs"
        ),
        arms=ARMS,
        metrics=METRICS,
        run=run,
        hypotheses=HYPOTHESES,
        duration="1 minute (5 seeds)",
        primary_metric="effective_rank",
    )
)
