"""The DirectCLR toy theories as a registered reproduction: quick run, collapse effects with margins, verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.reproduce import get_experiment, list_experiments, run_experiment
from contrastkit.reproduce.claims import Claim, judge
from contrastkit.reproduce.experiments.directclr_toy import EXPERIMENT, build_toy_encoder, end_to_end_weight


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("directclr_toy")
    results = run_experiment("directclr-toy", seeds=1, quick=True, out=out, command="contrastkit reproduce x")
    return results, out


def _metric(results: dict[str, Any], arm: str, name: str) -> float:
    return next(r["metrics"][name] for r in results["rows"] if r["arm"] == arm)


def test_registered_and_writes_results(quick_run: tuple[dict[str, Any], Path]) -> None:
    results, out = quick_run
    assert "directclr-toy" in list_experiments()
    assert len(results["rows"]) == len(get_experiment("directclr-toy").arms) == 4
    assert json.loads((out / "results.json").read_text())["experiment"] == "directclr-toy"
    assert (out / "report.md").is_file()
    assert all(c["verdict"] == "inconclusive" for c in results["claims"])  # one seed: no test


def test_strong_noise_collapses_the_embedding(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Case 1 (calibration: erank 15.8 vs 9.8): strong noise loses > 3 effective dims, and the 8 noisy input
    directions carry > 10x less embedding variance than the clean ones (spec §7.4.7)."""
    results, _ = quick_run
    weak, strong = (_metric(results, f"case1-{a}-noise", "effective_rank") for a in ("weak", "strong"))
    assert weak > 14.5 and strong < weak - 3.0, (weak, strong)
    assert _metric(results, "case1-strong-noise", "log10_noisy_gain") < -1.0
    assert abs(_metric(results, "case1-weak-noise", "log10_noisy_gain")) < 0.2


def test_two_linear_layers_collapse_more_than_one(quick_run: tuple[dict[str, Any], Path]) -> None:
    """Case 2 (calibration: erank 15.8 vs 10.9): two layers lose > 3 effective dims and several eigenvalues
    fall below 1e-4 of the largest; one layer keeps them all."""
    results, _ = quick_run
    one, two = (_metric(results, f"case2-{a}", "effective_rank") for a in ("one-layer", "two-layers"))
    assert one > 15.0 and two < one - 3.0, (one, two)
    assert _metric(results, "case2-two-layers", "dims_below_1e-4") >= 3
    assert _metric(results, "case2-one-layer", "dims_below_1e-4") == 0


def claims(rows: list[dict[str, Any]]) -> list[Claim]:
    return judge(rows, EXPERIMENT.hypotheses, EXPERIMENT.gates)


def test_claims_give_verdicts_on_three_seeds() -> None:
    def rows(values: dict[str, list[float]], gain: dict[str, list[float]]) -> list[dict[str, Any]]:
        return [
            {"arm": arm, "setting": {}, "seed": s,
             "metrics": {"effective_rank": v[s], "log10_noisy_gain": gain.get(arm, [0.0] * 3)[s]}}
            for arm, v in values.items() for s in range(3)
        ]  # fmt: skip

    collapsed = rows(
        {"case1-weak-noise": [15.3, 15.2, 15.5], "case1-strong-noise": [9.8, 9.9, 9.7],
         "case2-one-layer": [15.7, 15.8, 15.8], "case2-two-layers": [9.9, 8.9, 9.9]},
        {"case1-strong-noise": [-1.2, -1.25, -1.22]},
    )  # fmt: skip
    assert [c.verdict for c in claims(collapsed)] == ["reproduced"] * 3
    arms = ("case1-weak-noise", "case1-strong-noise", "case2-one-layer", "case2-two-layers")
    flat = rows(
        {arm: [15.0 + 0.01 * i, 15.1 - 0.01 * i, 15.2] for i, arm in enumerate(arms)},
        {"case1-strong-noise": [0.01, -0.02, 0.0]},
    )
    assert [c.verdict for c in claims(flat)] == ["not reproduced"] * 3
    identical = rows({arm: [15.0, 15.1, 15.2] for arm in arms}, {})
    assert [c.verdict for c in claims(identical)] == ["inconclusive"] * 3  # a tie on every seed is no evidence


def test_case2_init_has_the_decaying_spectrum_and_bad_settings_raise() -> None:
    net = build_toy_encoder(2, 2, torch.Generator().manual_seed(0))
    s = torch.linalg.svdvals(net[0].weight.detach().double())
    torch.testing.assert_close(s, torch.exp(-0.35 * torch.arange(16, dtype=torch.float64)), atol=1e-6, rtol=1e-5)
    product = end_to_end_weight(net)
    torch.testing.assert_close(product, (net[1].weight @ net[0].weight).detach().double())
    with pytest.raises(ValueError, match="case 1 uses one linear layer"):
        build_toy_encoder(1, 2, torch.Generator())
