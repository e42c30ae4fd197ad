"""The prepared cache: a dataset brought to model space once, then read by training.

Layout of a cache folder (written atomically by :func:`prepare`)::

    manifest.csv          subject, image, mask, healthy_image, split, geometry, lesion_ml
    space.json            the model space (size, spacing) every volume is on
    images/<subject>.nii.gz    float32 in [0, 1] on the model grid (viewable in any viewer)
    masks/<subject>.nii.gz     uint8 {0, 1}
    healthy/<subject>.nii.gz   the known healthy image, where the dataset has one
    geometry/<subject>.json    how to go back to the scan's native space
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

from usbrain.config import ModelSpace
from usbrain.data.csvfile import read_rows
from usbrain.data.datasets import Record, Split, assign_splits, discover, write_manifest
from usbrain.data.geometry import Geometry
from usbrain.data.masks import lesion_ml
from usbrain.data.nifti import check_same_grid, load_image, load_mask, save_nifti
from usbrain.data.preprocess import geometry_for, preprocess, voxels_outside_model_grid
from usbrain.errors import InputError, UsbrainError, problems_error
from usbrain.files import atomic_dir
from usbrain.progress import progress_bar


@dataclass(frozen=True)
class _Checked:
    record: Record
    geometry: Geometry
    lesion_ml: float | None


def _check_record(record: Record, space: ModelSpace, threshold: float | None) -> _Checked:
    """Load every file of ``record`` and check it, raising the first problem found."""
    image = load_image(record.image)
    volume_ml = None
    geometry = geometry_for(image, space)
    if record.mask is not None:
        mask = load_mask(record.mask, threshold)
        check_same_grid(image, mask)
        volume_ml = lesion_ml(mask.data, mask.spacing)
        cut = voxels_outside_model_grid(mask, geometry)
        if cut:
            raise InputError(
                f"{record.mask}: {cut} lesion voxels lie outside the {space.size} model grid "
                f"(field of view {space.field_of_view_mm} mm); use a preset with a larger grid"
            )
    if record.healthy_image is not None:
        check_same_grid(image, load_image(record.healthy_image))
    return _Checked(record, geometry, volume_ml)


def validate(
    records: list[Record], space: ModelSpace, threshold: float | None, progress: bool = False
) -> list[_Checked]:
    """Check every record; raise one :class:`InputError` listing every problem found."""
    checked, problems = [], []
    for record in progress_bar(records, desc="checking", unit="scan", disable=not progress):
        try:
            checked.append(_check_record(record, space, threshold))
        except UsbrainError as exc:
            problems.append(str(exc))
    if problems:
        raise problems_error(f"{len(problems)} of {len(records)} scans have problems", problems)
    return checked


def prepare(
    data: str | Path,
    out: str | Path,
    space: ModelSpace,
    threshold: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Bring the dataset at ``data`` to model space and write a cache folder at ``out``.

    Every file is checked before anything is written; scans without a split get a deterministic
    one by subject (:func:`assign_splits`). Returns the cache's manifest path.
    """
    out = Path(out)
    with atomic_dir(out, overwrite) as tmp:
        records = assign_splits(discover(data), seed=seed)
        checked = validate(records, space, threshold, progress)
        for sub in ("images", "masks", "healthy", "geometry"):
            (tmp / sub).mkdir()
        written, geometry_files, volumes = [], [], []
        for item in progress_bar(checked, desc="preparing", unit="scan", disable=not progress):
            r = item.record
            image = load_image(r.image)
            mask = load_mask(r.mask, threshold) if r.mask is not None else None
            prepared = preprocess(image, space, mask, geometry=item.geometry)
            affine = prepared.geometry.model
            image_out = save_nifti(tmp / "images" / f"{r.subject}.nii.gz", prepared.image, affine)
            mask_out = healthy_out = None
            if prepared.mask is not None:
                mask_out = save_nifti(tmp / "masks" / f"{r.subject}.nii.gz", prepared.mask, affine)
            if r.healthy_image is not None:
                healthy = preprocess(load_image(r.healthy_image), space, geometry=item.geometry)
                healthy_out = save_nifti(
                    tmp / "healthy" / f"{r.subject}.nii.gz", healthy.image, affine
                )
            geometry_file = tmp / "geometry" / f"{r.subject}.json"
            prepared.geometry.save(geometry_file)
            written.append(Record(r.subject, image_out, mask_out, healthy_out, r.split))
            geometry_files.append(f"geometry/{r.subject}.json")
            volumes.append("" if item.lesion_ml is None else f"{item.lesion_ml:.3f}")
        (tmp / "space.json").write_text(json.dumps(asdict(space)))
        write_manifest(
            written, tmp / "manifest.csv", {"geometry": geometry_files, "lesion_ml": volumes}
        )
    return out / "manifest.csv"


def read_space(root: str | Path) -> ModelSpace:
    """The model space a cache folder was prepared for."""
    path = Path(root) / "space.json"
    if not path.is_file():
        raise InputError(f"{root}: not a usbrain cache (no space.json); run `usbrain prepare`")
    raw = json.loads(path.read_text())
    return ModelSpace(size=tuple(raw["size"]), spacing=float(raw["spacing"]))


class PreparedDataset(Dataset):
    """Model-space ``(image, mask)`` pairs from a cache folder written by :func:`prepare`.

    Each item is a dict: ``image`` (1, D, H, W) float32 in [0, 1], ``mask`` (1, D, H, W) float32
    {0, 1} (zeros for scans without a mask: healthy), ``has_mask`` bool, ``subject`` str.

    >>> ds = PreparedDataset("cache", split="train")  # doctest: +SKIP
    >>> ds[0]["image"].shape  # doctest: +SKIP
    torch.Size([1, 48, 48, 48])
    """

    def __init__(self, root: str | Path, split: Split | str | None = None) -> None:
        self.root = Path(root)
        self.space = read_space(self.root)
        rows = [r.cells for r in read_rows(self.root / "manifest.csv")]
        wanted = None if split is None else Split(split)
        self.rows = [r for r in rows if wanted is None or r["split"] == wanted]

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, cell: str) -> np.ndarray:
        return np.asarray(nib.load(self.root / cell).dataobj, dtype=np.float32)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        image = self._read(row["image"])
        mask = self._read(row["mask"]) if row["mask"] else np.zeros_like(image)
        return {
            "image": torch.from_numpy(image)[None],
            "mask": torch.from_numpy(mask)[None],
            "has_mask": bool(row["mask"]),
            "subject": row["subject"],
        }
