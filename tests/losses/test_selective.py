"""HCSC / PCL selective coding: closed forms, float64 brute force, Bernoulli calibration, hierarchy indexing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import (
    LEVEL_REDUCTIONS,
    MASK_FILLS,
    instance_keep_probability,
    negative_prototype_ids,
    prototype_keep_probability,
    reduce_levels,
    sample_keep_mask,
    selective_info_nce,
)


def keep_by_loop(x: torch.Tensor, c: torch.Tensor, phi: torch.Tensor, own: list[int], low: float, high: float):
    """keep[b][j] = clamp(1 - softmax_c(x_j . c / phi_c)[own_b], low, high) with math.exp, in float64."""
    rows = []
    for o in own:
        row = []
        for j in range(x.shape[0]):
            e = [math.exp(float(x[j].double() @ c[m].double()) / float(phi[m])) for m in range(c.shape[0])]
            row.append(min(max(1.0 - e[o] / sum(e), low), high))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def test_instance_keep_closed_form_with_clamp() -> None:
    # 2 prototypes on the axes, phi = (0.5, 0.1); queue n0 = e0, n1 = e1, n2 = (0.6, 0.8)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    phi = torch.tensor([0.5, 0.1], dtype=torch.float64)
    n = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    keep = instance_keep_probability(n, c, phi, torch.tensor([0, 1]))
    # P(cluster 0 | n) = 1 / (1 + exp(l1 - l0)): l = (2, 0), (0, 10), (1.2, 8)
    p0 = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(10.0)), 1 / (1 + math.exp(6.8))]
    want = torch.tensor(
        [
            [1 - p0[0], 0.999, 1 - p0[2]],  # 1 - p0[1] = 0.99995 is clamped to 0.999
            [p0[0], p0[1], p0[2]],  # 1 - P(cluster 1) = P(cluster 0)
        ],
        dtype=torch.float64,
    )
    assert 1 - p0[1] > 0.999 > 1 - p0[2]  # the example exercises the clamp on one side only
    torch.testing.assert_close(keep, want, rtol=0.0, atol=1e-12)
    # a lower clamp (PCSC uses 1e-4) lifts the tiny entry
    low = instance_keep_probability(n, c, phi, torch.tensor([1]), low=0.05)
    assert low[0, 1].item() == pytest.approx(0.05, abs=1e-15) and low[0, 0].item() == pytest.approx(p0[0], abs=1e-12)


def test_instance_keep_matches_loop_on_random_input() -> None:
    g = torch.Generator().manual_seed(0)
    n = F.normalize(torch.randn(11, 5, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(torch.randn(4, 5, generator=g, dtype=torch.float64), dim=1)
    phi = 0.05 + 0.3 * torch.rand(4, generator=g, dtype=torch.float64)
    own = [3, 0, 0, 2, 1]
    got = instance_keep_probability(n, c, phi, torch.tensor(own))
    torch.testing.assert_close(got, keep_by_loop(n, c, phi, own, 0.0, 0.999), rtol=0.0, atol=1e-12)


def brute_force_selective(pos: torch.Tensor, neg: torch.Tensor, keep: torch.Tensor, fill: str) -> list[float]:
    """Per-query CE with target 0 in math.exp/log: dropped negatives add exp(0) ("zero") or nothing."""
    out = []
    for b in range(pos.shape[0]):
        denom = math.exp(float(pos[b]))
        for j in range(neg.shape[1]):
            if keep[b, j]:
                denom += math.exp(float(neg[b, j]))
            elif fill == "zero":
                denom += math.exp(0.0)
        out.append(-float(pos[b]) + math.log(denom))
    return out


def random_logits(b: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(b, generator=g, dtype=torch.float64) * 3
    neg = torch.randn(b, k, generator=g, dtype=torch.float64) * 3
    keep = torch.rand(b, k, generator=g) < 0.6
    keep[0] = False  # a query with every negative dropped
    return pos, neg, keep


def test_zero_fill_counts_each_dropped_negative_as_exp0() -> None:
    pos, neg, keep = random_logits(6, 9, 1)
    got = selective_info_nce(pos, neg, keep, mask_fill="zero", reduction="none")
    want = brute_force_selective(pos, neg, keep, "zero")
    assert max(abs(x - y) for x, y in zip(got.tolist(), want, strict=True)) < 1e-12
    assert got[0].item() == pytest.approx(math.log(math.exp(pos[0].item()) + 9) - pos[0].item(), abs=1e-12)
    # the official form: multiply the logit by the mask, then plain CE with target 0
    official = F.cross_entropy(torch.cat([pos[:, None], neg * keep.double()], 1), torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(selective_info_nce(pos, neg, keep), official, rtol=0.0, atol=1e-12)


def test_neg_inf_fill_is_ce_over_kept_logits_only() -> None:
    pos, neg, keep = random_logits(6, 9, 2)
    got = selective_info_nce(pos, neg, keep, mask_fill="neg_inf", reduction="none")
    assert (
        max(abs(x - y) for x, y in zip(got.tolist(), brute_force_selective(pos, neg, keep, "neg_inf"), strict=True))
        < 1e-12
    )
    for b in range(6):
        kept = torch.cat([pos[b : b + 1], neg[b][keep[b]]])
        ce = F.cross_entropy(kept[None], torch.zeros(1, dtype=torch.long))
        assert got[b].item() == pytest.approx(ce.item(), abs=1e-12)
    assert got[0].item() == pytest.approx(0.0, abs=1e-15)  # nothing left to contrast with
    assert (got <= selective_info_nce(pos, neg, keep, mask_fill="zero", reduction="none")).all()


@pytest.mark.parametrize("mask_fill", MASK_FILLS)
def test_all_kept_is_moco_info_nce(mask_fill: str) -> None:
    pos, neg, _ = random_logits(5, 7, 3)
    moco = F.cross_entropy(torch.cat([pos[:, None], neg], 1), torch.zeros(5, dtype=torch.long))
    everything = torch.ones(5, 7, dtype=torch.bool)
    for keep in (None, everything):
        got = selective_info_nce(pos, neg, keep, mask_fill=mask_fill)
        torch.testing.assert_close(got, moco, rtol=0.0, atol=1e-12)
    total = selective_info_nce(pos, neg, None, mask_fill=mask_fill, reduction="sum")
    assert total.item() == pytest.approx(5 * moco.item(), abs=1e-11)


def test_bernoulli_calibration_within_three_standard_errors() -> None:
    levels = torch.tensor([0.0, 0.02, 0.15, 0.4, 0.7, 0.93, 0.999, 1.0])
    keep = levels.repeat(3, 2)  # [3, 16]: every probability appears 6 times (one entry group each)
    g = torch.Generator().manual_seed(4)
    draws = 20_000
    counts = torch.zeros_like(keep)
    for _ in range(draws):
        mask = sample_keep_mask(keep, generator=g)
        assert mask.dtype == torch.bool and mask.shape == keep.shape
        counts += mask
    for p in levels.tolist():
        group = keep == p
        n = draws * int(group.sum())
        rate = counts[group].sum().item() / n
        se = math.sqrt(p * (1 - p) / n)
        assert abs(rate - p) <= 3 * se + 1e-12, (p, rate, se)
    again = sample_keep_mask(keep, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again, sample_keep_mask(keep, generator=torch.Generator().manual_seed(4)))


def test_prototype_keep_indexes_the_parent_of_the_positive_on_a_three_level_hierarchy() -> None:
    # 8 -> 4 -> 2 prototypes with known (deliberately not i // 2) parents
    g = torch.Generator().manual_seed(5)
    top = F.normalize(torch.randn(2, 6, generator=g, dtype=torch.float64), dim=1)
    parent_of_mid = torch.tensor([1, 0, 0, 1])  # c2c[1]: level 2 -> level 3
    mid = F.normalize(top[parent_of_mid] + 0.6 * torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
    parent_of_fine = torch.tensor([2, 0, 3, 1, 1, 3, 0, 2])  # c2c[0]: level 1 -> level 2
    fine = F.normalize(mid[parent_of_fine] + 0.2 * torch.randn(8, 6, generator=g, dtype=torch.float64), dim=1)
    phi_mid = torch.tensor([0.15, 0.3, 0.2, 0.25], dtype=torch.float64)
    phi_top = torch.tensor([0.2, 0.2], dtype=torch.float64)
    # the children sit closest to their own parent (the hierarchy is what it claims to be)
    assert torch.equal((fine @ mid.T).argmax(1), parent_of_fine)

    batch_fine = torch.tensor([5, 0, 6, 5])  # level-1 prototype of each query
    neg_ids = negative_prototype_ids(8, batch_fine)
    assert neg_ids.tolist() == [1, 2, 3, 4, 7]
    own_parent = parent_of_fine[batch_fine]  # [3, 2, 0, 3]
    keep = prototype_keep_probability(fine[neg_ids], mid, phi_mid, own_parent)
    assert keep.shape == (4, 5)
    full = keep_by_loop(fine[neg_ids], mid, phi_mid, list(range(4)), 1e-4, 0.999)  # row p: parent column p
    for b, parent in enumerate(own_parent.tolist()):
        torch.testing.assert_close(keep[b], full[parent], rtol=0.0, atol=1e-12)
        for other in range(4):  # any other column (e.g. the query's own id, or a wrong parent) differs
            if other != parent:
                assert (keep[b] - full[other]).abs().max() > 1e-3
    assert not torch.equal(own_parent, batch_fine % 4)  # i % 4 would pick other columns here

    # level 2 -> 3: the query's level-2 prototype is the parent of its level-1 one
    batch_mid = parent_of_fine[batch_fine]
    neg_mid = negative_prototype_ids(4, batch_mid)
    assert neg_mid.tolist() == [1]
    keep_mid = prototype_keep_probability(mid[neg_mid], top, phi_top, parent_of_mid[batch_mid])
    want_mid = keep_by_loop(mid[neg_mid], top, phi_top, parent_of_mid[batch_mid].tolist(), 1e-4, 0.999)
    torch.testing.assert_close(keep_mid, want_mid, rtol=0.0, atol=1e-12)
    assert keep_mid[:, 0].unique().numel() == 2  # the two parents give different numbers


def test_shared_negative_set_never_holds_a_batch_positive() -> None:
    g = torch.Generator().manual_seed(6)
    for _ in range(50):
        m = int(torch.randint(2, 30, (1,), generator=g))
        positives = torch.randint(0, m, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        ids = negative_prototype_ids(m, positives)
        assert set(ids.tolist()).isdisjoint(positives.tolist())
        assert set(ids.tolist()) | set(positives.tolist()) == set(range(m))
        assert ids.dtype == torch.int64 and torch.equal(ids, ids.sort().values)


def test_highest_cluster_id_switch() -> None:
    positives = torch.tensor([3, 3, 5, 0])
    assert negative_prototype_ids(10, positives).tolist() == [1, 2, 4, 6, 7, 8, 9]  # includes M - 1 = 9
    official = negative_prototype_ids(10, positives, include_highest_cluster_id=False)
    assert official.tolist() == [1, 2, 4, 6, 7, 8]  # range(9): id 9 is never a negative
    # empty clusters 8, 9: the dataset's max id is 7, and the official range(7) leaves out 7 (and 8, 9)
    assert negative_prototype_ids(10, positives, include_highest_cluster_id=False, max_id=7).tolist() == [1, 2, 4, 6]
    assert 9 not in negative_prototype_ids(10, torch.tensor([9, 1])).tolist()  # a positive is never a negative
    with pytest.raises(ValueError, match="max_id"):
        negative_prototype_ids(10, positives, include_highest_cluster_id=False, max_id=4)


@pytest.mark.parametrize("levels", [3, 4])
def test_level_reductions_differ_by_the_number_of_levels(levels: int) -> None:
    pos, neg, keep = random_logits(4, 6, 7)
    losses = [selective_info_nce(pos + i, neg, keep, reduction="none") for i in range(levels)]
    total, mean = reduce_levels(losses, "sum"), reduce_levels(losses, "mean")
    torch.testing.assert_close(total, sum(losses), rtol=0.0, atol=1e-12)
    if levels == 4:  # a power of two: exact
        assert torch.equal(total, levels * mean)
    torch.testing.assert_close(total, levels * mean, rtol=1e-15, atol=0.0)
    assert LEVEL_REDUCTIONS == ("sum", "mean")


@pytest.mark.parametrize("mask_fill", MASK_FILLS)
def test_gradcheck_selective_info_nce(mask_fill: str) -> None:
    pos, neg, keep = random_logits(4, 5, 8)
    pos, neg = (pos / 3).requires_grad_(), (neg / 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, n: selective_info_nce(p, n, keep, mask_fill=mask_fill), (pos, neg))
    (grad,) = torch.autograd.grad(selective_info_nce(pos, neg, keep, mask_fill=mask_fill), neg)
    assert grad[~keep].abs().max() == 0 and grad[keep].abs().min() > 0  # dropped logits get no gradient


def test_half_precision_logits_are_computed_in_float32() -> None:
    pos, neg, keep = random_logits(3, 4, 9)
    got = selective_info_nce(pos.bfloat16(), neg.bfloat16(), keep)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(selective_info_nce(pos.bfloat16().float(), neg.bfloat16().float(), keep).item())


def test_bad_inputs_raise() -> None:
    pos, neg, keep = random_logits(3, 4, 10)
    with pytest.raises(ValueError, match="mask_fill"):
        selective_info_nce(pos, neg, keep, mask_fill="drop")
    with pytest.raises(ValueError, match="keep must be a bool"):
        selective_info_nce(pos, neg, keep.double())
    with pytest.raises(ValueError, match="keep must have the shape"):
        selective_info_nce(pos, neg, keep[:, :3])
    with pytest.raises(ValueError, match="one row per query"):
        selective_info_nce(pos[:2], neg, keep)
    with pytest.raises(ValueError, match="reduction"):
        reduce_levels([pos], "max")
    with pytest.raises(ValueError, match="share one shape"):
        reduce_levels([pos, neg], "sum")
    with pytest.raises(ValueError, match="non-empty"):
        reduce_levels([], "sum")
    c, phi = torch.eye(2), torch.tensor([0.2, 0.2])
    with pytest.raises(ValueError, match="same size D"):
        instance_keep_probability(torch.randn(3, 3), c, phi, torch.tensor([0]))
    with pytest.raises(ValueError, match="one phi per centroid"):
        instance_keep_probability(torch.randn(3, 2), c, phi[:1], torch.tensor([0]))
    with pytest.raises(ValueError, match="> 0"):
        instance_keep_probability(torch.randn(3, 2), c, torch.tensor([0.2, 0.0]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"own_cluster must lie in \[0, 2\)"):
        instance_keep_probability(torch.randn(3, 2), c, phi, torch.tensor([2]))
    with pytest.raises(ValueError, match="integer ids"):
        prototype_keep_probability(torch.randn(3, 2), c, phi, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="low <= high"):
        prototype_keep_probability(torch.randn(3, 2), c, phi, torch.tensor([0]), low=0.5, high=0.4)
    with pytest.raises(ValueError, match="probabilities"):
        sample_keep_mask(torch.tensor([[1.5]]))
    with pytest.raises(ValueError, match="num_prototypes"):
        negative_prototype_ids(0, torch.tensor([0]))
    with pytest.raises(ValueError, match="positives must lie"):
        negative_prototype_ids(3, torch.tensor([3]))
