"""GRACE graph views: edge keep rates (per direction / per pair), shared feature-column mask, seeding, bad input;
the random edge flips of the robustness protocol."""

from __future__ import annotations

import math
import time

import pytest
import torch

from contrastkit.augment.graph import drop_edges, flip_random_edges, graph_views, mask_features


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _symmetric_pairs(num_pairs: int, num_nodes: int) -> torch.Tensor:
    """``num_pairs`` distinct unordered pairs {i < j}, each listed in both directions: ``[2, 2 * num_pairs]``."""
    g = _seeded(1)
    i = torch.randint(0, num_nodes, (3 * num_pairs,), generator=g)
    j = torch.randint(0, num_nodes, (3 * num_pairs,), generator=g)
    low, high = torch.minimum(i, j), torch.maximum(i, j)
    keys = torch.unique(low[low != high] * num_nodes + high[low != high])[:num_pairs]
    assert keys.numel() == num_pairs
    low, high = keys // num_nodes, keys % num_nodes
    return torch.cat([torch.stack([low, high]), torch.stack([high, low])], dim=1)


def _within_4_se(count: int, trials: int, prob: float) -> bool:
    return abs(count - trials * prob) <= 4 * math.sqrt(trials * prob * (1 - prob))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_drop_edges_keep_rate_is_one_minus_p(p: float) -> None:
    num_edges = 100_000
    edge_index = torch.randint(0, 5_000, (2, num_edges), generator=_seeded(2))
    kept = drop_edges(edge_index, p, _seeded(3))
    assert kept.shape[0] == 2
    assert _within_4_se(kept.shape[1], num_edges, 1 - p)


def test_drop_edges_keeps_a_subsequence_in_order() -> None:
    edge_index = torch.stack([torch.arange(1_000), torch.arange(1_000).flip(0)])
    kept = drop_edges(edge_index, 0.4, _seeded(4))
    sources = kept[0]
    assert torch.all(sources[1:] > sources[:-1])  # strictly increasing: an ordered subset of the input
    assert torch.equal(kept[1], 999 - kept[0])  # columns stay intact


def test_directed_drop_is_independent_per_direction() -> None:
    p, num_pairs = 0.5, 20_000
    edge_index = _symmetric_pairs(num_pairs, 3_000)
    kept = drop_edges(edge_index, p, _seeded(5))
    kept_forward = kept[:, kept[0] < kept[1]].shape[1]
    kept_backward = kept[:, kept[0] > kept[1]].shape[1]
    keys_forward = set((kept[0] * 3_000 + kept[1])[kept[0] < kept[1]].tolist())
    keys_backward = set((kept[1] * 3_000 + kept[0])[kept[0] > kept[1]].tolist())
    both = len(keys_forward & keys_backward)
    assert _within_4_se(kept_forward, num_pairs, 1 - p)
    assert _within_4_se(kept_backward, num_pairs, 1 - p)
    assert _within_4_se(both, num_pairs, (1 - p) ** 2)  # independent: 0.25, not 0.5


def test_force_undirected_drops_both_directions_together() -> None:
    p, num_pairs = 0.3, 20_000
    edge_index = _symmetric_pairs(num_pairs, 3_000)
    kept = drop_edges(edge_index, p, _seeded(6), force_undirected=True)
    forward = set((kept[0] * 3_000 + kept[1])[kept[0] < kept[1]].tolist())
    backward = set((kept[1] * 3_000 + kept[0])[kept[0] > kept[1]].tolist())
    assert forward == backward
    assert _within_4_se(len(forward), num_pairs, 1 - p)
    original = set((edge_index[0] * 3_000 + edge_index[1]).tolist())
    assert set((kept[0] * 3_000 + kept[1]).tolist()) <= original  # nothing created


def test_drop_edges_seeded_and_edge_cases() -> None:
    edge_index = torch.randint(0, 100, (2, 500), generator=_seeded(7))
    assert torch.equal(drop_edges(edge_index, 0.3, _seeded(8)), drop_edges(edge_index, 0.3, _seeded(8)))
    assert not torch.equal(drop_edges(edge_index, 0.3, _seeded(8)), drop_edges(edge_index, 0.3, _seeded(9)))
    assert torch.equal(drop_edges(edge_index, 0.0, _seeded(8)), edge_index)
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert drop_edges(empty, 0.5, force_undirected=True).shape == (2, 0)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, True])
def test_bad_probability_is_a_one_line_error(p: float) -> None:
    edge_index = torch.zeros(2, 3, dtype=torch.long)
    for call in (lambda: drop_edges(edge_index, p), lambda: mask_features(torch.ones(2, 3), p)):
        with pytest.raises(ValueError, match=r"drop probability in \[0, 1\)") as info:
            call()
        assert "\n" not in str(info.value)


def test_bad_edge_index_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"shape \[2, E\]"):
        drop_edges(torch.zeros(5, 2, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="integer node ids"):
        drop_edges(torch.zeros(2, 5), 0.1)


def test_feature_mask_is_shared_by_all_nodes_with_rate_p() -> None:
    p, num_features = 0.3, 20_000
    x = torch.rand(8, num_features, generator=_seeded(10)) + 0.5  # no zero entries
    out = mask_features(x, p, _seeded(11))
    zero_columns = (out == 0).all(dim=0)
    untouched_columns = (out == x).all(dim=0)
    assert torch.all(zero_columns ^ untouched_columns)  # every column all-zero or unchanged
    assert _within_4_se(int(zero_columns.sum()), num_features, p)
    assert (x > 0).all()  # input not modified in place


def test_feature_mask_seeded_and_differentiable() -> None:
    x = torch.rand(5, 64, dtype=torch.float64, requires_grad=True)
    a, b = mask_features(x, 0.5, _seeded(12)), mask_features(x, 0.5, _seeded(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, mask_features(x, 0.5, _seeded(13)))
    a.sum().backward()
    assert torch.equal(x.grad, (a != 0).to(x.dtype))
    with pytest.raises(ValueError, match=r"shape \[n, F\]"):
        mask_features(torch.ones(3), 0.1)


def test_graph_views_follow_the_grace_draw_order_and_are_seeded() -> None:
    x = torch.rand(30, 40, generator=_seeded(14)) + 0.1
    edge_index = torch.randint(0, 30, (2, 200), generator=_seeded(15))
    (x1, e1), (x2, e2) = graph_views(
        x, edge_index, edge_drop=(0.2, 0.4), feature_mask=(0.3, 0.4), generator=_seeded(16)
    )
    g = _seeded(16)
    expected_e1, expected_e2 = drop_edges(edge_index, 0.2, g), drop_edges(edge_index, 0.4, g)
    expected_x1, expected_x2 = mask_features(x, 0.3, g), mask_features(x, 0.4, g)
    for got, want in ((e1, expected_e1), (e2, expected_e2), (x1, expected_x1), (x2, expected_x2)):
        assert torch.equal(got, want)
    assert not torch.equal(e1, e2) and not torch.equal(x1, x2)
    assert x1.shape == x.shape and e1.shape[0] == 2


def test_graph_views_bad_input() -> None:
    x, edge_index = torch.ones(4, 3), torch.tensor([[0, 1], [1, 4]])
    with pytest.raises(ValueError, match="relabel the edges"):
        graph_views(x, edge_index, edge_drop=(0.1, 0.1), feature_mask=(0.1, 0.1))
    with pytest.raises(ValueError, match="must be a pair"):
        graph_views(x, edge_index[:, :1], edge_drop=0.1, feature_mask=(0.1, 0.1))  # type: ignore[arg-type]


def _pair_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    """Unordered pairs ``(i, j)``, ``i < j``, of an edge list (self-loops left out)."""
    low = torch.minimum(edge_index[0], edge_index[1])
    high = torch.maximum(edge_index[0], edge_index[1])
    keep = low != high
    return set(zip(low[keep].tolist(), high[keep].tolist(), strict=True))


def _check_undirected_coalesced(edge_index: torch.Tensor, num_nodes: int) -> None:
    assert edge_index.shape[0] == 2 and edge_index.dtype == torch.long
    assert bool((edge_index[0] != edge_index[1]).all())  # no self-loops
    keys = edge_index[0] * num_nodes + edge_index[1]
    assert bool((keys[1:] > keys[:-1]).all())  # sorted by (source, target), no duplicates
    reverse = set((edge_index[1] * num_nodes + edge_index[0]).tolist())
    assert reverse == set(keys.tolist())  # both directions


@pytest.mark.parametrize("fraction", [0.1, 0.2, 1.5])
def test_flip_random_edges_toggles_exactly_m_pairs(fraction: float) -> None:
    num_nodes = 200
    edge_index = _symmetric_pairs(600, num_nodes)
    with_noise = torch.cat([edge_index, edge_index[:, :50], torch.tensor([[3, 7], [3, 7]])], dim=1)  # dups, loops
    flipped = flip_random_edges(with_noise, num_nodes, fraction, _seeded(20))
    _check_undirected_coalesced(flipped, num_nodes)
    assert len(_pair_set(flipped) ^ _pair_set(edge_index)) == round(fraction * 600)


def test_flip_all_pairs_gives_the_complement() -> None:
    num_nodes = 10  # 45 pairs; 9 edges x fraction 5 = 45 flips: every pair toggled
    edge_index = _symmetric_pairs(9, num_nodes)
    flipped = flip_random_edges(edge_index, num_nodes, 5.0, _seeded(21))
    every_pair = {(i, j) for i in range(num_nodes) for j in range(i + 1, num_nodes)}
    assert _pair_set(flipped) == every_pair - _pair_set(edge_index)
    _check_undirected_coalesced(flipped, num_nodes)


def test_flip_random_edges_seeded_and_fraction_zero() -> None:
    num_nodes = 300
    edge_index = _symmetric_pairs(900, num_nodes)
    a = flip_random_edges(edge_index, num_nodes, 0.2, _seeded(22))
    assert torch.equal(a, flip_random_edges(edge_index, num_nodes, 0.2, _seeded(22)))
    assert not torch.equal(a, flip_random_edges(edge_index, num_nodes, 0.2, _seeded(23)))
    same = flip_random_edges(edge_index, num_nodes, 0.0, _seeded(22))
    keys = edge_index[0] * num_nodes + edge_index[1]
    assert torch.equal(same, edge_index[:, torch.argsort(keys)])  # the same graph, coalesced
    assert flip_random_edges(torch.zeros(2, 0, dtype=torch.long), 5, 0.3).shape == (2, 0)


def test_flipped_pairs_are_uniform_over_all_pairs() -> None:
    # Small graph (permutation path): 200 of the 435 pairs are edges, so a uniform pair is an edge w.p. 200/435 and
    # each of 100 flips removes an edge w.p. 200/435 (hypergeometric over 100 trials x 100 flips).
    num_nodes, num_edges = 30, 200
    edge_index = _symmetric_pairs(num_edges, num_nodes)
    existing = _pair_set(edge_index)
    removed = 0
    for trial in range(100):
        flipped = _pair_set(flip_random_edges(edge_index, num_nodes, 0.5, _seeded(100 + trial)))
        removed += len(existing - flipped)
    assert _within_4_se(removed, 100 * 100, num_edges / 435)
    # Large graph (sampling path, 4.5 M pairs): P(min(i, j) < N / 2) = 1 - C(N/2, 2) / C(N, 2) ~ 0.75.
    num_nodes = 3_000
    sparse = torch.tensor([[0, 1], [1, 0]])
    flips = flip_random_edges(sparse, num_nodes, 20_000.0, _seeded(24))
    pairs = _pair_set(flips) - {(0, 1)}
    prob = 1 - (1_500 * 1_499) / (3_000 * 2_999)
    assert len(pairs) in (19_999, 20_000)
    assert _within_4_se(sum(i < num_nodes // 2 for i, _ in pairs), len(pairs), prob)
    assert _within_4_se(sum(j - i == 1 for i, j in pairs), len(pairs), 2_999 / (3_000 * 2_999 / 2))


def test_flip_random_edges_on_a_100k_node_graph_is_fast_and_sparse() -> None:
    num_nodes, num_edges = 100_000, 400_000  # an N x N bool matrix would take 10 GB
    g = _seeded(25)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    start = time.perf_counter()
    flipped = flip_random_edges(edge_index, num_nodes, 0.2, _seeded(26))
    assert time.perf_counter() - start < 20.0
    before = edge_index[0] != edge_index[1]
    low = torch.minimum(edge_index[0], edge_index[1])[before]
    high = torch.maximum(edge_index[0], edge_index[1])[before]
    old = torch.unique(low * num_nodes + high)
    new = (flipped[0] * num_nodes + flipped[1])[flipped[0] < flipped[1]]
    _, counts = torch.unique(torch.cat([old, new]), return_counts=True)
    assert int((counts == 1).sum()) == round(0.2 * old.numel())  # |old xor new| = m
    assert flipped.shape[1] == 2 * new.numel()


def test_flip_random_edges_bad_input_is_a_one_line_error() -> None:
    edge_index = torch.tensor([[0, 1], [1, 0]])
    cases = [
        (lambda: flip_random_edges(edge_index, 2, -0.1), "finite number >= 0"),
        (lambda: flip_random_edges(edge_index, 2, math.inf), "finite number >= 0"),
        (lambda: flip_random_edges(edge_index, 1, 0.1), "outside"),
        (lambda: flip_random_edges(edge_index, 2, 3.0), "lower the fraction"),
        (lambda: flip_random_edges(edge_index, -1, 0.1), "num_nodes"),
        (lambda: flip_random_edges(torch.zeros(5, 2, dtype=torch.long), 5, 0.1), r"shape \[2, E\]"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
