"""The ``noise`` view preset (digits variant of Jing et al., ICLR 2022): additive Gaussian pixel noise of the given
strength, an optional crop, the config keys that build it, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contrastkit.augment import GaussianNoise, RandomResizedCrop, noise_views
from contrastkit.train.config import ConfigError, load_config

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny_test.yaml"


@pytest.mark.parametrize("std", [0.1, 0.5])
def test_noise_is_additive_with_the_given_std_on_every_image(std: float) -> None:
    """Grey 0.5 images: y - x ~ N(0, std^2) before clipping; clipping [0, 1] only shrinks tails beyond 0.5."""
    pipe = noise_views(8, 1, noise_std=std)
    assert [type(op) for op in pipe.ops] == [GaussianNoise]
    x = torch.full((4000, 1, 8, 8), 0.5)
    y = pipe(x, generator=torch.Generator().manual_seed(0))
    d = (y - x).flatten()
    assert float(d.mean().abs()) < 0.01
    expected = std if std <= 0.1 else float(torch.randn(10**6, generator=torch.Generator().manual_seed(1)).mul(std)
                                            .clamp(-0.5, 0.5).std())  # fmt: skip
    assert float(d.std()) == pytest.approx(expected, rel=0.02)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    per_image = (y - x).flatten(1).std(1)
    assert bool((per_image > 0.5 * expected).all())  # p = 1: every image is perturbed


def test_stronger_noise_moves_views_further_and_zero_noise_is_the_identity() -> None:
    x = torch.rand(64, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    weak = (noise_views(8, 1, noise_std=0.1)(x, generator=gen) - x).abs().mean()
    strong = (noise_views(8, 1, noise_std=0.5)(x, generator=gen) - x).abs().mean()
    assert float(strong) > 3 * float(weak)
    torch.testing.assert_close(noise_views(8, 1, noise_std=0.0)(x), x, rtol=0, atol=0)


def test_a_crop_comes_first_when_asked() -> None:
    pipe = noise_views(8, 1, noise_std=0.1, min_scale=0.8)
    assert [type(op) for op in pipe.ops] == [RandomResizedCrop, GaussianNoise]
    assert pipe.ops[0].scale == (0.8, 1.0)
    assert pipe(torch.rand(3, 1, 8, 8)).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="noise_std must be a number >= 0"):
        noise_views(8, 1, noise_std=-0.1)


def test_the_augment_keys_build_the_noise_preset() -> None:
    from contrastkit.train.builders import build_views

    cfg = load_config(TINY, ["trainer.max_steps=2", "augment.preset=noise", "augment.noise_std=0.5"])
    pipe = build_views(cfg, 8, 1)
    assert [type(op) for op in pipe.ops] == [GaussianNoise] and pipe.ops[0].std == (0.5, 0.5)
    with pytest.raises(ConfigError, match="augment.noise_std is used only by augment.preset=noise"):
        load_config(TINY, ["trainer.max_steps=2", "augment.noise_std=0.5"])
    with pytest.raises(ConfigError, match="augment.noise_std must be >= 0"):
        load_config(TINY, ["trainer.max_steps=2", "augment.preset=noise", "augment.noise_std=-1"])
