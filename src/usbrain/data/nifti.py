"""NIfTI loading and saving with the checks a user's data needs.

Every loader returns a :class:`Volume`: a 3D array with its voxel-to-world affine (RAS+ mm, as
NIfTI defines world space) and the header it came with, so outputs can be written back with the
input's header. Problems a user can fix raise :class:`~usbrain.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from usbrain.errors import InputError
from usbrain.files import atomic_file

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Affines of two volumes on "the same grid" may differ by float noise from different writers.
GRID_ATOL_MM = 1e-3


@dataclass(frozen=True)
class Volume:
    """A 3D volume and where it lies in the world.

    ``data`` is ``(I, J, K)`` in the file's own voxel order: float32 for images, uint8 {0, 1} for
    masks. ``affine`` maps voxel indices to world millimetres (RAS+).

    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> v.shape, v.spacing
    ((2, 3, 4), (2.0, 2.0, 2.0))
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    header: nib.Nifti1Header | None = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(z) for z in nib.affines.voxel_sizes(self.affine))  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<array>"


def _oneline(exc: BaseException) -> str:
    """A library's error text on one line (nibabel's messages may contain newlines)."""
    return " ".join(str(exc).split())


def _is_nifti_name(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def _check_voxel_type(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse what is not a real-valued scalar volume that fits in memory, before reading it
    (numpy would cast complex voxels silently to their real part)."""
    dtype = img.get_data_dtype()
    if dtype.names is not None or dtype.kind == "V":
        raise InputError(
            f"{path}: voxels of type {dtype} (RGB or structured) are not a scalar volume; "
            "give a single-channel scan"
        )
    if dtype.kind == "c":
        raise InputError(f"{path}: complex-valued voxels; give the magnitude image")
    if dtype.kind not in "biuf":
        raise InputError(f"{path}: voxels of type {dtype} are not numbers")
    if 0 in img.shape:
        raise InputError(f"{path}: the volume is empty (shape {img.shape})")
    needed = int(np.prod(img.shape, dtype=np.float64)) * 8  # read as float64
    if needed > _memory_bytes() // 2:
        raise InputError(
            f"{path}: {img.shape} voxels need {needed / 2**30:.1f} GiB to read, more than "
            "half of this machine's memory"
        )


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _read(path: str | Path) -> tuple[np.ndarray, nib.Nifti1Image, Path]:
    """Open ``path`` as NIfTI and read its voxels (scl_slope/inter applied) as float64 3D."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a NIfTI file (.nii or .nii.gz)")
    if not _is_nifti_name(path):
        raise InputError(f"{path}: not a NIfTI file name (expected .nii or .nii.gz)")
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types for garbage headers
        raise InputError(f"{path}: not a readable NIfTI file ({_oneline(exc)})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"{path}: not a NIfTI image (nibabel read it as {type(img).__name__})")
    _check_voxel_type(img, path)
    try:
        data = np.asarray(img.dataobj, dtype=np.float64)
    except MemoryError:
        raise InputError(f"{path}: {img.shape} voxels do not fit in memory") from None
    except Exception as exc:  # nibabel, numpy and zlib raise many types for broken data
        raise InputError(f"{path}: unreadable or truncated voxel data ({_oneline(exc)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:  # (X, Y, Z, 1) is a 3D volume saved as 4D
        data = data[..., 0]
    if data.ndim == 4:
        raise InputError(
            f"{path}: 4D image with {data.shape[3]} volumes; give one 3D volume "
            "(e.g. extract it with fslroi or nibabel)"
        )
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise InputError(f"{path}: {bad} NaN or Inf voxels; fix or mask them before use")
    if not np.all(np.isfinite(img.affine)):
        raise InputError(f"{path}: the affine has NaN or Inf entries")
    if abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise InputError(f"{path}: the affine is singular (zero voxel size?)")
    return data, img, path


def load_image(path: str | Path) -> Volume:
    """Load a 3D intensity image as float32 (any dtype, endianness and scl_slope on disk)."""
    data, img, path = _read(path)
    if not np.any(data):
        raise InputError(f"{path}: the image is all zeros")
    return Volume(data.astype(np.float32), img.affine.copy(), path, img.header)


def binarise(data: np.ndarray, threshold: float | None, name: str) -> np.ndarray:
    """The mask rule: lesion where value > ``threshold``; without a threshold values must be 0/1.

    A probability map or a label image (0/255, 0/2…) is refused rather than guessed at: the
    caller must say where to cut it.
    """
    if threshold is not None:
        return (data > threshold).astype(np.uint8)
    values = np.unique(data)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        shown = ", ".join(f"{v:g}" for v in extra[:5])
        raise InputError(
            f"{name}: mask is not binary (values {shown}{'…' if extra.size > 5 else ''} besides "
            "0 and 1); pass --threshold T to count voxels above T as lesion"
        )
    return data.astype(np.uint8)


def load_mask(
    path: str | Path, threshold: float | None = None, require_lesion: bool = False
) -> Volume:
    """Load a lesion mask as uint8 {0, 1} by :func:`binarise`'s rule.

    With ``require_lesion`` an empty mask is an error (heal and lesion insertion need a lesion).
    """
    data, img, path = _read(path)
    mask = binarise(data, threshold, str(path))
    if require_lesion and not mask.any():
        raise InputError(f"{path}: the mask is empty; this command needs at least one lesion voxel")
    return Volume(mask, img.affine.copy(), path, img.header)


def check_same_grid(reference: Volume, other: Volume) -> None:
    """Raise if ``other`` does not share ``reference``'s voxel grid (shape and affine)."""
    if reference.shape != other.shape:
        raise InputError(
            f"{other.name}: shape {other.shape} differs from {reference.name} {reference.shape}; "
            "both must be on the same voxel grid"
        )
    if not np.allclose(reference.affine, other.affine, atol=GRID_ATOL_MM):
        diff = float(np.abs(reference.affine - other.affine).max())
        raise InputError(
            f"{other.name}: affine differs from {reference.name} (by up to {diff:.3g} mm); "
            "both must be on the same voxel grid"
        )


def save_nifti(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    like: Volume | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` atomically as NIfTI: float → float32, bool/integer → uint8.

    ``like`` copies that volume's header (qform/sform codes, units, description) so an output in
    the input's native space carries the input's header; its scaling is reset.
    """
    path = Path(path)
    if not _is_nifti_name(path):
        raise InputError(f"{path}: output must end in .nii or .nii.gz")
    arr = np.asarray(data)
    dtype = np.float32 if np.issubdtype(arr.dtype, np.floating) else np.uint8
    arr = arr.astype(dtype)
    header = like.header.copy() if like is not None and like.header is not None else None
    img = nib.Nifti1Image(arr, affine, header=header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)
    if header is None:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    else:
        img.set_qform(affine)
        img.set_sform(affine)
    with atomic_file(path, overwrite=overwrite) as tmp:
        nib.save(img, tmp)
    return path
