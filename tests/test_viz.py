from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.errors import InputError, OutputExistsError
from usbrain.viz import (
    VIEWS,
    comparison,
    lesion_centre,
    montage,
    save_montage,
    show_file,
    to_ras,
    view_slices,
)

# LPS, and a permuted axis order (file axes = S, L, P) with mixed flips.
ORIENTATIONS = [[[0, -1], [1, -1], [2, 1]], [[2, 1], [0, -1], [1, -1]]]
ANISOTROPIC = np.diag([1.0, 1.2, 2.5, 1.0])


def reorient(data: np.ndarray, affine: np.ndarray, ornt) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored in another axis order, with the affine that keeps them in place."""
    ornt = np.array(ornt)
    return (
        nib.orientations.apply_orientation(data, ornt),
        affine @ nib.orientations.inv_ornt_aff(ornt, data.shape),
    )


def pixels(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


def is_lesion_red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.4) & (rgb[..., 2] < 0.4)


def test_centre_is_the_largest_lesion():
    mask = lesion_mask(centre=(26, 22, 18), radius=4)
    mask[2:4, 2:4, 2:4] = 1  # a small second lesion elsewhere
    assert lesion_centre(mask) == (26, 22, 18)
    assert lesion_centre(np.zeros((4, 4, 4))) is None and lesion_centre(None) is None


def test_centre_of_a_ring_lesion_lies_on_the_lesion():
    idx = np.indices((30, 30, 9))
    r = np.hypot(idx[0] - 15, idx[1] - 15)
    ring = ((r > 6) & (r < 9) & (idx[2] == 4)).astype(np.uint8)  # centre of mass in the hole
    centre = lesion_centre(ring)
    assert ring[centre] == 1
    assert centre[2] == 4 and 6 < np.hypot(centre[0] - 15, centre[1] - 15) < 9


@pytest.mark.parametrize("ornt", ORIENTATIONS)
def test_any_axis_order_displays_the_same(ornt):
    data, mask = phantom_brain(), lesion_mask(centre=(26, 22, 18))
    other, other_affine = reorient(data, ANISOTROPIC, ornt)
    other_mask, _ = reorient(mask, ANISOTROPIC, ornt)

    a, a_affine = to_ras(data, ANISOTROPIC)
    b, b_affine = to_ras(other, other_affine)
    np.testing.assert_allclose(b_affine, a_affine)
    for view, expected in view_slices(a, (20, 21, 17)).items():
        np.testing.assert_array_equal(view_slices(b, (20, 21, 17))[view], expected)

    # The whole picture: lesion-centred slices, aspect ratios, crop and labels.
    np.testing.assert_array_equal(
        pixels(montage(other, other_affine, other_mask)), pixels(montage(data, ANISOTROPIC, mask))
    )
    # An explicit centre is a voxel of the file's own grid, so it moves with the axis order.
    centre = (12, 30, 9)
    other_centre = np.linalg.solve(other_affine, ANISOTROPIC @ [*centre, 1])[:3]
    np.testing.assert_array_equal(
        pixels(montage(other, other_affine, centre=tuple(int(c) for c in np.round(other_centre)))),
        pixels(montage(data, ANISOTROPIC, centre=centre)),
    )


def test_display_is_anterior_up_and_left_on_the_left():
    data = np.zeros((20, 24, 16), np.float32)
    data[2:6, 18:22, 6:10] = 1.0  # a block at the left (low x), anterior (high y) end
    axial = view_slices(to_ras(data, np.eye(4))[0], (4, 20, 8))["axial"]
    rows, cols = np.nonzero(axial)  # drawn with origin="lower": row 0 at the bottom
    assert rows.min() >= 18 and cols.max() < 6


def test_anisotropic_voxels_keep_their_millimetre_proportions():
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    mask = np.zeros((40, 44, 36), np.uint8)
    mask[10:30, 12:32, 10:18] = 1  # 20 × 20 × 20 mm on 1 × 1 × 2.5 mm voxels
    fig = montage(phantom_brain(), affine, mask)
    red = is_lesion_red(pixels(fig)[..., :3] / 255.0)
    for ax in fig.axes:  # each panel shows a 20 mm square
        x0, _, x1, _ = ax.get_window_extent().extents
        rows, cols = np.nonzero(red[:, int(x0) : int(x1)])
        height, width = np.ptp(rows), np.ptp(cols)
        assert width > 20 and abs(height / width - 1) < 0.1


def test_comparison_rows_share_the_first_lesion_centre():
    image, mask = phantom_brain(), lesion_mask(centre=(26, 22, 18))
    fig = comparison(
        [("healthy", image, None), ("sick", image, mask), ("copy", image, None)], np.eye(4)
    )
    assert len(fig.axes) == 9
    expected = view_slices(image, (26, 22, 18))  # RAS input: file grid = display grid
    for r in range(3):
        for c, view in enumerate(VIEWS):
            np.testing.assert_array_equal(fig.axes[3 * r + c].images[0].get_array(), expected[view])


def test_comparison_refuses_rows_on_different_grids():
    with pytest.raises(ValueError, match="'b'"):
        comparison(
            [("a", phantom_brain(), None), ("b", phantom_brain((40, 44, 30)), None)], np.eye(4)
        )


def test_montage_png_shows_the_outline(tmp_path):
    out = save_montage(tmp_path / "m.png", phantom_brain(), np.eye(4), lesion_mask(), "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rgb = imread(out)[..., :3]
    assert is_lesion_red(rgb).sum() > 20  # the lesion contour is drawn
    grey = np.isclose(rgb[..., 0], rgb[..., 1]) & (rgb[..., 0] > 0.3)
    assert grey.sum() > 1000  # and the brain under it


def test_dusty_background_is_cropped():
    # Resampled templates (MNI152) hold 1e-45 instead of 0 outside the head.
    image = np.full((60, 60, 60), 1e-45, np.float32)
    image[20:40, 20:40, 20:40] = phantom_brain((20, 20, 20)) + 1.0
    axial = montage(image, np.eye(4)).axes[0]
    left, right = axial.get_xlim()
    assert right - left < 40


def test_existing_png_is_kept_without_overwrite(tmp_path):
    out = tmp_path / "m.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        save_montage(out, phantom_brain(), np.eye(4))
    assert out.read_bytes() == b"old"
    save_montage(out, phantom_brain(), np.eye(4), overwrite=True)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_show_file_checks_the_mask_grid_first(tmp_path, scan_pair):
    image, mask = scan_pair
    other = write(tmp_path / "other.nii.gz", lesion_mask(), np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match=r"other\.nii\.gz"):
        show_file(image, tmp_path / "x.png", mask_path=other)
    assert not (tmp_path / "x.png").exists()
    out = show_file(image, tmp_path / "ok.png", mask_path=mask)
    assert is_lesion_red(imread(out)[..., :3]).sum() > 20


def test_show_file_refuses_an_existing_output_before_reading(tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        show_file(tmp_path / "missing.nii.gz", out)
    assert out.read_bytes() == b"old"
