"""A micro pipeline with random weights, saved once, and phantom scans for the task tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import lesion_mask, micro_config, phantom_brain, write

# 6 mm keeps the 80–88 mm phantom inside the 16³ grid and a 10 mm lesion visible in it.
TASK_OVERRIDES = ("space.spacing=6.0",)
LESION = {"centre": (26, 22, 18), "radius": 5}


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory) -> Path:
    from usbrain.pipeline import Pipeline

    torch.manual_seed(0)
    pipe = Pipeline.build(micro_config(*TASK_OVERRIDES))
    return pipe.save_pretrained(tmp_path_factory.mktemp("pipe") / "pipeline")


@pytest.fixture
def scans(tmp_path: Path) -> dict[str, Path]:
    """A lesioned phantom, its mask and the healthy phantom, on one 2 mm grid."""
    healthy = phantom_brain()
    mask = lesion_mask(**LESION)
    sick = healthy.copy()
    sick[mask > 0] = 300.0
    return {
        "healthy": write(tmp_path / "healthy.nii.gz", healthy),
        "image": write(tmp_path / "sick.nii.gz", sick),
        "mask": write(tmp_path / "mask.nii.gz", mask),
    }


def lps_anisotropic(data: np.ndarray, out: Path) -> Path:
    """``data`` re-stored in LPS order with 1.8 × 2.2 × 2.6 mm voxels, its centre at the MNI
    brain's centre (where ``condition`` expects a mask)."""
    flipped = np.ascontiguousarray(data[::-1, ::-1, :])
    affine = np.diag([-1.8, -2.2, 2.6, 1.0])
    centre = (np.asarray(data.shape) - 1) / 2
    affine[:3, 3] = np.array([0.0, -22.0, 10.0]) - affine[:3, :3] @ centre
    return write(out, flipped, affine)
