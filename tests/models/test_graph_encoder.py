"""GCN encoder (GRACE/ARIEL): sparse == dense normalisation, hand-computed example, widths, activations,
gradients, projection head, bad input, and lazy torch_geometric import."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import Tensor

pytest.importorskip("torch_geometric")

from contrastkit.models.graph import (  # noqa: E402
    GCNEncoder,
    GraphProjectionHead,
    dense_adjacency,
    normalized_adjacency,
)


def _random_graph(num_nodes: int, num_edges: int, *, symmetric: bool, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=g)
    keep = src != dst  # no self-loops (the dense path always adds I)
    edges = torch.stack([src[keep], dst[keep]])
    if symmetric:
        edges = torch.cat([edges, edges.flip(0)], dim=1)
    return torch.unique(edges, dim=1)


def _brute_force_gcn(encoder: GCNEncoder, x: Tensor, edge_index: Tensor) -> Tensor:
    """Per-node loop: h_i' = act( sum_{j -> i or j = i} h_j W / sqrt(d_i d_j) + b ), d = in-degree + 1."""
    n = x.shape[0]
    in_neighbours: list[list[int]] = [[i] for i in range(n)]
    for s, t in edge_index.t().tolist():
        in_neighbours[t].append(s)
    deg = [len(nb) for nb in in_neighbours]
    h = x
    for conv in encoder.convs:
        hw = h @ conv.lin.weight.t()
        rows = [sum(hw[j] / math.sqrt(deg[i] * deg[j]) for j in in_neighbours[i]) + conv.bias for i in range(n)]
        h = encoder.activation(torch.stack(rows))
    return h


@pytest.mark.parametrize("symmetric", [True, False])
def test_sparse_equals_dense_and_brute_force_float64(symmetric: bool) -> None:
    encoder = GCNEncoder(7, 5, num_layers=2, activation="prelu").double()
    x = torch.randn(25, 7, dtype=torch.float64)
    edge_index = _random_graph(25, 60, symmetric=symmetric, seed=1)
    sparse = encoder(x, edge_index)
    dense = encoder.forward_dense(x, dense_adjacency(edge_index, 25, torch.ones(edge_index.shape[1]).double()))
    assert sparse.shape == (25, 5)
    torch.testing.assert_close(dense, sparse, rtol=0, atol=1e-10)
    torch.testing.assert_close(_brute_force_gcn(encoder, x, edge_index), sparse, rtol=0, atol=1e-10)


def test_sparse_equals_dense_float32_and_edge_weights() -> None:
    encoder = GCNEncoder(6, 4, num_layers=3, activation="relu")
    x = torch.randn(40, 6)
    edge_index = _random_graph(40, 120, symmetric=True, seed=2)
    weight = torch.rand(edge_index.shape[1]) + 0.5
    torch.testing.assert_close(
        encoder.forward_dense(x, dense_adjacency(edge_index, 40)), encoder(x, edge_index), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(
        encoder.forward_dense(x, dense_adjacency(edge_index, 40, weight)),
        encoder(x, edge_index, weight),
        rtol=0,
        atol=1e-5,
    )


def test_hand_computed_three_node_path() -> None:
    # path 0 - 1 - 2: degrees with self-loops (2, 3, 2); one layer F = h = 1, W = 1, b = 0, ReLU
    encoder = GCNEncoder(1, 1, num_layers=1, activation="relu").double()
    with torch.no_grad():
        encoder.convs[0].lin.weight.fill_(1.0)
        encoder.convs[0].bias.zero_()
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    r6 = math.sqrt(6.0)
    expected = torch.tensor([[1 / 2 + 2 / r6], [1 / r6 + 2 / 3 + 3 / r6], [2 / r6 + 3 / 2]], dtype=torch.float64)
    torch.testing.assert_close(encoder(x, edge_index), expected, rtol=0, atol=1e-12)
    adj = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(encoder.forward_dense(x, adj), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        normalized_adjacency(adj),
        torch.tensor([[1 / 2, 1 / r6, 0], [1 / r6, 1 / 3, 1 / r6], [0, 1 / r6, 1 / 2]], dtype=torch.float64),
    )


@pytest.mark.parametrize(
    ("num_layers", "widths"), [(1, [(9, 4)]), (2, [(9, 8), (8, 4)]), (3, [(9, 8), (8, 8), (8, 4)])]
)
def test_layer_widths_f_2h_h(num_layers: int, widths: list[tuple[int, int]]) -> None:
    encoder = GCNEncoder(9, 4, num_layers=num_layers)
    assert [(c.in_channels, c.out_channels) for c in encoder.convs] == widths
    assert [tuple(c.lin.weight.shape) for c in encoder.convs] == [(o, i) for i, o in widths]
    assert encoder.num_features == 4
    assert not any(c.cached for c in encoder.convs)
    assert encoder(torch.randn(10, 9), _random_graph(10, 20, symmetric=True, seed=3)).shape == (10, 4)


@pytest.mark.parametrize("activation", ["relu", "prelu"])
def test_activation_after_every_layer(activation: str) -> None:
    encoder = GCNEncoder(5, 6, num_layers=3, activation=activation)
    if activation == "prelu":
        with torch.no_grad():
            encoder.activation.weight.fill_(0.1)
    raw: list[Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, _i, out: raw.append(out)) for c in encoder.convs]
    inputs: list[Tensor] = []
    hooks += [c.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for c in encoder.convs[1:]]
    x, edge_index = torch.randn(30, 5), _random_graph(30, 80, symmetric=True, seed=4)
    out = encoder(x, edge_index)
    for h in hooks:
        h.remove()
    expected_act = torch.relu if activation == "relu" else (lambda t: torch.where(t >= 0, t, 0.1 * t))
    for pre, post in zip(raw, inputs + [out], strict=True):
        assert (pre < 0).any()  # the activation has something to do
        torch.testing.assert_close(post, expected_act(pre))
    if activation == "relu":
        assert (out >= 0).all() and (encoder.forward_dense(x, dense_adjacency(edge_index, 30)) >= 0).all()


def test_rrelu_is_deterministic_in_eval() -> None:
    encoder = GCNEncoder(5, 3, activation="rrelu").eval()
    x, edge_index = torch.randn(12, 5), _random_graph(12, 30, symmetric=True, seed=5)
    assert torch.equal(encoder(x, edge_index), encoder(x, edge_index))


def test_gradients_reach_every_parameter_and_the_dense_adjacency() -> None:
    encoder, head = GCNEncoder(8, 6), GraphProjectionHead(6, 10)
    x, edge_index = torch.randn(20, 8), _random_graph(20, 50, symmetric=True, seed=6)
    head(encoder(x, edge_index)).square().sum().backward()  # allowed outside the engine: gradient-flow unit check
    for name, param in [*encoder.named_parameters(), *head.named_parameters()]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    adj = dense_adjacency(edge_index, 20).requires_grad_(True)
    head(encoder.forward_dense(x, adj)).square().sum().backward()  # allowed outside the engine: d/dA unit check
    assert adj.grad is not None and adj.grad.abs().sum() > 0


def test_projection_head_shapes_and_formula() -> None:
    head = GraphProjectionHead(6, 10)
    assert tuple(head.fc1.weight.shape) == (10, 6) and tuple(head.fc2.weight.shape) == (6, 10)
    z = torch.randn(7, 6)
    expected = head.fc2(torch.nn.functional.elu(head.fc1(z)))
    torch.testing.assert_close(head(z), expected)
    assert head(z).shape == (7, 6)


def test_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"activation must be one of \('prelu', 'relu', 'rrelu'\)") as info:
        GCNEncoder(4, 2, activation="gelu")  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        GCNEncoder(4, 2, num_layers=0)
    encoder = GCNEncoder(4, 2)
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        encoder(torch.randn(3, 5), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"adj must have shape \[3, 3\]"):
        encoder.forward_dense(torch.randn(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="projection_dim must be a positive int"):
        GraphProjectionHead(4, 0)


def test_modules_import_without_loading_torch_geometric() -> None:
    code = (
        "import sys, contrastkit.models.graph, contrastkit.augment.graph; "
        "assert 'torch_geometric' not in sys.modules, 'torch_geometric imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_uniform_init_is_ariels_layer_and_round_trips() -> None:
    from contrastkit.models import backbone_from_config

    torch.manual_seed(0)
    encoder = GCNEncoder(30, 8, init="uniform")
    for conv in encoder.convs:
        bound = conv.lin.weight.shape[0] ** -0.5
        assert conv.lin.weight.abs().max() <= bound and conv.bias.abs().max() <= bound
        assert conv.bias.abs().max() > 0.5 * bound  # biases drawn, not zero as in torch_geometric's default
    assert all(float(c.bias.abs().max()) == 0 for c in GCNEncoder(30, 8).convs)
    rebuilt = backbone_from_config(encoder.config)
    assert rebuilt.config["kwargs"]["init"] == "uniform"
    with pytest.raises(ValueError, match="init must be one of"):
        GCNEncoder(30, 8, init="kaiming")
