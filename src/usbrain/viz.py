"""Pictures researchers look at: orthogonal-slice montages with the lesion outlined.

Volumes are first reoriented to RAS+ (so any of the 48 axis orders looks the same) and shown in
neurological convention: the subject's left on the left, anterior up in axial views, superior
up in coronal and sagittal views (anterior on the right), pixels stretched by the voxel size.
The lesion is drawn as a contour, not filled, so the tissue under it stays visible.

Figures are built as :class:`matplotlib.figure.Figure` on an Agg canvas, never through pyplot:
no global figure registry, no GUI backend, safe in worker processes and headless servers.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import ndimage

from usbrain.data.masks import lesion_ml
from usbrain.data.nifti import check_same_grid, load_image, load_mask
from usbrain.files import atomic_file, claim

LESION_COLOUR = "#ff3b30"
LABEL_COLOUR = "#7fd4ff"
VIEWS = ("axial", "coronal", "sagittal")
# Per view, the RAS axes shown as (columns, rows) and the axis the slice cuts through.
VIEW_AXES = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}
# (left, right, bottom, top) edge letters of each view in RAS+ neurological display.
EDGE_LABELS = {"axial": "LRPA", "coronal": "LRIS", "sagittal": "PAIS"}
# Empty space kept around the tissue when cropping, so the edge letters do not sit on it.
CROP_MARGIN_MM = 8.0
PANEL_HEIGHT_IN = 2.8

Row = tuple[str, np.ndarray, np.ndarray | None]


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (I, J, K) reordered and flipped to the closest RAS+ axes, and its new affine.

    The result's axes run towards Right, Anterior, Superior; oblique affines go to the closest
    axis order (no resampling), as :func:`nibabel.as_closest_canonical` does.
    """
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(np.asarray(data), ornt)
    return ras, affine @ nib.orientations.inv_ornt_aff(ornt, np.shape(data))


def lesion_centre(mask: np.ndarray | None) -> tuple[int, int, int] | None:
    """A voxel (i, j, k) at the centre of the largest connected lesion of ``mask``, or None.

    That is the lesion's centre of mass, moved to the lesion's nearest voxel when it falls
    outside (a C- or ring-shaped lesion), so slices through it always cut the lesion.
    """
    if mask is None or not np.any(mask):
        return None
    labels, _ = ndimage.label(np.asarray(mask) > 0)
    largest = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    com = np.array(ndimage.center_of_mass(largest))
    centre = tuple(int(c) for c in np.round(com))
    if not largest[centre]:
        voxels = np.argwhere(largest)
        centre = tuple(int(c) for c in voxels[np.argmin(((voxels - com) ** 2).sum(axis=1))])
    return centre  # type: ignore[return-value]


def to_ras_index(
    index: tuple[int, int, int], affine: np.ndarray, ras_affine: np.ndarray
) -> tuple[int, int, int]:
    """Voxel ``index`` of the file's grid (``affine``) as an index of its RAS+ copy."""
    # The two affines differ by an axis permutation and flips, so this maps integers to integers.
    ras = np.linalg.solve(ras_affine, affine @ np.array([*index, 1.0]))[:3]
    return tuple(int(c) for c in np.round(ras))  # type: ignore[return-value]


def view_slices(volume: np.ndarray, centre: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The three 2D slices of a RAS+ ``volume`` (X, Y, Z) through voxel ``centre``.

    Each is indexed [row, column] as drawn with ``origin="lower"``: columns run right (towards
    R, or A in the sagittal view) and rows run up (towards A in the axial view, else S).
    """
    # Taking the cut leaves the other two axes in order, and col < row in every view.
    return {view: np.take(volume, centre[cut], axis=cut).T for view, (*_, cut) in VIEW_AXES.items()}


def display_window(volume: np.ndarray) -> tuple[float, float]:
    """Grey-scale limits (low, high): the 1st and 99.5th percentiles of the nonzero voxels.

    Percentiles, not min/max, so a few hot voxels do not wash the brain out; zeros are left out
    because the background of a skull-stripped or model-space volume would drag the low end.
    """
    values = volume[(volume != 0) & np.isfinite(volume)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, (1.0, 99.5))
    return float(low), float(max(high, low + 1e-6))


def _content_box(
    images: list[np.ndarray], masks: list[np.ndarray], zooms: np.ndarray
) -> list[tuple[int, int]]:
    """Per RAS axis, the half-open voxel range holding any tissue or lesion, plus a margin.

    Tissue is brighter than 1% of the image's robust maximum in absolute value rather than
    merely nonzero: resampled templates (MNI152 among them) carry float dust (1e-45) in the
    background. An image with a noisy background keeps its whole field of view.
    """
    occupied = np.zeros(images[0].shape, dtype=bool)
    for image in images:
        magnitude = np.abs(image)
        nonzero = magnitude[magnitude > 0]
        if nonzero.size:
            occupied |= magnitude > 0.01 * np.percentile(nonzero, 99.5)
    for mask in masks:
        occupied |= mask > 0
    if not occupied.any():
        return [(0, size) for size in occupied.shape]
    box = []
    for axis, size in enumerate(occupied.shape):
        hit = np.flatnonzero(occupied.any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(np.ceil(CROP_MARGIN_MM / zooms[axis]))
        box.append((max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, size)))
    return box


def _edge_letters(ax: Axes, view: str) -> None:
    left, right, bottom, top = EDGE_LABELS[view]
    for text, x, y, ha, va in (
        (left, 0.01, 0.5, "left", "center"),
        (right, 0.99, 0.5, "right", "center"),
        (bottom, 0.5, 0.01, "center", "bottom"),
        (top, 0.5, 0.99, "center", "top"),
    ):
        ax.text(x, y, text, transform=ax.transAxes, color=LABEL_COLOUR, fontsize=8, ha=ha, va=va)


def _draw_panel(
    ax: Axes,
    view: str,
    image: np.ndarray,
    mask: np.ndarray | None,
    window: tuple[float, float],
    zooms: np.ndarray,
    box: list[tuple[int, int]],
    height_mm: float,
) -> None:
    """Draw one view's slice ``image`` [row, col] on ``ax``, ``mask``'s lesion outlined.

    The panel shows the ``box`` crop, padded vertically to ``height_mm`` so all panels of a
    row are equally tall at one mm scale.
    """
    col, row, _ = VIEW_AXES[view]
    ax.set_facecolor("black")
    # Pixel centres sit at integer voxel indices; aspect makes one mm equally long both ways
    # on screen whatever the voxel size.
    ax.imshow(
        image,
        cmap="gray",
        vmin=window[0],
        vmax=window[1],
        origin="lower",
        aspect=zooms[row] / zooms[col],
        interpolation="nearest",
    )
    if mask is not None and mask.any():
        # An outline, not a fill: the tissue under the lesion stays visible.
        ax.contour(mask > 0, levels=[0.5], colors=LESION_COLOUR, linewidths=1.2)
    ax.set_xlim(box[col][0] - 0.5, box[col][1] - 0.5)
    pad = (height_mm / zooms[row] - (box[row][1] - box[row][0])) / 2
    ax.set_ylim(box[row][0] - 0.5 - pad, box[row][1] - 0.5 + pad)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    _edge_letters(ax, view)


def comparison(
    rows: list[Row],
    affine: np.ndarray,
    centre: tuple[int, int, int] | None = None,
    title: str | None = None,
) -> Figure:
    """One row of axial / coronal / sagittal slices per ``(label, image, mask)``.

    ``image`` and ``mask`` are (I, J, K) arrays on the one grid ``affine`` (4, 4) maps to world
    mm; images may have any intensity range (each row gets its own :func:`display_window`),
    masks are nonzero inside the lesion. All rows show the same slices, through ``centre``
    (voxel indices of that grid), else the :func:`lesion_centre` of the first row with a
    lesion, else the middle of the volume. Panels are cropped to the tissue of all rows and
    drawn at one mm-per-inch scale, so sizes compare across views and rows.

    >>> import numpy as np
    >>> fig = comparison([("a", np.random.rand(8, 8, 8), None)], np.eye(4))
    >>> len(fig.axes)
    3
    """
    if not rows:
        raise ValueError("comparison needs at least one row")
    shape = np.shape(rows[0][1])
    for label, image, mask in rows:
        for name, array in (("image", image), ("mask", mask)):
            if array is not None and np.shape(array) != shape:
                raise ValueError(
                    f"row {label!r}: {name} shape {np.shape(array)} differs from {shape}; "
                    "all rows must be on one grid"
                )

    ras_affine = to_ras(rows[0][1], affine)[1]
    ras_rows = [
        (label, to_ras(image, affine)[0], None if mask is None else to_ras(mask, affine)[0])
        for label, image, mask in rows
    ]
    ras_shape = ras_rows[0][1].shape
    zooms = nib.affines.voxel_sizes(ras_affine)
    if centre is not None:
        if not all(0 <= c < s for c, s in zip(centre, shape, strict=True)):
            raise ValueError(f"centre {tuple(centre)} lies outside the volume of shape {shape}")
        ras_centre = to_ras_index(centre, affine, ras_affine)
    else:
        lesions = (lesion_centre(mask) for _, _, mask in ras_rows)
        ras_centre = next((c for c in lesions if c is not None), None)
        if ras_centre is None:
            ras_centre = tuple(s // 2 for s in ras_shape)
    world = nib.affines.apply_affine(ras_affine, ras_centre)

    box = _content_box(
        [image for _, image, _ in ras_rows],
        [mask for _, _, mask in ras_rows if mask is not None],
        zooms,
    )
    extent_mm = [(hi - lo) * z for (lo, hi), z in zip(box, zooms, strict=True)]
    # Every panel of a row is as tall as the tallest view, and as wide as its own view: one
    # mm-per-inch scale for all, so anisotropic or cropped views are not stretched to fit.
    height_mm = max(extent_mm[VIEW_AXES[v][1]] for v in VIEWS)
    widths_mm = [extent_mm[VIEW_AXES[v][0]] for v in VIEWS]
    inch_per_mm = PANEL_HEIGHT_IN / height_mm
    fig = Figure(
        figsize=(
            inch_per_mm * sum(widths_mm) + 0.6,
            PANEL_HEIGHT_IN * len(rows) + 0.3 + (0.4 if title else 0.0),
        ),
        facecolor="black",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 3, squeeze=False, gridspec_kw={"width_ratios": widths_mm})

    for r, (label, image, mask) in enumerate(ras_rows):
        window = display_window(image)
        images = view_slices(image, ras_centre)
        masks = view_slices(mask, ras_centre) if mask is not None else {}
        for c, view in enumerate(VIEWS):
            ax = axes[r, c]
            _draw_panel(ax, view, images[view], masks.get(view), window, zooms, box, height_mm)
            cut = VIEW_AXES[view][2]
            ax.text(
                0.01,
                0.99,
                f"{'xyz'[cut]} = {world[cut]:+.0f} mm",
                transform=ax.transAxes,
                color="#b0b0b0",
                fontsize=7,
                ha="left",
                va="top",
            )
            if r == 0:
                ax.set_title(view, color="white", fontsize=10)
            if c == 0 and label:
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
    """Axial, coronal and sagittal slices of ``image`` (I, J, K), ``mask``'s lesion outlined.

    The slices go through ``centre`` (voxel indices), else the largest lesion, else the
    middle; see :func:`comparison`, of which this is the one-row case.
    """
    return comparison([("", image, mask)], affine, centre=centre, title=title)


def save_figure(fig: Figure, path: str | Path, overwrite: bool = False, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically; return ``path``."""
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
    """:func:`montage` written to ``path`` as PNG (refused if it exists, unless ``overwrite``)."""
    with claim(path, overwrite):  # before drawing: a refusal should cost nothing
        return save_figure(montage(image, affine, mask, title), path, overwrite)


def show_file(
    image_path: str | Path,
    out_png: str | Path,
    mask_path: str | Path | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
) -> Path:
    """``usbrain show``: montage of a NIfTI image, its mask's lesion outlined, at ``out_png``.

    ``threshold`` binarises a non-binary mask (lesion where value > threshold). Raises
    :class:`~usbrain.errors.OutputExistsError` before reading anything, and
    :class:`~usbrain.errors.InputError` naming the file for an unreadable input or a mask
    that is not on the image's grid.
    """
    with claim(out_png, overwrite):
        image = load_image(image_path)
        mask = None
        title = Path(image_path).name
        if mask_path is not None:
            mask = load_mask(mask_path, threshold)
            check_same_grid(image, mask)
            volume_ml = lesion_ml(mask.data, image.spacing)
            title += f"  |  lesion: {Path(mask_path).name} ({volume_ml:.1f} mL)"
        return save_montage(
            out_png,
            image.data,
            image.affine,
            None if mask is None else mask.data,
            title,
            overwrite,
        )
