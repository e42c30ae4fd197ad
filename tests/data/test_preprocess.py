from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from nilearn import datasets

from tests.conftest import lesion_mask, phantom_brain
from usbrain.config import ModelSpace, space_preset
from usbrain.data.geometry import Geometry
from usbrain.data.nifti import Volume
from usbrain.data.preprocess import (
    VolumeKind,
    brain_mask,
    normalise,
    preprocess,
    resample,
    to_model,
    to_native,
    voxels_outside_model_grid,
)
from usbrain.errors import InputError

ANISO = (0.9, 1.1, 1.3)
ORIENTATIONS = [
    np.array([[axis, flip] for axis, flip in zip(perm, flips, strict=True)])
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((1, -1), repeat=3)
]


@pytest.fixture(scope="module")
def mni_aniso() -> Volume:
    """The MNI152 T1 resampled onto 0.9×1.1×1.3 mm voxels, in [0, 800]."""
    t1 = datasets.load_mni152_template(resolution=1)
    affine = np.diag([*ANISO, 1.0])
    affine[:3, 3] = t1.affine[:3, 3]
    shape = tuple(int(n / z) for n, z in zip(t1.shape, ANISO, strict=True))
    data = resample(t1.get_fdata().astype(np.float32), t1.affine, affine, shape) * 800
    return Volume(data, affine)


def reoriented(volume: Volume, ornt: np.ndarray) -> Volume:
    """The same voxels stored in another axis order (same world positions)."""
    data = nib.orientations.apply_orientation(volume.data, ornt)
    affine = volume.affine @ nib.orientations.inv_ornt_aff(ornt, volume.shape)
    return Volume(np.ascontiguousarray(data, dtype=np.float32), affine)


def test_there_are_48_distinct_axis_orders():
    codes = {nib.orientations.ornt2axcodes(o) for o in ORIENTATIONS}
    assert len(codes) == 48


@pytest.mark.slow
@pytest.mark.parametrize(
    "ornt", ORIENTATIONS, ids=lambda o: "".join(nib.orientations.ornt2axcodes(o))
)
def test_round_trip_every_axis_order(mni_aniso, ornt):
    """to_native(preprocess(img)) is on the input's exact grid and matches it inside the brain."""
    native = reoriented(mni_aniso, ornt)
    space = space_preset("paper")
    prepared = preprocess(native, space)
    assert prepared.image.shape == space.size
    assert prepared.geometry.orientation == "".join(nib.aff2axcodes(native.affine))
    back = to_native(prepared.image, prepared.geometry, VolumeKind.IMAGE)
    assert back.shape == native.shape
    np.testing.assert_array_equal(prepared.geometry.native, native.affine)
    # 160 mm cannot hold the MNI brain's 181 mm front-to-back: the poles are cropped (a few
    # percent of brain voxels, counted by voxels_outside_model_grid); compare what is kept.
    brain = brain_mask(native.data)
    cut = voxels_outside_model_grid(
        Volume(brain.astype(np.uint8), native.affine), prepared.geometry
    )
    assert cut / brain.sum() < 0.05
    kept = brain & (back > 0)
    assert brain.sum() - kept.sum() <= cut * 1.05 + 0.001 * brain.sum()
    corr = np.corrcoef(back[kept], native.data[kept])[0, 1]
    assert corr >= 0.99, corr


@pytest.mark.slow
def test_round_trip_whole_brain_when_the_grid_covers_it(mni_aniso):
    space = ModelSpace(size=(192, 192, 176), spacing=1.0)
    prepared = preprocess(mni_aniso, space)
    brain = brain_mask(mni_aniso.data)
    assert (
        voxels_outside_model_grid(
            Volume(brain.astype(np.uint8), mni_aniso.affine), prepared.geometry
        )
        == 0
    )
    back = to_native(prepared.image, prepared.geometry, VolumeKind.IMAGE)
    assert np.corrcoef(back[brain], mni_aniso.data[brain])[0, 1] >= 0.99


@pytest.mark.slow
def test_oblique_affine_round_trip(mni_aniso):
    angle = np.deg2rad(15)  # about z and x: no axis of the scan is aligned with the world's
    cz, sz = np.cos(angle), np.sin(angle)
    rot = np.array([[cz, -sz, 0, 0], [sz, cz, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0, 0], [0, cz, -sz, 0], [0, sz, cz, 0], [0, 0, 0, 1]])
    native = Volume(mni_aniso.data, rot @ mni_aniso.affine)
    prepared = preprocess(native, ModelSpace(size=(208, 208, 208), spacing=1.0))
    back = to_native(prepared.image, prepared.geometry, VolumeKind.IMAGE)
    np.testing.assert_array_equal(prepared.geometry.native, native.affine)
    brain = brain_mask(native.data)
    assert np.corrcoef(back[brain], native.data[brain])[0, 1] >= 0.99


def test_model_space_is_ras_isotropic_and_centred_on_the_brain():
    data = phantom_brain()
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])
    lps[:3, 3] = [40.0, 44.0, -36.0]
    prepared = preprocess(Volume(data, lps), ModelSpace(size=(32, 32, 32), spacing=3.0))
    model = prepared.geometry.model
    np.testing.assert_array_equal(model[:3, :3], np.diag([3.0, 3.0, 3.0]))
    centre_voxel = (np.array(prepared.image.shape) - 1) / 2
    centre_world = nib.affines.apply_affine(model, centre_voxel)
    brain_centre = nib.affines.apply_affine(lps, np.argwhere(brain_mask(data)).mean(0))
    np.testing.assert_allclose(centre_world, brain_centre, atol=1e-6)
    assert prepared.image.min() == 0.0 and 0.9 < prepared.image.max() <= 1.0


def test_mask_follows_the_image_and_comes_back():
    data, mask = phantom_brain(), lesion_mask(radius=5)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    prepared = preprocess(
        Volume(data, affine), ModelSpace((48, 48, 48), 2.0), mask=Volume(mask, affine)
    )
    assert prepared.mask.dtype == np.uint8
    assert abs(int(prepared.mask.sum()) - int(mask.sum())) <= 0.1 * mask.sum()
    back = to_native(prepared.mask, prepared.geometry, VolumeKind.MASK)
    dice = 2 * (back & mask).sum() / (back.sum() + mask.sum())
    assert dice >= 0.95


def test_delta_comes_back_in_native_units():
    data = phantom_brain()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    prepared = preprocess(Volume(data, affine), ModelSpace((48, 48, 48), 2.0))
    g = prepared.geometry
    delta = to_native(np.full(g.model_shape, 0.1, np.float32), g, VolumeKind.DELTA)
    inner = (slice(10, 30),) * 3
    np.testing.assert_allclose(delta[inner], 0.1 * (g.intensity_high - g.intensity_low), rtol=1e-5)


def test_percentile_window_maps_to_unit_range():
    x = np.arange(1001, dtype=np.float32)
    y = normalise(x, 100.0, 900.0)
    assert y[100] == 0.0 and y[900] == 1.0 and y[500] == pytest.approx(0.5)
    assert y.min() == 0.0 and y.max() == 1.0


def test_downsampling_averages_instead_of_aliasing():
    # A one-voxel checkerboard averages to grey at half resolution; plain sampling would
    # return only the black or only the white voxels.
    board = (np.indices((32, 32, 32)).sum(0) % 2).astype(np.float32)
    half = resample(board, np.eye(4), np.diag([2.0, 2.0, 2.0, 1.0]), (12, 12, 12))
    inner = half[2:-2, 2:-2, 2:-2]
    assert inner.min() > 0.3 and inner.max() < 0.7


def test_geometry_json_round_trip(tmp_path):
    data = phantom_brain()
    g = preprocess(Volume(data, np.eye(4)), ModelSpace((24, 24, 24), 2.0)).geometry
    g.save(tmp_path / "g.json")
    assert Geometry.load(tmp_path / "g.json") == g
    (tmp_path / "bad.json").write_text('{"native_affine": 1}')
    with pytest.raises(InputError, match=r"bad\.json"):
        Geometry.load(tmp_path / "bad.json")


def test_to_model_refuses_another_grid():
    data = phantom_brain()
    g = preprocess(Volume(data, np.eye(4)), ModelSpace((24, 24, 24), 2.0)).geometry
    with pytest.raises(InputError, match="not on the grid"):
        to_model(Volume(data, np.diag([2.0, 2.0, 2.0, 1.0])), g, VolumeKind.IMAGE)
