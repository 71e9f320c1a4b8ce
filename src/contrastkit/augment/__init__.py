"""Batched tensor augmentations and view pipelines (whole batches on the batch's device, no per-image loops).

Input everywhere: float images ``[B, C, H, W]`` in [0, 1]. Every random op takes ``generator=None`` (global
RNG of the images' device) or a ``torch.Generator`` (reproducible views).
"""

from __future__ import annotations

from contrastkit.augment.blur import (
    GaussianBlur,
    blur_separable,
    default_blur_kernel_size,
    gaussian_kernels_1d,
)
from contrastkit.augment.color import (
    LUMA_WEIGHTS,
    BrightnessContrast,
    ColorJitter,
    RandomGrayscale,
    Solarize,
    luma,
    rotate_hue,
)
from contrastkit.augment.dsa import DSAConfig, DSAParams, dsa_apply, dsa_random, sample_dsa_params
from contrastkit.augment.geometry import (
    CropParams,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
    resample_crops,
)
from contrastkit.augment.graph import drop_edges, flip_random_edges, graph_views, mask_features
from contrastkit.augment.graph_attack import AdversarialGraph, pgd_graph_attack, project_budget
from contrastkit.augment.pipeline import ViewPipeline, local_crop_pipeline, multi_view
from contrastkit.augment.pixel import GaussianNoise, Normalize
from contrastkit.augment.presets import mocov2_views, noise_views, simclr_views

__all__ = [
    "LUMA_WEIGHTS",
    "BrightnessContrast",
    "ColorJitter",
    "CropParams",
    "GaussianBlur",
    "GaussianNoise",
    "Normalize",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomVerticalFlip",
    "Solarize",
    "ViewPipeline",
    "blur_separable",
    "default_blur_kernel_size",
    "gaussian_kernels_1d",
    "luma",
    "mocov2_views",
    "local_crop_pipeline",
    "multi_view",
    "noise_views",
    "resample_crops",
    "rotate_hue",
    "simclr_views",
]
__all__ += [
    "DSAConfig",
    "DSAParams",
    "dsa_apply",
    "dsa_random",
    "sample_dsa_params",
]  # dataset condensation (DC / DSA / DCC)
__all__ += ["drop_edges", "flip_random_edges", "graph_views", "mask_features"]  # GRACE views of graphs
__all__ += ["AdversarialGraph", "pgd_graph_attack", "project_budget"]  # ARIEL's adversarial graph view
