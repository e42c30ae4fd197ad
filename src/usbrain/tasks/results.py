"""What a task returns, and the seeds it draws from.

Every random draw of a task comes from a CPU ``torch.Generator`` seeded by the task's seed, so a
seed fixes the result on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from usbrain.data.nifti import Volume
from usbrain.errors import InputError


@dataclass
class Result:
    """One task output: ``image`` and ``mask`` as :class:`Volume` (native or model grid),
    the ``source`` scan for side-by-side figures (None for generation), ``info``: what
    produced it and what was checked, written to the JSON sidecar, and ``maps``."""

    image: Volume
    mask: Volume
    source: Volume | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # More float32 volumes on the image's grid, each written as ``<name>.nii.gz`` ("anomaly",
    # "std").
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def generator(seed: int) -> torch.Generator:
    """The CPU generator every random draw of a task comes from."""
    return torch.Generator().manual_seed(int(seed))


def check_samples(samples: int) -> None:
    if samples < 1:
        raise InputError(f"--samples {samples}: must be 1 or more")


def sampled_edits(
    samples: int, seed: int, run_one: Callable[[int], tuple[np.ndarray, dict[str, Any]]]
) -> tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
    """``run_one(k)`` for the samples k = 0 … ``samples`` − 1 (seed ``seed + k``), each an
    edited volume and its info: their voxel-wise mean (float32; one sample comes back as it
    is), the first sample's info with every seed, and the map ``std`` of several samples."""
    outputs, infos = zip(*(run_one(k) for k in range(samples)), strict=True)
    info = dict(infos[0])
    if samples == 1:
        return outputs[0], info, {}
    stack = np.stack(outputs).astype(np.float64)
    info["seeds"] = [seed + k for k in range(samples)]
    return stack.mean(0).astype(np.float32), info, {"std": stack.std(0).astype(np.float32)}
