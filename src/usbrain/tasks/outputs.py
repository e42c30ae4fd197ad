"""Writing task results: one folder per result, complete or absent.

Each result folder holds ``image.nii.gz`` (float32), ``mask.nii.gz`` (uint8), ``montage.png``
(input and output side by side for edits, the lesion outlined), ``usbrain.json`` (command,
parameters, seed, inputs, checkpoint hash, package versions) and the result's maps (float32 on
the image's grid): ``std.nii.gz`` for an edit of several samples, ``anomaly.nii.gz`` for heal
without a mask. Nothing in the sidecar depends on the time of the run, so the same seed gives
byte-identical folders.

:func:`export_nnunet` lays results out as an nnU-Net v2 raw dataset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from usbrain import __version__
from usbrain.config import to_dict
from usbrain.data.nifti import save_nifti
from usbrain.files import atomic_dir
from usbrain.pipeline import Pipeline
from usbrain.tasks.results import Result
from usbrain.viz import comparison, save_figure

IMAGE, MASK, MONTAGE, SIDECAR = "image.nii.gz", "mask.nii.gz", "montage.png", "usbrain.json"


def provenance(pipe: Pipeline, checkpoint: str | Path | None) -> dict[str, Any]:
    """What made a result: checkpoint path and weight hash, package and torch versions."""
    return {
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "weights_sha256": pipe.weights_sha256,
        "usbrain_version": __version__,
        "torch_version": torch.__version__,
    }


def sidecar(
    command: str, parameters: Any, inputs: dict[str, Any], result: Result, origin: dict[str, Any]
) -> dict[str, Any]:
    """The JSON record of one result; ``parameters`` is a config dataclass or a dict."""
    params = parameters if isinstance(parameters, dict) else to_dict(parameters)
    return {"command": command, "parameters": params, "inputs": inputs, **result.info, **origin}


def write_result(
    result: Result, out: str | Path, record: dict[str, Any], title: str, overwrite: bool = False
) -> Path:
    """Write ``result`` into the folder ``out`` atomically (refused if it exists)."""
    with atomic_dir(out, overwrite) as tmp:
        like = result.source
        save_nifti(tmp / IMAGE, result.image.data.astype("float32"), result.image.affine, like=like)
        save_nifti(tmp / MASK, result.mask.data.astype("uint8"), result.mask.affine, like=like)
        for name, data in result.maps.items():
            save_nifti(
                tmp / f"{name}.nii.gz", data.astype("float32"), result.image.affine, like=like
            )
        rows = [("output", result.image.data, result.mask.data)]
        if result.source is not None:
            rows.insert(0, ("input", result.source.data, result.mask.data))
        save_figure(comparison(rows, result.image.affine, title=title), tmp / MONTAGE)
        (tmp / SIDECAR).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return Path(out)


def export_nnunet(folders: list[Path], out: str | Path, name: str, overwrite: bool = False) -> Path:
    """Copy result folders into an nnU-Net v2 raw dataset at ``out``.

    Layout: ``imagesTr/usb_0000_0000.nii.gz`` (channel 0: T1), ``labelsTr/usb_0000.nii.gz``
    (0 background, 1 lesion) and ``dataset.json``.
    """
    with atomic_dir(out, overwrite) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for i, folder in enumerate(folders):
            shutil.copyfile(folder / IMAGE, tmp / "imagesTr" / f"usb_{i:04d}_0000.nii.gz")
            shutil.copyfile(folder / MASK, tmp / "labelsTr" / f"usb_{i:04d}.nii.gz")
        dataset = {
            "name": name,
            "description": "synthetic (brain, lesion) pairs made by usbrain",
            "channel_names": {"0": "T1"},
            "labels": {"background": 0, "lesion": 1},
            "numTraining": len(folders),
            "file_ending": ".nii.gz",
        }
        (tmp / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")
    return Path(out)
