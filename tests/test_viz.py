from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.errors import InputError, OutputExistsError
from usbrain.viz import lesion_centre, save_montage, show_file, to_ras, view_slices


def test_centre_is_the_largest_lesion():
    mask = lesion_mask(centre=(26, 22, 18), radius=4)
    mask[2:4, 2:4, 2:4] = 1  # a small second lesion elsewhere
    assert lesion_centre(mask) == (26, 22, 18)
    assert lesion_centre(np.zeros((4, 4, 4))) is None and lesion_centre(None) is None


@pytest.mark.parametrize("ornt", [[[0, -1], [1, -1], [2, 1]], [[2, 1], [0, -1], [1, 1]]])
def test_any_axis_order_displays_the_same(ornt):
    data = phantom_brain()
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    ornt = np.array(ornt)
    other = nib.orientations.apply_orientation(data, ornt)
    other_affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)
    a, za = to_ras(data, affine)
    b, zb = to_ras(other, other_affine)
    np.testing.assert_array_equal(zb, za)
    centre = (20, 21, 17)
    for view, pixels in view_slices(a, centre).items():
        np.testing.assert_array_equal(view_slices(b, centre)[view], pixels)


def test_montage_png_shows_the_outline(tmp_path):
    out = save_montage(tmp_path / "m.png", phantom_brain(), np.eye(4), lesion_mask(), "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(out)[..., :3]
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.4) & (pixels[..., 2] < 0.4)
    assert red.sum() > 20  # the lesion contour is drawn
    grey = np.isclose(pixels[..., 0], pixels[..., 1]) & (pixels[..., 0] > 0.3)
    assert grey.sum() > 1000  # and the brain under it


def test_existing_png_is_kept_without_overwrite(tmp_path):
    out = tmp_path / "m.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        save_montage(out, phantom_brain(), np.eye(4))
    assert out.read_bytes() == b"old"


def test_show_file_checks_the_mask_grid_first(tmp_path, scan_pair):
    image, _ = scan_pair
    other = write(tmp_path / "other.nii.gz", lesion_mask(), np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match=r"other\.nii\.gz"):
        show_file(image, tmp_path / "x.png", mask_path=other)
    assert not (tmp_path / "x.png").exists()
    assert show_file(image, tmp_path / "ok.png", mask_path=scan_pair[1]).exists()
