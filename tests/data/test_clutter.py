"""Cluttered MNIST: the task-irrelevant variant of the DCC spec (§7.1)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.clutter import clutter_images, cluttered_mnist


def _digits(n: int = 8) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0  # a bar in the centre
    return x


def test_no_clutter_keeps_the_digit() -> None:
    x = _digits()
    out = clutter_images(x, torch.Generator(), max_shift=0, num_fragments=0, texture_strength=0.0)
    assert torch.equal(out, x)


def test_shift_moves_the_digit_without_changing_its_mass() -> None:
    x = _digits()
    out = clutter_images(x, torch.Generator().manual_seed(0), max_shift=4, num_fragments=0, texture_strength=0.0)
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the bar is far from the border: nothing cut
    assert not torch.equal(out, x)


def test_clutter_is_in_range_deterministic_and_label_independent() -> None:
    x = _digits(16)
    a = clutter_images(x, torch.Generator().manual_seed(3))
    b = clutter_images(x, torch.Generator().manual_seed(3))
    c = clutter_images(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == x.shape
    # the background is substantial: most pixels outside the digit are lit
    assert float((a > 0.05).float().mean()) > 0.5


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="grey"):
        clutter_images(torch.zeros(2, 3, 28, 28), torch.Generator())
    with pytest.raises(ValueError, match="fragment_size"):
        clutter_images(_digits(), torch.Generator(), fragment_size=40)
    with pytest.raises(ValueError, match="split"):
        cluttered_mnist("dev")


def test_cluttered_mnist_keeps_labels_and_is_seeded() -> None:
    pytest.importorskip("contrastkit.data")
    from contrastkit.data import DatasetNotInstalledError, load

    try:
        base = load("mnist", "test")
    except DatasetNotInstalledError:
        pytest.skip("MNIST is not installed")
    ds = cluttered_mnist("test", seed=0)
    assert torch.equal(ds.labels, base.labels) and ds.images.shape == base.images.shape
    assert not torch.equal(ds.images[:50], cluttered_mnist("test", seed=1).images[:50])
    # the background carries more mass than the digit on average (task-irrelevant content dominates)
    assert float(ds.images.mean()) > 2 * float(base.images.mean())
