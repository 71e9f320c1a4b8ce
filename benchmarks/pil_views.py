"""The peer baseline's view pipeline: per-image PIL augmentation in DataLoader workers (torchvision style).

Each image is converted to a PIL image and augmented on its own, as ``torchvision.transforms`` pipelines do:
random resized crop (scale (0.2, 1), ratio (3/4, 4/3), bilinear), horizontal flip p = 0.5, and with p = 0.8
brightness and contrast factors in [0.6, 1.4] - the same distribution as ``simclr_views(28, 1)``. Used only by
``benchmarks/simclr_budget.py --pil-views`` to compare batched tensor views against the usual per-image path.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import DataLoader, Dataset


def _resized_crop_box(width: int, height: int, rng: random.Random) -> tuple[float, float, float, float]:
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.2, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = math.sqrt(target * ratio), math.sqrt(target / ratio)
        if w <= width and h <= height:
            x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
            return x0, y0, x0 + w, y0 + h
    return 0.0, 0.0, float(width), float(height)


def pil_view(image: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """One SimCLR view of a grey PIL image as a float tensor [1, size, size] in [0, 1]."""
    view = image.resize((size, size), Image.BILINEAR, box=_resized_crop_box(*image.size, rng))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    if rng.random() < 0.8:
        view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.6, 1.4))
        view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.6, 1.4))
    return torch.from_numpy(np.asarray(view, dtype=np.float32) / 255.0)[None]


class PILTwoViews(Dataset):
    """Yields ``(view1, view2)`` of image ``i``, each made per image with PIL."""

    def __init__(self, images: torch.Tensor, seed: int = 0) -> None:
        self.uint8 = (images[:, 0] * 255).round().to(torch.uint8).numpy()
        self.size = images.shape[-1]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.uint8)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(hash((self.seed, i, torch.initial_seed())))
        image = Image.fromarray(self.uint8[i], mode="L")
        return pil_view(image, self.size, rng), pil_view(image, self.size, rng)


def pil_loader(images: torch.Tensor, batch_size: int, workers: int, seed: int) -> DataLoader:
    """An endless-epoch DataLoader of PIL two-view batches (shuffled, drop_last, persistent workers)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        PILTwoViews(images, seed),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=generator,
    )
