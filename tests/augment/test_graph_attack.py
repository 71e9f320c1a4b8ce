"""ARIEL's adversarial graph view (ariel.md section 7.7, checks 3-5): the budget projection against a brute-force
QP, the attack's ascent, and the validity of the discretised graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contrastkit.augment.graph_attack import discretise_flips, flip_map, pgd_graph_attack, project_budget


def random_graph(n: int = 30, p: float = 0.15, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=g) < p).float().triu(1)
    return upper + upper.t()


def test_projection_is_feasible_idempotent_and_matches_a_brute_force_qp() -> None:
    from scipy.optimize import minimize

    s = torch.tensor([0.9, 1.7, -0.3, 0.4, 0.05, 0.6], dtype=torch.float64)
    budget = 1.5
    projected = project_budget(s, budget, tol=1e-10)
    assert projected.min() >= 0 and projected.max() <= 1 and float(projected.sum()) <= budget + 1e-12
    target = s.numpy()
    qp = minimize(lambda v: 0.5 * np.sum((v - target) ** 2), np.zeros(6), jac=lambda v: v - target,
                  bounds=[(0, 1)] * 6, constraints=[{"type": "ineq", "fun": lambda v: budget - v.sum()}],
                  method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})  # fmt: skip
    np.testing.assert_allclose(projected.numpy(), qp.x, atol=1e-6)
    assert torch.equal(project_budget(projected, budget, tol=1e-10), projected)  # feasible: unchanged
    inside = torch.tensor([0.2, 0.3, 0.0, 1.0])
    assert torch.equal(project_budget(inside, 2.0), inside)
    loose = project_budget(s.float() * 3, budget, tol=1e-3)  # the code's tolerance: never above the budget
    assert float(loose.sum()) <= budget


def test_projection_respects_the_mask() -> None:
    s = torch.full((4, 4), 0.9)
    mask = torch.ones(4, 4, dtype=torch.bool).triu(1)
    out = project_budget(s, 2.0, tol=1e-8, mask=mask)
    assert float(out[~mask].abs().sum()) == 0.0
    assert float(out.sum()) == pytest.approx(2.0, abs=1e-6)  # six equal entries share the budget
    assert torch.allclose(out[mask], torch.full((6,), 1 / 3), atol=1e-6)


def linear_loss(weights: torch.Tensor, features: torch.Tensor):
    """A smooth loss of (x, A) whose ascent is known: sum(W * A) + <x, features>."""

    def loss(x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return (weights * adj).sum() + (x * features).sum()

    return loss


def test_attack_ascends_and_spends_the_budget_on_the_best_pairs() -> None:
    n = 12
    adj = random_graph(n, 0.3, seed=1)
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(n, n, generator=g)
    weights = weights + weights.t()
    x = torch.rand(n, 5, generator=g)
    features = torch.randn(n, 5, generator=g)
    loss = linear_loss(weights, features)
    budget = 3.0
    adv = pgd_graph_attack(loss, x, adj, budget=budget, steps=20, alpha=1.0, beta=0.01, feature_box=0.04,
                           bisection_tol=1e-8)  # fmt: skip
    flips = flip_map(adj)
    relaxed_value = loss(adv.x, adj + adv.relaxed * flips)
    assert float(relaxed_value) > float(loss(x, adj)) + 1.0
    gain = (2 * weights * flips).triu(1)  # the loss gained by flipping pair (i, j), both directions
    best = set(gain.flatten().topk(3).indices.tolist())
    chosen = set((adv.relaxed.triu(1).flatten() > 0.5).nonzero().flatten().tolist())
    assert chosen == best  # a linear objective: the budget goes to the three most profitable flips
    assert torch.allclose(adv.x - x, 0.04 * features.sign())  # sign ascent reaches the box


def test_adversarial_graph_is_valid_and_within_budget() -> None:
    n = 40
    adj = random_graph(n, 0.1, seed=2)
    g = torch.Generator().manual_seed(3)
    weights = torch.randn(n, n, generator=g)
    features = torch.randn(n, 6, generator=g)
    loss = linear_loss(weights + weights.t(), features)
    x = torch.rand(n, 6, generator=g)
    budget = 0.2 * float(adj.triu(1).sum())
    for symmetric in (True, False):
        adv = pgd_graph_attack(loss, x, adj, budget=budget, alpha=0.5, feature_box=0.04, symmetric=symmetric,
                               generator=torch.Generator().manual_seed(4))  # fmt: skip
        assert torch.equal(adv.adj, adv.adj.t()) and float(adv.adj.diagonal().abs().sum()) == 0
        assert bool(((adv.adj == 0) | (adv.adj == 1)).all())
        assert float((adv.x - x).abs().max()) <= 0.04 + 1e-7
        assert adv.flips == int((adv.adj != adj).triu(1).sum())
        assert float(adv.relaxed.triu(1).sum()) <= budget + 1e-6
    draws = torch.stack([discretise_flips(adv.relaxed, torch.Generator().manual_seed(i)).triu(1).sum()
                         for i in range(1000)])  # fmt: skip
    assert float(draws.mean()) <= budget + 3 * math.sqrt(budget / 1000)  # within budget in expectation
    best = pgd_graph_attack(loss, x, adj, budget=budget, alpha=0.5, discretise="best_of_k", best_of_k=5,
                            generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert best.flips <= budget


def test_bad_inputs_fail_in_one_line() -> None:
    adj = random_graph(5, 0.5)
    loss = linear_loss(torch.ones(5, 5), torch.ones(5, 2))
    with pytest.raises(ValueError, match="symmetric 0/1"):
        pgd_graph_attack(loss, torch.zeros(5, 2), adj + torch.eye(5), budget=1.0)
    with pytest.raises(ValueError, match="edge_step"):
        pgd_graph_attack(loss, torch.zeros(5, 2), adj, budget=1.0, edge_step="adam")
    with pytest.raises(ValueError, match="budget"):
        project_budget(torch.zeros(3), -1.0)
