"""Differentiable siamese augmentation (DSA; spec dcc.md §2.5, §7.7.5)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.augment.dsa import DSA_FAMILIES, DSAConfig, dsa_apply, dsa_random, sample_dsa_params

DIGITS = "color_crop_cutout_scale_rotate"


def _images(n: int = 4, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_transform_on_real_and_synthetic_batch_of_a_class() -> None:
    """The matching loop draws one parameter set per class and applies it to both batches (siamese)."""
    classes, n_real, ipc = 5, 6, 2
    params = sample_dsa_params(classes, (12, 12), DSAConfig(DIGITS), generator=torch.Generator().manual_seed(3))
    real = _images(classes * n_real, seed=1)
    syn = real.view(classes, n_real, 1, 12, 12)[:, :ipc].reshape(classes * ipc, 1, 12, 12).clone()
    real_out = dsa_apply(real, params, torch.arange(classes).repeat_interleave(n_real))
    syn_out = dsa_apply(syn, params, torch.arange(classes).repeat_interleave(ipc))
    same_inputs = real_out.view(classes, n_real, 1, 12, 12)[:, :ipc].reshape_as(syn_out)
    assert torch.equal(syn_out, same_inputs)


def test_different_classes_get_different_transforms() -> None:
    params = sample_dsa_params(10, (12, 12), DSAConfig(DIGITS), generator=torch.Generator().manual_seed(0))
    x = _images(1).expand(10, 1, 12, 12).contiguous()
    out = dsa_apply(x, params)  # one group per image: image i uses class i's transform
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 8  # ten classes, (almost) all different
    assert len(set(params.family.tolist())) >= 3


def test_seeded_generator_is_deterministic_and_seeds_differ() -> None:
    cfg = DSAConfig()
    a = sample_dsa_params(8, (12, 12), cfg, generator=torch.Generator().manual_seed(5))
    b = sample_dsa_params(8, (12, 12), cfg, generator=torch.Generator().manual_seed(5))
    c = sample_dsa_params(8, (12, 12), cfg, generator=torch.Generator().manual_seed(6))
    x = _images(8)
    assert torch.equal(dsa_apply(x, a), dsa_apply(x, b))
    assert not torch.equal(dsa_apply(x, a), dsa_apply(x, c))


def test_crop_is_an_exact_integer_shift_with_zero_fill() -> None:
    cfg = DSAConfig("crop", ratio_crop_pad=0.25)
    params = sample_dsa_params(16, (12, 12), cfg, generator=torch.Generator().manual_seed(1))
    x = _images(16)
    out = dsa_apply(x, params)
    for i in range(16):
        tx, ty = params.affine[i, 0, 2] * 11 / 2, params.affine[i, 1, 2] * 11 / 2  # columns, rows
        dc, dr = round(float(tx)), round(float(ty))
        expected = torch.zeros(1, 12, 12)
        rows, cols = slice(max(0, -dr), min(12, 12 - dr)), slice(max(0, -dc), min(12, 12 - dc))
        src_rows, src_cols = slice(rows.start + dr, rows.stop + dr), slice(cols.start + dc, cols.stop + dc)
        expected[:, rows, cols] = x[i, :, src_rows, src_cols]
        assert torch.allclose(out[i], expected, atol=1e-5), i


def test_flip_mirrors_and_cutout_zeroes_a_square() -> None:
    x = _images(16) + 0.1
    flip = sample_dsa_params(16, (12, 12), DSAConfig("flip", prob_flip=1.0), generator=torch.Generator())
    assert torch.allclose(dsa_apply(x, flip), x.flip(-1), atol=1e-6)
    cut = sample_dsa_params(16, (12, 12), DSAConfig("cutout", ratio_cutout=0.5), generator=torch.Generator())
    zeros = (dsa_apply(x, cut) == 0).flatten(1).sum(1)
    r0, c0 = cut.cutout_start[:, 0], cut.cutout_start[:, 1]
    rows = (r0 + 6).clamp(max=12) - r0.clamp(min=0)
    cols = (c0 + 6).clamp(max=12) - c0.clamp(min=0)
    assert torch.equal(zeros, rows * cols)  # a 6x6 square centred anywhere, clipped at the border
    assert (zeros >= 9).all() and (zeros <= 36).all()


def test_color_keeps_grey_images_grey_and_everything_is_differentiable() -> None:
    x = _images(6).requires_grad_(True)
    params = sample_dsa_params(6, (12, 12), DSAConfig(), generator=torch.Generator().manual_seed(2))
    out = dsa_apply(x, params)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_shared_family_draws_one_family_per_batch() -> None:
    params = sample_dsa_params(32, (12, 12), DSAConfig(), generator=torch.Generator(), shared_family=True)
    assert len(set(params.family.tolist())) == 1
    out = dsa_random(_images(32), DSAConfig(DIGITS), generator=torch.Generator().manual_seed(0))
    assert out.shape == (32, 1, 12, 12)


def test_bad_inputs_raise_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match="strategy"):
        DSAConfig("crop_jitter")
    with pytest.raises(ValueError, match="prob_flip"):
        DSAConfig(prob_flip=2.0)
    params = sample_dsa_params(2, (12, 12), DSAConfig())
    with pytest.raises(ValueError, match="resample"):
        dsa_apply(_images(2, size=10), params)
    with pytest.raises(ValueError, match="group_index"):
        dsa_apply(_images(3), params)
    with pytest.raises(ValueError, match="num_groups"):
        sample_dsa_params(0, (12, 12))
    assert DSA_FAMILIES == ("color", "crop", "cutout", "flip", "scale", "rotate")
