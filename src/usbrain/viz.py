"""Pictures researchers look at: orthogonal-slice montages with the lesion outlined.

Volumes are first reoriented to RAS+ (so any of the 48 axis orders looks the same) and shown in
neurological convention: the subject's right on the right, anterior up in axial views, superior
up in coronal and sagittal views, pixels stretched by the voxel size. The lesion is drawn as a
contour, not filled, so the tissue under it stays visible.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage

from usbrain.data.nifti import check_same_grid, load_image, load_mask
from usbrain.files import atomic_file, check_writable

LESION_COLOUR = "#ff3b30"
VIEWS = ("axial", "coronal", "sagittal")
# (left, right, bottom, top) edge letters of each view in RAS+ neurological display
EDGE_LABELS = {"axial": "LRPA", "coronal": "LRIS", "sagittal": "PAIS"}

Row = tuple[str, np.ndarray, "np.ndarray | None"]


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (I, J, K) in RAS+ axis order and the voxel sizes along those axes (mm)."""
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(data, ornt)
    zooms = np.empty(3)
    zooms[ornt[:, 0].astype(int)] = nib.affines.voxel_sizes(affine)  # input axis i → ornt[i, 0]
    return ras, zooms


def lesion_centre(mask: np.ndarray | None) -> tuple[int, int, int] | None:
    """Voxel at the centre of mass of the largest connected lesion, or None for no lesion."""
    if mask is None or not np.any(mask):
        return None
    labels, n = ndimage.label(mask > 0)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    largest = int(np.argmax(sizes)) + 1
    centre = ndimage.center_of_mass(labels == largest)
    return tuple(round(float(c)) for c in centre)  # type: ignore[return-value]


def view_slices(volume: np.ndarray, centre: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The three orthogonal 2D slices of a RAS+ ``volume`` through ``centre``, as displayed
    with ``origin="lower"``: rows run up (A or S), columns run right (R or A)."""
    x, y, z = centre
    return {
        "axial": volume[:, :, z].T,
        "coronal": volume[:, y, :].T,
        "sagittal": volume[x, :, :].T,
    }


def _aspects(zooms: np.ndarray) -> dict[str, float]:
    zx, zy, zz = (float(z) for z in zooms)
    return {"axial": zy / zx, "coronal": zz / zx, "sagittal": zz / zy}


def _window(volume: np.ndarray) -> tuple[float, float]:
    values = volume[volume != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, (1.0, 99.5))
    return float(low), float(max(high, low + 1e-6))


def comparison(
    rows: list[Row],
    affine: np.ndarray,
    centre: tuple[int, int, int] | None = None,
    title: str | None = None,
) -> Figure:
    """One row of axial / coronal / sagittal slices per ``(label, image, mask)``.

    All volumes share the grid ``affine``; the slices go through ``centre`` (voxel indices of
    the file's grid), else the lesion centre of the first row with a lesion, else the middle.

    >>> import numpy as np
    >>> fig = comparison([("a", np.random.rand(8, 8, 8), None)], np.eye(4))
    >>> len(fig.axes)
    3
    """
    ras_rows = []
    for label, image, mask in rows:
        ras_image, zooms = to_ras(image, affine)
        ras_mask = None if mask is None else to_ras(mask, affine)[0]
        ras_rows.append((label, ras_image, ras_mask))
    if centre is not None:
        marker = np.zeros(rows[0][1].shape, dtype=np.uint8)
        marker[centre] = 1
        ras_centre = lesion_centre(to_ras(marker, affine)[0])
    else:
        ras_centre = next((c for _, _, m in ras_rows if (c := lesion_centre(m)) is not None), None)
    if ras_centre is None:
        ras_centre = tuple(s // 2 for s in ras_rows[0][1].shape)
    aspects = _aspects(zooms)

    fig = Figure(figsize=(9, 3.1 * len(rows) + (0.4 if title else 0)), facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (label, image, mask) in enumerate(ras_rows):
        low, high = _window(image)
        images = view_slices(image, ras_centre)
        masks = view_slices(mask, ras_centre) if mask is not None else {}
        for c, view in enumerate(VIEWS):
            ax = axes[r, c]
            ax.set_facecolor("black")
            ax.imshow(
                images[view], cmap="gray", vmin=low, vmax=high, origin="lower",
                aspect=aspects[view], interpolation="nearest",
            )  # fmt: skip
            if view in masks and masks[view].any():
                ax.contour(masks[view] > 0, levels=[0.5], colors=LESION_COLOUR, linewidths=1.2)
            left, right, bottom, top = EDGE_LABELS[view]
            for text, xy, ha, va in (
                (left, (0.02, 0.5), "left", "center"), (right, (0.98, 0.5), "right", "center"),
                (bottom, (0.5, 0.02), "center", "bottom"), (top, (0.5, 0.98), "center", "top"),
            ):  # fmt: skip
                ax.text(*xy, text, transform=ax.transAxes, color="#7fd4ff", fontsize=8,
                        ha=ha, va=va)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(view, color="white", fontsize=10)
            if c == 0:
                ax.set_ylabel(label, color="white", fontsize=10)
    if title:
        fig.suptitle(title, color="white", fontsize=12)
    fig.tight_layout()
    return fig


def montage(
    image: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None = None,
    title: str | None = None,
    centre: tuple[int, int, int] | None = None,
) -> Figure:
    """Axial, coronal and sagittal slices of ``image`` (I, J, K) through the lesion centre
    (largest lesion of ``mask``) or the volume centre, lesion outlined."""
    return comparison([("", image, mask)], affine, centre=centre, title=title)


def save_figure(fig: Figure, path: str | Path, overwrite: bool = False, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor=fig.get_facecolor())
    return Path(path)


def save_montage(
    path: str | Path,
    image: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """:func:`montage` written to ``path`` (PNG)."""
    return save_figure(montage(image, affine, mask, title), path, overwrite)


def show_file(
    image_path: str | Path,
    out_png: str | Path,
    mask_path: str | Path | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
) -> Path:
    """``usbrain show``: montage of a NIfTI file with its mask outlined."""
    check_writable(out_png, overwrite)
    image = load_image(image_path)
    mask = None
    if mask_path is not None:
        mask = load_mask(mask_path, threshold)
        check_same_grid(image, mask)
    title = Path(image_path).name
    return save_montage(
        out_png, image.data, image.affine, None if mask is None else mask.data, title, overwrite
    )
