"""GRACE on the engine: the loss is grace_loss of the two seeded views' projections, runs are reproducible, and
training separates the communities of a two-block graph."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torch_geometric")
from torch_geometric.data import Data  # noqa: E402

from contrastkit.augment import graph_views  # noqa: E402
from contrastkit.data import GraphSource  # noqa: E402
from contrastkit.data.batch import Batch  # noqa: E402
from contrastkit.losses import grace_loss  # noqa: E402
from contrastkit.methods.grace import GRACE  # noqa: E402
from contrastkit.models import GCNEncoder  # noqa: E402
from contrastkit.train.engine import Engine  # noqa: E402


def two_blocks(n: int = 40, seed: int = 0) -> Data:
    """Two dense communities of n/2 nodes, a few bridges; features: noisy community indicator."""
    g = torch.Generator().manual_seed(seed)
    half = n // 2
    labels = (torch.arange(n) >= half).long()
    same = labels[:, None] == labels[None, :]
    p = torch.where(same, torch.full((n, n), 0.3), torch.full((n, n), 0.01))
    upper = torch.triu(torch.rand(n, n, generator=g) < p, diagonal=1)
    edge_index = torch.cat([upper.nonzero().T, upper.nonzero().T.flip(0)], dim=1)
    x = torch.randn(n, 8, generator=g) + 0.5 * torch.nn.functional.one_hot(labels, 8).float()
    return Data(x=x, edge_index=edge_index, y=labels)


def make(seed: int = 0) -> GRACE:
    torch.manual_seed(seed)
    return GRACE(GCNEncoder(8, 16, activation="prelu"), 16, temperature=0.5)


def test_loss_is_grace_of_the_seeded_views() -> None:
    model, graph = make(), two_blocks()
    out = model.training_step(Batch(graph=graph))
    generator = torch.Generator().manual_seed(0)
    (x1, e1), (x2, e2) = graph_views(graph.x, graph.edge_index, edge_drop=(0.2, 0.4), feature_mask=(0.3, 0.4),
                                     generator=generator)  # fmt: skip
    u, v = model.projection_head(model.backbone(x1, e1)), model.projection_head(model.backbone(x2, e2))
    assert torch.allclose(out["loss"], grace_loss(u, v, 0.5), atol=1e-6)
    assert int(model.view_steps) == 1  # the next step draws other views
    assert not torch.allclose(model.training_step(Batch(graph=graph))["loss"], out["loss"])


def run(seed: int, steps: int = 40) -> GRACE:
    model = make(0)
    engine = Engine(model, GraphSource(two_blocks()), [torch.optim.Adam(model.parameters(), lr=0.01)],
                    batch_size=40, seed=seed, max_steps=steps)  # fmt: skip
    engine.run()
    return model


def test_runs_are_reproducible_and_training_separates_the_communities() -> None:
    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))
    graph = two_blocks()
    before = make(0).eval()

    def separation(model: GRACE) -> float:  # mean cosine within communities minus across
        with torch.no_grad():
            z = torch.nn.functional.normalize(model.embed_graph(graph.x, graph.edge_index), dim=1)
        same = graph.y[:, None] == graph.y[None, :]
        s = z @ z.T
        return float(s[same].mean() - s[~same].mean())

    assert separation(a.eval()) > separation(before) + 0.05


def test_images_and_missing_graphs_fail_in_one_line() -> None:
    model = make()
    with pytest.raises(ValueError, match="graph batches"):
        model.make_views(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="needs a graph batch"):
        model.training_step(Batch(labels=torch.zeros(2, dtype=torch.long)))
