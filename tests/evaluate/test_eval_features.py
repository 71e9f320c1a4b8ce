"""extract_features: eval-mode forward in batches, restores the mode, float32 CPU output, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.evaluate import extract_features


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(2)
    )
    model.train()
    model(torch.randn(16, 3, 8, 8))  # give BN non-trivial running statistics
    return model


@pytest.mark.parametrize("train_mode", [True, False])
def test_matches_eval_forward_and_restores_mode(train_mode: bool) -> None:
    model = _model()
    model.train(train_mode)
    images = torch.randn(11, 3, 8, 8)
    feats = extract_features(model, images, batch_size=4)
    assert model.training is train_mode
    assert all(m.training is train_mode for m in model.modules())
    model.eval()
    with torch.no_grad():
        want = model(images).flatten(1)
    assert feats.shape == (11, 16) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats, want)
    assert not feats.requires_grad


def test_batch_size_does_not_matter_and_bn_stats_are_untouched() -> None:
    model = _model()
    running_mean = model[1].running_mean.clone()
    images = torch.randn(9, 3, 8, 8)
    a = extract_features(model, images, batch_size=1)
    b = extract_features(model, images, batch_size=512)
    torch.testing.assert_close(a, b)
    assert torch.equal(model[1].running_mean, running_mean)


def test_transform_is_applied_and_double_output_becomes_float32() -> None:
    model = nn.Flatten().double()
    images = torch.arange(2 * 1 * 2 * 2, dtype=torch.float64).reshape(2, 1, 2, 2)
    feats = extract_features(model, images, transform=lambda x: 2.0 * x + 1.0)
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, (2.0 * images + 1.0).flatten(1).float())
    uint8 = torch.ones(3, 1, 2, 2, dtype=torch.uint8)
    torch.testing.assert_close(
        extract_features(nn.Flatten(), uint8, transform=lambda x: x.float() / 255),
        torch.full((3, 4), 1 / 255),
    )


def test_restores_mode_when_the_model_fails() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    model = Broken().train()
    with pytest.raises(ValueError):
        extract_features(model, torch.randn(2, 3, 4, 4))
    assert model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_model_device_and_moves_back() -> None:
    model = _model().cuda()
    images = torch.randn(5, 3, 8, 8)
    feats = extract_features(model, images)
    assert feats.device.type == "cpu"
    cpu_model = _model()
    torch.testing.assert_close(
        extract_features(cpu_model, images, device="cuda"), feats, rtol=1e-4, atol=1e-4
    )
    assert next(cpu_model.parameters()).device.type == "cpu"


@pytest.mark.parametrize(
    "case", ["not_module", "not_tensor", "1d", "empty", "nan", "batch_size", "int_images"]
)
def test_bad_inputs_raise(case: str) -> None:
    model = _model()
    images = torch.randn(3, 3, 8, 8)
    with pytest.raises(ValueError):
        if case == "not_module":
            extract_features(lambda x: x, images)  # type: ignore[arg-type]
        elif case == "not_tensor":
            extract_features(model, images.numpy())  # type: ignore[arg-type]
        elif case == "1d":
            extract_features(model, torch.randn(5))
        elif case == "empty":
            extract_features(model, images[:0])
        elif case == "nan":
            extract_features(model, torch.full_like(images, float("nan")))
        elif case == "batch_size":
            extract_features(model, images, batch_size=0)
        elif case == "int_images":
            extract_features(model, images.long())
