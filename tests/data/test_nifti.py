from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.data.nifti import (
    Volume,
    binarise,
    check_same_grid,
    load_image,
    load_mask,
    save_nifti,
)
from usbrain.errors import InputError, OutputExistsError


def test_load_image_float32_with_affine(tmp_path):
    data = phantom_brain()
    affine = np.diag([1.5, 2.0, 2.5, 1.0])
    v = load_image(write(tmp_path / "a.nii.gz", data, affine))
    assert v.data.dtype == np.float32
    np.testing.assert_array_equal(v.data, data)
    np.testing.assert_array_equal(v.affine, affine)
    assert v.spacing == (1.5, 2.0, 2.5)


def test_int16_with_scl_slope_is_scaled(tmp_path):
    raw = (phantom_brain() / 10).astype(np.int16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "s.nii")
    v = load_image(tmp_path / "s.nii")
    np.testing.assert_allclose(v.data, raw * 0.5 + 10.0)


def test_big_endian_data_reads_as_native(tmp_path):
    data = phantom_brain().astype(">f4")
    img = nib.Nifti1Image(data, np.eye(4), header=nib.Nifti1Header(endianness=">"))
    nib.save(img, tmp_path / "be.nii")
    v = load_image(tmp_path / "be.nii")
    assert v.data.dtype == np.float32 and v.data.dtype.isnative
    np.testing.assert_array_equal(v.data, data.astype(np.float32))


def test_singleton_fourth_axis_is_squeezed(tmp_path):
    data = phantom_brain()[..., None]
    v = load_image(write(tmp_path / "s4.nii.gz", data))
    assert v.shape == data.shape[:3]


def _rgb() -> np.ndarray:
    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = 5
    return rgb


def _huge_header(path):
    """A header claiming 30000³ float32 voxels over a few bytes of data."""
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    header.set_sform(np.eye(4), code=1)
    with gzip.open(path, "wb") as f:
        f.write(header.binaryblock + b"\0" * 1004)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b"not an image at all" * 20), "not a readable NIfTI"),
        (lambda p: write(p, np.zeros((8, 8, 8), np.float32)), "all zeros"),
        (lambda p: write(p, np.ones((8, 8, 8, 3), np.float32)), "4D image with 3 volumes"),
        (lambda p: write(p, np.full((8, 8, 8), np.nan, np.float32)), "NaN or Inf"),
        (lambda p: write(p, np.ones((8, 8), np.float32)), "expected a 3D volume"),
        (lambda p: write(p, np.ones((4, 4, 4), np.complex64)), "complex-valued"),
        (lambda p: write(p, _rgb()), "not a scalar volume"),
        (lambda p: write(p, np.zeros((0, 4, 4), np.float32)), "the volume is empty"),
        (_huge_header, "do not fit|than half of this machine's memory"),
    ],
    ids=["missing", "garbage", "all-zero", "4d", "nan", "2d", "complex", "rgb", "empty", "huge"],
)
def test_bad_images_name_the_file_and_problem(tmp_path, make, message):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_truncated_file_is_refused(tmp_path):
    path = write(tmp_path / "t.nii.gz", phantom_brain())
    raw = gzip.decompress(path.read_bytes())
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match="truncated"):
        load_image(cut)


def test_not_a_nifti_name_is_refused(tmp_path):
    path = tmp_path / "scan.mgz"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="not a NIfTI file name"):
        load_image(path)


def test_mask_rule_binary_threshold_and_empty(tmp_path):
    prob = lesion_mask().astype(np.float32) * 0.8
    path = write(tmp_path / "prob.nii.gz", prob)
    with pytest.raises(InputError, match=r"not binary.*--threshold"):
        load_mask(path)
    m = load_mask(path, threshold=0.5)
    assert m.data.dtype == np.uint8 and m.data.sum() == lesion_mask().sum()
    empty = write(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.uint8))
    assert load_mask(empty).data.sum() == 0  # an empty mask is a valid healthy mask…
    with pytest.raises(InputError, match="mask is empty"):
        load_mask(empty, require_lesion=True)  # …but not where a lesion is required


def test_binarise_lists_offending_values():
    with pytest.raises(InputError, match="values 255"):
        binarise(np.array([0.0, 255.0]), None, "m")
    np.testing.assert_array_equal(binarise(np.array([0.0, 0.2, 0.7]), 0.5, "m"), [0, 0, 1])


def test_check_same_grid():
    a = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    check_same_grid(a, Volume(np.zeros((4, 4, 4), np.uint8), np.eye(4) + 1e-6))
    with pytest.raises(InputError, match="shape"):
        check_same_grid(a, Volume(np.zeros((4, 4, 5), np.uint8), np.eye(4)))
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    with pytest.raises(InputError, match="affine differs"):
        check_same_grid(a, Volume(np.zeros((4, 4, 4), np.uint8), shifted))


def test_save_is_atomic_and_refuses_overwrite(tmp_path):
    out = tmp_path / "o.nii.gz"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    save_nifti(out, np.ones((4, 4, 4)), affine)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        save_nifti(out, np.zeros((4, 4, 4)), affine)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.nii.gz"]  # no temp left behind
    save_nifti(out, np.full((4, 4, 4), 2.0), affine, overwrite=True)
    assert load_image(out).data.max() == 2.0


def test_save_types_and_header_of_reference(tmp_path):
    ref_img = nib.Nifti1Image(phantom_brain(), np.diag([1.0, 1.0, 1.0, 1.0]))
    ref_img.set_sform(ref_img.affine, code=4)  # MNI
    nib.save(ref_img, tmp_path / "ref.nii.gz")
    ref = load_image(tmp_path / "ref.nii.gz")
    save_nifti(tmp_path / "m.nii.gz", lesion_mask() > 0, ref.affine, like=ref)
    back = nib.load(tmp_path / "m.nii.gz")
    assert back.get_data_dtype() == np.uint8
    assert int(back.header["sform_code"]) == 4
