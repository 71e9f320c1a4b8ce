"""ARIEL on the engine (ariel.md section 7.7, checks 6 and 8, and the composition of the loss): eps = lamb = 0 is
GRACE on subgraphs, the loss adds the adversarial term with the curriculum's weight, the regulariser's hinge and
stopped gradients, the attack leaves no parameter gradient and restores the training mode, the presets resolve."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torch_geometric")

from test_grace import two_blocks  # noqa: E402

from contrastkit.data import GraphSource  # noqa: E402
from contrastkit.data.batch import Batch  # noqa: E402
from contrastkit.losses import grace_loss  # noqa: E402
from contrastkit.method_registry import ConfigError  # noqa: E402
from contrastkit.methods.ariel import ARIEL, ARIELConfig, information_regulariser  # noqa: E402
from contrastkit.methods.grace import GRACE  # noqa: E402
from contrastkit.models import GCNEncoder  # noqa: E402
from contrastkit.train.engine import Engine  # noqa: E402


def make(cls: type = ARIEL, seed: int = 0, **kwargs: object) -> GRACE:
    torch.manual_seed(seed)
    return cls(GCNEncoder(8, 16, activation="prelu"), 16, temperature=0.5, **kwargs)


def test_eps_and_lamb_zero_is_grace() -> None:
    graph = two_blocks()
    grace, ariel = make(GRACE), make(ARIEL, eps=0.0, lamb=0.0)
    out = ariel.training_step(Batch(graph=graph))
    assert torch.allclose(out["loss"], grace.training_step(Batch(graph=graph))["loss"], atol=1e-7)
    assert float(out["flips"]) == 0 and "adversarial_nce" not in out and "info_reg" not in out


def test_loss_adds_the_adversarial_term_and_the_attack_leaves_no_gradient() -> None:
    graph = two_blocks()
    model = make(eps=0.7)
    model.train()
    out = model.training_step(Batch(graph=graph))
    assert all(p.grad is None for p in model.parameters())  # the attack used autograd.grad on S and delta only
    assert model.training and all(m.training for m in model.modules())  # eval mode for the attack, then back
    assert torch.allclose(out["loss"], out["nce"] + 0.7 * out["adversarial_nce"], atol=1e-6)
    assert out["adversarial_nce"] > 0 and out["flips"] >= 0
    out["loss"].backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_the_attack_raises_the_contrastive_loss_of_the_gcn() -> None:
    from contrastkit.augment.graph_attack import flip_map
    from contrastkit.models.graph import dense_adjacency

    graph = two_blocks()
    model = make(eps=1.0, alpha=50.0, beta=0.01)
    (x1, e1), _ = model.views(Batch(graph=graph), torch.Generator().manual_seed(0))
    with torch.no_grad():
        anchor = model.project(x1, e1)
    adv = model.adversarial_view(graph.x, graph.edge_index, (x1, e1), torch.Generator().manual_seed(1))
    adj = dense_adjacency(graph.edge_index, 40)

    def contrast(x: torch.Tensor, a: torch.Tensor) -> float:
        with torch.no_grad():
            return float(grace_loss(anchor, model.projection_head(model.backbone.forward_dense(x, a)), 0.5))

    clean = contrast(graph.x, adj)
    assert contrast(adv.x, adj + adv.relaxed * flip_map(adj)) > clean + 1e-3  # relaxed S, before the draw
    assert adv.budget == pytest.approx(0.2 * graph.edge_index.shape[1] / 2)


def test_the_regulariser_joins_the_loss_with_its_weight() -> None:
    graph = two_blocks()
    model = make(eps=0.0, lamb=2.0)
    out = model.training_step(Batch(graph=graph))
    (x1, e1), (x2, e2) = model.views(Batch(graph=graph), torch.Generator().manual_seed(0))
    with torch.no_grad():
        u1, u2, u0 = model.project(x1, e1), model.project(x2, e2), model.project(graph.x, graph.edge_index)
    assert torch.allclose(out["info_reg"], information_regulariser(u1, u2, u0, 0.5), atol=1e-6)
    assert torch.allclose(out["loss"], out["nce"] + 2.0 * out["info_reg"], atol=1e-6)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_curriculum_weight() -> None:
    model = make(eps=1.0, curriculum_gamma=1.1, curriculum_period=20)
    assert model.adversarial_weight(0) == 1.0 and model.adversarial_weight(18) == 1.0
    assert model.adversarial_weight(19) == pytest.approx(1.1) and model.adversarial_weight(39) == pytest.approx(1.21)
    assert make(eps=1.0).adversarial_weight(1000) == 1.0  # gamma 1 (current code): constant


def test_information_regulariser_hinge_and_stopped_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    u0 = torch.randn(6, 4, generator=g)
    u1 = (u0 + 0.01 * torch.randn(6, 4, generator=g)).requires_grad_(True)
    u2 = (-u0).requires_grad_(True)  # s12 small, s10 large: below the hinge
    assert float(information_regulariser(u1, u2, u0, 0.5).detach()) == 0.0
    u1b = u0.clone().requires_grad_(True)
    u2b = u0.clone().requires_grad_(True)
    u0b = (-u0).requires_grad_(True)  # the views agree with each other, not with the original
    tau = 0.5
    reg = information_regulariser(u1b, u2b, u0b, tau)
    expected = (2 * torch.exp(torch.tensor(1 / tau)) - 2 * torch.exp(torch.tensor(-1 / tau))).item()
    assert float(reg.detach()) == pytest.approx(expected, rel=1e-5)
    reg.backward()
    assert u0b.grad is None  # s10 and s20 are detached
    assert u1b.grad is not None
    two = information_regulariser(u0.clone(), u0.clone(), -u0, tau, form="two_hinges")
    assert float(two) == pytest.approx(expected, rel=1e-5)  # both hinges active: the same sum here


def test_sampling_covers_isolated_nodes() -> None:
    graph = two_blocks(40)
    graph.edge_index = graph.edge_index[:, (graph.edge_index < 36).all(0)]  # nodes 36..39 isolated
    source = GraphSource(graph)
    seen = torch.cat([source.batch_indices(0, i, 10, seed=3) for i in range(source.num_batches(10))])
    assert sorted(seen.tolist()) == list(range(40))


def train(seed: int, steps: int = 6, **kwargs: object) -> ARIEL:
    model = make(eps=0.5, **kwargs)
    engine = Engine(model, GraphSource(two_blocks()), [torch.optim.Adam(model.parameters(), lr=0.01)],
                    batch_size=20, seed=seed, max_steps=steps)  # fmt: skip
    engine.run()
    return model


def test_engine_runs_are_reproducible() -> None:
    a, b, c = train(1), train(1), train(2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    www = train(1, edge_step="sign", alpha=0.01, feature_box=0.5, symmetric_attack=False, curriculum_gamma=1.1)
    assert int(www.view_steps) == 6


def test_config_presets_resolve_and_explicit_keys_win() -> None:
    current = ARIELConfig().resolved()
    assert current["edge_step"] == "annealed_grad" and current["feature_box"] == 0.04 and current["alpha"] == 200.0
    www = ARIELConfig(attack_variant="www2022", feature_box=0.1).resolved()
    assert www["edge_step"] == "sign" and www["feature_box"] == 0.1 and www["curriculum_gamma"] == 1.1
    assert www["symmetric_attack"] is False and www["bisection_tol"] == 1e-5 and www["alpha"] == 0.01
    with pytest.raises(ConfigError, match="attack_variant"):
        ARIELConfig(attack_variant="tkdd").check()
    with pytest.raises(ConfigError, match="edge_drop"):
        ARIELConfig(edge_drop=[0.2]).check()
