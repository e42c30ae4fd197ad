from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from tests.conftest import lesion_mask, phantom_brain, write
from usbrain.data.pseudo import (
    embed_lesion,
    fluid_lesion_shape,
    lesion_to_wm_ratio,
    white_matter_mean,
    write_pseudo,
)
from usbrain.errors import InputError


def blob(shape=(32, 32, 32), at=(16, 16, 16)):
    seed = np.zeros(shape, np.float32)
    seed[at] = 1
    return ndimage.gaussian_filter(seed, 1.0)


def test_fluid_shape_hits_the_target_inside_the_prior_and_is_connected():
    prior = np.zeros((32, 32, 32), np.float32)
    prior[4:28, 4:28, 4:20] = 1.0
    mask = fluid_lesion_shape(blob(), prior, 300, np.random.default_rng(0))
    assert mask.dtype == np.uint8 and abs(int(mask.sum()) - 300) <= 15
    assert not (mask.astype(bool) & (prior == 0)).any()
    assert ndimage.label(mask)[1] == 1
    again = fluid_lesion_shape(blob(), prior, 300, np.random.default_rng(0))
    assert np.array_equal(mask, again)
    other = fluid_lesion_shape(blob(), prior, 300, np.random.default_rng(1))
    assert not np.array_equal(mask, other)  # the flow randomises the shape


def test_embed_changes_nothing_beyond_one_voxel_and_darkens_the_lesion():
    healthy = phantom_brain()
    mask = lesion_mask()
    sick = embed_lesion(healthy, mask, 200.0, np.random.default_rng(0))
    outside = ~ndimage.binary_dilation(mask > 0)
    assert np.array_equal(sick[outside], healthy[outside])
    assert (np.abs(sick[mask > 0] - 200.0) <= 20.0 + 1e-3).all()  # texture within ±10%
    ring = ndimage.binary_dilation(mask > 0) & (mask == 0)
    assert (sick[ring] < healthy[ring]).all()  # partial-volume edge
    assert np.array_equal(embed_lesion(healthy, np.zeros_like(mask), 1.0, None), healthy)


def test_white_matter_mean_and_ratio_on_a_phantom():
    img = np.zeros((10, 10, 10), np.float32)
    brain = np.zeros_like(img, dtype=bool)
    brain[1:9, 1:9, 1:9] = True  # 512 voxels
    img[brain] = 600.0  # grey
    img[3:9, 1:9, 1:9] = 900.0  # white: 384 of 512 voxels, more than the top 30%
    assert white_matter_mean(img, brain) == 900.0
    mask = np.zeros_like(img, dtype=np.uint8)
    mask[5:7, 3:5, 3:5] = 1
    img[mask > 0] = 450.0
    assert lesion_to_wm_ratio(img, mask, brain) == pytest.approx(0.5)


@pytest.fixture
def pseudo_inputs(tmp_path):
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    for i in range(3):
        write(healthy / f"h{i}.nii.gz", phantom_brain(seed=i))
    lesions = tmp_path / "lesions"
    lesions.mkdir()
    # a lesion patient on a coarser grid (same world space) with its image: ratio 0.4
    coarse = np.diag([4.0, 4.0, 4.0, 1.0])
    src = phantom_brain(shape=(20, 22, 18))
    m = lesion_mask(shape=(20, 22, 18), centre=(13, 11, 9), radius=2)
    wm = white_matter_mean(src, src > 0, exclude=m > 0)
    src[m > 0] = 0.4 * wm
    write(lesions / "p1_t1.nii.gz", src, coarse)
    write(lesions / "p1_mask.nii.gz", m, coarse)
    write(lesions / "p2_mask.nii.gz", lesion_mask(centre=(18, 22, 18), radius=3))
    (lesions / "list.csv").write_text("image,mask\np1_t1.nii.gz,p1_mask.nii.gz\n,p2_mask.nii.gz\n")
    return healthy, lesions


def test_write_pseudo_end_to_end(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    manifest = write_pseudo(healthy, lesions / "list.csv", tmp_path / "out", progress=False)
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == 3
    assert {r["lesion_source"].split("/")[-1] for r in rows} == {"p1_mask.nii.gz", "p2_mask.nii.gz"}
    for r in rows:
        sick = nib.load(manifest.parent / r["image"])
        mask = np.asarray(nib.load(manifest.parent / r["mask"]).dataobj)
        ref = nib.load(healthy / f"{r['subject']}.nii.gz")
        np.testing.assert_array_equal(sick.affine, ref.affine)
        assert mask.sum() > 0 and float(r["lesion_ml"]) > 0
        h, s = ref.get_fdata(), sick.get_fdata()
        outside = ~ndimage.binary_dilation(mask > 0, iterations=2)
        np.testing.assert_array_equal(s[outside], h[outside])
        if r["lesion_source"].endswith("p1_mask.nii.gz"):
            assert float(r["lesion_to_wm"]) == pytest.approx(0.4, abs=0.02)


def test_write_pseudo_reports_every_problem_and_writes_nothing(tmp_path, pseudo_inputs):
    healthy, lesions = pseudo_inputs
    write(lesions / "p2_mask.nii.gz", lesion_mask() * np.float32(0.5))  # not binary
    (lesions / "list.csv").write_text("image,mask\n,p2_mask.nii.gz\n,gone.nii.gz\n")
    with pytest.raises(InputError) as err:
        write_pseudo(healthy, lesions / "list.csv", tmp_path / "out", progress=False)
    assert "p2_mask.nii.gz: mask is not binary" in str(err.value)
    assert "gone.nii.gz: file not found" in str(err.value)
    assert not (tmp_path / "out").exists()
