"""GraphSource: node batches as induced subgraphs (relabelled in the batch's order), the whole graph at batch N,
a seeded order, and training through the engine on graph batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("torch_geometric")
from torch_geometric.data import Data  # noqa: E402

from contrastkit.data.graph_source import GraphSource  # noqa: E402


def ring(n: int = 12) -> Data:
    nodes = torch.arange(n)
    edge_index = torch.cat([torch.stack([nodes, (nodes + 1) % n]), torch.stack([(nodes + 1) % n, nodes])], dim=1)
    return Data(x=torch.randn(n, 4, generator=torch.Generator().manual_seed(0)), edge_index=edge_index, y=nodes % 3)


def test_fetch_is_the_induced_subgraph_in_the_batch_order() -> None:
    g = ring()
    batch = GraphSource(g).fetch(torch.tensor([5, 4, 9, 3]))
    sub = batch.graph
    assert torch.equal(sub.x, g.x[[5, 4, 9, 3]]) and batch.labels.tolist() == [2, 1, 0, 0]
    got = {(int(a), int(b)) for a, b in sub.edge_index.T}
    # ring edges among {5, 4, 9, 3}: 3-4 and 4-5 (both directions), relabelled 5 -> 0, 4 -> 1, 9 -> 2, 3 -> 3
    assert got == {(0, 1), (1, 0), (1, 3), (3, 1)}


def test_batch_n_is_the_whole_graph_and_the_order_is_seeded() -> None:
    g = ring()
    source = GraphSource(g)
    assert source.num_batches(12) == 1 and source.num_batches(5) == 2
    whole = source.fetch(source.batch_indices(0, 0, 12, seed=3))
    assert whole.graph.edge_index.shape[1] == g.edge_index.shape[1]
    first = source.batch_indices(1, 0, 5, seed=3)
    assert torch.equal(first, source.batch_indices(1, 0, 5, seed=3))
    assert not torch.equal(first, source.batch_indices(2, 0, 5, seed=3))
    epoch = torch.cat([source.batch_indices(0, i, 6, seed=1) for i in range(2)])
    assert sorted(epoch.tolist()) == list(range(12))


def test_bad_graphs_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="node features x"):
        GraphSource(Data(edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(ValueError, match="outside 0..2"):
        GraphSource(Data(x=torch.zeros(3, 2), edge_index=torch.tensor([[0], [5]])))


class _TinyGrace(nn.Module):
    """A test-local graph method: a linear encoder on the fetched subgraph's features plus neighbour sums, GRACE."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 8)

    def make_views(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple:
        raise AssertionError("graph batches carry no images")

    def training_step(self, batch: object) -> dict[str, torch.Tensor]:
        from contrastkit.augment import graph_views
        from contrastkit.losses import grace_loss

        g = batch.graph  # type: ignore[attr-defined]
        (x1, e1), (x2, e2) = graph_views(g.x, g.edge_index, edge_drop=(0.2, 0.3), feature_mask=(0.1, 0.2),
                                         generator=torch.Generator().manual_seed(len(g.x)))  # fmt: skip

        def encode(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            h = self.linear(x)
            return h + torch.zeros_like(h).index_add_(0, e[1], h[e[0]])

        return {"loss": grace_loss(encode(x1, e1), encode(x2, e2), 0.5)}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@pytest.mark.parametrize("batch_size", [40, 20])
def test_the_engine_trains_on_graph_batches(batch_size: int) -> None:
    """The whole graph every step (the loss falls) and random 20-node subgraphs (every node once an epoch)."""
    from contrastkit.train.engine import Engine

    torch.manual_seed(0)
    method = _TinyGrace()
    source = GraphSource(ring(40))
    engine = Engine(method, source, [torch.optim.Adam(method.parameters(), lr=0.05)], batch_size=batch_size,
                    seed=0, max_steps=30)  # fmt: skip
    engine.start()
    losses = [float(engine.step()["loss"]) for _ in range(30)]
    assert engine.finished() and engine.state.samples_seen == 30 * batch_size
    if batch_size == 40:
        assert losses[-1] < losses[0] - 0.1
