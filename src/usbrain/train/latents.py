"""The latent cache (``usbrain encode``): a prepared dataset encoded once, read by diffusion
training instead of volumes.

A latent folder holds ``latents.safetensors`` (``x``: brain latents, ``m``: mask latents, both
(N, C, d, h, w), scaled) and ``index.json`` (subjects, splits, lesion volumes, the autoencoder it
came from).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from usbrain.data.cache import PreparedDataset
from usbrain.errors import InputError
from usbrain.files import atomic_dir
from usbrain.models.autoencoder import Autoencoder
from usbrain.progress import progress_bar


@dataclass(frozen=True)
class Latents:
    """Brain latents ``x`` and mask latents ``m`` (N, C, d, h, w) with per-item metadata."""

    x: torch.Tensor
    m: torch.Tensor
    subjects: list[str]
    splits: list[str]
    lesion_voxels: list[int]

    def select(self, split: str) -> Latents:
        keep = [i for i, s in enumerate(self.splits) if s == split]
        return Latents(
            self.x[keep],
            self.m[keep],
            [self.subjects[i] for i in keep],
            [self.splits[i] for i in keep],
            [self.lesion_voxels[i] for i in keep],
        )


@torch.no_grad()
def encode_dataset(
    autoencoder: Autoencoder, dataset: PreparedDataset, device: torch.device, progress: bool = True
) -> Latents:
    """Encode every image and mask of ``dataset`` (posterior means, scaled)."""
    autoencoder.eval().to(device)
    xs, ms, subjects, splits, voxels = [], [], [], [], []
    for i in progress_bar(range(len(dataset)), desc="encoding", unit="scan", disable=not progress):
        item = dataset[i]
        z = autoencoder.encode(torch.stack([item["image"], item["mask"]]).to(device)).cpu()
        xs.append(z[0])
        ms.append(z[1])
        subjects.append(item["subject"])
        splits.append(dataset.rows[i]["split"])
        voxels.append(int(item["mask"].sum()))
    return Latents(torch.stack(xs), torch.stack(ms), subjects, splits, voxels)


def save_latents(latents: Latents, out: str | Path, source: dict, overwrite: bool = False) -> Path:
    """Write a latent folder atomically; ``source`` records where the latents came from."""
    with atomic_dir(out, overwrite) as tmp:
        safetensors.torch.save_file(
            {"x": latents.x.contiguous(), "m": latents.m.contiguous()},
            tmp / "latents.safetensors",
        )
        index = {
            "subjects": latents.subjects,
            "splits": latents.splits,
            "lesion_voxels": latents.lesion_voxels,
            "source": source,
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
    return Path(out)


def load_latents(path: str | Path) -> tuple[Latents, dict]:
    """Read a latent folder; returns the latents and their ``source`` record (paths resolved:
    they are stored relative to the folder, so a run folder can be moved as a whole)."""
    path = Path(path)
    files = [path / "latents.safetensors", path / "index.json"]
    if not all(f.is_file() for f in files):
        raise InputError(f"{path}: not a latent cache (run `usbrain encode` to make one)")
    try:
        tensors = safetensors.torch.load_file(files[0])
        index = json.loads(files[1].read_text())
        latents = Latents(
            tensors["x"], tensors["m"], index["subjects"], index["splits"], index["lesion_voxels"]
        )
    except Exception as exc:  # corrupt file or foreign JSON: one message either way
        raise InputError(f"{path}: corrupt latent cache ({exc})") from None
    source = {k: str(path / v) for k, v in index["source"].items()}  # absolute v stays as is
    return latents, source
