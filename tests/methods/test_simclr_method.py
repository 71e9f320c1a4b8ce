"""SimCLR recipe: the protocol, the loss it computes, that it learns, and its input errors."""

from __future__ import annotations

import pytest
import torch

from contrastkit.augment import simclr_views
from contrastkit.data import Batch, load
from contrastkit.losses import nt_xent
from contrastkit.methods import Method, SimCLR
from contrastkit.models import ConvNet, resnet18


def tiny_method(views: object = "default", **kw: object) -> SimCLR:
    backbone = ConvNet(in_channels=1, image_size=8, width=16, depth=2, norm="instancenorm")
    pipeline = simclr_views(8, 1) if views == "default" else views
    return SimCLR(backbone, pipeline, projection_dim=16, **kw)  # type: ignore[arg-type]


def test_speaks_the_method_protocol() -> None:
    assert isinstance(tiny_method(), Method)


def test_training_step_is_nt_xent_of_the_projections() -> None:
    method = tiny_method(views=None, temperature=0.3)
    x1, x2 = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)
    out = method.training_step(Batch(views=(x1, x2)))
    z = method(torch.cat([x1, x2]))  # BN statistics of the joint batch, as in the step
    expected = nt_xent(z[:6], z[6:], temperature=0.3)
    torch.testing.assert_close(out["loss"], expected)


def test_step_gives_gradients_to_backbone_and_head() -> None:
    method = tiny_method()
    method.training_step(torch.rand(8, 1, 8, 8))["loss"].backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in method.backbone.parameters())


def test_accepts_an_images_labels_tuple() -> None:
    out = tiny_method().training_step((torch.rand(8, 1, 8, 8), torch.arange(8)))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])


def test_learning_on_digits_lowers_the_loss() -> None:
    """Seeded: 60 Adam steps on sklearn digits lower the mean NT-Xent of fixed views by a clear margin."""
    torch.manual_seed(0)
    images = load("digits", "train").images[:256]
    method = tiny_method(temperature=0.5)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    views = simclr_views(8, 1)
    generator = torch.Generator().manual_seed(1)
    fixed = [views(images, generator=generator) for _ in range(2)]

    def held_out_loss() -> float:
        with torch.no_grad():  # train-mode BN statistics of the fixed batch, as during training
            return float(method.training_step(Batch(views=tuple(fixed)))["loss"])

    method.views = None
    before = held_out_loss()
    method.views = views
    for _ in range(60):
        batch = images[torch.randint(len(images), (128,))]
        loss = method.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.views = None
    after = held_out_loss()
    assert after < before - 0.5, (before, after)


@pytest.mark.parametrize(
    ("make", "batch", "match"),
    [
        (lambda: tiny_method(), torch.rand(1, 1, 8, 8), "at least 2"),
        (lambda: tiny_method(), torch.rand(4, 3, 8, 8), "channel"),
        (lambda: tiny_method(), torch.rand(4, 8, 8), "dimensions"),
        (lambda: tiny_method(views=None), torch.rand(4, 1, 8, 8), "no view pipeline: pass ready views"),
        (lambda: tiny_method(views=None), Batch(views=(torch.rand(4, 1, 8, 8),)), "trains on 2 view"),
        (lambda: tiny_method(), "not a tensor", "batch must be"),
    ],
)
def test_bad_batches_raise_one_line_errors(make, batch, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match) as info:
        make().training_step(batch)
    assert "\n" not in str(info.value)


def test_bad_construction_raises() -> None:
    with pytest.raises(ValueError, match="temperature"):
        tiny_method(temperature=0.0)
    with pytest.raises(ValueError, match="num_features"):
        SimCLR(torch.nn.Linear(4, 4), None)


def test_resnet_backbone_in_bfloat16_channels_last() -> None:
    from contrastkit import accel

    method = accel.channels_last(
        SimCLR(resnet18(in_channels=1, small_stem=True, width=0.125), simclr_views(28, 1))
    )
    x = torch.rand(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with accel.autocast("cpu", "bf16"):
        loss = method.training_step(x)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
