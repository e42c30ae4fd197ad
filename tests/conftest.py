"""Shared test fixtures: small synthetic brains written as NIfTI files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def phantom_brain(shape=(40, 44, 36), seed: int = 0) -> np.ndarray:
    """A skull-stripped T1-like phantom: ellipsoid brain, bright WM core, dark ventricles.

    Returns float32 (I, J, K) in roughly [0, 1000], zero outside the brain.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=0)
    r = np.sqrt(((grid / np.array([0.8, 0.85, 0.75])[:, None, None, None]) ** 2).sum(0))
    img = np.zeros(shape, np.float32)
    img[r < 1.0] = 600.0  # grey matter
    img[r < 0.75] = 900.0  # white matter
    vent = np.sqrt(((grid / np.array([0.12, 0.3, 0.15])[:, None, None, None]) ** 2).sum(0))
    img[vent < 1.0] = 250.0  # ventricles
    img[r < 1.0] += rng.normal(0, 15, size=int((r < 1.0).sum())).astype(np.float32)
    return img


def write(path: Path, data: np.ndarray, affine: np.ndarray | None = None, **kw) -> Path:
    """Write ``data`` as NIfTI at ``path`` (default affine: 2 mm RAS)."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(data, affine)
    for key, value in kw.items():
        img.header[key] = value
    nib.save(img, path)
    return path


def lesion_mask(shape=(40, 44, 36), centre=(26, 22, 18), radius=3) -> np.ndarray:
    """A ball-shaped lesion mask, uint8 {0, 1}."""
    idx = np.indices(shape)
    d2 = sum((idx[a] - centre[a]) ** 2 for a in range(3))
    return (d2 <= radius**2).astype(np.uint8)


def cube(corner, side: int, shape=(12, 12, 12)) -> np.ndarray:
    """A cube mask of ``side`` voxels from ``corner``, uint8 {0, 1}."""
    mask = np.zeros(shape, np.uint8)
    mask[tuple(slice(c, c + side) for c in corner)] = 1
    return mask


def lesioned_phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(healthy, pathological, mask): the phantom with a dark (300) ball-shaped lesion."""
    healthy = phantom_brain()
    mask = lesion_mask()
    sick = healthy.copy()
    sick[mask > 0] = 300.0
    return healthy, sick, mask


@pytest.fixture
def scan_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A phantom image and its lesion mask on the same 2 mm grid."""
    img = phantom_brain()
    mask = lesion_mask()
    img[mask > 0] = 300.0
    return write(tmp_path / "t1.nii.gz", img), write(tmp_path / "mask.nii.gz", mask)


MICRO_OVERRIDES = [
    "space.size=[16,16,16]",
    "space.spacing=12.0",
    "autoencoder.channels=[8,8]",
    "autoencoder.latent_channels=3",
    "autoencoder.norm_num_groups=4",
    "autoencoder.train_patch=0",
    "unet.channels=[8,8]",
    "unet.attention_levels=[false,true]",
    "unet.num_head_channels=8",
    "unet.norm_num_groups=4",
    "diffusion.timesteps=100",
    "train_diffusion.batch_size=4",
    "train_diffusion.lr=0.001",
    "train_autoencoder.batch_size=2",
    "sampling.steps=10",
    "sampling.t_start_heal=30",
    "sampling.t_start_lesion=50",
]


def micro_config(*overrides: str):
    """A config small enough to train for a few steps in a test (16³ volumes, 8³ latents)."""
    from usbrain.config import load_config

    return load_config("tiny", overrides=[*MICRO_OVERRIDES, *overrides])


def random_latents(n: int = 12, seed: int = 0, split: str = "train"):
    """Random (brain, mask) latents shaped for :func:`micro_config`."""
    import torch

    from usbrain.train.latents import Latents

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, 8, generator=g)
    m = torch.randn(n, 3, 8, 8, 8, generator=g) * 0.5
    return Latents(x, m, [f"s{i}" for i in range(n)], [split] * n, [0] * n)
